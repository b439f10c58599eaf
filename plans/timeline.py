"""The site timeline's layout: which row each plan goes in and where its bar sits, in pixels.

The axis is real time: 48 hours from the window's start, ``HOUR_PX`` pixels an hour, so a
bar's length is the plan's true length even across a daylight-saving change. The hour marks
are written on the site's clock (``18``, ``19`` …), so on a spring-forward night the marks read
``01``, ``03`` and on an autumn night ``02``, ``02`` with the zone's abbreviation written where
it changes. The pages draw these figures as SVG attributes (the Content-Security-Policy allows
no inline style, and rectangles need no chart library).

Nothing here reads the database: the selectors hand over the plans (``PlanRow``) and the
site's home vehicles, and this module only arranges them.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from plans.models import CALLED_OFF_STATES
from plans.selectors import PlanRow
from plans.templatetags.plans_extras import window_local
from plans.timezones import day_text, utc_to_local

HOURS = 48
HOUR_PX = 20
WIDTH = HOURS * HOUR_PX
#: Height of one lane of bars in a row; overlapping plans in one row take a lane each.
LANE_PX = 26
BAR_PX = 20
#: The row of plans that name no vehicle.
NO_VEHICLE = "no vehicle"


def day_start(day: date, zone_name: str) -> datetime:
    """The first instant of ``day`` on the site's clock, in UTC.

    Where midnight falls in a spring-forward gap the day starts at the jump (the earlier
    offset, which is what ``fold=0`` means), and where it happens twice, at the first one.
    """
    return datetime.combine(day, time(), tzinfo=ZoneInfo(zone_name)).astimezone(UTC)


def hour_start(instant: datetime, zone_name: str) -> datetime:
    """The start of the hour on the site's clock that ``instant`` falls in, in UTC."""
    local = utc_to_local(instant, zone_name)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Hour:
    """One hour of the axis and the busiest moment at the site within it."""

    start: datetime
    local: datetime
    x: int
    #: ``18``, or ``02:30`` where the zone is not on a whole-hour offset.
    label: str
    #: ``Tue 1 Dec`` at the window's first hour and at each midnight on the site's clock.
    day: str
    #: The zone's abbreviation where it changes at this hour (and at the first hour).
    zone: str
    busiest: int
    over: bool

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=1)


@dataclass(slots=True)
class Bar:
    plan: PlanRow
    x: int
    width: int
    #: Which lane of its row: 0 unless it overlaps a bar before it (set by ``_stack``).
    lane: int
    #: The plan started before the window, or ends after it: its bar is cut at the edge.
    cut_left: bool
    cut_right: bool
    #: Plans of the same vehicle whose window overlaps this one (the guards refuse them, but a
    #: race or an import from before the guards can leave some).
    conflicts: tuple[int, ...]
    #: ``Tue 1 Dec 18:00 – Wed 2 Dec 05:00 CET``: the window on the site's clock.
    when: str

    @property
    def called_off(self) -> bool:
        return self.plan.state in CALLED_OFF_STATES

    @property
    def flagged(self) -> bool:
        return bool(self.plan.warnings or self.conflicts)


@dataclass(slots=True)
class Row:
    label: str
    has_vehicle: bool
    bars: list[Bar] = field(default_factory=list)
    lanes: int = 1

    @property
    def height(self) -> int:
        return self.lanes * LANE_PX + 4


@dataclass(frozen=True, slots=True)
class TimelineSite:
    """What the timeline needs of a site (a ``Location``, or the same fields)."""

    pk: int
    name: str
    code: str
    time_zone: str
    charge_points: int | None


@dataclass(slots=True)
class SiteTimeline:
    site: TimelineSite
    start: datetime
    end: datetime
    hours: list[Hour]
    rows: list[Row]
    now_x: int | None
    #: Midnights on the site's clock inside the window, as x positions.
    day_lines: list[int]

    @property
    def bars(self) -> list[Bar]:
        """Every bar in the order the rows show them (the table lists them so too)."""
        return [bar for row in self.rows for bar in row.bars]

    @property
    def busiest(self) -> Hour | None:
        hours = [h for h in self.hours if h.busiest]
        return max(hours, key=lambda h: h.busiest) if hours else None

    @property
    def over_hours(self) -> int:
        return sum(h.over for h in self.hours)

    @property
    def zones(self) -> str:
        """``CET``, or ``CET / CEST`` when the window spans a change."""
        names = []
        for hour in self.hours:
            if hour.local.tzname() not in names:
                names.append(hour.local.tzname())
        return " / ".join(names)


def window_start(*, day: date | None, now: datetime, zone_name: str) -> datetime:
    """Midnight of ``day`` on the site's clock, or without a day the current hour there."""
    return day_start(day, zone_name) if day else hour_start(now, zone_name)


def _natural(name: str) -> tuple:
    """``bus 2`` before ``bus 10``."""
    return tuple(int(p) if p.isdigit() else p.casefold() for p in re.split(r"(\d+)", name))


def _x(instant: datetime, start: datetime) -> int:
    return round((instant - start).total_seconds() / 3600 * HOUR_PX)


def _hours(start: datetime, zone_name: str, plans: list[PlanRow], points: int | None) -> list[Hour]:
    """The window's hours with the most plans at once within each (called-off plans aside).

    One sweep over the plans' starts and ends; at one instant an end comes before a start, so
    windows that only touch (one leaves as the next arrives) are not counted together, as the
    guards count them.
    """
    end = start + timedelta(hours=HOURS)
    events = []
    for plan in plans:
        if plan.state in CALLED_OFF_STATES:
            continue
        events.append((max(plan.scheduled_start, start), 1))
        events.append((min(plan.scheduled_end, end), -1))
    events.sort()  # by instant, and at one instant -1 (an end) before +1 (a start)
    hours, index, current, previous_zone = [], 0, 0, None
    for i in range(HOURS):
        begins = start + timedelta(hours=i)
        ends = begins + timedelta(hours=1)
        while index < len(events) and events[index][0] <= begins:
            current += events[index][1]
            index += 1
        most = current
        while index < len(events) and events[index][0] < ends:
            current += events[index][1]
            most = max(most, current)
            index += 1
        local = utc_to_local(begins, zone_name)
        zone = local.tzname() or zone_name
        hours.append(
            Hour(
                start=begins,
                local=local,
                x=i * HOUR_PX,
                label=f"{local:%H}" if local.minute == 0 else f"{local:%H:%M}",
                day=day_text(local) if i == 0 or (local.hour == 0 and local.minute == 0) else "",
                zone=zone if zone != previous_zone else "",
                busiest=most,
                over=bool(points) and most > points,
            )
        )
        previous_zone = zone
    return hours


def _conflicts(plans: list[PlanRow]) -> dict[int, tuple[int, ...]]:
    """For each live plan, the live plans of the same vehicle whose windows overlap it."""
    by_vehicle: dict[str, list[PlanRow]] = {}
    for plan in plans:
        if plan.vehicle_name and plan.state not in CALLED_OFF_STATES:
            by_vehicle.setdefault(plan.vehicle_name, []).append(plan)
    found: dict[int, list[int]] = {}
    for stays in by_vehicle.values():
        stays.sort(key=lambda p: (p.scheduled_start, p.pk))
        for i, plan in enumerate(stays):
            for other in stays[i + 1 :]:
                if other.scheduled_start >= plan.scheduled_end:
                    break
                found.setdefault(plan.pk, []).append(other.pk)
                found.setdefault(other.pk, []).append(plan.pk)
    return {pk: tuple(sorted(others)) for pk, others in found.items()}


def timeline_layout(
    *,
    site: TimelineSite,
    start: datetime,
    plans: list[PlanRow],
    vehicles: list[str],
    now: datetime,
) -> SiteTimeline:
    """Lay out one site's plans over the 48 hours from ``start``.

    One row per vehicle (``vehicles`` always get one, planned or not; any other vehicle with a
    plan here gets one too), sorted by name as people count (bus 2 before bus 10), then one
    row for plans without a vehicle if there are any. In a row, bars that overlap go in lanes
    one under the other, so none hides another.
    """
    end = start + timedelta(hours=HOURS)
    conflicts = _conflicts(plans)
    # A depot's vehicles share windows (schedules: every bus arrives at 18:30), so each window
    # is written once.
    whens: dict[tuple[datetime, datetime], str] = {}
    rows = {name: Row(label=name, has_vehicle=True) for name in vehicles}
    loose = Row(label=NO_VEHICLE, has_vehicle=False)
    origin, wide = start.timestamp(), HOUR_PX / 3600
    for plan in plans:
        row = loose
        if plan.vehicle_name:
            row = rows.get(plan.vehicle_name)
            if row is None:
                row = rows[plan.vehicle_name] = Row(label=plan.vehicle_name, has_vehicle=True)
        begins, ends = plan.scheduled_start, plan.scheduled_end
        x = max(0, round((begins.timestamp() - origin) * wide))
        right = min(WIDTH, round((ends.timestamp() - origin) * wide))
        when = whens.get((begins, ends))
        if when is None:
            when = whens[begins, ends] = window_local(begins, ends, site.time_zone)
        row.bars.append(
            Bar(
                plan,
                x,
                max(3, right - x),
                0,
                begins < start,
                ends > end,
                conflicts.get(plan.pk, ()),
                when,
            )
        )
    ordered = [rows[name] for name in sorted(rows, key=_natural)]
    if loose.bars:
        ordered.append(loose)
    for row in ordered:
        _stack(row)
    hours = _hours(start, site.time_zone, plans, site.charge_points)
    return SiteTimeline(
        site=site,
        start=start,
        end=end,
        hours=hours,
        rows=ordered,
        now_x=_x(now, start) if start <= now < end else None,
        day_lines=[h.x for h in hours if h.x and h.local.hour == 0 and h.local.minute == 0],
    )


def _stack(row: Row) -> None:
    """Give each bar the first lane free at its start (the plans come sorted by start)."""
    lane_ends: list[int] = []
    for bar in row.bars:
        lane = next((i for i, right in enumerate(lane_ends) if right <= bar.x), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(0)
        lane_ends[lane] = bar.x + bar.width
        bar.lane = lane
    row.lanes = max(1, len(lane_ends))
