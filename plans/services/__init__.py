"""Every write MINT Portal makes: plans, their history, the outbox and the worker's records.

Views, the admin, management commands and the worker call these functions and nothing else
writes. Each function is keyword-only and atomic; history rows are only ever appended.

- ``plan``: create, edit, submit, retry (one or many) and cancel plans; history, state counters
- ``schedules``: weekly schedules, their exceptions, and materialising them into plans
- ``guards``: the one place that says whether a plan can work (overlap, energy, chargers)
- ``delivery``: the outbox — claims, leases, what MINT answered, backoff, overdue messages
- ``circuit``: the circuit breaker every worker shares in front of ``POST /plan/``
- ``token``: MINT's access token in one row shared by every worker, and the client using it
- ``monitoring``: worker heartbeats and MINT health checks
- ``preferences``: what the portal remembers for a user (the site of their last new plan)
- ``accounts``: the second factor (authenticator app, recovery codes) and the login audit log
- ``feeds``: calendar feed tokens (made, revoked, used)
"""

from plans.services.accounts import (
    audit,
    recovery_codes_renew,
    second_factor_check,
    second_factor_enabled,
    second_factor_remove,
    second_factor_required,
    totp_device_confirm,
    totp_device_start,
    totp_secret,
)
from plans.services.circuit import (
    Gate,
    circuit_gate,
    circuit_note_failure,
    circuit_note_success,
    circuit_probe_unused,
)
from plans.services.delivery import (
    DeliveryResult,
    SentMessage,
    submissions_claim,
    submissions_fail_overdue,
    submissions_record_outcomes,
    submissions_release,
    submissions_renew_lease,
)
from plans.services.feeds import (
    NewFeedToken,
    feed_token_create,
    feed_token_revoke,
    feed_token_use,
)
from plans.services.guards import (
    GuardWarnings,
    PlanCandidate,
    plan_energy_kwh,
    plan_warnings_refresh,
    plans_guard,
)
from plans.services.monitoring import health_record, heartbeat_beat, mint_problem_record
from plans.services.plan import (
    CANCELLABLE_STATES,
    EDITABLE_STATES,
    PLAN_FIELDS,
    RETRYABLE_STATES,
    BulkRetry,
    PlanActionError,
    default_status_text,
    plan_accepted_revision,
    plan_cancel,
    plan_create,
    plan_maybe_at_mint,
    plan_payload,
    plan_retry,
    plan_state_counts_rebuild,
    plan_submit,
    plan_update,
    plans_retry,
    plans_submit,
)
from plans.services.preferences import preference_site_remember
from plans.services.schedules import (
    SCHEDULE_FIELDS,
    schedule_create,
    schedule_effect,
    schedule_end,
    schedule_except,
    schedule_exception_lift,
    schedule_next,
    schedule_preview,
    schedule_spec,
    schedule_summary,
    schedule_update,
    schedule_validate,
    schedules_materialize,
)
from plans.services.token import DatabaseTokenStore, mint_client

__all__ = [
    "CANCELLABLE_STATES",
    "EDITABLE_STATES",
    "PLAN_FIELDS",
    "RETRYABLE_STATES",
    "SCHEDULE_FIELDS",
    "BulkRetry",
    "DatabaseTokenStore",
    "DeliveryResult",
    "Gate",
    "GuardWarnings",
    "NewFeedToken",
    "PlanActionError",
    "PlanCandidate",
    "SentMessage",
    "audit",
    "circuit_gate",
    "circuit_note_failure",
    "circuit_note_success",
    "circuit_probe_unused",
    "default_status_text",
    "feed_token_create",
    "feed_token_revoke",
    "feed_token_use",
    "health_record",
    "heartbeat_beat",
    "mint_client",
    "mint_problem_record",
    "plan_accepted_revision",
    "plan_cancel",
    "plan_create",
    "plan_energy_kwh",
    "plan_maybe_at_mint",
    "plan_payload",
    "plan_retry",
    "plan_state_counts_rebuild",
    "plan_submit",
    "plan_update",
    "plan_warnings_refresh",
    "plans_guard",
    "plans_retry",
    "plans_submit",
    "preference_site_remember",
    "recovery_codes_renew",
    "schedule_create",
    "schedule_effect",
    "schedule_end",
    "schedule_except",
    "schedule_exception_lift",
    "schedule_next",
    "schedule_preview",
    "schedule_spec",
    "schedule_summary",
    "schedule_update",
    "schedule_validate",
    "schedules_materialize",
    "second_factor_check",
    "second_factor_enabled",
    "second_factor_remove",
    "second_factor_required",
    "submissions_claim",
    "submissions_fail_overdue",
    "submissions_record_outcomes",
    "submissions_release",
    "submissions_renew_lease",
    "totp_device_confirm",
    "totp_device_start",
    "totp_secret",
]
