"""Segments over the REST API: create, update, delete, count, members, overrides, and ad-hoc evaluation.

Operators and admins build segments; every role may list them and read members within its own scope.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.responses import Status

from siyu.api.schemas import ERRORS, BodyId, Deleted, current_actor
from siyu.corps.access import Actor
from siyu.segments import selectors, services
from siyu.segments.models import Segment

router = Router(tags=["segments"])

# API answers reflect every row committed before the request (a catch-up with nothing new is ~1 ms); the
# console's live count may lag by SEGMENT_FRESH_SECONDS.
FRESH = 0.0
# A sample shows this many members: enough to recognise the audience.
MAX_SAMPLE = 50


class SegmentIn(Schema):
    """A new segment: the expression as text (``tag:北京 AND NOT purchased(30d)``) or as a JSON tree."""

    name: str = Field(..., min_length=1, max_length=60)
    kind: Literal["dynamic", "snapshot"] = "dynamic"
    text: str | None = Field(None, max_length=4000)
    expression: dict[str, Any] | None = None
    description: str = Field("", max_length=200)


class SegmentPatch(Schema):
    """Changes to a segment; ``refreeze`` takes a snapshot segment's members again."""

    name: str | None = Field(None, min_length=1, max_length=60)
    description: str | None = Field(None, max_length=200)
    text: str | None = Field(None, max_length=4000)
    expression: dict[str, Any] | None = None
    refreeze: bool = False


class SegmentOut(Schema):
    id: int
    name: str
    description: str
    kind: str
    text: str
    expression: dict[str, Any]
    count: int = Field(description="members now, within the caller's data scope")
    frozen_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, segment: Segment, count: int) -> SegmentOut:
        return cls(
            id=segment.pk,
            name=segment.name,
            description=segment.description,
            kind=segment.kind,
            text=segment.text,
            expression=segment.expression,
            count=count,
            frozen_at=segment.frozen_at,
            created_at=segment.created_at,
            updated_at=segment.updated_at,
        )


class MemberOut(Schema):
    id: int
    external_userid: str
    name: str
    gender: int
    type: int


class MemberPageOut(Schema):
    items: list[MemberOut]
    next_cursor: str | None
    total: int = Field(description="members within the caller's data scope")


class CountOut(Schema):
    count: int


class EvaluateIn(Schema):
    """An expression to count without saving it (as text or as a JSON tree)."""

    text: str | None = Field(None, max_length=4000)
    expression: dict[str, Any] | None = None
    sample: int = Field(10, ge=0, le=MAX_SAMPLE)


class EvaluateOut(Schema):
    count: int
    text: str
    expression: dict[str, Any]
    sample: list[MemberOut]


class OverridesIn(Schema):
    """Customers to include, exclude, or release (back to what the conditions say)."""

    customer_ids: list[BodyId] = Field(..., min_length=1, max_length=10_000)
    mode: Literal["include", "exclude", "release"]


class OverridesOut(Schema):
    changed: int


def _member(customer: Any) -> MemberOut:
    return MemberOut(
        id=customer.pk,
        external_userid=customer.external_userid,
        name=customer.name,
        gender=customer.gender,
        type=customer.type,
    )


def _out(actor: Actor, segment: Segment) -> SegmentOut:
    return SegmentOut.of(segment, len(selectors.visible_members(actor, segment, fresh_seconds=FRESH)))


@router.get("/segments", response={200: list[SegmentOut], **ERRORS}, summary="List segments")
def list_segments(request: HttpRequest) -> list[SegmentOut]:
    """Every segment of the corp with its member count within the caller's scope."""
    actor = current_actor(request)
    return [
        SegmentOut.of(row.segment, row.count or 0)
        for row in selectors.list_segments(actor, fresh_seconds=FRESH)
    ]


@router.post("/segments", response={201: SegmentOut, **ERRORS}, summary="Create a segment")
def create_segment(request: HttpRequest, payload: SegmentIn) -> Status[SegmentOut]:
    """Create a dynamic segment (members follow the data) or a snapshot (frozen now). Needs the operator or
    admin role."""
    actor = current_actor(request)
    actor.require_configure()
    segment = services.create_segment(
        corp=actor.corp,
        data=services.SegmentInput(
            name=payload.name,
            kind=payload.kind,
            text=payload.text,
            expression=payload.expression,
            description=payload.description,
        ),
        user_id=actor.user_id,
    )
    return Status(201, _out(actor, segment))


@router.post("/segments/evaluate", response={200: EvaluateOut, **ERRORS}, summary="Evaluate an expression")
def evaluate(request: HttpRequest, payload: EvaluateIn) -> EvaluateOut:
    """Count an expression without saving it, with a sample of members (within the caller's scope)."""
    actor = current_actor(request)
    expression = services.resolve_input(corp=actor.corp, text=payload.text, expression=payload.expression)
    members = selectors.count_expression(actor, expression, fresh_seconds=FRESH)
    sample = selectors.member_page(actor, members, page_size=payload.sample).items if payload.sample else []
    return EvaluateOut(
        count=len(members),
        text=expression.to_text(),
        expression=expression.to_json(),
        sample=[_member(c) for c in sample],
    )


@router.get("/segments/{segment_id}", response={200: SegmentOut, **ERRORS}, summary="Get a segment")
def get_segment(request: HttpRequest, segment_id: int) -> SegmentOut:
    actor = current_actor(request)
    return _out(actor, selectors.get_segment(actor, segment_id))


@router.patch("/segments/{segment_id}", response={200: SegmentOut, **ERRORS}, summary="Update a segment")
def update_segment(request: HttpRequest, segment_id: int, payload: SegmentPatch) -> SegmentOut:
    """Rename, describe, change the conditions or refreeze a snapshot. Includes and excludes stay."""
    actor = current_actor(request)
    actor.require_configure()
    segment = services.update_segment(
        segment=selectors.get_segment(actor, segment_id),
        name=payload.name,
        description=payload.description,
        text=payload.text,
        expression=payload.expression,
        refreeze=payload.refreeze,
    )
    return _out(actor, segment)


@router.delete("/segments/{segment_id}", response={200: Deleted, **ERRORS}, summary="Delete a segment")
def delete_segment(request: HttpRequest, segment_id: int) -> Deleted:
    """Delete a segment with its includes, excludes and trend; its members' timeline events stay."""
    actor = current_actor(request)
    actor.require_configure()
    services.delete_segment(segment=selectors.get_segment(actor, segment_id))
    return Deleted()


@router.get("/segments/{segment_id}/count", response={200: CountOut, **ERRORS}, summary="Count members")
def count_segment(request: HttpRequest, segment_id: int) -> CountOut:
    """Members now (dynamic) or as frozen (snapshot), includes and excludes applied, within the scope."""
    actor = current_actor(request)
    return CountOut(
        count=len(
            selectors.visible_members(actor, selectors.get_segment(actor, segment_id), fresh_seconds=FRESH)
        )
    )


class MemberQuery(Schema):
    cursor: str | None = None
    page_size: int | None = Field(None, ge=1, le=200)


@router.get("/segments/{segment_id}/members", response={200: MemberPageOut, **ERRORS}, summary="List members")
def list_members(request: HttpRequest, segment_id: int, query: Query[MemberQuery]) -> MemberPageOut:
    """A page of members within the caller's scope, newest customers first; pass ``next_cursor`` back."""
    actor = current_actor(request)
    members = selectors.visible_members(actor, selectors.get_segment(actor, segment_id), fresh_seconds=FRESH)
    page = selectors.member_page(actor, members, cursor=query.cursor, page_size=query.page_size)
    return MemberPageOut(
        items=[_member(c) for c in page.items], next_cursor=page.next_cursor, total=page.total
    )


@router.post(
    "/segments/{segment_id}/overrides", response={200: OverridesOut, **ERRORS}, summary="Include or exclude"
)
def set_overrides(request: HttpRequest, segment_id: int, payload: OverridesIn) -> OverridesOut:
    """Keep customers in or out of a segment whatever its conditions say (or release them)."""
    actor = current_actor(request)
    actor.require_configure()
    changed = services.set_overrides(
        segment=selectors.get_segment(actor, segment_id),
        customer_ids=list(payload.customer_ids),
        mode=None if payload.mode == "release" else payload.mode,
    )
    return OverridesOut(changed=changed)
