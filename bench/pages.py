"""Prove the portal's pages cost the same at N plans as on an empty database.

For the dashboard, the plan list (first page, a filtered page, a deep page), a plan detail
with 20 delivery attempts and the shift handover page (next 8 hours; next 24 hours, page 3),
measures server time (median and p95 over ``--requests`` requests through Django's test
client, after warm-up) and the SQL query count — first on a database with only sites and users,
then after seeding N plans (default 100,000; ~1.1 M rows with history) — and the Django admin's
plan changelist on the same data for comparison.

Targets: dashboard, plan list and handover page at N plans ≤ 1.5× their empty-database time,
the same query count at 0 and N and ≤ 10 queries per page; the portal plan list faster than
the admin changelist. The site timeline (a depot with 200 vehicles, ~400 plans in its 48
hours) is held to ≤ 1.5× its time at the "one page" step, where it draws the same bars with
next to nothing else in the database; its ratio to the empty database (200 rows, no bar) is
printed beside it: that is the cost of drawing the bars, not of the data's volume.

Run:  .venv/bin/python bench/pages.py [--plans 100000] [--requests 50]
      (DATABASE_URL=postgres://… to measure PostgreSQL; a bench_mint_pages database is used)
Prints the tables; writes bench/results/pages.json (and seed.json).
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import _common
import seed

WARMUP = 3


@dataclass(frozen=True)
class Page:
    key: str
    label: str
    url: Callable[[dict[str, Any]], str]
    as_admin: bool = False
    #: Held to the ≤ 1.5× / same-query-count / ≤ 10-query targets.
    scaled_target: bool = False
    #: What the ≤ 1.5× compares against: the empty database, or the step with one page of
    #: each view (the pages then draw the same rows and bars as at N: only the volume of the
    #: database differs).
    baseline: str = "empty"


PAGES = (
    Page("dashboard", "dashboard /", lambda c: "/", scaled_target=True),
    Page("list_first", "plan list, first page", lambda c: "/plans/", scaled_target=True),
    Page(
        "list_filtered",
        "plan list, site + state filter",
        lambda c: f"/plans/?site={c['site_id']}&state=accepted",
        scaled_target=True,
    ),
    Page(
        "list_failed",
        "plan list, delivery=failed",
        lambda c: "/plans/?delivery=failed",
        scaled_target=True,
    ),
    Page(
        "list_deep",
        "plan list, deep page",
        lambda c: f"/plans/?after={deep_cursor(c['deep_page'] * PAGE_SIZE)}",
        scaled_target=True,
    ),
    # The site timeline: a depot with 200 vehicles (seed.seed_timeline_fleet) over 48 hours,
    # two plans each in the window at N plans (seed.seed_timeline_plans).
    Page(
        "timeline",
        "site timeline, 200 vehicles, 48 h",
        lambda c: f"/sites/{c['timeline_site_id']}/",
        scaled_target=True,
        # Empty, it draws 200 rows and no bar; with plans, ~400 bars (and the same in its
        # table), which costs about 2-3× whatever the database holds; the target asks that
        # 100k plans elsewhere do not slow those bars down.
        baseline="one_page",
    ),
    Page("timeline_all", "timeline of all 50 sites, 48 h", lambda c: "/sites/timeline/"),
    Page("detail", "plan detail, 20 attempts", lambda c: f"/plans/{c['detail_pk']}/"),
    # The handover page (issue 12): the default next 8 hours, and the next 24 hours (at 100k
    # plans some 900 of them, two pages on) — each page of it counts the whole window.
    Page("shift", "shift handover, next 8 h", lambda c: "/shift/", scaled_target=True),
    Page(
        "shift_24h",
        "shift handover, 24 h, page 3",
        lambda c: "/shift/?hours=24&page=3",
        scaled_target=True,
    ),
    Page("admin_list", "admin plan changelist", lambda c: "/admin/plans/plan/", as_admin=True),
    Page(
        "admin_deep",
        "admin changelist, deep page",
        lambda c: f"/admin/plans/plan/?p={c['deep_page']}",
        as_admin=True,
    ),
)


def plain_static_storage() -> None:
    """Serve static files straight from static/ (as the tests do) so no collectstatic is needed.

    Production uses WhiteNoise's manifest storage; its per-``{% static %}`` lookup is a dict
    access, so this does not flatter the numbers.
    """
    from django.conf import settings

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def ensure_admin_registered() -> str:
    """The admin changelist to compare with: the project's own, or Django's default one."""
    from django.contrib import admin

    from plans.models import Plan

    if admin.site.is_registered(Plan):
        return "plans.admin (project's ModelAdmin)"
    admin.site.register(Plan)
    return "default ModelAdmin (plans.admin does not register Plan yet)"


def detail_plan(cast: seed.Cast) -> int:
    """One plan with one message and 20 delivery attempts (19 failures, then accepted)."""
    from django.utils import timezone

    from plans import services
    from plans.models import DeliveryAttempt, Plan, PlanState, Submission

    start = timezone.now().replace(microsecond=0) + timedelta(hours=3)
    plan = services.plan_create(
        user=cast.dispatcher,
        location=cast.locations[0],
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=4),
        target_kind="range",
        expected_range_km=240,
    )
    submission = services.plan_submit(plan=plan, user=cast.dispatcher)
    body = submission.body
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(
            submission=submission,
            started_at=submission.created_at + timedelta(seconds=10 * i),
            trigger="scheduled",
            worker="bench-worker",
            duration_ms=120,
            http_status=200 if i == 19 else 503,
            outcome="accepted" if i == 19 else "unavailable",
            error="" if i == 19 else "MINT answered 503 Service Unavailable",
            request_body=body,
        )
        for i in range(20)
    )
    Submission.objects.filter(pk=submission.pk).update(state="accepted", attempt_count=20)
    Plan.objects.filter(pk=plan.pk).update(state=PlanState.ACCEPTED)
    return plan.pk


def measure(client: Any, url: str, requests: int) -> dict[str, Any]:
    """Warm up, count the queries of one request, then time ``requests`` requests."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    try:
        for _ in range(WARMUP):
            response = client.get(url)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        # Read now: the next request's request_started signal empties the query log.
        queries = [q["sql"] for q in captured.captured_queries]
    except Exception as exc:
        return {"url": url, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:120]}
    if response.status_code != 200:
        return {"url": url, "status": response.status_code, "error": f"HTTP {response.status_code}"}
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(url)
        timings.append(time.perf_counter() - started)
    return {
        "url": url,
        "status": 200,
        "queries": len(queries),
        "sql": [sql[:300] for sql in queries],
        "bytes": len(response.content),
        **_common.summary_ms(timings),
    }


PAGE_SIZE = 50


def deep_cursor(position: int) -> str:
    """The list's "Later plans" cursor at ``position`` (the last plan of the page before), as a
    dispatcher reaches it by following links; on the empty database, the start of the list."""
    from plans.models import Plan
    from plans.selectors import plan_cursor

    plans = Plan.objects.order_by("scheduled_start", "id")
    plan = plans[max(0, position - 1) : position].first() or plans.last()
    return plan_cursor(plan) if plan else plan_cursor(at=datetime(1970, 1, 1, tzinfo=UTC))


def second_factor_given(client: Any, user: Any) -> None:
    """The admin opens only to an administrator who gave the authenticator's code: mark the
    session as if they had, so the admin pages are measured, not a redirect to the code page."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device, _ = TOTPDevice.objects.get_or_create(
        user=user, name="bench", defaults={"confirmed": True}
    )
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def measure_all(clients: dict[bool, Any], context: dict[str, Any], requests: int) -> dict:
    results = {}
    for page in PAGES:
        results[page.key] = measure(clients[page.as_admin], page.url(context), requests)
        r = results[page.key]
        shown = r.get("error") or f"{r['median_ms']:.1f} ms, {r['queries']} queries"
        print(f"  {page.label:32} {shown}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plans", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    if args.requests < 30:
        parser.error("--requests must be at least 30 for a meaningful p95")

    url = _common.setup_django("pages")
    plain_static_storage()
    admin_kind = ensure_admin_registered()
    from django.test import Client

    from plans.models import Plan
    from plans.views.plans import PLANS_PER_PAGE

    cast = seed.seed_base()
    timeline_site = seed.seed_timeline_fleet(cast=cast)
    portal, admin = Client(), Client()
    portal.force_login(cast.dispatcher)
    admin.force_login(cast.admin)
    second_factor_given(admin, cast.admin)
    clients = {False: portal, True: admin}
    context = {
        "site_id": cast.locations[0].pk,
        "detail_pk": detail_plan(cast),
        # Halfway through the N-plan list; on the empty database it clamps to the last page.
        "deep_page": max(1, args.plans // PLANS_PER_PAGE // 2),
        "timeline_site_id": timeline_site.pk,
    }

    print(f"\nPages on an empty database ({Plan.objects.count()} plan), {_common.db_label()}")
    empty = measure_all(clients, context, args.requests)

    # One full page of plans: the same rows rendered as at N, so page/N isolates data volume
    # from the cost of drawing 50 rows instead of none.
    # The timeline depot's 48 hours come in here too: the bars the timeline draws at N.
    seed.seed_plans(cast=cast, plans=PLANS_PER_PAGE, seed=seed.SEED + 1, verbose=False)
    timeline_plans = seed.seed_timeline_plans(cast=cast)
    print(
        f"\nPages at one full page ({PLANS_PER_PAGE} plans, and the timeline depot's "
        f"{timeline_plans} in its 48 hours)"
    )
    one_page = measure_all(clients, context, args.requests)

    seeded = PLANS_PER_PAGE + timeline_plans
    print(f"\nSeeding {args.plans - seeded:,} more plans …", flush=True)
    stats = seed.seed_plans(cast=cast, plans=args.plans - seeded)
    seed_data = seed.report(stats)

    print(f"\nPages at {Plan.objects.count():,} plans")
    full = measure_all(clients, context, args.requests)

    report(args, admin_kind, context, empty, one_page, full, seed_data)
    _common.drop_postgres_database(url)


def report(args, admin_kind, context, empty, one_page, full, seed_data) -> None:
    from plans.views.plans import PLANS_PER_PAGE

    n = args.plans
    rows, pages = [], {}
    for page in PAGES:
        e, o, f = empty[page.key], one_page[page.key], full[page.key]
        slowdown = _common.ratio(f.get("median_ms"), e.get("median_ms"))
        volume = _common.ratio(f.get("median_ms"), o.get("median_ms"))
        pages[page.key] = {
            "label": page.label,
            "empty": e,
            "one_page": o,
            "full": f,
            "ratio_median": slowdown,
            "ratio_median_vs_one_page": volume,
        }
        rows.append(
            (
                page.label,
                e.get("queries"),
                f.get("queries"),
                e.get("median_ms"),
                e.get("p95_ms"),
                o.get("median_ms"),
                f.get("median_ms"),
                f.get("p95_ms"),
                slowdown,
                volume,
                f.get("error") or e.get("error") or "",
            )
        )
    _common.print_table(
        f"Server time per page, empty database vs {n:,} plans "
        f"({args.requests} requests each, test client, {_common.db_label()})",
        [
            "page",
            "queries@0",
            f"queries@{n:,}",
            "median@0 ms",
            "p95@0 ms",
            f"median@{PLANS_PER_PAGE} ms",
            f"median@{n:,} ms",
            f"p95@{n:,} ms",
            f"{n:,}/0",
            f"{n:,}/{PLANS_PER_PAGE}",
            "note",
        ],
        rows,
    )

    comparisons = []
    for portal_key, admin_key, what in (
        ("list_first", "admin_list", "first page"),
        ("list_deep", "admin_deep", "deep page"),
    ):
        p, a = full[portal_key], full[admin_key]
        comparisons.append(
            {
                "what": what,
                "portal_ms": p.get("median_ms"),
                "admin_ms": a.get("median_ms"),
                "portal_queries": p.get("queries"),
                "admin_queries": a.get("queries"),
                "ratio": _common.ratio(p.get("median_ms"), a.get("median_ms")),
            }
        )
    _common.print_table(
        f"Portal plan list vs admin changelist at {n:,} plans (admin: {admin_kind})",
        ["page", "portal ms", "admin ms", "portal queries", "admin queries", "portal/admin"],
        [
            (
                c["what"],
                c["portal_ms"],
                c["admin_ms"],
                c["portal_queries"],
                c["admin_queries"],
                c["ratio"],
            )
            for c in comparisons
        ],
    )

    targets = []
    for page in PAGES:
        if not page.scaled_target:
            continue
        e, f = empty[page.key], full[page.key]
        if page.baseline == "one_page":
            slowdown = pages[page.key]["ratio_median_vs_one_page"]
            what = (
                f"{page.label}: time@{n:,} / time@one page "
                f"({pages[page.key]['ratio_median']} vs empty)"
            )
        else:
            slowdown = pages[page.key]["ratio_median"]
            what = (
                f"{page.label}: time@{n:,} / time@0 "
                f"({pages[page.key]['ratio_median_vs_one_page']} vs {PLANS_PER_PAGE})"
            )
        targets.append(
            _common.target(
                what,
                slowdown,
                "≤ 1.5",
                None if slowdown is None else slowdown <= 1.5,
            )
        )
        same = e.get("queries") is not None and e.get("queries") == f.get("queries")
        targets.append(
            _common.target(
                f"{page.label}: queries@0 = queries@{n:,} ≤ 10",
                f"{e.get('queries')} / {f.get('queries')}",
                "equal, ≤ 10",
                None if f.get("queries") is None else same and f["queries"] <= 10,
            )
        )
    first = comparisons[0]
    targets.append(
        _common.target(
            "portal list / admin changelist (first page)",
            first["ratio"],
            "< 1",
            None if first["ratio"] is None else first["ratio"] < 1,
        )
    )
    _common.print_targets("Page targets", targets)
    _common.write_json(
        "pages",
        {
            "plans": n,
            "requests_per_page": args.requests,
            "admin": admin_kind,
            "context": context,
            "seed": seed_data,
            "pages": pages,
            "portal_vs_admin": comparisons,
            "targets": targets,
        },
    )


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        raise SystemExit(1) from None
