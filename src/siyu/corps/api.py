"""Staff and departments over the REST API (read only: WeCom is their source)."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema

from siyu.api.schemas import ERRORS, Id, current_actor, decode_id_cursor, encode_id_cursor
from siyu.core.errors import ErrorCode, NotFound
from siyu.corps.access import Actor
from siyu.corps.models import Department, Staff, StaffDepartment
from siyu.customers.selectors import page_size_or_error

router = Router(tags=["staff and departments"])


class StaffOut(Schema):
    id: int
    userid: str = Field(description="The member's WeCom userid.")
    name: str
    avatar: str
    status: Staff.Status
    has_contact_permission: bool = Field(description="Whether WeCom lets them add customers.")
    main_department_id: int | None
    department_ids: list[int]
    created_at: dt.datetime

    @classmethod
    def of(cls, staff: Staff) -> StaffOut:
        return cls(
            id=staff.pk,
            userid=staff.userid,
            name=staff.name,
            avatar=staff.avatar,
            status=Staff.Status(staff.status),
            has_contact_permission=staff.has_contact_permission,
            main_department_id=staff.main_department_id,
            department_ids=[link.department_id for link in getattr(staff, "department_links", [])],
            created_at=staff.created_at,
        )


class StaffPageOut(Schema):
    items: list[StaffOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class StaffQuery(Schema):
    department: list[Id] = Field([], description="Department ids the member belongs to (directly).")
    status: Staff.Status | None = None
    cursor: str | None = None
    page_size: int | None = Field(None, ge=1, description="Default 50, at most 200.")


class DepartmentOut(Schema):
    id: int
    wecom_id: int = Field(description="The department's id in WeCom.")
    name: str
    parent_id: int | None
    order: int
    staff_count: int = Field(description="Members directly in the department.")

    @classmethod
    def of(cls, department: Department) -> DepartmentOut:
        return cls(
            id=department.pk,
            wecom_id=department.wecom_id,
            name=department.name,
            parent_id=department.parent_id,
            order=department.order,
            staff_count=getattr(department, "staff_count", 0),
        )


def _staff(actor: Actor) -> QuerySet[Staff]:
    return (
        Staff.objects.for_corp(actor.corp)
        .prefetch_related(
            Prefetch(
                "staffdepartment_set",
                queryset=StaffDepartment.objects.for_corp(actor.corp).order_by("id"),
                to_attr="department_links",
            )
        )
        .order_by("id")
    )


def _departments(actor: Actor) -> QuerySet[Department]:
    return Department.objects.for_corp(actor.corp).annotate(staff_count=Count("staffdepartment"))


@router.get("/staff", response={200: StaffPageOut, **ERRORS}, summary="List staff")
def list_staff(request: HttpRequest, filters: Query[StaffQuery]) -> StaffPageOut:
    """The corp's members in id order (keyset pages), optionally of some departments or of one status."""
    actor = current_actor(request)
    size = page_size_or_error(filters.page_size)
    staff = _staff(actor)
    if filters.department:
        staff = staff.filter(
            pk__in=StaffDepartment.objects.for_corp(actor.corp)
            .filter(department_id__in=filters.department)
            .values("staff_id")
        )
    if filters.status:
        staff = staff.filter(status=filters.status)
    if filters.cursor:
        staff = staff.filter(pk__gt=decode_id_cursor(filters.cursor))
    rows = list(staff[: size + 1])
    items = rows[:size]
    return StaffPageOut(
        items=[StaffOut.of(s) for s in items],
        next_cursor=encode_id_cursor(items[-1].pk) if len(rows) > size else None,
    )


@router.get("/staff/{staff_id}", response={200: StaffOut, **ERRORS}, summary="Get a staff member")
def get_staff(request: HttpRequest, staff_id: int) -> StaffOut:
    actor = current_actor(request)
    member = _staff(actor).filter(pk=staff_id).first()
    if member is None:
        raise NotFound(_("staff member not found"), code=ErrorCode.UNKNOWN_STAFF)
    return StaffOut.of(member)


@router.get("/departments", response={200: list[DepartmentOut], **ERRORS}, summary="List departments")
def list_departments(request: HttpRequest) -> list[DepartmentOut]:
    """Every department in WeCom's order; ``parent_id`` builds the tree."""
    return [DepartmentOut.of(d) for d in _departments(current_actor(request))]


@router.get(
    "/departments/{department_id}", response={200: DepartmentOut, **ERRORS}, summary="Get a department"
)
def get_department(request: HttpRequest, department_id: int) -> DepartmentOut:
    actor = current_actor(request)
    department = _departments(actor).filter(pk=department_id).first()
    if department is None:
        raise NotFound(_("department not found"))
    return DepartmentOut.of(department)
