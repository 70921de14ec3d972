"""The one clock the code reads, so tests and benchmarks can move time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.utils import timezone

_frozen: datetime | None = None


def now() -> datetime:
    """The current time, timezone-aware (UTC), or the time a test has set."""
    return _frozen if _frozen is not None else timezone.now()


@contextlib.contextmanager
def frozen_at(moment: datetime) -> Iterator[None]:
    """Hold the clock at ``moment`` inside the block (tests and benchmarks)."""
    global _frozen
    previous = _frozen
    _frozen = moment
    try:
        yield
    finally:
        _frozen = previous


def advance(delta: timedelta) -> None:
    """Move a frozen clock forward."""
    global _frozen
    if _frozen is None:
        raise RuntimeError("advance() needs a frozen clock (use frozen_at)")
    _frozen = _frozen + delta
