"""Every page and action: the happy path, who may not, and what bad input does."""

import html
import json
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.test.html import Element, parse_html
from django.urls import set_script_prefix
from django.utils import timezone
from pytest_django.asserts import assertInHTML

from plans import selectors, services
from plans.mint.outcomes import Accepted, HealthResult, Rejected, Unavailable
from plans.models import DeliveryAttempt, Plan, PlanState, Submission
from tests.factories import deliver, make_location, make_plan
from tests.spec import PLAN_COMMON_FIELDS

NEXT_YEAR = timezone.now().year + 1
WINTER_DAY = date(NEXT_YEAR, 1, 15)


# --- helpers -------------------------------------------------------------------------------------


def settle(plan: Plan, user, outcome) -> Plan:
    """Submit ``plan`` and record MINT's answer for it, through the services the worker uses."""
    services.plan_submit(plan=plan, user=user)
    claimed = services.submissions_claim(worker="test-worker", limit=100)
    mine = [s for s in claimed if s.plan_id == plan.pk]
    others = [s for s in claimed if s.plan_id != plan.pk]
    services.submissions_release(submissions=others, worker="test-worker", reason="Not this one.")
    sent = services.SentMessage(submission=mine[0], outcome=outcome, started_at=timezone.now())
    services.submissions_record_outcomes(sent=[sent], worker="test-worker")
    plan.refresh_from_db()
    return plan


def accept(plan: Plan, user) -> Plan:
    return settle(plan, user, Accepted(http_status=200, duration_ms=12, body_sent="{}"))


def reject(plan: Plan, user, *messages: str) -> Plan:
    outcome = Rejected(http_status=400, duration_ms=12, body_sent="{}", messages=list(messages))
    return settle(plan, user, outcome)


def make_past_plan(*, user, **extra) -> Plan:
    """A plan a dispatcher made three days ago, whose window is now over."""
    earlier = timezone.now() - timedelta(days=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timezone, "now", lambda: earlier)
        return make_plan(user=user, **extra)


def day_text(day: date) -> str:
    """How the list writes a day: ``Fri 15 Jan``, with the year when it is not this one."""
    text = f"{day:%a} {day.day} {day:%b}"
    return f"{text} {day.year}" if day.year != timezone.now().year else text


def plan_at(*, user, start: datetime, hours: int = 3, **extra) -> Plan:
    return make_plan(
        user=user, scheduled_start=start, scheduled_end=start + timedelta(hours=hours), **extra
    )


def form_post(location, **changes) -> dict:
    data = {
        "location": str(location.pk),
        "start_date": WINTER_DAY.isoformat(),
        "start_local": "10:00",
        "end_local": "14:00",
        "target_kind": "range",
        "expected_range_km": "240",
        "average_consumption": "18.5",
        "expected_charge_kwh": "",
        "status_note": "",
        "action": "save",
    }
    data.update(changes)
    return data


def element_by_id(page: str, element_id: str) -> Element:
    stack = [parse_html(page)]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            continue
        if dict(node.attributes).get("id") == element_id:
            return node
        stack.extend(node.children)
    raise AssertionError(f"no element with id {element_id!r}")


def text_of(node) -> str:
    if isinstance(node, str):
        return node
    return " ".join(text_of(child) for child in node.children)


def json_body(page: str) -> dict:
    match = re.search(r'<pre class="json" tabindex="0">(.*?)</pre>', page, re.DOTALL)
    assert match, "no JSON body on the page"
    return json.loads(html.unescape(match.group(1)))


def listed_ids(response) -> list[int]:
    return [plan.pk for plan in response.context["plans"]]


@pytest.fixture
def brussels(db):
    return make_location()


@pytest.fixture
def newark(db):
    return make_location("US-EWR-03", "Newark Yard", "America/New_York")


@pytest.fixture
def plan(dispatcher, brussels) -> Plan:
    return make_plan(user=dispatcher, location=brussels)


@pytest.fixture
def outsider_client(client, outsider):
    client.force_login(outsider)
    return client


@pytest.fixture
def editor_client(client, db):
    """Someone who may create and edit plans but not send them to MINT."""
    user = User.objects.create_user(username="editor", password="editor-pass-123")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="plans", codename__in=["view_plan", "change_plan"]
        )
    )
    client.force_login(user)
    return client


# --- permissions for every view ------------------------------------------------------------------


READ_PAGES = [
    "/",
    "/plans/",
    "/plans/{pk}/",
    "/plans/{pk}/status/",
    "/mint-health/",
]
CHANGE_PAGES = ["/plans/new/", "/plans/{pk}/edit/"]
POST_ONLY = [
    "/plans/{pk}/submit/",
    "/plans/{pk}/retry/",
    "/plans/submit-selected/",
]


@pytest.mark.parametrize("url", READ_PAGES + CHANGE_PAGES)
def test_it_shows_an_outsider_403_on_every_page(outsider_client, plan, url):
    response = outsider_client.get(url.format(pk=plan.pk))

    assert response.status_code == 403
    assert "has no access to plans yet" in response.content.decode()


@pytest.mark.parametrize("url", READ_PAGES)
def test_it_lets_a_viewer_read(viewer_client, plan, url):
    assert viewer_client.get(url.format(pk=plan.pk)).status_code == 200


@pytest.mark.parametrize("url", CHANGE_PAGES)
def test_it_shows_a_viewer_403_on_the_form_pages(viewer_client, plan, url):
    response = viewer_client.get(url.format(pk=plan.pk))

    assert response.status_code == 403
    assert "can read plans but not make this change" in response.content.decode()


@pytest.mark.parametrize(
    "url", ["/plans/new/", "/plans/{pk}/edit/", *POST_ONLY], ids=lambda u: u.strip("/")
)
def test_it_refuses_every_change_from_a_viewer(viewer_client, dispatcher, brussels, url):
    draft = make_plan(user=dispatcher, location=brussels)
    rejected = reject(make_plan(user=dispatcher, location=brussels), dispatcher, "No.")
    target = rejected if url.endswith("/retry/") else draft
    before = (Plan.objects.count(), Submission.objects.count())
    data = {**form_post(brussels, expected_range_km="999"), "plan": [draft.pk]}

    response = viewer_client.post(url.format(pk=target.pk), data)

    assert response.status_code == 403
    assert (Plan.objects.count(), Submission.objects.count()) == before
    target.refresh_from_db()
    assert target.expected_range_km == 240
    assert target.state == (PlanState.REJECTED if target is rejected else PlanState.DRAFT)


@pytest.mark.parametrize("url", POST_ONLY, ids=lambda u: u.strip("/"))
def test_it_answers_405_to_a_get_on_an_action(dispatcher_client, plan, url):
    response = dispatcher_client.get(url.format(pk=plan.pk))

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    plan.refresh_from_db()
    assert plan.state == PlanState.DRAFT
    assert Plan.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/plans/{pk}/"),
        ("get", "/plans/{pk}/status/"),
        ("get", "/plans/{pk}/edit/"),
        ("get", "/plans/new/?copy={pk}"),
        ("post", "/plans/{pk}/submit/"),
        ("post", "/plans/{pk}/retry/"),
    ],
)
def test_it_answers_404_for_a_plan_that_does_not_exist(dispatcher_client, plan, method, url):
    response = getattr(dispatcher_client, method)(url.format(pk=plan.pk + 1000))

    assert response.status_code == 404


@pytest.mark.parametrize("url", ["/", "/plans/", "/mint-health/", "/plans/{pk}/status/"])
def test_it_refuses_a_post_to_a_read_page(dispatcher_client, plan, url):
    assert dispatcher_client.post(url.format(pk=plan.pk)).status_code == 405


# --- what a viewer sees --------------------------------------------------------------------------


def test_it_shows_a_viewer_no_new_plan_button_on_the_dashboard(client, viewer, dispatcher):
    client.force_login(dispatcher)
    dispatcher_page = client.get("/").content.decode()
    client.force_login(viewer)
    viewer_page = client.get("/").content.decode()

    assert "New plan" in dispatcher_page and 'href="/plans/new/"' in dispatcher_page
    assert "New plan" not in viewer_page
    assert 'href="/plans/new/"' not in viewer_page


def test_it_shows_a_viewer_no_buttons_or_checkboxes_on_the_list(client, viewer, dispatcher, plan):
    client.force_login(dispatcher)
    dispatcher_page = client.get("/plans/").content.decode()
    client.force_login(viewer)
    viewer_page = client.get("/plans/").content.decode()

    for text in ("New plan", "Submit selected", "Submit all 1 draft", f'id="select-{plan.pk}"'):
        assert text in dispatcher_page
        assert text not in viewer_page
    assert 'href="/plans/new/"' not in viewer_page


def test_it_gives_a_viewer_no_submit_form_on_the_list(viewer_client, plan):
    page = viewer_client.get("/plans/").content.decode()

    assert f'href="/plans/{plan.pk}/"' in page
    assert 'action="/plans/submit-selected/"' not in page
    assert 'name="page_drafts"' not in page


@pytest.mark.parametrize("state", ["draft", "rejected"])
def test_it_shows_a_viewer_no_action_on_the_plan_page(client, viewer, dispatcher, brussels, state):
    plan = make_plan(user=dispatcher, location=brussels)
    if state == "rejected":
        reject(plan, dispatcher, "expectedRange: too far.")
    expected = {
        f'href="/plans/{plan.pk}/edit/"': True,
        f'href="/plans/new/?copy={plan.pk}"': True,
        f'action="/plans/{plan.pk}/submit/"': state == "draft",
        f'action="/plans/{plan.pk}/retry/"': state == "rejected",
        "Submit to MINT": state == "draft",
        "Retry now": state == "rejected",
    }
    client.force_login(dispatcher)
    dispatcher_page = client.get(f"/plans/{plan.pk}/").content.decode()
    client.force_login(viewer)
    viewer_page = client.get(f"/plans/{plan.pk}/").content.decode()
    viewer_status = client.get(f"/plans/{plan.pk}/status/").content.decode()

    assert {text: text in dispatcher_page for text in expected} == expected
    for text in [*expected, ">Duplicate<", 'method="post" action="/plans/']:
        assert text not in viewer_page
        assert text not in viewer_status


# --- dashboard -----------------------------------------------------------------------------------


def test_it_counts_plans_by_state_on_the_dashboard(dispatcher_client, dispatcher, brussels):
    make_plan(user=dispatcher, location=brussels)
    make_plan(user=dispatcher, location=brussels)
    services.plan_submit(plan=make_plan(user=dispatcher, location=brussels), user=dispatcher)
    accept(make_plan(user=dispatcher, location=brussels), dispatcher)
    reject(make_plan(user=dispatcher, location=brussels), dispatcher, "No.")

    response = dispatcher_client.get("/")

    counts = {card["state"]: card["count"] for card in response.context["state_cards"]}
    assert counts == {
        "draft": 2,
        "queued": 1,
        "sending": 0,
        "retrying": 0,
        "accepted": 1,
        "rejected": 1,
        "failed": 0,
    }
    page = response.content.decode()
    shown = dict(
        re.findall(
            r'state-card-(\w+)[^"]*" href="[^"]*">\s*<span class="state-card-count">(\d+)<', page
        )
    )
    assert shown == {state: str(count) for state, count in counts.items()}
    assert "1 plan needs attention:" in page


def test_it_lists_only_plans_starting_in_the_next_24_hours(dispatcher_client, dispatcher, brussels):
    soon = make_plan(user=dispatcher, location=brussels, status_note="soon")
    later = plan_at(user=dispatcher, location=brussels, start=timezone.now() + timedelta(days=3))

    response = dispatcher_client.get("/")

    assert [p.pk for p in response.context["starting_soon"]] == [soon.pk]
    page = response.content.decode()
    assert f'href="/plans/{soon.pk}/"' in page
    assert f'href="/plans/{later.pk}/"' not in page


# --- plan list -----------------------------------------------------------------------------------


@pytest.fixture
def varied_plans(dispatcher, brussels, newark):
    """Plans at two sites, in several states, over three days; named by what sets them apart."""
    base = datetime.combine(WINTER_DAY, datetime.min.time(), tzinfo=UTC)
    plans = {
        "bru_day1_draft": plan_at(
            user=dispatcher, location=brussels, start=base + timedelta(hours=8)
        ),
        "ewr_day2_queued": plan_at(
            user=dispatcher,
            location=newark,
            start=base + timedelta(days=1, hours=15),
            kind="charge",
            status_note="bus 12 at gate B",
        ),
        "bru_day3_accepted": plan_at(
            user=dispatcher, location=brussels, start=base + timedelta(days=2, hours=6)
        ),
        "ewr_day1_rejected": plan_at(
            user=dispatcher, location=newark, start=base + timedelta(hours=14)
        ),
    }
    services.plan_submit(plan=plans["ewr_day2_queued"], user=dispatcher)
    accept(plans["bru_day3_accepted"], dispatcher)
    reject(plans["ewr_day1_rejected"], dispatcher, "No.")
    return plans


def test_it_lists_every_plan_sorted_by_start(dispatcher_client, varied_plans):
    response = dispatcher_client.get("/plans/")

    expected = sorted(varied_plans.values(), key=lambda p: p.scheduled_start)
    assert listed_ids(response) == [p.pk for p in expected]
    page = response.content.decode()
    positions = [page.index(f'href="/plans/{p.pk}/" title=') for p in expected]
    assert positions == sorted(positions)
    assert "4 found" in page


def test_it_draws_each_list_row_with_link_target_state_and_a_tick_box_for_drafts(
    client, dispatcher, viewer, brussels
):
    start = datetime.combine(WINTER_DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=8)
    draft = plan_at(user=dispatcher, location=brussels, start=start)
    accepted = accept(
        plan_at(user=dispatcher, location=brussels, start=start + timedelta(days=1), kind="charge"),
        dispatcher,
    )
    day = day_text(WINTER_DAY)
    next_day = WINTER_DAY + timedelta(days=1)
    cells = {
        draft: (
            f'<a href="/plans/{draft.pk}/" title="{WINTER_DAY.isoformat()} 08:00 – 11:00 UTC" '
            f'class="row-link">{day} 09:00 – 12:00 CET</a><br>'
            f'<span class="muted small">{WINTER_DAY.isoformat()} 08:00 – 11:00 UTC</span>',
            f"{draft.expected_range_km} km range at 18.5 kWh/100 km",
            "Draft",
        ),
        accepted: (
            f'<a href="/plans/{accepted.pk}/" title="{next_day.isoformat()} 08:00 – 11:00 UTC" '
            f'class="row-link">{day_text(next_day)} 09:00 – 12:00 CET</a>'
            f'<br><span class="muted small">{next_day.isoformat()} 08:00 – 11:00 UTC</span>',
            "60 kWh charge",
            "Accepted",
        ),
    }

    for user, can_submit in ((dispatcher, True), (viewer, False)):
        client.force_login(user)
        page = client.get("/plans/").content.decode()
        for plan, (when, target, label) in cells.items():
            tick = ""
            if can_submit:
                box = (
                    f'<input type="checkbox" name="plan" value="{plan.pk}" id="select-{plan.pk}" '
                    f'aria-label="Select plan {plan.pk}">'
                    if plan == draft
                    else ""
                )
                tick = f'<td class="col-check">{box}</td>'
            assertInHTML(
                f'<tr>{tick}<td class="num"><a href="/plans/{plan.pk}/">{plan.pk}</a></td>'
                '<td><span class="muted">—</span></td>'
                "<td>Brussels Depot<br>"
                '<span class="muted small">BE-BRU-01</span></td>'
                f"<td>{when}</td><td>{target}</td>"
                f'<td><span class="badge badge-{plan.state}">'
                f'<span class="badge-dot" aria-hidden="true"></span>{label}</span></td>'
                f'<td class="num">{plan.revision}</td></tr>',
                page,
            )


def test_it_escapes_what_dispatchers_typed_in_list_and_dashboard_rows(
    dispatcher_client, dispatcher
):
    site = make_location(
        mint_location_id="BE-<i>X</i>", name='<script>alert("x")</script> & Co', time_zone="UTC"
    )
    make_plan(user=dispatcher, location=site)

    for url in ("/plans/", "/"):
        page = dispatcher_client.get(url).content.decode()

        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in page
    assert "BE-&lt;i&gt;X&lt;/i&gt;" in dispatcher_client.get("/plans/").content.decode()


def test_it_links_rows_under_the_portals_path_prefix(dispatcher_client, dispatcher, brussels):
    """Deployed under a path (SCRIPT_NAME), row links carry it like every reversed URL."""
    plan = make_plan(user=dispatcher, location=brussels)

    set_script_prefix("/portal/")  # what the WSGI handler does; the test client does not
    try:
        pages = [dispatcher_client.get(url).content.decode() for url in ("/plans/", "/")]
    finally:
        set_script_prefix("/")

    for page in pages:
        assert f'<a href="/portal/plans/{plan.pk}/">{plan.pk}</a>' in page
        assert f'href="/plans/{plan.pk}/"' not in page


def test_it_shows_each_row_on_its_sites_clock_with_utc_beside(dispatcher_client, varied_plans):
    page = dispatcher_client.get("/plans/").content.decode()

    day1 = WINTER_DAY
    weekday = day_text(day1)
    assert f"{weekday} 09:00 – 12:00 CET" in page
    assert f"{weekday} 09:00 – 12:00 EST" in page
    assert f"{day1.isoformat()} 08:00 – 11:00 UTC" in page
    assert f"{day1.isoformat()} 14:00 – 17:00 UTC" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("site={newark}", ["ewr_day1_rejected", "ewr_day2_queued"]),
        ("state=queued", ["ewr_day2_queued"]),
        ("delivery=failed", ["ewr_day1_rejected"]),
        ("delivery=pending", ["ewr_day2_queued"]),
        ("delivery=delivered", ["bru_day3_accepted"]),
        ("day={day2}", ["ewr_day2_queued"]),
        ("day={day1}", ["bru_day1_draft", "ewr_day1_rejected"]),
        ("q=gate+b", ["ewr_day2_queued"]),
        ("q=brussels", ["bru_day1_draft", "bru_day3_accepted"]),
        ("q=US-EWR", ["ewr_day1_rejected", "ewr_day2_queued"]),
        ("q={queued_transaction}", ["ewr_day2_queued"]),
        ("site={newark}&state=rejected", ["ewr_day1_rejected"]),
    ],
)
def test_it_filters_the_list(dispatcher_client, varied_plans, newark, query, expected):
    url = "/plans/?" + query.format(
        newark=newark.pk,
        day1=WINTER_DAY.isoformat(),
        day2=(WINTER_DAY + timedelta(days=1)).isoformat(),
        queued_transaction=varied_plans["ewr_day2_queued"].transaction_id,
    )

    response = dispatcher_client.get(url)

    assert listed_ids(response) == [varied_plans[name].pk for name in expected]
    assert "Clear filters" in response.content.decode()


def test_it_finds_a_plan_by_its_number(dispatcher_client, dispatcher):
    site = make_location("BE-BRU-A", "Brussels Depot")
    plans = [make_plan(user=dispatcher, location=site) for _ in range(12)]
    wanted = plans[10]

    response = dispatcher_client.get(f"/plans/?q={wanted.pk}")

    assert listed_ids(response) == [wanted.pk]


def test_it_says_so_when_no_plan_matches(dispatcher_client, varied_plans):
    response = dispatcher_client.get("/plans/?q=nothing-like-this")

    assert listed_ids(response) == []
    assert "No plans match these filters." in response.content.decode()


def test_it_reads_a_day_on_the_chosen_sites_clock_and_in_utc_without_a_site(
    dispatcher_client, dispatcher
):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    newark = make_location("US-EWR-03", "Newark Yard", "America/New_York")
    new_york = ZoneInfo("America/New_York")
    # 20:00-23:30 on Mon 30 Nov in Newark: 01:00-04:30 UTC on Tue 1 Dec.
    evening = make_plan(
        user=dispatcher,
        location=newark,
        scheduled_start=datetime(2026, 11, 30, 20, 0, tzinfo=new_york),
        scheduled_end=datetime(2026, 11, 30, 23, 30, tzinfo=new_york),
    )
    next_day = make_plan(
        user=dispatcher,
        location=newark,
        scheduled_start=datetime(2026, 12, 1, 20, 0, tzinfo=new_york),
        scheduled_end=datetime(2026, 12, 1, 23, 0, tzinfo=new_york),
    )

    on_site_clock = dispatcher_client.get(f"/plans/?site={newark.pk}&day=2026-11-30")
    in_utc = dispatcher_client.get("/plans/?day=2026-12-01")

    assert listed_ids(on_site_clock) == [evening.pk]
    assert listed_ids(in_utc) == [evening.pk]
    assert next_day.pk not in listed_ids(in_utc)
    assert "On the chosen site&#x27;s clock" in on_site_clock.content.decode()


def test_it_refuses_a_day_at_the_end_of_the_calendar_instead_of_failing(dispatcher_client, plan):
    response = dispatcher_client.get("/plans/?day=9999-12-31")

    assert response.status_code == 200
    assert listed_ids(response) == []
    error = text_of(element_by_id(response.content.decode(), "id_day_error"))
    assert error == "Error: Choose a day between 1970-01-01 and 9998-12-31."


def test_it_shows_no_plans_for_a_filter_it_cannot_read_and_says_which(
    dispatcher_client, varied_plans
):
    response = dispatcher_client.get("/plans/?state=lost&day=tuesday&site=99999")

    assert listed_ids(response) == []
    page = response.content.decode()
    assert "No plans shown: a filter above cannot be read." in page
    assert "Submit all" not in page
    errors = {
        name: text_of(element_by_id(page, f"id_{name}_error")) for name in ("state", "day", "site")
    }
    assert errors == {
        "state": "Error: There is no such state; choose one from the list.",
        "day": "Error: Enter a valid date.",
        "site": "Error: There is no such site; choose one from the list.",
    }


def _link(page: str, rel: str) -> str:
    match = re.search(rf'href="\?([^"]*)" rel="{rel}"', page)
    assert match, f"no {rel} link"
    return "?" + match.group(1).replace("&amp;", "&")


def test_it_pages_the_list_fifty_at_a_time_by_start(dispatcher_client, dispatcher, brussels):
    base = timezone.now() + timedelta(days=1)
    plans = [
        plan_at(user=dispatcher, location=brussels, start=base + timedelta(minutes=n))
        for n in range(51)
    ]

    first = dispatcher_client.get("/plans/")
    second = dispatcher_client.get("/plans/" + _link(first.content.decode(), "next"))
    back = dispatcher_client.get("/plans/" + _link(second.content.decode(), "prev"))

    assert listed_ids(first) == [p.pk for p in plans[:50]]
    assert listed_ids(second) == [plans[50].pk]
    assert listed_ids(back) == [p.pk for p in plans[:50]]
    assert "51 found" in first.content.decode()
    assert 'rel="prev"' not in first.content.decode()
    assert 'rel="next"' not in second.content.decode()


def test_it_pages_plans_with_the_same_start_without_losing_any(
    dispatcher_client, dispatcher, brussels
):
    start = timezone.now() + timedelta(days=1)
    plans = [plan_at(user=dispatcher, location=brussels, start=start) for _ in range(55)]

    first = dispatcher_client.get("/plans/")
    second = dispatcher_client.get("/plans/" + _link(first.content.decode(), "next"))

    assert listed_ids(first) + listed_ids(second) == sorted(p.pk for p in plans)


def test_it_shows_the_way_back_from_a_page_past_the_last_plan(dispatcher_client, plan):
    """ "From now" then "Earlier plans" with nothing earlier: not "No plans yet", and not stuck."""
    for url, direction in (
        ("/plans/?after=99991231T235959.999999Z_1", "later"),
        ("/plans/?state=draft&before=19700101T000000.000000Z_0", "earlier"),
    ):
        response = dispatcher_client.get(url)
        page = response.content.decode()

        assert listed_ids(response) == []
        assert f"No {direction} plans" in page
        assert "No plans yet" not in page
        first = "?state=draft" if "state=draft" in url else "?"
        assert f'href="{first}">Back to the first plans</a>' in page
        cursor = url.split("=")[-1]
        if direction == "later":  # the plans just before the cursor, not the same empty page
            assert f'href="?before={cursor}">‹ Earlier plans</a>' in page
        else:
            assert f'href="?state=draft&amp;after={cursor}">Later plans ›</a>' in page
        assert dispatcher_client.get("/plans/" + first).context["plans"][0].pk == plan.pk


def test_it_keeps_the_filters_when_paging(dispatcher_client, dispatcher, brussels):
    base = timezone.now() + timedelta(days=1)
    for n in range(51):
        plan_at(user=dispatcher, location=brussels, start=base + timedelta(minutes=n))

    page = dispatcher_client.get("/plans/?state=draft").content.decode()

    assert _link(page, "next").startswith("?state=draft&after=")


def test_it_jumps_to_the_plans_starting_from_now(dispatcher_client, dispatcher, brussels):
    now = timezone.now()
    running = plan_at(user=dispatcher, location=brussels, start=now - timedelta(hours=1))
    coming = plan_at(user=dispatcher, location=brussels, start=now + timedelta(hours=1))

    page = dispatcher_client.get("/plans/").content.decode()
    from_now = re.search(r'href="\?([^"]*)">From now', page).group(1).replace("&amp;", "&")
    response = dispatcher_client.get("/plans/?" + from_now)

    assert listed_ids(response) == [coming.pk]
    assert running.pk in listed_ids(dispatcher_client.get("/plans/"))


def test_it_says_over_a_thousand_instead_of_counting_every_plan(
    dispatcher_client, dispatcher, brussels, monkeypatch
):
    monkeypatch.setattr("plans.selectors.COUNT_LIMIT", 3)
    for n in range(5):
        plan_at(user=dispatcher, location=brussels, start=timezone.now() + timedelta(hours=n + 1))

    page = dispatcher_client.get("/plans/").content.decode()

    assert "over 3 found" in page
    assert len(listed_ids(dispatcher_client.get("/plans/"))) == 5


# --- query counts --------------------------------------------------------------------------------


def _many_plans(user, count: int) -> None:
    sites = [make_location(), make_location("US-EWR-03", "Newark Yard", "America/New_York")]
    for n in range(count):
        plan = make_plan(user=user, location=sites[n % 2], kind=("range", "charge")[n % 3 == 0])
        if n % 4 == 1:
            services.plan_submit(plan=plan, user=user)
        elif n % 4 == 2:
            accept(plan, user)


@pytest.mark.parametrize("count", [3, 30])
def test_it_lists_plans_in_a_fixed_number_of_queries(
    dispatcher_client, dispatcher, django_assert_num_queries, count
):
    _many_plans(dispatcher, count)
    dispatcher_client.get("/plans/")  # the login's first request also stamps the session

    with django_assert_num_queries(LIST_QUERIES):
        response = dispatcher_client.get("/plans/")

    assert len(listed_ids(response)) == count


@pytest.mark.parametrize("count", [3, 30])
def test_it_shows_the_dashboard_in_a_fixed_number_of_queries(
    dispatcher_client, dispatcher, django_assert_num_queries, count
):
    _many_plans(dispatcher, count)
    dispatcher_client.get("/")  # the login's first request also stamps the session

    with django_assert_num_queries(DASHBOARD_QUERIES):
        response = dispatcher_client.get("/")

    assert sum(card["count"] for card in response.context["state_cards"]) == count


#: Every request: session, user, the user's two permission sets, MINT status and worker heartbeat
#: (header) = 6; the session is written at most once a minute, not on every request.
#: The list adds: count, one page of plans with their sites, the site filter's choices.
LIST_QUERIES = 9
#: The dashboard adds: counts by state, plans starting soon, last hour's attempts, queue depth.
DASHBOARD_QUERIES = 10


# --- create --------------------------------------------------------------------------------------


def test_it_shows_an_empty_form_with_the_active_sites(dispatcher_client, brussels, db):
    make_location("NL-AMS-04", "Amsterdam Pier (closed)", "Europe/Amsterdam", is_active=False)

    response = dispatcher_client.get("/plans/new/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Brussels Depot · BE-BRU-01 · Europe/Brussels" in page
    assert "Amsterdam Pier" not in page
    zones = json.loads(text_of(element_by_id(page, "site-zones")))
    assert zones == {str(brussels.pk): "Europe/Brussels"}
    assert "Save and submit" in page


def test_it_creates_a_draft(dispatcher_client, dispatcher, brussels):
    response = dispatcher_client.post("/plans/new/", form_post(brussels, status_note="bus 7"))

    plan = Plan.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/plans/{plan.pk}/"
    assert (plan.state, plan.revision, plan.created_by) == (PlanState.DRAFT, 1, dispatcher)
    assert plan.scheduled_start == datetime(NEXT_YEAR, 1, 15, 9, tzinfo=UTC)
    assert (plan.expected_range_km, str(plan.average_consumption)) == (240, "18.50")
    assert plan.status_note == "bus 7"
    assert not Submission.objects.exists()
    page = dispatcher_client.get(response["Location"]).content.decode()
    assert f"Plan {plan.pk} saved as a draft (revision 1)." in page


def test_it_queues_the_plan_on_save_and_submit(dispatcher_client, dispatcher, brussels):
    response = dispatcher_client.post(
        "/plans/new/", form_post(brussels, action="submit"), follow=True
    )

    plan = Plan.objects.get()
    submission = Submission.objects.get()
    assert (plan.state, submission.plan, submission.state) == ("queued", plan, "queued")
    assert submission.created_by == dispatcher
    assert "queued for delivery to MINT (revision 1)" in response.content.decode()


def test_it_saves_nothing_when_someone_who_may_not_submit_presses_save_and_submit(
    editor_client, brussels
):
    form_page = editor_client.get("/plans/new/").content.decode()

    response = editor_client.post("/plans/new/", form_post(brussels, action="submit"))

    assert "Save and submit" not in form_page
    assert response.status_code == 403
    assert not Plan.objects.exists()


def test_it_saves_nothing_for_an_invalid_form_and_shows_errors_next_to_fields(
    dispatcher_client, brussels
):
    data = form_post(
        brussels, expected_charge_kwh="60", end_local=f"{WINTER_DAY.isoformat()} 09:00"
    )

    response = dispatcher_client.post("/plans/new/", data)

    assert response.status_code == 200
    assert not Plan.objects.exists()
    page = response.content.decode()
    end_field = text_of(element_by_id(page, "field-end_local"))
    charge_field = text_of(element_by_id(page, "field-expected_charge_kwh"))
    range_field = text_of(element_by_id(page, "field-expected_range_km"))
    assert "Error: The end must be after the start." in end_field
    assert "Error: Charge is only for a charge plan; clear it or choose Charge." in charge_field
    assert "Error:" not in range_field
    assert "Check the plan: 2 problems" in page
    assert f'value="{WINTER_DAY.isoformat()}"' in page
    assert 'value="10:00"' in page
    assert 'value="60"' in page
    assert (
        'aria-describedby="id_end_local_error id_end_local_utc id_end_local_day '
        'id_end_local_helptext"'
    ) in page


def test_it_shows_the_service_refusing_a_closed_site_next_to_the_site(
    dispatcher_client, dispatcher, brussels
):
    plan = make_plan(user=dispatcher, location=brussels)
    brussels.is_active = False
    brussels.save()

    response = dispatcher_client.post(f"/plans/{plan.pk}/edit/", form_post(brussels))

    assert response.status_code == 200
    field = text_of(element_by_id(response.content.decode(), "field-location"))
    assert "Brussels Depot is not active; choose another site." in field
    assert plan.events.count() == 1


def test_it_prefills_a_copy_of_a_plan(dispatcher_client, dispatcher, newark):
    original = plan_at(
        user=dispatcher,
        location=newark,
        start=datetime(NEXT_YEAR, 1, 15, 15, tzinfo=UTC),
        kind="charge",
    )

    page = dispatcher_client.get(f"/plans/new/?copy={original.pk}").content.decode()

    assert f'A copy of <a href="/plans/{original.pk}/">plan {original.pk}</a>' in page
    assert f'name="start_date" value="{WINTER_DAY.isoformat()}"' in page
    assert 'name="start_local" value="10:00"' in page
    assert 'name="end_local" value="13:00"' in page
    assert 'value="60"' in page
    assert Plan.objects.count() == 1


# --- edit ----------------------------------------------------------------------------------------


def test_it_edits_a_draft_in_place(dispatcher_client, dispatcher, brussels, plan):
    response = dispatcher_client.post(
        f"/plans/{plan.pk}/edit/", form_post(brussels, expected_range_km="300")
    )

    plan.refresh_from_db()
    assert response["Location"] == f"/plans/{plan.pk}/"
    assert (plan.expected_range_km, plan.revision, plan.state) == (300, 1, PlanState.DRAFT)


def test_it_makes_revision_2_when_an_accepted_plan_is_edited(
    dispatcher_client, dispatcher, brussels, plan
):
    accept(plan, dispatcher)
    form_page = dispatcher_client.get(f"/plans/{plan.pk}/edit/").content.decode()

    response = dispatcher_client.post(
        f"/plans/{plan.pk}/edit/", form_post(brussels, expected_range_km="300"), follow=True
    )

    plan.refresh_from_db()
    assert "Saving makes revision 2." in form_page
    assert "Save and submit revision 2" in form_page
    assert (plan.revision, plan.state, plan.expected_range_km) == (2, PlanState.DRAFT, 300)
    assert f"Plan {plan.pk} saved as a draft (revision 2)." in response.content.decode()
    assert Submission.objects.get().revision == 1


def test_it_prefills_the_edit_form_on_the_sites_clock(dispatcher_client, dispatcher, newark):
    plan = plan_at(
        user=dispatcher, location=newark, start=datetime(NEXT_YEAR, 1, 16, 3, tzinfo=UTC)
    )

    page = dispatcher_client.get(f"/plans/{plan.pk}/edit/").content.decode()

    assert f'name="start_date" value="{WINTER_DAY.isoformat()}"' in page
    assert 'name="start_local" value="22:00"' in page
    assert 'name="end_local" value="01:00"' in page  # earlier than the start: the next day
    next_day = WINTER_DAY + timedelta(days=1)
    assert text_of(element_by_id(page, "id_end_local_day")) == (
        f"Ends the next day: {next_day:%a} {next_day.day} {next_day:%b} 01:00 EST"
    )


def test_it_shows_mints_messages_next_to_the_fields_when_editing_a_rejected_plan(
    dispatcher_client, dispatcher, plan
):
    reject(
        plan,
        dispatcher,
        "expectedRange: too far for this site.",
        "Use either expectedRange or expectedCharge, not both.",
    )

    page = dispatcher_client.get(f"/plans/{plan.pk}/edit/").content.decode()

    range_field = text_of(element_by_id(page, "field-expected_range_km"))
    assert "MINT rejected: expectedRange: too far for this site." in range_field
    assert "MINT rejected" not in text_of(element_by_id(page, "field-expected_charge_kwh"))
    assert "MINT rejected the last message for this plan" in page
    assert (
        '<span class="error-label">MINT rejected:</span> '
        "Use either expectedRange or expectedCharge, not both."
    ) in page


def test_it_refuses_to_edit_a_plan_that_is_being_sent(
    dispatcher_client, dispatcher, brussels, plan
):
    services.plan_submit(plan=plan, user=dispatcher)
    services.submissions_claim(worker="busy", limit=1)
    form_page = dispatcher_client.get(f"/plans/{plan.pk}/edit/").content.decode()

    response = dispatcher_client.post(
        f"/plans/{plan.pk}/edit/", form_post(brussels, expected_range_km="300"), follow=True
    )

    plan.refresh_from_db()
    assert "Being sent right now." in form_page
    assert (plan.state, plan.expected_range_km) == (PlanState.SENDING, 240)
    assert "being sent to MINT right now" in response.content.decode()


def test_it_keeps_the_plan_unchanged_on_an_invalid_edit(dispatcher_client, brussels, plan):
    response = dispatcher_client.post(
        f"/plans/{plan.pk}/edit/", form_post(brussels, expected_range_km="0")
    )

    plan.refresh_from_db()
    assert response.status_code == 200
    assert plan.expected_range_km == 240
    field = text_of(element_by_id(response.content.decode(), "field-expected_range_km"))
    assert "The range must be above 0 km." in field


# --- duplicate, submit, retry --------------------------------------------------------------------


def test_it_duplicates_a_plan_through_a_prefilled_form_that_saves_a_new_draft(
    dispatcher_client, dispatcher, plan
):
    accept(plan, dispatcher)
    detail = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()
    assert f'<a class="button" href="/plans/new/?copy={plan.pk}">Duplicate</a>' in detail

    form = dispatcher_client.get(f"/plans/new/?copy={plan.pk}")
    assert Plan.objects.count() == 1  # opening the copy saves nothing
    assert form.context["form"].initial["expected_range_km"] == plan.expected_range_km
    initial = form.context["form"].initial
    data = {
        "location": str(initial["location"].pk),
        # The copy is for the next day (an unchanged copy is the same plan: a guard warns).
        "start_date": f"{initial['start_date'] + timedelta(days=1):%Y-%m-%d}",
        "start_local": f"{initial['start_local']:%H:%M}",
        "end_local": initial["end_local"],
        "target_kind": initial["target_kind"],
        "expected_range_km": str(initial["expected_range_km"]),
        "average_consumption": str(initial["average_consumption"]),
        "expected_charge_kwh": "",
        "status_note": initial["status_note"],
    }
    response = dispatcher_client.post(f"/plans/new/?copy={plan.pk}", {**data, "action": "save"})

    copy = Plan.objects.exclude(pk=plan.pk).get()
    assert response["Location"] == f"/plans/{copy.pk}/"
    assert copy.state == PlanState.DRAFT
    assert copy.transaction_id != plan.transaction_id
    assert (copy.location, copy.scheduled_start, copy.expected_range_km) == (
        plan.location,
        plan.scheduled_start.replace(second=0) + timedelta(days=1),  # the form is to the minute
        plan.expected_range_km,
    )
    assert copy.events.get().reason == f"Copied from plan {plan.pk}."


def test_it_asks_for_new_times_when_the_copied_window_is_over(dispatcher_client, dispatcher):
    old = make_past_plan(user=dispatcher)

    page = dispatcher_client.get(f"/plans/new/?copy={old.pk}").content.decode()

    assert Plan.objects.count() == 1
    assert f'A copy of <a href="/plans/{old.pk}/">plan {old.pk}</a>' in page
    assert "Its window is over: choose new times." in page


def test_it_submits_a_draft(dispatcher_client, dispatcher, plan):
    response = dispatcher_client.post(f"/plans/{plan.pk}/submit/", follow=True)

    plan.refresh_from_db()
    assert plan.state == PlanState.QUEUED
    assert Submission.objects.get().plan == plan
    assert f"Plan {plan.pk} queued for delivery to MINT." in response.content.decode()


def test_it_says_why_a_plan_that_is_not_a_draft_cannot_be_submitted(
    dispatcher_client, dispatcher, plan
):
    accept(plan, dispatcher)

    response = dispatcher_client.post(f"/plans/{plan.pk}/submit/", follow=True)

    assert Submission.objects.count() == 1
    assert "Only drafts can be submitted; this plan is accepted." in response.content.decode()


def test_it_says_why_a_plan_whose_window_is_over_cannot_be_submitted(dispatcher_client, dispatcher):
    old = make_past_plan(user=dispatcher)

    response = dispatcher_client.post(f"/plans/{old.pk}/submit/", follow=True)

    assert not Submission.objects.exists()
    assert f"Plan {old.pk} was not submitted: This window has already ended" in (
        response.content.decode()
    )


def test_it_retries_a_rejected_plan_with_the_same_message(dispatcher_client, dispatcher, plan):
    reject(plan, dispatcher, "No.")
    submission = Submission.objects.get()

    response = dispatcher_client.post(f"/plans/{plan.pk}/retry/", follow=True)

    plan.refresh_from_db()
    submission.refresh_from_db()
    assert plan.state == PlanState.QUEUED
    assert (submission.state, submission.next_trigger) == ("queued", "manual")
    assert f"message {submission.message_id} will be sent again now" in (response.content.decode())


def test_it_says_why_a_draft_cannot_be_retried(dispatcher_client, plan):
    response = dispatcher_client.post(f"/plans/{plan.pk}/retry/", follow=True)

    plan.refresh_from_db()
    assert plan.state == PlanState.DRAFT
    assert "Only failed, rejected or retrying plans can be retried" in response.content.decode()


# --- submit selected -----------------------------------------------------------------------------


def test_it_submits_the_ticked_drafts_and_reports_the_rest(dispatcher_client, dispatcher, brussels):
    first, second, untouched = (make_plan(user=dispatcher, location=brussels) for _ in range(3))
    accepted = accept(make_plan(user=dispatcher, location=brussels), dispatcher)

    response = dispatcher_client.post(
        "/plans/submit-selected/",
        {"action": "selected", "plan": [first.pk, second.pk, accepted.pk]},
        follow=True,
    )

    states = {p.pk: p.state for p in Plan.objects.all()}
    assert states == {
        first.pk: "queued",
        second.pk: "queued",
        untouched.pk: "draft",
        accepted.pk: "accepted",
    }
    page = response.content.decode()
    assert response.redirect_chain == [("/plans/", 302)]
    assert "2 plans queued for delivery to MINT." in page
    assert f"Plan {accepted.pk}: Only drafts can be submitted" in page


def test_it_submits_every_draft_on_the_page(dispatcher_client, dispatcher, brussels):
    drafts = [make_plan(user=dispatcher, location=brussels) for _ in range(2)]

    dispatcher_client.post(
        "/plans/submit-selected/",
        {"action": "all", "page_drafts": [p.pk for p in drafts], "next": "/plans/?state=draft"},
    )

    assert sorted(Submission.objects.values_list("plan_id", flat=True)) == [p.pk for p in drafts]


def test_it_asks_to_tick_drafts_when_none_are(dispatcher_client, plan):
    response = dispatcher_client.post(
        "/plans/submit-selected/", {"action": "selected", "plan": ["x"]}, follow=True
    )

    assert not Submission.objects.exists()
    assert "Tick the drafts to submit first." in response.content.decode()


@pytest.mark.parametrize(
    ("next_url", "lands_on"),
    [
        ("/plans/?state=draft", "/plans/?state=draft"),
        ("https://evil.example/phish", "/plans/"),
        ("//evil.example/", "/plans/"),
    ],
)
def test_it_goes_back_only_to_a_page_of_the_portal(dispatcher_client, plan, next_url, lands_on):
    response = dispatcher_client.post(
        "/plans/submit-selected/", {"action": "selected", "plan": [plan.pk], "next": next_url}
    )

    assert response["Location"] == lands_on


# --- plan page and its live part -----------------------------------------------------------------


def test_it_shows_the_json_body_a_draft_would_send(dispatcher_client, dispatcher, plan):
    page = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()

    body = json_body(page)
    assert list(body) == [*PLAN_COMMON_FIELDS, "expectedRange", "averageConsumption"]
    assert body["messageId"] == body["timestamp"] == "(assigned at submit)"
    assert body["locationId"] == "BE-BRU-01"
    assert body["transactionId"] == str(plan.transaction_id)
    assert body["status"] == f"mintportal plan {plan.pk} rev 1 by dispatcher"
    assert body["scheduledStartTime"] == plan.scheduled_start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (body["expectedRange"], body["averageConsumption"]) == (240, 18.5)
    assert "JSON body preview" in page


def test_it_shows_the_json_body_that_was_sent(dispatcher_client, dispatcher, brussels):
    plan = make_plan(user=dispatcher, location=brussels, kind="charge", status_note="gate B")
    accept(plan, dispatcher)
    submission = Submission.objects.get()

    page = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()

    body = json_body(page)
    assert list(body) == [*PLAN_COMMON_FIELDS, "expectedCharge"]
    assert body == json.loads(submission.body)
    assert body["messageId"] == str(submission.message_id)
    assert body["status"] == "gate B"
    assert "JSON body of revision 1" in page
    assert "MINT accepted revision 1" in page


def test_it_shows_the_plan_on_its_sites_clock(dispatcher_client, dispatcher, newark):
    plan = plan_at(
        user=dispatcher,
        location=newark,
        start=datetime(NEXT_YEAR, 1, 15, 15, tzinfo=UTC),
        kind="charge",
    )

    page = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()

    assert f"{WINTER_DAY:%a} 15 Jan {NEXT_YEAR}, 10:00 EST" in page
    assert f"{NEXT_YEAR}-01-15 15:00 UTC" in page


def test_it_shows_mints_rejection_on_the_plan_page(dispatcher_client, dispatcher, plan):
    reject(plan, dispatcher, "expectedRange: too far for this site.")

    page = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()

    bar = text_of(element_by_id(page, "plan-status-bar"))
    assert "MINT rejected: expectedRange: too far for this site." in bar
    assert 'data-final="true"' in page


def test_it_serves_the_live_part_of_a_plan_uncached(dispatcher_client, dispatcher, plan):
    services.plan_submit(plan=plan, user=dispatcher)

    response = dispatcher_client.get(f"/plans/{plan.pk}/status/")

    page = response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert 'id="plan-live" data-final="false"' in page
    assert "Waiting: no delivery worker is running" in page  # none beats in this test
    assert "<html" not in page
    assert {"plan-status-bar", "plan-activity"} <= set(re.findall(r'id="(plan-[a-z-]+)"', page))


# --- plan page: a message's retries folded into one entry ----------------------------------------


def next_local(hour: int, minute: int, zone: str = "Europe/Brussels") -> datetime:
    """The next time the site's clock reads ``hour:minute``, at least a minute from now."""
    now = timezone.now().astimezone(ZoneInfo(zone))
    wall = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if wall < now + timedelta(minutes=1):
        wall = (now + timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return wall.astimezone(UTC)


def unavailable(status: int | None = 503) -> Unavailable:
    return Unavailable(http_status=status, duration_ms=30, body_sent="{}", error="MINT is down.")


def test_it_folds_a_messages_retries_into_one_entry_with_every_attempt_behind_it(
    dispatcher_client, dispatcher, plan
):
    first = next_local(21, 2)
    deliver(
        plan,
        dispatcher,
        *[unavailable()] * 7,
        at=[first + timedelta(minutes=2 * n) for n in range(7)],
    )
    submission = plan.submissions.get()
    zone = first.astimezone(ZoneInfo("Europe/Brussels")).tzname()

    page = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()

    summary = f"7 attempts, 21:02–21:14 {zone}, all 503"
    [run_id] = re.findall(r'<details id="(delivery-run-\d+)">', page)
    run = element_by_id(page, run_id)
    assert summary in text_of(run)
    assert len(re.findall("Picked up for sending", str(run))) == 7
    assert len(re.findall("MINT is down. Next attempt in", str(run))) == 7
    attempts = element_by_id(page, f"message-{submission.pk}-attempts")
    assert summary in text_of(attempts)
    assert str(attempts).count('class="attempt-row"') == 7
    history = text_of(element_by_id(page, "plan-activity"))
    assert history.count("Picked up for sending") == 7  # all behind the one entry
    assert "Submitted" in history and "Created" in history  # a person's rows stay apart


def test_it_lists_each_outcome_of_a_run_that_ended_differently(dispatcher_client, dispatcher, plan):
    first = next_local(21, 2)
    at = [first, first + timedelta(minutes=1), first + timedelta(minutes=3)]
    deliver(plan, dispatcher, unavailable(), unavailable(), Accepted(200, 12, "{}"), at=at)
    zone = first.astimezone(ZoneInfo("Europe/Brussels")).tzname()

    page = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()

    assert page.count(f"3 attempts, 21:02–21:05 {zone}: 503, 503, accepted") == 2


def test_it_leaves_a_message_sent_once_as_it_was(dispatcher_client, dispatcher, plan):
    accept(plan, dispatcher)

    page = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()

    assert "delivery-run-" not in page
    assert 'id="message-' not in page
    assert page.count('class="attempt-row"') == 1
    assert "Picked up for sending" in page
    assert "MINT accepted message" in page


def test_it_sums_up_attempts_on_the_sites_clock_counting_three_alike_or_more():
    start = datetime(NEXT_YEAR, 1, 15, 22, 58, tzinfo=UTC)  # 23:58 CET
    outcomes = [(503,) * 1] * 4 + [(None,), (200,)]
    attempts = [
        DeliveryAttempt(
            started_at=start + timedelta(minutes=n),
            outcome="accepted" if status == 200 else "unavailable",
            http_status=status,
        )
        for n, (status,) in enumerate(outcomes)
    ]

    text = selectors.attempts_summary(attempts, zone="Europe/Brussels")

    assert text == (
        f"6 attempts, {WINTER_DAY:%a} 15 Jan 23:58 – {WINTER_DAY + timedelta(days=1):%a} 16 Jan "
        "00:03 CET: 503 ×4, no answer, accepted"
    )


@pytest.mark.parametrize("attempts", [1, 7])
def test_it_shows_the_plan_page_in_a_fixed_number_of_queries(
    dispatcher_client, dispatcher, plan, django_assert_num_queries, attempts
):
    deliver(plan, dispatcher, *[unavailable()] * attempts)
    dispatcher_client.get(f"/plans/{plan.pk}/")  # the login's first request also stamps the session

    with django_assert_num_queries(DETAIL_QUERIES):
        dispatcher_client.get(f"/plans/{plan.pk}/")


#: Every request's 6 (see LIST_QUERIES) and the plan with its site, vehicle and people, its
#: history rows, its messages, their attempts.
DETAIL_QUERIES = 10


# --- MINT health: the header widget and the load balancer's probe --------------------------------


def test_it_serves_the_health_widget_uncached(dispatcher_client):
    before = dispatcher_client.get("/mint-health/")
    services.health_record(result=HealthResult(up=True, http_status=200, latency_ms=42))
    after = dispatcher_client.get("/mint-health/")

    assert "no-store" in before["Cache-Control"] and "no-store" in after["Cache-Control"]
    widget = text_of(element_by_id(before.content.decode(), "health-widget"))
    assert "MINT unknown" in widget and "not checked yet" in widget
    widget = text_of(element_by_id(after.content.decode(), "health-widget"))
    assert "MINT up" in widget and "42 ms" in widget
    assert "<html" not in after.content.decode()


def test_it_says_on_every_page_that_mint_api_url_cannot_be_used(dispatcher_client, settings):
    """Workers refuse to start with such a URL (plans.E001), so the page reads the settings."""
    settings.MINT_API_URL = "mint.example/api/v1.0"

    for url in ("/", "/plans/", "/mint-health/"):
        page = dispatcher_client.get(url).content.decode()

        banner = text_of(element_by_id(page, "worker-banner"))
        assert (
            "MINT_API_URL cannot be used: 'mint.example/api/v1.0' has no scheme (https://). "
            "Write it as https://<host>/api/v1.0." in banner
        )
        assert "MINT address unusable" in text_of(element_by_id(page, "health-widget"))


def test_it_shows_a_fault_a_worker_found_until_a_worker_sees_it_gone(dispatcher_client):
    services.health_record(result=HealthResult(up=True, http_status=200, latency_ms=5))
    services.mint_problem_record(kind="credentials", text="MINT refuses the portal's credentials")
    found = dispatcher_client.get("/").content.decode()
    services.mint_problem_record(kind="", text="")
    gone = dispatcher_client.get("/").content.decode()

    assert "MINT refuses our credentials" in text_of(element_by_id(found, "health-widget"))
    banner = text_of(element_by_id(found, "worker-banner"))
    assert "MINT refuses the portal's credentials." in banner
    assert "first seen 0 s ago" in banner
    assert "MINT refuses" in text_of(element_by_id(found, "operations-panel"))
    assert "MINT up" in text_of(element_by_id(gone, "health-widget"))
    assert "MINT refuses" not in gone


def test_it_shows_what_holds_a_worker_on_the_operations_panel(dispatcher_client):
    now = timezone.now()
    services.heartbeat_beat(
        name="w1",
        hostname="vm",
        pid=1,
        started_at=now,
        waiting_for="the database: it lacks 1 migration (first plans.0011_x): run migrate",
    )

    panel = text_of(element_by_id(dispatcher_client.get("/").content.decode(), "operations-panel"))

    assert "Waiting for the database: it lacks 1 migration" in panel


def test_it_answers_the_load_balancer_without_a_login(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["Cache-Control"] == "no-store"


def test_it_answers_only_get_on_the_load_balancer_url(client, db):
    assert client.post("/healthz").status_code == 405


@pytest.mark.parametrize("url", ["/plans/?q=²", "/plans/new/?copy=²"])
def test_it_treats_unicode_digits_as_text_not_numbers(dispatcher_client, plan, url):
    assert dispatcher_client.get(url).status_code == 200


def test_it_says_nothing_changed_when_an_accepted_plan_is_saved_as_is(
    dispatcher_client, dispatcher, brussels
):
    dispatcher_client.post("/plans/new/", form_post(brussels))
    plan = Plan.objects.get()
    accept(plan, dispatcher)

    response = dispatcher_client.post(f"/plans/{plan.pk}/edit/", form_post(brussels), follow=True)

    plan.refresh_from_db()
    assert (plan.state, plan.revision) == ("accepted", 1)
    assert "Nothing changed" in response.content.decode()


def test_it_does_not_overwrite_an_edit_made_while_the_form_was_open(
    client, dispatcher, brussels, db
):
    other = User.objects.create_user("second-dispatcher", password="x")
    other.groups.add(*dispatcher.groups.all())
    client.force_login(dispatcher)
    client.post("/plans/new/", form_post(brussels))
    plan = Plan.objects.get()
    opened = client.get(f"/plans/{plan.pk}/edit/").content.decode()
    seen = re.search(r'name="seen" value="([^"]+)"', opened).group(1)
    services.plan_update(plan=plan, user=other, expected_range_km=300)

    response = client.post(
        f"/plans/{plan.pk}/edit/", form_post(brussels, expected_range_km="100", seen=seen)
    )

    plan.refresh_from_db()
    assert plan.expected_range_km == 300
    page = response.content.decode()
    assert "second-dispatcher changed this plan while you were editing it" in page
    assert 'name="expected_range_km" value="100"' in page  # what was typed is not lost

    # Saving the same form again, knowing of the other edit, replaces it.
    seen_now = re.search(r'name="seen" value="([^"]+)"', page).group(1)
    assert seen_now == plan.content_fingerprint
    client.post(
        f"/plans/{plan.pk}/edit/", form_post(brussels, expected_range_km="100", seen=seen_now)
    )
    plan.refresh_from_db()
    assert plan.expected_range_km == 100


def test_it_gives_admin_pages_the_portals_icon(client, admin_client):
    """Without it browsers ask the admin for /favicon.ico and log a 404 on every page."""
    for page in (client.get("/admin/login/"), admin_client.get("/admin/plans/plan/")):
        assert page.status_code == 200
        assertInHTML(
            '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">',
            page.content.decode(),
        )


@pytest.mark.parametrize(
    ("settle_as", "points_to_retry"), [("accepted", False), ("rejected", True)]
)
def test_it_points_to_retry_only_where_the_plan_page_offers_it(
    dispatcher_client, dispatcher, brussels, settle_as, points_to_retry
):
    dispatcher_client.post("/plans/new/", form_post(brussels))
    plan = Plan.objects.get()
    if settle_as == "accepted":
        accept(plan, dispatcher)
    else:
        reject(plan, dispatcher, "No.")

    response = dispatcher_client.post(
        f"/plans/{plan.pk}/edit/", form_post(brussels, action="submit"), follow=True
    )

    page = response.content.decode()
    assert f"Nothing changed, so plan {plan.pk} has nothing new to submit" in page
    assert ("use Retry now" in page) is points_to_retry
    assert ("Retry now</button>" in page) is points_to_retry


@pytest.mark.parametrize(
    ("worker", "health_status", "says"),
    [
        (True, 200, "Waiting for the delivery worker — due"),
        (True, 503, "Held: MINT's health check says it is down"),
        # No answer says nothing about MINT, and a 404 from /health/ does not stop the workers
        # either (HealthResult.says_down): not held.
        (True, None, "Waiting for the delivery worker — due"),
        (True, 404, "Waiting for the delivery worker — due"),
        (False, 200, "Waiting: no delivery worker is running"),
    ],
)
def test_it_says_why_a_queued_plan_is_not_moving(
    dispatcher_client, dispatcher, plan, worker, health_status, says
):
    services.plan_submit(plan=plan, user=dispatcher)
    if worker:
        now = timezone.now()
        services.heartbeat_beat(name="w1", hostname="vm", pid=1, started_at=now)
    services.health_record(
        result=HealthResult(up=health_status == 200, http_status=health_status, latency_ms=5)
    )

    for url in (f"/plans/{plan.pk}/", f"/plans/{plan.pk}/status/"):
        bar = text_of(element_by_id(dispatcher_client.get(url).content.decode(), "plan-status-bar"))

        assert says in bar


def test_it_marks_the_list_live_only_while_a_row_is_on_its_way(dispatcher_client, dispatcher, plan):
    idle = dispatcher_client.get("/plans/").content.decode()
    services.plan_submit(plan=plan, user=dispatcher)
    pending = dispatcher_client.get("/plans/").content.decode()

    assert '<div id="plan-results" data-live="false">' in idle
    assert '<div id="plan-results" data-live="true">' in pending


@pytest.mark.parametrize("field", ["plan", "page_drafts"])
def test_it_answers_400_to_a_plan_number_no_database_can_hold(dispatcher_client, plan, field):
    action = "all" if field == "page_drafts" else "selected"
    big = "9" * 40

    response = dispatcher_client.post(
        "/plans/submit-selected/", {"action": action, field: [str(plan.pk), big]}
    )

    assert response.status_code == 400
    assert f"There is no plan number {big}" in response.content.decode()
    assert not Submission.objects.exists()
