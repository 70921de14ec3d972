"""Authentication: API keys (Bearer) and the console's session, with CSRF on writes."""

from __future__ import annotations

import secrets

import pytest
from django.test import Client

from siyu.corps.models import ApiKey, AuditLog
from siyu.corps.services import create_api_key, revoke_api_key
from tests.api.conftest import BASE, ApiClient, error_of

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer siyu_not-a-real-key",
        "Bearer ",
        "Bearer something-without-our-prefix",
        "Basic dXNlcjpwYXNz",
        "siyu_no-scheme",
    ],
)
def test_requests_without_a_valid_key_are_unauthenticated(world, book, authorization):
    # given
    headers = {"Authorization": authorization} if authorization is not None else {}
    client = Client(headers=headers)

    # when
    responses = [
        client.get(f"{BASE}/customers"),
        client.get(f"{BASE}/customers/{book.wang_only.pk}"),
        client.post(
            f"{BASE}/tags", {"group_id": book.vip.group_id, "name": "x"}, content_type="application/json"
        ),
    ]

    # then
    assert [error_of(r) for r in responses] == [(401, "unauthenticated")] * 3


def test_a_revoked_key_no_longer_works(world, book):
    # given
    new = create_api_key(corp=world.corp)
    client = ApiClient(new.plaintext)
    assert client.get("/customers").status_code == 200

    # when
    revoke_api_key(api_key=new.api_key)

    # then
    assert error_of(client.get("/customers")) == (401, "unauthenticated")


def test_a_key_records_when_it_was_last_used(world):
    # given
    new = create_api_key(corp=world.corp)
    assert new.api_key.last_used_at is None

    # when
    ApiClient(new.plaintext).get("/tags")

    # then
    assert ApiKey.objects.get(pk=new.api_key.pk).last_used_at is not None


def test_a_wrong_key_is_refused_even_with_a_console_session(world, book):
    # given: logged in, but the request presents a key that does not exist
    client = Client(headers={"Authorization": "Bearer siyu_wrong"})
    client.login(username="admin1", password=world.password)

    # when
    response = client.get(f"{BASE}/customers")

    # then
    assert error_of(response) == (401, "unauthenticated")


def test_console_session_reads_with_the_users_role(world, book):
    # given
    wang = Client()
    wang.login(username="wang", password=world.password)
    admin = Client()
    admin.login(username="admin1", password=world.password)

    # when
    wang_names = {c["name"] for c in wang.get(f"{BASE}/customers").json()["items"]}
    admin_names = {c["name"] for c in admin.get(f"{BASE}/customers").json()["items"]}

    # then
    assert wang_names == {"王的客户", "共同客户"}
    assert admin_names == {"王的客户", "刘的客户", "共同客户"}


def test_console_session_detail_is_audited_with_the_user(world, book):
    # given
    client = Client()
    client.login(username="wang", password=world.password)

    # when
    response = client.get(f"{BASE}/customers/{book.wang_only.pk}")

    # then
    assert response.status_code == 200
    entry = AuditLog.objects.for_corp(world.corp).get(action="customer.view")
    assert (entry.user_id, entry.api_key_id, entry.object_id) == (
        world.staff_wang.user_id,
        None,
        str(book.wang_only.pk),
    )


def test_console_session_writes_need_the_csrf_token(world, book):
    # given: a browser-like client that enforces CSRF, logged in as admin
    client = Client(enforce_csrf_checks=True)
    client.login(username="admin1", password=world.password)
    url = f"{BASE}/tags"
    body = {"group_id": book.vip.group_id, "name": "高价值"}

    # when: a write without the token
    refused = client.post(url, body, content_type="application/json")

    # then: refused, and nothing was created
    assert error_of(refused) == (403, "permission_denied")
    assert "CSRF" in refused.json()["message"]
    assert not book.vip.group.tags.filter(name="高价值").exists()

    # when: the same write with the token the console page carries
    token = secrets.token_hex(16)  # what the console's csrftoken cookie holds: a 32-character secret
    client.cookies["csrftoken"] = token
    accepted = client.post(url, body, content_type="application/json", headers={"X-CSRFToken": token})

    # then
    assert accepted.status_code == 201, accepted.json()
    assert book.vip.group.tags.filter(name="高价值").exists()


def test_console_session_reads_need_no_csrf_token(world, book):
    # given
    client = Client(enforce_csrf_checks=True)
    client.login(username="admin1", password=world.password)

    # when
    response = client.get(f"{BASE}/tag-groups")

    # then
    assert response.status_code == 200


def test_api_key_writes_need_no_csrf_token(world, book):
    # given: a key client that enforces CSRF checks like a browser would
    new = create_api_key(corp=world.corp)
    client = ApiClient(
        client=Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {new.plaintext}"})
    )

    # when
    response = client.post("/tags", {"group_id": book.vip.group_id, "name": "接口创建"})

    # then
    assert response.status_code == 201


def test_anonymous_writes_are_unauthenticated_not_csrf_failures(world, book):
    # given
    client = Client(enforce_csrf_checks=True)

    # when
    response = client.post(
        f"{BASE}/tags", {"group_id": book.vip.group_id, "name": "x"}, content_type="application/json"
    )

    # then
    assert error_of(response) == (401, "unauthenticated")


def test_a_login_without_a_role_in_any_corp_is_refused(world, django_user_model):
    # given
    django_user_model.objects.create_user(username="drifter", password=world.password)
    client = Client()
    client.login(username="drifter", password=world.password)

    # when
    response = client.get(f"{BASE}/customers")

    # then
    assert error_of(response) == (403, "permission_denied")
