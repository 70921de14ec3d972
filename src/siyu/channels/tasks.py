"""Background work of the channels: an add's remark and tags, put off while adds wait (``handlers``)."""

from __future__ import annotations

from django_tasks import task

from siyu.channels.handlers import AUTOMATION_PRIORITY, AUTOMATION_RETRY, automate_waiting
from siyu.core.clock import now
from siyu.core.tasks import enqueue


@task()
def automate_adds(corp_id: int) -> None:
    """Automate the corp's waiting adds; when adds queue up again (or time runs out), look again shortly."""
    _done, left = automate_waiting(corp_id)
    if left:
        enqueue(
            automate_adds, corp_id=corp_id, priority=AUTOMATION_PRIORITY, run_after=now() + AUTOMATION_RETRY
        )
