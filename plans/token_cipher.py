"""MINT's access token at rest: encrypted with Fernet (AES-128-CBC and HMAC-SHA256, from the
``cryptography`` package), so the database row and every backup hold no usable token.

The keys come from ``MINT_TOKEN_KEYS`` (settings): the first encrypts, every one decrypts
(``MultiFernet``), so a new key is rotated in by putting it first and the old one is dropped a
token lifetime later (docs/deploy.md). A stored value no configured key opens (a dropped key, a
changed ``SECRET_KEY`` behind the default key, or a clear-text value from before encryption) is
treated as no token at all: the next delivery fetches a fresh one, which is all MINT's token is.
"""

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@functools.cache
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def token_encrypt(access_token: str) -> str:
    return _cipher(tuple(settings.MINT_TOKEN_KEYS)).encrypt(access_token.encode()).decode()


def token_decrypt(stored: str) -> str | None:
    """The token, or ``None`` when no configured key opens ``stored``."""
    try:
        return _cipher(tuple(settings.MINT_TOKEN_KEYS)).decrypt(stored.encode()).decode()
    except (InvalidToken, ValueError):
        return None
