"""Channel analytics read from the rollup (``ChannelDay``): per period (day or ISO week) and per channel or
staff member — adds, deletions by either side, net, retention after 1/7/30 days, welcome success rate and
time from add to welcome. Shared by the console pages, their CSV export and the API.

Scope: the rollup rows are filtered by the actor's visible staff (``Actor.visible_staff_ids_q``), so a manager
or staff member sees their own people's numbers only, exactly as the adds they may list.

Definitions (also in the pages' notes):

- deletions of a period are relations (of recorded adds) that ended in it, whoever added them when;
- retention after N days is over the adds of the period whose N days have all passed ("cohorts"); a period
  whose adds are too recent has none;
- welcome success rate = sent / (sent + failed + expired); adds that needed no welcome (no welcome code from
  WeCom, none configured, corp not connected) or whose welcome is still queued are not counted;
- time to welcome is from the callback reaching Siyu to WeCom accepting the message; the median is read from
  the rollup's histogram (interpolated within its bucket).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, Sum

from siyu.channels import rollups
from siyu.channels.models import WELCOME_BUCKETS, Channel, ChannelDay
from siyu.core.clock import now
from siyu.core.errors import Invalid
from siyu.core.timewindows import zone
from siyu.corps.access import Actor
from siyu.corps.models import Staff

DAY, WEEK = "day", "week"
GRANULARITIES = (DAY, WEEK)
BY_CHANNEL, BY_STAFF = "channel", "staff"
BREAKDOWNS = (BY_CHANNEL, BY_STAFF)
MAX_DAYS = 731
DEFAULT_DAYS = 30
RETENTION = rollups.RETENTION_DAYS
BUCKET_FIELDS = tuple(f"welcome_w{i}" for i in range(len(WELCOME_BUCKETS) + 1))
# The counts a period's figures add up (retention and the histogram are lists, added beside them)
COUNT_FIELDS = (
    "adds",
    "deleted_by_staff",
    "deleted_by_customer",
    "welcome_sent",
    "welcome_failed",
    "welcome_expired",
    "welcome_not_needed",
    "welcome_pending",
    "welcome_seconds",
    "welcome_timed",
)
SUM_FIELDS = (*COUNT_FIELDS, *BUCKET_FIELDS)


@dataclass
class Figures:
    """The numbers of one period, channel, staff member or the whole selection."""

    adds: int = 0
    deleted_by_staff: int = 0
    deleted_by_customer: int = 0
    # per N in RETENTION: adds whose N days have passed, and how many of them were still friends
    cohort: list[int] = field(default_factory=lambda: [0] * len(RETENTION))
    retained: list[int] = field(default_factory=lambda: [0] * len(RETENTION))
    welcome_sent: int = 0
    welcome_failed: int = 0
    welcome_expired: int = 0
    welcome_not_needed: int = 0
    welcome_pending: int = 0
    welcome_seconds: float = 0.0
    welcome_timed: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(WELCOME_BUCKETS) + 1))

    @property
    def deletions(self) -> int:
        return self.deleted_by_staff + self.deleted_by_customer

    @property
    def net(self) -> int:
        return self.adds - self.deletions

    def retention(self, index: int) -> float | None:
        """Share of the matured adds still friends after ``RETENTION[index]`` days; None when none matured."""
        if not self.cohort[index]:
            return None
        return self.retained[index] / self.cohort[index]

    @property
    def welcome_rate(self) -> float | None:
        tried = self.welcome_sent + self.welcome_failed + self.welcome_expired
        return self.welcome_sent / tried if tried else None

    @property
    def welcome_mean(self) -> float | None:
        return self.welcome_seconds / self.welcome_timed if self.welcome_timed else None

    @property
    def welcome_median(self) -> float | None:
        """The median seconds to welcome, interpolated within its histogram bucket (the last bucket, above
        20 s, answers its lower bound)."""
        total = sum(self.buckets)
        if not total:
            return None
        half = total / 2
        seen = 0
        low = 0.0
        for index, n in enumerate(self.buckets):
            if n and seen + n >= half:
                if index >= len(WELCOME_BUCKETS):
                    return float(WELCOME_BUCKETS[-1])
                high = float(WELCOME_BUCKETS[index])
                return low + (high - low) * (half - seen) / n
            seen += n
            if index < len(WELCOME_BUCKETS):
                low = float(WELCOME_BUCKETS[index])
        return float(WELCOME_BUCKETS[-1])

    def add(self, other: Figures) -> None:
        for name in COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for i in range(len(RETENTION)):
            self.cohort[i] += other.cohort[i]
            self.retained[i] += other.retained[i]
        for i, n in enumerate(other.buckets):
            self.buckets[i] += n

    def as_dict(self) -> dict[str, Any]:
        """The figures for JSON (API, charts): counts, and rates as fractions (None: not known)."""
        return {
            "adds": self.adds,
            "deleted_by_staff": self.deleted_by_staff,
            "deleted_by_customer": self.deleted_by_customer,
            "deletions": self.deletions,
            "net": self.net,
            **{f"retention_{n}d": _round(self.retention(i)) for i, n in enumerate(RETENTION)},
            **{f"cohort_{n}d": self.cohort[i] for i, n in enumerate(RETENTION)},
            "welcome_sent": self.welcome_sent,
            "welcome_failed": self.welcome_failed,
            "welcome_expired": self.welcome_expired,
            "welcome_not_needed": self.welcome_not_needed,
            "welcome_pending": self.welcome_pending,
            "welcome_rate": _round(self.welcome_rate),
            "welcome_median_seconds": _round(self.welcome_median, 2),
            "welcome_mean_seconds": _round(self.welcome_mean, 2),
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class Query:
    """What to count: corp days ``start``–``end`` (inclusive), by day or ISO week, some channels (None: all;
    a channel group narrows), broken down by channel or staff member."""

    start: dt.date
    end: dt.date
    granularity: str = DAY
    breakdown: str = BY_CHANNEL
    channel_id: int | None = None
    group_id: int | None = None
    unknown_only: bool = False  # only the adds of no channel (其他/未知)


def default_range(actor: Actor, days: int = DEFAULT_DAYS) -> tuple[dt.date, dt.date]:
    today = now().astimezone(zone(actor.corp.time_zone)).date()
    return today - dt.timedelta(days=days - 1), today


def make_query(
    actor: Actor,
    *,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    granularity: str = "",
    breakdown: str = "",
    channel_id: int | None = None,
    group_id: int | None = None,
    unknown_only: bool = False,
) -> Query:
    """A query from request values; a bad one is refused with the field it is about."""
    first, last = default_range(actor)
    first = _date(start, "start") or first
    last = _date(end, "end") or last
    if first > last:
        raise Invalid("start must not be after end", field="start")
    if (last - first).days + 1 > MAX_DAYS:
        raise Invalid(f"at most {MAX_DAYS} days at once", field="end")
    granularity = granularity or DAY
    if granularity not in GRANULARITIES:
        raise Invalid("granularity must be day or week", field="granularity")
    breakdown = breakdown or BY_CHANNEL
    if breakdown not in BREAKDOWNS:
        raise Invalid("breakdown must be channel or staff", field="breakdown")
    return Query(
        start=first,
        end=last,
        granularity=granularity,
        breakdown=breakdown,
        channel_id=channel_id,
        group_id=group_id,
        unknown_only=unknown_only,
    )


def _date(value: str | dt.date | None, name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{name} must be a date (YYYY-MM-DD)", field=name) from None


def period_of(day: dt.date, granularity: str) -> dt.date:
    """The first day of the period holding ``day`` (Monday for an ISO week)."""
    if granularity == WEEK:
        return day - dt.timedelta(days=day.weekday())
    return day


def period_label(start: dt.date, granularity: str) -> str:
    if granularity == WEEK:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    return start.isoformat()


@dataclass
class Row:
    """A line of a table: a period or a channel / staff member, with its figures."""

    key: str
    label: str
    figures: Figures


@dataclass
class Stats:
    query: Query
    total: Figures
    periods: list[Row]
    breakdown: list[Row]
    pending_days: int = 0  # dirty days left for the worker (the numbers may lag that much)


def rows_for(actor: Actor, query: Query) -> Any:
    """The rollup rows the actor may read for the query."""
    rows = ChannelDay.objects.for_corp(actor.corp).filter(
        actor.visible_staff_ids_q(), day__gte=query.start, day__lte=query.end
    )
    if query.unknown_only:
        rows = rows.filter(channel_id__isnull=True)
    elif query.channel_id is not None:
        rows = rows.filter(channel_id=query.channel_id)
    elif query.group_id is not None:
        rows = rows.filter(channel__group_id=query.group_id)
    return rows


def _aggregates(today: dt.date) -> dict[str, Any]:
    # (named apart from the columns: an annotation may not shadow the field it sums)
    sums: dict[str, Any] = {f"s_{name}": Sum(name) for name in SUM_FIELDS}
    for n in RETENTION:
        # a cohort day's N days have all passed once today is at least N + 1 days later
        matured = Q(day__lte=today - dt.timedelta(days=n + 1))
        sums[f"s_cohort_{n}"] = Sum("adds", filter=matured)
        sums[f"s_retained_{n}"] = Sum(f"retained_{n}", filter=matured)
    return sums


def _figures(values: dict[str, Any]) -> Figures:
    f = Figures()
    for name in SUM_FIELDS:
        if name.startswith("welcome_w"):
            continue
        setattr(f, name, values.get(f"s_{name}") or 0)
    f.buckets = [values.get(f"s_{name}") or 0 for name in BUCKET_FIELDS]
    f.cohort = [values.get(f"s_cohort_{n}") or 0 for n in RETENTION]
    f.retained = [values.get(f"s_retained_{n}") or 0 for n in RETENTION]
    return f


def per_day(actor: Actor, query: Query) -> dict[dt.date, Figures]:
    """Figures per corp day (one grouped query over the rollup)."""
    today = now().astimezone(zone(actor.corp.time_zone)).date()
    grouped = rows_for(actor, query).values("day").annotate(**_aggregates(today)).order_by("day")
    return {row["day"]: _figures(row) for row in grouped}


def per_key(actor: Actor, query: Query) -> dict[int | None, Figures]:
    """Figures per channel (None: other / unknown) or per staff member (one grouped query)."""
    today = now().astimezone(zone(actor.corp.time_zone)).date()
    column = "channel_id" if query.breakdown == BY_CHANNEL else "staff_id"
    grouped = rows_for(actor, query).values(column).annotate(**_aggregates(today)).order_by()
    return {row[column]: _figures(row) for row in grouped}


def stats(actor: Actor, query: Query, *, settle: bool = True) -> Stats:
    """The whole picture for a page or the API: total, per period (every period of the range, empty ones
    included) and per channel or staff member (largest first). Settles the corp's dirty days first."""
    pending = 0
    if settle:
        rollups.settle(actor.corp, limit=rollups.PAGE_SETTLE_LIMIT)
        pending = rollups.pending_days(actor.corp)
    days = per_day(actor, query)
    periods: dict[dt.date, Figures] = {}
    day = query.start
    while day <= query.end:
        periods.setdefault(period_of(day, query.granularity), Figures())
        day += dt.timedelta(days=1)
    total = Figures()
    for day, figures in days.items():
        periods[period_of(day, query.granularity)].add(figures)
        total.add(figures)
    period_rows = [
        Row(key=start.isoformat(), label=period_label(start, query.granularity), figures=f)
        for start, f in sorted(periods.items())
    ]
    keyed = per_key(actor, query)
    names = _names(actor, query.breakdown, [k for k in keyed if k is not None])
    breakdown = [
        Row(key="" if key is None else str(key), label=names.get(key, str(key)), figures=f)
        for key, f in keyed.items()
    ]
    breakdown.sort(key=lambda r: (-r.figures.adds, r.label))
    return Stats(query=query, total=total, periods=period_rows, breakdown=breakdown, pending_days=pending)


def _names(actor: Actor, breakdown: str, ids: list[int]) -> dict[int | None, str]:
    from django.utils.translation import gettext as _

    names: dict[int | None, str] = {None: _("Other / unknown")}
    if breakdown == BY_CHANNEL:
        names.update(Channel.objects.for_corp(actor.corp).filter(pk__in=ids).values_list("pk", "name"))
    else:
        names.update(Staff.objects.for_corp(actor.corp).filter(pk__in=ids).values_list("pk", "name"))
    return names


# --- charts and CSV -----------------------------------------------------------------------------------------


def chart_data(result: Stats) -> dict[str, Any]:
    """What the page's charts draw: the line (adds, deletions, net per period) and the bars (per channel or
    staff member)."""
    return {
        "periods": [r.label for r in result.periods],
        "adds": [r.figures.adds for r in result.periods],
        "deletions": [r.figures.deletions for r in result.periods],
        "net": [r.figures.net for r in result.periods],
        "keys": [r.label for r in result.breakdown],
        "key_adds": [r.figures.adds for r in result.breakdown],
        "key_deletions": [r.figures.deletions for r in result.breakdown],
        "key_net": [r.figures.net for r in result.breakdown],
    }


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def csv_header(first: str) -> list[str]:
    from django.utils.translation import gettext as _

    return [
        first,
        _("Adds"),
        _("Deleted by staff"),
        _("Deleted by customer"),
        _("Net"),
        *[_("Retention after %(days)s days") % {"days": n} for n in RETENTION],
        _("Welcome success rate"),
        _("Median seconds to welcome"),
    ]


def csv_line(row: Row) -> list[str]:
    return [row.label, *cells(row.figures)]


def cells(f: Figures) -> list[str]:
    """The table's numbers after the label, as shown and exported."""
    return [
        str(f.adds),
        str(f.deleted_by_staff),
        str(f.deleted_by_customer),
        str(f.net),
        *[_percent(f.retention(i)) for i in range(len(RETENTION))],
        _percent(f.welcome_rate),
        _seconds(f.welcome_median),
    ]
