from django.urls import path

from plans import views

app_name = "plans"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("plans/", views.plan_list, name="plan_list"),
    path("plans/new/", views.plan_create, name="plan_create"),
    path("plans/export.csv", views.plans_export_csv, name="plans_export_csv"),
    path("plans/export.xlsx", views.plans_export_xlsx, name="plans_export_xlsx"),
    path("plans/submit-selected/", views.plans_submit_selected, name="plans_submit_selected"),
    path("plans/import/", views.import_start, name="import_start"),
    path(
        "plans/import/template.<str:file_format>",
        views.import_template,
        name="import_template",
    ),
    path("plans/copy-day/", views.copy_day, name="copy_day"),
    path("plans/bulk/<int:pk>/", views.batch_preview, name="batch_preview"),
    path("plans/bulk/<int:pk>/confirm/", views.batch_confirm, name="batch_confirm"),
    path("plans/bulk/<int:pk>/errors/", views.batch_errors, name="batch_errors"),
    path("plans/retry-selected/", views.plans_retry_selected, name="plans_retry_selected"),
    path("plans/retry-failed/", views.plans_retry_failed, name="plans_retry_failed"),
    path("plans/<int:pk>/", views.plan_detail, name="plan_detail"),
    path("plans/<int:pk>/edit/", views.plan_edit, name="plan_edit"),
    path("plans/<int:pk>/submit/", views.plan_submit, name="plan_submit"),
    path("plans/<int:pk>/retry/", views.plan_retry, name="plan_retry"),
    path("plans/<int:pk>/cancel/", views.plan_cancel, name="plan_cancel"),
    path("plans/<int:pk>/status/", views.plan_status, name="plan_status"),
    path("plans/<int:pk>/history.csv", views.plan_history_csv, name="plan_history_csv"),
    path("vehicles/", views.vehicle_list, name="vehicle_list"),
    path("schedules/", views.schedule_list, name="schedule_list"),
    path("schedules/new/", views.schedule_create, name="schedule_create"),
    path("schedules/preview/", views.schedule_preview, name="schedule_preview"),
    path("schedules/<int:pk>/", views.schedule_detail, name="schedule_detail"),
    path("schedules/<int:pk>/edit/", views.schedule_edit, name="schedule_edit"),
    path("schedules/<int:pk>/except/", views.schedule_except, name="schedule_except"),
    path(
        "schedules/<int:pk>/except/<int:exception_pk>/lift/",
        views.schedule_exception_lift,
        name="schedule_exception_lift",
    ),
    path("schedules/<int:pk>/end/", views.schedule_end, name="schedule_end"),
    path("sites/", views.site_list, name="site_list"),
    path("sites/timeline/", views.sites_timeline, name="sites_timeline"),
    path("sites/<int:pk>/", views.site_timeline, name="site_timeline"),
    path("shift/", views.shift_handover, name="shift"),
    path("mint-health/", views.mint_health, name="mint_health"),
    # Calendar feeds: the token is the credential (plans.views.feeds); logs mask it.
    path("feeds/<str:token>/sites/<int:pk>.ics", views.feed_site, name="feed_site"),
    path("feeds/<str:token>/vehicles/<int:pk>.ics", views.feed_vehicle, name="feed_vehicle"),
]
