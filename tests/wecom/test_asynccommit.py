"""Group commit on the receiver's asynchronous connection: each row stored once, acknowledged only after its
batch commits, failures refused (→ 503) without losing or doubling anything.

PostgreSQL only (the committer is psycopg's asynchronous connection); committed data: ``transaction=True``.
Each test runs its coroutines in one event loop (``asyncio.run`` on a thread of its own: the browser tests'
Playwright keeps a loop running on the main thread) and looks at the database outside it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
from django.db import connection

from siyu.core.clock import now
from siyu.wecom.asynccommit import APPLICATION_NAME, AsyncGroupCommitter, connection_params
from siyu.wecom.groupcommit import NotStored
from siyu.wecom.inbox import dedupe_key
from siyu.wecom.models import InboxEvent
from tests.wecom.inbound_support import callback_corp, event_xml

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="an asynchronous PostgreSQL connection"),
]


def _event(n: int, external_userid: str = "") -> bytes:
    return event_xml(
        "change_external_contact",
        "add_external_contact",
        create_time=1700000000,
        UserID="wangfang",
        ExternalUserID=external_userid or f"wmAsync{n:04d}",
    ).encode()


def _with_committer(body: Callable[[AsyncGroupCommitter], Awaitable[Any]], **options: Any) -> Any:
    """Run ``body`` with a committer in a fresh event loop, stopping the committer after."""

    async def main() -> Any:
        committer = AsyncGroupCommitter(
            max_rows=options.get("max_rows", 100), timeout=options.get("timeout", 20)
        )
        try:
            return await body(committer)
        finally:
            await committer.stop()

    return _run(main())


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run`` on a thread of its own: a loop may already run on this one (Playwright leaves one)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _outcomes(committer: AsyncGroupCommitter, corp_id: int, plaintexts: list[bytes]) -> list[Any]:
    """Store the plaintexts at once; each one's ``Stored``, or the exception it raised."""
    return await asyncio.gather(
        *(committer.store(corp_id=corp_id, plaintext=p) for p in plaintexts), return_exceptions=True
    )


def test_rows_arriving_together_share_one_transaction_and_each_is_stored_once():
    # given 30 distinct callbacks and a second copy of 5 of them, all arriving at once
    corp, _crypto = callback_corp()
    plaintexts = [_event(n) for n in range(30)] + [_event(n) for n in range(5)]

    async def body(committer: AsyncGroupCommitter) -> Any:
        return await _outcomes(committer, corp.pk, plaintexts), committer.batches

    # when they are stored
    outcomes, batches = _with_committer(body)
    # then one transaction stored 30 rows; the second copies are acknowledged as duplicates
    assert batches == 1
    assert [o.created for o in outcomes] == [True] * 30 + [False] * 5
    assert InboxEvent.objects.for_corp(corp).count() == 30
    with connection.cursor() as cursor:  # rows committed together share their transaction id
        cursor.execute(f"SELECT count(DISTINCT xmin::text) FROM {InboxEvent._meta.db_table}")  # noqa: S608
        assert cursor.fetchone()[0] == 1


def test_every_column_is_stored_as_given_whatever_the_text_holds():
    # given callbacks whose text holds what the batch's JSON must carry through: CJK, quotes, backslashes,
    # line breaks, and a message that is not an event (stored ignored, without its body)
    corp, _crypto = callback_corp()
    tricky = event_xml(
        "change_external_contact",
        "edit_external_contact",
        create_time=1700000123,
        UserID="wangfang",
        ExternalUserID='wm"引号\\反斜杠\n换行',
    ).encode()
    text = b"<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>"
    outcomes = _with_committer(lambda c: _outcomes(c, corp.pk, [tricky, text, _event(7)]))
    assert [o.created for o in outcomes] == [True, True, True]
    rows = InboxEvent.objects.for_corp(corp)
    stored = rows.get(dedupe_key=dedupe_key(tricky))
    assert stored.message == tricky.decode()
    assert stored.ordering_key == 'contact:wm"引号\\反斜杠\n换行'
    assert stored.event_time == dt.datetime.fromtimestamp(1700000123, tz=dt.UTC)
    assert (stored.status, stored.attempts, stored.claim, stored.locked_until) == (
        InboxEvent.Status.PENDING,
        0,
        "",
        None,
    )
    assert stored.received_at <= now() and stored.next_attempt_at <= now()
    ignored = rows.get(dedupe_key=dedupe_key(text))
    assert (ignored.status, ignored.message, ignored.processed_at is not None) == (
        InboxEvent.Status.IGNORED,
        "",
        True,
    )


def test_a_batch_holds_at_most_max_rows():
    corp, _crypto = callback_corp()

    async def body(committer: AsyncGroupCommitter) -> Any:
        return await _outcomes(committer, corp.pk, [_event(n) for n in range(25)]), committer.batches

    outcomes, batches = _with_committer(body, max_rows=10)
    assert [o.created for o in outcomes] == [True] * 25
    assert batches == 3


def test_a_redelivery_puts_a_worked_row_back_and_hands_back_a_row_being_worked():
    # given two stored rows: one worked (done), one being worked right now
    corp, _crypto = callback_corp()
    _with_committer(lambda c: _outcomes(c, corp.pk, [_event(1), _event(2)]))
    rows = InboxEvent.objects.for_corp(corp)
    rows.filter(dedupe_key=dedupe_key(_event(1))).update(
        status=InboxEvent.Status.DONE, attempts=2, last_error="earlier"
    )
    lease = now() + dt.timedelta(minutes=5)
    rows.filter(dedupe_key=dedupe_key(_event(2))).update(
        status=InboxEvent.Status.PROCESSING, claim="worker-a", locked_until=lease, attempts=1
    )
    # when both arrive again
    before = now()
    outcomes = _with_committer(lambda c: _outcomes(c, corp.pk, [_event(1), _event(2)]))
    # then they are duplicates; the worked row starts over, the row being worked is handed back after a pause
    assert [o.created for o in outcomes] == [False, False]
    done = rows.get(dedupe_key=dedupe_key(_event(1)))
    assert (done.status, done.attempts, done.last_error) == (InboxEvent.Status.PENDING, 0, "")
    assert done.next_attempt_at <= now()
    working = rows.get(dedupe_key=dedupe_key(_event(2)))
    assert (working.status, working.claim, working.locked_until, working.attempts) == (
        InboxEvent.Status.PENDING,
        "",
        None,
        1,
    )
    assert working.next_attempt_at >= before + dt.timedelta(seconds=4)
    assert rows.count() == 2


def test_a_redelivery_of_a_row_still_waiting_leaves_it_as_it_is():
    # given a stored row waiting for its retry
    corp, _crypto = callback_corp()
    _with_committer(lambda c: _outcomes(c, corp.pk, [_event(1)]))
    rows = InboxEvent.objects.for_corp(corp)
    retry_at = now() + dt.timedelta(minutes=3)
    rows.update(attempts=3, last_error="WeCom busy", next_attempt_at=retry_at)
    # when it arrives again
    outcomes = _with_committer(lambda c: _outcomes(c, corp.pk, [_event(1)]))
    # then it is a duplicate and the row keeps its retry schedule
    assert [o.created for o in outcomes] == [False]
    row = rows.get()
    assert (row.status, row.attempts, row.last_error, row.next_attempt_at) == (
        InboxEvent.Status.PENDING,
        3,
        "WeCom busy",
        retry_at,
    )


def test_a_row_the_database_refuses_does_not_take_its_batch_down():
    # given a batch with one row PostgreSQL cannot store (a NUL character in text)
    corp, _crypto = callback_corp()
    bad = _event(0, external_userid="wmNul\x00Byte")
    plaintexts = [_event(1), bad, _event(2)]
    # when it is stored
    outcomes = _with_committer(lambda c: _outcomes(c, corp.pk, plaintexts))
    # then only that row is refused (→ 503); its batch-mates are stored
    assert isinstance(outcomes[1], NotStored)
    assert [outcomes[0].created, outcomes[2].created] == [True, True]
    assert set(InboxEvent.objects.for_corp(corp).values_list("dedupe_key", flat=True)) == {
        dedupe_key(_event(1)),
        dedupe_key(_event(2)),
    }


def _terminate_receiver_sessions() -> None:
    """End the committer's session from another connection, as a server restart does (runs on a thread)."""
    from django.db import connection as thread_connection

    try:
        with thread_connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                [APPLICATION_NAME],
            )
    finally:
        thread_connection.close()


def test_a_lost_connection_fails_its_batch_and_the_next_batch_reconnects():
    corp, _crypto = callback_corp()

    async def body(committer: AsyncGroupCommitter) -> Any:
        # given a committer that has stored a row (and so holds a connection)
        first = await committer.store(corp_id=corp.pk, plaintext=_event(1))
        # when its session is terminated
        await asyncio.to_thread(_terminate_receiver_sessions)
        lost = (await _outcomes(committer, corp.pk, [_event(2)]))[0]
        # then that batch is refused, and the next one connects again
        again = await committer.store(corp_id=corp.pk, plaintext=_event(2))
        return first, lost, again

    first, lost, again = _with_committer(body)
    assert first.created and again.created
    assert isinstance(lost, NotStored)
    assert InboxEvent.objects.for_corp(corp).count() == 2


def test_stopping_commits_what_waits_and_refuses_what_comes_after():
    corp, _crypto = callback_corp()

    async def main() -> Any:
        committer = AsyncGroupCommitter(max_rows=100, timeout=20)
        waiting = [
            asyncio.ensure_future(committer.store(corp_id=corp.pk, plaintext=_event(n))) for n in range(5)
        ]
        await asyncio.sleep(0)  # they are queued
        await committer.stop()
        late = await asyncio.gather(
            committer.store(corp_id=corp.pk, plaintext=_event(9)), return_exceptions=True
        )
        return [w.result() for w in waiting], late[0]

    stored, late = _run(main())
    assert [s.created for s in stored] == [True] * 5
    assert isinstance(late, NotStored)
    assert InboxEvent.objects.for_corp(corp).count() == 5


def test_rows_whose_callers_were_refused_while_queued_are_left_to_the_redelivery():
    # given a committer that writes one row a batch and waits half a second for a commit, and a lock that
    # holds its writer back
    corp, _crypto = callback_corp()

    async def body(committer: AsyncGroupCommitter) -> Any:
        stores = []
        for n in range(3):  # the first is being written (and waits), the others queue behind it
            stores.append(asyncio.ensure_future(committer.store(corp_id=corp.pk, plaintext=_event(n))))
            await asyncio.sleep(0.05)
        return await asyncio.gather(*stores, return_exceptions=True), committer

    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(f"LOCK TABLE {InboxEvent._meta.db_table} IN EXCLUSIVE MODE")
        try:
            # when every caller times out: the first two in their batches, the third while still queued
            outcomes, committer = _with_committer(body, max_rows=1, timeout=0.5)
        finally:
            cursor.execute("ROLLBACK")
    # then all were refused, the abandoned batches did not commit, and the third row was not even tried
    assert all(isinstance(o, NotStored) for o in outcomes)
    assert (committer.batches, committer.skipped) == (0, 1)
    assert not InboxEvent.objects.for_corp(corp).exists()
    # and WeCom's redeliveries are stored
    again = _with_committer(lambda c: _outcomes(c, corp.pk, [_event(n) for n in range(3)]))
    assert [o.created for o in again] == [True, True, True]


def test_the_receiver_prepares_its_statements_unless_the_database_options_say_otherwise():
    # given Django's settings without a word about prepared statements
    params = connection_params()
    # then the receiver's connection prepares its INSERT, and names itself
    assert params["prepare_threshold"] == 0
    assert params["application_name"] == APPLICATION_NAME
    assert "cursor_factory" not in params  # Django's synchronous cursor class
    # when the options keep statements unprepared (a transaction-pooling proxy in front of PostgreSQL)
    options = connection.settings_dict.setdefault("OPTIONS", {})
    options["prepare_threshold"] = None
    try:
        # then so does the receiver
        assert connection_params()["prepare_threshold"] is None
    finally:
        del options["prepare_threshold"]
