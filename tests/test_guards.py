"""The guards: one vehicle never in two windows at once; warnings with their numbers; the same
rules for every path; cancelled plans out of them."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from plans import services
from plans.models import Plan, PlanState
from plans.services import GuardWarnings, PlanCandidate, plans_guard
from tests.factories import make_location, make_plan, make_vehicle

pytestmark = pytest.mark.usefixtures("counts_stay_true")


def _start(hours: float = 3):
    return timezone.now().replace(second=0, microsecond=0) + timedelta(hours=hours)


def _charge(user, vehicle, start, hours=3.0, kwh=60, **extra):
    return make_plan(
        user=user,
        vehicle=vehicle,
        location=extra.pop("location", vehicle.home_location if vehicle else None),
        kind="charge",
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=hours),
        expected_charge_kwh=kwh,
        **extra,
    )


@pytest.mark.django_db
def test_it_refuses_one_vehicle_in_two_overlapping_windows_and_saves_nothing(dispatcher):
    bus = make_vehicle("bus 12")
    first = _charge(dispatcher, bus, _start())

    with pytest.raises(ValidationError) as excinfo:
        _charge(dispatcher, bus, _start() + timedelta(hours=2))

    message = excinfo.value.message_dict["vehicle"][0]
    assert f"bus 12 already has plan {first.pk}" in message
    assert "overlaps this window" in message
    assert Plan.objects.count() == 1


@pytest.mark.django_db
def test_it_allows_windows_that_only_touch(dispatcher):
    bus = make_vehicle("bus 12")
    _charge(dispatcher, bus, _start(), hours=3)
    second = _charge(dispatcher, bus, _start() + timedelta(hours=3))
    assert second.pk and second.warnings == []


@pytest.mark.django_db
def test_it_refuses_an_edit_that_moves_a_plan_onto_the_same_vehicle(dispatcher):
    bus = make_vehicle("bus 12")
    _charge(dispatcher, bus, _start(), hours=3)
    other = _charge(dispatcher, bus, _start() + timedelta(hours=5))

    with pytest.raises(ValidationError):
        services.plan_update(
            plan=other, user=dispatcher, scheduled_start=_start() + timedelta(hours=1)
        )
    other.refresh_from_db()
    assert other.scheduled_start == _start() + timedelta(hours=5)


@pytest.mark.django_db
def test_a_vehicle_may_have_plans_while_another_vehicle_is_busy(dispatcher):
    _charge(dispatcher, make_vehicle("bus 12"), _start())
    assert _charge(dispatcher, make_vehicle("bus 14"), _start()).pk


@pytest.mark.django_db
def test_it_warns_when_the_energy_is_beyond_the_battery_and_saves_only_when_accepted(dispatcher):
    bus = make_vehicle("bus 12", battery_kwh="140", max_charge_kw="300")

    with pytest.raises(GuardWarnings) as excinfo:
        _charge(dispatcher, bus, _start(), kwh=160, accept_warnings=())
    assert [w.text for w in excinfo.value.warnings] == [
        "Needs 160 kWh, more than bus 12's usable battery of 140 kWh."
    ]
    assert Plan.objects.count() == 0

    plan = _charge(dispatcher, bus, _start(), kwh=160, accept_warnings=("battery",))
    assert plan.warnings == [
        {
            "code": "battery",
            "field": "expected_charge_kwh",
            "text": "Needs 160 kWh, more than bus 12's usable battery of 140 kWh.",
        }
    ]


@pytest.mark.django_db
def test_range_energy_uses_the_vehicle_default_consumption_when_the_plan_has_none(dispatcher):
    bus = make_vehicle("bus 12", battery_kwh="140", default_consumption="80", max_charge_kw="300")
    with pytest.raises(GuardWarnings) as excinfo:
        make_plan(
            user=dispatcher,
            vehicle=bus,
            expected_range_km=220,
            average_consumption=None,
            accept_warnings=(),
        )
    # 220 km × 80 kWh/100 km = 176 kWh
    assert excinfo.value.warnings[0].text.startswith("Needs 176 kWh, more than")


@pytest.mark.django_db
def test_it_warns_when_the_energy_cannot_fit_in_the_window_at_the_vehicles_power(dispatcher):
    bus = make_vehicle("bus 12", battery_kwh="400", max_charge_kw="90")
    with pytest.raises(GuardWarnings) as excinfo:
        _charge(dispatcher, bus, _start(), hours=1.5, kwh=160, accept_warnings=())
    assert [w.text for w in excinfo.value.warnings] == [
        "Needs 160 kWh in 1 h 30; bus 12 charges at 90 kW at most: about 135 kWh fit."
    ]


@pytest.mark.django_db
def test_the_lower_of_the_vehicle_and_site_power_decides(dispatcher):
    site = make_location("DE-N-1", "Depot North", charge_point_kw=Decimal("50"))
    bus = make_vehicle("bus 12", location=site, battery_kwh="400", max_charge_kw="150")
    with pytest.raises(GuardWarnings) as excinfo:
        _charge(dispatcher, bus, _start(), hours=2, kwh=120, accept_warnings=())
    assert excinfo.value.warnings[0].text == (
        "Needs 120 kWh in 2 h; Depot North's charge points deliver at 50 kW at most: "
        "about 100 kWh fit."
    )


@pytest.mark.django_db
def test_it_warns_when_more_plans_overlap_than_the_site_has_charge_points(dispatcher):
    site = make_location("DE-N-1", "Depot North", time_zone="UTC", charge_points=2)
    start = _start()
    _charge(dispatcher, make_vehicle("bus 1", location=site), start, hours=4)
    _charge(dispatcher, make_vehicle("bus 2", location=site), start + timedelta(hours=1))
    # Touches the first only at its end: at 3 h in, two are charging, never three.
    with pytest.raises(GuardWarnings) as excinfo:
        _charge(
            dispatcher,
            make_vehicle("bus 3", location=site),
            start + timedelta(hours=2),
            accept_warnings=(),
        )
    busiest = start + timedelta(hours=2)
    assert excinfo.value.warnings[0].text == (
        f"At {busiest:%a} {busiest.day} {busiest:%b %H:%M} UTC, 3 plans overlap at Depot North, "
        f"which has 2 charge points."
    )
    fourth = _charge(
        dispatcher, make_vehicle("bus 4", location=site), start + timedelta(hours=4), hours=1
    )
    assert fourth.warnings == []  # bus 1 has left; bus 2 is still there: two at most


@pytest.mark.django_db
def test_a_second_identical_plan_is_a_warning_and_both_plans_show_it(
    dispatcher, django_capture_on_commit_callbacks
):
    bus = make_vehicle("bus 12")
    # One window for all three, read from the clock once.
    window = {"scheduled_start": _start(), "scheduled_end": _start() + timedelta(hours=3)}
    first = make_plan(user=dispatcher, location=bus.home_location, accept_warnings=(), **window)
    with pytest.raises(GuardWarnings) as excinfo:
        make_plan(user=dispatcher, location=bus.home_location, accept_warnings=(), **window)
    assert excinfo.value.warnings[0].code == "duplicate"
    assert excinfo.value.warnings[0].text == (
        f"Plan {first.pk} is the same plan: same site, vehicle, window and target."
    )

    # The first plan's warnings follow once the second plan's save has committed.
    with django_capture_on_commit_callbacks(execute=True):
        second = make_plan(
            user=dispatcher, location=bus.home_location, accept_warnings=("duplicate",), **window
        )
    first.refresh_from_db()
    assert [w["code"] for w in first.warnings] == ["duplicate"]
    assert [w["code"] for w in second.warnings] == ["duplicate"]


@pytest.mark.django_db
def test_cancelled_plans_leave_the_guards_and_their_neighbours_warnings(dispatcher):
    bus = make_vehicle("bus 12")
    first = make_plan(user=dispatcher, vehicle=bus, location=bus.home_location)
    services.plan_cancel(plan=first, user=dispatcher, reason="Bus in the workshop.")
    # The same vehicle in the same window is fine once the first plan is called off.
    second = make_plan(user=dispatcher, vehicle=bus, location=bus.home_location, accept_warnings=())
    assert second.warnings == []


@pytest.mark.django_db
def test_an_edit_does_not_ask_again_about_a_warning_already_accepted(dispatcher):
    bus = make_vehicle("bus 12", battery_kwh="140", max_charge_kw="90")
    plan = _charge(dispatcher, bus, _start(), kwh=160, accept_warnings=("battery",))
    plan = services.plan_update(plan=plan, user=dispatcher, status_note="gate 3")
    assert plan.status_note == "gate 3"
    with pytest.raises(GuardWarnings):  # a new kind of warning is asked about
        services.plan_update(
            plan=plan, user=dispatcher, scheduled_end=_start() + timedelta(hours=1)
        )


@pytest.mark.django_db
def test_a_batch_is_checked_in_two_queries_however_long(dispatcher, django_assert_num_queries):
    site = make_location(charge_points=4, charge_point_kw=Decimal("150"))
    vehicles = [make_vehicle(f"bus {n}", location=site) for n in range(40)]
    start = _start()
    for vehicle in vehicles[:20]:
        _charge(dispatcher, vehicle, start, accept_warnings=("charge_points",))

    def batch(n):
        return [
            PlanCandidate(
                location=site,
                vehicle=vehicles[i % 40],
                start=start + timedelta(hours=4 * (i // 40) + 1),
                end=start + timedelta(hours=4 * (i // 40) + 2),
                target_kind="charge",
                expected_charge_kwh=50,
            )
            for i in range(n)
        ]

    with django_assert_num_queries(2):
        one = plans_guard(candidates=batch(1))
    with django_assert_num_queries(2):
        many = plans_guard(candidates=batch(200))
    assert [f.code for f in one[0].errors] == ["overlap"]
    # bus 0 … bus 19 overlap their own plans in the first window; bus 20 … 39 do not.
    assert sum(bool(r.errors) for r in many) == 20
    assert all("charge_points" in r.warning_codes for r in many[:40])


@pytest.mark.django_db
def test_a_batch_checks_its_own_rows_against_each_other(dispatcher):
    bus = make_vehicle("bus 12")
    start = _start()
    rows = [
        PlanCandidate(
            location=bus.home_location,
            vehicle=bus,
            start=start + timedelta(hours=h),
            end=start + timedelta(hours=h + 2),
            target_kind="charge",
            expected_charge_kwh=40,
            label=f"row {n}",
        )
        for n, h in ((1, 0), (2, 1), (3, 2))  # 0–2 h, 1–3 h, 2–4 h
    ]
    reports = plans_guard(candidates=rows)
    # Row 2 is refused, so row 3 (which only touches row 1) meets nothing.
    assert [len(r.errors) for r in reports] == [0, 1, 0]
    assert "bus 12 already has row 1" in reports[1].errors[0].text


@pytest.mark.django_db
def test_an_inactive_vehicle_gets_no_new_plans(dispatcher):
    bus = make_vehicle("bus 12", is_active=False)
    with pytest.raises(ValidationError) as excinfo:
        make_plan(user=dispatcher, vehicle=bus)
    assert excinfo.value.message_dict["vehicle"] == [
        "bus 12 is not active; choose another vehicle."
    ]


@pytest.mark.django_db
def test_the_default_status_text_names_the_vehicle(dispatcher):
    plan = make_plan(user=dispatcher, vehicle=make_vehicle("bus 12"))
    submission = services.plan_submit(plan=plan, user=dispatcher)
    assert f'"status":"bus 12 · mintportal plan {plan.pk} rev 1 by dispatcher"' in (
        submission.body.replace(": ", ":")
    )
    assert set(__import__("json").loads(submission.body)) == {
        "messageId",
        "locationId",
        "transactionId",
        "status",
        "timestamp",
        "scheduledStartTime",
        "scheduledEndTime",
        "expectedRange",
        "averageConsumption",
    }


# Cancel ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_cancelled_draft_is_withdrawn_with_who_and_why(dispatcher):
    plan = make_plan(user=dispatcher)
    plan = services.plan_cancel(plan=plan, user=dispatcher, reason="Route dropped.")
    assert plan.state == PlanState.WITHDRAWN
    event = plan.events.last()
    assert (event.action, event.actor, event.from_state, event.to_state) == (
        "withdrawn",
        "dispatcher",
        "draft",
        "withdrawn",
    )
    assert event.reason == "Withdrawn: Route dropped. MINT never accepted this plan."


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_queued_plan_never_sends_its_message(dispatcher):
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)
    services.plan_cancel(plan=plan, user=dispatcher, reason="Bus broke down.")
    submission.refresh_from_db()
    assert submission.state == "withdrawn"
    assert services.submissions_claim(worker="w1", limit=10) == []
    assert "will not go" in plan.events.last().reason


@pytest.mark.django_db(transaction=True)
def test_an_accepted_plan_is_cancelled_in_the_portal_and_says_mint_still_holds_it(dispatcher):
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)
    submission.state = "accepted"
    submission.save()
    Plan.objects.filter(pk=plan.pk).update(state=PlanState.ACCEPTED)
    services.plan_state_counts_rebuild()
    plan = services.plan_update(plan=plan, user=dispatcher, expected_range_km=100)  # rev 2 draft

    plan = services.plan_cancel(plan=plan, user=dispatcher, reason="Not running.")

    assert plan.state == PlanState.CANCELLED
    assert plan.events.last().reason == (
        "Cancelled in the portal: Not running. MINT's API has no cancel, so MINT still holds "
        "revision 1."
    )


@pytest.mark.django_db(transaction=True)
def test_a_plan_on_the_wire_cannot_be_cancelled_until_it_lands(dispatcher):
    plan = make_plan(user=dispatcher)
    services.plan_submit(plan=plan, user=dispatcher)
    services.submissions_claim(worker="w1", limit=10)
    with pytest.raises(services.PlanActionError, match="being sent"):
        services.plan_cancel(plan=plan, user=dispatcher, reason="x")
    plan.refresh_from_db()
    assert plan.state == PlanState.SENDING


@pytest.mark.django_db
def test_cancel_needs_a_reason_and_happens_once(dispatcher):
    plan = make_plan(user=dispatcher)
    with pytest.raises(ValidationError):
        services.plan_cancel(plan=plan, user=dispatcher, reason="  ")
    services.plan_cancel(plan=plan, user=dispatcher, reason="Gone.")
    with pytest.raises(services.PlanActionError, match="already withdrawn"):
        services.plan_cancel(plan=plan, user=dispatcher, reason="Gone again.")
    with pytest.raises(services.PlanActionError):
        services.plan_submit(plan=plan, user=dispatcher)


@pytest.mark.django_db
def test_an_edit_asks_again_when_an_accepted_warnings_numbers_change(dispatcher):
    bus = make_vehicle("bus 12", battery_kwh="140", max_charge_kw="300")
    plan = _charge(dispatcher, bus, _start(), kwh=160, accept_warnings=("battery",))
    with pytest.raises(GuardWarnings) as excinfo:
        services.plan_update(plan=plan, user=dispatcher, expected_charge_kwh=1000)
    assert excinfo.value.warnings[0].text.startswith("Needs 1000 kWh")
