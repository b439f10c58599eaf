"""The delivery worker: ``python manage.py mint_worker``.

A thin loop around ``plans.services``: beat the heartbeat, claim due messages under a lease,
send each one and record what happened; MINT's health is checked on a thread beside it
(``plans.health_watch``), so a hanging ``/health/`` never holds up a send. Several
workers on several machines share one queue. SIGTERM and SIGINT finish the message on the wire,
hand the rest of the batch back to the queue and exit.

Sends run on ``MINT_WORKER_CONCURRENCY`` sender threads, each with its own MINT client (one
keep-alive connection), so a worker keeps that many plans in flight and MINT's latency is paid
once per round, not once per plan; a plan has at most one message in flight (a database
constraint), so its revisions still go in order. Recording an attempt (one short transaction)
runs on another thread, so the next message is already on its way while the last one's result
is written. The main thread claims, hands out sends, renews the leases of everything it holds
on a timer (so a slow send keeps its claim) and obeys the circuit breaker shared with every
other worker (``plans.services.circuit``).
"""

import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections import deque
from datetime import timedelta

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


#: What ``Recorder.close`` and ``Senders.close`` put in their queues.
STOP = "stop"


class Senders:
    """Threads that send plans to MINT, each with its own client and so its own connection.

    The main thread puts claimed messages in ``jobs`` and takes ``(submission, outcome or
    exception, started_at)`` from ``results``. Each thread closes its client and its database
    connection (used to read the shared token) when it stops.
    """

    def __init__(self, count: int) -> None:
        self.jobs: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.threads = [
            threading.Thread(target=self._run, name=f"mint-send-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        client = services.mint_client()
        try:
            while (submission := self.jobs.get()) != STOP:
                started_at = timezone.now()
                try:
                    result = client.send_plan(submission.body)
                except Exception as exc:  # a database error reading the token, say
                    result = exc
                self.results.put((submission, result, started_at))
        finally:
            client.close()
            connections.close_all()

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(STOP)
        for thread in self.threads:
            thread.join()


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
                        answered = [
                            item.started_at + timedelta(milliseconds=item.outcome.duration_ms)
                            for item in sent
                            if item.outcome.kind in ("accepted", "rejected")
                        ]
                        if answered:
                            # MINT answers: end a run of failures (every worker's count).
                            services.circuit_note_success(finished_at=max(answered))
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
        self.circuit_wait = 0.0
        #: Sends in flight at once: one until MINT has answered a send properly, then
        #: MINT_WORKER_CONCURRENCY; back to one after a failure (refused credentials or a sick
        #: MINT then cost one request, not a whole round of them).
        self.width = 1
        self.last_beat = 0.0
        self.last_materialize = -SCHEDULES_EVERY
        self.stdout.write(f"mint_worker {self.name} delivering to {settings.MINT_API_URL}")
        self.recorder = Recorder(self.name)
        self.senders = Senders(settings.MINT_WORKER_CONCURRENCY)
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
            self.senders.close()
            self.client.close()
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
        gate, self.circuit_wait = services.circuit_gate()
        if gate == services.Gate.WAIT:
            return False
        probe = gate == services.Gate.PROBE
        claimed = services.submissions_claim(
            worker=self.name, limit=1 if probe else batch, early=probe
        )
        if not claimed:
            if probe:
                services.circuit_probe_unused()
            return False
        self._deliver(claimed, probe=probe, batch=batch)
        return True

    def _claim_more(self, batch: int) -> list:
        """More due messages while sends are still in flight, so the pipe never runs dry between
        batches; none while anything says wait, or for a moment after the queue was empty."""
        if time.monotonic() < self.nothing_due_until:
            return []
        self.recorder.check()
        if self.health.says_down or time.monotonic() < self.paused_until:
            return []
        if services.circuit_gate()[0] != services.Gate.SEND:
            return []
        claimed = services.submissions_claim(worker=self.name, limit=batch)
        if not claimed:
            self.nothing_due_until = time.monotonic() + settings.MINT_WORKER_IDLE_SLEEP
        self.health_asked = False
        return claimed

    def _pause_seconds(self, idle: float) -> float:
        if self.circuit_wait:
            return min(idle, max(0.05, self.circuit_wait))
        return max(idle, min(self.paused_until - time.monotonic(), CREDENTIALS_PAUSE))

    def _deliver(self, claimed: list, *, probe: bool = False, batch: int = 1) -> None:
        """Send claimed messages, up to ``self.width`` at a time, claiming more while the senders
        still have work, until nothing is due or something says stop (SIGTERM, refused
        credentials, MINT down, the circuit opening); what was not sent then goes back to the
        queue. A probe sends its one message and nothing more.

        At full width every claimed message is handed to the senders at once (the threads cap
        what is in flight), so they keep sending while this thread claims the next batch;
        ``flying`` holds what was handed over and not yet answered.
        """
        todo = deque(claimed)
        flying: dict[int, object] = {}
        self.nothing_due_until = 0.0
        renew_every = settings.MINT_LEASE_SECONDS / 3
        renewed = time.monotonic()
        halt = ""
        failure: BaseException | None = None
        self.health_asked = False
        try:
            while todo or flying:
                if self.stopping and not halt:
                    halt = "the worker was stopped before sending"
                if self.health.says_down and not halt:
                    halt = "MINT reports that it is down (/health/)"
                if halt or self.width < settings.MINT_WORKER_CONCURRENCY:
                    todo.extendleft(reversed(self._take_back(flying)))
                if halt and todo:
                    self._release(list(todo), halt)
                    todo.clear()
                if not todo and not halt and not probe and self._running_low(batch):
                    todo.extend(self._claim_more(batch))
                full = self.width >= settings.MINT_WORKER_CONCURRENCY
                while todo and (full or len(flying) < self.width):
                    submission = todo.popleft()
                    flying[submission.pk] = submission
                    self.senders.jobs.put(submission)
                if not flying:
                    break
                try:
                    timeout = max(0.01, renew_every - (time.monotonic() - renewed))
                    submission, outcome, started_at = self.senders.results.get(timeout=timeout)
                except queue.Empty:
                    pass
                else:
                    del flying[submission.pk]
                    if isinstance(outcome, BaseException):
                        failure = failure or outcome
                        halt = halt or "the worker met an error"
                    else:
                        self.recorder.record(
                            submission=submission, outcome=outcome, started_at=started_at
                        )
                        halt = halt or self._after_send(submission, outcome, probe=probe)
                if time.monotonic() - renewed >= renew_every:
                    # Slow sends: extend our claim on all we hold, and leave what we lost.
                    held = services.submissions_renew_lease(submissions=[*todo, *flying.values()])
                    todo = deque(sub for sub in todo if sub.pk in held)
                    renewed = time.monotonic()
                self._beat()
        except BaseException:
            # The database went away mid-batch, say: record what is on the wire before giving
            # up, so no answer is left behind in the queue for a later batch to trip over. The
            # unsent rest keeps its lease until it runs out, then is sent again.
            self._take_back(flying)
            self._wait_for(flying)
            raise
        if failure is not None:
            raise failure

    def _take_back(self, flying: dict) -> list:
        """The messages handed to the senders that no sender has started yet, in order."""
        back = []
        while True:
            try:
                submission = self.senders.jobs.get_nowait()
            except queue.Empty:
                return back
            del flying[submission.pk]
            back.append(submission)

    def _running_low(self, batch: int) -> bool:
        """Claim more while the senders still have this much work queued (a claim takes a
        while: they keep sending meanwhile)."""
        return self.senders.jobs.qsize() <= max(settings.MINT_WORKER_CONCURRENCY, batch // 2)

    def _wait_for(self, flying: dict) -> None:
        while flying:
            submission, outcome, started_at = self.senders.results.get()
            flying.pop(submission.pk, None)
            if not isinstance(outcome, BaseException):
                self.recorder.record(submission=submission, outcome=outcome, started_at=started_at)

    def _after_send(self, submission, outcome, *, probe: bool) -> str:
        """React to one outcome; return why the rest of the batch should wait, or ''."""
        self.width = 1 if outcome.retryable else settings.MINT_WORKER_CONCURRENCY
        if outcome.kind in ("accepted", "rejected"):
            self.problems.gone()  # MINT took the credentials and the address
            if probe:
                # The probe got an answer: MINT is back, so everything waiting is due now.
                services.circuit_note_success(finished_at=timezone.now())
        if outcome.kind == "unauthorized":
            self.problems.found(Problem.CREDENTIALS, Problem.credentials)
            # Wrong credentials fail every message alike: stop asking MINT for a while.
            self.paused_until = time.monotonic() + CREDENTIALS_PAUSE
            return "MINT refused the portal's credentials"
        if outcome.kind == "unavailable":
            opened = services.circuit_note_failure(
                message_id=str(submission.message_id), probe=probe
            )
            if opened:
                return "MINT keeps failing; sending waits until a probe gets through"
        if outcome.retryable and not self.health_asked:
            # One failure may be a blip; have /health/ asked (never waiting for it here).
            self.health_asked = True
            self.health.check_soon()
        if self.health.says_down:
            return "MINT reports that it is down (/health/)"
        return ""

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
        if self.circuit_wait:
            return "MINT's /plan/ to answer again (it kept failing; one message probes)"
        return ""

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(max(0.0, min(0.2, deadline - time.monotonic())))

    def _stop(self, signum, frame) -> None:
        self.stopping = True
