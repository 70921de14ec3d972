"""Statistics (behaviour per member, group figures) and media uploads."""

from __future__ import annotations

from siyu.simulator.app import Simulator
from tests.simulator.conftest import WeCom

DAY = 86400


def test_behavior_data_counts_real_adds_and_deletions(sim: Simulator, wecom: WeCom) -> None:
    # given
    userid = sim.state.follow_users()[0]
    today = sim.state.day_start(sim.clock.now())
    added = [sim.actions.add_customer(userid=userid)["external_userid"] for _ in range(3)]
    sim.actions.customer_deletes_staff(external_userid=added[0], userid=userid)
    # when
    answer = wecom.ok(
        "POST",
        "externalcontact/get_user_behavior_data",
        {"userid": [userid], "start_time": today - 2 * DAY + 3600, "end_time": today + 100},
    )
    # then
    days = answer["behavior_data"]
    assert [d["stat_time"] for d in days] == [today - 2 * DAY, today - DAY, today]  # floored to midnight
    latest = days[-1]
    assert latest["new_contact_cnt"] >= 2  # three added, one of them deleted again
    assert latest["negative_feedback_cnt"] == 1
    assert {"chat_cnt", "message_cnt", "new_apply_cnt"} <= set(latest)


def test_behavior_data_limits(sim: Simulator, wecom: WeCom) -> None:
    # given
    now = sim.clock.now()
    userid = sim.state.follow_users()[0]
    # when / then
    assert (
        wecom.post("externalcontact/get_user_behavior_data", {"start_time": now, "end_time": now})["errcode"]
        == 40058
    )
    too_long = {"userid": [userid], "start_time": now - 31 * DAY, "end_time": now}
    assert wecom.post("externalcontact/get_user_behavior_data", too_long)["errcode"] == 40058
    too_old = {"userid": [userid], "start_time": now - 200 * DAY, "end_time": now - 190 * DAY}
    assert wecom.post("externalcontact/get_user_behavior_data", too_old)["errcode"] == 40058
    assert (
        wecom.post(
            "externalcontact/get_user_behavior_data",
            {"userid": ["u"] * 101, "start_time": now, "end_time": now},
        )["errcode"]
        == 40058
    )


def test_group_statistics_by_owner_and_by_day(sim: Simulator, wecom: WeCom) -> None:
    # given
    yesterday = sim.state.day_start(sim.clock.now()) - DAY
    owners = sorted({c.owner for c in sim.state.groups.values()})
    # when
    by_owner = wecom.ok(
        "POST",
        "externalcontact/groupchat/statistic",
        {"day_begin_time": yesterday - 2 * DAY, "day_end_time": yesterday, "order_by": 2, "limit": 1000},
    )
    by_day = wecom.ok(
        "POST",
        "externalcontact/groupchat/statistic_group_by_day",
        {
            "day_begin_time": yesterday - 2 * DAY,
            "day_end_time": yesterday,
            "owner_filter": {"userid_list": owners},
        },
    )
    today = wecom.post("externalcontact/groupchat/statistic", {"day_begin_time": yesterday + DAY})
    # then
    assert by_owner["total"] == len(owners)
    totals = [i["data"]["chat_total"] for i in by_owner["items"]]
    assert totals == sorted(totals, reverse=True)
    assert sum(totals) == sum(1 for c in sim.state.groups.values() if c.create_time < yesterday + DAY)
    assert [i["stat_time"] for i in by_day["items"]] == [yesterday - 2 * DAY, yesterday - DAY, yesterday]
    assert {"new_chat_cnt", "chat_total", "member_total", "msg_total"} <= set(by_day["items"][0]["data"])
    assert today["errcode"] == 40058  # figures exist up to yesterday


def test_uploads_give_media_ids(sim: Simulator, wecom: WeCom) -> None:
    # when
    upload = wecom.http.post(
        "media/upload",
        params={"access_token": wecom.token, "type": "image"},
        files={"media": ("a.png", b"\x89PNG...", "image/png")},
    ).json()
    attachment = wecom.http.post(
        "media/upload_attachment",
        params={"access_token": wecom.token, "media_type": "image", "attachment_type": "1"},
        files={"media": ("a.png", b"\x89PNG...", "image/png")},
    ).json()
    empty = wecom.http.post("media/upload", params={"access_token": wecom.token, "type": "image"}).json()
    bad_type = wecom.http.post(
        "media/upload", params={"access_token": wecom.token, "type": "gif"}, files={"media": ("a", b"x")}
    ).json()
    # then
    assert upload["errcode"] == 0 and upload["type"] == "image" and isinstance(upload["created_at"], str)
    assert sim.state.media[upload["media_id"]]["size"] == 7
    assert attachment["errcode"] == 0 and isinstance(attachment["created_at"], int)
    assert empty["errcode"] == 44001
    assert bad_type["errcode"] == 40004
