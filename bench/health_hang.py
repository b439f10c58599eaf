"""Prove that a hanging ``/health/`` neither stops nor slows delivery (issue #10, item 3).

Starts the MINT sandbox as its own process and one real ``mint_worker`` (health checks every
5 s, the default 10 s read timeout). A dispatcher submits one plan every half second for 45 s;
from second 5 to second 25 MINT's ``/health/`` answers nothing (``/plan/`` keeps working). For
each plan it reports how long it took from submit to MINT's acceptance, before, during and after
the hang, and the longest stretch with no plan sent.

Before the fix each check blocked the worker for the read timeout and a check without an answer
held every send; now the checks run on their own thread and only MINT's 503 holds sends.

Run:  .venv/bin/python bench/health_hang.py
Prints the table; writes bench/results/health_hang.json (worker log: health_hang-worker.log).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from itertools import pairwise

import _common
import seed
from delivery import Sandbox

SUBMIT_EVERY = 0.5
RUN_SECONDS = 45.0
HANG_FROM, HANG_UNTIL = 5.0, 25.0


def main() -> None:
    port = _common.free_port()
    url = _common.setup_django("health_hang", mint_api_url=f"http://127.0.0.1:{port}/api/v1.0")
    from django.utils import timezone

    from plans import services
    from plans.models import Plan, Submission

    cast = seed.seed_base()
    sandbox = Sandbox(port)
    log_file = open(_common.RESULTS / "health_hang-worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, _common.MANAGE, "mint_worker", "--name", "bench"],
        env={**os.environ, "MINT_HEALTH_INTERVAL": "5", "MINT_WORKER_IDLE_SLEEP": "0.1"},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    submitted: list[tuple[float, int]] = []  # (seconds into the run, submission id)
    try:
        time.sleep(3)  # the worker is up, idle, and has checked MINT once
        begin = time.monotonic()
        hanging = restored = False
        start = timezone.now() + timedelta(days=1)
        while (now := time.monotonic() - begin) < RUN_SECONDS:
            if not hanging and now >= HANG_FROM:
                sandbox.behave(health_hang=3600)
                hanging = True
            if hanging and not restored and now >= HANG_UNTIL:
                sandbox.behave(health_hang=0)  # checks already hanging stay stuck to their end
                restored = True
            plan = Plan.objects.create(
                location=cast.locations[len(submitted) % len(cast.locations)],
                scheduled_start=start,
                scheduled_end=start + timedelta(hours=2),
                target_kind="range",
                expected_range_km=100,
                created_by=cast.dispatcher,
                updated_by=cast.dispatcher,
            )
            submission = services.plan_submit(plan=plan, user=cast.dispatcher)
            submitted.append((now, submission.pk))
            time.sleep(max(0.0, begin + len(submitted) * SUBMIT_EVERY - time.monotonic()))
        deadline = time.monotonic() + 60
        ids = [pk for _, pk in submitted]
        while time.monotonic() < deadline:
            if not Submission.objects.filter(pk__in=ids).exclude(state="accepted").exists():
                break
            time.sleep(0.2)
        sends = sorted(e["at"] for e in sandbox.log() if e["endpoint"] == "plan")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        log_file.close()
        sandbox.stop()

    rows = Submission.objects.in_bulk([pk for _, pk in submitted])
    latencies: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    unfinished = 0
    for at, pk in submitted:
        row = rows[pk]
        if row.finished_at is None:
            unfinished += 1
            continue
        phase = "before" if at < HANG_FROM else "during" if at < HANG_UNTIL else "after"
        latencies[phase].append((row.finished_at - row.created_at).total_seconds())
    from datetime import datetime

    stamps = [datetime.fromisoformat(s) for s in sends]
    longest_gap = max((b - a).total_seconds() for a, b in pairwise(stamps)) if sends else None
    table = [
        (
            phase,
            len(values),
            round(_common.percentile(values, 50), 2) if values else None,
            round(max(values), 2) if values else None,
        )
        for phase, values in latencies.items()
    ]
    _common.print_table(
        f"Submit → accepted while /health/ hangs from {HANG_FROM:g} s to {HANG_UNTIL:g} s "
        f"({_common.db_label()})",
        ["plans submitted", "count", "median s", "max s"],
        table,
    )
    print(f"\nlongest stretch with no plan sent: {_common.fmt(longest_gap)} s")
    print(f"plans not accepted 60 s after the last submit: {unfinished}")
    result = {
        "phases": {phase: values for phase, values in latencies.items()},
        "longest_gap_s": longest_gap,
        "unfinished": unfinished,
    }
    (_common.RESULTS / "health_hang.json").write_text(json.dumps(result, indent=2))
    _common.drop_postgres_database(url)


if __name__ == "__main__":
    main()
