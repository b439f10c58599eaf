"""What the workers report about themselves and about MINT's health.

``HealthCheck`` rows are written only by ``plans.services`` and never updated.
"""

from datetime import timedelta

from django.db import models
from django.utils import timezone

#: A worker that has not written its heartbeat for this long is presumed gone.
WORKER_SILENCE = timedelta(seconds=60)


class WorkerHeartbeat(models.Model):
    """One row per running ``mint_worker``: the UI warns when none has been seen lately."""

    name = models.CharField(max_length=100, unique=True)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    waiting_for = models.CharField(
        max_length=200,
        blank=True,
        help_text="What holds the worker's deliveries (the database, MINT), if anything.",
    )

    class Meta:
        ordering = ["-seen_at"]
        indexes = [
            # banner / operations view: the most recently seen workers
            models.Index(fields=["-seen_at"], name="heartbeat_seen_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_alive(self) -> bool:
        return self.stopped_at is None and timezone.now() - self.seen_at <= WORKER_SILENCE


class HealthCheck(models.Model):
    """Append-only record of one ``GET /health/`` made by a worker."""

    class Result(models.TextChoices):
        UP = "up", "Up"
        DOWN = "down", "Down"
        ERROR = "error", "No answer"

    checked_at = models.DateTimeField()
    result = models.CharField(max_length=5, choices=Result.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [
            # health widget: the latest check, and the last 24 h for the sparkline
            models.Index(fields=["-checked_at"], name="healthcheck_checked_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.checked_at:%Y-%m-%d %H:%M:%S} {self.result}"


class MintStatus(models.Model):
    """MINT's health as the pages show it (one row, pk=1), kept current by the workers.

    Each worker recomputes it after every ``/health/`` check, so a page reads one row instead of
    aggregating a day of ``HealthCheck`` rows on every request.
    """

    checked_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=5, choices=HealthCheck.Result.choices, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    uptime_24h = models.FloatField(
        null=True,
        blank=True,
        help_text="Share of the last 24 h, as far as checks tell, that MINT was up.",
    )
    hourly = models.JSONField(
        default=list,
        blank=True,
        help_text="Last 24 hours, oldest first: [hour start (ISO), seconds up, seconds known].",
    )
    # A fault of the portal's own configuration that MINT's answers revealed (wrong
    # credentials, an unusable MINT_API_URL): shown on every page until a worker sees it gone.
    problem_kind = models.CharField(max_length=20, blank=True)
    problem = models.TextField(blank=True)
    problem_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "MINT status"

    def __str__(self) -> str:
        return f"MINT {self.result or 'unknown'} at {self.checked_at}"
