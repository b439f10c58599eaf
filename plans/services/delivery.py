"""The outbox: claiming due messages for a worker, recording what MINT answered, leases,
backoff, overdue messages and handing claims back.
"""

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from plans.mint.outcomes import Outcome
from plans.models import (
    DeliveryAttempt,
    Plan,
    PlanEvent,
    PlanState,
    Submission,
    SubmissionState,
)
from plans.services.plan import _event, _record

logger = logging.getLogger("plans.delivery")


#: The columns of a claimed message that the worker and ``submissions_record_outcomes`` use.
CLAIMED_FIELDS = (
    "plan",
    "revision",
    "message_id",
    "body",
    "state",
    "attempt_count",
    "next_trigger",
    "deadline",
    "lease_owner",
    "lease_number",
)


def _due_q(now: datetime, *, early: bool = False) -> Q:
    """Due: waiting and its time has come (any time, when ``early``), or claimed by a worker
    whose lease ran out; in both cases before the deadline (past it,
    ``submissions_fail_overdue`` gives the message up)."""
    waiting = Q(state__in=[SubmissionState.QUEUED, SubmissionState.RETRYING])
    if not early:
        waiting &= Q(next_attempt_at__lte=now)
    return (waiting | Q(state=SubmissionState.SENDING, lease_expires_at__lt=now)) & Q(
        deadline__gt=now
    )


def _fenced_q(submissions: list[Submission]) -> Q:
    """These messages, each only while it is still under the claim it was sent under: the
    lease number in the ``WHERE`` keeps a worker whose lease ran out from overwriting a newer
    claim (another worker's, or its own)."""
    by_number: dict[int, list[int]] = {}
    for sub in submissions:
        by_number.setdefault(sub.lease_number, []).append(sub.pk)
    fence = Q(pk__in=[])
    for number, pks in by_number.items():  # one term per lease number: usually one in all
        fence |= Q(pk__in=pks, lease_number=number)
    return fence & Q(state=SubmissionState.SENDING)


@transaction.atomic
def submissions_claim(*, worker: str, limit: int, early: bool = False) -> list[Submission]:
    """Claim up to ``limit`` due messages for ``worker`` under a lease (``early``: waiting ones
    whose backoff has not run out too, for the circuit breaker's probe).

    Portable: the conditional UPDATE claims only rows that are still due, and we keep only the
    rows that carry our lease afterwards. On PostgreSQL, ``SKIP LOCKED`` lets workers pick
    disjoint rows instead of queueing behind each other; on SQLite the IMMEDIATE transaction
    serialises claims. A message whose lease expired (its worker died) is due again and is
    re-sent with the same messageId.
    """
    now = timezone.now()
    candidates = (
        Submission.objects.filter(_due_q(now, early=early))
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
    claimed = Submission.objects.filter(
        _due_q(now, early=early), id__in=[r[0] for r in rows]
    ).update(
        state=SubmissionState.SENDING,
        lease_owner=lease_owner,
        lease_expires_at=now + timedelta(seconds=settings.MINT_LEASE_SECONDS),
        lease_number=F("lease_number") + 1,
    )
    if claimed == 0:
        return []
    submissions = list(
        Submission.objects.filter(lease_owner=lease_owner)
        .select_related("plan")
        # What sending and recording read, and no more: a claim loads many rows at once.
        .only(*CLAIMED_FIELDS, "plan__state", "plan__revision")
        .order_by("id")
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


def _next_step(
    sent: SentMessage, now: datetime, attempts: int
) -> tuple[str, dict[str, object], str]:
    """Where one attempt (the message's ``attempts``-th) leads the message: its new state, the
    columns to set, and why."""
    sub, outcome = sent.submission, sent.outcome
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
    results ready pays for one commit, not one each. A message moves on only while the claim it
    was sent under holds (its lease number is still the row's). When the lease ran out and the
    message was claimed again, the newer claim owns it: this send is recorded and counted as an
    attempt (it did happen, and the backoff grows with it), and nothing else is touched.
    """
    now = timezone.now()
    rows = {
        pk: (number, count)
        for pk, number, count in Submission.objects.select_for_update()
        .filter(_fenced_q([item.submission for item in sent]))
        .values_list("pk", "lease_number", "attempt_count")
    }
    attempts, events, results = [], [], []
    accepted: list[Submission] = []
    lost: list[int] = []
    plans_by_state: dict[str, list[int]] = {}
    for item in sent:
        sub, outcome = item.submission, item.outcome
        held = rows.get(sub.pk, (None, 0))[0] == sub.lease_number
        state, changes, reason = _next_step(item, now, rows.get(sub.pk, (0, 0))[1] + 1)
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
        if not held:
            lost.append(sub.pk)
            attempt.next_attempt_at = None
            results.append(DeliveryResult(attempt=attempt, state="", lease_lost=True))
            continue
        rows[sub.pk] = (None, 0)  # one result per claim
        if state == SubmissionState.ACCEPTED:
            accepted.append(sub)
        else:
            Submission.objects.filter(_fenced_q([sub])).update(state=state, **changes)
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
    for pk in lost:
        Submission.objects.filter(pk=pk).update(attempt_count=F("attempt_count") + 1)
    if accepted:
        Submission.objects.filter(_fenced_q(accepted)).update(
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
    held = Submission.objects.filter(_fenced_q(submissions))
    held.update(lease_expires_at=timezone.now() + timedelta(seconds=settings.MINT_LEASE_SECONDS))
    return set(held.values_list("pk", flat=True))


@transaction.atomic
def submissions_fail_overdue(*, worker: str, limit: int = 500) -> int:
    """Fail the messages whose delivery deadline has passed (say, during an outage), so a plan
    never waits past its deadline unnoticed: waiting ones, and claimed ones whose worker's lease
    ran out (a message being sent under a live lease is settled by its sender)."""
    now = timezone.now()
    overdue = Submission.objects.filter(
        Q(state__in=[SubmissionState.QUEUED, SubmissionState.RETRYING])
        | Q(state=SubmissionState.SENDING, lease_expires_at__lt=now),
        deadline__lt=now,
    ).only("id", "plan_id", "revision", "attempt_count", "deadline", "last_error", "state")
    if connection.features.has_select_for_update_skip_locked:
        overdue = overdue.select_for_update(skip_locked=True)
    overdue = list(overdue[:limit])
    if not overdue:
        return 0
    Submission.objects.filter(pk__in=[sub.pk for sub in overdue]).update(
        state=SubmissionState.FAILED,
        finished_at=now,
        next_attempt_at=None,
        lease_owner="",
        lease_expires_at=None,
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
        count = Submission.objects.filter(_fenced_q([sub])).update(
            state=back, lease_owner="", lease_expires_at=None, next_attempt_at=now
        )
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
