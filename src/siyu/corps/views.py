"""Staff and department pages: read views of the org chart (it is synced from WeCom).

Every role sees them; nothing here writes. Queries are a fixed number per page whatever the corp's size: the
departments, one page of staff, their department memberships, and one grouped count of active relations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from siyu.corps.access import Actor
from siyu.corps.models import Department, Staff, StaffDepartment
from siyu.customers.models import FollowRelation

# One screen of staff; a corp of thousands pages through them.
STAFF_PAGE_SIZE = 50


@dataclass
class DepartmentNode:
    """A department in tree order, with its depth and member counts."""

    department: Department
    depth: int
    members: int = 0  # directly in this department
    members_total: int = 0  # distinct staff here or in any department below
    children: list[DepartmentNode] = field(default_factory=list)

    @property
    def indent(self) -> str:
        """Ideographic spaces that indent the name in a drop-down, where no CSS reaches."""
        return "\u3000" * self.depth


@dataclass
class StaffRow:
    staff: Staff
    departments: list[Department]
    active_customers: int


def _actor(request: HttpRequest) -> Actor:
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None:
        raise PermissionDenied("no role in any corp")
    return actor


def department_tree(departments: list[Department]) -> list[DepartmentNode]:
    """The departments in tree order (parents before children, siblings by WeCom order); cycles are cut."""
    by_id = {d.pk: d for d in departments}
    children: dict[int | None, list[Department]] = {}
    for dept in departments:
        parent = dept.parent_id if dept.parent_id in by_id else None
        children.setdefault(parent, []).append(dept)
    flat: list[DepartmentNode] = []
    seen: set[int] = set()

    def walk(dept: Department, depth: int, parent: DepartmentNode | None) -> None:
        if dept.pk in seen:
            return
        seen.add(dept.pk)
        node = DepartmentNode(department=dept, depth=depth)
        flat.append(node)
        if parent is not None:
            parent.children.append(node)
        for child in children.get(dept.pk, []):
            walk(child, depth + 1, node)

    for root in children.get(None, []):
        walk(root, 0, None)
    for dept in departments:  # members of a parent cycle have no root; show them at the top level
        walk(dept, 0, None)
    return flat


def _subtree_ids(node: DepartmentNode) -> set[int]:
    ids = {node.department.pk}
    for child in node.children:
        ids |= _subtree_ids(child)
    return ids


@login_required
@require_GET
def department_list(request: HttpRequest) -> HttpResponse:
    """The department tree with how many staff are in each department, and in it and below."""
    actor = _actor(request)
    nodes = department_tree(list(Department.objects.for_corp(actor.corp).order_by("order", "wecom_id")))
    staff_by_department: dict[int, set[int]] = {}
    for department_id, staff_id in StaffDepartment.objects.for_corp(actor.corp).values_list(
        "department_id", "staff_id"
    ):
        staff_by_department.setdefault(department_id, set()).add(staff_id)
    # Bottom-up (children follow their parent in ``nodes``): a subtree is a node's members and its children's.
    subtree: dict[int, set[int]] = {}
    for node in reversed(nodes):
        members = set(staff_by_department.get(node.department.pk, set()))
        node.members = len(members)
        for child in node.children:
            members |= subtree[child.department.pk]
        subtree[node.department.pk] = members
        node.members_total = len(members)
    return render(request, "corps/department_list.html", {"nodes": nodes})


@login_required
@require_GET
def staff_list(request: HttpRequest) -> HttpResponse:
    """Staff with their departments, status, contact permission and active customers; filter and search."""
    actor = _actor(request)
    departments = list(Department.objects.for_corp(actor.corp).order_by("order", "wecom_id"))
    nodes = department_tree(departments)
    q = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    department_raw = request.GET.get("department", "")
    errors: list[str] = []
    staff = Staff.objects.for_corp(actor.corp)
    if q:
        staff = staff.filter(Q(name__icontains=q) | Q(userid__icontains=q))
    if status:
        if status in Staff.Status.values:
            staff = staff.filter(status=status)
        else:
            errors.append(_("Unknown status."))
    selected_department: Department | None = None
    if department_raw:
        node = next(
            (n for n in nodes if department_raw.isdigit() and n.department.pk == int(department_raw)), None
        )
        if node is None:
            errors.append(_("Unknown department."))
        else:
            selected_department = node.department
            in_subtree = StaffDepartment.objects.for_corp(actor.corp).filter(
                department_id__in=_subtree_ids(node)
            )
            staff = staff.filter(pk__in=in_subtree.values("staff_id"))
    if errors:
        staff = staff.none()
    paginator = Paginator(staff.order_by("name", "id"), STAFF_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    members = list(page.object_list)
    ids = [s.pk for s in members]
    by_id = {d.pk: d for d in departments}
    staff_departments: dict[int, list[Department]] = {}
    if ids:
        for staff_id, department_id in (
            StaffDepartment.objects.for_corp(actor.corp)
            .filter(staff_id__in=ids)
            .values_list("staff_id", "department_id")
        ):
            if department_id in by_id:
                staff_departments.setdefault(staff_id, []).append(by_id[department_id])
    # Active customers of the staff on this page, one grouped count (index relation_staff_status).
    active = dict(
        FollowRelation.objects.for_corp(actor.corp)
        .filter(staff_id__in=ids, status=FollowRelation.Status.ACTIVE)
        .order_by()
        .values("staff_id")
        .annotate(n=Count("id"))
        .values_list("staff_id", "n")
        if ids
        else []
    )
    rows = [
        StaffRow(staff=s, departments=staff_departments.get(s.pk, []), active_customers=active.get(s.pk, 0))
        for s in members
    ]
    query = request.GET.copy()
    query.pop("page", None)
    context: dict[str, Any] = {
        "rows": rows,
        "page": page,
        "nodes": nodes,
        "q": q,
        "status": status,
        "statuses": Staff.Status.choices,
        "selected_department": selected_department,
        "department_value": department_raw,
        "errors": errors,
        "query": query.urlencode(),
    }
    return render(request, "corps/staff_list.html", context, status=400 if errors else 200)
