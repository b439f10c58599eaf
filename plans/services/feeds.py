"""Calendar feed tokens: make one (its secret shown once), revoke one, and find the token a
feed request names.

A token is ``secrets.token_urlsafe`` text (240 random bits); the database keeps its SHA-256 hash
and its first characters, never the secret, so neither the database nor a backup opens a feed.
Guessing is hopeless at that length, so a wrong token costs one indexed lookup and no lockout.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from plans.models import FeedToken, validate_one_line_text

#: Characters of the secret kept in clear to tell a user's tokens apart.
PREFIX_LENGTH = 6
#: Tokens one user may hold at once: one per calendar program is a handful.
MAX_ACTIVE_TOKENS = 10
#: "Last used" is written at most this often per token, so a calendar that polls every few
#: minutes does not write a row on every request.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewFeedToken:
    """A token just made: the row, and the secret that is never stored or shown again."""

    token: FeedToken
    secret: str


@transaction.atomic
def feed_token_create(*, user: AbstractBaseUser, label: str) -> NewFeedToken:
    """Make a token for ``user``. The caller shows ``secret`` once; only its hash is kept."""
    label = label.strip()
    if not label:
        raise ValidationError({"label": ["Name the token, e.g. “Outlook in the depot office”."]})
    validate_one_line_text(label)
    # Lock the user's row so two quick clicks cannot both pass the limit.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    active = FeedToken.objects.filter(user=user, revoked_at__isnull=True).count()
    if active >= MAX_ACTIVE_TOKENS:
        raise ValidationError(
            {
                "label": [
                    f"You already have {active} calendar tokens. Revoke one you no longer use "
                    f"before making another."
                ]
            }
        )
    secret = secrets.token_urlsafe(30)
    token = FeedToken.objects.create(
        user=user,
        label=label,
        prefix=secret[:PREFIX_LENGTH],
        secret_hash=_hash(secret),
        created_at=timezone.now(),
    )
    return NewFeedToken(token=token, secret=secret)


def feed_token_revoke(*, user: AbstractBaseUser, pk: int) -> FeedToken:
    """Revoke one of ``user``'s own tokens; every feed URL made with it answers 404 from now on.

    Raises ``FeedToken.DoesNotExist`` for a token that is not the user's or already revoked.
    """
    token = FeedToken.objects.get(pk=pk, user=user, revoked_at__isnull=True)
    FeedToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    return token


def feed_tokens_revoke(*, pks: list[int]) -> int:
    """Revoke any users' live tokens (an administrator's action in Django admin, e.g. for a
    laptop that was lost); returns how many were live."""
    return FeedToken.objects.filter(pk__in=pks, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def feed_token_use(*, secret: str) -> FeedToken | None:
    """The live token ``secret`` names, with its user loaded, noting that it was used; ``None``
    for a secret that names no token or a revoked one (the caller must not tell them apart)."""
    token = (
        FeedToken.objects.select_related("user")
        .filter(secret_hash=_hash(secret), revoked_at__isnull=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        FeedToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
