"""Offline members: people imported from a file (name, phone, tags, notes) waiting to become WeCom customers,
the imports that brought them, and each import's rejected rows."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.clock import now
from siyu.core.tenancy import CorpManager, CorpOwned


class OfflineImport(CorpOwned):
    """An uploaded member file: its rows (parsed once at upload), how its columns map, and the job that
    imports it."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel"

    file_name = models.CharField(max_length=200)
    file_format = models.CharField(max_length=8, choices=Format.choices)
    sha256 = models.CharField(max_length=64)
    headers = models.JSONField(default=list)
    rows = models.JSONField(default=list)  # the data rows as text cells, header excluded
    # column index (as text) → "name", "phone", "tags", "notes", "custom:<key>" or "" (ignored)
    mapping = models.JSONField(default=dict, blank=True)
    job = models.OneToOneField(
        "core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="offline_import"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["OfflineImport"]()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.file_name


class OfflineMember(CorpOwned):
    """A member known from outside WeCom, one per phone number, pending until a WeCom customer's relation
    carries the same phone as a remark mobile; then merged into that customer."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        MERGED = "merged", _("Merged")

    name = models.CharField(max_length=64)
    phone = models.CharField(max_length=20)  # normalised (offline.phones): 11 digits, or + and E.164 digits
    tag_ids = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True, default="")
    custom_fields = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    relation = models.ForeignKey(
        "customers.FollowRelation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    merged_at = models.DateTimeField(null=True, blank=True)
    last_import = models.ForeignKey(
        OfflineImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = CorpManager["OfflineMember"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corp", "phone"], name="offline_member_unique_phone")]
        indexes = [models.Index(fields=["corp", "status", "-id"], name="offline_member_status")]
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class OfflineImportRejection(CorpOwned):
    """A row of an import that was not imported: its row number in the file, why, and what it held."""

    class Reason(models.TextChoices):
        MISSING_NAME = "missing_name", _("Missing name")
        BAD_PHONE = "bad_phone", _("Not a phone number")
        DUPLICATE_IN_FILE = "duplicate_in_file", _("Same phone as an earlier row")
        UNKNOWN_TAG = "unknown_tag", _("Unknown tag")
        BAD_VALUE = "bad_value", _("Value not accepted")
        ALREADY_MERGED = "already_merged", _("Already merged with a customer")

    offline_import = models.ForeignKey(OfflineImport, on_delete=models.CASCADE, related_name="rejections")
    row_number = models.IntegerField()  # as a spreadsheet numbers it: the header is row 1
    reason = models.CharField(max_length=24, choices=Reason.choices)
    message = models.CharField(max_length=300)
    values = models.JSONField(default=list)

    objects = CorpManager["OfflineImportRejection"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["offline_import", "row_number"], name="offline_rejection_one_per_row"
            )
        ]
        ordering = ["row_number"]
