"""Mass messaging targets segments through the contract: the members, and broken segments refused."""

from __future__ import annotations

import pytest
from pyroaring import BitMap

from siyu.broadcasts import services as broadcasts
from siyu.broadcasts.audience import segment_members
from siyu.broadcasts.models import Broadcast
from siyu.core.errors import Invalid
from siyu.segments.services import SegmentInput, create_segment, set_overrides
from siyu.tags.services import delete_tag, tag_customers
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db


def test_a_segment_audience_is_the_segments_members(world: World) -> None:
    # given
    vip = factories.make_tag(world.corp, "VIP")
    people = [factories.make_customer(world.corp, f"客户{n}") for n in range(3)]
    for person in people:
        factories.follow(person, world.wang)
    tag_customers(
        actor=world.admin, customer_ids=[p.pk for p in people[:2]], add_tag_ids=[vip.pk], source="console"
    )
    segment = create_segment(corp=world.corp, data=SegmentInput(name="VIP", text="tag:VIP"))
    set_overrides(segment=segment, customer_ids=[people[1].pk], mode="exclude")
    # when
    members = segment_members(world.corp, segment.pk)
    # then
    assert members == BitMap([people[0].pk])


def test_a_message_to_a_segment_using_a_deleted_tag_is_refused(world: World) -> None:
    # given
    vip = factories.make_tag(world.corp, "VIP")
    person = factories.make_customer(world.corp)
    factories.follow(person, world.wang)
    segment = create_segment(corp=world.corp, data=SegmentInput(name="VIP", text="tag:VIP"))
    delete_tag(tag=vip, source="console")
    # when
    with pytest.raises(Invalid) as caught:
        broadcasts.create_broadcast(
            actor=world.operator,
            kind=Broadcast.Kind.CUSTOMERS,
            name="群发",
            text="你好",
            audience={"type": "segment", "segment_id": segment.pk},
        )
    # then
    assert caught.value.code == "segment_references_deleted_tag"
    assert not Broadcast.objects.exists()
