"""A dispatcher types plans into the real form in Chromium: live hints, local times, errors.

Issue: "logs in as the demo dispatcher, creates one range plan (with consumption) and one charge
plan at a site in another time zone, and sees both in the list with the right local times; it
also submits an invalid form (both targets, end before start) and sees the errors next to the
fields. Screenshots of the form and the list are saved as test artifacts."
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from plans.models import Plan
from plans.roles import roles_ensure
from tests.browser_fixture import login
from tests.factories import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DISPATCHER = ("dispatcher", "dispatch-demo-2026")
BRUSSELS = "Brussels Depot · BE-BRU-01 · Europe/Brussels"
NEWARK = "Newark Yard · US-EWR-03 · America/New_York"


@pytest.fixture(autouse=True)
def demo_data(settings):
    """The demo sites, logins and plans a newcomer gets from ``make run``."""
    roles_ensure()  # a transactional test before this one flushed the migration's groups
    seed_demo()


def plan_day() -> date:
    return (timezone.now() + timedelta(days=7)).date()


def last_sunday_of_march(year: int) -> date:
    """When the EU's clocks jump from 02:00 to 03:00."""
    last = date(year, 3, 31)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def utc_hint(day: date, hhmm: str, zone: str) -> str:
    """What the form shows under a time input: the UTC instant and the site clock's offset."""
    local = datetime.combine(day, datetime.strptime(hhmm, "%H:%M").time(), ZoneInfo(zone))
    minutes = int(local.utcoffset().total_seconds() // 60)
    sign = "−" if minutes < 0 else "+"
    offset = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"= {local.astimezone(UTC):%Y-%m-%d %H:%M} UTC · site clock {offset}"


def local_window(day: date, start: str, end: str, zone: str) -> str:
    """The list's "Wed 2 Dec 10:00 – 14:00 CET" for a same-day window (with the year when it
    is not this one)."""
    abbreviation = datetime.combine(day, datetime.min.time(), ZoneInfo(zone)).tzname()
    year = f" {day.year}" if day.year != timezone.now().year else ""
    return f"{day:%a} {day.day} {day:%b}{year} {start} – {end} {abbreviation}"


def fill_times(page, day: date, start: str, end: str) -> None:
    page.get_by_label("Date", exact=True).fill(day.isoformat())
    page.get_by_label("Start (site time)").fill(start)
    page.get_by_label("End (site time)").fill(end)


def saved_plan_id(page, live_server) -> int:
    page.wait_for_url(f"{live_server.url}/plans/*/")
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def test_it_lets_a_dispatcher_enter_plans_on_each_sites_clock(
    page, live_server, artifacts, console_errors
):
    login(page, live_server, *DISPATCHER)
    day = plan_day()
    page.get_by_role("link", name="New plan").first.click()
    expect(page.get_by_role("heading", name="New plan")).to_be_visible()

    # A range plan with consumption at Brussels: live UTC hints and the energy estimate.
    page.get_by_label("Site", exact=True).select_option(label=BRUSSELS)
    spring_forward = last_sunday_of_march(day.year + 1)
    fill_times(page, spring_forward, "02:30", "04:00")
    expect(page.locator("#id_start_local_utc")).to_have_text(
        "This time does not exist in Europe/Brussels: the clocks jump forward then."
    )
    page.get_by_label("Date", exact=True).fill(f"0026-{day:%m-%d}")
    expect(page.locator("#id_start_local_utc")).to_have_text(
        "Check the year: 0026 is too far from today."
    )
    fill_times(page, day, "10:00", "14:00")
    expect(page.locator("#id_start_local_utc")).to_have_text(
        utc_hint(day, "10:00", "Europe/Brussels")
    )
    expect(page.locator("#id_end_local_utc")).to_have_text(
        utc_hint(day, "14:00", "Europe/Brussels")
    )
    expect(page.locator("#target-range")).to_be_hidden()
    page.get_by_role("radio", name="Range").check()
    expect(page.locator("#target-range")).to_be_visible()
    expect(page.locator("#target-charge")).to_be_hidden()
    page.get_by_label("Expected range (km)").fill("240")
    expect(page.locator("#energy-estimate")).to_have_text("")
    page.get_by_label("Average consumption").press_sequentially("18.5")
    expect(page.locator("#energy-estimate")).to_have_text("Estimated energy: ≈ 44.4 kWh")
    page.get_by_label("Expected range (km)").fill("300")
    expect(page.locator("#energy-estimate")).to_have_text("Estimated energy: ≈ 55.5 kWh")
    page.get_by_label("Note to MINT").fill("browser test range plan")
    page.screenshot(path=artifacts / "plan_form.png", full_page=True)
    page.get_by_role("button", name="Save draft").click()
    range_id = saved_plan_id(page, live_server)
    expect(page.locator(".messages")).to_contain_text(f"Plan {range_id} saved as a draft")

    # A charge plan at Newark, five or six hours behind: the same wall clock is a later UTC time.
    page.goto(f"{live_server.url}/plans/new/")
    page.get_by_label("Site", exact=True).select_option(label=NEWARK)
    fill_times(page, day, "08:00", "11:30")
    expect(page.locator("#id_start_local_utc")).to_have_text(
        utc_hint(day, "08:00", "America/New_York")
    )
    page.get_by_role("radio", name="Charge").check()
    expect(page.locator("#target-range")).to_be_hidden()
    page.get_by_label("Expected charge (kWh)").fill("75")
    page.get_by_role("button", name="Save draft").click()
    charge_id = saved_plan_id(page, live_server)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans").click()
    range_row = page.locator("tr", has=page.locator(f'a[href="/plans/{range_id}/"]'))
    charge_row = page.locator("tr", has=page.locator(f'a[href="/plans/{charge_id}/"]'))
    expect(range_row).to_contain_text(local_window(day, "10:00", "14:00", "Europe/Brussels"))
    expect(range_row).to_contain_text("300 km range at 18.5 kWh/100 km")
    expect(range_row).to_contain_text("Draft")
    expect(charge_row).to_contain_text(local_window(day, "08:00", "11:30", "America/New_York"))
    expect(charge_row).to_contain_text("75 kWh charge")
    expect(charge_row).to_contain_text("Newark Yard")
    page.screenshot(path=artifacts / "plan_list.png", full_page=True)

    range_plan, charge_plan = Plan.objects.get(pk=range_id), Plan.objects.get(pk=charge_id)
    brussels_ten = datetime.combine(day, datetime.min.time(), ZoneInfo("Europe/Brussels"))
    newark_eight = datetime.combine(day, datetime.min.time(), ZoneInfo("America/New_York"))
    assert range_plan.scheduled_start == brussels_ten + timedelta(hours=10)
    assert charge_plan.scheduled_start == newark_eight + timedelta(hours=8)
    assert (range_plan.expected_range_km, str(range_plan.average_consumption)) == (300, "18.50")
    assert (charge_plan.expected_charge_kwh, charge_plan.expected_range_km) == (75, None)
    assert console_errors == []


def test_it_shows_the_errors_of_an_invalid_plan_next_to_the_fields(browser, live_server, artifacts):
    # With JavaScript on, choosing a target hides *and disables* the other target's fieldset,
    # so a browser cannot send both targets at all. A dispatcher without JavaScript can, and the
    # server must catch it, so this test drives a context with JavaScript off: the form is then
    # exactly what the server rendered, no DOM surgery needed.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-GB", java_script_enabled=False
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        login(page, live_server, *DISPATCHER)
        before = Plan.objects.count()
        day = plan_day()
        page.goto(f"{live_server.url}/plans/new/")
        page.get_by_label("Site", exact=True).select_option(label=BRUSSELS)
        fill_times(page, day, "14:00", f"{day.isoformat()} 10:00")
        page.get_by_role("radio", name="Range").check()
        page.get_by_label("Expected range (km)").fill("240")
        page.get_by_label("Expected charge (kWh)").fill("60")
        page.get_by_role("button", name="Save draft").click()

        expect(page.locator("#error-summary")).to_contain_text("Check the plan: 2 problems")
        expect(page.locator("#field-end_local .field-errors")).to_have_text(
            "Error: The end must be after the start."
        )
        expect(page.locator("#field-expected_charge_kwh .field-errors")).to_have_text(
            "Error: Charge is only for a charge plan; clear it or choose Charge."
        )
        expect(page.locator("#field-start_local .field-errors")).to_have_count(0)
        expect(page.locator("#field-expected_range_km .field-errors")).to_have_count(0)
        expect(page.get_by_label("Expected range (km)")).to_have_value("240")
        expect(page.get_by_label("Expected charge (kWh)")).to_have_value("60")
        expect(page.get_by_label("End (site time)")).to_have_value(f"{day.isoformat()} 10:00")
        page.screenshot(path=artifacts / "plan_form_errors.png", full_page=True)
        assert Plan.objects.count() == before
    finally:
        context.close()
