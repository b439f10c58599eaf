"""Charging sites: where plans happen, known to MINT by their locationId."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from plans.timezones import is_valid_zone


class Location(models.Model):
    """A charging site known to MINT by its ``locationId``."""

    mint_location_id = models.CharField(
        "MINT location ID",
        max_length=100,
        unique=True,
        help_text="The locationId exactly as MINT knows the site.",
    )
    name = models.CharField(max_length=200)
    time_zone = models.CharField(
        max_length=64,
        default="Europe/Brussels",
        help_text="IANA time zone of the site, e.g. Europe/Brussels. Plan times are typed in it.",
    )
    is_active = models.BooleanField(
        "active", default=True, help_text="Only active sites can receive new plans."
    )
    charge_points = models.PositiveSmallIntegerField(
        "charge points",
        null=True,
        blank=True,
        help_text="How many vehicles can charge at once. Empty: not checked.",
    )
    charge_point_kw = models.DecimalField(
        "power per charge point (kW)",
        max_digits=6,
        decimal_places=1,
        null=True,
        blank=True,
        help_text="The most one charge point delivers. Empty: not checked.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="location_chargers_positive",
                condition=(Q(charge_points__isnull=True) | Q(charge_points__gt=0))
                & (Q(charge_point_kw__isnull=True) | Q(charge_point_kw__gt=0)),
                violation_error_message="Charge points and their power must be above zero.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.mint_location_id})"

    def clean(self) -> None:
        if not is_valid_zone(self.time_zone):
            raise ValidationError(
                {"time_zone": f"“{self.time_zone}” is not an IANA time zone name."}
            )
