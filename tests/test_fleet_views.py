"""Vehicles on the plan pages, the guards where the dispatcher types, and cancel."""

from datetime import timedelta

import pytest
from django.utils import timezone

from plans import services
from plans.models import Plan, PlanState
from plans.timezones import utc_to_wall
from tests.factories import make_location, make_plan, make_vehicle

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("counts_stay_true")]


def _form(vehicle, start, hours=3, **extra):
    zone = vehicle.home_location.time_zone
    wall = utc_to_wall(start, zone)
    data = {
        "vehicle": vehicle.pk,
        "location": vehicle.home_location.pk,
        "start_date": f"{wall:%Y-%m-%d}",
        "start_local": f"{wall:%H:%M}",
        "end_local": f"{wall + timedelta(hours=hours):%Y-%m-%d %H:%M}",
        "target_kind": "charge",
        "expected_charge_kwh": "60",
        "action": "save",
    }
    data.update(extra)
    return data


def _start():
    return timezone.now().replace(second=0, microsecond=0) + timedelta(hours=4)


def test_it_saves_a_plan_with_its_vehicle_and_shows_it(dispatcher_client):
    bus = make_vehicle("bus 12")
    response = dispatcher_client.post("/plans/new/", _form(bus, _start()))
    plan = Plan.objects.get()
    assert response.status_code == 302
    assert plan.vehicle == bus
    page = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()
    assert "bus 12 at Brussels Depot" in page
    assert "bus 12" in dispatcher_client.get("/plans/").content.decode()


def test_it_shows_the_overlap_error_beside_the_vehicle_and_saves_nothing(dispatcher_client):
    bus = make_vehicle("bus 12")
    dispatcher_client.post("/plans/new/", _form(bus, _start()))
    response = dispatcher_client.post("/plans/new/", _form(bus, _start() + timedelta(hours=1)))
    assert response.status_code == 200
    errors = response.context["form"].errors["vehicle"]
    assert errors[0].startswith("bus 12 already has plan")
    assert Plan.objects.count() == 1


def test_a_warning_is_shown_and_saved_only_with_save_anyway(dispatcher_client):
    bus = make_vehicle("bus 12", battery_kwh="50", max_charge_kw="300")
    response = dispatcher_client.post("/plans/new/", _form(bus, _start()))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Check before saving: 1 warning" in page
    assert "Needs 60 kWh, more than bus 12&#x27;s usable battery of 50 kWh." in page
    assert 'name="save_anyway"' in page
    assert Plan.objects.count() == 0
    form = response.context["form"]
    assert form.data["warnings_shown"] == "battery"

    response = dispatcher_client.post(
        "/plans/new/", _form(bus, _start(), warnings_shown="battery", save_anyway="on")
    )
    assert response.status_code == 302
    plan = Plan.objects.get()
    assert [w["code"] for w in plan.warnings] == ["battery"]
    listing = dispatcher_client.get("/plans/").content.decode()
    assert "⚠ Needs 60 kWh, more than bus 12&#x27;s usable battery of 50 kWh." in listing
    dashboard = dispatcher_client.get("/").content.decode()
    assert "⚠ Needs 60 kWh" in dashboard


def test_save_anyway_accepts_only_the_warnings_that_were_shown(dispatcher_client):
    bus = make_vehicle("bus 12", battery_kwh="50", max_charge_kw="10")
    response = dispatcher_client.post(
        "/plans/new/", _form(bus, _start(), warnings_shown="battery", save_anyway="on")
    )
    assert response.status_code == 200  # the power warning was never shown
    assert Plan.objects.count() == 0
    assert "about 30 kWh fit" in response.content.decode()


def test_the_form_offers_vehicle_facts_for_filling_in_and_converting(dispatcher_client):
    make_vehicle("bus 12", default_consumption="72.5", battery_kwh="140")
    page = dispatcher_client.get("/plans/new/").content.decode()
    assert 'id="vehicle-facts"' in page
    assert '"consumption": "72.50"' in page
    assert '"battery": "140.0"' in page


def test_the_list_filters_by_vehicle_and_hides_called_off_plans(dispatcher_client, dispatcher):
    bus, other = make_vehicle("bus 12"), make_vehicle("bus 14")
    mine = make_plan(user=dispatcher, vehicle=bus)
    theirs = make_plan(user=dispatcher, vehicle=other)
    gone = make_plan(
        user=dispatcher,
        scheduled_start=_start() + timedelta(days=1),
        scheduled_end=_start() + timedelta(days=1, hours=2),
    )
    services.plan_cancel(plan=gone, user=dispatcher, reason="x")

    page = dispatcher_client.get(f"/plans/?vehicle={bus.pk}")
    assert [row.pk for row in page.context["plans"]] == [mine.pk]
    assert "Only the plans of <strong>bus 12</strong>" in page.content.decode()
    default = [row.pk for row in dispatcher_client.get("/plans/").context["plans"]]
    assert default == [mine.pk, theirs.pk]
    called_off = dispatcher_client.get("/plans/?delivery=called_off").context["plans"]
    assert [row.pk for row in called_off] == [gone.pk]
    found = dispatcher_client.get("/plans/?q=bus+14").context["plans"]
    assert [row.pk for row in found] == [theirs.pk]


def test_an_unknown_vehicle_filter_says_so_and_shows_nothing(dispatcher_client, dispatcher):
    make_plan(user=dispatcher)
    response = dispatcher_client.get("/plans/?vehicle=999")
    assert response.context["plans"] == []
    assert "There is no such vehicle" in response.content.decode()


# Cancel ---------------------------------------------------------------------------------------


def test_cancel_asks_why_and_withdraws_a_draft(dispatcher_client, dispatcher):
    plan = make_plan(user=dispatcher)
    page = dispatcher_client.get(f"/plans/{plan.pk}/cancel/").content.decode()
    assert "MINT has not accepted any revision of this plan" in page

    response = dispatcher_client.post(f"/plans/{plan.pk}/cancel/", {"reason": "Route dropped."})
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.state == PlanState.WITHDRAWN
    detail = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()
    assert "Withdrawn: Route dropped. MINT never accepted this plan." in detail
    assert f"/plans/{plan.pk}/edit/" not in detail


def test_cancel_refuses_an_empty_reason_and_changes_nothing(dispatcher_client, dispatcher):
    plan = make_plan(user=dispatcher)
    response = dispatcher_client.post(f"/plans/{plan.pk}/cancel/", {"reason": " "})
    assert response.status_code == 200
    assert "Say why the plan is called off." in response.content.decode()
    plan.refresh_from_db()
    assert plan.state == PlanState.DRAFT


def test_a_cancelled_accepted_plan_tells_who_to_call(dispatcher_client, dispatcher, settings):
    settings.CANCEL_NOTICE = "Call the depot desk on 1234."
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)
    submission.state = "accepted"
    submission.save()
    Plan.objects.filter(pk=plan.pk).update(state=PlanState.ACCEPTED)
    services.plan_state_counts_rebuild()

    page = dispatcher_client.get(f"/plans/{plan.pk}/cancel/").content.decode()
    assert "MINT's API has no cancel." in page
    assert "Call the depot desk on 1234." in page
    dispatcher_client.post(f"/plans/{plan.pk}/cancel/", {"reason": "Not running."})
    detail = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()
    assert "MINT still holds revision 1 of this plan." in detail
    assert "Call the depot desk on 1234." in detail


def test_viewers_cannot_cancel(viewer_client, dispatcher):
    plan = make_plan(user=dispatcher)
    assert viewer_client.get(f"/plans/{plan.pk}/cancel/").status_code == 403
    assert viewer_client.post(f"/plans/{plan.pk}/cancel/", {"reason": "x"}).status_code == 403
    plan.refresh_from_db()
    assert plan.state == PlanState.DRAFT
    assert "Cancel plan" not in viewer_client.get(f"/plans/{plan.pk}/").content.decode()


def test_cancelled_plans_leave_the_dashboard_cards_and_are_counted_apart(
    dispatcher_client, dispatcher
):
    plan = make_plan(user=dispatcher, location=make_location())
    services.plan_cancel(plan=plan, user=dispatcher, reason="x")
    page = dispatcher_client.get("/").content.decode()
    assert "1 withdrawn or cancelled" in page
    assert dispatcher_client.get("/").context["state_cards"][0]["count"] == 0
