"""How a worker waits for its own database: one clear ERROR per cause, then backoff.

A worker started before the database, or left running while it restarts or before ``migrate``
has run, must neither die nor log a traceback every few seconds: it says once what it waits
for, tries again after 1, 2, 4 … seconds (at most ``MAX_DELAY``), and says when it is back.
"""

import logging
import time
from collections.abc import Callable

from django.db import DatabaseError, connections

from plans import selectors

logger = logging.getLogger("plans.delivery")

FIRST_DELAY = 1.0
MAX_DELAY = 60.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def database_trouble(error: DatabaseError) -> tuple[str, str]:
    """What is wrong with the database, as (kind, plain words), after ``error``.

    Asks the database which migrations it has: that tells one that does not answer from one
    that answers without the tables the code needs, and both from a query that failed on a
    database that is ready (kind ``error``).
    """
    connections.close_all()  # a failed connection is not reused
    try:
        missing = selectors.unapplied_migrations()
    except DatabaseError as exc:
        return "unreachable", f"it does not answer ({_first_line(exc)})"
    finally:
        connections.close_all()
    if missing:
        return "unmigrated", (
            f"it lacks {len(missing)} migration{'s' if len(missing) > 1 else ''} "
            f"(first {missing[0]}): run manage.py migrate"
        )
    return "error", f"a query failed ({_first_line(error)})"


class DatabaseWait:
    """The worker's waits for its database: ``failed`` after each error, ``ok`` after a round
    that worked. ``waiting_for`` says what it waits for, for the heartbeat."""

    def __init__(self, *, sleep: Callable[[float], None]) -> None:
        self.sleep = sleep
        self.waiting_for = ""
        self.kind = ""
        self.delay = FIRST_DELAY
        self.since = 0.0
        self.tries = 0

    def failed(self, error: DatabaseError, *, beat: Callable[[], None]) -> None:
        """Say what is wrong (at ERROR when it is new), then wait before the next try."""
        kind, text = database_trouble(error)
        self.tries += 1
        if kind != self.kind:
            if not self.kind:
                self.since = time.monotonic()
            # A ready database refusing a query is unexpected: then the traceback helps.
            logger.error(
                "waiting for the database: %s; trying again after %g s, then less and less "
                "often (every %g s at most)",
                text,
                self.delay,
                MAX_DELAY,
                exc_info=error if kind == "error" else None,
                extra={"waiting_for": text},
            )
            self.kind = kind
        else:
            logger.info(
                "still waiting for the database: %s (try %d; next in %g s)",
                text,
                self.tries,
                self.delay,
                extra={"waiting_for": text},
            )
        self.waiting_for = f"the database: {text}"
        try:
            beat()  # the database may answer well enough to show what the worker waits for
        except DatabaseError:
            connections.close_all()
        self.sleep(self.delay)
        self.delay = min(self.delay * 2, MAX_DELAY)

    def ok(self) -> None:
        if self.kind:
            logger.info(
                "the database is ready again after %d s; delivering",
                time.monotonic() - self.since,
            )
        self.kind = self.waiting_for = ""
        self.delay = FIRST_DELAY
        self.tries = 0
