"""The guards: the one place that says whether a plan can work, for every path into the database.

The form, ``plan_create`` / ``plan_update``, the schedules and every bulk path call
``plans_guard``. It answers for a whole batch of candidate plans in two queries, however many
there are, so a week of a depot's schedules costs what one plan does.

- *Error* (never saved): the vehicle already has a plan whose window overlaps this one. Windows
  that only touch (one ends as the next starts) are fine.
- *Warnings* (saved only when the dispatcher says so, then shown on the plan wherever it
  appears): energy beyond the vehicle's battery; energy that cannot fit in the window at the
  lower of the vehicle's and the site's power; more plans at once at the site than it has
  charge points; an identical plan (same site, vehicle, window and target) already exists.

Withdrawn and cancelled plans take no part. Range energy is km × consumption / 100, with the
vehicle's default consumption when the plan gives none.
"""

import logging
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import OperationalError, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from plans.models import (
    CALLED_OFF_STATES,
    PLAN_MAX_WINDOW,
    Location,
    Plan,
    TargetKind,
    Vehicle,
)
from plans.timezones import span_text, utc_to_local, wall_text

logger = logging.getLogger("plans.guards")

#: Warning codes, in the order they are shown.
WARNING_CODES = ("battery", "power", "charge_points", "duplicate")
#: How far before a window a plan overlapping it can start: the longest window (7 days on the
#: site's clock) plus a day, since a week across an autumn clock change lasts 7 d 1 h.
LOOKBACK = PLAN_MAX_WINDOW + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PlanCandidate:
    """A plan as it would be saved: new (``pk`` None) or an edit of plan ``pk``."""

    location: Location
    vehicle: Vehicle | None
    start: datetime
    end: datetime
    target_kind: str
    expected_range_km: int | None = None
    average_consumption: Decimal | None = None
    expected_charge_kwh: int | None = None
    pk: int | None = None
    #: How a finding names this candidate when another one in the same batch meets it.
    label: str = ""

    @classmethod
    def of(cls, plan: Plan, **overrides) -> "PlanCandidate":
        values = {
            "location": plan.location,
            "vehicle": plan.vehicle,
            "start": plan.scheduled_start,
            "end": plan.scheduled_end,
            "target_kind": plan.target_kind,
            "expected_range_km": plan.expected_range_km,
            "average_consumption": plan.average_consumption,
            "expected_charge_kwh": plan.expected_charge_kwh,
            "pk": plan.pk,
            "label": f"plan {plan.pk}" if plan.pk else "",
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    #: The plan field it is about, so the form can show it beside what caused it.
    field: str
    text: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "text": self.text}


@dataclass(slots=True)
class GuardReport:
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def warning_codes(self) -> set[str]:
        return {w.code for w in self.warnings}

    def stored_warnings(self) -> list[dict[str, str]]:
        return [w.as_json() for w in self.warnings]


class GuardWarnings(Exception):
    """The plan has warnings the dispatcher has not yet chosen to save anyway."""

    def __init__(self, warnings: list[Finding]) -> None:
        super().__init__("; ".join(w.text for w in warnings))
        self.warnings = warnings


@dataclass(frozen=True, slots=True)
class _Stay:
    """A plan already in the database, as the guards compare it (no model instance)."""

    pk: int
    vehicle_id: int | None
    location_id: int
    start: datetime
    end: datetime
    target: tuple
    label: str


def plan_energy_kwh(
    *,
    target_kind: str,
    expected_range_km: int | None,
    average_consumption: Decimal | None,
    expected_charge_kwh: int | None,
    vehicle: Vehicle | None,
) -> Decimal | None:
    """What the plan asks for in kWh, when that can be known."""
    if target_kind == TargetKind.CHARGE:
        return Decimal(expected_charge_kwh) if expected_charge_kwh else None
    consumption = average_consumption or (vehicle.default_consumption if vehicle else None)
    if expected_range_km and consumption:
        return Decimal(expected_range_km) * Decimal(consumption) / 100
    return None


def _kwh(value: Decimal) -> str:
    return f"{value:.0f} kWh"


def _target(c: PlanCandidate) -> tuple:
    if c.target_kind == TargetKind.CHARGE:
        return ("charge", c.expected_charge_kwh)
    return ("range", c.expected_range_km, c.average_consumption and Decimal(c.average_consumption))


def _stays(candidates: list[PlanCandidate]) -> list[_Stay]:
    """The live plans that could meet any candidate: those of the same vehicles, and those at
    the same sites, starting at most a plan's longest window before the earliest candidate."""
    vehicle_ids = {c.vehicle.pk for c in candidates if c.vehicle}
    site_ids = {c.location.pk for c in candidates}
    low = min(c.start for c in candidates) - LOOKBACK
    high = max(c.end for c in candidates)
    columns = (
        "pk",
        "vehicle_id",
        "location_id",
        "scheduled_start",
        "scheduled_end",
        "target_kind",
        "expected_range_km",
        "average_consumption",
        "expected_charge_kwh",
    )
    window = Q(scheduled_start__gt=low, scheduled_start__lt=high)
    live = Plan.objects.exclude(state__in=CALLED_OFF_STATES)
    rows: dict[int, tuple] = {}
    # Two index range scans (plan_vehicle_start_idx, plan_site_start_state_idx) rather than one
    # OR, which SQLite and PostgreSQL would answer by reading far more of the table.
    if vehicle_ids:
        for row in live.filter(window, vehicle_id__in=vehicle_ids).values_list(*columns):
            rows[row[0]] = row
    for row in live.filter(window, location_id__in=site_ids).values_list(*columns):
        rows[row[0]] = row
    stays = []
    for pk, vehicle_id, site_id, start, end, kind, km, consumption, kwh in rows.values():
        target = ("charge", kwh) if kind == TargetKind.CHARGE else ("range", km, consumption)
        stays.append(_Stay(pk, vehicle_id, site_id, start, end, target, f"plan {pk}"))
    return stays


class _Timeline:
    """Stays sorted by start, for finding those that overlap a window without reading all."""

    def __init__(self) -> None:
        self.stays: list[_Stay] = []
        self._starts: list[datetime] = []
        self._sorted = True

    def add(self, stay: _Stay) -> None:
        self.stays.append(stay)
        self._sorted = False

    def overlapping(self, start: datetime, end: datetime) -> list[_Stay]:
        if not self._sorted:
            self.stays.sort(key=lambda s: s.start)
            self._starts = [s.start for s in self.stays]
            self._sorted = True
        first = bisect_left(self._starts, start - LOOKBACK)
        last = bisect_left(self._starts, end)
        return [s for s in self.stays[first:last] if s.end > start]


def _busiest(stays: list[_Stay], start: datetime, end: datetime) -> tuple[int, datetime]:
    """The most stays at once within [start, end), and when that first happens."""
    events = []
    for stay in stays:
        events.append((max(stay.start, start), 1))
        events.append((min(stay.end, end), -1))
    # At the same instant an end comes before a start: touching windows do not overlap.
    events.sort(key=lambda e: (e[0], e[1]))
    most, at, now = 0, start, 0
    for instant, step in events:
        now += step
        if now > most:
            most, at = now, instant
    return most, at


def _identity(stay: _Stay) -> tuple:
    """What makes two plans the same plan: site, vehicle, window and target."""
    return (stay.location_id, stay.vehicle_id, stay.start, stay.end, stay.target)


@dataclass
class _Known:
    """Everything one batch is checked against, indexed the ways the guards look things up."""

    saved: bool
    by_vehicle: dict[int, _Timeline] = field(default_factory=lambda: defaultdict(_Timeline))
    by_site: dict[int, _Timeline] = field(default_factory=lambda: defaultdict(_Timeline))
    alike: dict[tuple, list[_Stay]] = field(default_factory=lambda: defaultdict(list))
    #: Rows refused for an error: not saved, so the rows after them do not meet them.
    refused: set[int] = field(default_factory=set)
    #: (site, start, end) → the busiest moment there. Windows repeat in a batch (a depot's
    #: buses all arrive at 18:30), and while no row is refused the answer cannot differ.
    busiest: dict[tuple, tuple[int, datetime]] = field(default_factory=dict)

    def add(self, stay: _Stay) -> None:
        if stay.vehicle_id:
            self.by_vehicle[stay.vehicle_id].add(stay)
        self.by_site[stay.location_id].add(stay)
        self.alike[_identity(stay)].append(stay)


def plans_guard(
    *,
    candidates: list[PlanCandidate],
    saved: bool = False,
    called_off: set[int] | frozenset[int] = frozenset(),
) -> list[GuardReport]:
    """The guards' findings for each candidate, in order, in two queries for the whole batch.

    New candidates (``saved=False``) are each also checked against the ones before them in the
    batch, as if saved in that order. ``saved=True`` re-reads plans that are already in the
    database (their pks given), each against all the others, to bring stored warnings up to date.
    ``called_off``: saved plans the same batch calls off (an import that is the complete plan of
    its days), met by no one, as once they are withdrawn.
    """
    if not candidates:
        return []
    known = _Known(saved=saved)
    # New versions of saved plans stand for them: the old rows are not met, by anyone.
    replaced = set(called_off) | (set() if saved else {c.pk for c in candidates if c.pk})
    for stay in _stays(candidates):
        if stay.pk not in replaced:
            known.add(stay)
    batch = [
        _Stay(
            -(i + 1),
            c.vehicle.pk if c.vehicle else None,
            c.location.pk,
            c.start,
            c.end,
            _target(c),
            c.label or f"row {i + 1} of this batch",
        )
        for i, c in enumerate(candidates)
    ]
    if not saved:
        for stay in batch:
            known.add(stay)
    reports = []
    for i, (candidate, me) in enumerate(zip(candidates, batch, strict=True)):
        report = _guard_one(candidate, me, i, known)
        if report.errors:
            known.refused.add(me.pk)
        reports.append(report)
    return reports


def _guard_one(candidate: PlanCandidate, me: _Stay, index: int, known: _Known) -> GuardReport:
    def counts(other: _Stay, *, earlier_only: bool) -> bool:
        """Whether ``other`` is compared with this candidate: never itself; of the batch, only
        the rows before it where the order matters (the first of two claims wins)."""
        if other is me or other.pk in known.refused or (candidate.pk and other.pk == candidate.pk):
            return False
        return not (earlier_only and other.pk < 0 and -other.pk - 1 >= index)

    report = GuardReport()
    site, vehicle, zone = candidate.location, candidate.vehicle, candidate.location.time_zone

    def when(instant: datetime) -> str:
        return wall_text(utc_to_local(instant, zone))

    if vehicle:
        for other in known.by_vehicle[vehicle.pk].overlapping(me.start, me.end):
            if counts(other, earlier_only=True):
                report.errors.append(
                    Finding(
                        "overlap",
                        "vehicle",
                        f"{vehicle.name} already has {other.label} from "
                        f"{when(other.start)} to {when(other.end)}, which "
                        f"overlaps this window: a vehicle cannot be in two plans at once.",
                    )
                )
                break
    energy = plan_energy_kwh(
        target_kind=candidate.target_kind,
        expected_range_km=candidate.expected_range_km,
        average_consumption=candidate.average_consumption,
        expected_charge_kwh=candidate.expected_charge_kwh,
        vehicle=vehicle,
    )
    target_field = (
        "expected_charge_kwh" if candidate.target_kind == TargetKind.CHARGE else "expected_range_km"
    )
    if energy is not None and vehicle and energy > vehicle.battery_kwh:
        report.warnings.append(
            Finding(
                "battery",
                target_field,
                f"Needs {_kwh(energy)}, more than {vehicle.name}'s usable battery of "
                f"{_kwh(vehicle.battery_kwh)}.",
            )
        )
    limits = []
    if vehicle:
        limits.append((Decimal(vehicle.max_charge_kw), f"{vehicle.name} charges"))
    if site.charge_point_kw:
        limits.append((Decimal(site.charge_point_kw), f"{site.name}'s charge points deliver"))
    if energy is not None and limits:
        power, who = min(limits, key=lambda limit: limit[0])
        fits = power * Decimal((me.end - me.start).total_seconds()) / 3600
        if energy > fits:
            report.warnings.append(
                Finding(
                    "power",
                    target_field,
                    f"Needs {_kwh(energy)} in {span_text(me.end - me.start)}; {who} at "
                    f"{power:.0f} kW at most: about {_kwh(fits)} fit.",
                )
            )
    if site.charge_points:
        # Every stay here counts, this one as it will be (a new row or version is in the
        # timeline itself, a saved plan is there as it is), so the answer is the window's.
        key = (site.pk, me.start, me.end)
        cacheable = not known.refused
        if cacheable and key in known.busiest:
            most, at = known.busiest[key]
        else:
            here = known.by_site[site.pk].overlapping(me.start, me.end)
            others = [s for s in here if counts(s, earlier_only=False)]
            most, at = _busiest([*others, me], me.start, me.end)
            if cacheable:
                known.busiest[key] = (most, at)
        if most > site.charge_points:
            points = f"{site.charge_points} charge point{'s' if site.charge_points != 1 else ''}"
            report.warnings.append(
                Finding(
                    "charge_points",
                    "start_local",
                    f"At {when(at)}, {most} plans overlap at {site.name}, which has {points}.",
                )
            )
    same = next((s for s in known.alike[_identity(me)] if counts(s, earlier_only=True)), None)
    if same is not None:
        report.warnings.append(
            Finding(
                "duplicate",
                "location",
                f"{same.label[0].upper()}{same.label[1:]} is the same plan: same site, "
                f"vehicle, window and target.",
            )
        )
    return report


def plan_warnings_refresh(
    *,
    windows: list[tuple[int, datetime, datetime]],
    exclude: set[int] = frozenset(),
    created_before: datetime | None = None,
) -> int:
    """Work out again the stored warnings of the live plans at these sites that overlap these
    windows (``(site id, start, end)``): a plan saved, moved or called off next to them can
    add or remove a charge-point or duplicate warning of theirs. ``exclude`` or
    ``created_before`` leave out plans whose warnings were just worked out. Returns how many
    changed."""
    if not windows:
        return 0
    match = Q()
    for site_id, start, end in windows:
        match |= Q(
            location_id=site_id,
            scheduled_start__gt=start - LOOKBACK,
            scheduled_start__lt=end,
            scheduled_end__gt=start,
        )
    plans = Plan.objects.filter(match).exclude(state__in=CALLED_OFF_STATES)
    if exclude:
        plans = plans.exclude(pk__in=exclude)
    if created_before is not None:
        plans = plans.filter(created_at__lt=created_before)
    plans = list(plans.select_related("location", "vehicle"))
    reports = plans_guard(candidates=[PlanCandidate.of(p) for p in plans], saved=True)
    changed = []
    for plan, report in zip(plans, reports, strict=True):
        stored = report.stored_warnings()
        if stored != plan.warnings:
            plan.warnings = stored
            changed.append(plan)
    Plan.objects.bulk_update(changed, ["warnings"])
    return len(changed)


def plan_warnings_refresh_for(
    *, vehicle: Vehicle | None = None, site: Location | None = None
) -> int:
    """Work out again the warnings of the vehicle's or the site's plans that have not ended,
    after an administrator changed its battery, power or charge points."""
    plans = Plan.objects.filter(scheduled_end__gt=timezone.now()).exclude(
        state__in=CALLED_OFF_STATES
    )
    if vehicle is not None:
        plans = plans.filter(vehicle=vehicle)
    if site is not None:
        plans = plans.filter(location=site)
    spans = (
        plans.order_by()
        .values("location_id")
        .annotate(start=Min("scheduled_start"), end=Max("scheduled_end"))
    )
    return plan_warnings_refresh(
        windows=[(span["location_id"], span["start"], span["end"]) for span in spans]
    )


def plan_warnings_refresh_after_commit(
    *,
    windows: list[tuple[int, datetime, datetime]],
    exclude: set[int] = frozenset(),
    created_before: datetime | None = None,
) -> None:
    """``plan_warnings_refresh`` once the current transaction has committed, in one of its own.

    Neighbours' warnings are derived flags. Updating their rows inside the transaction that
    saves a plan would hold those rows until it commits, in whatever order plans are saved:
    two saves side by side could wait on each other. Done after, a save locks only its own plan
    and the counters, always in that order. A refresh that meets a lock conflict is tried again.
    """

    def refresh() -> None:
        for attempt in range(3):
            try:
                with transaction.atomic():
                    plan_warnings_refresh(
                        windows=windows, exclude=exclude, created_before=created_before
                    )
                return
            except OperationalError:
                if attempt == 2:
                    logger.warning("neighbouring plans' warnings not refreshed", exc_info=True)

    transaction.on_commit(refresh)


def plan_warnings_refresh_around(*, plans: list, made_at: datetime) -> None:
    """After new plans were inserted in bulk (schedules, imports, copies): their neighbours may
    gain a charge-point or duplicate warning. One window per site, spanning the new plans
    there; the new plans themselves (made from ``made_at`` on) have theirs already."""
    spans: dict[int, list[datetime]] = {}
    for plan in plans:
        low, high = spans.setdefault(plan.location_id, [plan.scheduled_start, plan.scheduled_end])
        spans[plan.location_id] = [min(low, plan.scheduled_start), max(high, plan.scheduled_end)]
    plan_warnings_refresh_after_commit(
        windows=[(site, low, high) for site, (low, high) in spans.items()],
        created_before=made_at,
    )
