"""Bulk entry in real Chromium: import a file → preview → confirm with submit → the sandbox
accepts every plan; then copy that day to the next one.

Issue 11: "import the demo template filled with plans in Chromium, see the preview, confirm
with submit, and see the plans accepted by the sandbox"; "copy a day".
"""

import csv
import io
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from plans import import_files
from plans.models import Plan, PlanState
from plans.roles import roles_ensure
from tests.browser.test_delivery_flow import start_worker as start_worker  # the fixture
from tests.browser_fixture import login
from tests.factories import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DISPATCHER = ("dispatcher", "dispatch-demo-2026")
BUSES = [f"bus {n}" for n in range(11, 16)]
WINDOWS = [("06:00", "08:00"), ("09:00", "11:00"), ("12:00", "14:00"), ("15:00", "17:00")]


@pytest.fixture(autouse=True)
def demo_data(settings, mint_sandbox):
    settings.MINT_API_URL = mint_sandbox.url
    roles_ensure()
    seed_demo()


def berlin_day():
    return (timezone.now().astimezone(ZoneInfo("Europe/Berlin")) + timedelta(days=10)).date()


def day_file() -> bytes:
    """The template filled with 20 plans for the Berlin hub, German-Excel style: ``;``
    between cells, decimal commas, day-first dates, Windows-1252."""
    day = berlin_day()
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(import_files.TEMPLATE_HEADERS.values())
    for bus in BUSES:
        for start, end in WINDOWS:
            writer.writerow(
                [
                    "DE-BER-02",
                    bus,
                    f"{day:%d.%m.%Y} {start}",
                    f"{day:%d.%m.%Y} {end}",
                    *("", "", "60", f"Ladung {bus} – Tür 2"),
                ]
            )
    return buffer.getvalue().encode("cp1252")


def test_it_imports_a_day_confirms_with_submit_and_the_sandbox_accepts_it(
    page,
    live_server,
    artifacts,
    start_worker,
    console_errors,
):
    login(page, live_server, *DISPATCHER)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", name="Import plans")).to_be_visible()
    page.get_by_label("File (CSV or Excel .xlsx)").set_input_files(
        files=[{"name": "berlin.csv", "mimeType": "text/csv", "buffer": day_file()}]
    )
    page.get_by_role("button", name="Preview the import").click()
    expect(page.get_by_role("heading", name="Import preview")).to_be_visible()
    expect(page.locator(".batch-summary")).to_contain_text("20 new plans")
    expect(page.locator("tr.batch-new")).to_have_count(20)
    page.screenshot(path=artifacts / "import-preview.png", full_page=True)
    page.reload()  # the preview survives a reload
    expect(page.locator("tr.batch-new")).to_have_count(20)
    assert Plan.objects.filter(location__mint_location_id="DE-BER-02").count() < 20

    page.get_by_label("Submit the new and changed plans to MINT now").check()
    page.get_by_role("button", name="Confirm: save 20 plans").click()
    page.wait_for_url(f"{live_server.url}/plans/")
    expect(page.locator(".messages")).to_contain_text(
        "berlin.csv: 20 plan(s) created, 0 changed, 0 called off; 20 queued for delivery"
    )
    imported = Plan.objects.filter(events__reason__startswith="Imported from berlin.csv")
    assert imported.count() == 20
    assert imported.first().status_note.startswith("Ladung bus 1")

    start_worker()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if imported.filter(state=PlanState.ACCEPTED).count() == 20:
            break
        time.sleep(0.5)
    assert imported.filter(state=PlanState.ACCEPTED).count() == 20

    # Copy that day to the next one, for the Berlin hub only.
    day = berlin_day()
    page.goto(f"{live_server.url}/plans/")
    page.get_by_role("link", name="Copy a day").click()
    page.get_by_label("Site").select_option(label="Berlin Hub · DE-BER-02 · Europe/Berlin")
    page.get_by_label("Copy the plans of").fill(day.isoformat())
    page.get_by_label("To the day").fill((day + timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Preview the copies").click()
    expect(page.get_by_role("heading", name="Copy preview")).to_be_visible()
    expect(page.locator("tr.batch-new")).to_have_count(20)
    page.screenshot(path=artifacts / "copy-day-preview.png", full_page=True)
    page.get_by_role("button", name="Confirm: save 20 plans").click()
    page.wait_for_url(f"{live_server.url}/plans/")
    copies = Plan.objects.filter(events__reason__startswith="Copied from plan")
    assert copies.count() == 20
    assert {p.state for p in copies} == {PlanState.DRAFT}
    assert console_errors == []
