"""API fixtures: keys per role, clients that present them, and a small customer base in two corps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from siyu.corps.models import Role, Staff
from siyu.corps.services import create_api_key
from siyu.customers.models import Customer
from siyu.tags.models import Tag
from tests import factories

BASE = "/api/v1"


class ApiClient:
    """A test client that sends ``Authorization: Bearer <key>`` and JSON bodies."""

    def __init__(self, key: str | None = None, client: Client | None = None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = client or Client(headers=headers)

    def _send(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        url = path if path.startswith(BASE) else BASE + path
        call = getattr(self.client, method)
        if method in {"get", "delete"} and body is None:
            return call(url, params)
        return call(url, json.dumps(body), content_type="application/json")

    def get(self, path: str, **params: Any) -> Any:
        return self._send("get", path, **params)

    def post(self, path: str, body: Any = None) -> Any:
        return self._send("post", path, body if body is not None else {})

    def put(self, path: str, body: Any) -> Any:
        return self._send("put", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self._send("patch", path, body)

    def delete(self, path: str) -> Any:
        return self._send("delete", path)


def error_of(response: Any) -> tuple[int, str]:
    """The status and stable error code of an error response."""
    body = response.json()
    assert set(body) >= {"code", "message", "field"}, body
    return response.status_code, body["code"]


@dataclass
class Keys:
    """API keys of the world's corp (one per role) and one of the other corp."""

    admin: ApiClient
    operator: ApiClient
    manager: ApiClient
    staff_wang: ApiClient
    staff_unlinked: ApiClient
    other_corp: ApiClient
    admin_key_id: int


@pytest.fixture
def keys(world) -> Keys:
    def client(
        corp=world.corp, role: str = Role.OPERATOR, staff: Staff | None = None
    ) -> tuple[ApiClient, int]:
        new = create_api_key(corp=corp, name=f"test {role}", role=role, staff=staff)
        return ApiClient(new.plaintext), new.api_key.pk

    admin, admin_id = client(role=Role.ADMIN)
    return Keys(
        admin=admin,
        operator=client(role=Role.OPERATOR)[0],
        manager=client(role=Role.MANAGER, staff=world.wang)[0],  # acts as 王芳: manages 华东
        staff_wang=client(role=Role.STAFF, staff=world.wang)[0],
        staff_unlinked=client(role=Role.STAFF)[0],
        other_corp=client(corp=world.other_corp, role=Role.ADMIN)[0],
        admin_key_id=admin_id,
    )


@dataclass
class Book:
    """Customers and tags: wang's, liu's, shared by both, and one of the other corp."""

    wang_only: Customer
    liu_only: Customer
    shared: Customer
    foreign: Customer
    vip: Tag
    new: Tag
    foreign_tag: Tag
    foreign_staff: Staff


@pytest.fixture
def book(world) -> Book:
    vip = factories.make_tag(world.corp, "VIP", group="客户等级")
    new = factories.make_tag(world.corp, "新客", group="客户等级")
    wang_only = factories.make_customer(world.corp, "王的客户")
    factories.follow(wang_only, world.wang, remark="王总", state="poster")
    liu_only = factories.make_customer(world.corp, "刘的客户")
    factories.follow(liu_only, world.liu, state="live")
    shared = factories.make_customer(world.corp, "共同客户")
    factories.follow(shared, world.wang)
    factories.follow(shared, world.liu)
    foreign_staff = factories.make_staff(world.other_corp, "外人", userid="outsider")
    foreign = factories.make_customer(world.other_corp, "别家客户")
    factories.follow(foreign, foreign_staff)
    foreign_tag = factories.make_tag(world.other_corp, "别家标签", group="别家")
    return Book(
        wang_only=wang_only,
        liu_only=liu_only,
        shared=shared,
        foreign=foreign,
        vip=vip,
        new=new,
        foreign_tag=foreign_tag,
        foreign_staff=foreign_staff,
    )


def count_queries(call: Any) -> tuple[int, Any]:
    """How many SQL queries ``call()`` ran, and what it returned."""
    with CaptureQueriesContext(connection) as ctx:
        result = call()
    return len(ctx.captured_queries), result
