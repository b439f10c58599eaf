"""Site-local wall-clock times ↔ UTC, refusing to guess across DST changes.

A dispatcher types times as they read on the site's clock. Twice a year such a time is either
missing (spring forward) or happens twice (fall back); we reject both with a plain message
instead of silently picking one.
"""

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


class LocalTimeError(ValueError):
    """A wall-clock time that does not name exactly one instant in the zone."""


def is_valid_zone(name: str) -> bool:
    if not name or name not in _zone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@cache
def _zone_names() -> frozenset[str]:
    """Read once: the tz database does not change while the portal runs."""
    return frozenset(available_timezones())


def local_to_utc(wall: datetime, zone_name: str) -> datetime:
    """Return the UTC instant of the naive wall-clock time ``wall`` in ``zone_name``."""
    zone = ZoneInfo(zone_name)
    naive = wall.replace(tzinfo=None)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        try:
            return first.astimezone(UTC)
        except OverflowError:  # the first or last day the calendar has, in a zone off UTC
            raise LocalTimeError(f"{naive.isoformat(' ', 'minutes')} is out of range.") from None
    # The two folds disagree: the time is in a gap or an overlap. A time in a gap does not
    # survive the round trip through UTC.
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise LocalTimeError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone_name}: the clocks jump forward "
            f"then. Choose a time before or after the change."
        )
    raise LocalTimeError(
        f"{naive:%Y-%m-%d %H:%M} happens twice in {zone_name}: the clocks go back then. "
        f"Choose a time before or after the change."
    )


def utc_to_local(instant: datetime, zone_name: str) -> datetime:
    return instant.astimezone(ZoneInfo(zone_name))


def utc_to_wall(instant: datetime, zone_name: str) -> datetime:
    """What the site's clock reads at ``instant``, as a naive datetime (as a dispatcher types)."""
    return utc_to_local(instant, zone_name).replace(tzinfo=None)


def site_today(zone_name: str, *, now: datetime | None = None) -> date:
    """The date on the site's calendar right now (a new plan's default day is the one after)."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(zone_name)).date()


def day_text(day: date | datetime, *, year: bool = False) -> str:
    """``Tue 25 Nov``, or ``Tue 25 Nov 2025`` with ``year``: a day as the pages write it."""
    return f"{day:%a} {day.day} {day:%b} {day.year}" if year else f"{day:%a} {day.day} {day:%b}"


def wall_text(local: datetime) -> str:
    """``Tue 25 Nov 14:00 CET``: a time already on a site's clock, as the pages write it."""
    return f"{day_text(local)} {local:%H:%M} {local.tzname()}"


def span_text(delta: timedelta) -> str:
    """``1 h 30``, ``45 min``, ``11 h``: a stay's length as dispatchers say it."""
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes:02d}" if minutes else f"{hours} h"
