"""What a calendar feed costs as its site fills up, and that its cap bounds it.

Four sites in one database: none, 200, 2,000 (FEED_MAX_EVENTS) and 8,000 plans inside the
feed's window (7 days back, 28 ahead), 80 % of them with a vehicle; plus 50,000 plans at another
site and outside the window, which a feed must not read. For each site's feed: the SQL query
count, the server time (median, p95 over ``--requests`` requests through Django's test client,
after warm-up) and its CPU time, and the size of the .ics.

Targets: the same query count at every size (≤ 6); the capped site (8,000 plans) no slower than
1.2× the 2,000-plan site, since it sends the same 2,000 events.

Run:  .venv/bin/python bench/feeds.py [--requests 10]
      (DATABASE_URL=postgres://… to measure PostgreSQL; a bench_mint_feeds database is used)
Prints the tables; writes bench/results/feeds.json.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import _common

WARMUP = 2
SIZES = (0, 200, 2000, 8000)
ELSEWHERE = 50000


def seed_site(*, cast: Any, location: Any, plans: int, rng: random.Random, inside: bool) -> None:
    from django.utils import timezone

    from plans.models import Plan

    now = timezone.now()
    rows = []
    for _ in range(plans):
        if inside:
            start = now + timedelta(minutes=rng.randint(-7 * 24 * 60, 28 * 24 * 60 - 60))
        else:
            start = now + timedelta(days=rng.choice([-1, 1]) * rng.randint(70, 300))
        values = {
            "transaction_id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "location": location,
            "vehicle": rng.choice(cast.vehicles) if rng.random() < 0.8 else None,
            "scheduled_start": start,
            "scheduled_end": start + timedelta(minutes=rng.randint(30, 12 * 60)),
            "state": rng.choice(["draft", "queued", "accepted", "failed", "cancelled"]),
            "created_by": cast.dispatcher,
            "updated_by": cast.dispatcher,
        }
        if rng.random() < 0.5:
            values.update(target_kind="range", expected_range_km=rng.randint(40, 500))
        else:
            values.update(target_kind="charge", expected_charge_kwh=rng.randint(10, 300))
        rows.append(Plan(**values))
    Plan.objects.bulk_create(rows, batch_size=2000)


def measure(client: Any, url: str, requests: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from icalendar import Calendar

    for _ in range(WARMUP):
        response = client.get(url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    queries = len(captured.captured_queries)
    assert response.status_code == 200, response.status_code
    events = len(Calendar.from_ical(response.content).events)
    timings, cpu = [], []
    for _ in range(requests):
        started, started_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {
        "queries": queries,
        "events": events,
        "bytes": len(response.content),
        # CPU time of this process: less swayed than wall time by other work on a shared box.
        "cpu_median_ms": _common.summary_ms(cpu)["median_ms"],
        **_common.summary_ms(timings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    database_url = _common.setup_django("feeds")
    try:
        import seed
        from django.test import Client

        from plans import services
        from plans.models import Location

        cast = seed.seed_base(sites=5)
        rng = random.Random(12)
        sites = {}
        for number, size in enumerate(SIZES):
            location = Location.objects.create(
                mint_location_id=f"FEED-{size}",
                name=f"Feed site {size}",
                time_zone="Europe/Brussels",
                charge_points=10,
                charge_point_kw=Decimal("150"),
            )
            seed_site(cast=cast, location=location, plans=size, rng=rng, inside=True)
            sites[size] = location
            print(f"seeded {size:,} plans at site {number}", flush=True)
        seed_site(cast=cast, location=cast.locations[0], plans=ELSEWHERE // 2, rng=rng, inside=True)
        for size in (2000, 8000):
            seed_site(cast=cast, location=sites[size], plans=ELSEWHERE // 4, rng=rng, inside=False)
        secret = services.feed_token_create(user=cast.dispatcher, label="bench").secret
        client = Client()
        results = {
            size: measure(client, f"/feeds/{secret}/sites/{sites[size].pk}.ics", args.requests)
            for size in SIZES
        }
        _common.print_table(
            f"Calendar feed of one site ({_common.db_label()}, {args.requests} requests each)",
            ["plans in window", "events", "queries", "KiB", "median ms", "p95 ms", "CPU ms"],
            [
                (
                    size,
                    r["events"],
                    r["queries"],
                    round(r["bytes"] / 1024),
                    r["median_ms"],
                    r["p95_ms"],
                    r["cpu_median_ms"],
                )
                for size, r in results.items()
            ],
        )
        query_counts = {r["queries"] for r in results.values()}
        capped = _common.ratio(results[8000]["median_ms"], results[2000]["median_ms"])
        targets = [
            _common.target(
                "same queries at every size (≤ 6)",
                ", ".join(str(r["queries"]) for r in results.values()),
                "one count, ≤ 6",
                len(query_counts) == 1 and max(query_counts) <= 6,
            ),
            _common.target("capped site / 2,000-plan site", capped, "≤ 1.2×", capped <= 1.2),
        ]
        _common.print_targets("Targets", targets)
        _common.write_json(
            "feeds", {"results": {str(k): v for k, v in results.items()}, "targets": targets}
        )
    finally:
        _common.drop_postgres_database(database_url)


if __name__ == "__main__":
    main()
