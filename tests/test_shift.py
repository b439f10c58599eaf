"""The handover page (``/shift/``): every plan starting or running in the next hours, grouped
by what it needs, site by site; its bulk actions; and the dashboard's link to it."""

import html
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from plans import services
from plans.mint.outcomes import Unavailable
from plans.models import Plan, PlanState
from tests.factories import deliver_all, make_location, make_plan, make_vehicle

pytestmark = pytest.mark.usefixtures("counts_stay_true")

CSS = Path(__file__).resolve().parent.parent / "static" / "css" / "portal.css"


def plan_in(user, *, hours: float, length: float = 2, location=None, **extra) -> Plan:
    start = timezone.now().replace(microsecond=0) + timedelta(hours=hours)
    return make_plan(
        user=user,
        location=location,
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=length),
        **extra,
    )


def every_state(user, location=None) -> dict[str, Plan]:
    """One plan in each state, an hour or so apart within the next eight hours, none alike."""
    plans = {
        name: plan_in(user, hours=0.5 + n * 0.5, location=location)
        for n, name in enumerate(
            ["sending", "retrying", "accepted", "rejected", "failed", "cancelled", "withdrawn"]
        )
    }
    vehicle = make_vehicle(battery_kwh="100")
    plans["accepted_with_warning"] = plan_in(
        user,
        hours=5,
        location=location,
        vehicle=vehicle,
        kind="charge",
        expected_charge_kwh=400,
        accept_warnings=("battery", "power"),
    )
    deliver_all(
        [plans["accepted"], plans["cancelled"], plans["accepted_with_warning"]],
        user=user,
        outcome="accepted",
    )
    services.plan_cancel(plan=plans["cancelled"], user=user, reason="Bus in the workshop")
    services.plan_cancel(plan=plans["withdrawn"], user=user, reason="Not needed")
    deliver_all([plans["rejected"]], user=user, outcome="rejected")
    deliver_all([plans["failed"]], user=user, outcome="failed")
    for name in ("sending", "retrying"):
        services.plan_submit(plan=plans[name], user=user)
    claimed = services.submissions_claim(worker="test-worker", limit=10)
    retrying = next(s for s in claimed if s.plan_id == plans["retrying"].pk)
    services.submissions_record_outcomes(
        sent=[
            services.SentMessage(
                retrying,
                Unavailable(503, 5, retrying.body, error="MINT answered 503"),
                timezone.now(),
            )
        ],
        worker="test-worker",
    )
    plans["queued"] = plan_in(user, hours=4, location=location)
    services.plan_submit(plan=plans["queued"], user=user)
    plans["draft"] = plan_in(user, hours=4.5, location=location)
    for plan in plans.values():
        plan.refresh_from_db()
    return plans


def shown(response) -> dict[int, str]:
    """Plan id → the group the page shows it in."""
    return {row.plan.pk: row.group for row in response.context["page"].rows}


# --- what it shows -------------------------------------------------------------------------------


def test_it_groups_every_state_as_needs_you_on_its_way_or_settled(dispatcher_client, dispatcher):
    plans = every_state(dispatcher)
    assert {name: plan.state for name, plan in plans.items()} == {
        "sending": "sending",
        "retrying": "retrying",
        "accepted": "accepted",
        "rejected": "rejected",
        "failed": "failed",
        "cancelled": "cancelled",
        "withdrawn": "withdrawn",
        "queued": "queued",
        "draft": "draft",
        "accepted_with_warning": "accepted",
    }

    response = dispatcher_client.get("/shift/")

    groups = shown(response)
    assert {name: groups.get(plan.pk) for name, plan in plans.items()} == {
        "draft": "needs_you",
        "failed": "needs_you",
        "rejected": "needs_you",
        "cancelled": "needs_you",
        "accepted_with_warning": "needs_you",
        "queued": "on_its_way",
        "sending": "on_its_way",
        "retrying": "on_its_way",
        "accepted": "settled",
        "withdrawn": None,  # MINT never had it: nothing to hand over
    }
    assert response.context["page"].totals == {"needs_you": 5, "on_its_way": 3, "settled": 1}
    page = response.content.decode()
    assert page.index("Needs you") < page.index("On its way") < page.index("Settled")


def test_it_says_why_each_plan_needs_you_and_when_a_retry_goes(dispatcher_client, dispatcher):
    plans = every_state(dispatcher)
    retry_at = plans["retrying"].submissions.get().next_attempt_at

    page = dispatcher_client.get("/shift/").content.decode()

    from plans.templatetags.plans_extras import local_in

    assert f"Next attempt {local_in(retry_at, 'Europe/Brussels')}" in page
    assert "MINT refused it: Unknown location." in page
    assert "Not delivered:" in page
    assert "Not sent to MINT yet." in page
    assert "Cancelled here, but MINT still holds it" in page
    warning = plans["accepted_with_warning"].warnings[0]["text"]
    assert html.escape(f"⚠ {warning}") in page


def test_it_shows_times_on_each_sites_clock_with_the_zone(dispatcher_client, dispatcher):
    newark = make_location("US-EWR-03", "Newark Yard", "America/New_York")
    plan_in(dispatcher, hours=1, location=make_location())
    plan_in(dispatcher, hours=1, location=newark)

    page = dispatcher_client.get("/shift/").content.decode()

    assert re.search(r"Site clock now <strong>\w{3} \d+ \w{3} \d\d:\d\d E[SD]T</strong>", page)
    assert re.search(r"Site clock now <strong>\w{3} \d+ \w{3} \d\d:\d\d CES?T</strong>", page)
    assert page.index("Brussels Depot") < page.index("Newark Yard")


def test_it_includes_plans_running_now_and_leaves_out_ended_and_later_ones(
    dispatcher_client, dispatcher
):
    running = plan_in(dispatcher, hours=1, length=3)
    Plan.objects.filter(pk=running.pk).update(scheduled_start=timezone.now() - timedelta(hours=2))
    ended = plan_in(dispatcher, hours=1, length=1, expected_range_km=100)
    Plan.objects.filter(pk=ended.pk).update(
        scheduled_start=timezone.now() - timedelta(hours=3),
        scheduled_end=timezone.now() - timedelta(minutes=1),
    )
    later = plan_in(dispatcher, hours=9)

    response = dispatcher_client.get("/shift/")

    assert set(shown(response)) == {running.pk}
    assert "running, ends in" in response.content.decode()
    assert later.pk in shown(dispatcher_client.get("/shift/?hours=12"))


@pytest.mark.parametrize(("hours", "expected"), [("4", 4), ("8", 8), ("12", 12), ("24", 24)])
def test_it_shows_the_chosen_span(dispatcher_client, dispatcher, hours, expected):
    plans = {h: plan_in(dispatcher, hours=h - 0.5) for h in (4, 8, 12, 24)}

    response = dispatcher_client.get("/shift/", {"hours": hours})

    assert response.context["hours"] == expected
    assert set(shown(response)) == {p.pk for h, p in plans.items() if h <= expected}
    assert f"next {expected} hours" in response.content.decode()


@pytest.mark.parametrize("hours", ["7", "many", "-8", "99999999999999999999"])
def test_it_explains_a_span_it_cannot_show_and_shows_eight_hours(dispatcher_client, hours):
    response = dispatcher_client.get("/shift/", {"hours": hours})

    assert response.status_code == 200
    assert response.context["hours"] == 8
    assert "Choose 4, 8, 12 or 24 hours; the next 8 hours are shown." in (response.content.decode())


def test_it_pages_through_a_long_window_site_by_site(dispatcher_client, dispatcher, monkeypatch):
    monkeypatch.setattr("plans.views.shift.SHIFT_PER_PAGE", 3)
    newark = make_location("US-EWR-03", "Newark Yard", "America/New_York")
    brussels = [plan_in(dispatcher, hours=1 + n / 10) for n in range(4)]
    newark_plans = [plan_in(dispatcher, hours=1 + n / 10, location=newark) for n in range(2)]

    first = dispatcher_client.get("/shift/")
    second = dispatcher_client.get("/shift/", {"page": "2"})
    too_far = dispatcher_client.get("/shift/", {"page": "9"})
    bad = dispatcher_client.get("/shift/", {"page": "x"})

    assert list(shown(first)) == [p.pk for p in brussels[:3]]
    assert list(shown(second)) == [brussels[3].pk] + [p.pk for p in newark_plans]
    assert "Page 2 of 2" in second.content.decode()
    assert "continued" in second.content.decode()  # Brussels began on page 1
    assert list(shown(too_far)) == list(shown(second))
    assert list(shown(bad)) == list(shown(first))
    # Every page counts the whole window, not just its rows.
    assert second.context["page"].totals["needs_you"] == 6


def test_it_says_when_nothing_happens(dispatcher_client):
    response = dispatcher_client.get("/shift/")

    assert "No plan starts or runs in the next 8 hours." in response.content.decode()


# --- bulk actions --------------------------------------------------------------------------------


def test_it_submits_every_draft_of_the_window_from_the_page(dispatcher_client, dispatcher):
    drafts = [plan_in(dispatcher, hours=1 + n) for n in range(3)]
    later = plan_in(dispatcher, hours=10)
    page = dispatcher_client.get("/shift/")
    assert "Submit all 3 drafts" in page.content.decode()

    response = dispatcher_client.post(
        "/plans/submit-selected/",
        {
            "action": "all",
            "page_drafts": page.context["page"].actionable["submit"],
            "next": "/shift/",
        },
        follow=True,
    )

    assert response.redirect_chain[-1][0] == "/shift/"
    assert "3 plans queued for delivery to MINT." in response.content.decode()
    assert {p.pk: p.state for p in Plan.objects.all()} == {
        **{d.pk: PlanState.QUEUED for d in drafts},
        later.pk: PlanState.DRAFT,
    }


def test_it_retries_every_failed_plan_of_the_window_from_the_page(dispatcher_client, dispatcher):
    failed = [plan_in(dispatcher, hours=1 + n) for n in range(2)]
    rejected = [plan_in(dispatcher, hours=4)]
    deliver_all(failed, user=dispatcher, outcome="failed")
    deliver_all(rejected, user=dispatcher, outcome="rejected")
    page = dispatcher_client.get("/shift/")
    assert "Retry all 2 failed" in page.content.decode()
    messages = {s.plan_id: s.message_id for s in failed[0].submissions.model.objects.all()}

    response = dispatcher_client.post(
        "/plans/retry-selected/",
        {
            "action": "all",
            "page_retries": page.context["page"].actionable["retry"],
            "next": "/shift/?hours=8",
        },
    )

    assert response["Location"] == "/shift/?hours=8"
    states = dict(Plan.objects.values_list("pk", "state"))
    assert [states[p.pk] for p in failed + rejected] == ["queued", "queued", "rejected"]
    after = {s.plan_id: s.message_id for s in failed[0].submissions.model.objects.all()}
    assert after == messages


def test_it_offers_ticks_and_buttons_only_to_those_who_may_submit(dispatcher, viewer):
    every_state(dispatcher)
    viewer_client, dispatcher_client = Client(), Client()
    viewer_client.force_login(viewer)
    dispatcher_client.force_login(dispatcher)

    as_viewer = viewer_client.get("/shift/").content.decode()
    as_dispatcher = dispatcher_client.get("/shift/").content.decode()

    assert "Needs you" in as_viewer and "Rejected" in as_viewer
    assert 'name="plan"' not in as_viewer and 'name="retry"' not in as_viewer
    assert "Submit all" not in as_viewer and "Retry ticked" not in as_viewer
    assert as_dispatcher.count('name="plan"') == 1  # the draft
    assert as_dispatcher.count('name="retry"') == 2  # failed and rejected
    assert "Submit all 1 draft<" in as_dispatcher and "Retry all 1 failed" in as_dispatcher


def test_it_shows_the_handover_only_to_those_who_may_read_plans(client, outsider):
    assert client.get("/shift/").status_code == 302  # to the login page
    client.force_login(outsider)
    assert client.get("/shift/").status_code == 403


def test_it_links_the_page_from_the_navigation(dispatcher_client):
    page = dispatcher_client.get("/shift/").content.decode()

    assert '<a href="/shift/" aria-current="page">Shift</a>' in page


# --- printing ------------------------------------------------------------------------------------


def test_it_prints_one_sheet_per_site_without_navigation_or_buttons(dispatcher_client, dispatcher):
    plan_in(dispatcher, hours=1)
    page = dispatcher_client.get("/shift/").content.decode()
    css = CSS.read_text()
    shift_print = css[css.index("/* --- shift handover") :]
    rules = shift_print[shift_print.index("@media print") :]

    assert 'href="/static/css/portal.css"' in page
    assert 'class="shift-site card"' in page
    assert "size: A4" in rules
    assert re.search(r"\.shift-site \{\s*break-before: page;", rules)
    hidden = rules[: rules.index("display: none !important")]
    for selector in (".main-nav", ".shift-controls", ".pagination", ".col-check", "button"):
        assert selector in hidden


# --- the dashboard's link ------------------------------------------------------------------------


def test_the_dashboard_says_how_many_more_plans_start_and_links_here(
    dispatcher_client, dispatcher, monkeypatch
):
    for n in range(23):
        plan_in(dispatcher, hours=1 + n / 2, expected_range_km=100 + n)

    page = dispatcher_client.get("/").content.decode()

    assert "3 more plans" in page
    assert 'href="/shift/?hours=24">See all of them on the shift page</a>' in page


def test_the_dashboard_links_here_when_nothing_is_left_out(dispatcher_client, dispatcher):
    plan_in(dispatcher, hours=1)

    page = dispatcher_client.get("/").content.decode()

    assert "more plan" not in page
    assert 'href="/shift/?hours=24"' in page


# --- query counts --------------------------------------------------------------------------------


def _window_of(user, count: int) -> None:
    """``count`` plans over two sites in the next eight hours, in every group."""
    sites = [make_location(), make_location("US-EWR-03", "Newark Yard", "America/New_York")]
    plans = [
        plan_in(user, hours=0.5 + (n % 7), location=sites[n % 2], expected_range_km=100 + n)
        for n in range(count)
    ]
    deliver_all(plans[1::4], user=user, outcome="accepted")
    deliver_all(plans[2::4], user=user, outcome="failed")
    for plan in plans[3::4]:
        services.plan_submit(plan=plan, user=user)


#: Every request's six (session, user, two permission sets, MINT status, worker heartbeat), then
#: the whole window as small tuples (counts, order, bulk ids), and one page of rows in full.
SHIFT_QUERIES = 8


@pytest.mark.parametrize("count", [0, 500])
def test_it_shows_the_handover_in_a_fixed_number_of_queries(
    dispatcher_client, dispatcher, django_assert_num_queries, count
):
    _window_of(dispatcher, count)
    dispatcher_client.get("/shift/")  # the login's first request also stamps the session

    with django_assert_num_queries(SHIFT_QUERIES):
        response = dispatcher_client.get("/shift/?page=2")

    page = response.context["page"]
    assert sum(page.totals.values()) == count
    assert len(page.rows) == min(count, 50)
