"""Accounts: login throttling by the real client address, the per-address limit, the second
factor, password changes and the login audit."""

import pytest
from axes.models import AccessAttempt

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
