"""Charging sites: where plans happen, known to MINT by their locationId."""

from django.core.exceptions import ValidationError
from django.db import models

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

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.mint_location_id})"

    def clean(self) -> None:
        if not is_valid_zone(self.time_zone):
            raise ValidationError(
                {"time_zone": f"“{self.time_zone}” is not an IANA time zone name."}
            )
