"""An administrator's first login in real Chromium: password, then setting up the authenticator
app from the QR code page (the test plays the phone: it computes the code from the key shown),
the recovery codes shown once, and the admin; then a later login with a recovery code."""

import re
from base64 import b32decode

import pytest
from django_otp.oath import totp
from playwright.sync_api import expect

from tests.browser.test_accessibility import assert_no_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _password_login(page, live_server, next_url: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_url}")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("admin-pass-123")
    page.get_by_role("button", name="Log in").click()


def test_an_administrator_sets_up_two_step_login_and_opens_the_admin(
    live_server, page, admin_user, artifacts, console_errors
):
    _password_login(page, live_server, "/admin/")
    page.wait_for_url(re.compile(r"/accounts/two-factor/setup/\?next=/admin/$"))
    qr = page.locator("img.qr-code")
    expect(qr).to_be_visible()
    assert qr.evaluate("image => image.complete && image.naturalWidth > 0"), "QR code not drawn"
    page.screenshot(path=str(artifacts / "two_factor_setup.png"), full_page=True)
    assert_no_violations(page, "two-factor setup")

    secret = page.locator("#totp-secret").inner_text()
    code = f"{totp(b32decode(secret.replace(' ', ''))):06d}"
    page.get_by_label("Code from the app").fill(code)
    page.get_by_role("button", name="Turn on two-step login").click()

    codes = page.locator("#recovery-codes code")
    expect(codes).to_have_count(10)
    recovery = codes.all_inner_texts()
    page.screenshot(path=str(artifacts / "two_factor_recovery_codes.png"), full_page=True)
    assert_no_violations(page, "recovery codes")
    page.get_by_role("link", name="I have kept them: continue").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()

    page.goto(f"{live_server.url}/accounts/")
    expect(page.get_by_text("On: after your password")).to_be_visible()
    assert not any(code in page.content() for code in recovery), "codes are shown only once"
    page.get_by_role("button", name="Log out").click()

    _password_login(page, live_server, "/admin/")
    page.wait_for_url(re.compile(r"/accounts/two-factor/\?next=/admin/$"))
    page.get_by_label("Code").fill(recovery[0])
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    assert console_errors == []
