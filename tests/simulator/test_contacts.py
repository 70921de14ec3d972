"""Address-book reads (departments, members) and admin-console changes with change_contact events."""

from __future__ import annotations

from siyu.simulator.app import Simulator
from siyu.simulator.testing import CallbackReceiver, event_fields, open_callback, sim_crypto
from tests.simulator.conftest import WeCom


def test_departments(sim: Simulator, wecom: WeCom) -> None:
    # when
    everything = wecom.ok("GET", "department/list")["department"]
    sales = wecom.ok("GET", "department/list", id="2")["department"]
    simple = wecom.ok("GET", "department/simplelist")["department_id"]
    one = wecom.ok("GET", "department/get", id="3")["department"]
    # then
    assert len(everything) == len(sim.state.departments)
    assert {"id", "name", "name_en", "department_leader", "parentid", "order"} == set(everything[0])
    assert {d["id"] for d in sales} == {2, 3, 4, 5, 6}  # the sales centre and its regions
    assert {"id", "parentid", "order"} == set(simple[0])
    assert one["name"] == "华东大区"
    assert wecom.get("department/get", id="999")["errcode"] == 60123
    assert wecom.get("department/list", id="999")["errcode"] == 60123


def test_members(sim: Simulator, wecom: WeCom) -> None:
    # given
    member = next(iter(sim.state.staff.values()))
    # when
    one = wecom.ok("GET", "user/get", userid=member.userid)
    root_only = wecom.ok("GET", "user/simplelist", department_id="1")["userlist"]
    all_simple = wecom.ok("GET", "user/simplelist", department_id="1", fetch_child="1")["userlist"]
    all_detailed = wecom.ok("GET", "user/list", department_id="1", fetch_child="1")["userlist"]
    # then
    assert (one["userid"], one["name"], one["department"]) == (member.userid, member.name, member.departments)
    assert {"mobile", "gender", "email", "status", "main_department", "avatar"} <= set(one)
    assert isinstance(one["gender"], str)
    assert len(all_simple) == len(all_detailed) == len(sim.state.staff) > len(root_only)
    assert set(all_simple[0]) == {"userid", "name", "department", "open_userid"}
    assert wecom.get("user/get", userid="nobody")["errcode"] == 60111
    assert wecom.get("user/get")["errcode"] == 41009
    assert wecom.get("user/list")["errcode"] == 40058


def test_list_id_pages_with_a_cursor(sim: Simulator, wecom: WeCom) -> None:
    # when
    seen: list[tuple[str, int]] = []
    cursor = ""
    while True:
        page = wecom.ok("POST", "user/list_id", {"cursor": cursor, "limit": 4})
        seen += [(u["userid"], u["department"]) for u in page["dept_user"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # then
    assert sorted(seen) == sorted((s.userid, d) for s in sim.state.staff.values() for d in s.departments)


def test_console_changes_send_change_contact(sim: Simulator, wecom: WeCom, hooked: CallbackReceiver) -> None:
    # when
    dept = sim.actions.department_create(name="直播部", parentid=1)["id"]
    userid = sim.actions.staff_create(name="新同事", department=dept)["userid"]
    sim.actions.staff_update(userid=userid, position="主播")
    sim.actions.staff_resign(userid=userid)
    sim.actions.department_update(id=dept, name="直播中心")
    sim.actions.department_delete(id=dept)
    # then
    messages = [event_fields(open_callback(p, sim_crypto(sim))) for p in hooked.wait_for(6)]
    by_type = {m["ChangeType"]: m for m in messages}
    assert all(m["Event"] == "change_contact" for m in messages)
    assert by_type["create_party"]["Id"] == str(dept) and by_type["create_party"]["ParentId"] == "1"
    assert by_type["create_user"]["UserID"] == userid and by_type["create_user"]["Department"] == str(dept)
    assert by_type["update_user"]["UserID"] == userid
    assert by_type["delete_user"]["UserID"] == userid
    assert by_type["update_party"]["Name"] == "直播中心"
    assert set(by_type["delete_party"]) >= {"Id"}
    assert wecom.get("user/get", userid=userid)["errcode"] == 60111
    assert userid not in wecom.ok("GET", "externalcontact/get_follow_user_list")["follow_user"]
