"""A dispatcher works with vehicles and weekly schedules in real Chromium.

Issue: "a dispatcher picks a vehicle and sees the site and consumption filled and the kWh↔km
conversion; saves a plan that overlaps the same vehicle and sees the error beside the field;
creates a weekday schedule, sees the preview with the DST night marked, saves it, and sees its
plans in the list with the vehicle shown; cancels an accepted plan and reads the notice."
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from plans import services
from plans.models import Plan, PlanState, Schedule, Submission, Vehicle
from plans.roles import roles_ensure
from plans.timezones import utc_to_wall
from tests.browser_fixture import login
from tests.factories import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DISPATCHER = ("dispatcher", "dispatch-demo-2026")


@pytest.fixture(autouse=True)
def demo_data():
    roles_ensure()
    seed_demo()


def test_picking_a_vehicle_fills_the_form_and_the_guards_speak_beside_the_field(
    page, live_server, artifacts, console_errors
):
    login(page, live_server, *DISPATCHER)
    page.goto(f"{live_server.url}/plans/new/")
    page.get_by_label("Vehicle (optional)").select_option(label="bus 4 · 350 kWh · Brussels Depot")
    expect(page.get_by_label("Site", exact=True)).to_have_value(
        str(Vehicle.objects.get(name="bus 4").home_location_id)
    )
    page.get_by_label("Range", exact=True).check()
    expect(page.get_by_label("Average consumption (kWh/100 km)")).to_have_value("110")
    # Another vehicle replaces the consumption filled in for the first one.
    page.get_by_label("Vehicle (optional)").select_option(label="van 21 · 90 kWh · Newark Yard")
    expect(page.get_by_label("Average consumption (kWh/100 km)")).to_have_value("28")
    page.get_by_label("Vehicle (optional)").select_option(label="bus 4 · 350 kWh · Brussels Depot")
    expect(page.get_by_label("Average consumption (kWh/100 km)")).to_have_value("110")
    page.get_by_label("Expected range (km)").fill("200")
    expect(page.locator("#energy-estimate")).to_have_text("Estimated energy: ≈ 220 kWh")
    page.get_by_label("Charge", exact=True).check()
    page.get_by_label("Expected charge (kWh)").fill("400")
    expect(page.locator("#range-estimate")).to_have_text(
        "Enough for ≈ 318 km at bus 4's 110 kWh/100 km (a full battery) — more than bus 4's "
        "350 kWh battery"
    )
    page.get_by_label("Expected charge (kWh)").fill("100")

    bus = Vehicle.objects.get(name="bus 4")
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    wall = utc_to_wall(start, "Europe/Brussels")
    services.plan_create(
        user=Plan.objects.first().created_by,
        vehicle=bus,
        location=bus.home_location,
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=6),
        target_kind="charge",
        expected_charge_kwh=50,
    )
    arrives, leaves = wall + timedelta(hours=2), wall + timedelta(hours=5)
    page.get_by_label("Date", exact=True).fill(f"{arrives:%Y-%m-%d}")
    page.get_by_label("Start (site time)").fill(f"{arrives:%H:%M}")
    page.get_by_label("End (site time)").fill(f"{leaves:%Y-%m-%d %H:%M}")
    page.screenshot(path=artifacts / "fleet-plan-form-vehicle.png", full_page=True)
    page.get_by_role("button", name="Save draft").click()

    error = page.locator("#field-vehicle .field-errors")
    expect(error).to_contain_text("bus 4 already has plan")
    expect(error).to_contain_text("overlaps this window")
    page.screenshot(path=artifacts / "fleet-plan-overlap-error.png", full_page=True)
    assert Plan.objects.filter(vehicle=bus).count() == 1
    assert console_errors == []


def test_a_dispatcher_creates_a_weekday_schedule_and_sees_its_plans(
    page, live_server, artifacts, console_errors
):
    login(page, live_server, *DISPATCHER)
    page.goto(f"{live_server.url}/schedules/new/")
    page.get_by_label("Vehicle", exact=True).select_option(label="bus 5 · 350 kWh · Brussels Depot")
    # Mon–Sat: the Saturday night stay is the one Europe's clocks change in (Sunday 02:00).
    page.get_by_label("Sat", exact=True).check()
    page.get_by_label("Arrives at (site time)").fill("18:30")
    page.get_by_label("Leaves at (site time)").fill("05:45")
    page.get_by_label("Leaves on").select_option(label="the next day")
    page.get_by_label("Charge", exact=True).check()
    page.get_by_label("Expected charge (kWh)").fill("160")
    # A first day just before Europe's spring-forward night: the live preview marks it.
    page.get_by_label("First day").fill("2027-03-22")
    preview = page.locator("#schedule-preview")
    expect(preview).to_contain_text(
        "DST night: The clocks change during this stay: it lasts 10 h 15, not 11 h 15."
    )
    expect(preview).to_contain_text("Sat 27 Mar 18:30 CET")
    expect(preview).to_contain_text("Sun 28 Mar 05:45 CEST")
    expect(preview).to_contain_text("Mon 29 Mar 18:30 CEST")
    page.screenshot(path=artifacts / "fleet-schedule-preview-dst.png", full_page=True)

    page.get_by_label("First day").fill(f"{timezone.now().date():%Y-%m-%d}")
    expect(preview).not_to_contain_text("Sat 27 Mar")
    page.get_by_role("button", name="Save schedule").click()
    page.wait_for_url(f"{live_server.url}/schedules/*/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("bus 5 at Brussels Depot")
    schedule = Schedule.objects.get(vehicle__name="bus 5")
    made = Plan.objects.filter(schedule=schedule).count()
    assert made >= 3
    page.screenshot(path=artifacts / "fleet-schedule-page-1280.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=artifacts / "fleet-schedule-page-390.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page itself scrolls sideways ({width} px)"
    page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(f"{live_server.url}/plans/?q=bus+5")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(made)
    expect(rows.first).to_contain_text("bus 5")
    page.screenshot(path=artifacts / "fleet-plan-list-vehicles.png", full_page=True)
    assert console_errors == []


def test_a_dispatcher_cancels_an_accepted_plan_and_reads_the_notice(
    page, live_server, artifacts, console_errors
):
    plan = Plan.objects.filter(state=PlanState.QUEUED, schedule__isnull=True).first()
    Submission.objects.filter(plan=plan).update(state="accepted")
    Plan.objects.filter(pk=plan.pk).update(state=PlanState.ACCEPTED)
    services.plan_state_counts_rebuild()

    login(page, live_server, *DISPATCHER)
    page.goto(f"{live_server.url}/plans/{plan.pk}/")
    page.get_by_role("link", name="Cancel plan…").click()
    expect(page.locator(".notice-warning")).to_contain_text(
        "MINT's API has no cancel. MINT accepted revision 1 of this plan and will keep it"
    )
    page.get_by_role("button", name="Cancel in the portal").click()
    expect(page.locator("#id_reason_error")).to_contain_text("Say why the plan is called off.")
    page.get_by_label("Why is it called off?").fill("Bus in the workshop")
    page.get_by_role("button", name="Cancel in the portal").click()
    page.wait_for_url(f"{live_server.url}/plans/{plan.pk}/")
    notice = page.locator("#cancel-notice")
    expect(notice).to_contain_text("MINT still holds revision 1 of this plan.")
    expect(notice).to_contain_text("tell the site's MINT operator")
    expect(page.locator(".badge").first).to_have_text("Cancelled")
    page.screenshot(path=artifacts / "fleet-cancelled-plan.png", full_page=True)
    plan.refresh_from_db()
    assert plan.state == PlanState.CANCELLED
    assert console_errors == []
