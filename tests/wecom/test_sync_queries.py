"""The statements a full sync spends on a batch of relations or of groups: set-based, so a page of a hundred
relations and a transaction of a thousand cost the same handful, as do one group and ten, pinned so that a
change writing row by row fails."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from siyu.customers.models import Event
from siyu.groups.models import GroupMember
from siyu.wecom import schemas as s
from siyu.wecom import sync
from siyu.wecom.mirror import Mirror
from siyu.wecom.models import SyncRun
from siyu.wecom.sync import run_sync, start_sync
from tests.wecom.inbound_support import simulated_wecom

pytestmark = [
    pytest.mark.django_db,
    # On PostgreSQL the bulk writes and reads bind on the server through psycopg's own cursors, which
    # Django's query capture does not see; there a batch of 64 rows or more is copied in (``core.bulk``).
    pytest.mark.skipif(connection.vendor != "sqlite", reason="counts statements through Django's cursor"),
]

# Statements of one part of a batch of relations new to Siyu, transaction control aside: the read of what
# Siyu has; customers, relations and their ``added`` events; the customers met again (one read, one update);
# relation tags, the customer tags present, customer tags and ``tagged`` events. A multi-row INSERT split by
# the database's parameter limit counts once. 8 measured, 10 when customers are met again.
MAX_STATEMENTS_PER_PART = 10

_TRANSACTION_CONTROL = re.compile(r"^(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|BEGIN|COMMIT)\b")
_INSERT = re.compile(r"^INSERT INTO \S+")


def _logical(statements: list[str]) -> list[str]:
    """The statements with consecutive chunks of one multi-row INSERT (same table) counted once."""
    merged: list[str] = []
    for sql in statements:
        insert = _INSERT.match(sql)
        if insert and merged and merged[-1] == insert.group(0):
            continue
        merged.append(insert.group(0) if insert else sql)
    return merged


def test_a_batch_of_relations_costs_a_fixed_number_of_statements(settings, monkeypatch):
    with simulated_wecom(settings, customers=400, staff=4, groups=1) as env:
        # given a first sync of a corp whose relations come in several pages
        parts: list[tuple[int, int]] = []
        apply = sync._apply_relations_page

        def counted(mirror, relations: Iterable[s.CustomerRelation]) -> None:
            entries = list(relations)
            with CaptureQueriesContext(connection) as queries:
                apply(mirror, entries)
            statements = [q["sql"] for q in queries if not _TRANSACTION_CONTROL.match(q["sql"])]
            parts.append((len(entries), len(_logical(statements))))

        monkeypatch.setattr(sync, "_apply_relations_page", counted)
        # when
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        turn = run_sync(run.pk)
        # then every part of every batch stayed within the budget, however many relations it held
        assert turn.run.status == SyncRun.Status.DONE, turn.run.error
        assert max(size for size, _count in parts) >= 150
        assert sum(size for size, _count in parts) == turn.run.counts["relations"]
        assert max(count for _size, count in parts) <= MAX_STATEMENTS_PER_PART, parts
        assert (
            Event.objects.for_corp(env.corp).filter(kind=Event.Kind.ADDED).count()
            == turn.run.counts["relations"]
        )


# Statements of one batch of groups, transaction control aside: the groups locked; the members they name; the
# new groups inserted or the known ones updated; their current stays (when some were known); the customers
# they name; stays changed, stays added, group-code attributions, ``group_joined`` events. 7 measured on a
# first sync, 5 on a second (one group at a time it was about 10 a group).
MAX_STATEMENTS_PER_GROUP_BATCH = 10


def test_a_batch_of_groups_costs_a_fixed_number_of_statements(settings, monkeypatch):
    with simulated_wecom(settings, customers=200, staff=4, groups=25) as env:
        # given two full syncs of a corp with more groups than one transaction takes
        batches: list[tuple[int, int]] = []
        apply = Mirror.group_chats

        def counted(self, chats, **kwargs):
            with CaptureQueriesContext(connection) as queries:
                changes = apply(self, chats, **kwargs)
            statements = [q["sql"] for q in queries if not _TRANSACTION_CONTROL.match(q["sql"])]
            batches.append((len(chats), len(_logical(statements))))
            return changes

        monkeypatch.setattr(Mirror, "group_chats", counted)
        for _ in range(2):
            # when
            run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
            turn = run_sync(run.pk)
            # then every batch stayed within the budget, however many groups it held
            assert turn.run.status == SyncRun.Status.DONE, turn.run.error
            assert max(size for size, _count in batches) >= 10
            assert sum(size for size, _count in batches) == turn.run.counts["groups"] == 25
            assert max(count for _size, count in batches) <= MAX_STATEMENTS_PER_GROUP_BATCH, batches
            batches.clear()
        assert GroupMember.objects.for_corp(env.corp).filter(left_at=None).count() == sum(
            len(chat.members) for chat in env.sim.state.groups.values() if not chat.dismissed
        )
