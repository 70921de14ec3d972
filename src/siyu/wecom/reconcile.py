"""Scheduled reconciliation: a diff against WeCom that repairs what callbacks missed.

The diff itself is a ``SyncRun`` of kind ``reconcile`` (``sync.py``: corp tags, then every relation through
``batch/get_by_user`` and every member's customer list); its repairs are recorded as events marked
``{"reconciled": true}``. This module keeps one scheduled for every corp that has been synced:
``SYNC_RECONCILE_HOURS`` after a sync ends, the next reconciliation is due. The schedule is a pending
``SyncRun`` with ``scheduled_for`` and a deferred task, so it is visible in the console and survives restarts
of the web process (a lost task is re-created by the next sync, or by ``siyu sync``).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction

from siyu.core.clock import now
from siyu.corps.models import Corp
from siyu.wecom.models import SyncRun


def next_reconciliation(corp: Corp) -> SyncRun | None:
    """The corp's scheduled reconciliation, if one is waiting."""
    return (
        SyncRun.objects.for_corp(corp)
        .filter(kind=SyncRun.Kind.RECONCILE, status=SyncRun.Status.PENDING)
        .exclude(scheduled_for=None)
        .order_by("scheduled_for")
        .first()
    )


def schedule_reconciliation(*, corp: Corp, at: dt.datetime | None = None) -> SyncRun | None:
    """Make sure a reconciliation is scheduled (``SYNC_RECONCILE_HOURS`` from now unless ``at``); None when
    the schedule is turned off."""
    hours = float(str(settings.SIYU["SYNC_RECONCILE_HOURS"]))
    if hours <= 0:
        return None
    from siyu.wecom.sync import STAGES, enqueue_run

    with transaction.atomic():
        existing = next_reconciliation(corp)
        if existing is not None:
            return existing
        due = at or now() + dt.timedelta(hours=hours)
        run = SyncRun.objects.create(
            corp=corp, kind=SyncRun.Kind.RECONCILE, scheduled_for=due, stage=STAGES[SyncRun.Kind.RECONCILE][0]
        )
        transaction.on_commit(lambda: enqueue_run(run.pk, due))
    return run
