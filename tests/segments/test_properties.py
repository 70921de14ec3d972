"""Property: the bitmap engine selects exactly the customers the plain SQL evaluator selects.

Each example builds a small corp through the real services (customers with gender, type and a region field;
relations to staff in a department tree, with channel states, added days and deletions; tags on relations;
purchases, visits, chats and group joins over sixty days), then evaluates hypothesis-made expressions — tags
any/all/none (also on given staff's relations), attributes, fields, staff, departments, added days, behaviour
counts and windows, activity, nested AND / OR / NOT — both ways. Then it changes the data (new tags, ended
relations, new customers and events), moves the clock on by days (windows slide with no event), and compares
again: the first comparison exercises the rebuild, the second the tail of new rows. Every expression also
round-trips through its JSON and text forms.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.core.clock import advance, frozen_at
from siyu.corps.models import Corp, Department, Staff
from siyu.customers.behaviour import record_behaviour
from siyu.customers.events import record_event
from siyu.customers.models import Customer, FollowRelation
from siyu.customers.services import create_custom_field, end_follow_relation, set_custom_fields
from siyu.segments import engine
from siyu.segments.engine import evaluate_numbers
from siyu.segments.expressions import (
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
    Ref,
    StaffCondition,
    TagCondition,
)
from siyu.segments.parser import parse
from siyu.segments.reference import evaluate_sql
from siyu.tags.models import Tag
from siyu.tags.services import mark_relation_tags
from tests import factories

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 6, 10, 3, 30, tzinfo=dt.UTC)  # 11:30 in Shanghai
TAGS = ["北京", "上海", "女", "男", "高意向"]
STATES = ["", "web", "expo"]
KINDS = ["purchased", "chatted", "visited", "group_joined"]
STATUS_ENDINGS = [None, None, "staff", "customer"]

# --- data ---------------------------------------------------------------------------------------------------

relation_spec = st.tuples(
    st.integers(0, 2),  # staff
    st.sampled_from(STATES),
    st.integers(0, 40),  # added this many days ago
    st.sampled_from(STATUS_ENDINGS),
    st.lists(st.integers(0, len(TAGS) - 1), max_size=3),
)
event_spec = st.tuples(st.sampled_from(KINDS), st.integers(0, 60), st.integers(0, 23))
customer_spec = st.tuples(
    st.integers(0, 2),  # gender
    st.integers(1, 2),  # type
    st.sampled_from([None, "北京", "上海"]),
    st.lists(relation_spec, max_size=2),
    st.lists(event_spec, max_size=4),
)
change_spec = st.one_of(
    st.tuples(st.just("new"), customer_spec),
    st.tuples(st.just("tag"), st.integers(0, 50), st.integers(0, len(TAGS) - 1), st.booleans()),
    st.tuples(st.just("end"), st.integers(0, 50), st.sampled_from(["staff", "customer"])),
    st.tuples(st.just("event"), st.integers(0, 50), event_spec),
    st.tuples(st.just("region"), st.integers(0, 50), st.sampled_from([None, "北京", "上海"])),
)


@dataclass
class Shop:
    corp: Corp
    staff: list[Staff]
    departments: list[Department]
    tags: list[Tag]
    customers: list[Customer]


def _shop() -> Shop:
    corp = factories.make_corp()
    top = factories.make_department(corp, "总部")
    east = factories.make_department(corp, "华东", parent=top)
    south = factories.make_department(corp, "华南")
    staff = [
        factories.make_staff(corp, "甲", top, userid="s0"),
        factories.make_staff(corp, "乙", east, userid="s1"),
        factories.make_staff(corp, "丙", south, userid="s2"),
    ]
    tags = [factories.make_tag(corp, name, group="地区" if i < 2 else "其他") for i, name in enumerate(TAGS)]
    create_custom_field(corp=corp, key="region", label="地区", kind="choice", choices=["北京", "上海"])
    return Shop(corp=corp, staff=staff, departments=[top, east, south], tags=tags, customers=[])


def _event(shop: Shop, customer: Customer, spec: tuple[str, int, int]) -> None:
    kind, days_ago, hour = spec
    moment = NOW - dt.timedelta(days=days_ago, hours=hour)
    if kind in ("purchased", "visited"):
        payload = {"amount": 10} if kind == "purchased" else {}
        record_behaviour(customer=customer, kind=kind, occurred_at=moment, payload=payload)
    else:
        record_event(
            corp_id=shop.corp.pk, customer_id=customer.pk, kind=kind, source="console", occurred_at=moment
        )


def _add_customer(shop: Shop, spec: tuple[Any, ...]) -> None:
    gender, kind, region, relations, events = spec
    customer = factories.make_customer(shop.corp, gender=gender, type=kind)
    if region:
        set_custom_fields(customer=customer, values={"region": region}, source="console")
    for staff_no, state, days_ago, ending, tag_nos in relations:
        relation = factories.follow(
            customer, shop.staff[staff_no], state=state, added_at=NOW - dt.timedelta(days=days_ago, hours=5)
        )
        if tag_nos:
            mark_relation_tags(relation=relation, add=[shop.tags[i] for i in set(tag_nos)], source="console")
        if ending:
            end_follow_relation(relation=relation, by=ending, source="console")
    for event in events:
        _event(shop, customer, event)
    shop.customers.append(customer)


def _change(shop: Shop, change: tuple[Any, ...]) -> None:
    if change[0] == "new":
        _add_customer(shop, change[1])
        return
    if not shop.customers:
        return
    customer = shop.customers[change[1] % len(shop.customers)]
    if change[0] == "event":
        _event(shop, customer, change[2])
    elif change[0] == "region":
        set_custom_fields(customer=customer, values={"region": change[2]}, source="console")
    else:
        relation = FollowRelation.objects.filter(customer=customer, status="active").order_by("id").first()
        if relation is None:
            return
        if change[0] == "end":
            end_follow_relation(relation=relation, by=change[2], source="console")
        else:
            tag = shop.tags[change[2]]
            mark_relation_tags(
                relation=relation,
                add=[tag] if change[3] else [],
                remove=[] if change[3] else [tag],
                source="console",
            )


# --- expressions --------------------------------------------------------------------------------------------

tag_refs = st.lists(st.integers(0, len(TAGS) - 1), min_size=1, max_size=3, unique=True)


def _leaf(shop_refs: dict[str, list[Ref]]) -> st.SearchStrategy[Node]:
    tags, staff, depts = shop_refs["tags"], shop_refs["staff"], shop_refs["depts"]
    windows = st.sampled_from([None, 1, 7, 30, 45])
    return st.one_of(
        st.builds(
            lambda mode, ids, on_staff: TagCondition(
                mode=mode, tags=tuple(tags[i] for i in ids), staff=tuple(staff[i] for i in on_staff)
            ),
            st.sampled_from(["any", "all", "none"]),
            tag_refs,
            st.one_of(st.just([]), st.lists(st.integers(0, 2), min_size=1, max_size=2, unique=True)),
        ),
        st.builds(AttributeCondition, st.just("gender"), st.sampled_from(["male", "female", "unknown"])),
        st.builds(AttributeCondition, st.just("type"), st.sampled_from(["wechat", "wecom"])),
        st.builds(
            AttributeCondition,
            st.just("status"),
            st.sampled_from(["active", "deleted_by_staff", "deleted_by_customer"]),
        ),
        st.builds(AttributeCondition, st.just("state"), st.sampled_from(["web", "expo"])),
        st.builds(FieldCondition, st.just("region"), st.sampled_from(["北京", "上海"])),
        st.builds(StaffCondition, st.sampled_from(staff)),
        st.builds(DepartmentCondition, st.sampled_from(depts)),
        st.builds(lambda d: AddedCondition(days=d), st.integers(1, 45)),
        st.builds(
            lambda c, d: AddedCondition(comparator=c, on=(NOW - dt.timedelta(days=d)).date()),
            st.sampled_from([">=", ">", "<=", "<", "="]),
            st.integers(0, 45),
        ),
        st.builds(BehaviourCondition, st.sampled_from(KINDS), st.integers(1, 3), windows),
        st.builds(ActiveCondition, st.sampled_from([1, 7, 30])),
    )


def _expressions(shop_refs: dict[str, list[Ref]]) -> st.SearchStrategy[Node]:
    return st.recursive(
        _leaf(shop_refs),
        lambda children: st.one_of(
            st.builds(lambda xs: And(tuple(xs)), st.lists(children, min_size=2, max_size=3)),
            st.builds(lambda xs: Or(tuple(xs)), st.lists(children, min_size=2, max_size=3)),
            st.builds(Not, children),
        ),
        max_leaves=6,
    )


def _refs(shop: Shop) -> dict[str, list[Ref]]:
    return {
        "tags": [Ref(id=t.pk, name=t.name, group=t.group.name) for t in shop.tags],
        "staff": [Ref(id=s.pk, name=s.userid) for s in shop.staff],
        "depts": [Ref(id=d.pk, name=d.name) for d in shop.departments],
    }


@contextlib.contextmanager
def rolled_back() -> Iterator[None]:
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def _agree(shop: Shop, node: Node) -> None:
    expression = Expression(root=node)
    expected = evaluate_sql(corp=shop.corp, expression=expression)
    with engine.index_for(shop.corp, fresh_seconds=0) as index:
        got = index.dense.to_pks(evaluate_numbers(shop.corp, index, expression))
    assert got == expected, expression.to_text()
    assert Expression.from_json(expression.to_json()) == expression
    assert parse(corp=shop.corp, text=expression.to_text()) == expression, expression.to_text()


@settings(
    max_examples=int(os.environ.get("SIYU_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    customers=st.lists(customer_spec, min_size=1, max_size=10),
    changes=st.lists(change_spec, max_size=6),
    days_later=st.integers(0, 3),
    data=st.data(),
)
def test_bitmap_engine_selects_what_sql_selects(
    customers: list[tuple[Any, ...]], changes: list[tuple[Any, ...]], days_later: int, data: st.DataObject
) -> None:
    with frozen_at(NOW), rolled_back():
        engine.reset()
        # given: a corp and its customers; the first evaluation rebuilds the index from the tables
        shop = _shop()
        for spec in customers:
            _add_customer(shop, spec)
        strategy = _expressions(_refs(shop))
        for node in data.draw(st.lists(strategy, min_size=1, max_size=4), label="before"):
            _agree(shop, node)
        # when: the data changes and time passes; the index follows by its tail
        for change in changes:
            _change(shop, change)
        advance(dt.timedelta(days=days_later))
        # then
        for node in data.draw(st.lists(strategy, min_size=1, max_size=4), label="after"):
            _agree(shop, node)
        engine.reset()
