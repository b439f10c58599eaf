"""A plan goes from the browser through a real worker process to the MINT sandbox and back.

Issue: "the demo dispatcher creates a plan, submits it, and watches the page turn to accepted
without reloading; then a plan the sandbox rejects shows the sandbox's message".
"""

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from plans.models import Plan, Submission
from plans.roles import roles_ensure
from tests.browser_fixture import login
from tests.factories import seed_demo
from tests.sandbox_fixture import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MANAGE = str(Path(__file__).resolve().parents[2] / "manage.py")
DISPATCHER = ("dispatcher", "dispatch-demo-2026")
BERLIN = "Berlin Hub · DE-BER-02 · Europe/Berlin"
#: The worker starts a Django process and the page polls every 2 s: generous, never slept.
DELIVERED_WITHIN_MS = 20_000


@pytest.fixture(autouse=True)
def demo_data(settings, mint_sandbox):
    """The demo sites, logins and plans, and a portal that delivers to the sandbox."""
    settings.MINT_API_URL = mint_sandbox.url
    roles_ensure()  # a transactional test before this one flushed the migration's groups
    seed_demo()


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def start_worker(mint_sandbox) -> Iterator[Callable[[], subprocess.Popen]]:
    """Start ``manage.py mint_worker`` as its own process on the live test database."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "MINT_API_URL": mint_sandbox.url,
            "MINT_CLIENT_ID": SANDBOX_CLIENT_ID,
            "MINT_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
            "MINT_WORKER_IDLE_SLEEP": "0.1",
        }
        process = subprocess.Popen(
            [sys.executable, MANAGE, "mint_worker", "--name", "browser-test"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for process in started:
        assert process.returncode == 0, process.stderr.read().decode()


def fill_plan_form(page, live_server, *, range_km: str) -> None:
    """The form for a Berlin range plan tomorrow, filled in."""
    day = (timezone.now() + timedelta(days=1)).date().isoformat()
    page.goto(f"{live_server.url}/plans/new/")
    page.get_by_label("Site", exact=True).select_option(label=BERLIN)
    page.get_by_label("Date", exact=True).fill(day)
    page.get_by_label("Start (site time)").fill("09:00")
    page.get_by_label("End (site time)").fill("12:00")
    page.get_by_role("radio", name="Range").check()
    page.get_by_label("Expected range (km)").fill(range_km)


def create_and_submit(page, live_server, *, range_km: str) -> int:
    """Fill the form for a Berlin range plan tomorrow and press "Save and submit"."""
    fill_plan_form(page, live_server, range_km=range_km)
    page.get_by_role("button", name="Save and submit").click()
    page.wait_for_url(f"{live_server.url}/plans/*/")
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def create_draft(page, live_server, *, range_km: str) -> int:
    """Fill the form for a Berlin range plan tomorrow and press "Save draft"."""
    fill_plan_form(page, live_server, range_km=range_km)
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(f"{live_server.url}/plans/*/")
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def status_badge(page):
    return page.locator("#plan-status-bar .status-line .badge")


def test_it_turns_the_plan_page_to_accepted_then_shows_a_rejection_live(
    page, live_server, artifacts, mint_sandbox, start_worker, console_errors
):
    login(page, live_server, *DISPATCHER)

    plan_id = create_and_submit(page, live_server, range_km="240")

    expect(page.locator(".messages")).to_contain_text(f"Plan {plan_id} saved and queued")
    expect(status_badge(page)).to_have_text("Queued")
    expect(page.locator("#plan-status-bar .live-dot")).to_be_visible()
    page.evaluate("window.__sameDocument = 'still here'")
    detail_url = page.url
    start_worker()

    expect(status_badge(page)).to_have_text("Accepted", timeout=DELIVERED_WITHIN_MS)
    expect(page.locator("#plan-status-bar .status-text")).to_contain_text(
        "MINT accepted revision 1"
    )
    expect(page.locator("#plan-status-bar .live-dot")).to_have_count(0)
    expect(page.locator("#plan-activity table.attempts tbody tr").first).to_contain_text("200")
    assert page.evaluate("window.__sameDocument") == "still here"
    assert page.url == detail_url
    submission = Submission.objects.get(plan_id=plan_id)
    assert [body["messageId"] for body in mint_sandbox.accepted].count(
        str(submission.message_id)
    ) == 1
    page.screenshot(path=artifacts / "plan_detail_accepted.png", full_page=True)

    message = "expectedRange: too far for this site."
    mint_sandbox.set_behaviour(reject_all=[message])
    rejected_id = create_and_submit(page, live_server, range_km="9999")

    expect(status_badge(page)).to_have_text("Rejected", timeout=DELIVERED_WITHIN_MS)
    expect(page.locator("#plan-status-bar .mint-notes")).to_have_text(f"MINT rejected: {message}")
    expect(page.locator("#plan-status-bar")).to_contain_text("Retry now")
    assert Plan.objects.get(pk=rejected_id).state == "rejected"
    page.screenshot(path=artifacts / "plan_detail_rejected.png", full_page=True)

    page.locator("#plan-status-bar").get_by_role("link", name="Edit").click()
    expect(page.locator("#field-expected_range_km .mint-notes")).to_have_text(
        f"MINT rejected: {message}"
    )
    expect(page.get_by_label("Expected range (km)")).to_have_value("9999")
    assert console_errors == []


def test_it_turns_the_list_rows_to_accepted_after_submit_selected(
    page, live_server, artifacts, mint_sandbox, start_worker, console_errors
):
    login(page, live_server, *DISPATCHER)
    first = create_draft(page, live_server, range_km="120")
    second = create_draft(page, live_server, range_km="130")

    page.goto(f"{live_server.url}/plans/?site={Plan.objects.get(pk=first).location_id}")
    page.get_by_label(f"Select plan {first}").check()
    page.get_by_label(f"Select plan {second}").check()
    page.get_by_role("button", name="Submit selected").click()
    page.wait_for_url(f"{live_server.url}/plans/?site=*")
    rows = {
        pk: page.locator("tr", has=page.locator(f'a[href="/plans/{pk}/"]'))
        for pk in (first, second)
    }
    for row in rows.values():
        expect(row.locator(".badge")).to_have_text("Queued")
    page.evaluate("window.__sameDocument = 'still here'")
    start_worker()

    for row in rows.values():
        expect(row.locator(".badge")).to_have_text("Accepted", timeout=DELIVERED_WITHIN_MS)
    assert page.evaluate("window.__sameDocument") == "still here"
    expect(page.locator("#plan-results")).to_have_attribute("data-live", "false")
    page.screenshot(path=artifacts / "plan_list_accepted.png", full_page=True)
    assert console_errors == []
