"""Group live codes over the REST API: list, create, read, change, delete; add and remove groups of a pool."""

from __future__ import annotations

import datetime as dt

from django.http import HttpRequest
from ninja import File, Form, Router, Schema
from ninja.files import UploadedFile
from ninja.responses import Status

from siyu.api.schemas import ERRORS, Deleted, current_actor
from siyu.groups import live_codes
from siyu.groups.images import MAX_UPLOAD_BYTES
from siyu.groups.live_codes import CodeView

router = Router(tags=["group codes"])


class EntryOut(Schema):
    id: int
    group_id: int
    group_name: str
    position: int
    member_count: int
    member_limit: int
    expires_at: dt.datetime
    enabled: bool
    state: str
    serving: bool
    scans: int
    joins: int


class GroupCodeOut(Schema):
    id: int
    name: str
    title: str
    description: str
    status: str
    landing_path: str
    default_member_limit: int
    scans: int
    missed_scans: int
    joins: int
    unavailable: bool
    entries: list[EntryOut]

    @classmethod
    def of(cls, view: CodeView) -> GroupCodeOut:
        code = view.code
        return cls(
            id=code.pk, name=code.name, title=code.title, description=code.description, status=code.status,
            landing_path=f"/g/{code.token}/", default_member_limit=code.default_member_limit,
            scans=code.scans, missed_scans=code.missed_scans, joins=view.joins, unavailable=view.unavailable,
            entries=[
                EntryOut(
                    id=e.entry.pk, group_id=e.entry.group_id, group_name=e.entry.group.name,
                    position=e.entry.position, member_count=e.entry.group.member_count,
                    member_limit=e.entry.member_limit, expires_at=e.entry.expires_at, enabled=e.entry.enabled,
                    state=str(e.state), serving=e.serving, scans=e.entry.scans, joins=e.joins,
                )
                for e in view.entries
            ],
        )  # fmt: skip


class GroupCodeIn(Schema):
    name: str
    title: str = ""
    description: str = ""
    default_member_limit: int | None = None


class GroupCodePatch(Schema):
    name: str | None = None
    title: str | None = None
    description: str | None = None
    status: str | None = None
    default_member_limit: int | None = None


@router.get("/group-codes", response={200: list[GroupCodeOut], **ERRORS}, summary="List group codes")
def list_codes(request: HttpRequest) -> list[GroupCodeOut]:
    """Every group code with its pool, the group it serves and its counts (admin and operator keys)."""
    return [GroupCodeOut.of(v) for v in live_codes.list_group_codes(current_actor(request))]


@router.post("/group-codes", response={201: GroupCodeOut, **ERRORS}, summary="Create a group code")
def create_code(request: HttpRequest, payload: GroupCodeIn) -> Status[GroupCodeOut]:
    code = live_codes.create_group_code(actor=current_actor(request), **payload.model_dump())
    return Status(201, GroupCodeOut.of(live_codes.code_view(code)))


@router.get("/group-codes/{code_id}", response={200: GroupCodeOut, **ERRORS}, summary="Get a group code")
def get_code(request: HttpRequest, code_id: int) -> GroupCodeOut:
    return GroupCodeOut.of(live_codes.code_view(live_codes.get_group_code(current_actor(request), code_id)))


@router.patch("/group-codes/{code_id}", response={200: GroupCodeOut, **ERRORS}, summary="Change a group code")
def patch_code(request: HttpRequest, code_id: int, payload: GroupCodePatch) -> GroupCodeOut:
    actor = current_actor(request)
    code = live_codes.update_group_code(
        actor=actor, code=live_codes.get_group_code(actor, code_id), **payload.model_dump()
    )
    return GroupCodeOut.of(live_codes.code_view(code))


@router.delete("/group-codes/{code_id}", response={200: Deleted, **ERRORS}, summary="Delete a group code")
def delete_code(request: HttpRequest, code_id: int) -> Deleted:
    actor = current_actor(request)
    live_codes.delete_group_code(actor=actor, code=live_codes.get_group_code(actor, code_id))
    return Deleted()


@router.post(
    "/group-codes/{code_id}/entries", response={201: GroupCodeOut, **ERRORS}, summary="Add a group to a code"
)
def add_entry(
    request: HttpRequest,
    code_id: int,
    image: File[UploadedFile],
    group_id: Form[int],
    member_limit: Form[int | None] = None,
    expires_at: Form[dt.datetime | None] = None,
) -> Status[GroupCodeOut]:
    """multipart/form-data: the group's QR ``image`` (PNG/JPEG/WebP), ``group_id``, optional ``member_limit``
    and ``expires_at`` (ISO 8601 with a time zone; default 7 days from now)."""
    actor = current_actor(request)
    code = live_codes.get_group_code(actor, code_id)
    live_codes.add_code_entry(
        actor=actor, code=code, group_id=group_id, image=image.read(MAX_UPLOAD_BYTES + 1),
        member_limit=member_limit, expires_at=expires_at,
    )  # fmt: skip
    return Status(201, GroupCodeOut.of(live_codes.code_view(code)))


@router.delete(
    "/group-codes/{code_id}/entries/{entry_id}", response={200: Deleted, **ERRORS}, summary="Remove a group"
)
def remove_entry(request: HttpRequest, code_id: int, entry_id: int) -> Deleted:
    actor = current_actor(request)
    code = live_codes.get_group_code(actor, code_id)
    live_codes.remove_code_entry(actor=actor, entry=live_codes.get_entry(actor, code, entry_id))
    return Deleted()
