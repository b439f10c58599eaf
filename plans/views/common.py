"""What every page shares: permission names, the 403/404 helpers and small request readers.

Every page needs a login (``LoginRequiredMiddleware``). Reading needs ``plans.view_plan``;
creating, editing and duplicating need ``plans.change_plan``; submitting and retrying need
``plans.submit_plan``. A change is always a POST.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from plans import selectors
from plans.models import Plan

VIEW_PERM = "plans.view_plan"
CHANGE_PERM = "plans.change_plan"
SUBMIT_PERM = "plans.submit_plan"


def require(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


#: The largest id a plan can have (a 64-bit signed key on SQLite and PostgreSQL alike); a larger
#: number in a request names no plan and cannot even be put in a query on SQLite.
MAX_ID = 2**63 - 1


def bad_request(request: HttpRequest, reason: str) -> HttpResponse:
    return render(request, "400.html", {"reason": reason}, status=400)


def is_number(text: str) -> bool:
    """ASCII digits only: ``"²".isdigit()`` is true, yet ``int("²")`` fails."""
    return text.isascii() and text.isdigit()


def plan_or_404(pk: int) -> Plan:
    try:
        return selectors.plan_detail(pk=pk)
    except Plan.DoesNotExist:
        raise Http404("No such plan.") from None


def abilities(request: HttpRequest) -> dict[str, bool]:
    return {
        "can_edit": request.user.has_perm(CHANGE_PERM),
        "can_submit": request.user.has_perm(SUBMIT_PERM),
    }


def safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback
