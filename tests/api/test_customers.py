"""The customers API: list with filters and keyset pages, detail, timeline, notes, fields, tags, remarks."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.core.clock import frozen_at
from siyu.corps.models import AuditLog
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.customers.services import create_custom_field, end_follow_relation
from siyu.tags.models import CustomerTag, RelationTag
from siyu.tags.services import mark_relation_tags
from tests import factories
from tests.api.conftest import count_queries, error_of

pytestmark = pytest.mark.django_db


def names(response) -> set[str]:
    assert response.status_code == 200, response.json()
    return {c["name"] for c in response.json()["items"]}


def relation_of(customer: Customer, staff) -> FollowRelation:
    return FollowRelation.objects.for_corp(customer.corp_id).get(customer=customer, staff=staff)


# ---- list ------------------------------------------------------------------------------------------------


def test_list_shows_the_corps_customers_with_relations_and_tags(world, keys, book):
    # given
    mark_relation_tags(relation=relation_of(book.wang_only, world.wang), add=[book.vip], source="console")

    # when
    response = keys.admin.get("/customers")

    # then
    assert names(response) == {"王的客户", "刘的客户", "共同客户"}
    body = response.json()
    assert body["next_cursor"] is None
    assert body["sort"] == "-added"
    item = next(c for c in body["items"] if c["name"] == "王的客户")
    assert item["tags"] == [{"id": book.vip.pk, "name": "VIP", "group_id": book.vip.group_id}]
    [relation] = item["relations"]
    assert relation["staff"] == {"id": world.wang.pk, "userid": "wangfang", "name": "王芳"}
    assert (relation["remark"], relation["state"], relation["status"]) == ("王总", "poster", "active")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "王总"}, {"王的客户"}),
        ({"q": "共同"}, {"共同客户"}),
        ({"tag": "VIP"}, {"王的客户", "共同客户"}),
        ({"tag": ["VIP", "新客"]}, {"王的客户", "共同客户", "刘的客户"}),
        ({"tag_all": ["VIP", "新客"]}, {"共同客户"}),
        ({"staff": "liu"}, {"刘的客户", "共同客户"}),
        ({"staff": ["liu", "wang"]}, {"王的客户", "刘的客户", "共同客户"}),
        ({"department": "south"}, {"刘的客户", "共同客户"}),
        ({"state": "poster"}, {"王的客户"}),
        ({"state": ["poster", "live"]}, {"王的客户", "刘的客户"}),
        ({"status": "deleted_by_customer"}, {"刘的客户"}),
        ({"status": "active", "staff": "liu"}, {"共同客户"}),
        ({"gender": 2}, {"共同客户"}),
        ({"added_from": "2024-03-01"}, {"刘的客户", "共同客户"}),
        ({"added_to": "2024-02-15"}, {"王的客户"}),
    ],
)
def test_list_filters_like_the_console(world, keys, book, params, expected):
    # given: tags, a gender, a deleted relation and dates to filter on
    mark_relation_tags(relation=relation_of(book.wang_only, world.wang), add=[book.vip], source="console")
    mark_relation_tags(
        relation=relation_of(book.shared, world.wang), add=[book.vip, book.new], source="console"
    )
    mark_relation_tags(relation=relation_of(book.liu_only, world.liu), add=[book.new], source="console")
    end_follow_relation(relation=relation_of(book.liu_only, world.liu), by="customer", source="wecom")
    Customer.objects.filter(pk=book.shared.pk).update(gender=Customer.Gender.FEMALE)
    FollowRelation.objects.filter(customer=book.wang_only).update(
        added_at=dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
    )
    FollowRelation.objects.filter(customer__in=[book.liu_only, book.shared]).update(
        added_at=dt.datetime(2024, 3, 5, tzinfo=dt.UTC)
    )
    ids = {"VIP": book.vip.pk, "新客": book.new.pk, "wang": world.wang.pk, "liu": world.liu.pk}
    ids |= {"south": world.south.pk, "east": world.east.pk}

    def resolve(value):
        if isinstance(value, list):
            return [ids.get(v, v) for v in value]
        return ids.get(value, value)

    # when
    response = keys.admin.get("/customers", **{k: resolve(v) for k, v in params.items()})

    # then
    assert names(response) == expected


@pytest.mark.parametrize("sort", ["-added", "added", "name", "-name", "-id", "id"])
def test_pagination_walks_every_customer_once_in_order(world, keys, sort):
    # given: 23 customers, many added at the very same instant (ties the keyset must break by id)
    moment = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
    for i in range(23):
        customer = factories.make_customer(world.corp, f"客户{i % 7}")
        factories.follow(customer, world.wang, added_at=moment + dt.timedelta(minutes=i // 5))

    # when
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        params = {"page_size": 5, "sort": sort} | ({"cursor": cursor} if cursor else {})
        body = keys.admin.get("/customers", **params).json()
        pages += 1
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break

    # then
    ids = [c["id"] for c in seen]
    assert pages == 5
    assert len(ids) == len(set(ids)) == 23
    customers = {c.pk: c for c in Customer.objects.for_corp(world.corp)}
    column = {"added": "last_added_at", "name": "name", "id": "id"}[sort.lstrip("-")]
    keys_in_order = [(getattr(customers[i], column), i) for i in ids]
    assert keys_in_order == sorted(keys_in_order, reverse=sort.startswith("-"))


def test_list_never_includes_another_corps_customers(world, keys, book):
    # when
    ours = keys.admin.get("/customers")
    theirs = keys.other_corp.get("/customers")

    # then
    assert "别家客户" not in names(ours)
    assert names(theirs) == {"别家客户"}


def test_keys_see_customers_as_their_role_allows(world, keys, book):
    # when / then
    assert names(keys.operator.get("/customers")) == {"王的客户", "刘的客户", "共同客户"}
    assert names(keys.manager.get("/customers")) == {"王的客户", "共同客户"}  # 华东: 王芳's customers
    assert names(keys.staff_wang.get("/customers")) == {"王的客户", "共同客户"}
    assert names(keys.staff_unlinked.get("/customers")) == set()


def test_a_staff_key_sees_only_its_own_relations_of_a_shared_customer(world, keys, book):
    # when
    listed = keys.staff_wang.get("/customers", q="共同").json()["items"][0]
    detail = keys.staff_wang.get(f"/customers/{book.shared.pk}").json()

    # then
    assert [r["staff"]["id"] for r in listed["relations"]] == [world.wang.pk]
    assert [r["staff"]["id"] for r in detail["relations"]] == [world.wang.pk]


@pytest.mark.parametrize(
    ("params", "status", "code", "field"),
    [
        ({"page_size": 201}, 400, "page_too_large", "page_size"),
        ({"page_size": 0}, 422, "invalid", "page_size"),
        ({"page_size": -3}, 422, "invalid", "page_size"),
        ({"cursor": "not-a-cursor"}, 400, "bad_cursor", "cursor"),
        ({"cursor": "WzEsMiwzXQ"}, 400, "bad_cursor", "cursor"),  # base64 of [1,2,3]: not our cursor
        ({"sort": "email"}, 400, "invalid", "sort"),
        ({"status": "gone"}, 422, "invalid", "status"),
        ({"gender": 7}, 422, "invalid", "gender"),
        ({"added_from": "yesterday"}, 422, "invalid", "added_from"),
        ({"tag": "abc"}, 422, "invalid", "tag.0"),
        ({"page_size": "many"}, 422, "invalid", "page_size"),
        ({"tag": 999_999}, 404, "unknown_tag", None),
        ({"staff": 999_999}, 404, "unknown_staff", "staff"),
        ({"department": 999_999}, 404, "not_found", "department"),
    ],
)
def test_list_refuses_bad_parameters_with_a_code(world, keys, book, params, status, code, field):
    # when
    response = keys.admin.get("/customers", **params)

    # then
    assert error_of(response) == (status, code)
    assert response.json()["field"] == field


def test_a_cursor_of_another_sort_is_a_bad_cursor(world, keys, book):
    # given
    cursor = keys.admin.get("/customers", page_size=1, sort="name").json()["next_cursor"]

    # when
    response = keys.admin.get("/customers", page_size=1, sort="-added", cursor=cursor)

    # then
    assert error_of(response) == (400, "bad_cursor")


def test_filters_naming_another_corps_tag_or_staff_are_unknown(world, keys, book):
    # when
    tag = keys.admin.get("/customers", tag=book.foreign_tag.pk)
    tag_all = keys.admin.get("/customers", tag_all=[book.vip.pk, book.foreign_tag.pk])
    staff = keys.admin.get("/customers", staff=book.foreign_staff.pk)

    # then
    assert error_of(tag) == (404, "unknown_tag")
    assert error_of(tag_all) == (404, "unknown_tag")
    assert error_of(staff) == (404, "unknown_staff")


def _populate(world, book, n: int) -> None:
    for i in range(n):
        customer = factories.make_customer(world.corp, f"批量{i}")
        relation = factories.follow(customer, world.wang if i % 2 else world.liu, state="poster")
        factories.follow(customer, world.liu if i % 2 else world.wang)
        mark_relation_tags(relation=relation, add=[book.vip, book.new], source="seed")


@pytest.mark.parametrize("who", ["admin", "staff_wang", "manager"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"tag_all": "both", "staff": "wang"},
        {"tag": "both", "q": "批量", "state": "poster", "sort": "name"},
    ],
)
def test_the_list_costs_the_same_queries_for_3_and_30_customers(world, keys, book, who, params):
    # given
    client = getattr(keys, who)
    expand = {"both": [book.vip.pk, book.new.pk], "wang": world.wang.pk}
    query = {k: expand.get(v, v) for k, v in params.items()}
    client.get("/customers")  # the first use of a key records it; later ones do not
    _populate(world, book, 3)
    few, first = count_queries(lambda: client.get("/customers", **query))
    _populate(world, book, 27)

    # when
    many, second = count_queries(lambda: client.get("/customers", **query))

    # then
    assert len(second.json()["items"]) > len(first.json()["items"]) >= 1
    assert few == many
    # key (1), a manager's departments (2), filter ids checked (2), customers + relations + tags (3)
    assert many <= 8


# ---- detail ----------------------------------------------------------------------------------------------


def test_detail_shows_relations_with_their_tags_and_the_derived_tags(world, keys, book):
    # given
    mark_relation_tags(relation=relation_of(book.shared, world.wang), add=[book.vip], source="console")
    mark_relation_tags(
        relation=relation_of(book.shared, world.liu), add=[book.vip, book.new], source="console"
    )
    create_custom_field(corp=world.corp, key="birthday", label="生日", kind="date")

    # when
    response = keys.admin.get(f"/customers/{book.shared.pk}")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "共同客户"
    assert {t["name"] for t in body["tags"]} == {"VIP", "新客"}
    by_staff = {r["staff"]["userid"]: r for r in body["relations"]}
    assert [t["name"] for t in by_staff["wangfang"]["tags"]] == ["VIP"]
    assert {t["name"] for t in by_staff["liuqiang"]["tags"]} == {"VIP", "新客"}
    for relation in body["relations"]:
        assert relation["status"] == "active"
        assert dt.datetime.fromisoformat(relation["added_at"]).tzinfo is not None
        assert set(relation) >= {"remark", "description", "remark_mobiles", "add_way", "oper_userid", "state"}


def test_detail_read_is_audited_with_the_api_key(world, keys, book):
    # when
    keys.admin.get(f"/customers/{book.wang_only.pk}")

    # then
    entry = AuditLog.objects.for_corp(world.corp).get()
    assert (entry.action, entry.object_type, entry.object_id) == (
        "customer.view",
        "customer",
        str(book.wang_only.pk),
    )
    assert (entry.api_key_id, entry.user_id) == (keys.admin_key_id, None)


def test_another_corps_customer_is_unknown_and_indistinguishable_from_a_missing_one(world, keys, book):
    # when
    foreign = keys.admin.get(f"/customers/{book.foreign.pk}")
    missing = keys.admin.get("/customers/987654321")
    reverse = keys.other_corp.get(f"/customers/{book.wang_only.pk}")

    # then
    assert error_of(foreign) == error_of(missing) == error_of(reverse) == (404, "unknown_customer")
    assert foreign.json() == missing.json()
    assert not AuditLog.objects.exists()


def test_a_customer_outside_a_staff_keys_scope_is_unknown(world, keys, book):
    # when / then
    assert error_of(keys.staff_wang.get(f"/customers/{book.liu_only.pk}")) == (404, "unknown_customer")
    assert error_of(keys.staff_unlinked.get(f"/customers/{book.wang_only.pk}")) == (404, "unknown_customer")
    assert keys.staff_wang.get(f"/customers/{book.wang_only.pk}").status_code == 200


@pytest.mark.parametrize("path_id", ["abc", "1.5", "99999999999999999999999"])
def test_a_malformed_customer_id_is_a_clear_error(world, keys, book, path_id):
    # when
    response = keys.admin.get(f"/customers/{path_id}")

    # then
    assert response.status_code in {404, 422}
    assert response.json()["code"] in {"invalid", "not_found", "unknown_customer"}


def test_detail_costs_the_same_queries_for_a_small_and_a_large_customer(world, keys, book):
    # given: one customer with one relation, one with three relations and many tags
    small = book.wang_only
    large = factories.make_customer(world.corp, "大客户")
    extra = factories.make_staff(world.corp, "第三人", world.east)
    tags = [factories.make_tag(world.corp, f"标签{i}", group="兴趣") for i in range(6)]
    for staff in (world.wang, world.liu, extra):
        mark_relation_tags(relation=factories.follow(large, staff), add=tags, source="seed")
    keys.admin.get(f"/customers/{small.pk}")  # warm up: the first use of a key records it

    # when
    few, _small_response = count_queries(lambda: keys.admin.get(f"/customers/{small.pk}"))
    many, large_response = count_queries(lambda: keys.admin.get(f"/customers/{large.pk}"))

    # then
    assert len(large_response.json()["relations"]) == 3
    assert len(large_response.json()["tags"]) == 6
    assert few == many


# ---- timeline --------------------------------------------------------------------------------------------


def test_timeline_pages_through_every_event_newest_first(world, keys, book):
    # given: 12 more events spread over time
    relation = relation_of(book.wang_only, world.wang)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i in range(12):
        with frozen_at(start + dt.timedelta(hours=i // 3)):  # three events share each instant
            mark_relation_tags(relation=relation, add=[book.vip] if i % 2 == 0 else [], source="console")
            mark_relation_tags(relation=relation, remove=[book.vip] if i % 2 == 1 else [], source="console")
    total = Event.objects.for_corp(world.corp).filter(customer=book.wang_only).count()

    # when
    seen = []
    cursor = None
    while True:
        params = {"page_size": 5} | ({"cursor": cursor} if cursor else {})
        response = keys.admin.get(f"/customers/{book.wang_only.pk}/timeline", **params)
        assert response.status_code == 200, response.json()
        seen.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    # then
    assert len(seen) == len({e["id"] for e in seen}) == total == 13
    order = [(dt.datetime.fromisoformat(e["occurred_at"]), e["id"]) for e in seen]
    assert order == sorted(order, reverse=True)
    assert {e["kind"] for e in seen} == {"added", "tagged", "untagged"}
    tagged = next(e for e in seen if e["kind"] == "tagged")
    assert tagged["staff"]["id"] == world.wang.pk
    assert tagged["payload"]["tag_id"] == book.vip.pk


def test_timeline_errors(world, keys, book):
    # when / then
    url = f"/customers/{book.wang_only.pk}/timeline"
    assert error_of(keys.admin.get(url, page_size=500)) == (400, "page_too_large")
    assert error_of(keys.admin.get(url, cursor="%%%")) == (400, "bad_cursor")
    assert error_of(keys.admin.get(f"/customers/{book.foreign.pk}/timeline")) == (404, "unknown_customer")
    assert error_of(keys.staff_wang.get(f"/customers/{book.liu_only.pk}/timeline")) == (
        404,
        "unknown_customer",
    )


# ---- notes -----------------------------------------------------------------------------------------------


def test_notes_are_added_and_listed_newest_first_in_pages(world, keys, book):
    # given
    url = f"/customers/{book.wang_only.pk}/notes"
    for i in range(7):
        response = keys.staff_wang.post(url, {"text": f"  第{i}次回访  "})
        assert response.status_code == 201, response.json()
    created = response.json()

    # when
    first = keys.admin.get(url, page_size=4).json()
    second = keys.admin.get(url, page_size=4, cursor=first["next_cursor"]).json()

    # then
    assert created["text"] == "第6次回访"
    assert created["author"] is None  # written with an API key, not by a console user
    texts = [n["text"] for n in first["items"] + second["items"]]
    assert texts == [f"第{i}次回访" for i in range(6, -1, -1)]
    assert second["next_cursor"] is None
    assert Event.objects.for_corp(world.corp).filter(kind="note_added", source="api").count() == 7


def test_a_console_users_note_names_its_author(world, book):
    # given
    from django.test import Client

    client = Client()
    client.login(username="wang", password=world.password)

    # when
    response = client.post(
        f"/api/v1/customers/{book.wang_only.pk}/notes", {"text": "见面聊过"}, content_type="application/json"
    )

    # then
    assert response.status_code == 201
    assert response.json()["author"] == "wang"
    assert Event.objects.for_corp(world.corp).filter(kind="note_added", source="console").exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "   "}, 400, "invalid"),
        ({"text": "长" * 2001}, 400, "invalid"),
        ({}, 422, "invalid"),
        ({"text": ["a list"]}, 422, "invalid"),
    ],
)
def test_bad_notes_are_refused(world, keys, book, body, status, code):
    # when
    response = keys.admin.post(f"/customers/{book.wang_only.pk}/notes", body)

    # then
    assert error_of(response) == (status, code)
    assert response.json()["field"] == "text"
    assert not book.wang_only.notes.exists()


def test_notes_of_an_invisible_customer_are_unknown(world, keys, book):
    # when / then
    assert error_of(keys.admin.get(f"/customers/{book.foreign.pk}/notes")) == (404, "unknown_customer")
    assert error_of(keys.staff_wang.post(f"/customers/{book.liu_only.pk}/notes", {"text": "x"})) == (
        404,
        "unknown_customer",
    )
    assert error_of(keys.admin.get(f"/customers/{book.wang_only.pk}/notes", cursor="bm9wZQ")) == (
        400,
        "bad_cursor",
    )


def test_a_body_that_is_not_json_is_a_clear_error(world, keys, book):
    # when
    response = keys.admin.client.post(
        f"/api/v1/customers/{book.wang_only.pk}/notes", "{not json", content_type="application/json"
    )

    # then
    assert error_of(response) == (400, "invalid")


# ---- custom fields ---------------------------------------------------------------------------------------


def test_custom_fields_are_listed_and_set(world, keys, book):
    # given
    create_custom_field(corp=world.corp, key="birthday", label="生日", kind="date")
    create_custom_field(corp=world.corp, key="level", label="等级", kind="choice", choices=["金", "银"])
    url = f"/customers/{book.wang_only.pk}/custom-fields"

    # when
    fields = keys.staff_wang.get("/custom-fields").json()
    response = keys.staff_wang.put(url, {"values": {"birthday": "1990-05-01", "level": "金"}})
    cleared = keys.staff_wang.put(url, {"values": {"level": None}})

    # then
    assert [f["key"] for f in fields] == ["birthday", "level"]
    assert response.status_code == 200
    assert response.json() == {
        "changed": ["birthday", "level"],
        "custom_fields": {"birthday": "1990-05-01", "level": "金"},
    }
    assert cleared.json()["custom_fields"] == {"birthday": "1990-05-01"}
    assert keys.admin.get(f"/customers/{book.wang_only.pk}").json()["custom_fields"] == {
        "birthday": "1990-05-01"
    }


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"birthday": "1990-05-01", "level": "铜"}, "level"),
        ({"birthday": "not a date", "level": "金"}, "birthday"),
        ({"birthday": "1990-05-01", "favourite": "x"}, "favourite"),
    ],
)
def test_one_bad_custom_field_value_changes_nothing(world, keys, book, values, field):
    # given
    create_custom_field(corp=world.corp, key="birthday", label="生日", kind="date")
    create_custom_field(corp=world.corp, key="level", label="等级", kind="choice", choices=["金", "银"])
    events = Event.objects.count()

    # when
    response = keys.admin.put(f"/customers/{book.wang_only.pk}/custom-fields", {"values": values})

    # then
    assert error_of(response) == (400, "invalid")
    assert response.json()["field"] == field
    book.wang_only.refresh_from_db()
    assert book.wang_only.custom_fields == {}
    assert Event.objects.count() == events


# ---- tags on a relation ----------------------------------------------------------------------------------


def _tag_state(customer: Customer) -> tuple[set, set, int]:
    return (
        set(RelationTag.objects.filter(customer=customer).values_list("relation_id", "tag_id")),
        set(CustomerTag.objects.filter(customer=customer).values_list("tag_id", flat=True)),
        Event.objects.filter(customer=customer).count(),
    )


def test_tags_are_marked_and_unmarked_on_a_relation(world, keys, book):
    # given
    relation = relation_of(book.shared, world.wang)
    url = f"/customers/{book.shared.pk}/relations/{relation.pk}/tags"

    # when
    added = keys.staff_wang.post(url, {"add": [book.vip.pk, book.new.pk]})
    again = keys.staff_wang.post(url, {"add": [book.vip.pk]})
    removed = keys.staff_wang.post(url, {"remove": [book.new.pk]})

    # then
    assert added.status_code == 200, added.json()
    assert added.json()["added"] == [book.vip.pk, book.new.pk]
    assert again.json()["added"] == []
    assert removed.json() == removed.json() | {"added": [], "removed": [book.new.pk]}
    assert [t["id"] for t in removed.json()["relation"]["tags"]] == [book.vip.pk]
    assert _tag_state(book.shared)[:2] == ({(relation.pk, book.vip.pk)}, {book.vip.pk})
    assert Event.objects.filter(customer=book.shared, kind="tagged", source="api").count() == 2
    assert Event.objects.filter(customer=book.shared, kind="untagged", source="api").count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"add": ["VIP", 999_999]}, 404, "unknown_tag"),
        ({"add": ["VIP"], "remove": [999_999]}, 404, "unknown_tag"),
        ({"add": ["VIP", "foreign"]}, 404, "unknown_tag"),
        ({"add": ["VIP", "新客"], "remove": ["VIP"]}, 400, "invalid"),
        ({"add": ["VIP", "oops"]}, 422, "invalid"),
        ({"add": "VIP"}, 422, "invalid"),
    ],
)
def test_one_valid_and_one_invalid_tag_change_nothing(world, keys, book, body, status, code):
    # given: the relation already carries 新客
    relation = relation_of(book.shared, world.wang)
    mark_relation_tags(relation=relation, add=[book.new], source="console")
    before = _tag_state(book.shared)
    ids = {"VIP": book.vip.pk, "新客": book.new.pk, "foreign": book.foreign_tag.pk}
    payload = {
        k: ([ids.get(t, t) for t in v] if isinstance(v, list) else ids.get(v, v)) for k, v in body.items()
    }

    # when
    response = keys.admin.post(f"/customers/{book.shared.pk}/relations/{relation.pk}/tags", payload)

    # then
    assert error_of(response) == (status, code)
    assert _tag_state(book.shared) == before


def test_relations_out_of_reach_are_unknown(world, keys, book):
    # given
    wang_shared = relation_of(book.shared, world.wang)
    liu_shared = relation_of(book.shared, world.liu)
    foreign = relation_of(book.foreign, book.foreign_staff)
    body = {"add": [book.vip.pk]}
    before = _tag_state(book.shared)

    # when / then: a relation of another customer, of another staff member, of another corp
    assert error_of(
        keys.admin.post(f"/customers/{book.wang_only.pk}/relations/{wang_shared.pk}/tags", body)
    ) == (
        404,
        "not_found",
    )
    assert error_of(
        keys.staff_wang.post(f"/customers/{book.shared.pk}/relations/{liu_shared.pk}/tags", body)
    ) == (
        404,
        "not_found",
    )
    assert error_of(keys.admin.post(f"/customers/{book.foreign.pk}/relations/{foreign.pk}/tags", body)) == (
        404,
        "unknown_customer",
    )
    assert error_of(keys.admin.post(f"/customers/{book.shared.pk}/relations/{foreign.pk}/tags", body)) == (
        404,
        "not_found",
    )
    assert _tag_state(book.shared) == before


# ---- remarks ---------------------------------------------------------------------------------------------


def test_a_relation_remark_is_updated(world, keys, book):
    # given
    relation = relation_of(book.wang_only, world.wang)
    url = f"/customers/{book.wang_only.pk}/relations/{relation.pk}"

    # when
    response = keys.staff_wang.patch(url, {"remark": "王总(上海)", "remark_mobiles": ["13800138000"]})
    unchanged = keys.staff_wang.patch(url, {"remark": "王总(上海)"})

    # then
    assert response.status_code == 200, response.json()
    assert response.json()["changed"] == ["remark", "remark_mobiles"]
    assert response.json()["relation"]["remark"] == "王总(上海)"
    assert unchanged.json()["changed"] == []
    relation.refresh_from_db()
    assert (relation.remark, relation.remark_mobiles) == ("王总(上海)", ["13800138000"])
    event = Event.objects.get(customer=book.wang_only, kind="remark_changed")
    assert event.payload["before"]["remark"] == "王总"
    assert names(keys.admin.get("/customers", q="13800138000")) == {"王的客户"}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"remark": "长" * 65}, 400, "remark"),
        ({"remark": "好", "description": "长" * 257}, 400, "description"),
        ({"remark": "好", "remark_mobiles": ["13800138000", "call me"]}, 400, "remark_mobiles"),
        ({"remark": "好", "remark_mobiles": ["13800138000"] * 6}, 400, "remark_mobiles"),
        ({"remark": 5}, 422, "remark"),
    ],
)
def test_a_bad_remark_changes_nothing(world, keys, book, body, status, field):
    # given
    relation = relation_of(book.wang_only, world.wang)
    events = Event.objects.count()

    # when
    response = keys.admin.patch(f"/customers/{book.wang_only.pk}/relations/{relation.pk}", body)

    # then
    assert error_of(response) == (status, "invalid")
    assert response.json()["field"] == field
    relation.refresh_from_db()
    assert (relation.remark, relation.description, relation.remark_mobiles) == ("王总", "", [])
    assert Event.objects.count() == events


def test_a_remark_of_a_relation_out_of_scope_is_unknown(world, keys, book):
    # given
    relation = relation_of(book.shared, world.liu)

    # when
    response = keys.staff_wang.patch(f"/customers/{book.shared.pk}/relations/{relation.pk}", {"remark": "x"})

    # then
    assert error_of(response) == (404, "not_found")
    relation.refresh_from_db()
    assert relation.remark == ""
