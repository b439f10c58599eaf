"""Production readiness: deploy checks, configuration errors, login throttling, sessions, CSP,
the load-balancer health URL and secrets kept out of logs."""

import json
import logging
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.db.migrations.recorder import MigrationRecorder
from django.urls import reverse

from plans import services
from plans.logs import JsonFormatter
from plans.middleware import LAST_SEEN, LOGGED_IN_AT
from plans.models import DeliveryAttempt, MintToken, PlanEvent, Submission
from plans.token_cipher import token_decrypt
from tests.factories import make_plan

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "k8#Qz1-very-long-production-secret-key-with-entropy-0123456789abcdefXYZ",
    "ALLOWED_HOSTS": "portal.example.com",
    "MINT_API_URL": "https://mint.example/api/v1.0",
    "MINT_CLIENT_ID": "prod-client",
    "MINT_CLIENT_SECRET": "prod-secret",
    "MINT_ENVIRONMENT": "production",
}


def manage(
    *args: str, env: dict[str, str], drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    test_only = {"HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in drop and k not in test_only}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env={**base, **{k: v for k, v in env.items() if k not in drop}},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_it_passes_django_deploy_checks_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "missing",
    ["SECRET_KEY", "ALLOWED_HOSTS", "MINT_API_URL", "MINT_CLIENT_ID", "MINT_CLIENT_SECRET"],
)
def test_it_refuses_to_start_without_a_required_variable_and_names_it(missing):
    result = manage("check", env=PRODUCTION_ENV, drop=(missing,))
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


@pytest.mark.parametrize(
    ("name", "placeholder"),
    [
        ("SECRET_KEY", "change-me-to-a-long-random-string"),
        ("MINT_CLIENT_ID", "your-client-id"),
        ("MINT_CLIENT_SECRET", "your-client-secret"),
    ],
)
def test_it_refuses_to_start_with_a_placeholder_from_env_example(name, placeholder):
    assert f"{name}={placeholder}\n" in (ROOT / ".env.example").read_text()

    result = manage("check", env={**PRODUCTION_ENV, name: placeholder})

    assert result.returncode != 0
    assert f"{name} still has the placeholder value from .env.example" in result.stderr


def test_it_refuses_an_unknown_mint_environment():
    result = manage("check", env={**PRODUCTION_ENV, "MINT_ENVIRONMENT": "prod"})
    assert result.returncode != 0
    assert "MINT_ENVIRONMENT must be sandbox, test or production" in result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_it_locks_a_username_and_address_after_five_failures(client, admin_user, login_url):
    for _ in range(4):
        response = client.post(login_url, {"username": "admin", "password": "wrong"})
        assert response.status_code == 200
    fifth = client.post(login_url, {"username": "admin", "password": "wrong"})
    assert fifth.status_code == 429

    locked = client.post(login_url, {"username": "admin", "password": "admin-pass-123"})

    assert locked.status_code == 429
    assert b"Login locked for 15 minutes" in locked.content
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cooloff", "says"),
    [
        (timedelta(minutes=90), b"Login locked for 1 hour 30 minutes"),
        (timedelta(minutes=1), b"Login locked for 1 minute"),
        (None, b"blocked until an administrator unlocks it"),
    ],
)
def test_the_lockout_page_tells_the_configured_wait(client, dispatcher, settings, cooloff, says):
    settings.AXES_COOLOFF_TIME = cooloff
    for _ in range(5):
        client.post("/accounts/login/", {"username": "dispatcher", "password": "wrong"})

    locked = client.post("/accounts/login/", {"username": "dispatcher", "password": "wrong"})

    assert locked.status_code == 429
    assert says in locked.content
    assert b"15 minutes" not in locked.content


@pytest.mark.django_db
def test_a_correct_password_before_the_limit_logs_in_and_resets_the_count(client, dispatcher):
    for _ in range(4):
        client.post("/accounts/login/", {"username": "dispatcher", "password": "wrong"})
    ok = client.post(
        "/accounts/login/", {"username": "dispatcher", "password": "dispatcher-pass-123"}
    )
    assert ok.status_code == 302
    assert client.session["_auth_user_id"] == str(dispatcher.pk)


@pytest.mark.django_db
def test_login_gives_a_new_session_key_and_logout_ends_the_session(client, dispatcher):
    client.get("/accounts/login/")
    client.session["probe"] = 1
    before = client.cookies.get("sessionid")
    client.post("/accounts/login/", {"username": "dispatcher", "password": "dispatcher-pass-123"})
    after = client.cookies["sessionid"].value
    assert before is None or before.value != after

    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302
    assert "_auth_user_id" not in client.session


def _age_session(client, **ages: float) -> None:
    session = client.session
    now = time.time()
    for key, seconds in ages.items():
        session[key] = now - seconds
    session.save()


@pytest.mark.django_db
def test_it_logs_out_after_thirty_idle_minutes(dispatcher_client):
    dispatcher_client.get("/")
    _age_session(dispatcher_client, **{LAST_SEEN: 31 * 60})

    response = dispatcher_client.get("/plans/", follow=True)

    assert response.redirect_chain[0][0].startswith("/accounts/login/?next=/plans/")
    assert b"logged out after 30 minutes without activity" in response.content
    assert "_auth_user_id" not in dispatcher_client.session


@pytest.mark.django_db
def test_activity_keeps_the_session_but_background_polls_do_not(dispatcher_client):
    dispatcher_client.get("/")
    _age_session(dispatcher_client, **{LAST_SEEN: 29 * 60})
    assert dispatcher_client.get("/plans/").status_code == 200  # activity: the clock restarts
    _age_session(dispatcher_client, **{LAST_SEEN: 29 * 60})
    poll = dispatcher_client.get(reverse("plans:mint_health"), headers={"X-Portal-Poll": "1"})
    assert poll.status_code == 200
    _age_session(dispatcher_client, **{LAST_SEEN: 31 * 60})

    assert (
        dispatcher_client.get(
            reverse("plans:mint_health"), headers={"X-Portal-Poll": "1"}
        ).status_code
        == 401
    )
    assert "_auth_user_id" not in dispatcher_client.session


@pytest.mark.django_db
def test_it_logs_out_after_twelve_hours_however_active(dispatcher_client):
    dispatcher_client.get("/")
    _age_session(dispatcher_client, **{LOGGED_IN_AT: 12 * 3600 + 60, LAST_SEEN: 5})

    response = dispatcher_client.get("/", follow=True)

    assert b"a login lasts at most 12 hours" in response.content
    assert "_auth_user_id" not in dispatcher_client.session


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/accounts/login/", "/", "/plans/", "/plans/new/"])
def test_every_html_response_carries_the_content_security_policy(dispatcher_client, url):
    if url == "/accounts/login/":
        dispatcher_client.logout()
    response = dispatcher_client.get(url)
    policy = response.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ):
        assert directive in policy
    assert "'unsafe-inline'" not in policy
    assert b"<script>" not in response.content  # every script is a file (or carries the nonce)


@pytest.mark.django_db
def test_healthz_answers_200_without_login_and_shows_no_data(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert "Set-Cookie" not in response.headers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_answers_503_when_the_database_is_unavailable():
    """A real gunicorn whose DATABASE_URL points at a port where no database listens."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{_free_port()}/nowhere",
        "CONN_MAX_AGE": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "mintportal.wsgi", "--bind", f"127.0.0.1:{port}"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert response.status_code == 503
        assert response.text == "database unavailable\n"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_healthz_answers_503_on_a_database_that_was_never_migrated(tmp_path):
    """A real gunicorn on an empty database: it answers SELECT 1, yet every login fails."""
    port = _free_port()
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{empty}", "CONN_MAX_AGE": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "mintportal.wsgi", "--bind", f"127.0.0.1:{port}"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert response.status_code == 503
        assert response.text == "database not migrated\n"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.django_db
def test_healthz_answers_503_while_a_release_migration_is_not_applied(client):
    assert client.get("/healthz").status_code == 200
    MigrationRecorder.Migration.objects.filter(app="plans", name="0009_uptime_by_time").delete()

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.content == b"database not migrated\n"


@pytest.mark.django_db(transaction=True)
def test_no_secret_or_token_reaches_logs_history_or_attempts(
    settings, mint_sandbox, dispatcher, caplog
):
    settings.MINT_API_URL = mint_sandbox.url
    settings.MINT_HEALTH_INTERVAL = 0
    caplog.set_level(logging.DEBUG)
    plans = [make_plan(user=dispatcher) for _ in range(3)]
    services.plan_submit(plan=plans[0], user=dispatcher)
    call_command("mint_worker", "--once")
    tokens = {token_decrypt(MintToken.objects.get(pk=1).encrypted_token)}
    mint_sandbox.set_behaviour(expire_tokens=True, plan_fail_status=503, plan_fail_count=1)
    for plan in plans[1:]:
        services.plan_submit(plan=plan, user=dispatcher)
    for _ in range(20):
        call_command("mint_worker", "--once")
        if not Submission.objects.exclude(state="accepted").exists():
            break
        time.sleep(0.1)
    tokens.add(token_decrypt(MintToken.objects.get(pk=1).encrypted_token))

    assert Submission.objects.filter(state="accepted").count() == 3
    assert len(tokens) == 2 and all(tokens)
    secrets = [settings.MINT_CLIENT_SECRET, *tokens]
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    lines += [record.getMessage() for record in caplog.records]
    stored = [
        a.request_body + a.error + json.dumps(a.mint_messages)
        for a in DeliveryAttempt.objects.all()
    ]
    stored += [e.reason for e in PlanEvent.objects.all()]
    assert any('"message_id"' in line for line in lines), "delivery should have logged"
    for secret in secrets:
        assert not any(secret in line for line in lines)
        assert not any(secret in text for text in stored)


def test_log_lines_are_one_json_object_with_the_delivery_fields():
    record = logging.makeLogRecord(
        {
            "name": "plans.delivery",
            "levelname": "INFO",
            "msg": "delivery attempt",
            "plan_id": 7,
            "message_id": "m-1",
            "outcome": "accepted",
            "latency_ms": 12,
        }
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "delivery attempt"
    assert (entry["plan_id"], entry["message_id"], entry["outcome"], entry["latency_ms"]) == (
        7,
        "m-1",
        "accepted",
        12,
    )


@pytest.mark.django_db
def test_errors_show_in_the_portals_look_not_djangos(dispatcher_client, rf):
    from django.views.defaults import server_error

    missing = dispatcher_client.get("/no-such-page/")
    crashed = server_error(rf.get("/plans/"))

    assert missing.status_code == 404
    assert 'class="brand"' in missing.content.decode()
    assert crashed.status_code == 500
    assert "Something went wrong on our side" in crashed.content.decode()
    assert 'class="brand"' in crashed.content.decode()
