"""Hand-over: in-service and resigned transfers complete after the delay with the documented events."""

from __future__ import annotations

from siyu.simulator.app import Simulator
from siyu.simulator.testing import CallbackReceiver, event_fields, open_callback, sim_crypto
from tests.simulator.conftest import WeCom


def pair(sim: Simulator) -> tuple[str, str]:
    """A member with customers and another member to take them over."""
    users = sorted(sim.state.follow_users(), key=lambda u: -len(sim.state.staff[u].follow_list))
    return users[0], users[1]


def exclusive_customers(sim: Simulator, handover: str, takeover: str, count: int) -> list[str]:
    return [
        f.external_userid
        for f in sim.state.staff[handover].follow_list
        if takeover not in sim.state.customers[f.external_userid].follows
    ][:count]


def transfer(wecom: WeCom, handover: str, takeover: str, customers: list[str]) -> dict[str, int]:
    answer = wecom.ok(
        "POST",
        "externalcontact/transfer_customer",
        {"handover_userid": handover, "takeover_userid": takeover, "external_userid": customers},
    )
    return {c["external_userid"]: c["errcode"] for c in answer["customer"]}


def result(wecom: WeCom, handover: str, takeover: str, path: str = "externalcontact/transfer_result") -> dict:
    answer = wecom.ok("POST", path, {"handover_userid": handover, "takeover_userid": takeover})
    return {c["external_userid"]: c for c in answer["customer"]}


def test_a_transfer_waits_then_moves_the_customer_with_events(
    sim: Simulator, wecom: WeCom, hooked: CallbackReceiver
) -> None:
    # given
    handover, takeover = pair(sim)
    customer = exclusive_customers(sim, handover, takeover, 1)[0]
    old = sim.state.customers[customer].follows[handover]
    old.remark = "老客户"
    # when
    started = transfer(wecom, handover, takeover, [customer])
    waiting = result(wecom, handover, takeover)[customer]
    sim.clock.advance(sim.config.transfer_delay + 1)
    sim.tick()
    done = result(wecom, handover, takeover)[customer]
    # then
    assert started == {customer: 0}
    assert (
        waiting["status"] == 2 and waiting["takeover_time"] > sim.clock.now() - 2 - sim.config.transfer_delay
    )
    assert done["status"] == 1
    follows = sim.state.customers[customer].follows
    assert handover not in follows and follows[takeover].remark == "老客户"
    messages = [event_fields(open_callback(p, sim_crypto(sim))) for p in hooked.wait_for(2)]
    by_type = {m["ChangeType"]: m for m in messages}
    assert by_type["del_external_contact"]["UserID"] == handover
    assert by_type["del_external_contact"]["Source"] == "DELETE_BY_TRANSFER"
    assert by_type["add_external_contact"]["UserID"] == takeover
    assert by_type["add_external_contact"]["ExternalUserID"] == customer


def test_per_customer_errors(sim: Simulator, wecom: WeCom) -> None:
    # given
    handover, takeover = pair(sim)
    first, second = exclusive_customers(sim, handover, takeover, 2)
    stranger = next(c.external_userid for c in sim.state.customers.values() if handover not in c.follows)
    transfer(wecom, handover, takeover, [first])
    # when
    codes = transfer(wecom, handover, takeover, [first, second, stranger, "wmNOSUCH"])
    # then
    assert codes == {first: 40129, second: 0, stranger: 40131, "wmNOSUCH": 40096}


def test_call_errors(sim: Simulator, wecom: WeCom) -> None:
    # given
    handover, takeover = pair(sim)
    body = {"handover_userid": handover, "takeover_userid": takeover}
    # when / then
    assert (
        wecom.post("externalcontact/transfer_customer", {**body, "external_userid": []})["errcode"] == 41035
    )
    assert (
        wecom.post("externalcontact/transfer_customer", {**body, "external_userid": ["wm"] * 101})["errcode"]
        == 40058
    )
    same = {"handover_userid": handover, "takeover_userid": handover, "external_userid": ["x"]}
    assert wecom.post("externalcontact/transfer_customer", same)["errcode"] == 40130
    long_message = {**body, "external_userid": ["x"], "transfer_success_msg": "字" * 201}
    assert wecom.post("externalcontact/transfer_customer", long_message)["errcode"] == 40058


def test_a_customer_moves_at_most_twice_in_90_days(sim: Simulator, wecom: WeCom) -> None:
    # given
    a, b = pair(sim)
    customer = exclusive_customers(sim, a, b, 1)[0]
    # when: a → b, b → a, then a third time
    transfer(wecom, a, b, [customer])
    sim.actions.complete_transfers()
    transfer(wecom, b, a, [customer])
    sim.actions.complete_transfers()
    third = transfer(wecom, a, b, [customer])
    sim.clock.advance(91 * 86400)
    later = transfer(wecom, a, b, [customer])
    # then
    assert third == {customer: 40128}
    assert later == {customer: 0}


def test_refusal_and_the_takeovers_cap_fail_with_transfer_fail(
    sim: Simulator, wecom: WeCom, hooked: CallbackReceiver
) -> None:
    # given
    handover, takeover = pair(sim)
    refused, capped = exclusive_customers(sim, handover, takeover, 2)
    sim.config.transfer_refuse_rate = 1.0
    transfer(wecom, handover, takeover, [refused])
    sim.actions.complete_transfers()
    sim.config.transfer_refuse_rate = 0.0
    sim.config.takeover_customer_limit = 0
    transfer(wecom, handover, takeover, [capped])
    # when
    sim.actions.complete_transfers()
    # then
    statuses = {k: v["status"] for k, v in result(wecom, handover, takeover).items()}
    assert statuses == {refused: 3, capped: 4}
    messages = [event_fields(open_callback(p, sim_crypto(sim))) for p in hooked.wait_for(2)]
    assert sorted(m["FailReason"] for m in messages) == ["customer_limit_exceed", "customer_refused"]
    assert {m["UserID"] for m in messages} == {takeover}  # UserID is the takeover member
    assert handover in sim.state.customers[refused].follows


def test_resigned_members_customers_are_listed_and_transferred(
    sim: Simulator, wecom: WeCom, hooked: CallbackReceiver
) -> None:
    # given
    handover, takeover = pair(sim)
    customers = exclusive_customers(sim, handover, takeover, 3)
    not_resigned = wecom.post(
        "externalcontact/resigned/transfer_customer",
        {"handover_userid": handover, "takeover_userid": takeover, "external_userid": customers},
    )
    sim.actions.staff_resign(userid=handover)
    # when
    unassigned = wecom.ok("POST", "externalcontact/get_unassigned_list", {"page_size": 1000})
    started = wecom.ok(
        "POST",
        "externalcontact/resigned/transfer_customer",
        {"handover_userid": handover, "takeover_userid": takeover, "external_userid": customers},
    )
    sim.actions.complete_transfers()
    done = result(wecom, handover, takeover, "externalcontact/resigned/transfer_result")
    after = wecom.ok("POST", "externalcontact/get_unassigned_list", {})
    # then
    assert not_resigned["errcode"] == 40097
    listed = {i["external_userid"] for i in unassigned["info"] if i["handover_userid"] == handover}
    assert set(customers) <= listed
    assert unassigned["is_last"] is True and unassigned["next_cursor"] == ""
    assert [c["errcode"] for c in started["customer"]] == [0, 0, 0]
    assert {v["status"] for v in done.values()} == {1}
    assert not set(customers) & {i["external_userid"] for i in after["info"]}
    assert all(takeover in sim.state.customers[c].follows for c in customers)
    kinds = [event_fields(open_callback(p, sim_crypto(sim)))["ChangeType"] for p in hooked.wait_for(4)]
    assert kinds.count("delete_user") == 1 and kinds.count("add_external_contact") == 3
    assert "del_external_contact" not in kinds  # the resigned member is gone: no delete event


def test_unassigned_list_paging(sim: Simulator, wecom: WeCom) -> None:
    # given
    handover, _ = pair(sim)
    count = len(sim.state.staff[handover].follow_list)
    sim.actions.staff_resign(userid=handover)
    # when
    first = wecom.ok("POST", "externalcontact/get_unassigned_list", {"page_size": 2, "cursor": ""})
    second = wecom.ok(
        "POST", "externalcontact/get_unassigned_list", {"page_size": 2, "cursor": first["next_cursor"]}
    )
    by_page = wecom.ok("POST", "externalcontact/get_unassigned_list", {"page_size": 2, "page_id": 1})
    # then
    assert count >= 4
    assert first["is_last"] is False and len(first["info"]) == 2
    assert by_page["info"] == second["info"]
    assert "next_cursor" not in by_page


def test_group_transfers(sim: Simulator, wecom: WeCom) -> None:
    # given
    chat = next(iter(sim.state.groups.values()))
    owner = chat.owner
    heir = next(u for u in sim.state.follow_users() if u != owner)
    # when
    not_resigned = wecom.ok(
        "POST", "externalcontact/groupchat/transfer", {"chat_id_list": [chat.chat_id], "new_owner": heir}
    )
    sim.actions.staff_resign(userid=owner)
    listed = wecom.ok("POST", "externalcontact/groupchat/list", {"status_filter": 1, "limit": 100})
    moved = wecom.ok(
        "POST",
        "externalcontact/groupchat/transfer",
        {"chat_id_list": [chat.chat_id, "wrNOSUCH"], "new_owner": heir},
    )
    third = next(u for u in sim.state.follow_users() if u not in (owner, heir))
    same = wecom.ok(
        "POST",
        "externalcontact/groupchat/onjob_transfer",
        {"chat_id_list": [chat.chat_id], "new_owner": heir},
    )
    onjob = wecom.ok(
        "POST",
        "externalcontact/groupchat/onjob_transfer",
        {"chat_id_list": [chat.chat_id], "new_owner": third},
    )
    to_resigned = wecom.post(
        "externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat.chat_id], "new_owner": owner}
    )
    # then
    assert not_resigned["failed_chat_list"][0]["errcode"] == 90500
    assert chat.chat_id in [c["chat_id"] for c in listed["group_chat_list"]]
    assert [f["chat_id"] for f in moved["failed_chat_list"]] == ["wrNOSUCH"]
    assert chat.status == 3
    assert same["failed_chat_list"][0]["errcode"] == 40130
    assert onjob["failed_chat_list"] == [] and chat.owner == third and third in chat.members
    assert to_resigned["errcode"] == 40003
