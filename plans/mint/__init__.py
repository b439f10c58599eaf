"""MINT Planning API v2.0: payload, client, outcomes and sandbox, with no Django imports."""

from plans.mint.client import (
    CredentialsRefused,
    MemoryTokenStore,
    MintClient,
    Token,
    TokenStore,
    TokenUnavailable,
)
from plans.mint.outcomes import (
    Accepted,
    HealthResult,
    Outcome,
    Rejected,
    Unauthorized,
    Unavailable,
)
from plans.mint.payload import build_plan_payload, encode_body, format_utc

__all__ = [
    "Accepted",
    "CredentialsRefused",
    "HealthResult",
    "MemoryTokenStore",
    "MintClient",
    "Outcome",
    "Rejected",
    "Token",
    "TokenStore",
    "TokenUnavailable",
    "Unauthorized",
    "Unavailable",
    "build_plan_payload",
    "encode_body",
    "format_utc",
]
