"""Tag services: groups and tags, marking relations, the derived per-customer view, bulk tagging in scope."""

from __future__ import annotations

import pytest

from siyu.core.errors import ErrorCode, Invalid, NotFound
from siyu.customers.models import Event
from siyu.tags.models import CustomerTag, RelationTag, Tag, TagGroup
from siyu.tags.services import (
    create_tag,
    create_tag_group,
    delete_tag,
    delete_tag_group,
    mark_relation_tags,
    rename_tag,
    reorder_tag_groups,
    reorder_tags,
    resolve_tags,
    tag_customers,
)
from tests import factories

pytestmark = pytest.mark.django_db


def customer_tag_ids(customer) -> set[int]:
    return set(CustomerTag.objects.filter(customer=customer).values_list("tag_id", flat=True))


def test_group_and_tag_validation(world):
    group = create_tag_group(corp=world.corp, name="地区", tag_names=["北京", "上海"])
    assert [t.name for t in Tag.objects.for_corp(world.corp).filter(group=group)] == ["北京", "上海"]
    with pytest.raises(Invalid):
        create_tag_group(corp=world.corp, name="地区")
    with pytest.raises(Invalid):
        create_tag_group(corp=world.corp, name=" ")
    with pytest.raises(Invalid):
        create_tag(group=group, name="北京")
    with pytest.raises(Invalid):
        create_tag(group=group, name="长" * 31)
    # the same names are free in another corp
    create_tag_group(corp=world.other_corp, name="地区", tag_names=["北京"])
    tag = Tag.objects.for_corp(world.corp).get(name="上海")
    with pytest.raises(Invalid):
        rename_tag(tag=tag, name="北京")
    assert rename_tag(tag=tag, name="沪").name == "沪"


def test_reorder_requires_the_whole_set(world):
    g1 = create_tag_group(corp=world.corp, name="A", tag_names=["a1", "a2", "a3"])
    g2 = create_tag_group(corp=world.corp, name="B")
    reorder_tag_groups(corp=world.corp, group_ids=[g2.pk, g1.pk])
    assert list(TagGroup.objects.for_corp(world.corp).values_list("name", flat=True)) == ["B", "A"]
    with pytest.raises(Invalid):
        reorder_tag_groups(corp=world.corp, group_ids=[g1.pk])
    ids = list(Tag.objects.for_corp(world.corp).filter(group=g1).values_list("pk", flat=True))
    reorder_tags(group=g1, tag_ids=list(reversed(ids)))
    assert list(Tag.objects.for_corp(world.corp).filter(group=g1).values_list("name", flat=True)) == [
        "a3",
        "a2",
        "a1",
    ]
    with pytest.raises(Invalid):
        reorder_tags(group=g1, tag_ids=ids[:2])


def test_mark_relation_tags_is_idempotent_and_derives_customer_view(world):
    # given a customer followed by two staff
    beijing = factories.make_tag(world.corp, "北京")
    vip = factories.make_tag(world.corp, "VIP", group="等级")
    customer = factories.make_customer(world.corp)
    r_wang = factories.follow(customer, world.wang)
    r_liu = factories.follow(customer, world.liu)
    # when both tag 北京 and wang tags it again
    assert mark_relation_tags(relation=r_wang, add=[beijing, vip], source="console").added == [
        beijing.pk,
        vip.pk,
    ]
    assert mark_relation_tags(relation=r_wang, add=[beijing], source="console").added == []
    mark_relation_tags(relation=r_liu, add=[beijing], source="console")
    # then
    assert customer_tag_ids(customer) == {beijing.pk, vip.pk}
    assert Event.objects.filter(customer=customer, kind="tagged").count() == 3
    # when wang removes 北京: liu still carries it, so the customer keeps it
    mark_relation_tags(relation=r_wang, remove=[beijing], source="console")
    assert customer_tag_ids(customer) == {beijing.pk, vip.pk}
    mark_relation_tags(relation=r_liu, remove=[beijing], source="console")
    assert customer_tag_ids(customer) == {vip.pk}
    assert Event.objects.filter(customer=customer, kind="untagged").count() == 2
    # removing what is not there records nothing
    assert mark_relation_tags(relation=r_liu, remove=[beijing], source="console").removed == []
    assert Event.objects.filter(customer=customer, kind="untagged").count() == 2


def test_mark_refuses_foreign_tags_and_contradictions(world):
    foreign = factories.make_tag(world.other_corp, "外部")
    mine = factories.make_tag(world.corp, "本地")
    relation = factories.follow(factories.make_customer(world.corp), world.wang)
    with pytest.raises(NotFound) as error:
        mark_relation_tags(relation=relation, add=[mine, foreign], source="api")
    assert error.value.code == ErrorCode.UNKNOWN_TAG
    with pytest.raises(Invalid):
        mark_relation_tags(relation=relation, add=[mine], remove=[mine], source="api")
    assert not RelationTag.objects.filter(relation=relation).exists()


def test_resolve_tags_names_the_missing_ids(world):
    mine = factories.make_tag(world.corp, "本地")
    foreign = factories.make_tag(world.other_corp, "外部")
    assert resolve_tags(world.corp, [mine.pk, mine.pk]) == [mine]
    with pytest.raises(NotFound) as error:
        resolve_tags(world.corp, [mine.pk, foreign.pk, 999999])
    assert str(foreign.pk) in error.value.message and "999999" in error.value.message


def test_delete_tag_removes_it_everywhere_with_one_event(world):
    tag = factories.make_tag(world.corp, "临时")
    customers = [factories.make_customer(world.corp) for _ in range(3)]
    for c in customers:
        mark_relation_tags(relation=factories.follow(c, world.wang), add=[tag], source="console")
    assert delete_tag(tag=tag, source="console") == 3
    assert not CustomerTag.objects.filter(tag_id=tag.pk).exists()
    assert Event.objects.for_corp(world.corp).filter(kind="tag_deleted").count() == 1
    group = create_tag_group(corp=world.corp, name="整组", tag_names=["x", "y"])
    assert delete_tag_group(group=group, source="console") == 2
    assert not TagGroup.objects.filter(pk=group.pk).exists()


def test_tag_customers_respects_scope(world):
    # given one customer of wang (华东), one of liu (华南), one of both
    tag = factories.make_tag(world.corp, "活动")
    c_wang = factories.make_customer(world.corp, "甲")
    factories.follow(c_wang, world.wang)
    c_liu = factories.make_customer(world.corp, "乙")
    factories.follow(c_liu, world.liu)
    c_both = factories.make_customer(world.corp, "丙")
    factories.follow(c_both, world.wang)
    factories.follow(c_both, world.liu)
    everyone = [c_wang.pk, c_liu.pk, c_both.pk]
    # when the staff member wang tags all three
    result = tag_customers(
        actor=world.staff_wang, customer_ids=everyone, add_tag_ids=[tag.pk], source="console"
    )
    # then only wang's relations are tagged
    assert (result.customers, result.relations_changed, result.skipped_customers) == (2, 2, 1)
    assert set(RelationTag.objects.filter(tag=tag).values_list("relation__staff_id", flat=True)) == {
        world.wang.pk
    }
    # an operator tags every active relation, and repeating changes nothing
    result = tag_customers(
        actor=world.operator, customer_ids=everyone, add_tag_ids=[tag.pk], source="console"
    )
    assert result.relations_changed == 2  # liu's two relations
    result = tag_customers(
        actor=world.operator, customer_ids=everyone, add_tag_ids=[tag.pk], source="console"
    )
    assert result.relations_changed == 0
    # a foreign customer id is skipped, a foreign tag is an error
    foreign_customer = factories.make_customer(world.other_corp)
    result = tag_customers(
        actor=world.admin, customer_ids=[foreign_customer.pk], add_tag_ids=[tag.pk], source="api"
    )
    assert result.customers == 0 and result.skipped_customers == 1
    with pytest.raises(NotFound):
        tag_customers(
            actor=world.admin,
            customer_ids=everyone,
            add_tag_ids=[factories.make_tag(world.other_corp, "x").pk],
            source="api",
        )
    with pytest.raises(Invalid):
        tag_customers(actor=world.admin, customer_ids=everyone, source="api")


def test_an_ended_relation_keeps_its_tags_frozen(world):
    from siyu.customers.services import end_follow_relation

    tag = factories.make_tag(world.corp, "冻结")
    relation = factories.follow(factories.make_customer(world.corp), world.wang)
    mark_relation_tags(relation=relation, add=[tag], source="console")
    end_follow_relation(relation=relation, by="customer", source="wecom")
    with pytest.raises(Invalid):
        mark_relation_tags(relation=relation, remove=[tag], source="console")
    assert RelationTag.objects.filter(relation=relation, tag=tag).exists()
