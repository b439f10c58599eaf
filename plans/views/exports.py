"""Downloads: the plan list's current filter as CSV or XLSX, and a plan's history as CSV.

Reading only, so viewers may export too. The list's own filter form reads the query string:
an export holds exactly the plans the list shows for it (every page), and a filter the list
cannot read exports nothing and says why, as the list shows nothing.
"""

from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from plans import exports
from plans.forms import PlanFilterForm
from plans.selectors import PlanFilters
from plans.views.common import VIEW_PERM, bad_request, plan_or_404, require

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _filters(request: HttpRequest) -> PlanFilters | HttpResponse:
    """The list's filters from the query string, or the 400 page naming what cannot be read."""
    form = PlanFilterForm(request.GET)
    if form.is_valid():
        return form.filters()
    problems = "; ".join(
        f"{form.fields[name].label if name in form.fields else name}: {' '.join(errors)}"
        for name, errors in form.errors.items()
    )
    return bad_request(
        request,
        f"Nothing was exported: a filter cannot be read ({problems}). Correct it on the plan "
        f"list, then download again.",
    )


def _stamp() -> str:
    return f"{timezone.now():%Y%m%d-%H%M}"


@require_GET
def plans_export_csv(request: HttpRequest) -> HttpResponse:
    require(request, VIEW_PERM)
    filters = _filters(request)
    if isinstance(filters, HttpResponse):
        return filters
    rows = exports.plan_export_rows(filters=filters)
    response = StreamingHttpResponse(
        exports.csv_chunks(exports.PLAN_HEADER, rows), content_type=CSV_TYPE
    )
    response["Content-Disposition"] = f'attachment; filename="mint-plans-{_stamp()}Z.csv"'
    return response


@require_GET
def plans_export_xlsx(request: HttpRequest) -> HttpResponse:
    require(request, VIEW_PERM)
    filters = _filters(request)
    if isinstance(filters, HttpResponse):
        return filters
    file = exports.xlsx_file(
        exports.PLAN_HEADER, exports.plan_export_rows(filters=filters), title="Plans"
    )
    return FileResponse(
        file,
        as_attachment=True,
        filename=f"mint-plans-{_stamp()}Z.xlsx",
        content_type=XLSX_TYPE,
    )


@require_GET
def plan_history_csv(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, VIEW_PERM)
    plan = plan_or_404(pk)
    response = StreamingHttpResponse(
        exports.csv_chunks(exports.HISTORY_HEADER, exports.plan_history_rows(plan=plan)),
        content_type=CSV_TYPE,
    )
    response["Content-Disposition"] = f'attachment; filename="mint-plan-{plan.pk}-history.csv"'
    return response
