"""Calendar feed tokens: the credential a calendar program shows instead of a login.

Calendar programs (Outlook, Google Calendar, Apple Calendar, Thunderbird) subscribe to a URL and
cannot log in, so the URL itself carries a secret. Only its SHA-256 hash is stored, with a short
prefix so the owner can tell tokens apart on the account page; the secret is shown once, when it
is made. A token reads what its user may read, for as long as the user is active and keeps the
view right; revoking it ends every feed URL made with it. Rows are written only by
``plans.services.feeds`` and kept after revocation (who had which token, until when).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from plans.models.plans import validate_one_line_text


class FeedToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feed_tokens"
    )
    label = models.CharField(
        max_length=100,
        validators=[validate_one_line_text],
        help_text="Where the token is used, e.g. “Outlook in the depot office”.",
    )
    prefix = models.CharField(
        max_length=8, help_text="The secret's first characters, to tell tokens apart."
    )
    secret_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the secret.")
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # account page: the user's tokens not revoked (user = … AND revoked_at IS NULL)
            models.Index(
                fields=["user", "created_at"],
                condition=Q(revoked_at__isnull=True),
                name="feedtoken_user_active_idx",
            ),
        ]
        # The feed's lookup by secret_hash uses the unique constraint's index.

    def __str__(self) -> str:
        return f"{self.label} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
