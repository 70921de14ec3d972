"""The channel analytics rollup (``ChannelDay``): kept by rebuilding whole (corp, day)s from ``ChannelAdd``.

Every write that changes what a day's numbers would be marks that day dirty (``ChannelDayDirty``) in its own
transaction: an add recorded (its day, and its relation's end if it already ended), a welcome outcome (the
add's day), a relation ended (the add's day for retention, the end's day for deletions). ``settle`` rebuilds
the dirty days — the worker's beat every ``SETTLE_EVERY``, and the stats pages and API for their corp before
reading — and ``rebuild`` recomputes a corp's whole history (``siyu channels rebuild-stats``).

A day's rebuild locks its dirty row first. Marking is an upsert that updates the row, so a writer still in
its transaction holds that lock and the rebuild waits for its commit, then reads what it wrote; a writer that
marks after the rebuild took the lock inserts the row again once it is gone. Either way the last change of a
day is always rolled up. Days are the corp's calendar days (``Corp.time_zone``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction

from siyu.channels.models import WELCOME_BUCKETS, ChannelAdd, ChannelDay, ChannelDayDirty
from siyu.core.bulk import insert_rows
from siyu.core.clock import now
from siyu.core.timewindows import zone
from siyu.corps.models import Corp

SETTLE_EVERY = dt.timedelta(seconds=10)
SETTLE_LIMIT = 200  # days per pass of the beat
PAGE_SETTLE_LIMIT = 31  # days a page rebuilds before reading; more waits for the worker
RETENTION_DAYS = (1, 7, 30)
REBUILD_CHUNK = 20_000

_SENT = ChannelAdd.Welcome.SENT
_FAILED = {ChannelAdd.Welcome.REJECTED, ChannelAdd.Welcome.FAILED}
_EXPIRED = ChannelAdd.Welcome.EXPIRED
_PENDING = ChannelAdd.Welcome.QUEUED
_BY_STAFF = "staff"


def local_day(moment: dt.datetime, tz: dt.tzinfo) -> dt.date:
    return moment.astimezone(tz).date()


def day_bounds(day: dt.date, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """The instants a corp day starts and ends (daylight saving shifts included)."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


def bucket_of(seconds: float) -> int:
    for index, bound in enumerate(WELCOME_BUCKETS):
        if seconds <= bound:
            return index
    return len(WELCOME_BUCKETS)


# --- marking ------------------------------------------------------------------------------------------------


def mark(corp_id: int, days: Iterable[dt.date]) -> None:
    """Mark days of a corp for rebuilding, inside the caller's transaction (see the module for why an
    upsert)."""
    rows = [ChannelDayDirty(corp_id=corp_id, day=day, marked_at=now()) for day in sorted(set(days))]
    if rows:
        ChannelDayDirty.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["corp", "day"], update_fields=["marked_at"]
        )


def _corp_zone(corp: Corp | int) -> dt.tzinfo:
    if isinstance(corp, Corp):
        return zone(corp.time_zone)
    return zone(Corp.objects.filter(pk=corp).values_list("time_zone", flat=True).first() or "UTC")


def mark_adds(corp: Corp | int, moments: Iterable[dt.datetime | None]) -> None:
    """Mark the days of these instants (adds, ends, welcome outcomes' adds)."""
    tz = _corp_zone(corp)
    corp_id = corp.pk if isinstance(corp, Corp) else corp
    mark(corp_id, {local_day(m, tz) for m in moments if m is not None})


def relation_ended(*, corp_id: int, relation_id: int, by: str, at: dt.datetime, **_: object) -> None:
    """Receiver of ``customers.signals.relation_ended`` (inside the ending transaction): the add learns when
    and by whom, and both its day (retention) and the end's day (deletions) are marked."""
    add = ChannelAdd.objects.for_corp(corp_id).filter(relation_id=relation_id).only("pk", "added_at").first()
    if add is None:
        return
    ChannelAdd.objects.filter(pk=add.pk).update(ended_at=at, ended_by=by)
    mark_adds(corp_id, [add.added_at, at])


# --- computing ----------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """The numbers of one (day, channel, staff) while they are counted."""

    adds: int = 0
    deleted_by_staff: int = 0
    deleted_by_customer: int = 0
    retained: list[int] = field(default_factory=lambda: [0] * len(RETENTION_DAYS))
    welcome_sent: int = 0
    welcome_failed: int = 0
    welcome_expired: int = 0
    welcome_not_needed: int = 0
    welcome_pending: int = 0
    welcome_seconds: float = 0.0
    welcome_timed: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(WELCOME_BUCKETS) + 1))


Key = tuple[dt.date, int | None, int]
AddRow = tuple[dt.datetime, int | None, int, str, dt.datetime | None, dt.datetime | None, dt.datetime | None]
EndRow = tuple[dt.datetime, int | None, int, str]
ADD_FIELDS = (
    "added_at",
    "channel_id",
    "staff_id",
    "welcome_status",
    "received_at",
    "welcome_sent_at",
    "ended_at",
)
END_FIELDS = ("ended_at", "channel_id", "staff_id", "ended_by")


def aggregate(adds: Iterable[AddRow], ends: Iterable[EndRow], tz: dt.tzinfo) -> dict[Key, Cell]:
    """Count adds (by their day) and ends (by theirs) per (day, channel, staff)."""
    cells: dict[Key, Cell] = {}
    spans = [dt.timedelta(days=n) for n in RETENTION_DAYS]
    for added_at, channel_id, staff_id, status, received_at, sent_at, ended_at in adds:
        key = (local_day(added_at, tz), channel_id, staff_id)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell()
        cell.adds += 1
        for index, span in enumerate(spans):
            if ended_at is None or ended_at >= added_at + span:
                cell.retained[index] += 1
        if status == _SENT:
            cell.welcome_sent += 1
            if sent_at is not None:
                seconds = max(0.0, (sent_at - (received_at or added_at)).total_seconds())
                cell.welcome_seconds += seconds
                cell.welcome_timed += 1
                cell.buckets[bucket_of(seconds)] += 1
        elif status in _FAILED:
            cell.welcome_failed += 1
        elif status == _EXPIRED:
            cell.welcome_expired += 1
        elif status == _PENDING:
            cell.welcome_pending += 1
        else:
            cell.welcome_not_needed += 1
    for ended_at, channel_id, staff_id, by in ends:
        key = (local_day(ended_at, tz), channel_id, staff_id)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell()
        if by == _BY_STAFF:
            cell.deleted_by_staff += 1
        else:
            cell.deleted_by_customer += 1
    return cells


DAY_COLUMNS = (
    "corp", "day", "channel", "staff", "adds", "deleted_by_staff", "deleted_by_customer",
    "retained_1", "retained_7", "retained_30", "welcome_sent", "welcome_failed", "welcome_expired",
    "welcome_not_needed", "welcome_pending", "welcome_seconds", "welcome_timed",
    *(f"welcome_w{i}" for i in range(len(WELCOME_BUCKETS) + 1)),
)  # fmt: skip


def _write(corp_id: int, cells: dict[Key, Cell]) -> None:
    """Insert the cells as rollup rows, set-based (``COPY`` on PostgreSQL for many)."""
    rows = [
        (
            corp_id, day, channel_id, staff_id, c.adds, c.deleted_by_staff, c.deleted_by_customer,
            *c.retained, c.welcome_sent, c.welcome_failed, c.welcome_expired, c.welcome_not_needed,
            c.welcome_pending, c.welcome_seconds, c.welcome_timed, *c.buckets,
        )
        for (day, channel_id, staff_id), c in cells.items()
    ]  # fmt: skip
    insert_rows(ChannelDay, DAY_COLUMNS, rows)


def rebuild_day(corp: Corp, day: dt.date) -> int:
    """Recompute one corp day's rollup rows from ``ChannelAdd``; returns how many rows it has now."""
    tz = zone(corp.time_zone)
    start, end = day_bounds(day, tz)
    with transaction.atomic():
        dirty = list(ChannelDayDirty.objects.for_corp(corp).select_for_update().filter(day=day))
        adds = ChannelAdd.objects.for_corp(corp)
        cells = aggregate(
            adds.filter(added_at__gte=start, added_at__lt=end).values_list(*ADD_FIELDS),
            adds.filter(ended_at__gte=start, ended_at__lt=end).values_list(*END_FIELDS),
            tz,
        )
        ChannelDay.objects.for_corp(corp).filter(day=day).delete()
        _write(corp.pk, cells)
        if dirty:
            ChannelDayDirty.objects.filter(pk__in=[d.pk for d in dirty]).delete()
    return len(cells)


def settle(corp: Corp | None = None, *, limit: int = SETTLE_LIMIT) -> int:
    """Rebuild the dirty days (of one corp, or of all), oldest mark first; returns how many."""
    pending = ChannelDayDirty.objects.all() if corp is None else ChannelDayDirty.objects.for_corp(corp)
    marks = list(pending.order_by("marked_at", "id").values_list("corp_id", "day")[:limit])
    corps = {c.pk: c for c in Corp.objects.filter(pk__in={corp_id for corp_id, _day in marks})}
    for corp_id, day in marks:
        rebuild_day(corps[corp_id], day)
    return len(marks)


def pending_days(corp: Corp) -> int:
    return ChannelDayDirty.objects.for_corp(corp).count()


def rebuild(corp: Corp) -> int:
    """Recompute a corp's whole rollup in one pass over its adds; returns the rows written."""
    tz = zone(corp.time_zone)
    adds = ChannelAdd.objects.for_corp(corp)
    with transaction.atomic():
        # Marks made before this point are covered (their writers have committed once the lock is ours);
        # later ones stay for ``settle``.
        covered = list(
            ChannelDayDirty.objects.for_corp(corp).select_for_update().values_list("pk", flat=True)
        )
        cells = aggregate(
            adds.order_by().values_list(*ADD_FIELDS).iterator(chunk_size=REBUILD_CHUNK),
            adds.filter(ended_at__isnull=False)
            .order_by()
            .values_list(*END_FIELDS)
            .iterator(chunk_size=REBUILD_CHUNK),
            tz,
        )
        ChannelDay.objects.for_corp(corp).delete()
        _write(corp.pk, cells)
        ChannelDayDirty.objects.filter(pk__in=covered).delete()
    return len(cells)


def settle_job() -> None:
    settle()
