import logging
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plans.mint.client import (
    CredentialsRefused,
    MemoryTokenStore,
    MintClient,
    Token,
    TokenUnavailable,
)
from plans.mint.outcomes import Accepted, Rejected, Unauthorized, Unavailable
from plans.mint.payload import build_plan_payload, encode_body
from tests.sandbox_fixture import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET


def plan_body(**overrides) -> str:
    start = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    fields = {
        "message_id": uuid.uuid4(),
        "location_id": "SITE-001",
        "transaction_id": uuid.uuid4(),
        "status": "mintportal plan 1 rev 1 by alice",
        "timestamp": start - timedelta(hours=1),
        "scheduled_start": start,
        "scheduled_end": start + timedelta(hours=8),
        "expected_range": 250,
        "average_consumption": 18.5,
    }
    fields.update(overrides)
    return encode_body(build_plan_payload(**fields))


def make_client(url, secret=SANDBOX_CLIENT_SECRET, store=None, **kwargs) -> MintClient:
    return MintClient(
        url, SANDBOX_CLIENT_ID, secret, token_store=store or MemoryTokenStore(), **kwargs
    )


@pytest.fixture
def client(mint_sandbox):
    client = make_client(mint_sandbox.url)
    yield client
    client.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1.0"


def a_valid_token() -> Token:
    return Token(access_token="x" * 20, expires_at=datetime.now(UTC) + timedelta(hours=1))


# --- outcomes -----------------------------------------------------------------------------------


def test_it_delivers_a_plan_and_reports_accepted(client, mint_sandbox):
    body = plan_body(status="Zürich Hbf €")
    outcome = client.send_plan(body)
    assert isinstance(outcome, Accepted)
    assert (outcome.kind, outcome.retryable, outcome.http_status) == ("accepted", False, 200)
    assert outcome.body_sent == body
    assert outcome.duration_ms >= 0
    assert mint_sandbox.accepted[0]["status"] == "Zürich Hbf €"


def test_it_keeps_mints_messages_on_rejection(client, mint_sandbox):
    body = plan_body(expected_range=None, average_consumption=None, expected_charge=40)
    outcome = client.send_plan(body.replace('"expectedCharge":40', '"expectedCharge":0'))
    assert isinstance(outcome, Rejected)
    assert (outcome.kind, outcome.retryable, outcome.http_status) == ("rejected", False, 400)
    assert outcome.messages == ["expectedCharge: must be a positive integer (kWh)."]
    assert mint_sandbox.accepted == []


def test_it_refreshes_the_token_once_on_401_and_resends(client, mint_sandbox):
    assert isinstance(client.send_plan(plan_body()), Accepted)
    mint_sandbox.set_behaviour(expire_tokens=True)
    body = plan_body()
    outcome = client.send_plan(body)
    assert isinstance(outcome, Accepted)
    assert mint_sandbox.token_requests == 2
    plan_statuses = [e["status"] for e in mint_sandbox.log if e["endpoint"] == "plan"]
    assert plan_statuses == [200, 401, 200]
    assert mint_sandbox.plan_message_ids()[-2] == mint_sandbox.plan_message_ids()[-1]


def test_it_reports_unauthorized_when_credentials_are_refused(mint_sandbox):
    client = make_client(mint_sandbox.url, secret="wrong-secret")
    outcome = client.send_plan(plan_body())
    assert isinstance(outcome, Unauthorized)
    assert (outcome.kind, outcome.retryable, outcome.http_status) == ("unauthorized", True, 401)
    assert "MINT_CLIENT_SECRET" in outcome.error
    assert [e["endpoint"] for e in mint_sandbox.log] == ["token"]


def test_it_reports_unauthorized_when_a_fresh_token_is_refused_too(mint_sandbox):
    # A token MINT never issued, believed valid by the store: 401, refresh, then the fresh
    # token works; so to get a second 401 the refresh itself must be refused.
    store = MemoryTokenStore()
    store.refresh(a_valid_token, None)
    client = make_client(mint_sandbox.url, secret="wrong-secret", store=store)
    outcome = client.send_plan(plan_body())
    assert isinstance(outcome, Unauthorized)
    assert [e["endpoint"] for e in mint_sandbox.log] == ["plan", "token"]


def test_it_refreshes_a_token_inside_the_margin(mint_sandbox):
    # A 30-second token with 2.5 s left is inside its margin (10 % of its life, 3 s).
    now = datetime.now(UTC)
    store = MemoryTokenStore()
    aged = Token("x" * 20, now + timedelta(seconds=2.5), fetched_at=now - timedelta(seconds=27.5))
    store.refresh(lambda: aged, None)
    client = make_client(mint_sandbox.url, store=store, refresh_margin=60)
    assert isinstance(client.send_plan(plan_body()), Accepted)
    assert mint_sandbox.token_requests == 1


def test_it_uses_a_short_lived_token_for_most_of_its_life(mint_sandbox):
    mint_sandbox.set_behaviour(token_ttl=5)
    client = make_client(mint_sandbox.url, refresh_margin=60)
    outcomes = [client.send_plan(plan_body()) for _ in range(20)]
    assert {type(o) for o in outcomes} == {Accepted}
    assert mint_sandbox.token_requests == 1


@pytest.mark.parametrize(
    ("lifetime", "margin"),
    [(1, 0.5), (5, 1.0), (30, 3.0), (600, 60.0), (3600, 60.0), (0, 0.0)],
)
def test_it_refreshes_a_tenth_of_a_tokens_life_early_at_least_a_second_at_most_a_minute(
    lifetime, margin
):
    now = datetime.now(UTC)
    token = Token("x" * 20, now + timedelta(seconds=lifetime), fetched_at=now)
    assert token.refresh_margin(60.0) == pytest.approx(margin)
    assert Token("x" * 20, now + timedelta(hours=1)).refresh_margin(60.0) == 60.0


@pytest.mark.parametrize("status", [500, 503, 429])
def test_it_reports_server_trouble_as_retryable(client, mint_sandbox, status):
    mint_sandbox.set_behaviour(plan_fail_status=status, plan_fail_count=1)
    outcome = client.send_plan(plan_body())
    assert isinstance(outcome, Unavailable)
    assert (outcome.kind, outcome.retryable, outcome.http_status) == ("unavailable", True, status)
    assert outcome.error.startswith(f"MINT answered {status}")
    assert outcome.retry_after == (None if status == 500 else 1.0)
    assert isinstance(client.send_plan(plan_body()), Accepted)


def test_it_treats_a_400_without_the_spec_list_as_retryable(client, mint_sandbox):
    mint_sandbox.set_behaviour(plan_fail_status=400, plan_fail_count=1)
    outcome = client.send_plan(plan_body())
    assert isinstance(outcome, Unavailable)
    assert "without the validation list" in outcome.error


def test_it_describes_an_html_502_plainly(client, mint_sandbox):
    mint_sandbox.set_behaviour(plan_html_502_count=1)
    outcome = client.send_plan(plan_body())
    assert isinstance(outcome, Unavailable)
    assert outcome.http_status == 502
    assert outcome.error.startswith("MINT answered 502 with a non-JSON body (text/html): <html>")
    assert len(outcome.error) < 700


def test_it_gives_up_on_a_hanging_mint_after_the_read_timeout(mint_sandbox):
    client = make_client(mint_sandbox.url, read_timeout=0.5)
    mint_sandbox.set_behaviour(plan_hang=2, plan_hang_count=1)
    outcome = client.send_plan(plan_body())
    assert isinstance(outcome, Unavailable)
    assert outcome.http_status is None
    assert outcome.error == "MINT did not answer within 0.5 s (read timeout)"
    assert 500 <= outcome.duration_ms < 1900


def test_it_reports_connection_refused_on_the_plan_call():
    store = MemoryTokenStore()
    store.refresh(a_valid_token, None)
    client = make_client(closed_port_url(), store=store)
    outcome = client.send_plan(plan_body())
    assert isinstance(outcome, Unavailable)
    assert outcome.error == "Could not connect to MINT: connection refused"


def test_it_reports_connection_refused_on_the_token_call():
    outcome = make_client(closed_port_url()).send_plan(plan_body())
    assert isinstance(outcome, Unavailable)
    assert outcome.retryable
    assert outcome.error == "Token request failed: Could not connect to MINT: connection refused"


# --- tokens ---------------------------------------------------------------------------------


def test_it_reuses_one_token_for_many_sends(client, mint_sandbox):
    outcomes = [client.send_plan(plan_body()) for _ in range(20)]
    assert all(isinstance(o, Accepted) for o in outcomes)
    assert mint_sandbox.token_requests == 1


@pytest.mark.parametrize("shared_client", [True, False])
def test_it_fetches_one_token_for_concurrent_senders(mint_sandbox, shared_client):
    store = MemoryTokenStore()
    shared = make_client(mint_sandbox.url, store=store)
    barrier = threading.Barrier(8)
    outcomes = []

    def send() -> None:
        client = shared if shared_client else make_client(mint_sandbox.url, store=store)
        barrier.wait()
        outcomes.append(client.send_plan(plan_body()))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(outcomes) == 8
    assert all(isinstance(o, Accepted) for o in outcomes)
    assert mint_sandbox.token_requests == 1


def test_it_parses_token_expiry_onto_the_local_clock(client, mint_sandbox):
    token = client._fetch_token()
    lifetime = (token.expires_at - datetime.now(UTC)).total_seconds()
    assert 3590 < lifetime <= 3601


def test_it_raises_typed_errors_from_the_token_fetch(mint_sandbox):
    with pytest.raises(CredentialsRefused):
        make_client(mint_sandbox.url, secret="wrong")._fetch_token()
    with pytest.raises(TokenUnavailable, match="connection refused"):
        make_client(closed_port_url())._fetch_token()


# --- health -----------------------------------------------------------------------------------


def test_it_reports_health_up_down_and_error(client, mint_sandbox):
    up = client.health()
    assert (up.up, up.http_status, up.result, up.error) == (True, 200, "up", "")
    mint_sandbox.set_behaviour(health_status=503)
    down = client.health()
    assert (down.up, down.http_status, down.result) == (False, 503, "down")
    error = make_client(closed_port_url()).health()
    assert (error.up, error.http_status, error.result) == (False, None, "error")
    assert error.error == "Could not connect to MINT: connection refused"


def test_it_times_out_a_hanging_health_check(mint_sandbox):
    mint_sandbox.set_behaviour(health_hang=2)
    result = make_client(mint_sandbox.url, read_timeout=0.3).health()
    assert result.result == "error"
    assert result.error == "MINT did not answer within 0.3 s (read timeout)"
    assert result.latency_ms >= 300


# --- secrets ----------------------------------------------------------------------------------


def test_it_never_leaks_the_secret_or_a_token(mint_sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    store = MemoryTokenStore()
    client = make_client(mint_sandbox.url, store=store)
    outcomes = [client.send_plan(plan_body())]
    mint_sandbox.set_behaviour(expire_tokens=True)
    outcomes.append(client.send_plan(plan_body()))
    mint_sandbox.set_behaviour(plan_html_502_count=1)
    outcomes.append(client.send_plan(plan_body()))
    mint_sandbox.set_behaviour(plan_fail_status=503, plan_fail_count=1)
    outcomes.append(client.send_plan(plan_body()))
    outcomes.append(make_client(mint_sandbox.url, secret="wrong-secret").send_plan(plan_body()))
    outcomes.append(make_client(closed_port_url()).send_plan(plan_body()))
    client.health()
    errors = []
    for bad in (
        make_client(mint_sandbox.url, secret="wrong-secret"),
        make_client(closed_port_url()),
    ):
        try:
            bad._fetch_token()
        except (CredentialsRefused, TokenUnavailable) as exc:
            errors.append(exc)

    tokens = [*mint_sandbox._tokens, store.current().access_token]
    assert mint_sandbox.token_requests >= 3 and len(tokens) >= 2
    texts = [caplog.text, repr(client), repr(store), repr(store.current())]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(o) for o in outcomes] + [str(o) for o in outcomes]
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    assert caplog.records, "expected debug lines to inspect"
    for text in texts:
        for secret in [SANDBOX_CLIENT_SECRET, "wrong-secret", *tokens]:
            assert secret not in text


def test_it_identifies_itself_and_keeps_one_session(mint_sandbox):
    client = make_client(mint_sandbox.url)
    session = client.session
    client.send_plan(plan_body())
    client.health()
    assert client.session is session
    assert session.headers["User-Agent"] == "mintportal/0.1"


def test_it_fetches_a_token_when_health_demands_one(mint_sandbox):
    mint_sandbox.set_behaviour(health_requires_token=True)
    client = make_client(mint_sandbox.url)

    result = client.health()

    assert (result.up, result.http_status) == (True, 200)
    assert mint_sandbox.token_requests == 1
    assert [e["status"] for e in mint_sandbox.log if e["endpoint"] == "health"] == [401, 200]


def test_it_names_refused_credentials_when_health_demands_a_token(mint_sandbox):
    mint_sandbox.set_behaviour(health_requires_token=True)

    result = make_client(mint_sandbox.url, secret="wrong-secret").health()

    assert (result.http_status, result.problem_kind) == (401, "credentials")
    assert result.problem == (
        "MINT refuses the portal's credentials: check MINT_CLIENT_ID and MINT_CLIENT_SECRET"
    )


def test_it_tells_good_credentials_from_refused_ones_when_asked(mint_sandbox):
    good, wrong = make_client(mint_sandbox.url), make_client(mint_sandbox.url, secret="nope")

    assert good.credentials_refused() is False
    assert good.token_store.current() is not None  # the sends use the token fetched
    assert wrong.credentials_refused() is True
    assert make_client(closed_port_url()).credentials_refused() is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mint.example/api/v1.0", "MINT_API_URL cannot be used: 'mint.example/api/v1.0' has no"),
        ("http://[::1:8001/api/v1.0", "MINT_API_URL cannot be used: 'http://[::1:8001/api/v1.0'"),
    ],
)
def test_it_names_an_unreadable_url_instead_of_no_answer(url, problem):
    client = make_client(url)

    result = client.health()
    outcome = client.send_plan(plan_body())

    assert (result.result, result.problem_kind) == ("error", "url")
    assert result.problem.startswith(problem)
    assert outcome.error.startswith("Token request failed: Could not send to MINT: MINT_API_URL")


def test_it_does_not_follow_a_redirect_and_says_so():
    """A real server that redirects every POST: following it would turn the plan into a GET."""

    class Redirecting(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path.endswith("/auth/token"):
                body = b'{"accessToken": "t-123", "expiration": "2099-01-01T00:00:00Z"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(302)
            self.send_header("Location", "/elsewhere/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = make_client(f"http://127.0.0.1:{server.server_port}/api/v1.0")
        outcome = client.send_plan(plan_body())
    finally:
        server.shutdown()

    assert isinstance(outcome, Unavailable)
    assert outcome.http_status == 302
    assert "redirects" in outcome.error and "MINT_API_URL" in outcome.error


def test_it_takes_proxy_settings_from_the_environment_once(mint_sandbox, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", closed_port_url().rsplit("/api", 1)[0])
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = make_client(mint_sandbox.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = make_client(mint_sandbox.url)
    monkeypatch.delenv("HTTP_PROXY")

    outcome = proxied.send_plan(plan_body())
    assert isinstance(outcome, Unavailable)
    assert "connection refused" in outcome.error
    assert isinstance(direct.send_plan(plan_body()), Accepted)
    assert not proxied.session.trust_env
