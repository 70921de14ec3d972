"""Keeping a corp's index true: full rebuilds, the tail of new rows, and saved copies in the database.

Where the truth is: the tables (customers, relations, tags, the timeline). The index is derived; every process
that evaluates segments holds one per corp, loaded from the newest saved copy (``IndexSnapshot``, written by
the worker) and brought forward by reading what was appended since. Nothing is shared in memory between
processes or machines, and a lost copy only costs a rebuild.

The tail. Every effect on a customer appends a timeline ``Event`` (one at a time or in bulk through
``core.bulk``), and new customers are new ``Customer`` rows. The tail reads both tables by id. Ids are handed
out when a row is inserted but become visible when its transaction commits, so a reader can see id 101 before
id 100: each read takes *every* row (of all corps, in one statement) above the cursor, and an id below the
highest seen that is not there is a *gap*, looked for again on every read until it shows up or
``SEGMENT_GAP_SECONDS`` pass (a rolled-back insert, or one refused by a unique key, never shows up). So no
committed row is missed and none is applied twice.

Applying rows: an event of a behaviour kind adds one occurrence (kind, local day); any event that may change
state (tagged, added, deleted, profile_changed, …) and any new customer marks the customer dirty, and dirty
customers are re-read from the tables in batches (``replace_state``), which is idempotent, so the order in
which their events arrive does not matter. A ``tag_deleted`` event drops the tag's bitmap.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from pyroaring import BitMap

from siyu.corps.models import Corp
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.segments.expressions import ACTIVITY_KINDS, BEHAVIOUR_KINDS
from siyu.segments.index import CorpIndex, Gap, StateRow
from siyu.segments.models import IndexSnapshot, IndexSnapshotChunk
from siyu.tags.models import CustomerTag

logger = logging.getLogger(__name__)

TRACKED_KINDS = frozenset(BEHAVIOUR_KINDS) | frozenset(ACTIVITY_KINDS)
# Events that never change what a customer's state bitmaps say (their behaviour is counted separately).
STATELESS_KINDS = frozenset(
    {
        "chatted",
        "purchased",
        "refunded",
        "visited",
        "group_joined",
        "group_left",
        "note_added",
        "remark_changed",
        "segment_entered",
        "segment_exited",
        "archive_approved",
        "transfer_failed",
    }
)
# Rows per tail read: one read of 10,000 narrow rows is ~20 ms on PostgreSQL here.
TAIL_BATCH = 10_000
# Customers re-read per batch: three queries with 2,000 ids each stay under SQLite's parameter limit.
REFRESH_BATCH = 2_000
# At a rebuild, ids this far below the highest are checked for gaps (transactions still open then): far
# more than the rows any corp appends during the longest transaction.
REBUILD_LOOKBACK = 100_000
# A gap query names at most this many id ranges (neighbouring ranges are merged, their other rows skipped).
MAX_GAP_RANGES = 64
# Saved copies are stored in pieces of 8 MiB.
CHUNK_BYTES = 8 * 1024 * 1024


@dataclass
class TailStats:
    """What one catch-up did."""

    events: int = 0
    customers: int = 0
    refreshed: int = 0
    updates: int = 0


def _gap_seconds() -> float:
    return cast(float, settings.SIYU["SEGMENT_GAP_SECONDS"])


def _ranges(gaps: BitMap) -> list[tuple[int, int]]:
    """Runs of consecutive ids, merged down to ``MAX_GAP_RANGES``."""
    runs: list[list[int]] = []
    for value in gaps:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    while len(runs) > MAX_GAP_RANGES:
        # merge the pair of neighbouring runs with the smallest hole between them
        holes = [runs[i + 1][0] - runs[i][1] for i in range(len(runs) - 1)]
        i = holes.index(min(holes))
        runs[i][1] = runs[i + 1][1]
        del runs[i + 1]
    return [(a, b) for a, b in runs]


def _all_gaps(generations: list[Gap]) -> BitMap:
    return BitMap.union(BitMap(), *(g.ids for g in generations))


def _xmax() -> int:
    """PostgreSQL: the first transaction id not yet started (after a read: every transaction that could
    hold an id the read did not see is older). 0 elsewhere."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cur:
        cur.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        return int(cur.fetchone()[0])


def _xmin() -> int:
    """PostgreSQL: the oldest transaction still running (older ones have all ended). 0 elsewhere."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cur:
        cur.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return int(cur.fetchone()[0])


# A gap is settled by PostgreSQL's transaction numbers only once it is this old: an id is drawn and its row
# written in the same statement, microseconds apart; two seconds leave no room for a writer between the two.
SETTLE_AFTER_SECONDS = 2.0


def _settled(generations: list[Gap], xmin: int) -> list[Gap]:
    """The gaps still open: those whose transactions may yet commit, within ``SEGMENT_GAP_SECONDS``."""
    moment = time.time()
    horizon = moment - _gap_seconds()
    kept = []
    for gap in generations:
        if not gap.ids:
            continue
        if gap.xmax and xmin >= gap.xmax and gap.first_seen <= moment - SETTLE_AFTER_SECONDS:
            continue  # every transaction that could have held these ids had ended before the last look
        if gap.first_seen < horizon:
            logger.info(
                "segment index: gave up on %d ids not committed within %.0f s", len(gap.ids), _gap_seconds()
            )
            continue
        kept.append(gap)
    return kept


def _tail(
    table: str, columns: str, cursor: int, generations: list[Gap]
) -> Iterator[tuple[list[tuple[Any, ...]], int]]:
    """Rows of ``table`` (all corps, id first, corp second) that appeared since the last read: the gaps
    that filled, then everything above ``cursor``. Yields (rows, new cursor); updates ``generations`` (the
    caller settles them with the xmin it read before)."""
    gaps = _all_gaps(generations)
    if gaps:
        ranges = _ranges(gaps)
        where = " OR ".join(["(id BETWEEN %s AND %s)"] * len(ranges))
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT {columns} FROM {table} WHERE {where}",  # noqa: S608 (table and columns are ours)
                [bound for pair in ranges for bound in pair],
            )
            found = [row for row in cur.fetchall() if row[0] in gaps]
        seen = BitMap(row[0] for row in found)
        for gap in generations:
            gap.ids.difference_update(seen)
        yield found, cursor
    while True:
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT {columns} FROM {table} WHERE id > %s ORDER BY id LIMIT %s",  # noqa: S608
                [cursor, TAIL_BATCH],
            )
            rows = cur.fetchall()
        if not rows:
            return
        highest = rows[-1][0]
        missing = BitMap()
        missing.add_range(cursor + 1, highest + 1)
        missing.difference_update(BitMap(row[0] for row in rows))
        if missing:
            generations.append(Gap(first_seen=time.time(), xmax=_xmax(), ids=missing))
        cursor = highest
        yield rows, cursor
        if len(rows) < TAIL_BATCH:
            return


def _table(model: type[Any]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def catch_up(index: CorpIndex) -> TailStats:
    """Apply what was appended since the index's cursors (see the module's docstring)."""
    stats = TailStats()
    before = index.updates
    dirty: set[int] = set()
    behaviour: dict[str, tuple[list[int], list[int]]] = {}
    dropped_tags: list[int] = []
    event_ids_of_deletions: list[int] = []
    corp_id = index.corp_id
    xmin = _xmin()  # before the gap reads: transactions older than it have all ended, their rows visible
    for rows, cursor in _tail(
        _table(Event), "id, corp_id, customer_id, kind, occurred_at", index.event_cursor, index.event_gaps
    ):
        index.event_cursor = cursor
        for event_id, event_corp, customer_id, kind, occurred_at in rows:
            if event_corp != corp_id:
                continue
            stats.events += 1
            if customer_id is None:
                if kind == Event.Kind.TAG_DELETED:
                    event_ids_of_deletions.append(event_id)
                continue
            if kind in TRACKED_KINDS:
                numbers, days = behaviour.setdefault(kind, ([], []))
                numbers.append(customer_id)
                days.append(index.day_of(_aware(occurred_at)))
            if kind not in STATELESS_KINDS:
                dirty.add(customer_id)
    for rows, cursor in _tail(_table(Customer), "id, corp_id", index.customer_cursor, index.customer_gaps):
        index.customer_cursor = cursor
        for customer_id, customer_corp in rows:
            if customer_corp == corp_id:
                stats.customers += 1
                dirty.add(customer_id)
    index.event_gaps = _settled(index.event_gaps, xmin)
    index.customer_gaps = _settled(index.customer_gaps, xmin)
    if event_ids_of_deletions:
        for payload in Event.objects.filter(pk__in=event_ids_of_deletions).values_list("payload", flat=True):
            if isinstance(payload, dict) and isinstance(payload.get("tag_id"), int):
                dropped_tags.append(payload["tag_id"])
    # A customer must be numbered before their behaviour is counted: new ones come with their state.
    pending = sorted(dirty)
    batch = _refresh_batch()
    for start in range(0, len(pending), batch):
        stats.refreshed += refresh_customers(index, pending[start : start + batch])
    for kind, (customer_ids, days) in behaviour.items():
        found = index.dense.lookup(np.asarray(customer_ids, dtype=np.int64))
        unknown = sorted({c for c, n in zip(customer_ids, found.tolist(), strict=True) if n < 0})
        if unknown:  # an event of a customer the index has not seen yet (their row was in a gap)
            refresh_customers(index, unknown)
            found = index.dense.lookup(np.asarray(customer_ids, dtype=np.int64))
        keep = found >= 0
        index.add_occurrences(kind, found[keep].tolist(), [d for d, k in zip(days, keep, strict=True) if k])
    for tag_id in dropped_tags:
        index.drop_tag(tag_id)
    stats.updates = index.updates - before
    return stats


def _aware(moment: Any) -> Any:
    """Raw cursors on SQLite give naive UTC text or datetimes; make them aware."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def _state_rows(corp_id: int, customer_ids: list[int]) -> tuple[list[Any], list[Any], list[Any]]:
    """(customers, relations, customer tags) rows of these customers. On PostgreSQL one array parameter per
    statement, bound in binary (a list of thousands of placeholders cost a third of a re-read: measured
    3.5 s for 20,000 customers at 1M in all, bench/segments.py)."""
    if connection.vendor == "postgresql":
        import psycopg

        connection.ensure_connection()
        ids = list(customer_ids)
        with psycopg.Cursor(connection.connection) as cur:
            found = []
            for sql in (
                "SELECT id, gender, type, custom_fields FROM customers_customer "
                "WHERE corp_id = %s AND id = ANY(%s)",
                "SELECT customer_id, staff_id, state, status, added_at FROM customers_followrelation "
                "WHERE corp_id = %s AND customer_id = ANY(%s)",
                "SELECT customer_id, tag_id FROM tags_customertag "
                "WHERE corp_id = %s AND customer_id = ANY(%s)",
            ):
                cur.execute(sql, [corp_id, ids], binary=True)
                found.append(cur.fetchall())
        return found[0], found[1], found[2]
    return (
        list(
            Customer.objects.filter(corp_id=corp_id, pk__in=customer_ids).values_list(
                "pk", "gender", "type", "custom_fields"
            )
        ),
        list(
            FollowRelation.objects.filter(corp_id=corp_id, customer_id__in=customer_ids).values_list(
                "customer_id", "staff_id", "state", "status", "added_at"
            )
        ),
        list(
            CustomerTag.objects.filter(corp_id=corp_id, customer_id__in=customer_ids).values_list(
                "customer_id", "tag_id"
            )
        ),
    )


def read_state(
    corp_id: int, index: CorpIndex, customer_ids: list[int]
) -> tuple[dict[int, StateRow], list[int]]:
    """The current state rows of these customers, and which of them no longer exist."""
    customers, relations, tags = _state_rows(corp_id, customer_ids)
    rows: dict[int, StateRow] = {}
    for pk, gender, kind, custom in customers:
        if isinstance(custom, str):  # SQLite's raw JSON text
            custom = json.loads(custom)
        rows[pk] = StateRow(
            gender=gender,
            type=kind,
            fields=[(k, v) for k, v in (custom or {}).items() if isinstance(v, str)],
        )
    active = FollowRelation.Status.ACTIVE
    for customer_id, staff_id, state, status, added_at in relations:
        row = rows.get(customer_id)
        if row is None:
            continue
        if status not in row.statuses:
            row.statuses.append(status)
        if status == active:
            row.active_staff.append(staff_id)
            if state:
                row.active_states.append(state)
            row.added_days.append(index.day_of(added_at))
    for customer_id, tag_id in tags:
        row = rows.get(customer_id)
        if row is not None:
            row.tags.append(tag_id)
    gone = [c for c in customer_ids if c not in rows]
    return rows, gone


def _refresh_batch() -> int:
    # PostgreSQL takes any number of ids in one array; SQLite's statements bind each id (≤ 32,766 variables).
    return 10_000 if connection.vendor == "postgresql" else REFRESH_BATCH


def refresh_customers(index: CorpIndex, customer_ids: list[int]) -> int:
    """Re-read these customers from the tables into the index; returns how many."""
    rows, gone = read_state(index.corp_id, index, customer_ids)
    index.replace_state(rows, gone)
    return len(customer_ids)


def _max_id(model: type[Any]) -> int:
    return int(model.objects.aggregate(m=Max("id"))["m"] or 0)


def _start_tail(model: type[Any]) -> tuple[int, list[Gap]]:
    """A cursor at the newest id, with the ids just below it that are not visible yet as gaps."""
    cursor = _max_id(model)
    low = max(0, cursor - REBUILD_LOOKBACK)
    missing = BitMap()
    if cursor > low:
        missing.add_range(low + 1, cursor + 1)
        missing.difference_update(
            BitMap(model.objects.filter(id__gt=low, id__lte=cursor).values_list("id", flat=True))
        )
    return cursor, ([Gap(first_seen=time.time(), xmax=_xmax(), ids=missing)] if missing else [])


def _chunks(ids: Iterable[int], size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    for value in ids:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def rebuild(corp: Corp) -> CorpIndex:
    """A corp's index from the tables. The cursors are taken first, so whatever commits during the rebuild is
    applied again by the next catch-up (state re-reads are idempotent; behaviour reads stop at the cursor)."""
    started = time.monotonic()
    index = CorpIndex(corp_id=corp.pk, time_zone=corp.time_zone)
    index.rebuilt_at = time.time()
    index.event_cursor, index.event_gaps = _start_tail(Event)
    index.customer_cursor, index.customer_gaps = _start_tail(Customer)
    customer_ids = Customer.objects.filter(corp_id=corp.pk, id__lte=index.customer_cursor).order_by("id")
    for batch in _chunks(customer_ids.values_list("id", flat=True).iterator(chunk_size=20_000), 20_000):
        for start in range(0, len(batch), _refresh_batch()):
            refresh_customers(index, batch[start : start + _refresh_batch()])
    skipped = _all_gaps(index.event_gaps)
    counts: dict[tuple[str, int, int], int] = {}
    events = (
        Event.objects.filter(
            corp_id=corp.pk, id__lte=index.event_cursor, kind__in=TRACKED_KINDS, customer_id__isnull=False
        )
        .values_list("id", "customer_id", "kind", "occurred_at")
        .iterator(chunk_size=20_000)
    )
    for event_id, customer_id, kind, occurred_at in events:
        if event_id in skipped:
            continue
        key = (kind, index.day_of(occurred_at), customer_id)
        counts[key] = counts.get(key, 0) + 1
    by_day: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
    for (kind, day, customer_id), count in counts.items():
        ids, ns = by_day.setdefault((kind, day), ([], []))
        ids.append(customer_id)
        ns.append(count)
    for (kind, day), (ids, ns) in by_day.items():
        numbers = index.dense.lookup(np.asarray(ids, dtype=np.int64))
        keep = numbers >= 0
        index.add_counts(kind, day, numbers[keep], np.asarray(ns, dtype=np.int64)[keep])
    index.updates = 0
    logger.info(
        "segment index of corp %s rebuilt: %d customers in %.1f s",
        corp.pk,
        len(index.universe),
        time.monotonic() - started,
    )
    return index


# --- saved copies ------------------------------------------------------------------------------------------


def save_snapshot(index: CorpIndex) -> IndexSnapshot:
    """Store the index in the database (the newest copy replaces older ones)."""
    data = index.serialize()
    with transaction.atomic():
        snapshot = IndexSnapshot.objects.create(
            corp_id=index.corp_id,
            event_cursor=index.event_cursor,
            rebuilt_at=dt.datetime.fromtimestamp(index.rebuilt_at, tz=dt.UTC),
            customers=len(index.universe),
            size_bytes=len(data),
            chunks=(len(data) + CHUNK_BYTES - 1) // CHUNK_BYTES,
        )
        IndexSnapshotChunk.objects.bulk_create(
            IndexSnapshotChunk(
                corp_id=index.corp_id, snapshot=snapshot, seq=seq, data=data[start : start + CHUNK_BYTES]
            )
            for seq, start in enumerate(range(0, len(data), CHUNK_BYTES))
        )
        IndexSnapshot.objects.for_corp(index.corp_id).exclude(pk=snapshot.pk).delete()
    index.updates = 0
    return snapshot


def newest_rebuild(corp: Corp) -> float:
    """When the newest saved copy's lineage was rebuilt (epoch seconds; 0 without a copy)."""
    moment = (
        IndexSnapshot.objects.for_corp(corp)
        .order_by("-created_at", "-id")
        .values_list("rebuilt_at", flat=True)
        .first()
    )
    return moment.timestamp() if moment is not None else 0.0


def _chunk_bytes(corp: Corp, snapshot: IndexSnapshot) -> list[bytes]:
    """The pieces of a saved copy, in order. On PostgreSQL in binary: bytea as text is hex, and decoding it
    took two thirds of a reload (measured at 1M customers: 0.23 s text, 0.07 s binary for 40 MB)."""
    if connection.vendor == "postgresql":
        import psycopg

        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cur:
            cur.execute(
                "SELECT data FROM segments_indexsnapshotchunk WHERE corp_id = %s AND snapshot_id = %s "
                "ORDER BY seq",
                [corp.pk, snapshot.pk],
                binary=True,
            )
            return [bytes(row[0]) for row in cur.fetchall()]
    return [
        bytes(p)
        for p in IndexSnapshotChunk.objects.for_corp(corp)
        .filter(snapshot=snapshot)
        .order_by("seq")
        .values_list("data", flat=True)
    ]


def load_snapshot(corp: Corp) -> CorpIndex | None:
    """The newest saved index of the corp, or None (none saved, or saved for another time zone or format)."""
    snapshot = IndexSnapshot.objects.for_corp(corp).order_by("-created_at", "-id").first()
    if snapshot is None:
        return None
    pieces = _chunk_bytes(corp, snapshot)
    if len(pieces) != snapshot.chunks:
        return None
    try:
        index = CorpIndex.deserialize(b"".join(pieces))
    except ValueError:
        logger.warning("segment index copy %s of corp %s is unreadable; rebuilding", snapshot.pk, corp.pk)
        return None
    if index.corp_id != corp.pk or index.time_zone != corp.time_zone:
        return None
    return index
