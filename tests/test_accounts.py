"""Accounts: login throttling by the real client address, the per-address limit, the second
factor, password changes and the login audit."""

import json
import logging
import re
from base64 import b32decode

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.contrib.auth.models import User
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from plans.logs import JsonFormatter
from plans.services import recovery_codes_renew
from tests.conftest import login_with_second_factor, totp_device
from tests.test_security import PRODUCTION_ENV, manage

PROXY_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]


def _login(client, username: str, password: str, address: str | None = None):
    headers = {"X-Forwarded-For": address} if address else {}
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, headers=headers
    )


@pytest.mark.parametrize(("behind_proxy", "order"), [("1", PROXY_ORDER), ("0", ["REMOTE_ADDR"])])
def test_it_reads_the_client_address_from_x_forwarded_for_only_behind_the_proxy(
    behind_proxy, order
):
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.AXES_IPWARE_META_PRECEDENCE_ORDER)",
        env={**PRODUCTION_ENV, "BEHIND_PROXY": behind_proxy},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(order)


@pytest.mark.django_db
def test_it_locks_the_address_behind_the_proxy_not_everyone(client, admin_user, settings):
    settings.AXES_IPWARE_META_PRECEDENCE_ORDER = PROXY_ORDER
    for _ in range(5):
        _login(client, "admin", "wrong", address="203.0.113.7")

    attacker = _login(client, "admin", "admin-pass-123", address="203.0.113.7")
    owner = _login(client, "admin", "admin-pass-123", address="198.51.100.20")

    assert attacker.status_code == 429
    assert owner.status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}


@pytest.mark.django_db
def test_without_the_proxy_a_clients_own_x_forwarded_for_is_ignored(client, dispatcher):
    for number in range(5):
        _login(client, "dispatcher", "wrong", address=f"203.0.113.{number}")

    again = _login(client, "dispatcher", "dispatcher-pass-123", address="198.51.100.20")

    assert again.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@pytest.mark.django_db
def test_it_locks_an_address_that_tries_many_usernames(client, dispatcher, settings):
    settings.AXES_IPWARE_META_PRECEDENCE_ORDER = PROXY_ORDER
    for number in range(19):
        first = _login(client, f"user{number}", "Winter2026!", address="203.0.113.7")
        assert first.status_code == 200, number
    twentieth = _login(client, "user19", "Winter2026!", address="203.0.113.7")

    sprayer = _login(client, "dispatcher", "dispatcher-pass-123", address="203.0.113.7")
    elsewhere = _login(client, "dispatcher", "dispatcher-pass-123", address="198.51.100.20")

    assert twentieth.status_code == 429
    assert sprayer.status_code == 429
    assert b"from this address, for several usernames" in sprayer.content
    assert elsewhere.status_code == 302


@pytest.mark.django_db
def test_the_address_limit_counts_only_the_cool_off(client, dispatcher, settings):
    from datetime import timedelta

    from django.utils import timezone

    for number in range(20):
        _login(client, f"user{number}", "wrong")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert _login(client, "dispatcher", "dispatcher-pass-123").status_code == 302


# --- the second factor -----------------------------------------------------------------------


def _code_for(secret: str) -> str:
    """What an authenticator app that scanned ``secret`` shows now."""
    return f"{totp(b32decode(secret.replace(' ', ''))):06d}"


def _shown_secret(page: str) -> str:
    return re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1)


def _password_login(client, user, next_url: str = "/"):
    return client.post(
        f"/accounts/login/?next={next_url}",
        {"username": user.username, "password": f"{user.username}-pass-123", "next": next_url},
        follow=True,
    )


@pytest.mark.django_db
def test_the_admin_refuses_an_administrator_who_gave_only_the_password(client, admin_user):
    landed = _password_login(client, admin_user, "/admin/")

    assert landed.redirect_chain[-1][0] == "/accounts/two-factor/setup/?next=/admin/"
    assert landed.request["PATH_INFO"] == "/accounts/two-factor/setup/"
    assert "Set up two-step login" in landed.content.decode()
    assert 'id="health-widget"' not in landed.content.decode()  # nothing for a password alone
    for path in ("/admin/", "/admin/auth/user/", "/", "/plans/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/two-factor/?next="), path


@pytest.mark.django_db
def test_the_admin_site_itself_refuses_without_the_second_factor(client, admin_user, settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "SecondFactor" not in m]
    client.force_login(admin_user)

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_an_administrator_sets_up_the_app_and_sees_recovery_codes_once(client, admin_user):
    setup = _password_login(client, admin_user, "/admin/")
    page = setup.content.decode()
    assert re.search(r'<img class="qr-code" src="data:image/svg\+xml;base64,[A-Za-z0-9+/=]+"', page)

    done = client.post(
        "/accounts/two-factor/setup/", {"code": _code_for(_shown_secret(page)), "next": "/admin/"}
    )

    codes = re.findall(r"<li><code>([a-z0-9]+)</code></li>", done.content.decode())
    assert done.status_code == 200
    assert len(codes) == 10
    assert "no-store" in done["Cache-Control"]
    assert client.get("/admin/").status_code == 200
    account = client.get("/accounts/").content.decode()
    assert "On: after your password" in account
    assert not any(code in account for code in codes)
    assert StaticToken.objects.filter(device__user=admin_user).count() == 10


@pytest.mark.django_db
def test_a_wrong_code_does_not_turn_the_second_factor_on(client, admin_user):
    page = _password_login(client, admin_user).content.decode()
    right = _code_for(_shown_secret(page))
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    response = client.post("/accounts/two-factor/setup/", {"code": wrong})

    assert "That is not the code the app shows now" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=admin_user, confirmed=True).exists()
    assert client.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_login_asks_for_the_apps_code_and_takes_it(client, admin_user):
    device = totp_device(admin_user)

    asked = _password_login(client, admin_user, "/admin/")
    assert asked.request["PATH_INFO"] == "/accounts/two-factor/"
    passed = client.post(
        "/accounts/two-factor/", {"code": f"{totp(device.bin_key):06d}", "next": "/admin/"}
    )

    assert passed.status_code == 302
    assert passed["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_a_recovery_code_works_once(client, admin_user):
    totp_device(admin_user)
    code = recovery_codes_renew(user=admin_user)[0]

    _password_login(client, admin_user)
    first = client.post("/accounts/two-factor/", {"code": code})
    client.post("/accounts/logout/")
    _password_login(client, admin_user)
    second = client.post("/accounts/two-factor/", {"code": code})

    assert first.status_code == 302
    assert second.status_code == 200
    assert "That code is not right, or was used already" in second.content.decode()
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_a_password_alone_cannot_replace_the_app(client, admin_user):
    device = totp_device(admin_user)
    _password_login(client, admin_user)

    response = client.get("/accounts/two-factor/setup/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/two-factor/?next=")
    assert list(TOTPDevice.objects.filter(user=admin_user)) == [device]


@pytest.mark.django_db
def test_a_dispatcher_logs_in_with_the_password_alone_until_they_turn_it_on(client, dispatcher):
    assert _password_login(client, dispatcher).request["PATH_INFO"] == "/"
    page = client.get("/accounts/two-factor/setup/").content.decode()
    client.post("/accounts/two-factor/setup/", {"code": _code_for(_shown_secret(page))})
    client.post("/accounts/logout/")

    asked = _password_login(client, dispatcher, "/plans/")

    assert asked.request["PATH_INFO"] == "/accounts/two-factor/"
    assert client.get("/plans/").status_code == 302


@pytest.mark.django_db
def test_a_dispatcher_may_turn_it_off_an_administrator_may_not(client, dispatcher, admin_client):
    login_with_second_factor(client, dispatcher)

    client.post("/accounts/two-factor/off/")
    refused = admin_client.post("/accounts/two-factor/off/", follow=True)

    assert not TOTPDevice.objects.filter(user=dispatcher).exists()
    assert "Administrators must keep their second factor" in refused.content.decode()
    assert TOTPDevice.objects.filter(user__username="admin").exists()


# --- passwords -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_user_changes_their_password_of_at_least_twelve_characters(dispatcher_client):
    old = "dispatcher-pass-123"
    short = dispatcher_client.post(
        "/accounts/password/",
        {"old_password": old, "new_password1": "Kq7#vbn2Lm", "new_password2": "Kq7#vbn2Lm"},
    )
    changed = dispatcher_client.post(
        "/accounts/password/",
        {"old_password": old, "new_password1": "Kq7#vbn2Lm-x9", "new_password2": "Kq7#vbn2Lm-x9"},
        follow=True,
    )

    assert "at least 12 characters" in short.content.decode()
    assert "Your password is changed." in changed.content.decode()
    assert changed.request["PATH_INFO"] == "/accounts/"  # still logged in
    assert User.objects.get(username="dispatcher").check_password("Kq7#vbn2Lm-x9")


# --- the login audit -------------------------------------------------------------------------


@pytest.mark.django_db
def test_logins_failures_and_lockouts_reach_the_json_log_with_user_and_address(
    client, dispatcher, settings, caplog
):
    settings.AXES_IPWARE_META_PRECEDENCE_ORDER = PROXY_ORDER
    caplog.set_level(logging.INFO, logger="plans.accounts")
    for _ in range(5):
        _login(client, "dispatcher", "wrong", address="203.0.113.7")
    _login(client, "dispatcher", "dispatcher-pass-123", address="198.51.100.20")

    entries = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "plans.accounts"
    ]
    seen = [(e["event"], e["user"], e["client_ip"]) for e in entries]

    assert seen.count(("login failed", "dispatcher", "203.0.113.7")) == 5
    assert ("login locked", "dispatcher", "203.0.113.7") in seen
    assert ("login", "dispatcher", "198.51.100.20") in seen
    assert not any("wrong" in json.dumps(e) for e in entries)
    failures = AccessFailureLog.objects.filter(username="dispatcher", ip_address="203.0.113.7")
    assert failures.count() == 5  # what administrators see in admin → Axes
