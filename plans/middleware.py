"""The portal's own middleware: session lifetime, response headers and the second factor.

Session lifetime: 30 minutes idle, 12 hours at most, whatever the pages poll in between.

Django's own ``SESSION_COOKIE_AGE`` can only express one of the two limits, and saving the
session on every request would let a page that refreshes itself keep a forgotten login alive
for ever. Requests the portal's own scripts make in the background (marked with the
``X-Portal-Poll`` header) therefore do not count as activity.
"""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

LAST_SEEN = "portal_last_seen"
LOGGED_IN_AT = "portal_logged_in_at"
POLL_HEADER = "X-Portal-Poll"


class SessionTimeoutMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            session = request.session
            logged_in_at = session.setdefault(LOGGED_IN_AT, now)
            last_seen = session.setdefault(LAST_SEEN, now)
            reason = ""
            if now - last_seen > settings.SESSION_IDLE_TIMEOUT:
                minutes = settings.SESSION_IDLE_TIMEOUT // 60
                reason = f"You were logged out after {minutes} minutes without activity."
            elif now - logged_in_at > settings.SESSION_ABSOLUTE_TIMEOUT:
                hours = settings.SESSION_ABSOLUTE_TIMEOUT // 3600
                reason = f"You were logged out: a login lasts at most {hours} hours."
            if reason:
                logout(request)
                if request.headers.get(POLL_HEADER):
                    return HttpResponse(status=401)
                messages.info(request, reason)
                return redirect_to_login(request.get_full_path())
            # Minute resolution is plenty for a 30-minute limit and spares most requests a
            # session write.
            if not request.headers.get(POLL_HEADER) and now - last_seen >= 60:
                session[LAST_SEEN] = now
        return self.get_response(request)


#: Browser features no page of the portal uses, switched off for the page and anything it embeds.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)


class ResponseHeadersMiddleware:
    """``Permissions-Policy`` on every response, and ``Cache-Control: no-store`` on every response
    to a logged-in user.

    One place instead of a decorator per view, so a page added tomorrow cannot forget it: a
    shared or back-button cache must never keep plans, history or an account page after logout.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        if request.user.is_authenticated:
            add_never_cache_headers(response)
        return response


#: In the session of a user who gave the password and has yet to give the second factor.
SECOND_FACTOR_PENDING = "portal_second_factor_pending"
#: Pages open to a user between the password and the second factor; and the calendar feeds,
#: whose token is the credential: they never read the session's user.
SECOND_FACTOR_PAGES = {
    "second_factor",
    "second_factor_setup",
    "logout",
    "admin:logout",
    "healthz",
    "plans:feed_site",
    "plans:feed_vehicle",
}


class SecondFactorMiddleware:
    """Between the password and the second factor, a user sees only the code page.

    Administrators (staff or superuser) always need the second factor and set one up on the spot
    if they have none; other users need it once they turned it on (noted in the session at
    login, so their requests cost no query). Needs django-otp's ``OTPMiddleware`` before it.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        user = request.user
        if not user.is_authenticated:
            return None
        if not (user.is_staff or user.is_superuser or request.session.get(SECOND_FACTOR_PENDING)):
            return None
        if user.is_verified():
            return None
        if request.resolver_match.view_name in SECOND_FACTOR_PAGES:
            # The page shows no menu, MINT health or worker state to a password alone.
            request.second_factor_owed = True
            return None
        if request.headers.get(POLL_HEADER):
            return HttpResponse(status=401)
        return redirect_to_login(request.get_full_path(), login_url=reverse("second_factor"))
