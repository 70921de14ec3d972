"""Group commit on an asynchronous PostgreSQL connection: the asynchronous receiver's inbox writes.

The same scheme as ``groupcommit`` (whose ``Batch`` builds the rows and decides what each callback made), on
the receiver's event loop instead of a thread: request handlers queue their inbox row and await it; one
committer task takes every row waiting at that moment and writes them in one transaction on one psycopg
``AsyncConnection`` in pipeline mode — BEGIN, the batch's rows (``inbox.store_statement``: one INSERT for
the batch that re-queues a redelivered row instead where ``work_again`` says so) and COMMIT in one round
trip — and only then resolves the handlers' futures. While one batch commits the next gathers, so a
lone callback waits for one commit and a burst shares them: per callback a share of one WAL flush and no
thread hand-off.

Failures answer 503 (``NotStored``) and lose nothing: a batch that fails is rolled back, its connection closed
(the next batch connects again: the server may have restarted), every waiter refused; a batch refused because
of one row's data is retried row by row; a batch that does not commit within ``WECOM_CALLBACK_STORE_SECONDS``
is abandoned (its connection closed, so it cannot commit later without anyone knowing whether it did: if it
did, WeCom's redelivery is a duplicate, stored once) and its waiters refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connections

from siyu.wecom.groupcommit import Batch, NotStored, insert_statement
from siyu.wecom.inbox import Stored, inbox_row, store_statement
from siyu.wecom.models import InboxEvent

logger = logging.getLogger(__name__)

# The receiver's own database session, named so operators (and tests) can tell it apart in pg_stat_activity.
APPLICATION_NAME = "siyu-receiver"
# Seconds to wait for a new connection: a database that does not answer is refused soon enough for callbacks
# to be answered 503 within WeCom's 5 s (libpq counts whole seconds, 2 at least).
CONNECT_TIMEOUT_SECONDS = 2


def connection_params(alias: str = "default") -> dict[str, Any]:
    """psycopg connection arguments for the receiver, from Django's database settings (read at each connect,
    so a changed setting applies to the next connection)."""
    params = dict(connections[alias].get_connection_params())
    params.pop("cursor_factory", None)  # Django's synchronous cursor class
    params.setdefault("application_name", APPLICATION_NAME)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    # Django leaves statements unprepared by default, for transaction-pooling proxies; the receiver's
    # connection runs one INSERT thousands of times a second and prepares it, unless the database's OPTIONS
    # say otherwise ("prepare_threshold": None keeps them unprepared, as for Django).
    if "prepare_threshold" not in connections[alias].settings_dict.get("OPTIONS", {}):
        params["prepare_threshold"] = 0
    return params


@dataclass(eq=False)
class _Waiter:
    corp_id: int
    key: str
    values: dict[str, Any]
    future: asyncio.Future[bool]


class AsyncGroupCommitter:
    """The committer task, its connection and the rows waiting for it (one per receiver process)."""

    def __init__(self, *, max_rows: int, timeout: float, alias: str = "default") -> None:
        self.max_rows = max_rows
        self.timeout = timeout
        self.alias = alias
        self._waiting: list[_Waiter] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._stopping = False
        self.batches = 0  # committed batches, for tests and the curious
        self.rows = 0
        self.skipped = 0  # rows not written: their callers had been answered 503 already

    async def store(self, *, corp_id: int, plaintext: bytes) -> Stored:
        """Store a decrypted callback once, in the next batch; returns after the commit (or raises
        ``NotStored``)."""
        if self._stopping:
            raise NotStored("the committer is stopping")
        key, values = inbox_row(plaintext)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(corp_id=corp_id, key=key, values=values, future=loop.create_future())
        self._waiting.append(waiter)
        self._wake.set()
        if self._task is None or self._task.done():  # first use, or a task that died
            self._task = loop.create_task(self._run(), name="inbox-async-group-commit")
        expiry = loop.call_later(self.timeout, _expire, waiter.future, self.timeout)
        try:
            created = await waiter.future
        finally:
            expiry.cancel()
        return Stored(
            created=created,
            pending=values["status"] == InboxEvent.Status.PENDING,
            event=values["event"],
            change_type=values["change_type"],
        )

    async def stop(self) -> None:
        """Commit what is waiting, then end the task and close the connection."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self._close()

    # --- the committer task ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            batch = self._waiting[: self.max_rows]
            del self._waiting[: self.max_rows]
            if not self._waiting and not self._stopping:
                self._wake.clear()
            # Rows whose callers were already answered 503 (timed out while the database was slow) are left
            # to WeCom's redelivery: during an outage the queue then holds at most a timeout's worth of rows.
            refused = sum(1 for w in batch if w.future.done())
            if refused:
                self.skipped += refused
                batch = [w for w in batch if not w.future.done()]
            if batch:
                await self._commit(batch)
            elif self._stopping and not self._waiting:
                return

    async def _commit(self, batch: list[_Waiter]) -> None:
        rows = Batch([(w.corp_id, w.key, w.values) for w in batch])
        try:
            inserted = await asyncio.wait_for(self._write(rows), self.timeout)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            await self._close()
            if len(batch) > 1:
                logger.warning(
                    "wecom inbox: a batch of %d was refused (%s); storing its rows one by one",
                    len(batch),
                    type(exc).__name__,
                )
                for waiter in batch:
                    await self._commit([waiter])
                return
            self._release(batch, NotStored(f"the inbox batch failed: {type(exc).__name__}"))
        except Exception as exc:  # every waiter must be answered, whatever went wrong
            logger.error("wecom inbox: a batch of %d was not stored: %s", len(batch), type(exc).__name__)
            await self._close()
            if isinstance(exc, TimeoutError):
                error = NotStored(f"the inbox batch was not committed within {self.timeout:g} s")
            else:
                error = NotStored(f"the inbox batch failed: {type(exc).__name__}")
            self._release(batch, error)
        else:
            self.batches += 1
            self.rows += len(inserted)
            created = Batch.created([(w.corp_id, w.key) for w in batch], inserted)
            for waiter, new in zip(batch, created, strict=True):
                if not waiter.future.done():
                    waiter.future.set_result(new)

    @staticmethod
    def _release(batch: list[_Waiter], error: NotStored) -> None:
        for waiter in batch:
            if not waiter.future.done():
                waiter.future.set_exception(error)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = await psycopg.AsyncConnection.connect(
                autocommit=True, **connection_params(self.alias)
            )
        return self._connection

    async def _close(self) -> None:
        current, self._connection = self._connection, None
        if current is not None:
            with contextlib.suppress(psycopg.Error):
                await current.close()

    async def _write(self, rows: Batch) -> set[tuple[int, str]]:
        """Store the batch's rows in one transaction; returns the (corp_id, dedupe_key) pairs inserted.

        One statement for the whole batch (``inbox.store_statement``: the rows as one JSON parameter, each
        inserted or, for a row already on record that must be worked again, ``inbox.work_again``'s update),
        pipelined with BEGIN and COMMIT: the batch is one round trip, so one wake-up of this process and of
        its database session (on a busy machine each is a wait for the scheduler: with BEGIN and the rows in
        one round trip and COMMIT in a second, bench/callbacks.py measured 60–90% of the rate). A redelivery
        costs no second transaction either.

        Measured here with psycopg 3.3 against the alternatives, per row at batches of 10–60: a prepared
        statement per row, pipelined, costs ~30–50 µs more PostgreSQL CPU a callback; a binary COPY into a
        temporary table and one INSERT … SELECT a little less CPU at large batches but five round trips; one
        multi-row VALUES statement twice the client CPU; one INSERT … SELECT FROM unnest of one array per
        column 1.7 times the client CPU (psycopg dumps arrays element by element, in Python).
        """
        conn = await self._connect()
        django_connection = connections[self.alias]  # its adapters only: it is never used to connect here
        names = _columns()
        document = json.dumps(
            [dict(zip(names, row, strict=True)) for row in rows.params(django_connection)],
            default=_iso,
            ensure_ascii=False,
        )
        async with conn.pipeline(), conn.cursor() as cursor:
            async with conn.transaction():  # BEGIN and COMMIT are queued with the rows, not sent apart
                await cursor.execute(store_statement(), [document])
            return {(int(c), str(k)) for c, k, new in await cursor.fetchall() if new}


@functools.cache
def _columns() -> list[str]:
    fields, _sql = insert_statement()
    return [str(f.column) for f in fields]


def _iso(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _expire(future: asyncio.Future[bool], timeout: float) -> None:
    if not future.done():
        future.set_exception(NotStored(f"the inbox row was not committed within {timeout:g} s"))
