"""In a real browser: an operator builds "北京 AND 女 AND NOT purchased(30d)" with the live count, sees an
error inline, saves the segment and reads its members."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from siyu.core.clock import now
from siyu.customers.behaviour import record_behaviour
from siyu.customers.models import Customer
from siyu.segments.models import Segment
from siyu.tags.services import tag_customers
from tests import factories
from tests.conftest import World
from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e


@pytest.fixture
def shoppers(world: World) -> dict[str, int]:
    beijing = factories.make_tag(world.corp, "北京")
    female = factories.make_tag(world.corp, "女", group="性别")
    ids = {}
    for name, tags in {
        "没买的北京女士": [beijing, female],
        "买过的北京女士": [beijing, female],
        "北京先生": [beijing],
    }.items():
        customer = factories.make_customer(world.corp, name)
        factories.follow(customer, world.wang)
        tag_customers(
            actor=world.admin, customer_ids=[customer.pk], add_tag_ids=[t.pk for t in tags], source="console"
        )
        ids[name] = customer.pk
    record_behaviour(
        customer=Customer.objects.get(pk=ids["买过的北京女士"]),
        kind="purchased",
        occurred_at=now() - dt.timedelta(days=3),
        payload={"amount": 128},
    )
    return ids


def test_build_a_segment_with_the_live_count(
    logged_in: Callable[[str], Page], shoppers: dict[str, int]
) -> None:
    # given
    page = logged_in("operator1")
    page.goto("/segments/")
    page.get_by_test_id("new-segment").click()
    text = page.get_by_test_id("segment-text")

    # when: a mistake first
    text.fill("北京 AND gender>female")
    # then: the error shows in place
    expect(page.get_by_test_id("segment-error")).to_contain_text("gender:female")

    # when: the conditions of the issue, one piece from the palette
    text.fill("北京 AND 女")
    expect(page.get_by_test_id("live-count")).to_have_text("2")
    page.locator("#palette-condition").select_option("purchased(30d)")
    page.get_by_test_id("palette-and-not").click()
    # then: the count follows (debounced) with the canonical text and a sample
    expect(text).to_have_value("北京 AND 女 AND NOT purchased(30d)")
    expect(page.get_by_test_id("live-count")).to_have_text("1")
    expect(page.get_by_test_id("canonical-text")).to_have_text("tag:北京 AND tag:女 AND NOT purchased(30d)")
    expect(page.get_by_test_id("segment-sample")).to_contain_text("没买的北京女士")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "segment-builder.png"), full_page=True)

    # when
    page.locator("input[name=name]").fill("北京女性未购买")
    page.get_by_test_id("save-segment").click()

    # then: the members page lists the one customer, with the customer list's rows
    expect(page.get_by_test_id("segment-name")).to_contain_text("北京女性未购买")
    rows = page.get_by_test_id("customer-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("没买的北京女士")
    assert Segment.objects.get().text == "tag:北京 AND tag:女 AND NOT purchased(30d)"
    page.goto("/segments/")
    expect(page.get_by_test_id("segment-count")).to_have_text("1")
    page.screenshot(path=str(ARTIFACTS / "segment-list.png"), full_page=True)
