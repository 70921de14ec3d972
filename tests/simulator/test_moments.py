"""Customer moments: the asynchronous create job, publishing by members, and the read APIs."""

from __future__ import annotations

import pytest

from siyu.simulator.app import Simulator
from tests.simulator.conftest import WeCom


def create(sim: Simulator, wecom: WeCom, **extra: object) -> tuple[str, str]:
    jobid = wecom.ok("POST", "externalcontact/add_moment_task", {"text": {"content": "新品上市"}, **extra})[
        "jobid"
    ]
    result = wecom.ok("GET", "externalcontact/get_moment_task_result", jobid=jobid)
    return jobid, result["result"]["moment_id"]


def test_a_moment_is_created_asynchronously(sim: Simulator, wecom: WeCom) -> None:
    # given
    sim.config.moment_job_delay = 30
    sim.clock.freeze()
    sender = sim.state.follow_users()[0]
    body = {
        "text": {"content": "新品上市"},
        "visible_range": {"sender_list": {"user_list": [sender, "nobody"], "department_list": [999]}},
    }
    jobid = wecom.ok("POST", "externalcontact/add_moment_task", body)["jobid"]
    # when
    running = wecom.ok("GET", "externalcontact/get_moment_task_result", jobid=jobid)
    sim.clock.advance(31)
    finished = wecom.ok("GET", "externalcontact/get_moment_task_result", jobid=jobid)
    # then
    assert running["status"] == 2 and "result" not in running
    assert finished["status"] == 3 and finished["type"] == "add_moment_task"
    result = finished["result"]
    assert result["moment_id"].startswith("mom")
    assert result["invalid_sender_list"] == {"user_list": ["nobody"], "department_list": [999]}
    tasks = wecom.ok("POST", "externalcontact/get_moment_task", {"moment_id": result["moment_id"]})[
        "task_list"
    ]
    assert tasks == [{"userid": sender, "publish_status": 0}]


def test_publishing_then_reading_results(sim: Simulator, wecom: WeCom) -> None:
    # given
    sender = max(sim.state.follow_users(), key=lambda u: len(sim.state.staff[u].follow_list))
    _jobid, moment_id = create(sim, wecom, visible_range={"sender_list": {"user_list": [sender]}})
    body = {"moment_id": moment_id, "userid": sender}
    # when
    before = wecom.post("externalcontact/get_moment_send_result", body)
    sim.actions.publish_moment(moment_id=moment_id)
    audience = wecom.ok("POST", "externalcontact/get_moment_customer_list", body)["customer_list"]
    sent = wecom.ok("POST", "externalcontact/get_moment_send_result", body)["customer_list"]
    comments = wecom.ok("POST", "externalcontact/get_moment_comments", body)
    now = sim.clock.now()
    listed = wecom.ok(
        "POST", "externalcontact/get_moment_list", {"start_time": now - 60, "end_time": now + 60}
    )
    # then
    assert before["errcode"] == 41062
    expected = {f.external_userid for f in sim.state.staff[sender].follow_list}
    assert {c["external_userid"] for c in audience} == expected
    assert {c["external_userid"] for c in sent} == expected
    assert set(comments) >= {"comment_list", "like_list"}
    assert [m["moment_id"] for m in listed["moment_list"]] == [moment_id]
    assert listed["moment_list"][0]["text"] == {"content": "新品上市"}


def test_tag_visibility_limits_the_audience(sim: Simulator, wecom: WeCom) -> None:
    # given
    sender = max(sim.state.follow_users(), key=lambda u: len(sim.state.staff[u].follow_list))
    tag = next(iter(sim.state.tags.values()))
    tagged = sim.state.staff[sender].follow_list[0]
    tagged.tag_ids = [tag.id]
    for follow in sim.state.staff[sender].follow_list[1:]:
        follow.tag_ids = []
    _jobid, moment_id = create(
        sim,
        wecom,
        visible_range={
            "sender_list": {"user_list": [sender]},
            "external_contact_list": {"tag_list": [tag.id, "etNOPE"]},
        },
    )
    # when
    audience = wecom.ok(
        "POST", "externalcontact/get_moment_customer_list", {"moment_id": moment_id, "userid": sender}
    )["customer_list"]
    # then
    assert [c["external_userid"] for c in audience] == [tagged.external_userid]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, 41089),
        ({"attachments": [{"msgtype": "image", "image": {"media_id": "m"}}] * 10}, 41064),
        ({"attachments": [{"msgtype": "video", "video": {"media_id": "m"}}] * 2}, 41064),
        (
            {
                "attachments": [
                    {"msgtype": "image", "image": {"media_id": "m"}},
                    {"msgtype": "video", "video": {"media_id": "m"}},
                ]
            },
            41065,
        ),
        ({"attachments": [{"msgtype": "file", "file": {"media_id": "m"}}]}, 41065),
    ],
)
def test_add_moment_task_errors(wecom: WeCom, body: dict, code: int) -> None:
    # when
    answer = wecom.post("externalcontact/add_moment_task", body)
    # then
    assert answer["errcode"] == code


def test_read_errors(sim: Simulator, wecom: WeCom) -> None:
    # given
    _jobid, moment_id = create(sim, wecom)
    stranger = sim.actions.staff_create()["userid"]  # joined after the moment: not one of its senders
    now = sim.clock.now()
    # when / then
    assert wecom.post("externalcontact/get_moment_task", {})["errcode"] == 41059
    assert wecom.post("externalcontact/get_moment_task", {"moment_id": "momNOPE"})["errcode"] == 41060
    assert (
        wecom.post("externalcontact/get_moment_customer_list", {"moment_id": moment_id, "userid": stranger})[
            "errcode"
        ]
        == 41061
    )
    assert (
        wecom.post("externalcontact/get_moment_list", {"start_time": now - 31 * 86400, "end_time": now})[
            "errcode"
        ]
        == 40058
    )
    wecom.ok("POST", "externalcontact/cancel_moment_task", {"moment_id": moment_id})
    assert sim.state.moments[moment_id].cancelled
