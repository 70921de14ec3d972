"""Corp tags and mark_tag; API-made tag changes emit no callbacks."""

from __future__ import annotations

from siyu.simulator.app import Simulator
from siyu.simulator.testing import CallbackReceiver
from tests.simulator.conftest import WeCom


def group_named(answer: dict, name: str) -> dict:
    return next(g for g in answer["tag_group"] if g["group_name"] == name)


def test_the_tag_list_is_ordered_by_order_descending(wecom: WeCom) -> None:
    # when
    answer = wecom.ok("POST", "externalcontact/get_corp_tag_list", {})
    # then
    groups = answer["tag_group"]
    assert [g["order"] for g in groups] == sorted((g["order"] for g in groups), reverse=True)
    for group in groups:
        assert "deleted" not in group
        assert [t["order"] for t in group["tag"]] == sorted((t["order"] for t in group["tag"]), reverse=True)
        assert {"id", "name", "create_time", "order"} == set(group["tag"][0])


def test_add_corp_tag_creates_a_group_or_adds_to_one(sim: Simulator, wecom: WeCom) -> None:
    # when
    created = wecom.ok(
        "POST",
        "externalcontact/add_corp_tag",
        {
            "group_name": "会员",
            "order": 9,
            "tag": [{"name": "金卡"}, {"name": "银卡", "order": 2}, {"name": "金卡"}],
        },
    )["tag_group"]
    merged = wecom.ok(
        "POST", "externalcontact/add_corp_tag", {"group_name": "会员", "tag": [{"name": "铜卡"}]}
    )["tag_group"]
    by_id = wecom.ok(
        "POST", "externalcontact/add_corp_tag", {"group_id": created["group_id"], "tag": [{"name": "钻石卡"}]}
    )["tag_group"]
    # then
    assert sorted(t["name"] for t in created["tag"]) == ["金卡", "银卡"]  # duplicates in one request: one tag
    assert merged["group_id"] == created["group_id"] == by_id["group_id"]
    listed = group_named(wecom.ok("POST", "externalcontact/get_corp_tag_list", {}), "会员")
    assert sorted(t["name"] for t in listed["tag"]) == sorted(["钻石卡", "金卡", "铜卡", "银卡"])


def test_add_corp_tag_errors(sim: Simulator, wecom: WeCom) -> None:
    # given
    existing = next(iter(sim.state.tag_groups.values()))
    existing_tag = sim.state.tags[existing.tag_ids[0]].name
    before = len(sim.state.tags)
    # when
    clash = wecom.post(
        "externalcontact/add_corp_tag", {"group_name": existing.name, "tag": [{"name": existing_tag}]}
    )
    long_name = wecom.post(
        "externalcontact/add_corp_tag", {"group_name": "新组", "tag": [{"name": "字" * 31}]}
    )
    empty = wecom.post("externalcontact/add_corp_tag", {"group_name": "空组", "tag": []})
    bad_group = wecom.post("externalcontact/add_corp_tag", {"group_id": "etNOPE", "tag": [{"name": "x"}]})
    # then
    assert [a["errcode"] for a in (clash, long_name, empty, bad_group)] == [40071, 40072, 40058, 40068]
    assert len(sim.state.tags) == before  # nothing half-written


def test_the_corp_tag_cap_is_3000(sim: Simulator, wecom: WeCom) -> None:
    # given
    live = sim.state.live_tags()
    group = wecom.ok(
        "POST",
        "externalcontact/add_corp_tag",
        {"group_name": "批量", "tag": [{"name": f"t{i}"} for i in range(3000 - live)]},
    )
    # when
    over = wecom.post("externalcontact/add_corp_tag", {"group_name": "批量", "tag": [{"name": "one more"}]})
    # then
    assert len(group["tag_group"]["tag"]) == 3000 - live
    assert over["errcode"] == 40126


def test_edit_and_delete_tags_and_groups(sim: Simulator, wecom: WeCom) -> None:
    # given
    group = wecom.ok(
        "POST", "externalcontact/add_corp_tag", {"group_name": "渠道", "tag": [{"name": "A"}, {"name": "B"}]}
    )["tag_group"]
    tag_a, tag_b = (t["id"] for t in group["tag"])
    # when
    wecom.ok("POST", "externalcontact/edit_corp_tag", {"id": tag_a, "name": "A2", "order": 7})
    wecom.ok("POST", "externalcontact/edit_corp_tag", {"id": group["group_id"], "name": "渠道2"})
    clash = wecom.post("externalcontact/edit_corp_tag", {"id": tag_a, "name": "B"})
    wecom.ok("POST", "externalcontact/del_corp_tag", {"tag_id": [tag_a]})
    by_id = wecom.ok("POST", "externalcontact/get_corp_tag_list", {"tag_id": [tag_a, tag_b]})
    wecom.ok("POST", "externalcontact/del_corp_tag", {"tag_id": [tag_b]})
    by_group = wecom.ok("POST", "externalcontact/get_corp_tag_list", {"group_id": [group["group_id"]]})
    # then
    assert clash["errcode"] == 40071
    only = by_id["tag_group"][0]
    assert only["group_name"] == "渠道2" and only["deleted"] is False
    assert {t["name"]: t["deleted"] for t in only["tag"]} == {"A2": True, "B": False}
    assert by_group["tag_group"][0]["deleted"] is True  # deleting its last tag deleted the group
    assert "渠道2" not in [
        g["group_name"] for g in wecom.ok("POST", "externalcontact/get_corp_tag_list")["tag_group"]
    ]
    assert wecom.post("externalcontact/del_corp_tag", {})["errcode"] == 40058
    assert wecom.post("externalcontact/del_corp_tag", {"tag_id": [tag_a]})["errcode"] == 40068


def test_deleting_a_tag_removes_it_from_relations(sim: Simulator, wecom: WeCom) -> None:
    # given
    follow = next(f for c in sim.state.customers.values() for f in c.follows.values() if f.tag_ids)
    tag_id = follow.tag_ids[0]
    # when
    wecom.ok("POST", "externalcontact/del_corp_tag", {"tag_id": [tag_id]})
    answer = wecom.ok("GET", "externalcontact/get", external_userid=follow.external_userid)
    # then
    relation = next(f for f in answer["follow_user"] if f["userid"] == follow.userid)
    assert tag_id not in [t["tag_id"] for t in relation["tags"]]


def test_mark_tag(sim: Simulator, wecom: WeCom) -> None:
    # given
    follow = next(f for c in sim.state.customers.values() for f in c.follows.values() if not f.tag_ids)
    tags = [t for t in sim.state.tags.values()][:3]
    body = {"userid": follow.userid, "external_userid": follow.external_userid}
    # when
    wecom.ok("POST", "externalcontact/mark_tag", {**body, "add_tag": [tags[0].id, tags[1].id]})
    wecom.ok(
        "POST", "externalcontact/mark_tag", {**body, "add_tag": [tags[2].id], "remove_tag": [tags[0].id]}
    )
    # then
    assert follow.tag_ids == [tags[1].id, tags[2].id]
    assert wecom.post("externalcontact/mark_tag", body)["errcode"] == 40058
    assert wecom.post("externalcontact/mark_tag", {**body, "add_tag": ["etNOPE"]})["errcode"] == 40068
    stranger = next(c for c in sim.state.customers.values() if follow.userid not in c.follows)
    answer = wecom.post(
        "externalcontact/mark_tag",
        {"userid": follow.userid, "external_userid": stranger.external_userid, "add_tag": [tags[0].id]},
    )
    assert answer["errcode"] == 84061


def test_api_changes_emit_no_callbacks_but_console_changes_do(
    sim: Simulator, wecom: WeCom, hooked: CallbackReceiver
) -> None:
    # given
    follow = next(f for c in sim.state.customers.values() for f in c.follows.values())
    tag = next(iter(sim.state.tags.values()))
    # when: API-made changes
    wecom.ok("POST", "externalcontact/add_corp_tag", {"group_name": "API组", "tag": [{"name": "x"}]})
    wecom.ok(
        "POST",
        "externalcontact/mark_tag",
        {"userid": follow.userid, "external_userid": follow.external_userid, "add_tag": [tag.id]},
    )
    wecom.ok(
        "POST",
        "externalcontact/remark",
        {"userid": follow.userid, "external_userid": follow.external_userid, "remark": "x"},
    )
    sim.sender.wait_idle(5)
    silent = len(hooked.posts())
    # when: the same in the admin console / client
    sim.actions.console_create_tag(group_name="控制台组", name="y")
    sim.actions.tag_in_client(userid=follow.userid, external_userid=follow.external_userid, add_tag=[tag.id])
    # then
    assert silent == 0
    assert len(hooked.wait_for(3)) == 3  # group create + tag create + edit_external_contact
