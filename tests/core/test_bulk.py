"""core.bulk: bulk inserts (COPY or multi-row) that skip conflicts and tell which rows went in; updates from a
row list; reads by a list of values."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection

from siyu.core.bulk import COPY_MIN_ROWS, _copy, _fields, in_list, insert_rows, select_rows, update_rows
from siyu.customers.models import Customer, FollowRelation
from siyu.customers.services import CUSTOMER_COLUMNS
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


def _customers(world, prefix: str, count: int) -> list[tuple]:
    """Rows of CUSTOMER_COLUMNS."""
    return [
        (
            world.corp.pk,
            f"{prefix}{i:04d}",
            "",
            f"客户{i}",
            "",
            0,
            1,
            "",
            "",
            {"等级": i % 3},
            T0,
            f"客户{i}",
            T0,
            T0,
        )
        for i in range(count)
    ]


def test_a_large_batch_goes_in_with_its_values_and_ids(world):
    # given more rows than COPY_MIN_ROWS (PostgreSQL streams them with COPY, SQLite inserts them)
    rows = _customers(world, "wmBig", COPY_MIN_ROWS + 50)
    # when they are inserted, asking for their ids back
    returned = insert_rows(Customer, CUSTOMER_COLUMNS, rows, returning=("id", "external_userid"))
    # then every row is there as the ORM reads it, and the ids that came back are theirs
    stored = {c.external_userid: c for c in Customer.objects.for_corp(world.corp)}
    assert len(stored) == len(rows)
    assert sorted(returned) == sorted((c.pk, c.external_userid) for c in stored.values())
    assert stored["wmBig0004"].custom_fields == {"等级": 1}
    assert stored["wmBig0004"].last_added_at == T0
    assert insert_rows(Customer, CUSTOMER_COLUMNS, _customers(world, "wmMore", COPY_MIN_ROWS)) == []


def test_a_large_batch_skips_the_rows_a_unique_constraint_refuses(world):
    # given a customer that is already there, and a batch holding it again (twice) among new ones
    factories.make_customer(world.corp, "先来", external_userid="wmMix0007")
    rows = _customers(world, "wmMix", COPY_MIN_ROWS + 10)
    rows.append(rows[3])
    # when the batch is inserted
    returned = insert_rows(Customer, CUSTOMER_COLUMNS, rows, returning=("external_userid",))
    # then the others went in once each, the one already there kept its name, and it was not returned
    assert sorted(e for (e,) in returned) == sorted(r[1] for r in rows[:-1] if r[1] != "wmMix0007")
    assert Customer.objects.for_corp(world.corp).count() == COPY_MIN_ROWS + 10
    assert Customer.objects.for_corp(world.corp).get(external_userid="wmMix0007").name == "先来"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
def test_copy_takes_a_clean_batch_and_gives_a_refused_one_back_untouched(world):
    fields = _fields(Customer, CUSTOMER_COLUMNS)
    back = _fields(Customer, ("id", "external_userid"))
    # when a batch nothing refuses is copied
    copied = _copy(Customer, fields, _customers(world, "wmCopy", 80), back)
    # then its rows and ids are there
    assert copied is not None
    assert sorted(copied) == sorted(
        Customer.objects.for_corp(world.corp).values_list("pk", "external_userid")
    )
    # when a batch with a row already there is copied
    refused = _copy(Customer, fields, _customers(world, "wmCopy", 90)[75:], back)
    # then nothing of it went in (its savepoint was rolled back) and the transaction goes on
    assert refused is None
    assert Customer.objects.for_corp(world.corp).count() == 80


def test_in_list_matches_any_of_the_values_with_one_parameter(world):
    a = factories.make_customer(world.corp, external_userid="wmIn1")
    b = factories.make_customer(world.corp, external_userid="wmIn2")
    factories.make_customer(world.corp, external_userid="wmOut")
    by_userid, params = in_list("external_userid", ["wmIn1", "wmIn2", "wmNobody"])
    by_id, id_params = in_list("id", [a.pk])
    # when rows are selected by each list (and by an empty one)
    sql = "SELECT id, external_userid, custom_fields FROM customers_customer WHERE corp_id = %s AND "
    found = select_rows(sql + by_userid, [world.corp.pk, *params])
    one = select_rows(sql + by_id, [world.corp.pk, *id_params])
    none, no_params = in_list("id", [])
    # then exactly those come back, JSON as text
    assert sorted((pk, e) for pk, e, _json in found) == [(a.pk, "wmIn1"), (b.pk, "wmIn2")]
    assert [(pk, json.loads(j)) for pk, _e, j in one] == [(a.pk, {})]
    assert select_rows(sql + none, [world.corp.pk, *no_params]) == []
