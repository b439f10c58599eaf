"""Django admin: sites are edited here; everything about plans is read-only.

Plans change only through ``plans.services`` (the portal's pages), which keep the history,
the outbox and the revision rules together. An admin form saving a plan directly would bypass
all three, so plans, their history, messages and attempts are shown but not editable here.
"""

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from plans.models import (
    DeliveryAttempt,
    HealthCheck,
    Location,
    Plan,
    PlanEvent,
    Submission,
    WorkerHeartbeat,
)


class ReadOnlyAdminMixin:
    """Show rows, never add, change or delete them: services own these tables.

    The tables grow by the hundred thousand, so no full count under a filter, and dates are
    list filters, not ``date_hierarchy`` (which lists the distinct dates of the whole table on
    every page view).
    """

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ("name", "mint_location_id", "time_zone", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name", "mint_location_id")
    ordering = ("name",)


class PlanEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PlanEvent
    fields = ("at", "action", "from_state", "to_state", "revision", "actor", "reason")
    readonly_fields = fields
    ordering = ("at", "id")
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Plan)
class PlanAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "location",
        "scheduled_start",
        "target",
        "state",
        "revision",
        "updated_at",
    )
    list_filter = ("state", "location", "scheduled_start")
    list_select_related = ("location",)
    search_fields = ("transaction_id", "location__name", "location__mint_location_id")
    readonly_fields = (
        "portal_link",
        "transaction_id",
        "state",
        "revision",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
    )
    fields = (
        "portal_link",
        "location",
        "scheduled_start",
        "scheduled_end",
        "target_kind",
        "expected_range_km",
        "average_consumption",
        "expected_charge_kwh",
        "status_note",
        "transaction_id",
        "state",
        "revision",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
    )
    inlines = (PlanEventInline,)

    @admin.display(description="target")
    def target(self, plan: Plan) -> str:
        if plan.target_kind == "charge":
            return f"{plan.expected_charge_kwh} kWh"
        consumption = (
            f" @ {plan.average_consumption} kWh/100 km" if plan.average_consumption else ""
        )
        return f"{plan.expected_range_km} km{consumption}"

    @admin.display(description="in the portal")
    def portal_link(self, plan: Plan) -> str:
        url = reverse("plans:plan_detail", args=[plan.pk])
        return format_html('<a href="{}">Open plan {} in the portal to change it</a>', url, plan.pk)


@admin.register(PlanEvent)
class PlanEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "plan", "action", "from_state", "to_state", "revision", "actor")
    list_filter = ("action", "to_state", "at")
    list_select_related = ("plan",)
    search_fields = ("plan__id", "actor", "reason")


@admin.register(Submission)
class SubmissionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "message_id",
        "plan",
        "revision",
        "state",
        "attempt_count",
        "created_at",
        "next_attempt_at",
        "finished_at",
    )
    list_filter = ("state", "next_trigger", "created_at")
    list_select_related = ("plan",)
    search_fields = ("message_id", "plan__transaction_id", "plan__id")


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "started_at",
        "submission",
        "trigger",
        "outcome",
        "http_status",
        "duration_ms",
        "worker",
    )
    list_filter = ("outcome", "trigger", "http_status", "started_at")
    list_select_related = ("submission",)
    search_fields = ("submission__message_id", "worker", "error")


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "hostname", "pid", "started_at", "seen_at", "stopped_at")
    list_filter = ("hostname",)
    search_fields = ("name", "hostname")


@admin.register(HealthCheck)
class HealthCheckAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("checked_at", "result", "http_status", "latency_ms", "error")
    list_filter = ("result", "checked_at")
