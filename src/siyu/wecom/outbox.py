"""The outbox: every write to WeCom is a row first, sent by a worker once per idempotency key.

``enqueue_write`` validates the request, stores it (a repeated idempotency key returns the row already
there) and wakes the worker after the transaction commits, so a write whose transaction rolled back is never
sent. The worker (``send_due``, run by the ``send_outbox`` task) claims due rows — highest priority first —
so that two workers never send the same row: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, and on
SQLite (no SKIP LOCKED) a conditional ``UPDATE`` per row that only one worker's statement can match. A claim
is a lease: a row whose worker died becomes due again when ``claimed_until`` passes, and the worker's
outcome is only recorded while its lease holds.

Outcomes: WeCom's answer is stored in ``result`` and the row is ``done``. Throttling (45009 or our own
limiter) reschedules the row for when the quota returns without counting a try. Transient errors (-1 after the
gateway's own retries, 45033, network failures, configuration errors an administrator may fix) are retried
with backoff up to ``WECOM_OUTBOX_MAX_ATTEMPTS`` tries; then, or at once for a request WeCom refuses (unknown
userid, expired welcome code…), the row is ``failed`` with the reason. A row with ``expires_at`` (a welcome
message, whose code lasts 20 s) is failed as expired rather than sent or retried after that moment, and waits
for quota no longer than it has left. Every final outcome is announced (``signals.write_settled``).
``send_now`` sends one row in the calling thread, for a write that cannot wait for a queue. A write that is
not idempotent and may have reached WeCom before the connection broke, or before the worker sending it died,
is failed with "outcome unknown" rather than sent twice.

Logs name the row, the API and the errcode, never the payload (it holds message texts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils.translation import gettext as _
from pydantic import BaseModel, ValidationError

from siyu.core.bulk import insert_one
from siyu.core.clock import now
from siyu.core.errors import Invalid, NotFound
from siyu.core.tasks import enqueue
from siyu.corps.models import Corp
from siyu.wecom import errors
from siyu.wecom.client import WRITE_APIS, WeComClient
from siyu.wecom.gateway import Gateway
from siyu.wecom.limits import DEFAULT_MAX_WAIT, Priority, purge_expired_tickets, siyu_setting
from siyu.wecom.models import Outbox
from siyu.wecom.schemas import WeComRequest

log = logging.getLogger(__name__)

# A worker claims this many rows at a time: enough to keep a worker busy for a few seconds, few enough that
# other workers find work too.
CLAIM_BATCH = 20
# A claimed row is someone else's to send for this long; covers the slowest send (limiter wait, retries with
# backoff and HTTP timeouts: about a minute).
CLAIM_LEASE = timedelta(minutes=5)
# How long a send may wait for quota before the row is rescheduled instead (keeps workers free). A welcome
# message waits longer: its code is only valid 20 s, so it must not go to the back of the queue.
SEND_MAX_WAIT = 5.0
# A drain task stops after this long and enqueues its continuation, so one task never holds a worker long.
DRAIN_BUDGET = 50.0
# Backoff between tries: doubling from this base, capped at RETRY_CAP. Welcome messages retry within their
# code's 20 s.
RETRY_BASE = timedelta(seconds=30)
WELCOME_RETRY_BASE = timedelta(seconds=2)
RETRY_CAP = timedelta(hours=1)
IDEMPOTENCY_KEY_MAX = 200
# A pass that gave way to the inbox's drains (customers' adds waiting) looks again after this long.
GIVE_WAY_PAUSE = timedelta(seconds=1)
# Rows per INSERT of ``enqueue_writes``: a few hundred keep each statement well under SQLite's variable limit.
BULK_INSERT_BATCH = 500


def _request(api: str, payload: dict[str, Any] | WeComRequest) -> dict[str, Any]:
    spec = WRITE_APIS.get(api)
    if spec is None:
        raise Invalid(f"{api} is not a WeCom write API", field="api")
    data = payload.body() if isinstance(payload, WeComRequest) else payload
    try:
        return spec.request.model_validate(data).body()
    except ValidationError as exc:
        # Only field paths and messages: the values may be message texts.
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise Invalid(f"{api}: {where}: {first['msg']}", field=where) from None


def enqueue_write(
    *,
    corp: Corp,
    api: str,
    payload: dict[str, Any] | WeComRequest,
    idempotency_key: str,
    priority: Priority = Priority.USER,
    expires_at: datetime | None = None,
) -> Outbox:
    """Store a write to WeCom and send it after commit; a repeated key returns the row already there.

    ``expires_at``: after this moment the write is worthless and is failed as expired instead of sent."""
    if not idempotency_key or len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
        raise Invalid(
            f"idempotency_key must be 1 to {IDEMPOTENCY_KEY_MAX} characters", field="idempotency_key"
        )
    body = _request(api, payload)
    row = Outbox(
        corp=corp,
        api=api,
        payload=body,
        idempotency_key=idempotency_key,
        priority=int(priority),
        next_attempt_at=now(),
        expires_at=expires_at,
    )
    # One statement in the common case (a new key); a key already stored, by an earlier call or a concurrent
    # transaction, is read back.
    if not insert_one(row):
        return Outbox.objects.for_corp(corp).get(idempotency_key=idempotency_key)
    transaction.on_commit(lambda: dispatch(priority=priority))
    return row


def enqueue_writes(
    *,
    corp: Corp,
    writes: Sequence[tuple[str, dict[str, Any] | WeComRequest, str]],
    priority: Priority = Priority.BULK,
) -> int:
    """Store many writes (api, payload, idempotency key) in one INSERT; keys already stored are left as they
    are. Sent after commit like ``enqueue_write``; returns how many rows are new."""
    rows: dict[str, Outbox] = {}
    for api, payload, key in writes:
        if not key or len(key) > IDEMPOTENCY_KEY_MAX:
            raise Invalid(
                f"idempotency_key must be 1 to {IDEMPOTENCY_KEY_MAX} characters", field="idempotency_key"
            )
        body = _request(api, payload)
        rows.setdefault(
            key,
            Outbox(
                corp=corp,
                api=api,
                payload=body,
                idempotency_key=key,
                priority=int(priority),
                next_attempt_at=now(),
            ),
        )
    if not rows:
        return 0
    stored = set(
        Outbox.objects.for_corp(corp)
        .filter(idempotency_key__in=list(rows))
        .values_list("idempotency_key", flat=True)
    )
    new = [row for key, row in rows.items() if key not in stored]
    # A concurrent transaction may store one of the keys meanwhile: its row stands, ours is dropped.
    Outbox.objects.bulk_create(new, ignore_conflicts=True, batch_size=BULK_INSERT_BATCH)
    if new:
        transaction.on_commit(lambda: dispatch(priority=priority))
    return len(new)


def get_write(*, corp: Corp, idempotency_key: str) -> Outbox:
    """The outbox row of a write, by its idempotency key."""
    row = Outbox.objects.for_corp(corp).filter(idempotency_key=idempotency_key).first()
    if row is None:
        raise NotFound(_("no such WeCom write"))
    return row


def requeue_write(*, corp: Corp, outbox_id: int) -> Outbox:
    """Send a failed write again (an administrator fixed the cause); its tries start from zero."""
    with transaction.atomic():
        row = Outbox.objects.for_corp(corp).select_for_update().filter(pk=outbox_id).first()
        if row is None:
            raise NotFound(_("no such WeCom write"))
        if row.status != Outbox.Status.FAILED:
            raise Invalid(_("only a failed write can be sent again"), field="status")
        row.status = Outbox.Status.PENDING
        row.attempts = 0
        row.next_attempt_at = now()
        row.claimed_until = None
        row.save(update_fields=["status", "attempts", "next_attempt_at", "claimed_until"])
        transaction.on_commit(lambda: dispatch(priority=Priority(row.priority)))
    return row


# --- the worker ---------------------------------------------------------------------------------------------

# The reason recorded on a row given up because its ``expires_at`` passed.
EXPIRED_REASON = "expired before it could be sent"


def dispatch(*, priority: int = Priority.USER, run_after: datetime | None = None) -> None:
    """Enqueue a ``send_outbox`` task, ahead of other tasks for high priorities where supported."""
    from siyu.wecom.tasks import send_outbox

    # Task priorities run -100..100 with 0 the default: EVENT maps to 0, WELCOME to 40, SYNC to -40.
    enqueue(send_outbox, priority=int(priority) - int(Priority.EVENT), run_after=run_after)


def _due() -> Q:
    at = now()
    return Q(status=Outbox.Status.PENDING, next_attempt_at__lte=at) | Q(
        status=Outbox.Status.SENDING, claimed_until__lt=at
    )


def claim_due(*, limit: int = CLAIM_BATCH, min_priority: int | None = None) -> list[tuple[int, datetime]]:
    """Claim up to ``limit`` due rows for this worker: (row id, lease) pairs, highest priority first (only
    rows of ``min_priority`` or higher when given)."""
    due = Outbox.objects.filter(_due())
    if min_priority is not None:
        due = due.filter(priority__gte=min_priority)
    ordered = due.order_by("-priority", "next_attempt_at", "pk")
    lease = now() + CLAIM_LEASE
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            ids = list(ordered.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
            Outbox.objects.filter(pk__in=ids).update(status=Outbox.Status.SENDING, claimed_until=lease)
        return [(pk, lease) for pk in ids]
    claimed: list[tuple[int, datetime]] = []
    for pk in ordered.values_list("pk", flat=True)[:limit]:
        # The row is still due only if no other worker claimed it since we looked: one UPDATE wins.
        if Outbox.objects.filter(_due(), pk=pk).update(status=Outbox.Status.SENDING, claimed_until=lease):
            claimed.append((pk, lease))
    return claimed


@dataclass
class DrainReport:
    """What one drain did."""

    done: int = 0
    failed: int = 0
    retrying: int = 0
    throttled: int = 0
    stopped_early: bool = False
    gave_way: bool = False  # stopped because ``give_way`` said so; the rows left are due again


def send_due(
    *,
    budget: float = DRAIN_BUDGET,
    claim_batch: int = CLAIM_BATCH,
    give_way: Callable[[], bool] | None = None,
) -> DrainReport:
    """Send due rows until none is due or ``budget`` seconds have passed.

    ``give_way``: asked before each row; while it says so, only welcome messages are sent (their codes are
    running out) and the pass stops once none is due, handing its other claimed rows back."""
    report = DrainReport()
    deadline = time.monotonic() + budget
    while True:
        yielding = give_way is not None and give_way()
        batch = claim_due(limit=claim_batch, min_priority=Priority.WELCOME if yielding else None)
        if not batch:
            # Gave way only if other rows wait (otherwise the pass is simply done).
            report.gave_way = yielding and Outbox.objects.filter(_due()).exists()
            return report
        for n, (pk, lease) in enumerate(batch):
            if give_way is not None and not yielding and n and give_way():
                _hand_back(batch[n:])
                report.gave_way = True
                return report
            status = send_claimed(pk, lease)
            if status == "done":
                report.done += 1
            elif status == "failed":
                report.failed += 1
            elif status == "throttled":
                report.throttled += 1
            elif status == "retrying":
                report.retrying += 1
        if time.monotonic() > deadline:
            report.stopped_early = True
            return report


def _hand_back(claimed: list[tuple[int, datetime]]) -> None:
    """Rows claimed by this pass and not sent: due again at once, for the next pass."""
    for pk, lease in claimed:
        Outbox.objects.filter(pk=pk, status=Outbox.Status.SENDING, claimed_until=lease).update(
            status=Outbox.Status.PENDING, claimed_until=None
        )


def _backoff(priority: int, attempts: int) -> timedelta:
    base = WELCOME_RETRY_BASE if priority >= Priority.WELCOME else RETRY_BASE
    return min(RETRY_CAP, base * (2 ** max(attempts - 1, 0)))


def _priority(value: int) -> Priority:
    try:
        return Priority(value)
    except ValueError:
        return Priority.BULK


def _reason(exc: BaseException) -> tuple[str, int | None]:
    if isinstance(exc, errors.WeComError):
        return f"errcode {exc.errcode}: {exc.errmsg}", exc.errcode
    if isinstance(exc, errors.RateLimited | errors.WeComUnavailable):
        return str(exc), None
    # An unexpected failure: its text may quote the payload, so only the type is kept.
    return f"unexpected {type(exc).__name__}", None


def send_claimed(pk: int, lease: datetime) -> str:
    """Send one claimed row and record the outcome: "done", "failed", "retrying", "throttled" or "lost"."""
    row = Outbox.objects.select_related("corp").get(pk=pk)
    spec = WRITE_APIS.get(row.api)
    priority = _priority(row.priority)
    mine = Outbox.objects.filter(pk=pk, status=Outbox.Status.SENDING, claimed_until=lease)
    if row.status != Outbox.Status.SENDING or row.claimed_until != lease:
        # Our lease ran out before we got to the row and another worker claimed it.
        return "lost"
    if spec is None:
        return _record(mine, row, status=Outbox.Status.FAILED, reason=f"{row.api} is not a WeCom write API")
    if row.expires_at is not None and now() >= row.expires_at:
        return _expire(mine, row)
    if not spec.idempotent:
        # ``sent_at`` on a row still being sent says a send began and its outcome was never recorded: the
        # worker died mid-call or its lease ran out. WeCom may have the write: sending again could double it.
        if row.sent_at is not None:
            return _record(
                mine,
                row,
                status=Outbox.Status.FAILED,
                reason="outcome unknown, check in WeCom before sending again (the worker sending it stopped)",
            )
        mine.update(sent_at=now())
    max_wait = DEFAULT_MAX_WAIT[Priority.WELCOME] if priority >= Priority.WELCOME else SEND_MAX_WAIT
    if row.expires_at is not None:
        max_wait = max(0.0, min(max_wait, (row.expires_at - now()).total_seconds()))
    deadline = None
    if row.expires_at is not None:
        deadline = time.monotonic() + (row.expires_at - now()).total_seconds()
    client = WeComClient(Gateway(row.corp, priority=priority, max_wait=max_wait, deadline=deadline))
    try:
        data = client.transport.call(row.api, method="POST", body=row.payload, idempotent=spec.idempotent)
    except errors.Throttled as exc:
        retry_at = exc.retry_at or now() + timedelta(seconds=60)
        if row.expires_at is not None and retry_at >= row.expires_at:
            return _expire(mine, row)
        reason, errcode = _reason(exc)
        updated = mine.update(
            status=Outbox.Status.PENDING,
            next_attempt_at=retry_at,
            claimed_until=None,
            last_error=reason,
            errcode=errcode,
            sent_at=None,
        )
        log.info("outbox %d %s throttled until %s", pk, row.api, retry_at.isoformat())
        return "throttled" if updated else "lost"
    except Exception as exc:
        reason, errcode = _reason(exc)
        ambiguous = isinstance(exc, errors.WeComUnavailable) and exc.sent and not spec.idempotent
        permanent = isinstance(exc, errors.InvalidRequest) or ambiguous
        if ambiguous:
            reason = f"outcome unknown, check in WeCom before sending again ({reason})"
        if not isinstance(exc, errors.WeComError | errors.WeComUnavailable):
            log.exception("outbox %d %s: unexpected failure", pk, row.api)
        return _fail_or_retry(mine, row, priority, reason=reason, errcode=errcode, permanent=permanent)
    result = {k: v for k, v in data.items() if k not in ("errcode", "errmsg")}
    outcome = _record(mine, row, status=Outbox.Status.DONE, result=result)
    if outcome == Outbox.Status.DONE:
        row.status, row.result = Outbox.Status.DONE, result
        _apply_result(row)
    return outcome


def _apply_result(row: Outbox) -> None:
    """Hand a done write's answer back to Siyu (e.g. the WeCom id of a tag created from Siyu).

    WeCom has the write either way, so a failure here is logged and the row stays done; the next sync links
    the tag by its name instead.
    """
    from siyu.wecom.services import apply_write_result

    try:
        apply_write_result(row)
    except Exception:
        log.exception("outbox %d %s: the answer could not be applied", row.pk, row.api)


def _fail_or_retry(
    mine: Any, row: Outbox, priority: Priority, *, reason: str, errcode: int | None, permanent: bool
) -> str:
    attempts = row.attempts + 1
    max_attempts = int(siyu_setting("WECOM_OUTBOX_MAX_ATTEMPTS"))
    if permanent or attempts >= max_attempts:
        return _record(
            mine, row, status=Outbox.Status.FAILED, reason=reason, errcode=errcode, attempts=attempts
        )
    next_at = now() + _backoff(priority, attempts)
    if row.expires_at is not None and next_at >= row.expires_at:
        # The next try would come too late: giving up now says why, and keeps the last error.
        return _record(
            mine,
            row,
            status=Outbox.Status.FAILED,
            reason=f"{EXPIRED_REASON} ({reason})",
            errcode=errcode,
            attempts=attempts,
            expired=True,
        )
    updated = mine.update(
        status=Outbox.Status.PENDING,
        attempts=attempts,
        next_attempt_at=next_at,
        claimed_until=None,
        last_error=reason,
        errcode=errcode,
        sent_at=None,
    )
    log.warning(
        "outbox %d %s failed (try %d), retrying at %s", row.pk, row.api, attempts, next_at.isoformat()
    )
    return "retrying" if updated else "lost"


def _expire(mine: Any, row: Outbox) -> str:
    """Give up a row whose ``expires_at`` passed before it could be sent (no try is counted)."""
    return _record(
        mine, row, status=Outbox.Status.FAILED, reason=EXPIRED_REASON, attempts=row.attempts, expired=True
    )


def _record(
    mine: Any,
    row: Outbox,
    *,
    status: str,
    reason: str = "",
    errcode: int | None = None,
    attempts: int | None = None,
    result: dict[str, Any] | None = None,
    expired: bool = False,
) -> str:
    at = now()
    tries = attempts if attempts is not None else row.attempts + 1
    updated = mine.update(
        status=status,
        attempts=tries,
        claimed_until=None,
        last_error=reason,
        errcode=errcode,
        result=result if result is not None else {},
        sent_at=at if status == Outbox.Status.DONE else None,
    )
    if not updated:
        log.warning("outbox %d %s: claim expired before the outcome was recorded", row.pk, row.api)
        return "lost"
    if status == Outbox.Status.FAILED:
        log.warning("outbox %d %s failed for good: errcode %s", row.pk, row.api, errcode)
    _settled(row, status=str(status), errcode=errcode, reason=reason, expired=expired, attempts=tries, at=at)
    return str(status)


def _settled(
    row: Outbox, *, status: str, errcode: int | None, reason: str, expired: bool, attempts: int, at: datetime
) -> None:
    """Announce a final outcome; a listener that fails is logged, the outcome stands."""
    from siyu.wecom.signals import write_settled

    answers = write_settled.send_robust(
        sender=Outbox,
        corp_id=row.corp_id,
        outbox_id=row.pk,
        api=row.api,
        idempotency_key=row.idempotency_key,
        status=status,
        errcode=errcode,
        reason=reason,
        expired=expired,
        attempts=attempts,
        at=at,
    )
    for receiver, answer in answers:
        if isinstance(answer, Exception):
            log.error(
                "outbox %d %s: listener %s failed: %s",
                row.pk,
                row.api,
                getattr(receiver, "__qualname__", receiver),
                type(answer).__name__,
            )


def send_now(pk: int) -> str:
    """Claim and send one due row in this thread, at once (a welcome message cannot wait for a queue).

    Returns what ``send_claimed`` returns, or "" when the row was not due (another worker has it, it is
    waiting for a retry, or it is settled). Call it outside a transaction, like every WeCom call.
    """
    lease = now() + CLAIM_LEASE
    if not Outbox.objects.filter(_due(), pk=pk).update(status=Outbox.Status.SENDING, claimed_until=lease):
        return ""
    return send_claimed(pk, lease)


def next_due_at() -> datetime | None:
    """When the next pending row becomes due, or a claimed row's lease runs out."""
    pending = Outbox.objects.filter(status=Outbox.Status.PENDING).aggregate(at=Min("next_attempt_at"))["at"]
    claimed = Outbox.objects.filter(status=Outbox.Status.SENDING).aggregate(at=Min("claimed_until"))["at"]
    moments = [m for m in (pending, claimed) if m is not None]
    return min(moments) if moments else None


def run_worker_pass() -> DrainReport:
    """One task's work: drain, then make sure a task runs when the next row becomes due."""
    from siyu.wecom.inbox import adds_waiting_anywhere

    purge_expired_tickets()  # left by processes that died mid-call; the table stays tiny
    # While customers' adds wait in an inbox or are being worked, their welcome messages come first: this pass
    # sends only welcomes, and the other writes wait a moment, leaving the machine to the inbox's drains.
    report = send_due(give_way=adds_waiting_anywhere)
    if report.gave_way:
        dispatch(priority=Priority.EVENT, run_after=now() + GIVE_WAY_PAUSE)
        return report
    if report.stopped_early:
        dispatch()
        return report
    due_at = next_due_at()
    if due_at is not None:
        at = max(due_at, now())
        # One wake-up per distinct second (per process): many rows due at the same moment need one drain.
        if cache.add(f"siyu:outbox-wake:{at.timestamp():.0f}", 1, timeout=3600):
            dispatch(run_after=at)
    return report


def write_result(row: Outbox) -> BaseModel:
    """A done row's WeCom answer as its API's response model (e.g. ``MsgTemplateCreated`` with the msgid)."""
    if row.status != Outbox.Status.DONE:
        raise Invalid("the write has not been sent", field="status")
    return WRITE_APIS[row.api].response.model_validate(row.result)
