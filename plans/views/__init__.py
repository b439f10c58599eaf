"""The portal's pages, by concern; thin views that fetch, validate, call one service and
redirect or render. Re-exported here for ``plans.urls``."""

from plans.views.dashboard import dashboard, healthz, mint_health
from plans.views.exports import plan_history_csv, plans_export_csv, plans_export_xlsx
from plans.views.feeds import feed_site, feed_vehicle
from plans.views.fleet import (
    schedule_create,
    schedule_detail,
    schedule_edit,
    schedule_end,
    schedule_except,
    schedule_exception_lift,
    schedule_list,
    schedule_preview,
    vehicle_list,
)
from plans.views.imports import (
    batch_confirm,
    batch_errors,
    batch_preview,
    copy_day,
    import_start,
    import_template,
)
from plans.views.plans import (
    plan_cancel,
    plan_create,
    plan_detail,
    plan_edit,
    plan_list,
    plan_retry,
    plan_status,
    plan_submit,
    plans_retry_failed,
    plans_retry_selected,
    plans_submit_selected,
)
from plans.views.shift import shift_handover
from plans.views.timeline import site_list, site_timeline, sites_timeline

__all__ = [
    "batch_confirm",
    "batch_errors",
    "batch_preview",
    "copy_day",
    "dashboard",
    "feed_site",
    "feed_vehicle",
    "healthz",
    "import_start",
    "import_template",
    "mint_health",
    "plan_cancel",
    "plan_create",
    "plan_detail",
    "plan_edit",
    "plan_history_csv",
    "plan_list",
    "plan_retry",
    "plan_status",
    "plan_submit",
    "plans_export_csv",
    "plans_export_xlsx",
    "plans_retry_failed",
    "plans_retry_selected",
    "plans_submit_selected",
    "schedule_create",
    "schedule_detail",
    "schedule_edit",
    "schedule_end",
    "schedule_except",
    "schedule_exception_lift",
    "schedule_list",
    "schedule_preview",
    "shift_handover",
    "site_list",
    "site_timeline",
    "sites_timeline",
    "vehicle_list",
]
