"""Import and copy a day: real CSV and XLSX files made here, previewed, confirmed or refused.

Issue 11: "every accepted format; every error class with its message and row number; re-upload
updates instead of duplicating; complete-plan mode lists the cancellations; confirm is
all-or-nothing (a failure in row 59 of 60 leaves nothing); guards apply to imported rows;
copy-a-day across a DST change keeps local times".
"""

import csv
import io
import json
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import Workbook, load_workbook

from plans import import_files, services
from plans.import_files import ImportFileError
from plans.models import ImportBatch, Plan, PlanEvent, PlanState, Submission
from plans.services.imports import (
    ImportRefused,
    batch_apply,
    batch_errors_file,
    copy_day_preview,
    import_preview,
)
from tests.factories import make_location, make_vehicle

pytestmark = pytest.mark.usefixtures("counts_stay_true")

HEADER = [
    "site",
    "vehicle",
    "start",
    "end",
    "expected range km",
    "average consumption",
    "expected charge kWh",
    "note",
]
BRUSSELS = ZoneInfo("Europe/Brussels")


@pytest.fixture
def fleet(db):
    site = make_location()
    return {
        "site": site,
        "bus12": make_vehicle("bus 12", location=site),
        "bus14": make_vehicle("bus 14", location=site),
        "bus16": make_vehicle("bus 16", location=site),
    }


def plan_day(days: int = 3) -> date:
    return (timezone.now().astimezone(BRUSSELS) + timedelta(days=days)).date()


def next_clock_change(month: int, *, at_least_days: int = 4) -> date:
    """The next last Sunday of March (clocks forward) or October (back) in Brussels, at least
    ``at_least_days`` away, so plans around it are in the future and within a year."""
    today = timezone.now().astimezone(BRUSSELS).date()
    for year in (today.year, today.year + 1):
        last = date(year, month, 31)
        change = last - timedelta(days=(last.weekday() + 1) % 7)
        if change >= today + timedelta(days=at_least_days):
            return change
    raise AssertionError("unreachable")


def ambiguous_day() -> date:
    """A coming day whose day and month are both 12 or less and differ (03/04 reads both ways)."""
    day = plan_day(2)
    while not (day.day <= 12 and day.day != day.month):
        day += timedelta(days=1)
    return day


def when(day: date, hhmm: str, style: str = "iso") -> str:
    hour, minute = hhmm.split(":")
    if style == "dot":
        return f"{day:%d.%m.%Y} {hhmm}"
    if style == "slash":
        return f"{day:%d/%m/%Y} {hhmm}"
    return f"{day:%Y-%m-%d} {hour}:{minute}"


def rows_for(day: date, n: int = 2, style: str = "iso", decimal: str = ".") -> list[list[str]]:
    """n plans for n buses (``bus 1`` …) or the three of the fixture when n ≤ 3."""
    buses = ["bus 12", "bus 14", "bus 16"]
    rows = []
    for i in range(n):
        rows.append(
            [
                "BE-BRU-01",
                buses[i] if n <= 3 else f"bus {100 + i}",
                when(day, f"{8 + i % 10:02d}:00", style),
                when(day, f"{9 + i % 10:02d}:30", style),
                "120",
                f"18{decimal}5",
                "",
                f"row {i}",
            ]
        )
    return rows


def csv_file(
    rows, *, header=HEADER, delimiter: str = ",", encoding: str = "utf-8", bom=False
) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding)
    return b"\xef\xbb\xbf" + data if bom else data


def xlsx_file(rows, *, header=HEADER, title: str = "Plans") -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def preview(user, data: bytes, name: str = "day.csv", **kwargs) -> ImportBatch:
    return import_preview(user=user, file_name=name, data=data, **kwargs)


def outcomes(batch: ImportBatch) -> list[str]:
    return [r["outcome"] for r in batch.rows]


def errors(batch: ImportBatch) -> list[tuple[int, str, str]]:
    return [(r["row"], e["column"], e["text"]) for r in batch.rows for e in r["errors"]]


# Accepted formats ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "bom", "delimiter", "decimal", "style"),
    [
        ("utf-8", False, ",", ".", "iso"),
        ("utf-8", True, ";", ",", "dot"),
        ("cp1252", False, ";", ",", "dot"),
        ("utf-8", True, ",", ".", "slash"),
        ("cp1252", False, "\t", ".", "iso"),
    ],
)
def test_it_reads_csv_in_each_encoding_delimiter_decimal_and_date_form(
    dispatcher, fleet, encoding, bom, delimiter, decimal, style
):
    day = plan_day()
    if style == "slash":
        # Day first, and a day above 12 so the file reads one way (see the next tests).
        while day.day <= 12:
            day += timedelta(days=1)
    rows = rows_for(day, 2, style=style, decimal=decimal)
    rows[0][7] = "Café Müller – Einfahrt"
    data = csv_file(rows, delimiter=delimiter, encoding=encoding, bom=bom)
    batch = preview(dispatcher, data)
    first = batch.rows[0]
    assert first["outcome"] == "new", errors(batch)
    assert first["note"] == "Café Müller – Einfahrt"
    assert first["values"]["average_consumption"] == "18.50"
    start = datetime.fromisoformat(first["values"]["start"])
    assert start.astimezone(BRUSSELS).replace(tzinfo=None) == datetime.combine(
        day, datetime.min.time()
    ).replace(hour=8)
    assert batch.options["delimiter"] == delimiter


def test_it_reads_an_ambiguous_slash_date_when_the_file_settles_the_order(dispatcher, fleet):
    day = ambiguous_day()
    settling = day
    while settling.day <= 12:
        settling += timedelta(days=1)
    rows = [
        ["BE-BRU-01", "bus 12", when(day, "08:00", "slash"), when(day, "10:00", "slash"), "100"],
        [
            "BE-BRU-01",
            "bus 14",
            when(settling, "08:00", "slash"),
            when(settling, "10:00", "slash"),
            "100",
        ],
    ]
    batch = preview(dispatcher, csv_file(rows, header=HEADER[:5]))
    assert outcomes(batch) == ["new", "new"], errors(batch)
    start = datetime.fromisoformat(batch.rows[0]["values"]["start"]).astimezone(BRUSSELS)
    assert start.date() == day
    assert batch.options["slash_order"] == "dm"


def test_it_refuses_a_day_month_date_that_reads_both_ways(dispatcher, fleet):
    day = ambiguous_day()
    rows = [["BE-BRU-01", "bus 12", when(day, "08:00", "slash"), when(day, "10:00"), "100"]]
    batch = preview(dispatcher, csv_file(rows, header=HEADER[:5]))
    assert errors(batch)[0][:2] == (2, "start")
    assert (
        f"could be {day.day} {day:%B} or {day.month} {date(2000, day.day, 1):%B}"
        in errors(batch)[0][2]
    )


def test_it_reads_xlsx_date_cells_numbers_and_ignores_empty_rows_and_extra_columns(
    dispatcher, fleet
):
    day = plan_day()
    start = datetime.combine(day, datetime.min.time()).replace(hour=18, minute=30)
    rows = [
        ["BE-BRU-01", "bus 12", start, start + timedelta(hours=11), 240, 18.5, None, "x", "extra"],
        [None, None, None, None, None, None, None, None, "a remark beside the table"],
        [],
        ["Brussels Depot", "BUS 14", start, start + timedelta(hours=2), None, None, 60, None],
    ]
    batch = preview(dispatcher, xlsx_file(rows, header=[*HEADER, "my column"]), name="d.xlsx")
    assert outcomes(batch) == ["new", "new"]
    assert [r["row"] for r in batch.rows] == [2, 5]
    assert batch.rows[0]["values"]["expected_range_km"] == 240
    assert batch.rows[0]["values"]["average_consumption"] == "18.50"
    assert batch.rows[1]["values"]["expected_charge_kwh"] == 60
    assert batch.rows[1]["vehicle"] == "bus 14"
    assert batch.options["ignored"] == ["my column"]


def _with_cached_value(data: bytes, formula: str, value: str) -> bytes:
    """The workbook with a saved value for ``formula``, as Excel writes one."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.namelist():
            content = source.read(item)
            if item == "xl/worksheets/sheet1.xml":
                content = content.replace(
                    f"<f>{formula}</f><v />".encode(), f"<f>{formula}</f><v>{value}</v>".encode()
                )
            target.writestr(item, content)
    return out.getvalue()


def test_it_uses_a_formulas_saved_value_and_refuses_one_without(dispatcher, fleet):
    day = plan_day()
    start = datetime.combine(day, datetime.min.time()).replace(hour=8)
    rows = [
        ["BE-BRU-01", "bus 12", start, start + timedelta(hours=2), "=100+140", None, None],
        ["BE-BRU-01", "bus 14", start, start + timedelta(hours=2), "=100+20", None, None],
    ]
    data = _with_cached_value(xlsx_file(rows), "100+140", "240")
    batch = preview(dispatcher, data, name="f.xlsx")
    assert batch.rows[0]["values"]["expected_range_km"] == 240
    assert batch.options["formulas_used"] == 1
    assert batch.rows[1]["outcome"] == "error"
    assert batch.rows[1]["errors"][0]["column"] == "expected range km"
    assert "formula with no saved value" in batch.rows[1]["errors"][0]["text"]


# Errors: rows --------------------------------------------------------------------------------


def test_it_names_the_row_column_and_reason_of_every_kind_of_bad_row(dispatcher, fleet):
    day = plan_day()
    past = timezone.now().astimezone(BRUSSELS).date() - timedelta(days=2)
    inactive = make_location("DE-OFF-01", "Closed Depot", "Europe/Berlin", is_active=False)
    good = ["BE-BRU-01", "bus 12", when(day, "08:00"), when(day, "10:00"), "100", "", "", ""]

    def bad(**changes):
        row = list(good)
        for index, value in changes.items():
            row[int(index[1:])] = value
        return row

    rows = [
        bad(c0="XX-NOPE"),  # 2
        bad(c0=inactive.mint_location_id),  # 3
        bad(c1="bus 99"),  # 4
        bad(c2=""),  # 5
        bad(c2="tomorrow 8"),  # 6
        bad(c3=when(day, "07:00")),  # 7
        bad(c3=when(day + timedelta(days=9), "07:00")),  # 8
        bad(c2=when(past, "07:00"), c3=when(past, "08:00")),  # 9
        bad(c6="60"),  # 10
        bad(c4=""),  # 11
        bad(c4="", c5="18", c6="60"),  # 12
        bad(c4="12.5"),  # 13
        bad(c4="-3"),  # 14
        bad(c5="1.234,5"),  # 15
        bad(c7="x" * 201),  # 16
        bad(c7="line\tbreak"),  # 17
        bad(c2="2099-01-01 08:00", c3="2099-01-01 09:00"),  # 18
        bad(c5="18.555"),  # 19
    ]
    batch = preview(dispatcher, csv_file(rows))
    found: dict[int, tuple[str, str]] = {}
    for row, column, text in errors(batch):
        found.setdefault(row, (column, text))  # each row's first problem
    expected = {
        2: ("site", "There is no site with the MINT location ID or name “XX-NOPE”."),
        3: ("site", "Closed Depot is not active; choose another site."),
        4: ("vehicle", "There is no vehicle named “bus 99”."),
        5: ("start", "Give when the vehicle arrives"),
        6: ("start", "“tomorrow 8” is not a date and time"),
        7: ("end", "The end must be after the start."),
        8: ("end", "A plan covers at most 7 days"),
        9: ("end", "This window has already ended"),
        10: ("expected charge kWh", "Give either a range or a charge, not both."),
        11: ("expected range km", "Give an expected range in km or an expected charge in kWh."),
        12: ("average consumption", "Average consumption goes only with a range."),
        13: ("expected range km", "Enter a whole number of km."),
        14: ("expected range km", "The range must be above 0 km."),
        15: ("average consumption", "without a thousands separator"),
        16: ("note", "The note has 201 characters"),
        17: ("note", "Remove the invisible character U+0009"),
        18: ("start", "Check the year: 2099 is too far from today."),
        19: ("average consumption", "Use at most two decimals."),
    }
    for row, (column, text) in expected.items():
        assert row in found, f"row {row}: no error; got {batch.rows[row - 2]}"
        assert found[row][0] == column, (row, found[row])
        assert text in found[row][1], (row, found[row])
    assert set(outcomes(batch)) == {"error"}


def test_it_refuses_local_times_in_a_dst_gap_or_overlap(dispatcher, fleet):
    spring, autumn = next_clock_change(3), next_clock_change(10)
    rows = [
        ["BE-BRU-01", "bus 12", when(spring, "02:30"), when(spring, "05:00"), "100"],
        ["BE-BRU-01", "bus 14", when(autumn, "01:00"), when(autumn, "02:30"), "100"],
    ]
    batch = preview(dispatcher, csv_file(rows, header=HEADER[:5]))
    assert errors(batch) == [
        (
            2,
            "start",
            f"{spring} 02:30 does not exist in Europe/Brussels: the clocks jump forward then. "
            f"Choose a time before or after the change.",
        ),
        (
            3,
            "end",
            f"{autumn} 02:30 happens twice in Europe/Brussels: the clocks go back then. "
            f"Choose a time before or after the change.",
        ),
    ]


def test_it_applies_the_guards_to_the_rows_and_the_saved_plans_together(dispatcher, fleet):
    day = plan_day()
    start = datetime.combine(day, datetime.min.time(), BRUSSELS).replace(hour=12)
    services.plan_create(
        user=dispatcher,
        location=fleet["site"],
        vehicle=fleet["bus16"],
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=2),
        target_kind="charge",
        expected_charge_kwh=20,
    )
    rows = [
        ["BE-BRU-01", "bus 12", when(day, "08:00"), when(day, "10:00"), "", "", "50"],
        ["BE-BRU-01", "bus 12", when(day, "09:00"), when(day, "11:00"), "", "", "50"],
        ["BE-BRU-01", "bus 14", when(day, "08:00"), when(day, "10:00"), "", "", "400"],
        # bus 16 on another day at the same site: a new plan, overlapping nothing
        ["BE-BRU-01", "bus 16", when(day, "13:00"), when(day, "15:00"), "", "", "10"],
    ]
    batch = preview(dispatcher, csv_file(rows, header=HEADER[:7]))
    assert outcomes(batch)[:3] == ["new", "error", "new"]
    assert batch.rows[1]["errors"][0]["column"] == "vehicle"
    assert "bus 12 already has row 2 of this file" in batch.rows[1]["errors"][0]["text"]
    assert [w["code"] for w in batch.rows[2]["warnings"]] == ["battery", "power"]
    # bus 16's row is the same day and site as its saved plan, so it changes that plan.
    assert batch.rows[3]["outcome"] == "change", batch.rows[3]["errors"]


# Errors: whole files -------------------------------------------------------------------------


def test_it_refuses_whole_files_it_cannot_import_with_a_plain_reason(dispatcher, fleet):
    def refused(data: bytes, name: str = "x.csv") -> str:
        with pytest.raises(ImportFileError) as caught:
            preview(dispatcher, data, name=name)
        return str(caught.value)

    assert "at most 5 MB" in refused(b"a" * (import_files.MAX_FILE_BYTES + 1))
    assert refused(b"  \n") == "The file is empty."
    too_many = csv_file([["BE-BRU-01", "", "", "", "1"]] * (import_files.MAX_ROWS + 1))
    assert "more than 10,000 rows" in refused(too_many)
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100
    encrypted = ole + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 100
    assert "protected by a password" in refused(encrypted, "secret.xlsx")
    assert "old Excel file (.xls)" in refused(ole, "old.xls")
    assert "not a readable Excel workbook" in refused(b"PK\x03\x04garbage", "broken.xlsx")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "xl/worksheets/sheet1.xml", b"\x00" * (import_files.MAX_UNPACKED_BYTES + 1)
        )
    assert "unpacks to more than 100 MB" in refused(bomb.getvalue(), "bomb.xlsx")
    assert "neither CSV text nor an Excel workbook" in refused(b"\x00\x01\x02abc")
    not_template = refused(csv_file([["a", "b"]], header=["vehicle", "when", "kwh"]))
    assert "not the import template" in not_template
    assert "site, start, end, expected range km or expected charge kWh" in not_template
    assert ImportBatch.objects.count() == 0


# Re-upload, complete plan, confirm -----------------------------------------------------------


def test_it_updates_instead_of_duplicating_when_a_corrected_file_is_uploaded(dispatcher, fleet):
    day = plan_day()
    rows = rows_for(day, 3)
    first = preview(dispatcher, csv_file(rows), name="monday.csv")
    result = batch_apply(batch=first, user=dispatcher)
    assert len(result.created) == 3
    rows[1][3] = when(day, "11:15")
    rows[2][6], rows[2][4], rows[2][5] = "70", "", ""
    second = preview(dispatcher, csv_file(rows), name="monday-v2.csv")
    assert outcomes(second) == ["unchanged", "change", "change"]
    assert second.rows[1]["plan"] == result.created[1]
    assert any(d.startswith("end ") and "11:15" in d for d in second.rows[1]["diffs"])
    assert "target 120 km range at 18.5 kWh/100 km → 70 kWh charge" in second.rows[2]["diffs"]
    again = batch_apply(batch=second, user=dispatcher)
    assert again.created == [] and sorted(again.changed) == sorted(result.created[1:])
    assert Plan.objects.count() == 3
    edited = Plan.objects.get(pk=result.created[2])
    assert (edited.target_kind, edited.expected_charge_kwh) == ("charge", 70)
    assert edited.events.last().reason.startswith("Imported from monday-v2.csv, row 4. Edited.")
    third = preview(dispatcher, csv_file(rows), name="monday-v2.csv")
    assert outcomes(third) == ["unchanged"] * 3
    with pytest.raises(ImportRefused, match="every row matches its plan already"):
        batch_apply(batch=third, user=dispatcher)


def test_it_lists_and_calls_off_the_plans_a_complete_file_leaves_out(dispatcher, fleet):
    day = plan_day()
    made = batch_apply(batch=preview(dispatcher, csv_file(rows_for(day, 3))), user=dispatcher)
    services.plan_submit(plan=Plan.objects.get(pk=made.created[2]), user=dispatcher)
    other_day = rows_for(day + timedelta(days=1), 1)
    batch_apply(batch=preview(dispatcher, csv_file(other_day)), user=dispatcher)
    partial = csv_file(rows_for(day, 1))
    plain = preview(dispatcher, partial)
    assert plain.cancels == []
    complete = preview(dispatcher, partial, complete=True)
    assert [c["plan"] for c in complete.cancels] == made.created[1:]
    assert complete.cancels[0]["vehicle"] == "bus 14"
    result = batch_apply(batch=complete, user=dispatcher)
    assert result.cancelled == made.created[1:]
    states = dict(Plan.objects.values_list("pk", "state"))
    assert states[made.created[1]] == PlanState.WITHDRAWN
    assert states[made.created[2]] == PlanState.WITHDRAWN
    assert states[made.created[0]] == PlanState.DRAFT
    assert Plan.objects.exclude(state=PlanState.WITHDRAWN).count() == 2  # the other day stays
    reason = Plan.objects.get(pk=made.created[1]).events.last().reason
    assert "Not in day.csv, imported as the complete plan" in reason


def test_it_saves_every_row_in_one_go_with_history_and_can_submit_them(dispatcher, fleet):
    day = plan_day()
    batch = preview(dispatcher, csv_file(rows_for(day, 3)), name="tuesday.csv")
    result = batch_apply(batch=batch, user=dispatcher, submit=True)
    assert result.submitted == 3
    plans = Plan.objects.order_by("pk")
    assert {p.state for p in plans} == {PlanState.QUEUED}
    assert Submission.objects.filter(plan__in=plans, revision=1).count() == 3
    events = list(PlanEvent.objects.filter(plan=plans[1]).order_by("id"))
    assert [e.action for e in events] == ["created", "submitted"]
    assert events[0].reason == "Imported from tuesday.csv, row 3."
    body = json.loads(Submission.objects.get(plan=plans[0]).body)
    assert (body["status"], body["transactionId"]) == ("row 0", str(plans[0].transaction_id))
    with pytest.raises(ImportRefused, match="already confirmed"):
        batch_apply(batch=batch, user=dispatcher)


def test_it_saves_nothing_when_row_59_of_60_fails_at_confirm(dispatcher, fleet):
    day = plan_day()
    site = fleet["site"]
    for i in range(60):
        make_vehicle(f"bus {100 + i}", location=site)
    batch = preview(dispatcher, csv_file(rows_for(day, 60)))
    assert set(outcomes(batch)) == {"new"}
    # Meanwhile another dispatcher plans row 59's bus (bus 157) into the same window.
    row = batch.rows[57]
    services.plan_create(
        user=dispatcher,
        location=site,
        vehicle=make_vehicle("bus 157"),
        scheduled_start=datetime.fromisoformat(row["values"]["start"]),
        scheduled_end=datetime.fromisoformat(row["values"]["end"]),
        target_kind="charge",
        expected_charge_kwh=10,
    )
    plans, events = Plan.objects.count(), PlanEvent.objects.count()
    with pytest.raises(ImportRefused) as refused:
        batch_apply(batch=batch, user=dispatcher)
    assert "row 59 of this file: bus 157 already has plan" in str(refused.value)
    assert (Plan.objects.count(), PlanEvent.objects.count()) == (plans, events)
    batch.refresh_from_db()
    assert batch.applied_at is None


def test_it_refuses_a_confirm_when_someone_changed_a_plan_since_the_preview(
    dispatcher, viewer, fleet
):
    day = plan_day()
    made = batch_apply(batch=preview(dispatcher, csv_file(rows_for(day, 2))), user=dispatcher)
    rows = rows_for(day, 2)
    rows[0][4] = "150"
    batch = preview(dispatcher, csv_file(rows))
    assert outcomes(batch) == ["change", "unchanged"]
    other = services.plan_update(
        plan=Plan.objects.get(pk=made.created[0]), user=dispatcher, status_note="by phone"
    )
    with pytest.raises(ImportRefused) as refused:
        batch_apply(batch=batch, user=dispatcher)
    assert f"dispatcher changed plan {other.pk}" in str(refused.value)
    assert Plan.objects.get(pk=other.pk).expected_range_km == 120


def test_it_needs_warnings_accepted_and_refuses_rows_with_errors_or_an_expired_preview(
    dispatcher, fleet
):
    day = plan_day()
    warned = [["BE-BRU-01", "bus 12", when(day, "08:00"), when(day, "09:00"), "", "", "900"]]
    batch = preview(dispatcher, csv_file(warned, header=HEADER[:7]))
    with pytest.raises(ImportRefused, match="tick “Save anyway”"):
        batch_apply(batch=batch, user=dispatcher)
    batch_apply(batch=batch, user=dispatcher, accept_warnings=True)
    plan = Plan.objects.get()
    assert {w["code"] for w in plan.warnings} == {"battery", "power"}

    broken = preview(dispatcher, csv_file([["XX", "bus 14", "", "", "1"]], header=HEADER[:5]))
    with pytest.raises(ImportRefused, match="1 row has errors"):
        batch_apply(batch=broken, user=dispatcher)
    late = preview(dispatcher, csv_file(rows_for(day, 1)[:1]))
    with pytest.raises(ImportRefused, match="has expired"):
        batch_apply(batch=late, user=dispatcher, now=late.expires_at + timedelta(seconds=1))
    assert Plan.objects.count() == 1


def test_it_gives_back_the_rows_with_errors_in_the_format_uploaded(dispatcher, fleet):
    day = plan_day()
    rows = rows_for(day, 3, style="dot", decimal=",")
    rows[1][1] = "bus 99"
    data = csv_file(rows, delimiter=";", encoding="cp1252")
    batch = preview(dispatcher, data, name="plan.csv")
    content, kind, name = batch_errors_file(batch=batch)
    assert (kind.split(";")[0], name) == ("text/csv", "plan-errors.csv")
    lines = list(csv.reader(io.StringIO(content.decode("utf-8-sig")), delimiter=";"))
    assert lines[0] == [*HEADER, "problem"]
    assert len(lines) == 2 and lines[1][1] == "bus 99"
    assert lines[1][-1] == "row 3: vehicle: There is no vehicle named “bus 99”."
    again = preview(dispatcher, content, name=name)
    assert errors(again) == [(2, "vehicle", "There is no vehicle named “bus 99”.")]

    xlsx = preview(dispatcher, xlsx_file(rows), name="plan.xlsx")
    content, kind, name = batch_errors_file(batch=xlsx)
    assert name == "plan-errors.xlsx"
    sheet = load_workbook(io.BytesIO(content), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[1][1] == "bus 99" and values[1][-1].startswith("row 3: vehicle:")


# Copy a day ----------------------------------------------------------------------------------


def test_it_copies_a_day_across_a_dst_change_keeping_the_site_clock_times(dispatcher, fleet):
    change = next_clock_change(3)
    source = change - timedelta(days=2)  # Friday, winter time
    start = datetime.combine(source, datetime.min.time(), BRUSSELS).replace(hour=18, minute=30)
    original = services.plan_create(
        user=dispatcher,
        location=fleet["site"],
        vehicle=fleet["bus12"],
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=12),
        target_kind="range",
        expected_range_km=200,
        average_consumption=Decimal("20"),
        status_note="night charge",
    )
    batch = copy_day_preview(
        user=dispatcher,
        site=fleet["site"],
        day=source,
        first=change - timedelta(days=1),
        last=change + timedelta(days=1),
    )
    assert outcomes(batch) == ["new", "new", "new"]
    result = batch_apply(batch=batch, user=dispatcher)
    copies = Plan.objects.filter(pk__in=result.created).order_by("scheduled_start")
    for copy in copies:
        local_start = copy.scheduled_start.astimezone(BRUSSELS)
        local_end = copy.scheduled_end.astimezone(BRUSSELS)
        assert (local_start.hour, local_start.minute) == (18, 30)
        assert (local_end.hour, local_end.minute) == (6, 30)
        assert copy.vehicle == original.vehicle and copy.expected_range_km == 200
        assert copy.status_note == "night charge"
        assert copy.transaction_id != original.transaction_id
        assert copy.events.get().reason == f"Copied from plan {original.pk}."
    # The night of the change is an hour shorter in UTC, the wall times the same.
    spans = [c.scheduled_end - c.scheduled_start for c in copies]
    assert spans == [timedelta(hours=11), timedelta(hours=12), timedelta(hours=12)]


def test_it_refuses_a_copy_onto_a_busy_vehicle_and_a_day_with_nothing(dispatcher, fleet):
    day = plan_day()
    batch_apply(batch=preview(dispatcher, csv_file(rows_for(day, 1))), user=dispatcher)
    batch_apply(
        batch=preview(dispatcher, csv_file(rows_for(day + timedelta(days=1), 1))),
        user=dispatcher,
    )
    batch = copy_day_preview(
        user=dispatcher,
        site=None,
        day=day,
        first=day + timedelta(days=1),
        last=day + timedelta(days=1),
    )
    assert outcomes(batch) == ["error"]
    assert "bus 12 already has plan" in batch.rows[0]["errors"][0]["text"]
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="There are no plans on"):
        copy_day_preview(
            user=dispatcher,
            site=fleet["site"],
            day=day + timedelta(days=5),
            first=day + timedelta(days=6),
            last=day + timedelta(days=6),
        )


# Pages ---------------------------------------------------------------------------------------


def upload(client, data: bytes, name: str = "day.csv", **extra):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        reverse("plans:import_start"), {"file": SimpleUploadedFile(name, data), **extra}
    )


def test_it_lets_a_dispatcher_upload_preview_reload_and_confirm(dispatcher_client, fleet):
    response = upload(dispatcher_client, csv_file(rows_for(plan_day(), 2)))
    assert response.status_code == 302
    url = response.url
    page = dispatcher_client.get(url)
    assert page.status_code == 200
    assert "2</strong> new plans" in page.content.decode()
    assert dispatcher_client.get(url).status_code == 200  # a reload shows the same preview
    batch = ImportBatch.objects.get()
    confirmed = dispatcher_client.post(
        reverse("plans:batch_confirm", args=[batch.pk]), {"submit": "on"}
    )
    assert confirmed.status_code == 302 and confirmed.url == reverse("plans:plan_list")
    assert Plan.objects.filter(state=PlanState.QUEUED).count() == 2
    listing = dispatcher_client.get(confirmed.url).content.decode()
    assert "2 plan(s) created, 0 changed, 0 called off; 2 queued for delivery" in listing


def test_it_shows_the_file_error_beside_the_file_field(dispatcher_client, fleet):
    response = upload(dispatcher_client, csv_file([["x"]], header=["hello"]))
    assert response.status_code == 200
    assert "This sheet is not the import template" in response.content.decode()


def test_it_shows_a_refused_confirm_on_the_preview_and_offers_the_errors_file(
    dispatcher_client, fleet
):
    rows = rows_for(plan_day(), 2)
    rows[0][0] = "XX"
    upload(dispatcher_client, csv_file(rows))
    batch = ImportBatch.objects.get()
    page = dispatcher_client.get(reverse("plans:batch_preview", args=[batch.pk])).content.decode()
    assert "Download the rows with errors" in page
    assert "Error in site:" in page
    response = dispatcher_client.post(reverse("plans:batch_confirm", args=[batch.pk]), follow=True)
    assert "Nothing was saved: 1 row has errors" in response.content.decode()
    download = dispatcher_client.get(reverse("plans:batch_errors", args=[batch.pk]))
    assert download["Content-Disposition"].startswith("attachment")
    assert b"row 2: site:" in download.content


def test_it_says_plainly_that_a_preview_expired(dispatcher_client, fleet):
    upload(dispatcher_client, csv_file(rows_for(plan_day(), 1)))
    ImportBatch.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    batch = ImportBatch.objects.get()
    page = dispatcher_client.get(reverse("plans:batch_preview", args=[batch.pk])).content.decode()
    assert "This preview has expired" in page
    assert "Confirm: save" not in page


def test_it_copies_a_day_through_the_pages(dispatcher_client, dispatcher, fleet):
    day = plan_day()
    batch_apply(batch=preview(dispatcher, csv_file(rows_for(day, 2))), user=dispatcher)
    target = day + timedelta(days=1)
    response = dispatcher_client.post(
        reverse("plans:copy_day"),
        {"location": fleet["site"].pk, "day": day.isoformat(), "first": target.isoformat()},
    )
    assert response.status_code == 302
    batch = ImportBatch.objects.get(kind="copy")
    dispatcher_client.post(reverse("plans:batch_confirm", args=[batch.pk]))
    assert Plan.objects.count() == 4
    same = dispatcher_client.post(
        reverse("plans:copy_day"),
        {"day": day.isoformat(), "first": day.isoformat()},
    )
    assert "Copy to other days than the one copied." in same.content.decode()


def test_it_serves_the_templates(dispatcher_client):
    xlsx = dispatcher_client.get(reverse("plans:import_template", args=["xlsx"]))
    workbook = load_workbook(io.BytesIO(xlsx.content), read_only=True)
    assert workbook.sheetnames == ["Plans", "Instructions"]
    assert list(next(workbook["Plans"].iter_rows(values_only=True))) == HEADER
    text = dispatcher_client.get(reverse("plans:import_template", args=["csv"])).content
    assert text.decode("utf-8-sig").strip() == ",".join(HEADER)
    assert dispatcher_client.get("/plans/import/template.pdf").status_code == 404


def test_it_lets_no_viewer_import_copy_or_confirm_and_no_one_see_anothers_preview(
    viewer_client, client, dispatcher, fleet
):
    for name in ("import_start", "copy_day"):
        assert viewer_client.get(reverse(f"plans:{name}")).status_code == 403
    assert viewer_client.get(reverse("plans:import_template", args=["csv"])).status_code == 403
    batch = preview(dispatcher, csv_file(rows_for(plan_day(), 1)))
    assert viewer_client.post(reverse("plans:batch_confirm", args=[batch.pk])).status_code == 403
    from tests.conftest import _user

    colleague = _user("colleague", "Dispatchers")
    client.force_login(colleague)
    assert client.get(reverse("plans:batch_preview", args=[batch.pk])).status_code == 404
    assert client.post(reverse("plans:batch_confirm", args=[batch.pk])).status_code == 404
    assert client.get(reverse("plans:batch_errors", args=[batch.pk])).status_code == 404
    assert Plan.objects.count() == 0


def test_it_draws_the_preview_in_the_same_number_of_queries_for_1_or_60_rows(
    dispatcher_client, dispatcher, fleet, django_assert_num_queries
):
    for i in range(60):
        make_vehicle(f"bus {100 + i}", location=fleet["site"])
    small = preview(dispatcher, csv_file(rows_for(plan_day(), 1)))
    large = preview(dispatcher, csv_file(rows_for(plan_day(), 60)))
    dispatcher_client.get(reverse("plans:batch_preview", args=[small.pk]))  # warm the session
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small_queries:
        dispatcher_client.get(reverse("plans:batch_preview", args=[small.pk]))
    # Session, user, permissions, the batch, the page's shared header (health, worker banner).
    assert len(small_queries.captured_queries) <= 8
    with django_assert_num_queries(len(small_queries.captured_queries)):
        page = dispatcher_client.get(reverse("plans:batch_preview", args=[large.pk]))
    assert page.content.decode().count('class="batch-new"') == 60


def test_it_works_out_a_preview_in_the_same_number_of_queries_for_1_or_60_rows(dispatcher, fleet):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for i in range(60):
        make_vehicle(f"bus {100 + i}", location=fleet["site"])
    counts = []
    for n in (1, 60):
        with CaptureQueriesContext(connection) as queries:
            batch = preview(dispatcher, csv_file(rows_for(plan_day(), n)))
        assert len(batch.rows) == n
        counts.append(len(queries.captured_queries))
    assert counts[0] == counts[1]


def test_it_refuses_a_confirm_when_a_warning_appeared_since_the_preview(dispatcher, fleet):
    day = plan_day()
    row = ["BE-BRU-01", "", when(day, "08:00"), when(day, "10:00"), "", "", "30", ""]
    batch = preview(dispatcher, csv_file([row]))
    assert batch.rows[0]["warnings"] == []
    services.plan_create(
        user=dispatcher,
        location=fleet["site"],
        scheduled_start=datetime.fromisoformat(batch.rows[0]["values"]["start"]),
        scheduled_end=datetime.fromisoformat(batch.rows[0]["values"]["end"]),
        target_kind="charge",
        expected_charge_kwh=30,
    )
    with pytest.raises(ImportRefused, match="since your preview, the guards warn"):
        batch_apply(batch=batch, user=dispatcher)
    assert Plan.objects.count() == 1


def test_it_refuses_to_call_off_a_plan_that_is_being_sent(dispatcher, fleet):
    day = plan_day()
    made = batch_apply(batch=preview(dispatcher, csv_file(rows_for(day, 2))), user=dispatcher)
    complete = preview(dispatcher, csv_file(rows_for(day, 1)), complete=True)
    assert [c["plan"] for c in complete.cancels] == made.created[1:]
    sending = Plan.objects.filter(pk=made.created[1])
    sending.update(state=PlanState.SENDING)  # as a worker's claim would, counters aside
    try:
        with pytest.raises(ImportRefused, match="being sent to MINT right now"):
            batch_apply(batch=complete, user=dispatcher)
    finally:
        sending.update(state=PlanState.DRAFT)
    assert Plan.objects.filter(state=PlanState.DRAFT).count() == 2
