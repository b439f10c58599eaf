"""The login audit: every login, failure, lockout and logout is a line in the JSON log with the
user and the real client address. django-axes keeps the same events in the database for
administrators (admin → Axes: access attempts, access failures, access logs).

A login also notes in the session whether the user still owes a second factor (see
``plans.middleware.SecondFactorMiddleware``).
"""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from plans import services
from plans.middleware import SECOND_FACTOR_PENDING


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs) -> None:
    services.audit("login", request=request, username=user.get_username())
    owes_code = not services.second_factor_required(user) and services.second_factor_enabled(user)
    if owes_code and request is not None and hasattr(request, "session"):
        request.session[SECOND_FACTOR_PENDING] = True


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    services.audit("login failed", request=request, username=credentials.get("username"))


@receiver(user_locked_out)
def _locked_out(sender, request, username, ip_address, **kwargs) -> None:
    services.audit("login locked", request=request, username=username)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        services.audit("logout", request=request, username=user.get_username())
