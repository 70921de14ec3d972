"""Mass messaging 企业群发 (§4.5): a task the staff confirm (simulated), then per-recipient send statuses."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import Request, Result, get_bool, get_int, get_list, get_object, get_str, route
from siyu.simulator.api.customers import contact_staff, visible_follows
from siyu.simulator.api.welcome import check_content
from siyu.simulator.errors import ApiError
from siyu.simulator.state import CHINA, Follow, MsgTemplate, Recipient, SenderTask

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

EXTERNAL_USERID_MAX = 10000  # §4.5 external_userid ≤ 1万
CHAT_ID_MAX = 2000  # §4.5 chat_id_list ≤ 2000
LIST_MAX_LIMIT = 100  # get_groupmsg_list_v2: limit ≤ 100, default 50
LIST_DEFAULT_LIMIT = 50
LIST_MAX_SPAN = 30 * 86400  # unconfirmed upstream (§4.5); the moments list allows 30 days
TASK_MAX_LIMIT = 1000  # get_groupmsg_task / get_groupmsg_send_result: limit ≤ 1000, default 500
TASK_DEFAULT_LIMIT = 500
REMIND_MAX_PER_DAY = 3  # §4.5 "24小时内每个群发最多触发三次提醒"
# A member who does not confirm by themselves waits for a reminder: "never", as a far-off moment.
UNTIL_REMINDED = 10 * 365 * 86400.0


def quota_window(policy: str, now: int) -> tuple[int, int]:
    """The start of the current quota period and how many messages it allows (§4.5 receive quota)."""
    moment = datetime.fromtimestamp(now, CHINA)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if policy == "1_per_day":
        return int(midnight.timestamp()), 1
    if policy == "7_per_week":
        return int((midnight - timedelta(days=midnight.weekday())).timestamp()), 7
    month_start = int(midnight.replace(day=1).timestamp())
    if policy == "4_per_month":
        return month_start, 4
    return month_start, calendar.monthrange(moment.year, moment.month)[1]  # days_in_month


def within_quota(policy: str, received: list[int], now: int) -> bool:
    start, allowed = quota_window(policy, now)
    return sum(1 for t in received if t >= start) < allowed


def _matches_tags(follow: Follow, tag_groups: list[list[str]]) -> bool:
    # "同组标签之间按或关系进行筛选，不同组标签按且关系筛选"
    return all(any(t in follow.tag_ids for t in group) for group in tag_groups)


@route("externalcontact/add_msg_template")
def add_msg_template(sim: Simulator, request: Request) -> Result:
    data = request.json()
    state = sim.state
    chat_type = get_str(data, "chat_type", default="single")
    if chat_type not in ("single", "group"):
        raise ApiError(40058, "chat_type must be single or group")
    sender = get_str(data, "sender")
    external_userids = get_list(data, "external_userid", max_items=EXTERNAL_USERID_MAX)
    chat_ids = get_list(data, "chat_id_list", max_items=CHAT_ID_MAX)
    tag_filter = get_object(data, "tag_filter")
    tag_groups = [get_list(g, "tag_list") for g in get_list(tag_filter, "group_list", item=dict)]
    allow_select = get_bool(data, "allow_select", default=False)
    text, attachments = check_content(data)
    if sender:
        contact_staff(sim, sender)
    now = sim.clock.now()
    fail_list: list[str] = []
    recipients: dict[str, list[Recipient]] = {}
    if chat_type == "single":
        if chat_ids:
            raise ApiError(40058, "chat_id_list is only for chat_type group")
        if not external_userids and not sender:
            raise ApiError(40058, "external_userid and sender are both empty")
        follows: list[Follow] = []
        if external_userids:
            for external_userid in dict.fromkeys(external_userids):
                customer = state.customers.get(external_userid)
                candidates = visible_follows(sim, customer) if customer else []
                if sender:
                    candidates = [f for f in candidates if f.userid == sender]
                if not candidates:
                    fail_list.append(external_userid)
                    continue
                # "仅会推送给最后跟客户进行聊天互动的企业成员": the latest relation stands for the last chat.
                follows.append(max(candidates, key=lambda f: f.createtime))
        else:
            follows = list(state.staff[sender].follow_list)
        for follow in follows:
            if tag_groups and not _matches_tags(follow, tag_groups):
                continue
            recipients.setdefault(follow.userid, []).append(
                Recipient(userid=follow.userid, external_userid=follow.external_userid)
            )
    else:
        if external_userids:
            raise ApiError(40058, "external_userid is only for chat_type single")
        if not sender:
            raise ApiError(40058, "sender is required for chat_type group")
        wanted = set(chat_ids)
        for chat in state.groups.values():
            if chat.dismissed or chat.owner != sender or (wanted and chat.chat_id not in wanted):
                continue
            recipients.setdefault(sender, []).append(Recipient(userid=sender, chat_id=chat.chat_id))
    if not recipients:
        raise ApiError(41048)
    template = MsgTemplate(
        msgid=state.random_id("msg"),
        chat_type=chat_type,
        create_time=now,
        seq=state.next_seq(),
        sender=sender,
        text=text,
        attachments=attachments,
        allow_select=allow_select,
        recipients=recipients,
    )
    start = sim.clock.time() + sim.config.msg_confirm_delay
    for userid in recipients:
        # Simulated staff: some confirm a while after the others, some only once reminded.
        if state.rng.random() < sim.config.msg_confirm_share:
            confirm_at = start + state.rng.uniform(0.0, max(0.0, sim.config.msg_confirm_spread))
        else:
            confirm_at = start + UNTIL_REMINDED
        template.tasks[userid] = SenderTask(userid=userid, confirm_at=confirm_at)
    state.msg_templates[template.msgid] = template
    return {"fail_list": fail_list, "msgid": template.msgid}


def confirm_task(sim: Simulator, template: MsgTemplate, userid: str) -> None:
    """The member confirms in the client: each recipient gets status 1, 2 (not a friend) or 3 (over quota)."""
    task = template.tasks[userid]
    if task.status != 0 or template.cancelled:
        return
    now = sim.clock.now()
    task.status = 2
    task.send_time = now
    for recipient in template.recipients.get(userid, []):
        if recipient.chat_id:
            chat = sim.state.groups.get(recipient.chat_id)
            reachable = chat is not None and not chat.dismissed
            key = recipient.chat_id
        else:
            customer = sim.state.customers.get(recipient.external_userid)
            reachable = customer is not None and userid in customer.follows
            key = recipient.external_userid
        if not reachable:
            recipient.status = 2
            continue
        received = sim.state.received.setdefault(key, [])
        if not within_quota(sim.config.quota_policy, received, now):
            recipient.status = 3
            continue
        received.append(now)
        recipient.status = 1
        recipient.send_time = now


def _template(sim: Simulator, data: dict[str, Any]) -> MsgTemplate:
    msgid = get_str(data, "msgid", required=True, missing=41046)
    template = sim.state.msg_templates.get(msgid)
    if template is None:
        raise ApiError(41047)
    return template


def _dispatched(sim: Simulator, template: MsgTemplate) -> None:
    if sim.clock.time() < template.create_time + sim.config.msg_dispatch_delay:
        raise ApiError(41063)


@route("externalcontact/get_groupmsg_list_v2")
def get_groupmsg_list_v2(sim: Simulator, request: Request) -> Result:
    data = request.json()
    chat_type = get_str(data, "chat_type", default="single")
    start_time = get_int(data, "start_time", required=True)
    end_time = get_int(data, "end_time", required=True)
    if end_time < start_time or end_time - start_time > LIST_MAX_SPAN:
        raise ApiError(40058, "invalid time range")
    creator = get_str(data, "creator")
    filter_type = get_int(data, "filter_type", default=2, minimum=0, maximum=2)
    limit = get_int(data, "limit", default=LIST_DEFAULT_LIMIT, minimum=1, maximum=LIST_MAX_LIMIT, clamp=True)
    cursor = get_str(data, "cursor")
    last_seq = sim.cursors.decode("get_groupmsg_list_v2", cursor) if cursor else 0
    if filter_type == 1:  # member-created sends; every API-made task is corp-created (create_type 0)
        found: list[MsgTemplate] = []
    else:
        found = sorted(
            (
                t
                for t in sim.state.msg_templates.values()
                if t.chat_type == chat_type
                and start_time <= t.create_time <= end_time
                and t.seq > last_seq
                and (not creator or t.sender == creator)
            ),
            key=lambda t: t.seq,
        )
    for template in found[:limit]:
        _dispatched(sim, template)
    chunk = found[:limit]
    items = []
    for template in chunk:
        item: dict[str, Any] = {
            "msgid": template.msgid,
            "create_time": str(template.create_time),  # the documented sample writes it as a string
            "create_type": 0,
        }
        if template.text:
            item["text"] = template.text
        item["attachments"] = template.attachments
        items.append(item)
    next_cursor = sim.cursors.encode("get_groupmsg_list_v2", chunk[-1].seq) if len(found) > limit else ""
    return {"group_msg_list": items, "next_cursor": next_cursor}


@route("externalcontact/get_groupmsg_task")
def get_groupmsg_task(sim: Simulator, request: Request) -> Result:
    data = request.json()
    template = _template(sim, data)
    _dispatched(sim, template)
    limit = get_int(data, "limit", default=TASK_DEFAULT_LIMIT, minimum=1, maximum=TASK_MAX_LIMIT, clamp=True)
    cursor = get_str(data, "cursor")
    start = sim.cursors.decode("get_groupmsg_task", cursor) if cursor else 0
    tasks = list(template.tasks.values())
    chunk = tasks[start : start + limit]
    items = []
    for task in chunk:
        item: dict[str, Any] = {"userid": task.userid, "status": task.status}
        if task.send_time is not None:
            item["send_time"] = task.send_time
        items.append(item)
    following = start + limit
    next_cursor = sim.cursors.encode("get_groupmsg_task", following) if following < len(tasks) else ""
    return {"task_list": items, "next_cursor": next_cursor}


@route("externalcontact/get_groupmsg_send_result")
def get_groupmsg_send_result(sim: Simulator, request: Request) -> Result:
    data = request.json()
    template = _template(sim, data)
    userid = get_str(data, "userid", required=True, missing=41009)
    _dispatched(sim, template)
    limit = get_int(data, "limit", default=TASK_DEFAULT_LIMIT, minimum=1, maximum=TASK_MAX_LIMIT, clamp=True)
    cursor = get_str(data, "cursor")
    start = sim.cursors.decode("get_groupmsg_send_result", cursor) if cursor else 0
    recipients = template.recipients.get(userid, [])
    chunk = recipients[start : start + limit]
    items = []
    for recipient in chunk:
        item: dict[str, Any] = {}
        if recipient.chat_id:
            item["chat_id"] = recipient.chat_id
        else:
            item["external_userid"] = recipient.external_userid
        item.update({"userid": recipient.userid, "status": recipient.status})
        if recipient.send_time is not None:
            item["send_time"] = recipient.send_time
        items.append(item)
    following = start + limit
    next_cursor = (
        sim.cursors.encode("get_groupmsg_send_result", following) if following < len(recipients) else ""
    )
    return {"send_list": items, "next_cursor": next_cursor}


@route("externalcontact/remind_groupmsg_send")
def remind_groupmsg_send(sim: Simulator, request: Request) -> Result:
    template = _template(sim, request.json())
    if template.cancelled:
        raise ApiError(41093)
    now = sim.clock.time()
    recent = [t for t in template.reminds if t > now - 86400]
    if len(recent) >= REMIND_MAX_PER_DAY:
        raise ApiError(41094)
    template.reminds = [*recent, now]
    # The reminded members who have not sent get to it after the usual delay.
    for task in template.tasks.values():
        if task.status == 0:
            task.confirm_at = min(task.confirm_at, now + sim.config.msg_confirm_delay)
    return {}


@route("externalcontact/cancel_groupmsg_send")
def cancel_groupmsg_send(sim: Simulator, request: Request) -> Result:
    template = _template(sim, request.json())
    template.cancelled = True  # parts already sent stay sent; the rest are never sent
    return {}
