"""Plan pages: the list, the form (new, edit, duplicate), the plan page and its actions."""

import uuid
from datetime import date, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from plans import selectors, services
from plans.forms import PlanCancelForm, PlanFilterForm, PlanForm, RetrySinceForm
from plans.models import PENDING_STATES, Plan, PlanState, TargetKind
from plans.timezones import day_text, site_today, utc_to_local, utc_to_wall, wall_text
from plans.views.common import (
    CHANGE_PERM,
    MAX_ID,
    SUBMIT_PERM,
    VIEW_PERM,
    abilities,
    bad_request,
    is_number,
    plan_or_404,
    require,
    safe_next,
)

PLANS_PER_PAGE = 50
#: Shown in the draft preview where the real values only exist once the plan is submitted.
ASSIGNED_AT_SUBMIT = "(assigned at submit)"
#: Plans the list offers to retry with a tick (a retrying one is retried from its page).
RETRY_TICKED = (PlanState.FAILED, PlanState.REJECTED)


@require_GET
def plan_list(request: HttpRequest) -> HttpResponse:
    require(request, VIEW_PERM)
    filter_form = PlanFilterForm(request.GET)
    if filter_form.is_valid():
        page = selectors.plan_page(
            filters=filter_form.filters(),
            after=selectors.parse_plan_cursor(request.GET.get("after", "")),
            before=selectors.parse_plan_cursor(request.GET.get("before", "")),
            size=PLANS_PER_PAGE,
        )
    else:
        # A filter it cannot read shows nothing rather than every plan: a tired eye would take
        # the whole list for the filtered one, and "Submit all drafts on this page" with it.
        page = selectors.PlanPage(
            plans=[], count=0, count_is_capped=False, earlier=None, later=None
        )
    return render(
        request,
        "plans/plan_list.html",
        {
            "filter_form": filter_form,
            "page": page,
            "plans": page.plans,
            "now_cursor": selectors.plan_cursor(at=timezone.now()),
            # On an empty page reached by Earlier / Later: the way back, not "No plans yet".
            "paged": bool(request.GET.get("after") or request.GET.get("before")),
            "draft_ids": [p.pk for p in page.plans if p.state == PlanState.DRAFT],
            "retry_count": sum(p.state in RETRY_TICKED for p in page.plans),
            "has_pending": any(p.state in PENDING_STATES for p in page.plans),
            **abilities(request),
        },
    )


def _save_and_maybe_submit(
    request: HttpRequest, form: PlanForm, plan: Plan | None, *, reason: str = ""
) -> Plan:
    """Create or update the plan and, for "Save and submit", queue it in the same transaction.

    Raises the service's ``ValidationError`` / ``PlanActionError``; nothing is kept then.
    """
    submit = request.POST.get("action") == "submit"
    if submit:
        require(request, SUBMIT_PERM)
    accept = form.accepted_warnings()
    with transaction.atomic():
        if plan is None:
            plan = services.plan_create(
                user=request.user, reason=reason, accept_warnings=accept, **form.plan_values()
            )
            services.preference_site_remember(user=request.user, location=plan.location)
        else:
            plan = services.plan_update(
                plan=plan,
                user=request.user,
                seen_fingerprint=form.cleaned_data.get("seen", ""),
                accept_warnings=accept,
                **form.plan_values(),
            )
        if submit and plan.state != PlanState.DRAFT:
            again = (
                f" To send revision {plan.revision} again, use Retry now."
                if plan.state in services.RETRYABLE_STATES
                else ""
            )
            raise services.PlanActionError(
                f"Nothing changed, so plan {plan.pk} has nothing new to submit; it stays "
                f"{plan.get_state_display().lower()}.{again}"
            )
        if submit:
            services.plan_submit(plan=plan, user=request.user)
    return plan


def _saved_message(plan: Plan, submitted: bool, verb: str) -> str:
    if not submitted and plan.state != PlanState.DRAFT:
        return f"Nothing changed, so plan {plan.pk} stays {plan.get_state_display().lower()}."
    if submitted:
        return f"Plan {plan.pk} {verb} and queued for delivery to MINT (revision {plan.revision})."
    return f"Plan {plan.pk} {verb} as a draft (revision {plan.revision}). Submit it when ready."


def _quick_entry_message(plan: Plan) -> str:
    """After "Save and add next": which plan was saved (a link to it), its window on the
    site's clock, and where that day's drafts are submitted from."""
    zone = plan.location.time_zone
    start = utc_to_local(plan.scheduled_start, zone)
    end = utc_to_local(plan.scheduled_end, zone)
    days = (end.date() - start.date()).days
    later = {0: "", 1: " (ends the next day)"}.get(days, f" (ends {days} days later)")
    drafts = (
        reverse("plans:plan_list")
        + "?"
        + urlencode(
            {"site": plan.location_id, "state": PlanState.DRAFT, "day": f"{start:%Y-%m-%d}"}
        )
    )
    return format_html(
        '<a href="{}">Plan {}</a> saved as a draft: {}{}, {} {} – {}{}. '
        'Type the next plan below; <a href="{}">submit the drafts of that day</a> when done.',
        reverse("plans:plan_detail", args=[plan.pk]),
        plan.pk,
        f"{plan.vehicle.name} at " if plan.vehicle else "",
        plan.location.name,
        day_text(start),
        f"{start:%H:%M}",
        wall_text(end) if days else f"{end:%H:%M} {end.tzname()}",
        later,
        drafts,
    )


def _next_plan_url(plan: Plan) -> str:
    """The form again for the next plan: the same site, day and kind of target."""
    day = utc_to_wall(plan.scheduled_start, plan.location.time_zone).date()
    query = {"site": plan.location_id, "day": day.isoformat(), "target": plan.target_kind}
    return reverse("plans:plan_create") + "?" + urlencode(query)


def _new_plan_initial(request: HttpRequest) -> dict:
    """A new plan starts at the site asked for (?site=, from "add next") or the last one the
    dispatcher used, on the day asked for (?day=) or tomorrow on that site's calendar, with the
    kind of target asked for (?target=). A value it cannot use is left out, not refused: these
    are only defaults."""
    initial = {}
    sites = selectors.plan_form_locations()
    site = None
    if is_number(request.GET.get("site", "")) and int(request.GET["site"]) <= MAX_ID:
        site = sites.filter(pk=int(request.GET["site"])).first()
    site = site or selectors.user_last_site(user=request.user)
    if site is not None:
        initial["location"] = site
    zone = site.time_zone if site else settings.TIME_ZONE
    try:
        initial["start_date"] = date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        initial["start_date"] = site_today(zone, now=timezone.now()) + timedelta(days=1)
        initial["start_date_is_tomorrow"] = True
    if request.GET.get("target") in TargetKind.values:
        initial["target_kind"] = request.GET["target"]
    return initial


@require_http_methods(["GET", "POST"])
def plan_create(request: HttpRequest) -> HttpResponse:
    require(request, CHANGE_PERM)
    copied_from = None
    # "Duplicate" opens this form filled from another plan (?copy=<pk>, kept on the POST too);
    # nothing exists until it is saved, so a copy someone walks away from leaves no draft.
    if is_number(request.GET.get("copy", "")):
        copied_from = plan_or_404(int(request.GET["copy"]))
        initial = PlanForm.initial_from_plan(copied_from)
    else:
        initial = _new_plan_initial(request) if request.method == "GET" else {}
    form = PlanForm(request.POST or None, initial=initial)
    if not form.is_bound:
        # The cursor starts on the vehicle, also without script: the quickest first key.
        form.fields["vehicle"].widget.attrs["autofocus"] = True
        if copied_from is None and "location" in initial:
            # A site the form chose (the last one used, or kept by "add next") is a default:
            # picking a vehicle replaces it with the vehicle's home site (plan_form.js).
            form.fields["location"].widget.attrs["data-default"] = "true"
    if initial.get("start_date_is_tomorrow"):
        # Tomorrow on the calendar of the site picked next, too (plan_form.js): the site may be
        # on another day than the one the default was worked out for.
        form.fields["start_date"].widget.attrs["data-tomorrow"] = ""
    if request.method == "POST" and form.is_valid():
        reason = f"Copied from plan {copied_from.pk}." if copied_from else ""
        try:
            plan = _save_and_maybe_submit(request, form, None, reason=reason)
        except services.GuardWarnings as exc:
            form.show_warnings(exc.warnings)
        except ValidationError as exc:
            form.add_service_errors(exc)
        except services.PlanActionError as exc:
            form.add_error(None, str(exc))
        else:
            if request.POST.get("action") == "next":
                messages.success(request, _quick_entry_message(plan))
                return redirect(_next_plan_url(plan))
            submitted = request.POST.get("action") == "submit"
            messages.success(request, _saved_message(plan, submitted, "saved"))
            return redirect("plans:plan_detail", pk=plan.pk)
    return render(
        request,
        "plans/plan_form.html",
        {
            "form": form,
            "plan": None,
            "copied_from": copied_from,
            "copy_is_over": copied_from is not None and copied_from.scheduled_end <= timezone.now(),
            **abilities(request),
        },
    )


@require_http_methods(["GET", "POST"])
def plan_edit(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, CHANGE_PERM)
    plan = plan_or_404(pk)
    form = PlanForm(
        request.POST or None,
        initial=PlanForm.initial_from_plan(plan),
        mint_messages=selectors.open_rejection_messages(plan=plan),
    )
    if request.method == "POST" and form.is_valid():
        try:
            plan = _save_and_maybe_submit(request, form, plan)
        except services.GuardWarnings as exc:
            form.show_warnings(exc.warnings)
        except ValidationError as exc:
            form.add_service_errors(exc)
            if getattr(exc, "code", None) == "edit_conflict":
                # The form keeps what was typed; saving it again is now a choice made knowing
                # of the other edit, so it is checked against the plan as it is now.
                plan = plan_or_404(pk)
                form.data = form.data.copy()
                form.data[form.add_prefix("seen")] = plan.content_fingerprint
        except services.PlanActionError as exc:
            messages.error(request, str(exc))
            return redirect("plans:plan_detail", pk=plan.pk)
        else:
            submitted = request.POST.get("action") == "submit"
            messages.success(request, _saved_message(plan, submitted, "saved"))
            return redirect("plans:plan_detail", pk=plan.pk)
    return render(
        request,
        "plans/plan_form.html",
        {
            "form": form,
            "plan": plan,
            "makes_new_revision": plan.state != PlanState.DRAFT,
            "withdraws_message": plan.state in (PlanState.QUEUED, PlanState.RETRYING),
            "is_sending": plan.state == PlanState.SENDING,
            **abilities(request),
        },
    )


@require_http_methods(["GET", "POST"])
def plan_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask why, say what will happen (MINT's API has no cancel), then call the plan off."""
    require(request, CHANGE_PERM)
    plan = plan_or_404(pk)
    form = PlanCancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            plan = services.plan_cancel(
                plan=plan, user=request.user, reason=form.cleaned_data["reason"]
            )
        except services.PlanActionError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, plan.events.last().reason)
        return redirect("plans:plan_detail", pk=plan.pk)
    return render(
        request,
        "plans/plan_cancel.html",
        {
            "plan": plan,
            "form": form,
            "held_revision": services.plan_accepted_revision(plan),
            "maybe_at_mint": services.plan_maybe_at_mint(plan),
            "cancellable": plan.state in services.CANCELLABLE_STATES,
            "cancel_notice": settings.CANCEL_NOTICE,
        },
    )


@require_POST
def plan_submit(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, SUBMIT_PERM)
    plan = plan_or_404(pk)
    try:
        services.plan_submit(plan=plan, user=request.user)
    except services.PlanActionError as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        messages.error(
            request,
            f"Plan {plan.pk} was not submitted: {' '.join(exc.messages)} Edit it first.",
        )
    else:
        messages.success(request, f"Plan {plan.pk} queued for delivery to MINT.")
    return redirect("plans:plan_detail", pk=plan.pk)


@require_POST
def plan_retry(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, SUBMIT_PERM)
    plan = plan_or_404(pk)
    try:
        submission = services.plan_retry(plan=plan, user=request.user)
    except services.PlanActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Plan {plan.pk}: message {submission.message_id} will be sent again now.",
        )
    return redirect("plans:plan_detail", pk=plan.pk)


@require_POST
def plans_submit_selected(request: HttpRequest) -> HttpResponse:
    require(request, SUBMIT_PERM)
    back = safe_next(request, reverse("plans:plan_list"))
    field = "page_drafts" if request.POST.get("action") == "all" else "plan"
    ids = sorted({int(v) for v in request.POST.getlist(field) if is_number(v)})
    if ids and ids[-1] > MAX_ID:
        return bad_request(request, f"There is no plan number {ids[-1]}: it is too large.")
    if not ids:
        messages.warning(request, "Tick the drafts to submit first.")
        return redirect(back)
    queued, problems = services.plans_submit(plans=selectors.plans_in(ids=ids), user=request.user)
    if queued:
        noun = "plan" if queued == 1 else "plans"
        messages.success(request, f"{queued} {noun} queued for delivery to MINT.")
    for problem in problems:
        messages.error(request, problem)
    return redirect(back)


@require_POST
def plans_retry_selected(request: HttpRequest) -> HttpResponse:
    """Retry the ticked failed and rejected plans (or every failed one a page offered), each
    with its own messageId, in one go; a plan that cannot be retried is named with the reason."""
    require(request, SUBMIT_PERM)
    back = safe_next(request, reverse("plans:plan_list"))
    field = "page_retries" if request.POST.get("action") == "all" else "retry"
    ids = sorted({int(v) for v in request.POST.getlist(field) if is_number(v)})
    if ids and ids[-1] > MAX_ID:
        return bad_request(request, f"There is no plan number {ids[-1]}: it is too large.")
    if not ids:
        messages.warning(request, "Tick the failed or rejected plans to retry first.")
        return redirect(back)
    source = ""
    if "since_day" in request.POST:  # from "Retry every plan that failed since …": say so
        since = RetrySinceForm(request.POST)
        if since.is_valid():
            local = utc_to_local(since.cleaned_data["since_utc"], since.cleaned_data["zone"])
            source = f"failed since {wall_text(local)}"
    try:
        result = services.plans_retry(plan_ids=ids, user=request.user, source=source)
    except services.PlanActionError as exc:
        messages.error(request, str(exc))
        return redirect(back)
    if result.retried:
        count = len(result.retried)
        noun = "plan" if count == 1 else "plans"
        messages.success(
            request,
            f"{count} {noun} will be sent to MINT again now, each with its own messageId.",
        )
    for pk, reason in result.skipped.items():
        messages.error(request, f"Plan {pk} was not retried: {reason}")
    return redirect(back)


@require_GET
def plans_retry_failed(request: HttpRequest) -> HttpResponse:
    """ "Retry every plan that failed since …": shows them first; the button retries exactly
    the plans shown."""
    require(request, SUBMIT_PERM)
    form = RetrySinceForm(request.GET or None)
    found = None
    if form.is_valid():
        found = selectors.plans_failed_since(since=form.cleaned_data["since_utc"])
    return render(
        request,
        "plans/plans_retry.html",
        {
            "form": form,
            "found": found,
            "limit": selectors.RETRY_SINCE_LIMIT,
            **abilities(request),
        },
    )


def _payload_preview(request: HttpRequest, plan: Plan) -> dict | None:
    """What a draft would send; messageId and timestamp exist only once it is submitted."""
    try:
        payload = services.plan_payload(
            plan=plan,
            message_id=uuid.UUID(int=0),
            timestamp=timezone.now(),
            status=plan.status_note or services.default_status_text(plan, request.user),
        )
    except ValueError:
        return None
    payload["messageId"] = ASSIGNED_AT_SUBMIT
    payload["timestamp"] = ASSIGNED_AT_SUBMIT
    return payload


def _status_context(request: HttpRequest, plan: Plan) -> dict:
    submissions = selectors.plan_submissions(plan=plan)
    current = next((s for s in submissions if s.revision == plan.revision), None)
    zone = plan.location.time_zone
    # Retries of one message are folded into one entry in both lists (worked out here from the
    # rows already read, not in the template).
    messages_to_mint = selectors.plan_messages(submissions=submissions, zone=zone)
    events = selectors.plan_events(plan=plan)
    context = {
        "plan": plan,
        "is_final": plan.is_final,
        "events": events,
        "history": selectors.plan_history(events=events, messages=messages_to_mint, zone=zone),
        "submissions": submissions,
        "messages_to_mint": messages_to_mint,
        "current_submission": current,
        "zone": zone,
        **abilities(request),
    }
    if plan.state == PlanState.CANCELLED:
        context["held_revision"] = services.plan_accepted_revision(plan)
        context["cancel_notice"] = settings.CANCEL_NOTICE
    return context


@require_GET
def plan_detail(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, VIEW_PERM)
    plan = plan_or_404(pk)
    context = _status_context(request, plan)
    current = context["current_submission"]
    if plan.state != PlanState.DRAFT and current is not None:
        context["payload"], context["payload_is_preview"] = current.body, False
    else:
        context["payload"], context["payload_is_preview"] = _payload_preview(request, plan), True
    return render(request, "plans/plan_detail.html", context)


@require_GET
def plan_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the detail page, re-fetched by ``plan_detail.js`` every 2 s."""
    require(request, VIEW_PERM)
    plan = plan_or_404(pk)
    return render(request, "plans/partials/_plan_status.html", _status_context(request, plan))
