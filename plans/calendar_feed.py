"""The calendar feed: one site's or one vehicle's plans as an iCalendar (RFC 5545) file.

Made with the ``icalendar`` library rather than by hand: line folding, escaping and the
``VTIMEZONE`` blocks (generated from the tz database for just the feed's dates) are its job.
Each plan is one ``VEVENT``:

- ``UID`` ``<transactionId>@mintportal``: fixed for the plan's life, so an edit moves the event
  in the calendar instead of adding another;
- ``SEQUENCE`` the plan's revision, one more once it is called off (a called-off plan never gets
  another revision, and calendar programs ignore a change whose SEQUENCE did not go up);
- ``DTSTART``/``DTEND`` on the site's clock with its ``TZID``, so the calendar shows the site's
  times across a daylight-saving change; ``DTSTAMP`` and ``LAST-MODIFIED`` when the plan last
  changed, so an unchanged plan gives the same bytes on every poll;
- ``STATUS`` ``CONFIRMED`` once MINT accepted it, ``CANCELLED`` when withdrawn or cancelled,
  ``TENTATIVE`` otherwise; the state in words, the target, warnings and the plan's link in
  ``DESCRIPTION``.
"""

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vDuration

from plans.models import PLAN_MAX_WINDOW, Plan, PlanState
from plans.selectors import FEED_PAST, FeedWindow
from plans.templatetags.plans_extras import target_summary

UID_DOMAIN = "mintportal"
PRODID = "-//MINT Portal//Calendar feed//EN"
#: How often a calendar program should fetch the feed again (those that listen).
REFRESH = timedelta(minutes=15)

_STATUS = {
    PlanState.ACCEPTED: "CONFIRMED",
    PlanState.WITHDRAWN: "CANCELLED",
    PlanState.CANCELLED: "CANCELLED",
}


def event_summary(plan: Plan) -> str:
    """``bus 12 · 160 kWh``, ``bus 3 · 240 km``, ``Plan 42 · 60 kWh`` without a vehicle;
    ``Cancelled: …`` or ``Withdrawn: …`` once called off (not every program shows STATUS)."""
    who = plan.vehicle.name if plan.vehicle_id else f"Plan {plan.pk}"
    if plan.target_kind == "charge":
        what = f"{plan.expected_charge_kwh} kWh"
    else:
        what = f"{plan.expected_range_km} km"
    text = f"{who} · {what}"
    if plan.is_called_off:
        text = f"{plan.get_state_display()}: {text}"
    return text


def event_sequence(plan: Plan) -> int:
    return plan.revision + 1 if plan.is_called_off else plan.revision


def _description(plan: Plan, link: str) -> str:
    lines = [
        f"{plan.get_state_display()} · revision {plan.revision}",
        f"Target: {target_summary(plan)}",
        f"Site: {plan.location.name} ({plan.location.mint_location_id})",
    ]
    lines += [f"Warning: {warning['text']}" for warning in plan.warnings]
    lines.append(link)
    return "\n".join(lines)


def _event(plan: Plan, link: str) -> Event:
    zone = ZoneInfo(plan.location.time_zone)
    return Event.new(
        uid=f"{plan.transaction_id}@{UID_DOMAIN}",
        sequence=event_sequence(plan),
        stamp=plan.updated_at,
        last_modified=plan.updated_at,
        start=plan.scheduled_start.astimezone(zone),
        end=plan.scheduled_end.astimezone(zone),
        summary=event_summary(plan),
        location=f"{plan.location.name} ({plan.location.mint_location_id})",
        description=_description(plan, link),
        url=link,
        status=_STATUS.get(plan.state, "TENTATIVE"),
    )


def calendar_build(
    *,
    title: str,
    zone: str,
    plans: Iterable[Plan],
    window: FeedWindow,
    plan_url: Callable[[int], str],
) -> bytes:
    """The feed of ``title`` (a site's or vehicle's name) with ``zone`` as its default zone,
    ``plans`` as events and a ``VTIMEZONE`` for each zone they use; ``plan_url`` gives a plan's
    absolute link."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"MINT Portal · {title}")
    calendar.add("x-wr-timezone", zone)
    calendar.add(
        "x-wr-caldesc",
        f"Charging plans at {title} from MINT Portal, from {FEED_PAST.days} days ago to "
        f"{window.days_ahead} days ahead.",
    )
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))
    for plan in plans:
        calendar.add_component(_event(plan, plan_url(plan.pk)))
    # Transitions only for the dates the events can touch: a plan starts before the window's
    # end and lasts at most PLAN_MAX_WINDOW. (The default, 1970–2038, is kilobytes per zone.)
    calendar.add_missing_timezones(
        first_date=_day(window.start - PLAN_MAX_WINDOW - timedelta(days=1)),
        last_date=_day(window.end + PLAN_MAX_WINDOW + timedelta(days=1)),
    )
    return calendar.to_ical()


def _day(instant: datetime):
    return instant.date()
