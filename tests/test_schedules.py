"""Repeating schedules: site wall-clock times across DST changes, materialising once however
many workers run, skip / pause / end, detach, and edits applied only as previewed."""

import itertools
import threading
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from plans import services
from plans.models import Plan, PlanState, ScheduleEvent, ScheduleException, Submission
from plans.schedule_rules import ScheduleSpec, occurrence_on
from tests.factories import make_location, make_vehicle

pytestmark = pytest.mark.usefixtures("counts_stay_true")


def _spec(zone, arrive, depart, offset=0, days=(1, 2, 3, 4, 5, 6, 7)):
    return ScheduleSpec(
        weekdays=days,
        arrive_at=arrive,
        depart_at=depart,
        depart_day_offset=offset,
        time_zone=zone,
        valid_from=date(2027, 1, 1),
        valid_until=None,
    )


def _utc(*args):
    return datetime(*args, tzinfo=UTC)


# Occurrences on the site's clock -------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "arrive", "depart", "offset", "start", "end", "note"),
    [
        # Europe/Berlin springs forward on Sun 28 Mar 2027, 02:00 → 03:00.
        (
            "Europe/Berlin",
            date(2027, 3, 26),
            time(18, 30),
            time(5, 45),
            1,
            _utc(2027, 3, 26, 17, 30),
            _utc(2027, 3, 27, 4, 45),
            "",
        ),
        (
            "Europe/Berlin",
            date(2027, 3, 27),
            time(18, 30),
            time(5, 45),
            1,
            _utc(2027, 3, 27, 17, 30),
            _utc(2027, 3, 28, 3, 45),
            "The clocks change during this stay: it lasts 10 h 15, not 11 h 15.",
        ),
        (
            "Europe/Berlin",
            date(2027, 3, 28),
            time(2, 30),
            time(6, 0),
            0,
            _utc(2027, 3, 28, 1, 30),
            _utc(2027, 3, 28, 4, 0),
            "Arrival 02:30 does not exist on Sun 28 Mar (the clocks jump forward): 03:30 CEST.",
        ),
        # Europe/Berlin falls back on Sun 31 Oct 2027, 03:00 → 02:00.
        (
            "Europe/Berlin",
            date(2027, 10, 31),
            time(2, 30),
            time(6, 0),
            0,
            _utc(2027, 10, 31, 0, 30),
            _utc(2027, 10, 31, 5, 0),
            "Arrival 02:30 happens twice on Sun 31 Oct (the clocks go back): the first one, "
            "02:30 CEST.",
        ),
        (
            "Europe/Berlin",
            date(2027, 10, 30),
            time(18, 30),
            time(5, 45),
            1,
            _utc(2027, 10, 30, 16, 30),
            _utc(2027, 10, 31, 4, 45),
            "The clocks change during this stay: it lasts 12 h 15, not 11 h 15.",
        ),
        # America/New_York springs forward on Sun 14 Mar 2027 and falls back on Sun 7 Nov 2027.
        (
            "America/New_York",
            date(2027, 3, 14),
            time(2, 30),
            time(8, 0),
            0,
            _utc(2027, 3, 14, 7, 30),
            _utc(2027, 3, 14, 12, 0),
            "Arrival 02:30 does not exist on Sun 14 Mar (the clocks jump forward): 03:30 EDT.",
        ),
        (
            "America/New_York",
            date(2027, 11, 7),
            time(1, 30),
            time(8, 0),
            0,
            _utc(2027, 11, 7, 5, 30),
            _utc(2027, 11, 7, 13, 0),
            "Arrival 01:30 happens twice on Sun 7 Nov (the clocks go back): the first one, "
            "01:30 EDT.",
        ),
        (
            "America/New_York",
            date(2027, 11, 8),
            time(18, 30),
            time(5, 45),
            1,
            _utc(2027, 11, 8, 23, 30),
            _utc(2027, 11, 9, 10, 45),
            "",
        ),
    ],
)
def test_occurrences_keep_the_sites_clock_across_dst(
    zone, day, arrive, depart, offset, start, end, note
):
    occurrence = occurrence_on(_spec(zone, arrive, depart, offset), day)
    assert (occurrence.start, occurrence.end) == (start, end)
    assert occurrence.dst_notes == ([note] if note else [])


def test_a_summer_and_a_winter_evening_arrive_at_the_same_wall_clock_time():
    spec = _spec("Europe/Berlin", time(18, 30), time(5, 45), 1)
    summer, winter = occurrence_on(spec, date(2027, 7, 5)), occurrence_on(spec, date(2027, 12, 6))
    assert f"{summer.start_local:%H:%M %Z}" == "18:30 CEST"
    assert f"{winter.start_local:%H:%M %Z}" == "18:30 CET"
    assert summer.start.hour == 16 and winter.start.hour == 17


# Materialising -------------------------------------------------------------------------------


def _schedule(user, *, days="1234567", auto_submit=False, vehicle=None, **extra):
    site = make_location(time_zone="Europe/Berlin")
    values = {
        "user": user,
        "vehicle": vehicle or make_vehicle("bus 12", location=site),
        "location": site,
        "weekdays": days,
        "arrive_at": time(18, 30),
        "depart_at": time(5, 45),
        "depart_day_offset": 1,
        "target_kind": "charge",
        "expected_charge_kwh": 160,
        "valid_from": timezone.now().date(),
        "auto_submit": auto_submit,
    }
    values.update(extra)
    return services.schedule_create(**values)


@pytest.mark.django_db
def test_a_new_schedule_makes_its_plans_inside_the_horizon_at_once(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 7
    schedule, made = _schedule(dispatcher)
    plans = list(Plan.objects.filter(schedule=schedule).order_by("scheduled_start"))
    assert len(made.created) == len(plans) >= 7
    assert all(p.vehicle_id == schedule.vehicle_id and p.state == "draft" for p in plans)
    assert all(
        f"{p.scheduled_start.astimezone(__import__('zoneinfo').ZoneInfo('Europe/Berlin')):%H:%M}"
        == "18:30"
        for p in plans
    )
    assert plans[0].events.get().reason.startswith(f"Made by schedule {schedule.pk} for ")
    assert services.schedules_materialize().created == []  # idempotent


@pytest.mark.django_db
def test_the_horizon_grows_one_day_at_a_time(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 2
    schedule, made = _schedule(dispatcher)
    first = len(made.created)
    later = services.schedules_materialize(now=timezone.now() + timedelta(days=1))
    assert len(later.created) == 1
    assert Plan.objects.filter(schedule=schedule).count() == first + 1


@pytest.mark.django_db
def test_a_schedule_may_submit_its_plans_by_itself(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 2
    schedule, made = _schedule(dispatcher, auto_submit=True)
    assert made.submitted == len(made.created) > 0
    assert set(Plan.objects.filter(schedule=schedule).values_list("state", flat=True)) == {"queued"}
    body = Submission.objects.filter(plan__schedule=schedule).first().body
    assert "bus 12 · mintportal plan" in body


@pytest.mark.django_db
def test_a_day_that_would_overlap_the_vehicle_is_not_made_and_said_once(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 3
    site = make_location(time_zone="Europe/Berlin")
    bus = make_vehicle("bus 12", location=site)
    tomorrow = timezone.now().date() + timedelta(days=1)
    from plans.timezones import local_to_utc

    blocker = services.plan_create(
        user=dispatcher,
        vehicle=bus,
        location=site,
        scheduled_start=local_to_utc(datetime.combine(tomorrow, time(20, 0)), "Europe/Berlin"),
        scheduled_end=local_to_utc(datetime.combine(tomorrow, time(22, 0)), "Europe/Berlin"),
        target_kind="charge",
        expected_charge_kwh=20,
    )
    schedule, _ = _schedule(dispatcher, vehicle=bus)
    assert not Plan.objects.filter(schedule=schedule, occurrence_date=tomorrow).exists()
    services.schedules_materialize()
    conflicts = ScheduleEvent.objects.filter(schedule=schedule, action="conflict")
    assert conflicts.count() == 1
    assert f"bus 12 already has plan {blocker.pk}" in conflicts.get().text


def _materialize_in_thread(barrier, errors):
    try:
        barrier.wait()
        services.schedules_materialize()
    except Exception as exc:
        errors.append(exc)
    finally:
        close_old_connections()
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_workers_materialising_at_once_make_each_plan_once(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 14
    site = make_location(time_zone="Europe/Berlin")
    for n in range(5):
        bus = make_vehicle(f"bus {n}", location=site)
        # Saved without materialising, so both workers find the same work.
        with transaction.atomic():
            schedule, _ = _schedule(dispatcher, vehicle=bus)
            Plan.objects.filter(schedule=schedule).delete()
    services.plan_state_counts_rebuild()
    barrier, errors = threading.Barrier(2), []
    threads = [
        threading.Thread(target=_materialize_in_thread, args=(barrier, errors)) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    per_day = Plan.objects.values_list("schedule_id", "occurrence_date")
    assert len(per_day) == len(set(per_day)) >= 5 * 14


@pytest.mark.django_db
def test_the_database_refuses_a_second_plan_for_a_schedule_day(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 1
    _, made = _schedule(dispatcher)
    plan = Plan.objects.get(pk=made.created[0])
    plan.pk = None
    plan.transaction_id = __import__("uuid").uuid4()
    with pytest.raises(IntegrityError), transaction.atomic():
        plan.save()


# Exceptions, detach, end ---------------------------------------------------------------------


@pytest.mark.django_db
def test_skipping_a_day_withdraws_its_plan_and_it_is_not_made_again(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 4
    schedule, _ = _schedule(dispatcher)
    day = timezone.now().date() + timedelta(days=2)
    result = services.schedule_except(
        schedule=schedule,
        user=dispatcher,
        kind="skip",
        first_day=day,
        last_day=day,
        reason="Depot closed",
    )
    assert result.withdrawn == 1
    plan = Plan.objects.get(schedule=schedule, occurrence_date=day)
    assert plan.state == PlanState.WITHDRAWN
    assert "Skip one day" in plan.events.last().reason
    assert services.schedules_materialize().created == []


@pytest.mark.django_db
def test_a_pause_leaves_out_its_days_and_lifting_it_brings_new_days_back(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 6
    today = timezone.now().date()
    schedule, _ = _schedule(dispatcher, valid_from=today + timedelta(days=3))
    assert Plan.objects.filter(schedule=schedule).count() > 0
    Plan.objects.filter(schedule=schedule).delete()
    services.plan_state_counts_rebuild()
    services.schedule_except(
        schedule=schedule,
        user=dispatcher,
        kind="pause",
        first_day=today,
        last_day=today + timedelta(days=30),
        reason="Holidays",
    )
    assert services.schedules_materialize().created == []
    services.schedule_exception_lift(exception=ScheduleException.objects.get(), user=dispatcher)
    assert Plan.objects.filter(schedule=schedule).count() > 0
    actions = list(schedule.events.values_list("action", flat=True))
    assert actions == ["created", "paused", "resumed"]


@pytest.mark.django_db
def test_editing_a_schedules_plan_detaches_it_and_says_so(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 2
    schedule, made = _schedule(dispatcher)
    plan = Plan.objects.get(pk=made.created[-1])
    plan = services.plan_update(plan=plan, user=dispatcher, expected_charge_kwh=100)
    assert plan.schedule_detached and plan.schedule_id == schedule.pk
    assert "Detached from its schedule" in plan.events.last().reason

    edited = services.schedule_effect(
        schedule=schedule, edited=_edited(schedule, expected_charge_kwh=120)
    )
    assert plan.pk not in [c.plan.pk for c in edited.changes]
    assert edited.untouched_detached == 1


def _edited(schedule, **changes):
    copy = type(schedule).objects.get(pk=schedule.pk)
    for name, value in changes.items():
        setattr(copy, name, value)
    return copy


@pytest.mark.django_db
def test_a_schedule_edit_says_what_it_does_and_resends_accepted_plans(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 3
    schedule, made = _schedule(dispatcher)
    accepted = Plan.objects.get(pk=made.created[-1])
    submission = services.plan_submit(plan=accepted, user=dispatcher)
    Submission.objects.filter(pk=submission.pk).update(state="accepted")
    Plan.objects.filter(pk=accepted.pk).update(state=PlanState.ACCEPTED)
    services.plan_state_counts_rebuild()

    effect = services.schedule_effect(
        schedule=schedule, edited=_edited(schedule, arrive_at=time(19, 0))
    )
    future = Plan.objects.filter(schedule=schedule, scheduled_start__gt=timezone.now()).count()
    assert len(effect.changed) == future
    assert effect.accepted_resent == 1

    result = services.schedule_update(
        schedule=schedule, user=dispatcher, seen_revision=1, arrive_at=time(19, 0)
    )
    assert (result.changed, result.resent, result.called_off) == (future, 1, 0)
    accepted.refresh_from_db()
    assert accepted.revision == 2 and accepted.state == PlanState.QUEUED
    assert not accepted.schedule_detached
    assert accepted.submissions.count() == 2


@pytest.mark.django_db
def test_a_schedule_edit_seen_on_an_older_revision_is_refused(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 1
    schedule, _ = _schedule(dispatcher)
    services.schedule_update(schedule=schedule, user=dispatcher, seen_revision=1, status_note="a")
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="changed this schedule"):
        services.schedule_update(
            schedule=schedule, user=dispatcher, seen_revision=1, status_note="b"
        )


@pytest.mark.django_db
def test_dropping_a_weekday_calls_off_its_plans(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 7
    schedule, _ = _schedule(dispatcher)
    keep = "".join(
        str(d) for d in range(1, 8) if d != (timezone.now().date() + timedelta(days=2)).isoweekday()
    )
    result = services.schedule_update(
        schedule=schedule, user=dispatcher, seen_revision=1, weekdays=keep
    )
    assert result.called_off == 1


@pytest.mark.django_db
def test_ending_a_schedule_calls_off_later_plans_and_leaves_the_past(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 5
    schedule, _ = _schedule(dispatcher, valid_from=timezone.now().date() - timedelta(days=1))
    today = timezone.now().date()
    result = services.schedule_end(
        schedule=schedule, user=dispatcher, last_day=today + timedelta(days=1)
    )
    schedule.refresh_from_db()
    assert schedule.valid_until == today + timedelta(days=1)
    later = Plan.objects.filter(schedule=schedule, occurrence_date__gt=today + timedelta(days=1))
    assert later.count() == result.withdrawn > 0
    assert set(later.values_list("state", flat=True)) == {"withdrawn"}
    earlier = Plan.objects.filter(schedule=schedule, occurrence_date__lte=today + timedelta(days=1))
    assert set(earlier.values_list("state", flat=True)) == {"draft"}
    assert services.schedules_materialize().created == []


@pytest.mark.django_db
def test_a_schedule_refuses_a_stay_that_ends_before_it_starts(dispatcher):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as excinfo:
        _schedule(dispatcher, depart_day_offset=0)
    assert "must leave after it arrives" in excinfo.value.message_dict["depart_at"][0]


@pytest.mark.django_db(transaction=True)
def test_the_command_and_the_worker_make_the_plans_that_are_due(dispatcher, settings):
    from io import StringIO

    from django.core.management import call_command

    settings.SCHEDULE_HORIZON_DAYS = 2
    schedule, made = _schedule(dispatcher)
    Plan.objects.filter(schedule=schedule).delete()
    services.plan_state_counts_rebuild()

    out = StringIO()
    call_command("schedules_materialize", stdout=out)
    assert f"Made {len(made.created)} plan(s) for the next 2 days" in out.getvalue()

    Plan.objects.filter(schedule=schedule).delete()
    services.plan_state_counts_rebuild()
    call_command("mint_worker", "--once", "--name", "w", stdout=StringIO(), stderr=StringIO())
    assert Plan.objects.filter(schedule=schedule).count() == len(made.created)


# Found in review ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_stay_the_spring_night_leaves_no_time_for_gets_no_plan_and_stops_nothing(
    dispatcher, settings
):
    settings.SCHEDULE_HORIZON_DAYS = 7
    site = make_location(time_zone="Europe/Berlin")
    night = services.schedule_create(
        user=dispatcher,
        vehicle=make_vehicle("bus 1", location=site),
        location=site,
        weekdays="7",
        arrive_at=time(2, 30),
        depart_at=time(3, 10),
        depart_day_offset=0,
        target_kind="charge",
        expected_charge_kwh=10,
        valid_from=date(2027, 3, 20),
    )[0]
    other = _schedule(
        dispatcher, vehicle=make_vehicle("bus 2", location=site), valid_from=date(2027, 3, 20)
    )[0]
    spring = datetime(2027, 3, 25, 12, 0, tzinfo=UTC)

    made = services.schedules_materialize(now=spring)

    assert not Plan.objects.filter(schedule=night).exists()
    assert Plan.objects.filter(schedule=other).count() == len(made.created) > 0
    event = ScheduleEvent.objects.get(schedule=night, action="conflict")
    assert "The clocks jump forward during this stay and leave no time" in event.text


@pytest.mark.django_db
def test_an_edit_that_moves_every_stay_later_is_applied(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 4
    schedule, _ = _schedule(dispatcher, arrive_at=time(18, 30), depart_at=time(17, 0))
    result = services.schedule_update(
        schedule=schedule,
        user=dispatcher,
        seen_revision=1,
        arrive_at=time(20, 0),
        depart_at=time(19, 0),
    )
    assert result.changed >= 3
    coming = Plan.objects.filter(schedule=schedule, revision=1, state="draft").exclude(
        scheduled_start__lte=timezone.now()
    )
    from zoneinfo import ZoneInfo

    starts = {f"{p.scheduled_start.astimezone(ZoneInfo('Europe/Berlin')):%H:%M}" for p in coming}
    assert starts == {"20:00"}


@pytest.mark.django_db
def test_an_overlap_is_found_across_the_autumn_clock_change(dispatcher):
    from django.core.exceptions import ValidationError

    site = make_location(time_zone="Europe/Berlin")
    bus = make_vehicle("bus 12", location=site)
    start = datetime(2026, 10, 25, 10, 0, tzinfo=UTC) + timedelta(days=364)  # 24 Oct 2027
    week = services.plan_create(
        user=dispatcher,
        vehicle=bus,
        location=site,
        target_kind="charge",
        expected_charge_kwh=50,
        scheduled_start=start,
        # Seven days on the Berlin clock across the fall-back night: 7 d 1 h in real time.
        scheduled_end=start + timedelta(days=7, hours=1),
    )
    with pytest.raises(ValidationError) as excinfo:
        services.plan_create(
            user=dispatcher,
            vehicle=bus,
            location=site,
            target_kind="charge",
            expected_charge_kwh=50,
            scheduled_start=week.scheduled_end - timedelta(minutes=30),
            scheduled_end=week.scheduled_end + timedelta(hours=2),
        )
    assert f"already has plan {week.pk}" in excinfo.value.message_dict["vehicle"][0]


@pytest.mark.django_db(transaction=True)
def test_a_skip_names_the_plan_on_the_wire_that_it_could_not_call_off(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 3
    schedule, _ = _schedule(dispatcher)
    day = timezone.now().date() + timedelta(days=1)
    plan = Plan.objects.get(schedule=schedule, occurrence_date=day)
    services.plan_submit(plan=plan, user=dispatcher)
    services.submissions_claim(worker="w", limit=10)
    result = services.schedule_except(
        schedule=schedule, user=dispatcher, kind="skip", first_day=day, last_day=day
    )
    assert result.skipped and "being sent" in result.text
    assert f"Plan {plan.pk}" in schedule.events.last().text


def _paused_guard(monkeypatch, module):
    """Make ``module.plans_guard`` wait, after it has read the plans, until told to go on: the
    moment another transaction can slip in."""
    guarded, go = threading.Event(), threading.Event()
    real = module.plans_guard

    def slow(**kwargs):
        report = real(**kwargs)
        guarded.set()
        go.wait(5)
        return report

    monkeypatch.setattr(module, "plans_guard", slow)
    return guarded, go


def _in_threads(*targets):
    errors = []

    def run(target):
        try:
            target()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def _bare_schedule(dispatcher, settings):
    settings.SCHEDULE_HORIZON_DAYS = 2
    with transaction.atomic():
        schedule, _ = _schedule(dispatcher)
        Plan.objects.filter(schedule=schedule).delete()
    services.plan_state_counts_rebuild()
    return schedule


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_typed_plan_and_the_worker_cannot_both_miss_each_other(dispatcher, settings, monkeypatch):
    assert connection.vendor == "postgresql", "run with DATABASE_URL=postgres://…"
    import plans.services.schedules as module
    from plans.timezones import local_to_utc

    schedule = _bare_schedule(dispatcher, settings)
    guarded, go = _paused_guard(monkeypatch, module)
    tomorrow = timezone.now().date() + timedelta(days=1)

    def typed():
        guarded.wait(5)
        threading.Timer(1.0, go.set).start()  # the typed save waits for the worker's lock
        services.plan_create(
            user=dispatcher,
            vehicle=schedule.vehicle,
            location=schedule.location,
            scheduled_start=local_to_utc(datetime.combine(tomorrow, time(19)), "Europe/Berlin"),
            scheduled_end=local_to_utc(datetime.combine(tomorrow, time(21)), "Europe/Berlin"),
            target_kind="charge",
            expected_charge_kwh=20,
        )

    errors = _in_threads(services.schedules_materialize, typed)

    assert [type(e).__name__ for e in errors] == ["ValidationError"]
    windows = sorted(
        Plan.objects.filter(vehicle=schedule.vehicle).values_list(
            "scheduled_start", "scheduled_end"
        )
    )
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(windows))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_skip_made_while_the_worker_works_calls_off_what_it_made(
    dispatcher, settings, monkeypatch
):
    assert connection.vendor == "postgresql", "run with DATABASE_URL=postgres://…"
    import plans.services.schedules as module

    schedule = _bare_schedule(dispatcher, settings)
    guarded, go = _paused_guard(monkeypatch, module)
    tomorrow = timezone.now().date() + timedelta(days=1)

    def skip():
        guarded.wait(5)
        threading.Timer(1.0, go.set).start()
        services.schedule_except(
            schedule=schedule,
            user=dispatcher,
            kind="skip",
            first_day=tomorrow,
            last_day=tomorrow,
        )

    assert _in_threads(services.schedules_materialize, skip) == []
    states = set(
        Plan.objects.filter(schedule=schedule, occurrence_date=tomorrow).values_list(
            "state", flat=True
        )
    )
    assert states in (set(), {"withdrawn"})


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_edit_beside_the_worker_does_not_deadlock(dispatcher, settings, monkeypatch):
    assert connection.vendor == "postgresql", "run with DATABASE_URL=postgres://…"
    import plans.services.plan as plan_module
    from plans.timezones import local_to_utc

    site = make_location(time_zone="Europe/Berlin", charge_points=1)
    settings.SCHEDULE_HORIZON_DAYS = 2
    with transaction.atomic():
        schedule, _ = _schedule(dispatcher, vehicle=make_vehicle("bus 12", location=site))
        Plan.objects.filter(schedule=schedule).delete()
    services.plan_state_counts_rebuild()
    tomorrow = timezone.now().date() + timedelta(days=1)
    neighbour = services.plan_create(
        user=dispatcher,
        vehicle=make_vehicle("van 3", location=site),
        location=site,
        scheduled_start=local_to_utc(datetime.combine(tomorrow, time(19)), "Europe/Berlin"),
        scheduled_end=local_to_utc(datetime.combine(tomorrow, time(21)), "Europe/Berlin"),
        target_kind="charge",
        expected_charge_kwh=20,
    )
    locked, go = threading.Event(), threading.Event()
    real = plan_module._guard

    def slow_guard(plan, **kwargs):
        real(plan, **kwargs)
        locked.set()
        go.wait(5)

    monkeypatch.setattr(plan_module, "_guard", slow_guard)

    def edit():
        services.plan_update(plan=neighbour, user=dispatcher, status_note="gate 3")

    def worker():
        locked.wait(5)
        threading.Timer(1.5, go.set).start()
        services.schedules_materialize()

    assert _in_threads(edit, worker) == []
    neighbour.refresh_from_db()
    assert neighbour.status_note == "gate 3"
    assert [w["code"] for w in neighbour.warnings] == ["charge_points"]
