"""Fleet pages: the vehicles (read-only for dispatchers), and weekly schedules with their live
preview, their effect shown before an edit is applied, skips, pauses and the end."""

import hashlib

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from plans import selectors, services
from plans.forms import ScheduleEndForm, ScheduleExceptionForm, ScheduleForm
from plans.models import Location, Schedule, ScheduleException, Vehicle
from plans.schedule_rules import DST_RULE
from plans.timezones import utc_to_local
from plans.views.common import SUBMIT_PERM, is_number, require

VIEW_FLEET_PERM = "plans.view_vehicle"
VIEW_SCHEDULE_PERM = "plans.view_schedule"
ADD_SCHEDULE_PERM = "plans.add_schedule"
CHANGE_SCHEDULE_PERM = "plans.change_schedule"
PREVIEW_COUNT = 14


def _schedule_or_404(pk: int) -> Schedule:
    try:
        return selectors.schedule_detail(pk=pk)
    except Schedule.DoesNotExist:
        raise Http404("No such schedule.") from None


@require_GET
def vehicle_list(request: HttpRequest) -> HttpResponse:
    require(request, VIEW_FLEET_PERM)
    return render(request, "plans/vehicle_list.html", {"vehicles": selectors.vehicle_list()})


@require_GET
def schedule_list(request: HttpRequest) -> HttpResponse:
    require(request, VIEW_SCHEDULE_PERM)
    filters = selectors.ScheduleFilters(
        location_id=int(request.GET["site"]) if is_number(request.GET.get("site", "")) else None,
        vehicle_id=(
            int(request.GET["vehicle"]) if is_number(request.GET.get("vehicle", "")) else None
        ),
    )
    today = timezone.now()
    rows = []
    for schedule in selectors.schedule_list(filters=filters):
        spec = services.schedule_spec(schedule, list(schedule.exceptions.all()))
        upcoming = services.schedule_next(spec=spec, after=today)
        rows.append({"schedule": schedule, "status": _status(schedule, today), "next": upcoming})
    return render(
        request,
        "plans/schedule_list.html",
        {
            "rows": rows,
            "sites": Location.objects.order_by("name"),
            "filters": filters,
            "can_add": request.user.has_perm(ADD_SCHEDULE_PERM),
        },
    )


#: Said when a dispatcher without the right to submit would make plans go to MINT.
NO_SUBMIT = (
    "You may not send plans to MINT, so a schedule of yours cannot submit its plans or re-send "
    "them; ask a dispatcher who may."
)


def _may_submit(request: HttpRequest, form: ScheduleForm, resends: bool = False) -> bool:
    """Whether what the form asks for needs the right to submit plans, and the user has it."""
    if not (resends or form.cleaned_data.get("auto_submit")):
        return True
    return request.user.has_perm(SUBMIT_PERM)


def _fingerprint(values: dict) -> str:
    """What the dispatcher reviewed, condensed, so Apply can tell that nothing changed since."""
    text = repr(sorted((name, str(getattr(value, "pk", value))) for name, value in values.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _status(schedule: Schedule, now) -> str:
    """``active``, ``paused`` (today is in a pause or skip), ``ends today``, ``ended`` or
    ``not started``, by the date on the site's clock."""
    today = utc_to_local(now, schedule.time_zone).date()
    if schedule.valid_until and schedule.valid_until < today:
        return "ended"
    if schedule.valid_until == today:
        return "ends today"
    if schedule.valid_from > today:
        return "not started"
    if any(e.first_day <= today <= e.last_day for e in schedule.exceptions.all()):
        return "paused"
    return "active"


def _preview_context(form: ScheduleForm, schedule: Schedule | None) -> dict:
    """The live preview for a valid form: the next occurrences with DST nights and guards."""
    unsaved = form.unsaved(schedule)
    services.schedule_validate(unsaved)
    rows = services.schedule_preview(schedule=unsaved, count=PREVIEW_COUNT)
    codes = sorted({w.code for row in rows for w in row.warnings})
    return {
        "preview": rows,
        "preview_zone": unsaved.time_zone,
        "preview_warnings": codes,
        "preview_conflicts": sum(bool(row.errors) for row in rows),
        "dst_rule": DST_RULE,
    }


@require_http_methods(["GET", "POST"])
def schedule_create(request: HttpRequest) -> HttpResponse:
    require(request, ADD_SCHEDULE_PERM)
    initial = {"valid_from": timezone.now().date(), "weekdays": ["1", "2", "3", "4", "5"]}
    if is_number(request.GET.get("vehicle", "")):
        vehicle = Vehicle.objects.filter(pk=int(request.GET["vehicle"])).first()
        if vehicle:
            initial.update(vehicle=vehicle, location=vehicle.home_location)
    form = ScheduleForm(request.POST or None, initial=initial)
    context = {"form": form, "schedule": None, "horizon_days": settings.SCHEDULE_HORIZON_DAYS}
    if request.method == "POST" and form.is_valid():
        try:
            context.update(_preview_context(form, None))
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            shown = ",".join(context["preview_warnings"])
            accepted = form.accepted_warnings() and form.cleaned_data["warnings_shown"] == shown
            if request.POST.get("action") == "save" and not _may_submit(request, form):
                form.add_error("auto_submit", NO_SUBMIT)
            elif request.POST.get("action") == "save" and (not shown or accepted):
                try:
                    schedule, made = services.schedule_create(
                        user=request.user, **form.schedule_values()
                    )
                except ValidationError as exc:
                    form.add_service_errors(exc)
                else:
                    messages.success(
                        request,
                        f"Schedule {schedule.pk} saved; {len(made.created)} plan(s) made for "
                        f"the days inside the next {settings.SCHEDULE_HORIZON_DAYS} days"
                        + (f", {made.submitted} submitted to MINT" if made.submitted else "")
                        + ".",
                    )
                    if made.conflicts:
                        messages.warning(
                            request,
                            f"{made.conflicts} day(s) got no plan: the vehicle is already in "
                            f"another plan then. The schedule's history names each one.",
                        )
                    return redirect("plans:schedule_detail", pk=schedule.pk)
            elif request.POST.get("action") == "save":
                context["must_accept"] = True
            form.data = form.data.copy()
            form.data["warnings_shown"] = shown
    return render(request, "plans/schedule_form.html", context)


@require_POST
def schedule_preview(request: HttpRequest) -> HttpResponse:
    """The preview part of the schedule form, fetched by ``schedule_form.js`` as the
    dispatcher types (the form works without it: its Preview button posts the whole page)."""
    require(request, ADD_SCHEDULE_PERM)
    schedule = None
    if is_number(request.POST.get("schedule", "")):
        schedule = _schedule_or_404(int(request.POST["schedule"]))
    form = ScheduleForm(request.POST)
    context = {"form": form}
    if form.is_valid():
        try:
            context.update(_preview_context(form, schedule))
        except ValidationError as exc:
            form.add_service_errors(exc)
    return render(request, "plans/partials/_schedule_preview.html", context)


@require_GET
def schedule_detail(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, VIEW_SCHEDULE_PERM)
    schedule = _schedule_or_404(pk)
    exceptions = list(schedule.exceptions.order_by("first_day"))
    today = timezone.now()
    rows = services.schedule_preview(
        schedule=schedule,
        spec=services.schedule_spec(schedule, exceptions),
        count=PREVIEW_COUNT,
    )
    return render(
        request,
        "plans/schedule_detail.html",
        {
            "schedule": schedule,
            "status": _status(schedule, today),
            "summary": services.schedule_summary(schedule),
            "exceptions": exceptions,
            "preview": rows,
            "preview_zone": schedule.time_zone,
            "dst_rule": DST_RULE,
            "plans": selectors.schedule_plans(schedule=schedule),
            "events": selectors.schedule_events(schedule=schedule),
            "horizon_days": settings.SCHEDULE_HORIZON_DAYS,
            "can_change": request.user.has_perm(CHANGE_SCHEDULE_PERM),
            "skip_form": ScheduleExceptionForm(initial={"kind": "skip"}, prefix="skip"),
            "pause_form": ScheduleExceptionForm(initial={"kind": "pause"}, prefix="pause"),
            "end_form": ScheduleEndForm(),
        },
    )


@require_http_methods(["GET", "POST"])
def schedule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit → *Review* shows what it does to the schedule's plans → *Apply* does it."""
    require(request, CHANGE_SCHEDULE_PERM)
    schedule = _schedule_or_404(pk)
    form = ScheduleForm(request.POST or None, initial=ScheduleForm.initial_from_schedule(schedule))
    context = {
        "form": form,
        "schedule": schedule,
        "horizon_days": settings.SCHEDULE_HORIZON_DAYS,
    }
    action = request.POST.get("action")
    if request.method == "POST" and form.is_valid():
        try:
            context.update(_preview_context(form, schedule))
            effect = services.schedule_effect(schedule=schedule, edited=form.unsaved(schedule))
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            codes = sorted(set(context["preview_warnings"]) | effect.warning_codes)
            context["preview_warnings"] = codes
            shown = ",".join(codes)
            accepted = not shown or (
                form.accepted_warnings() and form.cleaned_data["warnings_shown"] == shown
            )
            # Apply only what was reviewed: a field changed after Review is reviewed again.
            reviewed = _fingerprint({**form.schedule_values(), "warnings": shown})
            seen = form.cleaned_data.get("seen_revision")
            if action == "apply" and seen is None:
                form.add_error(
                    None, "This page is out of date: open the schedule's edit page again."
                )
            elif action == "apply" and effect.resent and not _may_submit(request, form, True):
                form.add_error(None, NO_SUBMIT)
            elif action == "apply" and not _may_submit(request, form):
                form.add_error("auto_submit", NO_SUBMIT)
            elif (
                action == "apply"
                and not effect.has_errors
                and accepted
                and request.POST.get("reviewed") == reviewed
            ):
                try:
                    result = services.schedule_update(
                        schedule=schedule,
                        user=request.user,
                        seen_revision=seen,
                        **form.schedule_values(),
                    )
                except ValidationError as exc:
                    form.add_service_errors(exc)
                else:
                    messages.success(
                        request,
                        f"Schedule {schedule.pk} changed: {result.changed} plan(s) changed, "
                        f"{result.resent} re-sent to MINT as a new revision, "
                        f"{result.called_off} called off, {result.created} new.",
                    )
                    for problem in result.skipped:
                        messages.warning(request, problem)
                    return redirect("plans:schedule_detail", pk=schedule.pk)
            elif action == "apply" and not accepted:
                context["must_accept"] = True
            form.data = form.data.copy()
            form.data["warnings_shown"] = shown
            context.update({"effect": effect, "reviewing": True, "reviewed": reviewed})
    return render(request, "plans/schedule_form.html", context)


@require_POST
def schedule_except(request: HttpRequest, pk: int) -> HttpResponse:
    """Skip a day or pause a range (``kind`` says which)."""
    require(request, CHANGE_SCHEDULE_PERM)
    schedule = _schedule_or_404(pk)
    prefix = "skip" if "skip-kind" in request.POST else "pause"
    form = ScheduleExceptionForm(request.POST, prefix=prefix)
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else ""
            messages.error(request, f"{label}: {' '.join(errors)}" if label else " ".join(errors))
        return redirect("plans:schedule_detail", pk=schedule.pk)
    data = form.cleaned_data
    try:
        result = services.schedule_except(
            schedule=schedule,
            user=request.user,
            kind=data["kind"],
            first_day=data["first_day"],
            last_day=data["last_day"],
            reason=data["reason"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Saved. {result.text}")
        if result.cancelled:
            messages.warning(request, settings.CANCEL_NOTICE)
    return redirect("plans:schedule_detail", pk=schedule.pk)


@require_POST
def schedule_exception_lift(request: HttpRequest, pk: int, exception_pk: int) -> HttpResponse:
    require(request, CHANGE_SCHEDULE_PERM)
    schedule = _schedule_or_404(pk)
    exception = ScheduleException.objects.filter(schedule=schedule, pk=exception_pk).first()
    if exception is None:
        raise Http404("No such skip or pause.")
    made = services.schedule_exception_lift(exception=exception, user=request.user)
    messages.success(
        request,
        f"Lifted: {exception}. {made} plan(s) made for its days inside the next "
        f"{settings.SCHEDULE_HORIZON_DAYS} days; later days follow as they come. A day whose "
        f"plan was already called off keeps it so: duplicate that plan to plan the day again.",
    )
    return redirect("plans:schedule_detail", pk=schedule.pk)


@require_POST
def schedule_end(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, CHANGE_SCHEDULE_PERM)
    schedule = _schedule_or_404(pk)
    form = ScheduleEndForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter the schedule's last day, like 2026-12-24.")
        return redirect("plans:schedule_detail", pk=schedule.pk)
    if request.POST.get("confirm") != "yes":
        # Ending calls off plans, some perhaps already at MINT: say which, then ask again.
        last_day = form.cleaned_data["last_day"]
        return render(
            request,
            "plans/schedule_end.html",
            {
                "schedule": schedule,
                "last_day": last_day,
                "plans": selectors.schedule_plans_after(schedule=schedule, day=last_day),
                "cancel_notice": settings.CANCEL_NOTICE,
            },
        )
    try:
        result = services.schedule_end(
            schedule=schedule, user=request.user, last_day=form.cleaned_data["last_day"]
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Schedule ended; past plans stay. {result.text}")
        if result.cancelled:
            messages.warning(request, settings.CANCEL_NOTICE)
    return redirect("plans:schedule_detail", pk=schedule.pk)
