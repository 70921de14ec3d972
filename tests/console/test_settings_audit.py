"""The audit log page: who read or changed what, newest first, keyset-paginated, filtered; admins only."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from siyu.core.clock import frozen_at
from siyu.corps.models import AuditLog, Role
from siyu.corps.services import audit, create_api_key
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db

LIST = "/org/settings/audit/"
UTC = dt.UTC


def login(client: Client, username: str) -> Client:
    client.force_login(get_user_model().objects.get(username=username))
    return client


def user_id(username: str) -> int:
    return get_user_model().objects.get(username=username).pk


def entry_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-testid="audit-(\d+)"', html)]


def row(html: str, entry: AuditLog) -> str:
    start = html.index(f'data-testid="audit-{entry.pk}"')
    return html[start : html.index("</tr>", start)]


def log_at(world: World, moment: dt.datetime, **fields: object) -> AuditLog:
    with frozen_at(moment):
        audit(corp=world.corp, **fields)  # type: ignore[arg-type]
    return AuditLog.objects.for_corp(world.corp).order_by("pk").last()  # type: ignore[return-value]


# ---------- what an entry shows ----------


def test_entries_show_who_what_which_object_and_when_in_the_corps_time_zone(client: Client, world: World):
    # given: the corp works in Shanghai (UTC+8); a customer view by a user, a read by an API key
    customer = factories.make_customer(world.corp, "甲客户")
    key = create_api_key(corp=world.corp, name="ERP", role=Role.OPERATOR).api_key
    viewed = log_at(
        world,
        dt.datetime(2026, 3, 1, 17, 30, 5, tzinfo=UTC),
        action="customer.view",
        object_type="customer",
        object_id=customer.pk,
        user_id=user_id("wang"),
    )
    by_key = log_at(
        world,
        dt.datetime(2026, 3, 1, 18, 0, tzinfo=UTC),
        action="customer.view",
        object_type="customer",
        object_id=customer.pk,
        api_key_id=key.pk,
    )
    login(client, "admin1")

    # when
    html = client.get(LIST).content.decode()

    # then
    first = row(html, viewed)
    assert "2026-03-02 01:30:05" in first  # 17:30 UTC is 01:30 the next day in Shanghai
    assert "wang" in first and "customer.view" in first
    assert f'href="{reverse("customers:detail", args=[customer.pk])}">甲客户</a>' in first
    second = row(html, by_key)
    assert "ERP" in second and "badge-wecom" in second
    assert entry_ids(html) == [by_key.pk, viewed.pk]  # newest first


def test_changes_made_on_the_settings_pages_appear_and_name_their_objects(client: Client, world: World):
    # given
    login(client, "admin1")
    client.post(
        "/org/settings/users/new/",
        {"username": "li", "password": "a-long-enough-passphrase", "role": "operator"},
    )
    client.post("/org/settings/api-keys/new/", {"name": "BI", "role": "operator"})
    client.post("/org/settings/custom-fields/new/", {"key": "birthday", "label": "生日", "kind": "date"})

    # when
    html = client.get(LIST).content.decode()

    # then
    assert [a for a in re.findall(r'data-testid="audit-action">([^<]+)<', html)] == [
        "custom_field.create",
        "api_key.create",
        "user.create",
    ]
    objects = re.findall(r'data-testid="audit-object">(.*?)</td>', html)
    assert objects[0] == "birthday" and objects[1].startswith("BI (siyu_")
    assert objects[2] == f'<a href="{reverse("corps:settings_user_edit", args=[user_id("li")])}">li</a>'
    assert "a-long-enough-passphrase" not in html


def test_another_corps_entries_are_never_shown(client: Client, world: World):
    audit(corp=world.other_corp, action="customer.view", object_type="customer", object_id=1)
    login(client, "admin1")
    html = client.get(LIST).content.decode()
    assert entry_ids(html) == []


# ---------- pages ----------


def test_keyset_pages_walk_the_whole_log_once_newest_first(client: Client, world: World):
    # given: 120 entries, ten sharing each second so the cursor's tie-break on id matters
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(120):
        log_at(
            world,
            start + dt.timedelta(seconds=i // 10),
            action="customer.view",
            object_type="customer",
            object_id=i,
        )
    expected = list(AuditLog.objects.for_corp(world.corp).order_by("-at", "-pk").values_list("pk", flat=True))
    login(client, "admin1")

    # when
    seen: list[int] = []
    url: str | None = LIST
    pages = 0
    while url:
        html = client.get(url).content.decode()
        seen += entry_ids(html)
        pages += 1
        found = re.search(r'href="\?([^"]+)" rel="next"', html)
        url = f"{LIST}?{found.group(1).replace('&amp;', '&')}" if found else None

    # then
    assert pages == 3
    assert seen == expected


def test_a_broken_cursor_is_a_clear_400(client: Client, world: World):
    login(client, "admin1")
    for cursor in ("nonsense", "W10", "WyJ4IiwgMV0"):  # not base64 JSON; []; ["x", 1]
        response = client.get(LIST, {"cursor": cursor})
        assert response.status_code == 400
        assert 'data-testid="filter-error"' in response.content.decode()


# ---------- filters ----------


@pytest.fixture
def mixed(world: World) -> dict[str, AuditLog]:
    key = create_api_key(corp=world.corp, name="ERP").api_key
    return {
        "wang_view": log_at(
            world,
            dt.datetime(2026, 3, 1, 15, 0, tzinfo=UTC),  # 23:00 on 1 March in Shanghai
            action="customer.view",
            object_type="customer",
            object_id=1,
            user_id=user_id("wang"),
        ),
        "key_view": log_at(
            world,
            dt.datetime(2026, 3, 1, 16, 30, tzinfo=UTC),  # 00:30 on 2 March in Shanghai
            action="customer.view",
            object_type="customer",
            object_id=2,
            api_key_id=key.pk,
        ),
        "admin_change": log_at(
            world,
            dt.datetime(2026, 3, 3, 2, 0, tzinfo=UTC),
            action="user.update",
            object_type="user",
            object_id=user_id("liu"),
            user_id=user_id("admin1"),
        ),
    }


def test_filter_by_user_api_key_action_and_dates(client: Client, world: World, mixed: dict[str, AuditLog]):
    # given
    login(client, "admin1")
    key_id = mixed["key_view"].api_key_id

    # when
    by_user = entry_ids(client.get(LIST, {"who": f"u{user_id('wang')}"}).content.decode())
    by_key = entry_ids(client.get(LIST, {"who": f"k{key_id}"}).content.decode())
    by_action = entry_ids(client.get(LIST, {"action": "user."}).content.decode())
    on_march_2 = entry_ids(client.get(LIST, {"since": "2026-03-02", "until": "2026-03-02"}).content.decode())
    until_march_1 = entry_ids(client.get(LIST, {"until": "2026-03-01"}).content.decode())

    # then
    assert by_user == [mixed["wang_view"].pk]
    assert by_key == [mixed["key_view"].pk]
    assert by_action == [mixed["admin_change"].pk]
    assert on_march_2 == [mixed["key_view"].pk]  # days are the corp's days, not UTC's
    assert until_march_1 == [mixed["wang_view"].pk]


def test_the_filter_keeps_its_values_and_pages_keep_the_filter(client: Client, world: World):
    # given
    for i in range(60):
        audit(
            corp=world.corp,
            action="customer.view",
            object_type="customer",
            object_id=i,
            user_id=user_id("wang"),
        )
    audit(corp=world.corp, action="user.update", object_type="user", object_id=1)
    login(client, "admin1")

    # when
    html = client.get(LIST, {"who": f"u{user_id('wang')}", "action": "customer."}).content.decode()

    # then
    assert f'<option value="u{user_id("wang")}" selected>' in html
    assert 'value="customer."' in html
    next_link = re.search(r'href="\?([^"]+)" rel="next"', html)
    assert next_link and "action=customer." in next_link.group(1) and "who=u" in next_link.group(1)


@pytest.mark.parametrize(
    "params",
    [{"who": "x1"}, {"who": "u"}, {"since": "2026-13-01"}, {"since": "2026-03-02", "until": "2026-03-01"}],
)
def test_a_bad_filter_is_a_400_with_its_message(
    client: Client, world: World, mixed: dict[str, AuditLog], params: dict[str, str]
):
    login(client, "admin1")
    response = client.get(LIST, params)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="filter-error"' in html and entry_ids(html) == []


# ---------- permissions and cost ----------


@pytest.mark.parametrize("username", ["operator1", "manager1", "wang"])
def test_only_admins_read_the_audit_log(client: Client, world: World, username: str):
    login(client, username)
    assert client.get(LIST).status_code == 403
    assert f'href="{LIST}"' not in client.get(reverse("customers:list")).content.decode()


def count_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(LIST).status_code == 200
    return len(ctx.captured_queries)


def test_the_page_costs_the_same_number_of_queries_for_3_or_50_entries(client: Client, world: World):
    # given: entries naming customers, users and keys, by users and by keys
    customers = [factories.make_customer(world.corp, f"客户{i}") for i in range(20)]
    keys = [create_api_key(corp=world.corp, name=f"k{i}").api_key for i in range(5)]

    def log(i: int) -> None:
        kind = i % 3
        if kind == 0:
            audit(
                corp=world.corp,
                action="customer.view",
                object_type="customer",
                object_id=customers[i % 20].pk,
                api_key_id=keys[i % 5].pk,
            )
        elif kind == 1:
            audit(
                corp=world.corp,
                action="user.update",
                object_type="user",
                object_id=user_id("wang"),
                user_id=user_id("admin1"),
            )
        else:
            audit(
                corp=world.corp,
                action="api_key.create",
                object_type="api_key",
                object_id=keys[i % 5].pk,
                user_id=user_id("admin1"),
            )

    for i in range(3):
        log(i)
    login(client, "admin1")
    count_queries(client)
    with_three = count_queries(client)

    # when
    for i in range(3, 80):
        log(i)
    with_fifty = count_queries(client)

    # then
    assert with_three == with_fifty
