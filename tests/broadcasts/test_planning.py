"""Who sends to whom: the last chat wins, else the latest add; a priority list overrides; the skipped."""

from __future__ import annotations

import datetime as dt

import pytest
from pyroaring import BitMap

from siyu.broadcasts import caps
from siyu.broadcasts.audience import CustomerAudience
from siyu.broadcasts.models import BroadcastSkip, CapPolicy
from siyu.broadcasts.planning import plan_customers
from siyu.core import clock
from siyu.customers.events import record_event
from siyu.customers.models import Event
from siyu.customers.services import end_follow_relation
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC)


def _customer(world: World, name: str, *follows):
    customer = factories.make_customer(world.corp, name)
    for n, staff in enumerate(follows):
        factories.follow(customer, staff, added_at=START + dt.timedelta(days=n))
    return customer


def _plan(world: World, *customers, excluded=()):
    audience = CustomerAudience(
        members=BitMap(c.pk for c in customers), excluded=BitMap(c.pk for c in excluded)
    )
    with clock.frozen_at(START + dt.timedelta(days=30)):
        return plan_customers(corp=world.corp, audience=audience, at=clock.now(), reserve=False)


def test_the_latest_add_sends_unless_someone_chatted_last(world: World) -> None:
    # given 甲 followed by 王 then 刘 (刘 added later); 乙 the same, but 王 chatted with 乙
    a = _customer(world, "甲", world.wang, world.liu)
    b = _customer(world, "乙", world.wang, world.liu)
    record_event(
        corp_id=world.corp.pk,
        kind=Event.Kind.CHATTED,
        source="wecom",
        customer_id=b.pk,
        staff_id=world.wang.pk,
    )
    # when
    plan = _plan(world, a, b)
    # then
    assert plan.by_staff == {world.liu.pk: BitMap([a.pk]), world.wang.pk: BitMap([b.pk])}


def test_a_priority_list_overrides(world: World) -> None:
    a = _customer(world, "甲", world.wang, world.liu)
    only_wang = _customer(world, "丙", world.wang)
    policy = caps.policy_for(world.corp)
    policy.sender_policy = CapPolicy.SenderPolicy.PRIORITY
    policy.staff_priority = [world.wang.pk]
    policy.save()
    plan = _plan(world, a, only_wang)
    assert plan.by_staff == {world.wang.pk: BitMap([a.pk, only_wang.pk])}


def test_not_friends_resigned_staff_and_exclusions_are_skipped(world: World) -> None:
    # given 丁 deleted by the only staff member who followed them; 戊 followed by a resigned member only
    gone = _customer(world, "丁", world.wang)
    relation = gone.relations.get()
    end_follow_relation(relation=relation, by="staff", source=Event.Source.SYNC)
    resigned = factories.make_staff(world.corp, "离职", world.east)
    resigned.status = resigned.Status.RESIGNED
    resigned.save()
    orphan = _customer(world, "戊", resigned)
    ok = _customer(world, "己", world.liu)
    excluded = _customer(world, "庚", world.liu)
    # when
    plan = _plan(world, gone, orphan, ok, excluded, excluded=[excluded])
    # then
    assert plan.by_staff == {world.liu.pk: BitMap([ok.pk])}
    assert plan.skipped[BroadcastSkip.Reason.NOT_FRIEND] == BitMap([gone.pk, orphan.pk])
    assert plan.skipped[BroadcastSkip.Reason.EXCLUDED] == BitMap([excluded.pk])
    assert plan.summary()["recipients"] == 1 and plan.summary()["audience"] == 4


def test_the_relations_read_in_bulk_are_the_rows_of_the_corp_to_the_millisecond(world: World) -> None:
    from siyu.broadcasts.planning import active_relations, last_chats
    from siyu.customers.models import FollowRelation

    # given relations of the corp (one of them ended), one of another corp, and chats
    ended = _customer(world, "已删除", world.wang)
    end_follow_relation(relation=ended.relations.get(), by="customer", source=Event.Source.SYNC)
    both = _customer(world, "两位", world.wang, world.liu)
    one = _customer(world, "一位", world.liu)
    stranger = factories.make_staff(world.other_corp, "外人")
    factories.follow(factories.make_customer(world.other_corp, "别家客户"), stranger)
    for staff, minutes in ((world.wang, 1), (world.liu, 2)):
        record_event(
            corp_id=world.corp.pk,
            customer_id=both.pk,
            staff_id=staff.pk,
            kind=Event.Kind.CHATTED,
            source=Event.Source.WECOM,
            occurred_at=START + dt.timedelta(minutes=minutes, microseconds=123_456),
        )
    # when they are read as columns
    found = active_relations(world.corp)
    # then they are the corp's active relations, times in Unix milliseconds
    expected = sorted(
        (r.customer_id, r.staff_id, int(r.added_at.timestamp() * 1000))
        for r in FollowRelation.objects.for_corp(world.corp).filter(status=FollowRelation.Status.ACTIVE)
    )
    assert (
        sorted(zip(found.customer.tolist(), found.staff.tolist(), found.time.tolist(), strict=True))
        == expected
    )
    assert {c for c, _s, _t in expected} == {both.pk, one.pk}
    # and each customer's last chat is the latest one, with its staff member
    chats = last_chats(world.corp)
    last_ms = int((START + dt.timedelta(minutes=2, microseconds=123_456)).timestamp() * 1000)
    assert (chats.customer.tolist(), chats.staff.tolist(), chats.time.tolist()) == (
        [both.pk],
        [world.liu.pk],
        [last_ms],
    )
