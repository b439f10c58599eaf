"""Plans, their append-only history and the per-state counts the dashboard reads.

``PlanEvent`` rows are written only by ``plans.services`` and never updated.
"""

import hashlib
import unicodedata
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from plans.models.fleet import Schedule, Vehicle
from plans.models.sites import Location
from plans.timezones import utc_to_wall


class PlanState(models.TextChoices):
    DRAFT = "draft", "Draft"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Retrying"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"
    WITHDRAWN = "withdrawn", "Withdrawn"
    CANCELLED = "cancelled", "Cancelled"


#: States in which the plan's current message is waiting for, or inside, a delivery attempt.
PENDING_STATES = (PlanState.QUEUED, PlanState.SENDING, PlanState.RETRYING)
#: States after which nothing happens until a person acts.
FINAL_STATES = (
    PlanState.DRAFT,
    PlanState.ACCEPTED,
    PlanState.REJECTED,
    PlanState.FAILED,
    PlanState.WITHDRAWN,
    PlanState.CANCELLED,
)
#: A dispatcher called the plan off: *withdrawn* before MINT had any revision of it,
#: *cancelled* when MINT still holds an accepted revision (its API has no cancel). Such plans
#: take no part in the guards and are counted apart.
CALLED_OFF_STATES = (PlanState.WITHDRAWN, PlanState.CANCELLED)

#: Characters that reverse or isolate the direction of the text around them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def validate_one_line_text(value: str) -> None:
    """Refuse control characters (tab, newline, bell …) and text-direction overrides.

    The note goes to MINT and back onto every plan page: an invisible character there makes
    the text on screen differ from what was sent, or scrambles what follows it.
    """
    for char in value:
        if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
            raise ValidationError(
                f"Remove the invisible character U+{ord(char):04X}: the note must be plain "
                f"text on one line.",
                code="control_character",
            )


#: A vehicle's stay at a site lasts hours, a few days at most: a longer window is a slip of the
#: keyboard (a wrong month, or a year typed as "26" and read as 0026), not a plan.
PLAN_MAX_WINDOW = timedelta(days=7)
#: How far ahead a plan may start: a year of planning, not a mistyped year.
PLAN_MAX_AHEAD = timedelta(days=366)


def plan_window_errors(
    start: datetime, end: datetime, *, zone: str, now: datetime
) -> dict[str, str]:
    """What is wrong with a window that ends after it starts, by field. Its length is read on
    the site's clock (``zone``), so a week across a clock change is still a week.

    One definition for the form, which says it beside the typed times, and the service, which
    holds every other way into the database to the same rules. (End after start is also a
    database constraint.)
    """
    errors = {}
    if end <= now:
        errors["scheduled_end"] = "This window has already ended; a plan must end in the future."
    elif utc_to_wall(end, zone) - utc_to_wall(start, zone) > PLAN_MAX_WINDOW:
        errors["scheduled_end"] = "A plan covers at most 7 days; check the dates and the year."
    if start > now + PLAN_MAX_AHEAD:
        errors["scheduled_start"] = "A plan can start at most a year ahead; check the year."
    return errors


class TargetKind(models.TextChoices):
    RANGE = "range", "Range (km)"
    CHARGE = "charge", "Charge (kWh)"


class Plan(models.Model):
    """One vehicle's stay at a site: when it is there and what it needs.

    ``transaction_id`` is fixed for the plan's whole life. ``revision`` grows when a plan that was
    already submitted is edited; each submitted revision is one ``Submission`` (one messageId).
    """

    transaction_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="plans")
    vehicle = models.ForeignKey(
        Vehicle, on_delete=models.PROTECT, null=True, blank=True, related_name="plans"
    )
    scheduled_start = models.DateTimeField()
    scheduled_end = models.DateTimeField()
    target_kind = models.CharField(max_length=6, choices=TargetKind.choices)
    expected_range_km = models.PositiveIntegerField(null=True, blank=True)
    average_consumption = models.DecimalField(
        "average consumption (kWh/100 km)",
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
    )
    expected_charge_kwh = models.PositiveIntegerField(null=True, blank=True)
    status_note = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_one_line_text],
        help_text="Sent to MINT as “status”. Empty: a tracing text is sent.",
    )
    state = models.CharField(max_length=10, choices=PlanState.choices, default=PlanState.DRAFT)
    revision = models.PositiveIntegerField(default=1)
    schedule = models.ForeignKey(
        Schedule, on_delete=models.PROTECT, null=True, blank=True, related_name="plans"
    )
    occurrence_date = models.DateField(
        null=True, blank=True, help_text="The schedule's arrival day this plan was made for."
    )
    schedule_detached = models.BooleanField(
        default=False,
        help_text="Edited on its own: later schedule edits leave this plan alone.",
    )
    warnings = models.JSONField(
        default=list,
        blank=True,
        help_text="The guards' warnings as last worked out: [{code, text}]. Kept with the plan "
        "so the list shows them without working them out per row.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["scheduled_start", "id"]
        permissions = [
            ("submit_plan", "Can submit and retry plans to MINT"),
        ]
        indexes = [
            # plan list: ORDER BY scheduled_start, id (all plans, or from a date on)
            models.Index(fields=["scheduled_start", "id"], name="plan_start_idx"),
            # plan list filtered by state or delivery group (state IN …), sorted by start
            models.Index(fields=["state", "scheduled_start"], name="plan_state_start_idx"),
            # plan list filtered by site, sorted by start; with state in the index, a site +
            # state filter and its capped count are answered without reading the plan rows
            models.Index(
                fields=["location", "scheduled_start", "state"], name="plan_site_start_state_idx"
            ),
            # handover page: plans starting or running in the next hours (start in a range
            # AND end > now), answered from the index, so only the plans in the window are read
            models.Index(fields=["scheduled_start", "scheduled_end"], name="plan_start_end_idx"),
            # guards: the vehicle's plans around a window (vehicle = … AND start in a range)
            models.Index(fields=["vehicle", "scheduled_start"], name="plan_vehicle_start_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                name="plan_exactly_one_target",
                condition=(
                    Q(
                        target_kind="range",
                        expected_range_km__isnull=False,
                        expected_charge_kwh__isnull=True,
                    )
                    | Q(
                        target_kind="charge",
                        expected_charge_kwh__isnull=False,
                        expected_range_km__isnull=True,
                    )
                ),
                violation_error_message="Give either a range or a charge, not both.",
            ),
            models.CheckConstraint(
                name="plan_consumption_only_with_range",
                condition=Q(average_consumption__isnull=True) | Q(target_kind="range"),
                violation_error_message="Average consumption goes only with a range.",
            ),
            models.CheckConstraint(
                name="plan_targets_positive",
                condition=(
                    (Q(expected_range_km__isnull=True) | Q(expected_range_km__gt=0))
                    & (Q(expected_charge_kwh__isnull=True) | Q(expected_charge_kwh__gt=0))
                    & (Q(average_consumption__isnull=True) | Q(average_consumption__gt=0))
                ),
                violation_error_message="Range, charge and consumption must be above zero.",
            ),
            models.CheckConstraint(
                name="plan_end_after_start",
                condition=Q(scheduled_end__gt=models.F("scheduled_start")),
                violation_error_message="The end must be after the start.",
            ),
            # A schedule makes at most one plan per arrival day, however many workers run.
            models.UniqueConstraint(
                fields=["schedule", "occurrence_date"],
                condition=Q(schedule__isnull=False),
                name="plan_one_per_schedule_day",
            ),
            models.CheckConstraint(
                name="plan_occurrence_with_schedule",
                condition=Q(schedule__isnull=True, occurrence_date__isnull=True)
                | Q(schedule__isnull=False, occurrence_date__isnull=False),
                violation_error_message="A schedule's plan needs its day, and only it has one.",
            ),
            models.CheckConstraint(
                name="plan_state_valid",
                condition=Q(state__in=PlanState.values),
                violation_error_message="Unknown plan state.",
            ),
        ]

    def __str__(self) -> str:
        return f"Plan {self.pk} rev {self.revision} at {self.location_id}"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def content_fingerprint(self) -> str:
        """What the dispatcher can change, condensed: the edit form carries it, so a save can
        tell that someone else changed the plan since the form was opened."""
        fields = (
            self.location_id,
            self.vehicle_id,
            self.scheduled_start,
            self.scheduled_end,
            self.target_kind,
            self.expected_range_km,
            self.average_consumption,
            self.expected_charge_kwh,
            self.status_note,
            self.revision,
        )
        return hashlib.sha256(repr(fields).encode()).hexdigest()[:20]

    @property
    def is_called_off(self) -> bool:
        return self.state in CALLED_OFF_STATES

    @property
    def estimated_energy_kwh(self):
        """Range × consumption / 100 (the vehicle's default consumption when the plan gives
        none): what the range will cost in kWh, when that is known."""
        consumption = self.average_consumption
        if consumption is None and self.vehicle_id:
            consumption = self.vehicle.default_consumption
        if self.expected_range_km and consumption:
            return self.expected_range_km * consumption / 100
        return None


class PlanEvent(models.Model):
    """Append-only history of a plan: every state change and every person's action on it."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        EDITED = "edited", "Edited"
        SUBMITTED = "submitted", "Submitted"
        RETRIED = "retried", "Retried"
        DUPLICATED = "duplicated", "Duplicated from another plan"
        DELIVERY = "delivery", "Delivery"
        WITHDRAWN = "withdrawn", "Withdrawn"
        CANCELLED = "cancelled", "Cancelled"
        DETACHED = "detached", "Detached from its schedule"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    action = models.CharField(max_length=10, choices=Action.choices)
    from_state = models.CharField(max_length=10, choices=PlanState.choices, blank=True)
    to_state = models.CharField(max_length=10, choices=PlanState.choices)
    revision = models.PositiveIntegerField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty when the delivery worker made the change.",
    )
    actor = models.CharField(
        max_length=100, help_text="Who acted: a username, or the worker's name."
    )
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            # plan detail: the plan's history in order
            models.Index(fields=["plan", "at", "id"], name="planevent_plan_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.plan_id}: {self.from_state or '∅'} → {self.to_state} ({self.action})"


class PlanStateCount(models.Model):
    """How many plans are in each state, kept by the services with every history row.

    The dashboard reads seven rows instead of counting every plan ever made; the counts move in
    the same transaction as the state changes, from the ``PlanEvent`` rows that record them.
    """

    state = models.CharField(max_length=10, choices=PlanState.choices, primary_key=True)
    count = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.state}: {self.count}"
