"""Importing 10,000 plans: the preview (read, rules, matching, guards) and the confirm, against a
bare bulk_create of the same plans with their history rows.

What it proves: a dispatcher sees the preview of a 10,000-row file within 5 s (wall time; the
preview's own CPU time is printed beside it, since other jobs on a shared machine stretch the
wall time), and the confirm
— every rule checked again under locks, the guards on the whole batch, plans, history rows,
state counters — costs at most 3× inserting the same plan rows and history rows with a bare
``bulk_create`` (as ``bench/schedules.py`` compares materialising). The confirm with *submit*
(an outbox row and a second history row per plan) is printed beside it.

Each site has fewer charge points than the vehicles there at once, so every plan gets a
charge-point warning (accepted): the guards do their most work. Runs on SQLite, then on
PostgreSQL when the server in ``BENCH_POSTGRES_URL`` (default
``postgres://postgres@127.0.0.1:5432/test``) answers; each in a fresh process and database.

Run:  .venv/bin/python bench/import.py [--rows 10000] [--repeat 3] [--db both]

Does not cover: the neighbours' warnings refreshed after the commit (none here: the day has no
other plans), nor the browser's upload of the file.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from datetime import timedelta
from decimal import Decimal

import _common

SITES = 10
#: Each vehicle's plans on the day: 20 one-hour stays, touching, none overlapping.
STAYS = 20
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
HEADER = ["site", "vehicle", "start", "end", "expected range km", "average consumption",
          "expected charge kWh", "note"]  # fmt: skip


class _Rollback(Exception):
    pass


def _fleet(rows: int) -> None:
    from django.contrib.auth import get_user_model

    from plans.models import Location, Vehicle

    get_user_model().objects.get_or_create(username="bench-dispatcher")
    vehicles = max(SITES, rows // STAYS)
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
    Vehicle.objects.bulk_create(
        Vehicle(
            name=f"bus {n}",
            battery_kwh=Decimal("350"),
            default_consumption=Decimal("110"),
            max_charge_kw=Decimal("150"),
            home_location=sites[n % SITES],
        )
        for n in range(vehicles)
    )


def _rows(rows: int) -> list[list[str]]:
    from django.utils import timezone

    day = (timezone.now() + timedelta(days=3)).date()
    out = []
    vehicles = max(SITES, rows // STAYS)
    for n in range(rows):
        vehicle, stay = n % vehicles, n // vehicles
        out.append(
            [
                f"BENCH-{vehicle % SITES:02d}",
                f"bus {vehicle}",
                f"{day:%d.%m.%Y} {stay + 2:02d}:00",
                f"{day:%d.%m.%Y} {stay + 3:02d}:00",
                "",
                "",
                "40",
                f"bench row {n}",
            ]
        )
    return out


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _xlsx(rows: list[list[str]]) -> bytes:
    """The same rows as Excel keeps them: times as date cells, the charge as a number."""
    from datetime import datetime

    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Plans")
    sheet.append(HEADER)
    for site, bus, start, end, _, _, charge, note in rows:
        start, end = (datetime.strptime(t, "%d.%m.%Y %H:%M") for t in (start, end))
        sheet.append([site, bus, start, end, None, None, int(charge), note])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _user():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="bench-dispatcher")


def _preview_once(data: bytes, name: str):
    from plans.services.imports import import_preview

    started, cpu = time.perf_counter(), time.process_time()
    batch = import_preview(user=_user(), file_name=name, data=data)
    return time.perf_counter() - started, time.process_time() - cpu, batch


def _queries(sqls: list[str]) -> tuple[int, int]:
    inserts = sum(sql.lstrip().upper().startswith("INSERT") for sql in sqls)
    return len(sqls) - inserts, inserts


def _confirm_once(batch, *, submit: bool, count_queries: bool = False):
    """Seconds and (queries, inserts) of one confirm, and the plan and history rows it made;
    rolled back so the next run starts from the same state."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from plans.models import Plan, PlanEvent
    from plans.services.imports import batch_apply

    seconds, queries, plans, events = 0.0, (0, 0), [], []
    try:
        with transaction.atomic():
            user = _user()
            captured = CaptureQueriesContext(connection) if count_queries else nullcontext()
            with captured:
                started = time.perf_counter()
                result = batch_apply(batch=batch, user=user, accept_warnings=True, submit=submit)
                seconds = time.perf_counter() - started
            if count_queries:
                queries = _queries([q["sql"] for q in captured.captured_queries])
            assert len(result.created) == len(batch.rows), result
            plans = list(
                Plan.objects.filter(pk__in=result.created).values(
                    "transaction_id",
                    "location_id",
                    "vehicle_id",
                    "scheduled_start",
                    "scheduled_end",
                    "target_kind",
                    "expected_charge_kwh",
                    "status_note",
                    "warnings",
                    "created_by_id",
                    "updated_by_id",
                )
            )
            events = list(
                PlanEvent.objects.filter(plan_id__in=result.created).values(
                    "plan__transaction_id",
                    "at",
                    "action",
                    "from_state",
                    "to_state",
                    "revision",
                    "user_id",
                    "actor",
                    "reason",
                )
            )
            raise _Rollback
    except _Rollback:
        pass
    return seconds, queries, plans, events


def _bare_once(plans: list[dict], events: list[dict]) -> float:
    """The same plan rows and history rows with a bare bulk_create (new transactionIds)."""
    import uuid

    from django.db import transaction

    from plans.models import Plan, PlanEvent

    try:
        with transaction.atomic():
            rows = [Plan(**{**p, "transaction_id": uuid.uuid4()}) for p in plans]
            started = time.perf_counter()
            Plan.objects.bulk_create(rows)
            by_transaction = {
                p["transaction_id"]: made for p, made in zip(plans, rows, strict=True)
            }
            PlanEvent.objects.bulk_create(
                PlanEvent(
                    plan=by_transaction[e["plan__transaction_id"]],
                    **{k: v for k, v in e.items() if k != "plan__transaction_id"},
                )
                for e in events
            )
            seconds = time.perf_counter() - started
            raise _Rollback
    except _Rollback:
        pass
    return seconds


def measure(rows: int, repeat: int) -> dict:
    lines = _rows(rows)
    csv_data, xlsx_data = _csv(lines), _xlsx(lines)
    csv_s, xlsx_s, csv_cpu, xlsx_cpu = [], [], [], []
    batch = None
    for _ in range(repeat):
        seconds, cpu, batch = _preview_once(csv_data, "bench.csv")
        csv_s.append(seconds)
        csv_cpu.append(cpu)
        seconds, cpu, _ = _preview_once(xlsx_data, "bench.xlsx")
        xlsx_s.append(seconds)
        xlsx_cpu.append(cpu)
    outcomes = {r["outcome"] for r in batch.rows}
    assert outcomes == {"new"}, outcomes
    _, queries, plans, events = _confirm_once(batch, submit=False, count_queries=True)
    confirm, bare, submit = [], [], []
    # Interleaved, so a load that comes and goes on the machine touches both alike.
    for _ in range(repeat):
        confirm.append(_confirm_once(batch, submit=False)[0])
        bare.append(_bare_once(plans, events))
        submit.append(_confirm_once(batch, submit=True)[0])
    return {
        "rows": rows,
        "csv_kb": len(csv_data) // 1024,
        "xlsx_kb": len(xlsx_data) // 1024,
        "preview_csv_s": round(statistics.median(csv_s), 3),
        "preview_xlsx_s": round(statistics.median(xlsx_s), 3),
        "preview_csv_cpu_s": round(statistics.median(csv_cpu), 3),
        "preview_xlsx_cpu_s": round(statistics.median(xlsx_cpu), 3),
        "queries": queries[0],
        "inserts": queries[1],
        "confirm_s": round(statistics.median(confirm), 3),
        "confirm_submit_s": round(statistics.median(submit), 3),
        "bare_bulk_create_s": round(statistics.median(bare), 3),
        "ratio": _common.ratio(statistics.median(confirm), statistics.median(bare)),
    }


def run_one(rows: int, repeat: int) -> None:
    database_url = _common.setup_django("import")
    from django.db import connection

    label = _common.db_label()
    _fleet(rows)
    small = measure(max(SITES * STAYS, rows // 50), 1)
    full = measure(rows, repeat)
    connection.close()
    _common.print_table(
        f"Importing a day of plans, guards on ({label}; the machine is shared: compare ratios)",
        [
            "rows",
            "csv kB",
            "xlsx kB",
            "preview csv s",
            "preview xlsx s",
            "(cpu s)",
            "queries",
            "inserts",
            "confirm s",
            "confirm+submit s",
            "bare bulk_create s",
            "ratio",
        ],
        [
            (
                r["rows"],
                r["csv_kb"],
                r["xlsx_kb"],
                r["preview_csv_s"],
                r["preview_xlsx_s"],
                f"{r['preview_csv_cpu_s']} / {r['preview_xlsx_cpu_s']}",
                r["queries"],
                r["inserts"],
                r["confirm_s"],
                r["confirm_submit_s"],
                r["bare_bulk_create_s"],
                r["ratio"],
            )
            for r in (small, full)
        ],
    )
    slowest = max(full["preview_csv_s"], full["preview_xlsx_s"])
    targets = [
        _common.target(
            f"preview of {full['rows']} rows, csv and xlsx ({label})",
            f"{slowest} s",
            "≤ 5 s",
            slowest <= 5,
        ),
        _common.target(
            f"confirm / bare bulk_create of plans + history ({label})",
            full["ratio"],
            "≤ 3",
            full["ratio"] is not None and full["ratio"] <= 3,
        ),
        _common.target(
            f"confirm queries other than inserts, {small['rows']} vs {full['rows']} rows ({label})",
            f"{small['queries']} vs {full['queries']}",
            "the same",
            small["queries"] == full["queries"],
        ),
    ]
    _common.print_targets("Targets", targets)
    _common.write_json(
        f"import-{connection.vendor}", {"small": small, "full": full, "targets": targets}
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
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both", "here"], default="both")
    args = parser.parse_args()
    if args.db == "here":
        run_one(args.rows, args.repeat)
        return
    wanted = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    targets = []
    for db in wanted:
        env = {**os.environ, "DATABASE_URL": POSTGRES_URL if db == "postgres" else ""}
        if db == "postgres" and not _postgres_answers():
            print(f"\nPostgreSQL at {POSTGRES_URL} does not answer: skipped.")
            continue
        command = [sys.executable, __file__, "--db", "here", "--rows", str(args.rows)]
        code = subprocess.call([*command, "--repeat", str(args.repeat)], env=env)
        if code:
            raise SystemExit(f"bench/import.py failed on {db}")
        vendor = "postgresql" if db == "postgres" else "sqlite"
        path = _common.RESULTS / f"import-{vendor}.json"
        targets += json.loads(path.read_text())["targets"]
    (_common.RESULTS / "import.json").write_text(json.dumps({"targets": targets}, indent=2))


if __name__ == "__main__":
    main()
