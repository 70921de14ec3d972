"""In a real browser: log in through the form, see the customer list, filter it, bulk-tag, open a customer."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from siyu.customers.models import Customer, Event
from siyu.tags.models import CustomerTag, Tag
from siyu.tags.services import mark_relation_tags
from tests import factories
from tests.conftest import World, run_tasks

pytestmark = pytest.mark.e2e


@dataclass
class Data:
    vip: Tag
    new: Tag
    jia: Customer  # 甲: 王芳, VIP
    yi: Customer  # 乙: 刘强, VIP
    bing: Customer  # 丙: 王芳, no tag


@pytest.fixture
def data(world: World) -> Data:
    vip = factories.make_tag(world.corp, "VIP", group="等级")
    new = factories.make_tag(world.corp, "新客", group="生命周期")
    jia = factories.make_customer(world.corp, "甲")
    mark_relation_tags(relation=factories.follow(jia, world.wang), add=[vip], source=Event.Source.CONSOLE)
    yi = factories.make_customer(world.corp, "乙")
    mark_relation_tags(relation=factories.follow(yi, world.liu), add=[vip], source=Event.Source.CONSOLE)
    bing = factories.make_customer(world.corp, "丙")
    factories.follow(bing, world.wang)
    return Data(vip=vip, new=new, jia=jia, yi=yi, bing=bing)


def row_ids(page: Page) -> set[int]:
    rows = page.get_by_test_id("customer-row")
    return {int(rows.nth(i).get_attribute("data-customer-id") or 0) for i in range(rows.count())}


def pick(page: Page, picker: str, value: int) -> None:
    """Open a picker and tick one option (the label is what a person clicks)."""
    page.get_by_test_id(picker).locator("summary").click()
    page.get_by_test_id(picker).locator(f"label:has(input[value='{value}'])").click()


def test_login_form_leads_to_the_customer_list(logged_in: Callable[[str], Page], data: Data) -> None:
    # when
    page = logged_in("admin1")

    # then
    expect(page).to_have_url(re.compile(r"/customers/$"))
    expect(page.get_by_test_id("nav")).to_be_visible()
    expect(page.get_by_test_id("current-corp")).to_be_visible()
    expect(page.get_by_test_id("customer-row")).to_have_count(3)
    expect(page.locator("#match-count")).to_have_attribute("data-count", "3")  # the count fragment arrived


def test_filter_by_tag_then_staff_changes_the_rows_and_a_customer_opens(
    logged_in: Callable[[str], Page], data: Data, world: World
) -> None:
    # given
    page = logged_in("admin1")
    expect(page.get_by_test_id("customer-row")).to_have_count(3)

    # when: filter by the VIP tag
    pick(page, "filter-tags", data.vip.pk)
    page.get_by_test_id("apply-filters").click()

    # then
    expect(page.get_by_test_id("customer-row")).to_have_count(2)
    assert row_ids(page) == {data.jia.pk, data.yi.pk}
    expect(page.locator("#match-count")).to_have_attribute("data-count", "2")

    # when: and by 王芳
    pick(page, "filter-staff", world.wang.pk)
    page.get_by_test_id("apply-filters").click()

    # then: the filter is in the URL (bookmarkable) and one row is left
    expect(page.get_by_test_id("customer-row")).to_have_count(1)
    assert row_ids(page) == {data.jia.pk}
    assert f"tag={data.vip.pk}" in page.url and f"staff={world.wang.pk}" in page.url

    # when: open the customer
    page.get_by_test_id("customer-link").first.click()

    # then
    expect(page).to_have_url(re.compile(rf"/customers/{data.jia.pk}/$"))


def test_bulk_tagging_the_selection_shows_progress_until_done(
    logged_in: Callable[[str], Page], data: Data
) -> None:
    # given
    page = logged_in("admin1")
    expect(page.get_by_test_id("bulk-bar")).to_be_hidden()

    # when: tick two rows, choose a tag to add, apply
    for customer in (data.jia, data.bing):
        page.locator(f"input.row-check[value='{customer.pk}']").check()
    expect(page.get_by_test_id("bulk-bar")).to_be_visible()
    expect(page.get_by_test_id("selected-count")).to_have_text("2")
    pick(page, "bulk-add-tags", data.new.pk)
    page.get_by_test_id("bulk-apply").click()

    # then: the job page polls; once a worker has run the job, it shows the result
    progress = page.get_by_test_id("job-progress")
    expect(progress).to_have_attribute("data-status", "pending")
    run_tasks()
    expect(progress).to_have_attribute("data-status", "done")
    expect(page.get_by_test_id("customers-changed")).to_have_text("2")
    tagged = set(CustomerTag.objects.filter(tag=data.new).values_list("customer_id", flat=True))
    assert tagged == {data.jia.pk, data.bing.pk}
