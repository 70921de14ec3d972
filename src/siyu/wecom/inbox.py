"""The durable inbox: callbacks are stored here before they are acknowledged, then worked by a worker.

- Storing: one INSERT keyed on sha1(decrypted XML) per corp; a redelivery hits the unique key and is
  acknowledged without a second row.
- Working (``drain_inbox``): rows are claimed in id order, at most one open row per ordering key at a time (a
  row is claimable only when no earlier row of its key is still pending or processing), so one customer's
  events apply in arrival order while different customers' events are worked by as many workers as run.
  A claim is a lease: a worker that dies leaves its rows claimable again once the lease ends; every handler is
  idempotent, so working a row twice changes nothing the second time.
- Failures retry with exponential backoff; after ``INBOX_MAX_ATTEMPTS`` the row is ``failed``, shown in the
  console with its error, and can be replayed from there.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, Min, OuterRef, Q, QuerySet
from django_tasks import task

from siyu.core.clock import now
from siyu.core.errors import NotFound
from siyu.core.tasks import enqueue
from siyu.corps.models import Corp
from siyu.wecom.messages import CONTACT_EVENT, MessageError, parse_message
from siyu.wecom.models import InboxEvent

if TYPE_CHECKING:
    from siyu.wecom.client import WeComClient

logger = logging.getLogger(__name__)

OPEN = (InboxEvent.Status.PENDING, InboxEvent.Status.PROCESSING)
# A row handed back while being worked waits this long, so the worker that had it is done with it first
# (handlers take well under a second unless they wait for WeCom quota).
REDELIVERY_PAUSE_SECONDS = 5
# A free worker takes a drain before background tasks (outbox passes of ordinary writes, syncs, automation);
# the outbox's welcome passes rank higher still (``outbox.dispatch``).
DRAIN_PRIORITY = 20


def _knob(name: str) -> Any:
    return settings.SIYU[name]


# --- storing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """What storing a callback did: ``created`` False for a redelivery already on record."""

    created: bool
    pending: bool
    event: str
    change_type: str


def dedupe_key(plaintext: bytes) -> str:
    """The inbox key of a decrypted message: sha1 over its exact bytes (wecom-api.md §2.5, dedupe note)."""
    return hashlib.sha1(plaintext, usedforsecurity=False).hexdigest()


def inbox_row(plaintext: bytes) -> tuple[str, dict[str, Any]]:
    """The dedupe key and the column values of a decrypted callback's inbox row (nothing is written).

    Only events are kept whole. Other messages (text and media sent to the app by members) have no handler and
    may carry chat contents, which Siyu does not keep: they are stored as ``ignored`` without their body.
    """
    key = dedupe_key(plaintext)
    try:
        message = parse_message(plaintext)
    except MessageError:
        message = None
    if message is None:
        # Authentic (the signature and receiveid matched) but unreadable: keep it for the console to show.
        values: dict[str, Any] = {
            "event": "",
            "change_type": "",
            "ordering_key": f"unreadable:{key}",
            "message": plaintext.decode("utf-8", errors="replace"),
            "status": InboxEvent.Status.PENDING,
        }
    elif message.msg_type != "event":
        values = {
            "event": message.event[:64],
            "change_type": "",
            "ordering_key": f"other:{message.event}"[:160],
            "message": "",
            "event_time": message.create_time,
            "status": InboxEvent.Status.IGNORED,
            "outcome": "not an event: contents are not kept",
            "processed_at": now(),
        }
    else:
        values = {
            "event": message.event[:64],
            "change_type": message.change_type[:64],
            "ordering_key": message.ordering_key,
            "message": plaintext.decode("utf-8", errors="replace"),
            "event_time": message.create_time,
            "status": InboxEvent.Status.PENDING,
        }
    return key, values


def store_message(*, corp_id: int, plaintext: bytes) -> Stored:
    """Store a decrypted callback once; returns whether it was new. Database errors propagate (→ 5xx, retry).

    One INSERT, autocommitted: the web process's callbacks go through ``groupcommit`` instead when it is on.
    """
    key, values = inbox_row(plaintext)
    try:
        if connection.in_atomic_block:
            with transaction.atomic():  # a savepoint, so a duplicate does not break the caller's transaction
                InboxEvent.objects.create(corp_id=corp_id, dedupe_key=key, **values)
        else:
            # The receiver's case: one autocommitted INSERT is one round trip, durable when it returns.
            InboxEvent.objects.create(corp_id=corp_id, dedupe_key=key, **values)
        created = True
    except IntegrityError:
        if not InboxEvent.objects.filter(corp_id=corp_id, dedupe_key=key).exists():
            raise
        created = False
        if values["status"] == InboxEvent.Status.PENDING:
            work_again(corp_id, key)
    return Stored(
        created=created,
        pending=values["status"] == InboxEvent.Status.PENDING,
        event=values["event"],
        change_type=values["change_type"],
    )


def work_again(corp_id: int, key: str) -> None:
    """A message identical to one on record arrived: work the stored row again, without a second row.

    Most such arrivals are WeCom's redeliveries, and working a row again changes nothing. But two real
    changes can also make identical messages — two edits of one relation in the same second carry the same
    UserID, ExternalUserID and CreateTime — and handlers read the current state from WeCom, so working the row
    once more after the second change is what keeps that change from being lost. A row being worked right now
    is handed back (its worker's result is discarded) and picked up again after a short pause.
    """
    with connection.cursor() as cursor:
        cursor.execute(requeue_statement(), requeue_params(corp_id, key, moment=now(), connection=connection))


def _requeue(*, table: str, later: str, moment: str) -> tuple[str, str]:
    """The SET list and the condition that make a stored row pending again (``work_again``): a done or failed
    row starts over (at ``moment``), a row being worked is handed back (at ``later``). Columns are qualified
    with ``table``; ``later`` and ``moment`` are SQL expressions."""
    meta = InboxEvent._meta
    columns = {f.name: str(f.column) for f in meta.local_concrete_fields}

    def col(name: str) -> str:
        return connection.ops.quote_name(columns[name])

    def own(name: str) -> str:
        return f"{table}.{col(name)}"

    status = own("status")
    processing = InboxEvent.Status.PROCESSING.value
    worked = ", ".join(f"'{s.value}'" for s in (InboxEvent.Status.DONE, InboxEvent.Status.FAILED))

    def case(name: str, if_processing: str, otherwise: str) -> str:
        return f"{col(name)} = CASE WHEN {status} = '{processing}' THEN {if_processing} ELSE {otherwise} END"

    assignments = ", ".join(
        [
            f"{col('status')} = '{InboxEvent.Status.PENDING.value}'",
            case("next_attempt_at", later, moment),
            case("attempts", own("attempts"), "0"),
            case("last_error", own("last_error"), "''"),
            case("claim", "''", own("claim")),
            case("locked_until", "NULL", own("locked_until")),
        ]
    )
    return assignments, f"{status} IN ({worked}, '{processing}')"


@functools.cache
def requeue_statement() -> str:
    """The one UPDATE behind ``work_again``, shared by every path that stores callbacks (``%s`` parameters:
    ``requeue_params``)."""
    meta = InboxEvent._meta
    table = connection.ops.quote_name(meta.db_table)
    assignments, worked = _requeue(table=table, later="%s", moment="%s")
    corp = connection.ops.quote_name(str(meta.get_field("corp").column))
    key = connection.ops.quote_name(str(meta.get_field("dedupe_key").column))
    return (
        f"UPDATE {table} SET {assignments} "  # noqa: S608 - names from the model
        f"WHERE {table}.{corp} = %s AND {table}.{key} = %s AND {worked}"
    )


@functools.cache
def store_statement() -> str:
    """PostgreSQL: one statement that stores a batch of callbacks' rows, each inserted or, when already on
    record, worked again (``work_again``: only when the new row is a pending one, as an event's is). Its one
    parameter is a JSON array of objects, the columns of ``groupcommit.insert_statement`` by name (times as
    ISO 8601 text), in the batch's lock order. It returns (corp_id, dedupe_key, inserted) for the rows
    inserted (inserted true) and for those made pending again (false); a row left as it was returns nothing.

    The asynchronous receiver commits a batch with it: a redelivery costs no second transaction, and the batch
    one statement instead of one per row (bench/callbacks.py, alternating runs: PostgreSQL 108–130 µs a
    callback against 153–160 µs with a pipelined statement per row). ``xmax = 0`` is how PostgreSQL tells a
    row this statement inserted from one it updated.
    """
    from siyu.wecom.groupcommit import insert_statement

    fields, insert = insert_statement()
    head = insert[: insert.index(" VALUES (")]
    table = connection.ops.quote_name(InboxEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    return (
        f"{head} SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s::json)"  # noqa: S608
        + _store_conflict()
    )


def _store_conflict() -> str:
    meta = InboxEvent._meta
    table = connection.ops.quote_name(meta.db_table)
    corp = connection.ops.quote_name(str(meta.get_field("corp").column))
    key = connection.ops.quote_name(str(meta.get_field("dedupe_key").column))
    status = connection.ops.quote_name(str(meta.get_field("status").column))
    received = connection.ops.quote_name(str(meta.get_field("received_at").column))
    moment = f"EXCLUDED.{received}"
    later = f"{moment} + interval '{REDELIVERY_PAUSE_SECONDS} seconds'"
    assignments, worked = _requeue(table=table, later=later, moment=moment)
    return (
        f" ON CONFLICT ({corp}, {key}) DO UPDATE SET {assignments}"
        f" WHERE EXCLUDED.{status} = '{InboxEvent.Status.PENDING.value}' AND {worked}"
        f" RETURNING {table}.{corp}, {table}.{key}, {table}.xmax = 0"
    )


def requeue_params(corp_id: int, key: str, *, moment: dt.datetime, connection: Any) -> list[Any]:
    """The parameters of ``requeue_statement`` for one stored row, times adapted for ``connection``."""
    adapt = connection.ops.adapt_datetimefield_value
    later = moment + dt.timedelta(seconds=REDELIVERY_PAUSE_SECONDS)
    return [adapt(later), adapt(moment), corp_id, key]


# --- waking the worker --------------------------------------------------------------------------------------


def enqueue_drain(corp_id: int | None, run_after: dt.datetime | None = None) -> None:
    """A drain task for the corp (all corps: None), at the drains' priority, now or at ``run_after``."""
    enqueue(drain_inbox_task, corp_id=corp_id, priority=DRAIN_PRIORITY, run_after=run_after)


@dataclass(frozen=True)
class WakeUp:
    """A drain to enqueue for a corp: now (``run_after`` None) or at the start of the next second."""

    corp_id: int
    run_after: dt.datetime | None = None


def plan_wake_up(corp_id: int, claim: Callable[[str], bool]) -> WakeUp | None:
    """The drain that rows just stored for a corp need, or None when one is already on its way.

    At most one drain is enqueued per corp and second: ``claim`` takes a (corp, second) slot and says whether
    it was free. A row stored in a second whose slot is taken claims the next second's, so a row stored just
    after a running drain looked is never left waiting for the next callback.
    """
    second = math.floor(time.time())
    if claim(f"siyu:inbox-wake:{corp_id}:{second}"):
        return WakeUp(corp_id)
    if claim(f"siyu:inbox-wake:{corp_id}:{second + 1}"):
        return WakeUp(corp_id, dt.datetime.fromtimestamp(second + 1, tz=dt.UTC))
    return None


def send_wake_up(wake_up: WakeUp) -> None:
    """Enqueue the planned drain. The rows are already stored: a queue that cannot take the wake-up must not
    turn their acknowledgement into an error (the next callback, or the rows' retry schedule, wakes the
    worker)."""
    try:
        enqueue_drain(wake_up.corp_id, wake_up.run_after)
    except Exception:
        logger.exception("wecom inbox: could not wake the worker for corp %s", wake_up.corp_id)


def wake_worker(corp_id: int) -> None:
    """Make sure a drain runs soon after this transaction commits, without one task per callback (the slots
    are in the cache: per process, or shared when the cache is)."""
    wake_up = plan_wake_up(corp_id, lambda key: bool(cache.add(key, 1, timeout=5)))
    if wake_up is not None:
        transaction.on_commit(lambda: send_wake_up(wake_up))


# --- working ------------------------------------------------------------------------------------------------


def retry_delay(attempts: int) -> dt.timedelta:
    """Exponential backoff after the ``attempts``-th failed try, capped."""
    base: float = _knob("INBOX_RETRY_BASE_SECONDS")
    cap: float = _knob("INBOX_RETRY_MAX_SECONDS")
    return dt.timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def _due(moment: dt.datetime) -> Q:
    return Q(status=InboxEvent.Status.PENDING, next_attempt_at__lte=moment) | Q(
        status=InboxEvent.Status.PROCESSING, locked_until__lt=moment
    )


def claimable(moment: dt.datetime, *, corp_id: int | None = None) -> QuerySet[InboxEvent]:
    """Rows a worker may take now: due, and first among the open rows of their ordering key."""
    earlier_open = InboxEvent.objects.filter(
        corp_id=OuterRef("corp_id"),
        ordering_key=OuterRef("ordering_key"),
        pk__lt=OuterRef("pk"),
        status__in=OPEN,
    )
    rows = InboxEvent.objects.filter(_due(moment)).filter(~Exists(earlier_open))
    if corp_id is not None:
        rows = rows.filter(corp_id=corp_id)
    return rows.order_by("pk")


def claim_batch(*, corp_id: int | None = None, size: int | None = None) -> tuple[str, list[InboxEvent]]:
    """Claim up to ``size`` claimable rows for this worker; returns the claim token and the rows."""
    moment = now()
    size = size or _knob("INBOX_BATCH_SIZE")
    token = uuid.uuid4().hex
    with transaction.atomic():
        # Rows another worker is claiming this instant are skipped, not waited for nor taken twice: workers
        # draining one queue each get the next rows free, and a drain ends only when none is left. (SQLite
        # has one writer at a time and no row locks: there the update's own condition settles a race.)
        ids = list(
            claimable(moment, corp_id=corp_id)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            return "", []
        InboxEvent.objects.filter(pk__in=ids).filter(_due(moment)).update(
            status=InboxEvent.Status.PROCESSING,
            claim=token,
            locked_until=moment + dt.timedelta(seconds=_knob("INBOX_LEASE_SECONDS")),
            attempts=F("attempts") + 1,
        )
    rows = list(InboxEvent.objects.filter(claim=token).select_related("corp").order_by("pk"))
    return token, rows


def _finish(row: InboxEvent, *, status: str, outcome: str = "", error: str = "") -> bool:
    """Close a claimed row; False when the claim was lost (the lease ended and someone else took it)."""
    return bool(
        InboxEvent.objects.filter(pk=row.pk, claim=row.claim, status=InboxEvent.Status.PROCESSING).update(
            status=status,
            outcome=outcome[:200],
            last_error=error,
            processed_at=now(),
            locked_until=None,
        )
    )


def _fail(row: InboxEvent, exc: BaseException) -> str:
    """Schedule a retry after a failed try, or give up after the last one. Returns the new status."""
    error = describe_error(exc)
    retry_at = getattr(exc, "retry_at", None)
    if retry_at is not None:
        # Held back by the rate limiter: not the event's fault, so it does not use up an attempt.
        InboxEvent.objects.filter(pk=row.pk, claim=row.claim).update(
            status=InboxEvent.Status.PENDING,
            attempts=F("attempts") - 1,
            next_attempt_at=retry_at,
            locked_until=None,
            last_error=error,
        )
        return InboxEvent.Status.PENDING
    if row.attempts >= _knob("INBOX_MAX_ATTEMPTS"):
        _finish(row, status=InboxEvent.Status.FAILED, outcome="gave up after the last attempt", error=error)
        return InboxEvent.Status.FAILED
    InboxEvent.objects.filter(pk=row.pk, claim=row.claim).update(
        status=InboxEvent.Status.PENDING,
        next_attempt_at=now() + retry_delay(row.attempts),
        locked_until=None,
        last_error=error,
    )
    return InboxEvent.Status.PENDING


def describe_error(exc: BaseException) -> str:
    """A short, content-free description of why a try failed (type and message, which name ids, not data)."""
    text = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {text}"[:1000]


ClientFactory = Callable[[Corp], "WeComClient"]


def _default_client(corp: Corp) -> WeComClient:
    from siyu.wecom.client import client_for
    from siyu.wecom.limits import Priority

    return client_for(corp, priority=Priority.EVENT)


def process_row(row: InboxEvent, *, client_factory: ClientFactory | None = None) -> str:
    """Work one claimed row through its handler; returns its new status."""
    from siyu.wecom.handlers import Ignored, handle

    try:
        message = parse_message(row.message)
    except MessageError as exc:  # retrying cannot make it readable
        _finish(row, status=InboxEvent.Status.FAILED, outcome="unreadable message", error=describe_error(exc))
        return InboxEvent.Status.FAILED
    try:
        outcome = handle(row=row, message=message, client_factory=client_factory or _default_client)
    except Ignored as ignored:
        _finish(row, status=InboxEvent.Status.IGNORED, outcome=str(ignored))
        return InboxEvent.Status.IGNORED
    except Exception as exc:  # every failure is recorded on the row and retried; the worker carries on
        logger.warning("wecom inbox row %s failed (attempt %s): %s", row.pk, row.attempts, type(exc).__name__)
        return _fail(row, exc)
    if not _finish(row, status=InboxEvent.Status.DONE, outcome=outcome):
        logger.warning("wecom inbox row %s: claim lost before it was closed", row.pk)
    return InboxEvent.Status.DONE


@dataclass
class DrainReport:
    """What one drain did, by resulting status."""

    statuses: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False

    @property
    def worked(self) -> int:
        return sum(self.statuses.values())


def drain_inbox(
    *,
    corp_id: int | None = None,
    max_seconds: float | None = None,
    client_factory: ClientFactory | None = None,
) -> DrainReport:
    """Work claimable rows until none is left (or the time budget is spent); returns what was done."""
    budget = max_seconds if max_seconds is not None else _knob("INBOX_RUN_SECONDS")
    started = time.monotonic()
    report = DrainReport()
    while True:
        if time.monotonic() - started > budget:
            report.stopped_early = True
            break
        _token, rows = claim_batch(corp_id=corp_id)
        if not rows:
            break
        for row in rows:
            working = _working.set(row.pk)
            try:
                status = process_row(row, client_factory=client_factory)
            finally:
                _working.reset(working)
            report.statuses[status] = report.statuses.get(status, 0) + 1
    return report


# The inbox row a drain is working (its handlers' own add is not one that waits).
_working: contextvars.ContextVar[int | None] = contextvars.ContextVar("siyu_inbox_working", default=None)


def working_row() -> int | None:
    """The inbox row this thread's drain is working, if any."""
    return _working.get()


# The events that carry a welcome code: their welcome goes out while the add is worked, within 20 s.
ADD_CHANGES = ("add_external_contact", "add_half_external_contact")


def _waiting_adds(*, queued_only: bool = False) -> QuerySet[InboxEvent]:
    """Customers' adds due and unclaimed, or (unless ``queued_only``) claimed under a live lease; a row
    waiting for a retry, or left by a dead worker, does not count."""
    moment = now()
    due = Q(status=InboxEvent.Status.PENDING, next_attempt_at__lte=moment)
    if not queued_only:
        due |= Q(status=InboxEvent.Status.PROCESSING, locked_until__gte=moment)
    return InboxEvent.objects.filter(event=CONTACT_EVENT, change_type__in=ADD_CHANGES).filter(due)


def adds_waiting(corp_id: int, *, besides: int | None = None, queued_only: bool = False) -> bool:
    """Whether a customer's add waits in the corp's inbox or is being worked (``_waiting_adds``); ``besides``:
    a row that does not count (the one being worked by the caller); ``queued_only``: only adds no worker has
    taken yet count (the workers are behind)."""
    rows = _waiting_adds(queued_only=queued_only).filter(corp_id=corp_id)
    if besides is not None:
        rows = rows.exclude(pk=besides)
    return rows.exists()


def yield_to_adds(
    corp_id: int,
    *,
    most: float,
    behind_most: float = 0.0,
    poll: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Background work (a sync) pauses here while the corp's adds are waiting or being worked, at most
    ``most`` seconds, and beyond that while adds still wait unclaimed (the workers are behind), up to
    ``behind_most`` seconds in all: the workers handling them — and their welcome messages — have the machine
    and the database to themselves. Returns the seconds paused. Call it between transactions."""
    if most <= 0:
        return 0.0
    started = time.monotonic()
    paused = False
    while True:
        elapsed = time.monotonic() - started
        if elapsed < most:
            left = most - elapsed
            waiting = adds_waiting(corp_id)
        else:
            left = behind_most - elapsed
            waiting = left > 0 and adds_waiting(corp_id, queued_only=True)
        if not waiting or left <= 0:
            break
        sleep(min(poll, left))
        paused = True
    return time.monotonic() - started if paused else 0.0


def adds_waiting_anywhere() -> bool:
    """Whether a customer's add waits in any corp's inbox or is being worked: work that can wait (an outbox
    pass of writes other than welcome messages) gives way to the drains."""
    return _waiting_adds().exists()


def next_retry_at(*, corp_id: int | None = None) -> dt.datetime | None:
    """When the earliest waiting retry is due (None when nothing waits)."""
    rows = InboxEvent.objects.filter(status=InboxEvent.Status.PENDING)
    if corp_id is not None:
        rows = rows.filter(corp_id=corp_id)
    return rows.aggregate(at=Min("next_attempt_at"))["at"]


@task()
def drain_inbox_task(corp_id: int | None = None) -> None:
    """Drain the inbox; continue in a new task when the time budget ran out, and wake up for due retries."""
    report = drain_inbox(corp_id=corp_id)
    if report.stopped_early:
        enqueue_drain(corp_id)
        return
    retry_at = next_retry_at(corp_id=corp_id)
    # One wake-up per distinct moment (per process): many rows waiting for the same moment need one drain.
    if retry_at is not None and cache.add(f"siyu:inbox-retry:{corp_id}:{retry_at.timestamp():.0f}", 1, 3600):
        enqueue_drain(corp_id, max(retry_at, now()))


# --- console: stats, list, replay ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxStats:
    """How the inbox is doing: open rows (depth), age of the oldest one (lag), rows by status."""

    depth: int
    lag: dt.timedelta | None
    by_status: dict[str, int]

    @property
    def status_rows(self) -> list[tuple[str, str, int]]:
        """(status, label, count) in the order of the statuses."""
        return [
            (value, str(label), self.by_status.get(value, 0)) for value, label in InboxEvent.Status.choices
        ]


def inbox_stats(corp: Corp) -> InboxStats:
    """Depth, lag and counts by status of one corp's inbox (two aggregate queries)."""
    rows = InboxEvent.objects.for_corp(corp)
    by_status = {s: 0 for s in InboxEvent.Status.values}
    for status, count in rows.values_list("status").annotate(n=Count("pk")).order_by():
        by_status[status] = count
    oldest = rows.filter(status__in=OPEN).aggregate(at=Min("received_at"))["at"]
    depth = by_status[InboxEvent.Status.PENDING] + by_status[InboxEvent.Status.PROCESSING]
    return InboxStats(depth=depth, lag=(now() - oldest) if oldest else None, by_status=by_status)


def list_inbox(
    corp: Corp,
    *,
    status: str = "",
    event: str = "",
    key: str = "",
    before_id: int | None = None,
    limit: int = 50,
) -> list[InboxEvent]:
    """A page of the corp's inbox, newest first; ``before_id`` continues after the previous page."""
    rows = InboxEvent.objects.for_corp(corp).defer("message")
    if status:
        rows = rows.filter(status=status)
    if event:
        rows = rows.filter(Q(event=event) | Q(change_type=event))
    if key:
        rows = rows.filter(ordering_key__icontains=key)
    if before_id is not None:
        rows = rows.filter(pk__lt=before_id)
    return list(rows.order_by("-pk")[:limit])


def get_inbox_event(corp: Corp, event_id: int) -> InboxEvent:
    """One row of the corp's inbox (404 for another corp's)."""
    row = InboxEvent.objects.for_corp(corp).filter(pk=event_id).first()
    if row is None:
        raise NotFound("inbox event not found")
    return row


@transaction.atomic
def replay_inbox_event(*, row: InboxEvent) -> InboxEvent:
    """Put a row back in the queue to be worked again from scratch (handlers are idempotent)."""
    InboxEvent.objects.filter(pk=row.pk).update(
        status=InboxEvent.Status.PENDING,
        attempts=0,
        next_attempt_at=now(),
        claim="",
        locked_until=None,
        last_error="",
        outcome="",
        processed_at=None,
    )
    wake_worker(row.corp_id)
    row.refresh_from_db()
    return row
