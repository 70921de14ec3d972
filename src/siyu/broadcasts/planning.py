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

Relations are read as plain arrays (on PostgreSQL a binary ``COPY``, parsed by numpy without a Python object
per row) and chosen with a sort, so planning a million customers costs well under a second.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from django.db import connection
from pyroaring import BitMap

from siyu.broadcasts import caps
from siyu.broadcasts.audience import CustomerAudience, bitmap_of
from siyu.broadcasts.models import BroadcastSkip, CapPolicy, LedgerDay
from siyu.corps.models import Corp, Staff
from siyu.customers.models import Event, FollowRelation

# PostgreSQL's binary COPY: an 11-byte signature, 4 bytes of flags and 4 of header extension; a tuple is a
# 2-byte field count and, per field, a 4-byte length and the value; a 2-byte -1 ends the data.
COPY_HEADER = 19
COPY_TRAILER = 2
ROW_DTYPE = np.dtype(
    [("n", ">i2"), ("l0", ">i4"), ("c", ">i8"), ("l1", ">i4"), ("s", ">i8"), ("l2", ">i4"), ("t", ">i8")]
)


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
class _Columns:
    customer: np.ndarray
    staff: np.ndarray
    time: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _copy_columns(sql: str) -> _Columns:
    """Three bigint columns of a query through PostgreSQL's binary COPY (values must not be NULL)."""
    connection.ensure_connection()
    raw = connection.connection
    chunks: list[bytes] = []
    with raw.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)") as copy:
        for data in copy:
            chunks.append(bytes(data))
    buffer = b"".join(chunks)
    count = (len(buffer) - COPY_HEADER - COPY_TRAILER) // ROW_DTYPE.itemsize
    if count <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Columns(empty, empty, empty)
    rows = np.frombuffer(buffer, dtype=ROW_DTYPE, count=count, offset=COPY_HEADER)
    return _Columns(rows["c"].astype(np.int64), rows["s"].astype(np.int64), rows["t"].astype(np.int64))


def _query_columns(sql: str) -> _Columns:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return _Columns(empty, empty, empty)
    table = np.array(rows, dtype=np.int64)
    return _Columns(table[:, 0], table[:, 1], table[:, 2])


def _epoch(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM {column}) * 1000 AS bigint)"
    # SQLite keeps datetimes as ISO text; julianday gives fractional days.
    return f"CAST((julianday({column}) - 2440587.5) * 86400000 AS INTEGER)"


def _columns(sql: str) -> _Columns:
    return _copy_columns(sql) if connection.vendor == "postgresql" else _query_columns(sql)


def active_relations(corp: Corp) -> _Columns:
    """(customer, staff, added_at in ms) of every active relation with staff who may send."""
    relation = connection.ops.quote_name(FollowRelation._meta.db_table)
    staff = connection.ops.quote_name(Staff._meta.db_table)
    corp_id = int(corp.pk)
    # Only integers and the models' own names are formatted in.
    sql = (
        f"SELECT r.customer_id, r.staff_id, {_epoch('r.added_at')} FROM {relation} r "  # noqa: S608
        f"JOIN {staff} s ON s.id = r.staff_id "
        f"WHERE r.corp_id = {corp_id} AND r.status = '{FollowRelation.Status.ACTIVE.value}' "
        f"AND s.status = '{Staff.Status.ACTIVE.value}' AND s.has_contact_permission"
    )
    return _columns(sql)


def last_chats(corp: Corp) -> _Columns:
    """(customer, staff, time) of each customer's latest chat event with a staff member."""
    event = connection.ops.quote_name(Event._meta.db_table)
    corp_id = int(corp.pk)
    sql = (
        f"SELECT customer_id, staff_id, {_epoch('occurred_at')} FROM {event} "  # noqa: S608
        f"WHERE corp_id = {corp_id} AND kind = '{Event.Kind.CHATTED.value}' "
        "AND customer_id IS NOT NULL AND staff_id IS NOT NULL"
    )
    chats = _columns(sql)
    if not len(chats.customer):
        return chats
    order = np.lexsort((chats.time, chats.customer))
    customers = chats.customer[order]
    last = np.ones(len(customers), dtype=bool)
    last[:-1] = customers[1:] != customers[:-1]
    return _Columns(customers[last], chats.staff[order][last], chats.time[order][last])


def _keys(customer: np.ndarray, staff: np.ndarray) -> np.ndarray:
    return customer.astype(np.int64) * (1 << 32) + staff.astype(np.int64)


def choose_senders(
    corp: Corp, candidates: BitMap, policy: CapPolicy, relations: _Columns | None = None
) -> dict[int, BitMap]:
    """For each candidate who has a sender, the staff member who sends to them; grouped by staff id."""
    if not candidates:
        return {}
    rel = relations if relations is not None else active_relations(corp)
    if not len(rel.customer):
        return {}
    wanted = np.isin(rel.customer, np.frombuffer(candidates.to_array(), dtype=np.uint32))
    customer, staff, added = rel.customer[wanted], rel.staff[wanted], rel.time[wanted]
    if not len(customer):
        return {}
    chats = last_chats(corp)
    chatted = np.zeros(len(customer), dtype=np.int8)
    if len(chats.customer):
        chatted = np.isin(_keys(customer, staff), _keys(chats.customer, chats.staff)).astype(np.int8)
    rank = np.zeros(len(customer), dtype=np.int64)
    if policy.sender_policy == CapPolicy.SenderPolicy.PRIORITY and policy.staff_priority:
        position = {int(s): i for i, s in enumerate(policy.staff_priority)}
        unique, inverse = np.unique(staff, return_inverse=True)
        ranks = np.array([position.get(int(s), len(position)) for s in unique], dtype=np.int64)
        rank = -ranks[inverse]  # higher is better, like the other keys
    # The last row of each customer wins: the best rank, then the last chat, then the latest add.
    best = np.lexsort((added, chatted, rank, customer))
    customer, staff = customer[best], staff[best]
    last = np.ones(len(customer), dtype=bool)
    last[:-1] = customer[1:] != customer[:-1]
    customer, staff = customer[last], staff[last]
    by_staff: dict[int, BitMap] = {}
    by_sender = np.argsort(staff, kind="stable")  # customers stay sorted within each staff member
    staff, customer = staff[by_sender], customer[by_sender]
    bounds = np.flatnonzero(np.diff(staff)) + 1
    for chunk_staff, chunk_customers in zip(np.split(staff, bounds), np.split(customer, bounds), strict=True):
        by_staff[int(chunk_staff[0])] = bitmap_of(chunk_customers)
    return by_staff


def plan_customers(
    *,
    corp: Corp,
    audience: CustomerAudience,
    at: dt.datetime,
    reserve: bool,
    relations: _Columns | None = None,
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
