"""Customer groups 客户群 (§4.7): list and get."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import Request, Result, get_int, get_list, get_object, get_str, route
from siyu.simulator.errors import ApiError
from siyu.simulator.state import GroupChat

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

LIST_MAX_LIMIT = 1000  # §4.7 limit 1..1000, required
OWNER_FILTER_MAX = 100  # §4.7 owner_filter.userid_list ≤ 100
UNFILTERED_MAX_MEMBERS = 1000  # §4.7 without owner_filter and > 1000 visible members ⇒ 81017


def group_json(chat: GroupChat, *, need_name: bool) -> dict[str, Any]:
    members = []
    for member in chat.members.values():
        item: dict[str, Any] = {"userid": member.userid, "type": member.type}
        if member.type == 2 and member.unionid:
            item["unionid"] = member.unionid
        item.update({"join_time": member.join_time, "join_scene": member.join_scene})
        if member.invitor:
            item["invitor"] = {"userid": member.invitor}
        item["group_nickname"] = member.group_nickname
        if need_name:
            item["name"] = member.name
        members.append(item)
    return {
        "chat_id": chat.chat_id,
        "name": chat.name,
        "owner": chat.owner,
        "create_time": chat.create_time,
        "notice": chat.notice,
        "member_list": members,
        "admin_list": [{"userid": a} for a in chat.admins],
        "member_version": chat.member_version,
    }


@route("externalcontact/groupchat/list")
def groupchat_list(sim: Simulator, request: Request) -> Result:
    data = request.json()
    status_filter = get_int(data, "status_filter", default=0, minimum=0, maximum=3)
    owners = get_list(get_object(data, "owner_filter"), "userid_list", max_items=OWNER_FILTER_MAX)
    limit = get_int(data, "limit", required=True, minimum=1, maximum=LIST_MAX_LIMIT)
    members = sum(1 for s in sim.state.staff.values() if s.status != 5)  # the app sees the whole corp
    if not owners and members > UNFILTERED_MAX_MEMBERS:
        raise ApiError(81017)
    cursor = get_str(data, "cursor")
    last_seq = sim.cursors.decode("groupchat/list", cursor) if cursor else 0
    wanted = set(owners)
    found = sorted(
        (
            c
            for c in sim.state.groups.values()
            if not c.dismissed
            and c.seq > last_seq
            and (not wanted or c.owner in wanted)
            and (status_filter == 0 or c.status == status_filter)
        ),
        key=lambda c: c.seq,
    )
    chunk = found[:limit]
    next_cursor = sim.cursors.encode("groupchat/list", chunk[-1].seq) if len(found) > limit else ""
    return {
        "group_chat_list": [{"chat_id": c.chat_id, "status": c.status} for c in chunk],
        "next_cursor": next_cursor,
    }


def chat_of(sim: Simulator, chat_id: str) -> GroupChat:
    chat = sim.state.groups.get(chat_id)
    if chat is None or chat.dismissed:
        raise ApiError(40050)
    return chat


@route("externalcontact/groupchat/get")
def groupchat_get(sim: Simulator, request: Request) -> Result:
    data = request.json()
    chat = chat_of(sim, get_str(data, "chat_id", required=True))
    need_name = get_int(data, "need_name", default=0, minimum=0, maximum=1) == 1
    return {"group_chat": group_json(chat, need_name=need_name)}
