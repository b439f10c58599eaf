"""Bulk entry: a spreadsheet import and copy a day, each previewed first and applied in one
transaction (DESIGN: bulk paths).

The pipeline: read the file (``plans.import_files``) → read each row by the plan's own rules
(site, vehicle, times on the site's clock with the DST rules of ``plans.timezones``, range XOR
charge, the window limits of ``plan_window_errors``) → match rows to saved plans (vehicle, site
and start day on the site's clock, so a corrected file changes plans instead of duplicating
them) → the guards on the whole batch together with the saved plans → an ``ImportBatch`` that
the preview page draws and the confirm applies.

The confirm (``batch_apply``) is all or nothing. It checks again, under locks, what may have
changed since the preview: another dispatcher's edit of a plan the batch changes (the plan
form's edit-conflict rule: ``Plan.content_fingerprint``), a site or vehicle made inactive, a
new plan that now overlaps. Changed plans go through ``plan_update`` and called-off ones
through ``plan_cancel``; new plans are inserted in bulk as ``schedules_materialize`` does, with
the same history rows, counters and (with submit) outbox rows as ``plan_create`` and
``plan_submit`` write one at a time.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property, partial

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from plans import import_files
from plans.import_files import Cell, Sheet
from plans.models import (
    CALLED_OFF_STATES,
    PREVIEW_LIFETIME,
    ImportBatch,
    Location,
    Plan,
    PlanEvent,
    PlanState,
    Submission,
    TargetKind,
    Vehicle,
    plan_window_errors,
    validate_one_line_text,
)
from plans.services.guards import (
    WARNING_CODES,
    PlanCandidate,
    plan_warnings_refresh_around,
    plans_guard,
)
from plans.services.plan import (
    PlanActionError,
    _event,
    _record,
    _submission_new,
    inactive_errors,
    plan_cancel,
    plan_update,
)
from plans.templatetags.plans_extras import target_summary, window_local
from plans.timezones import LocalTimeError, day_text, local_to_utc, utc_to_wall

#: The largest whole number a range or charge cell may hold (as the plan form).
MAX_WHOLE = 1_000_000
#: How many days one copy may fill.
COPY_MAX_DAYS = 31
#: A guard finding's plan field → the import column it is shown in.
_FIELD_COLUMN = {
    "vehicle": "vehicle",
    "location": "site",
    "start_local": "start",
    "expected_range_km": "expected_range_km",
    "expected_charge_kwh": "expected_charge_kwh",
}


class ImportRefused(Exception):
    """The confirm was refused and nothing was saved; the message says why, for the page."""


# Reading rows --------------------------------------------------------------------------------


@dataclass
class _Row:
    """One row as read: its values by the plan's rules, or what is wrong with it."""

    number: int
    raw: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    location: Location | None = None
    vehicle: Vehicle | None = None
    start: datetime | None = None
    end: datetime | None = None
    target_kind: str = ""
    expected_range_km: int | None = None
    average_consumption: Decimal | None = None
    expected_charge_kwh: int | None = None
    status_note: str = ""
    reason: str = ""
    label: str = ""
    plan: Plan | None = None
    diffs: list[str] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)

    @cached_property
    def key(self) -> tuple | None:
        """What a row and a saved plan are matched on: site, vehicle, start day on its clock."""
        if self.location is None or self.start is None:
            return None
        day = utc_to_wall(self.start, self.location.time_zone).date()
        return (self.location.pk, self.vehicle.pk if self.vehicle else None, day)


def _text(cell: Cell) -> str:
    """A cell as the errors file gives it back (and as a person reads it)."""
    if cell is None:
        return ""
    if isinstance(cell, datetime):
        return f"{cell:%Y-%m-%d %H:%M}"
    if isinstance(cell, date | time):
        return cell.isoformat()
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


class _CellError(ValueError):
    pass


def _clean(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


def _date_parts(text: str) -> tuple[str, list[int]] | None:
    """``("iso"|"dot"|"slash", [a, b, year])`` of a date written in one of the accepted ways."""
    for kind, sep in (("dot", "."), ("slash", "/"), ("iso", "-")):
        pieces = text.split(sep)
        if len(pieces) == 3 and all(p.isascii() and p.isdigit() for p in pieces):
            numbers = [int(p) for p in pieces]
            if kind == "iso" and len(pieces[0]) == 4:
                return kind, [numbers[2], numbers[1], numbers[0]]
            if kind != "iso" and len(pieces[2]) == 4:
                return kind, numbers
    return None


#: What a date-and-time cell may hold, said in every message about one.
_DATE_FORMS = "2026-03-14 18:30, 14.03.2026 18:30 or 14/03/2026 18:30"


def slash_order(sheet: Sheet) -> str:
    """How the file writes day and month in ``dd/dd/yyyy`` dates: ``"dm"`` when some date can
    only be day/month (its first number is above 12) and none only month/day, ``"md"`` the
    other way round, ``""`` when the file does not say (then a date such as 03/04/2026, which
    reads both ways, is refused rather than guessed)."""
    seen = set()
    for column in ("start", "end"):
        index = sheet.columns.get(column)
        if index is None:
            continue
        for _, cells in sheet.rows:
            cell = cells[index] if index < len(cells) else None
            if not isinstance(cell, str):
                continue
            parts = _date_parts(_clean(cell).split(" ")[0])
            if parts and parts[0] == "slash":
                a, b, _ = parts[1]
                if a > 12 >= b:
                    seen.add("dm")
                elif b > 12 >= a:
                    seen.add("md")
    return seen.pop() if len(seen) == 1 else ""


def _wall_time(cell: Cell, order: str) -> datetime:
    """A naive wall-clock time from a cell; ``_CellError`` with the reason otherwise."""
    if isinstance(cell, datetime):
        return cell.replace(tzinfo=None, second=0, microsecond=0)
    if isinstance(cell, date | int | float):
        raise _CellError(f"Give a date and a time, like {_DATE_FORMS}.")
    text = _clean(str(cell)).replace("T", " ", 1)
    pieces = text.split(" ")
    parts = _date_parts(pieces[0]) if len(pieces) == 2 else None
    clock = pieces[1].split(":") if parts else []
    if not parts or len(clock) not in (2, 3) or not all(p.isdigit() for p in clock):
        raise _CellError(f"“{text}” is not a date and time; write it like {_DATE_FORMS}.")
    kind, (a, b, year) = parts
    if kind == "slash" and a <= 12 and b <= 12 and a != b:
        if not order:
            raise _CellError(
                f"“{pieces[0]}” could be {a} {date(2000, b, 1):%B} or {b} "
                f"{date(2000, a, 1):%B}; write it as {year}-{b:02d}-{a:02d} or "
                f"{a:02d}.{b:02d}.{year} (day first) so it reads one way."
            )
        if order == "md":
            a, b = b, a
    elif kind == "slash" and b > 12 >= a:
        a, b = b, a
    try:
        return datetime(year, b, a, int(clock[0]), int(clock[1]))
    except ValueError:
        raise _CellError(f"“{text}” is not a real date and time.") from None


def _decimal(cell: Cell) -> Decimal:
    if isinstance(cell, bool):
        raise _CellError("Enter a number.")
    if isinstance(cell, int | float):
        return Decimal(repr(cell)) if isinstance(cell, float) else Decimal(cell)
    text = _clean(str(cell))
    if "," in text and "." in text:
        raise _CellError(f"“{text}”: write the number without a thousands separator.")
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:
        raise _CellError(f"“{text}” is not a number.") from None
    if not value.is_finite():
        raise _CellError(f"“{text}” is not a number.")
    return value


def _whole(cell: Cell, unit: str, what: str) -> int:
    value = _decimal(cell)
    if value != value.to_integral_value():
        raise _CellError(f"Enter a whole number of {unit}.")
    if value < 1:
        raise _CellError(f"The {what} must be above 0 {unit}.")
    if value > MAX_WHOLE:
        raise _CellError(f"That {what} is too large; check the number.")
    return int(value)


def _consumption(cell: Cell) -> Decimal:
    value = _decimal(cell)
    if value <= 0:
        raise _CellError("The consumption must be above 0.")
    if -value.as_tuple().exponent > 2 and value != value.quantize(Decimal("0.01")):
        raise _CellError("Use at most two decimals.")
    value = value.quantize(Decimal("0.01"))
    if value >= 10_000:
        raise _CellError("That consumption is too large; check the number.")
    return value


@dataclass
class _Lookups:
    sites: dict[str, Location]
    vehicles: dict[str, Vehicle]
    now: datetime
    #: Answers already worked out in this preview: a depot's file repeats the same few times
    #: (every bus arrives at 18:30), and reading one costs more than looking it up.
    memo: dict = field(default_factory=dict)

    def once(self, key: tuple, compute):
        """``compute()``, worked out once per ``key``; its ``_CellError`` / ``LocalTimeError``
        raised again (a new one each time) on every later call."""
        try:
            ok, value = self.memo[key]
        except KeyError:
            try:
                ok, value = True, compute()
            except (_CellError, LocalTimeError) as exc:
                ok, value = False, (type(exc), str(exc))
            self.memo[key] = (ok, value)
        if not ok:
            raise value[0](value[1])
        return value

    @classmethod
    def load(cls, now: datetime) -> "_Lookups":
        by_id, by_name = {}, {}
        for site in Location.objects.all():
            by_id[site.mint_location_id.casefold()] = site
            by_name.setdefault(site.name.casefold(), site)
        # A MINT location ID wins over another site's name that reads the same.
        sites = {**by_name, **by_id}
        vehicles = {v.name.casefold(): v for v in Vehicle.objects.all()}
        return cls(sites, vehicles, now)


def _read_row(number: int, cells: list[Cell], sheet: Sheet, order: str, known: _Lookups) -> _Row:
    """One row by the plan's rules; each problem named with its column as the file heads it."""
    row = _Row(number=number)

    def cell(column: str) -> Cell:
        index = sheet.columns.get(column)
        value = cells[index] if index is not None and index < len(cells) else None
        return None if isinstance(value, str) and not value.strip() else value

    def fail(column: str, text: str) -> None:
        row.errors.append((column, text))

    def read(column: str, reader):
        value = cell(column)
        if (number, column) in sheet.formulas_without_value:
            fail(
                column,
                "This cell is a formula with no saved value. The import uses the values Excel "
                "saved with the file: open the file in Excel and save it, or type the value.",
            )
            return None
        if value is None:
            return None
        try:
            return reader(value)
        except _CellError as exc:
            fail(column, str(exc))
            return None

    site_text = read("site", _text)
    if site_text is None:
        fail("site", "Give the site: its MINT location ID or its name.")
    else:
        row.location = known.sites.get(site_text.casefold())
        if row.location is None:
            fail("site", f"There is no site with the MINT location ID or name “{site_text}”.")
    vehicle_text = read("vehicle", _text)
    if vehicle_text:
        row.vehicle = known.vehicles.get(vehicle_text.casefold())
        if row.vehicle is None:
            fail("vehicle", f"There is no vehicle named “{vehicle_text}”.")
    for column, message in inactive_errors(location=row.location, vehicle=row.vehicle).items():
        fail("site" if column == "location" else column, message[0])

    walls = {}
    for column in ("start", "end"):
        wall = read(
            column,
            lambda value: known.once(("wall", value, order), lambda: _wall_time(value, order)),
        )
        if wall is None:
            if not any(c == column for c, _ in row.errors):
                when = "arrives" if column == "start" else "leaves"
                fail(column, f"Give when the vehicle {when}, like {_DATE_FORMS}.")
            continue
        if abs(wall.year - known.now.year) > 1:
            fail(column, f"Check the year: {wall.year:04d} is too far from today.")
            continue
        walls[column] = wall
        if row.location is not None:
            try:
                zone = row.location.time_zone
                instant = known.once(("utc", wall, zone), partial(local_to_utc, wall, zone))
            except LocalTimeError as exc:
                fail(column, str(exc))
                continue
            setattr(row, column, instant)
    if row.start and row.end:
        if row.end <= row.start:
            fail("end", "The end must be after the start.")
        else:
            zone = row.location.time_zone
            problems = known.once(
                ("window", row.start, row.end, zone),
                lambda: plan_window_errors(row.start, row.end, zone=zone, now=known.now),
            )
            for name, text in problems.items():
                fail("start" if name == "scheduled_start" else "end", text)

    range_km = read("expected_range_km", lambda v: _whole(v, "km", "range"))
    consumption = read("average_consumption", _consumption)
    charge = read("expected_charge_kwh", lambda v: _whole(v, "kWh", "charge"))
    typed = {c for c in ("expected_range_km", "expected_charge_kwh") if cell(c) is not None}
    if typed == {"expected_range_km", "expected_charge_kwh"}:
        fail("expected_charge_kwh", "Give either a range or a charge, not both.")
    elif not typed and not any(c.startswith("expected") for c, _ in row.errors):
        fail("expected_range_km", "Give an expected range in km or an expected charge in kWh.")
    elif typed == {"expected_charge_kwh"} and cell("average_consumption") is not None:
        fail("average_consumption", "Average consumption goes only with a range.")
    row.target_kind = TargetKind.CHARGE if typed == {"expected_charge_kwh"} else TargetKind.RANGE
    row.expected_range_km, row.average_consumption = range_km, consumption
    row.expected_charge_kwh = charge
    if row.target_kind == TargetKind.CHARGE:
        row.expected_range_km = row.average_consumption = None

    note = read("note", _text) or ""
    if len(note) > 200:
        fail("note", f"The note has {len(note)} characters; at most 200 are sent to MINT.")
    else:
        try:
            validate_one_line_text(note)
        except ValidationError as exc:
            fail("note", exc.messages[0])
    row.status_note = note
    if row.errors:
        # Kept to give the row back in the errors file, as it was written.
        row.raw = [_text(c) for c in cells]
    return row


# Matching, guards, the preview ---------------------------------------------------------------


def _values(row: _Row) -> dict:
    return {
        "location": row.location.pk,
        "vehicle": row.vehicle.pk if row.vehicle else None,
        "start": row.start.isoformat(),
        "end": row.end.isoformat(),
        "target_kind": row.target_kind,
        "expected_range_km": row.expected_range_km,
        "average_consumption": (
            str(row.average_consumption) if row.average_consumption is not None else None
        ),
        "expected_charge_kwh": row.expected_charge_kwh,
        "status_note": row.status_note,
    }


def _wall(instant: datetime, zone: str) -> str:
    wall = utc_to_wall(instant, zone)
    return f"{day_text(wall)} {wall:%H:%M}"


def _diffs(plan: Plan, row: _Row) -> list[str]:
    """What the row changes in the plan, in words, on the site's clock."""
    zone = row.location.time_zone
    diffs = []
    for name, old, new in (
        ("start", plan.scheduled_start, row.start),
        ("end", plan.scheduled_end, row.end),
    ):
        if old != new:
            diffs.append(f"{name} {_wall(old, zone)} → {_wall(new, zone)}")
    before, after = target_summary(plan), target_summary(row)
    if before != after or plan.average_consumption != row.average_consumption:
        diffs.append(f"target {before} → {after}")
    if plan.status_note != row.status_note:
        diffs.append(f"note “{plan.status_note}” → “{row.status_note}”")
    return diffs


def _saved_plans(rows: list[_Row]) -> list[Plan]:
    """The live plans at the rows' sites around their days: one query for matching and for the
    plans a complete file calls off."""
    keyed = [r for r in rows if r.key]
    if not keyed:
        return []
    low = min(r.start for r in keyed) - timedelta(days=2)
    high = max(r.start for r in keyed) + timedelta(days=2)
    return list(
        Plan.objects.exclude(state__in=CALLED_OFF_STATES)
        .filter(
            location_id__in={r.location.pk for r in keyed},
            scheduled_start__gt=low,
            scheduled_start__lt=high,
        )
        .select_related("location", "vehicle", "updated_by")
        .order_by("scheduled_start", "pk")
    )


def _plan_key(plan: Plan) -> tuple:
    day = utc_to_wall(plan.scheduled_start, plan.location.time_zone).date()
    return (plan.location_id, plan.vehicle_id, day)


def _match(rows: list[_Row], saved: list[Plan]) -> list[Plan]:
    """Pair rows with saved plans of the same site, vehicle and start day, in start order (two
    stays of one bus at one depot on one day pair first with first). Returns the saved plans
    no row matched on the days the rows cover."""
    by_key: dict[tuple, list[Plan]] = defaultdict(list)
    for plan in saved:
        by_key[_plan_key(plan)].append(plan)
    rows_by_key: dict[tuple, list[_Row]] = defaultdict(list)
    for row in rows:
        if row.key:
            rows_by_key[row.key].append(row)
    for key, group in rows_by_key.items():
        group.sort(key=lambda r: (r.start, r.number))
        for row, plan in zip(group, by_key.get(key, []), strict=False):
            row.plan = plan
    matched = {row.plan.pk for row in rows if row.plan}
    days = {(key[0], key[2]) for key in rows_by_key}
    return [p for p in saved if p.pk not in matched and (p.location_id, _plan_key(p)[2]) in days]


def _candidate(row: _Row) -> PlanCandidate:
    return PlanCandidate(
        location=row.location,
        vehicle=row.vehicle,
        start=row.start,
        end=row.end,
        target_kind=row.target_kind,
        expected_range_km=row.expected_range_km,
        average_consumption=row.average_consumption,
        expected_charge_kwh=row.expected_charge_kwh,
        pk=row.plan.pk if row.plan else None,
        label=row.label,
    )


def _outcomes(rows: list[_Row], *, called_off: set[int]) -> None:
    """Decide each row's outcome and run the guards on every row to be saved, as one batch."""
    to_save = []
    for row in rows:
        if row.errors:
            continue
        if row.plan is not None:
            row.diffs = _diffs(row.plan, row)
            if not row.diffs:
                continue
            if row.plan.state == PlanState.SENDING:
                row.errors.append(
                    (
                        "",
                        f"Plan {row.plan.pk} is being sent to MINT right now; upload the file "
                        f"again in a moment.",
                    )
                )
                continue
        to_save.append(row)
    reports = plans_guard(candidates=[_candidate(r) for r in to_save], called_off=called_off)
    for row, report in zip(to_save, reports, strict=True):
        for finding in report.errors:
            row.errors.append((_FIELD_COLUMN.get(finding.field, ""), finding.text))
        row.warnings = report.stored_warnings()


def _outcome(row: _Row) -> str:
    if row.errors:
        return "error"
    if row.plan is None:
        return "new"
    return "change" if row.diffs else "unchanged"


def _preview_row(row: _Row, headers: dict[str, str], known: _Lookups) -> dict:
    """A row as the preview page draws it and the confirm applies it (JSON)."""
    site, vehicle = row.location, row.vehicle
    window = ""
    if row.start and row.end and row.end > row.start:
        key = ("shown", row.start, row.end, site.time_zone)
        window = known.once(key, lambda: window_local(row.start, row.end, site.time_zone))
    return {
        "row": row.number,
        "label": row.label,
        "outcome": _outcome(row),
        "site": site.name if site else "",
        "vehicle": vehicle.name if vehicle else "",
        "window": window,
        "target": target_summary(row) if not row.errors else "",
        "note": row.status_note,
        "plan": row.plan.pk if row.plan else None,
        "fingerprint": row.plan.content_fingerprint if row.plan else "",
        "diffs": row.diffs,
        "errors": [{"column": headers.get(c, c), "text": t} for c, t in row.errors],
        "warnings": row.warnings,
        "values": None if row.errors else _values(row),
        "raw": row.raw if row.errors else [],
        "reason": row.reason,
    }


def _cancel_entry(plan: Plan) -> dict:
    return {
        "plan": plan.pk,
        "fingerprint": plan.content_fingerprint,
        "state": plan.get_state_display(),
        "site": plan.location.name,
        "vehicle": plan.vehicle.name if plan.vehicle else "",
        "window": window_local(plan.scheduled_start, plan.scheduled_end, plan.location.time_zone),
        "target": target_summary(plan),
        "sending": plan.state == PlanState.SENDING,
    }


def _save_batch(**values) -> ImportBatch:
    now = timezone.now()
    # A dispatcher's previews that can no longer be confirmed go when they make a new one.
    ImportBatch.objects.filter(owner=values["owner"], expires_at__lt=now).delete()
    return ImportBatch.objects.create(created_at=now, expires_at=now + PREVIEW_LIFETIME, **values)


def import_preview(
    *,
    user: AbstractBaseUser,
    file_name: str,
    data: bytes,
    complete: bool = False,
    now: datetime | None = None,
) -> ImportBatch:
    """Read a file and work out what importing it would do; nothing but the preview is saved.

    Raises ``ImportFileError`` when the file as a whole cannot be read.
    """
    now = now or timezone.now()
    sheet = import_files.sheet_read(name=file_name, data=data)
    known = _Lookups.load(now)
    order = slash_order(sheet)
    rows = []
    for number, cells in sheet.rows:
        row = _read_row(number, cells, sheet, order, known)
        row.reason = f"Imported from {file_name}, row {number}."
        row.label = f"row {number} of this file"
        rows.append(row)
    saved = _saved_plans(rows)
    unmatched = _match(rows, saved)
    cancels = unmatched if complete else []
    _outcomes(rows, called_off={p.pk for p in cancels})
    headers = {column: sheet.headers[index] for column, index in sheet.columns.items()}
    return _save_batch(
        kind=ImportBatch.Kind.IMPORT,
        owner=user,
        source_name=file_name[:255],
        file_format=sheet.file_format,
        options={
            "complete": complete,
            "headers": sheet.headers,
            "delimiter": sheet.delimiter,
            "encoding": sheet.encoding,
            "ignored": sheet.ignored,
            "formulas_used": sheet.formulas_used,
            "slash_order": order,
        },
        rows=[_preview_row(row, headers, known) for row in rows],
        cancels=[_cancel_entry(p) for p in cancels],
    )


def copy_day_preview(
    *,
    user: AbstractBaseUser,
    site: Location | None,
    day: date,
    first: date,
    last: date,
    now: datetime | None = None,
) -> ImportBatch:
    """What copying every live plan of ``day`` (on each site's clock) at ``site`` (or every
    site) to each day from ``first`` to ``last`` would make: new plans with the same vehicles,
    targets and notes at the same wall-clock times, across a clock change too.

    Raises ``ValidationError`` when there is nothing to copy.
    """
    now = now or timezone.now()
    # Every zone's day lies within a day either side of the same UTC day.
    plans = Plan.objects.exclude(state__in=CALLED_OFF_STATES).filter(
        scheduled_start__gte=datetime.combine(day - timedelta(days=1), time(), tzinfo=UTC),
        scheduled_start__lt=datetime.combine(day + timedelta(days=2), time(), tzinfo=UTC),
    )
    if site is not None:
        plans = plans.filter(location=site)
    plans = [
        p
        for p in plans.select_related("location", "vehicle").order_by("scheduled_start", "pk")
        if utc_to_wall(p.scheduled_start, p.location.time_zone).date() == day
    ]
    where = site.name if site else "any site"
    if not plans:
        raise ValidationError(
            {"day": [f"There are no plans on {day_text(day, year=True)} at {where} to copy."]}
        )
    known = _Lookups({}, {}, now)
    rows = []
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    for target in days:
        shift = target - day
        for plan in plans:
            rows.append(_copy_row(plan, target, shift, len(rows) + 1, known))
    _outcomes(rows, called_off=set())
    span = day_text(first, year=True)
    if last != first:
        span += f" – {day_text(last, year=True)}"
    headers = import_files.TEMPLATE_HEADERS
    return _save_batch(
        kind=ImportBatch.Kind.COPY,
        owner=user,
        source_name=f"{where}, {day_text(day, year=True)} → {span}"[:255],
        options={"day": day.isoformat(), "first": first.isoformat(), "last": last.isoformat()},
        rows=[_preview_row(row, headers, known) for row in rows],
    )


def _copy_row(plan: Plan, target: date, shift: timedelta, number: int, known: _Lookups) -> _Row:
    zone = plan.location.time_zone
    row = _Row(
        number=number,
        location=plan.location,
        vehicle=plan.vehicle,
        target_kind=plan.target_kind,
        expected_range_km=plan.expected_range_km,
        average_consumption=plan.average_consumption,
        expected_charge_kwh=plan.expected_charge_kwh,
        status_note=plan.status_note,
        reason=f"Copied from plan {plan.pk}.",
        label=f"the copy of plan {plan.pk} to {day_text(target)}",
    )
    for column, instant in (("start", plan.scheduled_start), ("end", plan.scheduled_end)):
        # The same wall-clock time on the new day: 18:30 stays 18:30 across a clock change.
        try:
            setattr(row, column, local_to_utc(utc_to_wall(instant, zone) + shift, zone))
        except LocalTimeError as exc:
            row.errors.append((column, f"Copy of plan {plan.pk}: {exc}"))
    for column, messages in inactive_errors(location=row.location, vehicle=row.vehicle).items():
        row.errors.append(("site" if column == "location" else column, messages[0]))
    if row.start and row.end:
        for name, text in plan_window_errors(row.start, row.end, zone=zone, now=known.now).items():
            row.errors.append(("start" if name == "scheduled_start" else "end", text))
    return row


# The errors file -----------------------------------------------------------------------------


def batch_errors_file(*, batch: ImportBatch) -> tuple[bytes, str, str]:
    """The rows with errors as a file in the format uploaded (content, type, name), the reason
    in a last column ``problem`` that a re-upload ignores."""
    headers = [*batch.options.get("headers", []), "problem"]
    width = len(headers) - 1
    rows = []
    for row in batch.rows:
        if row["outcome"] != "error":
            continue
        cells = (row["raw"] + [""] * width)[:width]
        problem = "; ".join(
            f"{e['column']}: {e['text']}" if e["column"] else e["text"] for e in row["errors"]
        )
        rows.append([*cells, f"row {row['row']}: {problem}"])
    stem = batch.source_name.rsplit(".", 1)[0] or "import"
    if batch.file_format == "xlsx":
        return (
            import_files.rows_xlsx(headers, rows),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            f"{stem}-errors.xlsx",
        )
    return (
        import_files.rows_csv(headers, rows, delimiter=batch.options.get("delimiter", ",")),
        "text/csv; charset=utf-8",
        f"{stem}-errors.csv",
    )


# Confirm -------------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    created: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    submitted: int = 0


def _refuse_rows(rows: list[tuple[dict, str]], what: str) -> ImportRefused:
    shown = "; ".join(
        f"{row['label'] or 'row ' + str(row['row'])}: {text}" for row, text in rows[:5]
    )
    more = f" (and {len(rows) - 5} more)" if len(rows) > 5 else ""
    return ImportRefused(f"Nothing was saved: {what} {shown}{more}.")


@transaction.atomic
def batch_apply(
    *,
    batch: ImportBatch,
    user: AbstractBaseUser,
    accept_warnings: bool = False,
    submit: bool = False,
    now: datetime | None = None,
) -> ApplyResult:
    """Apply a previewed batch, all or nothing. Raises ``ImportRefused`` (nothing saved) when a
    row has an error, a warning was not accepted, the preview expired or was applied already,
    or the plans changed since the preview in a way that changes its outcome."""
    now = now or timezone.now()
    # Locked: a double-clicked confirm applies the batch once.
    batch = ImportBatch.objects.select_for_update().get(pk=batch.pk, owner=user)
    if batch.applied_at is not None:
        raise ImportRefused(
            f"This preview was already confirmed at {batch.applied_at:%H:%M} UTC; nothing more "
            f"was saved."
        )
    if batch.expires_at <= now:
        raise ImportRefused(
            "This preview has expired (previews are kept for an hour, so that they are checked "
            "against today's plans). Nothing was saved; upload the file again."
        )
    failing = [r for r in batch.rows if r["outcome"] == "error"]
    if failing:
        noun = "row has" if len(failing) == 1 else "rows have"
        raise ImportRefused(
            f"Nothing was saved: {len(failing)} {noun} errors. Fix them (download the rows with "
            f"errors) and upload the file again."
        )
    rows = [r for r in batch.rows if r["outcome"] in ("new", "change")]
    if not rows and not batch.cancels:
        raise ImportRefused("Nothing to save: every row matches its plan already.")
    sites = Location.objects.in_bulk({r["values"]["location"] for r in rows})
    vehicle_ids = sorted({r["values"]["vehicle"] for r in rows if r["values"]["vehicle"]})
    # The lock a typed plan takes (plan_create): a plan saved meanwhile for one of these
    # vehicles waits for this batch, so neither misses the other's window.
    vehicles = {
        v.pk: v
        for v in Vehicle.objects.select_for_update().filter(pk__in=vehicle_ids).order_by("pk")
    }
    _check_unchanged(batch, rows)
    result = ApplyResult()
    for entry in batch.cancels:
        try:
            plan = plan_cancel(
                plan=Plan(pk=entry["plan"]),
                user=user,
                reason=f"Not in {batch.source_name}, imported as the complete plan of its sites "
                f"and days",
            )
        except PlanActionError as exc:
            raise ImportRefused(f"Nothing was saved: plan {entry['plan']}: {exc}") from None
        result.cancelled.append(plan.pk)
    items = [(row, _row_from_values(row, sites, vehicles)) for row in rows]
    problems = []
    for row, item in items:
        for text in _still_valid(item, now):
            problems.append((row, text))
    if problems:
        raise _refuse_rows(problems, "some rows no longer pass the plan's rules:")
    reports = plans_guard(candidates=[_candidate(item) for _, item in items])
    errors = [
        (row, report.errors[0].text)
        for (row, _), report in zip(items, reports, strict=True)
        if report.errors
    ]
    if errors:
        raise _refuse_rows(errors, "the plans changed since the preview, and now")
    warned = [
        (row, report.warnings[0].text)
        for (row, _), report in zip(items, reports, strict=True)
        if report.warnings
    ]
    if warned and not accept_warnings:
        if any(row["warnings"] for row in rows):
            what = "the guards warn about some rows; tick “Save anyway” to save them. Warnings:"
        else:
            what = (
                "since your preview, the guards warn about some rows; preview again to see "
                "them all. Warnings:"
            )
        raise _refuse_rows(warned, what)
    changed_items = [(row, item) for row, item in items if item.plan is not None]
    new_items = [
        (item, report)
        for (row, item), report in zip(items, reports, strict=True)
        if item.plan is None
    ]
    touched = _apply_changes(changed_items, user)
    result.changed = [p.pk for p in touched]
    made = _create_all(new_items, user, now)
    result.created = [p.pk for p in made]
    if submit:
        result.submitted = _submit_all([*touched, *made], user)
    batch.applied_at = now
    batch.result = {
        "created": result.created,
        "changed": result.changed,
        "cancelled": result.cancelled,
        "submitted": result.submitted,
    }
    batch.save(update_fields=["applied_at", "result"])
    return result


def _check_unchanged(batch: ImportBatch, rows: list[dict]) -> None:
    """The edit-conflict rule of the plan form, for every plan the batch changes or calls off:
    a plan someone changed (or called off) since the preview refuses the whole batch."""
    seen = {r["plan"]: r["fingerprint"] for r in rows if r["plan"]}
    seen.update({c["plan"]: c["fingerprint"] for c in batch.cancels})
    if not seen:
        return
    current = {
        p.pk: p
        for p in Plan.objects.select_for_update(of=("self",))
        .select_related("updated_by")
        .filter(pk__in=seen)
        .order_by("pk")
    }
    moved = []
    for pk, fingerprint in sorted(seen.items()):
        plan = current.get(pk)
        if plan is None:
            moved.append(f"plan {pk} was deleted")
        elif plan.state in CALLED_OFF_STATES:
            moved.append(f"plan {pk} was {plan.get_state_display().lower()}")
        elif plan.content_fingerprint != fingerprint:
            moved.append(f"{plan.updated_by.get_username()} changed plan {pk}")
    if moved:
        raise ImportRefused(
            f"Nothing was saved: since your preview, {', '.join(moved)}. Upload the file again "
            f"to see the plans as they are now."
        )


def _row_from_values(row: dict, sites: dict, vehicles: dict) -> _Row:
    values = row["values"]
    consumption = values["average_consumption"]
    return _Row(
        number=row["row"],
        location=sites[values["location"]],
        vehicle=vehicles.get(values["vehicle"]) if values["vehicle"] else None,
        start=datetime.fromisoformat(values["start"]),
        end=datetime.fromisoformat(values["end"]),
        target_kind=values["target_kind"],
        expected_range_km=values["expected_range_km"],
        average_consumption=Decimal(consumption) if consumption is not None else None,
        expected_charge_kwh=values["expected_charge_kwh"],
        status_note=values["status_note"],
        reason=row["reason"],
        label=row["label"] or f"row {row['row']}",
        plan=Plan(pk=row["plan"]) if row["plan"] else None,
    )


def _still_valid(item: _Row, now: datetime) -> list[str]:
    """The plan's own rules again, as they stand now (a site made inactive, a window that
    ended since the preview); the rest of a row cannot change once read."""
    texts = [m[0] for m in inactive_errors(location=item.location, vehicle=item.vehicle).values()]
    texts += plan_window_errors(
        item.start, item.end, zone=item.location.time_zone, now=now
    ).values()
    return texts


def _apply_changes(items: list[tuple[dict, _Row]], user: AbstractBaseUser) -> list[Plan]:
    """Edit the matched plans through ``plan_update``, in an order in which no edit meets the
    old window of another (the batch as a whole passed the guards): plans that move later from
    the last one back, then the rest from the first one on."""
    if not items:
        return []
    saved = Plan.objects.in_bulk([item.plan.pk for _, item in items])
    later = [i for i in items if i[1].start > saved[i[1].plan.pk].scheduled_start]
    rest = [i for i in items if i[1].start <= saved[i[1].plan.pk].scheduled_start]
    later.sort(key=lambda i: saved[i[1].plan.pk].scheduled_start, reverse=True)
    rest.sort(key=lambda i: saved[i[1].plan.pk].scheduled_start)
    plans = []
    for row, item in later + rest:
        try:
            plan = plan_update(
                plan=item.plan,
                user=user,
                accept_warnings=WARNING_CODES,
                reason=item.reason,
                location=item.location,
                vehicle=item.vehicle,
                scheduled_start=item.start,
                scheduled_end=item.end,
                target_kind=item.target_kind,
                expected_range_km=item.expected_range_km,
                average_consumption=item.average_consumption,
                expected_charge_kwh=item.expected_charge_kwh,
                status_note=item.status_note,
            )
        except (PlanActionError, ValidationError) as exc:
            text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            raise _refuse_rows([(row, text)], "a plan could not take its row:") from None
        plans.append(plan)
    return plans


def _create_all(
    items: list[tuple[_Row, object]], user: AbstractBaseUser, now: datetime
) -> list[Plan]:
    """Insert the new plans in bulk with their history rows, as ``plan_create`` would one by
    one: a draft, the guards' warnings stored, a *created* row saying where it came from."""
    if not items:
        return []
    plans = [
        Plan(
            location=item.location,
            vehicle=item.vehicle,
            scheduled_start=item.start,
            scheduled_end=item.end,
            target_kind=item.target_kind,
            expected_range_km=item.expected_range_km,
            average_consumption=item.average_consumption,
            expected_charge_kwh=item.expected_charge_kwh,
            status_note=item.status_note,
            warnings=report.stored_warnings(),
            created_by=user,
            updated_by=user,
        )
        for item, report in items
    ]
    made_at = timezone.now()
    Plan.objects.bulk_create(plans)
    _record(
        *(
            _event(
                plan=plan,
                action=PlanEvent.Action.CREATED,
                from_state="",
                to_state=PlanState.DRAFT,
                user=user,
                reason=item.reason,
                at=now,
            )
            for plan, (item, _) in zip(plans, items, strict=True)
        )
    )
    plan_warnings_refresh_around(plans=plans, made_at=made_at)
    return plans


def _submit_all(plans: list[Plan], user: AbstractBaseUser) -> int:
    """Queue every draft as ``plan_submit`` does for one: an outbox row with a new messageId
    and the body frozen now, the plan queued, a *submitted* history row; in bulk."""
    now = timezone.now()
    # A row whose edit changed nothing after all left its plan as it was, message and all.
    plans = [p for p in plans if p.state == PlanState.DRAFT]
    submissions, events = [], []
    for plan in plans:
        submission, event = _submission_new(plan=plan, user=user, now=now)
        submissions.append(submission)
        events.append(event)
        plan.state = PlanState.QUEUED
    Submission.objects.bulk_create(submissions)
    Plan.objects.filter(pk__in=[p.pk for p in plans]).update(
        state=PlanState.QUEUED, updated_by=user, updated_at=now
    )
    _record(*events)
    return len(plans)
