"""The site timeline in real Chromium: at a desk and on a phone, by mouse and by keyboard."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from plans.models import Location, Plan
from plans.timezones import utc_to_local
from tests.browser_fixture import login
from tests.factories import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DISPATCHER = ("dispatcher", "dispatch-demo-2026")
NO_PAGE_OVERFLOW = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


@pytest.fixture
def evening_url(live_server):
    """The demo's Brussels Depot from midnight tomorrow: a busy evening of bars."""
    seed_demo()
    brussels = Location.objects.get(mint_location_id="BE-BRU-01")
    tomorrow = (utc_to_local(timezone.now(), brussels.time_zone) + timedelta(days=1)).date()
    return f"{live_server.url}/sites/{brussels.pk}/?day={tomorrow:%Y-%m-%d}"


@pytest.mark.parametrize("width", [1280, 390])
def test_the_timeline_fits_the_screen_and_scrolls_inside_its_box(
    browser, live_server, evening_url, artifacts, width
):
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="en-GB")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    login(page, live_server, *DISPATCHER)
    page.goto(evening_url)

    expect(page.get_by_role("heading", name="Brussels Depot")).to_be_visible()
    bars = page.locator("a.tl-bar")
    assert bars.count() >= 6
    page.screenshot(path=artifacts / f"timeline-{width}.png", full_page=True)
    assert page.evaluate(NO_PAGE_OVERFLOW), "the page itself scrolls sideways"

    scroller = page.locator(".tl-scroll")
    if width == 1280:
        # At a desk all 48 hours fit: nothing to scroll.
        assert scroller.evaluate("box => box.scrollWidth <= box.clientWidth")
    else:
        # On a phone the chart is wider than its box: it scrolls, and the vehicles stay put.
        label = page.locator(".tl-label", has_text="bus 6").first
        before = label.bounding_box()["x"]
        assert scroller.evaluate("box => { box.scrollLeft = 600; return box.scrollLeft; }") > 0
        assert label.bounding_box()["x"] == before
        expect(page.locator("a.tl-bar").first).to_be_visible()
        page.screenshot(path=artifacts / "timeline-390-scrolled.png", full_page=True)

    page.get_by_text("The same as a table").click()
    expect(page.locator(".tl-table table").first).to_be_visible()
    assert page.evaluate(NO_PAGE_OVERFLOW)
    page.screenshot(path=artifacts / f"timeline-{width}-table.png", full_page=True)
    assert errors == []
    context.close()


def test_a_bar_leads_to_its_plan(page, live_server, evening_url, console_errors):
    login(page, live_server, *DISPATCHER)
    page.goto(evening_url)
    plan = Plan.objects.get(vehicle__name="bus 6", expected_charge_kwh=400)

    bar = page.get_by_role("link", name=f"Plan {plan.pk}: bus 6, 400 kWh charge")
    expect(bar).to_have_count(1)
    bar.click()

    page.wait_for_url(f"{live_server.url}/plans/{plan.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Plan {plan.pk}")
    assert console_errors == []


def test_the_keyboard_reaches_every_bar_in_row_order(page, live_server, evening_url):
    login(page, live_server, *DISPATCHER)
    page.goto(evening_url)
    expected = page.locator("a.tl-bar").evaluate_all("links => links.map(a => a.href.baseVal)")
    assert len(expected) >= 6

    page.get_by_role("button", name="Show").focus()
    reached = []
    for _ in range(len(expected) + 20):
        page.keyboard.press("Tab")
        href = page.evaluate(
            "() => { const a = document.activeElement;"
            " return a.classList.contains('tl-bar') ? a.href.baseVal : null; }"
        )
        if href:
            reached.append(href)
        elif reached:
            break

    assert reached == expected
    # The focused bar is drawn with a visible ring.
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.matches(':focus-visible')")
