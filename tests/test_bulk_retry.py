"""Bulk retry: ticked failed and rejected plans, or every plan failed since a time, sent again
in one go, each with its own messageId (``services.plans_retry`` and its two pages)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from plans import services
from plans.models import Plan, PlanEvent, PlanState, Submission
from tests.factories import deliver_all, make_location, make_plan

pytestmark = pytest.mark.usefixtures("counts_stay_true")


def plans_at_times(user, count: int, *, hours: int = 2, **extra) -> list[Plan]:
    """``count`` plans a minute apart (so the guards see no two alike)."""
    start = timezone.now().replace(microsecond=0) + timedelta(hours=hours)
    return [
        make_plan(
            user=user,
            scheduled_start=start + timedelta(minutes=n),
            scheduled_end=start + timedelta(hours=3, minutes=n),
            **extra,
        )
        for n in range(count)
    ]


def message_ids(plans: list[Plan]) -> dict[int, object]:
    return {s.plan_id: s.message_id for s in Submission.objects.filter(plan__in=plans)}


# --- the service ---------------------------------------------------------------------------------


def test_it_retries_failed_and_rejected_plans_each_with_its_own_message_id(dispatcher):
    failed = plans_at_times(dispatcher, 2)
    rejected = plans_at_times(dispatcher, 2, hours=6)
    deliver_all(failed, user=dispatcher, outcome="failed")
    deliver_all(rejected, user=dispatcher, outcome="rejected")
    before = message_ids(failed + rejected)

    result = services.plans_retry(plan_ids=[p.pk for p in failed + rejected], user=dispatcher)

    assert result.retried == before
    assert result.skipped == {}
    assert Submission.objects.count() == 4  # no new message: the same ones go again
    for plan in failed + rejected:
        plan.refresh_from_db()
        submission = plan.submissions.get()
        assert (plan.state, submission.state) == (PlanState.QUEUED, "queued")
        assert submission.next_trigger == "manual"
        assert submission.finished_at is None
        assert submission.next_attempt_at <= timezone.now()


def test_it_writes_history_per_plan_saying_who_retried_in_bulk_and_how_many(dispatcher):
    plans = plans_at_times(dispatcher, 3)
    deliver_all(plans, user=dispatcher, outcome="failed")

    services.plans_retry(
        plan_ids=[p.pk for p in plans], user=dispatcher, source="failed since Mon 30 Nov 04:00 CET"
    )

    for plan in plans:
        event = plan.events.order_by("-id").first()
        assert event.action == PlanEvent.Action.RETRIED
        assert (event.from_state, event.to_state) == (PlanState.FAILED, PlanState.QUEUED)
        assert event.user == dispatcher
        message_id = plan.submissions.get().message_id
        assert event.reason == (
            f"Retried in bulk by dispatcher, 3 plans (failed since Mon 30 Nov 04:00 CET); "
            f"message {message_id} is sent again."
        )


def test_it_skips_plans_it_cannot_retry_and_says_why_for_each(dispatcher):
    failed = plans_at_times(dispatcher, 1)
    deliver_all(failed, user=dispatcher, outcome="failed")
    [draft] = plans_at_times(dispatcher, 1, hours=9)
    accepted = plans_at_times(dispatcher, 1, hours=12)
    deliver_all(accepted, user=dispatcher, outcome="accepted")
    ended = plans_at_times(dispatcher, 1, hours=15)
    deliver_all(ended, user=dispatcher, outcome="failed")
    # Time passes: its window is over (moved back as raw rows, as the worker never would).
    Plan.objects.filter(pk=ended[0].pk).update(
        scheduled_start=timezone.now() - timedelta(hours=3),
        scheduled_end=timezone.now() - timedelta(hours=1),
    )
    ids = [failed[0].pk, draft.pk, accepted[0].pk, ended[0].pk, 999_999]

    result = services.plans_retry(plan_ids=ids, user=dispatcher)

    assert list(result.retried) == [failed[0].pk]
    assert result.skipped == {
        draft.pk: "Only failed, rejected or retrying plans can be retried; this plan is draft.",
        accepted[0].pk: (
            "Only failed, rejected or retrying plans can be retried; this plan is accepted."
        ),
        ended[0].pk: (
            "This plan's window has already ended, so MINT has no use for it any more. "
            "Duplicate it with new times instead."
        ),
        999_999: "There is no plan 999999.",
    }
    draft.refresh_from_db()
    assert draft.state == PlanState.DRAFT
    assert Plan.objects.get(pk=ended[0].pk).state == PlanState.FAILED


def test_it_skips_a_plan_whose_message_is_on_the_wire(dispatcher):
    plans = plans_at_times(dispatcher, 1)
    deliver_all(plans, user=dispatcher, outcome="failed")
    # A rejected plan whose message row is being sent (claimed again meanwhile).
    Submission.objects.filter(plan=plans[0]).update(state="sending")

    result = services.plans_retry(plan_ids=[plans[0].pk], user=dispatcher)

    assert result.retried == {}
    assert result.skipped == {plans[0].pk: "This plan is being sent to MINT right now."}


def test_it_refuses_the_same_plans_as_the_single_retry(dispatcher):
    draft = make_plan(user=dispatcher)

    with pytest.raises(services.PlanActionError) as single:
        services.plan_retry(plan=draft, user=dispatcher)
    bulk = services.plans_retry(plan_ids=[draft.pk], user=dispatcher)

    assert bulk.skipped == {draft.pk: str(single.value)}


@pytest.mark.parametrize("count", [1, 50])
def test_it_retries_in_a_fixed_number_of_queries(dispatcher, django_assert_num_queries, count):
    plans = plans_at_times(dispatcher, count)
    deliver_all(plans, user=dispatcher, outcome="failed")
    ids = [p.pk for p in plans]

    # plans, messages (both locked), messages re-queued, plans queued, history rows, and the
    # two state counters (failed −, queued +) = 7, for one plan as for fifty; and the savepoint
    # of its transaction (inside the test's own) and its release.
    with django_assert_num_queries(9):
        result = services.plans_retry(plan_ids=ids, user=dispatcher)

    assert len(result.retried) == count


# --- the pages -----------------------------------------------------------------------------------


def test_it_retries_the_ticked_plans_from_the_plan_list(dispatcher_client, dispatcher):
    plans = plans_at_times(dispatcher, 3)
    deliver_all(plans[:2], user=dispatcher, outcome="failed")
    deliver_all(plans[2:], user=dispatcher, outcome="rejected")
    page = dispatcher_client.get("/plans/").content.decode()
    assert 'name="retry"' in page and "Retry selected" in page

    response = dispatcher_client.post(
        "/plans/retry-selected/",
        {"action": "selected", "retry": [plans[0].pk, plans[2].pk], "next": "/plans/"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == "/plans/"
    assert "2 plans will be sent to MINT again now, each with its own messageId." in (
        response.content.decode()
    )
    states = dict(Plan.objects.values_list("pk", "state"))
    assert [states[p.pk] for p in plans] == [PlanState.QUEUED, PlanState.FAILED, PlanState.QUEUED]


def test_it_names_each_plan_it_skipped_on_the_page(dispatcher_client, dispatcher):
    draft = make_plan(user=dispatcher)

    response = dispatcher_client.post(
        "/plans/retry-selected/", {"action": "selected", "retry": [draft.pk]}, follow=True
    )

    assert (
        f"Plan {draft.pk} was not retried: Only failed, rejected or retrying plans can be "
        f"retried; this plan is draft."
    ) in response.content.decode()


def test_it_asks_to_tick_plans_when_none_are_ticked(dispatcher_client):
    response = dispatcher_client.post("/plans/retry-selected/", {"action": "selected"}, follow=True)

    assert "Tick the failed or rejected plans to retry first." in response.content.decode()


def test_it_refuses_a_plan_number_too_large(dispatcher_client):
    response = dispatcher_client.post("/plans/retry-selected/", {"retry": str(2**64)})

    assert response.status_code == 400


def test_it_lets_no_viewer_retry_in_bulk(viewer_client, dispatcher):
    plans = plans_at_times(dispatcher, 1)
    deliver_all(plans, user=dispatcher, outcome="failed")

    assert viewer_client.post("/plans/retry-selected/", {"retry": plans[0].pk}).status_code == 403
    assert viewer_client.get("/plans/retry-failed/").status_code == 403
    plans[0].refresh_from_db()
    assert plans[0].state == PlanState.FAILED
    assert 'name="retry"' not in viewer_client.get("/plans/").content.decode()


def test_it_refuses_a_get_on_the_bulk_retry(dispatcher_client):
    assert dispatcher_client.get("/plans/retry-selected/").status_code == 405


def _since(minutes_ago: int, zone: str = "Europe/Brussels") -> dict[str, str]:
    from plans.timezones import utc_to_wall

    wall = utc_to_wall(timezone.now() - timedelta(minutes=minutes_ago), zone)
    return {"since_day": f"{wall:%Y-%m-%d}", "since_time": f"{wall:%H:%M}", "zone": zone}


def test_it_shows_the_plans_failed_since_a_time_then_retries_exactly_those(
    dispatcher_client, dispatcher
):
    make_location()
    old, new = plans_at_times(dispatcher, 1), plans_at_times(dispatcher, 2, hours=5)
    deliver_all(old, user=dispatcher, outcome="failed")
    Submission.objects.filter(plan=old[0]).update(finished_at=timezone.now() - timedelta(hours=3))
    deliver_all(new, user=dispatcher, outcome="failed")
    rejected = plans_at_times(dispatcher, 1, hours=8)
    deliver_all(rejected, user=dispatcher, outcome="rejected")
    since = _since(60)

    preview = dispatcher_client.get("/plans/retry-failed/", since)

    assert [row.pk for row in preview.context["found"].plans] == [p.pk for p in new]
    assert "Retry these 2 plans" in preview.content.decode()
    assert Plan.objects.filter(state=PlanState.FAILED).count() == 3  # a preview changes nothing

    response = dispatcher_client.post(
        "/plans/retry-selected/",
        {
            "action": "all",
            "page_retries": [p.pk for p in new],
            **since,
        },
    )

    assert response.status_code == 302
    states = dict(Plan.objects.values_list("pk", "state"))
    assert [states[p.pk] for p in old + new + rejected] == [
        PlanState.FAILED,
        PlanState.QUEUED,
        PlanState.QUEUED,
        PlanState.REJECTED,
    ]
    reason = new[0].events.order_by("-id").first().reason
    assert reason.startswith("Retried in bulk by dispatcher, 2 plans (failed since ")
    assert " CET" in reason or " CEST" in reason


@pytest.mark.parametrize(
    ("day", "at", "field", "message"),
    [
        ("yesterday", "10:00", "since_day", "Enter the date as YYYY-MM-DD or DD.MM.YYYY"),
        ("2025-11-25", "25:00", "since_time", "Enter a 24-hour time, like 18:30."),
        ("", "10:00", "since_day", "This field is required."),
        (
            "2999-01-01",
            "10:00",
            "since_time",
            "This time is still to come; choose one in the past.",
        ),
        ("2026-03-29", "02:30", "since_time", "does not exist in Europe/Brussels"),
    ],
)
def test_it_says_what_is_wrong_with_a_bad_since_time(dispatcher_client, day, at, field, message):
    make_location()

    response = dispatcher_client.get(
        "/plans/retry-failed/", {"since_day": day, "since_time": at, "zone": "Europe/Brussels"}
    )

    assert response.status_code == 200
    assert response.context["found"] is None
    assert message in " ".join(response.context["form"].errors[field])
    assert "Retry these" not in response.content.decode()


def test_it_refuses_a_zone_no_site_keeps(dispatcher_client):
    make_location()

    response = dispatcher_client.get(
        "/plans/retry-failed/",
        {"since_day": "2025-01-01", "since_time": "10:00", "zone": "Mars/Olympus"},
    )

    assert response.context["form"].errors["zone"] == ["Choose one of the listed time zones."]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_bulk_retries_of_the_same_plans_at_once_send_each_message_once(dispatcher):
    """The second waits on the first's row locks, then finds the plans queued and says so for
    each (without the locks it read them still failed and tripped over the first's update)."""
    import threading

    from django.db import connection, transaction

    plans = plans_at_times(dispatcher, 3)
    deliver_all(plans, user=dispatcher, outcome="failed")
    ids = [p.pk for p in plans]
    first_done, release = threading.Event(), threading.Event()
    second: dict[str, object] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                services.plans_retry(plan_ids=ids, user=dispatcher)
                first_done.set()
                release.wait(10)
        finally:
            connection.close()

    def again() -> None:
        try:
            second["result"] = services.plans_retry(plan_ids=ids, user=dispatcher)
        except Exception as exc:
            second["error"] = exc
        finally:
            connection.close()

    one, two = threading.Thread(target=first), threading.Thread(target=again)
    one.start()
    try:
        assert first_done.wait(10)
        two.start()
        two.join(0.5)
        assert two.is_alive(), "the second retry should wait for the first to commit"
    finally:
        release.set()
        one.join(10)
        two.join(10)

    assert "error" not in second, second.get("error")
    assert second["result"].retried == {}
    assert set(second["result"].skipped.values()) == {
        "Only failed, rejected or retrying plans can be retried; this plan is queued."
    }
    assert PlanEvent.objects.filter(action=PlanEvent.Action.RETRIED).count() == 3
