"""Delivery end to end over real HTTP: services + worker + MINT client against the sandbox."""

import json
import re
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from plans import services
from plans.mint.outcomes import Accepted, Unavailable
from plans.models import DeliveryAttempt, HealthCheck, PlanEvent, PlanState, Submission
from tests.factories import make_plan
from tests.spec import CHARGE_FIELDS, RANGE_FIELDS

WIRE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


pytestmark = pytest.mark.usefixtures("counts_stay_true")


@pytest.fixture
def mint(settings, mint_sandbox):
    """Point the portal at the sandbox; a short read timeout keeps hang tests quick."""
    settings.MINT_API_URL = mint_sandbox.url
    settings.MINT_READ_TIMEOUT = 1.0
    settings.MINT_HEALTH_INTERVAL = 0.0
    return mint_sandbox


def run_worker_until_settled(plans, *, seconds: float = 15.0) -> None:
    """Run the real worker command until every plan reached a final state (or time runs out)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        call_command("mint_worker", "--once", "--name", "w", stdout=StringIO(), stderr=StringIO())
        for plan in plans:
            plan.refresh_from_db()
        if all(plan.is_final for plan in plans):
            return
        time.sleep(0.05)
    raise AssertionError(f"not settled: {[(p.pk, p.state) for p in plans]}")


@pytest.mark.django_db(transaction=True)
def test_it_delivers_a_submitted_plan_and_records_the_attempt(mint, dispatcher):
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)

    run_worker_until_settled([plan])

    assert plan.state == PlanState.ACCEPTED
    attempt = DeliveryAttempt.objects.get(submission=submission)
    assert attempt.http_status == 200
    assert attempt.outcome == "accepted"
    assert attempt.trigger == "scheduled"
    assert json.loads(attempt.request_body) == mint.accepted[0]
    assert mint.accepted[0]["messageId"] == str(submission.message_id)
    states = list(plan.events.values_list("from_state", "to_state"))
    assert states[-3:] == [("draft", "queued"), ("queued", "sending"), ("sending", "accepted")]


@pytest.mark.django_db(transaction=True)
def test_it_sends_the_payload_with_the_spec_field_names_and_formats(mint, dispatcher):
    range_plan = make_plan(user=dispatcher)
    charge_plan = make_plan(user=dispatcher, kind="charge", status_note="bus 12, depot gate B")
    for plan in (range_plan, charge_plan):
        services.plan_submit(plan=plan, user=dispatcher)

    run_worker_until_settled([range_plan, charge_plan])

    by_transaction = {body["transactionId"]: body for body in mint.accepted}
    sent_range = by_transaction[str(range_plan.transaction_id)]
    sent_charge = by_transaction[str(charge_plan.transaction_id)]
    assert list(sent_range) == RANGE_FIELDS
    assert list(sent_charge) == CHARGE_FIELDS
    assert sent_range["expectedRange"] == 240 and isinstance(sent_range["expectedRange"], int)
    assert sent_range["averageConsumption"] == 18.5
    assert sent_charge["expectedCharge"] == 60 and isinstance(sent_charge["expectedCharge"], int)
    for body in (sent_range, sent_charge):
        for key in ("timestamp", "scheduledStartTime", "scheduledEndTime"):
            assert WIRE_TIME.match(body[key]), body[key]
    assert sent_range["status"] == f"mintportal plan {range_plan.pk} rev 1 by dispatcher"
    assert sent_charge["status"] == "bus 12, depot gate B"
    assert sent_range["scheduledStartTime"] == range_plan.scheduled_start.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


@pytest.mark.django_db(transaction=True)
def test_it_keeps_and_shows_mints_rejection_messages(mint, dispatcher, dispatcher_client):
    mint.set_behaviour(reject_all=["expectedRange: <b>too far</b> for this site."])
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)

    run_worker_until_settled([plan])

    assert plan.state == PlanState.REJECTED
    submission.refresh_from_db()
    assert submission.mint_messages == ["expectedRange: <b>too far</b> for this site."]
    attempt = submission.attempts.get()
    assert (attempt.http_status, attempt.outcome) == (400, "rejected")
    page = dispatcher_client.get(f"/plans/{plan.pk}/").content.decode()
    assert "expectedRange: &lt;b&gt;too far&lt;/b&gt; for this site." in page
    assert "<b>too far</b>" not in page


@pytest.mark.django_db(transaction=True)
def test_it_refreshes_an_expired_token_once_and_delivers(mint, dispatcher):
    first = make_plan(user=dispatcher)
    services.plan_submit(plan=first, user=dispatcher)
    run_worker_until_settled([first])
    assert mint.token_requests == 1

    mint.set_behaviour(expire_tokens=True)
    second = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=second, user=dispatcher)
    run_worker_until_settled([second])

    assert second.state == PlanState.ACCEPTED
    assert mint.token_requests == 2
    assert submission.attempts.count() == 1
    plan_statuses = [e["status"] for e in mint.log if e["endpoint"] == "plan"]
    assert plan_statuses == [200, 401, 200]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("behaviour", "error_fragment"),
    [
        ({"plan_fail_status": 503, "plan_fail_count": 2}, "503"),
        ({"plan_html_502_count": 2}, "502"),
        ({"plan_hang": 2.5, "plan_hang_count": 1}, "did not answer"),
    ],
    ids=["503", "html-502", "timeout"],
)
def test_it_retries_with_backoff_until_mint_recovers(mint, dispatcher, behaviour, error_fragment):
    mint.set_behaviour(**behaviour)
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)

    run_worker_until_settled([plan])

    assert plan.state == PlanState.ACCEPTED
    attempts = list(submission.attempts.order_by("started_at", "id"))
    assert attempts[-1].outcome == "accepted"
    failed = attempts[:-1]
    assert failed and all(a.outcome == "unavailable" for a in failed)
    assert error_fragment in failed[0].error
    assert all(a.next_attempt_at and a.next_attempt_at > a.started_at for a in failed)
    sent_ids = set(mint.plan_message_ids())
    assert sent_ids == {str(submission.message_id)}
    assert PlanState.RETRYING in plan.events.values_list("to_state", flat=True)


@pytest.mark.django_db(transaction=True)
def test_it_fails_the_plan_visibly_when_the_deadline_passes(mint, settings, dispatcher):
    settings.MINT_DELIVERY_DEADLINE = 0.4
    mint.set_behaviour(plan_fail_status=500)
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)

    run_worker_until_settled([plan])

    assert plan.state == PlanState.FAILED
    submission.refresh_from_db()
    assert submission.attempt_count >= 1
    assert "500" in submission.last_error
    last = plan.events.order_by("-at", "-id").first()
    assert last.to_state == PlanState.FAILED
    assert "Gave up" in last.reason


@pytest.mark.django_db(transaction=True)
def test_it_waits_without_burning_attempts_while_health_is_down(mint, dispatcher):
    mint.set_behaviour(health_status=503)
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)

    call_command("mint_worker", "--once", stdout=StringIO(), stderr=StringIO())
    call_command("mint_worker", "--once", stdout=StringIO(), stderr=StringIO())

    plan.refresh_from_db()
    assert plan.state == PlanState.QUEUED
    assert submission.attempts.count() == 0
    assert [e["endpoint"] for e in mint.log if e["endpoint"] == "plan"] == []
    assert HealthCheck.objects.filter(result="down").count() == 2

    mint.set_behaviour(health_status=200)
    run_worker_until_settled([plan])
    assert plan.state == PlanState.ACCEPTED
    assert submission.attempts.count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_makes_one_token_request_for_many_deliveries(mint, dispatcher):
    plans = [make_plan(user=dispatcher) for _ in range(200)]
    for plan in plans:
        services.plan_submit(plan=plan, user=dispatcher)

    run_worker_until_settled(plans, seconds=60)

    assert {p.state for p in plans} == {PlanState.ACCEPTED}
    assert mint.token_requests == 1
    assert len(mint.accepted) == 200


@pytest.mark.django_db(transaction=True)
def test_a_manual_retry_resends_the_same_message_id(mint, settings, dispatcher):
    settings.MINT_DELIVERY_DEADLINE = 0.2
    mint.set_behaviour(plan_fail_status=500, plan_fail_count=50)
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)
    run_worker_until_settled([plan])
    assert plan.state == PlanState.FAILED

    mint.reset()
    settings.MINT_DELIVERY_DEADLINE = 3600
    services.plan_retry(plan=plan, user=dispatcher)
    run_worker_until_settled([plan])

    assert plan.state == PlanState.ACCEPTED
    assert mint.accepted[0]["messageId"] == str(submission.message_id)
    assert submission.attempts.order_by("-id").first().trigger == "manual"
    assert plan.events.filter(action=PlanEvent.Action.RETRIED, user=dispatcher).exists()


@pytest.mark.django_db(transaction=True)
def test_an_edit_after_acceptance_sends_a_new_message_for_the_same_transaction(mint, dispatcher):
    plan = make_plan(user=dispatcher)
    first = services.plan_submit(plan=plan, user=dispatcher)
    run_worker_until_settled([plan])

    plan = services.plan_update(plan=plan, user=dispatcher, expected_range_km=300)
    assert (plan.state, plan.revision) == (PlanState.DRAFT, 2)
    second = services.plan_submit(plan=plan, user=dispatcher)
    run_worker_until_settled([plan])

    assert second.message_id != first.message_id
    sent = mint.accepted
    assert [b["transactionId"] for b in sent] == [str(plan.transaction_id)] * 2
    assert [b["messageId"] for b in sent] == [str(first.message_id), str(second.message_id)]
    assert sent[1]["expectedRange"] == 300
    assert sent[1]["status"].endswith("rev 2 by dispatcher")


@pytest.mark.django_db(transaction=True)
def test_editing_a_queued_plan_withdraws_its_waiting_message(dispatcher):
    plan = make_plan(user=dispatcher)
    first = services.plan_submit(plan=plan, user=dispatcher)

    plan = services.plan_update(plan=plan, user=dispatcher, expected_range_km=100)

    first.refresh_from_db()
    assert first.state == "superseded"
    assert plan.state == PlanState.DRAFT
    assert Submission.objects.filter(plan=plan, state="queued").count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_plan_on_the_wire_cannot_be_edited_or_submitted_twice(dispatcher):
    plan = make_plan(user=dispatcher)
    services.plan_submit(plan=plan, user=dispatcher)
    claimed = services.submissions_claim(worker="w1", limit=10)
    assert [s.plan_id for s in claimed] == [plan.pk]

    with pytest.raises(services.PlanActionError):
        services.plan_update(plan=plan, user=dispatcher, expected_range_km=100)
    with pytest.raises(services.PlanActionError):
        services.plan_submit(plan=plan, user=dispatcher)
    assert services.submissions_claim(worker="w2", limit=10) == []


@pytest.mark.django_db(transaction=True)
def test_a_deadline_that_passes_during_an_outage_fails_the_plan(mint, settings, dispatcher):
    settings.MINT_DELIVERY_DEADLINE = 0.2
    mint.set_behaviour(health_status=503)
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)
    time.sleep(0.3)

    call_command("mint_worker", "--once", stdout=StringIO(), stderr=StringIO())

    plan.refresh_from_db()
    assert plan.state == PlanState.FAILED
    assert submission.attempts.count() == 0
    last = plan.events.order_by("-at", "-id").first()
    assert "passed while the message waited" in last.reason


@pytest.mark.django_db(transaction=True)
def test_refused_credentials_pause_the_worker_instead_of_hammering_mint(mint, settings, dispatcher):
    settings.MINT_CLIENT_SECRET = "not-the-secret"
    plans = [make_plan(user=dispatcher) for _ in range(3)]
    for plan in plans:
        services.plan_submit(plan=plan, user=dispatcher)

    call_command("mint_worker", "--once", stdout=StringIO(), stderr=StringIO())

    assert DeliveryAttempt.objects.count() == 1
    assert mint.token_requests == 1
    failed = Submission.objects.get(attempt_count=1)
    assert failed.state == "retrying"
    assert "MINT_CLIENT_SECRET" in failed.last_error
    assert Submission.objects.filter(attempt_count=0, state="queued").count() == 2


@pytest.mark.django_db(transaction=True)
def test_it_fetches_one_short_lived_token_for_many_deliveries(mint, dispatcher):
    # A 5-second token: a fixed 60 s margin fetched a new one before every send.
    mint.set_behaviour(token_ttl=5)
    plans = [make_plan(user=dispatcher) for _ in range(30)]
    for plan in plans:
        services.plan_submit(plan=plan, user=dispatcher)

    run_worker_until_settled(plans)

    assert {p.state for p in plans} == {PlanState.ACCEPTED}
    assert mint.token_requests == 1


def _expire_lease(submission) -> None:
    Submission.objects.filter(pk=submission.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("late_first", [False, True], ids=["after-new-claim", "before-it"])
def test_a_send_that_outlived_its_lease_counts_but_cannot_overwrite_the_new_claim(
    dispatcher, late_first
):
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)
    [slow] = services.submissions_claim(worker="slow", limit=5)
    _expire_lease(slow)
    [quick] = services.submissions_claim(worker="quick", limit=5)
    assert (slow.lease_number, quick.lease_number) == (1, 2)
    late = services.SentMessage(
        slow, Unavailable(None, 9000, slow.body, error="MINT did not answer"), timezone.now()
    )
    fresh = services.SentMessage(quick, Accepted(200, 20, quick.body), timezone.now())

    order = [late, fresh] if late_first else [fresh, late]
    results = [
        services.submissions_record_outcomes(sent=[item], worker=item.submission.lease_owner)[0]
        for item in order
    ]

    by_claim = dict(zip([i.submission.lease_number for i in order], results, strict=True))
    assert by_claim[1].lease_lost and not by_claim[2].lease_lost
    submission.refresh_from_db()
    plan.refresh_from_db()
    assert (submission.state, plan.state) == ("accepted", PlanState.ACCEPTED)
    assert submission.attempt_count == 2
    assert submission.attempts.count() == 2
    last = plan.events.order_by("-at", "-id").first()
    assert (last.from_state, last.to_state) == ("sending", "accepted")
    assert not plan.events.filter(to_state="retrying").exists()


@pytest.mark.django_db(transaction=True)
def test_a_late_failure_grows_the_backoff_of_the_next_attempt(dispatcher, settings):
    settings.MINT_RETRY_BASE = 100
    settings.MINT_RETRY_CAP = 1000
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)
    [slow] = services.submissions_claim(worker="slow", limit=5)
    _expire_lease(slow)
    [quick] = services.submissions_claim(worker="quick", limit=5)
    failure = Unavailable(503, 5, slow.body, error="MINT answered 503")
    now = timezone.now()
    services.submissions_record_outcomes(
        sent=[services.SentMessage(slow, failure, now)], worker="slow"
    )
    services.submissions_record_outcomes(
        sent=[services.SentMessage(quick, failure, now)], worker="quick"
    )

    submission.refresh_from_db()
    assert (submission.state, submission.attempt_count) == ("retrying", 2)
    assert "Next attempt in" in plan.events.order_by("-id").first().reason


@pytest.mark.django_db(transaction=True)
def test_a_claim_whose_worker_vanished_past_the_deadline_is_failed_not_resent(dispatcher):
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)
    services.submissions_claim(worker="gone", limit=5)
    past = timezone.now() - timedelta(seconds=1)
    Submission.objects.filter(pk=submission.pk).update(lease_expires_at=past, deadline=past)

    assert services.submissions_claim(worker="next", limit=5) == []
    assert services.submissions_fail_overdue(worker="next") == 1

    submission.refresh_from_db()
    plan.refresh_from_db()
    assert (submission.state, plan.state) == ("failed", PlanState.FAILED)
    last = plan.events.order_by("-at", "-id").first()
    assert (last.from_state, last.to_state) == ("sending", "failed")
    assert "deadline" in last.reason


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("concurrency", [1, 3])
def test_it_keeps_the_configured_number_of_sends_in_flight(mint, settings, dispatcher, concurrency):
    settings.MINT_WORKER_CONCURRENCY = concurrency
    mint.set_behaviour(plan_latency_ms=150)
    plans = [make_plan(user=dispatcher) for _ in range(10)]
    for plan in plans:
        services.plan_submit(plan=plan, user=dispatcher)

    run_worker_until_settled(plans)

    assert {p.state for p in plans} == {PlanState.ACCEPTED}
    assert mint.plans_in_flight_peak == concurrency
    assert len(mint.plan_message_ids()) == 10
    assert mint.token_requests == 1


@pytest.mark.django_db(transaction=True)
def test_it_sends_one_at_a_time_until_mint_answers_properly(mint, settings, dispatcher):
    # A sick MINT gets one request, not a round of MINT_WORKER_CONCURRENCY of them.
    settings.MINT_WORKER_CONCURRENCY = 4
    mint.set_behaviour(plan_fail_status=503, plan_fail_count=1, plan_latency_ms=100)
    plans = [make_plan(user=dispatcher) for _ in range(3)]
    for plan in plans:
        services.plan_submit(plan=plan, user=dispatcher)

    call_command("mint_worker", "--once", stdout=StringIO(), stderr=StringIO())

    statuses = [e["status"] for e in mint.log if e["endpoint"] == "plan"]
    assert statuses[0] == 503
    assert mint.plans_in_flight_peak == 1
