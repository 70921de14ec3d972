"""Customer moments 客户朋友圈 (§4.6): an asynchronous create job, then members publish (simulated)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import Request, Result, get_int, get_list, get_object, get_str, route
from siyu.simulator.errors import ApiError
from siyu.simulator.state import Follow, Moment

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

IMAGES_MAX = 9  # §4.6 up to 9 images OR 1 video OR 1 link
SENDERS_MAX = 100_000  # §4.6 user_list ≤ 10万
TEXT_MAX_BYTES = 4000
LIST_MAX_SPAN = 30 * 86400  # §4.6 get_moment_list: start/end ≤ 30 days apart
LIST_MAX_LIMIT = 20  # §4.6 limit ≤ 20
TASK_MAX_LIMIT = 1000
SEND_RESULT_MAX_LIMIT = 5000


def _check_attachments(attachments: list[dict[str, Any]]) -> None:
    kinds = {a.get("msgtype") for a in attachments}
    if not kinds <= {"image", "video", "link"}:
        raise ApiError(41065)
    if len(kinds) > 1:
        raise ApiError(41065, "attachments must be of one type")
    if ("video" in kinds or "link" in kinds) and len(attachments) > 1:
        raise ApiError(41064)
    if len(attachments) > IMAGES_MAX:
        raise ApiError(41064)
    for attachment in attachments:
        body = attachment.get(attachment["msgtype"])
        if not isinstance(body, dict):
            raise ApiError(40058, "attachment body must be an object")
        if attachment["msgtype"] == "link":
            get_str(body, "title", max_bytes=128)
            get_str(body, "url", required=True, max_bytes=2048)
        get_str(body, "media_id", required=True, missing=41006)


@route("externalcontact/add_moment_task")
def add_moment_task(sim: Simulator, request: Request) -> Result:
    data = request.json()
    state = sim.state
    text = get_object(data, "text")
    content = get_str(text, "content", max_bytes=TEXT_MAX_BYTES) if text else ""
    attachments = get_list(data, "attachments", item=dict)
    if not content and not attachments:
        raise ApiError(41089)
    _check_attachments(attachments)
    visible = get_object(data, "visible_range")
    sender_list = get_object(visible, "sender_list")
    users = get_list(sender_list, "user_list", max_items=SENDERS_MAX)
    departments = get_list(sender_list, "department_list", item=int)
    tag_list = get_list(get_object(visible, "external_contact_list"), "tag_list")
    follow_users = set(state.follow_users())
    invalid_users = [u for u in users if u not in follow_users]
    invalid_departments = [d for d in departments if d not in state.departments]
    invalid_tags = [t for t in tag_list if t not in state.tags or state.tags[t].deleted]
    senders = {u for u in users if u in follow_users}
    if departments:
        expanded = [
            c for d in departments if d in state.departments for c in state.department_and_children(d)
        ]
        senders.update(u for u in state.staff_in_departments(expanded) if u in follow_users)
    if not users and not departments:
        senders = follow_users  # no visible_range: every member in the app's visibility
    now = sim.clock.time()
    moment = Moment(
        jobid=state.random_id("", 32),
        moment_id=state.random_id("mom"),
        create_time=sim.clock.now(),
        seq=state.next_seq(),
        job_done_at=now + sim.config.moment_job_delay,
        text={"content": content} if content else None,
        attachments=attachments,
        tag_list=[t for t in tag_list if t not in invalid_tags],
        senders={u: 0 for u in sorted(senders)},
        invalid_users=invalid_users,
        invalid_departments=invalid_departments,
        invalid_tags=invalid_tags,
    )
    publish_at = now + sim.config.moment_job_delay + sim.config.msg_confirm_delay
    moment.publish_at = {u: publish_at for u in moment.senders}
    state.moments[moment.moment_id] = moment
    state.moments_by_job[moment.jobid] = moment.moment_id
    return {"jobid": moment.jobid}


@route("externalcontact/get_moment_task_result", method="GET")
def get_moment_task_result(sim: Simulator, request: Request) -> Result:
    jobid = get_str(request.query, "jobid", required=True)
    moment_id = sim.state.moments_by_job.get(jobid)
    if moment_id is None:
        raise ApiError(40058, "invalid jobid")
    moment = sim.state.moments[moment_id]
    if sim.clock.time() < moment.job_done_at:
        return {"status": 2, "type": "add_moment_task"}
    return {
        "status": 3,
        "type": "add_moment_task",
        "result": {
            "errcode": 0,
            "errmsg": "ok",
            "moment_id": moment.moment_id,
            "invalid_sender_list": {
                "user_list": moment.invalid_users,
                "department_list": moment.invalid_departments,
            },
            "invalid_external_contact_list": {"tag_list": moment.invalid_tags},
        },
    }


def _moment(sim: Simulator, data: dict[str, Any]) -> Moment:
    moment_id = get_str(data, "moment_id", required=True, missing=41059)
    moment = sim.state.moments.get(moment_id)
    if moment is None or sim.clock.time() < moment.job_done_at:
        raise ApiError(41060)
    return moment


def _moment_json(moment: Moment) -> dict[str, Any]:
    item: dict[str, Any] = {
        "moment_id": moment.moment_id,
        "create_time": moment.create_time,
        "create_type": 0,
        "visible_type": 0 if moment.tag_list else 1,
    }
    if moment.text:
        item["text"] = moment.text
    images = [a["image"] for a in moment.attachments if a.get("msgtype") == "image"]
    if images:
        item["image"] = [{"media_id": i.get("media_id", "")} for i in images]
    for attachment in moment.attachments:
        if attachment.get("msgtype") == "video":
            item["video"] = {"media_id": attachment["video"].get("media_id", ""), "thumb_media_id": ""}
        elif attachment.get("msgtype") == "link":
            item["link"] = {
                "title": attachment["link"].get("title", ""),
                "url": attachment["link"].get("url", ""),
            }
    return item


@route("externalcontact/get_moment_list")
def get_moment_list(sim: Simulator, request: Request) -> Result:
    data = request.json()
    start_time = get_int(data, "start_time", required=True)
    end_time = get_int(data, "end_time", required=True)
    if end_time < start_time or end_time - start_time > LIST_MAX_SPAN:
        raise ApiError(40058, "invalid time range")
    filter_type = get_int(data, "filter_type", default=2, minimum=0, maximum=2)
    limit = get_int(data, "limit", default=LIST_MAX_LIMIT, minimum=1, maximum=LIST_MAX_LIMIT, clamp=True)
    cursor = get_str(data, "cursor")
    last_seq = sim.cursors.decode("get_moment_list", cursor) if cursor else 0
    now = sim.clock.time()
    found = []
    if filter_type != 1:  # API-made moments are corp-created
        found = sorted(
            (
                m
                for m in sim.state.moments.values()
                if start_time <= m.create_time <= end_time and m.seq > last_seq and now >= m.job_done_at
            ),
            key=lambda m: m.seq,
        )
    chunk = found[:limit]
    next_cursor = sim.cursors.encode("get_moment_list", chunk[-1].seq) if len(found) > limit else ""
    return {"moment_list": [_moment_json(m) for m in chunk], "next_cursor": next_cursor}


def _paged(
    sim: Simulator, data: dict[str, Any], kind: str, items: list[Any], maximum: int
) -> tuple[list[Any], str]:
    limit = get_int(data, "limit", default=min(500, maximum), minimum=1, maximum=maximum, clamp=True)
    cursor = get_str(data, "cursor")
    start = sim.cursors.decode(kind, cursor) if cursor else 0
    following = start + limit
    return items[start:following], (sim.cursors.encode(kind, following) if following < len(items) else "")


@route("externalcontact/get_moment_task")
def get_moment_task(sim: Simulator, request: Request) -> Result:
    data = request.json()
    moment = _moment(sim, data)
    rows = [{"userid": u, "publish_status": s} for u, s in moment.senders.items()]
    chunk, next_cursor = _paged(sim, data, "get_moment_task", rows, TASK_MAX_LIMIT)
    return {"task_list": chunk, "next_cursor": next_cursor}


def _audience(sim: Simulator, moment: Moment, userid: str) -> list[Follow]:
    member = sim.state.active_staff(userid)
    if member is None or userid not in moment.senders:
        raise ApiError(41061)
    wanted = set(moment.tag_list)
    return [f for f in member.follow_list if not wanted or wanted.intersection(f.tag_ids)]


@route("externalcontact/get_moment_customer_list")
def get_moment_customer_list(sim: Simulator, request: Request) -> Result:
    data = request.json()
    moment = _moment(sim, data)
    userid = get_str(data, "userid", required=True, missing=41009)
    rows = [
        {"userid": f.userid, "external_userid": f.external_userid} for f in _audience(sim, moment, userid)
    ]
    chunk, next_cursor = _paged(sim, data, "get_moment_customer_list", rows, TASK_MAX_LIMIT)
    return {"customer_list": chunk, "next_cursor": next_cursor}


@route("externalcontact/get_moment_send_result")
def get_moment_send_result(sim: Simulator, request: Request) -> Result:
    data = request.json()
    moment = _moment(sim, data)
    userid = get_str(data, "userid", required=True, missing=41009)
    audience = _audience(sim, moment, userid)
    if moment.senders.get(userid) != 1:
        raise ApiError(41062)
    rows = [{"external_userid": f.external_userid} for f in audience]
    chunk, next_cursor = _paged(sim, data, "get_moment_send_result", rows, SEND_RESULT_MAX_LIMIT)
    return {"customer_list": chunk, "next_cursor": next_cursor}


@route("externalcontact/get_moment_comments")
def get_moment_comments(sim: Simulator, request: Request) -> Result:
    data = request.json()
    moment = _moment(sim, data)
    userid = get_str(data, "userid", required=True, missing=41009)
    audience = _audience(sim, moment, userid)
    if moment.senders.get(userid) != 1:
        raise ApiError(41062)
    # A few likes and comments, the same ones on every call (derived from the ids, not from a clock).
    comments, likes = [], []
    for follow in audience[:50]:
        digest = hashlib.md5(
            f"{moment.moment_id}{follow.external_userid}".encode(), usedforsecurity=False
        ).digest()
        when = moment.create_time + 60 + digest[1] * 60
        if digest[0] < 20:
            comments.append({"external_userid": follow.external_userid, "create_time": when})
        if digest[0] < 60:
            likes.append({"external_userid": follow.external_userid, "create_time": when})
    return {"comment_list": comments, "like_list": likes}


@route("externalcontact/cancel_moment_task")
def cancel_moment_task(sim: Simulator, request: Request) -> Result:
    moment = _moment(sim, request.json())
    moment.cancelled = True
    return {}
