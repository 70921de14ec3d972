"""Who a broadcast is for: a segment, tags (any or all of them), or a picked list of customers — with
exclusions — for customers; picked groups or the groups of some owners for groups; senders and tags for
moments. Audiences are roaring bitmaps of customer ids, the currency the segment engine speaks too.

``AudienceSpec`` is what a broadcast stores (JSON); ``resolve_customers`` turns it into members at the moment
it is called (a dynamic segment or a tag follows the data until the send).
"""

from __future__ import annotations

import array
import importlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from django.utils.translation import gettext as _
from pyroaring import BitMap

from siyu.core.errors import ErrorCode, Invalid
from siyu.corps.models import Corp, Department, Staff
from siyu.customers.models import Customer
from siyu.groups.models import GroupChat
from siyu.tags.models import CustomerTag, Tag

SEGMENT, TAGS, CUSTOMERS, GROUPS, MOMENTS = "segment", "tags", "customers", "groups", "moments"
TYPES = (SEGMENT, TAGS, CUSTOMERS, GROUPS, MOMENTS)
# A picked list comes from the console's picker or an API client; beyond this, a segment or tags do better.
PICKED_MAX = 100_000
TAGS_MAX = 200
# Ids per query when checking a picked list (well under SQLite's variable limit).
CHUNK = 5000


def bitmap_of(values: Any) -> BitMap:
    """A bitmap from a numpy array of ids (through ``array.array``: several times faster than iterating)."""
    ids = np.asarray(values, dtype=np.uint32)
    return BitMap(array.array("I", ids.tobytes()))


def _ids(data: dict[str, Any], name: str, *, limit: int) -> tuple[int, ...]:
    raw = data.get(name) or []
    if not isinstance(raw, list | tuple):
        raise Invalid(_("%(field)s must be a list of ids") % {"field": name}, field=name)
    found: list[int] = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise Invalid(_("%(field)s must be a list of ids") % {"field": name}, field=name)
        try:
            number = int(value)
        except ValueError:
            raise Invalid(_("%(field)s must be a list of ids") % {"field": name}, field=name) from None
        if number < 1:
            raise Invalid(_("%(field)s must be a list of ids") % {"field": name}, field=name)
        found.append(number)
    unique = tuple(dict.fromkeys(found))
    if len(unique) > limit:
        raise Invalid(_("at most %(max)d in %(field)s") % {"max": limit, "field": name}, field=name)
    return unique


@dataclass(frozen=True)
class AudienceSpec:
    """The stored description of an audience."""

    type: str
    segment_id: int | None = None
    tag_ids: tuple[int, ...] = ()
    match: str = "any"  # tags: any or all of them
    customer_ids: tuple[int, ...] = ()
    exclude_tag_ids: tuple[int, ...] = ()
    exclude_customer_ids: tuple[int, ...] = ()
    group_ids: tuple[int, ...] = ()  # groups: picked groups
    staff_ids: tuple[int, ...] = field(default=())  # groups: every group of these owners; moments: senders
    department_ids: tuple[int, ...] = ()  # moments: senders by department

    @classmethod
    def parse(cls, data: Any) -> AudienceSpec:
        """Read a stored or submitted audience; ``Invalid`` for a malformed one."""
        if not isinstance(data, dict):
            raise Invalid(_("the audience must be an object"), field="audience")
        kind = data.get("type")
        if kind not in TYPES:
            raise Invalid(
                _("the audience type must be one of %(types)s") % {"types": ", ".join(TYPES)}, field="type"
            )
        match = data.get("match") or "any"
        if match not in ("any", "all"):
            raise Invalid(_("match must be any or all"), field="match")
        segment_id = data.get("segment_id")
        if kind == SEGMENT:
            if (
                isinstance(segment_id, bool)
                or not isinstance(segment_id, int | str)
                or not str(segment_id).isdigit()
            ):
                raise Invalid(_("choose a segment"), field="segment_id")
            segment_id = int(segment_id)
        else:
            segment_id = None
        return cls(
            type=kind,
            segment_id=segment_id,
            tag_ids=_ids(data, "tag_ids", limit=TAGS_MAX),
            match=match,
            customer_ids=_ids(data, "customer_ids", limit=PICKED_MAX),
            exclude_tag_ids=_ids(data, "exclude_tag_ids", limit=TAGS_MAX),
            exclude_customer_ids=_ids(data, "exclude_customer_ids", limit=PICKED_MAX),
            group_ids=_ids(data, "group_ids", limit=PICKED_MAX),
            staff_ids=_ids(data, "staff_ids", limit=PICKED_MAX),
            department_ids=_ids(data, "department_ids", limit=PICKED_MAX),
        )

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items() if v not in ((), None)}


@dataclass
class CustomerAudience:
    """The customers of an audience, and those of them it excludes."""

    members: BitMap
    excluded: BitMap

    @property
    def candidates(self) -> BitMap:
        return self.members - self.excluded


def _tags(corp: Corp, tag_ids: Iterable[int], where: str) -> list[int]:
    wanted = list(tag_ids)
    found = set(Tag.objects.for_corp(corp).filter(pk__in=wanted).values_list("pk", flat=True))
    missing = [t for t in wanted if t not in found]
    if missing:
        raise Invalid(
            _("tag %(id)d does not exist (it may have been deleted)") % {"id": missing[0]},
            field=where,
            code=ErrorCode.UNKNOWN_TAG,
        )
    return wanted


def tag_members(corp: Corp, tag_ids: Iterable[int], *, match: str = "any") -> BitMap:
    """Customers carrying any (or all) of the tags."""
    wanted = list(tag_ids)
    if not wanted:
        return BitMap()
    rows = CustomerTag.objects.for_corp(corp).filter(tag_id__in=wanted).values_list("customer_id", "tag_id")
    pairs = np.array(list(rows), dtype=np.int64).reshape(-1, 2)
    if match == "any" or len(wanted) == 1:
        return bitmap_of(np.unique(pairs[:, 0]))
    result: BitMap | None = None
    for tag_id in wanted:
        members = bitmap_of(np.sort(pairs[pairs[:, 1] == tag_id, 0]))
        result = members if result is None else result & members
    return result or BitMap()


def _picked(corp: Corp, customer_ids: tuple[int, ...], where: str) -> BitMap:
    found = BitMap()
    for start in range(0, len(customer_ids), CHUNK):
        chunk = customer_ids[start : start + CHUNK]
        found.update(Customer.objects.for_corp(corp).filter(pk__in=chunk).values_list("pk", flat=True))
    missing = [c for c in customer_ids if c not in found]
    if missing:
        raise Invalid(
            _("customer %(id)d does not exist in this corp") % {"id": missing[0]},
            field=where,
            code=ErrorCode.UNKNOWN_CUSTOMER,
        )
    return found


def segment_members(corp: Corp, segment_id: int) -> BitMap:
    """A segment's members, through the segment engine's service (``siyu.segments``)."""
    try:
        segments = importlib.import_module("siyu.segments.services")
    except ImportError:
        raise Invalid(_("segments are not available in this installation"), field="segment_id") from None
    return BitMap(segments.segment_customer_ids(corp=corp, segment_id=segment_id))


def resolve_customers(corp: Corp, spec: AudienceSpec) -> CustomerAudience:
    """The members and exclusions of a customer audience now; ``Invalid`` for a deleted tag or segment."""
    if spec.type == SEGMENT:
        assert spec.segment_id is not None
        members = segment_members(corp, spec.segment_id)
    elif spec.type == TAGS:
        if not spec.tag_ids:
            raise Invalid(_("choose at least one tag"), field="tag_ids", code=ErrorCode.EMPTY_AUDIENCE)
        members = tag_members(corp, _tags(corp, spec.tag_ids, "tag_ids"), match=spec.match)
    elif spec.type == CUSTOMERS:
        if not spec.customer_ids:
            raise Invalid(
                _("pick at least one customer"), field="customer_ids", code=ErrorCode.EMPTY_AUDIENCE
            )
        members = _picked(corp, spec.customer_ids, "customer_ids")
    else:
        raise Invalid(_("this audience is not one of customers"), field="type")
    excluded = BitMap()
    if spec.exclude_tag_ids:
        excluded |= tag_members(corp, _tags(corp, spec.exclude_tag_ids, "exclude_tag_ids"), match="any")
    if spec.exclude_customer_ids:
        excluded |= BitMap(spec.exclude_customer_ids)
    return CustomerAudience(members=members, excluded=excluded & members)


@dataclass
class GroupAudience:
    """Customer groups by owner: the staff member who must send to them, and their chat ids."""

    by_owner: dict[int, list[str]]
    ownerless: list[str]

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.by_owner.values()) + len(self.ownerless)


def resolve_groups(corp: Corp, spec: AudienceSpec) -> GroupAudience:
    """The active customer groups of an audience, by owner."""
    groups = GroupChat.objects.for_corp(corp).filter(status=GroupChat.Status.ACTIVE)
    if spec.group_ids:
        groups = groups.filter(pk__in=spec.group_ids)
    elif spec.staff_ids:
        groups = groups.filter(owner_id__in=spec.staff_ids)
    else:
        raise Invalid(
            _("pick groups, or the staff whose groups to send to"),
            field="group_ids",
            code=ErrorCode.EMPTY_AUDIENCE,
        )
    by_owner: dict[int, list[str]] = {}
    ownerless: list[str] = []
    for chat_id, owner_id in groups.order_by("pk").values_list("chat_id", "owner_id"):
        if owner_id is None:
            ownerless.append(chat_id)
        else:
            by_owner.setdefault(owner_id, []).append(chat_id)
    return GroupAudience(by_owner=by_owner, ownerless=ownerless)


@dataclass
class MomentAudience:
    """Who publishes a moment and which of their customers see it (WeCom's visible range)."""

    userids: list[str]
    department_ids: list[int]  # WeCom's department ids
    tag_ids: list[str]  # WeCom's tag ids


def resolve_moment(corp: Corp, spec: AudienceSpec) -> MomentAudience:
    """The WeCom ids of a moment's senders and tags; tags must exist in WeCom."""
    staff = dict(Staff.objects.for_corp(corp).filter(pk__in=spec.staff_ids).values_list("pk", "userid"))
    missing = [s for s in spec.staff_ids if s not in staff]
    if missing:
        raise Invalid(
            _("staff %(id)d does not exist in this corp") % {"id": missing[0]},
            field="staff_ids",
            code=ErrorCode.UNKNOWN_STAFF,
        )
    departments = list(
        Department.objects.for_corp(corp)
        .filter(pk__in=spec.department_ids)
        .values_list("wecom_id", flat=True)
    )
    if len(departments) != len(spec.department_ids):
        raise Invalid(_("a department does not exist in this corp"), field="department_ids")
    tags = dict(Tag.objects.for_corp(corp).filter(pk__in=spec.tag_ids).values_list("pk", "wecom_tag_id"))
    for tag_id in spec.tag_ids:
        if tag_id not in tags:
            raise Invalid(
                _("tag %(id)d does not exist (it may have been deleted)") % {"id": tag_id},
                field="tag_ids",
                code=ErrorCode.UNKNOWN_TAG,
            )
        if not tags[tag_id]:
            raise Invalid(
                _("a moment can only be limited by tags that exist in WeCom"),
                field="tag_ids",
                code=ErrorCode.UNKNOWN_TAG,
            )
    return MomentAudience(
        userids=[staff[s] for s in spec.staff_ids],
        department_ids=[int(d) for d in departments],
        tag_ids=[tags[t] for t in spec.tag_ids],
    )
