"""Background work of mass messages. Tasks are thin; the logic is in ``execution``."""

from __future__ import annotations

import datetime as dt

from django_tasks import task

from siyu.broadcasts.execution import execute_broadcast, poll_broadcast
from siyu.core.tasks import enqueue


@task()
def run_broadcast(broadcast_id: int) -> None:
    """Plan and send a due broadcast (nothing when it is not due, or already sent)."""
    execute_broadcast(broadcast_id=broadcast_id)


@task()
def poll_broadcast_task(broadcast_id: int) -> None:
    """Follow a sent broadcast in WeCom one step."""
    poll_broadcast(broadcast_id=broadcast_id)


def enqueue_execution(broadcast_id: int, *, run_after: dt.datetime | None = None) -> None:
    """Run ``run_broadcast`` now, or at ``run_after`` where the queue defers (the sweep covers the rest)."""
    enqueue(run_broadcast, broadcast_id, run_after=run_after)
