"""Custom fields: admins and operators define, rename, reorder and delete the profile fields of customers."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from siyu.corps.models import AuditLog
from siyu.customers.models import Customer, CustomField, Event
from siyu.customers.services import create_custom_field, set_custom_fields
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db

LIST = "/org/settings/custom-fields/"
NEW = "/org/settings/custom-fields/new/"


def login(client: Client, username: str) -> Client:
    client.force_login(get_user_model().objects.get(username=username))
    return client


def keys(world: World) -> list[str]:
    return list(
        CustomField.objects.for_corp(world.corp).order_by("order", "id").values_list("key", flat=True)
    )


def actions(world: World) -> list[str]:
    return list(AuditLog.objects.for_corp(world.corp).order_by("pk").values_list("action", flat=True))


@pytest.fixture
def level(world: World) -> CustomField:
    return create_custom_field(
        corp=world.corp, key="level", label="会员等级", kind="choice", choices=["金", "银"]
    )


# ---------- creating ----------


@pytest.mark.parametrize("username", ["admin1", "operator1"])
def test_configurers_create_fields_of_each_kind(client: Client, world: World, username: str):
    # given
    login(client, username)

    # when
    responses = [
        client.post(NEW, {"key": "note", "label": "备注", "kind": "text"}),
        client.post(NEW, {"key": "spend", "label": "消费", "kind": "number"}),
        client.post(NEW, {"key": "birthday", "label": "生日", "kind": "date"}),
        client.post(
            NEW, {"key": "level", "label": "等级", "kind": "choice", "choices": " 金卡\n\n银卡 \r\n铜卡"}
        ),
    ]

    # then
    assert [r.status_code for r in responses] == [302] * 4
    assert keys(world) == ["note", "spend", "birthday", "level"]
    level = CustomField.objects.for_corp(world.corp).get(key="level")
    assert (level.label, level.kind, level.choices) == ("等级", "choice", ["金卡", "银卡", "铜卡"])
    assert responses[3]["Location"] == f"{LIST}#field-{level.pk}"
    assert actions(world) == ["custom_field.create"] * 4
    entry = AuditLog.objects.for_corp(world.corp).filter(object_id=str(level.pk)).get()
    assert entry.detail == {"key": "level", "label": "等级", "kind": "choice"}
    html = client.get(LIST).content.decode()
    assert html.index('data-testid="field-note"') < html.index('data-testid="field-level"')


def test_choices_are_ignored_for_other_kinds(client: Client, world: World):
    login(client, "admin1")
    client.post(NEW, {"key": "note", "label": "备注", "kind": "text", "choices": "a\nb"})
    assert CustomField.objects.for_corp(world.corp).get().choices == []


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"key": "Bad Key", "label": "x", "kind": "text"}, "key", "key must start with a letter"),
        ({"key": "level", "label": "x", "kind": "text"}, "key", "already exists"),
        ({"key": "ok", "label": "   ", "kind": "text"}, "label", "required"),
        ({"key": "ok", "label": "x", "kind": "colour"}, "kind", "valid choice"),
        ({"key": "ok", "label": "x", "kind": "choice", "choices": "\n \n"}, "choices", "needs choices"),
        ({"key": "ok", "label": "x", "kind": "choice", "choices": "金\n金"}, "choices", "listed twice"),
        ({"key": "ok", "label": "x", "kind": "choice", "choices": "长" * 51}, "choices", "at most 50"),
    ],
)
def test_a_refused_field_is_shown_next_to_its_input_and_nothing_is_written(
    client: Client, world: World, level: CustomField, form: dict[str, str], field: str, message: str
):
    # given
    login(client, "admin1")

    # when
    response = client.post(NEW, form, headers={"Accept-Language": "en"})

    # then
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html.split(f'data-testid="error-{field}">')[1].split("</ul>")[0]
    assert f'value="{form["key"]}"' in html  # what was typed comes back
    assert keys(world) == ["level"]
    assert not AuditLog.objects.exists()


# ---------- renaming and reordering ----------


def test_a_field_is_renamed_and_its_values_stay(client: Client, world: World, level: CustomField):
    # given
    customer = factories.make_customer(world.corp, "甲")
    set_custom_fields(customer=customer, values={"level": "金"}, source=Event.Source.CONSOLE)
    login(client, "operator1")

    # when
    response = client.post(reverse("corps:settings_field_rename", args=[level.pk]), {"label": " 客户等级 "})

    # then
    assert response.status_code == 302
    level.refresh_from_db()
    assert (level.key, level.label) == ("level", "客户等级")
    customer.refresh_from_db()
    assert customer.custom_fields == {"level": "金"}
    [entry] = AuditLog.objects.for_corp(world.corp).filter(action="custom_field.rename")
    assert entry.detail == {"key": "level", "before": "会员等级", "after": "客户等级"}


@pytest.mark.parametrize(
    ("label", "message"), [("", "请填写显示名称"), ("长" * 41, "显示名称最多 40 个字符")]
)
def test_a_bad_label_is_refused_next_to_its_form(
    client: Client, world: World, level: CustomField, label: str, message: str
):
    login(client, "admin1")
    response = client.post(reverse("corps:settings_field_rename", args=[level.pk]), {"label": label})
    assert response.status_code == 400
    assert message in response.content.decode().split('data-testid="rename-error">')[1]
    level.refresh_from_db()
    assert level.label == "会员等级"


def test_fields_move_up_and_down(client: Client, world: World, level: CustomField):
    # given
    birthday = create_custom_field(corp=world.corp, key="birthday", label="生日", kind="date")
    spend = create_custom_field(corp=world.corp, key="spend", label="消费", kind="number")
    login(client, "admin1")

    # when
    client.post(reverse("corps:settings_field_move", args=[spend.pk]), {"direction": "up"})
    client.post(reverse("corps:settings_field_move", args=[level.pk]), {"direction": "down"})
    at_the_end = client.post(reverse("corps:settings_field_move", args=[birthday.pk]), {"direction": "down"})

    # then
    assert at_the_end.status_code == 302
    assert keys(world) == ["spend", "level", "birthday"]
    assert actions(world) == ["custom_field.reorder"] * 2  # the move past the end changed nothing
    last = AuditLog.objects.for_corp(world.corp).order_by("pk").last()
    assert last is not None and last.detail == {"keys": ["spend", "level", "birthday"]}


def test_a_bad_direction_is_refused(client: Client, world: World, level: CustomField):
    login(client, "admin1")
    response = client.post(reverse("corps:settings_field_move", args=[level.pk]), {"direction": "sideways"})
    assert response.status_code == 400 and 'data-testid="page-error"' in response.content.decode()


# ---------- deleting ----------


def test_deleting_says_how_many_customers_hold_a_value_then_removes_field_and_values(
    client: Client, world: World, level: CustomField
):
    # given: two customers with a level, one without; another field; the other corp with the same key
    birthday = create_custom_field(corp=world.corp, key="birthday", label="生日", kind="date")
    jia, yi, bing = (factories.make_customer(world.corp, n) for n in ("甲", "乙", "丙"))
    set_custom_fields(customer=jia, values={"level": "金", "birthday": "1990-01-02"}, source="console")
    set_custom_fields(customer=yi, values={"level": "银"}, source="console")
    set_custom_fields(customer=bing, values={"birthday": "1991-03-04"}, source="console")
    create_custom_field(corp=world.other_corp, key="level", label="等级", kind="text")
    foreign = factories.make_customer(world.other_corp, "别家客户")
    set_custom_fields(customer=foreign, values={"level": "VIP"}, source="console")
    login(client, "operator1")
    url = reverse("corps:settings_field_delete", args=[level.pk])

    # when
    confirm = client.get(url)

    # then
    assert confirm.status_code == 200
    assert "有 2 位客户在该字段中填有值" in confirm.content.decode()
    assert CustomField.objects.filter(pk=level.pk).exists()

    # when
    response = client.post(url)

    # then
    assert response.status_code == 302
    assert keys(world) == ["birthday"]
    values = dict(Customer.objects.for_corp(world.corp).values_list("name", "custom_fields"))
    assert values == {"甲": {"birthday": "1990-01-02"}, "乙": {}, "丙": {"birthday": "1991-03-04"}}
    foreign.refresh_from_db()
    assert foreign.custom_fields == {"level": "VIP"}
    assert CustomField.objects.for_corp(world.other_corp).filter(key="level").exists()
    [entry] = AuditLog.objects.for_corp(world.corp).filter(action="custom_field.delete")
    assert entry.object_id == str(level.pk)
    assert entry.detail == {"key": "level", "label": "会员等级", "customers": 2}
    assert birthday.pk in CustomField.objects.for_corp(world.corp).values_list("pk", flat=True)


def test_a_field_created_again_after_deletion_starts_empty(client: Client, world: World, level: CustomField):
    # given
    customer = factories.make_customer(world.corp, "甲")
    set_custom_fields(customer=customer, values={"level": "金"}, source="console")
    login(client, "admin1")

    # when
    client.post(reverse("corps:settings_field_delete", args=[level.pk]))
    client.post(NEW, {"key": "level", "label": "等级", "kind": "text"})

    # then
    customer.refresh_from_db()
    assert customer.custom_fields == {}
    assert keys(world) == ["level"]


# ---------- permissions, tenancy, cost ----------


@pytest.mark.parametrize("username", ["manager1", "wang"])
def test_managers_and_staff_cannot_touch_custom_fields(
    client: Client, world: World, level: CustomField, username: str
):
    # given
    login(client, username)
    delete = reverse("corps:settings_field_delete", args=[level.pk])

    # when
    responses = [
        client.get(LIST),
        client.post(NEW, {"key": "x", "label": "x", "kind": "text"}),
        client.post(reverse("corps:settings_field_rename", args=[level.pk]), {"label": "改"}),
        client.post(reverse("corps:settings_field_move", args=[level.pk]), {"direction": "down"}),
        client.get(delete),
        client.post(delete),
    ]

    # then
    assert [r.status_code for r in responses] == [403] * len(responses)
    assert keys(world) == ["level"]
    assert CustomField.objects.get(pk=level.pk).label == "会员等级"
    assert f'href="{LIST}"' not in client.get(reverse("customers:list")).content.decode()


def test_an_operator_sees_custom_fields_but_not_the_admin_pages(client: Client, world: World):
    login(client, "operator1")
    html = client.get(reverse("customers:list")).content.decode()
    assert f'href="{LIST}"' in html
    assert 'href="/org/settings/users/"' not in html


def test_another_corps_field_is_not_found(client: Client, world: World):
    # given
    foreign = create_custom_field(corp=world.other_corp, key="secret", label="别家字段")
    login(client, "admin1")

    # when
    responses = [
        client.post(reverse("corps:settings_field_rename", args=[foreign.pk]), {"label": "我的"}),
        client.post(reverse("corps:settings_field_move", args=[foreign.pk]), {"direction": "up"}),
        client.get(reverse("corps:settings_field_delete", args=[foreign.pk])),
        client.post(reverse("corps:settings_field_delete", args=[foreign.pk])),
    ]

    # then
    assert [r.status_code for r in responses] == [404] * 4
    assert CustomField.objects.get(pk=foreign.pk).label == "别家字段"
    assert "别家字段" not in client.get(LIST).content.decode()


def count_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(LIST).status_code == 200
    return len(ctx.captured_queries)


def test_the_list_costs_the_same_number_of_queries_for_1_or_8_fields(
    client: Client, world: World, level: CustomField
):
    # given
    login(client, "operator1")
    count_queries(client)
    with_one = count_queries(client)

    # when
    for i in range(7):
        create_custom_field(corp=world.corp, key=f"f{i}", label=f"字段{i}", kind="choice", choices=["a", "b"])
    with_eight = count_queries(client)

    # then
    assert with_one == with_eight
