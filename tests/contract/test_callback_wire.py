"""The callback wire format (wecom-api.md §2.4, §3): envelope, signature, cipher, and each event's XML shape.

Every message is read back with Siyu's own ``siyu.wecom.crypto``; element order, CDATA and bare numbers are
compared with the documented samples.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from defusedxml import ElementTree

from siyu.simulator.app import Simulator
from siyu.simulator.testing import CallbackReceiver, Received, event_fields
from siyu.wecom.crypto import CallbackCrypto, signature

HEADER = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Event"]
NUMERIC = {"CreateTime", "JoinScene", "QuitScene", "MemChangeCnt"}
BARE = NUMERIC | {"LastMemVer", "CurMemVer", "Id_party", "Order"}


def read(sim: Simulator, record: Received) -> str:
    """Check the envelope and the signature, decrypt, and return the message XML."""
    assert record.method == "POST"
    assert set(record.query) == {"msg_signature", "timestamp", "nonce"}
    assert record.query["timestamp"].isdigit() and record.query["nonce"].isdigit()
    envelope = ElementTree.fromstring(record.body)
    assert envelope.tag == "xml"
    assert [child.tag for child in envelope] == ["ToUserName", "Encrypt", "AgentID"]
    assert envelope.findtext("ToUserName") == sim.config.corpid
    assert envelope.findtext("AgentID") == str(sim.config.agentid)
    raw = record.body.decode()
    assert f"<ToUserName><![CDATA[{sim.config.corpid}]]></ToUserName>" in raw
    assert "<Encrypt><![CDATA[" in raw
    encrypted = envelope.findtext("Encrypt") or ""
    query = record.query
    assert query["msg_signature"] == signature(
        sim.config.token, query["timestamp"], query["nonce"], encrypted
    )
    crypto = CallbackCrypto(sim.config.token, sim.config.aes_key, sim.config.corpid)
    return crypto.verify_and_decrypt(
        query["msg_signature"], query["timestamp"], query["nonce"], encrypted
    ).decode()


def check_layout(xml: str, expected: list[str]) -> dict[str, Any]:
    """Element order as documented, text in CDATA, numbers bare, one element per line."""
    root = ElementTree.fromstring(xml)
    assert [child.tag for child in root] == HEADER + expected
    lines = xml.split("\n")
    assert lines[0] == "<xml>" and lines[-1] == "</xml>"
    assert len(lines) == len(HEADER) + len(expected) + 2
    for child in root:
        if child.tag in BARE:
            assert re.search(rf"<{child.tag}>[0-9a-f]*</{child.tag}>", xml), child.tag
        elif child.tag == "MemChangeList":
            assert re.search(r"<MemChangeList>(<Item><!\[CDATA\[[^\]]+\]\]></Item>)+</MemChangeList>", xml)
        elif child.tag not in ("Id", "ParentId"):
            assert f"<{child.tag}><![CDATA[" in xml, child.tag
    fields = event_fields(xml)
    assert fields["FromUserName"] == "sys" and fields["MsgType"] == "event"
    assert fields["CreateTime"].isdigit()
    return fields


def one_event(sim: Simulator, receiver: CallbackReceiver, act: Callable[[], Any]) -> str:
    before = len(receiver.posts())
    act()
    posts = receiver.wait_for(before + 1, timeout=5)
    assert len(posts) == before + 1
    return read(sim, posts[-1])


def a_relation(sim: Simulator) -> tuple[str, str]:
    follow = next(f for s in sim.state.staff.values() for f in s.follow_list)
    return follow.userid, follow.external_userid


def test_add_external_contact_matches_the_sample(sim: Simulator, receiver: CallbackReceiver) -> None:
    # when
    added: dict[str, Any] = {}
    xml = one_event(sim, receiver, lambda: added.update(sim.actions.scan_contact_way(state="web-home")))
    # then: the DOC-92130 sample's elements, in its order
    fields = check_layout(xml, ["ChangeType", "UserID", "ExternalUserID", "State", "WelcomeCode"])
    assert fields["Event"] == "change_external_contact" and fields["ChangeType"] == "add_external_contact"
    assert fields["ToUserName"] == sim.config.corpid
    assert (fields["UserID"], fields["ExternalUserID"]) == (added["userid"], added["external_userid"])
    assert (fields["State"], fields["WelcomeCode"]) == ("web-home", added["welcome_code"])


def test_add_without_a_state_has_no_state_element(sim: Simulator, receiver: CallbackReceiver) -> None:
    # when
    xml = one_event(sim, receiver, lambda: sim.actions.add_customer(state=""))
    # then
    check_layout(xml, ["ChangeType", "UserID", "ExternalUserID", "WelcomeCode"])


def test_add_half_external_contact(sim: Simulator, receiver: CallbackReceiver) -> None:
    # when
    xml = one_event(sim, receiver, lambda: sim.actions.scan_contact_way(state="web-home", half=True))
    # then
    fields = check_layout(xml, ["ChangeType", "UserID", "ExternalUserID", "State", "WelcomeCode"])
    assert fields["ChangeType"] == "add_half_external_contact"


@pytest.mark.parametrize(
    ("action", "change_type"),
    [
        ("edit_remark", "edit_external_contact"),
        ("customer_deletes_staff", "del_follow_user"),
        ("staff_deletes_customer", "del_external_contact"),
    ],
)
def test_relation_events(sim: Simulator, receiver: CallbackReceiver, action: str, change_type: str) -> None:
    # given
    userid, external_userid = a_relation(sim)
    kwargs: dict[str, Any] = {"userid": userid, "external_userid": external_userid}
    if action == "edit_remark":
        kwargs["remark"] = "李总]]>"  # a CDATA terminator inside a value must survive
    # when
    xml = one_event(sim, receiver, lambda: getattr(sim.actions, action)(**kwargs))
    # then
    fields = check_layout(xml, ["ChangeType", "UserID", "ExternalUserID"])
    assert (fields["ChangeType"], fields["UserID"], fields["ExternalUserID"]) == (
        change_type,
        userid,
        external_userid,
    )


def test_delete_by_transfer_and_transfer_fail(sim: Simulator, receiver: CallbackReceiver) -> None:
    # given
    users = sorted(sim.state.follow_users(), key=lambda u: -len(sim.state.staff[u].follow_list))
    handover, takeover = users[0], users[1]
    customers = [
        f.external_userid
        for f in sim.state.staff[handover].follow_list
        if takeover not in sim.state.customers[f.external_userid].follows
    ][:2]
    for index, customer in enumerate(customers):
        sim.call(
            "externalcontact/transfer_customer",
            {"handover_userid": handover, "takeover_userid": takeover, "external_userid": [customer]},
        )
        sim.config.transfer_refuse_rate = float(index)  # the second one is refused
        # when
        sim.actions.complete_transfers(external_userid=customer)
    # then
    messages = [read(sim, p) for p in receiver.wait_for(3)]
    by_type = {event_fields(m)["ChangeType"]: m for m in messages}
    deleted = check_layout(
        by_type["del_external_contact"], ["ChangeType", "UserID", "ExternalUserID", "Source"]
    )
    assert deleted["Source"] == "DELETE_BY_TRANSFER"
    failed = check_layout(by_type["transfer_fail"], ["ChangeType", "FailReason", "UserID", "ExternalUserID"])
    assert (failed["FailReason"], failed["UserID"]) == ("customer_refused", takeover)


def test_msg_audit_approved(sim: Simulator, receiver: CallbackReceiver) -> None:
    # given
    userid, external_userid = a_relation(sim)
    # when
    xml = one_event(
        sim, receiver, lambda: sim.actions.msg_audit_approved(userid=userid, external_userid=external_userid)
    )
    # then
    fields = check_layout(xml, ["ChangeType", "UserID", "ExternalUserID", "WelcomeCode"])
    assert fields["ChangeType"] == "msg_audit_approved"


def test_external_chat_events(sim: Simulator, receiver: CallbackReceiver) -> None:
    # given
    chat = next(iter(sim.state.groups.values()))
    newcomer = next(c for c in sim.state.customer_ids if c not in chat.members)
    # when
    joined = one_event(
        sim, receiver, lambda: sim.actions.group_join(chat_id=chat.chat_id, external_userids=[newcomer])
    )
    left = one_event(sim, receiver, lambda: sim.actions.group_leave(chat_id=chat.chat_id, userids=[newcomer]))
    renamed = one_event(sim, receiver, lambda: sim.actions.group_rename(chat_id=chat.chat_id, name="新群名"))
    created = one_event(sim, receiver, lambda: sim.actions.group_create())
    # then: the documented update sample's order
    member_change = [
        "ChatId",
        "ChangeType",
        "UpdateDetail",
        "JoinScene",
        "QuitScene",
        "MemChangeCnt",
        "MemChangeList",
        "LastMemVer",
        "CurMemVer",
    ]
    join = check_layout(joined, member_change)
    assert (join["UpdateDetail"], join["JoinScene"], join["QuitScene"]) == ("add_member", "0", "0")
    assert join["MemChangeList"] == [newcomer] and join["MemChangeCnt"] == "1"
    leave = check_layout(left, member_change)
    assert leave["UpdateDetail"] == "del_member" and leave["LastMemVer"] == join["CurMemVer"]
    assert check_layout(renamed, ["ChatId", "ChangeType", "UpdateDetail"])["UpdateDetail"] == "change_name"
    assert check_layout(created, ["ChatId", "ChangeType"])["ChangeType"] == "create"


def test_external_tag_events(sim: Simulator, receiver: CallbackReceiver) -> None:
    # when
    made: dict[str, Any] = {}
    created = one_event(
        sim,
        receiver,
        lambda: made.update(
            sim.actions.console_create_tag(group_id=next(iter(sim.state.tag_groups)), name="高意向")
        ),
    )
    updated = one_event(
        sim, receiver, lambda: sim.actions.console_rename_tag(id=made["tag_id"], name="很高意向")
    )
    deleted = one_event(sim, receiver, lambda: sim.actions.console_delete_tag(id=made["tag_id"]))
    shuffled = one_event(sim, receiver, lambda: sim.actions.console_shuffle_tags(group_id=made["group_id"]))
    # then: the documented sample's order (Id, TagType, ChangeType); shuffle has no TagType
    for xml, change_type in ((created, "create"), (updated, "update"), (deleted, "delete")):
        fields = check_layout(xml, ["Id", "TagType", "ChangeType"])
        assert (fields["Event"], fields["Id"], fields["TagType"], fields["ChangeType"]) == (
            "change_external_tag",
            made["tag_id"],
            "tag",
            change_type,
        )
    fields = check_layout(shuffled, ["Id", "ChangeType"])
    assert (fields["Id"], fields["ChangeType"]) == (made["group_id"], "shuffle")


def test_deleting_a_group_sends_one_event_for_the_group(sim: Simulator, receiver: CallbackReceiver) -> None:
    # given
    group_id = next(iter(sim.state.tag_groups))
    # when
    xml = one_event(sim, receiver, lambda: sim.actions.console_delete_tag(id=group_id))
    sim.sender.wait_idle(5)
    # then: "删除标签组时，该标签组下的所有标签将被同时删除，但不会进行回调"
    fields = check_layout(xml, ["Id", "TagType", "ChangeType"])
    assert (fields["Id"], fields["TagType"]) == (group_id, "tag_group")
    assert len(receiver.posts()) == 1


def test_every_delivery_reads_back_under_load(sim: Simulator, receiver: CallbackReceiver) -> None:
    # when
    sim.actions.burst_adds(count=200)
    posts = receiver.wait_for(200, timeout=20)
    # then
    assert len(posts) == 200
    externals = {event_fields(read(sim, p))["ExternalUserID"] for p in posts}
    assert len(externals) == 200
