"""Fill a throwaway database with a year's worth of a dispatcher team's plans, quickly.

Proves the data volume the other benchmarks run against can be built in seconds and is the same
every time: N plans (default 100,000) over 50 sites, times spread over ±60 days around now, a mix
of every state and both targets (valid under the database's check constraints), about 10 history
rows per plan, and a message plus its delivery attempts for every submitted plan. Bulk inserts in
batches, one fixed random seed.

Run:  .venv/bin/python bench/seed.py [--plans 100000]
      DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/seed.py
Prints rows per second per table; writes bench/results/seed.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import _common

SEED = 20240601
SITES = 50
BATCH = 2_000
ZONES = ("Europe/Brussels", "Europe/Amsterdam", "Europe/Berlin", "Europe/London", "Europe/Paris")
#: (state, weight): mostly delivered history, a visible share needing attention or in flight.
STATE_MIX = (
    ("accepted", 62),
    ("draft", 15),
    ("queued", 4),
    ("sending", 1),
    ("retrying", 3),
    ("rejected", 8),
    ("failed", 7),
)
#: The delivery history that leads to each final state, after "submitted" (draft → queued).
TAILS = {
    "draft": [],
    "queued": [],
    "sending": [("queued", "sending")],
    "retrying": [("queued", "sending"), ("sending", "retrying")],
    "accepted": [("queued", "sending"), ("sending", "accepted")],
    "rejected": [("queued", "sending"), ("sending", "rejected")],
    "failed": [
        ("queued", "sending"),
        ("sending", "retrying"),
        ("retrying", "sending"),
        ("sending", "failed"),
    ],
}
EVENTS_PER_PLAN = 10
VEHICLES = 500
WARNING = json.dumps(
    [{"code": "battery", "field": "expected_charge_kwh",
      "text": "Needs 400 kWh, more than bench bus 1's usable battery of 350 kWh."}]
)  # fmt: skip


@dataclass
class Cast:
    """The sites and people every benchmark needs, before any plan exists."""

    locations: list[Any]
    dispatcher: Any
    admin: Any
    vehicles: list[Any] = field(default_factory=list)


@dataclass
class SeedStats:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def seed_base(*, sites: int = SITES) -> Cast:
    """50 active sites, one dispatcher (group Dispatchers) and one superuser."""
    from django.contrib.auth.models import Group, User

    from plans.models import Location, Vehicle
    from plans.roles import DISPATCHERS, roles_ensure

    roles_ensure()
    Location.objects.bulk_create(
        [
            Location(
                mint_location_id=f"BENCH-{i:03d}",
                name=f"Bench Depot {i:03d}",
                time_zone=ZONES[i % len(ZONES)],
            )
            for i in range(sites)
        ],
        ignore_conflicts=True,
    )
    dispatcher, created = User.objects.get_or_create(username="bench-dispatcher")
    if created:
        dispatcher.groups.add(Group.objects.get(name=DISPATCHERS))
    admin, created = User.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    locations = list(Location.objects.filter(mint_location_id__startswith="BENCH-"))
    Vehicle.objects.bulk_create(
        [
            Vehicle(
                name=f"bench bus {i}",
                battery_kwh=Decimal("350"),
                default_consumption=Decimal("110"),
                max_charge_kw=Decimal("150"),
                home_location=locations[i % len(locations)],
            )
            for i in range(VEHICLES)
        ],
        ignore_conflicts=True,
    )
    return Cast(
        locations=locations,
        dispatcher=dispatcher,
        admin=admin,
        vehicles=list(Vehicle.objects.filter(name__startswith="bench bus ")),
    )


def _plan_values(
    rng: random.Random, now: datetime, locations: list[Any], vehicles: list[Any]
) -> dict[str, Any]:
    start = now + timedelta(minutes=rng.randint(-60 * 24 * 60, 60 * 24 * 60))
    values: dict[str, Any] = {
        "transaction_id": uuid.UUID(int=rng.getrandbits(128), version=4),
        "location": rng.choice(locations),
        # Most plans name a vehicle, and a few carry a guard's warning, as on a real site.
        "vehicle": rng.choice(vehicles) if vehicles and rng.random() < 0.8 else None,
        "warnings": WARNING if rng.random() < 0.05 else "[]",
        "scheduled_start": start,
        "scheduled_end": start + timedelta(minutes=rng.randint(30, 12 * 60)),
        "status_note": f"bus {rng.randint(1, 400)}" if rng.random() < 0.2 else "",
        "state": rng.choices([s for s, _ in STATE_MIX], weights=[w for _, w in STATE_MIX], k=1)[0],
    }
    if rng.random() < 0.5:
        values.update(
            target_kind="range",
            expected_range_km=rng.randint(40, 500),
            average_consumption=(
                Decimal(rng.randint(1200, 3000)) / 100 if rng.random() < 0.7 else None
            ),
        )
    else:
        values.update(target_kind="charge", expected_charge_kwh=rng.randint(10, 300))
    return values


class _Writer:
    """Plain multi-row INSERTs through Django's cursor: the ORM's per-object cost is the
    bottleneck at a million rows, so values are adapted once per type for this backend."""

    def __init__(self) -> None:
        from django.db import connection

        self.connection = connection
        ops = connection.ops
        self.dt = ops.adapt_datetimefield_value
        self.dec = (
            (lambda v: None if v is None else str(v))
            if connection.vendor == "sqlite"
            else (lambda v: v)
        )
        self.uuid = (
            (lambda v: v) if connection.features.has_native_uuid_field else (lambda v: v.hex)
        )

    def next_id(self, model: Any) -> int:
        from django.db.models import Max

        return (model.objects.aggregate(m=Max("id"))["m"] or 0) + 1

    def insert(self, model: Any, columns: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        quote = self.connection.ops.quote_name
        # Table and column names come from the models, never from input.
        sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
            quote(model._meta.db_table),
            ", ".join(quote(c) for c in columns),
            ", ".join(["%s"] * len(columns)),
        )
        with self.connection.cursor() as cursor:
            cursor.executemany(sql, rows)

    def reset_sequences(self, models: list[Any]) -> None:
        """PostgreSQL: move the id sequences past the explicit ids (SQLite needs nothing)."""
        from django.core.management.color import no_style

        with self.connection.cursor() as cursor:
            for statement in self.connection.ops.sequence_reset_sql(no_style(), models):
                cursor.execute(statement)


PLAN_COLUMNS = (
    "id", "transaction_id", "location_id", "scheduled_start", "scheduled_end", "target_kind",
    "expected_range_km", "average_consumption", "expected_charge_kwh", "status_note", "state",
    "revision", "created_at", "created_by_id", "updated_at", "updated_by_id", "vehicle_id",
    "schedule_detached", "warnings",
)  # fmt: skip
EVENT_COLUMNS = (
    "plan_id", "at", "action", "from_state", "to_state", "revision", "user_id", "actor", "reason",
)  # fmt: skip
SUBMISSION_COLUMNS = (
    "id", "plan_id", "revision", "message_id", "created_at", "created_by_id", "body", "state",
    "attempt_count", "next_attempt_at", "next_trigger", "deadline", "lease_owner",
    "lease_expires_at", "finished_at", "last_error", "mint_messages",
)  # fmt: skip
ATTEMPT_COLUMNS = (
    "submission_id", "started_at", "trigger", "worker", "duration_ms", "http_status", "outcome",
    "mint_messages", "error", "request_body", "next_attempt_at",
)  # fmt: skip
ATTEMPT_OUTCOMES = {
    "accepted": [("accepted", 200)],
    "rejected": [("rejected", 400)],
    "retrying": [("unavailable", 503)],
    "failed": [("unavailable", 503), ("unavailable", 502)],
}
REJECTION = ["expectedRange: too far for this site."]


def seed_plans(*, cast: Cast, plans: int, seed: int = SEED, verbose: bool = True) -> SeedStats:
    """Insert ``plans`` plans with their history, messages and attempts, in batches.

    Rows are built as tuples with explicit ids and written with one ``executemany`` per table
    and batch, inside one transaction per batch.
    """
    from django.db import transaction
    from django.utils import timezone

    from plans.mint.payload import build_plan_payload, encode_body
    from plans.models import DeliveryAttempt, Plan, PlanEvent, Submission

    rng = random.Random(seed)
    w = _Writer()
    dt, uid = w.dt, w.uuid
    now = timezone.now().replace(second=0, microsecond=0)
    now_db = dt(now)
    user_id = cast.dispatcher.pk
    stats = SeedStats(rows={"plans": 0, "events": 0, "submissions": 0, "attempts": 0})
    plan_id, submission_id = w.next_id(Plan), w.next_id(Submission)
    started = time.perf_counter()
    for offset in range(0, plans, BATCH):
        size = min(BATCH, plans - offset)
        plan_rows, event_rows, submission_rows, attempt_rows = [], [], [], []
        for _ in range(size):
            v = _plan_values(rng, now, cast.locations, cast.vehicles)
            state, start, end = v["state"], v["scheduled_start"], v["scheduled_end"]
            plan_rows.append(
                (
                    plan_id, uid(v["transaction_id"]), v["location"].pk, dt(start), dt(end),
                    v["target_kind"], v.get("expected_range_km"),
                    w.dec(v.get("average_consumption")), v.get("expected_charge_kwh"),
                    v["status_note"], state, 1, now_db, user_id, now_db, user_id,
                    v["vehicle"].pk if v["vehicle"] else None, False, v["warnings"],
                )
            )  # fmt: skip
            # History happened before now (and before the window): the dashboard's "last hour"
            # must not see seeded attempts dated in the future.
            at = min(start, now) - timedelta(days=2, minutes=rng.randint(0, 600))
            history = [("created", "", "draft", True)]
            if state != "draft":
                tail = [("submitted", "draft", "queued", True)]
                tail += [("delivery", a, b, False) for a, b in TAILS[state]]
            else:
                tail = []
            history += [("edited", "draft", "draft", True)] * (EVENTS_PER_PLAN - 1 - len(tail))
            history += tail
            for i, (action, from_state, to_state, by_user) in enumerate(history):
                event_rows.append(
                    (
                        plan_id, dt(at + timedelta(minutes=i)), action, from_state, to_state, 1,
                        user_id if by_user else None,
                        cast.dispatcher.username if by_user else "bench-worker",
                        "Seeded by bench/seed.py.",
                    )
                )  # fmt: skip
            if state != "draft":
                message_id = uuid.UUID(int=rng.getrandbits(128), version=4)
                created = at + timedelta(minutes=EVENTS_PER_PLAN)
                payload = build_plan_payload(
                    message_id=message_id,
                    location_id=v["location"].mint_location_id,
                    transaction_id=v["transaction_id"],
                    status=v["status_note"] or f"mintportal plan {plan_id} rev 1",
                    timestamp=created,
                    scheduled_start=start,
                    scheduled_end=end,
                    expected_range=v.get("expected_range_km"),
                    average_consumption=v.get("average_consumption"),
                    expected_charge=v.get("expected_charge_kwh"),
                )
                body = encode_body(payload)
                in_flight = state in ("queued", "sending", "retrying")
                # In the future, so a worker pointed at this database by mistake stays idle.
                later = dt(now + timedelta(days=365))
                messages = json.dumps(REJECTION if state == "rejected" else [])
                submission_rows.append(
                    (
                        submission_id, plan_id, 1, uid(message_id), dt(created), user_id, body,
                        state, {"queued": 0, "sending": 0, "failed": 2}.get(state, 1),
                        later if in_flight else None, "scheduled",
                        dt(created + timedelta(days=1)),
                        "bench-worker" if state == "sending" else "",
                        later if state == "sending" else None,
                        None if in_flight else dt(created + timedelta(seconds=5)),
                        "", messages,
                    )
                )  # fmt: skip
                for i, (outcome, status) in enumerate(ATTEMPT_OUTCOMES.get(state, [])):
                    attempt_rows.append(
                        (
                            submission_id, dt(created + timedelta(seconds=1 + 60 * i)),
                            "scheduled", "bench-worker", rng.randint(20, 400), status, outcome,
                            messages, "" if status < 500 else f"MINT answered {status}", body,
                            None,
                        )
                    )  # fmt: skip
                submission_id += 1
            plan_id += 1
        with transaction.atomic():
            w.insert(Plan, PLAN_COLUMNS, plan_rows)
            w.insert(PlanEvent, EVENT_COLUMNS, event_rows)
            w.insert(Submission, SUBMISSION_COLUMNS, submission_rows)
            w.insert(DeliveryAttempt, ATTEMPT_COLUMNS, attempt_rows)
        stats.rows["plans"] += len(plan_rows)
        stats.rows["events"] += len(event_rows)
        stats.rows["submissions"] += len(submission_rows)
        stats.rows["attempts"] += len(attempt_rows)
        if verbose and (offset // BATCH) % 10 == 9:
            elapsed = time.perf_counter() - started
            print(f"  seeded {offset + size:,} plans in {elapsed:.1f} s", flush=True)
    w.reset_sequences([Plan, PlanEvent, Submission, DeliveryAttempt])
    # The rows went in beside the services, so recount what the dashboard reads.
    from plans.services import plan_state_counts_rebuild

    plan_state_counts_rebuild()
    analyse()
    stats.seconds = time.perf_counter() - started
    return stats


def analyse() -> None:
    """Refresh the planner's statistics, as autovacuum / a DBA would on a real database.

    On PostgreSQL also VACUUM, as autovacuum does after this many inserts: it marks the pages
    all-visible, without which no index-only scan can skip reading the table.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


# --- the site timeline's depot ----------------------------------------------------------------

#: Vehicles at home at the first bench site, each with a row on its timeline.
TIMELINE_VEHICLES = 200
TIMELINE_CHARGE_POINTS = 150


def seed_timeline_fleet(*, cast: Cast) -> Any:
    """A big depot for the timeline: the first site gets 200 vehicles of its own and charge
    points, before any plan exists (the empty-database timeline already draws 200 rows)."""
    from plans.models import Location, Vehicle

    site = cast.locations[0]
    Location.objects.filter(pk=site.pk).update(charge_points=TIMELINE_CHARGE_POINTS)
    Vehicle.objects.bulk_create(
        [
            Vehicle(
                name=f"depot bus {i}",
                battery_kwh=Decimal("350"),
                default_consumption=Decimal("110"),
                max_charge_kw=Decimal("150"),
                home_location=site,
            )
            for i in range(TIMELINE_VEHICLES)
        ],
        ignore_conflicts=True,
    )
    return site


def seed_timeline_plans(*, cast: Cast, seed: int = SEED + 2) -> int:
    """Two plans in the next 48 hours for each of the depot's 200 vehicles, 8 hours each,
    arrivals spread over 3 hours: one that began before the window (a cut bar) and one the
    next evening; the usual mix of states and a few warnings; no vehicle in two plans at once.
    Plain rows (``bulk_create``): the pages read only the plan rows."""
    from django.utils import timezone

    from plans.models import Plan, Vehicle

    rng = random.Random(seed)
    site = cast.locations[0]
    vehicles = list(Vehicle.objects.filter(name__startswith="depot bus ").order_by("pk"))
    now = timezone.now().replace(second=0, microsecond=0)
    states = [s for s, _ in STATE_MIX]
    weights = [w for _, w in STATE_MIX]
    rows = []
    for i, vehicle in enumerate(vehicles):
        offset = timedelta(minutes=15 * (i % 12))
        for first in (-4, 20):
            start = now + timedelta(hours=first) + offset
            rows.append(
                Plan(
                    transaction_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                    location=site,
                    vehicle=vehicle,
                    scheduled_start=start,
                    scheduled_end=start + timedelta(hours=8),
                    target_kind="charge",
                    expected_charge_kwh=rng.randint(60, 300),
                    state=rng.choices(states, weights=weights, k=1)[0],
                    warnings=json.loads(WARNING) if rng.random() < 0.05 else [],
                    created_by=cast.dispatcher,
                    updated_by=cast.dispatcher,
                )
            )
    Plan.objects.bulk_create(rows, batch_size=BATCH)
    from plans.services import plan_state_counts_rebuild

    plan_state_counts_rebuild()
    analyse()
    return len(rows)


def report(stats: SeedStats) -> dict[str, Any]:
    """Print the seeding table and write bench/results/seed.json."""
    rows = [
        (table, count, stats.seconds, count / stats.seconds if stats.seconds else None)
        for table, count in stats.rows.items()
    ]
    total = sum(stats.rows.values())
    rows.append(("all rows", total, stats.seconds, total / stats.seconds))
    _common.print_table(
        f"Seeding ({_common.db_label()}, fixed seed {SEED})",
        ["table", "rows", "seconds", "rows/s"],
        rows,
    )
    data = {
        "seed": SEED,
        "seconds": round(stats.seconds, 3),
        "rows": stats.rows,
        "rows_per_second": round(total / stats.seconds) if stats.seconds else None,
    }
    _common.write_json("seed", data)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plans", type=int, default=100_000)
    args = parser.parse_args()
    url = _common.setup_django("seed")
    cast = seed_base()
    stats = seed_plans(cast=cast, plans=args.plans)
    report(stats)
    _common.drop_postgres_database(url)


if __name__ == "__main__":
    main()
