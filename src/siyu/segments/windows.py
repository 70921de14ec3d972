"""Calendar-day windows in the corp's time zone, shared by the bitmap engine and the SQL reference.

"Within the last D days" counts today as the first day: from local midnight D − 1 days ago, with no upper
bound. A date comparison on the added day compares local calendar days.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from siyu.core.clock import now


def today(tz: ZoneInfo) -> dt.date:
    return now().astimezone(tz).date()


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The instant a local day starts (aware; the zone's offset at midnight)."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


def window_start_day(tz: ZoneInfo, days: int) -> dt.date:
    return today(tz) - dt.timedelta(days=days - 1)


def day_bounds(comparator: str, on: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """The first and the last local day a comparison with ``on`` admits (None: unbounded)."""
    one = dt.timedelta(days=1)
    return {
        ">=": (on, None),
        ">": (on + one, None),
        "<=": (None, on),
        "<": (None, on - one),
        "=": (on, on),
    }[comparator]
