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
    """Credentials refused, even after a fresh token; needs a human, not a retry."""

    kind: ClassVar[str] = "unauthorized"


@dataclass(frozen=True)
class Unavailable(Outcome):
    """MINT could not be reached or answered nonsense; try again later."""

    error: str = ""
    retry_after: float | None = None

    kind: ClassVar[str] = "unavailable"
    retryable: ClassVar[bool] = True


@dataclass(frozen=True)
class HealthResult:
    """Result of GET /health/ (spec 3.2.4) for the operator's dashboard."""

    up: bool
    http_status: int | None
    latency_ms: int
    error: str = ""

    @property
    def result(self) -> str:
        """``up`` on 200, ``down`` on any other answer, ``error`` when MINT did not answer."""
        if self.http_status is None:
            return "error"
        return "up" if self.up else "down"
