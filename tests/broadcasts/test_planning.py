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
