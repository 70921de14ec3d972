"""The gateway: -1 retried at most 3 times, 45009 penalty windows, 45033 concurrency, no unsafe replays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from siyu.core import clock
from siyu.wecom import errors, tokens
from siyu.wecom import schemas as s
from siyu.wecom.client import WeComClient
from siyu.wecom.gateway import Gateway
from siyu.wecom.limits import Priority
from siyu.wecom.models import ApiLimit
from tests.wecom.outbound_support import BASE, err, json_response, make_wecom_corp, ok, token_answer

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LIST = "externalcontact/list"


@pytest.fixture(autouse=True)
def _wecom_base(settings):
    settings.WECOM_API_BASE = BASE
    tokens.forget_cached()
    yield
    tokens.forget_cached()


@pytest.fixture
def wecom(respx_mock: respx.MockRouter) -> respx.MockRouter:
    respx_mock.get(BASE + "gettoken").mock(return_value=token_answer())
    return respx_mock


class Sleeps(list[float]):
    """Records the pauses the gateway asks for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_with(corp, sleeps: Sleeps, *, max_wait: float = 0.0) -> WeComClient:
    return WeComClient(Gateway(corp, priority=Priority.USER, max_wait=max_wait, sleep=sleeps))


def test_system_busy_is_retried_three_times_with_backoff_then_raised(wecom) -> None:
    # given: WeCom is busy for good
    route = wecom.get(BASE + LIST).mock(return_value=json_response(err(-1, "system busy")))
    sleeps = Sleeps()
    # when
    with pytest.raises(errors.SystemBusy) as busy:
        client_with(make_wecom_corp(), sleeps).list_customers("zhangsan")
    # then: one try and three retries, each pause longer than the last (exponential, jitter ≤ 0.5 s)
    assert route.call_count == 4
    assert busy.value.errcode == -1
    assert len(sleeps) == 3
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 1.5 and 2.0 <= sleeps[2] <= 2.5


def test_system_busy_then_success(wecom) -> None:
    # given
    route = wecom.get(BASE + LIST).mock(
        side_effect=[
            json_response(err(-1)),
            json_response(err(-1)),
            json_response(ok(external_userid=["wm1"])),
        ]
    )
    # when
    result = client_with(make_wecom_corp(), Sleeps()).list_customers("zhangsan")
    # then
    assert result == ["wm1"]
    assert route.call_count == 3


def test_45009_opens_a_penalty_window_for_that_api_only(wecom) -> None:
    # given
    corp = make_wecom_corp()
    listing = wecom.get(BASE + LIST).mock(
        side_effect=[
            json_response(err(45009, "api freq out of limit")),
            json_response(ok(external_userid=[])),
        ]
    )
    follow = wecom.get(BASE + "externalcontact/get_follow_user_list").mock(
        return_value=json_response(ok(follow_user=[]))
    )
    client = client_with(corp, Sleeps())
    with clock.frozen_at(T0):
        # when: WeCom says the minute quota is spent
        with pytest.raises(errors.Throttled) as first:
            client.list_customers("zhangsan")
        # then: the window is 60 s, shared through the database, and other APIs are not blocked
        assert first.value.retry_at == T0 + timedelta(seconds=60)
        assert ApiLimit.objects.for_corp(corp).get(api=LIST).penalty_until == T0 + timedelta(seconds=60)
        client.get_follow_user_list()
        assert follow.call_count == 1
        # when: 30 s later the API is still held back, without asking WeCom
        clock.advance(timedelta(seconds=30))
        with pytest.raises(errors.RateLimited) as held:
            client.list_customers("zhangsan")
        assert held.value.retry_at == T0 + timedelta(seconds=60)
        assert listing.call_count == 1
        # when: the window has closed
        clock.advance(timedelta(seconds=31))
        assert client.list_customers("zhangsan") == []
    assert listing.call_count == 2


def test_45009_is_waited_out_when_the_caller_may_wait_that_long(wecom) -> None:
    # given: a sync call may wait 90 s; the window is 60 s
    corp = make_wecom_corp()
    route = wecom.get(BASE + LIST).mock(
        side_effect=[json_response(err(45009)), json_response(ok(external_userid=["wm1"]))]
    )
    sleeps = Sleeps()
    # when: the gateway's pauses move the (frozen) clock, as real sleeping would
    with clock.frozen_at(T0):

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            clock.advance(timedelta(seconds=seconds))

        gateway = Gateway(corp, priority=Priority.SYNC, max_wait=1000, sleep=sleep)
        result = WeComClient(gateway).list_customers("zhangsan")
        # then
        assert result == ["wm1"]
        assert clock.now() >= T0 + timedelta(seconds=60)
    assert route.call_count == 2


def test_45009_after_the_hour_quota_is_spent_blocks_for_an_hour(wecom, settings) -> None:
    # given: an API allowed 20 calls an hour, 19 of them used
    settings.SIYU = {**settings.SIYU, "WECOM_API_LIMITS": {LIST: {"per_minute": 100, "per_hour": 20}}}
    corp = make_wecom_corp()
    route = wecom.get(BASE + LIST).mock(
        side_effect=[json_response(ok(external_userid=[]))] * 18 + [json_response(err(45009))]
    )
    client = client_with(corp, Sleeps())
    with clock.frozen_at(T0):
        for _ in range(18):
            client.list_customers("zhangsan")
        # when
        with pytest.raises(errors.Throttled) as throttled:
            client.list_customers("zhangsan")
    # then
    assert throttled.value.retry_at == T0 + timedelta(hours=1)
    assert route.call_count == 19


def test_45033_lowers_the_api_concurrency_and_retries(wecom, settings) -> None:
    # given: 4 concurrent calls allowed
    settings.SIYU = {**settings.SIYU, "WECOM_API_CONCURRENCY": 4}
    corp = make_wecom_corp()
    route = wecom.get(BASE + LIST).mock(
        side_effect=[
            json_response(err(45033, "api concurrent out of limit")),
            json_response(ok(external_userid=[])),
        ]
    )
    sleeps = Sleeps()
    # when
    with clock.frozen_at(T0):
        client_with(corp, sleeps).list_customers("zhangsan")
    # then: the cap is halved from what was running (1) to the minimum, 1, and the call went through on retry
    limit = ApiLimit.objects.for_corp(corp).get(api=LIST)
    assert limit.concurrency == 1 and limit.concurrency_changed_at == T0
    assert route.call_count == 2 and len(sleeps) == 1


def test_a_write_that_may_have_reached_wecom_is_not_sent_twice(wecom) -> None:
    # given: the answer to a mass message times out after the request was sent
    route = wecom.post(BASE + "externalcontact/add_msg_template").mock(
        side_effect=httpx.ReadTimeout("timed out")
    )
    request = s.MsgTemplateRequest(
        external_userid=["wm1"], sender="zhangsan", text=s.Text(content="新品上市")
    )
    # when
    with pytest.raises(errors.WeComUnavailable) as failure:
        client_with(make_wecom_corp(), Sleeps()).add_msg_template(request)
    # then
    assert failure.value.sent is True
    assert route.call_count == 1


def test_a_write_that_surely_did_not_reach_wecom_is_retried(wecom) -> None:
    # given: the connection is refused once
    route = wecom.post(BASE + "externalcontact/add_msg_template").mock(
        side_effect=[httpx.ConnectError("refused"), json_response(ok(msgid="msg1", fail_list=[]))]
    )
    request = s.MsgTemplateRequest(
        external_userid=["wm1"], sender="zhangsan", text=s.Text(content="新品上市")
    )
    # when
    created = client_with(make_wecom_corp(), Sleeps()).add_msg_template(request)
    # then
    assert created.msgid == "msg1"
    assert route.call_count == 2


def test_a_read_that_timed_out_is_retried(wecom) -> None:
    # given
    route = wecom.get(BASE + LIST).mock(
        side_effect=[httpx.ReadTimeout("timed out"), json_response(ok(external_userid=["wm1"]))]
    )
    # when
    result = client_with(make_wecom_corp(), Sleeps()).list_customers("zhangsan")
    # then
    assert result == ["wm1"]
    assert route.call_count == 2


def test_a_welcome_message_being_distributed_is_retried(wecom) -> None:
    # given: another app got the same welcome code first for a moment (41096)
    route = wecom.post(BASE + "externalcontact/send_welcome_msg").mock(
        side_effect=[json_response(err(41096, "welcome msg is being distributed")), json_response(ok())]
    )
    # when
    client_with(make_wecom_corp(), Sleeps()).send_welcome_msg(
        s.WelcomeMessageRequest(welcome_code="CODE", text=s.Text(content="欢迎"))
    )
    # then
    assert route.call_count == 2


def test_an_expired_welcome_code_is_not_retried(wecom) -> None:
    # given
    route = wecom.post(BASE + "externalcontact/send_welcome_msg").mock(
        return_value=json_response(err(41050, "invalid welcome code"))
    )
    # when / then
    with pytest.raises(errors.WelcomeCodeRejected):
        client_with(make_wecom_corp(), Sleeps()).send_welcome_msg(s.WelcomeMessageRequest(welcome_code="OLD"))
    assert route.call_count == 1
