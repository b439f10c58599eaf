"""Export the plan list as CSV and XLSX at N/10 and at N plans: time and peak memory.

Proves that an export streams in bounded memory: it reads plans in pages (``EXPORT_PAGE``),
sends CSV as it goes and spools XLSX to disk (openpyxl write-only), so going from N/10 to N
plans multiplies the time and the file by ten but leaves the peak memory where it was.
Each export is one GET through the whole Django stack (a logged-in dispatcher, every plan: no
filter), its body read to the end as a client would.

Each export runs in a fresh process of its own (seeding leaves memory behind that would hide
the export's). Memory is measured two ways: the process's peak resident set above its size just
before the export, after a warm-up export that matches no plan (Linux: the peak is reset
through /proc/self/clear_refs; elsewhere the lifetime peak), and with ``--tracemalloc`` also
Python's own peak allocation (slows the export two to three times).

Run:  .venv/bin/python bench/export.py [--plans 100000] [--tracemalloc]
      DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/export.py
Prints a table; writes bench/results/export.json.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import _common
import seed

MB = 1024 * 1024
#: Target: the peak at N plans at most this many times that at N/10, plus slack for noise.
GROWTH_LIMIT, SLACK_MB = 1.5, 8.0


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark to the current size (Linux ≥ 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else 0.0


def _peak_rss_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = kb // 1024 if sys.platform == "darwin" else kb
    return kb / 1024


def export(client: Any, fmt: str, *, trace: bool) -> dict[str, Any]:
    """GET /plans/export.<fmt> and read it to the end; time, first byte, size and memory."""
    import gc

    gc.collect()
    reset = _reset_peak()
    before = _rss_mb()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    response = client.get(f"/plans/export.{fmt}")
    assert response.status_code == 200, response.status_code
    first_byte = None
    size = 0
    for chunk in response.streaming_content:
        if first_byte is None:
            first_byte = time.perf_counter() - started
        size += len(chunk)
    seconds = time.perf_counter() - started
    result = {
        "seconds": round(seconds, 2),
        "first_byte_s": round(first_byte or seconds, 2),
        "bytes": size,
        "rss_before_mb": round(before, 1),
        "peak_rss_above_mb": round(_peak_rss_mb() - before, 1),
        "peak_reset": reset,
    }
    if trace:
        result["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / MB, 2)
        tracemalloc.stop()
    return result


def measure_child(fmt: str, username: str, trace: bool) -> None:
    """In the child process: one export, its figures printed as one JSON line."""
    import json
    import os

    import django

    sys.path.insert(0, str(_common.ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mintportal.settings")
    django.setup()
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username=username))
    # Imports, the session's write and the first queries, before the measurement.
    b"".join(client.get(f"/plans/export.{fmt}?q=no-such-plan").streaming_content)
    print(json.dumps(export(client, fmt, trace=trace)))


def run_child(fmt: str, username: str, trace: bool) -> dict[str, Any]:
    import json
    import subprocess

    command = [sys.executable, __file__, "--measure", fmt, "--user", username]
    output = subprocess.run(
        command + (["--tracemalloc"] if trace else []),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plans", type=int, default=100_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also Python's peak")
    parser.add_argument("--measure", choices=["csv", "xlsx"], help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure_child(args.measure, args.user, args.tracemalloc)
        return
    small = max(1, args.plans // 10)

    url = _common.setup_django("export")
    from plans.exports import EXPORT_PAGE

    cast = seed.seed_base()
    results: dict[str, dict[str, Any]] = {}
    for size, plans, seed_value in ((small, small, seed.SEED), (args.plans, args.plans - small,
                                                                   seed.SEED + 1)):  # fmt: skip
        print(f"\nSeeding {plans:,} plans (total {size:,}) …", flush=True)
        seed.seed_plans(cast=cast, plans=plans, seed=seed_value, verbose=False)
        for fmt in ("csv", "xlsx"):
            result = run_child(fmt, cast.dispatcher.username, args.tracemalloc)
            results[f"{fmt}_{size}"] = result
            print(f"  {fmt.upper()} of {size:,} plans: {result}", flush=True)

    rows = []
    for key, r in results.items():
        fmt, size = key.split("_")
        rows.append(
            (
                fmt.upper(),
                int(size),
                r["seconds"],
                r["first_byte_s"],
                round(r["bytes"] / MB, 1),
                r["peak_rss_above_mb"],
                r.get("tracemalloc_peak_mb"),
            )
        )
    _common.print_table(
        f"Exports ({_common.db_label()}, pages of {EXPORT_PAGE:,} plans)",
        ["format", "plans", "seconds", "first byte s", "file MB", "peak RSS +MB", "tracemalloc MB"],
        rows,
    )
    targets = []
    for fmt in ("csv", "xlsx"):
        low, high = results[f"{fmt}_{small}"], results[f"{fmt}_{args.plans}"]
        limit = GROWTH_LIMIT * low["peak_rss_above_mb"] + SLACK_MB
        targets.append(
            _common.target(
                f"{fmt.upper()} peak RSS at {args.plans:,} plans",
                f"+{high['peak_rss_above_mb']} MB (at {small:,}: +{low['peak_rss_above_mb']} MB)",
                f"≤ {GROWTH_LIMIT}× that at {small:,} + {SLACK_MB:.0f} MB",
                high["peak_rss_above_mb"] <= limit,
            )
        )
    _common.print_targets("Export targets", targets)
    _common.write_json(
        "export",
        {"plans": args.plans, "page": EXPORT_PAGE, "results": results, "targets": targets},
    )
    _common.drop_postgres_database(url)


if __name__ == "__main__":
    main()
