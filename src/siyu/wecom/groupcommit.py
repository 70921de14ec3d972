"""Group commit for the callback inbox: many callbacks' rows in one transaction, each answered after it.

A web process's request threads hand their inbox rows to the process's committer thread and wait. The
committer takes every row waiting at that moment, INSERTs them in one transaction (``ON CONFLICT DO NOTHING``
on the dedupe key, ``RETURNING`` what was inserted; on PostgreSQL one pipelined round trip), commits, and only
then releases the waiters, each with whether its row was new. While one batch commits the next one gathers,
so there is no timer: a lone callback waits for one commit, and under load a batch holds whatever arrived
during the previous commit. Each callback is still acknowledged only once its row is durable.

Per callback this replaces a transaction (and its WAL flush, ~8 ms on this kind of machine) with a share of
one, and the ORM's INSERT with a prepared statement (bench/callbacks.py measures it). The committer is one
database connection per process, however many request threads wait on it.

Failures: a batch that fails is rolled back and every waiter raises ``NotStored`` (the view answers 503 and
WeCom delivers again). A batch refused because of one row's data (``DataError``, or ``IntegrityError`` such
as a corp deleted meanwhile) is retried row by row, so that a bad row does not take its batch-mates down with
it at every redelivery.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models import DateTimeField, Field

from siyu.wecom.inbox import Stored, inbox_row, work_again
from siyu.wecom.models import InboxEvent

logger = logging.getLogger(__name__)


class NotStored(DatabaseError):
    """The row's batch failed, or was not committed in time: nothing may be acknowledged (→ 5xx).

    After a timeout the row may still be committed later; WeCom's redelivery is then a duplicate, stored once.
    """


@dataclass(eq=False)
class _Waiter:
    corp_id: int
    key: str
    values: dict[str, Any]
    released: threading.Lock  # held until the committer is done with this row
    created: bool = False
    error: BaseException | None = None


def enabled() -> bool:
    """Whether a callback is stored through the committer: on in settings, and the caller not inside a
    transaction (whose commit, not the batch's, would make its row durable)."""
    return bool(settings.SIYU["WECOM_GROUP_COMMIT"]) and not connection.in_atomic_block


class GroupCommitter:
    """One committer thread and the rows waiting for it."""

    def __init__(self, *, max_rows: int) -> None:
        self.max_rows = max_rows
        self._waiting: list[_Waiter] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0  # committed batches, for tests and the curious
        self.rows = 0

    def store(self, *, corp_id: int, plaintext: bytes, timeout: float) -> Stored:
        """Store a decrypted callback once, in the next batch; returns after the commit (or raises)."""
        key, values = inbox_row(plaintext)
        waiter = _Waiter(corp_id=corp_id, key=key, values=values, released=threading.Lock())
        waiter.released.acquire()
        with self._lock:
            if self._stopping:
                raise NotStored("the committer is stopping")
            self._waiting.append(waiter)
            if self._thread is None or not self._thread.is_alive():  # first use, or a thread that died
                self._thread = threading.Thread(target=self._run, name="inbox-group-commit", daemon=True)
                self._thread.start()
        self._wake.set()
        if not waiter.released.acquire(timeout=timeout):
            raise NotStored(f"the inbox row was not committed within {timeout:g} s")
        if waiter.error is not None:
            raise NotStored(f"the inbox batch failed: {type(waiter.error).__name__}") from waiter.error
        return Stored(
            created=waiter.created,
            pending=values["status"] == InboxEvent.Status.PENDING,
            event=values["event"],
            change_type=values["change_type"],
        )

    def stop(self) -> None:
        """Commit what is waiting, then end the thread and close its database connection."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()

    # --- the committer thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait()
                with self._lock:
                    batch = self._waiting[: self.max_rows]
                    del self._waiting[: self.max_rows]
                    if not self._waiting and not self._stopping:
                        self._wake.clear()
                    stopping = self._stopping
                if batch:
                    self._commit(batch)
                elif stopping:
                    return
        finally:
            connection.close()

    def _commit(self, batch: list[_Waiter]) -> None:
        try:
            inserted = self._write(batch)
        except (DataError, IntegrityError) as exc:
            if len(batch) > 1:
                logger.warning(
                    "wecom inbox: a batch of %d was refused (%s); storing its rows one by one",
                    len(batch),
                    type(exc).__name__,
                )
                for waiter in batch:
                    self._commit([waiter])
                return
            self._release(batch, error=exc)
        except Exception as exc:  # every waiter must be answered, whatever went wrong
            logger.exception("wecom inbox: a batch of %d was not stored", len(batch))
            with contextlib.suppress(DatabaseError):
                connection.close()  # the next batch opens a fresh connection (the server may have restarted)
            self._release(batch, error=exc)
        else:
            self.batches += 1
            self.rows += len(inserted)
            created = Batch.created([(w.corp_id, w.key) for w in batch], inserted)
            for waiter, new in zip(batch, created, strict=True):
                waiter.created = new
            self._release(batch)

    @staticmethod
    def _release(batch: list[_Waiter], *, error: BaseException | None = None) -> None:
        for waiter in batch:
            waiter.error = error
            waiter.released.release()

    @staticmethod
    def _write(batch: list[_Waiter]) -> set[tuple[int, str]]:
        """INSERT the batch's rows in one transaction; returns the (corp_id, dedupe_key) pairs inserted."""
        rows = Batch([(w.corp_id, w.key, w.values) for w in batch])
        _fields, sql = insert_statement()
        params = rows.params(connection)
        inserted: set[tuple[int, str]] = set()
        with transaction.atomic():
            if connection.vendor == "postgresql":
                import psycopg

                # One row's statement, bound server-side, pipelined: the batch is one round trip, and psycopg
                # parses nothing per batch (a multi-row VALUES it would, in Python: measured at twice the CPU
                # per row).
                # Django's error classes, as its own cursors raise them (a DataError here is django.db's).
                with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
                    cursor.executemany(sql, params, returning=True)
                    while True:
                        inserted.update((int(c), str(k)) for c, k in cursor.fetchall())
                        if not cursor.nextset():
                            break
            else:
                with connection.cursor() as django_cursor:
                    for one in params:
                        django_cursor.execute(sql, one)
                        inserted.update((int(c), str(k)) for c, k in django_cursor.fetchall())
            for corp_id, key in rows.to_work_again(inserted):
                work_again(corp_id, key)  # a redelivery, or a second identical change: see work_again
        return inserted


class Batch:
    """The inbox rows of one group commit, whoever commits it (this module's thread, or the asynchronous
    receiver's ``asynccommit``): one row per (corp, dedupe key), in one lock order."""

    def __init__(self, entries: list[tuple[int, str, dict[str, Any]]]) -> None:
        self.rows: dict[tuple[int, str], dict[str, Any]] = {}
        for corp_id, key, values in entries:
            self.rows.setdefault((corp_id, key), values)
        # One lock order for every batch, so two processes' batches holding the same keys cannot deadlock.
        self.order = sorted(self.rows)

    def params(self, connection: Any) -> list[list[Any]]:
        """The ``insert_statement`` parameters of every row, in lock order, adapted for ``connection``.

        The values are ``inbox_row``'s (str, int, aware datetimes, None) and the model's defaults: of Django's
        preparation of a field's value only the backend's adaptation of datetimes changes them (SQLite stores
        text), so only that is done. Defaults are taken once a batch (every inbox default is immutable: a
        string, a number, or the moment, which the batch's rows then share): per row and column they cost
        ~30 µs a row, as much as the rest of the committer's work.
        """
        plan = _param_plan(connection)
        defaults = [default() for _attname, default, _adapt in plan]
        defaults = [
            adapt(value) if adapt is not None and value is not None else value
            for value, (_attname, _default, adapt) in zip(defaults, plan, strict=True)
        ]
        place = {attname: (index, adapt) for index, (attname, _default, adapt) in enumerate(plan)}
        corp_at, key_at = place["corp_id"][0], place["dedupe_key"][0]
        out = []
        for corp_id, key in self.order:
            row = defaults.copy()
            row[corp_at], row[key_at] = corp_id, key
            for attname, value in self.rows[(corp_id, key)].items():
                index, adapt = place[attname]
                row[index] = adapt(value) if adapt is not None and value is not None else value
            out.append(row)
        return out

    def to_work_again(self, inserted: set[tuple[int, str]]) -> list[tuple[int, str]]:
        """Rows already on record that this batch makes pending again (``inbox.work_again``)."""
        pending = InboxEvent.Status.PENDING
        return [
            identity
            for identity in self.order
            if identity not in inserted and self.rows[identity]["status"] == pending
        ]

    @staticmethod
    def created(entries: list[tuple[int, str]], inserted: set[tuple[int, str]]) -> list[bool]:
        """Per entry (corp, key), in the order given: whether it made a new row. Only the first of two copies
        of one message in a batch did; the second is a duplicate."""
        remaining = set(inserted)
        out = []
        for identity in entries:
            out.append(identity in remaining)
            remaining.discard(identity)
        return out


@functools.cache
def insert_statement() -> tuple[list[Field[Any, Any]], str]:
    """The inbox's columns and one row's ``INSERT … ON CONFLICT DO NOTHING RETURNING`` (both databases)."""
    meta = InboxEvent._meta
    fields = [f for f in meta.local_concrete_fields if not f.primary_key]

    def column(field: Field[Any, Any]) -> str:
        return connection.ops.quote_name(str(field.column))

    columns = ", ".join(column(f) for f in fields)
    identity = f"{column(meta.get_field('corp'))}, {column(meta.get_field('dedupe_key'))}"
    values = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(meta.db_table)
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES ({values})"  # noqa: S608 - names from the model, values bound
        f" ON CONFLICT ({identity}) DO NOTHING RETURNING {identity}"
    )
    return fields, sql


def _param_plan(connection: Any) -> list[tuple[str, Callable[[], Any], Callable[[Any], Any] | None]]:
    """Per column of ``insert_statement``: the attribute, its default, and the backend's adaptation (datetimes
    only)."""
    fields, _sql = insert_statement()
    adapt_datetime = connection.ops.adapt_datetimefield_value
    return [
        (f.attname, f.get_default, adapt_datetime if isinstance(f, DateTimeField) else None) for f in fields
    ]


_committer: GroupCommitter | None = None
_committer_pid = 0
_committer_lock = threading.Lock()


def committer() -> GroupCommitter:
    """This process's committer (a forked child gets its own: threads do not survive a fork)."""
    global _committer, _committer_pid
    with _committer_lock:
        if _committer is None or _committer_pid != os.getpid():
            _committer = GroupCommitter(max_rows=int(str(settings.SIYU["WECOM_GROUP_COMMIT_MAX_ROWS"])))
            _committer_pid = os.getpid()
        return _committer


def store(*, corp_id: int, plaintext: bytes) -> Stored:
    """Store a decrypted callback through this process's committer; returns once its row is committed."""
    timeout = float(str(settings.SIYU["WECOM_CALLBACK_STORE_SECONDS"]))
    return committer().store(corp_id=corp_id, plaintext=plaintext, timeout=timeout)


def shutdown() -> None:
    """Stop this process's committer (tests; a process exiting needs nothing: requests finish first)."""
    global _committer
    with _committer_lock:
        current, _committer = _committer, None
    if current is not None:
        current.stop()
