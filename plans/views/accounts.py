"""A user's own account: the second factor (verify at login, set up, recovery codes, turn off),
the password change and calendar feed tokens.

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
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from plans import selectors, services
from plans.account_forms import AuthenticatorCodeForm, FeedTokenForm, SecondFactorCodeForm
from plans.middleware import SECOND_FACTOR_PENDING
from plans.models import FeedToken
from plans.views.common import VIEW_PERM, require


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


def account(request: HttpRequest, feed_form: FeedTokenForm | None = None) -> HttpResponse:
    user = request.user
    can_feed = user.has_perm(VIEW_PERM)
    return render(
        request,
        "registration/account.html",
        {
            "second_factor_enabled": services.second_factor_enabled(user),
            "second_factor_required": services.second_factor_required(user),
            "can_feed": can_feed,
            "feed_tokens": selectors.feed_tokens(user=user) if can_feed else [],
            "feed_form": feed_form or FeedTokenForm(),
        },
    )


@require_POST
def feed_token_create(request: HttpRequest) -> HttpResponse:
    """Make a calendar feed token and show its feed URLs, once: only the hash is kept.

    The page is the POST's answer, not a redirect, so the secret is never in a URL, a session
    or a message store; the portal's no-store header keeps it out of the browser's cache.
    """
    require(request, VIEW_PERM)
    form = FeedTokenForm(request.POST)
    if form.is_valid():
        try:
            made = services.feed_token_create(user=request.user, label=form.cleaned_data["label"])
        except ValidationError as error:
            form.add_error(None, error)
        else:
            services.audit(
                "feed token created",
                request=request,
                username=request.user.get_username(),
                token_prefix=made.token.prefix,
            )
            sites, vehicles = selectors.feed_sources()
            return render(
                request,
                "registration/feed_token_created.html",
                {
                    "token": made.token,
                    "sites": [
                        (site, _feed_url(request, "plans:feed_site", made.secret, site.pk))
                        for site in sites
                    ],
                    "vehicles": [
                        (vehicle, _feed_url(request, "plans:feed_vehicle", made.secret, vehicle.pk))
                        for vehicle in vehicles
                    ],
                },
            )
    return account(request, feed_form=form)


@require_POST
def feed_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        token = services.feed_token_revoke(user=request.user, pk=pk)
    except FeedToken.DoesNotExist:
        raise Http404("No such token.") from None
    services.audit(
        "feed token revoked",
        request=request,
        username=request.user.get_username(),
        token_prefix=token.prefix,
    )
    messages.success(
        request, f"Token “{token.label}” is revoked: calendars using it get no more plans."
    )
    return redirect("account")


def _feed_url(request: HttpRequest, name: str, secret: str, pk: int) -> str:
    return request.build_absolute_uri(reverse(name, kwargs={"token": secret, "pk": pk}))


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
