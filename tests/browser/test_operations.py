"""The operator's view in real Chromium: the MINT health widget follows MINT without a reload,
and no page waits on MINT, even when MINT's health endpoint hangs."""

import statistics
import time

import pytest
from playwright.sync_api import expect

from tests.browser_fixture import login
from tests.processes import start_worker, stop

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def watched_mint(settings, mint_sandbox):
    """The sandbox, watched by one real worker that checks its health twice a second."""
    settings.HEALTH_WIDGET_REFRESH = 0.5
    settings.MINT_HEALTH_INTERVAL = 0.5
    worker = start_worker(
        mint_sandbox, "ops-worker", MINT_HEALTH_INTERVAL="0.5", MINT_READ_TIMEOUT="1"
    )
    yield mint_sandbox
    stop(worker)


def test_it_turns_the_widget_down_and_up_again_without_a_reload(
    live_server, page, dispatcher, watched_mint, artifacts, console_errors
):
    login(page, live_server, "dispatcher", "dispatcher-pass-123")
    widget = page.locator("#health-widget")
    expect(widget).to_contain_text("MINT up", timeout=15_000)
    page.evaluate("window.__sameDocument = true")

    watched_mint.set_behaviour(health_status=503)
    expect(widget).to_contain_text("MINT down", timeout=15_000)
    expect(widget).to_contain_text("HTTP 503")
    panel = page.locator("#operations-panel")
    expect(panel).to_contain_text("Down (HTTP 503)")
    expect(panel).to_contain_text("Running ops-worker")
    page.screenshot(path=str(artifacts / "health_widget_down.png"))

    watched_mint.set_behaviour(health_status=200)
    expect(widget).to_contain_text("MINT up", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True, "the page must not have reloaded"
    assert console_errors == []
    expect(page.locator("#operations-heading")).to_be_visible()


def _dashboard_seconds(page, url: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = page.request.get(url)
        times.append(time.perf_counter() - started)
        assert response.status == 200
    return times


def test_a_hanging_health_endpoint_does_not_slow_any_page(
    live_server, page, dispatcher, watched_mint, artifacts, console_errors
):
    login(page, live_server, "dispatcher", "dispatcher-pass-123")
    expect(page.locator("#health-widget")).to_contain_text("MINT up", timeout=15_000)
    dashboard = f"{live_server.url}/"
    _dashboard_seconds(page, dashboard, 3)  # warm up
    normal = _dashboard_seconds(page, dashboard, 10)

    watched_mint.set_behaviour(health_hang=30)
    time.sleep(1.0)  # the worker is now stuck inside a /health/ call
    hanging = _dashboard_seconds(page, dashboard, 10)

    bound = max(3 * statistics.median(normal), statistics.median(normal) + 0.25)
    assert statistics.median(hanging) <= bound, (normal, hanging)
    assert max(hanging) <= bound + 0.5, (normal, hanging)
    page.goto(dashboard)
    # No answer says nothing about MINT: unknown, not down (and deliveries go on).
    expect(page.locator("#health-widget")).to_contain_text("MINT unknown", timeout=15_000)
    expect(page.locator("#health-widget")).to_contain_text("no answer")
    expect(page.locator("#operations-panel")).to_contain_text("/health/ did not answer")
    page.screenshot(path=str(artifacts / "dashboard_mint_hanging.png"), full_page=True)


def test_it_puts_refused_credentials_in_the_header_and_a_banner_without_a_reload(
    live_server, page, viewer, settings, mint_sandbox, artifacts, console_errors
):
    """A worker with the wrong secret; a viewer's open page learns of it by itself."""
    settings.HEALTH_WIDGET_REFRESH = 0.5
    login(page, live_server, "viewer", "viewer-pass-123")
    page.evaluate("window.__sameDocument = true")
    worker = start_worker(
        mint_sandbox, "wrong-secret", MINT_CLIENT_SECRET="nope", MINT_HEALTH_INTERVAL="0.5"
    )
    try:
        mint_sandbox.set_behaviour(health_requires_token=True)
        banner = page.locator("#worker-banner")
        expect(banner).to_contain_text(
            "MINT refuses the portal's credentials: check MINT_CLIENT_ID and MINT_CLIENT_SECRET.",
            timeout=15_000,
        )
        widget = page.locator("#health-widget")
        expect(widget).to_contain_text("MINT refuses our credentials")
        expect(widget).not_to_contain_text("MINT up")
        page.screenshot(path=str(artifacts / "header_credentials_refused.png"))
    finally:
        stop(worker)
    assert page.evaluate("window.__sameDocument") is True, "the page must not have reloaded"
    assert console_errors == []
