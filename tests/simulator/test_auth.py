"""gettoken, access_token checks, and the shape every answer shares (HTTP 200, errcode, errmsg with hint)."""

from __future__ import annotations

import re

import httpx

from siyu.simulator.app import Simulator
from tests.simulator.conftest import WeCom

ERRMSG = re.compile(
    r"^(?P<msg>.+), hint: \[\d+_\d+_[0-9a-f]{32}\], from ip: 127\.0\.0\.1, "
    r"more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=(?P<code>-?\d+)$"
)


def gettoken(sim: Simulator, http: httpx.Client, **params: str) -> httpx.Response:
    return http.get(f"{sim.api_base}gettoken", params=params)


def test_gettoken_returns_the_same_token_until_it_expires(sim: Simulator, http: httpx.Client) -> None:
    # given
    params = {"corpid": sim.config.corpid, "corpsecret": sim.config.secret}
    first = gettoken(sim, http, **params).json()
    # when
    sim.clock.advance(3600)
    again = gettoken(sim, http, **params).json()
    sim.clock.advance(3601)
    renewed = gettoken(sim, http, **params).json()
    # then
    assert first["errcode"] == 0 and first["errmsg"] == "ok"
    assert first["expires_in"] == 7200
    assert again["access_token"] == first["access_token"]
    assert 3590 <= again["expires_in"] <= 3600
    assert renewed["access_token"] != first["access_token"]
    assert len(first["access_token"]) <= 512


def test_an_expired_token_answers_42001_and_a_garbled_one_40014(sim: Simulator, wecom: WeCom) -> None:
    # given
    token = wecom.token
    # when
    sim.clock.advance(7201)
    expired = wecom.http.get("externalcontact/get_follow_user_list", params={"access_token": token}).json()
    garbled = wecom.http.get(
        "externalcontact/get_follow_user_list", params={"access_token": "x" + token}
    ).json()
    # then
    assert expired["errcode"] == 42001
    assert garbled["errcode"] == 40014


def test_gettoken_errors(sim: Simulator, http: httpx.Client) -> None:
    # when
    wrong_secret = gettoken(sim, http, corpid=sim.config.corpid, corpsecret="nope")
    wrong_corp = gettoken(sim, http, corpid="wwother", corpsecret=sim.config.secret)
    no_corp = gettoken(sim, http, corpsecret=sim.config.secret)
    no_secret = gettoken(sim, http, corpid=sim.config.corpid)
    # then
    assert [r.status_code for r in (wrong_secret, wrong_corp, no_corp, no_secret)] == [200] * 4
    assert [r.json()["errcode"] for r in (wrong_secret, wrong_corp, no_corp, no_secret)] == [
        40001,
        40013,
        41002,
        41004,
    ]


def test_every_api_needs_the_token_in_the_url(sim: Simulator, wecom: WeCom) -> None:
    # when
    missing = wecom.http.post("externalcontact/get_corp_tag_list", json={"access_token": wecom.token})
    # then
    answer = missing.json()
    assert missing.status_code == 200
    assert answer["errcode"] == 41001
    match = ERRMSG.match(answer["errmsg"])
    assert match is not None, answer["errmsg"]
    assert match["msg"] == "access_token missing"
    assert match["code"] == "41001"
    assert missing.headers["Error-Code"] == "41001"


def test_revoking_tokens_early_forces_a_refetch(sim: Simulator, wecom: WeCom) -> None:
    # given
    old = wecom.token
    # when
    sim.tokens.revoke_all("expired")
    with_old = wecom.http.get("externalcontact/get_follow_user_list", params={"access_token": old}).json()
    wecom._token = None
    new = wecom.token
    with_new = wecom.get("externalcontact/get_follow_user_list")
    # then
    assert with_old["errcode"] == 42001
    assert new != old
    assert with_new["errcode"] == 0


def test_revoking_as_invalid_answers_40014(sim: Simulator, wecom: WeCom) -> None:
    # given
    old = wecom.token
    # when
    sim.tokens.revoke_all("invalid")
    answer = wecom.http.get("externalcontact/get_follow_user_list", params={"access_token": old}).json()
    # then
    assert answer["errcode"] == 40014


def test_bad_json_and_a_get_to_a_post_endpoint_answer_40058(sim: Simulator, wecom: WeCom) -> None:
    # when
    bad = wecom.http.post(
        "externalcontact/batch/get_by_user", params={"access_token": wecom.token}, content=b"{not json"
    ).json()
    as_get = wecom.get("externalcontact/batch/get_by_user")
    not_object = wecom.http.post(
        "externalcontact/batch/get_by_user", params={"access_token": wecom.token}, content=b"[1, 2]"
    ).json()
    # then
    assert (bad["errcode"], as_get["errcode"], not_object["errcode"]) == (40058, 40058, 40058)
    assert ERRMSG.match(bad["errmsg"])


def test_unknown_paths_are_404_and_answers_are_json(sim: Simulator, wecom: WeCom) -> None:
    # when
    unknown = wecom.http.get("externalcontact/no_such_api", params={"access_token": wecom.token})
    known = wecom.http.get("externalcontact/get_follow_user_list", params={"access_token": wecom.token})
    # then
    assert unknown.status_code == 404
    assert known.headers["Content-Type"].startswith("application/json")
    assert list(known.json())[:2] == ["errcode", "errmsg"]
