"""Statistics (§4.9): member behaviour and group figures, per day.

Counts that the simulator knows (new contacts, deletions by customers, groups and members) are real;
chat activity it does not simulate is derived from a hash of the member and day, so it is stable.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import Request, Result, get_int, get_list, get_object, route
from siyu.simulator.errors import ApiError
from siyu.simulator.state import CorpState, GroupChat

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

DAY = 86400
IDS_MAX = 100  # §4.9 userid / partyid ≤ 100 each; owner_filter ≤ 100
MAX_SPAN = 30 * DAY  # §4.9 span ≤ 30 days
HISTORY = 180 * DAY  # §4.9 only the last 180 days
STAT_MAX_LIMIT = 1000  # §4.9 groupchat/statistic limit 1..1000, default 500
STAT_DEFAULT_LIMIT = 500


def _noise(*parts: object) -> int:
    return int.from_bytes(hashlib.md5(repr(parts).encode(), usedforsecurity=False).digest()[:4], "big")


def _days(state: CorpState, start: int, end: int, now: int) -> list[int]:
    first, last = state.day_start(start), state.day_start(end)
    if last < first or last - first > MAX_SPAN:
        raise ApiError(40058, "time range must be within 30 days")
    if first < state.day_start(now) - HISTORY:
        raise ApiError(40058, "only the last 180 days are kept")
    return list(range(first, last + 1, DAY))


@route("externalcontact/get_user_behavior_data")
def get_user_behavior_data(sim: Simulator, request: Request) -> Result:
    data = request.json()
    state = sim.state
    userids = get_list(data, "userid", max_items=IDS_MAX)
    parties = get_list(data, "partyid", item=int, max_items=IDS_MAX)
    if not userids and not parties:
        raise ApiError(40058, "userid and partyid are both empty")
    for party in parties:
        if party not in state.departments:
            raise ApiError(60123)
    members = set(userids)
    for party in parties:
        members.update(state.staff_in_departments(state.department_and_children(party)))
    for userid in members:
        if userid not in state.staff:
            raise ApiError(40003)
    days = _days(
        state,
        get_int(data, "start_time", required=True),
        get_int(data, "end_time", required=True),
        sim.clock.now(),
    )
    new_contacts: dict[int, int] = {}
    for userid in members:
        for follow in state.staff[userid].follow_list:
            day = state.day_start(follow.createtime)
            new_contacts[day] = new_contacts.get(day, 0) + 1
    negative: dict[int, int] = {}
    for when, kind, userid, _external in state.deletions:
        if kind == "del_follow_user" and userid in members:
            day = state.day_start(when)
            negative[day] = negative.get(day, 0) + 1
    items = []
    for day in days:
        chat_cnt = sum(_noise("chat", u, day) % 40 for u in members)
        item: dict[str, Any] = {
            "stat_time": day,
            "chat_cnt": chat_cnt,
            "message_cnt": chat_cnt * 3 + sum(_noise("msg", u, day) % 20 for u in members),
            "negative_feedback_cnt": negative.get(day, 0),
            "new_apply_cnt": new_contacts.get(day, 0) + sum(_noise("apply", u, day) % 2 for u in members),
            "new_contact_cnt": new_contacts.get(day, 0),
        }
        if chat_cnt:  # only reported on days with chats
            item["reply_percentage"] = round(50 + (_noise("reply", day) % 5000) / 100, 2)
            item["avg_reply_time"] = 1 + _noise("time", day) % 30
        items.append(item)
    return {"behavior_data": items}


def _group_figures(chats: list[GroupChat], begin: int, end: int) -> dict[str, int]:
    """Figures for the days [begin, end] (end is the last day's midnight)."""
    until = end + DAY
    existing = [c for c in chats if c.create_time < until]
    new_chats = [c for c in existing if c.create_time >= begin]
    member_total = sum(sum(1 for m in c.members.values() if m.join_time < until) for c in existing)
    new_members = sum(sum(1 for m in c.members.values() if begin <= m.join_time < until) for c in existing)
    active = sum(1 for c in existing if _noise("has_msg", c.chat_id, begin) % 3 == 0)
    member_has_msg = sum(min(len(c.members), _noise("members", c.chat_id, begin) % 10) for c in existing)
    return {
        "new_chat_cnt": len(new_chats),
        "chat_total": len(existing),
        "chat_has_msg": active,
        "new_member_cnt": new_members,
        "member_total": member_total,
        "member_has_msg": member_has_msg,
        "msg_total": member_has_msg * 3,
        "migrate_trainee_chat_cnt": 0,
    }


def _group_filters(sim: Simulator, data: dict[str, Any]) -> tuple[list[int], dict[str, list[GroupChat]]]:
    state = sim.state
    begin = get_int(data, "day_begin_time", required=True)
    end = get_int(data, "day_end_time", default=begin)
    days = _days(state, begin, end, sim.clock.now())
    if days[-1] >= state.day_start(sim.clock.now()):  # figures exist up to yesterday
        raise ApiError(40058, "day_end_time must be before today")
    owners = get_list(get_object(data, "owner_filter"), "userid_list", max_items=IDS_MAX)
    by_owner: dict[str, list[GroupChat]] = {o: [] for o in owners}
    for chat in state.groups.values():
        if chat.dismissed or (owners and chat.owner not in by_owner):
            continue
        by_owner.setdefault(chat.owner, []).append(chat)
    return days, by_owner


ORDER_FIELDS = {1: "new_chat_cnt", 2: "chat_total", 3: "new_member_cnt", 4: "member_total"}


@route("externalcontact/groupchat/statistic")
def groupchat_statistic(sim: Simulator, request: Request) -> Result:
    data = request.json()
    days, by_owner = _group_filters(sim, data)
    order_by = get_int(data, "order_by", default=1, minimum=1, maximum=4)
    ascending = get_int(data, "order_asc", default=0, minimum=0, maximum=1) == 1
    offset = get_int(data, "offset", default=0, minimum=0)
    limit = get_int(data, "limit", default=STAT_DEFAULT_LIMIT, minimum=1, maximum=STAT_MAX_LIMIT)
    items: list[dict[str, Any]] = [
        {"owner": owner, "data": _group_figures(chats, days[0], days[-1])}
        for owner, chats in by_owner.items()
    ]
    key = ORDER_FIELDS[order_by]
    items.sort(key=lambda i: (i["data"][key], i["owner"]), reverse=not ascending)
    chunk = items[offset : offset + limit]
    return {"total": len(items), "next_offset": offset + len(chunk), "items": chunk}


@route("externalcontact/groupchat/statistic_group_by_day")
def groupchat_statistic_group_by_day(sim: Simulator, request: Request) -> Result:
    data = request.json()
    days, by_owner = _group_filters(sim, data)
    chats = [c for group in by_owner.values() for c in group]
    return {"items": [{"stat_time": day, "data": _group_figures(chats, day, day)} for day in days]}
