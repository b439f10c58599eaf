"""The admin site, closed to administrators who have not given their second factor.

``plans.middleware.SecondFactorMiddleware`` already sends them to the code page first; this
makes the admin refuse them itself too, whatever the middleware list becomes.
"""

from django.contrib import admin
from django.http import HttpRequest


class PortalAdminSite(admin.AdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        verified = getattr(request.user, "is_verified", lambda: False)()
        return super().has_permission(request) and verified
