"""Real ``mint_worker`` processes sharing one queue: crashes, takeovers, SIGTERM, PostgreSQL.

The workers are separate OS processes that reach the test database through ``DATABASE_URL`` and
the in-process sandbox over HTTP, exactly as in production.
"""

import html
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest
from django.db import connection

from plans import selectors, services
from plans.models import HealthCheck, PlanEvent, PlanState, Submission
from tests.factories import make_plan
from tests.processes import MANAGE, Lines, start_worker, stop, wait_for


def queue_plans(user, count: int) -> list:
    plans = [make_plan(user=user) for _ in range(count)]
    for plan in plans:
        services.plan_submit(plan=plan, user=user)
    return plans


def accepted_count() -> int:
    return Submission.objects.filter(state="accepted").count()


pytestmark = pytest.mark.usefixtures("counts_stay_true")

#: A lease short enough for quick takeovers, with timeouts it comfortably covers.
SHORT_LEASE = {"MINT_LEASE_SECONDS": "2", "MINT_CONNECT_TIMEOUT": "0.2", "MINT_READ_TIMEOUT": "0.8"}


@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_claims_are_taken_over_with_the_same_message_ids(mint_sandbox, dispatcher):
    plans = queue_plans(dispatcher, 60)
    mint_sandbox.set_behaviour(latency_ms=40)
    first = start_worker(mint_sandbox, "doomed", MINT_WORKER_BATCH="20", **SHORT_LEASE)
    try:
        wait_for(lambda: len(mint_sandbox.accepted) >= 10, seconds=30, what="first deliveries")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    stranded = Submission.objects.filter(state="sending").count()
    assert stranded > 0, "the kill should leave claimed messages behind"

    second = start_worker(mint_sandbox, "rescuer", **SHORT_LEASE)
    try:
        wait_for(lambda: accepted_count() == 60, seconds=60, what="all 60 accepted")
    finally:
        assert stop(second) == 0

    for plan in plans:
        plan.refresh_from_db()
    assert {plan.state for plan in plans} == {PlanState.ACCEPTED}
    taken_over = PlanEvent.objects.filter(reason__startswith="Taken over").count()
    assert taken_over >= stranded
    ids_by_transaction = defaultdict(set)
    for entry in mint_sandbox.log:
        if entry["endpoint"] == "plan" and entry["status"] == 200:
            body = next(b for b in mint_sandbox.accepted if b["messageId"] == entry["messageId"])
            ids_by_transaction[body["transactionId"]].add(entry["messageId"])
    assert len(ids_by_transaction) == 60
    assert all(len(ids) == 1 for ids in ids_by_transaction.values())
    expected = {str(s.message_id) for s in Submission.objects.all()}
    assert set(mint_sandbox.plan_message_ids()) == expected


@pytest.mark.django_db(transaction=True)
def test_sigterm_finishes_the_current_send_and_hands_the_rest_back(mint_sandbox, dispatcher):
    queue_plans(dispatcher, 5)
    mint_sandbox.set_behaviour(plan_hang=1.5, plan_hang_count=1)
    worker = start_worker(mint_sandbox, "graceful", MINT_WORKER_BATCH="5")
    try:
        wait_for(
            lambda: (
                any(e["endpoint"] == "plan" for e in mint_sandbox.log)
                or Submission.objects.filter(state="sending").exists()
            ),
            seconds=20,
            what="the first send to start",
        )
        time.sleep(0.3)  # the first request is now hanging inside the sandbox
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()

    assert code == 0
    states = sorted(Submission.objects.values_list("state", flat=True))
    assert states == ["accepted", "queued", "queued", "queued", "queued"]
    assert PlanEvent.objects.filter(reason__startswith="Handed back").count() == 4
    assert len(mint_sandbox.accepted) == 1


@pytest.mark.django_db(transaction=True)
def test_a_hanging_health_check_neither_holds_nor_slows_deliveries(mint_sandbox, dispatcher):
    """/health/ hangs while /plan/ works: each check gives up after the 4 s read timeout, on
    its own thread; the sends go on at once, and the pages say "unknown", not "down"."""
    mint_sandbox.set_behaviour(health_hang=120)
    worker = start_worker(
        mint_sandbox, "unhurried", MINT_HEALTH_INTERVAL="0.5", MINT_READ_TIMEOUT="4"
    )
    try:
        wait_for(
            lambda: HealthCheck.objects.filter(result="error").exists(),
            seconds=20,
            what="the first health check to time out",
        )
        latencies = []
        for plan in [make_plan(user=dispatcher) for _ in range(8)]:
            services.plan_submit(plan=plan, user=dispatcher)
            started = time.monotonic()
            wait_for(
                lambda plan=plan: Submission.objects.filter(plan=plan, state="accepted").exists(),
                seconds=10,
                what=f"plan {plan.pk} accepted",
            )
            latencies.append(time.monotonic() - started)
            time.sleep(0.5)
    finally:
        assert stop(worker) == 0

    # 8 sends over more than 4 s: a loop that waited for a check would have met one.
    assert max(latencies) < 2.0, latencies
    assert HealthCheck.objects.filter(result="error").count() >= 2
    status = selectors.portal_status()
    assert (status.mint_state, status.mint_unanswered) == ("unknown", True)
    assert not status.mint_holds_delivery
    assert "read timeout" in status.mint.error


def page_says(client, element_id: str) -> str:
    """The text of one part of the dashboard, as a reader sees it (tags and entities gone)."""
    page = client.get("/").content.decode()
    end = '(?=<div id="|<div class="user-box"|<main|</section>)'
    part = re.search(rf'id="{element_id}".*?{end}', page, re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", part.group(0))).split())


CREDENTIALS = "MINT refuses the portal's credentials: check MINT_CLIENT_ID and MINT_CLIENT_SECRET"


@pytest.mark.django_db(transaction=True)
def test_refused_credentials_are_said_on_every_page_and_once_in_the_log(
    mint_sandbox, dispatcher, dispatcher_client
):
    """/health/ answers 200 without a token, so MINT looks up while every plan meets a 401."""
    queue_plans(dispatcher, 3)
    worker = start_worker(
        mint_sandbox,
        "wrong-secret",
        MINT_CLIENT_SECRET="not-the-secret",
        MINT_HEALTH_INTERVAL="0.5",
    )
    log = Lines(worker)
    try:
        wait_for(
            lambda: CREDENTIALS in page_says(dispatcher_client, "worker-banner"),
            seconds=20,
            what="the banner to name the credentials",
        )
        time.sleep(3)  # six more health checks, each asking for a token again
        widget = page_says(dispatcher_client, "health-widget")
    finally:
        assert stop(worker) == 0
    assert "MINT refuses our credentials" in widget
    assert "MINT up" not in widget
    errors = log.matching("ERROR")
    assert len(errors) == 1, log.lines
    assert CREDENTIALS in errors[0]
    assert accepted_count() == 0

    # Fixed and restarted: the next health check finds the credentials good, and plans go.
    worker = start_worker(mint_sandbox, "right-secret", MINT_HEALTH_INTERVAL="0.5")
    log = Lines(worker)
    try:
        wait_for(lambda: accepted_count() == 3, seconds=30, what="the plans accepted")
        wait_for(
            lambda: "credentials" not in page_says(dispatcher_client, "worker-banner"),
            seconds=10,
            what="the banner to go",
        )
        assert "MINT up" in page_says(dispatcher_client, "health-widget")
    finally:
        assert stop(worker) == 0
    assert log.matching("INFO", f"fixed: {CREDENTIALS}"), log.lines
    assert not log.matching("ERROR"), log.lines


@pytest.mark.parametrize(
    ("url", "widget", "banner", "attempt_error"),
    [
        pytest.param(
            lambda sandbox: sandbox.url.replace("http://", "https://"),
            "MINT TLS fails",
            "MINT_API_URL says https, but the server at that address does not speak TLS "
            "(it may serve plain http): check MINT_API_URL.",
            "TLS failed, as the server at MINT_API_URL does not speak TLS (is it http://?)",
            id="https to a plain-http server",
        ),
        pytest.param(
            lambda sandbox: f"http://127.0.0.1:{sandbox.port}",
            "MINT wrong address (404)",
            "MINT answered 404 for /health/: MINT_API_URL must end with the API version, "
            "e.g. https://<host>/api/v1.0.",
            "MINT answered 404",
            id="no /api/vX.Y",
        ),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_a_wrong_mint_api_url_is_said_on_every_page_and_once_in_the_log(
    mint_sandbox, dispatcher, dispatcher_client, url, widget, banner, attempt_error
):
    plan = queue_plans(dispatcher, 1)[0]
    worker = start_worker(
        mint_sandbox, "misdirected", MINT_API_URL=url(mint_sandbox), MINT_HEALTH_INTERVAL="0.5"
    )
    log = Lines(worker)
    try:
        wait_for(
            lambda: banner in page_says(dispatcher_client, "worker-banner"),
            seconds=20,
            what="the banner to say what is wrong",
        )
        wait_for(
            lambda: plan.submissions.filter(attempt_count__gte=1).exists(),
            seconds=20,
            what="a first attempt",
        )
        time.sleep(2)  # more checks: the same answer, no new ERROR
        shown = page_says(dispatcher_client, "health-widget")
    finally:
        assert stop(worker) == 0
    assert widget in shown
    assert "no answer" not in shown
    errors = log.matching("ERROR")
    assert len(errors) == 1, log.lines
    assert banner.rstrip(".") in errors[0]
    assert attempt_error in plan.submissions.get().last_error


@pytest.mark.django_db(transaction=True)
def test_a_worker_with_an_unreadable_url_says_so_once_and_sends_nothing(
    mint_sandbox, dispatcher, dispatcher_client
):
    """`manage.py check` fails on it (plans.E001); a worker started anyway stays up, so that
    systemd does not restart it (and it say the same again) every few seconds."""
    plan = queue_plans(dispatcher, 1)[0]
    worker = start_worker(mint_sandbox, "unaddressed", MINT_API_URL="http://[::1:8001/api/v1.0")
    log = Lines(worker)
    says = "MINT_API_URL cannot be used: 'http://[::1:8001/api/v1.0' is not a URL"
    try:
        wait_for(lambda: log.matching("ERROR"), seconds=20, what="the worker to say why")
        time.sleep(6)  # past a heartbeat: still running, still one ERROR
        assert worker.poll() is None
        banner = page_says(dispatcher_client, "worker-banner")
        panel = page_says(dispatcher_client, "operations-panel")
    finally:
        assert stop(worker) == 0
    errors = log.matching("ERROR")
    assert len(errors) == 1, log.lines
    assert says in errors[0]
    assert says in banner
    assert "Waiting for MINT_API_URL to be fixed (then a restart of the worker)" in panel
    assert plan.submissions.get().attempt_count == 0
    assert mint_sandbox.log == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_on_postgres_deliver_each_message_exactly_once(mint_sandbox, dispatcher):
    assert connection.vendor == "postgresql", "run with DATABASE_URL=postgres://…"
    queue_plans(dispatcher, 200)
    workers = [start_worker(mint_sandbox, f"pg-{n}", MINT_WORKER_BATCH="10") for n in range(2)]
    try:
        wait_for(lambda: accepted_count() == 200, seconds=120, what="all 200 accepted")
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0]

    sent = mint_sandbox.plan_message_ids()
    assert len(sent) == 200
    assert len(set(sent)) == 200
    workers_used = set(
        PlanEvent.objects.filter(to_state="accepted").values_list("actor", flat=True)
    )
    assert workers_used == {"pg-0", "pg-1"}, "both workers should have shared the queue"
    assert mint_sandbox.token_requests == 1


def test_it_refuses_to_start_when_the_lease_does_not_cover_a_send():
    env = {**os.environ, "MINT_LEASE_SECONDS": "5", "MINT_READ_TIMEOUT": "7"}
    result = subprocess.run(
        [sys.executable, MANAGE, "mint_worker", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "MINT_LEASE_SECONDS (5 s) is too short for" in result.stderr
    assert "MINT_CONNECT_TIMEOUT + MINT_READ_TIMEOUT (3.05 + 7 s)" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_a_worker_stalled_past_its_lease_cannot_undo_the_takeover(mint_sandbox, dispatcher):
    """A worker freezes (stopped, swapped out, a long pause) while MINT is slowly answering its
    send; its lease runs out, a second worker re-sends the message and MINT accepts it; then the
    first wakes up with its own answer. MINT sees the messageId at most twice, the plan settles
    as accepted, and the stalled send counts as an attempt."""
    [plan] = queue_plans(dispatcher, 1)
    mint_sandbox.set_behaviour(plan_hang=1.0, plan_hang_count=1)
    lease = {"MINT_LEASE_SECONDS": "3", "MINT_CONNECT_TIMEOUT": "0.2", "MINT_READ_TIMEOUT": "1.3"}
    stalled = start_worker(mint_sandbox, "stalled", **lease)
    rescuer = None
    try:
        wait_for(
            lambda: Submission.objects.filter(lease_owner__startswith="stalled/").exists(),
            seconds=30,
            what="the first claim",
        )
        time.sleep(0.4)  # its POST is now hanging inside the sandbox
        stalled.send_signal(signal.SIGSTOP)
        rescuer = start_worker(mint_sandbox, "rescuer", **lease)
        wait_for(lambda: accepted_count() == 1, seconds=30, what="the takeover's acceptance")
        stalled.send_signal(signal.SIGCONT)
        wait_for(
            lambda: Submission.objects.get().attempt_count == 2, seconds=30, what="the late send"
        )
        time.sleep(0.5)
    finally:
        stalled.send_signal(signal.SIGCONT)
        codes = [stop(stalled), stop(rescuer) if rescuer else 0]
    assert codes == [0, 0]

    submission = Submission.objects.get()
    plan.refresh_from_db()
    assert mint_sandbox.plan_message_ids() == [str(submission.message_id)] * 2
    assert (submission.state, plan.state) == ("accepted", PlanState.ACCEPTED)
    assert submission.attempt_count == 2
    assert sorted(submission.attempts.values_list("worker", flat=True)) == ["rescuer", "stalled"]
    last = plan.events.order_by("-at", "-id").first()
    assert (last.to_state, last.actor) == ("accepted", "rescuer")


@pytest.mark.django_db(transaction=True)
def test_a_sick_mint_gets_few_posts_and_the_backlog_goes_at_once_when_it_recovers(
    mint_sandbox, dispatcher
):
    """/health/ says 200 while /plan/ answers 503 for 4 s, with two workers and production
    backoff. The shared circuit opens after 3 failures and one message probes at 0.2, 0.6,
    1.4, 2.2, 3.0, 3.8 s (the interval doubling up to 0.8 s): about 9 POSTs in the outage,
    where per-message backoff alone sent well over a hundred. The first probe that gets
    through makes the whole backlog due: it is delivered within a probe interval plus the
    time it takes, not after each message's own backoff (up to minutes)."""
    queue_plans(dispatcher, 40)
    mint_sandbox.set_behaviour(plan_fail_status=503)
    circuit = {
        "MINT_CIRCUIT_THRESHOLD": "3",
        "MINT_CIRCUIT_PROBE_BASE": "0.2",
        "MINT_CIRCUIT_PROBE_CAP": "0.8",
        "MINT_RETRY_BASE": "2",
        "MINT_RETRY_CAP": "300",
    }
    workers = [start_worker(mint_sandbox, f"w{n}", **circuit) for n in range(2)]
    try:
        wait_for(
            lambda: any(e["endpoint"] == "plan" for e in mint_sandbox.log),
            seconds=30,
            what="the first POST",
        )
        time.sleep(4)
        mint_sandbox.set_behaviour(plan_fail_status=None, plan_fail_count=0)
        recovered = time.monotonic()
        wait_for(lambda: accepted_count() == 40, seconds=60, what="the backlog")
        backlog_seconds = time.monotonic() - recovered
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0]

    statuses = [e["status"] for e in mint_sandbox.log if e["endpoint"] == "plan"]
    failed = statuses.count(503)
    assert 3 <= failed <= 15, f"{failed} POSTs during the outage"
    assert statuses.count(200) == 40
    assert backlog_seconds < 4, f"backlog delivered {backlog_seconds:.1f} s after recovery"
