"""Build the JSON body of a MINT plan message (spec 4.1, Table 1).

Kept free of Django so the worker, the sandbox and the tests share one definition of the wire
format, and so the exact string sent can be stored byte for byte in the attempt history.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID


def format_utc(dt: datetime) -> str:
    """Render an aware datetime as MINT's ``YYYY-MM-DDTHH:MM:SSZ``.

    Naive datetimes are refused: guessing their zone would silently shift a plan by hours.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("Naive datetime given; a time zone is required for the MINT wire format.")
    utc = dt.astimezone(UTC)
    # The year by hand: strftime's %Y does not pad years before 1000 to four digits on Linux.
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"


def _uuid_str(value: UUID | str, field: str) -> str:
    """Canonical lowercase UUID text, so retries of one message are byte-identical."""
    try:
        return str(value if isinstance(value, UUID) else UUID(str(value)))
    except ValueError as exc:
        raise ValueError(f"{field}: not a valid UUID.") from exc


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{field}: must be a positive integer.")
    return value


def build_plan_payload(
    *,
    message_id: UUID | str,
    location_id: str,
    transaction_id: UUID | str,
    status: str,
    timestamp: datetime,
    scheduled_start: datetime,
    scheduled_end: datetime,
    expected_range: int | None = None,
    average_consumption: Decimal | float | None = None,
    expected_charge: int | None = None,
) -> dict[str, Any]:
    """Return the plan body as a dict whose key order follows spec Table 1.

    The target is range XOR charge; ``averageConsumption`` is only sent with a range, and only
    when known, because MINT treats it as optional.
    """
    if (expected_range is None) == (expected_charge is None):
        raise ValueError("Exactly one of expected_range or expected_charge is required.")
    if average_consumption is not None and expected_range is None:
        raise ValueError("average_consumption is only allowed with expected_range.")

    payload: dict[str, Any] = {
        "messageId": _uuid_str(message_id, "messageId"),
        "locationId": location_id,
        "transactionId": _uuid_str(transaction_id, "transactionId"),
        "status": status,
        "timestamp": format_utc(timestamp),
        "scheduledStartTime": format_utc(scheduled_start),
        "scheduledEndTime": format_utc(scheduled_end),
    }
    if expected_range is not None:
        payload["expectedRange"] = _positive_int(expected_range, "expectedRange")
        if average_consumption is not None:
            consumption = float(average_consumption)
            if not consumption > 0:
                raise ValueError("averageConsumption: must be a positive number.")
            payload["averageConsumption"] = consumption
    else:
        payload["expectedCharge"] = _positive_int(expected_charge, "expectedCharge")
    return payload


def encode_body(payload: dict[str, Any]) -> str:
    """Serialise compactly; this exact string is both sent and stored as the attempt record."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
