"""The fleet: vehicles, and the weekly schedules that turn into their plans.

A ``Schedule`` keeps the site's wall-clock times and the site's IANA zone, never UTC offsets,
so every occurrence is on the site's clock after a daylight-saving change. Its occurrences
become ordinary plans (``Plan.schedule`` + ``Plan.occurrence_date``, unique together) as they
enter the horizon. ``ScheduleException`` and ``ScheduleEvent`` rows are written only by
``plans.services``; events are never updated.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from plans.models.sites import Location

#: ISO weekday numbers (Monday = 1) → the short names the pages show.
WEEKDAYS = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}


class Vehicle(models.Model):
    """A vehicle as dispatchers name it ("bus 12"), with what the guards need to know."""

    name = models.CharField(
        "fleet number / name",
        max_length=50,
        unique=True,
        help_text="What dispatchers call it, e.g. “bus 12”. Named in the note sent to MINT.",
    )
    registration = models.CharField(
        "registration or VIN", max_length=50, blank=True, help_text="Optional."
    )
    battery_kwh = models.DecimalField("usable battery (kWh)", max_digits=6, decimal_places=1)
    default_consumption = models.DecimalField(
        "default consumption (kWh/100 km)",
        max_digits=6,
        decimal_places=2,
        help_text="Used for a range plan that gives no consumption of its own.",
    )
    max_charge_kw = models.DecimalField(
        "maximum charging power (kW)", max_digits=6, decimal_places=1
    )
    home_location = models.ForeignKey(
        Location,
        on_delete=models.PROTECT,
        related_name="home_vehicles",
        verbose_name="home site",
        help_text="The site the plan form fills in when this vehicle is picked.",
    )
    is_active = models.BooleanField(
        "active", default=True, help_text="Only active vehicles can be given new plans."
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="vehicle_figures_positive",
                condition=Q(battery_kwh__gt=0)
                & Q(default_consumption__gt=0)
                & Q(max_charge_kw__gt=0),
                violation_error_message="Battery, consumption and power must be above zero.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Schedule(models.Model):
    """A vehicle's weekly pattern at one site: arrives at a wall-clock time on some weekdays,
    leaves at another (the same day or days later), needs the same target each time."""

    vehicle = models.ForeignKey(Vehicle, on_delete=models.PROTECT, related_name="schedules")
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="schedules", verbose_name="site"
    )
    time_zone = models.CharField(
        max_length=64, help_text="The site's IANA zone when the schedule was saved."
    )
    weekdays = models.CharField(
        max_length=7, help_text="ISO weekday numbers of the arrival days, e.g. 12345 for Mon–Fri."
    )
    arrive_at = models.TimeField("arrives (site time)")
    depart_at = models.TimeField("leaves (site time)")
    depart_day_offset = models.PositiveSmallIntegerField(
        "leaves days later", default=0, help_text="0: the same day; 1: the next day."
    )
    target_kind = models.CharField(max_length=6, choices=[("range", "Range"), ("charge", "Charge")])
    expected_range_km = models.PositiveIntegerField(null=True, blank=True)
    average_consumption = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    expected_charge_kwh = models.PositiveIntegerField(null=True, blank=True)
    status_note = models.CharField(max_length=200, blank=True)
    valid_from = models.DateField("first day")
    valid_until = models.DateField("last day", null=True, blank=True)
    auto_submit = models.BooleanField(
        "submit plans automatically",
        default=False,
        help_text="Queue each plan for MINT as soon as it is made.",
    )
    revision = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["location__name", "vehicle__name", "id"]
        indexes = [
            # materialising: the schedules still running on a day (valid_until >= day or open)
            models.Index(fields=["valid_until", "valid_from"], name="schedule_validity_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                name="schedule_exactly_one_target",
                condition=(
                    Q(
                        target_kind="range",
                        expected_range_km__gt=0,
                        expected_charge_kwh__isnull=True,
                    )
                    | Q(
                        target_kind="charge",
                        expected_charge_kwh__gt=0,
                        expected_range_km__isnull=True,
                        average_consumption__isnull=True,
                    )
                ),
                violation_error_message="Give either a range or a charge, not both.",
            ),
            models.CheckConstraint(
                name="schedule_days_in_order",
                condition=Q(valid_until__isnull=True) | Q(valid_until__gte=models.F("valid_from")),
                violation_error_message="The last day must not be before the first.",
            ),
            models.CheckConstraint(
                name="schedule_weekdays_given",
                condition=~Q(weekdays=""),
                violation_error_message="Choose at least one weekday.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vehicle} at {self.location.name}, {self.weekdays_text}"

    @property
    def weekday_numbers(self) -> list[int]:
        return sorted({int(d) for d in self.weekdays if d in "1234567"})

    @property
    def weekdays_text(self) -> str:
        days = self.weekday_numbers
        if days == list(range(1, 8)):
            return "every day"
        if len(days) >= 3 and days == list(range(days[0], days[-1] + 1)):
            return f"{WEEKDAYS[days[0]]}–{WEEKDAYS[days[-1]]}"
        return ", ".join(WEEKDAYS[d] for d in days)

    def clean(self) -> None:
        if not self.weekday_numbers or len(self.weekday_numbers) != len(self.weekdays):
            raise ValidationError({"weekdays": "Choose at least one weekday."})


class ScheduleException(models.Model):
    """A date the schedule skips, or a range it pauses (holidays). Deleted when lifted; every
    change is also in the schedule's history."""

    class Kind(models.TextChoices):
        SKIP = "skip", "Skip one day"
        PAUSE = "pause", "Pause"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="exceptions")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    first_day = models.DateField()
    last_day = models.DateField()
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["first_day", "id"]
        constraints = [
            models.CheckConstraint(
                name="schedule_exception_days_in_order",
                condition=Q(last_day__gte=models.F("first_day")),
                violation_error_message="The last day must not be before the first.",
            ),
        ]

    def __str__(self) -> str:
        if self.first_day == self.last_day:
            return f"{self.get_kind_display()} {self.first_day:%Y-%m-%d}"
        return f"{self.get_kind_display()} {self.first_day:%Y-%m-%d} – {self.last_day:%Y-%m-%d}"


class ScheduleEvent(models.Model):
    """Append-only history of a schedule: created, edited, skipped, paused, ended, and dates
    the worker could not turn into a plan (with why)."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        EDITED = "edited", "Edited"
        SKIPPED = "skipped", "Skipped a day"
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Lifted a pause or skip"
        ENDED = "ended", "Ended"
        CONFLICT = "conflict", "Occurrence not made"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    action = models.CharField(max_length=10, choices=Action.choices)
    occurrence_date = models.DateField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty when the worker acted.",
    )
    actor = models.CharField(max_length=100)
    text = models.TextField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            # schedule page: its history in order; materialising: conflicts already recorded
            models.Index(fields=["schedule", "at"], name="scheduleevent_schedule_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id}: {self.action} {self.at:%Y-%m-%d %H:%M}"
