"""Prove delivery costs little beyond the network, and that N workers share one token.

Starts the MINT sandbox as its own process (``manage.py mint_sandbox``, so the benchmark's GIL
does not slow it; it speaks HTTP/1.1 keep-alive, as production servers do), queues M plans
through ``plans.services.plan_submit`` (default 2,000), then measures two tables:

Loopback (MINT answers as fast as it can):
- bare: a plain ``requests.Session().post`` loop of the same M bodies to the same sandbox, with
  one bearer token fetched up front, one request at a time on one kept-alive connection — the
  network-only ceiling of a sequential sender;
- workers ×1 (``MINT_WORKER_CONCURRENCY`` 1, then the default 4), ×2, ×4: real
  ``manage.py mint_worker`` processes; each phase starts from a cold token (database row
  cleared, sandbox tokens expired) and the same M messages re-queued. The clock runs from the
  moment the messages become due (workers already started and idle) to the last message's
  ``finished_at``, so process start-up is not counted;
- workers ×4 with a short token lifetime, to show one token request per lifetime.

20 ms latency (the sandbox holds every ``/plan/`` answer 20 ms, like a real network): the bare
loop again, then one worker with concurrency 1 and with the default 4.

Reports plans/s, the ratio to the bare loop of the same table, token requests (from the
sandbox's log), each worker's peak RSS and the workers' CPU time per plan (user + system from
``wait4`` rusage, start-up included). Targets: one worker ≥ 0.85× the
bare loop on loopback; one worker with the default concurrency ≥ 3× the bare loop at 20 ms;
exactly one token request per token lifetime across all workers.

Run:  .venv/bin/python bench/delivery.py [--messages 2000]
Prints the table; writes bench/results/delivery.json (worker logs: bench/results/*.log).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import _common
import requests
import seed

#: Loopback phases: (workers, MINT_WORKER_CONCURRENCY; None = the default).
LOOPBACK_PHASES = ((1, 1), (1, None), (2, None), (4, None))
LATENCY_MS = 20
LATENCY_PHASES = ((1, 1), (1, None))
#: ``MINT_WORKER_CONCURRENCY``'s default, for the table (the workers read it from settings).
DEFAULT_CONCURRENCY = 4
#: The client refreshes a short-lived token a tenth of its lifetime (at least 1 s) before it
#: expires, so a TTL of T ≥ 10 s gives 0.9 T usable seconds; the token phase picks T to span
#: about three lifetimes.
USABLE_SHARE = 0.9
MIN_TTL = 10


class Sandbox:
    """The ``mint_sandbox`` command in a child process, driven over its control endpoints."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/api/v1.0"
        self.log_file = open(_common.RESULTS / "delivery-sandbox.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, _common.MANAGE, "mint_sandbox", "--port", str(port)],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.root}/_sandbox/behaviour", timeout=1).raise_for_status()
                return
            except requests.RequestException:
                if self.process.poll() is not None:
                    raise SystemExit(
                        "bench: the sandbox exited; see delivery-sandbox.log"
                    ) from None
                time.sleep(0.1)
        raise SystemExit("bench: the sandbox did not start within 20 s")

    def behave(self, **changes: Any) -> None:
        requests.post(f"{self.root}/_sandbox/behaviour", json=changes, timeout=5).raise_for_status()

    def reset(self) -> None:
        requests.post(f"{self.root}/_sandbox/reset", timeout=5).raise_for_status()

    def log(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.root}/_sandbox/log", timeout=30)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)
        self.log_file.close()


def queue_messages(cast: seed.Cast, count: int) -> tuple[list[int], list[str], float]:
    """M draft plans (bulk), each submitted through the real service; returns ids and bodies."""
    import random

    from django.utils import timezone

    from plans import services
    from plans.models import Plan

    rng = random.Random(seed.SEED)
    start = timezone.now().replace(second=0, microsecond=0) + timedelta(days=1)
    drafts = Plan.objects.bulk_create(
        Plan(
            location=cast.locations[i % len(cast.locations)],
            scheduled_start=start + timedelta(minutes=i),
            scheduled_end=start + timedelta(minutes=i + rng.randint(30, 600)),
            target_kind="range",
            expected_range_km=rng.randint(40, 500),
            created_by=cast.dispatcher,
            updated_by=cast.dispatcher,
        )
        for i in range(count)
    )
    started = time.perf_counter()
    submissions = [services.plan_submit(plan=plan, user=cast.dispatcher) for plan in drafts]
    seconds = time.perf_counter() - started
    return [s.pk for s in submissions], [s.body for s in submissions], seconds


def requeue(*, due: bool) -> None:
    """Put every message back in the queue as if just submitted (not yet due: cold token)."""
    from django.utils import timezone

    from plans.models import MintToken, Plan, PlanState, Submission, SubmissionState

    later = timezone.now() + timedelta(days=1)
    Submission.objects.update(
        state=SubmissionState.QUEUED,
        attempt_count=0,
        next_attempt_at=timezone.now() if due else later,
        lease_owner="",
        lease_expires_at=None,
        finished_at=None,
    )
    Plan.objects.filter(submissions__isnull=False).update(state=PlanState.QUEUED)
    if not due:
        # Only before the workers start: once messages are due a worker may already have
        # stored the phase's token, and clearing it then would force a second fetch.
        MintToken.objects.update(encrypted_token="", expires_at=None, fetched_at=None)


def bare_loop(
    sandbox: Sandbox, bodies: list[str], *, trust_env: bool = True, **behaviour: Any
) -> dict[str, Any]:
    """The ceiling: one Session, one token, the same bodies posted back to back.

    ``trust_env=False`` is the session set-up the MINT client uses (environment read once):
    shown beside the plain loop so that part of the worker's speed is not mistaken for more.
    """
    sandbox.reset()
    if behaviour:
        sandbox.behave(**behaviour)
    session = requests.Session()
    session.trust_env = trust_env
    token = session.post(
        f"{sandbox.url}/auth/token",
        json={"clientId": _common.SANDBOX_CLIENT_ID, "clientSecret": _common.SANDBOX_CLIENT_SECRET},
        timeout=10,
    ).json()["accessToken"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    for body in bodies:
        status = session.post(
            f"{sandbox.url}/plan/", data=body.encode("utf-8"), headers=headers, timeout=10
        ).status_code
        statuses[status] = statuses.get(status, 0) + 1
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "statuses": statuses, "token_requests": 1, "peak_rss_mb": None}


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_workers(
    sandbox: Sandbox,
    workers: int,
    messages: int,
    tag: str,
    token_ttl: int | None = None,
    concurrency: int | None = None,
    **behaviour: Any,
) -> dict[str, Any]:
    """Start idle workers, make the queue due, wait for every message to be accepted."""
    from django.db.models import Max
    from django.utils import timezone

    from plans.models import Submission, SubmissionState, WorkerHeartbeat

    requeue(due=False)
    names = [f"bench-{tag}-{i}" for i in range(workers)]
    env = {**os.environ, "MINT_WORKER_IDLE_SLEEP": "0.02"}
    if concurrency is not None:
        env["MINT_WORKER_CONCURRENCY"] = str(concurrency)
    processes = []
    for name in names:
        log = open(_common.RESULTS / f"delivery-{name}.log", "w")  # noqa: SIM115
        processes.append(
            (
                subprocess.Popen(
                    [sys.executable, _common.MANAGE, "mint_worker", "--name", name],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        )
    deadline = time.monotonic() + 30
    while WorkerHeartbeat.objects.filter(name__in=names).count() < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: workers {names} did not start; see their logs")
        time.sleep(0.05)
    time.sleep(0.3)  # past each worker's first health check
    sandbox.reset()  # also resets behaviour, so the token lifetime is set after it
    sandbox.behave(expire_tokens=True, token_ttl=token_ttl, **behaviour)

    t0 = timezone.now()
    requeue(due=True)
    deadline = time.monotonic() + 600
    while (
        Submission.objects.filter(state=SubmissionState.ACCEPTED).count() < messages
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    last: datetime = Submission.objects.aggregate(m=Max("finished_at"))["m"]
    accepted = Submission.objects.filter(state=SubmissionState.ACCEPTED).count()
    seconds = (last - t0).total_seconds()

    peaks = []
    cpu_seconds = 0.0
    for process, log in processes:
        seen = _rss_mb(process.pid)
        process.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        peaks.append(max(usage.ru_maxrss / 1024, seen or 0))
        cpu_seconds += usage.ru_utime + usage.ru_stime
        log.close()

    log_entries = sandbox.log()
    tokens = [e for e in log_entries if e["endpoint"] == "token"]
    plan_posts = [e for e in log_entries if e["endpoint"] == "plan"]
    return {
        "seconds": seconds,
        "accepted": accepted,
        "plan_posts": len(plan_posts),
        "plan_401s": sum(1 for e in plan_posts if e["status"] == 401),
        "token_requests": len(tokens),
        "token_times": [e["at"] for e in tokens],
        "peak_rss_mb": round(max(peaks), 1),
        "worker_cpu_ms_per_plan": round(cpu_seconds * 1000 / messages, 2),
        "peak_rss_mb_each": [round(p, 1) for p in peaks],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--skip-token-phase", action="store_true")
    args = parser.parse_args()
    m = args.messages

    port = _common.free_port()
    url = _common.setup_django("delivery", mint_api_url=f"http://127.0.0.1:{port}/api/v1.0")
    cast = seed.seed_base()
    print(f"\nQueueing {m:,} plans through services.plan_submit …", flush=True)
    _, bodies, queue_seconds = queue_messages(cast, m)
    print(f"  {m / queue_seconds:,.0f} submits/s", flush=True)

    sandbox = Sandbox(port)
    phases: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] = []
    try:
        bare = bare_loop(sandbox, bodies)
        bare.update(phase="bare requests loop", workers=1)
        phases.append(bare)
        print(f"  bare loop: {m / bare['seconds']:,.0f} plans/s", flush=True)
        lean = bare_loop(sandbox, bodies, trust_env=False)
        lean.update(phase="bare loop, environment read once", workers=1)
        phases.append(lean)
        print(f"  bare loop, trust_env off: {m / lean['seconds']:,.0f} plans/s", flush=True)
        for workers, concurrency in LOOPBACK_PHASES:
            result = run_workers(
                sandbox, workers, m, f"w{workers}c{concurrency or 0}", concurrency=concurrency
            )
            result.update(phase="mint_worker", workers=workers, concurrency=concurrency)
            phases.append(result)
            print(
                f"  {workers} worker(s), concurrency {concurrency or 'default'}: "
                f"{m / result['seconds']:,.0f} plans/s",
                flush=True,
            )
        if not args.skip_token_phase:
            ttl = max(MIN_TTL, math.ceil(phases[-1]["seconds"] / 3 / USABLE_SHARE))
            lifetime = ttl * USABLE_SHARE
            result = run_workers(sandbox, 4, m, "ttl", token_ttl=ttl)
            result.update(
                phase=f"mint_worker, token lives {ttl} s",
                workers=4,
                concurrency=None,
                usable_lifetime_s=lifetime,
            )
            phases.append(result)
        slow = {"plan_latency_ms": LATENCY_MS}
        bare = bare_loop(sandbox, bodies, **slow)
        bare.update(phase="bare requests loop", workers=1)
        latency.append(bare)
        print(f"  {LATENCY_MS} ms: bare loop: {m / bare['seconds']:,.0f} plans/s", flush=True)
        for workers, concurrency in LATENCY_PHASES:
            tag = f"lat-w{workers}c{concurrency or 0}"
            result = run_workers(sandbox, workers, m, tag, concurrency=concurrency, **slow)
            result.update(phase="mint_worker", workers=workers, concurrency=concurrency)
            latency.append(result)
            print(
                f"  {LATENCY_MS} ms: {workers} worker(s), concurrency "
                f"{concurrency or 'default'}: {m / result['seconds']:,.0f} plans/s",
                flush=True,
            )
    finally:
        sandbox.stop()
    report(m, queue_seconds, phases, latency)
    _common.drop_postgres_database(url)


def _lifetimes(phase: dict[str, Any]) -> int:
    """How many token lifetimes the phase spanned, i.e. how many token requests it needs.

    Also counts duplicates: a request made while the previous token still had more than a
    second of its usable lifetime left (two workers fetching for the same lifetime).
    """
    usable = phase.get("usable_lifetime_s")
    times = [datetime.fromisoformat(t) for t in phase.get("token_times", [])]
    gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
    phase["duplicate_token_requests"] = sum(1 for g in gaps if g < (usable or 3600) - 1)
    if not usable:
        return 1
    return max(1, math.ceil(phase["seconds"] / usable))


HEADERS = [
    "phase",
    "workers",
    "in flight",
    "accepted",
    "seconds",
    "plans/s",
    "ratio to bare",
    "token reqs",
    "lifetimes",
    "peak RSS MB",
    "CPU ms/plan",
]


def _table(m: int, title: str, phases: list[dict[str, Any]]) -> None:
    """One table; every ratio is to the bare loop in its first row (same sandbox set-up)."""
    bare_rate = m / phases[0]["seconds"]
    rows = []
    for p in phases:
        p["plans_per_second"] = round(m / p["seconds"], 1)
        p["ratio_to_bare"] = round(p["plans_per_second"] / bare_rate, 3)
        p["token_lifetimes"] = _lifetimes(p)
        worker = p["phase"].startswith("mint_worker")
        rows.append(
            (
                p["phase"],
                p["workers"],
                (p.get("concurrency") or f"{DEFAULT_CONCURRENCY} (default)") if worker else 1,
                p.get("accepted", p.get("statuses", {}).get(200)),
                round(p["seconds"], 2),
                p["plans_per_second"],
                p["ratio_to_bare"],
                p["token_requests"],
                p["token_lifetimes"] if worker else None,
                p["peak_rss_mb"],
                p.get("worker_cpu_ms_per_plan"),
            )
        )
    _common.print_table(title, HEADERS, rows)


def report(
    m: int, queue_seconds: float, phases: list[dict[str, Any]], latency: list[dict[str, Any]]
) -> None:
    where = f"{_common.db_label()}, {os.cpu_count()} CPUs"
    _table(
        m,
        f"Delivery of {m:,} plans to the sandbox subprocess on loopback, HTTP/1.1 keep-alive "
        f"({where}; queueing via plan_submit: {m / queue_seconds:,.0f}/s)",
        phases,
    )
    _table(
        m,
        f"Delivery of {m:,} plans with {LATENCY_MS} ms added to every /plan/ answer ({where})",
        latency,
    )

    def default_one(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return next(
            p
            for p in rows
            if p["phase"] == "mint_worker" and p["workers"] == 1 and p["concurrency"] is None
        )

    one, one_slow = default_one(phases), default_one(latency)
    worker_phases = [p for p in phases + latency if p["phase"].startswith("mint_worker")]
    targets = [
        _common.target(
            "1 worker / bare loop (loopback)",
            one["ratio_to_bare"],
            "≥ 0.85",
            one["ratio_to_bare"] >= 0.85,
        ),
        _common.target(
            f"1 worker / sequential bare loop ({LATENCY_MS} ms latency)",
            one_slow["ratio_to_bare"],
            "≥ 3",
            one_slow["ratio_to_bare"] >= 3,
        ),
        _common.target(
            "token requests = token lifetimes (±1), no duplicates",
            ", ".join(f"{p['token_requests']}/{p['token_lifetimes']}" for p in worker_phases),
            "equal",
            # ±1: a lifetime is up to 1 s shorter than nominal (whole seconds on the wire).
            all(
                p["duplicate_token_requests"] == 0
                and abs(p["token_requests"] - p["token_lifetimes"]) <= 1
                for p in worker_phases
            ),
        ),
        _common.target(
            "every message accepted once (plan POSTs = M)",
            ", ".join(f"{p['plan_posts']}" for p in worker_phases),
            f"{m:,} each",
            all(p["accepted"] == m and p["plan_posts"] == m for p in worker_phases),
        ),
    ]
    _common.print_targets("Delivery targets", targets)
    _common.write_json(
        "delivery",
        {
            "messages": m,
            "queue_seconds": round(queue_seconds, 3),
            "phases": phases,
            "latency_ms": LATENCY_MS,
            "latency_phases": latency,
            "targets": targets,
        },
    )


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        raise SystemExit(1) from None
