"""Calendar feeds: the .ics per site and per vehicle, the tokens that open them, and the account
page where tokens are made, listed and revoked."""

import hashlib
import io
import logging
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone
from icalendar import Calendar

from plans import selectors, services
from plans.models import FeedToken, PlanState
from tests.conftest import login_with_second_factor
from tests.factories import make_location, make_plan, make_vehicle
from tests.test_views import accept

pytestmark = pytest.mark.django_db


def new_token(user, label: str = "Outlook") -> str:
    return services.feed_token_create(user=user, label=label).secret


def site_url(secret: str, location) -> str:
    return f"/feeds/{secret}/sites/{location.pk}.ics"


def vehicle_url(secret: str, vehicle) -> str:
    return f"/feeds/{secret}/vehicles/{vehicle.pk}.ics"


def fetch(url: str) -> Calendar:
    """The feed as a calendar program gets it: no session, no cookie."""
    response = Client().get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    return Calendar.from_ical(response.content)


def event_of(calendar: Calendar, plan):
    uid = f"{plan.transaction_id}@mintportal"
    found = [event for event in calendar.events if str(event["UID"]) == uid]
    assert len(found) == 1, [str(e["UID"]) for e in calendar.events]
    return found[0]


# --- the feed -------------------------------------------------------------------------------------


def test_it_serves_a_site_feed_with_vtimezone_uid_and_sequence(viewer, dispatcher):
    site = make_location()
    vehicle = make_vehicle(location=site)
    plan = make_plan(
        user=dispatcher,
        location=site,
        vehicle=vehicle,
        kind="charge",
        expected_charge_kwh=160,
    )
    secret = new_token(viewer)

    response = Client().get(site_url(secret, site))
    calendar = fetch(site_url(secret, site))

    assert str(calendar["X-WR-CALNAME"]) == "MINT Portal · Brussels Depot"
    assert str(calendar["X-WR-TIMEZONE"]) == "Europe/Brussels"
    assert b"\r\nX-PUBLISHED-TTL:PT15M\r\n" in response.content
    assert b"\r\nREFRESH-INTERVAL;VALUE=DURATION:PT15M\r\n" in response.content
    assert [tz.tz_name for tz in calendar.timezones] == ["Europe/Brussels"]
    event = event_of(calendar, plan)
    assert str(event["SUMMARY"]) == "bus 12 · 160 kWh"
    assert event["SEQUENCE"] == 1
    assert str(event["STATUS"]) == "TENTATIVE"
    assert event.start == plan.scheduled_start
    assert event.end == plan.scheduled_end
    assert event.start.tzinfo == ZoneInfo("Europe/Brussels")
    assert event["DTSTAMP"].dt == plan.updated_at.replace(microsecond=0)
    link = f"http://testserver/plans/{plan.pk}/"
    assert str(event["URL"]) == link
    description = str(event["DESCRIPTION"])
    assert description.startswith("Draft · revision 1\n")
    assert "Target: 160 kWh charge" in description
    assert description.endswith(link)


def test_it_serves_a_vehicle_feed_with_only_that_vehicles_plans(viewer, dispatcher):
    site = make_location()
    bus, other = make_vehicle("bus 12", location=site), make_vehicle("bus 13", location=site)
    mine = make_plan(user=dispatcher, location=site, vehicle=bus, expected_range_km=240)
    make_plan(user=dispatcher, location=site, vehicle=other)
    make_plan(user=dispatcher, location=site)

    calendar = fetch(vehicle_url(new_token(viewer), bus))

    assert str(calendar["X-WR-CALNAME"]) == "MINT Portal · bus 12"
    assert [str(e["SUMMARY"]) for e in calendar.events] == ["bus 12 · 240 km"]
    assert event_of(calendar, mine)["SEQUENCE"] == 1


def test_it_gives_a_vehicle_at_two_sites_each_sites_zone(viewer, dispatcher):
    home = make_location()
    away = make_location("US-EWR-03", "Newark Yard", "America/New_York")
    bus = make_vehicle(location=home)
    start = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    here = make_plan(user=dispatcher, location=home, vehicle=bus)
    there = make_plan(
        user=dispatcher,
        location=away,
        vehicle=bus,
        scheduled_start=start + timedelta(days=2),
        scheduled_end=start + timedelta(days=2, hours=3),
    )

    calendar = fetch(vehicle_url(new_token(viewer), bus))

    assert sorted(tz.tz_name for tz in calendar.timezones) == [
        "America/New_York",
        "Europe/Brussels",
    ]
    assert str(calendar["X-WR-TIMEZONE"]) == "Europe/Brussels"  # the vehicle's home site
    assert event_of(calendar, here).start.tzinfo == ZoneInfo("Europe/Brussels")
    assert event_of(calendar, there).start.tzinfo == ZoneInfo("America/New_York")
    assert event_of(calendar, there).start == there.scheduled_start


def test_it_names_a_plan_without_a_vehicle_by_its_number(viewer, dispatcher):
    plan = make_plan(user=dispatcher, kind="charge")

    calendar = fetch(site_url(new_token(viewer), plan.location))

    assert str(event_of(calendar, plan)["SUMMARY"]) == f"Plan {plan.pk} · 60 kWh"


def test_it_raises_the_sequence_with_a_new_revision(viewer, dispatcher):
    plan = accept(make_plan(user=dispatcher, kind="charge"), dispatcher)
    secret = new_token(viewer)
    before = event_of(fetch(site_url(secret, plan.location)), plan)

    edited = services.plan_update(plan=plan, user=dispatcher, expected_charge_kwh=80)
    after = event_of(fetch(site_url(secret, plan.location)), plan)

    assert edited.revision == 2
    assert str(before["STATUS"]) == "CONFIRMED"
    assert after["SEQUENCE"] > before["SEQUENCE"]
    assert str(after["UID"]) == str(before["UID"])
    assert str(after["SUMMARY"]).endswith("80 kWh")


@pytest.mark.parametrize("accepted", [False, True], ids=["withdrawn", "cancelled"])
def test_it_marks_a_called_off_plan_cancelled(viewer, dispatcher, accepted):
    plan = make_plan(user=dispatcher, kind="charge")
    if accepted:
        plan = accept(plan, dispatcher)
    secret = new_token(viewer)
    before = event_of(fetch(site_url(secret, plan.location)), plan)

    plan = services.plan_cancel(plan=plan, user=dispatcher, reason="Bus broke down")
    after = event_of(fetch(site_url(secret, plan.location)), plan)

    assert plan.state == (PlanState.CANCELLED if accepted else PlanState.WITHDRAWN)
    assert str(after["STATUS"]) == "CANCELLED"
    assert str(after["SUMMARY"]) == f"{plan.get_state_display()}: Plan {plan.pk} · 60 kWh"
    assert after["SEQUENCE"] > before["SEQUENCE"]


def _next_clock_change(zone: ZoneInfo, after: datetime) -> datetime:
    """The first whole UTC hour after ``after`` at which ``zone``'s offset changes."""
    instant = after.replace(minute=0, second=0, microsecond=0)
    offset = instant.astimezone(zone).utcoffset()
    for _ in range(24 * 400):
        instant += timedelta(hours=1)
        if instant.astimezone(zone).utcoffset() != offset:
            return instant
    raise AssertionError("no clock change within 400 days")


@pytest.mark.parametrize("zone_name", ["Europe/Brussels", "America/New_York"])
def test_it_writes_site_local_times_across_a_clock_change(
    viewer, dispatcher, monkeypatch, zone_name
):
    # The next clock change may be months away: widen the window to reach it.
    monkeypatch.setattr(selectors, "FEED_AHEAD", timedelta(days=370))
    zone = ZoneInfo(zone_name)
    site = make_location("XX-DST-01", "DST Depot", zone_name)
    change = _next_clock_change(zone, timezone.now() + timedelta(days=1))
    plan = make_plan(
        user=dispatcher,
        location=site,
        scheduled_start=change - timedelta(hours=2),
        scheduled_end=change + timedelta(hours=2),
    )
    response = Client().get(site_url(new_token(viewer), site))
    text = response.content.decode()

    calendar = Calendar.from_ical(response.content)
    event = event_of(calendar, plan)
    wall_start = (change - timedelta(hours=2)).astimezone(zone)
    wall_end = (change + timedelta(hours=2)).astimezone(zone)
    # The wall clock on both sides of the change, each with the zone, not UTC.
    assert f"DTSTART;TZID={zone_name}:{wall_start:%Y%m%dT%H%M%S}" in text
    assert f"DTEND;TZID={zone_name}:{wall_end:%Y%m%dT%H%M%S}" in text
    assert wall_start.utcoffset() != wall_end.utcoffset()
    # A calendar program that knows only the VTIMEZONE gets the same instants.
    assert event.start == plan.scheduled_start and event.end == plan.scheduled_end
    (vtimezone,) = calendar.timezones
    offsets = {
        (sub["TZOFFSETFROM"].td, sub["TZOFFSETTO"].td)
        for sub in vtimezone.subcomponents
        if sub.name in {"STANDARD", "DAYLIGHT"}
    }
    assert (wall_start.utcoffset(), wall_end.utcoffset()) in offsets
    parsed = vtimezone.to_tz()
    assert plan.scheduled_start.astimezone(parsed).replace(tzinfo=None) == wall_start.replace(
        tzinfo=None
    )
    assert plan.scheduled_end.astimezone(parsed).replace(tzinfo=None) == wall_end.replace(
        tzinfo=None
    )


def test_it_shows_only_plans_inside_the_window(viewer, dispatcher, monkeypatch):
    site = make_location()
    soon = make_plan(user=dispatcher, location=site)
    start = timezone.now().replace(microsecond=0) + selectors.FEED_AHEAD + timedelta(hours=1)
    later = make_plan(
        user=dispatcher,
        location=site,
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=3),
    )

    calendar = fetch(site_url(new_token(viewer), site))

    uids = {str(event["UID"]) for event in calendar.events}
    assert f"{soon.transaction_id}@mintportal" in uids
    assert f"{later.transaction_id}@mintportal" not in uids


def test_it_reaches_as_far_ahead_as_schedules_make_plans(viewer, dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 45
    site = make_location()
    start = timezone.now().replace(microsecond=0) + timedelta(days=40)
    far = make_plan(
        user=dispatcher,
        location=site,
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=3),
    )

    calendar = fetch(site_url(new_token(viewer), site))

    assert event_of(calendar, far)
    assert str(calendar["X-WR-CALDESC"]).endswith("from 7 days ago to 45 days ahead.")


def test_it_caps_a_feed_at_its_earliest_plans(viewer, dispatcher, monkeypatch):
    monkeypatch.setattr(selectors, "FEED_MAX_EVENTS", 2)
    site = make_location()
    start = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    plans = [
        make_plan(
            user=dispatcher,
            location=site,
            scheduled_start=start + timedelta(hours=hour),
            scheduled_end=start + timedelta(hours=hour + 1),
        )
        for hour in (2, 0, 1)
    ]

    calendar = fetch(site_url(new_token(viewer), site))

    assert [str(e["UID"]) for e in calendar.events] == [
        f"{plans[1].transaction_id}@mintportal",
        f"{plans[2].transaction_id}@mintportal",
    ]


def test_it_costs_the_same_queries_at_0_and_200_plans(
    viewer, dispatcher, django_assert_num_queries
):
    site = make_location()
    make_vehicle(location=site)
    secret = new_token(viewer)
    client = Client()

    def queries_for_feed() -> int:
        FeedToken.objects.update(last_used_at=None)  # each request writes "last used" once
        with django_assert_num_queries(6) as captured:
            response = client.get(site_url(secret, site))
        assert response.status_code == 200
        return len(Calendar.from_ical(response.content).events), len(captured)

    assert queries_for_feed() == (0, 6)
    start = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    for number in range(200):
        at = start + timedelta(minutes=20 * number)
        make_plan(
            user=dispatcher,
            location=site,
            scheduled_start=at,
            scheduled_end=at + timedelta(hours=1),
        )
    assert queries_for_feed() == (200, 6)


# --- the token and the user's rights --------------------------------------------------------------


def test_it_answers_the_same_404_for_unknown_and_revoked_tokens(viewer):
    site = make_location()
    revoked = services.feed_token_create(user=viewer, label="Old phone")
    services.feed_token_revoke(user=viewer, pk=revoked.token.pk)

    unknown = Client().get(site_url("x" * 40, site))
    gone = Client().get(site_url(revoked.secret, site))

    assert unknown.status_code == gone.status_code == 404
    assert unknown.content == gone.content
    assert unknown.headers == gone.headers


def test_it_answers_404_for_an_unknown_site_or_vehicle(viewer):
    secret = new_token(viewer)

    assert Client().get(f"/feeds/{secret}/sites/999999.ics").status_code == 404
    assert Client().get(f"/feeds/{secret}/vehicles/999999.ics").status_code == 404


def test_it_follows_the_users_view_right(viewer, dispatcher):
    site = make_location()
    secret = new_token(viewer)
    assert Client().get(site_url(secret, site)).status_code == 200

    viewer.groups.clear()

    assert Client().get(site_url(secret, site)).status_code == 404


def test_it_follows_a_right_given_to_the_user_directly(outsider):
    site = make_location()
    secret = new_token(outsider)
    assert Client().get(site_url(secret, site)).status_code == 404

    outsider.user_permissions.add(Permission.objects.get(codename="view_plan"))

    assert Client().get(site_url(secret, site)).status_code == 200


def test_it_refuses_a_deactivated_user(viewer):
    site = make_location()
    secret = new_token(viewer)

    viewer.is_active = False
    viewer.save(update_fields=["is_active"])

    assert Client().get(site_url(secret, site)).status_code == 404


def test_it_refuses_a_user_whose_group_loses_the_right(viewer):
    site = make_location()
    secret = new_token(viewer)

    Group.objects.get(name="Viewers").permissions.remove(
        Permission.objects.get(codename="view_plan")
    )

    assert Client().get(site_url(secret, site)).status_code == 404


def test_it_notes_when_a_token_was_last_used(viewer):
    site = make_location()
    made = services.feed_token_create(user=viewer, label="Outlook")
    assert made.token.last_used_at is None

    Client().get(site_url(made.secret, site))

    made.token.refresh_from_db()
    assert timezone.now() - made.token.last_used_at < timedelta(seconds=10)


def test_it_reads_only_get_and_head(viewer):
    url = site_url(new_token(viewer), make_location())

    assert Client().post(url).status_code == 405
    assert Client(enforce_csrf_checks=True).post(url).status_code == 403
    assert Client().put(url).status_code == 405
    assert Client().head(url).status_code == 200


def test_it_needs_no_session_and_no_second_factor(admin_user, viewer):
    """The token is the credential: a browser with a half-finished staff login (password, no
    code yet) is not sent to the code page, and no cookie is set."""
    site = make_location()
    secret = new_token(viewer)
    half = Client()
    half.force_login(admin_user)

    response = half.get(site_url(secret, site))
    anonymous = Client().get(site_url(secret, site))

    assert response.status_code == anonymous.status_code == 200
    assert "sessionid" not in anonymous.cookies and "csrftoken" not in anonymous.cookies


def test_it_keeps_the_feed_out_of_every_cache(viewer):
    response = Client().get(site_url(new_token(viewer), make_location()))

    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_it_stores_only_the_hash_and_a_prefix(viewer):
    made = services.feed_token_create(user=viewer, label="Outlook")
    row = FeedToken.objects.filter(pk=made.token.pk).values().get()

    assert row["secret_hash"] == hashlib.sha256(made.secret.encode()).hexdigest()
    assert row["prefix"] == made.secret[:6]
    assert not any(made.secret in str(value) for value in row.values())
    assert len(made.secret) >= 40


# --- logs -----------------------------------------------------------------------------------------


@pytest.fixture
def console_log():
    """What the portal's console handler writes, as it would reach stderr or the journal."""
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_it_never_logs_a_token(viewer, console_log, caplog):
    site = make_location()
    live = new_token(viewer)
    revoked = services.feed_token_create(user=viewer, label="Old")
    services.feed_token_revoke(user=viewer, pk=revoked.token.pk)

    with caplog.at_level(logging.INFO):
        Client().get(site_url(live, site))
        Client().get(f"/feeds/{live}/sites/999999.ics")  # a live token, a 404
        Client().get(site_url(revoked.secret, site))
        Client(enforce_csrf_checks=True).post(site_url(live, site))  # "Forbidden (CSRF …)"
        # runserver's request line, as django.servers logs it for a 404
        logging.getLogger("django.server").warning(
            '"%s" %s %s', f"GET /feeds/{live}/sites/1.ics HTTP/1.1", "404", "23"
        )

    written = console_log.getvalue() + caplog.text
    assert "Not Found: /feeds/***/sites/999999.ics" in written
    assert "GET /feeds/***/sites/1.ics" in written
    assert "Forbidden (CSRF cookie not set.): /feeds/***/sites/" in written
    for secret in (live, revoked.secret):
        assert secret not in written
        assert secret[:20] not in written


def test_it_masks_a_token_in_the_json_log_extras():
    from plans.logs import JsonFormatter

    record = logging.makeLogRecord(
        {
            "msg": "Not Found: %s",
            "args": ("/feeds/s3cret-token-value/sites/1.ics",),
            "request": "<WSGIRequest: GET '/feeds/s3cret-token-value/sites/1.ics'>",
        }
    )

    line = JsonFormatter().format(record)

    assert "s3cret-token-value" not in line
    assert "/feeds/***/sites/1.ics" in line


def test_it_masks_a_token_in_gunicorns_access_log():
    from gunicorn.config import Config

    from plans.gunicorn_log import Logger

    config = Config()
    config.set("accesslog", "-")
    logger = Logger(config)
    stream = io.StringIO()
    logger.access_log.handlers[0].setStream(stream)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/feeds/s3cret-token-value/sites/1.ics",
        "PATH_INFO": "/feeds/s3cret-token-value/sites/1.ics",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }
    response = SimpleNamespace(status="200 OK", sent=1234, headers=[])

    logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=5))

    assert "GET /feeds/***/sites/1.ics HTTP/1.1" in stream.getvalue()
    assert "s3cret" not in stream.getvalue()


# --- the account page -----------------------------------------------------------------------------


def test_it_shows_a_new_tokens_feed_urls_once(viewer_client, viewer, dispatcher):
    site = make_location()
    vehicle = make_vehicle(location=site)

    response = viewer_client.post("/accounts/feed-tokens/", {"label": "Outlook at home"})

    assert response.status_code == 200
    text = response.content.decode()
    urls = re.findall(r'value="(http://testserver/feeds/[^"]+)"', text)
    assert len(urls) == 2
    secret = urls[0].split("/")[4]
    assert urls == [
        f"http://testserver{site_url(secret, site)}",
        f"http://testserver{vehicle_url(secret, vehicle)}",
    ]
    assert "no-store" in response["Cache-Control"]
    token = FeedToken.objects.get(user=viewer)
    assert token.label == "Outlook at home"
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    # Shown once: the account page lists the token by its prefix only.
    listing = viewer_client.get("/accounts/").content.decode()
    assert "Outlook at home" in listing and f"{secret[:6]}…" in listing
    assert secret not in listing
    # And the URL works.
    assert Client().get(urls[0]).status_code == 200


def test_it_lets_a_viewer_and_a_staff_user_make_tokens(viewer_client, admin_user):
    admin = Client()
    login_with_second_factor(admin, admin_user)

    assert viewer_client.post("/accounts/feed-tokens/", {"label": "Phone"}).status_code == 200
    assert admin.post("/accounts/feed-tokens/", {"label": "Laptop"}).status_code == 200
    assert FeedToken.objects.count() == 2


def test_it_refuses_a_token_to_a_user_who_may_not_read_plans(client, outsider):
    client.force_login(outsider)

    response = client.post("/accounts/feed-tokens/", {"label": "Phone"})

    assert response.status_code == 403
    assert not FeedToken.objects.exists()
    assert "Calendar feeds" not in client.get("/accounts/").content.decode()


def test_it_says_what_is_wrong_with_a_token_name(viewer_client):
    response = viewer_client.post("/accounts/feed-tokens/", {"label": "  "})

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not FeedToken.objects.exists()


def test_it_refuses_an_invisible_character_in_a_token_name(viewer_client):
    response = viewer_client.post("/accounts/feed-tokens/", {"label": "Outlook\u202eevil"})

    assert "Remove the invisible character U+202E" in response.content.decode()
    assert not FeedToken.objects.exists()


def test_it_limits_the_tokens_a_user_holds(viewer_client, viewer):
    for number in range(services.feeds.MAX_ACTIVE_TOKENS):
        new_token(viewer, f"Calendar {number}")

    response = viewer_client.post("/accounts/feed-tokens/", {"label": "One more"})

    assert response.status_code == 200
    assert "Revoke one you no longer use" in response.content.decode()
    assert FeedToken.objects.count() == services.feeds.MAX_ACTIVE_TOKENS


def test_it_revokes_a_token_from_the_account_page(viewer_client, viewer):
    site = make_location()
    made = services.feed_token_create(user=viewer, label="Old phone")

    response = viewer_client.post(f"/accounts/feed-tokens/{made.token.pk}/revoke/", follow=True)

    assert response.status_code == 200
    text = response.content.decode()
    assert "Token “Old phone” is revoked" in text
    assert f"{made.secret[:6]}…" not in text
    made.token.refresh_from_db()
    assert made.token.revoked_at is not None
    assert Client().get(site_url(made.secret, site)).status_code == 404


def test_it_revokes_only_the_users_own_tokens(viewer_client, dispatcher):
    theirs = services.feed_token_create(user=dispatcher, label="Dispatch desk")

    response = viewer_client.post(f"/accounts/feed-tokens/{theirs.token.pk}/revoke/")

    assert response.status_code == 404
    theirs.token.refresh_from_db()
    assert theirs.token.revoked_at is None


def test_it_makes_and_revokes_only_by_post_with_csrf(viewer, admin_user):
    made = services.feed_token_create(user=viewer, label="Phone")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(viewer)

    assert browser.get("/accounts/feed-tokens/").status_code == 405
    assert browser.get(f"/accounts/feed-tokens/{made.token.pk}/revoke/").status_code == 405
    assert browser.post("/accounts/feed-tokens/", {"label": "Sneaky"}).status_code == 403
    assert browser.post(f"/accounts/feed-tokens/{made.token.pk}/revoke/").status_code == 403
    assert FeedToken.objects.filter(revoked_at__isnull=True).count() == 1


def test_it_needs_a_login_to_make_a_token(client):
    response = client.post("/accounts/feed-tokens/", {"label": "Phone"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_feed_is_in_utc_when_the_plan_is(viewer, dispatcher):
    """A site on UTC needs no VTIMEZONE: its times carry Z."""
    site = make_location("XX-UTC-01", "UTC Yard", "UTC")
    plan = make_plan(user=dispatcher, location=site)

    response = Client().get(site_url(new_token(viewer), site))

    assert f"DTSTART:{plan.scheduled_start.astimezone(UTC):%Y%m%dT%H%M%SZ}" in (
        response.content.decode()
    )
    assert Calendar.from_ical(response.content).events
