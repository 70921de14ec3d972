"""Who a channel's contact way should list right now: schedules, daily caps, backups and the spread.

WeCom's multi-member contact way hands its scans to the members it lists in turn, so Siyu steers a channel by
changing that list (``update_contact_way``), never by intercepting scans. This module is the pure decision:
given the members, today's counts and the corp's local time, which userids to list, and why.

1. A member is *available* when one of their schedules holds now (or they have none) and they are under
   their daily cap (adds through this channel since the corp's midnight).
2. The pool is the available primary members; when none is available, the available backups; when nobody is
   available at all, the channel *overflows*: the backups (else the primary members) are listed regardless of
   caps and schedules, because a printed QR code must always lead to someone. The console shows it.
3. The spread picks from the pool: round robin lists the whole pool (WeCom takes turns); weighted and fewest
   today list only the members not yet ahead of their share of the next add (``SPREAD_SLACK``), by the
   channel's adds today (weighted) or the member's adds today through any channel (fewest today).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from siyu.core.timewindows import in_window

# A member stays listed until they are this many adds ahead of their share: with 0 the list would change on
# nearly every add; with 1 it changes about once per round of adds, and the spread stays within two adds.
SPREAD_SLACK = 1


class Mode(StrEnum):
    PRIMARY = "primary"  # primary members receive
    BACKUP = "backup"  # every primary member is capped or off schedule: backups receive
    OVERFLOW = "overflow"  # nobody is available: listed beyond caps and schedules
    EMPTY = "empty"  # the channel has no members


@dataclass(frozen=True)
class Window:
    weekdays: int
    start: dt.time
    end: dt.time


@dataclass(frozen=True)
class Candidate:
    """One member of a channel with what the decision needs."""

    userid: str
    is_backup: bool = False
    weight: int = 1
    daily_cap: int | None = None
    schedules: tuple[Window, ...] = ()
    today_channel: int = 0  # adds through this channel since the corp's midnight
    today_all: int = 0  # adds through any channel (or none) since the corp's midnight

    def on_schedule(self, local_now: dt.datetime) -> bool:
        return not self.schedules or any(
            in_window(local_now, weekdays=w.weekdays, start=w.start, end=w.end) for w in self.schedules
        )

    @property
    def capped(self) -> bool:
        return self.daily_cap is not None and self.today_channel >= self.daily_cap


@dataclass(frozen=True)
class Decision:
    """Whom to list, and why (for the console)."""

    userids: tuple[str, ...]
    mode: Mode
    capped: tuple[str, ...] = field(default_factory=tuple)
    off_schedule: tuple[str, ...] = field(default_factory=tuple)


def decide(candidates: Sequence[Candidate], distribution: str, local_now: dt.datetime) -> Decision:
    """The userids the contact way should list at ``local_now`` (the corp's wall clock)."""
    if not candidates:
        return Decision(userids=(), mode=Mode.EMPTY)
    capped = tuple(c.userid for c in candidates if c.capped)
    off = tuple(c.userid for c in candidates if not c.on_schedule(local_now))
    available = [c for c in candidates if not c.capped and c.on_schedule(local_now)]
    primaries = [c for c in available if not c.is_backup]
    backups = [c for c in available if c.is_backup]
    if primaries:
        pool, mode = primaries, Mode.PRIMARY
    elif backups:
        pool, mode = backups, Mode.BACKUP
    else:
        pool = [c for c in candidates if c.is_backup] or list(candidates)
        mode = Mode.OVERFLOW
    chosen = _spread(pool, distribution) if mode != Mode.OVERFLOW else pool
    return Decision(userids=tuple(c.userid for c in chosen), mode=mode, capped=capped, off_schedule=off)


def _spread(pool: list[Candidate], distribution: str) -> list[Candidate]:
    if distribution == "weighted":
        counts = [c.today_channel for c in pool]
        weights = [max(1, c.weight) for c in pool]
    elif distribution == "fewest_today":
        counts = [c.today_all for c in pool]
        weights = [1] * len(pool)
    else:  # round robin: WeCom takes turns among everyone listed
        return pool
    total, weight_sum = sum(counts), sum(weights)
    chosen = [
        c
        for c, count, weight in zip(pool, counts, weights, strict=True)
        if count < math.ceil((total + 1) * weight / weight_sum) + SPREAD_SLACK
    ]
    # Some member is always below their share of the next add (the shares sum to more than the total), so
    # this is only a guard.
    return chosen or pool
