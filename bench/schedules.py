"""Materialising schedules: 500 vehicles × 7 days with the guards on, against a bare bulk_create.

What it proves: turning a week of a large fleet's schedules into plans costs at most 3× inserting
the same plan rows with a bare ``bulk_create`` — the guards (overlap, battery, power, charge
points, duplicates), the history rows, the per-state counters and the neighbours' warnings
included — and the number of queries does not grow with the number of plans.

Each site has fewer charge points than vehicles, so every plan gets a charge-point warning: the
guards do their most work. Runs on SQLite, then on PostgreSQL when the server in
``BENCH_POSTGRES_URL`` (default ``postgres://postgres@127.0.0.1:5432/test``) answers; each in a
fresh process and database.

Run:  .venv/bin/python bench/schedules.py [--vehicles 500] [--repeat 3] [--db both]

Does not cover: auto-submitted schedules (each submit is one transaction per plan, as when a
dispatcher submits), or materialising while workers deliver (the real loop does both).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import time as wall_time
from decimal import Decimal

import _common

SITES = 10
HORIZON_DAYS = 7
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


class _Rollback(Exception):
    pass


def _fleet(vehicles: int):
    """Sites, vehicles and one daily overnight schedule per vehicle (no plans yet)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from plans.models import Location, Schedule, Vehicle

    user, _ = get_user_model().objects.get_or_create(username="bench-dispatcher")
    per_site = max(1, vehicles // SITES)
    sites = Location.objects.bulk_create(
        Location(
            mint_location_id=f"BENCH-{n:02d}",
            name=f"Bench depot {n}",
            time_zone="Europe/Berlin",
            charge_points=max(1, per_site - 5),
            charge_point_kw=Decimal("150"),
        )
        for n in range(SITES)
    )
    fleet = Vehicle.objects.bulk_create(
        Vehicle(
            name=f"bus {n}",
            battery_kwh=Decimal("350"),
            default_consumption=Decimal("110"),
            max_charge_kw=Decimal("150"),
            home_location=sites[n % SITES],
        )
        for n in range(vehicles)
    )
    today = timezone.now().date()
    Schedule.objects.bulk_create(
        Schedule(
            vehicle=vehicle,
            location=vehicle.home_location,
            time_zone="Europe/Berlin",
            weekdays="1234567",
            arrive_at=wall_time(18, 30),
            depart_at=wall_time(5, 45),
            depart_day_offset=1,
            target_kind="charge",
            expected_charge_kwh=160,
            valid_from=today,
            created_by=user,
            updated_by=user,
        )
        for vehicle in fleet
    )


def _materialize_once(*, count_queries: bool) -> tuple[float, int, tuple[int, int], list[dict]]:
    """Seconds, plans made and queries run (reads and updates, inserts) by one materialise,
    and the rows it made; all rolled back afterwards so the next run starts from the same state.
    Inserts are counted apart: ``bulk_create`` splits rows into batches (SQLite allows 999
    parameters a statement), so their number follows the rows on SQLite by design."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from plans.models import Plan
    from plans.services import schedules_materialize

    rows: list[dict] = []
    seconds, made, queries = 0.0, 0, (0, 0)
    try:
        with transaction.atomic():
            if count_queries:
                with CaptureQueriesContext(connection) as captured:
                    result = schedules_materialize()
                sqls = [q["sql"].lstrip().upper() for q in captured.captured_queries]
                inserts = sum(sql.startswith("INSERT") for sql in sqls)
                queries = (len(sqls) - inserts, inserts)
            else:
                started = time.perf_counter()
                result = schedules_materialize()
                seconds = time.perf_counter() - started
            made = len(result.created)
            rows = list(
                Plan.objects.filter(pk__in=result.created).values(
                    "location_id",
                    "vehicle_id",
                    "scheduled_start",
                    "scheduled_end",
                    "target_kind",
                    "expected_charge_kwh",
                    "status_note",
                    "schedule_id",
                    "occurrence_date",
                    "warnings",
                    "created_by_id",
                    "updated_by_id",
                )
            )
            raise _Rollback
    except _Rollback:
        pass
    return seconds, made, queries, rows


def _bare_once(rows: list[dict]) -> float:
    from django.db import transaction

    from plans.models import Plan

    try:
        with transaction.atomic():
            plans = [Plan(**row) for row in rows]
            started = time.perf_counter()
            Plan.objects.bulk_create(plans)
            seconds = time.perf_counter() - started
            raise _Rollback
    except _Rollback:
        pass
    return seconds


def measure(vehicles: int, repeat: int) -> dict:
    from django.conf import settings

    settings.SCHEDULE_HORIZON_DAYS = HORIZON_DAYS
    _fleet(vehicles)
    _, made, (queries, inserts), rows = _materialize_once(count_queries=True)
    # Interleaved, so a load that comes and goes on the machine touches both alike.
    materialize, bare = [], []
    for _ in range(repeat):
        materialize.append(_materialize_once(count_queries=False)[0])
        bare.append(_bare_once(rows))
    return {
        "vehicles": vehicles,
        "plans": made,
        "queries": queries,
        "inserts": inserts,
        "materialize_s": round(statistics.median(materialize), 3),
        "bare_bulk_create_s": round(statistics.median(bare), 3),
        "ratio": _common.ratio(statistics.median(materialize), statistics.median(bare)),
    }


def run_one(vehicles: int, repeat: int) -> None:
    """One database: a small fleet (to show the query count does not grow) and the full one."""
    database_url = _common.setup_django("schedules")
    from django.db import connection

    label = _common.db_label()
    small = measure(max(SITES, vehicles // 10), 1)
    # A fresh fleet for the full run: the small one is deleted with its schedules.
    from plans.models import Location, Schedule, Vehicle

    Schedule.objects.all().delete()
    Vehicle.objects.all().delete()
    Location.objects.all().delete()
    full = measure(vehicles, repeat)
    connection.close()
    _common.print_table(
        f"Materialising {HORIZON_DAYS} days of schedules, guards on ({label})",
        ["vehicles", "plans", "queries", "inserts", "materialise s", "bare bulk_create s", "ratio"],
        [
            (
                r["vehicles"],
                r["plans"],
                r["queries"],
                r["inserts"],
                r["materialize_s"],
                r["bare_bulk_create_s"],
                r["ratio"],
            )
            for r in (small, full)
        ],
    )
    targets = [
        _common.target(
            f"materialise / bare bulk_create ({label})", full["ratio"], "≤ 3", full["ratio"] <= 3
        ),
        _common.target(
            f"queries other than inserts, {small['plans']} vs {full['plans']} plans ({label})",
            f"{small['queries']} vs {full['queries']}",
            "the same",
            small["queries"] == full["queries"],
        ),
    ]
    _common.print_targets("Targets", targets)
    _common.write_json(
        f"schedules-{connection.vendor}",
        {"small": small, "full": full, "targets": targets},
    )
    _common.drop_postgres_database(database_url)


def _postgres_answers() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vehicles", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both", "here"], default="both")
    args = parser.parse_args()
    if args.db == "here":
        run_one(args.vehicles, args.repeat)
        return
    wanted = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    targets = []
    for db in wanted:
        env = {**os.environ, "DATABASE_URL": POSTGRES_URL if db == "postgres" else ""}
        if db == "postgres" and not _postgres_answers():
            print(f"\nPostgreSQL at {POSTGRES_URL} does not answer: skipped.")
            continue
        code = subprocess.call(
            [
                sys.executable,
                __file__,
                "--db",
                "here",
                "--vehicles",
                str(args.vehicles),
                "--repeat",
                str(args.repeat),
            ],
            env=env,
        )
        if code:
            raise SystemExit(f"bench/schedules.py failed on {db}")
        vendor = "postgresql" if db == "postgres" else "sqlite"
        path = _common.RESULTS / f"schedules-{vendor}.json"
        targets += json.loads(path.read_text())["targets"]
    (_common.RESULTS / "schedules.json").write_text(json.dumps({"targets": targets}, indent=2))


if __name__ == "__main__":
    main()
