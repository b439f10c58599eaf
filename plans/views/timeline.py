"""Sites and their timeline: what happens at a depot in the next 48 hours, vehicle by vehicle.

``/sites/`` lists the sites; ``/sites/<pk>/`` is one site's timeline on its own clock and
``/sites/timeline/`` every site's, one after another, each on its own clock. ``?day=`` starts
the window at midnight of that day (site time) instead of the current hour; ``?called_off=1``
shows withdrawn and cancelled plans, struck through.
"""

from datetime import date, timedelta

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from plans import selectors
from plans.models import Location
from plans.timeline import HOURS, TimelineSite, timeline_layout, window_start
from plans.timezones import day_text, utc_to_local
from plans.views.common import VIEW_PERM, bad_request, is_number, require

#: Days the date picker accepts: a year of plans either way, with room to look back.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
#: More pages of sites than any portal has: a bigger number is a typo, not a page.
MAX_PAGE = 10_000


class BadDay(ValueError):
    pass


def _day(request: HttpRequest) -> date | None:
    raw = request.GET.get("day", "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadDay(f"The day “{raw[:40]}” cannot be read: give it as 2026-11-30.") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadDay(f"The day {day:%Y-%m-%d} is out of range: choose one from 2000 to 2099.")
    return day


def _site(location: Location) -> TimelineSite:
    return TimelineSite(
        pk=location.pk,
        name=location.name,
        code=location.mint_location_id,
        time_zone=location.time_zone,
        charge_points=location.charge_points,
    )


def _navigation(request: HttpRequest, first_day: date, day: date | None, page: int = 1) -> dict:
    """Links a day back and a day forward (from the window's first day on the site's clock),
    keeping the called-off choice and the page of sites."""
    called_off = request.GET.get("called_off") == "1"
    extra = ("&called_off=1" if called_off else "") + (f"&page={page}" if page > 1 else "")
    earlier, later = first_day - timedelta(days=1), first_day + timedelta(days=1)
    return {
        "day": day,
        "first_day": first_day,
        "called_off": called_off,
        "earlier": {"query": f"?day={earlier:%Y-%m-%d}{extra}", "text": day_text(earlier)},
        "later": {"query": f"?day={later:%Y-%m-%d}{extra}", "text": day_text(later)},
        "now_query": "?" + extra.lstrip("&"),
        "hours": HOURS,
    }


@require_GET
def site_list(request: HttpRequest) -> HttpResponse:
    require(request, VIEW_PERM)
    return render(request, "plans/site_list.html", {"sites": selectors.site_list()})


@require_GET
def site_timeline(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, VIEW_PERM)
    location = Location.objects.filter(pk=pk).first()
    if location is None:
        raise Http404("No such site.")
    try:
        day = _day(request)
    except BadDay as exc:
        return bad_request(request, str(exc))
    now = timezone.now()
    start = window_start(day=day, now=now, zone_name=location.time_zone)
    tl = timeline_layout(
        site=_site(location),
        start=start,
        plans=selectors.timeline_plans(
            start=start,
            end=start + timedelta(hours=HOURS),
            location_ids=[location.pk],
            called_off=request.GET.get("called_off") == "1",
        ),
        vehicles=selectors.timeline_vehicles(location_id=location.pk),
        now=now,
    )
    first_day = utc_to_local(start, location.time_zone).date()
    return render(
        request,
        "plans/timeline.html",
        {"timelines": [tl], "site": location, **_navigation(request, first_day, day)},
    )


#: Sites on one page of the all-sites timeline: each brings its plans and vehicles' rows.
SITES_PER_PAGE = 10


@require_GET
def sites_timeline(request: HttpRequest) -> HttpResponse:
    """Every site's timeline, each on its own clock, ten sites a page: the same day (or the
    current hour) at each site, so 18:00 at every depot sits at the same place on the page."""
    require(request, VIEW_PERM)
    try:
        day = _day(request)
    except BadDay as exc:
        return bad_request(request, str(exc))
    raw_page = request.GET.get("page", "1")
    if not is_number(raw_page) or not 1 <= int(raw_page) <= MAX_PAGE:
        return bad_request(request, f"There is no page “{raw_page[:20]}” of sites.")
    number = int(raw_page)
    everywhere = selectors.site_list()
    sites = everywhere[(number - 1) * SITES_PER_PAGE : number * SITES_PER_PAGE]
    if number > 1 and not sites:
        return bad_request(request, f"There is no page {number} of sites.")
    now = timezone.now()
    starts = {site.pk: window_start(day=day, now=now, zone_name=site.time_zone) for site in sites}
    plans = (
        selectors.timeline_plans(
            start=min(starts.values()),
            end=max(starts.values()) + timedelta(hours=HOURS),
            location_ids=list(starts),
            called_off=request.GET.get("called_off") == "1",
        )
        if starts
        else []
    )
    by_site: dict[str, list] = {}
    for plan in plans:
        by_site.setdefault(plan.site_code, []).append(plan)
    timelines, quiet = [], []
    for site in sites:
        start = starts[site.pk]
        end = start + timedelta(hours=HOURS)
        here = [
            p
            for p in by_site.get(site.mint_location_id, [])
            if p.scheduled_start < end and p.scheduled_end > start
        ]
        if not here:
            quiet.append(site)
            continue
        timelines.append(
            timeline_layout(site=_site(site), start=start, plans=here, vehicles=[], now=now)
        )
    # The page's day links move every site by a day; without a day, from today in UTC.
    today = utc_to_local(now, "UTC").date()
    keep = "".join(
        f"&{name}={request.GET[name]}" for name in ("day", "called_off") if name in request.GET
    )
    pages = -(-len(everywhere) // SITES_PER_PAGE)
    return render(
        request,
        "plans/timeline.html",
        {
            "timelines": timelines,
            "quiet_sites": quiet,
            "all_sites": True,
            "sites_per_page": SITES_PER_PAGE,
            "sites_page": {
                "number": number,
                "first": (number - 1) * SITES_PER_PAGE + 1,
                "last": (number - 1) * SITES_PER_PAGE + len(sites),
                "count": len(everywhere),
                "earlier": f"?page={number - 1}{keep}" if number > 1 else "",
                "later": f"?page={number + 1}{keep}" if number < pages else "",
            },
            **_navigation(request, day or today, day, number),
        },
    )
