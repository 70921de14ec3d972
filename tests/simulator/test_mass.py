"""Mass sending: a task, the member's (simulated) confirmation, per-recipient statuses and receive quotas."""

from __future__ import annotations

from datetime import datetime

import pytest

from siyu.simulator.api.mass import quota_window, within_quota
from siyu.simulator.app import Simulator
from siyu.simulator.state import CHINA
from tests.simulator.conftest import WeCom

TEXT = {"text": {"content": "双十一大促，全场五折"}}


def member_with_customers(sim: Simulator, count: int = 3) -> str:
    return next(u for u in sim.state.follow_users() if len(sim.state.staff[u].follow_list) >= count)


def send(wecom: WeCom, sender: str, **extra: object) -> str:
    return wecom.ok("POST", "externalcontact/add_msg_template", {"sender": sender, **TEXT, **extra})["msgid"]


def results(wecom: WeCom, msgid: str, userid: str) -> dict[str, int]:
    answer = wecom.ok("POST", "externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": userid})
    return {item["external_userid"]: item["status"] for item in answer["send_list"]}


def at_noon(sim: Simulator, year: int, month: int, day: int) -> None:
    """Hold the simulated clock at Beijing noon of a given day."""
    sim.clock.freeze()
    target = datetime(year, month, day, 12, tzinfo=CHINA).timestamp()
    sim.clock.advance(target - sim.clock.time())


def test_a_task_waits_for_the_member_then_reports_statuses(sim: Simulator, wecom: WeCom) -> None:
    # given
    sender = member_with_customers(sim)
    customers = [f.external_userid for f in sim.state.staff[sender].follow_list]
    # when
    msgid = send(wecom, sender)
    before = wecom.ok("POST", "externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"]
    unsent = results(wecom, msgid, sender)
    sim.clock.advance(sim.config.msg_confirm_delay + 1)
    sim.tick()
    after = wecom.ok("POST", "externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"]
    sent = results(wecom, msgid, sender)
    # then
    assert before == [{"userid": sender, "status": 0}]
    assert set(unsent.values()) == {0}
    assert after[0]["status"] == 2 and after[0]["send_time"] > 0
    assert set(sent) == set(customers) and set(sent.values()) == {1}


def test_fail_list_not_a_friend_and_latest_relation(sim: Simulator, wecom: WeCom) -> None:
    # given
    sender = member_with_customers(sim)
    mine = sim.state.staff[sender].follow_list[0].external_userid
    leaving = sim.state.staff[sender].follow_list[1].external_userid
    stranger = next(c.external_userid for c in sim.state.customers.values() if sender not in c.follows)
    # when
    answer = wecom.ok(
        "POST",
        "externalcontact/add_msg_template",
        {"sender": sender, "external_userid": [mine, leaving, stranger, "wmNOSUCH"], **TEXT},
    )
    sim.actions.customer_deletes_staff(external_userid=leaving, userid=sender)
    sim.actions.confirm_msg(msgid=answer["msgid"])
    # then
    assert sorted(answer["fail_list"]) == sorted([stranger, "wmNOSUCH"])
    assert results(wecom, answer["msgid"], sender) == {mine: 1, leaving: 2}


def test_without_sender_each_customer_goes_to_its_latest_member(sim: Simulator, wecom: WeCom) -> None:
    # given
    customer = next(c for c in sim.state.customers.values() if len(c.follows) >= 2)
    latest = max(customer.follows.values(), key=lambda f: f.createtime).userid
    # when
    msgid = wecom.ok(
        "POST", "externalcontact/add_msg_template", {"external_userid": [customer.external_userid], **TEXT}
    )["msgid"]
    tasks = wecom.ok("POST", "externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"]
    # then
    assert [t["userid"] for t in tasks] == [latest]


def test_tag_filter_is_or_within_a_group_and_across_groups(sim: Simulator, wecom: WeCom) -> None:
    # given
    sender = member_with_customers(sim, 4)
    follows = sim.state.staff[sender].follow_list
    tag_a, tag_b, tag_c = (t.id for t in list(sim.state.tags.values())[:3])
    for follow in follows:
        follow.tag_ids = []
    follows[0].tag_ids = [tag_a, tag_c]
    follows[1].tag_ids = [tag_b, tag_c]
    follows[2].tag_ids = [tag_a]
    # when
    msgid = send(
        wecom, sender, tag_filter={"group_list": [{"tag_list": [tag_a, tag_b]}, {"tag_list": [tag_c]}]}
    )
    # then
    assert set(results(wecom, msgid, sender)) == {follows[0].external_userid, follows[1].external_userid}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"chat_type": "single", **TEXT}, 40058),  # neither external_userid nor sender
        ({"chat_type": "group", **TEXT}, 40058),  # group needs a sender
        ({"chat_type": "other", "sender": "x", **TEXT}, 40058),
        ({"external_userid": ["wm"] * 10001, **TEXT}, 40058),
        ({"sender": "nobody", **TEXT}, 40003),
        ({"sender": "SENDER", "attachments": [{"msgtype": "image", "image": {"media_id": "m"}}] * 10}, 41064),
        ({"sender": "SENDER"}, 40058),  # no content
        ({"sender": "SENDER", "text": {"content": "a" * 4001}}, 40058),
    ],
)
def test_add_msg_template_errors(sim: Simulator, wecom: WeCom, body: dict, code: int) -> None:
    # given
    if body.get("sender") == "SENDER":
        body = {**body, "sender": member_with_customers(sim)}
    # when
    answer = wecom.post("externalcontact/add_msg_template", body)
    # then
    assert answer["errcode"] == code
    assert not sim.state.msg_templates


def test_nobody_to_send_to_is_41048(sim: Simulator, wecom: WeCom) -> None:
    # given
    sender = member_with_customers(sim)
    stranger = next(c.external_userid for c in sim.state.customers.values() if sender not in c.follows)
    # when
    answer = wecom.post(
        "externalcontact/add_msg_template", {"sender": sender, "external_userid": [stranger], **TEXT}
    )
    # then
    assert answer["errcode"] == 41048


def test_group_sends_go_to_the_senders_groups(sim: Simulator, wecom: WeCom) -> None:
    # given
    owner = next(iter(sim.state.groups.values())).owner
    owned = {c.chat_id for c in sim.state.groups.values() if c.owner == owner}
    # when
    msgid = wecom.ok(
        "POST", "externalcontact/add_msg_template", {"chat_type": "group", "sender": owner, **TEXT}
    )["msgid"]
    sim.actions.confirm_msg(msgid=msgid)
    answer = wecom.ok("POST", "externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": owner})
    # then
    assert {i["chat_id"] for i in answer["send_list"]} == owned
    assert {i["status"] for i in answer["send_list"]} == {1}


@pytest.mark.parametrize(
    ("policy", "sends", "days_apart", "expected"),
    [
        ("1_per_day", 2, 0, [1, 3]),
        ("1_per_day", 2, 1, [1, 1]),
        ("7_per_week", 8, 0, [1] * 7 + [3]),
        ("4_per_month", 5, 0, [1, 1, 1, 1, 3]),
        ("days_in_month", 31, 0, [1] * 30 + [3]),  # November has 30 days
    ],
)
def test_receive_quota_policies(
    sim: Simulator, wecom: WeCom, policy: str, sends: int, days_apart: int, expected: list[int]
) -> None:
    # given: a Monday in a 30-day month, so the week and month windows hold every send
    sim.config.quota_policy = policy
    at_noon(sim, 2026, 11, 2)
    sender = member_with_customers(sim)
    customer = sim.state.staff[sender].follow_list[0].external_userid
    statuses = []
    # when
    for _ in range(sends):
        msgid = send(wecom, sender, external_userid=[customer])
        sim.actions.confirm_msg(msgid=msgid)
        statuses.append(results(wecom, msgid, sender)[customer])
        sim.clock.advance(days_apart * 86400 + 60)
    # then
    assert statuses == expected


def test_quota_windows_follow_beijing_time() -> None:
    # given: 2026-11-04 23:30 and 2026-11-05 00:30 Beijing time
    late = int(datetime(2026, 11, 4, 23, 30, tzinfo=CHINA).timestamp())
    early_next = int(datetime(2026, 11, 5, 0, 30, tzinfo=CHINA).timestamp())
    # then
    assert within_quota("1_per_day", [late], early_next)
    assert not within_quota("1_per_day", [late], late + 60)
    assert quota_window("7_per_week", early_next)[0] == int(datetime(2026, 11, 2, tzinfo=CHINA).timestamp())
    assert quota_window("days_in_month", late) == (int(datetime(2026, 11, 1, tzinfo=CHINA).timestamp()), 30)


def test_cancel_and_remind(sim: Simulator, wecom: WeCom) -> None:
    # given
    sender = member_with_customers(sim)
    msgid = send(wecom, sender)
    # when
    reminds = [
        wecom.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})["errcode"] for _ in range(4)
    ]
    sim.clock.advance(86401)
    after_a_day = wecom.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})["errcode"]
    wecom.ok("POST", "externalcontact/cancel_groupmsg_send", {"msgid": msgid})
    cancelled_remind = wecom.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})["errcode"]
    sim.tick()
    # then
    assert reminds == [0, 0, 0, 41094]
    assert after_a_day == 0
    assert cancelled_remind == 41093
    assert set(results(wecom, msgid, sender).values()) == {0}  # never sent
    assert wecom.post("externalcontact/cancel_groupmsg_send", {"msgid": "nope"})["errcode"] == 41047
    assert wecom.post("externalcontact/cancel_groupmsg_send", {})["errcode"] == 41046


def test_list_v2_pages_and_filters(sim: Simulator, wecom: WeCom) -> None:
    # given
    sender = member_with_customers(sim)
    made = [send(wecom, sender) for _ in range(3)]
    now = sim.clock.now()
    window = {"chat_type": "single", "start_time": now - 60, "end_time": now + 60}
    # when
    first = wecom.ok("POST", "externalcontact/get_groupmsg_list_v2", {**window, "limit": 2})
    second = wecom.ok(
        "POST", "externalcontact/get_groupmsg_list_v2", {**window, "cursor": first["next_cursor"]}
    )
    personal = wecom.ok("POST", "externalcontact/get_groupmsg_list_v2", {**window, "filter_type": 1})
    too_wide = wecom.post(
        "externalcontact/get_groupmsg_list_v2", {"start_time": now - 31 * 86400, "end_time": now}
    )
    # then
    listed = [m["msgid"] for m in first["group_msg_list"] + second["group_msg_list"]]
    assert listed == made and second["next_cursor"] == ""
    item = first["group_msg_list"][0]
    assert item["create_type"] == 0 and isinstance(item["create_time"], str) and item["text"] == TEXT["text"]
    assert personal["group_msg_list"] == []
    assert too_wide["errcode"] == 40058


def test_results_right_after_creation_can_be_41063(sim: Simulator, wecom: WeCom) -> None:
    # given
    sim.config.msg_dispatch_delay = 5
    sim.clock.freeze()
    sender = member_with_customers(sim)
    msgid = send(wecom, sender)
    # when
    early = wecom.post("externalcontact/get_groupmsg_task", {"msgid": msgid})
    sim.clock.advance(6)
    later = wecom.post("externalcontact/get_groupmsg_task", {"msgid": msgid})
    # then
    assert early["errcode"] == 41063
    assert later["errcode"] == 0


def test_staff_confirm_spread_out_and_the_unwilling_only_once_reminded(sim: Simulator, wecom: WeCom) -> None:
    # given staff who confirm 10–70 s after a send, and half of whom wait for a reminder
    delay = sim.config.msg_confirm_delay
    sim.config.update({"msg_confirm_delay": 10.0, "msg_confirm_spread": 60.0, "msg_confirm_share": 0.5})
    try:
        senders = [u for u in sim.state.follow_users() if sim.state.staff[u].follow_list]
        msgids = {u: send(wecom, u) for u in senders}
        tasks = {u: sim.state.msg_templates[m].tasks[u] for u, m in msgids.items()}
        start = sim.clock.time()
        willing = {u for u, t in tasks.items() if t.confirm_at <= start + 70}
        # then the willing confirm within the spread, at different moments
        assert willing and len(willing) < len(senders)
        assert len({round(tasks[u].confirm_at) for u in willing}) > 1
        sim.clock.advance(71)
        sim.tick()
        assert {u for u, t in tasks.items() if t.status == 2} == willing
        # when the others are reminded, they confirm after the delay
        for userid in set(senders) - willing:
            wecom.ok("POST", "externalcontact/remind_groupmsg_send", {"msgid": msgids[userid]})
        sim.clock.advance(11)
        sim.tick()
        assert all(t.status == 2 for t in tasks.values())
    finally:
        sim.config.update({"msg_confirm_delay": delay, "msg_confirm_spread": 0.0, "msg_confirm_share": 1.0})
