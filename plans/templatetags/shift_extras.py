"""The handover page's rows, drawn in Python as the plan list's are (see ``plans_extras``): a
page of 50 costs about as much as the rest of the page instead of twice it."""

from datetime import datetime

from django import template
from django.conf import settings
from django.utils.safestring import SafeString

from plans.models import PlanState
from plans.selectors import ShiftRow
from plans.templatetags.plans_extras import (
    _html,
    _plan_url,
    _vehicle_cell,
    _warning_line,
    local_in,
    starts_in,
    state_badge,
    target_summary,
    window_local,
    window_utc,
)

register = template.Library()

_ROW = (
    '<tr class="shift-row shift-row-{}">{}'
    '<td class="num"><a href="{}">{}</a></td>'
    "<td>{}</td>"
    '<td><span title="{}">{}</span></td>'
    '<td class="nowrap">{}</td>'
    "<td>{}</td>"
    "<td>{}{}{}</td>"
    "</tr>"
)
_TICK = (
    '<td class="col-check"><input type="checkbox" name="{}" value="{}" id="shift-{}" '
    'aria-label="Select plan {}"></td>'
)
_NO_TICK = SafeString('<td class="col-check"></td>')
_DETAIL = '<br><span class="shift-detail small">{}</span>'
#: Long texts (a network error, MINT's message) are cut here; the plan page has them whole.
_DETAIL_LENGTH = 140


def _when(row: ShiftRow, now: datetime) -> str:
    plan = row.plan
    if plan.scheduled_start <= now:
        return f"running, ends {starts_in(plan.scheduled_end)}"
    return f"starts {starts_in(plan.scheduled_start)}"


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_LENGTH else text[: _DETAIL_LENGTH - 1] + "…"


def _detail(row: ShiftRow) -> str:
    """What the state means for this plan now, in a line: why it needs someone, or when the
    next attempt goes."""
    plan, state = row.plan, row.plan.state
    if state == PlanState.RETRYING and row.next_attempt_at:
        return f"Next attempt {local_in(row.next_attempt_at, plan.time_zone)}"
    if state == PlanState.FAILED:
        return _cut(f"Not delivered: {row.last_error or 'MINT did not answer in time.'}")
    if state == PlanState.REJECTED:
        said = "; ".join(row.mint_messages) or "no reason given"
        return _cut(f"MINT refused it: {said}")
    if state == PlanState.DRAFT:
        return "Not sent to MINT yet."
    if state == PlanState.CANCELLED:
        return _cut(f"Cancelled here, but MINT still holds it: {settings.CANCEL_NOTICE}")
    return ""


def _tick(row: ShiftRow, can_submit: bool) -> SafeString:
    if not can_submit:
        return SafeString()
    name = {
        PlanState.DRAFT: "plan",
        PlanState.FAILED: "retry",
        PlanState.REJECTED: "retry",
    }.get(row.plan.state)
    if name is None:
        return _NO_TICK
    return _html(_TICK, name, row.plan.pk, row.plan.pk, row.plan.pk)


def shift_rows(rows: list[ShiftRow], now: datetime, can_submit: bool) -> SafeString:
    """A group's rows: tick box (drafts to submit, failed and rejected plans to retry), plan,
    vehicle, window on the site's clock (UTC in the title), when, target, state and what it
    means now."""
    html_rows, plan_url = [], _plan_url()
    for row in rows:
        plan = row.plan
        detail = _detail(row)
        html_rows.append(
            _html(
                _ROW,
                row.group,
                _tick(row, can_submit),
                plan_url(plan.pk),
                plan.pk,
                _vehicle_cell(plan),
                window_utc(plan.scheduled_start, plan.scheduled_end),
                window_local(plan.scheduled_start, plan.scheduled_end, plan.time_zone),
                _when(row, now),
                target_summary(plan),
                state_badge(plan.state),
                _html(_DETAIL, detail) if detail else SafeString(),
                _warning_line(plan),
            )
        )
    return SafeString("\n".join(html_rows))


_SECTION = (
    '<section class="shift-site card" id="site-{}" aria-labelledby="site-{}-heading">'
    '<h2 id="site-{}-heading">{} <span class="muted">· {}{}</span></h2>'
    '<p class="shift-site-facts">Site clock now <strong>{}</strong> ({}) · next {} hours · {}</p>'
    "{}</section>"
)
_GROUP = (
    '<h3 class="shift-group shift-group-{}">{} <span class="muted">({})</span></h3>'
    '<div class="table-wrap"><table class="table shift-table">'
    '<caption class="visually-hidden">{}: {}, soonest first</caption>'
    "<thead><tr>{}"
    '<th scope="col" class="num col-plan">Plan</th>'
    '<th scope="col" class="col-vehicle">Vehicle</th>'
    '<th scope="col" class="col-when">When (site time)</th>'
    '<th scope="col" class="col-starts">Starts</th>'
    '<th scope="col" class="col-target">Target</th>'
    '<th scope="col" class="col-state">State</th>'
    "</tr></thead><tbody>{}</tbody></table></div>"
)
_TICK_HEAD = SafeString(
    '<th scope="col" class="col-check"><span class="visually-hidden">Select</span></th>'
)
_CONTINUED = SafeString(" · continued")


@register.simple_tag
def shift_sections(sections: list, hours: int, now: datetime, can_submit: bool) -> SafeString:
    """Each site on this page: its name, clock now and counts, then a table per group."""
    tick_head = _TICK_HEAD if can_submit else SafeString()
    html_sections = []
    for section in sections:
        site = section.site
        groups = SafeString(
            "".join(
                _html(
                    _GROUP,
                    group.key,
                    group.label,
                    group.count,
                    site.name,
                    group.label.lower(),
                    tick_head,
                    shift_rows(group.rows, now, can_submit),
                )
                for group in section.groups
            )
        )
        html_sections.append(
            _html(
                _SECTION,
                site.pk,
                site.pk,
                site.pk,
                site.name,
                site.code,
                _CONTINUED if section.continued else SafeString(),
                section.clock,
                site.time_zone,
                hours,
                section.facts,
                groups,
            )
        )
    return SafeString("\n".join(html_sections))


_HIDDEN = '<input type="hidden" name="{}" value="{}">'


@register.simple_tag
def hidden_ids(name: str, ids: list[int]) -> SafeString:
    """The plans a bulk button acts on, as hidden inputs (every one in the window)."""
    return SafeString("".join(_html(_HIDDEN, name, pk) for pk in ids))
