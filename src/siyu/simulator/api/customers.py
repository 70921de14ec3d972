"""Customers and follow relations (§4.1): follow users, list, get, batch/get_by_user, remark."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import Request, Result, get_int, get_list, get_str, route
from siyu.simulator.errors import ApiError
from siyu.simulator.state import Customer, Follow, Staff

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

GET_FOLLOW_PAGE = 500  # §4.1 get: follow_user is paged beyond 500 follow users
BATCH_MAX_USERS = 100  # §4.1 batch/get_by_user: userid_list ≤ 100
BATCH_MAX_LIMIT = 100  # … limit max 100, "超过最大值时取最大值"
BATCH_DEFAULT_LIMIT = 50
REMARK_MAX = 20  # §4.1 remark ≤ 20 chars, description ≤ 150, remark_company ≤ 20
DESCRIPTION_MAX = 150


def contact_json(customer: Customer) -> dict[str, Any]:
    data: dict[str, Any] = {
        "external_userid": customer.external_userid,
        "name": customer.name,
        "avatar": customer.avatar,
        "type": customer.type,
        "gender": customer.gender,
    }
    if customer.unionid:
        data["unionid"] = customer.unionid
    if customer.type == 2:
        data.update(
            {
                "position": customer.position,
                "corp_name": customer.corp_name,
                "corp_full_name": customer.corp_full_name,
                "external_profile": {"external_attr": []},
            }
        )
    return data


def _relation_common(follow: Follow) -> dict[str, Any]:
    data: dict[str, Any] = {
        "userid": follow.userid,
        "remark": follow.remark,
        "description": follow.description,
        "createtime": follow.createtime,
    }
    return data


def _relation_tail(follow: Follow, data: dict[str, Any]) -> dict[str, Any]:
    if follow.remark_corp_name:
        data["remark_corp_name"] = follow.remark_corp_name
    if follow.remark_mobiles:
        data["remark_mobiles"] = list(follow.remark_mobiles)
    data["oper_userid"] = follow.oper_userid
    data["add_way"] = follow.add_way
    if follow.state:
        data["state"] = follow.state
    return data


def follow_user_json(sim: Simulator, follow: Follow) -> dict[str, Any]:
    """A relation as ``get`` shows it: tags as objects with their names."""
    data = _relation_common(follow)
    tags = []
    for tag_id in follow.tag_ids:
        tag = sim.state.tags.get(tag_id)
        if tag is None or tag.deleted:
            continue
        group = sim.state.tag_groups.get(tag.group_id)
        tags.append(
            {"group_name": group.name if group else "", "tag_name": tag.name, "tag_id": tag.id, "type": 1}
        )
    data["tags"] = tags
    return _relation_tail(follow, data)


def follow_info_json(follow: Follow) -> dict[str, Any]:
    """A relation as ``batch/get_by_user`` shows it: tag ids only."""
    data = _relation_common(follow)
    data["tag_id"] = list(follow.tag_ids)
    return _relation_tail(follow, data)


def visible_follows(sim: Simulator, customer: Customer) -> list[Follow]:
    """Relations with members still in the corp, oldest first."""
    follows = [f for f in customer.follows.values() if sim.state.active_staff(f.userid) is not None]
    follows.sort(key=lambda f: f.seq)
    return follows


def contact_staff(sim: Simulator, userid: str) -> Staff:
    """A member who may have customers: 40003 unknown, 84074 without 客户联系 permission."""
    member = sim.state.active_staff(userid)
    if member is None:
        raise ApiError(40003)
    if not member.customer_contact:
        raise ApiError(84074)
    return member


def customer_of(sim: Simulator, external_userid: str) -> Customer:
    if not external_userid:
        raise ApiError(41035)
    customer = sim.state.customers.get(external_userid)
    if customer is None:
        raise ApiError(40096)
    return customer


def relation(sim: Simulator, userid: str, external_userid: str) -> tuple[Staff, Customer, Follow]:
    """A live relation; 84061 when the member has no such customer."""
    if not userid:
        raise ApiError(41009)
    member = contact_staff(sim, userid)
    customer = customer_of(sim, external_userid)
    follow = customer.follows.get(userid)
    if follow is None:
        raise ApiError(84061)
    return member, customer, follow


@route("externalcontact/get_follow_user_list", method="GET")
def get_follow_user_list(sim: Simulator, request: Request) -> Result:
    return {"follow_user": sim.state.follow_users()}


@route("externalcontact/list", method="GET")
def list_customers(sim: Simulator, request: Request) -> Result:
    userid = get_str(request.query, "userid", required=True, missing=41009)
    member = contact_staff(sim, userid)
    return {"external_userid": [f.external_userid for f in member.follow_list]}


@route("externalcontact/get", method="GET")
def get_customer(sim: Simulator, request: Request) -> Result:
    customer = customer_of(sim, request.query.get("external_userid", ""))
    follows = visible_follows(sim, customer)
    if not follows:
        raise ApiError(84061)
    cursor = request.query.get("cursor", "")
    start = sim.cursors.decode("externalcontact/get", cursor) if cursor else 0
    chunk = follows[start : start + GET_FOLLOW_PAGE]
    result: Result = {
        "external_contact": contact_json(customer),
        "follow_user": [follow_user_json(sim, f) for f in chunk],
    }
    following = start + GET_FOLLOW_PAGE
    result["next_cursor"] = (
        sim.cursors.encode("externalcontact/get", following) if following < len(follows) else ""
    )
    return result


@route("externalcontact/batch/get_by_user")
def batch_get_by_user(sim: Simulator, request: Request) -> Result:
    data = request.json()
    if "userid_list" in data:
        userids = get_list(data, "userid_list", max_items=BATCH_MAX_USERS, required=True)
    elif data.get("userid"):
        userids = [get_str(data, "userid")]  # the older single-userid form (§4.1), still sent by wechatpy
    else:
        raise ApiError(40058, "missing userid_list")
    for userid in userids:
        if len(userid) > 64:
            raise ApiError(40058, "field `userid_list` exceed max length 64")
    members = [contact_staff(sim, u) for u in userids]
    limit = get_int(data, "limit", default=BATCH_DEFAULT_LIMIT, maximum=BATCH_MAX_LIMIT, clamp=True)
    if limit < 1:
        limit = BATCH_DEFAULT_LIMIT
    cursor = get_str(data, "cursor")
    user_index, last_seq = sim.cursors.decode("batch/get_by_user", cursor) if cursor else (0, 0)
    items: list[dict[str, Any]] = []
    next_position: tuple[int, int] | None = None
    while user_index < len(members):
        member = members[user_index]
        start, follows = sim.state.follows_after(member, last_seq)
        room = limit - len(items)
        chunk = follows[start : start + room]
        for follow in chunk:
            customer = sim.state.customers[follow.external_userid]
            items.append(
                {"external_contact": contact_json(customer), "follow_info": follow_info_json(follow)}
            )
        if len(items) >= limit:
            more_here = start + len(chunk) < len(follows)
            if more_here:
                next_position = (user_index, chunk[-1].seq)
            elif user_index + 1 < len(members):
                next_position = (user_index + 1, 0)
            break
        user_index += 1
        last_seq = 0
    next_cursor = sim.cursors.encode("batch/get_by_user", list(next_position)) if next_position else ""
    return {"external_contact_list": items, "next_cursor": next_cursor}


@route("externalcontact/remark")
def remark(sim: Simulator, request: Request) -> Result:
    data = request.json()
    _member, _customer, follow = relation(sim, get_str(data, "userid"), get_str(data, "external_userid"))
    # Only the fields present change (an empty remark_mobiles list clears them).
    new_remark = get_str(data, "remark", max_chars=REMARK_MAX) if "remark" in data else None
    description = get_str(data, "description", max_chars=DESCRIPTION_MAX) if "description" in data else None
    company = get_str(data, "remark_company", max_chars=REMARK_MAX) if "remark_company" in data else None
    mobiles = get_list(data, "remark_mobiles", max_items=5) if "remark_mobiles" in data else None
    get_str(data, "remark_pic_mediaid")
    if new_remark is not None:
        follow.remark = new_remark
    if description is not None:
        follow.description = description
    if company is not None:
        follow.remark_corp_name = company
    if mobiles is not None:
        follow.remark_mobiles = list(mobiles)
    return {}
