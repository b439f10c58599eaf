"""The delivery worker: ``python manage.py mint_worker``.

A thin loop around ``plans.services``: beat the heartbeat, check MINT's health on a fixed
interval, claim due messages under a lease, send each one and record what happened. Several
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
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from plans import services

logger = logging.getLogger("plans.delivery")

HEARTBEAT_EVERY = 5.0
#: Seconds between turning schedules into plans (a day enters the horizon once a day).
SCHEDULES_EVERY = 60.0
#: After MINT refused the credentials, claim nothing for this long (seconds).
CREDENTIALS_PAUSE = 30.0
DATABASE_RETRY_EVERY = 5.0
#: Results are recorded in one transaction per group of at most this many, gathered for at
#: most this long (seconds).
RECORD_GROUP_MAX = 50
RECORD_WINDOW = 0.1
#: While MINT says it is down, ask again this often instead of sending plans.
DOWN_RECHECK_EVERY = 5.0


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
        """Re-raise a recording error, so the worker stops instead of sending on regardless."""
        if self.failure is not None:
            raise self.failure

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

    def handle(self, *args, **options) -> None:
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        hostname = socket.gethostname()
        self.name = options["name"] or f"{hostname}:{os.getpid()}:{uuid.uuid4().hex[:4]}"
        self.started_at = timezone.now()
        self.client = services.mint_client()
        self.mint_down = False
        self.paused_until = 0.0
        self.circuit_wait = 0.0
        #: Sends in flight at once: one until MINT has answered a send properly, then
        #: MINT_WORKER_CONCURRENCY; back to one after a failure (refused credentials or a sick
        #: MINT then cost one request, not a whole round of them).
        self.width = 1
        self.last_health = 0.0
        self.last_beat = 0.0
        self.last_materialize = -SCHEDULES_EVERY
        self.stdout.write(f"mint_worker {self.name} delivering to {settings.MINT_API_URL}")
        self.recorder = Recorder(self.name)
        self.senders = Senders(settings.MINT_WORKER_CONCURRENCY)
        try:
            while not self.stopping:
                try:
                    if not self._round(once=options["once"], batch=options["batch"]):
                        if options["once"]:
                            break
                        self._sleep(self._pause_seconds(options["idle_sleep"]))
                except DatabaseError:
                    # The database restarting must not end the worker: what it had claimed is
                    # leased and comes back; wait and carry on.
                    logger.exception("database error in the delivery loop; retrying shortly")
                    close_old_connections()
                    if options["once"]:
                        raise
                    self._sleep(DATABASE_RETRY_EVERY)
        finally:
            self.senders.close()
            self.client.close()
            self.recorder.close()
            self._beat(stopping=True)
            self.stdout.write(f"mint_worker {self.name} stopped")

    def _round(self, *, once: bool, batch: int) -> bool:
        """One turn of the loop; False when there was nothing to do (or MINT said wait)."""
        close_old_connections()
        self.recorder.check()
        self._beat()
        self._materialize_if_due()
        self._check_health_if_due()
        if self.mint_down or time.monotonic() < self.paused_until:
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
        self._check_health_if_due()
        if self.mint_down or time.monotonic() < self.paused_until:
            return []
        if services.circuit_gate()[0] != services.Gate.SEND:
            return []
        claimed = services.submissions_claim(worker=self.name, limit=batch)
        if not claimed:
            self.nothing_due_until = time.monotonic() + settings.MINT_WORKER_IDLE_SLEEP
        self.health_asked = False
        return claimed

    def _pause_seconds(self, idle: float) -> float:
        if self.mint_down:
            return min(DOWN_RECHECK_EVERY, settings.MINT_HEALTH_INTERVAL)
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
        if outcome.kind == "unauthorized":
            # Wrong credentials fail every message alike: stop asking MINT for a while.
            self.paused_until = time.monotonic() + CREDENTIALS_PAUSE
            return "MINT refused the portal's credentials"
        if outcome.kind == "unavailable":
            opened = services.circuit_note_failure(
                message_id=str(submission.message_id), probe=probe
            )
            if opened:
                return "MINT keeps failing; sending waits until a probe gets through"
        elif probe:
            # The probe got an answer: MINT is back, so everything waiting is due now.
            services.circuit_note_success(finished_at=timezone.now())
        if outcome.retryable and not self.health_asked:
            # One failure may be a blip; ask /health/ before spending the batch's attempts.
            self.health_asked = True
            self._check_health()
            if self.mint_down:
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

    def _check_health_if_due(self) -> None:
        interval = settings.MINT_HEALTH_INTERVAL
        if self.mint_down:
            interval = min(interval, DOWN_RECHECK_EVERY)
        if time.monotonic() - self.last_health >= interval:
            self._check_health()

    def _check_health(self) -> None:
        result = self.client.health()
        self.last_health = time.monotonic()
        services.health_record(result=result)
        # Deadlines pass during an outage too: give up on what waited too long, visibly.
        services.submissions_fail_overdue(worker=self.name)
        was_down, self.mint_down = self.mint_down, result.says_down
        if self.mint_down and not was_down:
            self.stderr.write(f"MINT is down ({result.http_status or result.error}); waiting")
        elif was_down and not self.mint_down:
            self.stdout.write("MINT is up again; delivering")

    def _beat(self, stopping: bool = False) -> None:
        if stopping or time.monotonic() - self.last_beat >= HEARTBEAT_EVERY:
            services.heartbeat_beat(
                name=self.name,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=self.started_at,
                stopping=stopping,
            )
            self.last_beat = time.monotonic()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(max(0.0, min(0.2, deadline - time.monotonic())))

    def _stop(self, signum, frame) -> None:
        self.stopping = True
