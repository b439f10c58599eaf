"""axe-core in real Chromium finds no accessibility violation on the pages dispatchers use."""

from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

from plans.models import Location, Plan, Schedule
from plans.timezones import utc_to_local
from tests.browser_fixture import login
from tests.factories import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def assert_no_violations(page, name: str) -> None:
    results = Axe().run(page)
    assert results.violations_count == 0, f"{name}:\n{results.generate_report()}"


def _import_preview():
    """A preview with a new row, a row with a warning and a row with an error."""
    from django.contrib.auth.models import User

    from plans.services.imports import import_preview

    day = (timezone.now() + timedelta(days=12)).date()
    rows = [
        f"DE-BER-02;bus 11;{day} 08:00;{day} 10:00;;;60;",
        f"DE-BER-02;bus 12;{day} 08:00;{day} 09:00;;;900;",
        f"XX-NOPE;bus 13;{day} 08:00;{day} 10:00;;;60;",
    ]
    data = "\n".join(["site;vehicle;start;end;range;consumption;charge;note", *rows])
    return import_preview(
        user=User.objects.get(username="dispatcher"), file_name="day.csv", data=data.encode()
    )


def test_it_has_no_axe_violations_on_the_main_pages(live_server, page, artifacts, console_errors):
    seed_demo()
    page.goto(f"{live_server.url}/accounts/login/")
    assert_no_violations(page, "login")

    login(page, live_server, "dispatcher", "dispatch-demo-2026")
    plan = Plan.objects.order_by("pk").first()
    pages = {
        "dashboard": "/",
        "shift handover": "/shift/?hours=24",
        "shift handover, span it cannot read": "/shift/?hours=7",
        "retry failed since": "/plans/retry-failed/?since_day=2020-01-01&since_time=00:00&zone=UTC",
        "retry failed since, bad time": "/plans/retry-failed/?since_day=soon&since_time=9&zone=UTC",
        "plan list": "/plans/",
        "plan form": "/plans/new/",
        "plan edit": f"/plans/{plan.pk}/edit/",
        "plan detail": f"/plans/{plan.pk}/",
        "plan with a warning": f"/plans/{Plan.objects.exclude(warnings=[]).first().pk}/",
        "cancel plan": f"/plans/{plan.pk}/cancel/",
        "vehicles": "/vehicles/",
        "schedules": "/schedules/",
        "schedule form": "/schedules/new/",
        "schedule page": f"/schedules/{Schedule.objects.first().pk}/",
        "schedule edit": f"/schedules/{Schedule.objects.first().pk}/edit/",
        "import": "/plans/import/",
        "copy a day": "/plans/copy-day/",
        "import preview": f"/plans/bulk/{_import_preview().pk}/",
    }
    for name, path in pages.items():
        page.goto(f"{live_server.url}{path}")
        assert_no_violations(page, name)

    page.goto(f"{live_server.url}/plans/new/")
    page.get_by_role("button", name="Save draft").click()
    expect_errors = page.locator(".field-error, .errorlist, [role=alert]")
    assert expect_errors.count() > 0
    assert_no_violations(page, "plan form with errors")

    page.goto(f"{live_server.url}/plans/new/")
    page.get_by_role("heading", name="New plan").click()  # out of the vehicle field
    page.keyboard.press("?")
    page.get_by_role("dialog", name="Keyboard shortcuts").wait_for()
    assert_no_violations(page, "plan form with the keyboard shortcuts open")
    page.keyboard.press("Escape")

    page.goto(f"{live_server.url}/schedules/{Schedule.objects.first().pk}/edit/")
    page.get_by_role("button", name="Review the effect").click()
    page.locator("#schedule-effect").wait_for()
    assert_no_violations(page, "schedule edit with its effect and preview")
    assert console_errors == []


def test_it_has_no_axe_violations_on_the_account_page_with_calendar_tokens(
    live_server, page, artifacts, console_errors
):
    seed_demo()
    login(page, live_server, "viewer", "viewer-demo-2026")
    page.goto(f"{live_server.url}/accounts/")
    page.get_by_label("Name").fill("Outlook in the depot office")
    page.get_by_role("button", name="Make a calendar token").click()

    page.get_by_role("heading", name="Your calendar feed URLs").wait_for()
    assert page.get_by_label("Brussels Depot").input_value().endswith(".ics")
    page.screenshot(path=artifacts / "feed-urls.png", full_page=True)
    assert_no_violations(page, "a new calendar token's feed URLs")

    page.get_by_role("link", name="I have kept them: back to my account").click()
    page.get_by_role("button", name="Revoke Outlook in the depot office").wait_for()
    page.screenshot(path=artifacts / "account-with-token.png", full_page=True)
    assert_no_violations(page, "account page with a calendar token")

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the page keeps its width
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.get_by_role("button", name="Make a calendar token").click()  # no name: an error
    page.locator(".field-errors").wait_for()
    assert_no_violations(page, "account page with a token name missing")


def test_it_has_no_axe_violations_on_a_plan_whose_retries_are_folded(
    live_server, page, artifacts, console_errors
):
    from django.contrib.auth.models import User
    from django.utils import timezone

    from plans.mint.outcomes import Accepted, Unavailable
    from tests.factories import deliver, make_plan

    seed_demo()
    dispatcher = User.objects.get(username="dispatcher")
    plan = make_plan(user=dispatcher, status_note="folded retries")
    first = timezone.now() + timedelta(minutes=5)
    failing = [Unavailable(503, 30, "{}", error="MINT is down.")] * 6
    deliver(
        plan,
        dispatcher,
        *failing,
        Accepted(200, 12, "{}"),
        at=[first + timedelta(minutes=2 * n) for n in range(7)],
    )
    login(page, live_server, "dispatcher", "dispatch-demo-2026")

    page.goto(f"{live_server.url}/plans/{plan.pk}/")
    assert_no_violations(page, "plan detail with folded retries")
    rows = page.locator(".attempt-row")
    assert rows.count() == 7
    assert not rows.first.is_visible()
    for summary in page.locator("details.attempts-group > summary, .timeline-run summary").all():
        summary.click()
    assert all(rows.nth(n).is_visible() for n in range(7))
    assert page.get_by_text("Picked up for sending").count() == 7
    page.screenshot(path=str(artifacts / "plan_detail_folded_retries.png"), full_page=True)
    assert_no_violations(page, "plan detail with folded retries opened")
    assert console_errors == []


def test_it_has_no_axe_violations_on_the_sites_and_their_timelines(
    live_server, page, console_errors
):
    seed_demo()
    login(page, live_server, "viewer", "viewer-demo-2026")
    brussels = Location.objects.get(mint_location_id="BE-BRU-01")
    tomorrow = (utc_to_local(timezone.now(), brussels.time_zone) + timedelta(days=1)).date()
    pages = {
        "sites": "/sites/",
        "site timeline": f"/sites/{brussels.pk}/",
        "site timeline, tomorrow with called-off plans": (
            f"/sites/{brussels.pk}/?day={tomorrow:%Y-%m-%d}&called_off=1"
        ),
        "all sites timeline": "/sites/timeline/",
    }
    for name, path in pages.items():
        page.goto(f"{live_server.url}{path}")
        assert_no_violations(page, name)
        for summary in page.locator("details summary").all():
            summary.click()
        assert_no_violations(page, f"{name}, legend and tables open")
    assert console_errors == []
