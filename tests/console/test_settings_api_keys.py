"""API keys: admins create a key (shown once), see what each key is and when it was used, and revoke it."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from siyu.corps.models import ApiKey, AuditLog, Role
from siyu.corps.services import authenticate_api_key, create_api_key
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db

LIST = "/org/settings/api-keys/"
NEW = "/org/settings/api-keys/new/"


def login(client: Client, username: str) -> Client:
    client.force_login(get_user_model().objects.get(username=username))
    return client


def secret_of(html: str) -> str:
    found = re.search(r'id="secret" value="([^"]+)"', html)
    assert found, "no secret on the page"
    return found.group(1)


def api_get(key: str, path: str = "/api/v1/customers") -> int:
    return Client(headers={"Authorization": f"Bearer {key}"}).get(path).status_code


def row(html: str, key: ApiKey) -> str:
    start = html.index(f'data-testid="key-{key.pk}"')
    return html[start : html.index("</tr>", start)]


# ---------- creating ----------


def test_a_new_key_is_shown_once_and_authenticates(client: Client, world: World):
    # given
    login(client, "admin1")

    # when
    response = client.post(NEW, {"name": "ERP 同步", "role": Role.OPERATOR})

    # then
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    html = response.content.decode()
    plaintext = secret_of(html)
    assert 'data-testid="copy-secret"' in html and 'data-testid="secret-warning"' in html
    key = authenticate_api_key(plaintext)
    assert key is not None
    assert (key.corp_id, key.name, key.role, key.staff_id) == (world.corp.pk, "ERP 同步", Role.OPERATOR, None)
    assert plaintext.startswith(key.prefix) and plaintext != key.key_hash
    assert api_get(plaintext) == 200
    listed = client.get(LIST).content.decode()
    assert plaintext not in listed and key.prefix in row(listed, key)
    [entry] = AuditLog.objects.for_corp(world.corp).filter(action="api_key.create")
    assert entry.object_id == str(key.pk) and entry.user_id == key_creator(world)
    assert entry.detail == {"name": "ERP 同步", "role": Role.OPERATOR, "prefix": key.prefix, "staff_id": None}
    assert plaintext not in str(list(AuditLog.objects.values_list("detail", flat=True)))


def key_creator(world: World) -> int:
    return get_user_model().objects.get(username="admin1").pk


def test_a_staff_key_acts_as_its_staff_member(client: Client, world: World):
    # given: one customer of 王芳's, one of 刘强's
    mine = factories.make_customer(world.corp, "王的客户")
    factories.follow(mine, world.wang)
    factories.follow(factories.make_customer(world.corp, "刘的客户"), world.liu)
    login(client, "admin1")

    # when
    response = client.post(NEW, {"name": "小程序", "role": Role.STAFF, "staff": world.wang.pk})

    # then
    plaintext = secret_of(response.content.decode())
    body = Client(headers={"Authorization": f"Bearer {plaintext}"}).get("/api/v1/customers").json()
    assert [c["id"] for c in body["items"]] == [mine.pk]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "", "role": Role.OPERATOR}, "name"),
        ({"name": "x" * 101, "role": Role.OPERATOR}, "name"),
        ({"name": "k", "role": "god"}, "role"),
        ({"name": "k", "role": Role.MANAGER}, "代表一名员工"),  # the refusal reads in Chinese by default
        ({"name": "k", "role": Role.STAFF, "staff": "999999"}, "staff"),
    ],
)
def test_a_refused_key_is_explained_and_not_created(
    client: Client, world: World, form: dict[str, str], message: str
):
    # given
    login(client, "admin1")

    # when
    response = client.post(NEW, form)

    # then
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html.split('data-testid="form-error">')[1].split("</ul>")[0]
    assert 'id="secret"' not in html
    assert not ApiKey.objects.exists()
    assert not AuditLog.objects.exists()


def test_a_staff_member_of_another_corp_cannot_be_linked(client: Client, world: World):
    foreign = factories.make_staff(world.other_corp, "别家员工")
    login(client, "admin1")
    response = client.post(NEW, {"name": "k", "role": Role.STAFF, "staff": foreign.pk})
    assert response.status_code == 400
    assert not ApiKey.objects.exists()


# ---------- the list ----------


def test_the_list_shows_name_prefix_role_staff_use_and_revocation(client: Client, world: World):
    # given
    used = create_api_key(corp=world.corp, name="用过的", role=Role.MANAGER, staff=world.wang)
    authenticate_api_key(used.plaintext)  # records its last use
    revoked = create_api_key(corp=world.corp, name="撤销的")
    revoked.api_key.revoked_at = revoked.api_key.created_at
    revoked.api_key.save(update_fields=["revoked_at"])
    create_api_key(corp=world.other_corp, name="别家的钥匙")
    login(client, "admin1")

    # when
    html = client.get(LIST).content.decode()

    # then
    first = row(html, used.api_key)
    assert used.api_key.prefix in first and "role-manager" in first and "王芳" in first
    assert "Never" not in first and "从未" not in first
    assert 'data-testid="revoke-key"' in first
    second = row(html, revoked.api_key)
    assert 'data-testid="revoke-key"' not in second and 'class="inactive"' in second
    assert "别家的钥匙" not in html


def count_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(LIST).status_code == 200
    return len(ctx.captured_queries)


def test_the_list_costs_the_same_number_of_queries_for_2_or_20_keys(client: Client, world: World):
    # given
    create_api_key(corp=world.corp, name="a", role=Role.STAFF, staff=world.wang)
    create_api_key(corp=world.corp, name="b")
    login(client, "admin1")
    count_queries(client)
    with_two = count_queries(client)

    # when
    for i in range(18):
        staff = factories.make_staff(world.corp, f"员工{i}")
        create_api_key(corp=world.corp, name=f"k{i}", role=Role.STAFF, staff=staff)
    with_twenty = count_queries(client)

    # then
    assert with_two == with_twenty


# ---------- revoking ----------


def test_revoking_asks_first_then_the_key_stops_working(client: Client, world: World):
    # given
    new = create_api_key(corp=world.corp, name="旧系统")
    assert api_get(new.plaintext) == 200
    login(client, "admin1")
    url = reverse("corps:settings_api_key_revoke", args=[new.api_key.pk])

    # when
    confirm = client.get(url)

    # then
    assert confirm.status_code == 200 and 'data-testid="confirm-revoke-submit"' in confirm.content.decode()
    assert authenticate_api_key(new.plaintext) is not None

    # when
    response = client.post(url)

    # then
    assert response.status_code == 302 and response["Location"] == LIST
    assert authenticate_api_key(new.plaintext) is None
    assert api_get(new.plaintext) == 401
    [entry] = AuditLog.objects.for_corp(world.corp).filter(action="api_key.revoke")
    assert entry.object_id == str(new.api_key.pk) and entry.detail == {"prefix": new.api_key.prefix}

    # when: revoked twice
    client.post(url)

    # then: the first revocation stands, audited once
    assert AuditLog.objects.for_corp(world.corp).filter(action="api_key.revoke").count() == 1


# ---------- permissions and tenancy ----------


@pytest.mark.parametrize("username", ["operator1", "manager1", "wang"])
def test_only_admins_manage_api_keys(client: Client, world: World, username: str):
    # given
    existing = create_api_key(corp=world.corp, name="现有")
    login(client, username)
    revoke = reverse("corps:settings_api_key_revoke", args=[existing.api_key.pk])

    # when
    responses = [
        client.get(LIST),
        client.post(NEW, {"name": "偷偷的", "role": Role.ADMIN}),
        client.get(revoke),
        client.post(revoke),
    ]

    # then
    assert [r.status_code for r in responses] == [403] * 4
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["现有"]
    assert authenticate_api_key(existing.plaintext) is not None


def test_an_admin_cannot_revoke_another_corps_key(client: Client, world: World):
    # given
    foreign = create_api_key(corp=world.other_corp, name="别家")
    login(client, "admin1")
    url = reverse("corps:settings_api_key_revoke", args=[foreign.api_key.pk])

    # when
    responses = [client.get(url), client.post(url)]

    # then
    assert [r.status_code for r in responses] == [404, 404]
    assert authenticate_api_key(foreign.plaintext) is not None
