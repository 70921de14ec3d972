"""Full sync and reconciliation of a corp with WeCom, resumable from checkpoints, in bounded memory.

A ``SyncRun`` walks stages — departments, staff, corp tags, customers, customer groups for a full sync;
corp tags and customers for a reconciliation — and mirrors what WeCom answers (``mirror.Mirror``) through the
domain services. Customers stream: ``batch/get_by_user`` for 100 follow users at a time, 100 relations a
page; a transaction applies a few pages set-based (new customers, relations, tags and their events in
multi-row statements) and checkpoints the position after them (userid chunk and cursor), so an interrupted
run resumes where it stopped, nothing doubled, and memory holds a few pages whatever the corp's size.
Deletions missed by callbacks are found per member: ``externalcontact/list`` lists one member's customers,
and active relations it lacks are ended. On PostgreSQL WeCom's next answers are fetched on a thread while
the current ones are written (``_Answers``).

Repairs (anything that had to change) are counted on the run; once a corp has been synced, the events they
record are marked ``{"reconciled": true}`` with source ``sync``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import queue
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.conf import settings
from django.db import connection, connections, transaction
from django_tasks import task

from siyu.core.bulk import in_list, key_list, select_rows
from siyu.core.clock import now
from siyu.core.errors import Conflict, Invalid
from siyu.core.tasks import enqueue
from siyu.corps.models import Corp, Department, Staff
from siyu.corps.services import audit, delete_department, upsert_staff
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.customers.services import (
    GENDERS,
    TYPES,
    ImportedRelation,
    RelationImport,
    import_relations,
)
from siyu.groups.models import GroupChat, GroupMember
from siyu.groups.services import dismiss_unseen_group_chats
from siyu.tags.models import CustomerTag, RelationTag, Tag
from siyu.tags.services import add_relation_tags
from siyu.wecom import schemas as s
from siyu.wecom.errors import ConfigurationError, TooManyItems
from siyu.wecom.inbox import yield_to_adds
from siyu.wecom.mirror import KnownRelation, Mirror, RelationFacts, clean_mobiles, from_timestamp
from siyu.wecom.models import SyncRun

if TYPE_CHECKING:
    from siyu.wecom.client import WeComClient

logger = logging.getLogger(__name__)

SOURCE = Event.Source.SYNC
STAGES: dict[str, tuple[str, ...]] = {
    SyncRun.Kind.FULL: ("departments", "staff", "tags", "customers", "groups"),
    SyncRun.Kind.RECONCILE: ("tags", "customers"),
}
# Share of the progress bar per stage, from what they cost: customers dominate every corp.
WEIGHTS = {"departments": 2, "staff": 6, "tags": 2, "customers": 75, "groups": 15}
USERIDS_PER_BATCH = 100  # batch/get_by_user: userid_list ≤ 100 (wecom-api.md §4.1, §6)
RELATIONS_PER_PAGE = 100  # batch/get_by_user: limit ≤ 100
# Units of work per transaction, each still a step of the budget: a transaction costs a dozen round trips to
# the database whatever it writes, so ten pages (~1,000 relations, ~9,000 rows on a first sync, split between
# two transactions, see ``_Helper``) share one, yet it holds its locks for well under a second (~0.3 s
# measured at 100,000 customers). Members' lists and groups likewise.
PAGES_PER_TRANSACTION = 10
MEMBERS_PER_TRANSACTION = 10
GROUPS_PER_TRANSACTION = 10
# A first sync grows the tables it then reads by key (customers by external_userid, relations by customer,
# tags by relation, customer tags by customer, group members by group) from nothing to 100,000s of rows in a
# minute, faster than autovacuum's analyze follows (it wakes once a minute, if it is on at all). Planned on
# statistics of a far smaller table, a lookup scans the corp's whole index instead of the unique one:
# measured 140 ms instead of under 1 ms at 100,000 customers (750 ms for a page's customer tags). So the sync
# analyses such a table itself once it has changed by as many rows as it had at its last analysis (doubling:
# a handful of analyses from 5,000 rows to millions), checking at most every few seconds (one read of
# pg_stat_user_tables).
ANALYZED_MODELS = (Customer, FollowRelation, RelationTag, CustomerTag, GroupMember, GroupChat)
ANALYZE_MIN_CHANGES = 5000
STATISTICS_CHECK_SECONDS = 5.0
# WeCom answers fetched ahead of the ones being written: enough for the next transaction, and a bound on
# what waits in memory (twenty pages of 100 relations, twenty members' lists or groups).
READ_AHEAD = 20
GROUPS_PER_PAGE = 1000  # groupchat/list: limit 1..1000 (§4.7)
OWNERS_PER_FILTER = 100  # groupchat/list: owner_filter.userid_list ≤ 100
# A relation added less than this before a member's customer list was read may not be in that list yet (clocks
# and WeCom's own propagation); such relations are left for the next run rather than ended.
DELETION_GRACE = dt.timedelta(seconds=60)
# Backoff of a sync after a transient WeCom failure: 30 s, doubling.
RETRY_BASE = dt.timedelta(seconds=30)

ClientFactory = Callable[[Corp], "WeComClient"]
T = TypeVar("T")


def _knob(name: str) -> Any:
    return settings.SIYU[name]


def _default_client(corp: Corp) -> WeComClient:
    from siyu.wecom.client import client_for
    from siyu.wecom.limits import Priority

    return client_for(corp, priority=Priority.SYNC)


# --- starting -----------------------------------------------------------------------------------------------


def active_run(corp: Corp) -> SyncRun | None:
    """The corp's sync that is running or due to run now (a scheduled one in the future does not count)."""
    return (
        SyncRun.objects.for_corp(corp)
        .filter(status__in=[SyncRun.Status.PENDING, SyncRun.Status.RUNNING])
        .exclude(scheduled_for__gt=now())
        .order_by("created_at", "id")
        .first()
    )


def start_sync(
    *, corp: Corp, kind: str, user_id: int | None = None, enqueue: bool = True, reason: str = "console"
) -> SyncRun:
    """Start a full sync or a reconciliation of ``corp`` now; one at a time per corp (else ``Conflict``)."""
    if kind not in SyncRun.Kind.values:
        raise Invalid(f"kind must be one of {', '.join(SyncRun.Kind.values)}", field="kind")
    with transaction.atomic():
        Corp.objects.select_for_update().filter(pk=corp.pk).first()  # serialises concurrent starts
        running = active_run(corp)
        if running is not None:
            raise Conflict(
                f"a {running.get_kind_display()} of this corp is already under way (#{running.pk})"
            )
        # A scheduled reconciliation that has not started yet is superseded by this run.
        SyncRun.objects.for_corp(corp).filter(status=SyncRun.Status.PENDING).delete()
        run = SyncRun.objects.create(corp=corp, kind=kind, created_by_id=user_id, stage=STAGES[kind][0])
        audit(
            corp=corp,
            action=f"wecom.sync.{kind}",
            object_type="sync_run",
            object_id=run.pk,
            user_id=user_id,
            detail={"reason": reason},
        )
        if enqueue:
            transaction.on_commit(lambda: enqueue_run(run.pk))
    return run


def enqueue_run(run_id: int, run_after: dt.datetime | None = None) -> None:
    enqueue(run_sync_task, run_id=run_id, run_after=run_after)


@transaction.atomic
def resume_sync(*, run: SyncRun, user_id: int | None = None) -> SyncRun:
    """Continue a failed run from its checkpoint."""
    if run.status != SyncRun.Status.FAILED:
        raise Invalid("only a failed sync can be resumed", field="status")
    running = active_run(run.corp)
    if running is not None:
        raise Conflict(f"a {running.get_kind_display()} of this corp is already under way (#{running.pk})")
    checkpoint = dict(run.checkpoint)
    checkpoint.pop("failures", None)
    SyncRun.objects.filter(pk=run.pk).update(
        status=SyncRun.Status.PENDING, error="", finished_at=None, checkpoint=checkpoint, lease_until=None
    )
    audit(
        corp=run.corp_id,
        action="wecom.sync.resume",
        object_type="sync_run",
        object_id=run.pk,
        user_id=user_id,
    )
    transaction.on_commit(lambda: enqueue_run(run.pk))
    run.refresh_from_db()
    return run


# --- running ------------------------------------------------------------------------------------------------


class _Stop(Exception):
    """The run's time or step budget is spent; it continues from its checkpoint next time."""


@dataclass
class Runner:
    """One worker's turn at a sync run: the run, the client, the mirror, the budget."""

    run: SyncRun
    client: WeComClient
    mirror: Mirror
    lease_owner: str
    deadline: float
    max_steps: int | None
    steps: int = 0
    reconciled: bool = False
    statistics_due: float = 0.0
    statistics: threading.Thread | None = None  # analysing on its own connection (``_keep_statistics``)
    yielded: float = 0.0  # seconds paused for adds (their welcome messages) in this turn

    @property
    def corp(self) -> Corp:
        return self.run.corp

    @property
    def checkpoint(self) -> dict[str, Any]:
        return self.run.checkpoint

    def count(self, name: str, amount: int = 1) -> None:
        self.run.counts[name] = self.run.counts.get(name, 0) + amount

    def save(self) -> None:
        """Commit progress (inside the caller's transaction): checkpoint, counts, repairs, a longer lease."""
        self.run.repairs = {k: v for k, v in self.mirror.repairs.items() if v}
        lease = now() + dt.timedelta(seconds=_knob("SYNC_LEASE_SECONDS"))
        updated = SyncRun.objects.filter(pk=self.run.pk, lease_owner=self.lease_owner).update(
            stage=self.run.stage,
            checkpoint=self.run.checkpoint,
            counts=self.run.counts,
            repairs=self.run.repairs,
            lease_until=lease,
        )
        if not updated:  # another worker took the run over (our lease had ended): our work must not commit
            raise RuntimeError("sync run taken over by another worker")

    def batch(self, size: int) -> int:
        """How many units of work (pages, members' lists, groups) the next transaction may take: ``size``,
        or fewer if the step budget ends sooner."""
        return size if self.max_steps is None else max(1, min(size, self.max_steps - self.steps))

    def step(self, done: int = 1) -> None:
        """Units of work are committed; let waiting adds go first; stop when the budget is spent."""
        self.steps += done
        paused = yield_to_adds(
            self.run.corp_id, most=_knob("SYNC_YIELD_SECONDS"), behind_most=_knob("SYNC_YIELD_BEHIND_SECONDS")
        )
        self.yielded += paused
        if time.monotonic() >= self.statistics_due and not (self.statistics and self.statistics.is_alive()):
            self.statistics_due = time.monotonic() + STATISTICS_CHECK_SECONDS
            self.statistics = _keep_statistics()
        if (self.max_steps is not None and self.steps >= self.max_steps) or time.monotonic() > self.deadline:
            raise _Stop


@dataclass(frozen=True)
class SyncTurn:
    """What one ``run_sync`` call did: the run as it stands and, if it must continue, when."""

    run: SyncRun
    continue_at: dt.datetime | None = None
    busy: bool = False


def _claim(run_id: int, owner: str) -> SyncRun | None:
    moment = now()
    lease = moment + dt.timedelta(seconds=_knob("SYNC_LEASE_SECONDS"))
    claimed = (
        SyncRun.objects.filter(pk=run_id, status__in=[SyncRun.Status.PENDING, SyncRun.Status.RUNNING])
        .exclude(lease_until__gt=moment)
        .update(status=SyncRun.Status.RUNNING, lease_owner=owner, lease_until=lease)
    )
    if not claimed:
        return None
    SyncRun.objects.filter(pk=run_id, started_at=None).update(started_at=moment)
    return SyncRun.objects.select_related("corp").get(pk=run_id)


def run_sync(
    run_id: int,
    *,
    client_factory: ClientFactory | None = None,
    max_seconds: float | None = None,
    max_steps: int | None = None,
) -> SyncTurn:
    """Work a sync run from its checkpoint until done, failed, or the budget (seconds or steps) is spent."""
    owner = uuid.uuid4().hex
    run = _claim(run_id, owner)
    if run is None:
        current = SyncRun.objects.filter(pk=run_id).first()
        if current is None:
            raise Invalid(f"no sync run {run_id}")
        return SyncTurn(run=current, busy=current.status in (SyncRun.Status.PENDING, SyncRun.Status.RUNNING))
    other = (
        SyncRun.objects.for_corp(run.corp_id)
        .filter(status=SyncRun.Status.RUNNING, lease_until__gt=now())
        .exclude(pk=run.pk)
        .first()
    )
    if other is not None:  # e.g. a scheduled reconciliation came due during a full sync: wait for it
        SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.PENDING, lease_until=None)
        run.refresh_from_db()
        return SyncTurn(run=run, continue_at=now() + dt.timedelta(seconds=60))
    reconciled = run.kind == SyncRun.Kind.RECONCILE or (
        SyncRun.objects.for_corp(run.corp_id).filter(status=SyncRun.Status.DONE).exclude(pk=run.pk).exists()
    )
    client = (client_factory or _default_client)(run.corp)
    mirror = Mirror(
        corp=run.corp,
        client=client,
        source=SOURCE,
        dedupe_prefix=f"sync:{run.pk}",
        payload_extra={"reconciled": True, "sync_run": run.pk} if reconciled else {"sync_run": run.pk},
    )
    mirror.repairs.update(run.repairs)
    budget = max_seconds if max_seconds is not None else _knob("SYNC_RUN_SECONDS")
    runner = Runner(
        run=run,
        client=client,
        mirror=mirror,
        lease_owner=owner,
        deadline=time.monotonic() + budget,
        max_steps=max_steps,
        reconciled=reconciled,
    )
    stages = STAGES[run.kind]
    try:
        start = stages.index(run.stage) if run.stage in stages else 0
        for stage in stages[start:]:
            if run.stage != stage:
                run.stage = stage
                run.checkpoint = {}
                with transaction.atomic():
                    runner.save()
            STAGE_FUNCTIONS[stage](runner)
            runner.checkpoint["finished"] = True
            with transaction.atomic():
                runner.save()
    except _Stop:
        return SyncTurn(run=_release(run, owner), continue_at=now())
    except Exception as exc:  # recorded on the run; transient failures continue later from the checkpoint
        return _failed_turn(run, owner, exc)
    finally:
        if runner.statistics is not None:
            runner.statistics.join()
        if runner.yielded:
            logger.info("sync run %s paused %.1f s for adds being worked", run.pk, runner.yielded)
    return SyncTurn(run=_finish(run, owner, status=SyncRun.Status.DONE))


def _release(run: SyncRun, owner: str) -> SyncRun:
    SyncRun.objects.filter(pk=run.pk, lease_owner=owner).update(lease_until=None)
    run.refresh_from_db()
    return run


def _finish(run: SyncRun, owner: str, *, status: str, error: str = "") -> SyncRun:
    SyncRun.objects.filter(pk=run.pk, lease_owner=owner).update(
        status=status, error=error, finished_at=now(), lease_until=None
    )
    run.refresh_from_db()
    from siyu.wecom.reconcile import schedule_reconciliation

    schedule_reconciliation(corp=run.corp)
    logger.info("wecom sync %s of corp %s: %s", run.pk, run.corp_id, status)
    return run


def _failed_turn(run: SyncRun, owner: str, exc: Exception) -> SyncTurn:
    from siyu.wecom.inbox import describe_error

    error = describe_error(exc)
    transient = bool(getattr(exc, "transient", False)) and not isinstance(exc, ConfigurationError)
    failures = int(run.checkpoint.get("failures", 0)) + 1
    logger.warning("wecom sync %s failed (%s, try %s): %s", run.pk, run.stage, failures, type(exc).__name__)
    if transient and failures <= _knob("SYNC_MAX_FAILURES"):
        fresh = SyncRun.objects.get(pk=run.pk)
        checkpoint = {**fresh.checkpoint, "failures": failures}
        SyncRun.objects.filter(pk=run.pk, lease_owner=owner).update(
            checkpoint=checkpoint, error=error, lease_until=None
        )
        retry_at = getattr(exc, "retry_at", None) or now() + RETRY_BASE * 2 ** (failures - 1)
        run.refresh_from_db()
        return SyncTurn(run=run, continue_at=retry_at)
    return SyncTurn(run=_finish(run, owner, status=SyncRun.Status.FAILED, error=error))


@task()
def run_sync_task(run_id: int) -> None:
    """Work a sync run for one time budget; enqueue its continuation when it is not finished."""
    turn = run_sync(run_id)
    if turn.continue_at is not None:
        enqueue_run(run_id, None if turn.continue_at <= now() else turn.continue_at)


# --- stages -------------------------------------------------------------------------------------------------


def _depth(department: s.Department, by_id: dict[int, s.Department]) -> int:
    depth, seen, current = 0, set(), department
    while current.parentid in by_id and current.parentid not in seen:
        seen.add(current.parentid)
        current = by_id[current.parentid]
        depth += 1
    return depth


def sync_departments(runner: Runner) -> None:
    """Every department the app can see (``department/list``), parents first; gone ones are removed."""
    departments = runner.client.department_list()
    by_id = {d.id: d for d in departments}
    with transaction.atomic():
        for department in sorted(departments, key=lambda d: (_depth(d, by_id), d.id)):
            runner.mirror.department(department)
        gone = Department.objects.for_corp(runner.corp).exclude(wecom_id__in=list(by_id))
        for wecom_id in list(gone.values_list("wecom_id", flat=True)):
            delete_department(corp=runner.corp, wecom_id=wecom_id)
            runner.mirror.repairs["departments_deleted"] += 1
        runner.run.counts["departments"] = len(departments)
        runner.save()


def sync_staff(runner: Runner) -> None:
    """Every member (``user/list`` of the top departments with their children); members gone are resigned.

    Apps that may not list members (48002/60011) fall back to the members with customer contact, one
    ``user/get`` each; then nobody is marked resigned, since the list is not complete. Either way the members
    with customer contact (``get_follow_user_list``) are the ones marked ``has_contact_permission``.
    """
    roots = list(
        Department.objects.for_corp(runner.corp)
        .filter(parent=None)
        .order_by("wecom_id")
        .values_list("wecom_id", flat=True)
    )
    seen: set[str] = set()
    complete = True
    try:
        for root in roots:
            members = runner.client.user_list(root, fetch_child=True)
            with _work_transaction():  # one department tree's members (a commit each cost ~2 ms)
                for member in members:
                    if member.userid not in seen:
                        seen.add(member.userid)
                        runner.mirror.member(member)
        contact = set(runner.client.get_follow_user_list())
    except ConfigurationError:
        complete = False
        contact = set(runner.client.get_follow_user_list())
        for userid in sorted(contact):
            if userid not in seen:
                seen.add(userid)
                with transaction.atomic():
                    runner.mirror.member(runner.client.user_get(userid))
    with transaction.atomic():
        # who may add customers (客户联系 permission): the members WeCom lists as follow users
        staff = Staff.objects.for_corp(runner.corp)
        staff.filter(userid__in=contact, has_contact_permission=False).update(has_contact_permission=True)
        staff.exclude(userid__in=contact).filter(has_contact_permission=True).update(
            has_contact_permission=False
        )
        if complete and roots:
            gone = (
                Staff.objects.for_corp(runner.corp)
                .exclude(status=Staff.Status.RESIGNED)
                .exclude(userid__in=seen)
                .values_list("userid", flat=True)
            )
            for userid in list(gone):
                upsert_staff(corp=runner.corp, userid=userid, status=Staff.Status.RESIGNED)
                runner.mirror.repairs["staff_resigned"] += 1
        runner.run.counts["staff"] = len(seen)
        runner.save()


def sync_tags(runner: Runner) -> None:
    """The corp's tag groups and tags (``get_corp_tag_list``): created, renamed, reordered, deleted."""
    groups = runner.client.get_corp_tag_list()
    with transaction.atomic():
        runner.mirror.tag_groups(groups, complete=True)
        runner.run.counts["tag_groups"] = len(groups)
        runner.run.counts["tags"] = sum(len(g.tag) for g in groups)
        runner.save()


class _Answers(Generic[T]):
    """WeCom's answers from ``produce()`` (one call each), fetched ahead on a thread while the caller writes
    the previous ones: the next call is under way (HTTP, the gateway's limiter) during a write, and what
    waits is bounded (``READ_AHEAD``), so memory holds a few pages whatever the corp's size.

    The thread has its own database connection (the limiter and tokens use it), which sees only what is
    committed; so it is used on PostgreSQL outside a transaction only. Elsewhere (SQLite, whose writer lock
    the thread would wait for anyway; a caller's transaction, as in tests) the answers are fetched in line,
    in the same order. ``take(n)`` returns up to ``n`` answers: at least one (blocking) and, after it, those
    already fetched — so a transaction writes what is ready. A failure reaches the caller after the answers
    before it.
    """

    def __init__(self, produce: Callable[[], Iterator[T]]) -> None:
        self._failure: BaseException | None = None
        self._done = False
        self._threaded = connection.vendor == "postgresql" and not connection.in_atomic_block
        self._inline: Iterator[T] | None = None
        self._thread: threading.Thread | None = None
        self._ready: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=READ_AHEAD)
        self._stop = threading.Event()
        if self._threaded:
            self._thread = threading.Thread(
                target=self._work, args=(produce,), name="siyu-sync-read-ahead", daemon=True
            )
            self._thread.start()
        else:
            self._inline = produce()

    def _offer(self, item: tuple[bool, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, produce: Callable[[], Iterator[T]]) -> None:
        try:
            for item in produce():
                if not self._offer((True, item)):
                    return
            self._offer((False, None))
        except BaseException as exc:  # handed over, raised by take() where the answer was due
            self._offer((False, exc))
        finally:
            connections.close_all()  # this thread's connections only

    def _next(self, block: bool) -> tuple[bool, T | None]:
        """(True, answer); (False, None) at the end, or when not ``block``ing and nothing is ready."""
        if self._inline is not None:
            try:
                return True, next(self._inline)
            except StopIteration:
                self._done = True
                return False, None
            except Exception as exc:
                self._done, self._failure = True, exc
                return False, None
        try:
            more, item = self._ready.get(block=block)
        except queue.Empty:
            return False, None
        if not more:
            self._done, self._failure = True, item
            return False, None
        return True, item

    def take(self, n: int) -> list[T]:
        """Up to ``n`` answers (at least one unless there are no more); raises a failure once they are out."""
        answers: list[T] = []
        while len(answers) < n and not self._done:
            more, item = self._next(block=not answers)
            if not more:
                break
            answers.append(item)  # type: ignore[arg-type]  # an answer, not the end marker
        if not answers and self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        return answers

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> _Answers[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _work_transaction() -> Iterator[None]:
    """A transaction of a sync's work and the checkpoint after it.

    On PostgreSQL its commit does not wait for the WAL to reach the disk (one flush per transaction, a few
    hundred in a large first sync). Should the server crash, the last of these transactions may be lost — each
    together with the checkpoint that records it, so the run redoes them from WeCom's answers: nothing
    half-applied, nothing doubled, and nothing a sync writes is sent anywhere before WeCom has it anyway.
    Only when it is the outermost transaction, so that a caller's own writes stay durable.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


class _Helper:
    """A second thread applying part of each batch, in its own transaction on its own database connection,
    while the caller applies the rest: PostgreSQL, which does most of a first sync's work (indexes,
    foreign-key checks at commit), then works on both parts at once on a second core, and Python's share of
    one part runs while the other waits for the database.

    The parts are split by customer (``_split_by_customer``), so the two transactions never write the same
    customer, relation, tag, customer tag or event, and never wait for each other. The helper's mirror reads
    the members and tags the caller's mirror resolved before the batch (``Mirror.helper``). Like ``_Answers``,
    it runs only on PostgreSQL outside a transaction; elsewhere ``wait`` applies the part in line, in the
    caller's transaction.
    """

    def __init__(self, work: Callable[[Any], None]) -> None:
        self._work = work
        self._threaded = connection.vendor == "postgresql" and not connection.in_atomic_block
        self._jobs: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
        self._results: queue.Queue[BaseException | None] = queue.Queue(maxsize=1)
        self._pending: list[Any] = []
        self._thread: threading.Thread | None = None
        if self._threaded:
            self._thread = threading.Thread(target=self._run, name="siyu-sync-helper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                more, job = self._jobs.get()
                if not more:
                    return
                try:
                    with _work_transaction():
                        self._work(job)
                except BaseException as exc:  # handed over to the caller's wait()
                    self._results.put(exc)
                else:
                    self._results.put(None)
        finally:
            connections.close_all()  # this thread's connections only

    def submit(self, job: Any) -> None:
        """Start applying ``job``; ``wait`` tells when it is committed."""
        if self._thread is not None:
            self._jobs.put((True, job))
        else:
            self._pending.append(job)

    def wait(self, *, discard: bool = False) -> BaseException | None:
        """The submitted job's failure, or None once it is committed (in line: applied); with ``discard``
        (the caller's own part failed) an in-line job is dropped and a threaded one only waited for."""
        if self._thread is not None:
            return self._results.get()
        jobs, self._pending = self._pending, []
        if discard:
            return None
        try:
            for job in jobs:
                self._work(job)
        except Exception as exc:
            return exc
        return None

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put((False, None))
            self._thread.join()

    def __enter__(self) -> _Helper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _split_by_customer(entries: list[s.CustomerRelation]) -> tuple[list[s.CustomerRelation], ...]:
    """A batch's relations in two parts, every relation of a customer in the same part (by a hash of its
    external_userid that does not change between runs)."""
    parts: tuple[list[s.CustomerRelation], list[s.CustomerRelation]] = ([], [])
    for entry in entries:
        parts[zlib.crc32(entry.external_contact.external_userid.encode()) & 1].append(entry)
    return parts


def _resolve_members_and_tags(mirror: Mirror, entries: list[s.CustomerRelation]) -> None:
    """Look up (and create, fetching them from WeCom) the members and tags a batch names, so that the helper's
    mirror finds them all."""
    tag_ids: set[str] = set()
    for entry in entries:
        mirror.staff(entry.follow_info.userid)
        tag_ids.update(entry.follow_info.tag_id)
    mirror.tags_by_wecom_id(tag_ids)


def _keep_statistics() -> threading.Thread | None:
    """Analyse the tables a sync grows whose statistics are far behind (see ``ANALYZED_MODELS``).

    Outside a transaction on a thread of its own, with its own connection (returned, to be joined): an
    analysis takes 0.1–0.7 s of the server at 100,000 customers, which the sync's threads no longer wait
    for (the tables are written meanwhile; ANALYZE does not block writers)."""
    if connection.vendor != "postgresql":
        return None  # SQLite plans these lookups on the unique indexes without statistics
    if connection.in_atomic_block:
        _analyse_stale_tables()
        return None
    thread = threading.Thread(target=_analyse_on_own_connection, name="siyu-sync-statistics", daemon=True)
    thread.start()
    return thread


def _analyse_on_own_connection() -> None:
    try:
        _analyse_stale_tables()
    except Exception:  # statistics are an optimisation: the sync goes on with the ones it has
        logger.exception("sync: analysing the tables failed")
    finally:
        connections.close_all()  # this thread's connections only


def _analyse_stale_tables() -> None:
    tables = [model._meta.db_table for model in ANALYZED_MODELS]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_live_tup, n_mod_since_analyze FROM pg_stat_user_tables "
            "WHERE relname = ANY(%s)",
            [tables],
        )
        stale = [
            name
            for name, live, changed in cursor.fetchall()
            if changed >= max(ANALYZE_MIN_CHANGES, live - changed)
        ]
        for name in stale:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(name)}")
    if stale:
        logger.info("sync: analysed %s", ", ".join(stale))


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _apply_relations_page(mirror: Mirror, relations: Iterable[s.CustomerRelation]) -> None:
    """Mirror ``batch/get_by_user`` pages in a few queries, whatever they hold.

    One read finds what Siyu has (the customers' profiles, their active relations and those relations' WeCom
    tags, as plain values); relations new to Siyu are imported set-based (customers, relations, ``added`` and
    ``tagged`` events in a few bulk statements). Known relations are compared with WeCom's answer in memory,
    and only those that differ go through the one-at-a-time services (remark, tags), as do customers whose
    profile changed — on unchanged data a page writes nothing.
    """
    entries = list(relations)
    if not entries:
        return
    customer_ids, profiles, known = _known_state(
        mirror.corp, {e.external_contact.external_userid for e in entries}
    )
    # Siyu's writes still on their way to WeCom are on relations Siyu has, so of customers it knows: the
    # others (most of a first sync) need no look-up.
    mirror.prefetch_pending_writes(customer_ids)
    imports: list[tuple[RelationImport, RelationFacts]] = []
    stale: list[tuple[int, RelationFacts]] = []
    for entry in entries:
        contact = entry.external_contact
        facts = RelationFacts.from_follow_info(entry.follow_info)
        staff = mirror.staff(facts.userid)
        customer_id = customer_ids.get(contact.external_userid)
        if customer_id is None:
            imports.append((_relation_import(contact, facts, staff), facts))
            continue
        profile = _profile(contact)
        if profiles[contact.external_userid] != profile:
            mirror.customer(contact)
            profiles[contact.external_userid] = profile
        relation = known.get((customer_id, staff.pk))
        if relation is None:
            imports.append((_relation_import(contact, facts, staff), facts))
        else:
            current = mirror.current_facts(contact.external_userid, facts)
            if not mirror.relation_matches(relation, current):
                stale.append((relation.pk, current))
    for relation_id, facts in stale:
        instance = FollowRelation.objects.select_related("customer", "staff").get(pk=relation_id)
        mirror.relation(instance.customer, facts, relation=instance, known=True)
    if imports:
        _import(mirror, imports, customer_ids, active=set(known))


# A page's customers with their profiles, active relations and the WeCom ids of those relations' tags
# (Siyu-only tags have none); the caller appends the condition on external_userid.
KNOWN_STATE_SQL = (
    "SELECT c.id, c.external_userid, c.name, c.unionid, c.avatar, c.gender, c.type, c.corp_name, "
    "c.corp_full_name, r.id, r.staff_id, r.remark, r.description, r.remark_corp_name, r.remark_mobiles, "
    "t.wecom_tag_id "
    "FROM customers_customer c "
    "LEFT JOIN customers_followrelation r ON r.customer_id = c.id AND r.status = %s "
    "LEFT JOIN tags_relationtag rt ON rt.relation_id = r.id "
    "LEFT JOIN tags_tag t ON t.id = rt.tag_id "
    "WHERE c.corp_id = %s AND "
)
# The same on PostgreSQL, a lookup per external_userid whatever the statistics (``core.bulk.key_list``); the
# caller puts the key list first.
KNOWN_STATE_BY_KEY_SQL = (
    "SELECT c.id, c.external_userid, c.name, c.unionid, c.avatar, c.gender, c.type, c.corp_name, "
    "c.corp_full_name, r.id, r.staff_id, r.remark, r.description, r.remark_corp_name, r.remark_mobiles, "
    "r.wecom_tag_id "
    "FROM {keys} "
    "CROSS JOIN LATERAL (SELECT c.id, c.external_userid, c.name, c.unionid, c.avatar, c.gender, c.type, "
    "c.corp_name, c.corp_full_name FROM customers_customer c "
    "WHERE c.corp_id = %s AND c.external_userid = k.key OFFSET 0) c "
    "LEFT JOIN LATERAL (SELECT r.id, r.staff_id, r.remark, r.description, r.remark_corp_name, "
    "r.remark_mobiles, t.wecom_tag_id FROM customers_followrelation r "
    "LEFT JOIN tags_relationtag rt ON rt.relation_id = r.id "
    "LEFT JOIN tags_tag t ON t.id = rt.tag_id "
    "WHERE r.customer_id = c.id AND r.status = %s OFFSET 0) r ON true"
)


def _known_state(
    corp: Corp, external_userids: Collection[str]
) -> tuple[dict[str, int], dict[str, tuple[Any, ...]], dict[tuple[int, int], KnownRelation]]:
    """What Siyu has of these customers, in one read: their ids and profiles (``PROFILE_FIELDS``) by
    external_userid, their active relations with the WeCom ids of their tags by (customer id, staff id)."""
    active = FollowRelation.Status.ACTIVE.value
    if connection.vendor == "postgresql":
        keys, params = key_list(external_userids, "varchar")
        rows = select_rows(KNOWN_STATE_BY_KEY_SQL.format(keys=keys), [*params, corp.pk, active])
    else:
        wanted, params = in_list("c.external_userid", external_userids)
        rows = select_rows(KNOWN_STATE_SQL + wanted, [active, corp.pk, *params])
    customer_ids: dict[str, int] = {}
    profiles: dict[str, tuple[Any, ...]] = {}
    relations: dict[int, tuple[Any, ...]] = {}
    tags: dict[int, set[str]] = {}
    for customer_id, external_userid, *rest in rows:
        customer_ids[external_userid] = customer_id
        profiles[external_userid] = tuple(rest[:7])
        relation_id, *relation, wecom_tag_id = rest[7:]
        if relation_id is None:
            continue
        relations[relation_id] = (customer_id, *relation)
        wecom_tags = tags.setdefault(relation_id, set())
        if wecom_tag_id:  # Siyu-only tags (no WeCom id) are not WeCom's business
            wecom_tags.add(wecom_tag_id)
    known = {
        (customer_id, staff_id): KnownRelation(
            pk=pk,
            remark=remark,
            description=description,
            remark_corp_name=remark_corp_name,
            remark_mobiles=tuple(json.loads(mobiles) if isinstance(mobiles, str) else mobiles),
            tag_ids=frozenset(tags[pk]),
        )
        for pk, (customer_id, staff_id, remark, description, remark_corp_name, mobiles) in relations.items()
    }
    return customer_ids, profiles, known


def _profile(contact: s.ExternalContact) -> tuple[Any, ...]:
    """The customer columns ``Mirror.customer`` would write for ``contact``, in ``PROFILE_FIELDS`` order."""
    return (
        (contact.name or contact.external_userid)[:64],
        contact.unionid[:64],
        contact.avatar[:500],
        contact.gender if contact.gender in GENDERS else Customer.Gender.UNKNOWN.value,
        contact.type if contact.type in TYPES else Customer.Type.WECHAT.value,
        contact.corp_name[:64],
        contact.corp_full_name[:128],
    )


def _relation_import(contact: s.ExternalContact, facts: RelationFacts, staff: Staff) -> RelationImport:
    return RelationImport(
        external_userid=contact.external_userid,
        name=contact.name or contact.external_userid,
        staff=staff,
        unionid=contact.unionid[:64],
        avatar=contact.avatar[:500],
        gender=contact.gender,
        type=contact.type,
        corp_name=contact.corp_name[:64],
        corp_full_name=contact.corp_full_name[:128],
        remark=facts.remark,
        description=facts.description,
        remark_mobiles=tuple(clean_mobiles(facts.remark_mobiles)),
        remark_corp_name=facts.remark_corp_name,
        add_way=facts.add_way,
        state=facts.state,
        oper_userid=facts.oper_userid[:64],
        added_at=from_timestamp(facts.createtime),
    )


def _import(
    mirror: Mirror,
    imports: list[tuple[RelationImport, RelationFacts]],
    customer_ids: dict[str, int],
    *,
    active: set[tuple[int, int]],
) -> None:
    created = {
        (r.external_userid, r.userid): r
        for r in import_relations(
            corp=mirror.corp,
            items=[item for item, _facts in imports],
            source=mirror.source,
            dedupe_prefix=mirror.dedupe_prefix,
            payload_extra=mirror.payload_extra,
            customer_ids=customer_ids,
            active=active,
        )
    }
    mirror.repairs["relations_added"] += len(created)
    pairs: list[tuple[ImportedRelation, Tag]] = []
    prefixes: dict[int, str] = {}
    for item, facts in imports:
        relation = created.get((item.external_userid, item.staff.userid))
        if relation is None or not facts.tag_ids:
            continue  # already there (a callback added it meanwhile): its tags are the next run's business
        prefixes[relation.pk] = (
            f"{mirror.dedupe_prefix}:{item.external_userid}:{item.staff.userid}:tags:{relation.pk}"
        )
        pairs.extend((relation, tag) for tag in mirror.tags_by_wecom_id(facts.tag_ids).values())
    mirror.repairs["tags_added"] += add_relation_tags(
        pairs=pairs, source=mirror.source, dedupe_prefixes=prefixes, payload_extra=mirror.payload_extra
    )


def sync_customers(runner: Runner) -> None:
    """Every follow user's customers: first each member's list (relations WeCom no longer has are ended, and
    the lengths tell how many relations are coming), then the relations themselves, page by page."""
    checkpoint = runner.checkpoint
    if "follow" not in checkpoint:
        checkpoint.update(follow=runner.client.get_follow_user_list(), phase="members", member=0, expected=0)
        with transaction.atomic():
            runner.run.counts["follow_users"] = len(checkpoint["follow"])
            runner.save()
    follow: list[str] = checkpoint["follow"]

    def lists() -> Iterator[tuple[str, dt.datetime, set[str]]]:
        for userid in follow[checkpoint["member"] :]:
            listed_at = now()
            yield userid, listed_at, set(runner.client.list_customers(userid))

    if checkpoint["phase"] == "members":
        with _Answers(lists) as listed:
            while lists_read := listed.take(runner.batch(MEMBERS_PER_TRANSACTION)):
                with _work_transaction():
                    _end_missing_relations(runner, lists_read)
                    checkpoint["member"] += len(lists_read)
                    checkpoint["expected"] += sum(len(in_wecom) for _u, _at, in_wecom in lists_read)
                    checkpoint.pop("failures", None)
                    runner.save()
                runner.step(len(lists_read))
        checkpoint.update(phase="relations", chunk=0, cursor="", seen=0)
    chunks = _chunks(follow, USERIDS_PER_BATCH)

    def pages() -> Iterator[tuple[int, str, s.CustomerBatchPage]]:
        chunk, cursor = checkpoint["chunk"], checkpoint["cursor"]
        while chunk < len(chunks):
            page = runner.client.batch_get_by_user(chunks[chunk], cursor=cursor, limit=RELATIONS_PER_PAGE)
            yield chunk, cursor, page
            if page.next_cursor and page.next_cursor != cursor:
                cursor = page.next_cursor
            else:
                chunk, cursor = chunk + 1, ""

    mirror = runner.mirror
    helping = mirror.helper()
    with _Answers(pages) as answers, _Helper(lambda part: _apply_relations_page(helping, part)) as helper:
        while batch := answers.take(runner.batch(PAGES_PER_TRANSACTION)):
            entries = [entry for _chunk, _cursor, page in batch for entry in page.external_contact_list]
            runner.count("relations", len(entries))
            with transaction.atomic():  # committed before the helper's transaction needs them
                _resolve_members_and_tags(mirror, entries)
            ours, theirs = _split_by_customer(entries)
            helper.submit(theirs)
            with _work_transaction():
                try:
                    _apply_relations_page(mirror, ours)
                except BaseException:
                    helper.wait(discard=True)
                    raise
                # Its part is committed before ours, which carries the checkpoint: a run stopped in between
                # applies the batch again, and finds the helper's part already there.
                failure = helper.wait()
                if failure is not None:
                    raise failure
                mirror.repairs.update(helping.repairs)
                helping.repairs.clear()
                chunk, cursor, page = batch[-1]
                if page.next_cursor and page.next_cursor != cursor:
                    checkpoint.update(chunk=chunk, cursor=page.next_cursor)
                else:
                    checkpoint.update(chunk=chunk + 1, cursor="")
                checkpoint["seen"] += len(entries)
                checkpoint.pop("failures", None)
                runner.save()
            runner.step(len(batch))
    with transaction.atomic():
        runner.run.counts["customers"] = (
            FollowRelation.objects.for_corp(runner.corp)
            .filter(status=FollowRelation.Status.ACTIVE)
            .values("customer_id")
            .distinct()
            .count()
        )
        runner.run.counts["active_relations"] = (
            FollowRelation.objects.for_corp(runner.corp).filter(status=FollowRelation.Status.ACTIVE).count()
        )
        runner.save()


# A member's active relations added before a moment whose customer is not in WeCom's list of the member's
# customers; the caller appends the condition on external_userid (``in_list(..., negate=True)``).
MISSING_RELATIONS_SQL = (
    "SELECT r.id, c.external_userid FROM customers_followrelation r "
    "JOIN corps_staff s ON s.id = r.staff_id "
    "JOIN customers_customer c ON c.id = r.customer_id "
    "WHERE r.corp_id = %s AND s.corp_id = %s AND s.userid = %s AND r.status = %s AND r.added_at < %s AND "
)


def _end_missing_relations(runner: Runner, lists: list[tuple[str, dt.datetime, set[str]]]) -> None:
    """End the active relations of these members that their customer lists (userid, when read, the
    external_userids) no longer show. The database compares, one query per member: only the relations to
    end come back (usually none), not every relation of the member."""
    corp_id = runner.corp.pk
    for userid, listed_at, in_wecom in lists:
        not_listed, params = in_list("c.external_userid", in_wecom, negate=True)
        before = connection.ops.adapt_datetimefield_value(listed_at - DELETION_GRACE)
        missing = dict(
            select_rows(
                MISSING_RELATIONS_SQL + not_listed,
                [corp_id, corp_id, userid, FollowRelation.Status.ACTIVE.value, before, *params],
            )
        )
        ended = FollowRelation.objects.for_corp(corp_id).filter(pk__in=list(missing)).order_by("pk")
        for relation in ended if missing else ():
            runner.mirror.end_relation(
                relation, by="staff", at=listed_at, key=f"{missing[relation.pk]}:{userid}:ended"
            )


def sync_groups(runner: Runner) -> None:
    """Every customer group (``groupchat/list``, then ``groupchat/get``); groups no longer listed are gone.

    Without an owner filter WeCom refuses corps with many members (81017); then the groups are listed per
    100 owners (the follow users), and nothing is dismissed since resigned owners' groups are not listed.
    """
    checkpoint = runner.checkpoint
    checkpoint.setdefault("mode", "all")
    checkpoint.setdefault("cursor", "")
    checkpoint.setdefault("index", 0)
    while True:
        owners: list[str] | None = None
        if checkpoint["mode"] == "owners":
            owner_chunks = _chunks(checkpoint["owners"], OWNERS_PER_FILTER)
            if checkpoint["owner_chunk"] >= len(owner_chunks):
                break
            owners = owner_chunks[checkpoint["owner_chunk"]]
        try:
            page = runner.client.groupchat_list(
                status_filter=0, owner_userids=owners, cursor=checkpoint["cursor"], limit=GROUPS_PER_PAGE
            )
        except TooManyItems:
            if checkpoint["mode"] == "owners":
                raise
            checkpoint.update(
                mode="owners", owners=runner.client.get_follow_user_list(), owner_chunk=0, cursor="", index=0
            )
            continue
        refs = page.group_chat_list

        def chats(refs: list[s.GroupChatRef] = refs) -> Iterator[tuple[s.GroupChatRef, s.GroupChat]]:
            for ref in refs[checkpoint["index"] :]:
                yield ref, runner.client.groupchat_get(ref.chat_id)

        with _Answers(chats) as answers:
            while batch := answers.take(runner.batch(GROUPS_PER_TRANSACTION)):
                with _work_transaction():
                    runner.mirror.group_chats(
                        [(chat, ref.status) for ref, chat in batch], sync_run_id=runner.run.pk
                    )
                    checkpoint["index"] += len(batch)
                    runner.count("groups", len(batch))
                    checkpoint.pop("failures", None)
                    runner.save()
                runner.step(len(batch))
        last_page = not page.next_cursor or page.next_cursor == checkpoint["cursor"]
        with transaction.atomic():
            checkpoint["index"] = 0
            if not last_page:
                checkpoint["cursor"] = page.next_cursor
            elif checkpoint["mode"] == "owners":
                checkpoint["owner_chunk"] += 1
                checkpoint["cursor"] = ""
            runner.save()
        if last_page and checkpoint["mode"] == "all":
            break
    with transaction.atomic():
        if checkpoint["mode"] == "all":
            dismissed = dismiss_unseen_group_chats(corp=runner.corp, sync_run_id=runner.run.pk, source=SOURCE)
            runner.mirror.repairs["groups_dismissed"] += dismissed
        runner.save()


STAGE_FUNCTIONS: dict[str, Callable[[Runner], None]] = {
    "departments": sync_departments,
    "staff": sync_staff,
    "tags": sync_tags,
    "customers": sync_customers,
    "groups": sync_groups,
}


# --- progress for the console ----------------------------------------------------------------------------


def _stage_fraction(run: SyncRun) -> float:
    checkpoint = run.checkpoint
    if checkpoint.get("finished"):
        return 1.0
    if run.stage == "customers" and checkpoint.get("follow"):
        if checkpoint.get("phase") == "members":
            return 0.1 * checkpoint.get("member", 0) / len(checkpoint["follow"])
        expected = checkpoint.get("expected", 0)
        if expected:
            return 0.1 + 0.9 * min(1.0, checkpoint.get("seen", 0) / expected)
        return 0.1
    return 0.0


@dataclass(frozen=True)
class SyncProgress:
    """A run's progress bar: percent, and the stages with their state."""

    percent: int
    stages: list[tuple[str, str]] = field(default_factory=list)  # (stage, "done" | "current" | "waiting")


def sync_progress(run: SyncRun) -> SyncProgress:
    stages = STAGES[run.kind]
    if run.status == SyncRun.Status.DONE:
        return SyncProgress(percent=100, stages=[(s_, "done") for s_ in stages])
    total = sum(WEIGHTS[s_] for s_ in stages)
    current = stages.index(run.stage) if run.stage in stages else 0
    done = sum(WEIGHTS[s_] for s_ in stages[:current]) + WEIGHTS[stages[current]] * _stage_fraction(run)
    states = [
        (s_, "done" if i < current else "current" if i == current else "waiting")
        for i, s_ in enumerate(stages)
    ]
    return SyncProgress(percent=min(99, int(done * 100 / total)), stages=states)


def list_sync_runs(corp: Corp, *, limit: int = 30) -> list[SyncRun]:
    """The corp's latest syncs, newest first (the console's history)."""
    return list(
        SyncRun.objects.for_corp(corp).select_related("created_by").order_by("-created_at", "-id")[:limit]
    )


def get_sync_run(corp: Corp, run_id: int) -> SyncRun:
    from siyu.core.errors import NotFound

    run = SyncRun.objects.for_corp(corp).filter(pk=run_id).first()
    if run is None:
        raise NotFound("sync run not found")
    return run
