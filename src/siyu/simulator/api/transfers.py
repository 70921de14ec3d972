"""Customer and group hand-over 在职继承 / 离职继承 (§4.8).

A customer transfer waits ``transfer_delay`` (24 h by default, as WeCom's "待24小时后自动接替") and then
completes, is refused, or fails on the takeover's customer cap; the scheduler finishes it and sends the
documented events. Group transfers take effect at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import Request, Result, get_int, get_list, get_str, route
from siyu.simulator.api.customers import contact_staff
from siyu.simulator.errors import MESSAGES, ApiError
from siyu.simulator.state import GroupMember, Staff, Transfer

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

CUSTOMERS_MAX = 100  # §4.8 ≤ 100 customers per call
MESSAGE_MAX = 200  # §4.8 transfer_success_msg ≤ 200 chars
TRANSFERS_PER_90_DAYS = 2  # §4.8 "90个自然日内，在职成员的每位客户仅可被转接2次" (40128)
NINETY_DAYS = 90 * 86400
RESULT_PAGE = 1000  # §4.8 transfer_result ≤ 1000 per page
UNASSIGNED_MAX_PAGE = 1000  # §4.8 get_unassigned_list page_size ≤ 1000, page_id*page_size < 50000
UNASSIGNED_MAX_OFFSET = 50000
CHATS_MAX = 100  # §4.8 group transfer: 1..100 chats


def _pending(sim: Simulator, external_userid: str) -> bool:
    return any(t.external_userid == external_userid and not t.completed for t in sim.state.transfers)


def _start_transfers(
    sim: Simulator, *, kind: str, handover: Staff, takeover: Staff, external_userids: list[str]
) -> list[dict[str, Any]]:
    state = sim.state
    now = sim.clock.now()
    results = []
    for external_userid in external_userids:
        customer = state.customers.get(external_userid)
        code = 0
        if customer is None:
            code = 40096
        elif handover.userid not in customer.follows:
            code = 40131
        elif _pending(sim, external_userid):
            code = 40129
        elif (
            kind == "onjob"
            and sum(1 for t in customer.transfers if t > now - NINETY_DAYS) >= TRANSFERS_PER_90_DAYS
        ):
            code = 40128
        if code == 0 and customer is not None:
            if kind == "onjob":
                customer.transfers.append(now)
            state.transfers.append(
                Transfer(
                    kind=kind,
                    handover=handover.userid,
                    takeover=takeover.userid,
                    external_userid=external_userid,
                    created=now,
                    takeover_time=now + int(sim.config.transfer_delay),
                    seq=state.next_seq(),
                )
            )
        results.append({"external_userid": external_userid, "errcode": code})
    return results


def _transfer_request(sim: Simulator, data: dict[str, Any]) -> tuple[str, Staff, list[str]]:
    handover_userid = get_str(data, "handover_userid", required=True, missing=41009)
    takeover = contact_staff(sim, get_str(data, "takeover_userid", required=True, missing=41009))
    if handover_userid == takeover.userid:
        raise ApiError(40130)
    external_userids = get_list(data, "external_userid", max_items=CUSTOMERS_MAX)
    if not external_userids:
        raise ApiError(41035)
    return handover_userid, takeover, external_userids


@route("externalcontact/transfer_customer")
def transfer_customer(sim: Simulator, request: Request) -> Result:
    data = request.json()
    handover_userid, takeover, external_userids = _transfer_request(sim, data)
    get_str(data, "transfer_success_msg", max_chars=MESSAGE_MAX)
    handover = contact_staff(sim, handover_userid)
    customers = _start_transfers(
        sim, kind="onjob", handover=handover, takeover=takeover, external_userids=external_userids
    )
    return {"customer": customers}


@route("externalcontact/resigned/transfer_customer")
def resigned_transfer_customer(sim: Simulator, request: Request) -> Result:
    data = request.json()
    handover_userid, takeover, external_userids = _transfer_request(sim, data)
    handover = sim.state.staff.get(handover_userid)
    if handover is None:
        raise ApiError(40003)
    if handover.status != 5:
        raise ApiError(40097)
    customers = _start_transfers(
        sim, kind="resigned", handover=handover, takeover=takeover, external_userids=external_userids
    )
    return {"customer": customers}


def _transfer_result(sim: Simulator, request: Request, kind: str) -> Result:
    data = request.json()
    handover = get_str(data, "handover_userid", required=True, missing=41009)
    takeover = get_str(data, "takeover_userid", required=True, missing=41009)
    cursor = get_str(data, "cursor")
    last_seq = sim.cursors.decode(f"transfer_result/{kind}", cursor) if cursor else 0
    found = [
        t
        for t in sim.state.transfers
        if t.kind == kind and t.handover == handover and t.takeover == takeover and t.seq > last_seq
    ]
    chunk = found[:RESULT_PAGE]
    customers = [
        {
            "external_userid": t.external_userid,
            "status": t.status,
            "takeover_time": t.takeover_time if t.status in (1, 2) else 0,
        }
        for t in chunk
    ]
    next_cursor = (
        sim.cursors.encode(f"transfer_result/{kind}", chunk[-1].seq) if len(found) > RESULT_PAGE else ""
    )
    return {"customer": customers, "next_cursor": next_cursor}


@route("externalcontact/transfer_result")
def transfer_result(sim: Simulator, request: Request) -> Result:
    return _transfer_result(sim, request, "onjob")


@route("externalcontact/resigned/transfer_result")
def resigned_transfer_result(sim: Simulator, request: Request) -> Result:
    return _transfer_result(sim, request, "resigned")


@route("externalcontact/get_unassigned_list")
def get_unassigned_list(sim: Simulator, request: Request) -> Result:
    data = request.json() if request.body.strip() else {}
    page_size = get_int(
        data, "page_size", default=UNASSIGNED_MAX_PAGE, minimum=1, maximum=UNASSIGNED_MAX_PAGE
    )
    page_id = get_int(data, "page_id", default=0, minimum=0)
    cursor = get_str(data, "cursor")
    done = {
        (t.handover, t.external_userid) for t in sim.state.transfers if t.kind == "resigned" and t.status == 1
    }
    rows = [
        (member.resigned_at or 0, follow.seq, member.userid, follow.external_userid)
        for member in sim.state.staff.values()
        if member.status == 5
        for follow in member.follow_list
        if (member.userid, follow.external_userid) not in done
    ]
    rows.sort()
    by_cursor = bool(cursor) or page_id == 0
    if cursor:
        start = sim.cursors.decode("get_unassigned_list", cursor)
    else:
        start = page_id * page_size
        if start >= UNASSIGNED_MAX_OFFSET:
            raise ApiError(40058, "page_id * page_size exceed 50000")
    chunk = rows[start : start + page_size]
    following = start + page_size
    is_last = following >= len(rows)
    result: Result = {
        "info": [{"handover_userid": u, "external_userid": e, "dimission_time": t} for t, _s, u, e in chunk],
        "is_last": is_last,
    }
    if by_cursor:  # next_cursor only when paging by cursor (§4.8)
        result["next_cursor"] = "" if is_last else sim.cursors.encode("get_unassigned_list", following)
    return result


def _group_transfer(sim: Simulator, request: Request, *, resigned: bool) -> Result:
    data = request.json()
    chat_ids = get_list(data, "chat_id_list", max_items=CHATS_MAX, required=True)
    new_owner = contact_staff(sim, get_str(data, "new_owner", required=True, missing=41009))
    failed = []
    for chat_id in chat_ids:
        chat = sim.state.groups.get(chat_id)
        code, message = 0, ""
        if chat is None or chat.dismissed:
            code, message = 40050, MESSAGES[40050]
        else:
            owner = sim.state.staff.get(chat.owner)
            owner_left = owner is None or owner.status == 5
            if resigned and not owner_left:
                code, message = 90500, MESSAGES[90500]
            elif not resigned and owner_left:
                code, message = 40058, "the owner of this chat is resigned"
            elif chat.owner == new_owner.userid:
                code, message = 40130, "new owner is the current owner"
        if code:
            failed.append({"chat_id": chat_id, "errcode": code, "errmsg": message})
            continue
        assert chat is not None
        chat.owner = new_owner.userid
        if resigned:
            chat.status = 3  # 离职继承完成
        if new_owner.userid not in chat.members:
            chat.members[new_owner.userid] = GroupMember(
                userid=new_owner.userid, type=1, join_time=sim.clock.now(), join_scene=1, name=new_owner.name
            )
    return {"failed_chat_list": failed}


@route("externalcontact/groupchat/transfer")
def groupchat_transfer(sim: Simulator, request: Request) -> Result:
    return _group_transfer(sim, request, resigned=True)


@route("externalcontact/groupchat/onjob_transfer")
def groupchat_onjob_transfer(sim: Simulator, request: Request) -> Result:
    return _group_transfer(sim, request, resigned=False)
