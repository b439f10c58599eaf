"""Shared plumbing for the benchmark scripts: environment, a throwaway database, stats, output.

Every script calls :func:`setup_django` before importing anything from Django or ``plans``. It
points the one ``settings.py`` at a database that exists only for this benchmark — a SQLite file
under ``bench/results/`` by default, or a dedicated ``bench_mint_<name>`` database on the
PostgreSQL server named by ``DATABASE_URL`` — runs ``migrate`` and leaves the environment set so
child processes (worker, sandbox) inherit it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MANAGE = str(ROOT / "manage.py")
#: The sandbox's public demo pair (``settings.MINT_SANDBOX_CLIENT_ID`` / ``_SECRET``).
SANDBOX_CLIENT_ID = "mintportal-demo"
SANDBOX_CLIENT_SECRET = "sandbox-demo-secret"  # noqa: S105 - public demo credentials
POSTGRES_SCHEMES = ("postgres://", "postgresql://")


def free_port() -> int:
    """A TCP port that was free a moment ago (the sandbox subprocess binds it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_database(url: str, name: str) -> str:
    """(Re)create ``bench_mint_<name>`` on the server of ``url`` and return its URL."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    database = f"bench_mint_{name}"
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return urlunsplit(parts._replace(path="/" + database))


def _sqlite_database(name: str) -> str:
    path = RESULTS / f"{name}.sqlite3"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def setup_django(name: str, *, mint_api_url: str = "http://127.0.0.1:9/api/v1.0") -> str:
    """Configure the environment for a fresh database called after ``name``; return its URL.

    Production settings (``DEBUG`` off, cached templates, no query log) with the env the portal
    demands in that mode; the MINT credentials are the sandbox's demo pair.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    requested = os.environ.get("DATABASE_URL", "")
    if requested.startswith(POSTGRES_SCHEMES):
        database_url = _postgres_database(requested, name)
    elif requested and not requested.startswith("sqlite:"):
        raise SystemExit(f"bench: DATABASE_URL must be SQLite or PostgreSQL, not {requested!r}")
    else:
        database_url = _sqlite_database(name)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mintportal.settings",
            "DATABASE_URL": database_url,
            "DEBUG": "0",
            # The test client speaks plain HTTP; HTTPS redirects are the proxy's business here.
            "HTTPS": "0",
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            "MINT_API_URL": mint_api_url,
            "MINT_CLIENT_ID": SANDBOX_CLIENT_ID,
            "MINT_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
            "MINT_ENVIRONMENT": "sandbox",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return database_url


def drop_postgres_database(database_url: str) -> None:
    """Drop the bench database again (PostgreSQL only; SQLite files stay for inspection)."""
    if not database_url.startswith(POSTGRES_SCHEMES):
        return
    from django.db import connections

    connections.close_all()
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    database = parts.path.lstrip("/")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def db_label() -> str:
    from django.db import connection

    if connection.vendor == "sqlite":
        return f"SQLite {connection.Database.sqlite_version}"
    connection.ensure_connection()
    return f"PostgreSQL {connection.pg_version}"


# --- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value that ``pct`` % of the samples do not exceed."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median and p95 of durations given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "min_ms": round(min(ms), 3),
        "samples": len(ms),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


# --- output ------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain fixed-width table: numbers right-aligned, text left-aligned."""
    cells = [[fmt(v) for v in row] for row in rows]
    raw_rows = [list(row) for row in cells]
    widths = [len(h) for h in headers]
    for row in raw_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in raw_rows:
        out = []
        for cell, width in zip(row, widths, strict=True):
            numeric = cell.replace(",", "").replace(".", "").replace("-", "").isdigit()
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        print("  ".join(out).rstrip())
    sys.stdout.flush()


def target(name: str, value: Any, goal: str, ok: bool | None) -> dict[str, Any]:
    """One checked target, as run_all.py summarises them."""
    return {"target": name, "value": value, "goal": goal, "ok": ok}


def print_targets(title: str, targets: Sequence[dict[str, Any]]) -> None:
    print_table(
        title,
        ["target", "measured", "goal", "met"],
        [(t["target"], t["value"], t["goal"], t["ok"]) for t in targets],
    )


def write_json(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with the machine and database it was measured on."""
    from django.conf import settings

    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "database": {
            "engine": settings.DATABASES["default"]["ENGINE"],
            "version": db_label(),
        },
        **data,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nresults written to {path.relative_to(ROOT)}")
    return path
