"""Bulk-entry previews: what an import or a copied day would do, kept until it is confirmed.

A preview is worked out once, when the file is uploaded (or the day chosen), and stored here as
JSON, so the preview page survives a reload and draws its rows without a query per row, and the
confirm applies exactly what the dispatcher saw. Written only by ``plans.services.imports``.
"""

from datetime import timedelta

from django.conf import settings
from django.db import models

#: How long a preview can be confirmed: long enough to read it, short enough that the plans it
#: was checked against are still the plans of the day.
PREVIEW_LIFETIME = timedelta(hours=1)


class ImportBatch(models.Model):
    """One preview of a bulk entry and, once confirmed, what it did."""

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        COPY = "copy", "Copy a day"

    kind = models.CharField(max_length=6, choices=Kind.choices)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    #: The uploaded file's name (import) or what was copied (copy a day), for history and pages.
    source_name = models.CharField(max_length=255)
    #: ``csv`` or ``xlsx``: the errors file is given back in the format that was uploaded.
    file_format = models.CharField(max_length=4, blank=True)
    #: How the file was read: {"delimiter": ";", "headers": [...], "complete": bool, ...}.
    options = models.JSONField(default=dict)
    #: Every row with its outcome: see ``plans.services.imports.PreviewRow``.
    rows = models.JSONField(default=list)
    #: Plans the batch would call off ("complete plan" mode): [{plan, fingerprint, text}].
    cancels = models.JSONField(default=list)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    #: What the confirm did: {"created": [...], "changed": [...], "cancelled": [...], ...}.
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            # a new preview clears its owner's expired ones: owner = … AND expires_at < now
            models.Index(fields=["owner", "expires_at"], name="importbatch_owner_exp_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pk}: {self.source_name}"
