"""Periodic sweeps of the WeCom boundary, run by the worker's beat (``siyu.core.scheduler``).

Each finds work a lost wake-up or a dead worker left behind and enqueues the task that does it; the tasks'
claims make a sweep that races a normal wake-up harmless.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q

from siyu.core.clock import now
from siyu.core.scheduler import register

# A callback's own wake-up normally drains it within a second; 15 s bounds the wait after a lost one.
SWEEP_EVERY = timedelta(seconds=15)
# Reconciliations are hours apart (SYNC_RECONCILE_HOURS); checking every 10 minutes is plenty.
RECONCILE_CHECK_EVERY = timedelta(minutes=10)


def sweep_inbox() -> None:
    from siyu.wecom.inbox import claimable, enqueue_drain

    if claimable(now()).exists():
        enqueue_drain(None)


def sweep_outbox() -> None:
    from siyu.wecom.models import Outbox
    from siyu.wecom.outbox import _due, dispatch

    if Outbox.objects.filter(_due()).exists():
        dispatch()


def sweep_sync_runs() -> None:
    """Start sync runs whose deferred task never came (e.g. a queue that lost it), and keep every connected
    corp's reconciliation scheduled."""
    from siyu.corps.models import Corp
    from siyu.wecom.models import SyncRun
    from siyu.wecom.reconcile import schedule_reconciliation
    from siyu.wecom.sync import enqueue_run

    moment = now()
    late = moment - timedelta(minutes=5)
    stranded = SyncRun.objects.filter(
        Q(status=SyncRun.Status.PENDING, scheduled_for__lte=late)
        | Q(status=SyncRun.Status.PENDING, scheduled_for=None, created_at__lte=late)
        | Q(status=SyncRun.Status.RUNNING, lease_until__lt=moment)  # its worker died
    )
    for run_id in stranded.values_list("pk", flat=True)[:100]:
        enqueue_run(run_id)
    for corp in Corp.objects.exclude(secret_encrypted=""):
        schedule_reconciliation(corp=corp)


def register_all() -> None:
    from siyu.core.scheduler import set_busy_check
    from siyu.core.vacuum import register_hot_table
    from siyu.wecom.inbox import adds_waiting_anywhere
    from siyu.wecom.models import ApiLimit, GatewayTicket, InboxEvent, Outbox

    for model in (InboxEvent, Outbox, GatewayTicket, ApiLimit):
        register_hot_table(model._meta.db_table)

    # Periodic work that can wait (``defer_when_busy``) gives way while customers' adds are being worked.
    set_busy_check(adds_waiting_anywhere)
    register("wecom.inbox_sweep", SWEEP_EVERY, sweep_inbox)
    register("wecom.outbox_sweep", SWEEP_EVERY, sweep_outbox)
    register("wecom.sync_sweep", RECONCILE_CHECK_EVERY, sweep_sync_runs)
