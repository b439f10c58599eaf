"""Every read the pages make, shaped so each page costs a fixed, small number of queries."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from plans.models import (
    PENDING_STATES,
    DeliveryAttempt,
    HealthCheck,
    Location,
    Plan,
    PlanEvent,
    PlanState,
    Submission,
    SubmissionState,
    WorkerHeartbeat,
)

#: A worker that has not written its heartbeat for this long is presumed gone.
WORKER_SILENCE = timedelta(seconds=60)

#: Delivery filter on the plan list: the plain-words groups a dispatcher thinks in.
DELIVERY_GROUPS = {
    "delivered": [PlanState.ACCEPTED],
    "pending": list(PENDING_STATES),
    "failed": [PlanState.FAILED, PlanState.REJECTED],
}


@dataclass(frozen=True)
class PlanFilters:
    location_id: int | None = None
    state: str = ""
    delivery: str = ""
    day: date | None = None
    query: str = ""


def plan_list(*, filters: PlanFilters) -> QuerySet[Plan]:
    """Plans for the list page, sorted by start; one query however many rows are shown."""
    plans = Plan.objects.select_related("location")
    if filters.location_id:
        plans = plans.filter(location_id=filters.location_id)
    if filters.state:
        plans = plans.filter(state=filters.state)
    if filters.delivery in DELIVERY_GROUPS:
        plans = plans.filter(state__in=DELIVERY_GROUPS[filters.delivery])
    if filters.day:
        # A day in UTC: the list shows each row's local time, but the filter must be one range.
        start = datetime.combine(filters.day, datetime.min.time(), tzinfo=ZoneInfo("UTC"))
        plans = plans.filter(scheduled_start__lt=start + timedelta(days=1), scheduled_end__gt=start)
    if filters.query:
        q = filters.query.strip()
        match = (
            Q(location__name__icontains=q)
            | Q(location__mint_location_id__icontains=q)
            | Q(status_note__icontains=q)
        )
        if q.isdigit():
            match |= Q(pk=int(q))
        try:
            import uuid

            match |= Q(transaction_id=uuid.UUID(q))
        except ValueError:
            pass
        plans = plans.filter(match)
    return plans.order_by("scheduled_start", "id")


def state_counts() -> dict[str, int]:
    """How many plans are in each state, every state present (zero when none)."""
    counts = dict.fromkeys(PlanState.values, 0)
    for row in Plan.objects.order_by().values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    return counts


def plans_starting_soon(*, hours: int = 24, limit: int = 20) -> list[Plan]:
    now = timezone.now()
    return list(
        Plan.objects.select_related("location")
        .filter(scheduled_start__gte=now, scheduled_start__lt=now + timedelta(hours=hours))
        .order_by("scheduled_start", "id")[:limit]
    )


def active_locations() -> QuerySet[Location]:
    return Location.objects.filter(is_active=True).order_by("name")


def plan_detail(*, pk: int) -> Plan:
    return Plan.objects.select_related("location", "created_by", "updated_by").get(pk=pk)


def plan_events(*, plan: Plan) -> list[PlanEvent]:
    return list(plan.events.select_related("user").order_by("at", "id"))


def plan_submissions(*, plan: Plan) -> list[Submission]:
    """The plan's messages, newest first, each with its attempts loaded in one more query."""
    return list(plan.submissions.order_by("-created_at", "-id").prefetch_related("attempts"))


def current_submission(*, plan: Plan) -> Submission | None:
    return plan.submissions.filter(revision=plan.revision).first()


def rejection_messages(*, plan: Plan) -> list[str]:
    """MINT's 400 messages for the plan's latest rejected message, to show beside the form."""
    sub = (
        plan.submissions.filter(state=SubmissionState.REJECTED)
        .order_by("-created_at")
        .only("mint_messages")
        .first()
    )
    return list(sub.mint_messages) if sub else []


def worker_is_alive() -> bool:
    return WorkerHeartbeat.objects.filter(
        seen_at__gte=timezone.now() - WORKER_SILENCE, stopped_at__isnull=True
    ).exists()


def workers() -> list[WorkerHeartbeat]:
    return list(WorkerHeartbeat.objects.order_by("-seen_at")[:20])


def recent_attempt_outcomes(*, hours: int = 1) -> dict[str, int]:
    counts = dict.fromkeys(DeliveryAttempt.Outcome.values, 0)
    since = timezone.now() - timedelta(hours=hours)
    rows = (
        DeliveryAttempt.objects.filter(started_at__gte=since)
        .order_by()
        .values("outcome")
        .annotate(n=Count("id"))
    )
    for row in rows:
        counts[row["outcome"]] = row["n"]
    return counts


def open_rejection_messages(*, plan: Plan) -> list[str]:
    """MINT's 400 messages while they still apply: only when the plan's latest message was
    rejected, so an old rejection is not shown once a later revision went through."""
    latest = plan.submissions.order_by("-created_at", "-id").only("state", "mint_messages").first()
    if latest is None or latest.state != SubmissionState.REJECTED:
        return []
    return list(latest.mint_messages)


def plans_in(*, ids: list[int]) -> list[Plan]:
    """The plans with these ids, for the list page's "Submit selected"."""
    return list(Plan.objects.filter(pk__in=ids).order_by("scheduled_start", "id"))


def latest_health_check() -> HealthCheck | None:
    return HealthCheck.objects.order_by("-checked_at").first()
