"""Reads of customers: the filtered, keyset-paginated list shared by the console and the API."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils.translation import gettext as _

from siyu.core.errors import ErrorCode, Invalid, NotFound
from siyu.corps.access import Actor, scope_customers
from siyu.corps.models import StaffDepartment
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.tags.models import CustomerTag, RelationTag

# sort name → (field, descending). Every order ends with id so the keyset is total.
SORTS: dict[str, tuple[str, bool]] = {
    "-added": ("last_added_at", True),
    "added": ("last_added_at", False),
    "name": ("name", False),
    "-name": ("name", True),
    "-id": ("id", True),
    "id": ("id", False),
}
DEFAULT_SORT = "-added"


@dataclass
class CustomerFilter:
    """What the customer list can be filtered by; every field is optional."""

    q: str = ""
    tags_any: list[int] = field(default_factory=list)
    tags_all: list[int] = field(default_factory=list)
    staff_ids: list[int] = field(default_factory=list)
    department_ids: list[int] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    status: str = ""  # relation status: active / deleted_by_staff / deleted_by_customer
    added_from: dt.date | None = None
    added_to: dt.date | None = None
    gender: int | None = None

    def is_empty(self) -> bool:
        return not any(
            [
                self.q,
                self.tags_any,
                self.tags_all,
                self.staff_ids,
                self.department_ids,
                self.states,
                self.status,
            ]
        ) and (self.added_from is None and self.added_to is None and self.gender is None)


@dataclass
class CustomerPage:
    items: list[Customer]
    next_cursor: str | None
    sort: str
    page_size: int


def _relation_filter(actor: Actor, flt: CustomerFilter) -> Q | None:
    """Conditions that must hold on one and the same relation (staff, department, channel, status, date)."""
    q = Q()
    used = False
    if flt.staff_ids:
        q &= Q(staff_id__in=flt.staff_ids)
        used = True
    if flt.department_ids:
        q &= Q(
            staff_id__in=StaffDepartment.objects.filter(
                corp=actor.corp, department_id__in=flt.department_ids
            ).values("staff_id")
        )
        used = True
    if flt.states:
        q &= Q(state__in=flt.states)
        used = True
    if flt.status:
        if flt.status not in FollowRelation.Status.values:
            raise Invalid(
                _("status must be one of %(statuses)s")
                % {"statuses": ", ".join(FollowRelation.Status.values)},
                field="status",
            )
        q &= Q(status=flt.status)
        used = True
    if flt.added_from:
        q &= Q(added_at__date__gte=flt.added_from)
        used = True
    if flt.added_to:
        q &= Q(added_at__date__lte=flt.added_to)
        used = True
    if not used:
        return None
    if not actor.sees_all_customers:
        q &= actor.visible_staff_ids_q()
    return q


def filter_customers(actor: Actor, flt: CustomerFilter) -> QuerySet[Customer]:
    """The customers of the actor's corp and scope that match ``flt`` (unordered, unpaginated)."""
    qs = scope_customers(actor, Customer.objects.for_corp(actor.corp))
    if flt.q:
        needle = flt.q.strip().lower()
        # An external_userid is matched whole (``build_search_text`` says why), by the unique index.
        qs = qs.filter(Q(search_text__contains=needle) | Q(external_userid=flt.q.strip()))
    for tag_id in dict.fromkeys(flt.tags_all):
        qs = qs.filter(Exists(CustomerTag.objects.filter(customer_id=OuterRef("pk"), tag_id=tag_id)))
    if flt.tags_any:
        qs = qs.filter(
            Exists(CustomerTag.objects.filter(customer_id=OuterRef("pk"), tag_id__in=flt.tags_any))
        )
    if flt.gender is not None:
        qs = qs.filter(gender=flt.gender)
    relation_q = _relation_filter(actor, flt)
    if relation_q is not None:
        qs = qs.filter(Exists(FollowRelation.objects.filter(relation_q, customer_id=OuterRef("pk"))))
    return qs


def encode_cursor(sort: str, customer: Customer) -> str:
    column, _desc = SORTS[sort]
    value: Any = getattr(customer, column)
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps([sort, value, customer.pk], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, pk = json.loads(raw)
        if cursor_sort != sort or not isinstance(pk, int):
            raise ValueError("cursor belongs to another sort")
        if SORTS[sort][0] == "last_added_at":
            value = dt.datetime.fromisoformat(value)
            if value.tzinfo is None:  # Siyu's cursors carry their offset; a hand-made one is read as UTC
                value = value.replace(tzinfo=dt.UTC)
    except (ValueError, TypeError, KeyError) as exc:
        raise Invalid(
            _("the page cursor is not valid for this list"), field="cursor", code=ErrorCode.BAD_CURSOR
        ) from exc
    return value, pk


def page_size_or_error(page_size: int | None) -> int:
    size = page_size or cast(int, settings.SIYU["PAGE_SIZE"])
    maximum = cast(int, settings.SIYU["MAX_PAGE_SIZE"])
    if size < 1 or size > maximum:
        raise Invalid(
            _("page size must be between 1 and %(max)d") % {"max": maximum},
            field="page_size",
            code=ErrorCode.PAGE_TOO_LARGE,
        )
    return int(size)


def list_customers(
    actor: Actor,
    flt: CustomerFilter,
    *,
    sort: str = DEFAULT_SORT,
    cursor: str | None = None,
    page_size: int | None = None,
) -> CustomerPage:
    """One page of the customer list with relations (and staff) and tags loaded: three queries in all."""
    if sort not in SORTS:
        raise Invalid(_("sort must be one of %(sorts)s") % {"sorts": ", ".join(SORTS)}, field="sort")
    size = page_size_or_error(page_size)
    column, desc = SORTS[sort]
    qs = filter_customers(actor, flt)
    if cursor:
        value, pk = decode_cursor(cursor, sort)
        if column == "id":
            qs = qs.filter(pk__lt=pk) if desc else qs.filter(pk__gt=pk)
        # (column, id) past the cursor. The first, redundant bound is what an index range can start from: the
        # OR alone is only a filter, and a deep page would walk every row before it.
        elif desc:
            qs = qs.filter(
                Q(**{f"{column}__lte": value}),
                Q(**{f"{column}__lt": value}) | Q(**{column: value, "pk__lt": pk}),
            )
        else:
            qs = qs.filter(
                Q(**{f"{column}__gte": value}),
                Q(**{f"{column}__gt": value}) | Q(**{column: value, "pk__gt": pk}),
            )
    order = [f"-{column}", "-id"] if desc else [column, "id"]
    if column == "id":
        order = order[:1]
    relations = FollowRelation.objects.select_related("staff").order_by("-status", "added_at")
    if not actor.sees_all_customers:
        relations = relations.filter(actor.visible_staff_ids_q())
    # The filters and the keyset walk pick the page's ids in a subquery that reads only the sort index (and
    # the indexes its tests probe); the page's own rows are then fetched by id. Walking full rows instead
    # reads a table page for every customer the filters look at and reject: at 1M, several times slower.
    page_ids = qs.order_by(*order).values("pk")[: size + 1]
    page = (
        Customer.objects.for_corp(actor.corp)
        .filter(pk__in=page_ids)
        .order_by(*order)
        .prefetch_related(
            Prefetch("relations", queryset=relations),
            Prefetch(
                "customer_tags",
                queryset=CustomerTag.objects.select_related("tag").order_by("tag__order", "tag_id"),
            ),
        )
    )
    rows = list(page)
    has_more = len(rows) > size
    items = rows[:size]
    return CustomerPage(
        items=items,
        next_cursor=encode_cursor(sort, items[-1]) if has_more and items else None,
        sort=sort,
        page_size=size,
    )


def count_customers(actor: Actor, flt: CustomerFilter) -> int:
    return filter_customers(actor, flt).count()


def get_customer(actor: Actor, customer_id: int) -> Customer:
    """A customer the actor may see, or NotFound (also for another corp's customer)."""
    customer = scope_customers(actor, Customer.objects.for_corp(actor.corp)).filter(pk=customer_id).first()
    if customer is None:
        raise NotFound(_("customer not found"), code=ErrorCode.UNKNOWN_CUSTOMER)
    return customer


def customer_relations(actor: Actor, customer: Customer) -> list[FollowRelation]:
    """Every relation of the customer the actor may see, active first, with staff and tags."""
    qs = FollowRelation.objects.for_corp(actor.corp).filter(customer=customer)
    if not actor.sees_all_customers:
        qs = qs.filter(actor.visible_staff_ids_q())
    return list(
        qs.select_related("staff")
        .prefetch_related(
            Prefetch(
                "relation_tags",
                queryset=RelationTag.objects.select_related("tag", "tag__group").order_by("tag__order"),
            )
        )
        .order_by("status", "-added_at")
    )


@dataclass
class TimelinePage:
    items: list[Event]
    next_cursor: str | None


def customer_timeline(
    actor: Actor, customer: Customer, *, cursor: str | None = None, page_size: int | None = None
) -> TimelinePage:
    """The customer's events, newest first, keyset-paginated on (occurred_at, id)."""
    size = page_size_or_error(page_size)
    qs = Event.objects.for_corp(actor.corp).filter(customer=customer).select_related("staff")
    if cursor:
        value, pk = decode_cursor(cursor, "-added")
        qs = qs.filter(Q(occurred_at__lt=value) | Q(occurred_at=value, pk__lt=pk))
    rows = list(qs.order_by("-occurred_at", "-id")[: size + 1])
    items = rows[:size]
    next_cursor = None
    if len(rows) > size and items:
        last = items[-1]
        raw = json.dumps(["-added", last.occurred_at.isoformat(), last.pk]).encode()
        next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return TimelinePage(items=items, next_cursor=next_cursor)
