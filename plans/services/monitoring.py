"""What the workers record about themselves and about MINT: heartbeats and health checks."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from plans.mint.outcomes import HealthResult
from plans.models import HealthCheck, MintStatus, WorkerHeartbeat


def heartbeat_beat(
    *,
    name: str,
    hostname: str,
    pid: int,
    started_at: datetime,
    stopping: bool = False,
    waiting_for: str = "",
) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        name=name,
        defaults={
            "hostname": hostname,
            "pid": pid,
            "started_at": started_at,
            "seen_at": now,
            "stopped_at": now if stopping else None,
            "waiting_for": waiting_for[:200],
        },
    )


def _uptime_by_hour(*, since: datetime, latest: tuple[datetime, str]) -> list[list]:
    """Per hour since ``since``: [hour start (ISO), seconds MINT was up, seconds known], from
    the recorded checks and the ``latest`` one (its time and result), about to be recorded.

    Each check speaks for the time until the next one (from any worker), at most two check
    intervals: workers check every few seconds while MINT is down and every 30 s while it is
    up, so counting checks would make a 90-second outage look like hours. The latest check
    speaks for one interval. Time no check speaks for is unknown, neither up nor down.
    """
    interval = timedelta(seconds=settings.MINT_HEALTH_INTERVAL)
    checks = list(
        HealthCheck.objects.filter(checked_at__gte=since)
        .order_by("checked_at", "id")
        .values_list("checked_at", "result")
    )
    # The check just before the day also speaks for its first seconds.
    earlier = (
        HealthCheck.objects.filter(checked_at__lt=since)
        .order_by("-checked_at", "-id")
        .values_list("checked_at", "result")
        .first()
    )
    if earlier:
        checks.insert(0, earlier)
    checks.append(latest)
    checks.sort(key=lambda check: check[0])
    hour = timedelta(hours=1)
    up, known = [0.0] * 24, [0.0] * 24
    following = [at for at, _ in checks[1:]] + [None]
    for (at, result), next_at in zip(checks, following, strict=True):
        end = at + (min(next_at - at, 2 * interval) if next_at else interval)
        at = max(at, since)
        while at < end:
            index = int((at - since) / hour)
            if index >= 24:
                break
            piece = min(end, since + (index + 1) * hour) - at
            known[index] += piece.total_seconds()
            if result == HealthCheck.Result.UP:
                up[index] += piece.total_seconds()
            at += piece
    return [[(since + n * hour).isoformat(), round(up[n]), round(known[n])] for n in range(24)]


def health_record(*, result: HealthResult, at: datetime | None = None) -> HealthCheck:
    """Append one ``/health/`` result and refresh the status row the pages read (``at``: when
    the check was made, now by default).

    The day's uptime is worked out before the write transaction: reading a day of checks
    takes tens of milliseconds, and on SQLite a write transaction holds every writer off,
    dispatchers' saves included.
    """
    verdict = result.result
    checked_at = at or timezone.now()
    since = checked_at.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    hourly = _uptime_by_hour(since=since, latest=(checked_at, verdict))
    known_total = sum(h[2] for h in hourly)
    with transaction.atomic():
        check = HealthCheck.objects.create(
            checked_at=checked_at,
            result=verdict,
            http_status=result.http_status,
            latency_ms=result.latency_ms,
            error=result.error,
        )
        status, _ = MintStatus.objects.select_for_update().get_or_create(pk=1)
        if status.checked_at and status.checked_at > checked_at:
            return check  # another worker's later check is already shown
        status.checked_at = checked_at
        status.result = verdict
        status.http_status = result.http_status
        status.latency_ms = result.latency_ms
        status.error = result.error
        status.uptime_24h = sum(h[1] for h in hourly) / known_total if known_total else None
        status.hourly = hourly
        status.save()
    return check


def mint_problem_record(*, kind: str, text: str) -> None:
    """Show (or, with ``kind=""``, stop showing) a fault of the portal's configuration that
    a worker found in MINT's answers; ``problem_since`` keeps when it was first seen."""
    with transaction.atomic():
        status, _ = MintStatus.objects.select_for_update().get_or_create(pk=1)
        if (status.problem_kind, status.problem) == (kind, text):
            return
        if kind != status.problem_kind:
            status.problem_since = timezone.now() if kind else None
        status.problem_kind, status.problem = kind, text
        status.save(update_fields=["problem_kind", "problem", "problem_since"])
