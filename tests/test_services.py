"""The services hold the rules even when no form stands in front of them."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from plans import services
from plans.mint.outcomes import Accepted, HealthResult, Unavailable
from plans.models import (
    HealthCheck,
    MintCircuit,
    MintStatus,
    Plan,
    PlanEvent,
    PlanState,
    Submission,
)
from plans.selectors import QueueSummary, queue_summary
from plans.timezones import LocalTimeError, local_to_utc
from tests.factories import make_location, make_plan

pytestmark = pytest.mark.usefixtures("counts_stay_true")


@pytest.mark.django_db
def test_it_clears_the_other_target_when_the_kind_is_chosen(dispatcher):
    plan = make_plan(user=dispatcher, kind="charge", expected_range_km=200)
    assert (plan.expected_range_km, plan.expected_charge_kwh) == (None, 60)
    assert plan.average_consumption is None


@pytest.mark.django_db
def test_it_refuses_a_window_that_has_already_ended(dispatcher):
    now = timezone.now()
    with pytest.raises(ValidationError) as excinfo:
        make_plan(
            user=dispatcher,
            scheduled_start=now - timedelta(hours=3),
            scheduled_end=now - timedelta(minutes=1),
        )
    assert "scheduled_end" in excinfo.value.message_dict
    assert Plan.objects.count() == 0


@pytest.mark.django_db
def test_it_accepts_a_start_in_the_past_when_the_window_is_still_open(dispatcher):
    now = timezone.now()
    plan = make_plan(
        user=dispatcher,
        scheduled_start=now - timedelta(hours=1),
        scheduled_end=now + timedelta(hours=1),
    )
    assert plan.pk


@pytest.mark.django_db
def test_it_refuses_plans_for_an_inactive_site(dispatcher):
    site = make_location("OLD-1", "Old yard", is_active=False)
    with pytest.raises(ValidationError) as excinfo:
        make_plan(user=dispatcher, location=site)
    assert "location" in excinfo.value.message_dict


@pytest.mark.django_db
def test_it_refuses_a_missing_target_value_and_saves_nothing(dispatcher):
    with pytest.raises(ValidationError):
        make_plan(user=dispatcher, kind="charge", expected_charge_kwh=None)
    assert Plan.objects.count() == 0
    assert PlanEvent.objects.count() == 0


@pytest.mark.django_db
def test_every_change_leaves_a_history_row_with_who_and_why(dispatcher):
    plan = make_plan(user=dispatcher)
    services.plan_submit(plan=plan, user=dispatcher)
    plan = services.plan_update(plan=plan, user=dispatcher, average_consumption=Decimal("20"))

    rows = list(plan.events.values_list("action", "from_state", "to_state", "actor", "revision"))
    assert rows == [
        ("created", "", "draft", "dispatcher", 1),
        ("submitted", "draft", "queued", "dispatcher", 1),
        ("edited", "queued", "draft", "dispatcher", 2),
    ]


@pytest.mark.django_db
def test_only_drafts_can_be_submitted_and_only_failures_retried(dispatcher):
    plan = make_plan(user=dispatcher)
    with pytest.raises(services.PlanActionError):
        services.plan_retry(plan=plan, user=dispatcher)
    services.plan_submit(plan=plan, user=dispatcher)
    with pytest.raises(services.PlanActionError):
        services.plan_submit(plan=plan, user=dispatcher)
    plan.refresh_from_db()
    assert plan.state == PlanState.QUEUED


@pytest.mark.django_db
def test_bulk_submit_reports_each_plan_that_could_not_be_queued(dispatcher):
    drafts = [make_plan(user=dispatcher) for _ in range(3)]
    services.plan_submit(plan=drafts[1], user=dispatcher)

    queued, problems = services.plans_submit(plans=drafts, user=dispatcher)

    assert queued == 2
    assert len(problems) == 1 and problems[0].startswith(f"Plan {drafts[1].pk}:")


@pytest.mark.parametrize(
    ("wall", "zone", "expected"),
    [
        (datetime(2026, 7, 1, 10, 0), "Europe/Brussels", "2026-07-01 08:00"),
        (datetime(2026, 1, 15, 10, 0), "Europe/Brussels", "2026-01-15 09:00"),
        (datetime(2026, 7, 1, 10, 0), "America/New_York", "2026-07-01 14:00"),
        (datetime(2026, 3, 29, 3, 0), "Europe/Brussels", "2026-03-29 01:00"),
        (datetime(2026, 10, 25, 3, 0), "Europe/Brussels", "2026-10-25 02:00"),
    ],
)
def test_it_converts_site_local_times_to_utc(wall, zone, expected):
    assert local_to_utc(wall, zone).strftime("%Y-%m-%d %H:%M") == expected


@pytest.mark.parametrize(
    ("wall", "zone", "words"),
    [
        (datetime(2026, 3, 29, 2, 30), "Europe/Brussels", "does not exist"),
        (datetime(2026, 10, 25, 2, 30), "Europe/Brussels", "happens twice"),
        (datetime(2026, 3, 8, 2, 15), "America/New_York", "does not exist"),
        (datetime(2026, 11, 1, 1, 30), "America/New_York", "happens twice"),
        (datetime(1, 1, 1, 0, 0), "Europe/Brussels", "is out of range"),
    ],
)
def test_it_refuses_to_guess_across_dst_changes(wall, zone, words):
    with pytest.raises(LocalTimeError, match=words):
        local_to_utc(wall, zone)


@pytest.mark.django_db
def test_saving_without_a_change_makes_no_revision_and_keeps_the_message(dispatcher):
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)

    same = services.plan_update(plan=plan, user=dispatcher, expected_range_km=240)

    submission.refresh_from_db()
    assert (same.state, same.revision) == (PlanState.QUEUED, 1)
    assert submission.state == "queued"
    assert not plan.events.filter(action="edited").exists()


@pytest.mark.django_db
def test_a_plan_whose_window_ended_cannot_be_retried(dispatcher):
    plan = make_plan(user=dispatcher)
    submission = services.plan_submit(plan=plan, user=dispatcher)
    # Time passes: the delivery failed and the window is over (moved back, as raw rows).
    ended = timezone.now() - timedelta(minutes=1)
    Submission.objects.filter(pk=submission.pk).update(state="failed")
    Plan.objects.filter(pk=plan.pk).update(
        state="failed", scheduled_start=ended - timedelta(hours=2), scheduled_end=ended
    )
    services.plan_state_counts_rebuild()
    plan.refresh_from_db()

    with pytest.raises(services.PlanActionError, match="window has already ended"):
        services.plan_retry(plan=plan, user=dispatcher)


@pytest.mark.django_db
def test_a_renewed_lease_keeps_only_the_messages_still_held(dispatcher, settings):
    plans = [make_plan(user=dispatcher) for _ in range(3)]
    for plan in plans:
        services.plan_submit(plan=plan, user=dispatcher)
    batch = services.submissions_claim(worker="slow", limit=3)
    lost = batch[1]
    Submission.objects.filter(pk=lost.pk).update(lease_expires_at=timezone.now())
    taken = services.submissions_claim(worker="quick", limit=3)
    assert [s.pk for s in taken] == [lost.pk]

    held = services.submissions_renew_lease(submissions=batch)

    assert held == {batch[0].pk, batch[2].pk}
    renewed = Submission.objects.get(pk=batch[0].pk).lease_expires_at
    assert renewed > timezone.now() + timedelta(seconds=settings.MINT_LEASE_SECONDS - 5)


@pytest.mark.django_db
def test_counter_rows_are_always_locked_in_the_same_order(dispatcher):
    """Submit locks draft→queued and an edit queued→draft: both must touch the counter rows in
    one fixed order, or two of them at once deadlock on PostgreSQL."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    plan = make_plan(user=dispatcher)
    with CaptureQueriesContext(connection) as submitted:
        services.plan_submit(plan=plan, user=dispatcher)
    with CaptureQueriesContext(connection) as edited:
        services.plan_update(plan=plan, user=dispatcher, expected_range_km=99)

    for captured in (submitted, edited):
        touched = [
            q["sql"].split("WHERE")[1]
            for q in captured.captured_queries
            if q["sql"].startswith('UPDATE "plans_planstatecount"')
        ]
        assert len(touched) == 2
        assert "draft" in touched[0] and "queued" in touched[1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("start_in", "hours", "field", "message"),
    [
        (timedelta(hours=1), 7 * 24 + 1, "scheduled_end", "A plan covers at most 7 days"),
        (timedelta(days=367), 2, "scheduled_start", "A plan can start at most a year ahead"),
        (timedelta(days=-800), 800 * 24 + 2, "scheduled_end", "A plan covers at most 7 days"),
    ],
    ids=["eight-day window", "start beyond a year", "start in an earlier year"],
)
def test_it_refuses_a_window_no_vehicle_stays_and_saves_nothing(
    dispatcher, start_in, hours, field, message
):
    start = timezone.now() + start_in

    with pytest.raises(ValidationError) as caught:
        make_plan(
            user=dispatcher, scheduled_start=start, scheduled_end=start + timedelta(hours=hours)
        )

    assert message in " ".join(caught.value.message_dict[field])
    assert not Plan.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_note_with_a_direction_override_whatever_the_path(dispatcher):
    with pytest.raises(ValidationError) as caught:
        make_plan(user=dispatcher, status_note="bus \u202e12")

    assert "U+202E" in caught.value.message_dict["status_note"][0]
    assert not Plan.objects.exists()


@pytest.mark.django_db
def test_the_queue_summary_counts_waiting_and_due_messages(dispatcher):
    assert queue_summary() == QueueSummary(depth=0, oldest_at=None, due_now=0)
    plans = [make_plan(user=dispatcher) for _ in range(4)]
    for plan in plans:
        services.plan_submit(plan=plan, user=dispatcher)
    first, second = services.submissions_claim(worker="w", limit=2)
    now = timezone.now()
    services.submissions_record_outcomes(
        sent=[
            services.SentMessage(
                submission=first,
                outcome=Accepted(http_status=200, duration_ms=5, body_sent="{}"),
                started_at=now,
            ),
            services.SentMessage(
                submission=second,
                # Retry-After keeps it out of "due now" (full jitter alone may pick 0 s).
                outcome=Unavailable(
                    http_status=503, duration_ms=5, body_sent="{}", error="503", retry_after=600
                ),
                started_at=now,
            ),
        ],
        worker="w",
    )

    summary = queue_summary()

    # One accepted (gone from the queue), one retrying later, two queued and due now.
    assert (summary.depth, summary.due_now) == (3, 2)
    assert summary.oldest_at == Submission.objects.get(pk=second.pk).created_at


@pytest.mark.django_db
def test_uptime_weighs_each_check_by_the_time_it_speaks_for(settings):
    """Checks every 30 s while up and every 5 s while down: 90 s of outage in 30 minutes is
    5% down, not the 23% that counting checks would say."""
    settings.MINT_HEALTH_INTERVAL = 30
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    up = HealthResult(up=True, http_status=200, latency_ms=5)
    down = HealthResult(up=False, http_status=503, latency_ms=5)
    at = start
    for _ in range(30):  # 15 min up
        services.health_record(result=up, at=at)
        at += timedelta(seconds=30)
    for _ in range(18):  # 90 s down
        services.health_record(result=down, at=at)
        at += timedelta(seconds=5)
    for _ in range(30):  # 15 min up, the last check speaks for one interval
        services.health_record(result=up, at=at)
        at += timedelta(seconds=30)

    status = MintStatus.objects.get()

    assert status.uptime_24h == pytest.approx(1 - 90 / (30 * 60 + 90), abs=1e-6)
    hours = {start_iso: (up_s, known_s) for start_iso, up_s, known_s in status.hourly}
    assert hours[start.isoformat()] == (30 * 60, 30 * 60 + 90)


@pytest.mark.django_db
def test_uptime_counts_unchecked_time_as_unknown(settings):
    settings.MINT_HEALTH_INTERVAL = 30
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    services.health_record(result=HealthResult(up=True, http_status=200, latency_ms=5), at=start)
    # No worker for an hour, then MINT found down.
    later = start + timedelta(hours=1)
    services.health_record(result=HealthResult(up=False, http_status=503, latency_ms=5), at=later)

    status = MintStatus.objects.get()

    # 60 s (two intervals) known up, then 30 s known down; the hour between is unknown.
    assert status.uptime_24h == pytest.approx(60 / 90)


@pytest.mark.django_db
def test_uptime_splits_a_check_across_the_hours_it_speaks_for(settings):
    settings.MINT_HEALTH_INTERVAL = 30
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    up = HealthResult(up=True, http_status=200, latency_ms=5)
    down = HealthResult(up=False, http_status=503, latency_ms=5)
    services.health_record(result=down, at=hour - timedelta(seconds=10))
    services.health_record(result=up, at=hour + timedelta(seconds=20))

    hours = {start: (up_s, known_s) for start, up_s, known_s in MintStatus.objects.get().hourly}

    # 10 s down before the hour, 20 s down after it, then the up check's 30 s.
    assert hours[(hour - timedelta(hours=1)).isoformat()] == (0, 10)
    assert hours[hour.isoformat()] == (30, 50)


@pytest.mark.django_db
def test_uptime_lets_the_check_before_the_day_speak_for_its_first_seconds(settings):
    settings.MINT_HEALTH_INTERVAL = 30
    latest = timezone.now().replace(minute=0, second=5, microsecond=0) - timedelta(hours=1)
    since = latest.replace(second=0) - timedelta(hours=23)
    up = HealthResult(up=True, http_status=200, latency_ms=5)
    down = HealthResult(up=False, http_status=503, latency_ms=5)
    services.health_record(result=up, at=since - timedelta(seconds=10))
    services.health_record(result=down, at=since + timedelta(seconds=50))
    services.health_record(result=up, at=latest)

    first_hour = MintStatus.objects.get().hourly[0]

    # The up check from before the day speaks until the down check; that one for 60 s.
    assert first_hour == [since.isoformat(), 50, 110]


@pytest.mark.django_db
def test_a_check_recorded_late_does_not_replace_a_later_one_on_the_pages():
    now = timezone.now()
    services.health_record(result=HealthResult(up=True, http_status=200, latency_ms=5), at=now)
    # Another worker's check from a moment earlier, written after it.
    services.health_record(
        result=HealthResult(up=False, http_status=503, latency_ms=5),
        at=now - timedelta(seconds=2),
    )

    status = MintStatus.objects.get()
    assert (status.checked_at, status.result) == (now, "up")
    assert HealthCheck.objects.count() == 2


@pytest.mark.django_db
def test_the_circuit_ignores_one_message_failing_again_and_again(settings):
    settings.MINT_CIRCUIT_THRESHOLD = 3
    for _ in range(10):
        assert services.circuit_note_failure(message_id="same", probe=False) is False
    assert services.circuit_gate()[0] == services.Gate.SEND


@pytest.mark.django_db
def test_the_circuit_opens_lets_one_probe_through_and_backs_off_while_it_fails(settings):
    settings.MINT_CIRCUIT_THRESHOLD = 3
    settings.MINT_CIRCUIT_PROBE_BASE = 2
    settings.MINT_CIRCUIT_PROBE_CAP = 5
    opened = [services.circuit_note_failure(message_id=m, probe=False) for m in "abc"]
    assert opened == [False, False, True]
    gate, wait = services.circuit_gate()
    assert gate == services.Gate.WAIT and 1 < wait <= 2

    intervals = []
    for _ in range(3):
        MintCircuit.objects.update(probe_at=timezone.now())  # the interval has passed
        gates = [services.circuit_gate()[0] for _ in range(2)]  # two workers ask at once
        assert gates == [services.Gate.PROBE, services.Gate.WAIT]
        assert services.circuit_note_failure(message_id="d", probe=True) is True
        intervals.append(MintCircuit.objects.get().probe_interval)
    assert intervals == [4, 5, 5]


@pytest.mark.django_db
def test_a_successful_probe_closes_the_circuit_and_makes_every_waiting_message_due(dispatcher):
    plans = [make_plan(user=dispatcher) for _ in range(3)]
    for plan in plans:
        services.plan_submit(plan=plan, user=dispatcher)
    later = timezone.now() + timedelta(minutes=5)
    Submission.objects.update(state="retrying", next_attempt_at=later, attempt_count=1)
    for message in "abcde":
        services.circuit_note_failure(message_id=message, probe=False)
    MintCircuit.objects.update(probe_at=timezone.now())
    assert services.circuit_gate()[0] == services.Gate.PROBE
    [probe] = services.submissions_claim(worker="w", limit=1, early=True)

    services.circuit_note_success(finished_at=timezone.now())

    assert services.circuit_gate()[0] == services.Gate.SEND
    due = services.submissions_claim(worker="w", limit=10)
    assert len(due) == 2 and probe.pk not in {s.pk for s in due}


@pytest.mark.django_db
def test_a_success_older_than_the_last_failure_does_not_end_the_run(settings):
    settings.MINT_CIRCUIT_THRESHOLD = 2
    before = timezone.now()
    services.circuit_note_failure(message_id="a", probe=False)
    services.circuit_note_success(finished_at=before)
    assert services.circuit_note_failure(message_id="b", probe=False) is True
