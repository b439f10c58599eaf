"""A user's own account: the second factor (verify at login, set up, recovery codes, turn off)
and the password change.

After the password, ``plans.middleware.SecondFactorMiddleware`` keeps a user who must give a
second factor on these pages until they do: administrators always (they set one up on the
spot if they have none), others once they have turned it on.
"""

from base64 import b64encode

import django_otp
import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from plans import services
from plans.account_forms import AuthenticatorCodeForm, SecondFactorCodeForm
from plans.middleware import SECOND_FACTOR_PENDING


def _next(request: HttpRequest) -> str:
    """Where the user was going, if it is a page of this portal; the dashboard otherwise."""
    target = request.POST.get("next") or request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("plans:dashboard")


def _passed(request: HttpRequest, device, event: str) -> None:
    django_otp.login(request, device)
    request.session.pop(SECOND_FACTOR_PENDING, None)
    services.audit(event, request=request, username=request.user.get_username())


@require_http_methods(["GET", "POST"])
def second_factor(request: HttpRequest) -> HttpResponse:
    """The second step of a login: the authenticator's code or a recovery code."""
    user = request.user
    if user.is_verified():
        return redirect(_next(request))
    if not services.second_factor_enabled(user):
        if services.second_factor_required(user):
            return redirect(f"{reverse('second_factor_setup')}?next={_next(request)}")
        return redirect(_next(request))
    form = SecondFactorCodeForm(request.POST or None)
    if form.is_valid():
        device = services.second_factor_check(user=user, code=form.cleaned_data["code"])
        if device is not None:
            _passed(request, device, "second factor passed")
            return redirect(_next(request))
        services.audit("second factor failed", request=request, username=user.get_username())
        form.add_error(
            "code",
            "That code is not right, or was used already. Codes change every 30 seconds; "
            "after several wrong ones you have to wait a little longer before each try.",
        )
    return render(
        request, "registration/second_factor.html", {"form": form, "next": _next(request)}
    )


@require_http_methods(["GET", "POST"])
def second_factor_setup(request: HttpRequest) -> HttpResponse:
    """Set up (or replace) the authenticator app: scan the QR code, type the code it shows."""
    user = request.user
    if services.second_factor_enabled(user) and not user.is_verified():
        # Replacing the app needs the current one: a password alone must not be enough.
        return redirect(f"{reverse('second_factor')}?next={reverse('second_factor_setup')}")
    device = services.totp_device_start(user=user)
    form = AuthenticatorCodeForm(request.POST or None)
    if form.is_valid():
        codes = services.totp_device_confirm(
            user=user, device=device, code=form.cleaned_data["code"]
        )
        if codes:
            _passed(request, device, "second factor set up")
            return render(
                request,
                "registration/recovery_codes.html",
                {"codes": codes, "next": _next(request), "first_time": True},
            )
        services.audit("second factor failed", request=request, username=user.get_username())
        form.add_error(
            "code",
            "That is not the code the app shows now. Check the time on your phone, or scan the "
            "QR code again.",
        )
    return render(
        request,
        "registration/second_factor_setup.html",
        {
            "form": form,
            "qr_code": _qr_data_uri(device.config_url),
            "secret": services.totp_secret(device),
            "required": services.second_factor_required(user),
            "next": _next(request),
        },
    )


@require_POST
def recovery_codes_new(request: HttpRequest) -> HttpResponse:
    """New recovery codes, shown once; the old ones stop working."""
    if not request.user.is_verified():
        return redirect("account")
    codes = services.recovery_codes_renew(user=request.user)
    services.audit("recovery codes renewed", request=request, username=request.user.get_username())
    return render(
        request,
        "registration/recovery_codes.html",
        {"codes": codes, "next": reverse("account"), "first_time": False},
    )


@require_POST
def second_factor_off(request: HttpRequest) -> HttpResponse:
    user = request.user
    if services.second_factor_required(user):
        messages.error(request, "Administrators must keep their second factor.")
        return redirect("account")
    services.second_factor_remove(user=user)
    services.audit("second factor turned off", request=request, username=user.get_username())
    messages.success(request, "Two-step login is off. Your password alone now logs you in.")
    return redirect("account")


def account(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "registration/account.html",
        {
            "second_factor_enabled": services.second_factor_enabled(user),
            "second_factor_required": services.second_factor_required(user),
        },
    )


@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST or None)
    if form.is_valid():
        user = form.save()
        update_session_auth_hash(request, user)
        services.audit("password changed", request=request, username=user.get_username())
        messages.success(request, "Your password is changed.")
        return redirect("account")
    return render(request, "registration/password_change.html", {"form": form})


def _qr_data_uri(text: str) -> str:
    """The QR code as an SVG image in a data URI: the Content-Security-Policy allows images
    from ``data:``, and the key never leaves the page for a QR service or a second request."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathFillImage, border=2)
    return "data:image/svg+xml;base64," + b64encode(image.to_string()).decode()
