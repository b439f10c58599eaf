"""Plan writes: create, edit, submit and retry, each with its history row.

Every state change appends a ``PlanEvent`` and moves the per-state counters in the same
transaction.
"""

import logging
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from plans.mint.payload import build_plan_payload, encode_body
from plans.models import (
    CALLED_OFF_STATES,
    DeliveryAttempt,
    Location,
    Plan,
    PlanEvent,
    PlanState,
    PlanStateCount,
    Submission,
    SubmissionState,
    Vehicle,
    plan_window_errors,
)
from plans.services.guards import (
    GuardWarnings,
    PlanCandidate,
    plan_warnings_refresh_after_commit,
    plans_guard,
)

logger = logging.getLogger("plans.delivery")

#: Fields a dispatcher may set on a plan; everything else is the portal's bookkeeping.
PLAN_FIELDS = (
    "location",
    "vehicle",
    "scheduled_start",
    "scheduled_end",
    "target_kind",
    "expected_range_km",
    "average_consumption",
    "expected_charge_kwh",
    "status_note",
)
EDITABLE_STATES = (
    PlanState.DRAFT,
    PlanState.QUEUED,
    PlanState.RETRYING,
    PlanState.ACCEPTED,
    PlanState.REJECTED,
    PlanState.FAILED,
)
RETRYABLE_STATES = (PlanState.FAILED, PlanState.REJECTED, PlanState.RETRYING)
#: States a dispatcher can call a plan off from (a message on the wire must land first).
CANCELLABLE_STATES = tuple(
    s for s in PlanState if s not in CALLED_OFF_STATES and s != PlanState.SENDING
)


class PlanActionError(Exception):
    """An action that the plan's current state does not allow; the message is for the user."""


def _event(
    *,
    plan: Plan,
    action: str,
    from_state: str,
    to_state: str,
    user: AbstractBaseUser | None = None,
    actor: str = "",
    reason: str = "",
    at: datetime | None = None,
) -> PlanEvent:
    return PlanEvent(
        plan=plan,
        at=at or timezone.now(),
        action=action,
        from_state=from_state,
        to_state=to_state,
        revision=plan.revision,
        user=user,
        actor=actor or (user.get_username() if user else "system"),
        reason=reason,
    )


def _record(*events: PlanEvent) -> None:
    """Append history rows, move the per-state plan counts with them, and log each row as one
    structured line (never anything secret)."""
    PlanEvent.objects.bulk_create(events)
    deltas: Counter[str] = Counter()
    for event in events:
        if event.from_state:
            deltas[event.from_state] -= 1
        deltas[event.to_state] += 1
    # Always in the same order, so two transactions never wait on each other's counter rows.
    for state, delta in sorted(deltas.items()):
        if not delta:
            continue
        row = PlanStateCount.objects.filter(state=state)
        if not row.update(count=F("count") + delta):
            # The row is missing (a fresh or flushed database): make it, then count.
            PlanStateCount.objects.bulk_create(
                [PlanStateCount(state=state, count=0)], ignore_conflicts=True
            )
            row.update(count=F("count") + delta)
    for event in events:
        logger.info(
            "plan state change",
            extra={
                "plan_id": event.plan_id,
                "revision": event.revision,
                "action": event.action,
                "from_state": event.from_state,
                "to_state": event.to_state,
                "actor": event.actor,
            },
        )


def _normalise_target(values: dict) -> dict:
    """Clear the fields of the target that was not chosen, so the XOR rule holds by construction."""
    if values.get("target_kind") == "range":
        values["expected_charge_kwh"] = None
    elif values.get("target_kind") == "charge":
        values["expected_range_km"] = None
        values["average_consumption"] = None
    return values


def inactive_errors(*, location: Location | None, vehicle: Vehicle | None) -> dict[str, list[str]]:
    """A site or vehicle that takes no new plans (nor schedules), by field."""
    errors: dict[str, list[str]] = {}
    if location is not None and not location.is_active:
        errors["location"] = [f"{location.name} is not active; choose another site."]
    if vehicle is not None and not vehicle.is_active:
        errors["vehicle"] = [f"{vehicle.name} is not active; choose another vehicle."]
    return errors


def _validate_plan(plan: Plan, *, now: datetime | None = None) -> None:
    """The rules every path into the database must pass, whatever the form already checked."""
    errors = inactive_errors(
        location=plan.location, vehicle=plan.vehicle if plan.vehicle_id else None
    )
    start, end = plan.scheduled_start, plan.scheduled_end
    if start and end and end > start:
        problems = plan_window_errors(
            start, end, zone=plan.location.time_zone, now=now or timezone.now()
        )
        for field, message in problems.items():
            errors.setdefault(field, []).append(message)
    try:
        plan.full_clean(exclude=["created_by", "updated_by"])
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)


def _guard(plan: Plan, *, accept_warnings, known: set[tuple[str, str]] = frozenset()) -> None:
    """Apply the guards to a plan about to be saved: refuse it on an error; refuse it on a
    warning the dispatcher has not accepted (``known``: the plan's warnings before this edit,
    accepted already; word for word, so the same warning with other numbers is asked about
    again); keep the warnings on the plan for the pages."""
    if plan.vehicle_id:
        # Serialise the vehicle's plans: two saves at once cannot both miss each other.
        list(Vehicle.objects.select_for_update().filter(pk=plan.vehicle_id).values("pk"))
    report = plans_guard(candidates=[PlanCandidate.of(plan)])[0]
    if report.errors:
        raise ValidationError({f.field: [f.text] for f in report.errors}, code="guard")
    unaccepted = [
        w
        for w in report.warnings
        if w.code not in accept_warnings and (w.code, w.text) not in known
    ]
    if unaccepted:
        raise GuardWarnings(report.warnings)
    plan.warnings = report.stored_warnings()


def _window(plan: Plan) -> tuple[int, datetime, datetime]:
    return (plan.location_id, plan.scheduled_start, plan.scheduled_end)


@transaction.atomic
def plan_create(
    *,
    user: AbstractBaseUser,
    location: Location,
    scheduled_start: datetime,
    scheduled_end: datetime,
    target_kind: str,
    vehicle: Vehicle | None = None,
    expected_range_km: int | None = None,
    average_consumption: Decimal | None = None,
    expected_charge_kwh: int | None = None,
    status_note: str = "",
    reason: str = "",
    accept_warnings: tuple[str, ...] | set[str] = (),
) -> Plan:
    """Save a new draft. Raises ``ValidationError`` (nothing saved) when a rule or a guard's
    error says no, and ``GuardWarnings`` when a warning is not in ``accept_warnings``."""
    values = _normalise_target(
        {
            "target_kind": target_kind,
            "expected_range_km": expected_range_km,
            "average_consumption": average_consumption,
            "expected_charge_kwh": expected_charge_kwh,
        }
    )
    plan = Plan(
        location=location,
        vehicle=vehicle,
        scheduled_start=scheduled_start,
        scheduled_end=scheduled_end,
        status_note=status_note,
        created_by=user,
        updated_by=user,
        **values,
    )
    _validate_plan(plan)
    _guard(plan, accept_warnings=accept_warnings)
    plan.save()
    plan_warnings_refresh_after_commit(windows=[_window(plan)], exclude={plan.pk})
    _record(
        _event(
            plan=plan,
            action=PlanEvent.Action.CREATED,
            from_state="",
            to_state=PlanState.DRAFT,
            user=user,
            reason=reason
            or (f"Created as a draft for {vehicle.name}." if vehicle else "Created as a draft."),
        )
    )
    return plan


@transaction.atomic
def plan_update(
    *,
    plan: Plan,
    user: AbstractBaseUser,
    seen_fingerprint: str = "",
    accept_warnings: tuple[str, ...] | set[str] = (),
    reason: str = "",
    via_schedule: bool = False,
    **changes,
) -> Plan:
    """Apply a dispatcher's edit.

    A plan whose current revision was already submitted gets a new revision (a later submit
    sends a new messageId, same transactionId); a message still waiting in the queue is
    withdrawn. A plan whose message is on the wire right now cannot be edited. With
    ``seen_fingerprint`` (what the edit form was opened on), an edit made meanwhile by someone
    else is not silently overwritten.
    """
    unknown = set(changes) - set(PLAN_FIELDS)
    if unknown:
        raise TypeError(f"plan_update() got unknown fields: {sorted(unknown)}")
    # of=self: lock the plan row only, not its site's and user's rows that the join reads.
    plan = (
        Plan.objects.select_for_update(of=("self",))
        .select_related("location", "vehicle", "updated_by")
        .get(pk=plan.pk)
    )
    if plan.state in CALLED_OFF_STATES:
        raise PlanActionError(
            f"Plan {plan.pk} is {plan.get_state_display().lower()}, so it cannot be edited; "
            f"duplicate it to plan this stay again."
        )
    if plan.state not in EDITABLE_STATES:
        raise PlanActionError(
            "This plan is being sent to MINT right now. Wait a moment, then edit it."
        )
    if seen_fingerprint and seen_fingerprint != plan.content_fingerprint:
        raise ValidationError(
            f"{plan.updated_by.get_username()} changed this plan while you were editing it, "
            f"so your changes were not saved. They are still in the form: compare them with "
            f"the plan page, then save again to replace the other edit with yours.",
            code="edit_conflict",
        )
    changes = _normalise_target(dict(changes))
    if all(getattr(plan, field) == value for field, value in changes.items()):
        # Saved without a change: no new revision, and a waiting message stays queued.
        return plan
    before = _window(plan)
    known = {(w["code"], w["text"]) for w in plan.warnings}
    old_vehicle = plan.vehicle
    for field, value in changes.items():
        setattr(plan, field, value)
    from_state = plan.state
    submitted = plan.submissions.filter(revision=plan.revision).exists()
    if from_state in (PlanState.QUEUED, PlanState.RETRYING):
        withdrawn = Submission.objects.filter(
            plan=plan, state__in=[SubmissionState.QUEUED, SubmissionState.RETRYING]
        ).update(state=SubmissionState.SUPERSEDED, finished_at=timezone.now())
        if not withdrawn:
            raise PlanActionError(
                "This plan is being sent to MINT right now. Wait a moment, then edit it."
            )
    if submitted:
        plan.revision += 1
    plan.state = PlanState.DRAFT
    plan.updated_by = user
    _validate_plan(plan)
    _guard(plan, accept_warnings=accept_warnings, known=known)
    detaches = plan.schedule_id is not None and not plan.schedule_detached and not via_schedule
    if detaches:
        # Edited on its own: the schedule's later edits leave this plan alone from now on.
        plan.schedule_detached = True
    plan.save()
    plan_warnings_refresh_after_commit(windows=[before, _window(plan)], exclude={plan.pk})
    text = f"Edited; now revision {plan.revision}." if submitted else "Edited."
    if from_state in (PlanState.QUEUED, PlanState.RETRYING):
        text += " The message waiting to be sent was withdrawn."
    if plan.vehicle != old_vehicle:
        names = [v.name if v else "no vehicle" for v in (old_vehicle, plan.vehicle)]
        text += f" Vehicle: {names[0]} → {names[1]}."
    if detaches:
        text += " Detached from its schedule: schedule edits no longer change it."
    reason = f"{reason} {text}".strip()
    _record(
        _event(
            plan=plan,
            action=PlanEvent.Action.EDITED,
            from_state=from_state,
            to_state=PlanState.DRAFT,
            user=user,
            reason=reason,
        )
    )
    return plan


def plan_accepted_revision(plan: Plan) -> int | None:
    """The latest revision of the plan that MINT accepted: what MINT holds now."""
    return (
        plan.submissions.filter(state=SubmissionState.ACCEPTED)
        .order_by("-revision")
        .values_list("revision", flat=True)
        .first()
    )


def plan_maybe_at_mint(plan: Plan) -> bool:
    """Whether MINT may hold a revision the portal never saw accepted: an attempt got no clear
    answer (a timeout, a 5xx, a garbled reply) and MINT may have taken it all the same."""
    return DeliveryAttempt.objects.filter(
        submission__plan=plan, outcome=DeliveryAttempt.Outcome.UNAVAILABLE
    ).exists()


@transaction.atomic
def plan_cancel(*, plan: Plan, user: AbstractBaseUser | None, reason: str, actor: str = "") -> Plan:
    """Call a plan off. MINT's API has no cancel, so: a plan MINT never accepted is *withdrawn*
    (a message still waiting never goes); a plan with an accepted revision is *cancelled* in
    the portal, and MINT still holds that revision until someone there removes it.

    ``reason`` is required: history says who called it off and why.
    """
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": ["Say why the plan is called off."]})
    if reason[-1] not in ".!?":
        reason += "."
    plan = Plan.objects.select_for_update(of=("self",)).get(pk=plan.pk)
    if plan.state in CALLED_OFF_STATES:
        raise PlanActionError(f"Plan {plan.pk} is already {plan.get_state_display().lower()}.")
    if plan.state == PlanState.SENDING:
        raise PlanActionError(
            "This plan is being sent to MINT right now. Wait a moment, then cancel it."
        )
    now = timezone.now()
    withdrawn = Submission.objects.filter(
        plan=plan, state__in=[SubmissionState.QUEUED, SubmissionState.RETRYING]
    ).update(state=SubmissionState.WITHDRAWN, finished_at=now)
    if plan.state in (PlanState.QUEUED, PlanState.RETRYING) and not withdrawn:
        raise PlanActionError(
            "This plan is being sent to MINT right now. Wait a moment, then cancel it."
        )
    held = plan_accepted_revision(plan)
    from_state = plan.state
    plan.state = PlanState.CANCELLED if held else PlanState.WITHDRAWN
    if user is not None:
        plan.updated_by = user
    plan.warnings = []
    plan.save(update_fields=["state", "updated_by", "updated_at", "warnings"])
    plan_warnings_refresh_after_commit(windows=[_window(plan)], exclude={plan.pk})
    if held:
        text = (
            f"Cancelled in the portal: {reason} MINT's API has no cancel, so MINT still holds "
            f"revision {held}."
        )
    elif plan_maybe_at_mint(plan):
        text = (
            f"Withdrawn: {reason} MINT never confirmed this plan, but an attempt got no clear "
            f"answer, so MINT may hold it."
        )
    else:
        text = f"Withdrawn: {reason} MINT never accepted this plan."
    if withdrawn:
        text += " The message waiting to be sent was withdrawn and will not go."
    _record(
        _event(
            plan=plan,
            action=PlanEvent.Action.CANCELLED if held else PlanEvent.Action.WITHDRAWN,
            from_state=from_state,
            to_state=plan.state,
            user=user,
            actor=actor,
            reason=text,
            at=now,
        )
    )
    return plan


def default_status_text(plan: Plan, user: AbstractBaseUser) -> str:
    """The tracing text sent as ``status`` when the dispatcher wrote none (spec §3.2.5); it
    names the vehicle first, so MINT-side traces say which bus (the payload has no field)."""
    text = f"mintportal plan {plan.pk} rev {plan.revision} by {user.get_username()}"
    return f"{plan.vehicle.name} · {text}" if plan.vehicle_id else text


def plan_payload(
    *, plan: Plan, message_id: uuid.UUID, timestamp: datetime, status: str
) -> dict[str, object]:
    """The body of ``POST /plan/`` for ``plan`` as spec Table 1 names its fields."""
    return build_plan_payload(
        message_id=message_id,
        location_id=plan.location.mint_location_id,
        transaction_id=plan.transaction_id,
        status=status,
        timestamp=timestamp,
        scheduled_start=plan.scheduled_start,
        scheduled_end=plan.scheduled_end,
        expected_range=plan.expected_range_km if plan.target_kind == "range" else None,
        average_consumption=plan.average_consumption if plan.target_kind == "range" else None,
        expected_charge=plan.expected_charge_kwh if plan.target_kind == "charge" else None,
    )


@transaction.atomic
def plan_submit(*, plan: Plan, user: AbstractBaseUser) -> Submission:
    """Queue the plan's current revision for delivery: state change and outbox row together."""
    plan = (
        Plan.objects.select_for_update(of=("self",))
        .select_related("location", "vehicle")
        .get(pk=plan.pk)
    )
    if plan.state != PlanState.DRAFT:
        raise PlanActionError(
            f"Only drafts can be submitted; this plan is {plan.get_state_display().lower()}."
        )
    _validate_plan(plan)
    now = timezone.now()
    submission, event = _submission_new(plan=plan, user=user, now=now)
    submission.save(force_insert=True)
    plan.state = PlanState.QUEUED
    plan.updated_by = user
    plan.save(update_fields=["state", "updated_by", "updated_at"])
    _record(event)
    return submission


def _submission_new(
    *, plan: Plan, user: AbstractBaseUser, now: datetime
) -> tuple[Submission, PlanEvent]:
    """The outbox row that queues a draft's revision (a new messageId, the body frozen now) and
    its *submitted* history row, unsaved: ``plan_submit`` saves one, bulk paths many at once."""
    message_id = uuid.uuid4()
    submission = Submission(
        plan=plan,
        revision=plan.revision,
        message_id=message_id,
        created_at=now,
        created_by=user,
        body=encode_body(
            plan_payload(
                plan=plan,
                message_id=message_id,
                timestamp=now,
                status=plan.status_note or default_status_text(plan, user),
            )
        ),
        state=SubmissionState.QUEUED,
        next_attempt_at=now,
        next_trigger=Submission.Trigger.SCHEDULED,
        deadline=now + timedelta(seconds=settings.MINT_DELIVERY_DEADLINE),
    )
    event = _event(
        plan=plan,
        action=PlanEvent.Action.SUBMITTED,
        from_state=PlanState.DRAFT,
        to_state=PlanState.QUEUED,
        user=user,
        reason=f"Submitted revision {plan.revision} as message {message_id}.",
        at=now,
    )
    return submission, event


def plans_submit(*, plans: list[Plan], user: AbstractBaseUser) -> tuple[int, list[str]]:
    """Submit several drafts; each one on its own, so one bad plan does not hold back the rest.

    Returns how many were queued and a plain message for each one that was not.
    """
    queued, problems = 0, []
    for plan in plans:
        try:
            plan_submit(plan=plan, user=user)
        except (PlanActionError, ValidationError) as exc:
            text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            problems.append(f"Plan {plan.pk}: {text}")
        else:
            queued += 1
    return queued, problems


#: The message states a retry takes back into the queue (not one on the wire right now).
_RETRYABLE_MESSAGE_STATES = (
    SubmissionState.FAILED,
    SubmissionState.REJECTED,
    SubmissionState.RETRYING,
)


def _retry_refusal(plan: Plan, submission: Submission | None, *, now: datetime) -> str:
    """Why ``plan`` cannot be retried now ("" when it can): one set of rules, and one wording,
    for the plan page's Retry now and the bulk retry."""
    if plan.state not in RETRYABLE_STATES:
        return (
            f"Only failed, rejected or retrying plans can be retried; this plan is "
            f"{plan.get_state_display().lower()}."
        )
    if submission is None:
        return "This plan has no message to retry; submit it instead."
    if plan.scheduled_end <= now:
        return (
            "This plan's window has already ended, so MINT has no use for it any more. "
            "Duplicate it with new times instead."
        )
    if submission.state not in _RETRYABLE_MESSAGE_STATES:
        return "This plan is being sent to MINT right now."
    return ""


def _requeue(now: datetime) -> dict:
    """What a retry sets on the message: due now, by hand, with a fresh deadline."""
    return {
        "state": SubmissionState.QUEUED,
        "next_attempt_at": now,
        "next_trigger": Submission.Trigger.MANUAL,
        "deadline": now + timedelta(seconds=settings.MINT_DELIVERY_DEADLINE),
        "finished_at": None,
    }


@transaction.atomic
def plan_retry(*, plan: Plan, user: AbstractBaseUser) -> Submission:
    """Send the plan's current message again now, with the same messageId (DESIGN: retries)."""
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    submission = plan.submissions.filter(revision=plan.revision).first()
    now = timezone.now()
    refusal = _retry_refusal(plan, submission, now=now)
    if refusal:
        raise PlanActionError(refusal)
    updated = Submission.objects.filter(
        pk=submission.pk, state__in=_RETRYABLE_MESSAGE_STATES
    ).update(**_requeue(now))
    if not updated:
        raise PlanActionError("This plan is being sent to MINT right now.")
    from_state = plan.state
    plan.state = PlanState.QUEUED
    plan.updated_by = user
    plan.save(update_fields=["state", "updated_by", "updated_at"])
    _record(
        _event(
            plan=plan,
            action=PlanEvent.Action.RETRIED,
            from_state=from_state,
            to_state=PlanState.QUEUED,
            user=user,
            reason=f"Retry now requested; message {submission.message_id} is sent again.",
            at=now,
        )
    )
    submission.refresh_from_db()
    return submission


@dataclass(frozen=True)
class BulkRetry:
    """What ``plans_retry`` did: the plans sent again (with their messageIds, unchanged) and a
    plain sentence for each plan it left alone."""

    retried: dict[int, uuid.UUID]
    skipped: dict[int, str]


@transaction.atomic
def plans_retry(
    *, plan_ids: Collection[int], user: AbstractBaseUser, source: str = ""
) -> BulkRetry:
    """Send the current message of many plans again now, each with its own messageId, in one
    transaction and a fixed number of queries however many plans (plus one counter update per
    state the plans come from, at most three).

    The rules are those of the plan page's Retry now (``_retry_refusal``); a plan they refuse is
    skipped with the reason, and the others go. ``source`` says in each plan's history how the
    dispatcher chose them (e.g. "failed since Mon 30 Nov 04:00 CET").
    """
    ids = sorted(set(plan_ids))
    # In id order, as every bulk write here: two bulk retries never wait on each other crosswise.
    plans = list(
        Plan.objects.select_for_update(of=("self",))
        .filter(pk__in=ids)
        .only("pk", "state", "revision", "scheduled_end")
        .order_by("pk")
    )
    # The current revision's message of each plan (one per plan and revision), locked too: a
    # worker's claim skips a message held here rather than sending it while it is re-queued.
    messages = {
        sub.plan_id: sub
        for sub in Submission.objects.select_for_update(of=("self",))
        .filter(plan_id__in=ids, plan__revision=F("revision"))
        .only("pk", "plan_id", "message_id", "state")
    }
    now = timezone.now()
    skipped = {pk: f"There is no plan {pk}." for pk in set(ids) - {p.pk for p in plans}}
    going = []
    for plan in plans:
        refusal = _retry_refusal(plan, messages.get(plan.pk), now=now)
        if refusal:
            skipped[plan.pk] = refusal
        else:
            going.append(plan)
    if going:
        message_pks = [messages[p.pk].pk for p in going]
        updated = Submission.objects.filter(
            pk__in=message_pks, state__in=_RETRYABLE_MESSAGE_STATES
        ).update(**_requeue(now))
        if updated != len(going):
            # Locked above, so only a database without row locks gets here: nothing is kept.
            raise PlanActionError(
                "Some of these plans are being sent to MINT right now; try again."
            )
        Plan.objects.filter(pk__in=[p.pk for p in going]).update(
            state=PlanState.QUEUED, updated_by=user, updated_at=now
        )
        count = len(going)
        how = f" ({source})" if source else ""
        events = []
        for plan in going:
            events.append(
                _event(
                    plan=plan,
                    action=PlanEvent.Action.RETRIED,
                    from_state=plan.state,
                    to_state=PlanState.QUEUED,
                    user=user,
                    reason=(
                        f"Retried in bulk by {user.get_username()}, {count} "
                        f"plan{'' if count == 1 else 's'}{how}; message "
                        f"{messages[plan.pk].message_id} is sent again."
                    ),
                    at=now,
                )
            )
        _record(*events)
    return BulkRetry(
        retried={p.pk: messages[p.pk].message_id for p in going},
        skipped=dict(sorted(skipped.items())),
    )


def plan_state_counts_rebuild() -> None:
    """Recount plans per state from scratch (after a bulk import that bypassed the services)."""
    with transaction.atomic():
        actual = dict(Plan.objects.order_by().values_list("state").annotate(n=Count("id")))
        for state in PlanState.values:
            PlanStateCount.objects.update_or_create(
                state=state, defaults={"count": actual.get(state, 0)}
            )
