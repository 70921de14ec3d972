"""The worker's part: re-evaluating dynamic segments, saving indexes, periodic rebuilds."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import cast

from django.conf import settings

from siyu.core.clock import now
from siyu.core.errors import DomainError
from siyu.corps.models import Corp
from siyu.customers.models import Customer
from siyu.segments import engine
from siyu.segments.maintenance import rebuild, save_snapshot
from siyu.segments.models import IndexSnapshot, Segment
from siyu.segments.services import refresh_segment

logger = logging.getLogger(__name__)


def _corps(corp_id: int | None) -> list[Corp]:
    corps = Corp.objects.all() if corp_id is None else Corp.objects.filter(pk=corp_id)
    return [c for c in corps if Customer.objects.for_corp(c).exists()]


def refresh_all(*, corp_id: int | None = None) -> int:
    """Re-evaluate every segment (of one corp, or all); a segment that cannot be evaluated (a deleted tag) is
    logged and skipped. Returns how many were refreshed."""
    segments = Segment.objects.select_related("corp").order_by("corp_id", "id")
    if corp_id is not None:
        segments = segments.filter(corp_id=corp_id)
    done = 0
    for segment in segments:
        try:
            refresh_segment(segment=segment)
            done += 1
        except DomainError as exc:
            logger.warning("segment %s not refreshed: %s", segment.pk, exc.code)
    return done


def save_changed_indexes() -> int:
    """Save each corp's index when it changed and its saved copy is older than SEGMENT_SNAPSHOT_SECONDS (or
    missing). Returns how many were saved."""
    age = timedelta(seconds=cast(float, settings.SIYU["SEGMENT_SNAPSHOT_SECONDS"]))
    saved = 0
    for corp in _corps(None):
        last = IndexSnapshot.objects.for_corp(corp).order_by("-created_at").first()
        with engine.index_for(corp) as index:
            if last is None or (index.updates and now() - last.created_at >= age):
                save_snapshot(index)
                saved += 1
    return saved


def rebuild_indexes(*, corp_id: int | None = None) -> int:
    """Rebuild, save and use a fresh index for each corp (or one); returns how many."""
    done = 0
    for corp in _corps(corp_id):
        index = rebuild(corp)
        save_snapshot(index)
        engine.install(corp, index)
        done += 1
    return done
