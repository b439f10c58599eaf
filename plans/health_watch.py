"""The worker's watch on MINT's ``/health/``, on a thread of its own.

A health check may take as long as the read timeout (10 s by default) when ``/health/`` hangs;
asked from the send loop, that stopped every delivery for as long. Here the checks run beside
the sends: the send loop only reads the latest verdict (``says_down``) and may ask for an early
check (``check_soon``), and never waits for one. A check that gets no answer is *unknown*, not
*down*: only MINT's own 503 holds the sends.
"""

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from plans import selectors, services
from plans.mint.outcomes import Problem

logger = logging.getLogger("plans.delivery")

#: While MINT says it is down, ask again this often (seconds).
DOWN_RECHECK_EVERY = 5.0
#: The shortest pause between two checks on the thread, whatever the interval says.
MIN_PAUSE = 0.05


class ProblemWatch:
    """The fault of the portal's own configuration (``Problem``) that MINT's answers reveal,
    as this worker knows it: each change is written for the pages and logged, a new fault at
    ERROR, once. Shared by the send loop and the health thread.
    """

    def __init__(self) -> None:
        self.kind = ""
        self.text = ""
        self._lock = threading.Lock()

    def load(self) -> None:
        """Take what the pages show now (another worker may have found or cleared it)."""
        row = selectors.mint_problem()
        with self._lock:
            self.kind, self.text = row

    def found(self, kind: str, text: str) -> None:
        with self._lock:
            if (kind, text) == (self.kind, self.text):
                return
            services.mint_problem_record(kind=kind, text=text)
            self.kind, self.text = kind, text
        logger.error("%s", text, extra={"problem": kind})

    def gone(self, *, keep: tuple[str, ...] = ()) -> None:
        """The answers show the fault is fixed, unless it is of a kind in ``keep`` (one the
        answer could not have shown: a 200 from /health/ says nothing of the credentials)."""
        with self._lock:
            if not self.kind or self.kind in keep:
                return
            services.mint_problem_record(kind="", text="")
            fixed, self.kind, self.text = self.text, "", ""
        logger.info("fixed: %s", fixed, extra={"problem": ""})


class HealthWatch:
    """Checks MINT's health every ``MINT_HEALTH_INTERVAL`` seconds and records each answer.

    ``start()`` runs the checks on a daemon thread with its own MINT client (its own HTTP
    session) and database connection. Without ``start()`` (``mint_worker --once``) each
    ``check_soon()`` checks at once on the caller's thread.
    """

    def __init__(self, *, worker: str, stdout, stderr, problems: ProblemWatch) -> None:
        self.worker = worker
        self.problems = problems
        self.stdout = stdout
        self.stderr = stderr
        self.client = services.mint_client()
        self.says_down = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mint-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop checking; a check hanging on MINT is not waited for (the thread is a daemon)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self.client.close()

    def check_soon(self) -> None:
        """Have MINT's health asked now: on the thread if it runs, else here and now."""
        if self._thread is None:
            self.check()
        else:
            self._wake.set()

    def interval(self) -> float:
        interval = settings.MINT_HEALTH_INTERVAL
        if self.says_down:
            interval = min(interval, DOWN_RECHECK_EVERY)
        return interval

    def check(self) -> None:
        """One check: ask MINT, record the answer, fail what waited past its deadline, and
        say what the answer reveals about the portal's own configuration."""
        self.problems.load()
        result = self.client.health()
        was_down, self.says_down = self.says_down, result.says_down
        if self.says_down and not was_down:
            self.stderr.write(f"MINT says it is down (HTTP {result.http_status}); waiting")
        elif was_down and not self.says_down:
            self.stdout.write("MINT is up again; delivering")
        services.health_record(result=result)
        if result.problem_kind:
            self.problems.found(result.problem_kind, result.problem)
        elif result.http_status is not None:
            # MINT answered at MINT_API_URL, so the address is right. The credentials are
            # known good only if a token was fetched; while in doubt, ask for one.
            credentials_good = result.credentials_checked
            if self.problems.kind == Problem.CREDENTIALS and not credentials_good:
                refused = self.client.credentials_refused()
                if refused:
                    self.problems.found(Problem.CREDENTIALS, Problem.credentials)
                credentials_good = refused is False
            self.problems.gone(keep=() if credentials_good else (Problem.CREDENTIALS,))
        # Deadlines pass during an outage too: give up on what waited too long, visibly.
        services.submissions_fail_overdue(worker=self.worker)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                close_old_connections()
                try:
                    self.check()
                except DatabaseError:
                    # The send loop meets the same database and says so, once; here the
                    # answer is dropped and the next check tries again.
                    logger.debug("could not record a health check", exc_info=True)
                except Exception:
                    logger.exception("MINT health check failed; trying again")
                self._wake.wait(max(self.interval(), MIN_PAUSE))
        finally:
            connections.close_all()
