"""Planning a mass message to customers: who sends to whom, and who is skipped and why.

WeCom delivers a mass message only through a staff member the customer is a friend of ("仅会推送给
最后跟客户进行聊天互动的企业成员", wecom-api.md §4.5), one ``add_msg_template`` per sender. Siyu chooses that
staff member among the customer's active relations (with staff who are active and may contact customers):

- ``recent`` (default): the one who chatted with the customer last, when Siyu has chat events for them —
  WeCom's own rule — else the relation added most recently;
- ``priority``: the first staff member of the corp's priority list the customer follows; customers following
  nobody on the list fall back to ``recent``.

Then the caps (``caps.py``) and quiet hours. The same function serves the preview (``reserve=False``: counts
only) and the send (``reserve=True``: the ledger counts the contacts, in the caller's transaction).

Relations are read as plain arrays (on PostgreSQL packed by the server into one binary value per column, read
by numpy without a Python object per row) and chosen with a sort, so planning a million customers costs well
under a second.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection
from pyroaring import BitMap

from siyu.broadcasts import caps
from siyu.broadcasts.audience import CustomerAudience, bitmap_of
from siyu.broadcasts.models import BroadcastSkip, CapPolicy, LedgerDay
from siyu.corps.models import Corp, Staff
from siyu.customers.models import Event, FollowRelation

# PostgreSQL's epoch for its binary timestamps (microseconds since 2000-01-01 UTC), in Unix milliseconds.
PG_EPOCH_MS = 946_684_800_000


@dataclass
class Plan:
    """Who receives (by sender) and who is skipped (by reason)."""

    at: dt.datetime
    audience: int
    by_staff: dict[int, BitMap]
    skipped: dict[str, BitMap]
    quiet_until: dt.datetime | None = None
    held: bool = False  # quiet hours: the send waits until ``quiet_until``

    @property
    def recipients(self) -> int:
        return sum(len(b) for b in self.by_staff.values())

    def skipped_counts(self) -> dict[str, int]:
        return {reason: len(self.skipped.get(reason, BitMap())) for reason in BroadcastSkip.Reason.values}

    def staff_counts(self) -> dict[int, int]:
        return {staff_id: len(members) for staff_id, members in self.by_staff.items() if members}

    def summary(self) -> dict[str, object]:
        """The numbers a broadcast keeps of its plan."""
        return {
            "audience": self.audience,
            "recipients": self.recipients,
            "skipped": self.skipped_counts(),
            "staff": {str(k): v for k, v in sorted(self.staff_counts().items())},
        }


@dataclass
class Columns:
    """Parallel arrays: customer ids, staff ids and a time (Unix ms) per row."""

    customer: np.ndarray
    staff: np.ndarray
    time: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _packed_columns(sql: str, params: list[Any]) -> Columns:
    """Three columns of a PostgreSQL query (customer id, staff id, a timestamp), each packed by the server
    into one bytea of big-endian 8-byte values: one row comes back, not a Python object per value (a million
    relations in a few hundred milliseconds, most of it the scan)."""
    import psycopg

    connection.ensure_connection()
    # Django's own cursors bind on the client and return text; a plain psycopg cursor can ask for binary.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        row = cursor.fetchone()
    if row is None or row[0] is None:
        empty = np.zeros(0, dtype=np.int64)
        return Columns(empty, empty, empty)
    customer, staff, time = (np.frombuffer(bytes(v), dtype=">i8").astype(np.int64) for v in row)
    return Columns(customer, staff, time // 1000 + PG_EPOCH_MS)


def _query_columns(sql: str, params: list[Any]) -> Columns:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return Columns(empty, empty, empty)
    table = np.array(rows, dtype=np.int64)
    return Columns(table[:, 0], table[:, 1], table[:, 2])


def _columns(table: str, time: str, where: str, params: list[Any]) -> Columns:
    """(customer_id, staff_id, ``time`` in Unix ms) of the rows of ``table`` matching ``where``."""
    name = connection.ops.quote_name(table)
    if connection.vendor == "postgresql":
        packed = "string_agg(int8send(customer_id), ''::bytea), string_agg(int8send(staff_id), ''::bytea), "
        packed += f"string_agg(timestamptz_send({time}), ''::bytea)"
        return _packed_columns(f"SELECT {packed} FROM {name} WHERE {where}", params)  # noqa: S608
    # SQLite keeps datetimes as ISO text; julianday gives fractional days, a few microseconds off: rounded to
    # the millisecond (truncating turned a whole second into the millisecond before it).
    epoch = f"CAST(ROUND((julianday({time}) - 2440587.5) * 86400000) AS INTEGER)"
    return _query_columns(f"SELECT customer_id, staff_id, {epoch} FROM {name} WHERE {where}", params)  # noqa: S608


def active_relations(corp: Corp) -> Columns:
    """(customer, staff, added_at in ms) of every active relation with staff who may send."""
    found = _columns(
        FollowRelation._meta.db_table,
        "added_at",
        "corp_id = %s AND status = %s",
        [corp.pk, FollowRelation.Status.ACTIVE.value],
    )
    # Staff are few: who may send is filtered here rather than joined in the scan.
    senders = Staff.objects.for_corp(corp).filter(status=Staff.Status.ACTIVE, has_contact_permission=True)
    allowed = _member_mask(found.staff, np.array(list(senders.values_list("pk", flat=True)), dtype=np.int64))
    if allowed.all():
        return found
    return Columns(found.customer[allowed], found.staff[allowed], found.time[allowed])


def last_chats(corp: Corp) -> Columns:
    """(customer, staff, time) of each customer's latest chat event with a staff member."""
    chats = _columns(
        Event._meta.db_table,
        "occurred_at",
        "corp_id = %s AND kind = %s AND customer_id IS NOT NULL AND staff_id IS NOT NULL",
        [corp.pk, Event.Kind.CHATTED.value],
    )
    if not len(chats.customer):
        return chats
    order = np.lexsort((chats.time, chats.customer))
    customers = chats.customer[order]
    last = np.ones(len(customers), dtype=bool)
    last[:-1] = customers[1:] != customers[:-1]
    return Columns(customers[last], chats.staff[order][last], chats.time[order][last])


def _distinct(ids: np.ndarray) -> np.ndarray:
    """The distinct values of an array of small non-negative ids (staff), sorted, without sorting them all."""
    seen = np.zeros(int(ids.max()) + 1, dtype=bool)
    seen[ids] = True
    return np.flatnonzero(seen)


def _member_mask(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Which ``values`` are in ``members`` (both non-negative ids): a lookup table over the ids' range, O(n)
    where ``np.isin`` sorts; falls back to ``np.isin`` when the range is far wider than the data."""
    if not len(values) or not len(members):
        return np.zeros(len(values), dtype=bool)
    top = int(max(values.max(), members.max())) + 1
    if top > 8 * (len(values) + len(members)) + 1_000_000:
        return np.isin(values, members)
    table = np.zeros(top, dtype=bool)
    table[members] = True
    return table[values]


def _chatted_last(customer: np.ndarray, staff: np.ndarray, chats: Columns) -> np.ndarray:
    """1 where (customer, staff) is the customer's last chat, else 0."""
    top = int(max(chats.customer.max(), customer.max())) + 1
    if top > 8 * (len(customer) + len(chats.customer)) + 1_000_000:  # sparse ids: compare keys instead
        keys = customer.astype(np.int64) * (1 << 32) + staff
        return np.isin(keys, chats.customer.astype(np.int64) * (1 << 32) + chats.staff).astype(np.int8)
    # Each customer's last chat partner by a lookup table over customer ids (-1: none).
    partner = np.full(top, -1, dtype=np.int64)
    partner[chats.customer] = chats.staff
    return (partner[customer] == staff).astype(np.int8)


def choose_senders(
    corp: Corp,
    candidates: BitMap,
    policy: CapPolicy,
    relations: Columns | None = None,
    chats: Columns | None = None,
) -> dict[int, BitMap]:
    """For each candidate who has a sender, the staff member who sends to them; grouped by staff id."""
    if not candidates:
        return {}
    rel = relations if relations is not None else active_relations(corp)
    if not len(rel.customer):
        return {}
    wanted = _member_mask(
        rel.customer, np.frombuffer(candidates.to_array(), dtype=np.uint32).astype(np.int64)
    )
    customer, staff, added = rel.customer[wanted], rel.staff[wanted], rel.time[wanted]
    if not len(customer):
        return {}
    # Staff as small dense numbers (a lookup table over their ids: no sort), cheap to rank and grouped by a
    # radix sort at the end (numpy sorts 16-bit keys by radix).
    staff_ids = _distinct(staff)
    lookup = np.zeros(int(staff_ids.max()) + 1, dtype=np.int32)
    lookup[staff_ids] = np.arange(len(staff_ids), dtype=np.int32)
    staff_index = lookup[staff].astype(np.int16 if len(staff_ids) < 2**15 else np.int32)
    # Most customers follow one sender: only those with several need choosing.
    counts = np.bincount(customer - customer.min())
    several = counts[customer - customer.min()] > 1
    if several.any():
        rows = np.flatnonzero(several)
        if chats is None:
            chats = last_chats(corp)
        chatted = np.zeros(len(rows), dtype=np.int8)
        if len(chats.customer):
            chatted = _chatted_last(customer[rows], staff[rows], chats)
        rank = np.zeros(len(rows), dtype=np.int64)
        if policy.sender_policy == CapPolicy.SenderPolicy.PRIORITY and policy.staff_priority:
            position = {int(s): i for i, s in enumerate(policy.staff_priority)}
            ranks = np.array([position.get(int(s), len(position)) for s in staff_ids], dtype=np.int64)
            rank = -ranks[staff_index[rows]]  # higher is better, like the other keys
        # The last row of each customer wins: the best rank, then the last chat, then the latest add.
        best = rows[np.lexsort((added[rows], chatted, rank, customer[rows]))]
        last = np.ones(len(best), dtype=bool)
        last[:-1] = customer[best][1:] != customer[best][:-1]
        keep = ~several
        keep[best[last]] = True
        customer, staff_index = customer[keep], staff_index[keep]
    # Grouped by sender; a stable sort keeps each sender's customers in id order when they were.
    by_sender = np.argsort(staff_index, kind="stable")
    customer, staff_index = customer[by_sender], staff_index[by_sender]
    bounds = np.flatnonzero(np.diff(staff_index)) + 1
    by_staff: dict[int, BitMap] = {}
    for chunk_staff, chunk_customers in zip(
        np.split(staff_index, bounds), np.split(customer, bounds), strict=True
    ):
        by_staff[int(staff_ids[chunk_staff[0]])] = bitmap_of(np.sort(chunk_customers))
    return by_staff


def plan_customers(
    *,
    corp: Corp,
    audience: CustomerAudience,
    at: dt.datetime,
    reserve: bool,
    relations: Columns | None = None,
) -> Plan:
    """The plan of a mass message to ``audience`` sent at ``at``; with ``reserve`` the caps count it."""
    policy = caps.policy_for(corp)
    skipped: dict[str, BitMap] = {}
    excluded = audience.excluded & audience.members
    if excluded:
        skipped[BroadcastSkip.Reason.EXCLUDED] = excluded
    candidates = audience.members - excluded
    by_staff = choose_senders(corp, candidates, policy, relations)
    reachable = BitMap.union(*by_staff.values()) if by_staff else BitMap()
    not_friend = candidates - reachable
    if not_friend:
        skipped[BroadcastSkip.Reason.NOT_FRIEND] = not_friend
    plan = Plan(at=at, audience=len(audience.members), by_staff=by_staff, skipped=skipped)
    quiet_end = caps.quiet_until(corp=corp, at=at, policy=policy)
    if quiet_end is not None:
        plan.quiet_until = quiet_end
        if policy.quiet_action == CapPolicy.QuietAction.SKIP:
            if reachable:
                skipped[BroadcastSkip.Reason.QUIET_HOURS] = reachable
            plan.by_staff = {}
            return plan
        # Waiting: the send happens when quiet hours end, and the caps are those of that moment.
        plan.held = True
        plan.at = at = quiet_end
    if not reachable:
        return plan
    check = caps.reserve if reserve else caps.check
    outcome = check(corp=corp, customer_ids=reachable, at=at, channel=LedgerDay.Channel.WECOM_MASS)
    for reason, members in outcome.refused.items():
        skipped[reason] = members
    refused = reachable - outcome.granted
    if refused:
        plan.by_staff = {s: m - refused for s, m in by_staff.items() if m - refused}
    return plan
