"""The dashboard, the live status fragments and the load balancer's health check."""

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from plans import selectors
from plans.models import CALLED_OFF_STATES, PlanState
from plans.views.common import VIEW_PERM, abilities, require


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    require(request, VIEW_PERM)
    counts = selectors.state_counts()
    soon, soon_total = selectors.plans_starting_soon(hours=24, limit=20)
    cards = [
        {"state": state, "label": label, "count": counts[state]}
        for state, label in PlanState.choices
        if state not in CALLED_OFF_STATES
    ]
    return render(
        request,
        "plans/dashboard.html",
        {
            "state_cards": cards,
            "attention_count": counts[PlanState.FAILED] + counts[PlanState.REJECTED],
            # Called-off plans are out of the cards, counted on one quiet line beneath.
            "called_off_count": sum(counts[state] for state in CALLED_OFF_STATES),
            "starting_soon": soon,
            "starting_soon_more": soon_total - len(soon),
            **_operations(),
            **abilities(request),
        },
    )


def _operations() -> dict:
    """The dashboard's operations panel, beyond what every page's header already knows."""
    return {
        "attempt_outcomes": selectors.recent_attempt_outcomes(hours=1),
        "queue": selectors.queue_summary(),
    }


@require_GET
def mint_health(request: HttpRequest) -> HttpResponse:
    """The header's MINT health widget and the worker banner (and, for the dashboard, the
    operations panel), re-fetched by ``health_widget.js``.

    It reads what the workers recorded; a page never waits on MINT itself.
    """
    require(request, VIEW_PERM)
    context = _operations() if request.GET.get("panel") == "operations" else {}
    return render(request, "plans/partials/_live_status.html", context)


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers: 200 when the database answers and has every migration, 503 when it
    does not answer or lacks one (logins and saves would fail with a 500). No data."""
    try:
        missing = selectors.unapplied_migrations()
    except DatabaseError:
        response = HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    else:
        if missing:
            response = HttpResponse(
                "database not migrated\n", status=503, content_type="text/plain"
            )
        else:
            response = HttpResponse("ok\n", content_type="text/plain")
    response["Cache-Control"] = "no-store"
    return response
