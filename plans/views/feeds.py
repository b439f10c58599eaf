"""The calendar feeds: one site's or one vehicle's plans as an ``.ics`` file that calendar
programs subscribe to.

Calendar programs cannot log in, so the token in the URL is the credential: no session, no
login, no second factor (a token is made only from a session that gave both). The token opens
feeds for as long as its user is active and keeps ``plans.view_plan``; an unknown token, a
revoked one, a user without the right and an unknown site or vehicle all get the same plain
404. Nothing here writes except the token's "last used" time. The token is in the path, so the
portal's log formatters mask it (``plans.logs``); proxies in front must too (docs/deploy.md).
"""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe

from plans import selectors, services
from plans.calendar_feed import calendar_build
from plans.models import Location, Vehicle
from plans.views.common import VIEW_PERM

#: The one answer to every feed request that finds nothing, whatever the reason.
NOT_FOUND = "No such calendar feed.\n"


def _not_found() -> HttpResponse:
    response = HttpResponseNotFound(NOT_FOUND, content_type="text/plain; charset=utf-8")
    add_never_cache_headers(response)
    return response


def _may_read(token: str) -> bool:
    """Whether ``token`` is live and its user may still read plans."""
    found = services.feed_token_use(secret=token)
    return found is not None and found.user.is_active and found.user.has_perm(VIEW_PERM)


def _feed(request: HttpRequest, *, title: str, zone: str, plans, window) -> HttpResponse:
    prefix, _, suffix = request.build_absolute_uri(
        reverse("plans:plan_detail", args=[0])
    ).rpartition("0")
    body = calendar_build(
        title=title,
        zone=zone,
        plans=plans,
        window=window,
        plan_url=lambda pk: f"{prefix}{pk}{suffix}",
    )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    # Plans are private and the URL is a secret: no cache, shared or not, may keep a copy (the
    # same rule the portal's pages follow). Calendar programs fetch the whole feed on their
    # own schedule anyway.
    add_never_cache_headers(response)
    response["Content-Disposition"] = 'inline; filename="mintportal.ics"'
    return response


@login_not_required
@require_safe
def feed_site(request: HttpRequest, token: str, pk: int) -> HttpResponse:
    if not _may_read(token):
        return _not_found()
    location = Location.objects.filter(pk=pk).first()
    if location is None:
        return _not_found()
    window = selectors.feed_window(now=timezone.now())
    return _feed(
        request,
        title=location.name,
        zone=location.time_zone,
        plans=selectors.feed_plans(window=window, location=location),
        window=window,
    )


@login_not_required
@require_safe
def feed_vehicle(request: HttpRequest, token: str, pk: int) -> HttpResponse:
    if not _may_read(token):
        return _not_found()
    vehicle = Vehicle.objects.select_related("home_location").filter(pk=pk).first()
    if vehicle is None:
        return _not_found()
    window = selectors.feed_window(now=timezone.now())
    return _feed(
        request,
        title=vehicle.name,
        zone=vehicle.home_location.time_zone,
        plans=selectors.feed_plans(window=window, vehicle=vehicle),
        window=window,
    )
