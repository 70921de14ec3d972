"""Customers and follow relations: follow users, list, get, batch/get_by_user with cursors, remark."""

from __future__ import annotations

import httpx
import pytest

from siyu.simulator.app import Simulator
from siyu.simulator.testing import running_simulator
from tests.simulator.conftest import WeCom


def busiest(sim: Simulator) -> str:
    with sim.state.lock:
        return max(sim.state.staff.values(), key=lambda s: len(s.follow_list)).userid


def test_follow_users_are_the_members_with_customer_contact(sim: Simulator, wecom: WeCom) -> None:
    # given
    member = sim.state.staff[busiest(sim)]
    # when
    before = wecom.ok("GET", "externalcontact/get_follow_user_list")["follow_user"]
    member.customer_contact = False
    after = wecom.ok("GET", "externalcontact/get_follow_user_list")["follow_user"]
    listing = wecom.get("externalcontact/list", userid=member.userid)
    # then
    assert member.userid in before
    assert member.userid not in after
    assert listing["errcode"] == 84074


def test_list_returns_every_customer_of_a_member(sim: Simulator, wecom: WeCom) -> None:
    # given
    userid = busiest(sim)
    # when
    answer = wecom.ok("GET", "externalcontact/list", userid=userid)
    # then
    expected = [f.external_userid for f in sim.state.staff[userid].follow_list]
    assert answer["external_userid"] == expected
    assert wecom.get("externalcontact/list", userid="nobody")["errcode"] == 40003
    assert wecom.get("externalcontact/list")["errcode"] == 41009


def test_get_shows_the_customer_and_every_relation_with_tag_names(sim: Simulator, wecom: WeCom) -> None:
    # given
    customer = next(c for c in sim.state.customers.values() if any(f.tag_ids for f in c.follows.values()))
    # when
    answer = wecom.ok("GET", "externalcontact/get", external_userid=customer.external_userid)
    # then
    contact = answer["external_contact"]
    assert contact["external_userid"] == customer.external_userid
    assert contact["name"] == customer.name
    assert {"avatar", "type", "gender"} <= set(contact)
    assert {f["userid"] for f in answer["follow_user"]} == set(customer.follows)
    tagged = next(f for f in answer["follow_user"] if f["tags"])
    tag = tagged["tags"][0]
    assert set(tag) == {"group_name", "tag_name", "tag_id", "type"}
    assert sim.state.tags[tag["tag_id"]].name == tag["tag_name"]
    assert {"remark", "description", "createtime", "oper_userid", "add_way"} <= set(tagged)
    assert answer["next_cursor"] == ""


def test_get_errors(sim: Simulator, wecom: WeCom) -> None:
    # given
    customer = next(iter(sim.state.customers.values()))
    for userid in list(customer.follows):
        sim.actions.customer_deletes_staff(external_userid=customer.external_userid, userid=userid)
    # when / then
    assert wecom.get("externalcontact/get")["errcode"] == 41035
    assert wecom.get("externalcontact/get", external_userid="wmNOSUCHCUSTOMER")["errcode"] == 40096
    assert wecom.get("externalcontact/get", external_userid=customer.external_userid)["errcode"] == 84061


def collect(wecom: WeCom, body: dict[str, object]) -> tuple[list[tuple[str, str]], int]:
    seen: list[tuple[str, str]] = []
    calls = 0
    cursor = ""
    while True:
        answer = wecom.ok("POST", "externalcontact/batch/get_by_user", {**body, "cursor": cursor})
        calls += 1
        for item in answer["external_contact_list"]:
            seen.append((item["follow_info"]["userid"], item["external_contact"]["external_userid"]))
        cursor = answer["next_cursor"]
        if not cursor:
            return seen, calls


def test_batch_get_by_user_pages_every_relation_exactly_once(sim: Simulator, wecom: WeCom) -> None:
    # given
    userids = sim.state.follow_users()
    expected = [(u, f.external_userid) for u in userids for f in sim.state.staff[u].follow_list]
    # when
    seen, calls = collect(wecom, {"userid_list": userids, "limit": 7})
    # then
    assert seen == expected
    assert calls == -(-len(expected) // 7)


def test_batch_get_by_user_item_shape(sim: Simulator, wecom: WeCom) -> None:
    # when
    answer = wecom.ok(
        "POST", "externalcontact/batch/get_by_user", {"userid_list": [busiest(sim)], "limit": 1}
    )
    # then
    item = answer["external_contact_list"][0]
    assert set(item) == {"external_contact", "follow_info"}
    info = item["follow_info"]
    assert {"userid", "remark", "description", "createtime", "tag_id", "oper_userid", "add_way"} <= set(info)
    assert isinstance(info["tag_id"], list)
    assert answer["next_cursor"]


def test_batch_get_by_user_accepts_the_old_single_userid_form(sim: Simulator, wecom: WeCom) -> None:
    # given
    userid = busiest(sim)
    # when
    old, _ = collect(wecom, {"userid": userid})
    new, _ = collect(wecom, {"userid_list": [userid]})
    # then
    assert old == new and old


def test_batch_get_by_user_limits(http: httpx.Client) -> None:
    with running_simulator(staff=2, customers=400, groups=1) as big:
        client = WeCom(big, http)
        userid = max(big.state.follow_users(), key=lambda u: len(big.state.staff[u].follow_list))
        # when
        default = client.ok("POST", "externalcontact/batch/get_by_user", {"userid_list": [userid]})
        capped = client.ok(
            "POST", "externalcontact/batch/get_by_user", {"userid_list": [userid], "limit": 500}
        )
        too_many = client.post("externalcontact/batch/get_by_user", {"userid_list": [userid] * 101})
        too_long = client.post("externalcontact/batch/get_by_user", {"userid_list": ["x" * 65]})
        missing = client.post("externalcontact/batch/get_by_user", {"limit": 10})
        unknown = client.post("externalcontact/batch/get_by_user", {"userid_list": ["nobody"]})
        client.close()
    # then: limit defaults to 50, is capped at 100 ("超过最大值时取最大值"); ≤ 100 userids
    assert len(default["external_contact_list"]) == 50
    assert len(capped["external_contact_list"]) == 100
    assert [too_many["errcode"], too_long["errcode"], missing["errcode"], unknown["errcode"]] == [
        40058,
        40058,
        40058,
        40003,
    ]


def test_cursors_are_opaque_and_checked(sim: Simulator, wecom: WeCom) -> None:
    # given
    userid = busiest(sim)
    cursor = wecom.ok("POST", "externalcontact/batch/get_by_user", {"userid_list": [userid], "limit": 1})[
        "next_cursor"
    ]
    # when
    tampered = wecom.post(
        "externalcontact/batch/get_by_user", {"userid_list": [userid], "cursor": cursor[:-2] + "AA"}
    )
    garbage = wecom.post("externalcontact/batch/get_by_user", {"userid_list": [userid], "cursor": "%%%"})
    # then
    assert tampered["errcode"] == 40058
    assert garbage["errcode"] == 40058


def test_paging_stays_exact_while_relations_come_and_go(sim: Simulator, wecom: WeCom) -> None:
    # given: the first page is read
    userid = busiest(sim)
    first = wecom.ok("POST", "externalcontact/batch/get_by_user", {"userid_list": [userid], "limit": 3})
    seen = [i["external_contact"]["external_userid"] for i in first["external_contact_list"]]
    member = sim.state.staff[userid]
    # when: a relation already read goes away, and a new customer arrives, before the next page
    sim.actions.staff_deletes_customer(userid=userid, external_userid=seen[0])
    added = sim.actions.add_customer(userid=userid)["external_userid"]
    cursor = first["next_cursor"]
    while cursor:
        page = wecom.ok(
            "POST", "externalcontact/batch/get_by_user", {"userid_list": [userid], "cursor": cursor}
        )
        seen += [i["external_contact"]["external_userid"] for i in page["external_contact_list"]]
        cursor = page["next_cursor"]
    # then: nothing skipped, nothing twice, the newcomer at the end
    assert len(seen) == len(set(seen))
    assert set(seen) == {f.external_userid for f in member.follow_list} | {seen[0]}
    assert seen[-1] == added


def test_remark_changes_only_the_fields_given(sim: Simulator, wecom: WeCom) -> None:
    # given
    userid = busiest(sim)
    follow = sim.state.staff[userid].follow_list[0]
    follow.description = "keep me"
    body = {"userid": userid, "external_userid": follow.external_userid}
    # when
    wecom.ok("POST", "externalcontact/remark", {**body, "remark": "王总", "remark_mobiles": ["13800000001"]})
    # then
    assert (follow.remark, follow.description, follow.remark_mobiles) == ("王总", "keep me", ["13800000001"])


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [("remark", "字" * 21, 40058), ("description", "字" * 151, 40058), ("remark_company", "字" * 21, 40058)],
)
def test_remark_limits(sim: Simulator, wecom: WeCom, field: str, value: str, code: int) -> None:
    # given
    userid = busiest(sim)
    follow = sim.state.staff[userid].follow_list[0]
    # when
    answer = wecom.post(
        "externalcontact/remark", {"userid": userid, "external_userid": follow.external_userid, field: value}
    )
    # then
    assert answer["errcode"] == code
    assert follow.remark != value


def test_remark_on_a_stranger_is_84061(sim: Simulator, wecom: WeCom) -> None:
    # given
    userid = busiest(sim)
    stranger = next(c for c in sim.state.customers.values() if userid not in c.follows)
    # when
    answer = wecom.post(
        "externalcontact/remark",
        {"userid": userid, "external_userid": stranger.external_userid, "remark": "x"},
    )
    # then
    assert answer["errcode"] == 84061
