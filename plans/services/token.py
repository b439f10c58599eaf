"""MINT's access token, kept in one database row that every worker shares, and the client
that uses it.
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from plans.mint.client import Token
from plans.models import MintToken


class DatabaseTokenStore:
    """MINT's access token in one database row, shared by every worker on every machine.

    The refresh runs inside a transaction that holds the row's lock (``SELECT … FOR UPDATE``
    on PostgreSQL, the database write lock on SQLite), so when many deliveries need a new token
    at once, exactly one process asks MINT and the others read what it stored.
    """

    def __init__(self, *, margin: float = 60.0) -> None:
        #: The most a token is refreshed early; shorter-lived tokens use a share of their life.
        self.margin = margin
        self._cached: Token | None = None

    def current(self) -> Token | None:
        if self._cached and self._cached.is_valid():
            return self._cached
        row = MintToken.objects.filter(pk=1).first()
        if row and row.access_token and row.expires_at:
            self._cached = Token(
                access_token=row.access_token,
                expires_at=row.expires_at,
                fetched_at=row.fetched_at,
            )
        return self._cached

    def refresh(self, fetch, stale: Token | None) -> Token:
        with transaction.atomic():
            row, _ = MintToken.objects.select_for_update().get_or_create(pk=1)
            stored = (
                Token(
                    access_token=row.access_token,
                    expires_at=row.expires_at,
                    fetched_at=row.fetched_at,
                )
                if row.access_token and row.expires_at
                else None
            )
            stale_value = stale.access_token if stale else None
            if stored and stored.access_token != stale_value and stored.is_fresh(cap=self.margin):
                token = stored  # another worker refreshed while we waited for the lock
            else:
                token = fetch()
                row.access_token = token.access_token
                row.expires_at = token.expires_at
                row.fetched_at = token.fetched_at or timezone.now()
                row.save()
        self._cached = token
        return token


def mint_client():
    """The MINT client as configured, with the database-backed shared token."""
    from plans.mint.client import MintClient

    # The store and the client must agree on how close to expiry a token is too old.
    margin = 60.0
    return MintClient(
        settings.MINT_API_URL,
        settings.MINT_CLIENT_ID,
        settings.MINT_CLIENT_SECRET,
        token_store=DatabaseTokenStore(margin=margin),
        refresh_margin=margin,
        connect_timeout=settings.MINT_CONNECT_TIMEOUT,
        read_timeout=settings.MINT_READ_TIMEOUT,
    )
