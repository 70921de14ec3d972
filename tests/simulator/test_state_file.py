"""The simulator's state file: a corp loaded instead of generated, refused with a clear place when broken, and
written from a Siyu corp (``siyu.config.demo.export_corp``) so that WeCom and Siyu agree to the relation."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from siyu.config.cli import main
from siyu.simulator.app import Simulator
from siyu.simulator.statefile import FORMAT, StateFileError
from siyu.simulator.testing import (
    CallbackReceiver,
    event_fields,
    open_callback,
    running_simulator,
    sim_crypto,
)

CREATED = 1_700_000_000


def corp_state() -> dict[str, Any]:
    """A small corp in the file format: two departments, three members, two tag groups, three customers."""
    return {
        "format": FORMAT,
        "version": 1,
        "corp": {"corpid": "wwstatefile01", "name": "状态文件企业"},
        "departments": [
            {"id": 1, "name": "状态文件企业", "parentid": 0, "order": 100},
            {"id": 2, "name": "销售部", "parentid": 1, "order": 90, "leaders": ["wangfang"]},
        ],
        "staff": [
            {"userid": "wangfang", "name": "王芳", "departments": [2], "avatar": "", "gender": 2},
            {"userid": "liuqiang", "name": "刘强", "departments": [1, 2], "main_department": 2},
            {"userid": "zhaolei", "name": "赵磊", "departments": [1], "status": 5},
        ],
        "tag_groups": [
            {
                "group_id": "etgroup_level",
                "name": "客户等级",
                "order": 2,
                "create_time": CREATED,
                "tags": [
                    {"id": "ettag_vip", "name": "VIP", "order": 2},
                    {"id": "ettag_normal", "name": "普通", "order": 1},
                ],
            },
            {
                "group_id": "etgroup_city",
                "name": "地区",
                "order": 1,
                "tags": [{"id": "ettag_bj", "name": "北京"}],
            },
        ],
        "contact_ways": [
            {"config_id": "cw_store", "state": "ch_store", "remark": "门店扫码", "user": ["wangfang"]}
        ],
        "customers": [
            {
                "external_userid": "wmcustomer0001",
                "name": "陈静",
                "gender": 2,
                "unionid": "ozunion0001",
                "avatar": "",
                "follow_users": [
                    {
                        "userid": "wangfang",
                        "createtime": CREATED,
                        "remark": "陈静-门店",
                        "remark_mobiles": ["13800000001"],
                        "state": "ch_store",
                        "add_way": 1,
                        "oper_userid": "wmcustomer0001",
                        "tag_ids": ["ettag_vip", "ettag_bj"],
                    },
                    {
                        "userid": "liuqiang",
                        "createtime": CREATED + 60,
                        "add_way": 2,
                        "oper_userid": "liuqiang",
                    },
                ],
            },
            {
                "external_userid": "wocustomer0002",
                "name": "李总",
                "type": 2,
                "corp_name": "腾讯",
                "corp_full_name": "深圳市腾讯计算机系统有限公司",
                "follow_users": [
                    {"userid": "liuqiang", "createtime": CREATED + 120, "tag_ids": ["ettag_normal"]}
                ],
            },
            {
                "external_userid": "wmcustomer0003",
                "name": "小鱼儿",
                "follow_users": [{"userid": "zhaolei", "createtime": CREATED + 180}],
            },
        ],
        "groups": [
            {
                "chat_id": "wrgroup0001",
                "name": "VIP 客户群",
                "owner": "wangfang",
                "create_time": CREATED,
                "admins": ["liuqiang"],
                "members": [
                    {"userid": "liuqiang", "type": 1, "join_time": CREATED + 5},
                    {"userid": "wmcustomer0001", "type": 2, "join_scene": 3},
                    {"userid": "wmoutsider0009", "type": 2, "name": "路人"},
                ],
            }
        ],
    }


def write(tmp_path: Path, data: Any, name: str = "state.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def loaded(tmp_path: Path, data: dict[str, Any] | None = None) -> Simulator:
    """A simulator (not serving) with the corp from ``data``."""
    return Simulator(state_file=str(write(tmp_path, data or corp_state())), port=0)


# --- loading ----------------------------------------------------------------------------------------------


def test_the_file_is_the_corp_wecom_shows(tmp_path: Path) -> None:
    # given
    sim = loaded(tmp_path)
    # when
    customer = sim.call("externalcontact/get", external_userid="wmcustomer0001")
    company = sim.call("externalcontact/get", external_userid="wocustomer0002")
    # then the file's corp replaces the configured one
    assert sim.config.corpid == "wwstatefile01"
    assert sim.state.snapshot_counts()["customers"] == 3
    # and the customer, their relations in order, remarks, mobiles, channel and tags are the file's
    assert customer["external_contact"] == {
        "external_userid": "wmcustomer0001",
        "name": "陈静",
        "avatar": "",
        "type": 1,
        "gender": 2,
        "unionid": "ozunion0001",
    }
    first, second = customer["follow_user"]
    assert (first["userid"], second["userid"]) == ("wangfang", "liuqiang")
    assert first["remark"] == "陈静-门店"
    assert first["remark_mobiles"] == ["13800000001"]
    assert (first["state"], first["add_way"], first["createtime"]) == ("ch_store", 1, CREATED)
    assert [t["tag_id"] for t in first["tags"]] == ["ettag_vip", "ettag_bj"]
    assert first["tags"][0] == {"group_name": "客户等级", "tag_name": "VIP", "tag_id": "ettag_vip", "type": 1}
    assert (second["oper_userid"], second["tags"]) == ("liuqiang", [])
    assert company["external_contact"]["corp_name"] == "腾讯"
    # and an avatar the file leaves out is derived, as for a generated corp
    assert company["external_contact"]["avatar"].startswith("http://wx.qlogo.cn/mmhead/")


def test_a_member_who_left_hides_their_relations(tmp_path: Path) -> None:
    # given a customer whose only relation is with a member who left (status 5)
    sim = loaded(tmp_path)
    # when
    answer = sim.call("externalcontact/get", external_userid="wmcustomer0003")
    follow_users = sim.call("externalcontact/get_follow_user_list")["follow_user"]
    # then WeCom shows neither
    assert answer["errcode"] == 84061
    assert follow_users == ["wangfang", "liuqiang"]


def test_org_chart_tags_and_groups_are_the_files(tmp_path: Path) -> None:
    # given
    sim = loaded(tmp_path)
    # when
    departments = sim.call("department/list")["department"]
    member = sim.call("user/get", userid="liuqiang")
    leader = sim.call("user/get", userid="wangfang")
    tag_groups = sim.call("externalcontact/get_corp_tag_list", {})["tag_group"]
    chat = sim.call("externalcontact/groupchat/get", {"chat_id": "wrgroup0001", "need_name": 1})["group_chat"]
    ways = sim.call("externalcontact/list_contact_way", {})["contact_way"]
    # then
    assert [(d["id"], d["parentid"], d["department_leader"]) for d in departments] == [
        (1, 0, []),
        (2, 1, ["wangfang"]),
    ]
    assert (member["department"], member["main_department"], member["status"]) == ([1, 2], 2, 1)
    assert (leader["avatar"], leader["is_leader_in_dept"]) == ("", [1])
    assert [(g["group_id"], g["order"], [t["id"] for t in g["tag"]]) for g in tag_groups] == [
        ("etgroup_level", 2, ["ettag_vip", "ettag_normal"]),
        ("etgroup_city", 1, ["ettag_bj"]),
    ]
    assert [t["order"] for t in tag_groups[0]["tag"]] == [2, 1]
    # the owner is a member, listed first; names of customers default to theirs
    members = {m["userid"]: m for m in chat["member_list"]}
    assert chat["member_list"][0]["userid"] == "wangfang"
    assert members["wmcustomer0001"]["name"] == "陈静"
    assert members["wmcustomer0001"].get("unionid") == "ozunion0001"
    assert members["wmoutsider0009"]["name"] == "路人"
    assert (members["liuqiang"]["join_time"], chat["admin_list"]) == (CREATED + 5, [{"userid": "liuqiang"}])
    assert [w["config_id"] for w in ways] == ["cw_store"]


def test_a_staff_members_customers_page_through_batch_get_by_user(tmp_path: Path) -> None:
    # given a member with 130 customers in the file (more than one page of 100)
    data = corp_state()
    data["customers"] = [
        {
            "external_userid": f"wmbulk{i:04d}",
            "name": f"客户{i}",
            "follow_users": [{"userid": "wangfang", "createtime": CREATED + i}],
        }
        for i in range(130)
    ]
    data["groups"] = []
    sim = loaded(tmp_path, data)
    # when
    seen: list[str] = []
    cursor = ""
    while True:
        page = sim.call(
            "externalcontact/batch/get_by_user", {"userid_list": ["wangfang"], "cursor": cursor, "limit": 100}
        )
        seen += [item["external_contact"]["external_userid"] for item in page["external_contact_list"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # then every customer comes once, in the file's order
    assert seen == [f"wmbulk{i:04d}" for i in range(130)]


def test_a_customer_scanning_a_loaded_contact_way_arrives_with_its_state(tmp_path: Path) -> None:
    # given
    path = write(tmp_path, corp_state())
    with CallbackReceiver() as receiver, running_simulator(state_file=str(path)) as sim:
        sim.config.callback_url = receiver.url
        # when
        added = sim.actions.scan_contact_way(config_id="cw_store")
        # then
        (post,) = receiver.wait_for(1)
        event = event_fields(open_callback(post, sim_crypto(sim)))
        assert (event["ChangeType"], event["UserID"], event["State"]) == (
            "add_external_contact",
            "wangfang",
            "ch_store",
        )
        assert event["ExternalUserID"] == added["external_userid"]
        assert event["ToUserName"] == "wwstatefile01"


def test_traffic_on_a_corp_without_groups_starts_one(tmp_path: Path) -> None:
    # given a loaded corp without customer groups
    data = corp_state()
    data["groups"] = []
    path = write(tmp_path, data)
    with CallbackReceiver() as receiver, running_simulator(state_file=str(path)) as sim:
        sim.config.callback_url = receiver.url
        # when the traffic driver would have someone join a group
        done = sim.traffic.step("group_join")
        # then a member started one with some of their customers, and WeCom said so
        assert done
        (chat,) = sim.state.groups.values()
        assert chat.owner in ("wangfang", "liuqiang")
        assert any(m.type == 2 for m in chat.members.values())
        event = event_fields(open_callback(receiver.wait_for(1)[0], sim_crypto(sim)))
        assert (event["Event"], event["ChangeType"], event["ChatId"]) == (
            "change_external_chat",
            "create",
            chat.chat_id,
        )


# --- refusing broken files --------------------------------------------------------------------------------


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def _drop(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return change


def _append(key: str, item: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data[key].append(item)


BROKEN = [
    (_set(["version"], 2), "version 2 is not supported"),
    (_drop(["departments"]), "departments: at least one department"),
    (_set(["customers", 0, "follow_user"], []), "customers[0]: unknown key 'follow_user'"),
    (
        _set(["customers", 0, "follow_users", 0, "userid"], "nobody"),
        "customers[0].follow_users[0].userid: no staff member 'nobody'",
    ),
    (
        _set(["customers", 0, "follow_users", 0, "tag_ids"], ["ettag_vip", "et_gone"]),
        "customers[0].follow_users[0].tag_ids: no tag 'et_gone'",
    ),
    (
        _set(["customers", 0, "follow_users", 0, "tag_ids"], ["etgroup_level"]),
        "customers[0].follow_users[0].tag_ids: no tag 'etgroup_level'",
    ),
    (
        _set(["customers", 0, "follow_users", 1, "userid"], "wangfang"),
        "customers[0].follow_users[1].userid: duplicate relation with 'wangfang'",
    ),
    (
        _append("customers", {"external_userid": "wmcustomer0001", "name": "又一个"}),
        "customers[3].external_userid: duplicate external_userid 'wmcustomer0001'",
    ),
    (_set(["customers", 1, "gender"], "male"), "customers[1].gender: expected a whole number, got a string"),
    (_set(["customers", 1, "type"], 3), "customers[1].type: must be one of 1, 2, got 3"),
    (_drop(["customers", 2, "name"]), "customers[2].name: required"),
    (_set(["staff", 0, "departments"], [9]), "staff[0].departments: no department 9"),
    (_set(["staff", 0, "departments"], []), "staff[0].departments: must not be empty"),
    (_set(["staff", 1, "main_department"], 7), "staff[1].main_department: 7 is not one of its departments"),
    (_set(["staff", 2, "userid"], "wangfang"), "staff[2].userid: duplicate userid 'wangfang'"),
    (_set(["staff", 0, "customer_contact"], "yes"), "staff[0].customer_contact: expected true or false"),
    (_set(["departments", 1, "parentid"], 5), "departments[1].parentid: no department 5"),
    (_set(["departments", 1, "leaders"], ["ghost"]), "departments[1].leaders: no staff member 'ghost'"),
    (
        _set(["tag_groups", 1, "tags", 0, "id"], "ettag_vip"),
        "tag_groups[1].tags[0].id: duplicate tag or group id 'ettag_vip'",
    ),
    (_set(["tag_groups", 0, "tags", 1, "name"], "VIP"), "tag_groups[0].tags[1].name: duplicate tag name"),
    (_set(["contact_ways", 0, "state"], "x" * 31), "contact_ways[0].state: at most 30 characters, got 31"),
    (_set(["contact_ways", 0, "user"], []), "contact_ways[0]: needs a user or a party"),
    (_set(["groups", 0, "owner"], "ghost"), "groups[0].owner: no staff member 'ghost'"),
    (_set(["groups", 0, "admins"], ["wmcustomer0001"]), "groups[0].admins: 'wmcustomer0001' is not a staff"),
    (_set(["groups", 0, "members", 0, "type"], 3), "groups[0].members[0].type: must be one of 1, 2, got 3"),
    (_set(["corp"], {"corpid": 7}), "corp.corpid: expected a string, got a number"),
    (_set(["customers"], {"wm1": {}}), "customers: expected a list, got an object"),
    (_set(["colour"], "blue"), "unknown key 'colour'"),
]


@pytest.mark.parametrize(("change", "message"), BROKEN)
def test_a_broken_file_is_refused_saying_where(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    # given a valid file with one thing wrong
    data = copy.deepcopy(corp_state())
    change(data)
    path = write(tmp_path, data)
    # when / then
    with pytest.raises(StateFileError) as caught:
        Simulator(state_file=str(path), port=0)
    assert message in str(caught.value)


def test_files_that_are_not_state_files_are_refused(tmp_path: Path) -> None:
    # given
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"format": "siyu-simulator-state",\n "version": 1,\n "staff": [,]}')
    other = write(tmp_path, {"customers": []}, "other.json")
    # when / then
    with pytest.raises(StateFileError, match=r"not valid JSON at line 3, column 12"):
        Simulator(state_file=str(broken_json), port=0)
    with pytest.raises(StateFileError, match="not a simulator state file"):
        Simulator(state_file=str(other), port=0)
    with pytest.raises(StateFileError, match="no such file"):
        Simulator(state_file=str(tmp_path / "missing.json"), port=0)


def test_siyu_simulator_refuses_a_broken_state_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    data = corp_state()
    data["staff"][0]["departments"] = [42]
    path = write(tmp_path, data)
    # when
    code = main(["simulator", "--state", str(path), "--port", "0"])
    # then
    assert code == 2
    err = capsys.readouterr().err
    assert "error: --state: " in err
    assert "staff[0].departments: no department 42" in err


def test_the_state_file_is_fixed_once_running(tmp_path: Path) -> None:
    sim = loaded(tmp_path)
    with pytest.raises(ValueError, match="state_file"):
        sim.config.update({"state_file": "other.json"})


# --- writing one from a Siyu corp (siyu demo) --------------------------------------------------------------


def _seeded_corp_with_extras() -> Any:
    """The demo seed at small size, plus what the seed lacks: a Siyu-only tag on a relation, an ended
    relation, a member in two departments, and a customer group."""
    from siyu.corps.models import Staff
    from siyu.corps.seed import seed
    from siyu.corps.services import upsert_staff
    from siyu.customers.models import Customer, Event, FollowRelation
    from siyu.customers.services import end_follow_relation
    from siyu.groups.services import GroupChatInfo, GroupMemberInfo, apply_group_chat
    from siyu.tags.services import create_tag_group, mark_relation_tags

    corp = seed(customers=60, seed_value=7, corpid="wwexportcorp01").corp
    relations = FollowRelation.objects.for_corp(corp).filter(status="active").order_by("id")
    local_only = create_tag_group(corp=corp, name="内部备注", tag_names=["重点跟进"]).tags.get()
    mark_relation_tags(relation=relations[0], add=[local_only], source=Event.Source.CONSOLE)
    end_follow_relation(relation=relations[1], by="staff", source=Event.Source.CONSOLE)
    upsert_staff(corp=corp, userid="staff002", department_wecom_ids=[3, 6], main_department_wecom_id=6)
    owner = Staff.objects.for_corp(corp).get(userid="staff001")
    guests = list(Customer.objects.for_corp(corp).filter(relations__status="active").order_by("id")[:3])
    apply_group_chat(
        corp=corp,
        info=GroupChatInfo(
            chat_id="wrexportgroup01",
            name="老客户群",
            owner_userid=owner.userid,
            admin_userids=("staff003",),
            members=(
                GroupMemberInfo(userid=owner.userid, type=1, join_scene=1),
                GroupMemberInfo(userid="staff003", type=1, join_scene=1, invitor_userid=owner.userid),
                *(GroupMemberInfo(userid=c.external_userid, name=c.name, join_scene=3) for c in guests),
                GroupMemberInfo(userid="wmnotacustomer01", name="路人", join_scene=2),
            ),
        ),
        source=Event.Source.SYNC,
    )
    return corp


@pytest.mark.django_db
def test_an_exported_corp_is_exactly_what_a_full_sync_finds(tmp_path: Path, settings: Any) -> None:
    from siyu.config.demo import DEMO_CHANNELS, export_corp
    from siyu.corps.services import set_corp_credentials
    from siyu.customers.models import Customer, Event
    from siyu.wecom import tokens
    from siyu.wecom.models import SyncRun
    from siyu.wecom.sync import run_sync, start_sync

    # given a seeded corp exported to a state file
    corp = _seeded_corp_with_extras()
    report = export_corp(corp=corp, path=tmp_path / "state.json", channels=DEMO_CHANNELS)
    events = Event.objects.for_corp(corp).count()
    with running_simulator(state_file=str(report.path)) as sim:
        settings.WECOM_API_BASE = sim.api_base
        tokens.forget_cached()
        set_corp_credentials(
            corp=corp, secret=sim.config.secret, token=sim.config.token, aes_key=sim.config.aes_key
        )
        # when Siyu syncs everything from the simulator loaded from it
        run = start_sync(corp=corp, kind=SyncRun.Kind.FULL, enqueue=False)
        while run.status not in (SyncRun.Status.DONE, SyncRun.Status.FAILED):
            run = run_sync(run.pk).run
        # then WeCom and Siyu agree on everything: nothing to repair, the timeline did not grow
        assert run.status == SyncRun.Status.DONE, run.error
        assert run.repairs == {}
        assert Event.objects.for_corp(corp).count() == events
        in_wecom = Customer.objects.for_corp(corp).filter(relations__status="active")
        assert not in_wecom.filter(type=Customer.Type.WECHAT).exclude(corp_name="")
        tokens.forget_cached()
    # and the file holds the customers WeCom knows (an active relation) with their relations
    with_relations = Customer.objects.for_corp(corp).filter(relations__status="active").distinct().count()
    assert report.customers == with_relations
    assert run.counts["relations"] == report.relations
    assert (report.staff, report.groups) == (30, 1)


@pytest.mark.django_db
def test_the_export_is_wecoms_view_of_the_corp(tmp_path: Path) -> None:
    from siyu.config.demo import DEMO_CHANNELS, export_corp
    from siyu.corps.seed import STATES

    # given
    corp = _seeded_corp_with_extras()
    # when
    export_corp(corp=corp, path=tmp_path / "state.json", channels=DEMO_CHANNELS)
    data = json.loads((tmp_path / "state.json").read_text(encoding="utf-8"))
    # then Siyu-only tags are not WeCom's, and WeCom's order is descending where Siyu's ascends
    groups = data["tag_groups"]
    assert "内部备注" not in [g["name"] for g in groups]
    assert [g["name"] for g in groups][:2] == ["地区", "性别"]
    assert [g["order"] for g in groups] == sorted((g["order"] for g in groups), reverse=True)
    assert groups[0]["tags"][0] == {
        "id": "et_t001_001",
        "name": "北京",
        "order": 8,
        "create_time": groups[0]["tags"][0]["create_time"],
    }
    # and a member keeps both departments, the main one among them; resigned members are status 5
    staff = {m["userid"]: m for m in data["staff"]}
    assert (sorted(staff["staff002"]["departments"]), staff["staff002"]["main_department"]) == ([3, 6], 6)
    assert staff["staff030"]["status"] == 5
    assert staff["staff029"]["customer_contact"] is False
    # and there is a contact way per demo channel, held by members who took that channel's customers
    assert sorted(w["state"] for w in data["contact_ways"]) == sorted(s for s in STATES if s)
    assert all(1 <= len(w["user"]) <= 2 for w in data["contact_ways"])
    # and the group has its current members, the one who is not a customer included
    (group,) = data["groups"]
    assert group["owner"] == "staff001"
    assert "wmnotacustomer01" in [m["userid"] for m in group["members"]]
    assert group["admins"] == ["staff003"]
