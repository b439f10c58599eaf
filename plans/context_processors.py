"""Values every page shows: the MINT environment badge, MINT's health and the worker banner."""

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from plans import selectors


def portal(request: HttpRequest) -> dict:
    context = {"mint_environment": settings.MINT_ENVIRONMENT}
    if getattr(request, "user", None) and request.user.is_authenticated:
        context.update(
            # Lazy: the two queries behind it run only when a template reads it (every full
            # page's header; of the polled partials, only a pending plan's status bar).
            portal_status=SimpleLazyObject(selectors.portal_status),
            health_refresh_ms=int(settings.HEALTH_WIDGET_REFRESH * 1000),
        )
    return context
