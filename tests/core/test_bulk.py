"""core.bulk: multi-row inserts that skip conflicts and tell which rows went in; updates from a row list."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.core.bulk import insert_rows, update_rows
from siyu.customers.models import Customer, FollowRelation
from tests import factories

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 5, 4, 3, 2, 1, 500000, tzinfo=dt.UTC)
RELATION = ("corp", "customer", "staff", "remark", "description", "remark_corp_name", "remark_mobiles",
            "add_way", "state", "oper_userid", "added_at", "status")  # fmt: skip


def _relation(world, customer: Customer, staff, remark: str) -> tuple:
    return (world.corp.pk, customer.pk, staff.pk, remark, "", "", ["13800001111"], 1, "", "", T0, "active")


def test_rows_go_in_with_their_values_and_ids_come_back(world):
    customer = factories.make_customer(world.corp, external_userid="wmBulk")
    # when two relations are inserted
    returned = insert_rows(
        FollowRelation,
        RELATION,
        [_relation(world, customer, world.wang, "甲"), _relation(world, customer, world.liu, "乙")],
        returning=("id", "staff_id"),
    )
    # then both are there, JSON and time as the ORM reads them, and their ids came back
    relations = {r.staff_id: r for r in FollowRelation.objects.for_corp(world.corp)}
    assert sorted(returned) == sorted((r.pk, r.staff_id) for r in relations.values())
    assert relations[world.wang.pk].remark_mobiles == ["13800001111"]
    assert relations[world.wang.pk].added_at == T0
    assert FollowRelation.objects.for_corp(world.corp).filter(added_at=T0).count() == 2  # filters match too


def test_a_row_a_unique_constraint_refuses_is_skipped_and_not_returned(world):
    customer = factories.make_customer(world.corp, external_userid="wmTwice")
    first = insert_rows(
        FollowRelation, RELATION, [_relation(world, customer, world.wang, "一")], returning=("id",)
    )
    # when the same active relation is inserted again (the partial one-active constraint), with another
    second = insert_rows(
        FollowRelation,
        RELATION,
        [_relation(world, customer, world.wang, "二"), _relation(world, customer, world.liu, "三")],
        returning=("id", "remark"),
    )
    # then only the other one went in
    assert len(first) == 1
    assert [remark for _id, remark in second] == ["三"]
    assert FollowRelation.objects.for_corp(world.corp).get(staff=world.wang).remark == "一"


def test_update_rows_sets_columns_by_primary_key(world):
    a = factories.make_customer(world.corp, external_userid="wmA")
    b = factories.make_customer(world.corp, external_userid="wmB")
    updated = update_rows(
        Customer, ["search_text", "last_added_at"], [(a.pk, "甲 text", T0), (b.pk, "乙", T0)]
    )
    assert updated == 2
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.search_text, a.last_added_at, b.search_text) == ("甲 text", T0, "乙")
    assert update_rows(Customer, ["search_text"], []) == 0
