"""Welcome messages: a code is valid 20 s by the simulator's clock and usable once; content limits."""

from __future__ import annotations

import pytest

from siyu.simulator.app import Simulator
from tests.simulator.conftest import WeCom

IMAGE = {"msgtype": "image", "image": {"media_id": "MEDIA_ID"}}


def fresh_code(sim: Simulator) -> str:
    return sim.actions.scan_contact_way(state="web-home")["welcome_code"]


def test_a_code_works_once(sim: Simulator, wecom: WeCom) -> None:
    # given
    code = fresh_code(sim)
    body = {"welcome_code": code, "text": {"content": "您好，我是您的专属顾问"}, "attachments": [IMAGE]}
    # when
    first = wecom.post("externalcontact/send_welcome_msg", body)
    second = wecom.post("externalcontact/send_welcome_msg", body)
    # then
    assert first == {"errcode": 0, "errmsg": "ok"}
    assert second["errcode"] == 41051
    assert sim.state.welcome_codes[code].message is not None


def test_a_code_expires_after_20_seconds_of_the_simulated_clock(sim: Simulator, wecom: WeCom) -> None:
    # given
    sim.clock.freeze()
    early, late = fresh_code(sim), fresh_code(sim)
    body = {"text": {"content": "hi"}}
    # when
    sim.clock.advance(19.9)
    in_time = wecom.post("externalcontact/send_welcome_msg", {**body, "welcome_code": early})
    sim.clock.advance(0.2)
    too_late = wecom.post("externalcontact/send_welcome_msg", {**body, "welcome_code": late})
    # then
    assert in_time["errcode"] == 0
    assert too_late["errcode"] == 41050


def test_unknown_and_missing_codes(wecom: WeCom) -> None:
    # when / then
    assert (
        wecom.post("externalcontact/send_welcome_msg", {"welcome_code": "nope", "text": {"content": "x"}})[
            "errcode"
        ]
        == 41050
    )
    assert wecom.post("externalcontact/send_welcome_msg", {"text": {"content": "x"}})["errcode"] == 41049


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ({"text": {"content": "字" * 1334}}, 40058),  # 4002 bytes > 4000
        ({"attachments": [IMAGE] * 10}, 41064),
        ({"attachments": [{"msgtype": "voice", "voice": {"media_id": "m"}}]}, 41065),
        ({"attachments": [{"msgtype": "link", "link": {"title": "t"}}]}, 40058),
        ({}, 40058),
    ],
)
def test_content_limits_do_not_use_up_the_code(
    sim: Simulator, wecom: WeCom, content: dict, code: int
) -> None:
    # given
    welcome = fresh_code(sim)
    # when
    rejected = wecom.post("externalcontact/send_welcome_msg", {"welcome_code": welcome, **content})
    accepted = wecom.post(
        "externalcontact/send_welcome_msg", {"welcome_code": welcome, "text": {"content": "ok"}}
    )
    # then
    assert rejected["errcode"] == code
    assert accepted["errcode"] == 0


def test_text_of_exactly_4000_bytes_is_fine(sim: Simulator, wecom: WeCom) -> None:
    # when
    answer = wecom.post(
        "externalcontact/send_welcome_msg",
        {"welcome_code": fresh_code(sim), "text": {"content": "字" * 1333 + "a"}, "attachments": [IMAGE] * 9},
    )
    # then
    assert answer["errcode"] == 0
