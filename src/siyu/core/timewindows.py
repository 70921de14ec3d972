"""Weekly time windows: some weekdays, between two times of day, in a corp's own time zone.

Channels (who serves when, when auto-accept is on), welcome-message variants and time-of-add tagging rules all
say "on these weekdays, from this time to that one". Weekdays are a bit mask, Monday first
(``datetime.weekday()``). A window whose end is not after its start runs past midnight and belongs to the day
it starts on (Friday 22:00–02:00 covers Saturday 01:00); equal start and end, or none, mean the whole day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EVERY_DAY = 0b1111111
WEEKDAYS = range(7)


def weekdays_mask(days: Iterable[int]) -> int:
    """The bit mask of these weekdays (0 is Monday); out-of-range days are refused."""
    mask = 0
    for day in days:
        if day not in WEEKDAYS:
            raise ValueError(f"weekday {day} is not 0 (Monday) to 6 (Sunday)")
        mask |= 1 << day
    return mask


def mask_days(mask: int) -> list[int]:
    """The weekdays of a mask, Monday first."""
    return [day for day in WEEKDAYS if mask & (1 << day)]


def zone(name: str) -> dt.tzinfo:
    """A corp's time zone; an unknown name falls back to UTC rather than failing a callback."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def local(moment: dt.datetime, time_zone: str) -> dt.datetime:
    """``moment`` on the wall clock of ``time_zone``."""
    return moment.astimezone(zone(time_zone))


def in_window(
    moment: dt.datetime, *, weekdays: int = EVERY_DAY, start: dt.time | None, end: dt.time | None
) -> bool:
    """Whether the local ``moment`` falls in the window (see the module's rules)."""
    day, clock = moment.weekday(), moment.time().replace(tzinfo=None)
    if start is None or end is None or start == end:
        return bool(weekdays & (1 << day))
    if start < end:
        return bool(weekdays & (1 << day)) and start <= clock < end
    yesterday = (day - 1) % 7
    return (bool(weekdays & (1 << day)) and clock >= start) or (
        bool(weekdays & (1 << yesterday)) and clock < end
    )


def start_of_day(moment: dt.datetime, time_zone: str) -> dt.datetime:
    """Midnight of ``moment``'s day in ``time_zone``, as an aware datetime (for "today" counts)."""
    here = local(moment, time_zone)
    return here.replace(hour=0, minute=0, second=0, microsecond=0)
