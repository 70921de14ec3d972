"""The contract other apps rely on: parse, evaluate, segment members, deleted-tag errors."""

from __future__ import annotations

import datetime as dt

import pytest
from pyroaring import BitMap

from siyu.core.clock import frozen_at
from siyu.core.errors import Invalid, NotFound
from siyu.customers.behaviour import record_behaviour
from siyu.segments.expressions import Expression
from siyu.segments.models import Segment
from siyu.segments.services import (
    SegmentInput,
    create_segment,
    evaluate,
    parse_expression,
    segment_customer_ids,
    set_overrides,
)
from siyu.tags.services import delete_tag, tag_customers
from tests import factories

NOW = dt.datetime(2025, 3, 15, 4, 0, tzinfo=dt.UTC)  # 12:00 in Shanghai


@pytest.fixture
def shop(world):  # type: ignore[no-untyped-def]
    """Four customers of 王芳: two women and a man in 北京, a woman in 上海."""
    corp = world.corp
    beijing = factories.make_tag(corp, "北京")
    shanghai = factories.make_tag(corp, "上海")
    female = factories.make_tag(corp, "女", group="性别")
    male = factories.make_tag(corp, "男", group="性别")
    people = {}
    for name, tags in {
        "a": [beijing, female],
        "b": [beijing, female],
        "c": [beijing, male],
        "d": [shanghai, female],
    }.items():
        customer = factories.make_customer(corp, name=name)
        factories.follow(customer, world.wang)
        tag_customers(
            actor=world.admin, customer_ids=[customer.pk], add_tag_ids=[t.pk for t in tags], source="console"
        )
        people[name] = customer
    return world, people, beijing


def _ids(*customers) -> BitMap:  # type: ignore[no-untyped-def]
    return BitMap(c.pk for c in customers)


def test_acceptance_expression_selects_women_in_beijing_who_did_not_buy(shop) -> None:  # type: ignore[no-untyped-def]
    # given
    world, people, _beijing = shop
    with frozen_at(NOW):
        record_behaviour(
            customer=people["a"],
            kind="purchased",
            occurred_at=NOW - dt.timedelta(days=3),
            payload={"amount": 99},
        )
        # when
        expression = parse_expression(corp=world.corp, text="北京 AND 女 AND NOT purchased(30d)")
        members = evaluate(corp=world.corp, expression=expression)
    # then
    assert members == _ids(people["b"])
    assert expression.to_text() == "tag:北京 AND tag:女 AND NOT purchased(30d)"


def test_json_round_trip_gives_the_same_expression(shop) -> None:  # type: ignore[no-untyped-def]
    # given
    world, _people, _beijing = shop
    expression = parse_expression(corp=world.corp, text="(tag:北京 OR tag:上海) AND NOT gender:male")
    # when
    again = Expression.from_json(expression.to_json())
    # then
    assert again == expression
    assert parse_expression(corp=world.corp, text=again.to_text()) == expression


def test_segment_members_apply_includes_and_excludes(shop) -> None:  # type: ignore[no-untyped-def]
    # given
    world, people, _beijing = shop
    segment = create_segment(corp=world.corp, data=SegmentInput(name="北京女", text="北京 AND 女"))
    # when
    set_overrides(segment=segment, customer_ids=[people["d"].pk], mode="include")
    set_overrides(segment=segment, customer_ids=[people["a"].pk], mode="exclude")
    # then
    assert segment_customer_ids(corp=world.corp, segment_id=segment.pk) == _ids(people["b"], people["d"])


def test_snapshot_segment_stays_frozen(shop) -> None:  # type: ignore[no-untyped-def]
    # given
    world, people, beijing = shop
    segment = create_segment(
        corp=world.corp, data=SegmentInput(name="北京快照", kind=Segment.Kind.SNAPSHOT, text="tag:北京")
    )
    # when: a fourth customer gets the tag after the freeze
    tag_customers(
        actor=world.admin, customer_ids=[people["d"].pk], add_tag_ids=[beijing.pk], source="console"
    )
    # then
    assert segment_customer_ids(corp=world.corp, segment_id=segment.pk) == _ids(
        people["a"], people["b"], people["c"]
    )


def test_segment_that_references_a_deleted_tag_is_a_clear_error(shop) -> None:  # type: ignore[no-untyped-def]
    # given
    world, _people, beijing = shop
    segment = create_segment(corp=world.corp, data=SegmentInput(name="北京", text="tag:北京"))
    # when
    delete_tag(tag=beijing, source="console")
    # then
    with pytest.raises(Invalid) as caught:
        segment_customer_ids(corp=world.corp, segment_id=segment.pk)
    assert caught.value.code == "segment_references_deleted_tag"
    assert "北京" in caught.value.message


def test_another_corps_segment_is_not_found(shop) -> None:  # type: ignore[no-untyped-def]
    # given
    world, _people, _beijing = shop
    segment = create_segment(corp=world.corp, data=SegmentInput(name="北京", text="tag:北京"))
    # when / then
    with pytest.raises(NotFound):
        segment_customer_ids(corp=world.other_corp, segment_id=segment.pk)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("tag:广州", "unknown_tag"),
        ("gender>=female", "wrong_operator"),
        ("tag:北京 AND", "expression_syntax"),
        ("bought(30d)", "unknown_condition"),
        ("", "invalid"),
        ("stage:lead", "unknown_condition"),
        ("purchased(30x)", "invalid"),
    ],
)
def test_bad_text_names_the_problem(shop, text: str, code: str) -> None:  # type: ignore[no-untyped-def]
    # given
    world, _people, _beijing = shop
    # when / then
    with pytest.raises(Invalid) as caught:
        parse_expression(corp=world.corp, text=text)
    assert caught.value.code == code
    assert caught.value.message
