"""The console's customer list: search, filters, sort, keyset pages, scope, count fragment, query budget."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from siyu.core.clock import frozen_at
from siyu.corps.access import Actor
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.customers.services import end_follow_relation
from siyu.tags.models import Tag
from siyu.tags.services import mark_relation_tags
from tests import factories
from tests.conftest import World

LIST = reverse("customers:list")

Login = Callable[[Actor], Client]


@pytest.fixture
def login_as(client: Client) -> Login:
    def login(actor: Actor) -> Client:
        client.force_login(get_user_model().objects.get(pk=actor.user_id))
        return client

    return login


def mark(relation: FollowRelation, *tags: Tag) -> None:
    mark_relation_tags(relation=relation, add=list(tags), source=Event.Source.CONSOLE)


def listed(client: Client, url: str = LIST, **params: object) -> list[str]:
    """The names on the page, in order (GET ``url`` with ``params``); asserts the page answered 200."""
    response = client.get(url, params)
    assert response.status_code == 200, response.content[:500]
    return [row.customer.name for row in response.context["rows"]]


def test_the_list_shows_each_customer_with_type_staff_remark_tags_and_local_added_time(
    world: World, login_as: Login
) -> None:
    # given a customer added at 23:30 UTC, which is the next morning in Shanghai
    vip = factories.make_tag(world.corp, "VIP", group="等级")
    with frozen_at(dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)):
        customer = factories.make_customer(world.corp, "张三", type=Customer.Type.WECOM)
        relation = factories.follow(customer, world.wang, remark="张总")
    mark(relation, vip)

    # when
    response = login_as(world.admin).get(LIST)

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "张三" in html and "张总" in html and "王芳" in html
    assert f'class="chip" data-tag-id="{vip.pk}"' in html
    assert "badge-wecom" in html
    assert "2026-03-02 07:30" in html  # Asia/Shanghai, the corp's zone
    assert reverse("customers:detail", args=[customer.pk]) in html


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("李雷", ["李雷"]),  # name
        ("老同学", ["李雷"]),  # remark on the relation
        ("13800138000", ["李雷"]),  # a remark mobile
        ("wmHanMeiMei", ["韩梅梅"]),  # external_userid, whole
        ("wmHanMei", []),  # a fragment of one: ids are matched whole
        ("nobody-has-this", []),
    ],
)
def test_search_finds_by_name_remark_mobile_and_external_userid(
    world: World, login_as: Login, needle: str, expected: list[str]
) -> None:
    # given
    li = factories.make_customer(world.corp, "李雷", external_userid="wmLiLei")
    factories.follow(li, world.wang, remark="老同学", remark_mobiles=["13800138000"])
    han = factories.make_customer(world.corp, "韩梅梅", external_userid="wmHanMeiMei")
    factories.follow(han, world.liu, remark="邻居")

    # when
    names = listed(login_as(world.admin), q=needle)

    # then
    assert names == expected


@dataclass
class Tagged:
    beijing: Tag
    vip: Tag


@pytest.fixture
def tagged(world: World) -> Tagged:
    """Three customers: A (北京, VIP) with 王芳; B (北京) with 刘强; C (VIP) with 刘强, channel expo."""
    beijing = factories.make_tag(world.corp, "北京", group="地区")
    vip = factories.make_tag(world.corp, "VIP", group="等级")
    a = factories.make_customer(world.corp, "甲")
    b = factories.make_customer(world.corp, "乙")
    c = factories.make_customer(world.corp, "丙")
    mark(factories.follow(a, world.wang), beijing, vip)
    mark(factories.follow(b, world.liu), beijing)
    mark(factories.follow(c, world.liu, state="expo"), vip)
    return Tagged(beijing=beijing, vip=vip)


def test_tags_any_and_all(world: World, login_as: Login, tagged: Tagged) -> None:
    # given
    client = login_as(world.admin)
    beijing, vip = tagged.beijing.pk, tagged.vip.pk

    # when
    any_of = listed(client, tag=[beijing, vip], tag_mode="any", sort="name")
    all_of = listed(client, tag=[beijing, vip], tag_mode="all", sort="name")
    one = listed(client, tag=[vip], sort="name")

    # then
    assert sorted(any_of) == sorted(["甲", "乙", "丙"])
    assert all_of == ["甲"]
    assert sorted(one) == sorted(["甲", "丙"])


def test_staff_department_channel_filters(world: World, login_as: Login, tagged: Tagged) -> None:
    # given
    client = login_as(world.admin)

    # when / then
    assert listed(client, staff=[world.wang.pk]) == ["甲"]
    assert sorted(listed(client, staff=[world.liu.pk])) == sorted(["乙", "丙"])
    assert listed(client, department=[world.east.pk]) == ["甲"]
    assert sorted(listed(client, department=[world.south.pk])) == sorted(["乙", "丙"])
    assert listed(client, state="expo") == ["丙"]
    assert listed(client, state="other, expo") == ["丙"]


def test_relation_status_filter(world: World, login_as: Login) -> None:
    # given one customer who deleted 王芳 and one still followed
    gone = factories.make_customer(world.corp, "走了")
    relation = factories.follow(gone, world.wang)
    end_follow_relation(relation=relation, by="customer", source=Event.Source.CONSOLE)
    factories.follow(factories.make_customer(world.corp, "还在"), world.wang)
    client = login_as(world.admin)

    # when / then
    assert listed(client, status="deleted_by_customer") == ["走了"]
    assert listed(client, status="active") == ["还在"]


def test_added_date_range_is_in_the_corps_time_zone(world: World, login_as: Login) -> None:
    # given: added 2026-03-01 20:00 UTC = 2026-03-02 04:00 in Shanghai
    with frozen_at(dt.datetime(2026, 3, 1, 20, 0, tzinfo=dt.UTC)):
        late = factories.make_customer(world.corp, "深夜")
        factories.follow(late, world.wang)
    with frozen_at(dt.datetime(2026, 3, 10, 4, 0, tzinfo=dt.UTC)):
        factories.follow(factories.make_customer(world.corp, "十号"), world.wang)
    client = login_as(world.admin)

    # when / then
    assert listed(client, added_from="2026-03-02", added_to="2026-03-02") == ["深夜"]
    assert listed(client, added_to="2026-03-01") == []
    assert listed(client, added_from="2026-03-03") == ["十号"]


def test_sort_by_name_and_added(world: World, login_as: Login) -> None:
    # given
    for day, name in [(3, "b"), (1, "c"), (2, "a")]:
        with frozen_at(dt.datetime(2026, 1, day, tzinfo=dt.UTC)):
            factories.follow(factories.make_customer(world.corp, name), world.wang)
    client = login_as(world.admin)

    # when / then
    assert listed(client) == ["b", "a", "c"]  # newest first by default
    assert listed(client, sort="added") == ["c", "a", "b"]
    assert listed(client, sort="name") == ["a", "b", "c"]
    assert listed(client, sort="-name") == ["c", "b", "a"]


@pytest.mark.parametrize("sort", ["-added", "added", "name", "-name"])
def test_pages_cover_every_customer_once(world: World, login_as: Login, sort: str) -> None:
    # given 23 customers, several sharing an added time and a name (ties broken by id)
    expected = set()
    for i in range(23):
        with frozen_at(dt.datetime(2026, 1, 1 + i // 4, tzinfo=dt.UTC)):
            customer = factories.make_customer(world.corp, f"客户{i % 5}")
            factories.follow(customer, world.wang)
            expected.add(customer.pk)
    client = login_as(world.admin)

    # when: follow the next links, 5 per page, as the browser does
    seen: list[int] = []
    pages = 0
    url = f"{LIST}?sort={sort}&page_size=5"
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [row.customer.pk for row in response.context["rows"]]
        pages += 1
        url = f"{LIST}?{response.context['next_query']}" if response.context["next_query"] else ""

    # then
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == expected
    assert pages == 5


def test_the_htmx_rows_fragment_returns_the_next_rows_and_an_out_of_band_pager(
    world: World, login_as: Login
) -> None:
    # given
    for i in range(3):
        factories.follow(factories.make_customer(world.corp, f"客户{i}"), world.wang)
    client = login_as(world.admin)
    first = client.get(LIST, {"page_size": 2})

    # when
    response = client.get(
        f"{reverse('customers:rows')}?{first.context['next_query']}", HTTP_HX_REQUEST="true"
    )

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('data-testid="customer-row"') == 1
    assert 'hx-swap-oob="true"' in html and 'data-testid="end-of-list"' in html
    assert 'data-testid="first-page"' not in html  # appended rows: the page still starts at the first row
    assert "<html" not in html
    # while the same page opened by its link (no JavaScript) offers the way back
    plain = client.get(f"{LIST}?{first.context['next_query']}").content.decode()
    assert 'data-testid="first-page"' in plain


def test_staff_see_only_their_customers_manager_their_departments_never_another_corp(
    world: World, login_as: Login
) -> None:
    # given
    mine = factories.make_customer(world.corp, "王的客户")
    factories.follow(mine, world.wang)
    theirs = factories.make_customer(world.corp, "刘的客户")
    factories.follow(theirs, world.liu)
    other_staff = factories.make_staff(world.other_corp, "外人")
    factories.follow(factories.make_customer(world.other_corp, "别家客户"), other_staff)

    # when / then
    assert listed(login_as(world.staff_wang)) == ["王的客户"]
    assert listed(login_as(world.staff_liu)) == ["刘的客户"]
    assert listed(login_as(world.manager)) == ["王的客户"]  # manages 华东, where 王芳 is
    assert sorted(listed(login_as(world.admin))) == sorted(["王的客户", "刘的客户"])
    assert sorted(listed(login_as(world.operator))) == sorted(["王的客户", "刘的客户"])


def test_a_staff_member_filtering_by_a_colleague_sees_nothing_of_theirs(
    world: World, login_as: Login
) -> None:
    # given
    shared = factories.make_customer(world.corp, "共同客户")
    factories.follow(shared, world.wang)
    factories.follow(shared, world.liu, remark="刘的备注")
    only_liu = factories.make_customer(world.corp, "刘独有")
    factories.follow(only_liu, world.liu)
    client = login_as(world.staff_wang)

    # when
    response = client.get(LIST)

    # then: the shared customer shows, but not 刘强's relation or remark
    assert [row.customer.name for row in response.context["rows"]] == ["共同客户"]
    assert "刘的备注" not in response.content.decode()
    assert [r.staff.name for r in response.context["rows"][0].relations] == ["王芳"]


@pytest.mark.parametrize(
    "params",
    [
        {"tag": "999999"},
        {"staff": "abc"},
        {"status": "gone"},
        {"sort": "price"},
        {"cursor": "not-a-cursor"},
        {"page_size": "100000"},
        {"added_from": "2026-02-30"},
        {"added_from": "2026-03-05", "added_to": "2026-03-01"},
    ],
)
def test_bad_filters_are_a_400_with_the_reason_never_a_500(
    world: World, login_as: Login, params: dict[str, str]
) -> None:
    # given
    factories.follow(factories.make_customer(world.corp, "某人"), world.wang)

    # when
    response = login_as(world.admin).get(LIST, params)

    # then
    assert response.status_code == 400
    assert 'data-testid="filter-errors"' in response.content.decode()
    assert response.context["rows"] == []


def test_another_corps_tag_is_not_a_valid_filter(world: World, login_as: Login) -> None:
    # given
    foreign = factories.make_tag(world.other_corp, "别家标签")

    # when
    response = login_as(world.admin).get(LIST, {"tag": foreign.pk})

    # then
    assert response.status_code == 400


def test_count_fragment_counts_the_filtered_customers_in_scope(
    world: World, login_as: Login, tagged: Tagged
) -> None:
    # given
    vip = tagged.vip.pk

    # when
    admin = login_as(world.admin).get(reverse("customers:count"), {"tag": vip, "cursor": "ignored"})
    staff = login_as(world.staff_liu).get(reverse("customers:count"), {"tag": vip})
    bad = login_as(world.admin).get(reverse("customers:count"), {"tag": "nope"})

    # then
    assert admin.status_code == 200 and admin.context["count"] == 2
    assert staff.context["count"] == 1
    assert bad.status_code == 400
    assert "<html" not in admin.content.decode()


def test_the_list_loads_its_count_separately(world: World, login_as: Login, tagged: Tagged) -> None:
    # when
    response = login_as(world.admin).get(LIST, {"q": "甲"})

    # then: the page asks for the count with the same filter
    html = response.content.decode()
    assert f'hx-get="{reverse("customers:count")}?q=%E7%94%B2"' in html


def make_customers(world: World, n: int, tags: list[Tag]) -> None:
    for i in range(n):
        customer = factories.make_customer(world.corp, f"客户{i}")
        mark(factories.follow(customer, world.wang, remark=f"备注{i}"), *tags)
        factories.follow(customer, world.liu)


def count_list_queries(client: Client, params: dict[str, object]) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(LIST, params)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("role", ["admin", "manager", "staff_wang"])
def test_the_list_costs_the_same_number_of_queries_for_5_and_50_customers(
    world: World, login_as: Login, role: str
) -> None:
    # given
    actor: Actor = getattr(world, role)
    client = login_as(actor)
    tags = [factories.make_tag(world.corp, f"标签{i}", group="兴趣") for i in range(3)]
    make_customers(world, 5, tags)
    params: dict[str, object] = {"page_size": 50, "tag": [tags[0].pk, tags[1].pk], "staff": [world.wang.pk]}
    params_plain: dict[str, object] = {"page_size": 50}
    small = count_list_queries(client, params_plain)
    small_filtered = count_list_queries(client, params)

    # when
    make_customers(world, 45, tags)
    large = count_list_queries(client, params_plain)
    large_filtered = count_list_queries(client, params)

    # then
    response = client.get(LIST, params_plain)
    assert len(response.context["rows"]) == 50
    assert small == large
    assert small_filtered == large_filtered
    assert large <= 14  # session, user, corp and actor, switchable corps, 3 filter choices, 3 for the page
