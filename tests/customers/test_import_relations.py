"""Set-based import of relations (sync pages): the same effects and events as the one-at-a-time services."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.core import clock
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.customers.services import RelationImport, build_search_text, import_relations
from siyu.tags.models import CustomerTag, RelationTag
from siyu.tags.services import add_relation_tags
from tests import factories

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)


def _item(external_userid: str, staff, **fields) -> RelationImport:
    return RelationImport(
        external_userid=external_userid, name=fields.pop("name", "王五"), staff=staff, **fields
    )


def test_import_creates_customers_relations_and_added_events(world):
    # given two new customers, one of them followed by two members
    items = [
        _item(
            "wmNew1",
            world.wang,
            remark="老客户",
            remark_mobiles=("13800001111",),
            remark_corp_name="甲公司",
            add_way=1,
            state="web",
            added_at=T0,
            gender=2,
        ),
        _item("wmNew1", world.liu, remark="介绍人", added_at=T0 + dt.timedelta(days=2)),
        _item("wmNew2", world.wang, name="赵六", type=2, corp_name="乙", added_at=T0),
    ]
    # when
    created = import_relations(
        corp=world.corp, items=items, source="sync", dedupe_prefix="sync:7", payload_extra={"sync_run": 7}
    )
    # then every relation is new, with its customer and an ``added`` event keyed for the run
    assert len(created) == 3
    first = Customer.objects.for_corp(world.corp).get(external_userid="wmNew1")
    assert (first.name, first.gender, first.custom_fields) == ("王五", 2, {})
    assert first.last_added_at == T0 + dt.timedelta(days=2)
    relations = list(first.relations.order_by("id"))
    assert [(r.staff_id, r.remark, r.remark_mobiles, r.status) for r in relations] == [
        (world.wang.pk, "老客户", ["13800001111"], "active"),
        (world.liu.pk, "介绍人", [], "active"),
    ]
    assert relations[0].added_at == T0 and relations[0].state == "web"
    assert first.search_text == build_search_text(first, relations)
    second = Customer.objects.for_corp(world.corp).get(external_userid="wmNew2")
    assert (second.type, second.corp_name) == (2, "乙")
    events = Event.objects.for_corp(world.corp).filter(kind=Event.Kind.ADDED).order_by("id")
    assert sorted(e.dedupe_key for e in events) == [
        "sync:7:wmNew1:liuqiang:added",
        "sync:7:wmNew1:wangfang:added",
        "sync:7:wmNew2:wangfang:added",
    ]
    event = events.get(dedupe_key="sync:7:wmNew1:wangfang:added")
    assert event.occurred_at == T0 and event.source == "sync" and event.staff_id == world.wang.pk
    assert event.payload == {"add_way": 1, "state": "web", "relation_id": relations[0].pk, "sync_run": 7}


def test_import_leaves_active_relations_and_known_profiles_alone(world):
    # given a customer Siyu already has, with an active relation to 王芳 and one ended relation
    customer = factories.make_customer(world.corp, name="老名字", external_userid="wmKnown")
    with clock.frozen_at(T0):
        factories.follow(customer, world.wang, remark="已有")
    customer.refresh_from_db()
    before = Event.objects.for_corp(world.corp).count()
    # when a page reports that relation again, and a new one with 刘强, older than the first
    created = import_relations(
        corp=world.corp,
        items=[
            _item("wmKnown", world.wang, name="新名字", remark="变了", added_at=T0),
            _item("wmKnown", world.liu, name="新名字", remark="刘的备注", added_at=T0 - dt.timedelta(days=9)),
        ],
        source="sync",
        dedupe_prefix="sync:8",
    )
    # then only the new relation is created, with its one event; the profile is not the import's business
    assert [(r.external_userid, r.userid) for r in created] == [("wmKnown", "liuqiang")]
    assert Event.objects.for_corp(world.corp).count() == before + 1
    customer.refresh_from_db()
    assert customer.name == "老名字"
    assert FollowRelation.objects.for_corp(world.corp).get(staff=world.wang).remark == "已有"
    # and the list's columns follow the relations, as add_follow_relation leaves them
    assert customer.last_added_at == T0
    assert customer.search_text == build_search_text(customer, customer.relations.order_by("id"))
    assert "刘的备注" in customer.search_text


def test_a_customer_created_meanwhile_is_used_not_doubled(world):
    # given a customer a callback created after the caller looked (the caller passes what it read: nothing)
    factories.make_customer(world.corp, external_userid="wmRace")
    # when
    created = import_relations(
        corp=world.corp,
        items=[_item("wmRace", world.wang, added_at=T0)],
        source="sync",
        dedupe_prefix="sync:9",
        customer_ids={},
    )
    # then the relation joins the existing customer, whose list columns follow as for any known customer
    assert Customer.objects.for_corp(world.corp).filter(external_userid="wmRace").count() == 1
    customer = Customer.objects.for_corp(world.corp).get(external_userid="wmRace")
    assert created[0].customer_id == customer.pk
    assert customer.last_added_at == T0  # its first relation


def test_relation_tags_are_added_once_with_their_events(world):
    # given two new relations of one customer and a relation that already carries a tag
    vip, north = factories.make_tag(world.corp, "VIP"), factories.make_tag(world.corp, "华北")
    created = import_relations(
        corp=world.corp,
        items=[_item("wmTags", world.wang, added_at=T0), _item("wmTags", world.liu, added_at=T0)],
        source="sync",
        dedupe_prefix="sync:3",
    )
    wang_rel, liu_rel = sorted(created, key=lambda r: r.userid != "wangfang")
    assert add_relation_tags(pairs=[(wang_rel, vip)], source="sync") == 1
    # when both relations are tagged VIP and 华北 (VIP already on 王芳's)
    added = add_relation_tags(
        pairs=[(wang_rel, vip), (wang_rel, north), (liu_rel, vip), (liu_rel, north)],
        source="sync",
        dedupe_prefixes={liu_rel.pk: "sync:3:wmTags:liuqiang:tags:x"},
        payload_extra={"reconciled": True},
    )
    # then the three new pairs are added, the customer carries each tag once, one event per added pair
    assert added == 3
    assert RelationTag.objects.for_corp(world.corp).count() == 4
    assert sorted(CustomerTag.objects.for_corp(world.corp).values_list("customer_id", "tag_id")) == sorted(
        [(wang_rel.customer_id, vip.pk), (wang_rel.customer_id, north.pk)]
    )
    tagged = Event.objects.for_corp(world.corp).filter(kind=Event.Kind.TAGGED, payload__reconciled=True)
    assert tagged.count() == 3
    keyed = tagged.get(payload__relation_id=liu_rel.pk, payload__tag_id=vip.pk)
    assert keyed.dedupe_key == f"sync:3:wmTags:liuqiang:tags:x:tagged:{vip.pk}"
    assert keyed.payload["tag"] == "VIP" and keyed.staff_id == world.liu.pk
    # and tagging again adds nothing and records nothing
    assert add_relation_tags(pairs=[(liu_rel, vip)], source="sync") == 0
    assert tagged.count() == 3


def test_tags_of_another_corp_are_refused(world):
    other_tag = factories.make_tag(world.other_corp, "外部")
    created = import_relations(
        corp=world.corp, items=[_item("wmX", world.wang)], source="sync", dedupe_prefix="sync:1"
    )
    from siyu.core.errors import NotFound

    with pytest.raises(NotFound):
        add_relation_tags(pairs=[(created[0], other_tag)], source="sync")
    assert not RelationTag.objects.exists()
