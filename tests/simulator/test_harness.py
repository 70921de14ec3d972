"""The corp generator, the in-process harness, the admin interface, concurrency, and the traffic driver."""

from __future__ import annotations

import re
import socket
import threading

import httpx
import pytest

from siyu.simulator.app import Simulator
from siyu.simulator.testing import CallbackReceiver, running_simulator
from tests.simulator.conftest import WeCom

CHINESE = re.compile(r"[\u4e00-\u9fff]")


def fingerprint(sim: Simulator) -> tuple:
    state = sim.state
    return (
        tuple(state.staff),
        tuple(state.customer_ids),
        tuple(
            (f.userid, f.external_userid, f.createtime, tuple(f.tag_ids))
            for s in state.staff.values()
            for f in s.follow_list
        ),
        tuple(state.tags),
        tuple(state.groups),
        tuple(state.contact_ways),
    )


def test_the_same_seed_builds_the_same_corp() -> None:
    # when
    a = Simulator(staff=8, customers=200, seed=7)
    b = Simulator(staff=8, customers=200, seed=7)
    c = Simulator(staff=8, customers=200, seed=8)
    # then
    assert fingerprint(a)[:4] == fingerprint(b)[:4]
    assert fingerprint(a)[1] != fingerprint(c)[1]


def test_the_generated_corp_looks_real() -> None:
    # given
    sim = Simulator(staff=20, customers=500, seed=3)
    state = sim.state
    # then
    assert len(state.customers) == 500 and len(state.staff) == 20
    assert all(re.fullmatch(r"[a-z]+\d*", u) for u in state.staff)  # pinyin userids
    assert all(CHINESE.search(s.name) for s in state.staff.values())
    assert sum(1 for c in state.customers.values() if CHINESE.search(c.name)) > 400
    assert all(
        c.external_userid[:2] in ("wm", "wo") and len(c.external_userid) == 32
        for c in state.customers.values()
    )
    relations = [f for s in state.staff.values() for f in s.follow_list]
    assert 500 <= len(relations) <= 1500
    assert {f.add_way for f in relations} >= {0, 1, 2, 3}
    assert (
        any(f.state for f in relations)
        and any(f.tag_ids for f in relations)
        and any(f.remark for f in relations)
    )
    assert all(f.createtime <= sim.clock.now() for f in relations)
    channel_states = {w.state for w in state.contact_ways.values()}
    assert {f.state for f in relations if f.state} <= channel_states
    assert all(len(g.members) >= 2 for g in state.groups.values())


def test_the_harness_frees_its_port() -> None:
    # given
    with running_simulator() as sim:
        port = sim.config.port
        assert httpx.get(f"{sim.base_url}/_sim/state", trust_env=False).status_code == 200
    # then
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_concurrent_calls_are_all_answered(sim: Simulator, wecom: WeCom) -> None:
    # given
    token = wecom.token
    userids = sim.state.follow_users()
    failures: list[object] = []

    def worker(index: int) -> None:
        with httpx.Client(base_url=sim.api_base, timeout=10, trust_env=False) as client:
            for _ in range(25):
                answer = client.post(
                    "externalcontact/batch/get_by_user",
                    params={"access_token": token},
                    json={"userid_list": [userids[index % len(userids)]], "limit": 100},
                ).json()
                if answer["errcode"] != 0:
                    failures.append(answer)
            sim.actions.add_customer(userid=userids[index % len(userids)])

    # when
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    assert failures == []
    assert sim.limits.calls["externalcontact/batch/get_by_user"] == 300
    assert sim.internal_errors == []


def test_the_admin_interface(sim: Simulator, http: httpx.Client) -> None:
    # given
    base = f"{sim.base_url}/_sim"
    config_id = next(iter(sim.state.contact_ways))
    # when
    scanned = http.post(f"{base}/actions/scan_contact_way", json={"config_id": config_id}).json()
    customer = http.get(f"{base}/customers/{scanned['external_userid']}").json()
    unknown_action = http.post(f"{base}/actions/no_such_thing", json={})
    bad_args = http.post(f"{base}/actions/scan_contact_way", json={"nonsense": 1})
    not_possible = http.post(
        f"{base}/actions/customer_deletes_staff", json={"external_userid": "x", "userid": "y"}
    )
    fault = http.post(f"{base}/faults", json={"api": "gettoken", "kind": "errcode", "errcode": -1}).json()
    faults = http.get(f"{base}/faults").json()
    http.delete(f"{base}/faults")
    clock = http.post(f"{base}/clock", json={"advance": 30}).json()
    config = http.post(f"{base}/config", json={"quota_policy": "1_per_day"}).json()
    bad_config = http.post(f"{base}/config", json={"quota_policy": "never"})
    state = http.get(f"{base}/state").json()
    codes = http.get(f"{base}/welcome_codes", params={"external_userid": scanned["external_userid"]}).json()
    # then
    assert customer["follows"][0]["state"] == sim.state.contact_ways[config_id].state
    assert (unknown_action.status_code, bad_args.status_code, not_possible.status_code) == (404, 400, 400)
    assert faults == [fault] and sim.limits.faults == []
    assert clock["now"] > 0 and config["quota_policy"] == "1_per_day" and bad_config.status_code == 400
    assert state["counts"]["customers"] == len(sim.state.customers)
    assert codes[0]["code"] == scanned["welcome_code"] and codes[0]["used"] is False


def test_admin_token_expiry_and_limits(sim: Simulator, wecom: WeCom, http: httpx.Client) -> None:
    # given
    base = f"{sim.base_url}/_sim"
    old = wecom.token
    # when
    http.post(f"{base}/token/expire", json={"mode": "expired"})
    expired = wecom.http.get("externalcontact/get_follow_user_list", params={"access_token": old}).json()
    http.post(f"{base}/limits", json={"api": "externalcontact/get_follow_user_list", "per_minute": 0})
    limited = wecom.get("externalcontact/get_follow_user_list")
    http.delete(f"{base}/limits")
    released = wecom.get("externalcontact/get_follow_user_list")
    # then
    assert expired["errcode"] == 42001
    assert limited["errcode"] == 45009
    assert released["errcode"] == 0


def test_admin_callbacks_log(sim: Simulator, hooked: CallbackReceiver, http: httpx.Client) -> None:
    # given
    sim.actions.scan_contact_way(state="web-home")
    # when
    waited = http.post(f"{sim.base_url}/_sim/callbacks/wait", json={"timeout": 5}).json()
    log = http.get(f"{sim.base_url}/_sim/callbacks").json()
    # then
    assert waited["idle"] is True
    assert log["deliveries"][0]["status"] == "delivered"
    assert "<ChangeType><![CDATA[add_external_contact]]></ChangeType>" in log["deliveries"][0]["xml"]


@pytest.mark.parametrize(
    "kind",
    [
        "add",
        "customer_deletes_staff",
        "staff_deletes_customer",
        "tag_in_client",
        "edit_remark",
        "group_join",
        "group_leave",
    ],
)
def test_every_traffic_activity_makes_an_event(sim: Simulator, hooked: CallbackReceiver, kind: str) -> None:
    # when
    done = sim.traffic.step(kind)
    # then
    assert done
    assert len(hooked.wait_for(1)) == 1


def test_the_traffic_driver_runs_at_its_rate(sim: Simulator, hooked: CallbackReceiver) -> None:
    # given
    customers = len(sim.state.customers)
    # when: 6,000 adds a minute is 100 a second
    sim.traffic.set_rate(6000)
    received = hooked.wait_for(40, timeout=10)
    sim.traffic.set_rate(0)
    sim.traffic.stop()
    # then
    assert len(received) >= 40
    assert sim.traffic.counts["add"] > 0
    assert len(sim.state.customers) > customers
