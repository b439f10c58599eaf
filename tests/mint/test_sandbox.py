import time

import pytest
import requests

from plans.mint.sandbox import MintSandbox
from tests.sandbox_fixture import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET


def valid_plan(**changes):
    plan = {
        "messageId": "6f1c2b9a-0d3e-4f5a-8b7c-1d2e3f4a5b6c",
        "locationId": "SITE-001",
        "transactionId": "0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d",
        "status": "",
        "timestamp": "2025-03-01T08:00:00Z",
        "scheduledStartTime": "2025-03-01T09:00:00Z",
        "scheduledEndTime": "2025-03-01T17:00:00Z",
        "expectedRange": 250,
        "averageConsumption": 18.5,
    }
    plan.update(changes)
    return {k: v for k, v in plan.items() if v is not ...}


def get_token(sandbox, secret=SANDBOX_CLIENT_SECRET):
    return requests.post(
        f"{sandbox.url}/auth/token",
        json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": secret},
        timeout=5,
    )


def post_plan(sandbox, payload, token=None, timeout=5.0):
    token = token or get_token(sandbox).json()["accessToken"]
    return requests.post(
        f"{sandbox.url}/plan/",
        json=payload,
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    )


def messages(response):
    assert response.status_code == 400
    return [item["message"] for item in response.json()]


# --- auth / health ----------------------------------------------------------------------------


def test_it_issues_a_token_with_a_utc_expiration(mint_sandbox):
    response = get_token(mint_sandbox)
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"accessToken", "expiration"}
    assert len(data["accessToken"]) >= 32
    assert data["expiration"].endswith("Z") and len(data["expiration"]) == 20
    assert mint_sandbox.token_requests == 1


def test_it_refuses_wrong_credentials_with_empty_401(mint_sandbox):
    response = get_token(mint_sandbox, secret="wrong")
    assert response.status_code == 401
    assert response.content == b""


def test_it_answers_health_200_then_503_when_told(mint_sandbox):
    assert requests.get(f"{mint_sandbox.url}/health/", timeout=5).status_code == 200
    mint_sandbox.set_behaviour(health_status=503)
    response = requests.get(f"{mint_sandbox.url}/health/", timeout=5)
    assert response.status_code == 503
    assert response.content == b""


def test_it_404s_outside_the_base_path(mint_sandbox):
    root = f"http://127.0.0.1:{mint_sandbox.port}"
    assert requests.get(f"{root}/health/", timeout=5).status_code == 404


# --- plan: auth -------------------------------------------------------------------------------


def test_it_accepts_a_valid_plan_and_keeps_it(mint_sandbox):
    response = post_plan(mint_sandbox, valid_plan())
    assert response.status_code == 200
    assert response.content == b""
    assert mint_sandbox.accepted == [valid_plan()]
    assert mint_sandbox.plan_message_ids() == ["6f1c2b9a-0d3e-4f5a-8b7c-1d2e3f4a5b6c"]


def test_it_requires_a_bearer_token(mint_sandbox):
    response = requests.post(f"{mint_sandbox.url}/plan/", json=valid_plan(), timeout=5)
    assert response.status_code == 401
    assert post_plan(mint_sandbox, valid_plan(), token="made-up").status_code == 401
    assert mint_sandbox.accepted == []


def test_it_expires_tokens_after_their_ttl():
    with MintSandbox(
        client_id=SANDBOX_CLIENT_ID, client_secret=SANDBOX_CLIENT_SECRET, token_ttl=1
    ) as sandbox:
        token = get_token(sandbox).json()["accessToken"]
        assert post_plan(sandbox, valid_plan(), token=token).status_code == 200
        time.sleep(1.6)
        assert post_plan(sandbox, valid_plan(), token=token).status_code == 401


def test_it_invalidates_all_tokens_on_expire_tokens(mint_sandbox):
    token = get_token(mint_sandbox).json()["accessToken"]
    mint_sandbox.set_behaviour(expire_tokens=True)
    assert post_plan(mint_sandbox, valid_plan(), token=token).status_code == 401
    assert post_plan(mint_sandbox, valid_plan()).status_code == 200


# --- plan: validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"messageId": "nope"}, "messageId: must be a UUID."),
        ({"messageId": ...}, "messageId: is required."),
        ({"transactionId": 42}, "transactionId: must be a UUID."),
        ({"locationId": ""}, "locationId: must be a non-empty string."),
        ({"locationId": ...}, "locationId: is required."),
        ({"status": 7}, "status: must be a string (it may be empty)."),
        ({"timestamp": ...}, "timestamp: is required."),
        (
            {"timestamp": "2025-03-01T08:00:00+01:00"},
            "timestamp: must be in UTC, written as YYYY-MM-DDTHH:MM:SSZ.",
        ),
        (
            {"scheduledStartTime": "2025-03-01 09:00"},
            "scheduledStartTime: must be written as YYYY-MM-DDTHH:MM:SSZ.",
        ),
        (
            {"scheduledStartTime": "2025-03-01T09:00:00.000Z"},
            "scheduledStartTime: must be written as YYYY-MM-DDTHH:MM:SSZ.",
        ),
        (
            {"scheduledEndTime": "2025-02-30T17:00:00Z"},
            "scheduledEndTime: '2025-02-30T17:00:00Z' is not a real date and time.",
        ),
        (
            {"scheduledEndTime": "2025-03-01T09:00:00Z"},
            "scheduledEndTime: must be after scheduledStartTime.",
        ),
        ({"expectedCharge": 40}, "Use either expectedRange or expectedCharge, not both."),
        (
            {"expectedRange": ..., "averageConsumption": ...},
            "One of expectedRange or expectedCharge is required.",
        ),
        ({"expectedRange": 0}, "expectedRange: must be a positive integer (km)."),
        ({"expectedRange": 12.0}, "expectedRange: must be a positive integer (km)."),
        ({"expectedRange": True}, "expectedRange: must be a positive integer (km)."),
        (
            {"expectedRange": ..., "averageConsumption": ..., "expectedCharge": "40"},
            "expectedCharge: must be a positive integer (kWh).",
        ),
        (
            {"averageConsumption": -1},
            "averageConsumption: must be a positive number (kWh/100 km).",
        ),
        (
            {"expectedRange": ..., "expectedCharge": 40},
            "averageConsumption: is only allowed with expectedRange.",
        ),
        ({"equipmentId": "X"}, "Unknown field 'equipmentId'."),
    ],
)
def test_it_rejects_each_rule_with_a_named_field(mint_sandbox, changes, expected):
    response = post_plan(mint_sandbox, valid_plan(**changes))
    assert messages(response) == [expected]
    assert mint_sandbox.accepted == []


def test_it_accepts_a_charge_plan_and_an_absent_status(mint_sandbox):
    plan = valid_plan(expectedRange=..., averageConsumption=..., expectedCharge=40, status=...)
    assert post_plan(mint_sandbox, plan).status_code == 200


def test_it_reports_all_problems_at_once(mint_sandbox):
    plan = valid_plan(messageId="x", expectedRange=-1, scheduledEndTime="tomorrow")
    assert messages(post_plan(mint_sandbox, plan)) == [
        "messageId: must be a UUID.",
        "scheduledEndTime: must be written as YYYY-MM-DDTHH:MM:SSZ.",
        "expectedRange: must be a positive integer (km).",
    ]


def test_it_rejects_a_body_that_is_not_a_json_object(mint_sandbox):
    token = get_token(mint_sandbox).json()["accessToken"]
    for body in (b"not json", b"[1, 2]"):
        response = requests.post(
            f"{mint_sandbox.url}/plan/",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=5,
        )
        assert messages(response) == ["Request body must be a JSON object."]


def test_it_rejects_unknown_locations_when_given_a_lookup():
    with MintSandbox(
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
        known_location=lambda location_id: location_id == "SITE-001",
    ) as sandbox:
        assert post_plan(sandbox, valid_plan()).status_code == 200
        response = post_plan(sandbox, valid_plan(locationId="SITE-999"))
        assert messages(response) == ["Unknown locationId 'SITE-999'."]


# --- behaviours -------------------------------------------------------------------------------


def test_it_fails_the_next_n_plans_with_the_given_status(mint_sandbox):
    mint_sandbox.set_behaviour(plan_fail_status=503, plan_fail_count=2)
    statuses = [post_plan(mint_sandbox, valid_plan()).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert [e["status"] for e in mint_sandbox.log if e["endpoint"] == "plan"] == [503, 503, 200]


def test_it_sends_retry_after_on_429(mint_sandbox):
    mint_sandbox.set_behaviour(plan_fail_status=429, plan_fail_count=1)
    response = post_plan(mint_sandbox, valid_plan())
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"


def test_it_answers_html_502_when_told(mint_sandbox):
    mint_sandbox.set_behaviour(plan_html_502_count=1)
    response = post_plan(mint_sandbox, valid_plan())
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Bad Gateway" in response.text


def test_it_hangs_beyond_a_client_timeout_when_told(mint_sandbox):
    mint_sandbox.set_behaviour(plan_hang=2, plan_hang_count=1)
    with pytest.raises(requests.ReadTimeout):
        post_plan(mint_sandbox, valid_plan(), timeout=0.5)
    assert post_plan(mint_sandbox, valid_plan()).status_code == 200


def test_it_rejects_every_plan_with_given_messages(mint_sandbox):
    mint_sandbox.set_behaviour(reject_all=["Site closed for maintenance."])
    assert messages(post_plan(mint_sandbox, valid_plan())) == ["Site closed for maintenance."]


def test_it_adds_latency(mint_sandbox):
    mint_sandbox.set_behaviour(latency_ms=300)
    started = time.monotonic()
    requests.get(f"{mint_sandbox.url}/health/", timeout=5)
    assert time.monotonic() - started >= 0.3


def test_it_issues_short_lived_tokens_when_told(mint_sandbox):
    mint_sandbox.set_behaviour(token_ttl=1)
    token = get_token(mint_sandbox).json()["accessToken"]
    time.sleep(1.6)
    assert post_plan(mint_sandbox, valid_plan(), token=token).status_code == 401


def test_it_is_controllable_over_http(mint_sandbox):
    root = f"http://127.0.0.1:{mint_sandbox.port}/_sandbox"
    response = requests.post(f"{root}/behaviour", json={"health_status": 503}, timeout=5)
    assert response.status_code == 200
    assert requests.get(f"{root}/behaviour", timeout=5).json()["health_status"] == 503
    assert requests.get(f"{mint_sandbox.url}/health/", timeout=5).status_code == 503
    log = requests.get(f"{root}/log", timeout=5).json()
    assert [(e["endpoint"], e["status"]) for e in log] == [("health", 503)]
    assert requests.post(f"{root}/reset", timeout=5).status_code == 200
    assert mint_sandbox.log == []
    assert mint_sandbox.behaviour["health_status"] == 200


def test_it_refuses_unknown_behaviour_keys(mint_sandbox):
    with pytest.raises(ValueError, match="plan_explode"):
        mint_sandbox.set_behaviour(plan_explode=True)
    root = f"http://127.0.0.1:{mint_sandbox.port}/_sandbox"
    assert requests.post(f"{root}/behaviour", json={"x": 1}, timeout=5).status_code == 400


def test_it_resets_log_accepted_and_behaviour(mint_sandbox):
    post_plan(mint_sandbox, valid_plan())
    mint_sandbox.set_behaviour(plan_fail_status=500)
    mint_sandbox.reset()
    assert mint_sandbox.log == []
    assert mint_sandbox.accepted == []
    assert mint_sandbox.token_requests == 0
    assert post_plan(mint_sandbox, valid_plan()).status_code == 200


def test_it_adds_latency_to_plan_answers_only(mint_sandbox):
    mint_sandbox.set_behaviour(plan_latency_ms=300)
    started = time.monotonic()
    requests.get(f"{mint_sandbox.url}/health/", timeout=5)
    assert time.monotonic() - started < 0.3
    started = time.monotonic()
    assert post_plan(mint_sandbox, valid_plan()).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_it_keeps_a_clients_connection_open_between_requests(mint_sandbox):
    with requests.Session() as session:
        for _ in range(3):
            response = session.get(f"{mint_sandbox.url}/health/", timeout=5)
            assert response.status_code == 200
            assert response.raw.version == 11
        token = session.post(
            f"{mint_sandbox.url}/auth/token",
            json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_CLIENT_SECRET},
            timeout=5,
        ).json()["accessToken"]
        plan = session.post(
            f"{mint_sandbox.url}/plan/",
            json=valid_plan(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
    assert plan.status_code == 200
    assert mint_sandbox.connections_opened == 1


def test_stopping_it_cuts_open_keep_alive_connections():
    sandbox = MintSandbox(client_id="c", client_secret="s").start()
    with requests.Session() as session:
        assert session.get(f"{sandbox.url}/health/", timeout=5).status_code == 200
        sandbox.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(f"{sandbox.url}/health/", timeout=5)
