"""Login throttling: django-axes' lock per username and address, plus a limit per address.

Axes compares every lockout parameter against one ``AXES_FAILURE_LIMIT``. Five failures per
username and address stop guessing one account's password, but an address trying one or two
passwords on each of many usernames (password spraying) never reaches five for any of them. So
this handler also counts the address's failures across usernames within the cool-off and locks
the address at ``AXES_ADDRESS_FAILURE_LIMIT``, a limit high enough for an office of people behind
one NAT address who mistype their passwords.
"""

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_ip_address, get_client_username, get_cool_off
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

#: Set on the request when the address, not the username, is locked: the lockout page says so.
ADDRESS_LOCKED = "portal_address_locked"


class PortalAxesHandler(AxesDatabaseHandler):
    def is_locked(self, request, credentials: dict | None = None) -> bool:
        if super().is_locked(request, credentials):
            return True
        if self.address_failures(request) >= settings.AXES_ADDRESS_FAILURE_LIMIT:
            setattr(request, ADDRESS_LOCKED, True)
            return True
        return False

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs) -> None:
        """Record the failure as axes does; the failure that reaches the address limit locks."""
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or request.axes_locked_out:
            return
        if self.address_failures(request) >= settings.AXES_ADDRESS_FAILURE_LIMIT:
            setattr(request, ADDRESS_LOCKED, True)
            request.axes_locked_out = True
            request.axes_credentials = credentials
            user_locked_out.send(
                "axes",
                request=request,
                username=get_client_username(request, credentials),
                ip_address=request.axes_ip_address,
            )

    @staticmethod
    def address_failures(request) -> int:
        """Failures from the request's address within the cool-off, whatever the username."""
        address = getattr(request, "axes_ip_address", None) or get_client_ip_address(request)
        attempts = AccessAttempt.objects.filter(ip_address=address)
        cool_off = get_cool_off(request)
        if cool_off is not None:
            attempts = attempts.filter(attempt_time__gt=timezone.now() - cool_off)
        return attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
