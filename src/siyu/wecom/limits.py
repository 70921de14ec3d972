"""The limiter in front of WeCom: per-corp, per-API token buckets, penalty windows, concurrency, priorities.

State lives in the database (``ApiLimit`` rows and ``GatewayTicket`` rows) so that every worker process of
every host sees the same quota. Each attempt to get a slot is one short transaction that locks the API's
``ApiLimit`` row (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the IMMEDIATE transaction holds the
database write lock):

- **Buckets**: a minute bucket and an hour bucket per corp and API, refilled continuously from the
  configured limits (wecom-api.md §6). Lower priorities may not take a bucket's last ``RESERVE`` share, so a
  sync never spends the quota that people and welcome messages need.
- **Penalty window**: after 45009 nothing is sent to that API until the window closes: 60 s, or 60 min when
  the hour bucket is (nearly) spent — WeCom blocks for the rest of the window that was exceeded.
- **Concurrency**: running calls hold a ticket; 45033 halves the API's cap, which then grows back by one a
  minute. A corp-wide cap bounds all APIs together.
- **Priority**: a caller that has to wait leaves a waiting ticket. Nobody overtakes a waiting ticket of
  higher priority (or an older one of the same priority) on the same API, and when the corp-wide cap is
  nearly full the free slots are left to the callers ahead, so a welcome message queued behind a sync goes
  first.

Tickets expire, so a process that dies mid-call frees its slot after ``RUNNING_TTL``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from siyu.core.clock import now
from siyu.wecom.errors import RateLimited
from siyu.wecom.models import ApiLimit, GatewayTicket

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Who is waiting for a WeCom call; higher goes first."""

    SYNC = 10  # full sync and reconciliation: background, yields to everyone
    BULK = 30  # bulk writes people started (bulk tagging, mass messages, moments)
    EVENT = 50  # fetching what a callback event needs
    USER = 70  # a person waiting in the console, or an API client
    WELCOME = 90  # welcome messages: the welcome_code expires 20 s after the add event (wecom-api.md §4.4)


# Share of each bucket a priority may not take, so higher priorities still find quota while a sync runs.
RESERVE: dict[Priority, float] = {Priority.SYNC: 0.2, Priority.BULK: 0.1}

# How long a call may wait for a slot by default. Welcome messages must go out within the code's 20 s; a sync
# can sit out a minute penalty window (60 s) rather than fail.
DEFAULT_MAX_WAIT: dict[Priority, float] = {
    Priority.SYNC: 90.0,
    Priority.BULK: 30.0,
    Priority.EVENT: 30.0,
    Priority.USER: 10.0,
    Priority.WELCOME: 15.0,
}

MINUTE = timedelta(seconds=60)
HOUR = timedelta(hours=1)
# The penalty window is an hour when the hour bucket has less than this share left.
HOUR_EXHAUSTED_SHARE = 0.1
# After 45033 the lowered cap grows back by one per this interval.
CONCURRENCY_RECOVERY = timedelta(seconds=60)
# A waiting ticket is refreshed on every poll; one left by a dead process expires after this.
WAITING_TTL = timedelta(seconds=10)
# A slot is held for one attempt: up to three HTTP calls (the call, gettoken, the replay), each bounded by the
# HTTP timeout, plus this margin.
RUNNING_TTL_MARGIN = timedelta(seconds=30)
# Polling interval while waiting for a slot: short enough that a freed slot is used quickly, long enough that
# waiters do not load the database.
POLL_MIN = 0.02
POLL_MAX = 0.2


@dataclass(frozen=True)
class ApiQuota:
    """The configured limits of one API."""

    per_minute: int
    per_hour: int
    concurrency: int


def siyu_setting(name: str) -> Any:
    """One of the operational knobs in ``settings.SIYU``."""
    return settings.SIYU[name]


def quota_for(api: str) -> ApiQuota:
    """The configured limits of ``api``: the defaults of ``settings.SIYU`` with per-API overrides."""
    conf: dict[str, Any] = settings.SIYU
    override: dict[str, Any] = conf.get("WECOM_API_LIMITS", {}).get(api, {})
    return ApiQuota(
        per_minute=int(override.get("per_minute", conf["WECOM_API_PER_MINUTE"])),
        per_hour=int(override.get("per_hour", conf["WECOM_API_PER_HOUR"])),
        concurrency=int(override.get("concurrency", conf["WECOM_API_CONCURRENCY"])),
    )


def corp_concurrency() -> int:
    """The corp-wide cap on concurrent calls."""
    return int(siyu_setting("WECOM_CORP_CONCURRENCY"))


@dataclass
class _Decision:
    granted: bool
    ticket_id: int | None
    wait: float  # seconds until trying again makes sense
    reason: str = ""


def _refill(limit: ApiLimit, quota: ApiQuota, at: datetime) -> None:
    elapsed = max(0.0, (at - limit.refilled_at).total_seconds())
    limit.minute_tokens = min(
        float(quota.per_minute), limit.minute_tokens + elapsed * quota.per_minute / 60.0
    )
    limit.hour_tokens = min(float(quota.per_hour), limit.hour_tokens + elapsed * quota.per_hour / 3600.0)
    limit.refilled_at = at


def _effective_concurrency(limit: ApiLimit, quota: ApiQuota, at: datetime) -> int:
    """The API's cap, growing a lowered one back by one per ``CONCURRENCY_RECOVERY``."""
    if limit.concurrency is None:
        return quota.concurrency
    changed = limit.concurrency_changed_at or at
    if at - changed >= CONCURRENCY_RECOVERY:
        steps = int((at - changed) / CONCURRENCY_RECOVERY)
        raised = limit.concurrency + steps
        if raised >= quota.concurrency:
            limit.concurrency = None
            limit.concurrency_changed_at = at
            return quota.concurrency
        limit.concurrency = raised
        limit.concurrency_changed_at = changed + steps * CONCURRENCY_RECOVERY
    return limit.concurrency


def _limit_row(corp_id: int, api: str, quota: ApiQuota, *, asynchronous_commit: bool = False) -> ApiLimit:
    """The API's limiter row, locked for this transaction; created with full buckets the first time. With
    ``asynchronous_commit`` (PostgreSQL) the read also sets the transaction's commit not to wait for the disk
    (see ``_state_transaction``)."""
    row = _locked_limit(corp_id, api, asynchronous_commit=asynchronous_commit)
    if row is None:
        ApiLimit.objects.get_or_create(
            corp_id=corp_id,
            api=api,
            defaults={
                "minute_tokens": float(quota.per_minute),
                "hour_tokens": float(quota.per_hour),
                "refilled_at": now(),
            },
        )
        row = _locked_limit(corp_id, api, asynchronous_commit=asynchronous_commit)
        assert row is not None
    return row


_LIMIT_FIELDS = ApiLimit._meta.concrete_fields


def _locked_limit(corp_id: int, api: str, *, asynchronous_commit: bool = False) -> ApiLimit | None:
    table = connection.ops.quote_name(ApiLimit._meta.db_table)
    if connection.vendor != "postgresql":  # SQLite: the IMMEDIATE transaction's lock; the ORM's converters
        sql = f"SELECT * FROM {table} WHERE corp_id = %s AND api = %s"  # noqa: S608 - the model's table
        return next(iter(ApiLimit.objects.raw(sql, [corp_id, api])), None)
    # A plain read into the model (a raw queryset's compilation was a tenth of a slot's client CPU); when
    # asked, the commit mode set by the same statement (``set_config(…, true)`` is ``SET LOCAL``): one round
    # trip less.
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in _LIMIT_FIELDS)
    setting = ", set_config('synchronous_commit', 'off', true)" if asynchronous_commit else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns}{setting} FROM {table} WHERE corp_id = %s AND api = %s FOR UPDATE",  # noqa: S608
            [corp_id, api],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return ApiLimit.from_db(connection.alias, [f.attname for f in _LIMIT_FIELDS], row[: len(_LIMIT_FIELDS)])


@contextlib.contextmanager
def _state_transaction(*, set_by_first_read: bool = False) -> Iterator[bool]:
    """A transaction over limiter state only.

    On PostgreSQL its commit does not wait for the WAL to reach the disk: limiter state is worth nothing after
    a crash (buckets refill within a minute, tickets expire), and a synchronous commit would add a disk flush
    to every WeCom call. Only when it is the outermost transaction, so a caller's own writes stay durable.
    With ``set_by_first_read`` the setting is left to the transaction's first statement, the read of the
    limiter row (``_limit_row(…, asynchronous_commit=…)``): yields whether that read must set it.
    """
    asynchronous = not connection.in_atomic_block and connection.vendor == "postgresql"
    with transaction.atomic():
        if asynchronous and not set_by_first_read:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield asynchronous and set_by_first_read


def _ticket_counts(
    *, corp_id: int, api: str, priority: Priority, waiting_id: int | None, at: datetime
) -> dict[str, int]:
    """The corp's live tickets a decision weighs: running (corp-wide, this API) and waiting ahead of the
    caller (higher priority, or the same and older; corp-wide, this API). One statement, written out: compiled
    by the ORM on every call it was half of a slot's CPU (~4 of ~8 ms measured), and every call takes one."""
    ahead = "(priority > %s OR (priority = %s AND id < %s))" if waiting_id is not None else "priority >= %s"
    ahead_params: list[Any] = [priority, priority, waiting_id] if waiting_id is not None else [priority]
    running, waiting = GatewayTicket.State.RUNNING.value, GatewayTicket.State.WAITING.value
    table = connection.ops.quote_name(GatewayTicket._meta.db_table)
    # The model's table and fixed conditions; every value is a parameter.
    sql = (
        "SELECT COUNT(*) FILTER (WHERE state = %s), "  # noqa: S608
        "COUNT(*) FILTER (WHERE state = %s AND api = %s), "
        f"COUNT(*) FILTER (WHERE state = %s AND {ahead}), "
        f"COUNT(*) FILTER (WHERE state = %s AND api = %s AND {ahead}) "
        f"FROM {table} WHERE corp_id = %s AND expires_at > %s"
        + (" AND id <> %s" if waiting_id is not None else "")
    )
    params: list[Any] = [running, running, api, waiting, *ahead_params, waiting, api, *ahead_params]
    params += [corp_id, connection.ops.adapt_datetimefield_value(at)]
    if waiting_id is not None:
        params.append(waiting_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    keys = ("running_corp", "running_api", "ahead_corp", "ahead_api")
    return dict(zip(keys, (int(n or 0) for n in row), strict=True))


# Every WeCom call writes the limiter's state twice (a slot taken, a slot given back): those writes are
# hand-written statements, as ``_ticket_counts`` is. Through the ORM (``save``, ``create``, a queryset's
# ``delete`` and its collector) a slot cost ~4 ms of client CPU, ~10 s of a 100,000-customer sync's.
_LIMIT_COLUMNS = (
    "minute_tokens",
    "hour_tokens",
    "refilled_at",
    "penalty_until",
    "concurrency",
    "concurrency_changed_at",
)


def _datetime_param(value: datetime | None) -> Any:
    return None if value is None else connection.ops.adapt_datetimefield_value(value)


def _save_limit(limit: ApiLimit) -> None:
    """Write the limiter row's state (what ``_refill``, a decision or a penalty changed)."""
    table = connection.ops.quote_name(ApiLimit._meta.db_table)
    sets = ", ".join(f"{connection.ops.quote_name(c)} = %s" for c in _LIMIT_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {sets} WHERE id = %s",  # noqa: S608 - the model's table and columns
            [*_limit_values(limit), limit.pk],
        )


def _limit_values(limit: ApiLimit) -> list[Any]:
    """The parameters of ``_LIMIT_COLUMNS``."""
    return [
        limit.minute_tokens,
        limit.hour_tokens,
        _datetime_param(limit.refilled_at),
        _datetime_param(limit.penalty_until),
        limit.concurrency,
        _datetime_param(limit.concurrency_changed_at),
    ]


def _create_ticket(
    *, corp_id: int, api: str, priority: Priority, state: str, expires_at: datetime, at: datetime
) -> int:
    table = connection.ops.quote_name(GatewayTicket._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (corp_id, api, priority, state, expires_at, created_at) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            [corp_id, api, int(priority), state, _datetime_param(expires_at), _datetime_param(at)],
        )
        return int(cursor.fetchone()[0])


def _take_slot(limit: ApiLimit, *, waiting_id: int | None, **ticket: Any) -> int:
    """Write the limiter row's state, drop the caller's waiting ticket if any, and create its running ticket
    (``_create_ticket``'s arguments): one statement on PostgreSQL, where they were three round trips."""
    if connection.vendor != "postgresql":
        _save_limit(limit)
        if waiting_id is not None:
            _delete_ticket(waiting_id)
        return _create_ticket(**ticket)
    limits = connection.ops.quote_name(ApiLimit._meta.db_table)
    tickets = connection.ops.quote_name(GatewayTicket._meta.db_table)
    sets = ", ".join(f"{connection.ops.quote_name(c)} = %s" for c in _LIMIT_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            # The models' tables and columns; every value is a parameter.
            f"WITH saved AS (UPDATE {limits} SET {sets} WHERE id = %s), "  # noqa: S608
            f"dropped AS (DELETE FROM {tickets} WHERE id = %s) "
            f"INSERT INTO {tickets} (corp_id, api, priority, state, expires_at, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            [
                *_limit_values(limit),
                limit.pk,
                waiting_id,
                ticket["corp_id"],
                ticket["api"],
                int(ticket["priority"]),
                ticket["state"],
                _datetime_param(ticket["expires_at"]),
                _datetime_param(ticket["at"]),
            ],
        )
        return int(cursor.fetchone()[0])


def _delete_ticket(ticket_id: int) -> None:
    table = connection.ops.quote_name(GatewayTicket._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [ticket_id])  # noqa: S608


def release(ticket_id: int) -> None:
    """Give a slot back (delete its running ticket).

    On PostgreSQL outside a transaction: one statement in its own transaction, whose commit does not wait
    for the disk (``set_config(…, true)`` is ``SET LOCAL``, read at that statement's commit), where
    ``_state_transaction`` costs three round trips; every WeCom call ends with one."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        table = connection.ops.quote_name(GatewayTicket._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} t USING (SELECT set_config('synchronous_commit', 'off', true)) s "  # noqa: S608
                "WHERE t.id = %s",
                [ticket_id],
            )
        return
    with _state_transaction():
        _delete_ticket(ticket_id)


class Limiter:
    """Grants slots for WeCom calls from the shared state in the database."""

    def __init__(
        self, *, sleep: Callable[[float], None] = time.sleep, http_timeout: float | None = None
    ) -> None:
        self.sleep = sleep
        timeout = http_timeout if http_timeout is not None else float(siyu_setting("WECOM_HTTP_TIMEOUT"))
        self.running_ttl = timedelta(seconds=3 * timeout) + RUNNING_TTL_MARGIN

    @contextlib.contextmanager
    def slot(self, *, corp_id: int, api: str, priority: Priority, max_wait: float) -> Iterator[None]:
        """Hold a slot for one call to ``api``; waits up to ``max_wait`` s, then raises ``RateLimited``."""
        ticket_id = self.acquire(corp_id=corp_id, api=api, priority=priority, max_wait=max_wait)
        try:
            yield
        finally:
            release(ticket_id)

    def acquire(self, *, corp_id: int, api: str, priority: Priority, max_wait: float) -> int:
        """Wait for a slot and return its running ticket's id (delete the ticket to release the slot)."""
        deadline = time.monotonic() + max_wait
        waiting_id: int | None = None
        try:
            while True:
                decision = self._try(corp_id=corp_id, api=api, priority=priority, waiting_id=waiting_id)
                if decision.granted:
                    assert decision.ticket_id is not None
                    return decision.ticket_id
                waiting_id = decision.ticket_id
                remaining = deadline - time.monotonic()
                if decision.wait > remaining:
                    raise RateLimited(api, now() + timedelta(seconds=decision.wait), decision.reason)
                if decision.wait > 0:
                    # A known wait (quota, penalty window): sleep through it, waking to keep the ticket alive.
                    pause = min(decision.wait, WAITING_TTL.total_seconds() / 2)
                else:
                    pause = random.uniform(POLL_MIN, POLL_MAX)  # noqa: S311 - jitter, not security
                self.sleep(min(pause, max(remaining, 0.0)))
        except BaseException:
            if waiting_id is not None:
                _delete_ticket(waiting_id)
            raise

    def _try(self, *, corp_id: int, api: str, priority: Priority, waiting_id: int | None) -> _Decision:
        quota = quota_for(api)
        with _state_transaction(set_by_first_read=True) as set_commit:
            at = now()
            limit = _limit_row(corp_id, api, quota, asynchronous_commit=set_commit)
            _refill(limit, quota, at)
            cap = _effective_concurrency(limit, quota, at)
            counts = _ticket_counts(corp_id=corp_id, api=api, priority=priority, waiting_id=waiting_id, at=at)
            reserve = RESERVE.get(priority, 0.0)
            reason = ""
            wait = 0.0
            if limit.penalty_until is not None and limit.penalty_until > at:
                reason = "penalty window after 45009"
                wait = (limit.penalty_until - at).total_seconds()
            elif counts["ahead_api"]:
                reason = "higher-priority calls are waiting"
            elif corp_concurrency() - counts["running_corp"] <= counts["ahead_corp"]:
                reason = "corp concurrency cap"
            elif counts["running_api"] >= cap:
                reason = "API concurrency cap"
            else:
                need_minute = 1 + reserve * quota.per_minute - limit.minute_tokens
                need_hour = 1 + reserve * quota.per_hour - limit.hour_tokens
                if need_minute > 0 or need_hour > 0:
                    reason = "API quota spent"
                    wait = max(need_minute * 60.0 / quota.per_minute, need_hour * 3600.0 / quota.per_hour)
            if reason:
                _save_limit(limit)
                return _Decision(
                    False, self._wait_ticket(corp_id, api, priority, waiting_id, at), wait, reason
                )
            limit.minute_tokens -= 1
            limit.hour_tokens -= 1
            ticket_id = _take_slot(
                limit,
                waiting_id=waiting_id,
                corp_id=corp_id,
                api=api,
                priority=priority,
                state=GatewayTicket.State.RUNNING.value,
                expires_at=at + self.running_ttl,
                at=at,
            )
            return _Decision(True, ticket_id, 0.0)

    def _wait_ticket(
        self, corp_id: int, api: str, priority: Priority, waiting_id: int | None, at: datetime
    ) -> int:
        expires = at + WAITING_TTL
        if waiting_id is not None and GatewayTicket.objects.filter(pk=waiting_id).update(expires_at=expires):
            return waiting_id
        return _create_ticket(
            corp_id=corp_id,
            api=api,
            priority=priority,
            state=GatewayTicket.State.WAITING.value,
            expires_at=expires,
            at=at,
        )

    def penalize(self, *, corp_id: int, api: str) -> datetime:
        """Record a 45009 for ``api``: open its penalty window and return when it closes."""
        quota = quota_for(api)
        with _state_transaction():
            at = now()
            limit = _limit_row(corp_id, api, quota)
            _refill(limit, quota, at)
            hourly = limit.hour_tokens < HOUR_EXHAUSTED_SHARE * quota.per_hour
            until = at + (HOUR if hourly else MINUTE)
            if limit.penalty_until is None or limit.penalty_until < until:
                limit.penalty_until = until
            limit.minute_tokens = 0.0
            limit.save()
            log.warning("WeCom %s throttled (45009) until %s", api, limit.penalty_until.isoformat())
            return limit.penalty_until

    def lower_concurrency(self, *, corp_id: int, api: str) -> int:
        """Record a 45033 for ``api``: halve its concurrency cap (at least 1) and return the new cap."""
        quota = quota_for(api)
        with _state_transaction():
            at = now()
            limit = _limit_row(corp_id, api, quota)
            current = _effective_concurrency(limit, quota, at)
            running = GatewayTicket.objects.filter(
                corp_id=corp_id, api=api, state=GatewayTicket.State.RUNNING, expires_at__gt=at
            ).count()
            limit.concurrency = max(1, min(current, max(running, 1)) // 2)
            limit.concurrency_changed_at = at
            limit.save()
            log.warning("WeCom %s concurrency limited (45033): cap now %d", api, limit.concurrency)
            return limit.concurrency


def purge_expired_tickets(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Delete tickets left by processes that died; returns how many."""
    deleted, _ = GatewayTicket.objects.filter(expires_at__lt=now() - older_than).delete()
    return deleted
