"""「联系我」 contact ways: add, get (object or legacy array), list with cursor, update, delete; scans."""

from __future__ import annotations

import pytest

from siyu.simulator.app import Simulator
from siyu.simulator.testing import CallbackReceiver, event_fields, open_callback, sim_crypto
from tests.simulator.conftest import WeCom


def two_members(sim: Simulator) -> list[str]:
    return sim.state.follow_users()[:2]


def test_add_get_update_delete(sim: Simulator, wecom: WeCom) -> None:
    # given
    first, second = two_members(sim)
    # when
    added = wecom.ok(
        "POST",
        "externalcontact/add_contact_way",
        {"type": 2, "scene": 2, "remark": "渠道客户", "state": "teststate", "user": [first], "party": []},
    )
    got = wecom.ok("POST", "externalcontact/get_contact_way", {"config_id": added["config_id"]})[
        "contact_way"
    ]
    wecom.ok(
        "POST", "externalcontact/update_contact_way", {"config_id": added["config_id"], "user": [second]}
    )
    updated = wecom.ok("POST", "externalcontact/get_contact_way", {"config_id": added["config_id"]})[
        "contact_way"
    ]
    wecom.ok("POST", "externalcontact/del_contact_way", {"config_id": added["config_id"]})
    gone = wecom.post("externalcontact/get_contact_way", {"config_id": added["config_id"]})
    # then
    # the QR code is an image at WeCom's image path, served by the simulator itself
    assert len(added["config_id"]) == 32 and added["qr_code"].startswith(f"{wecom.sim.base_url}/wwpic/")
    assert got["state"] == "teststate" and got["user"] == [first] and got["qr_code"] == added["qr_code"]
    assert {"config_id", "type", "scene", "style", "remark", "skip_verify", "state", "user", "party"} <= set(
        got
    )
    assert updated["user"] == [second]  # user lists are replaced, not merged
    assert gone["errcode"] == 41044


def test_the_legacy_array_shape_is_available(sim: Simulator, wecom: WeCom) -> None:
    # given
    config_id = next(iter(sim.state.contact_ways))
    sim.config.legacy_contact_way_array = True
    # when
    answer = wecom.ok("POST", "externalcontact/get_contact_way", {"config_id": config_id})
    # then
    assert isinstance(answer["contact_way"], list)
    assert answer["contact_way"][0]["config_id"] == config_id


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"scene": 2}, 41037),
        ({"type": 1}, 41038),
        ({"type": 3, "scene": 2}, 41039),
        ({"type": 1, "scene": 5}, 41040),
        ({"type": 1, "scene": 2, "style": 9}, 41042),
        ({"type": 1, "scene": 2, "user": ["a", "b"]}, 40058),
        ({"type": 1, "scene": 2, "user": ["nobody"]}, 40003),
        ({"type": 2, "scene": 2, "party": [999]}, 60123),
        ({"type": 2, "scene": 2, "state": "s" * 31, "party": [1]}, 40058),
        ({"type": 2, "scene": 2, "remark": "r" * 31, "party": [1]}, 40058),
    ],
)
def test_add_contact_way_errors(sim: Simulator, wecom: WeCom, body: dict, code: int) -> None:
    # given
    before = len(sim.state.contact_ways)
    # when
    answer = wecom.post("externalcontact/add_contact_way", body)
    # then
    assert answer["errcode"] == code
    assert len(sim.state.contact_ways) == before


def test_at_most_100_members_including_departments(sim: Simulator, wecom: WeCom) -> None:
    # given
    for _ in range(101):
        sim.actions.staff_create(department=3)
    # when
    answer = wecom.post("externalcontact/add_contact_way", {"type": 2, "scene": 2, "party": [3]})
    missing = wecom.post("externalcontact/get_contact_way", {})
    # then
    assert answer["errcode"] == 41041
    assert missing["errcode"] == 41043


def test_scene_1_has_no_qr_code(sim: Simulator, wecom: WeCom) -> None:
    # when
    added = wecom.ok(
        "POST", "externalcontact/add_contact_way", {"type": 1, "scene": 1, "user": two_members(sim)[:1]}
    )
    # then
    assert "qr_code" not in added


def test_list_contact_way_pages_with_a_cursor(sim: Simulator, wecom: WeCom) -> None:
    # given
    user = two_members(sim)[:1]
    made = [
        wecom.ok("POST", "externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": user})[
            "config_id"
        ]
        for _ in range(5)
    ]
    # when
    seen: list[str] = []
    cursor = ""
    while True:
        page = wecom.ok("POST", "externalcontact/list_contact_way", {"limit": 2, "cursor": cursor})
        assert len(page["contact_way"]) <= 2
        seen += [w["config_id"] for w in page["contact_way"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # then: recent ones (the default window is 90 days) all listed once
    assert set(made) <= set(seen)
    assert len(seen) == len(set(seen))


def test_a_scan_adds_a_relation_with_the_state_and_sends_the_event(
    sim: Simulator, wecom: WeCom, hooked: CallbackReceiver
) -> None:
    # given
    user = two_members(sim)[:1]
    config_id = wecom.ok(
        "POST",
        "externalcontact/add_contact_way",
        {"type": 1, "scene": 2, "user": user, "state": "douyin-0612"},
    )["config_id"]
    # when
    scanned = sim.actions.scan_contact_way(config_id=config_id)
    # then
    posts = hooked.wait_for(1)
    fields = event_fields(open_callback(posts[0], sim_crypto(sim)))
    assert fields["ChangeType"] == "add_external_contact"
    assert fields["State"] == "douyin-0612"
    assert fields["UserID"] == user[0]
    assert fields["ExternalUserID"] == scanned["external_userid"]
    assert fields["WelcomeCode"] == scanned["welcome_code"]
    answer = wecom.ok("GET", "externalcontact/get", external_userid=scanned["external_userid"])
    relation = answer["follow_user"][0]
    assert (relation["state"], relation["add_way"], relation["userid"]) == ("douyin-0612", 1, user[0])


def test_qr_code_is_a_png_whose_target_adds_a_customer(sim, wecom, http):
    # given a contact way
    first = sim.state.follow_users()[0]
    added = wecom.ok(
        "POST", "externalcontact/add_contact_way", {"type": 2, "scene": 2, "state": "qr", "user": [first]}
    )
    # when its QR image is fetched, and its target opened (a customer scans it)
    image = http.get(added["qr_code"])
    scanned = http.get(f"{sim.base_url}/_sim/scan/{added['config_id']}").json()
    # then it is a PNG, and the scan added a customer through the way
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    assert scanned["state"] == "qr" and scanned["userid"] == first


def test_multi_member_way_hands_scans_out_in_turn(sim, wecom):
    users = sim.state.follow_users()[:3]
    added = wecom.ok(
        "POST", "externalcontact/add_contact_way", {"type": 2, "scene": 2, "state": "turns", "user": users}
    )
    got = [sim.actions.scan_contact_way(config_id=added["config_id"])["userid"] for _ in range(6)]
    assert got == users + users
