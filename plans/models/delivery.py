"""The delivery outbox: one ``Submission`` per message to MINT, its attempts, and the token.

``DeliveryAttempt`` rows are written only by ``plans.services`` and never updated.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from plans.models.plans import Plan


class SubmissionState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Retrying"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Replaced by a later revision"
    WITHDRAWN = "withdrawn", "Withdrawn before it was sent"


class Submission(models.Model):
    """One message to MINT: a submitted revision of a plan, and the outbox row the worker claims.

    ``message_id`` and ``created_at`` (the payload's ``timestamp``) are fixed across retries, so
    MINT can de-duplicate a message that a crashed worker sent twice.
    """

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        MANUAL = "manual", "Manual"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="submissions")
    revision = models.PositiveIntegerField()
    message_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    body = models.TextField(
        help_text="The exact JSON body for MINT, frozen when submitted: every retry sends it "
        "byte for byte, in the spec's field order."
    )
    state = models.CharField(
        max_length=10, choices=SubmissionState.choices, default=SubmissionState.QUEUED
    )
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    next_trigger = models.CharField(
        max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULED
    )
    deadline = models.DateTimeField(help_text="Give up retrying after this.")
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    lease_number = models.PositiveIntegerField(
        default=0,
        db_default=0,
        help_text="Counts the claims of this message. Every write that finishes a send names the "
        "number it was claimed under, so a worker whose lease ran out cannot overwrite a newer "
        "claim (a fencing token).",
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    mint_messages = models.JSONField(
        default=list, blank=True, help_text="MINT's validation messages on a 400."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # worker claim: state IN (queued, retrying) AND next_attempt_at <= now, and (few rows)
            # state = sending AND lease_expires_at < now; operations view: queue depth, oldest
            # waiting message and how many are due, read from the index alone (covering)
            models.Index(
                fields=["state", "next_attempt_at", "created_at"], name="submission_queue_idx"
            ),
            # plan detail: the plan's messages, newest first
            models.Index(fields=["plan", "-created_at"], name="submission_plan_idx"),
        ]
        constraints = [
            # A plan never has two messages in flight.
            models.UniqueConstraint(
                fields=["plan"],
                condition=Q(state__in=["queued", "sending", "retrying"]),
                name="submission_one_in_flight_per_plan",
            ),
            models.UniqueConstraint(
                fields=["plan", "revision"], name="submission_one_per_revision"
            ),
        ]

    def __str__(self) -> str:
        return f"Message {self.message_id} (plan {self.plan_id} rev {self.revision})"


class DeliveryAttempt(models.Model):
    """Append-only record of one HTTP exchange with ``POST /plan/``."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        UNAUTHORIZED = "unauthorized", "Unauthorized"
        UNAVAILABLE = "unavailable", "Unavailable"

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="attempts")
    started_at = models.DateTimeField()
    trigger = models.CharField(max_length=10, choices=Submission.Trigger.choices)
    worker = models.CharField(max_length=100)
    duration_ms = models.PositiveIntegerField()
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    mint_messages = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    request_body = models.TextField(help_text="The exact JSON sent (no token: that is a header).")
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [
            # plan detail: a message's attempts in order
            models.Index(fields=["submission", "started_at"], name="attempt_submission_idx"),
            # operations view: deliveries in the last hour by outcome
            models.Index(fields=["started_at"], name="attempt_started_idx"),
        ]

    def __str__(self) -> str:
        return f"Attempt {self.pk}: {self.outcome} ({self.http_status or 'no response'})"


class MintToken(models.Model):
    """The one MINT access token, shared by every worker process (one row, pk=1)."""

    encrypted_token = models.TextField(
        blank=True,
        help_text="The access token, encrypted with MINT_TOKEN_KEYS (plans.token_cipher).",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"MINT token (expires {self.expires_at})"


class MintCircuit(models.Model):
    """The circuit breaker every worker shares (one row, pk=1).

    ``closed``: send freely. After ``MINT_CIRCUIT_THRESHOLD`` retryable failures in a row from
    different messages it opens: nobody sends until ``probe_at``, when one worker takes the
    probe (``probing``, the right lapsing at ``probe_at`` again) and sends one message. A failed
    probe reopens it with twice the interval (up to ``MINT_CIRCUIT_PROBE_CAP``); any success
    closes it and makes every waiting message due at once.
    """

    class State(models.TextChoices):
        CLOSED = "closed", "Closed"
        OPEN = "open", "Open"
        PROBING = "probing", "Probing"

    state = models.CharField(max_length=10, choices=State.choices, default=State.CLOSED)
    failed_messages = models.JSONField(
        default=list, blank=True, help_text="The messageIds of the current run of failures."
    )
    last_failure_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    probe_interval = models.FloatField(default=0)
    probe_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"MINT circuit ({self.state})"
