"""What the workers record about themselves and about MINT: heartbeats and health checks."""

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from plans.mint.outcomes import HealthResult
from plans.models import HealthCheck, MintStatus, WorkerHeartbeat


def heartbeat_beat(
    *, name: str, hostname: str, pid: int, started_at: datetime, stopping: bool = False
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
        },
    )


@transaction.atomic
def health_record(*, result: HealthResult) -> HealthCheck:
    """Append one ``/health/`` result and refresh the status row the pages read."""
    verdict = result.result
    check = HealthCheck.objects.create(
        checked_at=timezone.now(),
        result=verdict,
        http_status=result.http_status,
        latency_ms=result.latency_ms,
        error=result.error,
    )
    hour = check.checked_at.replace(minute=0, second=0, microsecond=0)
    since = hour - timedelta(hours=23)
    rows = (
        HealthCheck.objects.filter(checked_at__gte=since)
        .annotate(hour=TruncHour("checked_at", tzinfo=UTC))
        .order_by()
        .values("hour")
        .annotate(made=Count("id"), up=Count("id", filter=Q(result=HealthCheck.Result.UP)))
    )
    by_hour = {row["hour"]: (row["up"], row["made"]) for row in rows}
    hourly = []
    for n in range(24):
        start = since + timedelta(hours=n)
        up, made = by_hour.get(start, (0, 0))
        hourly.append([start.isoformat(), up, made])
    made_total = sum(h[2] for h in hourly)
    MintStatus.objects.update_or_create(
        pk=1,
        defaults={
            "checked_at": check.checked_at,
            "result": verdict,
            "http_status": result.http_status,
            "latency_ms": result.latency_ms,
            "error": result.error,
            "uptime_24h": sum(h[1] for h in hourly) / made_total if made_total else None,
            "hourly": hourly,
        },
    )
    return check
