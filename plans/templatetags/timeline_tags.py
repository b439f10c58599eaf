"""The site timeline drawn as inline SVG, and the same plans as table rows, in Python.

Positions come from ``plans.timeline``; here they become SVG attributes (no inline style: the
Content-Security-Policy forbids it). Drawn in Python for the reason ``plans_extras`` draws the
plan list's rows: a site with 200 vehicles has hundreds of bars, and as template code each
would cost several times its share of the page (measured with ``bench/pages.py``).

Every bar is a link to its plan whose name says everything the bar shows by colour, pattern
or position: vehicle, target, local times, state, warnings and conflicts.
"""

from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

from plans.models import PlanState
from plans.templatetags.plans_extras import _html, _plan_url, target_summary
from plans.timeline import BAR_PX, HOUR_PX, LANE_PX, NO_VEHICLE, WIDTH, Bar, SiteTimeline
from plans.timezones import wall_text

register = template.Library()

_STATE_LABELS = dict(PlanState.choices)
#: Besides its colour and pattern, each state's bar starts with a sign (the legend says which).
STATE_SIGNS = {
    PlanState.DRAFT: "✎",
    PlanState.QUEUED: "→",
    PlanState.SENDING: "→",
    PlanState.RETRYING: "↻",
    PlanState.ACCEPTED: "✓",
    PlanState.REJECTED: "✗",
    PlanState.FAILED: "✗",
    PlanState.WITHDRAWN: "⊘",
    PlanState.CANCELLED: "⊘",
}
AXIS_PX = 40
POINTS_PX = 22


def short_target(plan) -> str:
    """``160 kWh`` or ``220 km``: what fits on a bar."""
    if plan.target_kind == "charge":
        return f"{plan.expected_charge_kwh} kWh"
    return f"{plan.expected_range_km} km"


def bar_name(bar: Bar) -> str:
    """The bar's accessible name and tooltip: all it shows, in words."""
    plan = bar.plan
    state = _STATE_LABELS.get(plan.state, plan.state)
    name = (
        f"Plan {plan.pk}: {plan.vehicle_name or NO_VEHICLE}, {target_summary(plan)}, "
        f"{bar.when}, {state}"
    )
    for warning in plan.warnings:
        name += f"; ⚠ warning: {warning.get('text', '')}"
    if bar.conflicts:
        others = ", ".join(f"plan {pk}" for pk in bar.conflicts)
        name += f"; ⚠ conflict: overlaps {others} of the same vehicle"
    return name


#: The hatching of a draft: a pattern the page defines once (an attribute, since a url(#…) in
#: the stylesheet would point into the stylesheet).
_HATCH = ' fill="url(#tl-hatch)"'


def _bar(bar: Bar, url: str) -> str:
    """One bar as markup. Written with an f-string, escaping the one part that holds people's
    text (the name: vehicle, warnings) once: at 600 bars a page, ``format_html``'s per-value
    escaping was most of the page's time. The rest are numbers, the state (a checked choice),
    signs and the target's digits."""
    name = escape(bar_name(bar))
    plan = bar.plan
    flagged = bar.flagged
    classes = (" tl-flagged" if flagged else "") + (" tl-cut" if bar.cut_left else "")
    # A bar cut at the window's start says so with ◂ before its text.
    text = ("◂ " if bar.cut_left else "") + ("⚠ " if flagged else "")
    text += f"{STATE_SIGNS.get(plan.state, '')} {short_target(plan)}"
    return (
        f'<a href="{url}" class="tl-bar tl-{plan.state}{classes}" aria-label="{name}">'
        f"<title>{name}</title>"
        f'<svg x="{bar.x}" y="{bar.lane * LANE_PX + 3}" width="{bar.width}" height="{BAR_PX + 2}">'
        f'<rect x="1" y="1" width="{max(1, bar.width - 2)}" height="{BAR_PX}" rx="3"'
        f"{_HATCH if plan.state == PlanState.DRAFT else ''}></rect>"
        f'<text x="4" y="14">{text}</text></svg></a>'
    )


def _lines(tl: SiteTimeline, height: int) -> list[str]:
    lines = [
        f'<line class="tl-day-line" x1="{x}" x2="{x}" y1="0" y2="{height}"></line>'
        for x in tl.day_lines
    ]
    if tl.now_x is not None:
        lines.append(
            f'<line class="tl-now" x1="{tl.now_x}" x2="{tl.now_x}" y1="0" y2="{height}"></line>'
        )
    return lines


def _axis(tl: SiteTimeline) -> SafeString:
    parts = []
    for hour in tl.hours:
        parts.append(
            f'<line class="tl-tick" x1="{hour.x}" x2="{hour.x}" y1="14" y2="{AXIS_PX}"></line>'
        )
        parts.append(_html('<text class="tl-hour" x="{}" y="27">{}</text>', hour.x + 2, hour.label))
        top = " ".join(t for t in (hour.day, hour.zone) if t)
        # A day's name needs about three hours' room: none at the window's last hours.
        if top and hour.x < WIDTH - 3 * HOUR_PX:
            parts.append(_html('<text class="tl-dayname" x="{}" y="11">{}</text>', hour.x + 2, top))
    parts += _lines(tl, AXIS_PX)
    if tl.now_x is not None:
        parts.append(f'<text class="tl-now-label" x="{tl.now_x + 3}" y="38">now</text>')
    return _html(
        '<div class="tl-row tl-axis"><div class="tl-label">Vehicle</div>'
        '<svg class="tl-track" width="{}" height="{}" aria-hidden="true">{}</svg></div>',
        WIDTH,
        AXIS_PX,
        SafeString("".join(str(p) for p in parts)),
    )


def points_summary(tl: SiteTimeline) -> str:
    """The charge-point row in words, for its ``aria-label`` and the table's caption."""
    busiest, points = tl.busiest, tl.site.charge_points
    capacity = f"{points} charge points" if points else "charge points not set for this site"
    if busiest is None:
        return f"No plans at once in any hour; {capacity}."
    text = (
        f"Most plans at once per hour, against {capacity}: busiest {busiest.busiest} at "
        f"{wall_text(busiest.local)}"
    )
    if tl.over_hours:
        text += f"; more plans than charge points in {tl.over_hours} hour(s)"
    return text + "."


def _points(tl: SiteTimeline) -> SafeString:
    cells = []
    for hour in tl.hours:
        over = " tl-over" if hour.over else ""
        cells.append(
            f'<rect class="tl-cell{over}" x="{hour.x}" y="1" width="20" height="{POINTS_PX - 2}">'
            "</rect>"
        )
        if hour.busiest:
            cells.append(
                f'<text class="tl-count{over}" x="{hour.x + 10}" y="15">'
                f"{hour.busiest}{'!' if hour.over else ''}</text>"
            )
    points = tl.site.charge_points
    return _html(
        '<div class="tl-row tl-points"><div class="tl-label">In use <span class="muted">{}</span>'
        '</div><svg class="tl-track" width="{}" height="{}" role="img" aria-label="{}">{}</svg>'
        "</div>",
        f"of {points}" if points else "(no limit set)",
        WIDTH,
        POINTS_PX,
        points_summary(tl),
        SafeString("".join(cells)),
    )


@register.simple_tag
def timeline_chart(tl: SiteTimeline) -> SafeString:
    """The axis, the charge points in use per hour, then one row per vehicle."""
    plan_url = _plan_url()
    rows = [_axis(tl), _points(tl)]
    lines_of: dict[int, str] = {}
    for row in tl.rows:
        height, label = row.height, escape(row.label)
        label_class = "tl-label" if row.has_vehicle else "tl-label tl-label-none"
        lines = lines_of.get(height)
        if lines is None:
            lines = lines_of[height] = "".join(_lines(tl, height))
        if row.bars:
            count = len(row.bars)
            bars = "".join(_bar(bar, plan_url(bar.plan.pk)) for bar in row.bars)
            rows.append(
                f'<div class="tl-row"><div class="{label_class}">{label}</div>'
                f'<svg class="tl-track" width="{WIDTH}" height="{height}" role="group" '
                f'aria-label="{label}: {count} plan{"s" if count != 1 else ""}">{lines}{bars}'
                "</svg></div>"
            )
        else:
            # The words for a screen reader go inside the sticky label, so they stay within
            # the scrolling box.
            rows.append(
                f'<div class="tl-row"><div class="{label_class}">{label}'
                '<span class="visually-hidden">: no plans</span></div>'
                f'<svg class="tl-track" width="{WIDTH}" height="{height}" aria-hidden="true">'
                f"{lines}</svg></div>"
            )
    return mark_safe("\n".join(rows))  # noqa: S308 - people's text is escaped above


@register.simple_tag
def timeline_table_rows(tl: SiteTimeline) -> SafeString:
    """The chart's plans as table rows, in the chart's order: vehicle, then start (an f-string
    with people's text escaped, as ``_bar``)."""
    plan_url, rows = _plan_url(), []
    for bar in tl.bars:
        plan = bar.plan
        notes = [f"⚠ {w.get('text', '')}" for w in plan.warnings]
        if bar.conflicts:
            others = ", ".join(f"plan {pk}" for pk in bar.conflicts)
            notes.append(f"⚠ Overlaps {others} of the same vehicle.")
        rows.append(
            f'<tr class="tl-table-{plan.state}"><td>{escape(plan.vehicle_name or NO_VEHICLE)}</td>'
            f'<td class="num"><a href="{plan_url(plan.pk)}">{plan.pk}</a></td>'
            f"<td>{bar.when}</td><td>{target_summary(plan)}</td>"
            f"<td>{_STATE_LABELS.get(plan.state, plan.state)}</td>"
            f"<td>{escape(' '.join(notes)) or '—'}</td></tr>"
        )
    return mark_safe("\n".join(rows))  # noqa: S308 - people's text is escaped above


@register.simple_tag
def timeline_hour_rows(tl: SiteTimeline) -> SafeString:
    """The busiest moment of each hour against the site's charge points, as table rows."""
    points = tl.site.charge_points
    rows = []
    for hour in tl.hours:
        note = "more plans than charge points" if hour.over else ""
        rows.append(
            _html(
                '<tr{}><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>',
                SafeString(' class="tl-table-over"') if hour.over else SafeString(),
                wall_text(hour.local),
                hour.busiest,
                points or "—",
                note,
            )
        )
    return SafeString("\n".join(rows))
