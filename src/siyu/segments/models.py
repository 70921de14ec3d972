"""Segments, their manual includes and excludes, their count trend, and saved copies of the bitmap index."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.clock import now
from siyu.core.tenancy import CorpManager, CorpOwned


class Segment(CorpOwned):
    """An audience (分群): an expression over tags, attributes and behaviour, dynamic or frozen."""

    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", _("Dynamic")
        SNAPSHOT = "snapshot", _("Snapshot")

    name = models.CharField(max_length=60)
    description = models.CharField(max_length=200, blank=True, default="")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DYNAMIC)
    expression = models.JSONField()
    # The text form as last saved (the JSON is the truth; this is what the list shows).
    text = models.TextField(default="")
    # Snapshot segments: the members (customer ids, a serialized roaring bitmap) at ``frozen_at``.
    frozen_at = models.DateTimeField(null=True, blank=True)
    frozen_members = models.BinaryField(null=True, blank=True)
    # Dynamic segments: the members at the last evaluation, to tell who entered and who left since.
    members = models.BinaryField(null=True, blank=True)
    evaluation_round = models.IntegerField(default=0)
    last_count = models.IntegerField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = CorpManager["Segment"]()

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["corp", "name"], name="segment_unique_name")]

    def __str__(self) -> str:
        return self.name


class SegmentOverride(CorpOwned):
    """A customer added to or kept out of a segment by hand; it survives every re-evaluation."""

    class Mode(models.TextChoices):
        INCLUDE = "include", _("Included")
        EXCLUDE = "exclude", _("Excluded")

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="overrides")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=10, choices=Mode.choices)
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["SegmentOverride"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "customer"], name="segment_override_unique")
        ]


class SegmentCount(CorpOwned):
    """A segment's member count at an hour: the trend shown on the segment pages."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="counts")
    at = models.DateTimeField()  # the hour, in UTC
    count = models.IntegerField()

    objects = CorpManager["SegmentCount"]()

    class Meta:
        ordering = ["at"]
        constraints = [models.UniqueConstraint(fields=["segment", "at"], name="segment_count_unique_hour")]


class IndexSnapshot(CorpOwned):
    """A saved copy of a corp's segment index and the timeline position it reflects; processes that start
    load the newest and read only the events after it."""

    created_at = models.DateTimeField(default=now)
    event_cursor = models.BigIntegerField()
    # When the lineage of this copy was last rebuilt from the tables; processes holding an older lineage load
    # this one (a rebuild is the safety net for changes that came without an event).
    rebuilt_at = models.DateTimeField(default=now)
    customers = models.IntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    chunks = models.IntegerField(default=0)

    objects = CorpManager["IndexSnapshot"]()

    class Meta:
        ordering = ["-created_at", "-id"]


class IndexSnapshotChunk(CorpOwned):
    """One piece of a snapshot's bytes (rows stay a few MiB, far below PostgreSQL's 1 GiB value limit)."""

    snapshot = models.ForeignKey(IndexSnapshot, on_delete=models.CASCADE, related_name="+")
    seq = models.IntegerField()
    data = models.BinaryField()

    objects = CorpManager["IndexSnapshotChunk"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["snapshot", "seq"], name="index_chunk_unique_seq")]
