"""Tag groups and tags over the REST API: reads with customer counts for everyone, changes for configurers."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Prefetch
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema
from ninja.responses import Status

from siyu.api.schemas import ERRORS, BodyId, Deleted, current_actor, event_source
from siyu.core.errors import ErrorCode, NotFound
from siyu.corps.access import Actor, scope_customers
from siyu.customers.models import Customer
from siyu.tags import services
from siyu.tags.models import CustomerTag, Tag, TagGroup

router = Router(tags=["tags"])


# ---- schemas ---------------------------------------------------------------------------------------------


class TagOut(Schema):
    id: int
    group_id: int
    name: str
    wecom_tag_id: str = Field(description="Empty for a Siyu-only tag.")
    order: int
    customers: int = Field(description="Customers carrying the tag that the caller may see.")
    created_at: dt.datetime

    @classmethod
    def of(cls, tag: Tag, counts: dict[int, int]) -> TagOut:
        return cls(
            id=tag.pk,
            group_id=tag.group_id,
            name=tag.name,
            wecom_tag_id=tag.wecom_tag_id,
            order=tag.order,
            customers=counts.get(tag.pk, 0),
            created_at=tag.created_at,
        )


class TagGroupOut(Schema):
    id: int
    name: str
    wecom_group_id: str = Field(description="Empty for a Siyu-only group.")
    order: int
    created_at: dt.datetime
    tags: list[TagOut]

    @classmethod
    def of(cls, group: TagGroup, counts: dict[int, int]) -> TagGroupOut:
        return cls(
            id=group.pk,
            name=group.name,
            wecom_group_id=group.wecom_group_id,
            order=group.order,
            created_at=group.created_at,
            tags=[TagOut.of(t, counts) for t in group.tags.all()],
        )


class TagGroupIn(Schema):
    name: str = Field(description="At most 30 characters, unique in the corp.")
    tags: list[str] = Field([], description="Names of the group's first tags.")
    wecom: bool = Field(
        False, description="Create the group in WeCom too (needs a first tag); otherwise it is Siyu-only."
    )


class RenameIn(Schema):
    name: str = Field(description="At most 30 characters.")


class TagIn(Schema):
    group_id: BodyId
    name: str = Field(description="At most 30 characters, unique in its group.")


class GroupOrderIn(Schema):
    group_ids: list[BodyId] = Field(description="Every tag group of the corp, in the new order.")


class TagOrderIn(Schema):
    tag_ids: list[BodyId] = Field(description="Every tag of the group, in the new order.")


# ---- reads -----------------------------------------------------------------------------------------------


def _customer_counts(actor: Actor, tag_ids: list[int] | None = None) -> dict[int, int]:
    """Customers per tag within the actor's scope, in one grouped query."""
    links = CustomerTag.objects.for_corp(actor.corp)
    if tag_ids is not None:
        links = links.filter(tag_id__in=tag_ids)
    if not actor.sees_all_customers:
        links = links.filter(
            customer_id__in=scope_customers(actor, Customer.objects.for_corp(actor.corp)).values("pk")
        )
    return dict(links.order_by().values("tag_id").annotate(n=Count("id")).values_list("tag_id", "n"))


def _groups(actor: Actor, group_id: int | None = None) -> list[TagGroup]:
    groups = TagGroup.objects.for_corp(actor.corp).prefetch_related(
        Prefetch("tags", queryset=Tag.objects.for_corp(actor.corp).order_by("order", "id"))
    )
    if group_id is not None:
        groups = groups.filter(pk=group_id)
    return list(groups)


def _group(actor: Actor, group_id: int) -> TagGroup:
    group = TagGroup.objects.for_corp(actor.corp).filter(pk=group_id).first()
    if group is None:
        raise NotFound(_("tag group not found"))
    return group


def _group_out(actor: Actor, group_id: int) -> TagGroupOut:
    groups = _groups(actor, group_id)
    if not groups:
        raise NotFound(_("tag group not found"))
    return TagGroupOut.of(groups[0], _customer_counts(actor, [t.pk for t in groups[0].tags.all()]))


def _tag(actor: Actor, tag_id: int) -> Tag:
    tag = Tag.objects.for_corp(actor.corp).filter(pk=tag_id).first()
    if tag is None:
        raise NotFound(_("tag not found"), code=ErrorCode.UNKNOWN_TAG)
    return tag


def _tag_out(actor: Actor, tag: Tag) -> TagOut:
    return TagOut.of(tag, _customer_counts(actor, [tag.pk]))


# ---- endpoints -------------------------------------------------------------------------------------------


@router.get("/tag-groups", response={200: list[TagGroupOut], **ERRORS}, summary="List tag groups")
def list_tag_groups(request: HttpRequest) -> list[TagGroupOut]:
    """Every tag group with its tags, in display order, with customer counts."""
    actor = current_actor(request)
    counts = _customer_counts(actor)
    return [TagGroupOut.of(g, counts) for g in _groups(actor)]


@router.post("/tag-groups", response={201: TagGroupOut, **ERRORS}, summary="Create a tag group")
def create_tag_group(request: HttpRequest, payload: TagGroupIn) -> Status[TagGroupOut]:
    actor = current_actor(request)
    actor.require_configure()
    group = services.create_tag_group(
        corp=actor.corp,
        name=payload.name,
        tag_names=payload.tags,
        source=event_source(actor),
        in_wecom=payload.wecom,
    )
    return Status(201, _group_out(actor, group.pk))


@router.post("/tag-groups/reorder", response={200: list[TagGroupOut], **ERRORS}, summary="Reorder tag groups")
def reorder_tag_groups(request: HttpRequest, payload: GroupOrderIn) -> list[TagGroupOut]:
    actor = current_actor(request)
    actor.require_configure()
    services.reorder_tag_groups(corp=actor.corp, group_ids=payload.group_ids)
    counts = _customer_counts(actor)
    return [TagGroupOut.of(g, counts) for g in _groups(actor)]


@router.get("/tag-groups/{group_id}", response={200: TagGroupOut, **ERRORS}, summary="Get a tag group")
def get_tag_group(request: HttpRequest, group_id: int) -> TagGroupOut:
    return _group_out(current_actor(request), group_id)


@router.patch("/tag-groups/{group_id}", response={200: TagGroupOut, **ERRORS}, summary="Rename a tag group")
def rename_tag_group(request: HttpRequest, group_id: int, payload: RenameIn) -> TagGroupOut:
    actor = current_actor(request)
    actor.require_configure()
    services.rename_tag_group(group=_group(actor, group_id), name=payload.name, source=event_source(actor))
    return _group_out(actor, group_id)


@router.delete("/tag-groups/{group_id}", response={200: Deleted, **ERRORS}, summary="Delete a tag group")
def delete_tag_group(request: HttpRequest, group_id: int) -> Deleted:
    """Delete the group and its tags; they come off every customer."""
    actor = current_actor(request)
    actor.require_configure()
    tags = services.delete_tag_group(group=_group(actor, group_id), source=event_source(actor))
    return Deleted(tags=tags)


@router.post(
    "/tag-groups/{group_id}/tags/reorder",
    response={200: TagGroupOut, **ERRORS},
    summary="Reorder a group's tags",
)
def reorder_tags(request: HttpRequest, group_id: int, payload: TagOrderIn) -> TagGroupOut:
    actor = current_actor(request)
    actor.require_configure()
    services.reorder_tags(group=_group(actor, group_id), tag_ids=payload.tag_ids)
    return _group_out(actor, group_id)


@router.get("/tags", response={200: list[TagOut], **ERRORS}, summary="List tags")
def list_tags(request: HttpRequest, group: int | None = None) -> list[TagOut]:
    """Every tag (or one group's), in display order, with customer counts."""
    actor = current_actor(request)
    tags = Tag.objects.for_corp(actor.corp).order_by("group__order", "group_id", "order", "id")
    if group is not None:
        tags = tags.filter(group_id=_group(actor, group).pk)
    counts = _customer_counts(actor)
    return [TagOut.of(t, counts) for t in tags]


@router.post("/tags", response={201: TagOut, **ERRORS}, summary="Create a tag")
def create_tag(request: HttpRequest, payload: TagIn) -> Status[TagOut]:
    actor = current_actor(request)
    actor.require_configure()
    tag = services.create_tag(
        group=_group(actor, payload.group_id), name=payload.name, source=event_source(actor)
    )
    return Status(201, _tag_out(actor, tag))


@router.get("/tags/{tag_id}", response={200: TagOut, **ERRORS}, summary="Get a tag")
def get_tag(request: HttpRequest, tag_id: int) -> TagOut:
    actor = current_actor(request)
    return _tag_out(actor, _tag(actor, tag_id))


@router.patch("/tags/{tag_id}", response={200: TagOut, **ERRORS}, summary="Rename a tag")
def rename_tag(request: HttpRequest, tag_id: int, payload: RenameIn) -> TagOut:
    actor = current_actor(request)
    actor.require_configure()
    tag = services.rename_tag(tag=_tag(actor, tag_id), name=payload.name, source=event_source(actor))
    return _tag_out(actor, tag)


@router.delete("/tags/{tag_id}", response={200: Deleted, **ERRORS}, summary="Delete a tag")
def delete_tag(request: HttpRequest, tag_id: int) -> Deleted:
    """Delete the tag; it comes off every customer. Answers how many customers carried it."""
    actor = current_actor(request)
    actor.require_configure()
    customers = services.delete_tag(tag=_tag(actor, tag_id), source=event_source(actor))
    return Deleted(customers=customers)
