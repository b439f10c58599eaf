"""System checks on the MINT configuration (``plans.checks``): an unusable MINT_API_URL is an
error that stops ``manage.py check`` (the worker says it at run time); one without the API
version a warning."""

import os
import subprocess
import sys

import pytest
from django.core.checks import run_checks

from tests.processes import MANAGE

UNREADABLE = {
    "no scheme": ("mint.example/api/v1.0", "has no scheme (https://)"),
    "host:port without scheme": ("127.0.0.1:8001/api/v1.0", "has no scheme (https://)"),
    "IPv6 without its bracket": ("http://[::1:8001/api/v1.0", "is not a URL (Invalid IPv6 URL)"),
    "another scheme": ("ftp://mint.example/api/v1.0", "has the scheme 'ftp', not https or http"),
    "no host": ("https:///api/v1.0", "has no host name"),
    "a port out of range": ("http://127.0.0.1:99999/api/v1.0", "Port out of range"),
}


def _issues(settings, url: str) -> list:
    settings.MINT_API_URL = url
    return [issue for issue in run_checks(tags=["mint"]) if issue.id.startswith("plans.")]


@pytest.mark.parametrize(("url", "says"), UNREADABLE.values(), ids=UNREADABLE.keys())
def test_it_calls_an_unreadable_mint_api_url_an_error(settings, url, says):
    issues = _issues(settings, url)

    assert [issue.id for issue in issues] == ["plans.E001"]
    assert issues[0].msg.startswith(f"MINT_API_URL cannot be used: {url!r}")
    assert says in issues[0].msg
    assert "https://<host>/api/v1.0" in issues[0].hint


def test_it_shows_no_password_written_into_the_url(settings):
    """The message is shown on every page and logged."""
    issues = _issues(settings, "https://portal:s3cret-pw@[::1/api/v1.0")

    assert "s3cret-pw" not in issues[0].msg
    assert "'https://…@[::1/api/v1.0' is not a URL" in issues[0].msg


@pytest.mark.parametrize("url", ["https://mint.example", "https://mint.example/api/"])
def test_it_warns_of_a_mint_api_url_without_the_api_version(settings, url):
    issues = _issues(settings, url)

    assert [issue.id for issue in issues] == ["plans.W001"]
    assert "does not end with the API version" in issues[0].msg
    assert "404" in issues[0].hint


@pytest.mark.parametrize(
    "url", ["https://mint.example/api/v1.0", "http://[::1]:8001/api/v1.0", "https://m.example/v2"]
)
def test_it_accepts_a_usable_mint_api_url(settings, url):
    assert _issues(settings, url) == []


def test_manage_check_fails_on_a_url_without_the_version_at_the_deploy_fail_level():
    result = subprocess.run(
        [sys.executable, MANAGE, "check", "--fail-level", "WARNING"],
        env={**os.environ, "MINT_API_URL": "https://mint.example"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "(plans.W001)" in result.stderr + result.stdout
