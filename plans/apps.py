from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PlansConfig(AppConfig):
    name = "plans"
    verbose_name = "Plans"
    default = True

    def ready(self) -> None:
        from plans import (
            checks,  # noqa: F401 - registers the system checks
            receivers,  # noqa: F401 - connects the login audit
        )


class PortalAdminConfig(admin_apps.AdminConfig):
    """Django's admin with ``plans.admin_site.PortalAdminSite`` as ``admin.site``."""

    default = False
    default_site = "plans.admin_site.PortalAdminSite"
