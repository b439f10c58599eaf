"""Small builders for the tests: real rows made through the services, never by hand."""

import contextlib
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from plans import services
from plans.models import Location, Plan, Vehicle


def make_location(
    mint_location_id: str = "BE-BRU-01",
    name: str = "Brussels Depot",
    time_zone: str = "Europe/Brussels",
    **extra,
) -> Location:
    location, _ = Location.objects.get_or_create(
        mint_location_id=mint_location_id,
        defaults={"name": name, "time_zone": time_zone, **extra},
    )
    return location


def make_plan(*, user, location: Location | None = None, kind: str = "range", **extra) -> Plan:
    start = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    values = {
        "location": location or make_location(),
        "scheduled_start": start,
        "scheduled_end": start + timedelta(hours=3),
        "target_kind": kind,
    }
    if kind == "range":
        values.update(expected_range_km=240, average_consumption=Decimal("18.50"))
    else:
        values.update(expected_charge_kwh=60)
    values.update(extra)
    # Many tests make several plans alike on purpose; the guards' tests say what they accept.
    values.setdefault("accept_warnings", ("duplicate",))
    return services.plan_create(user=user, **values)


def make_vehicle(
    name: str = "bus 12",
    *,
    location: Location | None = None,
    battery_kwh: str = "300",
    default_consumption: str = "80",
    max_charge_kw: str = "90",
    **extra,
) -> Vehicle:
    vehicle, _ = Vehicle.objects.get_or_create(
        name=name,
        defaults={
            "home_location": location or make_location(),
            "battery_kwh": Decimal(battery_kwh),
            "default_consumption": Decimal(default_consumption),
            "max_charge_kw": Decimal(max_charge_kw),
            **extra,
        },
    )
    return vehicle


def deliver(plan: Plan, user, *outcomes, at: list | None = None) -> Plan:
    """Submit ``plan`` (a draft) and record one attempt per outcome for its message through the
    worker's services, as if MINT answered so. With ``at``, each attempt (its claim, send and
    record) happens at that time, as far as the services can tell."""
    from unittest import mock

    from plans.models import PlanState

    if plan.state == PlanState.DRAFT:
        services.plan_submit(plan=plan, user=user)
    for n, outcome in enumerate(outcomes):
        started = at[n] if at else timezone.now()
        clock = mock.patch.object(timezone, "now", lambda started=started: started)
        with clock if at else contextlib.nullcontext():
            claimed = services.submissions_claim(worker="test-worker", limit=100, early=True)
            mine = [s for s in claimed if s.plan_id == plan.pk]
            others = [s for s in claimed if s.plan_id != plan.pk]
            services.submissions_release(submissions=others, worker="test-worker", reason="Later.")
            sent = services.SentMessage(submission=mine[0], outcome=outcome, started_at=started)
            services.submissions_record_outcomes(sent=[sent], worker="test-worker")
    plan.refresh_from_db()
    return plan


def seed_demo() -> str:
    """``manage.py seed_demo`` as ``make run`` runs it for a newcomer: DEBUG and the built-in
    sandbox (the only setting where it creates the demo logins). Returns what it printed."""
    from io import StringIO

    from django.core.management import call_command
    from django.test import override_settings

    out = StringIO()
    with override_settings(DEBUG=True, MINT_BUILTIN_SANDBOX=True):
        call_command("seed_demo", stdout=out)
    return out.getvalue()


def deliver_all(plans: list[Plan], *, user, outcome: str) -> None:
    """Submit ``plans`` and have them end as the worker would leave them: ``"failed"`` (the
    delivery deadline passed during an outage), ``"rejected"`` (MINT said 400) or
    ``"accepted"``; through the delivery services, so history and counts stay true."""
    from plans.mint.outcomes import Accepted, Rejected
    from plans.models import Submission

    submissions = [services.plan_submit(plan=plan, user=user) for plan in plans]
    if outcome == "failed":
        Submission.objects.filter(pk__in=[s.pk for s in submissions]).update(
            deadline=timezone.now() - timedelta(seconds=1)
        )
        services.submissions_fail_overdue(worker="test-worker", limit=len(plans))
    else:
        claimed = services.submissions_claim(worker="test-worker", limit=10_000)
        mine = {plan.pk for plan in plans}
        services.submissions_release(
            submissions=[s for s in claimed if s.plan_id not in mine],
            worker="test-worker",
            reason="Not this one.",
        )
        claimed = [s for s in claimed if s.plan_id in mine]
        now = timezone.now()
        answer = (
            Accepted(http_status=200, duration_ms=12, body_sent="{}")
            if outcome == "accepted"
            else Rejected(
                http_status=400, duration_ms=12, body_sent="{}", messages=["Unknown location."]
            )
        )
        services.submissions_record_outcomes(
            sent=[services.SentMessage(s, answer, now) for s in claimed], worker="test-worker"
        )
    for plan in plans:
        plan.refresh_from_db()
