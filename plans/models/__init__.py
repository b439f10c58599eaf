"""MINT Portal's data, by concern: sites, plans and their history, delivery, monitoring,
calendar feed tokens.

Everything is re-exported here, so ``from plans.models import Plan`` works wherever it is used.
Every index names the query that uses it.
"""

from plans.models.delivery import (
    DeliveryAttempt,
    MintCircuit,
    MintToken,
    Submission,
    SubmissionState,
)
from plans.models.feeds import FeedToken
from plans.models.fleet import WEEKDAYS, Schedule, ScheduleEvent, ScheduleException, Vehicle
from plans.models.imports import PREVIEW_LIFETIME, ImportBatch
from plans.models.monitoring import WORKER_SILENCE, HealthCheck, MintStatus, WorkerHeartbeat
from plans.models.plans import (
    CALLED_OFF_STATES,
    FINAL_STATES,
    PENDING_STATES,
    PLAN_MAX_AHEAD,
    PLAN_MAX_WINDOW,
    Plan,
    PlanEvent,
    PlanState,
    PlanStateCount,
    TargetKind,
    plan_window_errors,
    validate_one_line_text,
)
from plans.models.preferences import UserPreference
from plans.models.sites import Location

__all__ = [
    "CALLED_OFF_STATES",
    "FINAL_STATES",
    "PENDING_STATES",
    "PLAN_MAX_AHEAD",
    "PLAN_MAX_WINDOW",
    "PREVIEW_LIFETIME",
    "WEEKDAYS",
    "WORKER_SILENCE",
    "DeliveryAttempt",
    "FeedToken",
    "HealthCheck",
    "ImportBatch",
    "Location",
    "MintCircuit",
    "MintStatus",
    "MintToken",
    "Plan",
    "PlanEvent",
    "PlanState",
    "PlanStateCount",
    "Schedule",
    "ScheduleEvent",
    "ScheduleException",
    "Submission",
    "SubmissionState",
    "TargetKind",
    "UserPreference",
    "Vehicle",
    "WorkerHeartbeat",
    "plan_window_errors",
    "validate_one_line_text",
]
