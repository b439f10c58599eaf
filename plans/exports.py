"""Exports: the plan list's current filter and a plan's history, as CSV and XLSX.

Pure reading, like ``plans.selectors``: rows are read in pages and handed on one at a time, so
an export of 100,000 plans holds one page (``EXPORT_PAGE`` plans) in memory, not the file.

- CSV is produced as the rows come (``csv_chunks``), for a ``StreamingHttpResponse``.
- XLSX is written by openpyxl in write-only mode, which spools each row to a temporary file on
  disk; the finished workbook is itself an anonymous temporary file (``xlsx_file``), streamed
  by a ``FileResponse`` and gone when closed. The workbook is built on disk, not in memory, but
  it is complete before its first byte is sent (a ZIP's directory comes last).

Formula injection (CWE-1236): a spreadsheet takes a cell starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return for a formula, and plan notes, vehicle and site names, MINT's
messages and errors are typed by people or come from outside. Every *text* cell starting with
one of them gets an apostrophe in front (``'=HYPERLINK(…)``), in both formats, by the writers
below, so no column can forget it. Numbers (plan number, revision, km, kWh, HTTP status) and
times are written as numbers and dates and left alone: a negative number stays a number.
"""

import csv
import heapq
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import IO, Any
from zoneinfo import ZoneInfo

from django.db.models import Max, Q
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from plans.models import DeliveryAttempt, Plan, PlanEvent, PlanState, Submission, TargetKind
from plans.selectors import PlanFilters, plan_list

#: Plans read per query: what an export holds in memory at once.
EXPORT_PAGE = 2_000
#: CSV rows joined into one chunk of the response (fewer, larger writes to the socket).
CSV_ROWS_PER_CHUNK = 200

#: What a spreadsheet may take for the start of a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A text cell that could start a formula, with an apostrophe in front; anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_text(instant: datetime | None, zone_name: str) -> str:
    """``2026-03-29 03:30 CEST``: the site's clock with the zone's abbreviation, which tells the
    two 02:30s of an autumn night apart (the IANA name is in a column of its own)."""
    if instant is None:
        return ""
    local = instant.astimezone(_zone(zone_name))
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


# --- the plan list -------------------------------------------------------------------------------

PLAN_HEADER = (
    "Plan",
    "transactionId",
    "Revision",
    "State",
    "Site",
    "MINT location ID",
    "Site time zone",
    "Start (site time)",
    "End (site time)",
    "Start (UTC)",
    "End (UTC)",
    "Vehicle",
    "Target",
    "Expected range (km)",
    "Average consumption (kWh/100 km)",
    "Expected charge (kWh)",
    "Note to MINT",
    "Schedule",
    "Schedule day",
    "Detached from schedule",
    "Warnings",
    "Last messageId",
    "Last message revision",
    "Last message state",
    "Attempts",
    "Last attempt (UTC)",
    "Last attempt outcome",
    "Last HTTP status",
    "MINT's messages",
    "Last error",
    "Created (UTC)",
    "Created by",
    "Last changed (UTC)",
    "Last changed by",
)

_PLAN_VALUES = (
    "pk",
    "transaction_id",
    "revision",
    "state",
    "location__name",
    "location__mint_location_id",
    "location__time_zone",
    "scheduled_start",
    "scheduled_end",
    "vehicle__name",
    "target_kind",
    "expected_range_km",
    "average_consumption",
    "expected_charge_kwh",
    "status_note",
    "schedule_id",
    "occurrence_date",
    "schedule_detached",
    "warnings",
    "created_at",
    "created_by__username",
    "updated_at",
    "updated_by__username",
)

_STATES = dict(PlanState.choices)
_TARGETS = dict(TargetKind.choices)


@dataclass(frozen=True, slots=True)
class _LastDelivery:
    """A plan's newest message and that message's latest attempt, as far as they exist."""

    message_id: str = ""
    revision: int | None = None
    state: str = ""
    attempts: int | None = None
    attempt_at: datetime | None = None
    outcome: str = ""
    http_status: int | None = None
    mint_messages: str = ""
    error: str = ""


def _last_deliveries(plan_ids: list[int]) -> dict[int, _LastDelivery]:
    """For one page of plans, two queries: their messages (with each one's latest attempt id)
    and those attempts."""
    newest: dict[int, tuple] = {}
    submissions = (
        Submission.objects.filter(plan_id__in=plan_ids)
        .order_by("plan_id", "-created_at", "-id")
        .values_list("plan_id", "message_id", "revision", "state", "attempt_count", "mint_messages")
        .annotate(last_attempt=Max("attempts__id"))
    )
    for row in submissions:
        newest.setdefault(row[0], row)
    attempt_ids = [row[-1] for row in newest.values() if row[-1] is not None]
    attempts = {
        pk: rest
        for pk, *rest in DeliveryAttempt.objects.filter(pk__in=attempt_ids).values_list(
            "pk", "started_at", "outcome", "http_status", "mint_messages", "error"
        )
    }
    states = dict(Submission._meta.get_field("state").choices)
    outcomes = dict(DeliveryAttempt.Outcome.choices)
    result = {}
    for plan_id, message_id, revision, state, count, messages, last_attempt in newest.values():
        started, outcome, status, attempt_messages, error = attempts.get(
            last_attempt, (None, "", None, [], "")
        )
        result[plan_id] = _LastDelivery(
            message_id=str(message_id),
            revision=revision,
            state=states.get(state, state),
            attempts=count,
            attempt_at=started,
            outcome=outcomes.get(outcome, outcome),
            http_status=status,
            mint_messages=" ".join(attempt_messages or messages or []),
            error=error,
        )
    return result


def _plan_pages(filters: PlanFilters, size: int) -> Iterator[list[tuple]]:
    """The filtered plans in the list's order, ``size`` at a time, by position in the
    (start, id) index as the list pages (no OFFSET: the last page costs what the first does)."""
    plans = plan_list(filters=filters)
    after: tuple[datetime, int] | None = None
    while True:
        page = plans
        if after is not None:
            start, pk = after
            page = page.filter(
                Q(scheduled_start__gte=start), Q(scheduled_start__gt=start) | Q(pk__gt=pk)
            )
        rows = list(page.values_list(*_PLAN_VALUES)[:size])
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return
        after = (rows[-1][7], rows[-1][0])


def plan_export_rows(*, filters: PlanFilters, page_size: int | None = None) -> Iterator[tuple]:
    """One tuple per plan the list shows for ``filters`` (every page of it), in ``PLAN_HEADER``'s
    order: plain values (text, numbers, aware datetimes, dates) for the writers below.

    Three queries per ``page_size`` plans. The pages are separate reads, not one snapshot: a plan
    moved in time while a long export runs may be missed or appear twice.
    """
    for rows in _plan_pages(filters, page_size or EXPORT_PAGE):
        deliveries = _last_deliveries([row[0] for row in rows])
        for (
            pk,
            transaction_id,
            revision,
            state,
            site,
            site_code,
            zone,
            start,
            end,
            vehicle,
            target,
            range_km,
            consumption,
            charge_kwh,
            note,
            schedule_id,
            occurrence,
            detached,
            warnings,
            created_at,
            created_by,
            updated_at,
            updated_by,
        ) in rows:
            last = deliveries.get(pk, _LastDelivery())
            yield (
                pk,
                str(transaction_id),
                revision,
                _STATES.get(state, state),
                site,
                site_code,
                zone,
                local_text(start, zone),
                local_text(end, zone),
                start,
                end,
                vehicle or "",
                _TARGETS.get(target, target),
                range_km,
                consumption,
                charge_kwh,
                note,
                schedule_id,
                occurrence,
                "yes" if detached else "",
                " ".join(w.get("text", "") for w in warnings or []),
                last.message_id,
                last.revision,
                last.state,
                last.attempts,
                last.attempt_at,
                last.outcome,
                last.http_status,
                last.mint_messages,
                last.error,
                created_at,
                created_by,
                updated_at,
                updated_by,
            )


# --- a plan's history ----------------------------------------------------------------------------

HISTORY_HEADER = (
    "When (site time)",
    "When (UTC)",
    "Entry",
    "Revision",
    "messageId",
    "What",
    "From state",
    "To state",
    "By",
    "HTTP status",
    "Duration (ms)",
    "MINT's messages",
    "Reason or error",
    "Next attempt (UTC)",
    "Request JSON sent",
)


_EVENT_VALUES = ("pk", "at", "action", "from_state", "to_state", "revision", "user_id", "actor")
_ATTEMPT_VALUES = (
    "pk",
    "started_at",
    "submission__revision",
    "submission__message_id",
    "trigger",
    "outcome",
    "worker",
    "http_status",
    "duration_ms",
    "mint_messages",
    "error",
    "next_attempt_at",
    "request_body",
)


def _event_entries(plan: Plan, chunk_size: int) -> Iterator[tuple]:
    actions = dict(PlanEvent.Action.choices)
    rows = (
        PlanEvent.objects.filter(plan=plan)
        .order_by("at", "id")
        .values_list(*_EVENT_VALUES, "reason")
        .iterator(chunk_size=chunk_size)
    )
    for pk, at, action, from_state, to_state, revision, user_id, actor, reason in rows:
        by = actor if user_id else f"{actor} (worker)"
        what = actions.get(action, action)
        was, now = _STATES.get(from_state, from_state), _STATES.get(to_state, to_state)
        values = ("Status change", revision, "", what, was, now, by, None, None, "", reason)
        yield (at, 0, pk), (*values, None, "")


def _attempt_entries(plan: Plan, chunk_size: int) -> Iterator[tuple]:
    triggers = dict(Submission.Trigger.choices)
    outcomes = dict(DeliveryAttempt.Outcome.choices)
    rows = (
        DeliveryAttempt.objects.filter(submission__plan=plan)
        .order_by("started_at", "id")
        .values_list(*_ATTEMPT_VALUES)
        .iterator(chunk_size=chunk_size)
    )
    for row in rows:
        pk, at, revision, message_id, trigger, outcome, worker, *answer = row
        status, duration, messages, error, next_at, body = answer
        what = f"{triggers.get(trigger, trigger)} attempt: {outcomes.get(outcome, outcome)}"
        said = " ".join(messages or [])
        values = ("Delivery attempt", revision, str(message_id), what, "", "", f"{worker} (worker)")
        yield (at, 1, pk), (*values, status, duration, said, error, next_at, body)


def plan_history_rows(*, plan: Plan, chunk_size: int = 500) -> Iterator[tuple]:
    """Every history row and every delivery attempt of ``plan``, oldest first, merged by time,
    in ``HISTORY_HEADER``'s order. Read in chunks: a message retried for a day has hundreds."""
    zone = plan.location.time_zone
    entries = heapq.merge(
        _event_entries(plan, chunk_size),
        _attempt_entries(plan, chunk_size),
        key=lambda entry: entry[0],
    )
    for (at, _, _), values in entries:
        yield (local_text(at, zone), at, *values)


# --- writers -------------------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    if isinstance(value, date):
        return value.isoformat()
    return neutralise(value)


class _Echo:
    """A file that hands back what is written to it: ``csv.writer`` then returns each line."""

    def write(self, text: str) -> str:
        return text


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The CSV text in pieces of ``CSV_ROWS_PER_CHUNK`` rows, starting with a byte-order mark
    (Excel otherwise reads UTF-8 as Windows-1252) and the header. Times in UTC are ISO 8601
    with ``Z``; text cells are neutralised against formulas."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(header)
    lines = []
    for row in rows:
        lines.append(writer.writerow([_csv_value(value) for value in row]))
        if len(lines) >= CSV_ROWS_PER_CHUNK:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def xlsx_file(header: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str) -> IO[bytes]:
    """The rows as an XLSX workbook in an anonymous temporary file, positioned at its start.

    Times in UTC become date cells (Excel has no time zones: the header says UTC); text cells
    are neutralised against formulas and cleared of the control characters XML cannot carry.
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    heading = []
    for text in header:
        cell = WriteOnlyCell(sheet, value=text)
        cell.font = bold
        heading.append(cell)
    sheet.append(heading)

    def cell(value: Any) -> Any:
        # openpyxl gives dates and times a date format of its own (yyyy-mm-dd [h:mm:ss]).
        if isinstance(value, str):
            return neutralise(ILLEGAL_CHARACTERS_RE.sub("", value))
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    for row in rows:
        sheet.append([cell(value) for value in row])
    file = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - handed to the response
    try:
        workbook.save(file)
    except BaseException:
        file.close()
        raise
    file.seek(0)
    return file
