"""Values every page shows: the MINT environment badge and whether a worker is alive."""

from django.conf import settings
from django.http import HttpRequest

from plans import selectors


def portal(request: HttpRequest) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"mint_environment": settings.MINT_ENVIRONMENT}
    return {
        "mint_environment": settings.MINT_ENVIRONMENT,
        "worker_alive": selectors.worker_is_alive(),
    }
