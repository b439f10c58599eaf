"""Template filters that show times the way a dispatcher reads them: on the site's clock.

Every time in the portal is stored in UTC; a page shows it in the site's IANA zone with the
zone's abbreviation ("Tue 25 Nov 14:00 CET") and puts the UTC instant beside it or in a title.
Django's ``date`` filter would convert back to the project zone, so these format directly.
"""

import html
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from plans.models import PlanState
from plans.selectors import PlanRow
from plans.timezones import day_text, utc_to_local, wall_text

register = template.Library()


def _local(value: datetime, zone_name: str) -> datetime:
    try:
        return utc_to_local(value, zone_name)
    except (ValueError, KeyError):
        return value.astimezone(UTC)


@register.filter
def local_in(value: datetime | None, zone_name: str) -> str:
    """``Tue 25 Nov 14:00 CET``: the instant on the clock of ``zone_name``."""
    if not value:
        return ""
    return wall_text(_local(value, zone_name))


@register.filter
def local_long(value: datetime | None, zone_name: str) -> str:
    """``Tue 25 Nov 2025, 14:00 CET`` for the detail page, where the year matters."""
    if not value:
        return ""
    local = _local(value, zone_name)
    return f"{day_text(local)} {local.year}, {local:%H:%M} {local.tzname()}"


@register.filter
def local_seconds(value: datetime | None, zone_name: str) -> str:
    """``25 Nov 14:00:05 CET``: history and attempts, where seconds tell the story."""
    if not value:
        return ""
    local = _local(value, zone_name)
    return f"{local.day} {local:%b %H:%M:%S} {local.tzname()}"


@register.filter
def utc(value: datetime | None) -> str:
    """``2025-11-25 13:00 UTC``."""
    if not value:
        return ""
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


@register.filter
def utc_seconds(value: datetime | None) -> str:
    if not value:
        return ""
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@register.filter
def zone_abbr(value: datetime | None, zone_name: str) -> str:
    """The zone's abbreviation at that instant (``CET`` in winter, ``CEST`` in summer)."""
    if not value:
        return ""
    return _local(value, zone_name).tzname() or zone_name


def window_local(start: datetime, end: datetime, zone: str) -> str:
    """``Tue 25 Nov 14:00 – 18:00 CET``; both days and zones spelled out when they differ, and
    the year (``Fri 1 Jan 2027``) when the window is not all in this one."""
    start = _local(start, zone)
    end = _local(end, zone)
    year = start.year != end.year or end.year != timezone.now().year
    first, last = day_text(start, year=year), day_text(end, year=year)
    if start.date() == end.date() and start.tzname() == end.tzname():
        return f"{first} {start:%H:%M} – {end:%H:%M} {end.tzname()}"
    if start.tzname() == end.tzname():
        return f"{first} {start:%H:%M} – {last} {end:%H:%M} {end.tzname()}"
    return f"{first} {start:%H:%M} {start.tzname()} – {last} {end:%H:%M} {end.tzname()}"


def window_utc(start: datetime, end: datetime) -> str:
    """``2025-11-25 13:00 – 17:00 UTC`` (with the end's date when it differs)."""
    start = start.astimezone(UTC)
    end = end.astimezone(UTC)
    end_text = f"{end:%H:%M}" if start.date() == end.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M} – {end_text} UTC"


@register.filter
def local_window(plan) -> str:
    return window_local(plan.scheduled_start, plan.scheduled_end, plan.location.time_zone)


@register.filter
def utc_window(plan) -> str:
    return window_utc(plan.scheduled_start, plan.scheduled_end)


def _number(value: Decimal | float | int) -> str:
    """``18.5`` rather than ``18.50``; ``46`` rather than ``46.00``."""
    text = f"{Decimal(value).quantize(Decimal('0.01')):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@register.filter
def target_summary(plan) -> str:
    """``250 km range at 18.5 kWh/100 km``, ``250 km range`` or ``40 kWh charge``."""
    if plan.target_kind == "charge":
        return f"{plan.expected_charge_kwh} kWh charge"
    text = f"{plan.expected_range_km} km range"
    if plan.average_consumption:
        text += f" at {_number(plan.average_consumption)} kWh/100 km"
    return text


@register.filter
def kwh(value) -> str:
    if value is None:
        return ""
    return f"{_number(value)} kWh"


@register.filter
def pretty_json(value) -> str:
    """A JSON document (dict, or the exact string sent) indented for reading."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False)


@register.filter
def duration_ms(value: int | None) -> str:
    if value is None:
        return ""
    if value < 1000:
        return f"{value} ms"
    return f"{value / 1000:.1f} s"


@register.filter
def duration_words(value: timedelta | None) -> str:
    """``15 minutes``, ``1 hour``, ``2 hours 30 minutes``: a configured span in plain words."""
    if not value:
        return ""
    hours, minutes = divmod(max(1, round(value.total_seconds() / 60)), 60)
    words = [
        f"{n} {unit}{'' if n == 1 else 's'}"
        for n, unit in ((hours, "hour"), (minutes, "minute"))
        if n
    ]
    return " ".join(words)


@register.filter
def starts_in(value: datetime | None) -> str:
    """``in 2 h 15 min`` / ``in 5 min`` / ``now``: how long until the vehicle arrives."""
    if not value:
        return ""
    minutes = int((value - timezone.now()).total_seconds() // 60)
    if minutes <= 0:
        return "now"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"in {minutes} min"
    return f"in {hours} h {minutes:02d} min" if minutes else f"in {hours} h"


@register.filter
def ago(value: datetime | None) -> str:
    """``12 s ago``, ``4 min ago``, ``3 h ago``: how fresh a check or heartbeat is."""
    if not value:
        return "never"
    seconds = max(0, int((timezone.now() - value).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


@register.filter
def percent_floor(share: float | None) -> str:
    """``99.7%`` as ``99%``: rounded down, so a day with an outage never reads 100%."""
    if share is None:
        return ""
    # The epsilon: 0.29 * 100 is 28.999… in floating point.
    return f"{math.floor(share * 100 + 1e-9) if share < 1 else 100}%"


@register.simple_tag
def health_sparkline(hourly: list) -> str:
    """24 bars, one per hour, oldest left: height and colour say how much of it MINT was up.

    Server-rendered SVG (no script, no inline style), with a text alternative for screen readers.
    """
    width, height, gap = 3, 16, 1
    bars = []
    described = 0
    for start, up, known in hourly or []:
        x = len(bars) * (width + gap)
        if not known:
            bars.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="2" class="spark-none"></rect>',
                    x,
                    height - 2,
                    width,
                )
            )
            continue
        described += 1
        share = up / known
        bar = max(2, round(share * height))
        css = "spark-up" if share >= 0.99 else ("spark-partial" if share > 0 else "spark-down")
        bars.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" class="{}">'
                "<title>{}: up {} of the time checked</title></rect>",
                x,
                height - bar,
                width,
                bar,
                css,
                start[11:16] + " UTC",
                percent_floor(share),
            )
        )
    total_width = max(1, len(bars) * (width + gap) - gap)
    label = (
        "MINT uptime per hour over the last 24 hours"
        if described
        else "No MINT health checks in the last 24 hours"
    )
    return format_html(
        '<svg class="sparkline" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}">{}</svg>',
        label,
        total_width,
        height,
        total_width,
        height,
        format_html_join("", "{}", ((bar,) for bar in bars)),
    )


# Table rows of the plan list and the dashboard, drawn in Python the way Django's admin draws its
# changelist rows (``items_for_result``). Measured with bench/pages.py: at 50 rows, a row written
# in template language cost about 95 µs, nearly four times the rest of its work, so a page of
# plans took twice as long as an empty one. The markup stays in one string per table.

_STATE_LABELS = dict(PlanState.choices)


def _html(markup: str, *values: object) -> SafeString:
    """``format_html`` with the escaping done by ``html.escape``, which Django's ``escape`` wraps
    (one call per value, fifteen per row, where the wrapper's lazy-string check was most of the
    cost). Pieces that are already HTML (anything with ``__html__``) go in as they are."""
    escaped = (v.__html__() if hasattr(v, "__html__") else html.escape(str(v)) for v in values)
    return mark_safe(markup.format(*escaped))  # noqa: S308 - every value is escaped or SafeString


@register.simple_tag
def state_badge(state: str, label: str = "") -> SafeString:
    """A plan's or a message's state as a coloured badge (``label``: the state's display name,
    a plan state's own label by default)."""
    return _html(
        '<span class="badge badge-{}"><span class="badge-dot" aria-hidden="true"></span>{}</span>',
        state,
        label or _STATE_LABELS.get(state, state),
    )


def _plan_url() -> Callable[[int], str]:
    """Builds ``/plans/<pk>/`` for a page of rows at the price of one ``reverse`` (a third of a
    row's cost when done per row): only the pk differs between plans."""
    prefix, _, suffix = reverse("plans:plan_detail", args=[0]).rpartition("0")
    return lambda pk: f"{prefix}{pk}{suffix}"


_LIST_ROW = (
    "<tr>{}"
    '<td class="num"><a href="{}">{}</a></td>'
    "<td>{}</td>"
    '<td>{}<br><span class="muted small">{}</span></td>'
    '<td><a href="{}" title="{}" class="row-link">{}</a><br>'
    '<span class="muted small">{}</span></td>'
    "<td>{}{}</td>"
    "<td>{}</td>"
    '<td class="num">{}</td>'
    "</tr>"
)
_NO_VEHICLE = SafeString('<span class="muted">—</span>')
_WARNING_LINE = '<br><span class="row-warning">⚠ {}{}</span>'


def _vehicle_cell(row: PlanRow) -> object:
    return row.vehicle_name if row.vehicle_name else _NO_VEHICLE


def _warning_line(row: PlanRow) -> SafeString:
    """The guards' first warning in a plain sentence, and how many more there are."""
    if not row.warnings:
        return SafeString()
    more = len(row.warnings) - 1
    return _html(_WARNING_LINE, row.warnings[0]["text"], f" (+{more} more)" if more else "")


_TICK_CELL = (
    '<td class="col-check"><input type="checkbox" name="{}" value="{}" id="select-{}" '
    'aria-label="Select plan {}"></td>'
)
#: What a tick box on a row does: drafts are submitted, failed and rejected plans retried.
_TICK_NAMES = {PlanState.DRAFT: "plan", PlanState.FAILED: "retry", PlanState.REJECTED: "retry"}
_EMPTY_TICK_CELL = SafeString('<td class="col-check"></td>')


@register.simple_tag
def plan_list_rows(rows: list[PlanRow], can_submit: bool) -> SafeString:
    """The plan list's rows: a tick box for drafts, failed and rejected plans (for those who
    may submit), plan, site,
    window on the site's clock with UTC beneath, target, state, revision."""
    html_rows, plan_url = [], _plan_url()
    for row in rows:
        url = plan_url(row.pk)
        utc_text = window_utc(row.scheduled_start, row.scheduled_end)
        tick = SafeString()
        if can_submit:
            tick = _EMPTY_TICK_CELL
            if row.state in _TICK_NAMES:
                tick = _html(_TICK_CELL, _TICK_NAMES[row.state], row.pk, row.pk, row.pk)
        html_rows.append(
            _html(
                _LIST_ROW,
                tick,
                url,
                row.pk,
                _vehicle_cell(row),
                row.site_name,
                row.site_code,
                url,
                utc_text,
                window_local(row.scheduled_start, row.scheduled_end, row.time_zone),
                utc_text,
                target_summary(row),
                _warning_line(row),
                state_badge(row.state),
                row.revision,
            )
        )
    return SafeString("\n".join(html_rows))


_SOON_ROW = (
    "<tr>"
    '<td class="num"><a href="{}">{}</a></td>'
    "<td>{}</td>"
    "<td>{}</td>"
    '<td><a href="{}" title="{}">{}</a></td>'
    '<td class="nowrap">{}</td>'
    "<td>{}{}</td>"
    "<td>{}</td>"
    "</tr>"
)


@register.simple_tag
def plan_soon_rows(rows: list[PlanRow]) -> SafeString:
    """The dashboard's "Starting in the next 24 hours" rows: plan, site, window on the site's
    clock (UTC in the title), time to start, target, state."""
    html_rows, plan_url = [], _plan_url()
    for row in rows:
        url = plan_url(row.pk)
        html_rows.append(
            _html(
                _SOON_ROW,
                url,
                row.pk,
                _vehicle_cell(row),
                row.site_name,
                url,
                window_utc(row.scheduled_start, row.scheduled_end),
                window_local(row.scheduled_start, row.scheduled_end, row.time_zone),
                starts_in(row.scheduled_start),
                target_summary(row),
                _warning_line(row),
                state_badge(row.state),
            )
        )
    return SafeString("\n".join(html_rows))
