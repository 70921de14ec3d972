"""In a real browser: tag and untag a relation on the customer detail page; create tags on the tags page."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from siyu.customers.models import Customer, Event, FollowRelation
from siyu.customers.services import add_note, create_custom_field
from siyu.tags.models import RelationTag, Tag, TagGroup
from siyu.tags.services import mark_relation_tags
from tests import factories
from tests.conftest import World
from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e


@dataclass
class Data:
    customer: Customer
    wang_relation: FollowRelation
    liu_relation: FollowRelation
    hot: Tag
    tea: Tag


@pytest.fixture
def data(world: World) -> Data:
    customer = factories.make_customer(
        world.corp,
        "陈静",
        external_userid="wmchenjing01",
        unionid="oUnion-chen",
        corp_name="静思科技",
        type=2,
    )
    wang_relation = factories.follow(
        customer,
        world.wang,
        remark="陈静-老客户",
        description="每月到店两次",
        remark_mobiles=["13800001111"],
        state="ch_store",
        add_way=1,
    )
    liu_relation = factories.follow(customer, world.liu, remark="陈姐", add_way=202)
    hot = factories.make_tag(world.corp, "高意向", group="客户等级")
    tea = factories.make_tag(world.corp, "茶", group="兴趣")
    factories.make_tag(world.corp, "上海", group="地区")
    mark_relation_tags(relation=wang_relation, add=[tea], source=Event.Source.CONSOLE)
    mark_relation_tags(relation=liu_relation, add=[tea], source=Event.Source.CONSOLE)
    create_custom_field(corp=world.corp, key="birthday", label="生日", kind="date")
    create_custom_field(
        corp=world.corp, key="level", label="会员等级", kind="choice", choices=["银卡", "金卡"]
    )
    add_note(customer=customer, author_id=None, text="喜欢周末来店里喝茶", source=Event.Source.CONSOLE)
    return Data(customer=customer, wang_relation=wang_relation, liu_relation=liu_relation, hot=hot, tea=tea)


def test_tag_and_untag_a_relation_and_see_the_timeline_grow(
    logged_in: Callable[[str], Page], data: Data, world: World
) -> None:
    # given
    page = logged_in("admin1")
    page.goto(f"/customers/{data.customer.pk}/")
    card = page.get_by_test_id(f"relation-{data.wang_relation.pk}")
    expect(card).to_be_visible()
    expect(page.get_by_test_id(f"relation-{data.liu_relation.pk}")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "customer-detail.png"))
    tagged_events = page.locator('[data-testid="timeline-event"][data-kind="tagged"]')
    expect(tagged_events).to_have_count(2)  # 茶 on both relations

    # when: add 高意向 to 王芳's relation
    card.get_by_test_id("add-tag-select").select_option(str(data.hot.pk))
    card.get_by_test_id("add-tag-submit").click()

    # then: without a reload, the chip is on the relation and the customer, and the event on the timeline
    card = page.get_by_test_id(f"relation-{data.wang_relation.pk}")
    expect(card.locator(f'[data-testid="relation-tag"][data-tag-id="{data.hot.pk}"]')).to_be_visible()
    expect(page.get_by_test_id("customer-tags").locator(f'[data-tag-id="{data.hot.pk}"]')).to_be_visible()
    expect(tagged_events).to_have_count(3)
    expect(tagged_events.first).to_contain_text("高意向")
    expect(page).to_have_url(re.compile(rf"/customers/{data.customer.pk}/$"))  # htmx swapped, no redirect
    assert RelationTag.objects.filter(relation=data.wang_relation, tag=data.hot).exists()

    # when: remove it again
    card.get_by_test_id(f"remove-tag-{data.hot.pk}").click()

    # then
    expect(card.locator(f'[data-testid="relation-tag"][data-tag-id="{data.hot.pk}"]')).to_have_count(0)
    expect(page.get_by_test_id("customer-tags").locator(f'[data-tag-id="{data.hot.pk}"]')).to_have_count(0)
    untagged = page.locator('[data-testid="timeline-event"][data-kind="untagged"]')
    expect(untagged).to_have_count(1)
    expect(untagged).to_contain_text("高意向")
    assert not RelationTag.objects.filter(relation=data.wang_relation, tag=data.hot).exists()


def test_a_remark_too_long_shows_its_error_in_place(logged_in: Callable[[str], Page], data: Data) -> None:
    # given
    page = logged_in("wang")
    page.goto(f"/customers/{data.customer.pk}/")
    card = page.get_by_test_id(f"relation-{data.wang_relation.pk}")
    expect(page.get_by_test_id(f"relation-{data.liu_relation.pk}")).to_have_count(
        0
    )  # 刘强's is not 王芳's to see

    # when
    card.get_by_test_id("edit-remark").click()
    card.locator("input[name=remark]").fill("长" * 65)
    card.get_by_test_id("save-remark").click()

    # then: the 400 answer is swapped in with the error; nothing changed
    expect(card.locator(".errorlist")).to_be_visible()
    expect(card.locator("input[name=remark]")).to_have_value("长" * 65)
    data.wang_relation.refresh_from_db()
    assert data.wang_relation.remark == "陈静-老客户"

    # when: a valid remark
    card.locator("input[name=remark]").fill("陈静-VIP")
    card.get_by_test_id("save-remark").click()

    # then
    expect(card.get_by_test_id("relation-remark")).to_have_text("陈静-VIP")
    expect(page.locator('[data-testid="timeline-event"][data-kind="remark_changed"]')).to_have_count(1)


def test_create_a_tag_group_and_a_tag_on_the_tags_page(
    logged_in: Callable[[str], Page], world: World
) -> None:
    # given
    page = logged_in("operator1")
    page.goto("/tags/")

    # when: a new group with one tag, then another tag in it
    form = page.get_by_test_id("new-group-form")
    form.locator("input[name=name]").fill("生命周期")
    form.locator("textarea[name=tags]").fill("新客")
    form.get_by_test_id("create-group").click()
    group = TagGroup.objects.for_corp(world.corp).get(name="生命周期")
    card = page.get_by_test_id(f"group-{group.pk}")
    expect(card).to_be_visible()
    card.locator("input[name=name]").last.fill("老客")
    card.get_by_test_id("create-tag").click()

    # then
    card = page.get_by_test_id(f"group-{group.pk}")
    expect(card.get_by_test_id("tag-name")).to_have_text(["新客", "老客"])
    expect(page.get_by_test_id("messages")).to_be_visible()

    # when: the same name again
    card.locator("input[name=name]").last.fill("老客")
    card.get_by_test_id("create-tag").click()

    # then: refused next to the form
    expect(page.get_by_test_id(f"group-{group.pk}").get_by_test_id("form-error")).to_be_visible()
    assert list(Tag.objects.for_corp(world.corp).filter(group=group).values_list("name", flat=True)) == [
        "新客",
        "老客",
    ]
