"""Every write MINT Portal makes: plans, their history, the outbox and the worker's records.

Views, the admin, management commands and the worker call these functions and nothing else
writes. Each function is keyword-only and atomic; history rows are only ever appended.
"""

import logging
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from plans.mint.client import Token
from plans.mint.outcomes import HealthResult, Outcome
from plans.mint.payload import build_plan_payload, encode_body
from plans.models import (
    DeliveryAttempt,
    HealthCheck,
    Location,
    MintStatus,
    MintToken,
    Plan,
    PlanEvent,
    PlanState,
    PlanStateCount,
    Submission,
    SubmissionState,
    WorkerHeartbeat,
)

logger = logging.getLogger("plans.delivery")

#: Fields a dispatcher may set on a plan; everything else is the portal's bookkeeping.
PLAN_FIELDS = (
    "location",
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


class PlanActionError(Exception):
    """An action that the plan's current state does not allow; the message is for the user."""


# --- plans -------------------------------------------------------------------------------------


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


def _validate_plan(plan: Plan, *, now: datetime | None = None) -> None:
    """The rules every path into the database must pass, whatever the form already checked."""
    errors: dict[str, list[str]] = {}
    if not plan.location.is_active:
        errors.setdefault("location", []).append(
            f"{plan.location.name} is not active; choose another site."
        )
    if plan.scheduled_end and plan.scheduled_end <= (now or timezone.now()):
        errors.setdefault("scheduled_end", []).append(
            "This window has already ended; a plan must end in the future."
        )
    try:
        plan.full_clean(exclude=["created_by", "updated_by"])
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def plan_create(
    *,
    user: AbstractBaseUser,
    location: Location,
    scheduled_start: datetime,
    scheduled_end: datetime,
    target_kind: str,
    expected_range_km: int | None = None,
    average_consumption: Decimal | None = None,
    expected_charge_kwh: int | None = None,
    status_note: str = "",
    reason: str = "",
) -> Plan:
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
        scheduled_start=scheduled_start,
        scheduled_end=scheduled_end,
        status_note=status_note,
        created_by=user,
        updated_by=user,
        **values,
    )
    _validate_plan(plan)
    plan.save()
    _record(
        _event(
            plan=plan,
            action=PlanEvent.Action.CREATED,
            from_state="",
            to_state=PlanState.DRAFT,
            user=user,
            reason=reason or "Created as a draft.",
        )
    )
    return plan


@transaction.atomic
def plan_update(
    *, plan: Plan, user: AbstractBaseUser, seen_fingerprint: str = "", **changes
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
        .select_related("location", "updated_by")
        .get(pk=plan.pk)
    )
    if plan.state not in EDITABLE_STATES:
        raise PlanActionError(
            "This plan is being sent to MINT right now. Wait a moment, then edit it."
        )
    if seen_fingerprint and seen_fingerprint != plan.content_fingerprint:
        raise ValidationError(
            f"{plan.updated_by.get_username()} changed this plan while you were editing it, "
            f"so your changes were not saved. Open the plan again to see theirs."
        )
    changes = _normalise_target(dict(changes))
    if all(getattr(plan, field) == value for field, value in changes.items()):
        # Saved without a change: no new revision, and a waiting message stays queued.
        return plan
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
    plan.save()
    reason = f"Edited; now revision {plan.revision}." if submitted else "Edited."
    if from_state in (PlanState.QUEUED, PlanState.RETRYING):
        reason += " The message waiting to be sent was withdrawn."
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


@transaction.atomic
def plan_duplicate(*, plan: Plan, user: AbstractBaseUser) -> Plan:
    """A new draft with the same site, times and target (and a new transactionId)."""
    return plan_create(
        user=user,
        reason=f"Copied from plan {plan.pk}.",
        **{field: getattr(plan, field) for field in PLAN_FIELDS},
    )


def default_status_text(plan: Plan, user: AbstractBaseUser) -> str:
    """The tracing text sent as ``status`` when the dispatcher wrote none (spec §3.2.5)."""
    return f"mintportal plan {plan.pk} rev {plan.revision} by {user.get_username()}"


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
    plan = Plan.objects.select_for_update(of=("self",)).select_related("location").get(pk=plan.pk)
    if plan.state != PlanState.DRAFT:
        raise PlanActionError(
            f"Only drafts can be submitted; this plan is {plan.get_state_display().lower()}."
        )
    _validate_plan(plan)
    now = timezone.now()
    message_id = uuid.uuid4()
    submission = Submission.objects.create(
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
    plan.state = PlanState.QUEUED
    plan.updated_by = user
    plan.save(update_fields=["state", "updated_by", "updated_at"])
    _record(
        _event(
            plan=plan,
            action=PlanEvent.Action.SUBMITTED,
            from_state=PlanState.DRAFT,
            to_state=PlanState.QUEUED,
            user=user,
            reason=f"Submitted revision {plan.revision} as message {message_id}.",
            at=now,
        )
    )
    return submission


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


@transaction.atomic
def plan_retry(*, plan: Plan, user: AbstractBaseUser) -> Submission:
    """Send the plan's current message again now, with the same messageId (DESIGN: retries)."""
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    if plan.state not in RETRYABLE_STATES:
        raise PlanActionError(
            f"Only failed, rejected or retrying plans can be retried; this plan is "
            f"{plan.get_state_display().lower()}."
        )
    submission = plan.submissions.filter(revision=plan.revision).first()
    if submission is None:
        raise PlanActionError("This plan has no message to retry; submit it instead.")
    if plan.scheduled_end <= timezone.now():
        raise PlanActionError(
            "This plan's window has already ended, so MINT has no use for it any more. "
            "Duplicate it with new times instead."
        )
    now = timezone.now()
    updated = Submission.objects.filter(
        pk=submission.pk,
        state__in=[SubmissionState.FAILED, SubmissionState.REJECTED, SubmissionState.RETRYING],
    ).update(
        state=SubmissionState.QUEUED,
        next_attempt_at=now,
        next_trigger=Submission.Trigger.MANUAL,
        deadline=now + timedelta(seconds=settings.MINT_DELIVERY_DEADLINE),
        finished_at=None,
    )
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


def plan_state_counts_rebuild() -> None:
    """Recount plans per state from scratch (after a bulk import that bypassed the services)."""
    with transaction.atomic():
        actual = dict(Plan.objects.order_by().values_list("state").annotate(n=Count("id")))
        for state in PlanState.values:
            PlanStateCount.objects.update_or_create(
                state=state, defaults={"count": actual.get(state, 0)}
            )


# --- delivery ----------------------------------------------------------------------------------


def _due_q(now: datetime) -> Q:
    return Q(
        state__in=[SubmissionState.QUEUED, SubmissionState.RETRYING], next_attempt_at__lte=now
    ) | Q(state=SubmissionState.SENDING, lease_expires_at__lt=now)


@transaction.atomic
def submissions_claim(*, worker: str, limit: int) -> list[Submission]:
    """Claim up to ``limit`` due messages for ``worker`` under a lease.

    Portable: the conditional UPDATE claims only rows that are still due, and we keep only the
    rows that carry our lease afterwards. On PostgreSQL, ``SKIP LOCKED`` lets workers pick
    disjoint rows instead of queueing behind each other; on SQLite the IMMEDIATE transaction
    serialises claims. A message whose lease expired (its worker died) is due again and is
    re-sent with the same messageId.
    """
    now = timezone.now()
    candidates = (
        Submission.objects.filter(_due_q(now))
        .order_by("next_attempt_at", "id")
        .only("id", "state", "plan_id")
    )
    if connection.features.has_select_for_update_skip_locked:
        # Lock the plans too, in the same statement: a web request editing a plan holds its row,
        # and the claim then skips that message instead of waiting on it (or deadlocking).
        candidates = (
            candidates.select_related("plan")
            .only("id", "state", "plan_id", "plan__id")
            .select_for_update(skip_locked=True, of=("self", "plan"))
        )
    rows = [(sub.pk, sub.state, sub.plan_id) for sub in candidates[:limit]]
    if not rows:
        return []
    lease_owner = f"{worker}/{uuid.uuid4().hex[:12]}"
    claimed = Submission.objects.filter(_due_q(now), id__in=[r[0] for r in rows]).update(
        state=SubmissionState.SENDING,
        lease_owner=lease_owner,
        lease_expires_at=now + timedelta(seconds=settings.MINT_LEASE_SECONDS),
    )
    if claimed == 0:
        return []
    submissions = list(
        Submission.objects.filter(lease_owner=lease_owner).select_related("plan").order_by("id")
    )
    previous = {sub_id: state for sub_id, state, _ in rows}
    plans = {s.plan_id: s.plan for s in submissions}
    Plan.objects.filter(pk__in=plans).update(state=PlanState.SENDING, updated_at=now)
    events = []
    for sub in submissions:
        was = previous[sub.pk]
        reason = (
            "Taken over from a worker that stopped answering; sending the same message again."
            if was == SubmissionState.SENDING
            else "Picked up for sending."
        )
        events.append(
            _event(
                plan=sub.plan,
                action=PlanEvent.Action.DELIVERY,
                from_state=sub.plan.state,
                to_state=PlanState.SENDING,
                actor=worker,
                reason=reason,
                at=now,
            )
        )
        sub.plan.state = PlanState.SENDING
    _record(*events)
    return submissions


def _backoff_seconds(attempt_count: int) -> float:
    """Full-jitter exponential backoff: uniform over [0, min(cap, base × 2^(n-1))]."""
    ceiling = min(settings.MINT_RETRY_CAP, settings.MINT_RETRY_BASE * 2 ** (attempt_count - 1))
    return random.uniform(0, ceiling)


@dataclass(frozen=True)
class SentMessage:
    """One claimed message and what MINT made of it, waiting to be recorded."""

    submission: Submission
    outcome: Outcome
    started_at: datetime


@dataclass(frozen=True)
class DeliveryResult:
    attempt: DeliveryAttempt
    state: str
    lease_lost: bool


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?")) else f"{text}."


def _next_step(sent: SentMessage, now: datetime) -> tuple[str, dict[str, object], str]:
    """Where one attempt leads the message: its new state, the columns to set, and why."""
    sub, outcome = sent.submission, sent.outcome
    attempts = sub.attempt_count + 1
    changes: dict[str, object] = {
        "attempt_count": attempts,
        "lease_owner": "",
        "lease_expires_at": None,
        "next_trigger": Submission.Trigger.SCHEDULED,
    }
    error = getattr(outcome, "error", "") or ""
    if outcome.kind == "accepted":
        changes.update(finished_at=now, next_attempt_at=None, last_error="", mint_messages=[])
        reason = f"MINT accepted message {sub.message_id} (HTTP 200, {outcome.duration_ms} ms)."
        return SubmissionState.ACCEPTED, changes, reason
    if outcome.kind == "rejected":
        changes.update(finished_at=now, next_attempt_at=None, last_error="")
        changes["mint_messages"] = list(outcome.messages)
        return (
            SubmissionState.REJECTED,
            changes,
            "MINT rejected the plan: " + " ".join(outcome.messages),
        )
    delay = _backoff_seconds(attempts)
    retry_after = getattr(outcome, "retry_after", None)
    if retry_after:
        delay = max(delay, float(retry_after))
    next_at = now + timedelta(seconds=delay)
    changes["last_error"] = error
    if next_at > sub.deadline:
        changes.update(finished_at=now, next_attempt_at=None)
        reason = (
            f"Gave up after {attempts} attempts: the delivery deadline "
            f"{timezone.localtime(sub.deadline):%Y-%m-%d %H:%M %Z} has passed. "
            f"Last error: {_sentence(error)}"
        )
        return SubmissionState.FAILED, changes, reason
    changes["next_attempt_at"] = next_at
    return SubmissionState.RETRYING, changes, f"{_sentence(error)} Next attempt in {delay:.0f} s."


@transaction.atomic
def submissions_record_outcomes(*, sent: list[SentMessage], worker: str) -> list[DeliveryResult]:
    """Record attempts and move each message and its plan to the state its outcome leads to.

    One transaction for a whole group of sends, with bulk inserts: a worker that has several
    results ready pays for one commit, not one each. A message moves on only while our lease on
    it holds; when the lease ran out, another worker owns the message and only the attempt
    itself (which did happen) is recorded.
    """
    now = timezone.now()
    held = set(
        Submission.objects.select_for_update()
        .filter(
            pk__in=[item.submission.pk for item in sent],
            lease_owner__in={item.submission.lease_owner for item in sent},
            state=SubmissionState.SENDING,
        )
        .values_list("pk", "lease_owner")
    )
    attempts, events, results = [], [], []
    accepted: list[int] = []
    plans_by_state: dict[str, list[int]] = {}
    for item in sent:
        sub, outcome = item.submission, item.outcome
        state, changes, reason = _next_step(item, now)
        attempt = DeliveryAttempt(
            submission_id=sub.pk,
            started_at=item.started_at,
            trigger=sub.next_trigger,
            worker=worker,
            duration_ms=outcome.duration_ms,
            http_status=outcome.http_status,
            outcome=outcome.kind,
            mint_messages=list(getattr(outcome, "messages", [])),
            error=getattr(outcome, "error", "") or "",
            request_body=outcome.body_sent,
            next_attempt_at=changes.get("next_attempt_at"),
        )
        attempts.append(attempt)
        if (sub.pk, sub.lease_owner) not in held:
            results.append(DeliveryResult(attempt=attempt, state="", lease_lost=True))
            continue
        if state == SubmissionState.ACCEPTED:
            accepted.append(sub.pk)
        else:
            Submission.objects.filter(pk=sub.pk).update(state=state, **changes)
        plans_by_state.setdefault(state, []).append(sub.plan_id)
        events.append(
            PlanEvent(
                plan_id=sub.plan_id,
                at=now,
                action=PlanEvent.Action.DELIVERY,
                from_state=PlanState.SENDING,
                to_state=state,
                revision=sub.revision,
                actor=worker,
                reason=reason,
            )
        )
        results.append(DeliveryResult(attempt=attempt, state=state, lease_lost=False))
    if accepted:
        Submission.objects.filter(pk__in=accepted).update(
            state=SubmissionState.ACCEPTED,
            attempt_count=F("attempt_count") + 1,
            lease_owner="",
            lease_expires_at=None,
            next_trigger=Submission.Trigger.SCHEDULED,
            finished_at=now,
            next_attempt_at=None,
            last_error="",
            mint_messages=[],
        )
    DeliveryAttempt.objects.bulk_create(attempts)
    _record(*events)
    for state, plan_ids in plans_by_state.items():
        Plan.objects.filter(pk__in=plan_ids).update(state=state, updated_at=now)
    for item, result in zip(sent, results, strict=True):
        logger.info(
            "delivery attempt",
            extra={
                "plan_id": item.submission.plan_id,
                "message_id": str(item.submission.message_id),
                "outcome": item.outcome.kind,
                "http_status": item.outcome.http_status,
                "latency_ms": item.outcome.duration_ms,
                "state": result.state or "lease lost",
            },
        )
    return results


def submissions_renew_lease(*, submissions: list[Submission]) -> set[int]:
    """Extend our lease on claimed messages not sent yet; return the ids we still hold.

    A batch that meets a slow MINT would otherwise outlive its lease, and another worker would
    send the same message at the same time.
    """
    if not submissions:
        return set()
    owner = submissions[0].lease_owner
    ids = [sub.pk for sub in submissions]
    held = Submission.objects.filter(pk__in=ids, lease_owner=owner, state=SubmissionState.SENDING)
    held.update(lease_expires_at=timezone.now() + timedelta(seconds=settings.MINT_LEASE_SECONDS))
    return set(held.values_list("pk", flat=True))


@transaction.atomic
def submissions_fail_overdue(*, worker: str, limit: int = 500) -> int:
    """Fail the waiting messages whose delivery deadline has passed (say, during an outage),
    so a plan never waits in the queue past its deadline unnoticed."""
    now = timezone.now()
    overdue = Submission.objects.filter(
        state__in=[SubmissionState.QUEUED, SubmissionState.RETRYING], deadline__lt=now
    ).only("id", "plan_id", "revision", "attempt_count", "deadline", "last_error")
    if connection.features.has_select_for_update_skip_locked:
        overdue = overdue.select_for_update(skip_locked=True)
    overdue = list(overdue[:limit])
    if not overdue:
        return 0
    Submission.objects.filter(pk__in=[sub.pk for sub in overdue]).update(
        state=SubmissionState.FAILED, finished_at=now, next_attempt_at=None
    )
    plan_ids = [sub.plan_id for sub in overdue]
    states = dict(Plan.objects.filter(pk__in=plan_ids).values_list("pk", "state"))
    Plan.objects.filter(pk__in=plan_ids).update(state=PlanState.FAILED, updated_at=now)
    _record(
        *(
            PlanEvent(
                plan_id=sub.plan_id,
                at=now,
                action=PlanEvent.Action.DELIVERY,
                from_state=states[sub.plan_id],
                to_state=PlanState.FAILED,
                revision=sub.revision,
                actor=worker,
                reason=(
                    f"Gave up after {sub.attempt_count} attempts: the delivery deadline "
                    f"{timezone.localtime(sub.deadline):%Y-%m-%d %H:%M %Z} passed while the "
                    f"message waited. {_sentence(sub.last_error)}"
                ).strip(),
            )
            for sub in overdue
        )
    )
    return len(overdue)


@transaction.atomic
def submissions_release(*, submissions: list[Submission], worker: str, reason: str) -> int:
    """Hand claimed but unsent messages back to the queue (on shutdown, or when MINT is down)."""
    now = timezone.now()
    released = 0
    for sub in submissions:
        back = SubmissionState.RETRYING if sub.attempt_count else SubmissionState.QUEUED
        count = Submission.objects.filter(
            pk=sub.pk, lease_owner=sub.lease_owner, state=SubmissionState.SENDING
        ).update(state=back, lease_owner="", lease_expires_at=None, next_attempt_at=now)
        if count:
            released += 1
            plan = sub.plan
            Plan.objects.filter(pk=plan.pk).update(state=back, updated_at=now)
            _record(
                _event(
                    plan=plan,
                    action=PlanEvent.Action.DELIVERY,
                    from_state=PlanState.SENDING,
                    to_state=PlanState(back),
                    actor=worker,
                    reason=reason,
                    at=now,
                )
            )
    return released


# --- the shared MINT token ---------------------------------------------------------------------


class DatabaseTokenStore:
    """MINT's access token in one database row, shared by every worker on every machine.

    The refresh runs inside a transaction that holds the row's lock (``SELECT … FOR UPDATE``
    on PostgreSQL, the database write lock on SQLite), so when many deliveries need a new token
    at once, exactly one process asks MINT and the others read what it stored.
    """

    def __init__(self, *, margin: float = 60.0) -> None:
        self.margin = margin
        self._cached: Token | None = None

    def current(self) -> Token | None:
        if self._cached and self._cached.is_valid():
            return self._cached
        row = MintToken.objects.filter(pk=1).first()
        if row and row.access_token and row.expires_at:
            self._cached = Token(access_token=row.access_token, expires_at=row.expires_at)
        return self._cached

    def refresh(self, fetch, stale: Token | None) -> Token:
        with transaction.atomic():
            row, _ = MintToken.objects.select_for_update().get_or_create(pk=1)
            stored = (
                Token(access_token=row.access_token, expires_at=row.expires_at)
                if row.access_token and row.expires_at
                else None
            )
            stale_value = stale.access_token if stale else None
            if (
                stored
                and stored.access_token != stale_value
                and stored.is_valid(margin=self.margin)
            ):
                token = stored  # another worker refreshed while we waited for the lock
            else:
                token = fetch()
                row.access_token = token.access_token
                row.expires_at = token.expires_at
                row.fetched_at = timezone.now()
                row.save()
        self._cached = token
        return token


def mint_client():
    """The MINT client as configured, with the database-backed shared token."""
    from plans.mint.client import MintClient

    # The store and the client must agree on how close to expiry a token is too old.
    margin = 60.0
    return MintClient(
        settings.MINT_API_URL,
        settings.MINT_CLIENT_ID,
        settings.MINT_CLIENT_SECRET,
        token_store=DatabaseTokenStore(margin=margin),
        refresh_margin=margin,
        connect_timeout=settings.MINT_CONNECT_TIMEOUT,
        read_timeout=settings.MINT_READ_TIMEOUT,
    )


# --- worker bookkeeping ------------------------------------------------------------------------


def heartbeat_beat(
    *, name: str, hostname: str, pid: int, started_at: datetime, stopping: bool = False
) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        name=name,
        defaults={
            "hostname": hostname,
            "pid": pid,
            "started_at": started_at,
            "seen_at": now,
            "stopped_at": now if stopping else None,
        },
    )


@transaction.atomic
def health_record(*, result: HealthResult) -> HealthCheck:
    """Append one ``/health/`` result and refresh the status row the pages read."""
    verdict = result.result
    check = HealthCheck.objects.create(
        checked_at=timezone.now(),
        result=verdict,
        http_status=result.http_status,
        latency_ms=result.latency_ms,
        error=result.error,
    )
    hour = check.checked_at.replace(minute=0, second=0, microsecond=0)
    since = hour - timedelta(hours=23)
    rows = (
        HealthCheck.objects.filter(checked_at__gte=since)
        .annotate(hour=TruncHour("checked_at", tzinfo=UTC))
        .order_by()
        .values("hour")
        .annotate(made=Count("id"), up=Count("id", filter=Q(result=HealthCheck.Result.UP)))
    )
    by_hour = {row["hour"]: (row["up"], row["made"]) for row in rows}
    hourly = []
    for n in range(24):
        start = since + timedelta(hours=n)
        up, made = by_hour.get(start, (0, 0))
        hourly.append([start.isoformat(), up, made])
    made_total = sum(h[2] for h in hourly)
    MintStatus.objects.update_or_create(
        pk=1,
        defaults={
            "checked_at": check.checked_at,
            "result": verdict,
            "http_status": result.http_status,
            "latency_ms": result.latency_ms,
            "error": result.error,
            "uptime_24h": sum(h[1] for h in hourly) / made_total if made_total else None,
            "hourly": hourly,
        },
    )
    return check
