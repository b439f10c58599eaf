"""Exports: the plan list's filter as CSV and XLSX, a plan's history as CSV.

Read back as a spreadsheet program would: ``csv`` for the CSV, openpyxl for the XLSX.
"""

import csv
import gc
import io
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from plans import exports, services
from plans.mint.outcomes import Accepted, Rejected, Unavailable
from plans.models import Location, Plan
from tests.factories import deliver, make_location, make_plan, make_vehicle


def read_csv(response) -> list[dict]:
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def read_xlsx(response) -> list[dict]:
    assert response.streaming
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(book.active.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def next_spring_change() -> datetime:
    """The next night, a day or more away, when the EU clocks go forward (01:00 UTC on the last
    Sunday of March)."""
    now = timezone.now()
    for year in (now.year, now.year + 1):
        day = datetime(year, 3, 31, 1, tzinfo=UTC)
        day -= timedelta(days=(day.weekday() + 1) % 7)
        if day > now + timedelta(days=1):
            return day
    raise AssertionError("unreachable")


@pytest.fixture
def brussels(db) -> Location:
    return make_location()


@pytest.fixture
def newark(db) -> Location:
    return make_location("US-EWR-03", "Newark Yard", "America/New_York")


# --- the plan list -------------------------------------------------------------------------------


def test_it_exports_every_field_of_the_filtered_plans_as_csv(
    viewer_client, dispatcher, brussels, newark
):
    bus = make_vehicle("bus 12", location=brussels)
    plan = make_plan(user=dispatcher, location=brussels, vehicle=bus, status_note="evening shift")
    deliver(plan, dispatcher, Rejected(400, 30, "{}", ["expectedRange: too far."]))
    make_plan(user=dispatcher, location=newark)

    response = viewer_client.get(f"/plans/export.csv?site={brussels.pk}")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="mint-plans-')
    assert "no-store" in response["Cache-Control"]
    [row] = read_csv(response)
    assert set(row) == set(exports.PLAN_HEADER)
    plan.refresh_from_db()
    submission = plan.submissions.get()
    assert row["Plan"] == str(plan.pk)
    assert row["transactionId"] == str(plan.transaction_id)
    assert row["State"] == "Rejected"
    assert row["Site"] == "Brussels Depot"
    assert row["MINT location ID"] == "BE-BRU-01"
    assert row["Site time zone"] == "Europe/Brussels"
    assert row["Start (UTC)"] == f"{plan.scheduled_start.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    assert row["Vehicle"] == "bus 12"
    assert row["Target"] == "Range (km)"
    assert row["Expected range (km)"] == "240"
    assert row["Average consumption (kWh/100 km)"] == "18.50"
    assert row["Expected charge (kWh)"] == ""
    assert row["Note to MINT"] == "evening shift"
    assert row["Last messageId"] == str(submission.message_id)
    assert row["Last message state"] == "Rejected"
    assert row["Attempts"] == "1"
    assert row["Last attempt outcome"] == "Rejected"
    assert row["Last HTTP status"] == "400"
    assert row["MINT's messages"] == "expectedRange: too far."
    assert row["Created by"] == "dispatcher"


def test_it_exports_the_same_plans_as_xlsx_with_numbers_and_dates_as_such(
    viewer_client, dispatcher, brussels
):
    plan = make_plan(user=dispatcher, location=brussels, kind="charge")
    deliver(plan, dispatcher, Unavailable(503, 40, "{}", error="MINT answered 503"))

    response = viewer_client.get("/plans/export.xlsx")

    assert response.status_code == 200
    assert response["Content-Type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response["Content-Disposition"].startswith('attachment; filename="mint-plans-')
    [row] = read_xlsx(response)
    assert tuple(row) == exports.PLAN_HEADER
    assert row["Plan"] == plan.pk
    assert row["Expected charge (kWh)"] == 60
    assert row["Start (UTC)"] == plan.scheduled_start.astimezone(UTC).replace(tzinfo=None)
    assert row["State"] == "Retrying"
    assert row["Last HTTP status"] == 503
    assert row["Last error"] == "MINT answered 503"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_it_exports_only_what_the_list_shows_for_the_filter(
    viewer_client, dispatcher, brussels, newark, fmt
):
    kept = make_plan(user=dispatcher, location=brussels, status_note="late arrival")
    make_plan(user=dispatcher, location=brussels, status_note="other")
    make_plan(user=dispatcher, location=newark, status_note="late arrival")
    called_off = make_plan(user=dispatcher, location=brussels, status_note="late arrival")
    services.plan_cancel(plan=called_off, user=dispatcher, reason="Not needed.")
    reader = read_csv if fmt == "csv" else read_xlsx

    rows = reader(viewer_client.get(f"/plans/export.{fmt}?site={brussels.pk}&q=late"))
    called_off_rows = reader(viewer_client.get(f"/plans/export.{fmt}?delivery=called_off"))

    assert [int(row["Plan"]) for row in rows] == [kept.pk]
    assert [int(row["Plan"]) for row in called_off_rows] == [called_off.pk]


def test_it_exports_every_page_in_the_lists_order(viewer_client, dispatcher, brussels, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_PAGE", 2)
    start = timezone.now().replace(microsecond=0) + timedelta(hours=1)
    plans = [
        make_plan(
            user=dispatcher,
            location=brussels,
            scheduled_start=start + timedelta(hours=n % 3),
            scheduled_end=start + timedelta(hours=5),
        )
        for n in range(7)
    ]
    expected = [p.pk for p in sorted(plans, key=lambda p: (p.scheduled_start, p.pk))]

    rows = read_csv(viewer_client.get("/plans/export.csv"))

    assert [int(row["Plan"]) for row in rows] == expected


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_it_writes_site_and_utc_times_across_a_dst_change(viewer_client, dispatcher, brussels, fmt):
    change = next_spring_change()  # 02:00 CET becomes 03:00 CEST
    plan = make_plan(
        user=dispatcher,
        location=brussels,
        scheduled_start=change - timedelta(minutes=30),
        scheduled_end=change + timedelta(minutes=30),
    )
    day = f"{change:%Y-%m-%d}"
    reader = read_csv if fmt == "csv" else read_xlsx

    [row] = reader(viewer_client.get(f"/plans/export.{fmt}"))

    assert row["Start (site time)"] == f"{day} 01:30:00 CET"
    assert row["End (site time)"] == f"{day} 03:30:00 CEST"
    assert row["Site time zone"] == "Europe/Brussels"
    if fmt == "csv":
        assert row["Start (UTC)"] == f"{day}T00:30:00Z"
        assert row["End (UTC)"] == f"{day}T01:30:00Z"
    else:
        assert row["Start (UTC)"] == datetime.fromisoformat(f"{day}T00:30:00")
        assert row["End (UTC)"] == plan.scheduled_end.astimezone(UTC).replace(tzinfo=None)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_it_neutralises_text_that_a_spreadsheet_would_run_as_a_formula(
    viewer_client, dispatcher, fmt
):
    site = make_location("=SITE", "+Depot", "Europe/Brussels")
    bus = make_vehicle("@bus", location=site)
    plan = make_plan(
        user=dispatcher, location=site, vehicle=bus, status_note='=HYPERLINK("http://x","y")'
    )
    deliver(plan, dispatcher, Rejected(400, 30, "{}", ["-2+3 is not a location"]))
    reader = read_csv if fmt == "csv" else read_xlsx

    [row] = reader(viewer_client.get(f"/plans/export.{fmt}"))

    assert row["Note to MINT"] == """'=HYPERLINK("http://x","y")"""
    assert row["Site"] == "'+Depot"
    assert row["MINT location ID"] == "'=SITE"
    assert row["Vehicle"] == "'@bus"
    assert row["MINT's messages"] == "'-2+3 is not a location"
    assert str(row["Plan"]) == str(plan.pk)  # numbers are not touched


def test_the_writers_leave_numbers_alone_and_neutralise_every_dangerous_start():
    rows = [(-5, Decimal("-1.5"), "-5", "=1+1", "+1", "@SUM(A1)", "\tx", "\rx", "a=b", "")]

    text = "".join(exports.csv_chunks(["n"] * 10, rows))
    book = openpyxl.load_workbook(exports.xlsx_file(["n"] * 10, rows, title="T"))
    [written] = list(book.active.iter_rows(min_row=2, values_only=True))

    expected = ["'-5", "'=1+1", "'+1", "'@SUM(A1)", "'\tx", "'\rx", "a=b"]
    assert next(csv.reader(io.StringIO(text[1:].split("\r\n", 1)[1]))) == [
        "-5",
        "-1.5",
        *expected,
        "",
    ]
    assert written[:2] == (-5, -1.5)
    # XML reads a carriage return in text as a line feed (the cell still starts with ').
    assert list(written[2:9]) == [text.replace("\r", "\n") for text in expected]
    assert book.active.cell(2, 4).data_type == "s"  # text, not a formula


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize(
    ("query", "named"),
    [("day=2024-13-45", "Day"), ("site=999999", "Site"), ("state=lost", "State")],
)
def test_it_exports_nothing_for_a_filter_the_list_cannot_read(
    viewer_client, dispatcher, brussels, fmt, query, named
):
    make_plan(user=dispatcher, location=brussels)

    response = viewer_client.get(f"/plans/export.{fmt}?{query}")

    assert response.status_code == 400
    assert not response.streaming
    page = response.content.decode()
    assert "Nothing was exported: a filter cannot be read" in page
    assert f"{named}:" in page


@pytest.mark.parametrize(
    "path", ["/plans/export.csv", "/plans/export.xlsx", "/plans/{pk}/history.csv"]
)
def test_viewers_may_export_but_not_outsiders(client, viewer, outsider, dispatcher, path):
    path = path.format(pk=make_plan(user=dispatcher).pk)

    client.force_login(outsider)
    assert client.get(path).status_code == 403
    client.force_login(viewer)
    assert client.get(path).status_code == 200
    assert client.post(path).status_code == 405


def test_the_list_links_to_the_export_of_its_filter(viewer_client, dispatcher, brussels):
    make_plan(user=dispatcher, location=brussels)
    make_plan(user=dispatcher, location=brussels)

    page = viewer_client.get(f"/plans/?site={brussels.pk}&after=x").content.decode()

    assert f'href="/plans/export.csv?site={brussels.pk}" download>Download CSV</a>' in page
    assert f'href="/plans/export.xlsx?site={brussels.pk}" download>XLSX</a>' in page
    assert "of these 2 plans" in page


# --- a plan's history ----------------------------------------------------------------------------


def test_it_exports_a_plans_history_and_attempts_in_order(viewer_client, dispatcher, brussels):
    plan = make_plan(user=dispatcher, location=brussels)
    deliver(
        plan,
        dispatcher,
        Unavailable(503, 40, '{"a": 1}', error="-ERR from a proxy"),
        Accepted(200, 12, '{"a": 1}'),
    )
    services.plan_cancel(plan=plan, user=dispatcher, reason="Not needed.")

    response = viewer_client.get(f"/plans/{plan.pk}/history.csv")

    assert response["Content-Disposition"] == (
        f'attachment; filename="mint-plan-{plan.pk}-history.csv"'
    )
    rows = read_csv(response)
    events, attempts = plan.events.count(), 2
    assert len(rows) == events + attempts
    assert [r["When (UTC)"] for r in rows] == sorted(r["When (UTC)"] for r in rows)
    tried = [r for r in rows if r["Entry"] == "Delivery attempt"]
    assert [r["HTTP status"] for r in tried] == ["503", "200"]
    assert tried[0]["Reason or error"] == "'-ERR from a proxy"
    assert tried[0]["Request JSON sent"] == '{"a": 1}'
    assert tried[0]["messageId"] == str(plan.submissions.get().message_id)
    assert tried[0]["When (site time)"].endswith(("CET", "CEST"))
    assert rows[0]["What"] == "Created"
    assert rows[-1]["To state"] == "Cancelled"
    assert "Not needed." in rows[-1]["Reason or error"]


def test_a_missing_plan_has_no_history_to_export(viewer_client, db):
    assert viewer_client.get("/plans/999/history.csv").status_code == 404


# --- streaming -----------------------------------------------------------------------------------


def _bulk_plans(count: int, user, site: Location) -> None:
    """``count`` plain draft plans straight into the table: thousands through the services
    would take minutes, and the export reads only what is stored."""
    start = timezone.now().replace(microsecond=0) + timedelta(hours=1)
    Plan.objects.bulk_create(
        (
            Plan(
                location=site,
                scheduled_start=start + timedelta(minutes=n),
                scheduled_end=start + timedelta(minutes=n + 90),
                target_kind="charge",
                expected_charge_kwh=40 + n % 50,
                status_note=f"bulk plan {n}",
                created_by=user,
                updated_by=user,
            )
            for n in range(count)
        ),
        batch_size=2_000,
    )


def test_the_csv_comes_before_all_plans_are_read(viewer_client, dispatcher, brussels, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_PAGE", 100)
    monkeypatch.setattr(exports, "CSV_ROWS_PER_CHUNK", 100)
    _bulk_plans(1_000, dispatcher, brussels)

    response = viewer_client.get("/plans/export.csv")
    chunks = iter(response.streaming_content)
    with CaptureQueriesContext(connection) as read:
        first = next(chunks) + next(chunks)
    rest = b"".join(chunks)

    plan_pages = [q for q in read.captured_queries if "LIMIT 100" in q["sql"]]
    assert len(plan_pages) == 1  # one page of 100 read for the first 100 rows, not ten
    assert (first + rest).count(b"\r\n") == 1_001


def _peak_bytes(client, path: str) -> tuple[int, int]:
    """Peak Python memory while ``path`` is downloaded, and the download's size."""
    gc.collect()
    tracemalloc.start()
    try:
        response = client.get(path)
        size = sum(len(chunk) for chunk in response.streaming_content)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, size


def _export_peaks(client, monkeypatch, fmt: str, user, site, small: int, large: int):
    """Peak memory and size of an export of ``small`` plans, then of ``large`` plans, read in
    pages of 50 (after one warm-up export: imports, caches and the session's write)."""
    monkeypatch.setattr(exports, "EXPORT_PAGE", 50)
    _bulk_plans(small, user, site)
    _peak_bytes(client, f"/plans/export.{fmt}")
    small_peak, small_size = _peak_bytes(client, f"/plans/export.{fmt}")
    _bulk_plans(large - small, user, site)
    large_peak, large_size = _peak_bytes(client, f"/plans/export.{fmt}")
    return large_peak - small_peak, large_size - small_size


def test_a_csv_three_times_larger_is_not_held_in_memory(
    viewer_client, dispatcher, brussels, monkeypatch
):
    """Held in memory, the larger file would raise the peak by at least its extra size; read
    in pages and sent as it goes, the peak stays about that of one page."""
    growth, extra = _export_peaks(
        viewer_client, monkeypatch, "csv", dispatcher, brussels, 1_000, 3_000
    )

    assert extra > 500_000
    assert growth < extra / 4, (growth, extra)


def test_an_xlsx_four_times_larger_is_not_built_in_memory(
    viewer_client, dispatcher, brussels, monkeypatch
):
    """openpyxl's ordinary workbook keeps every cell as an object (about 8 KB a row here); in
    write-only mode each row goes to a file on disk as it is appended. (The compressed file
    itself, some 150 bytes a row, is too small at this size to tell from noise: CSV shows that.)"""
    growth, _ = _export_peaks(viewer_client, monkeypatch, "xlsx", dispatcher, brussels, 100, 400)

    assert growth < 300 * 1_000, growth
