"""Mass messages over the REST API: create, preview, send, status, per-customer results, remind, cancel.

Thin: each endpoint checks access and calls one service of ``broadcasts.services``. Admins and operators
create and send; every role reads the broadcasts its scope reaches (staff: those with their own parts).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, File, Form, Query, Router, Schema
from ninja.files import UploadedFile
from ninja.responses import Status

from siyu.api.schemas import ERRORS, BodyId, current_actor
from siyu.broadcasts import selectors, services
from siyu.broadcasts.content import MEDIA_MAX_BYTES
from siyu.broadcasts.models import Broadcast, Delivery
from siyu.corps.access import Actor

router = Router(tags=["mass messages"])
# Read one byte past WeCom's largest limit: enough to refuse a file that is too big without reading it all.
MEDIA_READ_MAX = max(MEDIA_MAX_BYTES.values()) + 1


class AudienceIn(Schema):
    type: Literal["segment", "tags", "customers", "groups", "moments"]
    segment_id: BodyId | None = None
    tag_ids: list[BodyId] = Field(
        [], description="Tags: customers with any (or all) of them; moments: WeCom tags."
    )
    match: Literal["any", "all"] = "any"
    customer_ids: list[BodyId] = Field([], description="A picked list of customers.")
    exclude_tag_ids: list[BodyId] = []
    exclude_customer_ids: list[BodyId] = []
    group_ids: list[BodyId] = Field([], description="Groups: picked customer groups.")
    staff_ids: list[BodyId] = Field(
        [], description="Groups: every group of these owners; moments: the senders."
    )
    department_ids: list[BodyId] = Field([], description="Moments: senders by department.")


class BroadcastIn(Schema):
    kind: Literal["customers", "groups", "moments"] = "customers"
    name: str = Field(description="For the team; at most 100 characters.")
    text: str = Field("", description="At most 4,000 bytes (UTF-8).")
    attachments: list[dict[str, Any]] = Field(
        [], description="Up to 9 WeCom attachment objects, e.g. {msgtype: link, link: {title, url}}."
    )
    audience: AudienceIn
    scheduled_at: dt.datetime | None = Field(None, description="With a time zone; empty: when sent.")
    request_key: str = Field("", description="A key of the client's request: repeating it returns the first.")


class StaffCountOut(Schema):
    staff_id: int
    userid: str
    name: str
    count: int


class PreviewOut(Schema):
    at: dt.datetime
    audience: int
    recipients: int
    skipped: dict[str, int] = Field(description="By reason: not_friend, wecom_quota, business_cap, …")
    staff: list[StaffCountOut]
    held_until: dt.datetime | None = Field(None, description="Quiet hours hold the send until then.")
    tasks: int = Field(description="WeCom tasks it would create (one per staff member and 10,000 customers).")


class PartOut(Schema):
    id: int
    userid: str
    staff_id: int | None
    size: int
    status: str
    msgid: str
    sent_at: dt.datetime | None
    delivered: int
    not_friend: int
    over_quota: int
    reminders_left: int
    error: str


class ProgressOut(Schema):
    planned: int
    sent_by_staff: int
    delivered: int
    not_friend: int
    over_quota: int
    unsent: int


class BroadcastOut(Schema):
    id: int
    kind: str
    name: str
    text: str
    attachments: list[dict[str, Any]]
    audience: dict[str, Any]
    status: str
    scheduled_at: dt.datetime | None
    held_until: dt.datetime | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str
    plan: dict[str, Any]
    progress: ProgressOut
    parts: list[PartOut]


class ResultOut(Schema):
    id: int
    customer_id: int | None
    target: str = Field(description="external_userid, or chat_id for groups.")
    status: Literal["sent", "not_friend", "over_quota"]
    userid: str
    sent_at: dt.datetime | None


class ResultPageOut(Schema):
    items: list[ResultOut]
    next_after: int | None = Field(None, description="Pass as ``after`` for the next page.")


class ResultQuery(Schema):
    status: Literal["", "sent", "not_friend", "over_quota"] = ""
    staff_id: int | None = None
    after: int | None = None
    limit: int = Field(50, ge=1, le=200)


class RemindIn(Schema):
    part_id: BodyId | None = Field(None, description="One staff member's part; empty: everyone unsent.")


class Reminded(Schema):
    reminded: int


class MediaOut(Schema):
    id: int = Field(
        description='Name it in an attachment: {"msgtype": "image", "image": {"siyu_media": id}}.'
    )
    kind: str
    filename: str
    size: int


def _out(actor: Actor, broadcast: Broadcast) -> BroadcastOut:
    parts = selectors.parts_for(actor, broadcast)
    progress = selectors.progress_of(parts)
    return BroadcastOut(
        id=broadcast.pk,
        kind=broadcast.kind,
        name=broadcast.name,
        text=broadcast.text,
        attachments=broadcast.attachments,
        audience=broadcast.audience,
        status=broadcast.status,
        scheduled_at=broadcast.scheduled_at,
        held_until=broadcast.held_until,
        created_at=broadcast.created_at,
        sent_at=broadcast.sent_at,
        finished_at=broadcast.finished_at,
        error=broadcast.error,
        plan=broadcast.plan,
        progress=ProgressOut(
            planned=progress.planned,
            sent_by_staff=progress.sent_by_staff,
            delivered=progress.delivered,
            not_friend=progress.not_friend,
            over_quota=progress.over_quota,
            unsent=progress.unsent,
        ),
        parts=[
            PartOut(
                id=p.pk,
                userid=p.userid,
                staff_id=p.staff_id,
                size=p.size,
                status=p.status,
                msgid=p.msgid,
                sent_at=p.sent_at,
                delivered=p.delivered,
                not_friend=p.not_friend,
                over_quota=p.over_quota,
                reminders_left=services.reminders_left(p),
                error=p.error,
            )
            for p in parts
        ],
    )


STATUS_NAMES = {
    Delivery.Status.SENT: "sent",
    Delivery.Status.NOT_FRIEND: "not_friend",
    Delivery.Status.OVER_QUOTA: "over_quota",
}


@router.post("/broadcasts", response={201: BroadcastOut, **ERRORS}, summary="Create a mass message (draft)")
def create_broadcast(request: HttpRequest, payload: BroadcastIn) -> Status[BroadcastOut]:
    """Checked as it will be sent (content, audience, schedule); nothing goes to WeCom until it is sent."""
    actor = current_actor(request)
    broadcast = services.create_broadcast(
        actor=actor,
        kind=payload.kind,
        name=payload.name,
        text=payload.text,
        attachments=payload.attachments,
        audience=payload.audience.dict(),
        scheduled_at=payload.scheduled_at,
        request_key=payload.request_key,
    )
    return Status(201, _out(actor, broadcast))


@router.post("/broadcasts/media", response={201: MediaOut, **ERRORS}, summary="Upload an attachment file")
def upload_media(
    request: HttpRequest,
    kind: Form[Literal["image", "video", "file"]],
    file: File[UploadedFile],
) -> Status[MediaOut]:
    """A JPG/PNG image or MP4 video up to 10 MB, or a file up to 20 MB (WeCom's limits); sent to WeCom when a
    message naming it goes out."""
    actor = current_actor(request)
    media = services.store_media(
        actor=actor,
        kind=kind,
        filename=file.name or kind,
        content_type=file.content_type or "",
        content=file.read(MEDIA_READ_MAX),
    )
    return Status(201, MediaOut(id=media.pk, kind=media.kind, filename=media.filename, size=media.size))


@router.get("/broadcasts", response={200: list[BroadcastOut], **ERRORS}, summary="List mass messages")
def list_broadcasts(request: HttpRequest, before: int | None = None, limit: int = 20) -> list[BroadcastOut]:
    """Newest first; ``before`` an id pages back."""
    actor = current_actor(request)
    found = selectors.broadcasts_for(actor)
    if before:
        found = found.filter(pk__lt=before)
    return [_out(actor, b) for b in found.order_by("-pk")[: max(1, min(limit, 100))]]


@router.get(
    "/broadcasts/{broadcast_id}", response={200: BroadcastOut, **ERRORS}, summary="Status of a message"
)
def get_broadcast(request: HttpRequest, broadcast_id: int) -> BroadcastOut:
    actor = current_actor(request)
    return _out(actor, services.get_broadcast(actor=actor, broadcast_id=broadcast_id))


@router.get(
    "/broadcasts/{broadcast_id}/preview",
    response={200: PreviewOut, **ERRORS},
    summary="Preview a mass message",
)
def preview_broadcast(request: HttpRequest, broadcast_id: int) -> PreviewOut:
    """Who would receive it now, by staff member, and who is skipped and why (nothing is reserved)."""
    actor = current_actor(request)
    found = services.preview_broadcast(
        actor=actor, broadcast=services.get_broadcast(actor=actor, broadcast_id=broadcast_id)
    )
    return PreviewOut(
        at=found.at,
        audience=found.audience,
        recipients=found.recipients,
        skipped=found.skipped,
        staff=[
            StaffCountOut(staff_id=s.staff_id, userid=s.userid, name=s.name, count=s.count)
            for s in found.staff
        ],
        held_until=found.quiet_until if found.held else None,
        tasks=found.tasks,
    )


@router.post("/broadcasts/{broadcast_id}/send", response={200: BroadcastOut, **ERRORS}, summary="Send it")
def send_broadcast(request: HttpRequest, broadcast_id: int) -> BroadcastOut:
    """Now, or at its schedule; sending twice changes nothing."""
    actor = current_actor(request)
    return _out(actor, services.send_broadcast(actor=actor, broadcast_id=broadcast_id))


@router.post(
    "/broadcasts/{broadcast_id}/cancel", response={200: BroadcastOut, **ERRORS}, summary="Cancel unsent"
)
def cancel_broadcast(request: HttpRequest, broadcast_id: int) -> BroadcastOut:
    actor = current_actor(request)
    return _out(actor, services.cancel_broadcast(actor=actor, broadcast_id=broadcast_id))


@router.post("/broadcasts/{broadcast_id}/remind", response={200: Reminded, **ERRORS}, summary="Remind staff")
def remind(request: HttpRequest, broadcast_id: int, payload: RemindIn) -> Reminded:
    """WeCom takes 3 reminders per message in 24 hours; a fourth is refused (``reminder_limit``)."""
    actor = current_actor(request)
    broadcast = services.get_broadcast(actor=actor, broadcast_id=broadcast_id)
    if payload.part_id is None:
        return Reminded(reminded=services.remind_unsent(actor=actor, broadcast_id=broadcast.pk))
    part = selectors.parts_for(actor, broadcast).filter(pk=payload.part_id).first()
    if part is None:
        from siyu.core.errors import NotFound

        raise NotFound()
    services.remind_part(actor=actor, part_id=part.pk)
    return Reminded(reminded=1)


@router.get(
    "/broadcasts/{broadcast_id}/results",
    response={200: ResultPageOut, **ERRORS},
    summary="Per-customer results",
)
def results(request: HttpRequest, broadcast_id: int, query: Query[ResultQuery]) -> ResultPageOut:
    actor = current_actor(request)
    broadcast = services.get_broadcast(actor=actor, broadcast_id=broadcast_id)
    page = selectors.results_page(
        actor, broadcast, status=query.status, staff_id=query.staff_id, after=query.after, size=query.limit
    )
    return ResultPageOut(
        items=[
            ResultOut(
                id=r.pk,
                customer_id=r.customer_id,
                target=r.target,
                status=STATUS_NAMES[Delivery.Status(r.status)],  # type: ignore[arg-type]
                userid=r.part.userid,
                sent_at=r.sent_at,
            )
            for r in page.rows
        ],
        next_after=page.next_cursor,
    )
