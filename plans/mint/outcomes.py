"""The typed results of talking to MINT.

The worker decides what to do next (done, keep MINT's messages, stop, back off and retry) from the
class alone, so every HTTP exchange is reduced to one of these and nothing else leaks out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Outcome:
    """What happened to one plan send, with enough detail to write an attempt row."""

    http_status: int | None
    duration_ms: int
    body_sent: str

    kind: ClassVar[str] = "outcome"
    retryable: ClassVar[bool] = False


@dataclass(frozen=True)
class Accepted(Outcome):
    """MINT answered 200: the plan is delivered."""

    kind: ClassVar[str] = "accepted"


@dataclass(frozen=True)
class Rejected(Outcome):
    """MINT answered 400 with its validation list (spec 3.2.3); resending it is futile."""

    messages: list[str] = field(default_factory=list)

    kind: ClassVar[str] = "rejected"


@dataclass(frozen=True)
class Unauthorized(Outcome):
    """MINT refused the credentials (401 even with a fresh token, or from the token endpoint).

    Retried with backoff like an outage, since rotated credentials fix it without touching the
    plan; the worker also pauses so it does not hammer the token endpoint meanwhile.
    """

    error: str = (
        "MINT refused the portal's credentials (HTTP 401). "
        "Check MINT_CLIENT_ID and MINT_CLIENT_SECRET."
    )

    kind: ClassVar[str] = "unauthorized"
    retryable: ClassVar[bool] = True


@dataclass(frozen=True)
class Unavailable(Outcome):
    """MINT could not be reached or answered nonsense; try again later."""

    error: str = ""
    retry_after: float | None = None

    kind: ClassVar[str] = "unavailable"
    retryable: ClassVar[bool] = True


class Problem:
    """Faults of the portal's own configuration that MINT's answers reveal: the kinds, and
    what to tell the operator (on every page and in the log). Nothing MINT can fix."""

    CREDENTIALS = "credentials"
    URL = "url"
    TLS = "tls"
    NOT_FOUND = "not_found"
    REDIRECT = "redirect"

    credentials = (
        "MINT refuses the portal's credentials: check MINT_CLIENT_ID and MINT_CLIENT_SECRET"
    )
    url = "MINT_API_URL cannot be used: {reason}. Write it as https://<host>/api/v1.0"
    no_tls = (
        "MINT_API_URL says https, but the server at that address does not speak TLS "
        "(it may serve plain http): check MINT_API_URL"
    )
    tls = "The TLS connection to MINT failed ({reason}): check MINT_API_URL and MINT's certificate"
    not_found = (
        "MINT answered 404 for {path}: MINT_API_URL must end with the API version, "
        "e.g. https://<host>/api/v1.0"
    )
    redirect = (
        "MINT answered {status} for {path} and redirects elsewhere: set MINT_API_URL to the "
        "address MINT answers at"
    )


@dataclass(frozen=True)
class HealthResult:
    """Result of GET /health/ (spec 3.2.4) for the operator's dashboard.

    ``problem_kind`` and ``problem`` name a fault of the portal's configuration that the check
    revealed (see ``Problem``); ``credentials_checked`` says the check fetched a token, so the
    credentials are known to work.
    """

    up: bool
    http_status: int | None
    latency_ms: int
    error: str = ""
    problem_kind: str = ""
    problem: str = ""
    credentials_checked: bool = False

    @property
    def says_down(self) -> bool:
        """MINT says it is down (503, spec 3.2.4): deliveries should wait.

        A check that got no answer says nothing about MINT (``/health/`` may hang while
        ``/plan/`` works), and any other answer (a 404 from a wrong URL, say) does not stop
        deliveries either; their attempts then record what went wrong.
        """
        return self.http_status == 503

    @property
    def result(self) -> str:
        """``up`` on 200, ``down`` on any other answer, ``error`` when MINT did not answer."""
        if self.http_status is None:
            return "error"
        return "up" if self.up else "down"
