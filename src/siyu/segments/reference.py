"""The reference evaluator: the same expressions as plain SQL over the tables (SQLite and PostgreSQL).

Slow (every condition is a subquery per customer) but obviously right; the property tests require the bitmap
engine to give exactly its members. It reads the tables directly, so it is always current.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact
from pyroaring import BitMap

from siyu.corps.models import Corp, Department, StaffDepartment
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.segments.expressions import (
    ACTIVITY_KINDS,
    GENDERS,
    TYPES,
    ActiveCondition,
    AddedCondition,
    And,
    AttributeCondition,
    BehaviourCondition,
    DepartmentCondition,
    Expression,
    FieldCondition,
    Node,
    Not,
    Or,
    StaffCondition,
    TagCondition,
)
from siyu.segments.windows import day_bounds, local_midnight, window_start_day
from siyu.tags.models import CustomerTag, RelationTag

ACTIVE = FollowRelation.Status.ACTIVE


def department_subtree(corp: Corp, root_id: int) -> set[int]:
    """A department and every department below it."""
    children: dict[int | None, list[int]] = {}
    for dept_id, parent_id in Department.objects.for_corp(corp).values_list("id", "parent_id"):
        children.setdefault(parent_id, []).append(dept_id)
    found: set[int] = set()
    stack = [root_id]
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(children.get(current, []))
    return found


def department_staff_ids(corp: Corp, department_id: int) -> list[int]:
    return list(
        StaffDepartment.objects.for_corp(corp)
        .filter(department_id__in=department_subtree(corp, department_id))
        .values_list("staff_id", flat=True)
        .distinct()
    )


def _relation(corp: Corp, **conditions: object) -> Exists:
    return Exists(FollowRelation.objects.for_corp(corp).filter(customer_id=OuterRef("pk"), **conditions))


def condition_q(node: Node, corp: Corp, tz: ZoneInfo) -> Q:
    """A filter on ``Customer`` selecting the customers ``node`` holds for."""
    if isinstance(node, And):
        q = Q()
        for arg in node.args:
            q &= condition_q(arg, corp, tz)
        return q
    if isinstance(node, Or):
        q = condition_q(node.args[0], corp, tz)
        for arg in node.args[1:]:
            q |= condition_q(arg, corp, tz)
        return q
    if isinstance(node, Not):
        return ~condition_q(node.arg, corp, tz)
    if isinstance(node, TagCondition):
        tag_ids = [t.id for t in node.tags]
        staff_ids = [s.id for s in node.staff]

        def carries(ids: list[int]) -> Exists:
            if staff_ids:
                return Exists(
                    RelationTag.objects.for_corp(corp).filter(
                        customer_id=OuterRef("pk"), tag_id__in=ids, relation__staff_id__in=staff_ids
                    )
                )
            return Exists(
                CustomerTag.objects.for_corp(corp).filter(customer_id=OuterRef("pk"), tag_id__in=ids)
            )

        if node.mode == "all":
            q = Q()
            for tag_id in tag_ids:
                q &= Q(carries([tag_id]))
            return q
        return ~Q(carries(tag_ids)) if node.mode == "none" else Q(carries(tag_ids))
    if isinstance(node, AttributeCondition):
        if node.attribute == "gender":
            return Q(gender=GENDERS[node.value])
        if node.attribute == "type":
            return Q(type=TYPES[node.value])
        if node.attribute == "status":
            return Q(_relation(corp, status=node.value))
        return Q(_relation(corp, status=ACTIVE, state=node.value))
    if isinstance(node, FieldCondition):
        # A subquery on the key's text, so NOT also selects customers without the key (a NULL comparison
        # would drop them) and a key named like a lookup ("contains") is still a key.
        matching = Customer.objects.for_corp(corp).filter(
            Exact(KeyTextTransform(node.key, "custom_fields"), node.value)
        )
        return Q(pk__in=matching.values("pk"))
    if isinstance(node, StaffCondition):
        return Q(_relation(corp, status=ACTIVE, staff_id=node.staff.id))
    if isinstance(node, DepartmentCondition):
        return Q(_relation(corp, status=ACTIVE, staff_id__in=department_staff_ids(corp, node.department.id)))
    if isinstance(node, AddedCondition):
        if node.days is not None:
            return Q(
                _relation(
                    corp, status=ACTIVE, added_at__gte=local_midnight(window_start_day(tz, node.days), tz)
                )
            )
        assert node.on is not None
        first, last = day_bounds(node.comparator, node.on)
        bounds: dict[str, object] = {}
        if first is not None:
            bounds["added_at__gte"] = local_midnight(first, tz)
        if last is not None:
            bounds["added_at__lt"] = local_midnight(last.fromordinal(last.toordinal() + 1), tz)
        return Q(_relation(corp, status=ACTIVE, **bounds))
    if isinstance(node, BehaviourCondition):
        events = Event.objects.for_corp(corp).filter(kind=node.kind)
        if node.days is not None:
            events = events.filter(occurred_at__gte=local_midnight(window_start_day(tz, node.days), tz))
        if node.min_count == 1:
            return Q(Exists(events.filter(customer_id=OuterRef("pk"))))
        counted = (
            events.filter(customer_id__isnull=False)
            .values("customer_id")
            .annotate(n=Count("id"))
            .filter(n__gte=node.min_count)
            .values("customer_id")
        )
        return Q(pk__in=counted)
    if isinstance(node, ActiveCondition):
        since = local_midnight(window_start_day(tz, node.days), tz)
        return Q(
            Exists(
                Event.objects.for_corp(corp).filter(
                    customer_id=OuterRef("pk"), kind__in=ACTIVITY_KINDS, occurred_at__gte=since
                )
            )
        )
    raise TypeError(f"not an expression node: {node!r}")


def evaluate_sql(*, corp: Corp, expression: Expression) -> BitMap:
    """The customer ids the expression selects now, by SQL alone."""
    tz = ZoneInfo(corp.time_zone)
    q = condition_q(expression.root, corp, tz)
    return BitMap(Customer.objects.for_corp(corp).filter(q).values_list("pk", flat=True))
