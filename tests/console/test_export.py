"""Exports of the customer list: CSV for Excel (UTF-8 with BOM, streamed) and .xlsx; capped, audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable

import openpyxl
import pytest
from django.contrib.auth import get_user_model
from django.http import FileResponse, StreamingHttpResponse
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from siyu.core.clock import frozen_at
from siyu.corps.access import Actor
from siyu.corps.models import AuditLog
from siyu.customers.models import Customer, Event
from siyu.tags.services import mark_relation_tags
from tests import factories
from tests.conftest import World

Login = Callable[[Actor], Client]


@pytest.fixture
def login_as(client: Client) -> Login:
    def login(actor: Actor) -> Client:
        client.force_login(get_user_model().objects.get(pk=actor.user_id))
        return client

    return login


@pytest.fixture
def two_customers(world: World) -> tuple[Customer, Customer]:
    vip = factories.make_tag(world.corp, "VIP", group="等级")
    with frozen_at(dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)):
        zhang = factories.make_customer(
            world.corp, "张三", external_userid="wmZhang", type=Customer.Type.WECOM
        )
        relation = factories.follow(
            zhang, world.wang, remark="张总", remark_mobiles=["13800138000"], state="expo"
        )
    mark_relation_tags(relation=relation, add=[vip], source=Event.Source.CONSOLE)
    li = factories.make_customer(world.corp, "=HYPERLINK(1)", external_userid="wmLi")
    factories.follow(li, world.liu)
    return zhang, li


def csv_rows(response: StreamingHttpResponse) -> tuple[bytes, list[list[str]]]:
    raw = b"".join(response.streaming_content)  # type: ignore[arg-type]
    return raw, list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def test_csv_starts_with_a_bom_and_parses_back_with_every_column(
    world: World, login_as: Login, two_customers: tuple[Customer, Customer]
) -> None:
    # when
    response = login_as(world.admin).get(reverse("customers:export_csv"), {"sort": "name"})

    # then
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    raw, rows = csv_rows(response)
    assert raw.startswith(b"\xef\xbb\xbf")
    header, *body = rows
    assert len(header) == 11
    by_id = {row[0]: row for row in body}
    assert set(by_id) == {"wmZhang", "wmLi"}
    zhang = by_id["wmZhang"]
    assert zhang[1] == "张三"
    assert (
        zhang[5] == "王芳" and zhang[6] == "王芳: 张总" and zhang[7] == "13800138000" and zhang[8] == "expo"
    )
    assert zhang[9] == "VIP"
    assert zhang[10] == "2026-03-02 07:30:00"  # the corp's zone
    assert by_id["wmLi"][1] == "'=HYPERLINK(1)"  # never a formula in Excel


def test_xlsx_opens_with_openpyxl_and_holds_the_same_rows(
    world: World, login_as: Login, two_customers: tuple[Customer, Customer]
) -> None:
    # when
    response = login_as(world.admin).get(reverse("customers:export_xlsx"))

    # then
    assert response.status_code == 200
    assert isinstance(response, FileResponse)
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))  # type: ignore[arg-type]
    rows = [[cell.value for cell in row] for row in book.active.iter_rows()]  # type: ignore[union-attr]
    assert len(rows) == 3
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["wmZhang"][1] == "张三" and by_id["wmZhang"][9] == "VIP"
    li_name = book.active.cell(row=[r[0] for r in rows].index("wmLi") + 1, column=2)  # type: ignore[union-attr]
    assert li_name.value == "=HYPERLINK(1)" and li_name.data_type == "s"  # text, not a formula


def test_export_follows_the_filter_and_the_scope(
    world: World, login_as: Login, two_customers: tuple[Customer, Customer]
) -> None:
    # when
    filtered = login_as(world.admin).get(reverse("customers:export_csv"), {"staff": world.liu.pk})
    as_wang = login_as(world.staff_wang).get(reverse("customers:export_csv"))

    # then
    assert [row[0] for row in csv_rows(filtered)[1][1:]] == ["wmLi"]
    assert [row[0] for row in csv_rows(as_wang)[1][1:]] == ["wmZhang"]


def test_export_walks_every_page(world: World, login_as: Login, settings: Settings) -> None:
    # given more customers than one page holds
    settings.SIYU = {**settings.SIYU, "MAX_PAGE_SIZE": 3}
    for i in range(8):
        factories.follow(
            factories.make_customer(world.corp, f"客户{i}", external_userid=f"wm{i:03d}"), world.wang
        )

    # when
    response = login_as(world.admin).get(reverse("customers:export_csv"))

    # then
    ids = [row[0] for row in csv_rows(response)[1][1:]]
    assert sorted(ids) == [f"wm{i:03d}" for i in range(8)]


def test_export_is_audited(world: World, login_as: Login, two_customers: tuple[Customer, Customer]) -> None:
    # when
    login_as(world.operator).get(reverse("customers:export_xlsx"), {"q": "张"})

    # then
    entry = AuditLog.objects.get(action="customers.export")
    assert entry.corp_id == world.corp.pk and entry.user_id == world.operator.user_id
    assert entry.detail == {"format": "xlsx", "rows": 1, "filter": "q=%E5%BC%A0"}


def test_an_export_over_the_cap_is_refused_with_a_clear_message(
    world: World, login_as: Login, two_customers: tuple[Customer, Customer], settings: Settings
) -> None:
    # given
    settings.SIYU = {**settings.SIYU, "EXPORT_MAX_ROWS": 1}

    # when
    response = login_as(world.admin).get(reverse("customers:export_csv"), {"q": ""}, follow=True)

    # then
    assert response.redirect_chain[0][0].startswith(reverse("customers:list"))
    messages = [str(m) for m in response.context["messages"]]
    assert len(messages) == 1 and "2" in messages[0] and "1" in messages[0]
    assert not AuditLog.objects.filter(action="customers.export").exists()


def test_an_invalid_filter_exports_nothing(world: World, login_as: Login) -> None:
    # when
    response = login_as(world.admin).get(reverse("customers:export_csv"), {"tag": "999999"}, follow=True)

    # then
    assert response.redirect_chain and response.redirect_chain[-1][0].startswith(reverse("customers:list"))
    assert not AuditLog.objects.filter(action="customers.export").exists()
