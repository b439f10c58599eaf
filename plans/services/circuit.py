"""The circuit breaker in front of ``POST /plan/``, shared by every worker through one row.

Per-message backoff alone lets a sick MINT (``/health/`` fine, ``/plan/`` failing) take a
POST from every waiting message whenever its own backoff runs out — hundreds a minute with a
backlog — and after MINT recovers each message still waits out its own backoff. The breaker
stops all sending after a few failures from different messages, lets one message probe on a
growing interval, and on the first success makes every waiting message due at once.
"""

import enum
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from plans.models import MintCircuit, Submission, SubmissionState

logger = logging.getLogger("plans.delivery")

State = MintCircuit.State


class Gate(enum.Enum):
    """What a worker may do now."""

    SEND = "send"  # closed: claim and send as usual
    PROBE = "probe"  # open, and this worker holds the probe: send one message
    WAIT = "wait"  # open: send nothing until the next probe


def _row(*, lock: bool = False) -> MintCircuit:
    query = MintCircuit.objects.select_for_update() if lock else MintCircuit.objects
    row = query.filter(pk=1).first()
    if row is None:
        row, _ = MintCircuit.objects.get_or_create(pk=1)
    return row


def circuit_gate() -> tuple[Gate, float]:
    """Whether to send, probe or wait, and (for WAIT) how many seconds until a probe is due.

    Taking the probe is a conditional UPDATE, so of several workers asking at once exactly one
    gets it; its right lapses after a lease, should that worker die with it.
    """
    row = _row()
    if row.state == State.CLOSED:
        return Gate.SEND, 0.0
    now = timezone.now()
    if row.probe_at and row.probe_at > now:
        return Gate.WAIT, (row.probe_at - now).total_seconds()
    taken = MintCircuit.objects.filter(pk=1, state=row.state, probe_at=row.probe_at).update(
        state=State.PROBING, probe_at=now + timedelta(seconds=settings.MINT_LEASE_SECONDS)
    )
    return (Gate.PROBE, 0.0) if taken else (Gate.WAIT, 0.0)


def circuit_probe_unused() -> None:
    """The probe found no message to send: let the next round (of any worker) probe."""
    MintCircuit.objects.filter(pk=1, state=State.PROBING).update(
        state=State.OPEN, probe_at=timezone.now()
    )


@transaction.atomic
def circuit_note_failure(*, message_id: str, probe: bool) -> bool:
    """Count a retryable failure of ``message_id``; True when sending should stop (open)."""
    row = _row(lock=True)
    now = timezone.now()
    if row.state == State.CLOSED:
        if message_id not in row.failed_messages:
            row.failed_messages = [*row.failed_messages, message_id]
        row.last_failure_at = now
        if len(row.failed_messages) >= settings.MINT_CIRCUIT_THRESHOLD:
            row.state = State.OPEN
            row.opened_at = now
            row.probe_interval = settings.MINT_CIRCUIT_PROBE_BASE
            row.probe_at = now + timedelta(seconds=row.probe_interval)
            logger.warning(
                "MINT circuit open: %d messages failed in a row; probing in %g s",
                len(row.failed_messages),
                row.probe_interval,
            )
        row.save()
        return row.state != State.CLOSED
    if row.state == State.PROBING and probe:
        row.state = State.OPEN
        row.probe_interval = min(
            settings.MINT_CIRCUIT_PROBE_CAP,
            max(row.probe_interval, settings.MINT_CIRCUIT_PROBE_BASE) * 2,
        )
        row.probe_at = now + timedelta(seconds=row.probe_interval)
        row.last_failure_at = now
        row.save()
        logger.warning("MINT circuit: the probe failed; next probe in %g s", row.probe_interval)
    return True


def circuit_note_success(*, finished_at: datetime) -> None:
    """MINT answered a send properly (accepted or rejected), ``finished_at``.

    Ends a run of failures that began before it. When the circuit was open (a probe, or a send
    that was on its way when it opened, succeeded), close it and make every waiting message due
    now: they were held back by the outage, not by anything wrong with them. Costs one primary
    key read when there is nothing to do.
    """
    row = _row()
    if row.state == State.CLOSED and not row.failed_messages:
        return
    if row.last_failure_at and finished_at < row.last_failure_at:
        return  # an older success does not end a newer run of failures
    with transaction.atomic():
        row = _row(lock=True)
        if row.last_failure_at and finished_at < row.last_failure_at:
            return
        was_open = row.state != State.CLOSED
        row.state = State.CLOSED
        row.failed_messages = []
        row.opened_at = row.probe_at = None
        row.probe_interval = 0
        row.save()
        if was_open:
            now = timezone.now()
            due = Submission.objects.filter(
                state__in=[SubmissionState.QUEUED, SubmissionState.RETRYING],
                next_attempt_at__gt=now,
            ).update(next_attempt_at=now)
            logger.warning("MINT circuit closed: MINT answered again; %d messages due now", due)
