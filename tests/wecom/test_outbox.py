"""The outbox: writes stored first, sent once per key by the worker, retried, outcomes recorded."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from django.db import connection, transaction

from siyu.core import clock
from siyu.core.errors import Invalid
from siyu.wecom import outbox, tokens
from siyu.wecom import schemas as s
from siyu.wecom.limits import Priority
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import claim_due, enqueue_write, requeue_write, send_claimed, send_due, write_result
from tests.conftest import run_tasks
from tests.wecom.outbound_support import (
    BASE,
    SECRET,
    TOKEN,
    err,
    json_response,
    make_wecom_corp,
    ok,
    token_answer,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WELCOME = "externalcontact/send_welcome_msg"
REMARK = "externalcontact/remark"


@pytest.fixture(autouse=True)
def _wecom_base(settings):
    settings.WECOM_API_BASE = BASE
    # The gateway's own retries of -1 are tested in test_gateway; here each send is one try, without pauses.
    settings.SIYU = {**settings.SIYU, "WECOM_BUSY_RETRIES": 0, "WECOM_OUTBOX_MAX_ATTEMPTS": 3}
    tokens.forget_cached()
    yield
    tokens.forget_cached()


@pytest.fixture
def wecom(respx_mock: respx.MockRouter) -> respx.MockRouter:
    respx_mock.get(BASE + "gettoken").mock(return_value=token_answer())
    return respx_mock


def welcome(code: str = "WELCOMECODE", text: str = "您好，欢迎光临") -> s.WelcomeMessageRequest:
    return s.WelcomeMessageRequest(welcome_code=code, text=s.Text(content=text))


@pytest.mark.django_db
def test_the_same_key_twice_is_one_row_and_one_call(wecom, django_capture_on_commit_callbacks) -> None:
    # given
    corp = make_wecom_corp()
    route = wecom.post(BASE + WELCOME).mock(return_value=json_response(ok()))
    # when: the add event is handled twice (a redelivery)
    with django_capture_on_commit_callbacks(execute=True):
        first = enqueue_write(
            corp=corp,
            api=WELCOME,
            payload=welcome(),
            idempotency_key="welcome:WELCOMECODE",
            priority=Priority.WELCOME,
        )
    with django_capture_on_commit_callbacks(execute=True):
        second = enqueue_write(
            corp=corp,
            api=WELCOME,
            payload=welcome(),
            idempotency_key="welcome:WELCOMECODE",
            priority=Priority.WELCOME,
        )
    run_tasks()
    # then
    assert first.pk == second.pk
    assert Outbox.objects.for_corp(corp).count() == 1
    assert route.call_count == 1
    row = Outbox.objects.get(pk=first.pk)
    assert row.status == Outbox.Status.DONE and row.attempts == 1 and row.sent_at is not None
    assert row.priority == Priority.WELCOME
    # when: asked again after it was sent
    with django_capture_on_commit_callbacks(execute=True):
        again = enqueue_write(
            corp=corp, api=WELCOME, payload=welcome(), idempotency_key="welcome:WELCOMECODE"
        )
    run_tasks()
    # then
    assert again.pk == first.pk and route.call_count == 1


@pytest.mark.django_db
def test_the_same_key_in_another_corp_is_another_write(wecom) -> None:
    # given
    corp, other = make_wecom_corp(), make_wecom_corp()
    # when
    a = enqueue_write(corp=corp, api=WELCOME, payload=welcome(), idempotency_key="k1")
    b = enqueue_write(corp=other, api=WELCOME, payload=welcome(), idempotency_key="k1")
    # then
    assert a.pk != b.pk


@pytest.mark.django_db
def test_a_rolled_back_write_is_neither_stored_nor_sent(wecom, django_capture_on_commit_callbacks) -> None:
    # given
    corp = make_wecom_corp()
    route = wecom.post(BASE + WELCOME).mock(return_value=json_response(ok()))
    # when
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        enqueue_write(corp=corp, api=WELCOME, payload=welcome(), idempotency_key="welcome:X")
        raise RuntimeError("the domain change failed")
    run_tasks()
    # then
    assert callbacks == []
    assert not Outbox.objects.for_corp(corp).exists()
    assert route.call_count == 0


@pytest.mark.django_db
def test_bad_writes_are_refused_before_they_are_stored() -> None:
    # given
    corp = make_wecom_corp()
    long_remark = {"userid": "zhangsan", "external_userid": "wm1", "remark": "很长的备注" * 5}
    # when / then: WeCom's limits and unknown APIs are refused with the field, never the text
    with pytest.raises(Invalid) as too_long:
        enqueue_write(corp=corp, api=REMARK, payload=long_remark, idempotency_key="r1")
    assert too_long.value.field == "remark" and "很长的备注" not in too_long.value.message
    with pytest.raises(Invalid) as unknown:
        enqueue_write(corp=corp, api="externalcontact/get", payload={}, idempotency_key="r2")
    assert unknown.value.field == "api"
    with pytest.raises(Invalid):
        enqueue_write(
            corp=corp, api=REMARK, payload={"userid": "u", "external_userid": "w"}, idempotency_key=""
        )
    assert not Outbox.objects.for_corp(corp).exists()


@pytest.mark.django_db
def test_a_failing_write_is_retried_with_backoff_then_failed_with_the_reason(wecom) -> None:
    # given: WeCom stays busy; three tries allowed
    corp = make_wecom_corp()
    route = wecom.post(BASE + REMARK).mock(return_value=json_response(err(-1, "system busy")))
    payload = s.RemarkRequest(userid="zhangsan", external_userid="wm1", remark="老客户")
    with clock.frozen_at(T0):
        row = enqueue_write(corp=corp, api=REMARK, payload=payload, idempotency_key="remark:wm1:1")
        # when: the first try
        send_due()
        row.refresh_from_db()
        # then: rescheduled 30 s later with the error visible
        assert (row.status, row.attempts, row.errcode) == (Outbox.Status.PENDING, 1, -1)
        assert row.next_attempt_at == T0 + timedelta(seconds=30)
        assert row.last_error.startswith("errcode -1: system busy")
        # when: nothing is due yet
        assert send_due().done == 0 and route.call_count == 1
        # when: the second try 30 s later, the third 60 s after that
        clock.advance(timedelta(seconds=30))
        send_due()
        row.refresh_from_db()
        assert row.next_attempt_at == T0 + timedelta(seconds=90)
        clock.advance(timedelta(seconds=60))
        report = send_due()
    # then
    row.refresh_from_db()
    assert report.failed == 1
    assert (row.status, row.attempts, row.errcode) == (Outbox.Status.FAILED, 3, -1)
    assert "system busy" in row.last_error
    assert route.call_count == 3


@pytest.mark.django_db
def test_a_refused_write_fails_at_once(wecom) -> None:
    # given: the welcome code expired (more than 20 s after the add event)
    corp = make_wecom_corp()
    route = wecom.post(BASE + WELCOME).mock(return_value=json_response(err(41050, "invalid welcome code")))
    row = enqueue_write(corp=corp, api=WELCOME, payload=welcome(), idempotency_key="welcome:OLD")
    # when
    send_due()
    # then
    row.refresh_from_db()
    assert (row.status, row.attempts, row.errcode) == (Outbox.Status.FAILED, 1, 41050)
    assert route.call_count == 1


@pytest.mark.django_db
def test_throttling_reschedules_without_counting_a_try(wecom) -> None:
    # given: WeCom's minute quota for the API is spent
    corp = make_wecom_corp()
    route = wecom.post(BASE + REMARK).mock(
        side_effect=[json_response(err(45009, "api freq out of limit")), json_response(ok())]
    )
    payload = s.RemarkRequest(userid="zhangsan", external_userid="wm1", remark="老客户")
    with clock.frozen_at(T0):
        row = enqueue_write(corp=corp, api=REMARK, payload=payload, idempotency_key="remark:wm1:2")
        # when
        report = send_due()
        row.refresh_from_db()
        # then: back in the queue for when the penalty window closes
        assert report.throttled == 1
        assert (row.status, row.attempts) == (Outbox.Status.PENDING, 0)
        assert row.next_attempt_at == T0 + timedelta(seconds=60)
        # when
        clock.advance(timedelta(seconds=60))
        send_due()
    # then
    row.refresh_from_db()
    assert row.status == Outbox.Status.DONE and row.attempts == 1
    assert route.call_count == 2


@pytest.mark.django_db
def test_a_mass_message_whose_answer_was_lost_is_not_sent_again(wecom) -> None:
    # given: the request reached WeCom but the answer timed out
    corp = make_wecom_corp()
    route = wecom.post(BASE + "externalcontact/add_msg_template").mock(
        side_effect=httpx.ReadTimeout("timed out")
    )
    payload = s.MsgTemplateRequest(
        external_userid=["wm1"], sender="zhangsan", text=s.Text(content="春季新品")
    )
    row = enqueue_write(
        corp=corp, api="externalcontact/add_msg_template", payload=payload, idempotency_key="mass:1"
    )
    # when
    send_due()
    # then
    row.refresh_from_db()
    assert row.status == Outbox.Status.FAILED
    assert row.last_error.startswith("outcome unknown")
    assert route.call_count == 1


@pytest.mark.django_db
def test_the_result_is_recorded_and_typed(wecom) -> None:
    # given
    corp = make_wecom_corp()
    wecom.post(BASE + "externalcontact/add_msg_template").mock(
        return_value=json_response(ok(fail_list=["wmBAD"], msgid="msgGCAAAXtWyujaWJHDDGi0mAAAA"))
    )
    payload = s.MsgTemplateRequest(
        external_userid=["wm1", "wmBAD"], sender="zhangsan", text=s.Text(content="春季新品")
    )
    row = enqueue_write(
        corp=corp, api="externalcontact/add_msg_template", payload=payload, idempotency_key="mass:2"
    )
    # when
    send_due()
    # then
    row.refresh_from_db()
    assert row.result == {"fail_list": ["wmBAD"], "msgid": "msgGCAAAXtWyujaWJHDDGi0mAAAA"}
    created = write_result(row)
    assert isinstance(created, s.MsgTemplateCreated) and created.msgid == "msgGCAAAXtWyujaWJHDDGi0mAAAA"


@pytest.mark.django_db
def test_a_failed_write_can_be_sent_again(wecom, django_capture_on_commit_callbacks) -> None:
    # given: a write that failed because the app lacked the permission
    corp = make_wecom_corp()
    route = wecom.post(BASE + REMARK).mock(
        side_effect=[json_response(err(40058, "invalid parameter")), json_response(ok())]
    )
    payload = s.RemarkRequest(userid="zhangsan", external_userid="wm1", remark="老客户")
    row = enqueue_write(corp=corp, api=REMARK, payload=payload, idempotency_key="remark:wm1:3")
    send_due()
    # when
    with django_capture_on_commit_callbacks(execute=True):
        requeue_write(corp=corp, outbox_id=row.pk)
    run_tasks()
    # then
    row.refresh_from_db()
    assert row.status == Outbox.Status.DONE
    assert route.call_count == 2
    with pytest.raises(Invalid):
        requeue_write(corp=corp, outbox_id=row.pk)


@pytest.mark.django_db
def test_welcome_messages_are_claimed_first() -> None:
    # given: a bulk write queued before a welcome message
    corp = make_wecom_corp()
    bulk = enqueue_write(
        corp=corp,
        api="externalcontact/mark_tag",
        payload=s.MarkTagRequest(userid="u", external_userid="wm1", add_tag=["et1"]),
        idempotency_key="bulk:1",
        priority=Priority.BULK,
    )
    hello = enqueue_write(
        corp=corp, api=WELCOME, payload=welcome(), idempotency_key="welcome:1", priority=Priority.WELCOME
    )
    # when
    first = claim_due(limit=1)
    second = claim_due(limit=1)
    # then
    assert [pk for pk, _ in first] == [hello.pk]
    assert [pk for pk, _ in second] == [bulk.pk]


@pytest.mark.django_db
def test_a_pass_gives_way_to_waiting_adds_sending_only_welcomes_and_handing_back_the_rest(wecom) -> None:
    # given two remarks and a welcome message due
    corp = make_wecom_corp()
    wecom.post(BASE + REMARK).mock(return_value=json_response(ok()))
    wecom.post(BASE + WELCOME).mock(return_value=json_response(ok()))
    remarks = [
        enqueue_write(
            corp=corp,
            api=REMARK,
            payload=s.RemarkRequest(userid="u", external_userid=f"wm{n}", remark="老客户"),
            idempotency_key=f"remark:wm{n}",
        )
        for n in range(2)
    ]
    hello = enqueue_write(
        corp=corp, api=WELCOME, payload=welcome(), idempotency_key="welcome:1", priority=Priority.WELCOME
    )
    # when a pass runs while customers' adds wait unclaimed in an inbox
    report = send_due(give_way=lambda: True)
    # then the welcome went out, the remarks wait, due again
    assert report.gave_way and report.done == 1
    hello.refresh_from_db()
    assert hello.status == Outbox.Status.DONE
    assert {Outbox.objects.get(pk=r.pk).status for r in remarks} == {Outbox.Status.PENDING}
    # when the adds start waiting in the middle of a pass
    answers = iter([False, True])
    report = send_due(give_way=lambda: next(answers, True))
    # then the row it was on is sent and the rest of its claim handed back, due at once
    assert report.gave_way and report.done == 1
    statuses = sorted(Outbox.objects.get(pk=r.pk).status for r in remarks)
    assert statuses == [Outbox.Status.DONE, Outbox.Status.PENDING]
    # when no add waits, the pass sends what is left
    assert send_due(give_way=lambda: False).done == 1
    # and with nothing left, a pass while adds wait has nothing to give way with: it is simply done
    assert not send_due(give_way=lambda: True).gave_way


@pytest.mark.django_db
def test_a_claim_is_exclusive_until_its_lease_runs_out(wecom) -> None:
    # given
    corp = make_wecom_corp()
    route = wecom.post(BASE + WELCOME).mock(return_value=json_response(ok()))
    with clock.frozen_at(T0):
        row = enqueue_write(corp=corp, api=WELCOME, payload=welcome(), idempotency_key="welcome:lease")
        # when: worker A claims the row, worker B looks for work
        [(pk, lease_a)] = claim_due()
        # then
        assert claim_due() == []
        # when: worker A died; its lease runs out and worker B takes over
        clock.advance(outbox.CLAIM_LEASE + timedelta(seconds=1))
        [(pk_b, lease_b)] = claim_due()
        assert pk_b == pk and lease_b != lease_a
        # then: A coming back late neither sends nor records anything; B sends once
        assert send_claimed(pk, lease_a) == "lost"
        assert send_claimed(pk, lease_b) == "done"
    row.refresh_from_db()
    assert row.status == Outbox.Status.DONE and row.attempts == 1
    assert route.call_count == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="threads need a real database server")
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_the_same_row(wecom) -> None:
    # given: 40 writes
    corp = make_wecom_corp()
    route = wecom.post(BASE + REMARK).mock(return_value=json_response(ok()))
    for i in range(40):
        enqueue_write(
            corp=corp,
            api=REMARK,
            payload=s.RemarkRequest(userid="zhangsan", external_userid=f"wm{i}", remark=f"客户{i}"),
            idempotency_key=f"remark:{i}",
        )
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            send_due(claim_batch=3)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    # when
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then
    assert failures == []
    sent = [c.request.content for c in route.calls]
    assert len(sent) == 40 and len(set(sent)) == 40
    assert Outbox.objects.for_corp(corp).filter(status=Outbox.Status.DONE, attempts=1).count() == 40


@pytest.mark.django_db
def test_message_texts_and_secrets_are_never_logged(wecom, caplog) -> None:
    # given
    caplog.set_level(logging.DEBUG)
    corp = make_wecom_corp()
    wecom.post(BASE + WELCOME).mock(
        side_effect=[
            json_response(err(-1, "system busy")),
            json_response(err(41051, "customer already chatting")),
        ]
    )
    text = "尊敬的王先生，您的专属优惠码是 VIP-8848"
    enqueue_write(corp=corp, api=WELCOME, payload=welcome(text=text), idempotency_key="welcome:log")
    # when: one retry and one final failure, both logged
    send_due()
    with clock.frozen_at(clock.now() + timedelta(minutes=1)):
        send_due()
    # then
    assert "outbox" in caplog.text
    assert "VIP-8848" not in caplog.text and SECRET not in caplog.text and TOKEN not in caplog.text
