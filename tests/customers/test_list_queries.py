"""The customer list costs the same number of SQL queries whatever the number of customers on the page."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from siyu.core import clock
from siyu.corps.access import Actor
from siyu.customers.models import Event
from siyu.customers.selectors import CustomerFilter, CustomerPage, list_customers
from siyu.tags.models import Tag
from siyu.tags.services import mark_relation_tags
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db


def add_customers(world: World, count: int, tags: list[Tag], *, prefix: str) -> None:
    """``count`` customers followed by 王芳 (and every other one by 刘强 too) carrying ``tags``."""
    for i in range(count):
        customer = factories.make_customer(
            world.corp, f"客户{prefix}{i}", external_userid=f"wm{prefix}{i:04d}"
        )
        relation = factories.follow(customer, world.wang, remark=f"备注{i}")
        mark_relation_tags(relation=relation, add=tags, source=Event.Source.CONSOLE)
        if i % 2:
            other = factories.follow(customer, world.liu)
            mark_relation_tags(relation=other, add=tags[:1], source=Event.Source.CONSOLE)


def listed(actor: Actor, flt: CustomerFilter) -> tuple[int, CustomerPage]:
    """The first page, with every relation and tag touched as a page would, and the queries it took."""
    with CaptureQueriesContext(connection) as queries:
        page = list_customers(actor, flt)
        for customer in page.items:
            [(r.staff.name, r.status) for r in customer.relations.all()]
            [t.tag.name for t in customer.customer_tags.all()]
    return len(queries), page


@pytest.mark.parametrize("role", ["admin", "staff_wang"])
def test_query_count_does_not_grow_with_the_customers(world: World, role: str) -> None:
    # given two tags, a staff member to filter by, and customers that match besides ones that do not
    region = factories.make_tag(world.corp, "上海", group="地区")
    level = factories.make_tag(world.corp, "VIP", group="客户等级")
    add_customers(world, 3, [region], prefix="only-one-tag")
    actor: Actor = getattr(world, role)
    flt = CustomerFilter(tags_all=[region.pk, level.pk], staff_ids=[world.wang.pk])
    add_customers(world, 5, [region, level], prefix="a")
    # when the list has 5 matching customers
    few_queries, few = listed(actor, flt)
    # and then 60 (more than a page)
    add_customers(world, 55, [region, level], prefix="b")
    many_queries, many = listed(actor, flt)
    # then the pages hold what they should
    assert len(few.items) == 5 and few.next_cursor is None
    assert len(many.items) == 50 and many.next_cursor is not None
    assert all({t.tag_id for t in c.customer_tags.all()} >= {region.pk, level.pk} for c in many.items)
    assert any(len(c.relations.all()) == 2 for c in many.items) == (role == "admin")
    # and the number of queries is the same, and small
    assert few_queries == many_queries
    assert many_queries <= 3


def test_query_count_is_the_same_on_a_later_page(world: World) -> None:
    # given 60 matching customers
    region = factories.make_tag(world.corp, "上海", group="地区")
    level = factories.make_tag(world.corp, "VIP", group="客户等级")
    add_customers(world, 60, [region, level], prefix="c")
    flt = CustomerFilter(tags_all=[region.pk, level.pk], staff_ids=[world.wang.pk])
    first_queries, first = listed(world.admin, flt)
    # when the next page is read through the cursor
    with CaptureQueriesContext(connection) as queries:
        second = list_customers(world.admin, flt, cursor=first.next_cursor)
        for customer in second.items:
            list(customer.relations.all())
            list(customer.customer_tags.all())
    # then it costs the same and holds the rest
    assert len(queries) == first_queries
    assert len(second.items) == 10
    assert not {c.pk for c in first.items} & {c.pk for c in second.items}


@pytest.mark.parametrize("sort", ["-added", "added", "name", "-name", "-id", "id"])
def test_keyset_pages_cover_every_customer_once_even_with_ties(world: World, sort: str) -> None:
    # given customers of which several share the sort value (added in the same second, same names)
    moments = [dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC), dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)]
    for i in range(9):
        with clock.frozen_at(moments[i % 2]):
            customer = factories.make_customer(
                world.corp, ["甲", "乙", "丙"][i % 3], external_userid=f"wmtie{i}"
            )
            factories.follow(customer, world.wang)
    expected = list_customers(world.admin, CustomerFilter(), sort=sort, page_size=50).items
    # when the list is read two at a time through the cursor
    seen: list[int] = []
    cursor = None
    while True:
        page = list_customers(world.admin, CustomerFilter(), sort=sort, page_size=2, cursor=cursor)
        seen += [c.pk for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    # then every customer comes exactly once, in the order of the one-page list
    assert seen == [c.pk for c in expected]
    assert len(seen) == 9
