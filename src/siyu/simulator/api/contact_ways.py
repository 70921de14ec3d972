"""「联系我」 contact ways (§4.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import (
    Request,
    Result,
    get_bool,
    get_int,
    get_list,
    get_object,
    get_str,
    route,
)
from siyu.simulator.api.customers import relation
from siyu.simulator.errors import ApiError
from siyu.simulator.state import ContactWay

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

REMARK_MAX = 30  # §4.3 remark ≤ 30 chars
STATE_MAX = 30  # §4.3 state ≤ 30 chars
USERS_MAX = 100  # §4.3 ≤ 100 users per config incl. departments expanded (41041)
CONTACT_WAY_MAX = 500_000  # §4.3 "每个企业可通过API最多配置50万个「联系我」" (41045)
TEMP_MAX_SECONDS = 14 * 86400  # §4.3 expires_in / chat_expires_in at most 14 days
TEMP_DEFAULT_EXPIRES = 7 * 86400
TEMP_DEFAULT_CHAT_EXPIRES = 86400
LIST_DEFAULT_LIMIT = 100  # §4.3 list_contact_way: limit default 100, max 1000
LIST_MAX_LIMIT = 1000
LIST_DEFAULT_SPAN = 90 * 86400  # start_time defaults to 90 days ago


def contact_way_json(way: ContactWay) -> dict[str, Any]:
    data: dict[str, Any] = {
        "config_id": way.config_id,
        "type": way.type,
        "scene": way.scene,
        "style": way.style,
        "remark": way.remark,
        "skip_verify": way.skip_verify,
        "state": way.state,
        "user": list(way.user),
        "party": list(way.party),
        "is_temp": way.is_temp,
    }
    if way.scene == 2:
        data["qr_code"] = way.qr_code
    if way.is_temp:
        data.update({"expires_in": way.expires_in, "chat_expires_in": way.chat_expires_in})
        if way.unionid:
            data["unionid"] = way.unionid
        if way.conclusions:
            data["conclusions"] = way.conclusions
    return data


def _members(sim: Simulator, users: list[str], parties: list[int]) -> None:
    for userid in users:
        member = sim.state.active_staff(userid)
        if member is None:
            raise ApiError(40003)
        if not member.customer_contact:
            raise ApiError(84074)
    for party in parties:
        if party not in sim.state.departments:
            raise ApiError(60123)
    expanded = set(users)
    if parties:
        expanded.update(
            sim.state.staff_in_departments([d for p in parties for d in sim.state.department_and_children(p)])
        )
    if len(expanded) > USERS_MAX:
        raise ApiError(41041)


def _apply_common(sim: Simulator, way: ContactWay, data: dict[str, Any], *, creating: bool) -> None:
    """Validate and apply the fields add and update share; nothing changes unless all are valid."""
    remark = get_str(data, "remark", max_chars=REMARK_MAX) if "remark" in data else None
    state_value = get_str(data, "state", max_chars=STATE_MAX) if "state" in data else None
    style = get_int(data, "style", minimum=1, maximum=4) if data.get("style") is not None else None
    skip_verify = get_bool(data, "skip_verify", default=True) if "skip_verify" in data else None
    users = get_list(data, "user") if "user" in data else None
    parties = get_list(data, "party", item=int) if "party" in data else None
    new_users = users if users is not None else way.user
    new_parties = parties if parties is not None else way.party
    if way.type == 1 and (len(new_users) != 1 or new_parties):
        raise ApiError(40058, "single contact way needs exactly one user")
    if way.type == 2 and not new_users and not new_parties:
        raise ApiError(40058, "user and party are both empty")
    _members(sim, new_users, new_parties)
    expires_in = chat_expires_in = None
    conclusions = None
    if way.is_temp:
        if "expires_in" in data or creating:
            expires_in = get_int(
                data, "expires_in", default=TEMP_DEFAULT_EXPIRES, minimum=1, maximum=TEMP_MAX_SECONDS
            )
        if "chat_expires_in" in data or creating:
            chat_expires_in = get_int(
                data,
                "chat_expires_in",
                default=TEMP_DEFAULT_CHAT_EXPIRES,
                minimum=1,
                maximum=TEMP_MAX_SECONDS,
            )
        if "conclusions" in data:
            conclusions = get_object(data, "conclusions")
    way.user = list(new_users)
    way.party = list(new_parties)
    if remark is not None:
        way.remark = remark
    if state_value is not None:
        way.state = state_value
    if style is not None:
        way.style = style
    if skip_verify is not None:
        way.skip_verify = skip_verify
    if expires_in is not None:
        way.expires_in = expires_in
    if chat_expires_in is not None:
        way.chat_expires_in = chat_expires_in
    if conclusions is not None:
        way.conclusions = conclusions
    if "unionid" in data and way.is_temp:
        way.unionid = get_str(data, "unionid")


@route("externalcontact/add_contact_way")
def add_contact_way(sim: Simulator, request: Request) -> Result:
    data = request.json()
    if data.get("type") in (None, ""):
        raise ApiError(41037)
    if data.get("scene") in (None, ""):
        raise ApiError(41038)
    way_type = get_int(data, "type")
    scene = get_int(data, "scene")
    if way_type not in (1, 2):
        raise ApiError(41039)
    if scene not in (1, 2):
        raise ApiError(41040)
    if data.get("style") is not None and get_int(data, "style") not in (1, 2, 3, 4):
        raise ApiError(41042)
    is_temp = get_bool(data, "is_temp", default=False)
    if is_temp and way_type != 1:
        raise ApiError(40058, "temporary session needs a single user")
    if not is_temp and len(sim.state.contact_ways) >= CONTACT_WAY_MAX:
        raise ApiError(41045)
    state = sim.state
    way = ContactWay(
        config_id=state.random_id("", 32, "0123456789abcdef"),
        type=way_type,
        scene=scene,
        create_time=sim.clock.now(),
        seq=state.next_seq(),
        is_temp=is_temp,
    )
    _apply_common(sim, way, data, creating=True)
    if scene == 2:
        # WeCom's image host is wework.qpic.cn; the simulator serves the image itself, at the same path.
        way.qr_code = f"{sim.base_url}/wwpic/{state.random_id('', 24)}/0"
    state.contact_ways[way.config_id] = way
    result: Result = {"config_id": way.config_id}
    if scene == 2:
        result["qr_code"] = way.qr_code
    return result


def _way(sim: Simulator, data: dict[str, Any]) -> ContactWay:
    config_id = get_str(data, "config_id", required=True, missing=41043)
    way = sim.state.contact_ways.get(config_id)
    if way is None:
        raise ApiError(41044)
    return way


@route("externalcontact/get_contact_way")
def get_contact_way(sim: Simulator, request: Request) -> Result:
    way = _way(sim, request.json())
    data = contact_way_json(way)
    # Current docs answer an object; old ones (still in wechatpy's fixture) an array (§4.3).
    return {"contact_way": [data] if sim.config.legacy_contact_way_array else data}


@route("externalcontact/list_contact_way")
def list_contact_way(sim: Simulator, request: Request) -> Result:
    data = request.json() if request.body.strip() else {}
    now = sim.clock.now()
    end_time = get_int(data, "end_time", default=now)
    start_time = get_int(data, "start_time", default=end_time - LIST_DEFAULT_SPAN)
    if start_time > end_time:
        raise ApiError(40058, "start_time is after end_time")
    limit = get_int(data, "limit", default=LIST_DEFAULT_LIMIT, minimum=1, maximum=LIST_MAX_LIMIT, clamp=True)
    cursor = get_str(data, "cursor")
    last_seq = sim.cursors.decode("list_contact_way", cursor) if cursor else 0
    ways = sorted(
        (
            w
            for w in sim.state.contact_ways.values()
            if start_time <= w.create_time <= end_time and w.seq > last_seq
        ),
        key=lambda w: w.seq,
    )
    chunk = ways[:limit]
    next_cursor = sim.cursors.encode("list_contact_way", chunk[-1].seq) if len(ways) > limit else ""
    return {"contact_way": [{"config_id": w.config_id} for w in chunk], "next_cursor": next_cursor}


@route("externalcontact/update_contact_way")
def update_contact_way(sim: Simulator, request: Request) -> Result:
    data = request.json()
    way = _way(sim, data)
    _apply_common(sim, way, data, creating=False)
    return {}


@route("externalcontact/del_contact_way")
def del_contact_way(sim: Simulator, request: Request) -> Result:
    way = _way(sim, request.json())
    del sim.state.contact_ways[way.config_id]
    return {}


@route("externalcontact/close_temp_chat")
def close_temp_chat(sim: Simulator, request: Request) -> Result:
    data = request.json()
    relation(sim, get_str(data, "userid"), get_str(data, "external_userid"))
    return {}
