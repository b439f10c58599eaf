"""The portal's pages, by concern; thin views that fetch, validate, call one service and
redirect or render. Re-exported here for ``plans.urls``."""

from plans.views.dashboard import dashboard, healthz, mint_health
from plans.views.plans import (
    plan_cancel,
    plan_create,
    plan_detail,
    plan_edit,
    plan_list,
    plan_retry,
    plan_status,
    plan_submit,
    plans_submit_selected,
)

__all__ = [
    "dashboard",
    "healthz",
    "mint_health",
    "plan_cancel",
    "plan_create",
    "plan_detail",
    "plan_edit",
    "plan_list",
    "plan_retry",
    "plan_status",
    "plan_submit",
    "plans_submit_selected",
]
