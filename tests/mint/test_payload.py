import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from plans.mint.payload import build_plan_payload, encode_body, format_utc
from tests.spec import RANGE_FIELDS

MESSAGE_ID = UUID("6F1C2B9A-0D3E-4F5A-8B7C-1D2E3F4A5B6C")
TRANSACTION_ID = "0A1B2C3D-4E5F-4A7B-8C9D-0E1F2A3B4C5D"
BRUSSELS = ZoneInfo("Europe/Brussels")


def build(**overrides):
    fields = {
        "message_id": MESSAGE_ID,
        "location_id": "SITE-001",
        "transaction_id": TRANSACTION_ID,
        "status": "mintportal plan 1 rev 1 by alice",
        "timestamp": datetime(2025, 3, 1, 8, 0, 0, 123456, tzinfo=UTC),
        "scheduled_start": datetime(2025, 3, 1, 9, 30, tzinfo=BRUSSELS),
        "scheduled_end": datetime(2025, 3, 1, 17, 0, tzinfo=BRUSSELS),
        "expected_range": 250,
    }
    fields.update(overrides)
    return build_plan_payload(**fields)


def test_it_formats_aware_times_as_utc_seconds_with_z():
    dt = datetime(2025, 7, 1, 10, 15, 30, 999999, tzinfo=BRUSSELS)
    assert format_utc(dt) == "2025-07-01T08:15:30Z"


def test_it_always_writes_four_digit_years():
    assert format_utc(datetime(26, 12, 1, 9, 0, tzinfo=UTC)) == "0026-12-01T09:00:00Z"


def test_it_formats_fixed_offsets():
    dt = datetime(2025, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert format_utc(dt) == "2025-01-01T05:30:00Z"


def test_it_rejects_naive_datetimes():
    with pytest.raises(ValueError, match="Naive"):
        format_utc(datetime(2025, 1, 1, 12, 0))


def test_it_orders_keys_as_spec_table_1_for_range():
    payload = build(average_consumption=Decimal("18.5"))
    assert list(payload) == RANGE_FIELDS


def test_it_writes_uuids_lowercase_canonical_and_times_in_utc():
    payload = build()
    assert payload["messageId"] == "6f1c2b9a-0d3e-4f5a-8b7c-1d2e3f4a5b6c"
    assert payload["transactionId"] == "0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d"
    assert payload["timestamp"] == "2025-03-01T08:00:00Z"
    assert payload["scheduledStartTime"] == "2025-03-01T08:30:00Z"
    assert payload["scheduledEndTime"] == "2025-03-01T16:00:00Z"


def test_it_omits_average_consumption_when_not_given():
    payload = build()
    assert "averageConsumption" not in payload
    assert "expectedCharge" not in payload
    assert payload["expectedRange"] == 250


def test_it_sends_average_consumption_as_float():
    payload = build(average_consumption=Decimal("18.5"))
    assert payload["averageConsumption"] == 18.5
    assert type(payload["averageConsumption"]) is float


def test_it_builds_a_charge_plan_without_range_fields():
    payload = build(expected_range=None, expected_charge=40)
    assert list(payload)[-1] == "expectedCharge"
    assert payload["expectedCharge"] == 40
    assert "expectedRange" not in payload
    assert "averageConsumption" not in payload


@pytest.mark.parametrize(
    "overrides",
    [
        {"expected_range": None},
        {"expected_charge": 40},
    ],
)
def test_it_requires_exactly_one_of_range_or_charge(overrides):
    with pytest.raises(ValueError, match="Exactly one"):
        build(**overrides)


def test_it_refuses_consumption_with_charge():
    with pytest.raises(ValueError, match="average_consumption"):
        build(expected_range=None, expected_charge=40, average_consumption=18.0)


@pytest.mark.parametrize("value", [0, -5, 12.5, True, "100"])
def test_it_refuses_non_positive_or_non_integer_targets(value):
    with pytest.raises(ValueError, match="positive integer"):
        build(expected_range=value)
    with pytest.raises(ValueError, match="positive integer"):
        build(expected_range=None, expected_charge=value)


def test_it_refuses_a_malformed_uuid():
    with pytest.raises(ValueError, match="messageId"):
        build(message_id="not-a-uuid")


def test_it_encodes_compact_utf8_json_that_round_trips():
    payload = build(status="Zürich Hbf €")
    body = encode_body(payload)
    assert ", " not in body and '": ' not in body
    assert "Zürich Hbf €" in body
    assert json.loads(body) == payload
    assert body.startswith('{"messageId":"6f1c2b9a-')
