"""Periodic work: a small beat that runs inside every worker process.

Apps register jobs (``register``) in their ``AppConfig.ready``. Each worker runs ``Beat`` in a thread; for
every due job the workers race on one conditional UPDATE of its ``PeriodicJob`` row, so a job runs once per
interval however many workers there are. Jobs must be cheap and idempotent: they look for work left behind
(a lost wake-up, a worker that died, a deferred task a queue forgot) and enqueue tasks; the tasks do the work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import close_old_connections

from siyu.core.clock import now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicSpec:
    name: str
    every: timedelta
    run: Callable[[], None]
    # Work that can wait while the deployment is busy with urgent work (``set_busy_check``), up to this long
    # since its last run; None: runs on time whatever is going on.
    defer_when_busy: timedelta | None = None


_registry: dict[str, PeriodicSpec] = {}
# Says whether urgent work is under way (customers' adds waiting for their welcome messages); set by the app
# that knows (``wecom``), so that the core does not depend on it.
_busy: Callable[[], bool] | None = None


def register(
    name: str, every: timedelta, run: Callable[[], None], *, defer_when_busy: timedelta | None = None
) -> None:
    """Run ``run`` about every ``every`` somewhere in the deployment; with ``defer_when_busy``, not while the
    busy check says urgent work is under way, unless it last ran that long ago."""
    _registry[name] = PeriodicSpec(name=name, every=every, run=run, defer_when_busy=defer_when_busy)


def set_busy_check(check: Callable[[], bool] | None) -> None:
    """Install the check that jobs registered with ``defer_when_busy`` give way to."""
    global _busy
    _busy = check


def registered() -> list[PeriodicSpec]:
    return sorted(_registry.values(), key=lambda spec: spec.name)


def _claim(spec: PeriodicSpec, busy: Callable[[], bool]) -> bool:
    from siyu.core.models import PeriodicJob

    moment = now()
    job, _created = PeriodicJob.objects.get_or_create(name=spec.name, defaults={"next_run_at": moment})
    if job.next_run_at > moment:
        return False
    deferrable = spec.defer_when_busy is not None and job.last_run_at is not None
    if deferrable and job.last_run_at > moment - spec.defer_when_busy and busy():  # type: ignore[operator]
        return False
    won = PeriodicJob.objects.filter(name=spec.name, next_run_at__lte=moment).update(
        next_run_at=moment + spec.every, last_run_at=moment
    )
    return bool(won)


def run_due() -> list[str]:
    """Run every job that is due and that this process wins; returns their names."""
    from siyu.core.models import PeriodicJob

    ran = []
    answer: list[bool] = []

    def busy() -> bool:  # asked at most once a tick, and only when a deferrable job is due
        if not answer:
            answer.append(bool(_busy is not None and _busy()))
        return answer[0]

    for spec in registered():
        if not _claim(spec, busy):
            continue
        try:
            spec.run()
            error = ""
        except Exception as exc:  # a failing job must not stop the beat; it is recorded and retried next time
            logger.exception("periodic job %s failed", spec.name)
            error = f"{type(exc).__name__}: {exc}"[:2000]
        PeriodicJob.objects.filter(name=spec.name).update(last_error=error)
        ran.append(spec.name)
    return ran


class Beat(threading.Thread):
    """The beat thread of a worker process: checks for due jobs every ``tick`` seconds until stopped."""

    def __init__(self, tick: float = 5.0):
        super().__init__(name="siyu-beat", daemon=True)
        self.tick = tick
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                close_old_connections()
                run_due()
            except Exception:  # the database may be briefly away; try again next tick
                logger.exception("periodic beat failed")
            finally:
                close_old_connections()
            self.stopped.wait(self.tick)

    def stop(self) -> None:
        self.stopped.set()
