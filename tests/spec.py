"""MINT Planning API v2.0, Table 1, as the tests read it from the spec (not from our code)."""

#: The fields every plan body carries, in the spec's order.
PLAN_COMMON_FIELDS = [
    "messageId",
    "locationId",
    "transactionId",
    "status",
    "timestamp",
    "scheduledStartTime",
    "scheduledEndTime",
]
RANGE_FIELDS = [*PLAN_COMMON_FIELDS, "expectedRange", "averageConsumption"]
CHARGE_FIELDS = [*PLAN_COMMON_FIELDS, "expectedCharge"]
