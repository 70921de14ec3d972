"""Reads of segments for pages and the API: the list with counts, members within the reader's scope, trend.

Managers and staff see a segment's members only within their data scope (``corps.access``): customers with
an active relation to staff they may see. The scope is taken from the index's per-staff bitmaps, and every
page of members is checked once more against the tables (``scope_customers``), so a stale index can never
show a customer outside the scope.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Prefetch
from pyroaring import BitMap

from siyu.core.clock import now
from siyu.core.errors import DomainError, NotFound
from siyu.corps.access import Actor, scope_customers
from siyu.corps.models import Role, StaffDepartment
from siyu.customers.models import Customer, FollowRelation
from siyu.customers.selectors import decode_cursor, encode_cursor, page_size_or_error
from siyu.segments import engine
from siyu.segments.expressions import Expression
from siyu.segments.models import Segment, SegmentCount
from siyu.segments.services import check_expression, members_of
from siyu.tags.models import CustomerTag


def visible_staff_ids(actor: Actor) -> list[int] | None:
    """The staff whose active relations make a customer visible to the actor; None: every customer.

    The same rule as ``Actor.visible_staff_ids_q`` (managers: staff of their departments and those below;
    staff: themselves; a login linked to nobody: no one)."""
    if actor.sees_all_customers:
        return None
    if actor.role == Role.MANAGER and actor.department_ids:
        return list(
            StaffDepartment.objects.for_corp(actor.corp)
            .filter(department_id__in=actor.department_ids)
            .values_list("staff_id", flat=True)
            .distinct()
        )
    return [actor.staff_id] if actor.staff_id is not None else []


def scope_of(actor: Actor, *, fresh_seconds: float | None = None) -> BitMap | None:
    """Customer ids the actor may see (None: all of the corp's)."""
    staff_ids = visible_staff_ids(actor)
    if staff_ids is None:
        return None
    with engine.index_for(actor.corp, fresh_seconds=fresh_seconds) as index:
        numbers = BitMap.union(BitMap(), *(index.staff.get(s, BitMap()) for s in staff_ids))
        return index.dense.to_pks(numbers)


def within_scope(actor: Actor, members: BitMap, *, fresh_seconds: float | None = None) -> BitMap:
    scope = scope_of(actor, fresh_seconds=fresh_seconds)
    return members if scope is None else members & scope


def get_segment(actor: Actor, segment_id: int) -> Segment:
    """A segment of the actor's corp (every role may see the list; members follow the scope)."""
    segment = Segment.objects.for_corp(actor.corp).select_related("corp").filter(pk=segment_id).first()
    if segment is None:
        raise NotFound(_not_found())
    return segment


def _not_found() -> str:
    from django.utils.translation import gettext as _

    return _("segment not found")


def visible_members(actor: Actor, segment: Segment, *, fresh_seconds: float | None = None) -> BitMap:
    """The segment's members the actor may see. ``fresh_seconds``: how old the index may be (None: the
    configured ``SEGMENT_FRESH_SECONDS``, for pages; the API passes 0)."""
    members = members_of(segment, fresh_seconds=fresh_seconds)
    return within_scope(actor, members, fresh_seconds=fresh_seconds)


def count_expression(actor: Actor, expression: Expression, *, fresh_seconds: float | None = None) -> BitMap:
    """Members of an ad-hoc expression the actor may see."""
    check_expression(corp=actor.corp, expression=expression)
    with engine.index_for(actor.corp, fresh_seconds=fresh_seconds) as index:
        members = index.dense.to_pks(engine.evaluate_numbers(actor.corp, index, expression))
    return within_scope(actor, members, fresh_seconds=fresh_seconds)


@dataclass
class SegmentRow:
    """A line of the segment list: the count within the reader's scope, or why there is none."""

    segment: Segment
    count: int | None
    error: str = ""


def list_segments(actor: Actor, *, fresh_seconds: float | None = None) -> list[SegmentRow]:
    rows = []
    for segment in Segment.objects.for_corp(actor.corp).select_related("corp").order_by("name", "id"):
        try:
            count = len(visible_members(actor, segment, fresh_seconds=fresh_seconds))
            rows.append(SegmentRow(segment=segment, count=count))
        except DomainError as exc:
            rows.append(SegmentRow(segment=segment, count=None, error=exc.message))
    return rows


@dataclass
class MemberPage:
    """One page of members, newest customers first (descending id), and the cursor to the next."""

    items: list[Customer]
    next_cursor: str | None
    total: int


def member_page(
    actor: Actor, members: BitMap, *, cursor: str | None = None, page_size: int | None = None
) -> MemberPage:
    """Customers of ``members`` (already within the scope) by descending id, loaded as the customer list
    loads them (relations visible to the actor, staff, tags): a constant number of queries."""
    size = page_size_or_error(page_size)
    end = len(members)
    if cursor:
        _value, last_pk = decode_cursor(cursor, "-id")
        end = members.rank(last_pk - 1) if last_pk > 0 else 0
    start = max(0, end - size)
    ids = list(reversed(list(members[start:end]))) if end else []
    relations = FollowRelation.objects.select_related("staff").order_by("-status", "added_at")
    if not actor.sees_all_customers:
        relations = relations.filter(actor.visible_staff_ids_q())
    customers = {
        c.pk: c
        for c in scope_customers(actor, Customer.objects.for_corp(actor.corp))
        .filter(pk__in=ids)
        .prefetch_related(
            Prefetch("relations", queryset=relations),
            Prefetch(
                "customer_tags",
                queryset=CustomerTag.objects.select_related("tag").order_by("tag__order", "tag_id"),
            ),
        )
    }
    items = [customers[pk] for pk in ids if pk in customers]
    next_cursor = encode_cursor("-id", items[-1]) if start > 0 and items else None
    return MemberPage(items=items, next_cursor=next_cursor, total=len(members))


def trend(segment: Segment, *, days: int = 30) -> list[tuple[dt.datetime, int]]:
    """The segment's hourly counts over the last ``days`` days (for the chart)."""
    since = now() - dt.timedelta(days=days)
    return list(
        SegmentCount.objects.for_corp(segment.corp_id)
        .filter(segment=segment, at__gte=since)
        .order_by("at")
        .values_list("at", "count")
    )


def trends(
    corp_id: int, segment_ids: list[int], *, days: int = 30
) -> dict[int, list[tuple[dt.datetime, int]]]:
    since = now() - dt.timedelta(days=days)
    found: dict[int, list[tuple[dt.datetime, int]]] = {s: [] for s in segment_ids}
    for segment_id, at, value in (
        SegmentCount.objects.for_corp(corp_id)
        .filter(segment_id__in=segment_ids, at__gte=since)
        .order_by("at")
        .values_list("segment_id", "at", "count")
    ):
        found[segment_id].append((at, value))
    return found
