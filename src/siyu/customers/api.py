"""Customers over the REST API: the filtered list, detail with relations and tags, timeline, notes, fields."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Prefetch, prefetch_related_objects
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema
from ninja.responses import Status

from siyu.api.schemas import (
    ERRORS,
    BodyId,
    Id,
    StaffRef,
    TagRef,
    current_actor,
    decode_id_cursor,
    encode_id_cursor,
    event_source,
)
from siyu.core.errors import ErrorCode, NotFound
from siyu.corps.access import Actor
from siyu.corps.models import Department, Staff
from siyu.corps.services import audit
from siyu.customers import selectors, services
from siyu.customers.models import Customer, CustomField, FollowRelation, Note
from siyu.tags.models import CustomerTag, RelationTag
from siyu.tags.services import mark_relation_tags, resolve_tags

router = Router(tags=["customers"])


# ---- schemas ---------------------------------------------------------------------------------------------


def _tag_refs(links: list[CustomerTag] | list[RelationTag]) -> list[TagRef]:
    return [TagRef(id=link.tag.pk, name=link.tag.name, group_id=link.tag.group_id) for link in links]


def _staff_ref(staff: Staff) -> StaffRef:
    return StaffRef(id=staff.pk, userid=staff.userid, name=staff.name)


class RelationBrief(Schema):
    """A customer–staff relation as the list shows it."""

    id: int
    staff: StaffRef
    remark: str
    state: str
    status: FollowRelation.Status
    added_at: dt.datetime

    @classmethod
    def of(cls, relation: FollowRelation) -> RelationBrief:
        return cls(
            id=relation.pk,
            staff=_staff_ref(relation.staff),
            remark=relation.remark,
            state=relation.state,
            status=FollowRelation.Status(relation.status),
            added_at=relation.added_at,
        )


class RelationOut(RelationBrief):
    """A customer–staff relation with everything WeCom keeps on it, and its tags."""

    description: str
    remark_corp_name: str
    remark_mobiles: list[str]
    add_way: int
    oper_userid: str
    status_changed_at: dt.datetime | None
    tags: list[TagRef]

    @classmethod
    def of(cls, relation: FollowRelation) -> RelationOut:
        return cls(
            **RelationBrief.of(relation).model_dump(),
            description=relation.description,
            remark_corp_name=relation.remark_corp_name,
            remark_mobiles=list(relation.remark_mobiles),
            add_way=relation.add_way,
            oper_userid=relation.oper_userid,
            status_changed_at=relation.status_changed_at,
            tags=_tag_refs(list(relation.relation_tags.all())),
        )


class CustomerItem(Schema):
    """A customer in the list: profile, the relations the caller may see, and the customer's tags."""

    id: int
    external_userid: str
    name: str
    avatar: str
    gender: Customer.Gender
    type: Customer.Type
    corp_name: str
    last_added_at: dt.datetime
    relations: list[RelationBrief]
    tags: list[TagRef] = Field(description="Tags on any of the customer's relations (the derived view).")

    @classmethod
    def of(cls, customer: Customer) -> CustomerItem:
        return cls(
            id=customer.pk,
            external_userid=customer.external_userid,
            name=customer.name,
            avatar=customer.avatar,
            gender=Customer.Gender(customer.gender),
            type=Customer.Type(customer.type),
            corp_name=customer.corp_name,
            last_added_at=customer.last_added_at,
            relations=[RelationBrief.of(r) for r in customer.relations.all()],
            tags=_tag_refs(list(customer.customer_tags.all())),
        )


class CustomerPageOut(Schema):
    items: list[CustomerItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    sort: str
    page_size: int


class CustomerDetail(Schema):
    """A customer with profile, custom fields, every relation the caller may see (with its tags) and tags."""

    id: int
    external_userid: str
    unionid: str
    name: str
    avatar: str
    gender: Customer.Gender
    type: Customer.Type
    corp_name: str
    corp_full_name: str
    custom_fields: dict[str, Any]
    last_added_at: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime
    relations: list[RelationOut]
    tags: list[TagRef] = Field(description="Tags on any of the customer's relations (the derived view).")


class CustomerQuery(Schema):
    """The customer list's filters, as the console offers them. Repeat a list parameter for several values."""

    q: str = Field("", description="Search name, remarks, remark mobiles and external_userid.")
    tag: list[Id] = Field([], description="Tag ids; the customer has any of them.")
    tag_all: list[Id] = Field([], description="Tag ids; the customer has all of them.")
    staff: list[Id] = Field([], description="Staff ids following the customer.")
    department: list[Id] = Field([], description="Department ids of a following staff member.")
    state: list[str] = Field([], description="Channel (`state` of the contact way).")
    status: FollowRelation.Status | None = Field(None, description="Status of the relation.")
    added_from: dt.date | None = Field(None, description="Relation added on or after this day.")
    added_to: dt.date | None = Field(None, description="Relation added on or before this day.")
    gender: Customer.Gender | None = None
    sort: str = Field(selectors.DEFAULT_SORT, description=f"One of {', '.join(selectors.SORTS)}.")
    cursor: str | None = None
    page_size: int | None = Field(None, ge=1, description="Default 50, at most 200.")


class TimelineEvent(Schema):
    id: int
    kind: str
    occurred_at: dt.datetime
    source: str
    staff: StaffRef | None
    payload: dict[str, Any]


class TimelinePageOut(Schema):
    items: list[TimelineEvent]
    next_cursor: str | None


class NoteOut(Schema):
    id: int
    text: str
    author_id: int | None
    author: str | None = Field(description="The author's console username.")
    created_at: dt.datetime

    @classmethod
    def of(cls, note: Note) -> NoteOut:
        return cls(
            id=note.pk,
            text=note.text,
            author_id=note.author_id,
            author=note.author.get_username() if note.author is not None else None,
            created_at=note.created_at,
        )


class NotePageOut(Schema):
    items: list[NoteOut]
    next_cursor: str | None


class NoteIn(Schema):
    text: str = Field(description="At most 2,000 characters.")


class CustomFieldOut(Schema):
    key: str
    label: str
    kind: CustomField.Kind
    choices: list[str]


class CustomFieldsIn(Schema):
    values: dict[str, str | int | float | None] = Field(
        description="Field key → value; null or an empty string clears the field. All or nothing."
    )


class CustomFieldsOut(Schema):
    changed: list[str]
    custom_fields: dict[str, Any]


class RelationTagsIn(Schema):
    add: list[BodyId] = Field([], description="Tag ids to put on the relation.")
    remove: list[BodyId] = Field([], description="Tag ids to take off the relation.")


class RelationTagsOut(Schema):
    added: list[int]
    removed: list[int]
    relation: RelationOut


class RemarkIn(Schema):
    """Only the fields sent are changed."""

    remark: str | None = Field(None, description="At most 64 characters.")
    description: str | None = Field(None, description="At most 256 characters.")
    remark_mobiles: list[str] | None = Field(None, description="At most 5 phone numbers.")
    remark_corp_name: str | None = None


class RemarkOut(Schema):
    changed: list[str]
    relation: RelationOut


# ---- access ----------------------------------------------------------------------------------------------


def _not_found(message: str, code: ErrorCode, field: str) -> NotFound:
    error = NotFound(message, code=code)
    error.field = field
    return error


def _customer_filter(actor: Actor, query: CustomerQuery) -> selectors.CustomerFilter:
    """The selector's filter; ids that are not the corp's are refused rather than matching nothing."""
    tag_ids = [*query.tag, *query.tag_all]
    if tag_ids:
        resolve_tags(actor.corp, tag_ids)
    staff_ids = set(query.staff)
    if staff_ids and Staff.objects.for_corp(actor.corp).filter(pk__in=staff_ids).count() != len(staff_ids):
        raise _not_found(_("unknown staff id"), ErrorCode.UNKNOWN_STAFF, "staff")
    department_ids = set(query.department)
    if department_ids and (
        Department.objects.for_corp(actor.corp).filter(pk__in=department_ids).count() != len(department_ids)
    ):
        raise _not_found(_("unknown department id"), ErrorCode.NOT_FOUND, "department")
    return selectors.CustomerFilter(
        q=query.q,
        tags_any=query.tag,
        tags_all=query.tag_all,
        staff_ids=query.staff,
        department_ids=query.department,
        states=query.state,
        status=query.status or "",
        added_from=query.added_from,
        added_to=query.added_to,
        gender=query.gender,
    )


def _visible_relation(actor: Actor, customer_id: int, relation_id: int) -> FollowRelation:
    """A relation of a customer the actor may see, itself visible to them; else 404."""
    customer = selectors.get_customer(actor, customer_id)
    relation = (
        FollowRelation.objects.for_corp(actor.corp)
        .filter(actor.visible_staff_ids_q(), customer=customer, pk=relation_id)
        .first()
    )
    if relation is None:
        raise NotFound(_("relation not found"))
    relation.customer = customer
    return relation


def _relation_out(actor: Actor, relation: FollowRelation) -> RelationOut:
    fresh = next(r for r in selectors.customer_relations(actor, relation.customer) if r.pk == relation.pk)
    return RelationOut.of(fresh)


# ---- endpoints -------------------------------------------------------------------------------------------


@router.get("/customers", response={200: CustomerPageOut, **ERRORS}, summary="List customers")
def list_customers(request: HttpRequest, filters: Query[CustomerQuery]) -> CustomerPageOut:
    """Customers the caller may see, filtered as in the console, newest first by default (keyset pages)."""
    actor = current_actor(request)
    page = selectors.list_customers(
        actor,
        _customer_filter(actor, filters),
        sort=filters.sort,
        cursor=filters.cursor,
        page_size=filters.page_size,
    )
    return CustomerPageOut(
        items=[CustomerItem.of(c) for c in page.items],
        next_cursor=page.next_cursor,
        sort=page.sort,
        page_size=page.page_size,
    )


@router.get("/custom-fields", response={200: list[CustomFieldOut], **ERRORS}, summary="List custom fields")
def list_custom_fields(request: HttpRequest) -> list[CustomFieldOut]:
    """The corp's custom profile fields, in display order."""
    actor = current_actor(request)
    return [
        CustomFieldOut(key=f.key, label=f.label, kind=CustomField.Kind(f.kind), choices=list(f.choices))
        for f in CustomField.objects.for_corp(actor.corp)
    ]


@router.get("/customers/{customer_id}", response={200: CustomerDetail, **ERRORS}, summary="Get a customer")
def get_customer(request: HttpRequest, customer_id: int) -> CustomerDetail:
    """One customer with relations and tags. Every read is recorded in the audit log."""
    actor = current_actor(request)
    customer = selectors.get_customer(actor, customer_id)
    relations = selectors.customer_relations(actor, customer)
    prefetch_related_objects(
        [customer],
        Prefetch(
            "customer_tags",
            queryset=CustomerTag.objects.select_related("tag").order_by("tag__order", "tag_id"),
        ),
    )
    audit(
        corp=actor.corp,
        action="customer.view",
        object_type="customer",
        object_id=customer.pk,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
    )
    return CustomerDetail(
        id=customer.pk,
        external_userid=customer.external_userid,
        unionid=customer.unionid,
        name=customer.name,
        avatar=customer.avatar,
        gender=Customer.Gender(customer.gender),
        type=Customer.Type(customer.type),
        corp_name=customer.corp_name,
        corp_full_name=customer.corp_full_name,
        custom_fields=dict(customer.custom_fields),
        last_added_at=customer.last_added_at,
        created_at=customer.created_at,
        updated_at=customer.updated_at,
        relations=[RelationOut.of(r) for r in relations],
        tags=_tag_refs(list(customer.customer_tags.all())),
    )


@router.get(
    "/customers/{customer_id}/timeline",
    response={200: TimelinePageOut, **ERRORS},
    summary="A customer's timeline",
)
def customer_timeline(
    request: HttpRequest,
    customer_id: int,
    cursor: str | None = None,
    page_size: int | None = Query(None, ge=1, description="Default 50, at most 200."),
) -> TimelinePageOut:
    """The customer's events, newest first (keyset pages)."""
    actor = current_actor(request)
    customer = selectors.get_customer(actor, customer_id)
    page = selectors.customer_timeline(actor, customer, cursor=cursor, page_size=page_size)
    return TimelinePageOut(
        items=[
            TimelineEvent(
                id=e.pk,
                kind=e.kind,
                occurred_at=e.occurred_at,
                source=e.source,
                staff=_staff_ref(e.staff) if e.staff is not None else None,
                payload=dict(e.payload),
            )
            for e in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/customers/{customer_id}/notes", response={200: NotePageOut, **ERRORS}, summary="A customer's notes"
)
def list_notes(
    request: HttpRequest,
    customer_id: int,
    cursor: str | None = None,
    page_size: int | None = Query(None, ge=1, description="Default 50, at most 200."),
) -> NotePageOut:
    """Notes on the customer, newest first (keyset pages)."""
    actor = current_actor(request)
    customer = selectors.get_customer(actor, customer_id)
    size = selectors.page_size_or_error(page_size)
    notes = (
        Note.objects.for_corp(actor.corp).filter(customer=customer).select_related("author").order_by("-id")
    )
    if cursor:
        notes = notes.filter(pk__lt=decode_id_cursor(cursor))
    rows = list(notes[: size + 1])
    items = rows[:size]
    return NotePageOut(
        items=[NoteOut.of(n) for n in items],
        next_cursor=encode_id_cursor(items[-1].pk) if len(rows) > size else None,
    )


@router.post("/customers/{customer_id}/notes", response={201: NoteOut, **ERRORS}, summary="Add a note")
def add_note(request: HttpRequest, customer_id: int, payload: NoteIn) -> Status[NoteOut]:
    """Write a note on the customer; the timeline records that a note was added, not its text."""
    actor = current_actor(request)
    customer = selectors.get_customer(actor, customer_id)
    note = services.add_note(
        customer=customer, author_id=actor.user_id, text=payload.text, source=event_source(actor)
    )
    prefetch_related_objects([note], "author")
    return Status(201, NoteOut.of(note))


@router.put(
    "/customers/{customer_id}/custom-fields",
    response={200: CustomFieldsOut, **ERRORS},
    summary="Set custom fields",
)
def set_custom_fields(request: HttpRequest, customer_id: int, payload: CustomFieldsIn) -> CustomFieldsOut:
    """Set some of the customer's custom fields; any invalid value refuses the whole request."""
    actor = current_actor(request)
    customer = selectors.get_customer(actor, customer_id)
    changed = services.set_custom_fields(customer=customer, values=payload.values, source=event_source(actor))
    return CustomFieldsOut(changed=changed, custom_fields=dict(customer.custom_fields))


@router.post(
    "/customers/{customer_id}/relations/{relation_id}/tags",
    response={200: RelationTagsOut, **ERRORS},
    summary="Mark or unmark tags on a relation",
)
def mark_tags(
    request: HttpRequest, customer_id: int, relation_id: int, payload: RelationTagsIn
) -> RelationTagsOut:
    """Add and remove tags on one customer–staff relation, all or nothing."""
    actor = current_actor(request)
    relation = _visible_relation(actor, customer_id, relation_id)
    result = mark_relation_tags(
        relation=relation,
        add=resolve_tags(actor.corp, payload.add),
        remove=resolve_tags(actor.corp, payload.remove),
        source=event_source(actor),
    )
    return RelationTagsOut(
        added=result.added, removed=result.removed, relation=_relation_out(actor, relation)
    )


@router.patch(
    "/customers/{customer_id}/relations/{relation_id}",
    response={200: RemarkOut, **ERRORS},
    summary="Update a relation's remark",
)
def update_remark(request: HttpRequest, customer_id: int, relation_id: int, payload: RemarkIn) -> RemarkOut:
    """Change the remark, description, remark mobiles or remark company of one relation."""
    actor = current_actor(request)
    relation = _visible_relation(actor, customer_id, relation_id)
    changed = services.update_relation_remark(
        relation=relation,
        source=event_source(actor),
        remark=payload.remark,
        description=payload.description,
        remark_mobiles=payload.remark_mobiles,
        remark_corp_name=payload.remark_corp_name,
    )
    return RemarkOut(changed=changed, relation=_relation_out(actor, relation))
