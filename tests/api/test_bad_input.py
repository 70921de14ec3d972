"""Hostile or malformed input gets a 4xx with a stable code: never a 500, never a write."""

from __future__ import annotations

import base64
import json

import pytest

from siyu.customers.models import Event, FollowRelation, Note
from siyu.tags.models import Tag, TagGroup
from tests.api.conftest import BASE, error_of

pytestmark = pytest.mark.django_db

HUGE = 10**30  # beyond any 64-bit id


def _cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def _state() -> tuple[int, int, int, int]:
    return Event.objects.count(), Note.objects.count(), Tag.objects.count(), TagGroup.objects.count()


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/customers", {"q": "a\x00b"}, 400, "invalid"),
        ("/customers", {"state": ["ok", "a\x00"]}, 400, "invalid"),
        ("/customers", {"tag": HUGE}, 422, "invalid"),
        ("/customers", {"staff": HUGE}, 422, "invalid"),
        ("/customers", {"department": -1}, 422, "invalid"),
        ("/customers", {"page_size": HUGE}, 400, "page_too_large"),
        ("/customers", {"cursor": _cursor("-added", "2024-01-01T00:00:00+00:00", HUGE)}, 200, None),
        ("/customers", {"cursor": _cursor("-added", "not a date", 1)}, 400, "bad_cursor"),
        ("/customers", {"cursor": _cursor("name", {"a": 1}, 1), "sort": "name"}, 200, None),
        ("/customers", {"cursor": _cursor("-added", None, True)}, 400, "bad_cursor"),
        ("/customers", {"added_from": "9999-12-31"}, 200, None),
        ("/customers", {"added_from": "2024-02-30"}, 422, "invalid"),
        ("/staff", {"cursor": _cursor("id", HUGE)}, 400, "bad_cursor"),
        ("/staff", {"cursor": _cursor("id", -5)}, 400, "bad_cursor"),
        ("/staff", {"department": HUGE}, 422, "invalid"),
        ("/tags", {"group": HUGE}, 404, "not_found"),
        ("/customers/CUSTOMER/notes", {"cursor": _cursor("id", "1")}, 400, "bad_cursor"),
        (
            "/customers/CUSTOMER/timeline",
            {"cursor": _cursor("-added", "2024-01-01T00:00:00", HUGE)},
            200,
            None,
        ),
        ("/customers/CUSTOMER/timeline", {"page_size": "1e3"}, 422, "invalid"),
    ],
)
def test_odd_query_strings_are_answered_cleanly(world, keys, book, path, params, status, code):
    # when
    response = keys.admin.get(path.replace("CUSTOMER", str(book.shared.pk)), **params)

    # then
    if code is None:
        assert response.status_code == status, response.json()
    else:
        assert error_of(response) == (status, code)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ('{"text": "a\\u0000b"}', 400),  # NUL: PostgreSQL cannot store it
        ('{"text": NaN}', 400),  # not JSON, though Python would accept it
        ('{"text": "ok"', 400),
        ("", 422),
        ('["text"]', 422),
        ('"just a string"', 422),
        ('{"text": null}', 422),
        ('{"text": {"nested": 1}}', 422),
    ],
)
def test_malformed_bodies_are_refused_without_writing(world, keys, book, raw, status):
    # given
    before = _state()

    # when
    response = keys.admin.client.post(
        f"{BASE}/customers/{book.shared.pk}/notes", raw, content_type="application/json"
    )

    # then
    assert error_of(response) == (status, "invalid")
    assert _state() == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/tag-groups", {"name": "a\x00b"}),
        ("post", "/tag-groups", {"name": "好", "tags": ["a\x00"]}),
        ("post", "/tags", {"group_id": HUGE, "name": "x"}),
        ("post", "/tag-groups/reorder", {"group_ids": [HUGE]}),
        ("post", "/customers/CUSTOMER/relations/RELATION/tags", {"add": [HUGE]}),
        ("post", "/customers/CUSTOMER/relations/RELATION/tags", {"add": [1.5]}),
        ("post", "/customers/CUSTOMER/relations/RELATION/tags", {"add": [True]}),
        ("patch", "/customers/CUSTOMER/relations/RELATION", {"remark": "a\x00b"}),
        ("patch", "/customers/CUSTOMER/relations/RELATION", {"remark_mobiles": "13800138000"}),
        ("put", "/customers/CUSTOMER/custom-fields", {"values": {"a\x00": "x"}}),
        ("put", "/customers/CUSTOMER/custom-fields", {"values": ["x"]}),
    ],
)
def test_bad_writes_are_4xx_and_change_nothing(world, keys, book, method, path, body):
    # given
    relation = FollowRelation.objects.get(customer=book.shared, staff=world.wang)
    url = path.replace("CUSTOMER", str(book.shared.pk)).replace("RELATION", str(relation.pk))
    before = _state()

    # when
    response = getattr(keys.admin, method)(url, body)

    # then
    status, code = error_of(response)
    assert 400 <= status < 500 and code == "invalid"
    assert _state() == before
    relation.refresh_from_db()
    assert (relation.remark, relation.remark_mobiles) == ("", [])


def test_an_unknown_method_or_path_is_not_a_server_error(world, keys, book):
    # when
    wrong_method = keys.admin.client.put(f"{BASE}/tags", "{}", content_type="application/json")
    wrong_path = keys.admin.get("/nothing-here")

    # then
    assert wrong_method.status_code == 405
    assert wrong_path.status_code == 404
