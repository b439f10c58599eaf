"""Values every page shows: the MINT environment badge, MINT's health and the worker banner."""

from django.conf import settings
from django.http import HttpRequest

from plans import selectors


def portal(request: HttpRequest) -> dict:
    context = {"mint_environment": settings.MINT_ENVIRONMENT}
    if getattr(request, "user", None) and request.user.is_authenticated:
        status = selectors.portal_status()
        context.update(
            portal_status=status,
            worker_alive=status.worker_alive,
            health_refresh_ms=int(settings.HEALTH_WIDGET_REFRESH * 1000),
        )
    return context
