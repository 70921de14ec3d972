"""A sync outside any transaction, as the worker runs it: on PostgreSQL WeCom's answers are read ahead on a
thread (its own connection), several pages share a transaction, and a helper thread applies part of each
batch's customers in a transaction of its own. Same results as in line; a failure on a thread stops the run
after the pages before it, and the run resumes from there without doubling anything."""

from __future__ import annotations

import threading
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


@pytest.fixture
def helper_modes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each helper of the run applied its parts on a thread."""
    modes: list[bool] = []
    original = sync_module._Helper.__init__

    def spy(self: Any, work: Any) -> None:
        original(self, work)
        modes.append(self._thread is not None)

    monkeypatch.setattr(sync_module._Helper, "__init__", spy)
    return modes


def test_a_sync_outside_a_transaction_matches_the_simulator(settings, read_ahead_modes, helper_modes):
    with simulated_wecom(settings, customers=250, staff=8, groups=5) as env:
        expected = _wecom_counts(env.sim.state)
        # when the worker runs a full sync (no transaction around it)
        turn = run_sync(start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False).pk)
        # then
        assert turn.run.status == SyncRun.Status.DONE, turn.run.error
        assert _siyu_counts(env.corp) == expected
        added = Event.objects.for_corp(env.corp).filter(kind=Event.Kind.ADDED, source=Event.Source.SYNC)
        assert added.count() == expected["relations"]
        # the members' lists, the relation pages and the groups were read ahead on a thread on PostgreSQL,
        # and a helper thread applied part of the relations
        assert read_ahead_modes == [connection.vendor == "postgresql"] * 3
        assert helper_modes == [connection.vendor == "postgresql"]


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


def _failing_once(monkeypatch: pytest.MonkeyPatch, *, in_helper: bool, batch: int) -> None:
    """The ``batch``-th part applied by the helper (``in_helper``) or by the caller fails, once."""
    original = sync_module._apply_relations_page
    calls = {"helper": 0, "caller": 0}

    def apply(mirror: Any, relations: Any) -> None:
        side = "helper" if mirror._helping is not None else "caller"
        calls[side] += 1
        if (side == "helper") == in_helper and calls[side] == batch:
            raise RuntimeError(f"{side} part failed ({threading.current_thread().name})")
        original(mirror, relations)

    monkeypatch.setattr(sync_module, "_apply_relations_page", apply)
    monkeypatch.setattr(sync_module, "PAGES_PER_TRANSACTION", 2)


@pytest.mark.parametrize("in_helper", [True, False], ids=["helper-part-fails", "caller-part-fails"])
def test_a_batch_half_applied_is_applied_again_without_doubling(settings, monkeypatch, in_helper):
    with simulated_wecom(settings, customers=400, staff=4) as env:
        expected = _wecom_counts(env.sim.state)
        _failing_once(monkeypatch, in_helper=in_helper, batch=2)
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        # when one part of the second batch fails (the other part may have committed on its own)
        failed = run_sync(run.pk).run
        # then the run stopped with the first batch checkpointed (one or two pages, as read ahead by then)
        assert failed.status == SyncRun.Status.FAILED and "part failed" in failed.error
        assert failed.stage == "customers" and failed.checkpoint["seen"] in (100, 200)
        # and resumed, it applies the second batch again: every relation, tag and added event once
        resume_sync(run=failed)
        done = run_sync(run.pk).run
        assert done.status == SyncRun.Status.DONE, done.error
        assert _siyu_counts(env.corp) == expected
        added = Event.objects.for_corp(env.corp).filter(kind=Event.Kind.ADDED, source=Event.Source.SYNC)
        assert added.count() == expected["relations"]
        tagged = Event.objects.for_corp(env.corp).filter(kind=Event.Kind.TAGGED, source=Event.Source.SYNC)
        assert tagged.count() == expected["relation_tags"]
