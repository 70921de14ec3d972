"""Property: the array-based sender choice equals a plain per-customer reading of the rules."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from siyu.broadcasts.models import CapPolicy
from siyu.broadcasts.planning import Columns, choose_senders
from tests import factories

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("SIYU_PROPERTY_EXAMPLES", "60"))

relation_rows = st.lists(
    st.tuples(st.integers(1, 30), st.integers(1, 6), st.integers(0, 50)),
    min_size=0,
    max_size=80,
    unique_by=lambda r: r[:2],
)
chat_rows = st.lists(st.tuples(st.integers(1, 30), st.integers(1, 6), st.integers(0, 50)), max_size=40)


def _reference(rows, chats, candidates, priority):
    """For each candidate: among their relations, the best by (priority rank, chatted last, latest add)."""
    last_chat: dict[int, tuple[int, int]] = {}
    for customer, staff, at in chats:  # the latest chat wins; on a tie in time, the later row (a stable sort)
        if customer not in last_chat or at >= last_chat[customer][1]:
            last_chat[customer] = (staff, at)
    position = {s: i for i, s in enumerate(priority)}
    chosen: dict[int, tuple[tuple[int, int, int], int]] = {}
    for customer, staff, added in rows:
        if customer not in candidates:
            continue
        key = (
            -position.get(staff, len(position)) if priority else 0,
            1 if last_chat.get(customer, (None,))[0] == staff else 0,
            added,
        )
        if customer not in chosen or key > chosen[customer][0]:
            chosen[customer] = (key, staff)
    by_staff: dict[int, set[int]] = {}
    for customer, (_key, staff) in chosen.items():
        by_staff.setdefault(staff, set()).add(customer)
    return by_staff


def _columns(rows) -> Columns:
    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return Columns(table[:, 0], table[:, 1], table[:, 2])


@pytest.fixture
def corp():
    return factories.make_corp("性质测试")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=relation_rows,
    chats=chat_rows,
    wanted=st.sets(st.integers(1, 30)),
    priority=st.lists(st.integers(1, 6), unique=True, max_size=3),
)
def test_array_choice_equals_the_plain_rules(corp, rows, chats, wanted, priority) -> None:
    # equal add times of one customer make "the latest add" ambiguous: such examples are left out
    times = [(c, a) for c, _s, a in rows]
    assume(len(set(times)) == len(times))
    policy = CapPolicy(
        corp=corp,
        sender_policy=CapPolicy.SenderPolicy.PRIORITY if priority else CapPolicy.SenderPolicy.RECENT,
        staff_priority=priority,
    )
    # the last chat of each customer as ``last_chats`` leaves it (one row per customer)
    latest: dict[int, tuple[int, int]] = {}
    for customer, staff, at in sorted(chats, key=lambda c: c[2]):
        latest[customer] = (staff, at)
    chat_columns = _columns([(c, s, a) for c, (s, a) in sorted(latest.items())])
    found = choose_senders(corp, BitMap(wanted), policy, relations=_columns(rows), chats=chat_columns)
    expected = _reference(rows, [(c, s, a) for c, (s, a) in latest.items()], wanted, priority)
    assert {k: set(v) for k, v in found.items()} == expected
