"""An error's ``message`` speaks the request's language (Chinese by default); its ``code`` never changes."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from siyu.corps.models import Role
from siyu.corps.services import create_api_key
from tests.api.conftest import ApiClient
from tests.conftest import World


def api_client(world: World, **headers: str) -> ApiClient:
    key = create_api_key(corp=world.corp, name="language", role=Role.ADMIN)
    return ApiClient(client=Client(headers={"Authorization": f"Bearer {key.plaintext}", **headers}))


def body_of(response: Any) -> tuple[int, str, str, str | None]:
    body = response.json()
    return response.status_code, body["code"], body["message"], body["field"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "每页数量必须在 1 到 {max} 之间"),
        ({"Accept-Language": "zh-CN,zh;q=0.9"}, "每页数量必须在 1 到 {max} 之间"),
        ({"Accept-Language": "en"}, "page size must be between 1 and {max}"),
    ],
)
def test_a_refusal_reads_in_the_requests_language_with_the_same_code(
    world: World, headers: dict[str, str], message: str
):
    # given
    maximum = settings.SIYU["MAX_PAGE_SIZE"]
    api = api_client(world, **headers)

    # when
    response = api.get("/customers", page_size=maximum + 1)

    # then
    assert body_of(response) == (400, "page_too_large", message.format(max=maximum), "page_size")


@pytest.mark.parametrize(
    ("headers", "message"), [({}, "未找到该客户"), ({"Accept-Language": "en"}, "customer not found")]
)
def test_an_unknown_customer_is_not_found_in_the_requests_language(
    world: World, headers: dict[str, str], message: str
):
    # given
    api = api_client(world, **headers)

    # when
    response = api.get("/customers/999999")

    # then
    assert body_of(response) == (404, "unknown_customer", message, None)


def test_a_request_without_credentials_is_told_how_to_authenticate_in_chinese(db: None):
    # when
    response = Client().get("/api/v1/customers")

    # then
    status, code, message, _field = body_of(response)
    assert (status, code) == (401, "unauthenticated")
    assert message == "请发送 Authorization: Bearer <api key>，或先登录控制台"


def test_an_english_request_leaves_the_next_one_chinese(world: World):
    # given: an English request first
    english = api_client(world, **{"Accept-Language": "en"})
    assert body_of(english.get("/customers/999999"))[2] == "customer not found"

    # when: a request that asks for no language
    response = api_client(world).get("/customers/999999")

    # then
    assert body_of(response)[2] == "未找到该客户"
