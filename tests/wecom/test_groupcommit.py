"""Group commit of callbacks: each stored once and acknowledged only after its batch commits; failures → 503.

These tests need committed data visible to the committer's own connection, hence ``transaction=True``. On
PostgreSQL a table lock holds the first batch back while the others queue, so batch composition is certain;
on SQLite rows are submitted together and the assertions hold whatever the batches turn out to be.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection, transaction
from django.test import Client

from siyu.wecom import groupcommit
from siyu.wecom.groupcommit import GroupCommitter, NotStored
from siyu.wecom.inbox import dedupe_key
from siyu.wecom.models import InboxEvent
from tests.wecom.inbound_support import A_CORPID, callback_corp, envelope, event_xml

pytestmark = pytest.mark.django_db(transaction=True)

POSTGRES = connection.vendor == "postgresql"


def _event(n: int, create_time: int = 1700000000) -> bytes:
    return event_xml(
        "change_external_contact",
        "add_external_contact",
        create_time=create_time,
        UserID="wangfang",
        ExternalUserID=f"wmGroup{n:04d}",
    ).encode()


@pytest.fixture
def committer() -> Iterator[GroupCommitter]:
    one = GroupCommitter(max_rows=100)
    yield one
    one.stop()


@pytest.fixture
def process_committer(settings: Any) -> Iterator[None]:
    """The receiver's own path with group commit on, whatever the database; its thread is stopped after."""
    settings.SIYU = {**settings.SIYU, "WECOM_GROUP_COMMIT": True}
    yield
    groupcommit.shutdown()


def _queued(committer: GroupCommitter) -> int:
    with committer._lock:
        return len(committer._waiting)


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _one_batch(
    committer: GroupCommitter, first: Callable[[], Any], calls: list[Callable[[], Any]]
) -> list[Any]:
    """Run ``first``, then ``calls`` at once; returns the calls' results (or exceptions).

    On PostgreSQL the calls certainly form one batch: ``first``'s batch is held by a table lock until they all
    wait behind it.
    """
    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.extend(_in_threads(calls)))
    leader = threading.Thread(target=first)
    if not POSTGRES:
        leader.start()
        leader.join(timeout=30)
        runner.start()
        runner.join(timeout=30)
        return results
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {InboxEvent._meta.db_table} IN EXCLUSIVE MODE")
        leader.start()
        _wait_for(lambda: committer._thread is not None and _queued(committer) == 0)  # taken, and blocked
        runner.start()
        _wait_for(lambda: _queued(committer) == len(calls))
    leader.join(timeout=30)
    runner.join(timeout=30)
    return results


def _in_threads(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once, one thread each; returns each one's result or the exception it raised."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index]()
        except Exception as exc:  # the test looks at what each caller got
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _store(committer: GroupCommitter, corp_id: int, plaintext: bytes) -> Callable[[], Any]:
    return lambda: committer.store(corp_id=corp_id, plaintext=plaintext, timeout=20)


def test_concurrent_callbacks_are_each_stored_once_in_few_batches(committer):
    # given a corp and 20 distinct events
    corp, _crypto = callback_corp()
    plaintexts = [_event(n) for n in range(20)]
    # when 19 of them arrive together while the first one's batch commits
    stored = _one_batch(
        committer,
        _store(committer, corp.pk, plaintexts[0]),
        [_store(committer, corp.pk, p) for p in plaintexts[1:]],
    )
    # then every one was new, and each is in the inbox exactly once, pending for the worker
    assert [s.created for s in stored] == [True] * 19
    rows = InboxEvent.objects.for_corp(corp)
    assert sorted(rows.values_list("dedupe_key", flat=True)) == sorted(dedupe_key(p) for p in plaintexts)
    assert set(rows.values_list("status", flat=True)) == {InboxEvent.Status.PENDING}
    assert committer.rows == 20
    if POSTGRES:  # the held first batch, then one batch for the 19 that waited behind it
        assert committer.batches == 2


@pytest.mark.parametrize(
    "processes",
    [
        1,
        pytest.param(
            2,
            marks=pytest.mark.skipif(
                not POSTGRES,
                reason="SQLite's shared-cache test database refuses a second writer instead of waiting",
            ),
        ),
    ],
)
def test_concurrent_duplicates_are_stored_once(committer, processes):
    # given one event delivered 6 times at once, to one or two web processes (each with its own committer)
    corp, _crypto = callback_corp()
    committers = [committer] + [GroupCommitter(max_rows=100) for _ in range(processes - 1)]
    plaintext = _event(1)
    try:
        # when
        results = _in_threads([_store(committers[n % processes], corp.pk, plaintext) for n in range(6)])
    finally:
        for other in committers[1:]:
            other.stop()
    # then every delivery is acknowledged, exactly one of them as new, and one row exists
    assert not [r for r in results if isinstance(r, Exception)]
    assert sum(1 for r in results if r.created) == 1
    assert InboxEvent.objects.for_corp(corp).count() == 1


def test_a_redelivery_of_a_worked_event_puts_it_back_in_the_queue(committer):
    # given an event stored and worked
    corp, _crypto = callback_corp()
    plaintext = _event(1)
    assert committer.store(corp_id=corp.pk, plaintext=plaintext, timeout=20).created
    InboxEvent.objects.for_corp(corp).update(status=InboxEvent.Status.DONE)
    # when the same message arrives again
    again = committer.store(corp_id=corp.pk, plaintext=plaintext, timeout=20)
    # then it is a duplicate, and the stored row is pending again (see inbox.work_again)
    assert not again.created and again.pending
    row = InboxEvent.objects.for_corp(corp).get()
    assert row.status == InboxEvent.Status.PENDING


def test_a_row_the_database_refuses_does_not_take_its_batch_down(committer):
    # given good events, and one for a corp that no longer exists (its foreign key fails at commit)
    corp, _crypto = callback_corp()
    gone, _ = callback_corp(corpid="wwgonecorp0001")
    gone_id = gone.pk
    gone.delete()
    calls = [_store(committer, corp.pk, _event(n)) for n in range(5)] + [
        _store(committer, gone_id, _event(99))
    ]
    # when they arrive together (on PostgreSQL: certainly in one batch)
    results = _one_batch(committer, _store(committer, corp.pk, _event(100)), calls)
    # then the good ones are stored and acknowledged; only the bad one is refused
    assert [r.created for r in results[:5]] == [True] * 5
    assert isinstance(results[5], NotStored)
    assert InboxEvent.objects.filter(corp_id=corp.pk).count() == 6
    assert not InboxEvent.objects.filter(corp_id=gone_id).exists()


@pytest.mark.skipif(not POSTGRES, reason="SQLite stores a NUL byte in text")
def test_a_row_refused_inside_the_pipeline_does_not_take_its_batch_down(committer):
    # given good events, and an authentic but unreadable message with a NUL byte, which PostgreSQL's text
    # type cannot hold (psycopg refuses it while the batch is being sent)
    corp, _crypto = callback_corp()
    calls = [_store(committer, corp.pk, _event(n)) for n in range(4)] + [
        _store(committer, corp.pk, b"bad\x00xml")
    ]
    # when they arrive together, in one batch
    results = _one_batch(committer, _store(committer, corp.pk, _event(100)), calls)
    # then the good ones are stored and acknowledged, the bad one is not, and the connection still works
    assert [r.created for r in results[:4]] == [True] * 4
    assert isinstance(results[4], NotStored)
    assert committer.store(corp_id=corp.pk, plaintext=_event(101), timeout=20).created
    assert InboxEvent.objects.for_corp(corp).count() == 6


def test_a_failed_batch_answers_503_to_every_waiter_and_the_redeliveries_are_stored(
    client, process_committer
):
    # given a corp, and an inbox table the database cannot write (as good as down for this statement)
    corp, crypto = callback_corp()
    table = InboxEvent._meta.db_table
    plaintexts = [_event(n) for n in range(8)]
    deliveries = [envelope(crypto, p) for p in plaintexts]

    def post(query: dict[str, str], body: bytes) -> Callable[[], int]:
        url = f"/wecom/callback/{A_CORPID}/?{urlencode(query)}"
        return lambda: Client().post(url, data=body, content_type="text/xml").status_code

    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO wecom_inbox_away")
    try:
        # when 8 callbacks arrive at once
        statuses = _in_threads([post(q, b) for q, b in deliveries])
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE wecom_inbox_away RENAME TO {table}")
    # then every one of them is told to retry, and nothing is stored
    assert statuses == [503] * 8
    assert not InboxEvent.objects.exists()
    # when WeCom delivers them again (freshly encrypted) once the database is back
    again = _in_threads([post(*envelope(crypto, p)) for p in plaintexts])
    # then each is acknowledged and stored once
    assert again == [200] * 8
    assert InboxEvent.objects.for_corp(corp).count() == 8


@pytest.mark.skipif(not POSTGRES, reason="terminates a PostgreSQL backend")
def test_a_lost_connection_fails_its_batch_and_the_next_batch_reconnects(committer):
    # given a committer whose connection the server then drops (a restart, a failover)
    corp, _crypto = callback_corp()
    assert committer.store(corp_id=corp.pk, plaintext=_event(1), timeout=20).created
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    # when the next callback arrives, then its batch fails on the dead connection: not acknowledged
    with pytest.raises(NotStored):
        committer.store(corp_id=corp.pk, plaintext=_event(2), timeout=20)
    # when WeCom delivers it again, then the next batch reconnects and stores it
    assert committer.store(corp_id=corp.pk, plaintext=_event(2), timeout=20).created
    assert InboxEvent.objects.for_corp(corp).count() == 2


def test_a_row_not_committed_in_time_is_not_acknowledged(committer):
    # given a committer that cannot commit (on PostgreSQL: the table is locked)
    corp, _crypto = callback_corp()
    if not POSTGRES:
        pytest.skip("needs a lock that makes a writer wait")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {InboxEvent._meta.db_table} IN EXCLUSIVE MODE")
        # when a callback waits longer than its time limit
        with pytest.raises(NotStored, match="not committed within"):
            committer.store(corp_id=corp.pk, plaintext=_event(1), timeout=0.2)
    # then (the lock gone) the row may still be committed: WeCom's redelivery is then a duplicate, stored once
    again = committer.store(corp_id=corp.pk, plaintext=_event(1), timeout=20)
    assert InboxEvent.objects.for_corp(corp).count() == 1
    assert not again.created


def test_stopping_commits_what_waits_and_refuses_what_comes_after(committer):
    corp, _crypto = callback_corp()
    assert committer.store(corp_id=corp.pk, plaintext=_event(1), timeout=20).created
    committer.stop()
    with pytest.raises(NotStored):
        committer.store(corp_id=corp.pk, plaintext=_event(2), timeout=20)
    assert InboxEvent.objects.for_corp(corp).count() == 1
