"""The inbox worker: claims and leases, per-key order, retries with backoff, failure, replay, stats, tasks."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from siyu.core import clock
from siyu.corps.models import Department
from siyu.corps.services import upsert_department
from siyu.wecom.inbox import (
    adds_waiting,
    adds_waiting_anywhere,
    claim_batch,
    claimable,
    drain_inbox,
    inbox_stats,
    process_row,
    replay_inbox_event,
    retry_delay,
    store_message,
    yield_to_adds,
)
from siyu.wecom.models import InboxEvent
from tests.conftest import run_tasks
from tests.wecom.inbound_support import callback_corp, event_xml, post_callback, simulated_wecom

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


def _store(corp, xml: str) -> InboxEvent:
    store_message(corp_id=corp.pk, plaintext=xml.encode())
    return InboxEvent.objects.for_corp(corp).order_by("-id").first()


def _delete_party(corp, wecom_id: int, at: int = 1700000000) -> InboxEvent:
    return _store(corp, event_xml("change_contact", "delete_party", create_time=at, Id=wecom_id))


def test_only_the_first_open_row_of_a_key_is_claimable():
    # given three events of one customer and one of another
    corp, _crypto = callback_corp()
    first, second = (
        _store(
            corp, event_xml("change_external_contact", ct, create_time=1, UserID="u", ExternalUserID="wm1")
        )
        for ct in ("add_external_contact", "edit_external_contact")
    )
    other = _store(
        corp, event_xml("change_external_contact", "del_follow_user", UserID="u", ExternalUserID="wm2")
    )
    # then
    assert list(claimable(clock.now(), corp_id=corp.pk)) == [first, other]
    # when the first is claimed (processing), the second still waits
    _token, rows = claim_batch(corp_id=corp.pk, size=1)
    assert rows == [first]
    assert list(claimable(clock.now(), corp_id=corp.pk)) == [other]
    assert second.status == InboxEvent.Status.PENDING


def test_two_workers_never_claim_the_same_row():
    corp, _crypto = callback_corp()
    for n in range(6):
        _delete_party(corp, 9000 + n, at=1700000000 + n)  # all "org": one key, so one claimable at a time
    for n in range(4):
        _store(corp, event_xml("change_external_chat", "dismiss", ChatId=f"wr{n}"))
    # when two workers claim at once
    _t1, first = claim_batch(corp_id=corp.pk, size=10)
    _t2, second = claim_batch(corp_id=corp.pk, size=10)
    # then their rows are disjoint, and each key appears once in all
    assert not {r.pk for r in first} & {r.pk for r in second}
    keys = [r.ordering_key for r in first + second]
    assert len(keys) == len(set(keys)) == 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: SQLite has one writer at a time")
@pytest.mark.django_db(transaction=True)
def test_a_worker_skips_the_rows_another_is_claiming_instead_of_waiting_or_coming_back_empty():
    # given two customers' events, the first locked by a worker in the middle of claiming it
    corp, _crypto = callback_corp()
    first, second = (
        _store(corp, event_xml("change_external_contact", "del_follow_user", UserID="u", ExternalUserID=who))
        for who in ("wm1", "wm2")
    )
    locked, release = threading.Event(), threading.Event()

    def claiming() -> None:
        try:
            with transaction.atomic():
                InboxEvent.objects.select_for_update().filter(pk=first.pk).get()
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    other = threading.Thread(target=claiming)
    other.start()
    try:
        assert locked.wait(10)
        # when another worker claims meanwhile
        started = time.monotonic()
        _token, rows = claim_batch(corp_id=corp.pk, size=2)
        # then it gets the next row at once, without waiting for the lock
        assert rows == [second]
        assert time.monotonic() - started < 5
    finally:
        release.set()
        other.join()


def test_a_dead_workers_rows_are_claimable_after_the_lease(settings):
    corp, _crypto = callback_corp()
    upsert_department(corp=corp, wecom_id=77, name="待删")
    with clock.frozen_at(T0):
        row = _delete_party(corp, 77)
        _token, claimed = claim_batch(corp_id=corp.pk)  # a worker takes it, then dies
        assert claimed == [row]
        assert list(claimable(clock.now(), corp_id=corp.pk)) == []
        # when the lease has run out
        clock.advance(dt.timedelta(seconds=settings.SIYU["INBOX_LEASE_SECONDS"] + 1))
        report = drain_inbox(corp_id=corp.pk)
    # then another worker does the work, once
    assert report.statuses == {InboxEvent.Status.DONE: 1}
    row.refresh_from_db()
    assert (row.status, row.attempts) == (InboxEvent.Status.DONE, 2)
    assert not Department.objects.for_corp(corp).filter(wecom_id=77).exists()


def test_a_worker_whose_row_was_taken_over_does_not_close_it():
    corp, _crypto = callback_corp()
    row = _delete_party(corp, 5)
    _token, [slow] = claim_batch(corp_id=corp.pk)
    # when another worker takes the row over (as after a lease) and finishes it
    InboxEvent.objects.filter(pk=row.pk).update(claim="someone-else")
    status = process_row(slow)
    # then the slow worker's result is not written over the other's claim
    row.refresh_from_db()
    assert status == InboxEvent.Status.DONE
    assert row.status == InboxEvent.Status.PROCESSING and row.claim == "someone-else"


def test_failures_retry_with_backoff_then_fail_and_replay(settings):
    settings.SIYU = {**settings.SIYU, "INBOX_MAX_ATTEMPTS": 3}
    with simulated_wecom(settings) as env:
        # given an add whose details WeCom refuses to give (the app lost the customer-contact permission)
        env.sim.actions.add_customer()
        env.deliver()
        env.sim.limits.add_fault(api="externalcontact/get", kind="errcode", errcode=48002)
        row = InboxEvent.objects.for_corp(env.corp).get()
        start = clock.now()
        with clock.frozen_at(start):
            # when worked
            env.work()
            row.refresh_from_db()
            # then it waits for a retry, with the reason
            assert (row.status, row.attempts) == (InboxEvent.Status.PENDING, 1), row.last_error
            assert row.next_attempt_at == start + retry_delay(1)
            assert "48002" in row.last_error
            # and nothing happens before it is due
            assert env.work().worked == 0
            clock.advance(retry_delay(1))
            env.work()
            clock.advance(retry_delay(2))
            env.work()
        # then after the last attempt it has failed, visibly
        row.refresh_from_db()
        assert (row.status, row.attempts) == (InboxEvent.Status.FAILED, 3)
        assert inbox_stats(env.corp).by_status[InboxEvent.Status.FAILED] == 1
        # when the permission is back and the event is replayed from the console
        env.sim.limits.clear_faults()
        replay_inbox_event(row=row)
        env.work()
        row.refresh_from_db()
        assert (row.status, row.outcome) == (InboxEvent.Status.DONE, "relation added")


def test_throttling_does_not_use_up_attempts(settings):
    with simulated_wecom(settings) as env:
        env.sim.actions.add_customer()
        env.deliver()
        # given WeCom answers 45009 (frequency limit): the gateway opens a penalty window
        env.sim.limits.add_fault(api="externalcontact/get", kind="errcode", errcode=45009)
        # when worked
        env.work()
        # then the row waits for the window to close without losing an attempt
        row = InboxEvent.objects.for_corp(env.corp).get()
        assert (row.status, row.attempts) == (InboxEvent.Status.PENDING, 0)
        assert row.next_attempt_at > clock.now()


def test_an_unreadable_message_fails_at_once():
    corp, _crypto = callback_corp()
    row = _store(corp, "<xml><Event>half")
    assert row.status == InboxEvent.Status.PENDING
    drain_inbox(corp_id=corp.pk)
    row.refresh_from_db()
    assert (row.status, row.outcome) == (InboxEvent.Status.FAILED, "unreadable message")


def test_an_identical_message_after_the_work_puts_the_row_back(client):
    # given a worked event
    corp, crypto = callback_corp()
    upsert_department(corp=corp, wecom_id=31, name="甲")
    xml = event_xml("change_contact", "update_party", create_time=1700000000, Id=31, Name="乙")
    post_callback(client, crypto, xml)
    drain_inbox(corp_id=corp.pk)
    row = InboxEvent.objects.for_corp(corp).get()
    assert row.status == InboxEvent.Status.DONE
    # when the same bytes arrive again (a redelivery, or a second change within the same second)
    post_callback(client, crypto, xml)
    # then there is still one row, queued to be worked again
    row.refresh_from_db()
    assert InboxEvent.objects.for_corp(corp).count() == 1
    assert (row.status, row.attempts) == (InboxEvent.Status.PENDING, 0)
    drain_inbox(corp_id=corp.pk)
    row.refresh_from_db()
    assert row.status == InboxEvent.Status.DONE


def test_an_identical_message_during_the_work_hands_the_row_back(client):
    corp, crypto = callback_corp()
    xml = event_xml("change_contact", "delete_party", create_time=1700000000, Id=404)
    post_callback(client, crypto, xml)
    _token, [claimed] = claim_batch(corp_id=corp.pk)
    # when the same message arrives while a worker has the row
    post_callback(client, crypto, xml)
    status = process_row(claimed)
    # then the worker's close is refused and the row waits a moment to be worked again
    row = InboxEvent.objects.for_corp(corp).get()
    assert status == InboxEvent.Status.DONE
    assert row.status == InboxEvent.Status.PENDING
    assert row.next_attempt_at > clock.now()


def test_stats_give_depth_lag_and_counts():
    corp, _crypto = callback_corp()
    with clock.frozen_at(T0):
        _delete_party(corp, 1)
        _delete_party(corp, 2, at=1700000001)
    _store(corp, event_xml("change_external_chat", "dismiss", ChatId="wr1"))
    InboxEvent.objects.for_corp(corp).filter(ordering_key="chat:wr1").update(status=InboxEvent.Status.FAILED)
    with clock.frozen_at(T0 + dt.timedelta(seconds=42)):
        stats = inbox_stats(corp)
    assert stats.depth == 2
    assert stats.lag == dt.timedelta(seconds=42)
    assert stats.by_status[InboxEvent.Status.PENDING] == 2
    assert stats.by_status[InboxEvent.Status.FAILED] == 1
    # another corp's inbox is not counted
    other, _c = callback_corp(corpid="wwanothercorp001")
    assert inbox_stats(other).depth == 0


def test_the_task_worker_drains_what_the_receiver_stored(client, django_capture_on_commit_callbacks):
    # given
    cache.clear()
    corp, crypto = callback_corp()
    upsert_department(corp=corp, wecom_id=12, name="旧名")
    # when a callback arrives and the background worker runs
    with django_capture_on_commit_callbacks(execute=True):
        post_callback(client, crypto, event_xml("change_contact", "update_party", Id=12, Name="新名"))
    run_tasks()
    # then it was applied
    assert Department.objects.for_corp(corp).get(wecom_id=12).name == "新名"
    assert InboxEvent.objects.for_corp(corp).get().status == InboxEvent.Status.DONE


def _add_event(corp, external_userid: str, *, change_type: str = "add_external_contact") -> InboxEvent:
    return _store(
        corp,
        event_xml(
            "change_external_contact", change_type, UserID="u", ExternalUserID=external_userid, State="c1"
        ),
    )


def test_adds_waiting_counts_only_adds_that_are_due_or_being_worked(settings):
    corp, _crypto = callback_corp()
    other, _ = callback_corp(corpid="wwotheradds01")
    # given an edit, and another corp's add: no add of this corp waits
    _store(
        corp, event_xml("change_external_contact", "edit_external_contact", UserID="u", ExternalUserID="wm9")
    )
    _add_event(other, "wm8")
    assert not adds_waiting(corp.pk)
    # when a customer's add is stored, it waits; a half add too
    add = _add_event(corp, "wm1")
    assert adds_waiting(corp.pk)
    # and while a worker has it, it is still being worked
    _token, rows = claim_batch(corp_id=corp.pk, size=5)
    assert add.pk in [r.pk for r in rows]
    assert adds_waiting(corp.pk)
    # but an add waiting for a retry later, or left by a dead worker, does not count
    InboxEvent.objects.filter(pk=add.pk).update(
        status=InboxEvent.Status.PENDING, next_attempt_at=clock.now() + dt.timedelta(minutes=5)
    )
    assert not adds_waiting(corp.pk)
    InboxEvent.objects.filter(pk=add.pk).update(
        status=InboxEvent.Status.PROCESSING, locked_until=clock.now() - dt.timedelta(seconds=1)
    )
    assert not adds_waiting(corp.pk)
    half = _add_event(corp, "wm2", change_type="add_half_external_contact")
    assert adds_waiting(corp.pk)
    InboxEvent.objects.filter(pk=half.pk).update(status=InboxEvent.Status.DONE)
    assert not adds_waiting(corp.pk)


def test_background_work_yields_while_adds_are_worked_and_no_longer():
    corp, _crypto = callback_corp()
    # given nothing waiting: no pause at all
    assert yield_to_adds(corp.pk, most=5.0, sleep=lambda _s: pytest.fail("paused for nothing")) == 0.0
    # given an add waiting, which a worker finishes during the pause
    add = _add_event(corp, "wm1")
    pauses: list[float] = []

    def worker_finishes(seconds: float) -> None:
        pauses.append(seconds)
        InboxEvent.objects.filter(pk=add.pk).update(status=InboxEvent.Status.DONE)

    # when background work yields
    yield_to_adds(corp.pk, most=5.0, sleep=worker_finishes)
    # then it paused once, and went on as soon as the add was done
    assert pauses == [0.05]
    # and an add that stays waiting holds it back no longer than the most it may pause
    _add_event(corp, "wm2")
    paused = yield_to_adds(corp.pk, most=0.2, sleep=lambda _s: None)
    assert 0.2 <= paused < 5.0


def test_background_work_pauses_longer_only_while_adds_wait_unclaimed():
    corp, _crypto = callback_corp()
    # given an add no worker has taken (the workers are behind)
    queued = _add_event(corp, "wm1")
    # then background work pauses past its usual most, up to the longer one
    paused = yield_to_adds(corp.pk, most=0.05, behind_most=0.3, sleep=lambda _s: None)
    assert 0.3 <= paused < 5.0
    # given the add taken by a worker (being worked, nothing unclaimed)
    InboxEvent.objects.filter(pk=queued.pk).update(
        status=InboxEvent.Status.PROCESSING, locked_until=clock.now() + dt.timedelta(minutes=5)
    )
    # then it pauses only its usual most
    paused = yield_to_adds(corp.pk, most=0.05, behind_most=5.0, sleep=lambda _s: None)
    assert 0.05 <= paused < 0.3
    # and for the outbox's passes an add being worked counts, one done does not
    assert adds_waiting_anywhere()
    InboxEvent.objects.filter(pk=queued.pk).update(status=InboxEvent.Status.DONE)
    assert not adds_waiting_anywhere()
