"""The tags page: groups and tags with customer counts; configurers create, rename, reorder, delete."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from siyu.customers.models import Event
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.tags.services import create_tag, create_tag_group, mark_relation_tags
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db

LIST = "/tags/"


def login(client: Client, username: str) -> Client:
    client.force_login(get_user_model().objects.get(username=username))
    return client


def names(group: TagGroup) -> list[str]:
    return list(
        Tag.objects.for_corp(group.corp_id)
        .filter(group=group)
        .order_by("order")
        .values_list("name", flat=True)
    )


def group_names(world: World) -> list[str]:
    return list(TagGroup.objects.for_corp(world.corp).order_by("order").values_list("name", flat=True))


def row(html: str, tag: Tag) -> str:
    start = html.index(f'data-testid="tag-{tag.pk}"')
    return html[start : html.index("</tr>", start)]


@pytest.fixture
def region(world: World) -> TagGroup:
    return create_tag_group(corp=world.corp, name="地区", tag_names=["上海", "北京", "广州"])


def tag(group: TagGroup, name: str) -> Tag:
    return Tag.objects.for_corp(group.corp_id).get(group=group, name=name)


def tag_customers(world: World, tag: Tag, staff_and_names: list[tuple[object, str]]) -> None:
    for staff, name in staff_and_names:
        customer = factories.make_customer(world.corp, name)
        relation = factories.follow(customer, staff)
        mark_relation_tags(relation=relation, add=[tag], source=Event.Source.CONSOLE)


# ---------- reading ----------


def test_groups_and_tags_are_listed_with_customer_counts(client: Client, world: World, region: TagGroup):
    # given: 上海 on three customers, 北京 on one, 广州 on none; a WeCom-synced group next to the Siyu one
    tag_customers(world, tag(region, "上海"), [(world.wang, "甲"), (world.wang, "乙"), (world.liu, "丙")])
    tag_customers(world, tag(region, "北京"), [(world.liu, "丁")])
    synced = create_tag_group(corp=world.corp, name="客户等级", wecom_group_id="etGROUP1")
    create_tag(group=synced, name="VIP", wecom_tag_id="etTAG1")
    login(client, "operator1")

    # when
    html = client.get(LIST).content.decode()

    # then
    counts = {
        name: row(html, tag(region, name)).split('data-testid="tag-count">')[1].split("<")[0]
        for name in ["上海", "北京", "广州"]
    }
    assert counts == {"上海": "3", "北京": "1", "广州": "0"}
    assert "badge-wecom" in row(html, tag(synced, "VIP"))
    assert "badge-wecom" not in row(html, tag(region, "上海"))
    assert 'data-testid="new-group-form"' in html and 'data-testid="read-only"' not in html


def test_staff_see_a_read_only_page_counting_only_their_customers(
    client: Client, world: World, region: TagGroup
):
    # given
    tag_customers(world, tag(region, "上海"), [(world.wang, "甲"), (world.liu, "乙"), (world.liu, "丙")])
    login(client, "wang")

    # when
    html = client.get(LIST).content.decode()

    # then
    assert 'data-testid="read-only"' in html
    for form in ("new-group-form", "new-tag-form", "tag-delete", "tag-up", "group-rename"):
        assert f'data-testid="{form}"' not in html
    assert 'data-testid="tag-count">1<' in row(html, tag(region, "上海"))


def count_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(LIST).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("username", ["admin1", "manager1"])
def test_the_page_costs_the_same_number_of_queries_for_2_or_10_tags(
    client: Client, world: World, username: str
):
    # given
    group = create_tag_group(corp=world.corp, name="兴趣", tag_names=["茶", "咖啡"])
    tag_customers(world, tag(group, "茶"), [(world.wang, "甲")])
    login(client, username)
    count_queries(client)  # warm up per-process caches
    with_two = count_queries(client)

    # when
    other = create_tag_group(corp=world.corp, name="来源渠道", tag_names=[f"渠道{i}" for i in range(8)])
    tag_customers(world, tag(other, "渠道3"), [(world.wang, "乙"), (world.liu, "丙")])
    with_ten = count_queries(client)

    # then
    assert Tag.objects.for_corp(world.corp).count() == 10
    assert with_two == with_ten


# ---------- creating and renaming ----------


def test_a_configurer_creates_a_group_with_its_first_tags(client: Client, world: World):
    # given
    login(client, "operator1")

    # when
    response = client.post(reverse("tags:group_create"), {"name": " 兴趣 ", "tags": "茶\n\n咖啡\n"})

    # then
    assert response.status_code == 302
    group = TagGroup.objects.for_corp(world.corp).get(name="兴趣")
    assert response["Location"] == f"{LIST}#group-{group.pk}"
    assert names(group) == ["茶", "咖啡"]
    assert group.wecom_group_id == ""


def test_a_configurer_creates_and_renames_tags_and_groups(client: Client, world: World, region: TagGroup):
    # given
    login(client, "admin1")

    # when
    created = client.post(reverse("tags:tag_create", args=[region.pk]), {"name": "深圳"})
    renamed = client.post(reverse("tags:tag_rename", args=[tag(region, "北京").pk]), {"name": "北京市"})
    regrouped = client.post(reverse("tags:group_rename", args=[region.pk]), {"name": "城市"})

    # then
    assert [r.status_code for r in (created, renamed, regrouped)] == [302, 302, 302]
    region.refresh_from_db()
    assert region.name == "城市"
    assert names(region) == ["上海", "北京市", "广州", "深圳"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "请填写标签名称"),
        ("   ", "请填写标签名称"),
        ("长" * 31, "标签名称最多 30 个字符"),
        ("北京", "已有标签“北京”"),  # the refusal reads in Chinese, the console's default
    ],
)
def test_a_bad_tag_name_is_shown_next_to_its_form_and_nothing_is_written(
    client: Client, world: World, region: TagGroup, name: str, message: str
):
    # given
    login(client, "admin1")
    before = sorted(Tag.objects.for_corp(world.corp).values_list("pk", "name"))

    # when
    created = client.post(reverse("tags:tag_create", args=[region.pk]), {"name": name})
    renamed = client.post(reverse("tags:tag_rename", args=[tag(region, "上海").pk]), {"name": name})

    # then
    for response in (created, renamed):
        assert response.status_code == 400
        html = response.content.decode()
        assert message in html
        assert html.count('data-testid="form-error"') == 1
    assert 'data-testid="new-tag-form"' in created.content.decode()
    assert sorted(Tag.objects.for_corp(world.corp).values_list("pk", "name")) == before


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "请填写标签组名称"), ("长" * 31, "标签组名称最多 30 个字符"), ("地区", "标签组“地区”已存在")],
)
def test_a_bad_group_name_is_refused(client: Client, world: World, region: TagGroup, name: str, message: str):
    # given
    other = create_tag_group(corp=world.corp, name="兴趣")
    login(client, "operator1")

    # when
    created = client.post(reverse("tags:group_create"), {"name": name, "tags": "茶"})
    renamed = client.post(reverse("tags:group_rename", args=[other.pk]), {"name": name})

    # then
    for response in (created, renamed):
        assert response.status_code == 400
        assert message in response.content.decode()
    assert group_names(world) == ["地区", "兴趣"]
    assert not Tag.objects.for_corp(world.corp).filter(name="茶").exists()


def test_a_group_whose_first_tags_are_bad_is_not_created(client: Client, world: World):
    # given
    login(client, "admin1")

    # when
    response = client.post(reverse("tags:group_create"), {"name": "兴趣", "tags": "茶\n" + "长" * 31})

    # then
    assert response.status_code == 400
    assert "标签名称最多 30 个字符" in response.content.decode()
    assert not TagGroup.objects.for_corp(world.corp).exists()


# ---------- reordering ----------


def test_tags_and_groups_move_up_and_down(client: Client, world: World, region: TagGroup):
    # given
    interests = create_tag_group(corp=world.corp, name="兴趣", tag_names=["茶"])
    login(client, "admin1")

    # when
    client.post(reverse("tags:tag_move", args=[tag(region, "广州").pk]), {"direction": "up"})
    client.post(reverse("tags:tag_move", args=[tag(region, "上海").pk]), {"direction": "down"})
    client.post(reverse("tags:group_move", args=[interests.pk]), {"direction": "up"})

    # then
    assert names(region) == ["广州", "上海", "北京"]
    assert group_names(world) == ["兴趣", "地区"]
    html = client.get(LIST).content.decode()
    assert html.index('data-testid="group-name">兴趣') < html.index('data-testid="group-name">地区')


def test_moving_past_the_end_changes_nothing_and_a_bad_direction_is_refused(
    client: Client, world: World, region: TagGroup
):
    login(client, "admin1")
    first = tag(region, "上海")
    assert client.post(reverse("tags:tag_move", args=[first.pk]), {"direction": "up"}).status_code == 302
    assert (
        client.post(reverse("tags:tag_move", args=[first.pk]), {"direction": "sideways"}).status_code == 400
    )
    assert client.post(reverse("tags:group_move", args=[region.pk]), {}).status_code == 400
    assert names(region) == ["上海", "北京", "广州"]


# ---------- deleting ----------


def test_deleting_a_tag_asks_first_and_says_how_many_customers_carry_it(
    client: Client, world: World, region: TagGroup
):
    # given
    shanghai = tag(region, "上海")
    tag_customers(world, shanghai, [(world.wang, "甲"), (world.liu, "乙")])
    login(client, "operator1")
    url = reverse("tags:tag_delete", args=[shanghai.pk])

    # when
    confirm = client.get(url)

    # then
    assert confirm.status_code == 200
    assert "有 2 位客户带有此标签" in confirm.content.decode()
    assert Tag.objects.filter(pk=shanghai.pk).exists()

    # when
    deleted = client.post(url)

    # then
    assert deleted.status_code == 302
    assert not Tag.objects.filter(pk=shanghai.pk).exists()
    assert not CustomerTag.objects.filter(tag_id=shanghai.pk).exists()
    event = Event.objects.get(corp=world.corp, kind=Event.Kind.TAG_DELETED)
    assert event.payload == {"tag_id": shanghai.pk, "name": "上海", "customers": 2}
    assert "从 2 位客户身上移除" in client.get(LIST).content.decode()


def test_deleting_a_group_deletes_its_tags(client: Client, world: World, region: TagGroup):
    # given
    tag_customers(world, tag(region, "上海"), [(world.wang, "甲")])
    tag_customers(world, tag(region, "北京"), [(world.wang, "乙")])
    login(client, "admin1")
    url = reverse("tags:group_delete", args=[region.pk])

    # when
    confirm = client.get(url).content.decode()
    response = client.post(url)

    # then
    assert "涉及 2 位客户" in confirm and "组内的 3 个标签" in confirm
    assert response.status_code == 302
    assert not TagGroup.objects.filter(pk=region.pk).exists()
    assert not Tag.objects.for_corp(world.corp).exists()
    assert not CustomerTag.objects.for_corp(world.corp).exists()


# ---------- permissions ----------


@pytest.mark.parametrize("username", ["manager1", "wang"])
def test_non_configurers_cannot_change_tags(client: Client, world: World, region: TagGroup, username: str):
    # given
    shanghai = tag(region, "上海")
    login(client, username)
    attempts = [
        (reverse("tags:group_create"), {"name": "兴趣"}),
        (reverse("tags:group_rename", args=[region.pk]), {"name": "城市"}),
        (reverse("tags:group_move", args=[region.pk]), {"direction": "down"}),
        (reverse("tags:group_delete", args=[region.pk]), {}),
        (reverse("tags:tag_create", args=[region.pk]), {"name": "深圳"}),
        (reverse("tags:tag_rename", args=[shanghai.pk]), {"name": "沪"}),
        (reverse("tags:tag_move", args=[shanghai.pk]), {"direction": "down"}),
        (reverse("tags:tag_delete", args=[shanghai.pk]), {}),
    ]

    # when
    statuses = [client.post(url, data).status_code for url, data in attempts]

    # then
    assert statuses == [403] * len(attempts)
    assert client.get(reverse("tags:tag_delete", args=[shanghai.pk])).status_code == 403
    assert group_names(world) == ["地区"]
    assert names(region) == ["上海", "北京", "广州"]


def test_another_corps_tags_are_not_found(client: Client, world: World):
    # given
    foreign = create_tag_group(corp=world.other_corp, name="别家", tag_names=["外"])
    foreign_tag = Tag.objects.for_corp(world.other_corp).get()
    login(client, "admin1")

    # when
    responses = [
        client.post(reverse("tags:group_rename", args=[foreign.pk]), {"name": "我的"}),
        client.post(reverse("tags:tag_create", args=[foreign.pk]), {"name": "我的"}),
        client.post(reverse("tags:tag_rename", args=[foreign_tag.pk]), {"name": "我的"}),
        client.get(reverse("tags:tag_delete", args=[foreign_tag.pk])),
        client.post(reverse("tags:group_delete", args=[foreign.pk])),
    ]

    # then
    assert [r.status_code for r in responses] == [404] * 5
    assert "别家" not in client.get(LIST).content.decode()
    assert Tag.objects.for_corp(world.other_corp).get().name == "外"
