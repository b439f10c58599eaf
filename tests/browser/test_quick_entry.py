"""Quick entry in real Chromium: three overnight plans typed with the keyboard only through
"Save and add next", in a US-English browser (whose date and time inputs would show mm/dd/yyyy
and AM/PM); and the shortcuts' help, opened with "?" and closed with Esc.

Issue #11: "Browser tests in real Chromium for … "Save and add next" entering three plans with
the keyboard only."
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from plans.models import Location, Plan, PlanState
from plans.roles import roles_ensure
from tests.browser_fixture import login
from tests.factories import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DISPATCHER = ("dispatcher", "dispatch-demo-2026")
BRUSSELS = ZoneInfo("Europe/Brussels")
#: (vehicle typed, start, end): overnight charging, the end earlier than the start.
ENTRIES = [("bus 1", "1830", "0545"), ("bus 2", "19:00", "06:15"), ("bus 4", "2015", "0500")]


@pytest.fixture
def us_page(browser):
    """A browser set to US English: a ``type=date``/``datetime-local`` input would be
    mm/dd/yyyy with AM/PM here."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture(autouse=True)
def demo_data():
    roles_ensure()  # a transactional test before this one flushed the migration's groups
    seed_demo()


def focused_id(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def test_it_enters_three_overnight_plans_with_the_keyboard_only(us_page, live_server, artifacts):
    page = us_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    login(page, live_server, *DISPATCHER)
    # Far enough ahead that no demo plan or schedule has these buses then.
    day = (timezone.now() + timedelta(days=20)).date()
    loads: list[str] = []
    page.on(
        "framenavigated", lambda frame: loads.append(frame.url) if frame == page.main_frame else 0
    )

    page.keyboard.press("n")
    page.wait_for_url(f"{live_server.url}/plans/new/")
    expect(page.get_by_label("Vehicle (optional)")).to_be_focused()
    expect(page.get_by_label("Date", exact=True)).to_have_attribute("type", "text")
    loads.clear()
    depot = Location.objects.get(name="Brussels Depot")
    demo_plans = Plan.objects.count()

    for number, (vehicle, start, end) in enumerate(ENTRIES):
        expect(page.get_by_label("Vehicle (optional)")).to_be_focused()
        page.keyboard.type(vehicle)  # type-ahead picks the option; the script fills the site
        expect(page.get_by_label("Site", exact=True)).to_have_value(str(depot.pk))
        page.keyboard.press("Tab")  # site: filled in from the vehicle
        page.keyboard.press("Tab")  # date
        expect(page.get_by_label("Date", exact=True)).to_be_focused()
        if number == 0:
            # No site remembered yet: the day became tomorrow on Brussels' calendar when the
            # vehicle brought its site.
            tomorrow = timezone.now().astimezone(BRUSSELS).date() + timedelta(days=1)
            expect(page.get_by_label("Date", exact=True)).to_have_value(tomorrow.isoformat())
            page.keyboard.press("Control+a")
            page.keyboard.type(day.strftime("%d.%m.%Y"))
        else:
            expect(page.get_by_label("Date", exact=True)).to_have_value(day.isoformat())
        page.keyboard.press("Tab")
        page.keyboard.type(start)
        page.keyboard.press("Tab")
        page.keyboard.type(end)
        next_day = day + timedelta(days=1)
        expect(page.locator("#id_end_local_day")).to_have_text(
            f"Ends the next day: {next_day:%a} {next_day.day} {next_day:%b} "
            f"{end[:2]}:{end[-2:]} {datetime.combine(next_day, datetime.min.time(), BRUSSELS):%Z}"
        )
        page.keyboard.press("Tab")  # the target: Range, kept from the last plan after the first
        if number == 0:
            expect(page.get_by_role("radio", name="Range")).to_be_focused()
            page.keyboard.press("Space")
        expect(page.get_by_role("radio", name="Range")).to_be_checked()
        page.keyboard.press("Tab")
        expect(page.get_by_label("Expected range (km)")).to_be_focused()
        page.keyboard.type(str(200 + 20 * number))
        if number == 0:
            page.screenshot(path=artifacts / "quick_entry_form.png", full_page=True)
        with page.expect_navigation(url=f"{live_server.url}/plans/new/?*"):
            page.keyboard.press("Control+Shift+Enter")

        saved = Plan.objects.order_by("-pk").first()
        expect(page.locator(".messages")).to_contain_text(
            f"Plan {saved.pk} saved as a draft: {vehicle} at Brussels Depot"
        )
        expect(page.locator(".messages")).to_contain_text("(ends the next day)")
        expect(page.get_by_role("link", name=f"Plan {saved.pk}")).to_be_visible()

    assert len(loads) == len(ENTRIES)  # one page load a plan: the save answers with the form
    page.screenshot(path=artifacts / "quick_entry_after_three.png", full_page=True)
    plans = list(Plan.objects.order_by("pk")[demo_plans:])
    assert [p.vehicle.name for p in plans] == [e[0] for e in ENTRIES]
    for plan, (_, start, end) in zip(plans, ENTRIES, strict=True):
        local_start = plan.scheduled_start.astimezone(BRUSSELS)
        local_end = plan.scheduled_end.astimezone(BRUSSELS)
        assert (local_start.date(), f"{local_start:%H%M}") == (day, start.replace(":", ""))
        assert (local_end.date(), f"{local_end:%H%M}") == (
            day + timedelta(days=1),
            end.replace(":", ""),
        )
        assert plan.state == PlanState.DRAFT
    assert [p.expected_range_km for p in plans] == [200, 220, 240]
    assert errors == []


def test_it_puts_tomorrow_on_the_calendar_of_the_site_picked(page, live_server):
    # 02:00 UTC: already today in Brussels, still yesterday evening in Newark.
    login(page, live_server, *DISPATCHER)
    at_two = timezone.now().replace(hour=2, minute=0, second=0, microsecond=0)
    page.clock.set_fixed_time(at_two)
    page.goto(f"{live_server.url}/plans/new/")
    date_input = page.get_by_label("Date", exact=True)

    page.get_by_label("Site", exact=True).select_option(
        label="Newark Yard · US-EWR-03 · America/New_York"
    )
    expect(date_input).to_have_value(at_two.date().isoformat())
    page.get_by_label("Site", exact=True).select_option(
        label="Brussels Depot · BE-BRU-01 · Europe/Brussels"
    )
    expect(date_input).to_have_value((at_two.date() + timedelta(days=1)).isoformat())
    date_input.fill("24.12.2027")  # typed: it stays, whatever the site
    page.get_by_label("Site", exact=True).select_option(
        label="Newark Yard · US-EWR-03 · America/New_York"
    )
    expect(date_input).to_have_value("24.12.2027")


def test_a_vehicle_picked_moves_a_remembered_site_to_its_home_but_not_one_chosen_by_hand(
    page, live_server
):
    from django.contrib.auth.models import User

    from plans.services import preference_site_remember

    dispatcher = User.objects.get(username=DISPATCHER[0])
    preference_site_remember(user=dispatcher, location=Location.objects.get(name="Brussels Depot"))
    login(page, live_server, *DISPATCHER)
    page.goto(f"{live_server.url}/plans/new/")
    site = page.get_by_label("Site", exact=True)
    expect(site).to_have_value(str(Location.objects.get(name="Brussels Depot").pk))
    newark = str(Location.objects.get(name="Newark Yard").pk)
    page.get_by_label("Vehicle (optional)").select_option(label="van 22 · 90 kWh · Newark Yard")
    expect(site).to_have_value(newark)  # the remembered site was a default, not a choice

    page.goto(f"{live_server.url}/plans/new/")
    site.select_option(label="Berlin Hub · DE-BER-02 · Europe/Berlin")  # by hand: it stays
    page.get_by_label("Vehicle (optional)").select_option(label="van 22 · 90 kWh · Newark Yard")
    expect(site).not_to_have_value(newark)


def test_it_opens_the_shortcuts_help_with_a_question_mark_and_closes_it_with_escape(
    page, live_server, artifacts, console_errors
):
    login(page, live_server, *DISPATCHER)
    nav_plans = page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans")
    nav_plans.focus()

    page.keyboard.press("?")

    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Ctrl + Shift + Enter")
    page.screenshot(path=artifacts / "shortcuts_dialog.png")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(nav_plans).to_be_focused()

    # Single keys stay out of the way while typing, and can be switched off.
    page.goto(f"{live_server.url}/plans/new/")
    page.get_by_label("Note to MINT").type("n?")
    expect(page.get_by_label("Note to MINT")).to_have_value("n?")
    expect(dialog).to_be_hidden()
    page.get_by_role("heading", name="New plan").click()
    page.keyboard.press("n")  # unsaved changes on the page: "n" does not throw them away
    expect(page.get_by_label("Note to MINT")).to_have_value("n?")
    page.get_by_role("button", name="Keyboard shortcuts").click()
    page.get_by_label("Single-key shortcuts").uncheck()
    page.keyboard.press("Escape")
    page.goto(f"{live_server.url}/plans/")
    page.keyboard.press("?")
    expect(dialog).to_be_hidden()
    page.keyboard.press("n")
    expect(page).to_have_url(f"{live_server.url}/plans/")
    assert console_errors == []
