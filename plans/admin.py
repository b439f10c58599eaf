"""Django admin: sites and vehicles are edited here; everything about plans is read-only.

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
    FeedToken,
    HealthCheck,
    Location,
    Plan,
    PlanEvent,
    Schedule,
    ScheduleEvent,
    Submission,
    Vehicle,
    WorkerHeartbeat,
)
from plans.services.feeds import feed_tokens_revoke
from plans.services.guards import plan_warnings_refresh_for


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
    list_display = (
        "name",
        "mint_location_id",
        "time_zone",
        "charge_points",
        "charge_point_kw",
        "is_active",
    )
    list_filter = ("is_active",)
    search_fields = ("name", "mint_location_id")
    ordering = ("name",)

    def save_model(self, request: HttpRequest, obj: Location, form, change: bool) -> None:
        """Charge points and their power feed the guards: the site's coming plans are checked
        again, so their warnings say what is true now."""
        super().save_model(request, obj, form, change)
        if change:
            plan_warnings_refresh_for(site=obj)


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "registration",
        "battery_kwh",
        "default_consumption",
        "max_charge_kw",
        "home_location",
        "is_active",
    )
    list_filter = ("is_active", "home_location")
    list_select_related = ("home_location",)
    search_fields = ("name", "registration")
    ordering = ("name",)

    def save_model(self, request: HttpRequest, obj: Vehicle, form, change: bool) -> None:
        """Battery, consumption and power feed the guards: the vehicle's coming plans are
        checked again, so their warnings say what is true now."""
        super().save_model(request, obj, form, change)
        if change:
            plan_warnings_refresh_for(vehicle=obj)


class ScheduleEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ScheduleEvent
    fields = ("at", "action", "occurrence_date", "actor", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Schedules change through the portal, which shows what an edit does to their plans
    before doing it."""

    list_display = (
        "id",
        "vehicle",
        "location",
        "weekdays",
        "arrive_at",
        "depart_at",
        "valid_from",
        "valid_until",
    )
    list_filter = ("location",)
    list_select_related = ("vehicle", "location")
    search_fields = ("vehicle__name", "location__name")
    inlines = (ScheduleEventInline,)


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
        "vehicle",
        "location",
        "scheduled_start",
        "target",
        "state",
        "revision",
        "updated_at",
    )
    list_filter = ("state", "location", "scheduled_start")
    list_select_related = ("location", "vehicle")
    search_fields = (
        "transaction_id",
        "location__name",
        "location__mint_location_id",
        "vehicle__name",
    )
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
        "vehicle",
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


@admin.register(FeedToken)
class FeedTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Calendar feed tokens: who holds one, when it was last used, and a way to revoke it
    (only a hash of the secret is stored, so the secret itself is never shown)."""

    list_display = ("user", "label", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at", "created_at")
    search_fields = ("user__username", "label", "prefix")
    exclude = ("secret_hash",)
    actions = ("revoke",)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("plans.change_feedtoken")

    @admin.action(description="Revoke the selected calendar tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset) -> None:
        revoked = feed_tokens_revoke(pks=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{revoked} calendar token(s) revoked; their feeds answer 404.")
