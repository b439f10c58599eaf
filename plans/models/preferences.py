"""What the portal remembers for each user between visits, so the next form starts where they
left off."""

from django.conf import settings
from django.db import models

from plans.models.sites import Location


class UserPreference(models.Model):
    """One row per user, written when they save a new plan (``preference_site_remember``)."""

    # Its unique index serves selectors.user_last_site and the upsert of
    # preference_site_remember (both look a row up by user).
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="plan_preference"
    )
    # Its index serves SET_NULL when a site is deleted (the rows that name it).
    last_location = models.ForeignKey(
        Location,
        verbose_name="last site used",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Preselected on the user's next new plan.",
    )

    class Meta:
        verbose_name = "user preference"

    def __str__(self) -> str:
        return f"Preferences of {self.user}"
