"""A sync outside any transaction, as the worker runs it: on PostgreSQL WeCom's answers are read ahead on a
thread (its own connection), and several pages share a transaction. Same results as in line; a failure on the
thread stops the run after the pages before it, and the run resumes from there without doubling anything."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from siyu.customers.models import Event
from siyu.wecom import errors
from siyu.wecom import sync as sync_module
from siyu.wecom.client import WeComClient, client_for
from siyu.wecom.limits import Priority
from siyu.wecom.models import SyncRun
from siyu.wecom.sync import resume_sync, run_sync, start_sync
from tests.wecom.inbound_support import simulated_wecom
from tests.wecom.test_sync import _siyu_counts, _wecom_counts

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def read_ahead_modes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each read-ahead of the run went through a thread."""
    modes: list[bool] = []
    original = sync_module._Answers.__init__

    def spy(self: Any, produce: Any) -> None:
        original(self, produce)
        modes.append(self._threaded)

    monkeypatch.setattr(sync_module._Answers, "__init__", spy)
    return modes


def test_a_sync_outside_a_transaction_matches_the_simulator(settings, read_ahead_modes):
    with simulated_wecom(settings, customers=250, staff=8, groups=5) as env:
        expected = _wecom_counts(env.sim.state)
        # when the worker runs a full sync (no transaction around it)
        turn = run_sync(start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False).pk)
        # then
        assert turn.run.status == SyncRun.Status.DONE, turn.run.error
        assert _siyu_counts(env.corp) == expected
        added = Event.objects.for_corp(env.corp).filter(kind=Event.Kind.ADDED, source=Event.Source.SYNC)
        assert added.count() == expected["relations"]
        # the members' lists, the relation pages and the groups were read ahead on a thread on PostgreSQL
        assert read_ahead_modes == [connection.vendor == "postgresql"] * 3


class _FailingClient(WeComClient):
    """The real client, whose third ``batch/get_by_user`` page WeCom refuses (permission withdrawn)."""

    def __init__(self, inner: WeComClient) -> None:
        super().__init__(inner.transport)
        self.pages = 0

    def batch_get_by_user(self, userid_list: list[str], **kwargs: Any) -> Any:
        self.pages += 1
        if self.pages == 3:
            raise errors.for_code(48002, "api forbidden", "externalcontact/batch/get_by_user")
        return super().batch_get_by_user(userid_list, **kwargs)


def test_a_failure_on_the_reading_thread_stops_after_the_pages_before_it(settings):
    with simulated_wecom(settings, customers=400, staff=4) as env:
        expected = _wecom_counts(env.sim.state)
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        # when WeCom refuses the third page of relations
        failed = run_sync(
            run.pk, client_factory=lambda corp: _FailingClient(client_for(corp, priority=Priority.SYNC))
        ).run
        # then the run failed there, with the two pages before it written and checkpointed
        assert failed.status == SyncRun.Status.FAILED and "48002" in failed.error
        assert failed.stage == "customers" and failed.checkpoint["seen"] == 200
        assert failed.counts["relations"] == 200
        # and resumed, it finishes from that page: every relation once
        resume_sync(run=failed)
        done = run_sync(run.pk).run
        assert done.status == SyncRun.Status.DONE, done.error
        assert _siyu_counts(env.corp)["relations"] == expected["relations"]
        added = Event.objects.for_corp(env.corp).filter(kind=Event.Kind.ADDED, source=Event.Source.SYNC)
        assert added.count() == expected["relations"]
