"""Frequency limits (45009), concurrency limits (45033), latency and injected faults."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from siyu.simulator.app import Simulator
from siyu.simulator.limits import parse_fault_spec
from tests.simulator.conftest import WeCom

API = "externalcontact/get_follow_user_list"


def test_going_over_the_minute_budget_blocks_the_api_for_a_minute(sim: Simulator, wecom: WeCom) -> None:
    # given
    sim.clock.freeze()
    sim.limits.set_limit(API, per_minute=3, per_hour=None)
    wecom.token  # noqa: B018 - fetch the token first; gettoken has its own budget
    # when
    codes = [wecom.get(API)["errcode"] for _ in range(5)]
    other = wecom.get("externalcontact/list", userid=sim.state.follow_users()[0])["errcode"]
    sim.clock.advance(59)
    still_blocked = wecom.get(API)["errcode"]
    sim.clock.advance(2)
    released = wecom.get(API)["errcode"]
    # then
    assert codes == [0, 0, 0, 45009, 45009]
    assert other == 0  # limits are per API
    assert still_blocked == 45009
    assert released == 0
    assert sim.limits.rejected[API] == 3


def test_the_hour_budget_blocks_for_an_hour(sim: Simulator, wecom: WeCom) -> None:
    # given
    sim.clock.freeze()
    sim.limits.set_limit(API, per_minute=None, per_hour=2)
    wecom.token  # noqa: B018
    # when
    codes = [wecom.get(API)["errcode"] for _ in range(3)]
    sim.clock.advance(1800)
    blocked = wecom.get(API)["errcode"]
    sim.clock.advance(1801)
    released = wecom.get(API)["errcode"]
    # then
    assert codes == [0, 0, 45009]
    assert blocked == 45009
    assert released == 0


def test_the_default_budget_comes_from_the_config(sim: Simulator, wecom: WeCom) -> None:
    # given
    sim.clock.freeze()
    wecom.token  # noqa: B018
    sim.config.rate_per_minute = 2
    # when
    codes = [wecom.get(API)["errcode"] for _ in range(3)]
    # then
    assert codes == [0, 0, 45009]


def test_errcode_faults_for_a_number_of_calls(sim: Simulator, wecom: WeCom) -> None:
    # given
    sim.limits.add_fault(api=API, kind="errcode", errcode=-1, remaining=2)
    # when
    codes = [wecom.get(API)["errcode"] for _ in range(3)]
    # then
    assert codes == [-1, -1, 0]
    assert sim.limits.faults == []


def test_http_faults_answer_5xx(sim: Simulator, wecom: WeCom) -> None:
    # given
    sim.limits.add_fault(api="externalcontact/*", kind="http", status=502, remaining=1)
    # when
    first = wecom.http.get(API, params={"access_token": wecom.token})
    second = wecom.http.get(API, params={"access_token": wecom.token})
    # then
    assert first.status_code == 502 and first.headers["Content-Type"] == "text/html"
    assert second.status_code == 200


def test_timeout_and_disconnect_faults(sim: Simulator, wecom: WeCom) -> None:
    # given
    sim.limits.add_fault(api=API, kind="timeout", seconds=5, remaining=1)
    sim.limits.add_fault(api=API, kind="disconnect", remaining=1)
    token = wecom.token
    # when / then
    with httpx.Client(base_url=sim.api_base, timeout=0.3, trust_env=False) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(API, params={"access_token": token})
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(API, params={"access_token": token})
        assert client.get(API, params={"access_token": token}).json()["errcode"] == 0


def test_latency(sim: Simulator, wecom: WeCom) -> None:
    # given
    wecom.token  # noqa: B018
    sim.config.latency_ms = 150
    # when
    started = time.monotonic()
    answer = wecom.get(API)
    elapsed = time.monotonic() - started
    # then
    assert answer["errcode"] == 0
    assert elapsed >= 0.15


def test_concurrency_limit_answers_45033(sim: Simulator, wecom: WeCom) -> None:
    # given: every call takes a second, and only two may run at once
    sim.config.concurrency_limit = 2
    sim.limits.add_fault(api=API, kind="latency", seconds=1.0)
    token = wecom.token
    codes: list[int] = []

    def call() -> None:
        codes.append(wecom.http.get(API, params={"access_token": token}).json()["errcode"])

    # when
    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    assert sorted(codes) == [0, 0, 45033, 45033]


def test_probability_faults_hit_some_calls(sim: Simulator, wecom: WeCom) -> None:
    # given
    fault = sim.limits.add_fault(api=API, kind="errcode", errcode=-1, probability=0.5)
    # when
    codes = [wecom.get(API)["errcode"] for _ in range(40)]
    # then
    assert 0 < codes.count(-1) < 40
    assert fault.hits == codes.count(-1)


def test_fault_specs_from_the_command_line() -> None:
    # when
    values = parse_fault_spec("externalcontact/get:errcode:errcode=-1,probability=0.1")
    # then
    assert values == {"api": "externalcontact/get", "kind": "errcode", "errcode": "-1", "probability": "0.1"}
    with pytest.raises(ValueError):
        parse_fault_spec("nonsense")
