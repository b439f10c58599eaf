"""The delivery worker: ``python manage.py mint_worker``.

A thin loop around ``plans.services``: beat the heartbeat, claim due messages under a lease,
send each one and record what happened; MINT's health is checked on a thread beside it
(``plans.health_watch``), so a hanging ``/health/`` never holds up a send. Several
workers on several machines share one queue. SIGTERM and SIGINT finish the message on the wire,
hand the rest of the batch back to the queue and exit.

Recording an attempt (one short transaction) runs on a second thread, so the next message is
already on its way while the last one's result is written: a worker then delivers at nearly the
rate the network allows. Messages sent but not yet recorded keep their lease, so no claim can
pick them up again meanwhile.
"""

import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid

from django.conf import settings
from django.core.checks.registry import registry
from django.core.management.base import BaseCommand, SystemCheckError
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from plans import services
from plans.database_wait import DatabaseWait
from plans.health_watch import HealthWatch, ProblemWatch
from plans.mint.client import api_url_problem
from plans.mint.outcomes import Problem

logger = logging.getLogger("plans.delivery")

HEARTBEAT_EVERY = 5.0
#: Seconds between turning schedules into plans (a day enters the horizon once a day).
SCHEDULES_EVERY = 60.0
#: After MINT refused the credentials, claim nothing for this long (seconds).
CREDENTIALS_PAUSE = 30.0
#: Results are recorded in one transaction per group of at most this many, gathered for at
#: most this long (seconds).
RECORD_GROUP_MAX = 50
RECORD_WINDOW = 0.1


#: What ``Recorder.close`` puts in the queue.
STOP = "stop"


class Recorder:
    """Writes delivery outcomes on its own thread (and its own database connection).

    Results are gathered for up to ``RECORD_WINDOW`` seconds (or ``RECORD_GROUP_MAX`` results)
    and written in one transaction: a commit per group, not per message. A worker killed in
    between loses the records of at most that group, never the messages: their leases run out
    and they are sent again with the same messageId.
    """

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.pending: queue.Queue = queue.Queue()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="mint-recorder", daemon=True)
        self.thread.start()

    def record(self, *, submission, outcome, started_at) -> None:
        self.pending.put(services.SentMessage(submission, outcome, started_at))

    def check(self) -> None:
        """Re-raise a recording error (once), so the worker does not send on regardless: a
        database error makes it wait for the database, anything else stops it."""
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure

    def close(self) -> None:
        self.pending.put(STOP)
        self.thread.join()

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                group = [self.pending.get()]
                window_ends = time.monotonic() + RECORD_WINDOW
                while group[-1] != STOP and len(group) < RECORD_GROUP_MAX:
                    try:
                        group.append(self.pending.get(timeout=window_ends - time.monotonic()))
                    except (queue.Empty, ValueError):  # ValueError: the window has passed
                        break
                stop = group[-1] == STOP
                sent = [item for item in group if isinstance(item, services.SentMessage)]
                try:
                    if sent:
                        services.submissions_record_outcomes(sent=sent, worker=self.worker)
                except Exception as exc:
                    # The leases run out and the messages are sent again; stop so it is noticed.
                    logger.exception("could not record delivery attempts")
                    self.failure = exc
                finally:
                    for _ in group:
                        self.pending.task_done()
        finally:
            connections.close_all()


class Command(BaseCommand):
    help = "Deliver queued plans to MINT until stopped (SIGTERM finishes the current send)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", default="", help="Worker name shown in the portal.")
        parser.add_argument(
            "--batch", type=int, default=settings.MINT_WORKER_BATCH, help="Messages per claim."
        )
        parser.add_argument(
            "--once", action="store_true", help="Deliver what is due now, then exit."
        )
        parser.add_argument(
            "--idle-sleep",
            type=float,
            default=settings.MINT_WORKER_IDLE_SLEEP,
            help="Seconds to wait when nothing is due.",
        )

    def get_check_kwargs(self, options) -> dict:
        """Every system check but MINT's address (tag ``mint``): an unusable MINT_API_URL is
        said once while the worker waits, not by exiting for systemd to restart it, and say it
        again, every few seconds. (``manage.py check`` still fails on it: plans.E001.)"""
        return {"tags": sorted(registry.tags_available() - {"mint"})}

    def check(self, *args, **kwargs) -> None:
        """Refuse to start on a configuration error, saying why in the log too."""
        try:
            super().check(*args, **kwargs)
        except SystemCheckError as exc:
            logger.error("mint_worker cannot start: %s", str(exc).strip())
            raise

    def handle(self, *args, **options) -> None:
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        hostname = socket.gethostname()
        self.name = options["name"] or f"{hostname}:{os.getpid()}:{uuid.uuid4().hex[:4]}"
        self.started_at = timezone.now()
        self.client = services.mint_client()
        self.paused_until = 0.0
        self.last_beat = 0.0
        self.last_materialize = -SCHEDULES_EVERY
        self.stdout.write(f"mint_worker {self.name} delivering to {settings.MINT_API_URL}")
        self.recorder = Recorder(self.name)
        self.problems = ProblemWatch()
        self.health = HealthWatch(
            worker=self.name, stdout=self.stdout, stderr=self.stderr, problems=self.problems
        )
        self.database = DatabaseWait(sleep=self._sleep)
        self.unusable_url = api_url_problem(settings.MINT_API_URL)
        if not options["once"] and not self.unusable_url:
            self.health.start()
        try:
            if options["once"] and not self.unusable_url:
                self.health.check_soon()  # here and now: --once delivers what is due, then exits
            while not self.stopping:
                try:
                    if not self._round(once=options["once"], batch=options["batch"]):
                        if options["once"]:
                            break
                        self._sleep(self._pause_seconds(options["idle_sleep"]))
                except DatabaseError as exc:
                    # The database restarting must not end the worker: what it had claimed is
                    # leased and comes back; say once what is wrong, wait and carry on.
                    if options["once"]:
                        raise
                    self.database.failed(exc, beat=lambda: self._beat(force=True))
                else:
                    self.database.ok()
        finally:
            self.health.stop()
            self.recorder.close()
            try:
                self._beat(stopping=True)
            except DatabaseError:
                logger.warning("could not record that the worker stopped: no database")
            self.stdout.write(f"mint_worker {self.name} stopped")

    def _round(self, *, once: bool, batch: int) -> bool:
        """One turn of the loop; False when there was nothing to do (or MINT said wait)."""
        close_old_connections()
        self.recorder.check()
        self._beat()
        self._materialize_if_due()
        if self.unusable_url:
            # Nothing can reach MINT: say so (once) and send nothing until a restart fixes it.
            self.problems.found(Problem.URL, Problem.url.format(reason=self.unusable_url))
            return False
        if self.health.says_down or time.monotonic() < self.paused_until:
            return False
        claimed = services.submissions_claim(worker=self.name, limit=batch)
        if not claimed:
            return False
        self._deliver(claimed)
        return True

    def _pause_seconds(self, idle: float) -> float:
        return max(idle, min(self.paused_until - time.monotonic(), CREDENTIALS_PAUSE))

    def _deliver(self, batch: list) -> None:
        lease_checked = time.monotonic()
        health_asked = False
        for index, submission in enumerate(batch):
            if self.stopping:
                self._release(batch[index:], "the worker was stopped before sending")
                break
            if time.monotonic() - lease_checked > settings.MINT_LEASE_SECONDS / 3:
                # Slow sends: extend our claim on what is left, and leave what we lost.
                held = services.submissions_renew_lease(submissions=batch[index:])
                lease_checked = time.monotonic()
                if submission.pk not in held:
                    continue
            started_at = timezone.now()
            outcome = self.client.send_plan(submission.body)
            self.recorder.record(submission=submission, outcome=outcome, started_at=started_at)
            if outcome.kind in ("accepted", "rejected"):
                self.problems.gone()  # MINT took the credentials and the address
            if outcome.kind == "unauthorized":
                self.problems.found(Problem.CREDENTIALS, Problem.credentials)
                # Wrong credentials fail every message alike: stop asking MINT for a while.
                self.paused_until = time.monotonic() + CREDENTIALS_PAUSE
                self._release(batch[index + 1 :], "MINT refused the portal's credentials")
                break
            if outcome.retryable and not health_asked:
                # One failure may be a blip; have /health/ asked (never waiting for it here).
                health_asked = True
                self.health.check_soon()
            if self.health.says_down:
                self._release(batch[index + 1 :], "MINT reports that it is down (/health/)")
                break
            self._beat()

    def _release(self, submissions: list, why: str) -> None:
        if submissions:
            services.submissions_release(
                submissions=submissions,
                worker=self.name,
                reason=f"Handed back to the queue: {why}.",
            )

    def _materialize_if_due(self) -> None:
        """One more step of the loop: turn schedules into plans as their days come within the
        horizon. Idempotent, so every worker may do it; a fault here never stops delivery."""
        if time.monotonic() - self.last_materialize < SCHEDULES_EVERY:
            return
        self.last_materialize = time.monotonic()
        try:
            services.schedules_materialize()
        except DatabaseError:
            raise
        except Exception:
            logger.exception("could not turn schedules into plans; trying again in a minute")

    def _beat(self, stopping: bool = False, force: bool = False) -> None:
        if stopping or force or time.monotonic() - self.last_beat >= HEARTBEAT_EVERY:
            services.heartbeat_beat(
                name=self.name,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=self.started_at,
                stopping=stopping,
                waiting_for="" if stopping else self._waiting_for(),
            )
            self.last_beat = time.monotonic()

    def _waiting_for(self) -> str:
        """What holds this worker's deliveries, in plain words, for the operations panel."""
        if self.database.waiting_for:
            return self.database.waiting_for
        if self.unusable_url:
            return "MINT_API_URL to be fixed (then a restart of the worker)"
        if self.health.says_down:
            return "MINT, which says it is down (503 from /health/)"
        if time.monotonic() < self.paused_until:
            return "MINT to accept the portal's credentials (it refused them)"
        return ""

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, deadline - time.monotonic()))

    def _stop(self, signum, frame) -> None:
        self.stopping = True
