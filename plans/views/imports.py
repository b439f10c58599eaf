"""Bulk entry pages: import a spreadsheet, copy a day, and the preview both end in.

The upload (or the chosen day) is worked out once into an ``ImportBatch``; its preview page
reads only that row, so it survives a reload and costs the same for 10 rows or 10,000. Only the
dispatcher who made a preview sees and confirms it.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from plans import import_files
from plans.forms import BatchConfirmForm, CopyDayForm, ImportUploadForm, add_service_errors
from plans.models import ImportBatch
from plans.services.imports import (
    ImportRefused,
    batch_apply,
    batch_errors_file,
    copy_day_preview,
    import_preview,
)
from plans.views.common import CHANGE_PERM, SUBMIT_PERM, abilities, require

#: Rows on one page of a preview.
ROWS_PER_PAGE = 200


def _batch_or_404(request: HttpRequest, pk: int) -> ImportBatch:
    batch = ImportBatch.objects.filter(pk=pk, owner=request.user).first()
    if batch is None:
        raise Http404("No such preview.")
    return batch


@require_http_methods(["GET", "POST"])
def import_start(request: HttpRequest) -> HttpResponse:
    require(request, CHANGE_PERM)
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > import_files.MAX_FILE_BYTES:
            # Said before reading it: a large file is refused without holding it in memory.
            form.add_error("file", import_files.too_large(upload.size))
        else:
            try:
                batch = import_preview(
                    user=request.user,
                    file_name=upload.name,
                    data=upload.read(),
                    complete=form.cleaned_data["complete"],
                )
            except import_files.ImportFileError as exc:
                form.add_error("file", str(exc))
            else:
                return redirect("plans:batch_preview", pk=batch.pk)
    return render(request, "plans/import_form.html", {"form": form})


@require_GET
def import_template(request: HttpRequest, file_format: str) -> HttpResponse:
    require(request, CHANGE_PERM)
    if file_format not in ("csv", "xlsx"):
        raise Http404("The template is a .csv or an .xlsx file.")
    if file_format == "xlsx":
        content = import_files.template_xlsx()
        kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        content, kind = import_files.template_csv(), "text/csv; charset=utf-8"
    response = HttpResponse(content, content_type=kind)
    response["Content-Disposition"] = content_disposition_header(
        True, f"mint-plans-template.{file_format}"
    )
    return response


@require_http_methods(["GET", "POST"])
def copy_day(request: HttpRequest) -> HttpResponse:
    require(request, CHANGE_PERM)
    form = CopyDayForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            batch = copy_day_preview(
                user=request.user,
                site=data["location"],
                day=data["day"],
                first=data["first"],
                last=data["last"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return redirect("plans:batch_preview", pk=batch.pk)
    return render(request, "plans/copy_day_form.html", {"form": form})


@require_GET
def batch_preview(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, CHANGE_PERM)
    batch = _batch_or_404(request, pk)
    rows = batch.rows
    counts = {"new": 0, "change": 0, "unchanged": 0, "error": 0}
    warned = 0
    for row in rows:
        counts[row["outcome"]] += 1
        warned += bool(row["warnings"])
    show = request.GET.get("show", "")
    if show == "problems":
        rows = [r for r in rows if r["outcome"] == "error" or r["warnings"]]
    page = Paginator(rows, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "plans/batch_preview.html",
        {
            "batch": batch,
            "page": page,
            "counts": counts,
            "warned": warned,
            "show": show,
            "expired": batch.applied_at is None and batch.expires_at <= timezone.now(),
            "form": BatchConfirmForm(),
            **abilities(request),
        },
    )


@require_POST
def batch_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, CHANGE_PERM)
    batch = _batch_or_404(request, pk)
    form = BatchConfirmForm(request.POST)
    form.is_valid()  # two tick boxes: anything not ticked is False
    submit = form.cleaned_data.get("submit", False)
    if submit:
        require(request, SUBMIT_PERM)
    try:
        result = batch_apply(
            batch=batch,
            user=request.user,
            accept_warnings=form.cleaned_data.get("accept_warnings", False),
            submit=submit,
        )
    except ImportRefused as exc:
        messages.error(request, str(exc))
        return redirect("plans:batch_preview", pk=batch.pk)
    done = (
        f"{len(result.created)} plan(s) created, {len(result.changed)} changed, "
        f"{len(result.cancelled)} called off"
    )
    if submit:
        done += f"; {result.submitted} queued for delivery to MINT"
    messages.success(request, f"{batch.source_name}: {done}.")
    return redirect("plans:plan_list")


@require_GET
def batch_errors(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, CHANGE_PERM)
    batch = _batch_or_404(request, pk)
    content, kind, name = batch_errors_file(batch=batch)
    response = HttpResponse(content, content_type=kind)
    response["Content-Disposition"] = content_disposition_header(True, name)
    return response
