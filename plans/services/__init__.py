"""Every write MINT Portal makes: plans, their history, the outbox and the worker's records.

Views, the admin, management commands and the worker call these functions and nothing else
writes. Each function is keyword-only and atomic; history rows are only ever appended.

- ``plan``: create, edit, submit and retry plans; the history and state counters
- ``delivery``: the outbox — claims, leases, what MINT answered, backoff, overdue messages
- ``token``: MINT's access token in one row shared by every worker, and the client using it
- ``monitoring``: worker heartbeats and MINT health checks
"""

from plans.services.delivery import (
    DeliveryResult,
    SentMessage,
    submissions_claim,
    submissions_fail_overdue,
    submissions_record_outcomes,
    submissions_release,
    submissions_renew_lease,
)
from plans.services.monitoring import health_record, heartbeat_beat
from plans.services.plan import (
    EDITABLE_STATES,
    PLAN_FIELDS,
    RETRYABLE_STATES,
    PlanActionError,
    default_status_text,
    plan_create,
    plan_payload,
    plan_retry,
    plan_state_counts_rebuild,
    plan_submit,
    plan_update,
    plans_submit,
)
from plans.services.token import DatabaseTokenStore, mint_client

__all__ = [
    "EDITABLE_STATES",
    "PLAN_FIELDS",
    "RETRYABLE_STATES",
    "DatabaseTokenStore",
    "DeliveryResult",
    "PlanActionError",
    "SentMessage",
    "default_status_text",
    "health_record",
    "heartbeat_beat",
    "mint_client",
    "plan_create",
    "plan_payload",
    "plan_retry",
    "plan_state_counts_rebuild",
    "plan_submit",
    "plan_update",
    "plans_submit",
    "submissions_claim",
    "submissions_fail_overdue",
    "submissions_record_outcomes",
    "submissions_release",
    "submissions_renew_lease",
]
