"""Every read the pages make, shaped so each page costs a fixed, small number of queries."""

import contextlib
import functools
import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import (
    Case,
    Count,
    F,
    FilteredRelation,
    Func,
    Min,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
    Window,
)
from django.utils import timezone

from plans.mint.client import api_url_problem
from plans.mint.outcomes import Problem
from plans.models import (
    CALLED_OFF_STATES,
    PENDING_STATES,
    PLAN_MAX_WINDOW,
    DeliveryAttempt,
    FeedToken,
    HealthCheck,
    Location,
    MintStatus,
    Plan,
    PlanEvent,
    PlanState,
    PlanStateCount,
    Schedule,
    ScheduleEvent,
    Submission,
    SubmissionState,
    UserPreference,
    Vehicle,
    WorkerHeartbeat,
)
from plans.timezones import day_text, utc_to_local

#: Delivery filter on the plan list: the plain-words groups a dispatcher thinks in.
DELIVERY_GROUPS = {
    "delivered": [PlanState.ACCEPTED],
    "pending": list(PENDING_STATES),
    "failed": [PlanState.FAILED, PlanState.REJECTED],
    "called_off": list(CALLED_OFF_STATES),
}


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One line of the plan list or the dashboard: just what the line shows.

    Read with ``values_list`` rather than as ``Plan`` and ``Location`` instances: for a page of
    50 rows, building the two model instances per row cost more than the query itself.
    """

    pk: int
    state: str
    revision: int
    scheduled_start: datetime
    scheduled_end: datetime
    target_kind: str
    expected_range_km: int | None
    expected_charge_kwh: int | None
    average_consumption: Decimal | None
    site_name: str
    site_code: str
    time_zone: str
    vehicle_name: str | None
    warnings: list[dict]


#: The columns of a ``PlanRow``, in its field order.
PLAN_ROW_COLUMNS = (
    "pk",
    "state",
    "revision",
    "scheduled_start",
    "scheduled_end",
    "target_kind",
    "expected_range_km",
    "expected_charge_kwh",
    "average_consumption",
    "location__name",
    "location__mint_location_id",
    "location__time_zone",
    "vehicle__name",
    "warnings",
)


def _plan_rows(plans: QuerySet[Plan]) -> list[PlanRow]:
    return [PlanRow(*values) for values in plans.values_list(*PLAN_ROW_COLUMNS)]


@dataclass(frozen=True)
class PlanFilters:
    location_id: int | None = None
    vehicle_id: int | None = None
    state: str = ""
    delivery: str = ""
    day: date | None = None
    query: str = ""
    #: The chosen site's IANA zone: a day is then that site's day (midnight to midnight on
    #: its clock), as a dispatcher means it; with no site chosen, a day in UTC.
    time_zone: str = ""


def plan_list(*, filters: PlanFilters) -> QuerySet[Plan]:
    """Plans for the list page, sorted by start; one query however many rows are shown."""
    plans = Plan.objects.all()
    if filters.location_id:
        plans = plans.filter(location_id=filters.location_id)
    if filters.vehicle_id:
        plans = plans.filter(vehicle_id=filters.vehicle_id)
    if filters.state:
        plans = plans.filter(state=filters.state)
    if filters.delivery in DELIVERY_GROUPS:
        plans = plans.filter(state__in=DELIVERY_GROUPS[filters.delivery])
    elif not filters.state:
        # Withdrawn and cancelled plans are out of the way unless asked for by a filter.
        plans = plans.exclude(state__in=CALLED_OFF_STATES)
    if filters.day:
        # One range of instants: the site's day when a site is chosen, else a day in UTC
        # (sites on several clocks have no common midnight). Where a clock change falls at
        # midnight, the offset before it is taken (fold=0), as for a schedule's times.
        zone = ZoneInfo(filters.time_zone or "UTC")
        start = datetime.combine(filters.day, datetime.min.time(), tzinfo=zone)
        end = datetime.combine(filters.day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        plans = plans.filter(scheduled_start__lt=end, scheduled_end__gt=start)
    if filters.query:
        q = filters.query.strip()
        # Sites are few: match them first, so the plan scan compares ids, not joined names.
        sites = Location.objects.filter(
            Q(name__icontains=q) | Q(mint_location_id__icontains=q)
        ).values("pk")
        vehicles = Vehicle.objects.filter(
            Q(name__icontains=q) | Q(registration__icontains=q)
        ).values("pk")
        match = Q(location_id__in=sites) | Q(vehicle_id__in=vehicles) | Q(status_note__icontains=q)
        if q.isascii() and q.isdigit():
            match |= Q(pk=int(q))
        with contextlib.suppress(ValueError):
            match |= Q(transaction_id=uuid.UUID(q))
        plans = plans.filter(match)
    return plans.order_by("scheduled_start", "id")


#: How far the plan list counts matches; beyond it says "1,000+" instead of counting them all.
COUNT_LIMIT = 1000


@dataclass(frozen=True)
class PlanPage:
    plans: list[PlanRow]
    count: int
    count_is_capped: bool
    earlier: str | None
    later: str | None


CURSOR_TIME = "%Y%m%dT%H%M%S.%fZ"


def plan_cursor(plan: Plan | PlanRow | None = None, *, at: datetime | None = None) -> str:
    """A position in the list sorted by (start, id), for the Earlier / Later links: just after
    ``plan``, or just before the first plan starting at ``at`` (the "From now" link)."""
    if plan is not None:
        return f"{plan.scheduled_start.astimezone(UTC):{CURSOR_TIME}}_{plan.pk}"
    return f"{at.astimezone(UTC):{CURSOR_TIME}}_0"


def parse_plan_cursor(raw: str) -> tuple[datetime, int] | None:
    stamp, _, pk = raw.partition("_")
    try:
        return datetime.strptime(stamp, CURSOR_TIME).replace(tzinfo=UTC), int(pk)
    except ValueError:
        return None


def plan_page(
    *,
    filters: PlanFilters,
    after: tuple[datetime, int] | None = None,
    before: tuple[datetime, int] | None = None,
    size: int = 50,
) -> PlanPage:
    """One page of the list after (or before) a cursor, in three queries however deep it is.

    Paging by position in the (start, id) index instead of OFFSET keeps page 2,000 as fast as
    page 1, and the count stops at ``COUNT_LIMIT`` rather than counting every match.
    """
    plans = plan_list(filters=filters)
    capped = plans.order_by().values("pk")[: COUNT_LIMIT + 1].count()
    if before:
        start, pk = before
        rows = _plan_rows(
            plans.filter(
                Q(scheduled_start__lte=start), Q(scheduled_start__lt=start) | Q(pk__lt=pk)
            ).order_by("-scheduled_start", "-id")[: size + 1]
        )
        more_earlier, rows = len(rows) > size, rows[:size][::-1]
        more_later = True
    else:
        if after:
            start, pk = after
            plans = plans.filter(
                Q(scheduled_start__gte=start), Q(scheduled_start__gt=start) | Q(pk__gt=pk)
            )
        rows = _plan_rows(plans[: size + 1])
        more_later, rows = len(rows) > size, rows[:size]
        more_earlier = after is not None
    return PlanPage(
        plans=rows,
        count=min(capped, COUNT_LIMIT),
        count_is_capped=capped > COUNT_LIMIT,
        earlier=plan_cursor(rows[0]) if rows and more_earlier else None,
        later=plan_cursor(rows[-1]) if rows and more_later else None,
    )


def state_counts() -> dict[str, int]:
    """How many plans are in each state, every state present: seven rows the services keep."""
    counts = dict.fromkeys(PlanState.values, 0)
    counts.update(PlanStateCount.objects.values_list("state", "count"))
    return counts


def plans_starting_soon(*, hours: int = 24, limit: int = 20) -> tuple[list[PlanRow], int]:
    """The first ``limit`` plans starting within ``hours``, and how many start in all, so the
    dashboard says how many more there are instead of dropping them unsaid.

    One query: the count is a subquery the database works out once, from the (state, start)
    index alone. (A window count over the listed rows read every plan of the day, not 20.)
    """
    now = timezone.now()
    soon = Plan.objects.filter(
        scheduled_start__gte=now,
        scheduled_start__lt=now + timedelta(hours=hours),
        state__in=[s for s in PlanState.values if s not in CALLED_OFF_STATES],
    )
    # COUNT as a plain function, not Count: an aggregate would add a GROUP BY.
    total = soon.order_by().values(n=Func(F("id"), function="COUNT"))
    values = list(
        soon.annotate(total=Subquery(total))
        .order_by("scheduled_start", "id")
        .values_list(*PLAN_ROW_COLUMNS, "total")[:limit]
    )
    return [PlanRow(*row[:-1]) for row in values], (values[0][-1] if values else 0)


def plan_form_locations(*, current_pk: int | None = None) -> QuerySet[Location]:
    """The sites a plan can be put at: the active ones, and the plan's own even if inactive."""
    sites = Q(is_active=True) | Q(pk=current_pk) if current_pk else Q(is_active=True)
    return Location.objects.filter(sites).order_by("name")


def user_last_site(*, user) -> Location | None:
    """The site of ``user``'s last new plan, while it still takes new plans (else ``None``)."""
    preference = (
        UserPreference.objects.filter(user=user, last_location__is_active=True)
        .select_related("last_location")
        .first()
    )
    return preference.last_location if preference else None


def plan_form_vehicles(*, current_pk: int | None = None) -> QuerySet[Vehicle]:
    """The vehicles a plan can name: the active ones, and the plan's own even if inactive."""
    vehicles = Q(is_active=True) | Q(pk=current_pk) if current_pk else Q(is_active=True)
    return Vehicle.objects.filter(vehicles).select_related("home_location").order_by("name")


def plan_detail(*, pk: int) -> Plan:
    return Plan.objects.select_related(
        "location",
        "vehicle",
        "schedule__vehicle",
        "schedule__location",
        "created_by",
        "updated_by",
    ).get(pk=pk)


def plan_events(*, plan: Plan) -> list[PlanEvent]:
    return list(plan.events.select_related("user").order_by("at", "id"))


def plan_submissions(*, plan: Plan) -> list[Submission]:
    """The plan's messages, newest first, each with its attempts loaded in one more query."""
    return list(
        plan.submissions.select_related("created_by")
        .order_by("-created_at", "-id")
        .prefetch_related("attempts")
    )


def _attempt_label(attempt: DeliveryAttempt) -> str:
    """``503``, ``accepted``, ``rejected`` or ``no answer``: one attempt in a summary."""
    if attempt.outcome in (DeliveryAttempt.Outcome.ACCEPTED, DeliveryAttempt.Outcome.REJECTED):
        return attempt.outcome
    return str(attempt.http_status) if attempt.http_status else "no answer"


def attempts_summary(attempts: list[DeliveryAttempt], *, zone: str) -> str:
    """``7 attempts, 21:02–21:16 CET, all 503`` or ``3 attempts, 21:02–21:05 CET: 503, 503,
    accepted``: a message's retries in one line, on the site's clock. Three or more alike in a
    row are counted (``503 ×5, accepted``); a span across midnight names both days."""
    first = utc_to_local(attempts[0].started_at, zone)
    last = utc_to_local(attempts[-1].started_at, zone)
    if first.date() == last.date():
        span = f"{first:%H:%M}–{last:%H:%M} {last.tzname()}"
    else:
        span = f"{day_text(first)} {first:%H:%M} – {day_text(last)} {last:%H:%M} {last.tzname()}"
    labels = [_attempt_label(attempt) for attempt in attempts]
    if len(set(labels)) == 1:
        return f"{len(attempts)} attempts, {span}, all {labels[0]}"
    said = []
    for label, alike in itertools.groupby(labels):
        count = len(list(alike))
        said += [f"{label} ×{count}"] if count >= 3 else [label] * count
    return f"{len(attempts)} attempts, {span}: {', '.join(said)}"


@dataclass(frozen=True)
class MessageAttempts:
    """One message to MINT with its attempts, and their one-line summary when there are
    several (the page then folds the attempts table behind it)."""

    submission: Submission
    attempts: list[DeliveryAttempt]
    summary: str


def plan_messages(*, submissions: list[Submission], zone: str) -> list[MessageAttempts]:
    """``plan_submissions`` with each message's attempts summed up; no query of its own."""
    messages = []
    for submission in submissions:
        attempts = list(submission.attempts.all())
        summary = attempts_summary(attempts, zone=zone) if len(attempts) > 1 else ""
        messages.append(MessageAttempts(submission, attempts, summary))
    return messages


@dataclass(frozen=True)
class DeliveryRun:
    """The worker's history rows for one message between two things a person did, when it took
    more than one attempt: shown as one entry that opens onto every row and attempt."""

    events: list[PlanEvent]
    attempts: list[DeliveryAttempt]
    summary: str

    @property
    def key(self) -> int:
        """The first row's id: the same while the run grows, so the page keeps it open."""
        return self.events[0].pk

    @property
    def last(self) -> PlanEvent:
        return self.events[-1]


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a plan's history: a single row, or a run of retries folded into one."""

    event: PlanEvent | None = None
    run: DeliveryRun | None = None


def plan_history(
    *, events: list[PlanEvent], messages: list[MessageAttempts], zone: str
) -> list[HistoryEntry]:
    """The history rows, oldest first, with each run of delivery rows of one revision that
    spans several attempts folded into a ``DeliveryRun``; a message sent once stays as its rows.

    A run's attempts are its message's attempts that started between the run's first and last
    row (the worker writes the row that claims a message before sending it, and the row with
    the outcome after). Works on what the page loaded already: no query.
    """
    attempts_by_revision = {m.submission.revision: m.attempts for m in messages}
    entries: list[HistoryEntry] = []
    for (is_delivery, revision), rows in itertools.groupby(
        events, key=lambda e: (e.action == PlanEvent.Action.DELIVERY, e.revision)
    ):
        rows = list(rows)
        attempts = [
            attempt
            for attempt in attempts_by_revision.get(revision, [])
            if rows[0].at <= attempt.started_at <= rows[-1].at
        ]
        if is_delivery and len(attempts) > 1:
            summary = attempts_summary(attempts, zone=zone)
            entries.append(HistoryEntry(run=DeliveryRun(rows, attempts, summary)))
        else:
            entries.extend(HistoryEntry(event=row) for row in rows)
    return entries


@dataclass(frozen=True)
class PortalStatus:
    """What every page's header shows: MINT's health and whether any worker is alive."""

    mint: MintStatus | None
    workers: list[WorkerHeartbeat]
    mint_state: str  # "up", "down" or "unknown"
    worker_alive: bool
    #: Unknown because the last check, a recent one, got no answer (not because none was made).
    mint_unanswered: bool = False
    #: A fault of the portal's own configuration (``plans.mint.outcomes.Problem``), if any.
    problem_kind: str = ""
    problem: str = ""
    problem_since: datetime | None = None

    @property
    def mint_holds_delivery(self) -> bool:
        """Whether the workers are waiting for MINT: its last health check answered 503
        (``HealthResult.says_down``); any other answer, or none, does not stop them."""
        return self.mint_state == "down" and self.mint.http_status == 503


def portal_status() -> PortalStatus:
    """Two queries: the status row the workers keep, and the recently seen workers.

    MINT counts as *unknown* when no worker has checked it for three health intervals (the
    last answer says nothing about now) and when the last check got no answer at all (a
    ``/health/`` that hangs says nothing about ``/plan/``).
    """
    now = timezone.now()
    mint = MintStatus.objects.filter(pk=1).first()
    workers = list(
        WorkerHeartbeat.objects.filter(seen_at__gte=now - timedelta(days=1)).order_by("-seen_at")[
            :20
        ]
    )
    stale_after = timedelta(seconds=max(3 * settings.MINT_HEALTH_INTERVAL, 60))
    unanswered = False
    if mint is None or mint.checked_at is None or now - mint.checked_at > stale_after:
        state = "unknown"
    elif mint.result == HealthCheck.Result.ERROR:
        state, unanswered = "unknown", True
    else:
        state = "up" if mint.result == HealthCheck.Result.UP else "down"
    alive = any(worker.is_alive for worker in workers)
    problem = {}
    if url_problem := _api_url_problem(settings.MINT_API_URL):
        # Workers refuse to start with such a URL (system check plans.E001), so none reports
        # it: the portal's own settings (the same .env) say it.
        problem = {"problem_kind": Problem.URL, "problem": Problem.url.format(reason=url_problem)}
    elif mint is not None and mint.problem_kind:
        problem = {
            "problem_kind": mint.problem_kind,
            "problem": mint.problem,
            "problem_since": mint.problem_since,
        }
    return PortalStatus(
        mint=mint,
        workers=workers,
        mint_state=state,
        worker_alive=alive,
        mint_unanswered=unanswered,
        **problem,
    )


@functools.cache
def _api_url_problem(url: str) -> str:
    return api_url_problem(url)


def mint_problem() -> tuple[str, str]:
    """The configuration fault the pages show now, as (kind, text); ("", "") for none."""
    row = MintStatus.objects.filter(pk=1).values_list("problem_kind", "problem").first()
    return row or ("", "")


@dataclass(frozen=True)
class QueueSummary:
    depth: int
    oldest_at: datetime | None
    due_now: int


def queue_summary() -> QueueSummary:
    """Messages waiting for MINT, the oldest one's age and how many are due: one query."""
    now = timezone.now()
    # No COUNT(id): every column read is in submission_queue_idx, so PostgreSQL answers from
    # that index alone (SQLite's indexes carry the id anyway). A due message has a due time, so
    # counting next_attempt_at under that filter counts the due messages.
    row = Submission.objects.filter(state__in=["queued", "sending", "retrying"]).aggregate(
        depth=Count("*"),
        oldest_at=Min("created_at"),
        due_now=Count("next_attempt_at", filter=Q(next_attempt_at__lte=now)),
    )
    return QueueSummary(**row)


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
    latest = (
        plan.submissions.order_by("-created_at", "-id")
        .only("plan_id", "state", "mint_messages")
        .first()
    )
    if latest is None or latest.state != SubmissionState.REJECTED:
        return []
    return list(latest.mint_messages)


def plans_in(*, ids: list[int]) -> list[Plan]:
    """The plans with these ids, for the list page's "Submit selected"."""
    return list(Plan.objects.filter(pk__in=ids).order_by("scheduled_start", "id"))


def vehicle_list() -> list[Vehicle]:
    """Every vehicle with its home site, for the dispatchers' read-only fleet page."""
    return list(Vehicle.objects.select_related("home_location").order_by("-is_active", "name"))


@dataclass(frozen=True)
class ScheduleFilters:
    location_id: int | None = None
    vehicle_id: int | None = None


def schedule_list(*, filters: ScheduleFilters) -> list[Schedule]:
    """Schedules with their vehicle, site and skips/pauses: two queries."""
    schedules = Schedule.objects.select_related("vehicle", "location").prefetch_related(
        "exceptions"
    )
    if filters.location_id:
        schedules = schedules.filter(location_id=filters.location_id)
    if filters.vehicle_id:
        schedules = schedules.filter(vehicle_id=filters.vehicle_id)
    return list(schedules.order_by("location__name", "vehicle__name", "id"))


def schedule_detail(*, pk: int) -> Schedule:
    return Schedule.objects.select_related("vehicle", "location", "created_by", "updated_by").get(
        pk=pk
    )


def schedule_plans(*, schedule: Schedule, limit: int = 40) -> list[PlanRow]:
    """The schedule's plans from yesterday on, called-off ones included (the page says why)."""
    since = timezone.now() - timedelta(days=1)
    return _plan_rows(
        Plan.objects.filter(schedule=schedule, scheduled_end__gt=since).order_by(
            "scheduled_start", "id"
        )[:limit]
    )


def schedule_plans_from(
    *, schedule: Schedule, first_day: date, last_day: date | None = None
) -> QuerySet[Plan]:
    """The schedule's plans for these days that a skip, pause or end would call off: not
    started and not called off yet (detached ones included: the caller names them)."""
    plans = Plan.objects.filter(
        schedule=schedule, occurrence_date__gte=first_day, scheduled_start__gt=timezone.now()
    ).exclude(state__in=CALLED_OFF_STATES)
    if last_day is not None:
        plans = plans.filter(occurrence_date__lte=last_day)
    return plans


def schedule_plans_after(*, schedule: Schedule, day: date) -> list[Plan]:
    """The plans ending the schedule after ``day`` would call off (detached ones stay)."""
    return list(
        schedule_plans_from(schedule=schedule, first_day=day + timedelta(days=1))
        .filter(schedule_detached=False)
        .select_related("location")
        .order_by("scheduled_start")
    )


def schedule_events(*, schedule: Schedule) -> list[ScheduleEvent]:
    return list(schedule.events.order_by("-at", "-id")[:100])


@functools.cache
def _known_migrations() -> frozenset[tuple[str, str]]:
    """Every migration in the code (read from disk once per process: the code does not change
    while it runs)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def unapplied_migrations() -> list[str]:
    """Migrations in the code that the database has not had, as ``app.name``; one query.

    A database that answers but lacks them fails logins and saves with a 500, so the load
    balancer's probe and the worker must tell it apart from one that is ready.
    """
    applied = MigrationRecorder(connection).applied_migrations()
    return sorted(f"{app}.{name}" for app, name in _known_migrations() - set(applied))


# --- Calendar feeds -------------------------------------------------------------------------------
#: A feed shows plans from a week back (what happened lately stays in the calendar) to four
#: weeks ahead, or as far as schedules make plans (SCHEDULE_HORIZON_DAYS) if that is further;
#: single plans further out appear as they come closer. At most FEED_MAX_EVENTS, earliest
#: first: the icalendar library takes about half a millisecond per event (bench/feeds.py), so
#: the cap keeps a feed of a crowded site near a second.
FEED_PAST = timedelta(days=7)
FEED_AHEAD = timedelta(days=28)
FEED_MAX_EVENTS = 2000


@dataclass(frozen=True)
class FeedWindow:
    start: datetime
    end: datetime

    @property
    def days_ahead(self) -> int:
        return (self.end - self.start - FEED_PAST).days


def feed_window(*, now: datetime) -> FeedWindow:
    ahead = max(FEED_AHEAD, timedelta(days=settings.SCHEDULE_HORIZON_DAYS))
    return FeedWindow(start=now - FEED_PAST, end=now + ahead)


def feed_plans(
    *, window: FeedWindow, location: Location | None = None, vehicle: Vehicle | None = None
) -> list[Plan]:
    """The plans of one site or one vehicle that overlap ``window``, called-off ones included
    (a calendar that has them must learn they are off); one query however many.

    The start is bounded on both sides (a plan lasts at most PLAN_MAX_WINDOW), so the site's or
    vehicle's start index reads only the window.
    """
    plans = Plan.objects.filter(
        scheduled_start__gte=window.start - PLAN_MAX_WINDOW,
        scheduled_start__lt=window.end,
        scheduled_end__gt=window.start,
    )
    if location is not None:
        plans = plans.filter(location=location)
    if vehicle is not None:
        plans = plans.filter(vehicle=vehicle)
    return list(
        plans.select_related("location", "vehicle").order_by("scheduled_start", "id")[
            :FEED_MAX_EVENTS
        ]
    )


def feed_tokens(*, user) -> list[FeedToken]:
    """The user's tokens that still open feeds, newest first."""
    return list(FeedToken.objects.filter(user=user, revoked_at__isnull=True))


def feed_sources() -> tuple[list[Location], list[Vehicle]]:
    """Every site and vehicle a feed can be made for (all of them: view rights are not per
    site), for the page that shows a new token's feed URLs."""
    return list(Location.objects.order_by("name")), list(Vehicle.objects.order_by("name"))


# --- sites and their timeline -------------------------------------------------------------------


def site_list() -> list[Location]:
    """Every site with how many active vehicles call it home: one query."""
    return list(
        Location.objects.annotate(
            vehicle_count=Count("home_vehicles", filter=Q(home_vehicles__is_active=True))
        ).order_by("-is_active", "name")
    )


def timeline_plans(
    *,
    start: datetime,
    end: datetime,
    location_ids: list[int],
    called_off: bool = False,
) -> list[PlanRow]:
    """The plans whose window overlaps [start, end) at these sites: one query.

    A plan lasts at most ``PLAN_MAX_WINDOW`` (on the site's clock, so a day more in UTC
    terms is safe), so its start is bounded below too: the scan reads an index range of a
    few days per site (``plan_site_start_state_idx``) instead of every plan that ever started
    before the window's end.
    """
    plans = Plan.objects.filter(
        scheduled_start__gt=start - PLAN_MAX_WINDOW - timedelta(days=1),
        scheduled_start__lt=end,
        scheduled_end__gt=start,
    )
    plans = plans.filter(location_id__in=location_ids)
    if not called_off:
        plans = plans.exclude(state__in=CALLED_OFF_STATES)
    return _plan_rows(plans.order_by("scheduled_start", "id"))


def timeline_vehicles(*, location_id: int) -> list[str]:
    """The names of the site's active home vehicles: each gets a row, planned or not."""
    return list(
        Vehicle.objects.filter(home_location_id=location_id, is_active=True)
        .order_by("name")
        .values_list("name", flat=True)
    )


def site_zones() -> list[str]:
    """The time zones the sites keep, most used first, then UTC: the clocks a dispatcher may
    type a time on where no one site is meant."""
    zones = (
        Location.objects.order_by()
        .values("time_zone")
        .annotate(n=Count("id"))
        .order_by("-n", "time_zone")
        .values_list("time_zone", flat=True)
    )
    return [*[z for z in zones if z != "UTC"], "UTC"]


#: How many plans one "retry every plan that failed since …" shows and retries at most.
RETRY_SINCE_LIMIT = 500


@dataclass(frozen=True)
class FailedSince:
    plans: list[PlanRow]
    failed_at: dict[int, datetime]
    more: int


def plans_failed_since(*, since: datetime, limit: int = RETRY_SINCE_LIMIT) -> FailedSince:
    """Failed plans whose current message was given up at or after ``since`` and whose window
    has not ended (MINT has no use for those), soonest start first, in one query; and how many
    beyond ``limit``."""
    plans = (
        Plan.objects.filter(state=PlanState.FAILED, scheduled_end__gt=timezone.now())
        .annotate(
            current=FilteredRelation(
                "submissions", condition=Q(submissions__revision=F("revision"))
            )
        )
        .filter(current__finished_at__gte=since)
        .annotate(total=Window(Count("id")))
        .order_by("scheduled_start", "id")
    )
    rows, failed_at, total = [], {}, 0
    for values in plans.values_list(*PLAN_ROW_COLUMNS, "current__finished_at", "total")[:limit]:
        row = PlanRow(*values[:-2])
        rows.append(row)
        failed_at[row.pk] = values[-2]
        total = values[-1]
    return FailedSince(plans=rows, failed_at=failed_at, more=max(0, total - len(rows)))


# --- the handover page ---------------------------------------------------------------------------

#: Needs a person: not sent, not delivered, refused by MINT, or called off here while MINT still
#: holds an accepted revision (its API has no cancel). Any plan with a guard's warning, too.
NEEDS_YOU_STATES = (PlanState.DRAFT, PlanState.FAILED, PlanState.REJECTED, PlanState.CANCELLED)
#: The handover page's groups, in the order it shows them.
SHIFT_GROUPS = ("needs_you", "on_its_way", "settled")
#: A plan covers at most 7 days on its site's clock (``PLAN_MAX_WINDOW``), a day more in UTC at
#: the most: so a plan still running now started at most this long ago. The bound lets the
#: window's query walk the start index instead of every plan that ever ended later.
_LONGEST_STAY = PLAN_MAX_WINDOW + timedelta(days=1)


def _needs_you() -> Q:
    return Q(state__in=NEEDS_YOU_STATES) | ~Q(warnings=[])


def _shift_group() -> Case:
    return Case(
        When(_needs_you(), then=Value(0)),
        When(state__in=PENDING_STATES, then=Value(1)),
        default=Value(2),
    )


def shift_window(*, now: datetime, hours: int) -> QuerySet[Plan]:
    """Every plan starting within ``hours`` of ``now`` or running at ``now``, except those
    withdrawn (MINT never had them; nothing to do)."""
    # The window's ids from plan_start_end_idx alone (a week of starts, read in the index),
    # then only those plans: filtering on the plan rows read a week of them for each query.
    ids = Plan.objects.filter(
        scheduled_start__gte=now - _LONGEST_STAY,
        scheduled_start__lt=now + timedelta(hours=hours),
        scheduled_end__gt=now,
    ).values("pk")
    return Plan.objects.filter(pk__in=ids).exclude(state=PlanState.WITHDRAWN)


@dataclass(frozen=True)
class ShiftSite:
    """A site with plans in the window, and how many of them are in each group."""

    pk: int
    name: str
    code: str
    time_zone: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class ShiftRow:
    """One line of the handover page: the plan, its group, and what its current message is
    doing (the next attempt of one retrying; why one failed or was rejected)."""

    plan: PlanRow
    group: str
    next_attempt_at: datetime | None
    last_error: str
    mint_messages: list[str]


@dataclass(frozen=True)
class ShiftPage:
    now: datetime
    hours: int
    sites: list[ShiftSite]
    totals: dict[str, int]
    rows: list[ShiftRow]
    number: int
    pages: int
    #: Plans in the window a bulk action applies to, by what it does: ``submit`` (drafts),
    #: ``retry`` (failed); and ``rejected`` ones, retried only when ticked.
    actionable: dict[str, list[int]]


def shift_page(*, now: datetime, hours: int, page: int = 1, size: int = 50) -> ShiftPage:
    """One page of the handover view in two queries, however many plans the window holds.

    The first reads the whole window as small tuples, in page order (site by site, then by
    group, then by start): the per-site counts, the page's place in it and the ids the bulk
    actions take are worked out from it here, where three aggregate queries each walked the
    window again. The second reads this page's plans in full.

    Paged by position: the window is a few hours of plans (about a thousand in a day at 100k
    plans a year), and the page numbers stay meaningful to people handing over.
    """
    window = (
        shift_window(now=now, hours=hours)
        .annotate(group=_shift_group())
        .order_by("location__name", "location_id", "group", "scheduled_start", "id")
        .values_list(
            "pk",
            "location_id",
            "group",
            "state",
            "location__name",
            "location__mint_location_id",
            "location__time_zone",
        )
    )
    sites: list[ShiftSite] = []
    entries: list[tuple[int, int]] = []
    actionable: dict[str, list[int]] = {"submit": [], "retry": [], "rejected": []}
    kind = {PlanState.DRAFT: "submit", PlanState.FAILED: "retry", PlanState.REJECTED: "rejected"}
    for pk, site_pk, group, state, name, code, zone in window:
        if not sites or sites[-1].pk != site_pk:
            counts = dict.fromkeys(SHIFT_GROUPS, 0)
            sites.append(ShiftSite(pk=site_pk, name=name, code=code, time_zone=zone, counts=counts))
        sites[-1].counts[SHIFT_GROUPS[group]] += 1
        entries.append((pk, group))
        if state in kind:
            actionable[kind[state]].append(pk)
    totals = {group: sum(s.counts[group] for s in sites) for group in SHIFT_GROUPS}
    pages = max(1, -(-len(entries) // size))
    number = min(max(1, page), pages)
    on_page = entries[(number - 1) * size : number * size]
    groups = {pk: SHIFT_GROUPS[group] for pk, group in on_page}
    rows = {
        values[0]: ShiftRow(
            plan=PlanRow(*values[:-3]),
            group=groups[values[0]],
            next_attempt_at=values[-3],
            last_error=values[-2] or "",
            mint_messages=list(values[-1] or []),
        )
        # With no rows, the id 0 (never a plan's) keeps the query, so the page's query count is
        # the same at 0 plans as at N, as the tests and bench/pages.py hold every page to.
        for values in Plan.objects.filter(pk__in=list(groups) or [0])
        .annotate(
            current=FilteredRelation(
                "submissions", condition=Q(submissions__revision=F("revision"))
            )
        )
        .order_by()
        .values_list(
            *PLAN_ROW_COLUMNS,
            "current__next_attempt_at",
            "current__last_error",
            "current__mint_messages",
        )
    }
    shift_rows = [rows[pk] for pk, _ in on_page if pk in rows]
    return ShiftPage(
        now=now,
        hours=hours,
        sites=sites,
        totals=totals,
        rows=shift_rows,
        number=number,
        pages=pages,
        actionable=actionable,
    )
