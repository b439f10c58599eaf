"""The database itself refuses plans that break the target and time rules."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from plans.models import Plan, Submission
from tests.factories import make_location, make_plan


def raw_plan(user, **overrides) -> dict:
    start = timezone.now() + timedelta(hours=1)
    values = {
        "location": make_location(),
        "scheduled_start": start,
        "scheduled_end": start + timedelta(hours=2),
        "target_kind": "range",
        "expected_range_km": 100,
        "created_by": user,
        "updated_by": user,
    }
    values.update(overrides)
    return values


@pytest.mark.django_db
@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"expected_charge_kwh": 50}, id="both-targets"),
        pytest.param({"expected_range_km": None}, id="range-kind-without-range"),
        pytest.param(
            {"target_kind": "charge", "expected_range_km": None}, id="charge-kind-without-charge"
        ),
        pytest.param(
            {
                "target_kind": "charge",
                "expected_range_km": None,
                "expected_charge_kwh": 40,
                "average_consumption": Decimal("18"),
            },
            id="consumption-with-charge",
        ),
        pytest.param({"expected_range_km": 0}, id="zero-range"),
        pytest.param({"average_consumption": Decimal("0")}, id="zero-consumption"),
        pytest.param(
            {"target_kind": "charge", "expected_range_km": None, "expected_charge_kwh": 0},
            id="zero-charge",
        ),
        pytest.param({"target_kind": "other"}, id="unknown-kind"),
        pytest.param({"state": "lost"}, id="unknown-state"),
    ],
)
def test_it_refuses_invalid_targets_at_the_database(dispatcher, overrides):
    with pytest.raises(IntegrityError), transaction.atomic():
        Plan.objects.create(**raw_plan(dispatcher, **overrides))


@pytest.mark.django_db
def test_it_refuses_an_end_not_after_the_start_at_the_database(dispatcher):
    start = timezone.now() + timedelta(hours=1)
    for end in (start, start - timedelta(minutes=1)):
        with pytest.raises(IntegrityError), transaction.atomic():
            Plan.objects.create(**raw_plan(dispatcher, scheduled_start=start, scheduled_end=end))


@pytest.mark.django_db
def test_it_accepts_a_valid_range_and_a_valid_charge_plan(dispatcher):
    Plan.objects.create(**raw_plan(dispatcher, average_consumption=Decimal("17.5")))
    Plan.objects.create(
        **raw_plan(dispatcher, target_kind="charge", expected_range_km=None, expected_charge_kwh=80)
    )
    assert Plan.objects.count() == 2


@pytest.mark.django_db
def test_it_refuses_two_messages_in_flight_for_one_plan(dispatcher):
    plan = make_plan(user=dispatcher)
    fields = {
        "plan": plan,
        "created_at": timezone.now(),
        "created_by": dispatcher,
        "body": "{}",
        "deadline": timezone.now() + timedelta(hours=1),
    }
    Submission.objects.create(revision=1, state="queued", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Submission.objects.create(revision=2, state="retrying", **fields)
    Submission.objects.create(revision=3, state="accepted", **fields)


@pytest.mark.django_db
def test_the_location_time_zone_must_be_an_iana_name():
    from django.core.exceptions import ValidationError

    location = make_location("X-1", "X", "Mars/Olympus_Mons")
    with pytest.raises(ValidationError) as excinfo:
        location.full_clean()
    assert "time_zone" in excinfo.value.message_dict
