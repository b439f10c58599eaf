"""Schedule writes: create, edit (after showing its effect), skip, pause, end, and materialise.

A schedule's occurrences become ordinary plans, one per schedule and arrival day (a unique
constraint), when they come within ``SCHEDULE_HORIZON_DAYS``. Materialising runs in every
worker's loop and on demand; it is idempotent, and several workers share it safely (each
locks the schedules it works on, ``SKIP LOCKED`` on PostgreSQL; SQLite serialises writers).
Every plan it makes passes the same guards as a typed one: a day whose plan would put the
vehicle in two places is not made, and the schedule's history says why, once.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from plans import selectors
from plans.models import (
    CALLED_OFF_STATES,
    PLAN_MAX_AHEAD,
    PLAN_MAX_WINDOW,
    Location,
    Plan,
    PlanEvent,
    PlanState,
    Schedule,
    ScheduleEvent,
    ScheduleException,
    Vehicle,
)
from plans.schedule_rules import (
    Occurrence,
    ScheduleSpec,
    next_occurrences,
    occurrence_on,
    occurrences,
)
from plans.services.guards import (
    WARNING_CODES,
    Finding,
    GuardReport,
    PlanCandidate,
    plan_warnings_refresh_around,
    plans_guard,
)
from plans.services.plan import (
    PlanActionError,
    _event,
    _record,
    inactive_errors,
    plan_cancel,
    plan_submit,
    plan_update,
)
from plans.timezones import day_text, utc_to_local

logger = logging.getLogger("plans.schedules")

#: What a dispatcher sets on a schedule.
SCHEDULE_FIELDS = (
    "vehicle",
    "location",
    "weekdays",
    "arrive_at",
    "depart_at",
    "depart_day_offset",
    "target_kind",
    "expected_range_km",
    "average_consumption",
    "expected_charge_kwh",
    "status_note",
    "valid_from",
    "valid_until",
    "auto_submit",
)
#: Plan states a schedule edit re-sends as a new revision: MINT has (or may have) the old one.
_SENT_STATES = (
    PlanState.QUEUED,
    PlanState.RETRYING,
    PlanState.ACCEPTED,
    PlanState.REJECTED,
    PlanState.FAILED,
)


def schedule_spec(
    schedule: Schedule, exceptions: list[ScheduleException] | None = None
) -> ScheduleSpec:
    if exceptions is None:
        exceptions = list(schedule.exceptions.all()) if schedule.pk else []
    return ScheduleSpec(
        weekdays=tuple(schedule.weekday_numbers),
        arrive_at=schedule.arrive_at,
        depart_at=schedule.depart_at,
        depart_day_offset=schedule.depart_day_offset,
        time_zone=schedule.time_zone,
        valid_from=schedule.valid_from,
        valid_until=schedule.valid_until,
        exceptions=tuple((e.first_day, e.last_day, _exception_note(e)) for e in exceptions),
    )


def _exception_note(exception: ScheduleException) -> str:
    what = "Skipped" if exception.kind == ScheduleException.Kind.SKIP else "Paused"
    return f"{what}: {exception.reason}" if exception.reason else what


def _candidate(schedule: Schedule, occurrence: Occurrence, pk: int | None = None) -> PlanCandidate:
    return PlanCandidate(
        location=schedule.location,
        vehicle=schedule.vehicle,
        start=occurrence.start,
        end=occurrence.end,
        target_kind=schedule.target_kind,
        expected_range_km=schedule.expected_range_km,
        average_consumption=schedule.average_consumption,
        expected_charge_kwh=schedule.expected_charge_kwh,
        pk=pk,
        label=f"plan {pk}" if pk else f"the {day_text(occurrence.day)} plan",
    )


def schedule_validate(schedule: Schedule) -> None:
    """The rules for a schedule, by field; the form says the same beside the fields."""
    errors: dict[str, list[str]] = {}
    try:
        schedule.full_clean(
            exclude=["created_by", "updated_by", "time_zone"], validate_unique=False
        )
    except ValidationError as exc:
        errors.update(exc.message_dict)
    length = (
        ScheduleSpec(
            weekdays=(),
            arrive_at=schedule.arrive_at,
            depart_at=schedule.depart_at,
            depart_day_offset=schedule.depart_day_offset or 0,
            time_zone=schedule.time_zone,
            valid_from=schedule.valid_from,
            valid_until=None,
        ).wall_length
        if schedule.arrive_at and schedule.depart_at
        else None
    )
    if length is not None:
        if length <= timedelta(0):
            errors.setdefault("depart_at", []).append(
                "The vehicle must leave after it arrives: choose a later time or a later day."
            )
        elif length > PLAN_MAX_WINDOW:
            errors.setdefault("depart_day_offset", []).append(
                "A stay lasts at most 7 days; check the days."
            )
    inactive = inactive_errors(
        location=schedule.location if schedule.location_id else None,
        vehicle=schedule.vehicle if schedule.vehicle_id else None,
    )
    for name, messages in inactive.items():
        errors.setdefault(name, []).extend(messages)
    today = timezone.now().date()
    if schedule.valid_from and schedule.valid_from > today + PLAN_MAX_AHEAD:
        errors.setdefault("valid_from", []).append(
            "A schedule can start at most a year ahead; check the year."
        )
    if errors:
        raise ValidationError(errors)


# Preview -------------------------------------------------------------------------------------


@dataclass
class PreviewRow:
    occurrence: Occurrence
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    plan_id: int | None = None
    #: Why this day's plan does not follow the schedule (called off, or detached), or "".
    note: str = ""


def schedule_preview(
    *, schedule: Schedule, spec: ScheduleSpec | None = None, count: int = 14
) -> list[PreviewRow]:
    """The next ``count`` occurrences of a schedule (saved or being typed), each with what the
    guards would say of its plan. The schedule's own plans stand for their days, so an edit is
    not reported as overlapping the plans it is about to change."""
    spec = spec or schedule_spec(schedule)
    found = next_occurrences(spec, after=timezone.now(), count=count)
    own: dict[date, tuple[int, str, bool]] = {}
    if schedule.pk:
        own = {
            day: (pk, state, detached)
            for day, pk, state, detached in Plan.objects.filter(
                schedule=schedule, occurrence_date__in=[o.day for o in found]
            ).values_list("occurrence_date", "pk", "state", "schedule_detached")
        }
    rows = []
    for occurrence in found:
        pk, state, detached = own.get(occurrence.day, (None, "", False))
        row = PreviewRow(occurrence=occurrence, plan_id=pk)
        # A day whose plan was called off, or edited on its own, keeps that plan: say so, or
        # the row reads as a day the schedule covers at these times.
        if state in CALLED_OFF_STATES:
            row.note = f"Plan {pk} was {state}: this day gets no plan (duplicate it to plan again)."
        elif detached:
            row.note = f"Plan {pk} was edited on its own and keeps its own times and target."
        rows.append(row)
    live = [row for row in rows if not row.occurrence.excepted and not row.note]
    reports = plans_guard(
        candidates=[_candidate(schedule, row.occurrence, row.plan_id) for row in live]
    )
    for row, report in zip(live, reports, strict=True):
        row.errors, row.warnings = report.errors, report.warnings
    return rows


def schedule_next(*, spec: ScheduleSpec, after: datetime) -> Occurrence | None:
    """The next occurrence that has not ended and is not skipped or paused."""
    found = next_occurrences(spec, after=after, count=1, include_excepted=False)
    return found[0] if found else None


# Materialising -------------------------------------------------------------------------------


@dataclass
class MaterializeResult:
    created: list[int] = field(default_factory=list)
    conflicts: int = 0
    submitted: int = 0


def schedules_materialize(
    *, now: datetime | None = None, schedule_ids: list[int] | None = None
) -> MaterializeResult:
    """Make the plans of every occurrence inside the horizon that has none yet. Idempotent:
    running it twice, or in two workers at once, makes each plan once."""
    now = now or timezone.now()
    result = MaterializeResult()
    with transaction.atomic():
        today = now.date()
        horizon = timedelta(days=settings.SCHEDULE_HORIZON_DAYS)
        running = Schedule.objects.filter(
            Q(valid_until__isnull=True) | Q(valid_until__gte=today - timedelta(days=8)),
            valid_from__lte=today + horizon + timedelta(days=1),
        )
        if schedule_ids is not None:
            running = running.filter(pk__in=schedule_ids)
        schedules = list(
            running.select_related("vehicle", "location", "updated_by")
            .select_for_update(of=("self",), skip_locked=True)
            .order_by("pk")
        )
        if not schedules:
            return result
        ids = [s.pk for s in schedules]
        # The same lock a typed plan takes (plan_create): a dispatcher saving a plan for one of
        # these vehicles waits, so neither misses the other's window.
        list(
            Vehicle.objects.select_for_update()
            .filter(pk__in={s.vehicle_id for s in schedules})
            .order_by("pk")
            .values("pk")
        )
        exceptions = defaultdict(list)
        for exception in ScheduleException.objects.filter(
            schedule_id__in=ids, last_day__gte=today - timedelta(days=8)
        ):
            exceptions[exception.schedule_id].append(exception)
        wanted: list[tuple[Schedule, Occurrence]] = []
        for schedule in schedules:
            spec = schedule_spec(schedule, exceptions[schedule.pk])
            local_today = utc_to_local(now, schedule.time_zone).date()
            for occurrence in occurrences(
                spec, local_today - timedelta(days=PLAN_MAX_WINDOW.days), local_today + horizon
            ):
                if occurrence.end > now and occurrence.start < now + horizon:
                    wanted.append((schedule, occurrence))
        if not wanted:
            return result
        first_day = min(o.day for _, o in wanted)
        made = set(
            Plan.objects.filter(schedule_id__in=ids, occurrence_date__gte=first_day).values_list(
                "schedule_id", "occurrence_date"
            )
        )
        told = set(
            ScheduleEvent.objects.filter(
                schedule_id__in=ids,
                action=ScheduleEvent.Action.CONFLICT,
                occurrence_date__gte=first_day,
            ).values_list("schedule_id", "occurrence_date")
        )
        missing = [(s, o) for s, o in wanted if (s.pk, o.day) not in made]
        if not missing:
            return result
        possible = [(s, o) for s, o in missing if not o.impossible]
        found = iter(plans_guard(candidates=[_candidate(s, o) for s, o in possible]))
        reports = [GuardReport() if o.impossible else next(found) for _, o in missing]
        plans, conflicts = [], []
        for (schedule, occurrence), report in zip(missing, reports, strict=True):
            problem = _cannot_make(schedule, occurrence, report)
            if problem:
                if (schedule.pk, occurrence.day) not in told:
                    conflicts.append(
                        ScheduleEvent(
                            schedule=schedule,
                            at=now,
                            action=ScheduleEvent.Action.CONFLICT,
                            occurrence_date=occurrence.day,
                            actor=f"schedule {schedule.pk}",
                            text=f"No plan made for {day_text(occurrence.day, year=True)}: "
                            f"{problem}",
                        )
                    )
                result.conflicts += 1
                continue
            plans.append(
                Plan(
                    **_plan_values(schedule, occurrence),
                    schedule=schedule,
                    occurrence_date=occurrence.day,
                    warnings=report.stored_warnings(),
                    created_by=schedule.updated_by,
                    updated_by=schedule.updated_by,
                )
            )
        ScheduleEvent.objects.bulk_create(conflicts)
        made_at = timezone.now()
        Plan.objects.bulk_create(plans)
        _record(
            *(
                _event(
                    plan=plan,
                    action=PlanEvent.Action.CREATED,
                    from_state="",
                    to_state=PlanState.DRAFT,
                    actor=f"schedule {plan.schedule_id}",
                    reason=f"Made by schedule {plan.schedule_id} for "
                    f"{day_text(plan.occurrence_date, year=True)}.",
                    at=now,
                )
                for plan in plans
            )
        )
        if plans:
            plan_warnings_refresh_around(plans=plans, made_at=made_at)
        result.created = [p.pk for p in plans]
        for plan in plans:
            schedule = plan.schedule
            if not schedule.auto_submit:
                continue
            if not schedule.updated_by.has_perm("plans.submit_plan"):
                logger.warning(
                    "schedule plan left as a draft: its owner may no longer submit",
                    extra={"schedule_id": schedule.pk, "plan_id": plan.pk},
                )
                continue
            plan_submit(plan=plan, user=schedule.updated_by)
            result.submitted += 1
    if result.created or result.conflicts:
        logger.info(
            "schedules materialised",
            extra={"plans_made": len(result.created), "days_not_made": result.conflicts},
        )
    return result


def _cannot_make(schedule: Schedule, occurrence: Occurrence, report: GuardReport) -> str:
    if occurrence.impossible:
        return occurrence.dst_notes[-1]
    if not schedule.location.is_active:
        return f"{schedule.location.name} is no longer active."
    if not schedule.vehicle.is_active:
        return f"{schedule.vehicle.name} is no longer active."
    if report.errors:
        return report.errors[0].text
    return ""


# Create, edit --------------------------------------------------------------------------------


def _log(
    schedule: Schedule, action: str, user: AbstractBaseUser, text: str, day: date | None = None
) -> None:
    ScheduleEvent.objects.create(
        schedule=schedule,
        at=timezone.now(),
        action=action,
        occurrence_date=day,
        user=user,
        actor=user.get_username(),
        text=text,
    )


@transaction.atomic
def schedule_create(
    *,
    user: AbstractBaseUser,
    vehicle: Vehicle,
    location: Location,
    weekdays: str,
    arrive_at: time,
    depart_at: time,
    depart_day_offset: int,
    target_kind: str,
    valid_from: date,
    valid_until: date | None = None,
    expected_range_km: int | None = None,
    average_consumption: Decimal | None = None,
    expected_charge_kwh: int | None = None,
    status_note: str = "",
    auto_submit: bool = False,
) -> tuple[Schedule, MaterializeResult]:
    """Save a schedule and make the plans of its days inside the horizon at once."""
    schedule = Schedule(
        vehicle=vehicle,
        location=location,
        time_zone=location.time_zone,
        weekdays="".join(sorted(set(weekdays))),
        arrive_at=arrive_at,
        depart_at=depart_at,
        depart_day_offset=depart_day_offset,
        target_kind=target_kind,
        expected_range_km=expected_range_km if target_kind == "range" else None,
        average_consumption=average_consumption if target_kind == "range" else None,
        expected_charge_kwh=expected_charge_kwh if target_kind == "charge" else None,
        status_note=status_note,
        valid_from=valid_from,
        valid_until=valid_until,
        auto_submit=auto_submit,
        created_by=user,
        updated_by=user,
    )
    schedule_validate(schedule)
    schedule.save()
    _log(schedule, ScheduleEvent.Action.CREATED, user, f"Created: {schedule_summary(schedule)}.")
    return schedule, schedules_materialize(schedule_ids=[schedule.pk])


def schedule_summary(schedule: Schedule) -> str:
    """``bus 12 at Depot North, Mon–Fri 18:30 → 05:45 next day, 160 kWh``"""
    later = {0: "", 1: " next day"}.get(
        schedule.depart_day_offset, f" {schedule.depart_day_offset} days later"
    )
    if schedule.target_kind == "charge":
        target = f"{schedule.expected_charge_kwh} kWh"
    else:
        target = f"{schedule.expected_range_km} km"
    until = f" until {schedule.valid_until:%d %b %Y}" if schedule.valid_until else ""
    return (
        f"{schedule.vehicle.name} at {schedule.location.name}, {schedule.weekdays_text} "
        f"{schedule.arrive_at:%H:%M} → {schedule.depart_at:%H:%M}{later}, {target}, "
        f"from {schedule.valid_from:%d %b %Y}{until}"
    )


@dataclass
class PlanChange:
    plan: Plan
    #: The plan's day as the edited schedule has it, or None: the day leaves the schedule.
    occurrence: Occurrence | None
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def resends(self) -> bool:
        return self.occurrence is not None and self.plan.state in _SENT_STATES


@dataclass
class ScheduleEffect:
    changes: list[PlanChange]
    untouched_detached: int

    @property
    def changed(self) -> list[PlanChange]:
        return [c for c in self.changes if c.occurrence is not None]

    @property
    def called_off(self) -> list[PlanChange]:
        return [c for c in self.changes if c.occurrence is None]

    @property
    def resent(self) -> list[PlanChange]:
        return [c for c in self.changes if c.resends]

    @property
    def accepted_resent(self) -> int:
        return sum(c.plan.state == PlanState.ACCEPTED for c in self.resent)

    @property
    def has_errors(self) -> bool:
        return any(c.errors for c in self.changes)

    @property
    def warning_codes(self) -> set[str]:
        return {w.code for c in self.changes for w in c.warnings}


def _plan_values(schedule: Schedule, occurrence: Occurrence) -> dict:
    return {
        "vehicle": schedule.vehicle,
        "location": schedule.location,
        "scheduled_start": occurrence.start,
        "scheduled_end": occurrence.end,
        "target_kind": schedule.target_kind,
        "expected_range_km": schedule.expected_range_km,
        "average_consumption": schedule.average_consumption,
        "expected_charge_kwh": schedule.expected_charge_kwh,
        "status_note": schedule.status_note,
    }


def schedule_effect(*, schedule: Schedule, edited: Schedule) -> ScheduleEffect:
    """What saving ``edited`` (the schedule with the dispatcher's changes, not saved) would do
    to the schedule's plans that have not started: which change, which are re-sent to MINT as
    a new revision, which are called off because their day leaves the schedule."""
    now = timezone.now()
    spec = schedule_spec(edited)
    plans = list(
        Plan.objects.filter(schedule=schedule, scheduled_start__gt=now)
        .exclude(state__in=CALLED_OFF_STATES)
        .select_related("location", "vehicle")
        .order_by("scheduled_start")
    )
    detached = [p for p in plans if p.schedule_detached]
    changes = []
    for plan in plans:
        if plan.schedule_detached:
            continue
        day = plan.occurrence_date
        keeps_day = (
            day.isoweekday() in spec.weekdays
            and spec.valid_from <= day
            and (spec.valid_until is None or day <= spec.valid_until)
        )
        if not keeps_day:
            changes.append(PlanChange(plan=plan, occurrence=None))
            continue
        occurrence = occurrence_on(spec, day)
        if occurrence.excepted:
            changes.append(PlanChange(plan=plan, occurrence=None))
            continue
        values = _plan_values(edited, occurrence)
        if any(getattr(plan, name) != value for name, value in values.items()):
            changes.append(PlanChange(plan=plan, occurrence=occurrence))
    moving = [c for c in changes if c.occurrence is not None]
    reports = plans_guard(candidates=[_candidate(edited, c.occurrence, c.plan.pk) for c in moving])
    for change, report in zip(moving, reports, strict=True):
        change.errors, change.warnings = report.errors, report.warnings
    return ScheduleEffect(changes=changes, untouched_detached=len(detached))


@dataclass
class ScheduleUpdateResult:
    changed: int = 0
    resent: int = 0
    called_off: int = 0
    skipped: list[str] = field(default_factory=list)
    created: int = 0


@transaction.atomic
def schedule_update(
    *, schedule: Schedule, user: AbstractBaseUser, seen_revision: int, **values
) -> ScheduleUpdateResult:
    """Apply a schedule edit the dispatcher has seen the effect of (``seen_revision``: the
    schedule's revision when they did; an edit made meanwhile by someone else is refused)."""
    unknown = set(values) - set(SCHEDULE_FIELDS)
    if unknown:
        raise TypeError(f"schedule_update() got unknown fields: {sorted(unknown)}")
    schedule = (
        Schedule.objects.select_for_update(of=("self",))
        .select_related("vehicle", "location", "updated_by")
        .get(pk=schedule.pk)
    )
    if schedule.revision != seen_revision:
        raise ValidationError(
            f"{schedule.updated_by.get_username()} changed this schedule while you were "
            f"looking at the effect of your edit; nothing was changed. Review it again.",
            code="edit_conflict",
        )
    before = schedule_summary(schedule)
    edited = Schedule.objects.get(pk=schedule.pk)
    for name, value in values.items():
        setattr(edited, name, value)
    edited.weekdays = "".join(sorted(set(edited.weekdays)))
    if edited.target_kind == "range":
        edited.expected_charge_kwh = None
    else:
        edited.expected_range_km = edited.average_consumption = None
    edited.time_zone = edited.location.time_zone
    schedule_validate(edited)
    effect = schedule_effect(schedule=schedule, edited=edited)
    if effect.has_errors:
        first = next(c for c in effect.changes if c.errors)
        raise ValidationError(
            f"Plan {first.plan.pk} cannot take this edit: {first.errors[0].text}",
            code="guard",
        )
    edited.revision = schedule.revision + 1
    edited.updated_by = user
    edited.save()
    result = ScheduleUpdateResult()
    note = f"Changed with schedule {schedule.pk}, now revision {edited.revision}."
    # Every plan row first, in one order, before any history row moves the shared counters.
    list(
        Plan.objects.select_for_update(of=("self",))
        .filter(pk__in=[c.plan.pk for c in effect.changes])
        .order_by("pk")
        .values("pk")
    )
    for change in _in_safe_order(effect.changes):
        plan = change.plan
        try:
            if change.occurrence is None:
                plan_cancel(
                    plan=plan,
                    user=user,
                    reason=f"Its day is no longer in schedule {schedule.pk} after an edit.",
                )
                result.called_off += 1
                continue
            was_sent = plan.state in _SENT_STATES
            plan = plan_update(
                plan=plan,
                user=user,
                accept_warnings=WARNING_CODES,
                reason=note,
                via_schedule=True,
                **_plan_values(edited, change.occurrence),
            )
            result.changed += 1
            if was_sent or edited.auto_submit:
                plan_submit(plan=plan, user=user)
                result.resent += was_sent
        except PlanActionError as exc:
            result.skipped.append(f"Plan {plan.pk}: {exc}")
    _log(
        edited,
        ScheduleEvent.Action.EDITED,
        user,
        f"Edited, now revision {edited.revision}. Was: {before}. Now: {schedule_summary(edited)}. "
        f"{result.changed} plan(s) changed, {result.resent} re-sent to MINT, "
        f"{result.called_off} called off.",
    )
    result.created = len(schedules_materialize(schedule_ids=[schedule.pk]).created)
    return result


def _in_safe_order(changes: list[PlanChange]) -> list[PlanChange]:
    """The order in which the plans can take the edit one by one without meeting each other on
    the way (the whole edit was checked as one batch): called-off days first, then the plans
    that move later from the last one back, then the rest from the first one on."""
    off = [c for c in changes if c.occurrence is None]
    later = [c for c in changes if c.occurrence and c.occurrence.start > c.plan.scheduled_start]
    rest = [c for c in changes if c.occurrence and c.occurrence.start <= c.plan.scheduled_start]
    later.sort(key=lambda c: c.plan.scheduled_start, reverse=True)
    rest.sort(key=lambda c: c.plan.scheduled_start)
    return off + later + rest


# Exceptions and the end ----------------------------------------------------------------------


@dataclass
class CallOffResult:
    withdrawn: int = 0
    cancelled: int = 0
    kept_detached: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """What happened to the plans, in words for the history and the page."""
        text = f"{self.withdrawn} plan(s) withdrawn, {self.cancelled} cancelled in the portal"
        if self.cancelled:
            text += " (MINT still holds them: see each plan)"
        if self.kept_detached:
            kept = ", ".join(str(pk) for pk in self.kept_detached)
            text += (
                f"; plan(s) {kept} were edited on their own and stay: cancel them there if needed"
            )
        if self.skipped:
            text += "; NOT called off, being sent right now — cancel them when they land: "
            text += "; ".join(self.skipped)
        return text + "."


def _call_off_days(
    *,
    schedule: Schedule,
    user: AbstractBaseUser,
    first_day: date,
    last_day: date | None,
    reason: str,
) -> CallOffResult:
    """Call off the schedule's plans on these days that have not started; plans edited on
    their own (detached) stay, and are named so the dispatcher can decide."""
    result = CallOffResult()
    # Every plan row first, in one order, before any history row moves the shared counters.
    plans = list(
        selectors.schedule_plans_from(schedule=schedule, first_day=first_day, last_day=last_day)
        .select_for_update(of=("self",))
        .order_by("pk")
    )
    plans.sort(key=lambda p: p.scheduled_start)
    for plan in plans:
        if plan.schedule_detached:
            result.kept_detached.append(plan.pk)
            continue
        try:
            plan = plan_cancel(plan=plan, user=user, reason=reason)
        except PlanActionError as exc:
            result.skipped.append(f"Plan {plan.pk}: {exc}")
            continue
        if plan.state == PlanState.CANCELLED:
            result.cancelled += 1
        else:
            result.withdrawn += 1
    return result


@transaction.atomic
def schedule_except(
    *,
    schedule: Schedule,
    user: AbstractBaseUser,
    kind: str,
    first_day: date,
    last_day: date,
    reason: str = "",
) -> CallOffResult:
    """Skip one day, or pause from one day to another (holidays)."""
    # Waits for a worker making this schedule's plans, so what it makes is then called off.
    schedule = Schedule.objects.select_for_update(of=("self",)).get(pk=schedule.pk)
    if last_day < first_day:
        raise ValidationError({"last_day": ["The last day must not be before the first."]})
    if (last_day - first_day).days > 366:
        raise ValidationError(
            {"last_day": ["A pause lasts at most a year; end the schedule instead."]}
        )
    exception = ScheduleException.objects.create(
        schedule=schedule,
        kind=kind,
        first_day=first_day,
        last_day=last_day,
        reason=reason.strip(),
        created_by=user,
    )
    what = f"{exception}" + (f" ({exception.reason})" if exception.reason else "")
    result = _call_off_days(
        schedule=schedule,
        user=user,
        first_day=first_day,
        last_day=last_day,
        reason=f"{what} in schedule {schedule.pk}.",
    )
    _log(
        schedule,
        ScheduleEvent.Action.SKIPPED
        if kind == ScheduleException.Kind.SKIP
        else ScheduleEvent.Action.PAUSED,
        user,
        f"{what}. {result.text}",
        day=first_day,
    )
    return result


@transaction.atomic
def schedule_exception_lift(*, exception: ScheduleException, user: AbstractBaseUser) -> int:
    """Lift a skip or pause: its days get their plans again (those inside the horizon now)."""
    schedule = Schedule.objects.select_for_update(of=("self",)).get(pk=exception.schedule_id)
    text = f"Lifted: {exception}."
    exception.delete()
    _log(schedule, ScheduleEvent.Action.RESUMED, user, text)
    # Days whose plans were called off keep those (history stays); the unique day constraint
    # means a lifted day's called-off plan is not remade: the dispatcher duplicates it.
    return len(schedules_materialize(schedule_ids=[schedule.pk]).created)


@transaction.atomic
def schedule_end(*, schedule: Schedule, user: AbstractBaseUser, last_day: date) -> CallOffResult:
    """End the schedule after ``last_day``: later plans that have not started are called off;
    past plans are left as they are."""
    schedule = Schedule.objects.select_for_update(of=("self",)).get(pk=schedule.pk)
    if last_day < schedule.valid_from:
        raise ValidationError(
            {
                "last_day": [
                    f"This schedule starts on {day_text(schedule.valid_from, year=True)}; end it "
                    f"on that day or later, or skip that day."
                ]
            }
        )
    schedule.valid_until = last_day
    schedule.revision += 1
    schedule.updated_by = user
    schedule.save(update_fields=["valid_until", "revision", "updated_by", "updated_at"])
    result = _call_off_days(
        schedule=schedule,
        user=user,
        first_day=last_day + timedelta(days=1),
        last_day=None,
        reason=f"Schedule {schedule.pk} ended after {day_text(last_day, year=True)}.",
    )
    _log(
        schedule,
        ScheduleEvent.Action.ENDED,
        user,
        f"Ended after {day_text(last_day, year=True)}. {result.text}",
    )
    return result
