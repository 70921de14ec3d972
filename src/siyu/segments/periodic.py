"""Periodic segment work, run by the worker's beat (``siyu.core.scheduler``): each job enqueues its task."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from django.conf import settings

from siyu.core.scheduler import register

# Checking whether an index needs saving costs one catch-up; once a minute is plenty.
SAVE_CHECK_EVERY = timedelta(minutes=1)
BUSY_DEFER = timedelta(minutes=3)


def enqueue_refresh() -> None:
    from siyu.segments.tasks import refresh_segments

    refresh_segments.enqueue()


def enqueue_save() -> None:
    from siyu.segments.tasks import save_indexes

    save_indexes.enqueue()


def enqueue_rebuild() -> None:
    from siyu.segments.tasks import rebuild_indexes

    rebuild_indexes.enqueue()


def register_all() -> None:
    # Segment upkeep waits while customers' adds are being worked (their welcome messages first), a few
    # minutes at most.
    register(
        "segments.refresh",
        timedelta(seconds=cast(float, settings.SIYU["SEGMENT_REFRESH_SECONDS"])),
        enqueue_refresh,
        defer_when_busy=BUSY_DEFER,
    )
    register("segments.save_indexes", SAVE_CHECK_EVERY, enqueue_save, defer_when_busy=BUSY_DEFER)
    hours = cast(float, settings.SIYU["SEGMENT_REBUILD_HOURS"])
    if hours > 0:
        register("segments.rebuild", timedelta(hours=hours), enqueue_rebuild)
