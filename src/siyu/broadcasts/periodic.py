"""Periodic work of mass messages, run by the worker's beat (``siyu.core.scheduler``).

Every few seconds: start scheduled broadcasts whose time has come (the deferred task normally does; this
covers a queue that lost it or a worker that died mid-plan), and poll the sent ones that are due a look.
"""

from __future__ import annotations

from datetime import timedelta

from siyu.core.scheduler import register

# Staff confirm within seconds to days; a 10 s beat keeps the first confirmations prompt on the console.
POLL_EVERY = timedelta(seconds=10)


def sweep_broadcasts() -> None:
    from siyu.broadcasts.execution import claim_due_polls, due_executions
    from siyu.broadcasts.tasks import poll_broadcast_task, run_broadcast

    for broadcast_id in due_executions():
        run_broadcast.enqueue(broadcast_id)
    for broadcast_id in claim_due_polls():
        poll_broadcast_task.enqueue(broadcast_id)


def register_all() -> None:
    register("broadcasts.sweep", POLL_EVERY, sweep_broadcasts)
