"""The Sites page and the site timeline: bars on the site's clock, rows, charge points, marks."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from plans import services
from plans.models import Plan
from plans.timeline import HOUR_PX, HOURS, LANE_PX, NO_VEHICLE
from plans.timezones import local_to_utc, utc_to_local
from tests.factories import make_location, make_plan, make_vehicle

pytestmark = pytest.mark.django_db

#: Europe's spring-forward night in 2027: 02:00 CET becomes 03:00 CEST on Sunday 28 March.
SPRING = "2027-03-28"
#: Europe's autumn night in 2027: 03:00 CEST becomes 02:00 CET on Sunday 31 October.
AUTUMN = "2027-10-31"


def wall(text: str, zone: str = "Europe/Brussels") -> datetime:
    return local_to_utc(datetime.fromisoformat(text), zone)


def at(location, start: str, end: str, **extra) -> dict:
    return {
        "location": location,
        "scheduled_start": wall(start, location.time_zone),
        "scheduled_end": wall(end, location.time_zone),
        **extra,
    }


def timeline(client, site, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = client.get(f"/sites/{site.pk}/" + (f"?{query}" if query else ""))
    assert response.status_code == 200, response.content[:500]
    return response, response.context["timelines"][0]


def bar_of(tl, plan):
    return next(bar for bar in tl.bars if bar.plan.pk == plan.pk)


def row_of(tl, label):
    return next(row for row in tl.rows if row.label == label)


@pytest.fixture
def brussels(db):
    return make_location(charge_points=2)


def test_it_puts_bars_on_the_site_clock_across_a_spring_forward_night(
    dispatcher_client, dispatcher, brussels
):
    # 01:00 CET to 04:00 CEST is two real hours: the hour 02:00–03:00 does not exist.
    night = make_plan(user=dispatcher, **at(brussels, f"{SPRING}T01:00", f"{SPRING}T04:00"))
    evening = make_plan(user=dispatcher, **at(brussels, f"{SPRING}T18:00", f"{SPRING}T20:00"))

    response, tl = timeline(dispatcher_client, brussels, day=SPRING)

    assert tl.start == datetime(2027, 3, 27, 23, 0, tzinfo=UTC)  # midnight CET
    assert (bar_of(tl, night).x, bar_of(tl, night).width) == (1 * HOUR_PX, 2 * HOUR_PX)
    # 18:00 CEST is the 18th hour of the site's day but only 17 real hours after midnight.
    assert (bar_of(tl, evening).x, bar_of(tl, evening).width) == (17 * HOUR_PX, 2 * HOUR_PX)
    assert [h.label for h in tl.hours[:4]] == ["00", "01", "03", "04"]
    assert tl.hours[2].zone == "CEST"
    assert tl.hours[17].label == "18"
    assert tl.zones == "CET / CEST"
    page = response.content.decode()
    assert f'<svg x="{17 * HOUR_PX}" y="3" width="{2 * HOUR_PX}"' in page
    assert "Sun 28 Mar 2027 18:00 – 20:00 CEST" in page


def test_it_writes_the_autumn_hour_twice_and_keeps_real_lengths(
    dispatcher_client, dispatcher, brussels
):
    # 01:30 CEST to 03:30 CET lasts three real hours: 02:00–03:00 happens twice.
    night = make_plan(
        user=dispatcher,
        location=brussels,
        scheduled_start=datetime(2027, 10, 30, 23, 30, tzinfo=UTC),
        scheduled_end=datetime(2027, 10, 31, 2, 30, tzinfo=UTC),
    )

    _, tl = timeline(dispatcher_client, brussels, day=AUTUMN)

    assert [h.label for h in tl.hours[:5]] == ["00", "01", "02", "02", "03"]
    assert [h.local.tzname() for h in tl.hours[2:4]] == ["CEST", "CET"]
    assert (bar_of(tl, night).x, bar_of(tl, night).width) == (30, 3 * HOUR_PX)


def test_it_gives_each_vehicle_a_row_and_plans_without_one_a_row_last(
    dispatcher_client, dispatcher, brussels
):
    newark = make_location("US-EWR-03", "Newark Yard", "America/New_York")
    idle = make_vehicle("bus 2", location=brussels)
    busy = make_vehicle("bus 10", location=brussels)
    visitor = make_vehicle("van 21", location=newark)
    make_vehicle("bus 3", location=brussels, is_active=False)
    tomorrow = (utc_to_local(timezone.now(), "Europe/Brussels") + timedelta(days=1)).date()
    day = f"{tomorrow:%Y-%m-%d}"
    mine = make_plan(user=dispatcher, vehicle=busy, **at(brussels, f"{day}T18:00", f"{day}T23:00"))
    theirs = make_plan(
        user=dispatcher, vehicle=visitor, **at(brussels, f"{day}T08:00", f"{day}T10:00")
    )
    loose = make_plan(user=dispatcher, **at(brussels, f"{day}T12:00", f"{day}T13:00"))
    make_plan(user=dispatcher, vehicle=busy, **at(newark, f"{day}T20:00", f"{day}T21:00"))

    response, tl = timeline(dispatcher_client, brussels, day=day)

    # Home vehicles in the order people count them, planned or not; a visitor with a plan here
    # too; the inactive bus 3 with nothing planned has no row; the vehicle-less plans come last.
    assert [row.label for row in tl.rows] == [idle.name, busy.name, visitor.name, NO_VEHICLE]
    assert row_of(tl, idle.name).bars == []
    assert [b.plan.pk for b in row_of(tl, busy.name).bars] == [mine.pk]
    assert [b.plan.pk for b in row_of(tl, visitor.name).bars] == [theirs.pk]
    assert [b.plan.pk for b in row_of(tl, NO_VEHICLE).bars] == [loose.pk]
    page = response.content.decode()
    assert 'bus 2<span class="visually-hidden">: no plans</span>' in page
    assert '<div class="tl-label tl-label-none">no vehicle</div>' in page


def test_it_stacks_overlapping_plans_and_marks_a_vehicle_in_two_at_once(
    dispatcher_client, dispatcher, brussels
):
    bus = make_vehicle("bus 1", location=brussels)
    day = "2027-02-10"
    first = make_plan(user=dispatcher, **at(brussels, f"{day}T10:00", f"{day}T14:00"))
    second = make_plan(user=dispatcher, **at(brussels, f"{day}T12:00", f"{day}T16:00"))
    after = make_plan(user=dispatcher, **at(brussels, f"{day}T14:00", f"{day}T15:00"))
    early = make_plan(user=dispatcher, vehicle=bus, **at(brussels, f"{day}T01:00", f"{day}T03:00"))
    late = make_plan(user=dispatcher, vehicle=bus, **at(brussels, f"{day}T04:00", f"{day}T06:00"))
    # The guards refuse this; a race between two saves, or data from before them, can leave it.
    Plan.objects.filter(pk=late.pk).update(scheduled_start=wall(f"{day}T02:00"))

    response, tl = timeline(dispatcher_client, brussels, day=day)

    loose = row_of(tl, NO_VEHICLE)
    assert [(b.plan.pk, b.lane) for b in loose.bars] == [
        (first.pk, 0),
        (second.pk, 1),
        (after.pk, 0),
    ]
    assert loose.lanes == 2 and loose.height == 2 * LANE_PX + 4
    assert bar_of(tl, early).conflicts == (late.pk,)
    assert bar_of(tl, late).conflicts == (early.pk,)
    assert bar_of(tl, first).conflicts == ()
    page = response.content.decode()
    assert f"⚠ conflict: overlaps plan {late.pk} of the same vehicle" in page
    assert f"⚠ Overlaps plan {early.pk} of the same vehicle." in page


def test_it_counts_the_busiest_moment_of_each_hour_against_the_charge_points(
    dispatcher_client, dispatcher, brussels
):
    day = "2027-02-10"
    for start, end in (("18:00", "21:00"), ("18:30", "20:00"), ("19:15", "22:00")):
        make_plan(
            user=dispatcher,
            accept_warnings=("charge_points",),
            **at(brussels, f"{day}T{start}", f"{day}T{end}"),
        )
    # Touching windows share no moment: 22:00–23:00 follows 19:15–22:00, one at a time.
    make_plan(user=dispatcher, **at(brussels, f"{day}T22:00", f"{day}T23:00"))
    cancelled = make_plan(
        user=dispatcher,
        accept_warnings=("charge_points",),
        **at(brussels, f"{day}T18:00", f"{day}T23:00"),
    )
    services.plan_cancel(plan=cancelled, user=dispatcher, reason="Not needed.")

    response, tl = timeline(dispatcher_client, brussels, day=day)

    counts = {h.label: h.busiest for h in tl.hours[:24]}
    assert [counts[h] for h in ("17", "18", "19", "20", "21", "22", "23")] == [0, 2, 3, 2, 1, 1, 0]
    assert [h.label for h in tl.hours if h.over] == ["19"]
    assert tl.over_hours == 1
    page = response.content.decode()
    assert '<text class="tl-count tl-over" x="390" y="15">3!</text>' in page
    assert "more plans than charge points in 1 hour" in page
    assert "busiest 3 at Wed 10 Feb 19:00 CET" in page


def test_it_marks_a_plans_stored_warnings_on_its_bar(dispatcher_client, dispatcher, brussels):
    bus = make_vehicle("bus 4", location=brussels, battery_kwh="300")
    day = "2027-02-10"
    heavy = make_plan(
        user=dispatcher,
        vehicle=bus,
        kind="charge",
        expected_charge_kwh=400,
        accept_warnings=("battery", "power"),
        **at(brussels, f"{day}T18:00", f"{day}T23:00"),
    )
    fine = make_plan(user=dispatcher, **at(brussels, f"{day}T08:00", f"{day}T12:00"))

    response, tl = timeline(dispatcher_client, brussels, day=day)

    assert bar_of(tl, heavy).flagged and not bar_of(tl, fine).flagged
    page = response.content.decode()
    link = re.search(rf'<a href="/plans/{heavy.pk}/" class="([^"]+)" aria-label="([^"]+)"', page)
    assert "tl-flagged" in link.group(1)
    assert link.group(2).startswith(
        f"Plan {heavy.pk}: bus 4, 400 kWh charge, Wed 10 Feb 2027 18:00 – 23:00 CET, Draft; "
        "⚠ warning: Needs 400 kWh, more than bus 4"
    )
    assert "⚠ ✎ 400 kWh</text>" in page
    assert f'class="tl-bar tl-draft" aria-label="Plan {fine.pk}: no vehicle' in page


def test_it_hides_called_off_plans_unless_asked_and_then_strikes_them_through(
    dispatcher_client, dispatcher, brussels
):
    day = "2027-02-10"
    live = make_plan(user=dispatcher, **at(brussels, f"{day}T08:00", f"{day}T12:00"))
    gone = make_plan(user=dispatcher, **at(brussels, f"{day}T08:00", f"{day}T12:00"))
    services.plan_cancel(plan=gone, user=dispatcher, reason="Bus in the workshop.")

    _, hidden = timeline(dispatcher_client, brussels, day=day)
    response, shown = timeline(dispatcher_client, brussels, day=day, called_off=1)

    assert [b.plan.pk for b in hidden.bars] == [live.pk]
    assert {b.plan.pk for b in shown.bars} == {live.pk, gone.pk}
    assert bar_of(shown, gone).called_off
    # Called-off plans hold no charge point.
    assert max(h.busiest for h in shown.hours) == 1
    page = response.content.decode()
    assert f'class="tl-bar tl-withdrawn" aria-label="Plan {gone.pk}' in page
    assert '<tr class="tl-table-withdrawn">' in page
    # The day links keep the choice.
    assert "?day=2027-02-11&amp;called_off=1" in page


def test_it_starts_at_the_current_hour_and_moves_by_a_day(dispatcher_client, brussels):
    now = timezone.now()
    _, tl = timeline(dispatcher_client, brussels)
    response, moved = timeline(dispatcher_client, brussels, day="2027-02-10")

    local_now = utc_to_local(now, "Europe/Brussels")
    assert utc_to_local(tl.start, "Europe/Brussels") == local_now.replace(
        minute=0, second=0, microsecond=0
    )
    assert tl.end - tl.start == timedelta(hours=HOURS)
    assert tl.now_x is not None and 0 <= tl.now_x <= HOUR_PX
    assert moved.start == wall("2027-02-10T00:00") and moved.now_x is None
    assert response.context["earlier"]["query"] == "?day=2027-02-09"
    assert response.context["later"]["query"] == "?day=2027-02-11"
    page = response.content.decode()
    assert "‹ Tue 9 Feb</a>" in page and "Thu 11 Feb ›</a>" in page
    assert 'name="day" value="2027-02-10"' in page


@pytest.mark.parametrize(
    ("day", "says"),
    [
        ("2026-13-40", "cannot be read"),
        ("tomorrow", "cannot be read"),
        ("0001-01-01", "out of range"),
        ("9999-12-31", "out of range"),
    ],
)
def test_it_refuses_a_day_it_cannot_read_with_a_clear_message(
    dispatcher_client, brussels, day, says
):
    for url in (f"/sites/{brussels.pk}/?day={day}", f"/sites/timeline/?day={day}"):
        response = dispatcher_client.get(url)

        assert response.status_code == 400
        assert says in response.content.decode()


def test_it_shows_every_site_on_its_own_clock(dispatcher_client, dispatcher, brussels):
    newark = make_location("US-EWR-03", "Newark Yard", "America/New_York")
    quiet = make_location("DE-BER-02", "Berlin Hub", "Europe/Berlin")
    day = "2027-02-10"
    here = make_plan(user=dispatcher, **at(brussels, f"{day}T18:00", f"{day}T20:00"))
    there = make_plan(user=dispatcher, **at(newark, f"{day}T18:00", f"{day}T20:00"))
    make_plan(user=dispatcher, **at(newark, "2027-02-14T18:00", "2027-02-14T20:00"))

    response = dispatcher_client.get(f"/sites/timeline/?day={day}")

    assert response.status_code == 200
    timelines = {tl.site.name: tl for tl in response.context["timelines"]}
    assert set(timelines) == {"Brussels Depot", "Newark Yard"}
    assert [b.plan.pk for b in timelines["Newark Yard"].bars] == [there.pk]
    # 18:00 at each site sits at the same place: each window starts at its own midnight.
    assert bar_of(timelines["Brussels Depot"], here).x == 18 * HOUR_PX
    assert bar_of(timelines["Newark Yard"], there).x == 18 * HOUR_PX
    assert timelines["Newark Yard"].zones == "EST"
    assert response.context["quiet_sites"] == [quiet]
    page = response.content.decode()
    assert "Wed 10 Feb 2027 18:00 – 20:00 EST" in page
    assert "No plans in these hours at:" in page


def test_it_shows_ten_sites_a_page_and_keeps_the_day_across_pages(
    dispatcher_client, dispatcher, brussels
):
    day = "2027-02-10"
    sites = [brussels] + [
        make_location(f"XX-{n:02d}", f"Depot {n:02d}", "Europe/Brussels") for n in range(11)
    ]
    for site in sites:
        make_plan(user=dispatcher, **at(site, f"{day}T18:00", f"{day}T20:00"))

    first = dispatcher_client.get(f"/sites/timeline/?day={day}")
    second = dispatcher_client.get(f"/sites/timeline/?day={day}&page=2")

    assert [tl.site.name for tl in first.context["timelines"]] == [s.name for s in sites[:10]]
    assert [tl.site.name for tl in second.context["timelines"]] == [s.name for s in sites[10:]]
    assert "Sites 1–10 of 12" in first.content.decode()
    assert f'href="?page=2&amp;day={day}" rel="next"' in first.content.decode()
    assert f'href="?page=1&amp;day={day}" rel="prev"' in second.content.decode()
    assert "?day=2027-02-11&amp;page=2" in second.content.decode()
    for page in ("3", "0", "two", "99999999999999999999"):
        response = dispatcher_client.get(f"/sites/timeline/?page={page}")
        assert response.status_code == 400
        assert "There is no page" in response.content.decode()


def test_the_sites_page_lists_each_site_with_its_timeline(dispatcher_client, brussels):
    make_vehicle("bus 1", location=brussels)
    make_vehicle("bus 2", location=brussels, is_active=False)

    response = dispatcher_client.get("/sites/")

    page = response.content.decode()
    assert response.status_code == 200
    assert [(s.name, s.vehicle_count) for s in response.context["sites"]] == [("Brussels Depot", 1)]
    assert f'href="/sites/{brussels.pk}/"' in page
    assert 'href="/sites/timeline/"' in page
    assert '<a href="/sites/" aria-current="page">Sites</a>' in page


@pytest.mark.parametrize("who", ["dispatcher", "viewer"])
def test_dispatchers_and_viewers_see_sites_and_timelines(client, request, brussels, who):
    client.force_login(request.getfixturevalue(who))

    for url in ("/sites/", f"/sites/{brussels.pk}/", "/sites/timeline/"):
        assert client.get(url).status_code == 200


def test_outsiders_and_strangers_see_no_site(client, outsider, brussels):
    urls = ("/sites/", f"/sites/{brussels.pk}/", "/sites/timeline/")
    for url in urls:
        assert client.get(url).status_code == 302  # to the login page

    client.force_login(outsider)
    for url in urls:
        assert client.get(url).status_code == 403
    assert "Sites</a>" not in client.get("/accounts/").content.decode()


def test_an_unknown_site_is_not_found(dispatcher_client):
    assert dispatcher_client.get("/sites/999999/").status_code == 404


def test_a_bars_link_names_everything_it_shows(dispatcher_client, dispatcher, brussels):
    bus = make_vehicle("bus 7", location=brussels)
    day = "2027-02-10"
    plan = make_plan(
        user=dispatcher,
        vehicle=bus,
        kind="range",
        expected_range_km=220,
        average_consumption=None,
        **at(brussels, f"{day}T23:00", "2027-02-11T05:30"),
    )

    response, _ = timeline(dispatcher_client, brussels, day=day)

    page = response.content.decode()
    assert (
        f'<a href="/plans/{plan.pk}/" class="tl-bar tl-draft" aria-label="Plan {plan.pk}: bus 7, '
        f'220 km range, Wed 10 Feb 2027 23:00 – Thu 11 Feb 2027 05:30 CET, Draft">'
    ) in page
    assert "✎ 220 km</text>" in page


#: Every request: session, user, the user's two permission sets, MINT status and worker
#: heartbeat (header) = 6. A site's timeline adds: the site, its home vehicles, the plans.
SITE_QUERIES = 9
#: Every site's timeline adds: the sites, the plans.
ALL_SITES_QUERIES = 8
#: The Sites page adds: the sites with their vehicle counts.
SITES_QUERIES = 7


def _many_plans(user, sites, vehicles, count: int) -> None:
    """``count`` plans over the next two days, every site's half with a vehicle, a few with a
    warning.

    Written with ``bulk_create``: through the services (guards, history) 500 plans take
    minutes, and only the rows the timeline reads matter here.
    """
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    Plan.objects.bulk_create(
        Plan(
            location=sites[n % len(sites)],
            vehicle=vehicles[(n // 2) % len(vehicles)] if n % 4 < 2 else None,
            scheduled_start=start + timedelta(minutes=5 * n),
            scheduled_end=start + timedelta(minutes=5 * n + 90),
            target_kind="charge",
            expected_charge_kwh=40 + n % 100,
            state=("draft", "queued", "accepted", "failed")[n % 4],
            warnings=[{"code": "battery", "text": "Needs more."}] if n % 7 == 0 else [],
            created_by=user,
            updated_by=user,
        )
        for n in range(count)
    )


@pytest.mark.parametrize("count", [0, 500])
def test_it_draws_timelines_in_a_fixed_number_of_queries(
    dispatcher_client, dispatcher, django_assert_num_queries, brussels, count
):
    newark = make_location("US-EWR-03", "Newark Yard", "America/New_York")
    vehicles = [make_vehicle(f"bus {n}", location=brussels) for n in range(20)]
    _many_plans(dispatcher, [brussels, newark], vehicles, count)
    dispatcher_client.get("/sites/")  # the login's first request also stamps the session

    with django_assert_num_queries(SITE_QUERIES):
        site = dispatcher_client.get(f"/sites/{brussels.pk}/")
    with django_assert_num_queries(ALL_SITES_QUERIES):
        every = dispatcher_client.get("/sites/timeline/")
    with django_assert_num_queries(SITES_QUERIES):
        listed = dispatcher_client.get("/sites/")

    tl = site.context["timelines"][0]
    assert len(tl.rows) == 20 + (1 if count else 0)
    assert len(tl.bars) == count // 2
    assert site.content.decode().count('class="tl-bar ') == count // 2
    assert sum(len(tl.bars) for tl in every.context["timelines"]) == count
    assert listed.status_code == 200


def test_the_demo_shows_tomorrow_evening_at_the_brussels_depot(dispatcher_client):
    from tests.factories import seed_demo

    seed_demo()
    brussels = make_location()
    tomorrow = (utc_to_local(timezone.now(), "Europe/Brussels") + timedelta(days=1)).date()

    _, tl = timeline(dispatcher_client, brussels, day=f"{tomorrow:%Y-%m-%d}")

    arrive = {
        bar.plan.vehicle_name: utc_to_local(bar.plan.scheduled_start, "Europe/Brussels")
        for bar in tl.bars
        if utc_to_local(bar.plan.scheduled_start, "Europe/Brussels").date() == tomorrow
    }
    assert {"bus 1", "bus 2", "bus 6", "bus 7", None} <= set(arrive)
    assert all(17 <= arrive[bus].hour <= 19 for bus in ("bus 1", "bus 2", "bus 6"))
    assert any(bar.flagged for bar in tl.bars)
    # Busy, with charge points left for the plans a dispatcher (or a test) adds that night.
    assert 3 <= max(h.busiest for h in tl.hours) <= 4
