"""Periodic sweeps find work a lost wake-up left behind and enqueue the task that does it."""

from __future__ import annotations

import datetime as dt

import pytest
from django_tasks_db.models import DBTaskResult

from siyu.core import clock
from siyu.wecom.models import Outbox, SyncRun
from siyu.wecom.periodic import sweep_outbox, sweep_sync_runs
from tests.wecom.outbound_support import make_wecom_corp

pytestmark = pytest.mark.django_db


def queued(task_suffix: str) -> int:
    return DBTaskResult.objects.filter(task_path__endswith=task_suffix, status="READY").count()


def test_outbox_sweep_enqueues_a_sender_only_when_a_row_is_due():
    corp = make_wecom_corp()
    sweep_outbox()
    assert queued("send_outbox") == 0
    # a stored write whose wake-up was lost
    Outbox.objects.create(
        corp=corp, api="mark_tag", payload={}, idempotency_key="k1", priority=50, next_attempt_at=clock.now()
    )
    sweep_outbox()
    assert queued("send_outbox") == 1


def test_sync_sweep_restarts_stranded_runs_and_keeps_reconciliation_scheduled(
    django_capture_on_commit_callbacks,
):
    corp = make_wecom_corp()
    moment = clock.now()
    stranded = SyncRun.objects.create(
        corp=corp, kind=SyncRun.Kind.FULL, created_at=moment - dt.timedelta(hours=1), stage="departments"
    )
    dead = SyncRun.objects.create(
        corp=corp,
        kind=SyncRun.Kind.FULL,
        status=SyncRun.Status.RUNNING,
        lease_until=moment - dt.timedelta(minutes=1),
        stage="departments",
    )
    fresh = SyncRun.objects.create(corp=corp, kind=SyncRun.Kind.FULL, stage="departments")
    with django_capture_on_commit_callbacks(execute=True):
        sweep_sync_runs()
    enqueued = {
        r.args_kwargs["kwargs"].get("run_id") or r.args_kwargs["args"][0]
        for r in DBTaskResult.objects.filter(task_path__endswith="run_sync_task")
    }
    reconcile = SyncRun.objects.for_corp(corp).get(kind=SyncRun.Kind.RECONCILE)
    # the stranded and the dead runs are started again; the fresh one is left to its own task
    assert enqueued == {stranded.pk, dead.pk, reconcile.pk}
    assert fresh.pk not in enqueued
    assert SyncRun.objects.for_corp(corp).filter(kind=SyncRun.Kind.RECONCILE, status="pending").count() == 1
    sweep_sync_runs()  # idempotent
    assert SyncRun.objects.for_corp(corp).filter(kind=SyncRun.Kind.RECONCILE, status="pending").count() == 1
