"""Background work for segments. Tasks are thin: they call the module that holds the logic."""

from __future__ import annotations

from django_tasks import task

from siyu.segments import upkeep


@task()
def refresh_segments(corp_id: int | None = None) -> None:
    """Re-evaluate dynamic segments (entered / exited events, the count trend)."""
    upkeep.refresh_all(corp_id=corp_id)


@task()
def save_indexes() -> None:
    """Save the indexes that changed, so processes that start load them instead of rebuilding."""
    upkeep.save_changed_indexes()


@task()
def rebuild_indexes(corp_id: int | None = None) -> None:
    """Rebuild indexes from the tables (the safety net for changes that came without an event)."""
    upkeep.rebuild_indexes(corp_id=corp_id)
