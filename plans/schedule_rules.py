"""When a weekly schedule's occurrences happen: site wall-clock times → UTC, day by day.

No database here: the schedule form's preview, the schedule page and the worker's materialising
all work out occurrences with ``occurrences``, so they can never disagree.

**The daylight-saving rule** (one rule, stated on the pages as ``DST_RULE``): an arrival or
departure time that the clocks skip (spring forward) is moved later by the length of the jump,
so 02:30 on that night becomes 03:30; a time that happens twice (fall back) is the first of the
two, still in summer time. This is Python's ``fold=0`` and iCalendar's (RFC 5545) rule. Every
occurrence it touches, and every stay that a clock change makes shorter or longer than on other
days, carries a plain note, so the preview flags it instead of silently shifting it.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from plans.timezones import day_text, span_text

DST_RULE = (
    "A time the clocks skip is moved later by the jump (02:30 becomes 03:30); a time that "
    "happens twice is the first one, still in summer time."
)


@dataclass(frozen=True)
class ScheduleSpec:
    """What decides a schedule's occurrences (a saved ``Schedule``, or the form being typed)."""

    weekdays: tuple[int, ...]  # ISO: Monday = 1
    arrive_at: time
    depart_at: time
    depart_day_offset: int
    time_zone: str
    valid_from: date
    valid_until: date | None
    #: (first day, last day, note) of each skip or pause
    exceptions: tuple[tuple[date, date, str], ...] = ()

    @property
    def wall_length(self) -> timedelta:
        """The stay as the site's clock reads it on a day with no clock change."""
        arrive = datetime.combine(date(2001, 1, 1), self.arrive_at)
        depart = datetime.combine(date(2001, 1, 1 + self.depart_day_offset), self.depart_at)
        return depart - arrive


@dataclass
class Occurrence:
    day: date
    start: datetime  # UTC
    end: datetime  # UTC
    start_local: datetime  # aware, in the site's zone
    end_local: datetime
    dst_notes: list[str] = field(default_factory=list)
    #: Why the schedule makes no plan this day (a skip or a pause), or "".
    excepted: str = ""

    @property
    def impossible(self) -> bool:
        """A short stay on a spring-forward night can be left with no time at all (02:30 →
        03:10 becomes 03:30 → 03:10): that day cannot have a plan."""
        return self.end <= self.start


def _resolve(wall: datetime, zone: ZoneInfo, what: str) -> tuple[datetime, str]:
    """The instant of a wall-clock time by the DST rule, with a note when the rule decided."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    instant = first.astimezone(UTC)
    if first.utcoffset() == second.utcoffset():
        return instant, ""
    local = instant.astimezone(zone)
    if local.replace(tzinfo=None) != wall:
        return instant, (
            f"{what} {wall:%H:%M} does not exist on {day_text(wall)} (the clocks "
            f"jump forward): {local:%H:%M} {local.tzname()}."
        )
    return instant, (
        f"{what} {wall:%H:%M} happens twice on {day_text(wall)} (the clocks go "
        f"back): the first one, {local:%H:%M} {local.tzname()}."
    )


def occurrence_on(spec: ScheduleSpec, day: date) -> Occurrence:
    """The occurrence arriving on ``day`` (whether or not ``day`` is one of its weekdays)."""
    zone = ZoneInfo(spec.time_zone)
    arrive = datetime.combine(day, spec.arrive_at)
    depart = datetime.combine(day + timedelta(days=spec.depart_day_offset), spec.depart_at)
    start, start_note = _resolve(arrive, zone, "Arrival")
    end, end_note = _resolve(depart, zone, "Departure")
    notes = [n for n in (start_note, end_note) if n]
    length = end - start
    if length <= timedelta(0):
        notes.append("The clocks jump forward during this stay and leave no time: no plan.")
    if length != spec.wall_length and not notes:
        notes.append(
            f"The clocks change during this stay: it lasts {span_text(length)}, not "
            f"{span_text(spec.wall_length)}."
        )
    excepted = next((note for first, last, note in spec.exceptions if first <= day <= last), "")
    return Occurrence(
        day=day,
        start=start,
        end=end,
        start_local=start.astimezone(zone),
        end_local=end.astimezone(zone),
        dst_notes=notes,
        excepted=excepted,
    )


def occurrence_days(spec: ScheduleSpec, first: date, last: date) -> Iterable[date]:
    """The arrival days from ``first`` to ``last`` (both included) within the schedule's period."""
    day = max(first, spec.valid_from)
    if spec.valid_until is not None:
        last = min(last, spec.valid_until)
    weekdays = set(spec.weekdays)
    while day <= last:
        if day.isoweekday() in weekdays:
            yield day
        day += timedelta(days=1)


def occurrences(
    spec: ScheduleSpec, first: date, last: date, *, include_excepted: bool = False
) -> list[Occurrence]:
    """The occurrences arriving from ``first`` to ``last``, skips and pauses left out unless
    ``include_excepted`` (the preview shows them, marked)."""
    found = (occurrence_on(spec, day) for day in occurrence_days(spec, first, last))
    return [o for o in found if include_excepted or not o.excepted]


def next_occurrences(
    spec: ScheduleSpec, *, after: datetime, count: int = 14, include_excepted: bool = True
) -> list[Occurrence]:
    """The next ``count`` occurrences that have not ended by ``after``."""
    zone = ZoneInfo(spec.time_zone)
    day = max(spec.valid_from, after.astimezone(zone).date() - timedelta(days=8))
    found: list[Occurrence] = []
    # At most a year ahead: a schedule whose days never come (an ended one) yields nothing.
    horizon = day + timedelta(days=366)
    while len(found) < count and day <= horizon:
        chunk_end = day + timedelta(days=31)
        for occurrence in occurrences(spec, day, chunk_end, include_excepted=include_excepted):
            if occurrence.end > after and len(found) < count:
                found.append(occurrence)
        day = chunk_end + timedelta(days=1)
    return found
