"""Test data built through the real services (no shortcuts past the domain rules)."""

from __future__ import annotations

import itertools

from siyu.corps.models import Corp, Department, Staff, StaffDepartment
from siyu.corps.services import create_corp
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.customers.services import add_follow_relation, upsert_customer
from siyu.tags.models import Tag, TagGroup
from siyu.tags.services import create_tag, create_tag_group

_seq = itertools.count(1)


def make_corp(name: str = "测试企业", corpid: str | None = None) -> Corp:
    return create_corp(name=name, corpid=corpid or f"wwtest{next(_seq):06d}")


def make_department(corp: Corp, name: str = "销售部", parent: Department | None = None) -> Department:
    return Department.objects.create(corp=corp, wecom_id=next(_seq), name=name, parent=parent)


def make_staff(
    corp: Corp, name: str = "张三", department: Department | None = None, userid: str | None = None
) -> Staff:
    staff = Staff.objects.create(
        corp=corp, userid=userid or f"user{next(_seq)}", name=name, main_department=department
    )
    if department is not None:
        StaffDepartment.objects.create(corp=corp, staff=staff, department=department)
    return staff


def make_customer(
    corp: Corp, name: str = "李四", external_userid: str | None = None, **fields: object
) -> Customer:
    return upsert_customer(
        corp=corp,
        external_userid=external_userid or f"wm{next(_seq):08d}",
        name=name,
        source=Event.Source.CONSOLE,
        **fields,  # type: ignore[arg-type]
    )


def follow(customer: Customer, staff: Staff, **fields: object) -> FollowRelation:
    return add_follow_relation(customer=customer, staff=staff, source=Event.Source.CONSOLE, **fields)  # type: ignore[arg-type]


def make_tag(corp: Corp, name: str, group: TagGroup | str = "地区") -> Tag:
    if isinstance(group, str):
        existing = TagGroup.objects.for_corp(corp).filter(name=group).first()
        group = existing or create_tag_group(corp=corp, name=group)
    return create_tag(group=group, name=name)
