"""Quick entry on the plan form: "Save and add next", the day defaulting to tomorrow on the
site's calendar, and the last site each dispatcher used."""

import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from plans.models import Plan, PlanState, UserPreference
from tests.factories import make_location, make_plan, make_vehicle

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("counts_stay_true")]

NEXT_YEAR = timezone.now().year + 1
WINTER_DAY = date(NEXT_YEAR, 1, 15)


@pytest.fixture
def brussels(db):
    return make_location()


@pytest.fixture
def newark(db):
    return make_location("US-EWR-03", "Newark Yard", "America/New_York")


@pytest.fixture
def bus(brussels):
    return make_vehicle("bus 12", location=brussels)


def entry(location, **changes) -> dict:
    """An overnight range plan as a dispatcher types it: 18:30 → 05:45 the next morning."""
    data = {
        "location": str(location.pk),
        "start_date": WINTER_DAY.isoformat(),
        "start_local": "18:30",
        "end_local": "05:45",
        "target_kind": "range",
        "expected_range_km": "240",
        "average_consumption": "",
        "expected_charge_kwh": "",
        "status_note": "",
        "action": "next",
    }
    data.update(changes)
    return data


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def other_dispatcher() -> User:
    user = User.objects.create_user(username="second", password="second-pass-123")
    user.groups.add(Group.objects.get(name="Dispatchers"))
    return user


# --- save and add next ---------------------------------------------------------------------------


def test_it_saves_a_draft_and_opens_a_fresh_form_on_the_same_site_and_day(
    dispatcher_client, brussels, bus
):
    response = dispatcher_client.post("/plans/new/", entry(brussels, vehicle=str(bus.pk)))

    plan = Plan.objects.get()
    assert plan.state == PlanState.DRAFT
    assert plan.scheduled_start == datetime(NEXT_YEAR, 1, 15, 17, 30, tzinfo=UTC)
    assert plan.scheduled_end == datetime(NEXT_YEAR, 1, 16, 4, 45, tzinfo=UTC)
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/plans/new/"
    assert query_of(response["Location"]) == {
        "site": str(brussels.pk),
        "day": WINTER_DAY.isoformat(),
        "target": "range",
    }

    fresh = dispatcher_client.get(response["Location"])
    form = fresh.context["form"]
    page = fresh.content.decode()
    assert form.initial["location"] == brussels
    assert form.initial["start_date"] == WINTER_DAY
    assert form.initial["target_kind"] == "range"
    assert "vehicle" not in form.initial and "start_local" not in form.initial
    assert re.search(r'<select name="vehicle"[^>]* autofocus[ >]', page)
    assert page.count("autofocus") == 1
    assert "data-unsaved" not in page  # "n" may leave a form nobody has typed into


def test_it_names_the_plan_just_saved_with_a_link_and_its_overnight_window(
    dispatcher_client, brussels, bus
):
    response = dispatcher_client.post(
        "/plans/new/", entry(brussels, vehicle=str(bus.pk)), follow=True
    )

    plan = Plan.objects.get()
    friday = WINTER_DAY + timedelta(days=1)
    (message,) = [m.message for m in response.context["messages"]]
    page = response.content.decode()
    assert f'<a href="/plans/{plan.pk}/">Plan {plan.pk}</a> saved as a draft' in page
    assert (
        f"bus 12 at Brussels Depot, {WINTER_DAY:%a} 15 Jan 18:30 – "
        f"{friday:%a} 16 Jan 05:45 CET (ends the next day)."
    ) in page
    drafts = f"/plans/?site={brussels.pk}&amp;state=draft&amp;day={WINTER_DAY.isoformat()}"
    assert f'<a href="{drafts}">submit the drafts of that day</a>' in page
    assert message.startswith(f'<a href="/plans/{plan.pk}/">')


def test_it_does_not_offer_add_next_on_an_edit(dispatcher_client, dispatcher):
    plan = make_plan(user=dispatcher)

    edit = dispatcher_client.get(f"/plans/{plan.pk}/edit/").content.decode()
    new = dispatcher_client.get("/plans/new/").content.decode()

    assert "Save and add next" not in edit
    assert "autofocus" not in edit
    assert (
        '<button type="submit" name="action" value="next" class="button" '
        'aria-keyshortcuts="Control+Shift+Enter Meta+Shift+Enter">Save and add next</button>'
    ) in new
    assert 'aria-keyshortcuts="Control+Enter Meta+Enter">Save draft</button>' in new


def test_it_keeps_the_entry_and_saves_nothing_when_add_next_hits_an_error(
    dispatcher_client, dispatcher, brussels, bus
):
    make_plan(
        user=dispatcher,
        location=brussels,
        vehicle=bus,
        scheduled_start=datetime(NEXT_YEAR, 1, 15, 20, tzinfo=UTC),
        scheduled_end=datetime(NEXT_YEAR, 1, 15, 22, tzinfo=UTC),
    )

    response = dispatcher_client.post("/plans/new/", entry(brussels, vehicle=str(bus.pk)))

    assert response.status_code == 200
    assert Plan.objects.count() == 1
    assert response.context["form"].errors
    page = response.content.decode()
    assert 'name="end_local" value="05:45"' in page
    assert "autofocus" not in page  # the error summary takes the focus
    assert '<form method="post" class="plan-form card" novalidate data-unsaved>' in page
    assert not UserPreference.objects.exists()


def test_it_asks_about_warnings_then_saves_anyway_and_adds_next(dispatcher_client, brussels, bus):
    too_much = entry(
        brussels,
        vehicle=str(bus.pk),
        target_kind="charge",
        expected_range_km="",
        expected_charge_kwh="400",  # bus 12's battery holds 300 kWh
    )

    asked = dispatcher_client.post("/plans/new/", too_much)

    assert asked.status_code == 200
    assert not Plan.objects.exists()
    shown = asked.context["form"].data["warnings_shown"]
    assert "battery" in shown
    assert "Save anyway: I have read the warnings above" in asked.content.decode()

    saved = dispatcher_client.post(
        "/plans/new/", {**too_much, "warnings_shown": shown, "save_anyway": "on"}
    )

    plan = Plan.objects.get()
    assert [w["code"] for w in plan.warnings] == ["battery"]
    assert query_of(saved["Location"])["target"] == "charge"


def test_it_says_on_which_day_an_overnight_end_falls_when_the_form_comes_back(
    dispatcher_client, brussels
):
    response = dispatcher_client.post("/plans/new/", entry(brussels, expected_range_km=""))

    assert response.status_code == 200
    friday = WINTER_DAY + timedelta(days=1)
    page = response.content.decode()
    assert (
        f'<p class="day-hint" id="id_end_local_day" aria-live="polite">'
        f"Ends the next day: {friday:%a} 16 Jan 05:45 CET</p>"
    ) in page


def test_it_submits_nothing_with_add_next(dispatcher_client, brussels):
    dispatcher_client.post("/plans/new/", entry(brussels))

    plan = Plan.objects.get()
    assert plan.state == PlanState.DRAFT
    assert not plan.submissions.exists()


def test_it_refuses_add_next_to_a_viewer(viewer_client, brussels):
    response = viewer_client.post("/plans/new/", entry(brussels))

    assert response.status_code == 403
    assert not Plan.objects.exists()


# --- defaults of a new plan ----------------------------------------------------------------------


def test_it_preselects_the_last_site_each_dispatcher_used_and_not_another_users(
    client, dispatcher_client, dispatcher, brussels, newark
):
    second = other_dispatcher()
    dispatcher_client.post("/plans/new/", entry(newark, action="save"))
    assert dispatcher_client.get("/plans/new/").context["form"].initial["location"] == newark

    client.force_login(second)
    assert "location" not in client.get("/plans/new/").context["form"].initial
    client.post("/plans/new/", entry(brussels, start_local="08:00", end_local="09:00"))
    assert client.get("/plans/new/").context["form"].initial["location"] == brussels

    client.force_login(dispatcher)
    assert client.get("/plans/new/").context["form"].initial["location"] == newark
    assert UserPreference.objects.get(user=dispatcher).last_location == newark
    assert UserPreference.objects.get(user=second).last_location == brussels


def test_it_forgets_a_remembered_site_that_no_longer_takes_plans(
    dispatcher_client, brussels, newark
):
    dispatcher_client.post("/plans/new/", entry(newark))
    newark.is_active = False
    newark.save()

    form = dispatcher_client.get("/plans/new/").context["form"]

    assert "location" not in form.initial


@pytest.mark.parametrize(("site", "days_ahead"), [("brussels", 1), ("newark", 0)])
def test_it_puts_the_day_at_tomorrow_on_the_preselected_sites_calendar(
    dispatcher_client, monkeypatch, settings, request, site, days_ahead
):
    # The next 03:00 UTC: 04:00 that day in Brussels, but 22:00 the day before in Newark.
    at_three = timezone.now().replace(hour=3, minute=0, second=0, microsecond=0)
    if at_three < timezone.now():
        at_three += timedelta(days=1)
    settings.SESSION_IDLE_TIMEOUT = settings.SESSION_ABSOLUTE_TIMEOUT = 2 * 86400
    location = request.getfixturevalue(site)
    monkeypatch.setattr(timezone, "now", lambda: at_three)

    form = dispatcher_client.get(f"/plans/new/?site={location.pk}").context["form"]

    assert form.initial["start_date"] == at_three.date() + timedelta(days=days_ahead)
    assert form.initial["location"] == location
    assert form.fields["start_date"].widget.attrs["data-tomorrow"] == ""


def test_it_marks_only_a_defaulted_day_to_follow_the_site_picked(dispatcher_client, brussels):
    defaulted = dispatcher_client.get("/plans/new/").content.decode()
    kept = dispatcher_client.get(f"/plans/new/?day={WINTER_DAY.isoformat()}").content.decode()

    assert re.search(r'<input type="text" name="start_date"[^>]* data-tomorrow', defaulted)
    assert "data-tomorrow" not in kept


@pytest.mark.parametrize(
    "query",
    ["?site=abc&day=tomorrow&target=both", "?site=99999999999999999999&day=2026-02-30", "?site=0"],
)
def test_it_ignores_defaults_it_cannot_use(dispatcher_client, newark, query):
    form = dispatcher_client.get(f"/plans/new/{query}").context["form"]

    assert "location" not in form.initial
    assert "target_kind" not in form.initial
    assert form.initial["start_date"] == timezone.localdate() + timedelta(days=1)
