from django.urls import path

from plans import views

app_name = "plans"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("plans/", views.plan_list, name="plan_list"),
    path("plans/new/", views.plan_create, name="plan_create"),
    path("plans/submit-selected/", views.plans_submit_selected, name="plans_submit_selected"),
    path("plans/<int:pk>/", views.plan_detail, name="plan_detail"),
    path("plans/<int:pk>/edit/", views.plan_edit, name="plan_edit"),
    path("plans/<int:pk>/submit/", views.plan_submit, name="plan_submit"),
    path("plans/<int:pk>/retry/", views.plan_retry, name="plan_retry"),
    path("plans/<int:pk>/cancel/", views.plan_cancel, name="plan_cancel"),
    path("plans/<int:pk>/status/", views.plan_status, name="plan_status"),
    path("mint-health/", views.mint_health, name="mint_health"),
]
