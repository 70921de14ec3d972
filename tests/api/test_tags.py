"""The tags API: groups and tags, create/rename/reorder/delete, customer counts, roles and tenancy."""

from __future__ import annotations

import pytest

from siyu.customers.models import Event
from siyu.tags.models import CustomerTag, RelationTag, Tag, TagGroup
from siyu.tags.services import create_tag_group, mark_relation_tags
from tests.api.conftest import count_queries, error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def tagged(world, book):
    """VIP on wang's relations to 王的客户 and 共同客户, 新客 on liu's relation to 刘的客户."""
    for customer, staff, tag in [
        (book.wang_only, world.wang, book.vip),
        (book.shared, world.wang, book.vip),
        (book.shared, world.liu, book.vip),  # the same tag twice on one customer counts once
        (book.liu_only, world.liu, book.new),
    ]:
        relation = customer.relations.get(staff=staff)
        mark_relation_tags(relation=relation, add=[tag], source="console")
    return book


def test_groups_list_their_tags_in_order_with_customer_counts(world, keys, tagged):
    # given
    create_tag_group(corp=world.corp, name="兴趣", tag_names=["美妆", "母婴"])

    # when
    response = keys.operator.get("/tag-groups")

    # then
    assert response.status_code == 200
    groups = response.json()
    assert [g["name"] for g in groups] == ["客户等级", "兴趣"]
    assert [(t["name"], t["customers"]) for t in groups[0]["tags"]] == [("VIP", 2), ("新客", 1)]
    assert [(t["name"], t["customers"]) for t in groups[1]["tags"]] == [("美妆", 0), ("母婴", 0)]
    assert all(g["wecom_group_id"] == "" for g in groups)


def test_counts_are_limited_to_what_the_key_may_see(world, keys, tagged):
    # when
    staff_counts = {t["name"]: t["customers"] for t in keys.staff_wang.get("/tags").json()}
    unlinked_counts = {t["name"]: t["customers"] for t in keys.staff_unlinked.get("/tags").json()}

    # then
    assert staff_counts == {"VIP": 2, "新客": 0}
    assert unlinked_counts == {"VIP": 0, "新客": 0}


def test_tag_lists_cost_the_same_queries_for_few_and_many_tags(world, keys, tagged):
    # given
    keys.admin.get("/tags")  # the first use of a key records it
    few_groups, _ = count_queries(lambda: keys.admin.get("/tag-groups"))
    few_tags, _ = count_queries(lambda: keys.admin.get("/tags"))
    for g in range(5):
        create_tag_group(corp=world.corp, name=f"组{g}", tag_names=[f"标签{g}-{i}" for i in range(6)])

    # when
    many_groups, groups = count_queries(lambda: keys.admin.get("/tag-groups"))
    many_tags, tags = count_queries(lambda: keys.admin.get("/tags"))

    # then
    assert len(groups.json()) == 6 and len(tags.json()) == 32
    assert (few_groups, few_tags) == (many_groups, many_tags)


def test_a_group_and_its_tags_are_created_renamed_reordered_and_deleted(world, keys, tagged):
    # when: create
    created = keys.admin.post("/tag-groups", {"name": " 生命周期 ", "tags": ["潜在", "成交", "流失"]})

    # then
    assert created.status_code == 201, created.json()
    group = created.json()
    assert group["name"] == "生命周期"
    assert [t["name"] for t in group["tags"]] == ["潜在", "成交", "流失"]
    group_id = group["id"]
    tag_ids = [t["id"] for t in group["tags"]]

    # when: rename, read, add a tag, reorder tags and groups
    renamed = keys.admin.patch(f"/tag-groups/{group_id}", {"name": "阶段"})
    fetched = keys.admin.get(f"/tag-groups/{group_id}")
    extra = keys.admin.post("/tags", {"group_id": group_id, "name": "复购"})
    reordered = keys.admin.post(
        f"/tag-groups/{group_id}/tags/reorder", {"tag_ids": [extra.json()["id"], *tag_ids]}
    )
    groups = keys.admin.post("/tag-groups/reorder", {"group_ids": [group_id, tagged.vip.group_id]})

    # then
    assert renamed.json()["name"] == fetched.json()["name"] == "阶段"
    assert extra.status_code == 201
    assert [t["name"] for t in reordered.json()["tags"]] == ["复购", "潜在", "成交", "流失"]
    assert [g["name"] for g in groups.json()] == ["阶段", "客户等级"]

    # when: delete
    deleted = keys.admin.delete(f"/tag-groups/{group_id}")

    # then
    assert deleted.json() == {"deleted": True, "customers": 0, "tags": 4}
    assert error_of(keys.admin.get(f"/tag-groups/{group_id}")) == (404, "not_found")
    assert not Tag.objects.filter(group_id=group_id).exists()


def test_a_tag_is_read_renamed_and_deleted_off_every_customer(world, keys, tagged):
    # given
    vip = tagged.vip

    # when
    read = keys.admin.get(f"/tags/{vip.pk}")
    renamed = keys.operator.patch(f"/tags/{vip.pk}", {"name": "大客户"})
    deleted = keys.operator.delete(f"/tags/{vip.pk}")

    # then
    assert (read.json()["name"], read.json()["customers"]) == ("VIP", 2)
    assert renamed.json()["name"] == "大客户"
    assert deleted.json() == {"deleted": True, "customers": 2, "tags": 0}
    assert not CustomerTag.objects.filter(tag_id=vip.pk).exists()
    assert not RelationTag.objects.filter(tag_id=vip.pk).exists()
    assert Event.objects.filter(kind="tag_deleted", source="api").count() == 1
    assert error_of(keys.admin.get(f"/tags/{vip.pk}")) == (404, "unknown_tag")


def test_tags_can_be_listed_per_group(world, keys, tagged):
    # given
    other = create_tag_group(corp=world.corp, name="兴趣", tag_names=["美妆"])

    # when
    response = keys.admin.get("/tags", group=other.pk)

    # then
    assert [t["name"] for t in response.json()] == ["美妆"]
    assert error_of(keys.admin.get("/tags", group=tagged.foreign_tag.group_id)) == (404, "not_found")


@pytest.mark.parametrize("who", ["manager", "staff_wang", "staff_unlinked"])
def test_only_admin_and_operator_keys_change_tags(world, keys, tagged, who):
    # given
    client = getattr(keys, who)
    vip = tagged.vip
    group_id = vip.group_id
    before = (
        list(TagGroup.objects.values_list("id", "name", "order")),
        list(Tag.objects.values_list("id", "name", "order")),
    )

    # when
    responses = [
        client.post("/tag-groups", {"name": "新组"}),
        client.patch(f"/tag-groups/{group_id}", {"name": "改名"}),
        client.post("/tag-groups/reorder", {"group_ids": [group_id]}),
        client.post(f"/tag-groups/{group_id}/tags/reorder", {"tag_ids": [tagged.new.pk, vip.pk]}),
        client.delete(f"/tag-groups/{group_id}"),
        client.post("/tags", {"group_id": group_id, "name": "新标签"}),
        client.patch(f"/tags/{vip.pk}", {"name": "改名"}),
        client.delete(f"/tags/{vip.pk}"),
    ]

    # then
    assert [error_of(r) for r in responses] == [(403, "permission_denied")] * len(responses)
    after = (
        list(TagGroup.objects.values_list("id", "name", "order")),
        list(Tag.objects.values_list("id", "name", "order")),
    )
    assert after == before
    assert client.get("/tag-groups").status_code == 200  # reading is for everyone


def test_another_corps_tags_and_groups_are_unknown(world, keys, tagged):
    # given
    tag = tagged.foreign_tag
    group_id = tag.group_id

    # when
    responses = {
        "get tag": keys.admin.get(f"/tags/{tag.pk}"),
        "rename tag": keys.admin.patch(f"/tags/{tag.pk}", {"name": "抢来的"}),
        "delete tag": keys.admin.delete(f"/tags/{tag.pk}"),
        "get group": keys.admin.get(f"/tag-groups/{group_id}"),
        "rename group": keys.admin.patch(f"/tag-groups/{group_id}", {"name": "抢来的"}),
        "delete group": keys.admin.delete(f"/tag-groups/{group_id}"),
        "tag in group": keys.admin.post("/tags", {"group_id": group_id, "name": "塞进去"}),
        "reorder group": keys.admin.post(f"/tag-groups/{group_id}/tags/reorder", {"tag_ids": [tag.pk]}),
    }
    listed = {t["id"] for t in keys.admin.get("/tags").json()}
    listed_groups = {g["id"] for g in keys.admin.get("/tag-groups").json()}

    # then
    codes = {name: error_of(r) for name, r in responses.items()}
    assert codes == {
        "get tag": (404, "unknown_tag"),
        "rename tag": (404, "unknown_tag"),
        "delete tag": (404, "unknown_tag"),
        "get group": (404, "not_found"),
        "rename group": (404, "not_found"),
        "delete group": (404, "not_found"),
        "tag in group": (404, "not_found"),
        "reorder group": (404, "not_found"),
    }
    assert tag.pk not in listed and group_id not in listed_groups
    tag.refresh_from_db()
    assert tag.name == "别家标签"
    assert not Tag.objects.filter(name="塞进去").exists()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("post", "/tag-groups", {"name": ""}, 400, "name"),
        ("post", "/tag-groups", {"name": "长" * 31}, 400, "name"),
        ("post", "/tag-groups", {"name": "客户等级"}, 400, "name"),  # exists
        ("post", "/tag-groups", {"name": "新组", "tags": ["好", "长" * 31]}, 400, "name"),
        ("post", "/tag-groups", {}, 422, "name"),
        ("post", "/tags", {"group_id": "@GROUP", "name": "VIP"}, 400, "name"),  # exists in the group
        ("post", "/tags", {"group_id": "@GROUP", "name": " "}, 400, "name"),
        ("post", "/tags", {"group_id": "@GROUP"}, 422, "name"),
        ("post", "/tags", {"group_id": "x", "name": "a"}, 422, "group_id"),
        ("patch", "/tags/@VIP", {"name": "新客"}, 400, "name"),
        ("patch", "/tag-groups/@GROUP", {"name": ""}, 400, "name"),
        ("post", "/tag-groups/reorder", {"group_ids": []}, 400, "group_ids"),
        ("post", "/tag-groups/reorder", {"group_ids": ["@GROUP", "@GROUP"]}, 400, "group_ids"),
        ("post", "/tag-groups/@GROUP/tags/reorder", {"tag_ids": ["@VIP"]}, 400, "tag_ids"),
        ("post", "/tag-groups/@GROUP/tags/reorder", {"tag_ids": "@VIP"}, 422, "tag_ids"),
    ],
)
def test_bad_tag_changes_are_refused_and_change_nothing(
    world, keys, tagged, method, path, body, status, field
):
    # given
    ids = {"@GROUP": tagged.vip.group_id, "@VIP": tagged.vip.pk}

    def fill(value):
        if isinstance(value, list):
            return [fill(v) for v in value]
        return ids.get(value, value) if isinstance(value, str) else value

    before = (
        list(TagGroup.objects.order_by("id").values_list("id", "name", "order")),
        list(Tag.objects.order_by("id").values_list("id", "name", "order")),
    )
    for key, value in ids.items():
        path = path.replace(key, str(value))

    # when
    response = getattr(keys.admin, method)(path, {k: fill(v) for k, v in body.items()})

    # then
    assert error_of(response) == (status, "invalid")
    assert response.json()["field"] == field
    after = (
        list(TagGroup.objects.order_by("id").values_list("id", "name", "order")),
        list(Tag.objects.order_by("id").values_list("id", "name", "order")),
    )
    assert after == before


def test_a_console_operator_manages_tags_through_the_session(world, book):
    # given
    from django.test import Client

    client = Client()
    client.login(username="operator1", password=world.password)
    staff = Client()
    staff.login(username="wang", password=world.password)

    # when
    created = client.post(
        "/api/v1/tag-groups", {"name": "来源渠道", "tags": ["海报"]}, content_type="application/json"
    )
    refused = staff.post("/api/v1/tag-groups", {"name": "偷偷建的"}, content_type="application/json")

    # then
    assert created.status_code == 201
    assert error_of(refused) == (403, "permission_denied")
    assert not TagGroup.objects.filter(name="偷偷建的").exists()
