"""Enqueueing background tasks with the options the configured queue supports."""

from __future__ import annotations

import datetime as dt
from typing import Any


def enqueue(
    task: Any, *args: Any, priority: int | None = None, run_after: dt.datetime | None = None, **kwargs: Any
) -> None:
    """Enqueue ``task`` with ``args``/``kwargs``: at ``priority`` (-100…100, 0 the default) where the queue
    orders by priority, and not before ``run_after`` where it defers; a queue that cannot runs it as soon as
    it can (the beat's sweeps catch what runs early or is lost)."""
    backend = task.get_backend()
    options: dict[str, Any] = {}
    if priority is not None and backend.supports_priority:
        options["priority"] = priority
    if run_after is not None and backend.supports_defer:
        options["run_after"] = run_after
    (task.using(**options) if options else task).enqueue(*args, **kwargs)
