"""The simulator's answers carry every field of the documented samples (wecom-api.md §1, §4).

Each sample is reduced to its field names per level; the simulator may add fields (WeCom does too) but may
not drop one the documentation shows.
"""

from __future__ import annotations

from typing import Any

from siyu.simulator.app import Simulator

GET_CONTACT = {"external_userid", "name", "avatar", "type", "gender", "unionid"}
GET_FOLLOW_USER = {"userid", "remark", "description", "createtime", "tags", "oper_userid", "add_way"}
BATCH_FOLLOW_INFO = {"userid", "remark", "description", "createtime", "tag_id", "oper_userid", "add_way"}
TAG_GROUP = {"group_id", "group_name", "create_time", "order", "tag"}
TAG = {"id", "name", "create_time", "order"}
CONTACT_WAY = {
    "config_id",
    "type",
    "scene",
    "style",
    "remark",
    "skip_verify",
    "state",
    "qr_code",
    "user",
    "party",
}
GROUP_CHAT = {
    "chat_id",
    "name",
    "owner",
    "create_time",
    "notice",
    "member_list",
    "admin_list",
    "member_version",
}
GROUP_MEMBER = {"userid", "type", "join_time", "join_scene", "group_nickname", "name"}
SEND_RESULT = {"external_userid", "userid", "status", "send_time"}
TRANSFER_RESULT = {"external_userid", "status", "takeover_time"}
BEHAVIOR = {
    "stat_time",
    "chat_cnt",
    "message_cnt",
    "negative_feedback_cnt",
    "new_apply_cnt",
    "new_contact_cnt",
}
BEHAVIOR_WITH_CHATS = {"reply_percentage", "avg_reply_time"}  # only on days with chats


def ok(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["errcode"] == 0, answer
    assert answer["errmsg"] == "ok"
    return answer


def test_gettoken(sim: Simulator) -> None:
    answer = ok(sim.call("gettoken", corpid=sim.config.corpid, corpsecret=sim.config.secret))
    assert set(answer) == {"errcode", "errmsg", "access_token", "expires_in"}


def test_customer_reads(sim: Simulator) -> None:
    # given: a WeChat customer with a relation that has a state and a tag
    customer = next(
        c
        for c in sim.state.customers.values()
        if c.type == 1 and any(f.state and f.tag_ids for f in c.follows.values())
    )
    userid = next(u for u, f in customer.follows.items() if f.state and f.tag_ids)
    # when
    follow_users = ok(sim.call("externalcontact/get_follow_user_list"))
    listing = ok(sim.call("externalcontact/list", userid=userid))
    detail = ok(sim.call("externalcontact/get", external_userid=customer.external_userid))
    batch = ok(
        sim.call("externalcontact/batch/get_by_user", {"userid_list": [userid], "cursor": "", "limit": 100})
    )
    # then
    assert isinstance(follow_users["follow_user"], list) and isinstance(listing["external_userid"], list)
    assert set(detail["external_contact"]) >= GET_CONTACT
    relation = next(f for f in detail["follow_user"] if f["userid"] == userid)
    assert GET_FOLLOW_USER | {"state"} <= set(relation)
    assert {"group_name", "tag_name", "tag_id", "type"} == set(relation["tags"][0])
    assert "next_cursor" in detail
    assert {"external_contact_list", "next_cursor"} <= set(batch)
    item = next(i for i in batch["external_contact_list"] if i["follow_info"].get("state"))
    assert BATCH_FOLLOW_INFO | {"state"} <= set(item["follow_info"])


def test_tags(sim: Simulator) -> None:
    listed = ok(sim.call("externalcontact/get_corp_tag_list", {}))
    added = ok(
        sim.call(
            "externalcontact/add_corp_tag",
            {"group_name": "GROUP_NAME", "order": 1, "tag": [{"name": "TAG_NAME_1", "order": 1}]},
        )
    )
    assert set(listed["tag_group"][0]) >= TAG_GROUP and set(listed["tag_group"][0]["tag"][0]) >= TAG
    assert set(added["tag_group"]) >= TAG_GROUP and set(added["tag_group"]["tag"][0]) >= TAG
    by_id = ok(
        sim.call("externalcontact/get_corp_tag_list", {"tag_id": [added["tag_group"]["tag"][0]["id"]]})
    )
    assert "deleted" in by_id["tag_group"][0]["tag"][0]


def test_contact_way(sim: Simulator) -> None:
    userid = sim.state.follow_users()[0]
    added = ok(
        sim.call(
            "externalcontact/add_contact_way",
            {
                "type": 1,
                "scene": 2,
                "style": 1,
                "remark": "渠道客户",
                "skip_verify": True,
                "state": "teststate",
                "user": [userid],
            },
        )
    )
    assert {"config_id", "qr_code"} <= set(added)
    got = ok(sim.call("externalcontact/get_contact_way", {"config_id": added["config_id"]}))
    assert set(got["contact_way"]) >= CONTACT_WAY
    listed = ok(sim.call("externalcontact/list_contact_way", {"limit": 100}))
    assert {"contact_way", "next_cursor"} <= set(listed) and set(listed["contact_way"][0]) == {"config_id"}


def test_mass_send(sim: Simulator) -> None:
    userid = max(sim.state.follow_users(), key=lambda u: len(sim.state.staff[u].follow_list))
    created = ok(
        sim.call("externalcontact/add_msg_template", {"sender": userid, "text": {"content": "文本消息内容"}})
    )
    assert {"fail_list", "msgid"} <= set(created)
    sim.actions.confirm_msg(msgid=created["msgid"])
    now = sim.clock.now()
    listed = ok(
        sim.call(
            "externalcontact/get_groupmsg_list_v2",
            {"chat_type": "single", "start_time": now - 60, "end_time": now},
        )
    )
    assert {"next_cursor", "group_msg_list"} <= set(listed)
    assert {"msgid", "create_time", "create_type", "text", "attachments"} <= set(listed["group_msg_list"][0])
    task = ok(sim.call("externalcontact/get_groupmsg_task", {"msgid": created["msgid"], "limit": 50}))
    assert {"userid", "status", "send_time"} <= set(task["task_list"][0])
    result = ok(
        sim.call("externalcontact/get_groupmsg_send_result", {"msgid": created["msgid"], "userid": userid})
    )
    assert set(result["send_list"][0]) >= SEND_RESULT


def test_groups(sim: Simulator) -> None:
    listed = ok(sim.call("externalcontact/groupchat/list", {"status_filter": 0, "limit": 10}))
    assert {"group_chat_list", "next_cursor"} <= set(listed)
    assert set(listed["group_chat_list"][0]) == {"chat_id", "status"}
    chat_id = listed["group_chat_list"][0]["chat_id"]
    got = ok(sim.call("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1}))
    assert set(got["group_chat"]) >= GROUP_CHAT
    assert set(got["group_chat"]["member_list"][0]) >= GROUP_MEMBER


def test_transfers(sim: Simulator) -> None:
    users = sorted(sim.state.follow_users(), key=lambda u: -len(sim.state.staff[u].follow_list))
    customer = sim.state.staff[users[0]].follow_list[0].external_userid
    body = {"handover_userid": users[0], "takeover_userid": users[1]}
    started = ok(
        sim.call(
            "externalcontact/transfer_customer",
            {**body, "external_userid": [customer], "transfer_success_msg": "您好"},
        )
    )
    assert set(started["customer"][0]) == {"external_userid", "errcode"}
    result = ok(sim.call("externalcontact/transfer_result", {**body, "cursor": ""}))
    assert {"customer", "next_cursor"} <= set(result) and set(result["customer"][0]) >= TRANSFER_RESULT
    unassigned = ok(
        sim.call("externalcontact/get_unassigned_list", {"page_id": 0, "page_size": 1000, "cursor": ""})
    )
    assert {"info", "is_last", "next_cursor"} <= set(unassigned)
    moved = ok(
        sim.call("externalcontact/groupchat/transfer", {"chat_id_list": ["wrNOSUCH"], "new_owner": users[1]})
    )
    assert set(moved["failed_chat_list"][0]) == {"chat_id", "errcode", "errmsg"}


def test_statistics(sim: Simulator) -> None:
    userid = sim.state.follow_users()[0]
    sim.actions.add_customer(userid=userid)
    today = sim.state.day_start(sim.clock.now())
    behavior = ok(
        sim.call(
            "externalcontact/get_user_behavior_data",
            {"userid": [userid], "start_time": today, "end_time": today},
        )
    )
    day = behavior["behavior_data"][0]
    assert BEHAVIOR | (BEHAVIOR_WITH_CHATS if day["chat_cnt"] else set()) <= set(day)
    yesterday = today - 86400
    stats = ok(sim.call("externalcontact/groupchat/statistic", {"day_begin_time": yesterday, "limit": 1000}))
    assert {"total", "next_offset", "items"} <= set(stats)
    assert {
        "new_chat_cnt",
        "chat_total",
        "chat_has_msg",
        "new_member_cnt",
        "member_total",
        "member_has_msg",
    } <= set(stats["items"][0]["data"])


def test_moments(sim: Simulator) -> None:
    jobid = ok(sim.call("externalcontact/add_moment_task", {"text": {"content": "文本消息内容"}}))["jobid"]
    result = ok(sim.call("externalcontact/get_moment_task_result", jobid=jobid))
    assert {"status", "type", "result"} <= set(result)
    assert {"errcode", "errmsg", "moment_id", "invalid_sender_list", "invalid_external_contact_list"} <= set(
        result["result"]
    )
