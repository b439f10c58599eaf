"""Run every benchmark in sequence and print one summary: ``make bench``.

Each script runs in its own process (a fresh Django and database): pages.py (which seeds N
plans between its empty and full measurements, printing the seeding table too), then
delivery.py, then schedules.py and import.py (each on SQLite and PostgreSQL), then
export.py (CSV and XLSX of N/10 and N plans). Exits non-zero only when a script fails;
missed targets are printed, not raised, because these are measurements, not tests.

Run:  .venv/bin/python bench/run_all.py [--plans 100000] [--messages 2000] [--requests 50]
Quick:  .venv/bin/python bench/run_all.py --plans 5000 --messages 300 --requests 30 --vehicles 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import _common

BENCH = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plans", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--vehicles", type=int, default=500)
    parser.add_argument("--import-rows", type=int, default=10_000)
    args = parser.parse_args()

    started = time.perf_counter()
    runs = [
        ("pages", ["--plans", str(args.plans), "--requests", str(args.requests)]),
        ("delivery", ["--messages", str(args.messages)]),
        ("schedules", ["--vehicles", str(args.vehicles)]),
        ("import", ["--rows", str(args.import_rows)]),
        ("export", ["--plans", str(args.plans)]),
    ]
    failed = []
    for name, extra in runs:
        print(f"\n=== bench/{name}.py {' '.join(extra)} ===", flush=True)
        script_started = time.perf_counter()
        code = subprocess.call([sys.executable, str(BENCH / f"{name}.py"), *extra])
        print(f"=== {name}: {time.perf_counter() - script_started:.1f} s ===", flush=True)
        if code:
            failed.append(name)

    targets = []
    for name, _ in runs:
        path = _common.RESULTS / f"{name}.json"
        if name not in failed and path.exists():
            targets += json.loads(path.read_text()).get("targets", [])
    _common.print_targets("All targets", targets)
    total = time.perf_counter() - started
    print(f"\nTotal wall time: {total:.1f} s")
    (_common.RESULTS / "run_all.json").write_text(
        json.dumps(
            {"args": vars(args), "seconds": round(total, 1), "failed": failed, "targets": targets},
            indent=2,
        )
        + "\n"
    )
    if failed:
        raise SystemExit(f"bench: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
