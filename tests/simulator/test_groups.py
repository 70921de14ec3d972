"""Customer groups: list (limits, owner filter, cursor), get, and client-side changes with their events."""

from __future__ import annotations

import httpx
import pytest

from siyu.simulator.actions import ActionError
from siyu.simulator.app import Simulator
from siyu.simulator.testing import (
    CallbackReceiver,
    event_fields,
    open_callback,
    running_simulator,
    sim_crypto,
)
from tests.simulator.conftest import WeCom


def test_list_pages_every_group_once(sim: Simulator, wecom: WeCom) -> None:
    # given
    for _ in range(5):
        sim.actions.group_create()
    # when
    seen: list[str] = []
    cursor = ""
    while True:
        page = wecom.ok("POST", "externalcontact/groupchat/list", {"limit": 3, "cursor": cursor})
        assert len(page["group_chat_list"]) <= 3
        seen += [c["chat_id"] for c in page["group_chat_list"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # then
    assert sorted(seen) == sorted(sim.state.groups)
    assert {"chat_id", "status"} == set(page["group_chat_list"][0]) if page["group_chat_list"] else True


def test_list_filters_by_owner(sim: Simulator, wecom: WeCom) -> None:
    # given
    owner = next(iter(sim.state.groups.values())).owner
    # when
    answer = wecom.ok(
        "POST", "externalcontact/groupchat/list", {"owner_filter": {"userid_list": [owner]}, "limit": 1000}
    )
    # then
    expected = {c.chat_id for c in sim.state.groups.values() if c.owner == owner}
    assert {c["chat_id"] for c in answer["group_chat_list"]} == expected


@pytest.mark.parametrize(
    "body",
    [{}, {"limit": 0}, {"limit": 1001}, {"limit": 10, "owner_filter": {"userid_list": ["u"] * 101}}],
)
def test_list_limits(wecom: WeCom, body: dict) -> None:
    # when
    answer = wecom.post("externalcontact/groupchat/list", body)
    # then
    assert answer["errcode"] == 40058


def test_a_corp_over_1000_members_needs_an_owner_filter(http: httpx.Client) -> None:
    with running_simulator(staff=1001, customers=5, groups=1) as big:
        client = WeCom(big, http)
        # when
        answer = client.post("externalcontact/groupchat/list", {"limit": 10})
        client.close()
    # then
    assert answer["errcode"] == 81017


def test_get_shows_members_with_names_on_request(sim: Simulator, wecom: WeCom) -> None:
    # given
    chat = max(sim.state.groups.values(), key=lambda c: len(c.members))
    # when
    plain = wecom.ok("POST", "externalcontact/groupchat/get", {"chat_id": chat.chat_id})["group_chat"]
    named = wecom.ok("POST", "externalcontact/groupchat/get", {"chat_id": chat.chat_id, "need_name": 1})[
        "group_chat"
    ]
    missing = wecom.post("externalcontact/groupchat/get", {"chat_id": "wrNOSUCH"})
    # then
    assert {
        "chat_id",
        "name",
        "owner",
        "create_time",
        "notice",
        "member_list",
        "admin_list",
        "member_version",
    } <= set(plain)
    assert len(plain["member_list"]) == len(chat.members)
    assert "name" not in plain["member_list"][0] and "name" in named["member_list"][0]
    customer = next(m for m in named["member_list"] if m["type"] == 2)
    assert {"userid", "type", "join_time", "join_scene", "group_nickname"} <= set(customer)
    assert missing["errcode"] == 40050


def test_joins_and_leaves_send_member_changes_with_versions(
    sim: Simulator, wecom: WeCom, hooked: CallbackReceiver
) -> None:
    # given
    chat = next(iter(sim.state.groups.values()))
    version_before = wecom.ok("POST", "externalcontact/groupchat/get", {"chat_id": chat.chat_id})[
        "group_chat"
    ]["member_version"]
    newcomers = [c for c in sim.state.customer_ids if c not in chat.members][:2]
    # when
    sim.actions.group_join(chat_id=chat.chat_id, external_userids=newcomers, join_scene=3)
    sim.actions.group_leave(chat_id=chat.chat_id, userids=[newcomers[0]], quit_scene=1)
    # then
    join, leave = (event_fields(open_callback(p, sim_crypto(sim))) for p in hooked.wait_for(2))
    if join["UpdateDetail"] != "add_member":
        join, leave = leave, join
    assert (join["ChangeType"], join["UpdateDetail"], join["JoinScene"]) == ("update", "add_member", "3")
    assert join["MemChangeList"] == newcomers and join["MemChangeCnt"] == "2"
    assert join["LastMemVer"] == version_before
    assert (leave["UpdateDetail"], leave["QuitScene"], leave["MemChangeList"]) == (
        "del_member",
        "1",
        newcomers[:1],
    )
    assert leave["LastMemVer"] == join["CurMemVer"]
    now = wecom.ok("POST", "externalcontact/groupchat/get", {"chat_id": chat.chat_id})["group_chat"]
    assert now["member_version"] == leave["CurMemVer"]
    joined = next(m for m in now["member_list"] if m["userid"] == newcomers[1])
    assert joined["join_scene"] == 3 and "invitor" not in joined


def test_create_rename_and_dismiss(sim: Simulator, wecom: WeCom, hooked: CallbackReceiver) -> None:
    # when
    chat_id = sim.actions.group_create(name="新品体验官")["chat_id"]
    sim.actions.group_rename(chat_id=chat_id, name="新品体验官2群")
    sim.actions.group_notice(chat_id=chat_id, notice="周五发福利")
    sim.actions.group_dismiss(chat_id=chat_id)
    # then
    messages = [event_fields(open_callback(p, sim_crypto(sim))) for p in hooked.wait_for(4)]
    assert sorted((m["ChangeType"], m.get("UpdateDetail", "")) for m in messages) == [
        ("create", ""),
        ("dismiss", ""),
        ("update", "change_name"),
        ("update", "change_notice"),
    ]
    assert all(m["ChatId"] == chat_id for m in messages)
    assert wecom.post("externalcontact/groupchat/get", {"chat_id": chat_id})["errcode"] == 40050


def test_the_owner_cannot_leave(sim: Simulator) -> None:
    # given
    chat = next(iter(sim.state.groups.values()))
    # when / then
    with pytest.raises(ActionError):
        sim.actions.group_leave(chat_id=chat.chat_id, userids=[chat.owner])
