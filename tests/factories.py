"""Small builders for the tests: real rows made through the services, never by hand."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from plans import services
from plans.models import Location, Plan


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
    return services.plan_create(user=user, **values)
