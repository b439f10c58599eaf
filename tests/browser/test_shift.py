"""The handover page in real Chromium: a dispatcher submits the window's drafts from it, and it
prints one A4 sheet per site."""

import re

import pytest
from playwright.sync_api import expect

from plans.models import Plan, PlanState
from plans.roles import roles_ensure
from tests.browser_fixture import login
from tests.factories import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DISPATCHER = ("dispatcher", "dispatch-demo-2026")


@pytest.fixture(autouse=True)
def demo_data():
    roles_ensure()
    seed_demo()


def test_a_dispatcher_submits_drafts_from_the_handover_page(
    page, live_server, artifacts, console_errors
):
    login(page, live_server, *DISPATCHER)
    page.get_by_role("link", name="Shift", exact=True).click()
    page.get_by_label("Show the next").select_option(label="24 hours")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("next 24 hours")
    drafts = list(
        Plan.objects.filter(pk__in=_listed(page), state=PlanState.DRAFT).order_by("scheduled_start")
    )
    assert len(drafts) >= 2, "the demo has drafts in the next 24 hours"
    page.screenshot(path=artifacts / "shift-handover.png", full_page=True)

    page.get_by_label(f"Select plan {drafts[0].pk}").check()
    page.get_by_role("button", name="Submit ticked drafts").click()

    expect(page.locator(".message-success")).to_have_text(
        re.compile(r"1 plan queued for delivery to MINT\.")
    )
    expect(page.get_by_role("heading", level=1)).to_contain_text("next 24 hours")
    rest = len(drafts) - 1
    page.get_by_role("button", name=f"Submit all {rest} draft").click()

    expect(page.locator(".message-success")).to_contain_text(f"{rest} plan")
    expect(page.get_by_role("button", name=re.compile("Submit all"))).to_have_count(0)
    states = set(Plan.objects.filter(pk__in=[d.pk for d in drafts]).values_list("state", flat=True))
    assert states == {PlanState.QUEUED}
    assert console_errors == []


def test_it_prints_one_a4_sheet_per_site(page, live_server, artifacts):
    login(page, live_server, *DISPATCHER)
    page.goto(f"{live_server.url}/shift/?hours=24")
    sites = page.locator("section.shift-site").count()
    assert sites >= 2, "the demo has plans at two sites in the next 24 hours"

    page.emulate_media(media="print")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    assert page.locator("button:visible").count() == 0
    page.screenshot(path=artifacts / "shift-handover-print.png", full_page=True)
    pdf = page.pdf(format="A4", path=artifacts / "shift-handover.pdf")

    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == sites


def _listed(page) -> list[int]:
    return [
        int(link.inner_text())
        for link in page.locator("section.shift-site td.num a").all()
        if link.inner_text().isdigit()
    ]
