"""MINT's access token, kept encrypted in one database row that every worker shares, and the
client that uses it.
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from plans.mint.client import Token
from plans.models import MintToken
from plans.token_cipher import token_decrypt, token_encrypt


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
        stored = _stored_token(row)
        if stored:
            self._cached = stored
        return self._cached

    def refresh(self, fetch, stale: Token | None) -> Token:
        with transaction.atomic():
            row, _ = MintToken.objects.select_for_update().get_or_create(pk=1)
            stored = _stored_token(row)
            stale_value = stale.access_token if stale else None
            if stored and stored.access_token != stale_value and stored.is_fresh(cap=self.margin):
                token = stored  # another worker refreshed while we waited for the lock
            else:
                token = fetch()
                row.encrypted_token = token_encrypt(token.access_token)
                row.expires_at = token.expires_at
                row.fetched_at = token.fetched_at or timezone.now()
                row.save()
        self._cached = token
        return token


def _stored_token(row: MintToken | None) -> Token | None:
    """The row's token, or ``None`` if it holds none that a configured key opens."""
    if not (row and row.encrypted_token and row.expires_at):
        return None
    access_token = token_decrypt(row.encrypted_token)
    if not access_token:
        return None
    return Token(access_token=access_token, expires_at=row.expires_at, fetched_at=row.fetched_at)


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
