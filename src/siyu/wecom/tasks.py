"""Background work of the outbound half: sending the outbox. Tasks are thin; the logic is in ``outbox``."""

from __future__ import annotations

from django_tasks import task

from siyu.wecom.outbox import run_worker_pass


@task()
def send_outbox() -> None:
    """Send due outbox rows; continues in a new task when its time budget ran out, wakes up for retries."""
    run_worker_pass()
