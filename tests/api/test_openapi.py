"""The OpenAPI document: it lists every route, and every documented operation answers what it documents."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.test import Client

from siyu.api.root import api
from siyu.broadcasts.services import create_broadcast
from siyu.channels.models import Channel
from siyu.core.clock import now
from siyu.corps.access import Actor
from siyu.corps.services import set_corp_credentials
from siyu.customers.models import FollowRelation
from siyu.customers.services import create_custom_field
from siyu.groups.models import GroupChat, GroupCode, GroupCodeEntry
from siyu.offline.importing import upload_import
from siyu.segments.services import SegmentInput, create_segment
from siyu.tags.rules import RuleInput, save_tagging_rule
from siyu.tags.services import create_tag_group
from tests.api.conftest import BASE, ApiClient

pytestmark = pytest.mark.django_db


def check(value: Any, schema: dict[str, Any], doc: dict[str, Any], where: str = "$") -> None:
    """Validate ``value`` against the subset of JSON Schema that the OpenAPI document uses."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        check(value, doc["components"]["schemas"][name], doc, where)
        return
    if "anyOf" in schema:
        failures = []
        for option in schema["anyOf"]:
            try:
                check(value, option, doc, where)
                return
            except AssertionError as exc:
                failures.append(str(exc))
        raise AssertionError(f"{where}: matches no option: {failures}")
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), f"{where}: not an object"
        for key in schema.get("required", []):
            assert key in value, f"{where}: missing {key}"
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(properties), f"{where}: unexpected {set(value) - set(properties)}"
        for key, item in value.items():
            if key in properties:
                check(item, properties[key], doc, f"{where}.{key}")
    elif kind == "array":
        assert isinstance(value, list), f"{where}: not an array"
        for i, item in enumerate(value):
            check(item, schema.get("items", {}), doc, f"{where}[{i}]")
    elif kind == "string":
        assert isinstance(value, str), f"{where}: not a string"
        if schema.get("format") == "date-time":
            assert dt.datetime.fromisoformat(value).tzinfo is not None, f"{where}: not an aware date-time"
        if schema.get("format") == "date":
            dt.date.fromisoformat(value)
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: not an integer"
    elif kind == "number":
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{where}: not a number"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{where}: not a boolean"
    elif kind == "null":
        assert value is None, f"{where}: not null"


@pytest.fixture
def doc(db) -> dict[str, Any]:
    response = Client().get(f"{BASE}/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_docs_page_is_served(db):
    # when
    response = Client().get(f"{BASE}/docs")

    # then
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    assert b"/api/v1/openapi.json" in response.content


def test_the_document_lists_every_route_and_its_security(doc):
    # given: every route Django will dispatch to the API, in the document's spelling
    patterns, _app, _namespace = api.urls
    routed = {
        "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(p.pattern))
        for p in patterns
        if p.name not in {"openapi-json", "openapi-view", "api-root"}
    }

    # then
    assert routed == set(doc["paths"])
    assert set(doc["components"]["securitySchemes"]) == {"BearerKey", "ConsoleSession"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert operation["security"] == [{"BearerKey": []}, {"ConsoleSession": []}], (method, path)
            assert {"200", "201"} & set(operation["responses"]), (method, path)
            assert {"400", "401", "403", "404", "422"} <= set(operation["responses"]), (method, path)


def _calls(world, book) -> dict[tuple[str, str], tuple[dict[str, Any], Any]]:
    """A real request for every documented operation: path parameters and a body that succeed."""
    relation = FollowRelation.objects.get(customer=book.shared, staff=world.wang)
    spare = create_tag_group(corp=world.corp, name="可删", tag_names=["甲", "乙"])
    segment = create_segment(corp=world.corp, data=SegmentInput(name="女客户", text="gender:female"))
    set_corp_credentials(corp=world.corp, secret="app-secret", token="", aes_key="")
    broadcast = create_broadcast(
        actor=world.operator,
        kind="customers",
        name="群发",
        text="你好",
        audience={"type": "customers", "customer_ids": [book.shared.pk]},
    )
    message = {
        "name": "新群发",
        "text": "你好",
        "audience": {"type": "customers", "customer_ids": [book.shared.pk]},
    }
    ids = {
        "broadcast_id": broadcast.pk,
        "customer_id": book.shared.pk,
        "relation_id": relation.pk,
        "group_id": book.vip.group_id,
        "tag_id": book.new.pk,
        "staff_id": world.wang.pk,
        "department_id": world.east.pk,
        "segment_id": segment.pk,
    }
    rule = save_tagging_rule(
        corp=world.corp, data=RuleInput(name="入群", kind="group_join", tag_ids=[book.vip.pk], config={})
    )
    rule_body = {
        "name": "夜间",
        "kind": "time_of_add",
        "tag_ids": [book.vip.pk],
        "config": {"start": "20:00", "end": "08:00"},
    }
    return {
        **_channels(world),
        **_group_codes_offline(world, ids),
        ("get", "/api/v1/tagging-rules"): (ids, None),
        ("post", "/api/v1/tagging-rules"): (ids, rule_body),
        ("put", "/api/v1/tagging-rules/{rule_id}"): (
            ids | {"rule_id": rule.pk},
            {**rule_body, "kind": "group_join", "config": {}},
        ),
        ("delete", "/api/v1/tagging-rules/{rule_id}"): (ids | {"rule_id": rule.pk}, None),
        ("get", "/api/v1/customers"): (ids, None),
        ("get", "/api/v1/custom-fields"): (ids, None),
        ("get", "/api/v1/customers/{customer_id}"): (ids, None),
        ("get", "/api/v1/customers/{customer_id}/timeline"): (ids, None),
        ("get", "/api/v1/customers/{customer_id}/notes"): (ids, None),
        ("post", "/api/v1/customers/{customer_id}/notes"): (ids, {"text": "回访"}),
        ("put", "/api/v1/customers/{customer_id}/custom-fields"): (ids, {"values": {"level": "金"}}),
        ("post", "/api/v1/customers/{customer_id}/relations/{relation_id}/tags"): (
            ids,
            {"add": [book.vip.pk]},
        ),
        ("patch", "/api/v1/customers/{customer_id}/relations/{relation_id}"): (ids, {"remark": "老客"}),
        ("get", "/api/v1/tag-groups"): (ids, None),
        ("post", "/api/v1/tag-groups"): (ids, {"name": "新组", "tags": ["一"]}),
        ("post", "/api/v1/tag-groups/reorder"): (ids, "ALL_GROUPS"),
        ("get", "/api/v1/tag-groups/{group_id}"): (ids, None),
        ("patch", "/api/v1/tag-groups/{group_id}"): (ids, {"name": "等级"}),
        ("delete", "/api/v1/tag-groups/{group_id}"): (ids | {"group_id": spare.pk}, None),
        ("post", "/api/v1/tag-groups/{group_id}/tags/reorder"): (
            ids,
            {"tag_ids": [book.new.pk, book.vip.pk]},
        ),
        ("get", "/api/v1/tags"): (ids, None),
        ("post", "/api/v1/tags"): (ids, {"group_id": book.vip.group_id, "name": "沉睡"}),
        ("get", "/api/v1/tags/{tag_id}"): (ids, None),
        ("patch", "/api/v1/tags/{tag_id}"): (ids, {"name": "新客户"}),
        ("delete", "/api/v1/tags/{tag_id}"): (ids, None),
        ("get", "/api/v1/staff"): (ids, None),
        ("get", "/api/v1/staff/{staff_id}"): (ids, None),
        ("get", "/api/v1/departments"): (ids, None),
        ("get", "/api/v1/departments/{department_id}"): (ids, None),
        ("post", "/api/v1/customers/{customer_id}/events"): (ids, {"kind": "visited", "external_id": "v1"}),
        ("get", "/api/v1/segments"): (ids, None),
        ("post", "/api/v1/segments"): (ids, {"name": "北京", "text": "gender:male"}),
        ("post", "/api/v1/segments/evaluate"): (ids, {"text": "gender:female", "sample": 3}),
        ("get", "/api/v1/segments/{segment_id}"): (ids, None),
        ("patch", "/api/v1/segments/{segment_id}"): (ids, {"name": "女性客户"}),
        ("get", "/api/v1/segments/{segment_id}/count"): (ids, None),
        ("get", "/api/v1/segments/{segment_id}/members"): (ids, None),
        ("post", "/api/v1/segments/{segment_id}/overrides"): (
            ids,
            {"customer_ids": [book.shared.pk], "mode": "include"},
        ),
        ("delete", "/api/v1/segments/{segment_id}"): (ids, None),
        ("get", "/api/v1/broadcasts"): (ids, None),
        ("post", "/api/v1/broadcasts"): (ids, message),
        ("get", "/api/v1/broadcasts/{broadcast_id}"): (ids, None),
        ("get", "/api/v1/broadcasts/{broadcast_id}/preview"): (ids, None),
        ("get", "/api/v1/broadcasts/{broadcast_id}/results"): (ids, None),
        ("post", "/api/v1/broadcasts/{broadcast_id}/cancel"): (ids, None),
        ("post", "/api/v1/broadcasts/{broadcast_id}/remind"): (ids, {}),
        ("post", "/api/v1/broadcasts/{broadcast_id}/send"): (ids, None),
        ("post", "/api/v1/broadcasts/media"): (ids, "UPLOAD"),
    }


def _channels(world) -> dict[tuple[str, str], tuple[dict[str, Any], Any]]:
    """Channel operations: one channel for reads and changes, others to pause, resume and archive."""
    from siyu.channels.services import ChannelInput, MemberInput, create_channel, pause_channel

    def make(name: str) -> int:
        data = ChannelInput(name=name, members=[MemberInput(staff_id=world.wang.pk)])
        return create_channel(actor=world.operator, data=data).pk

    main, paused, archived = make("主渠道"), make("暂停渠道"), make("归档渠道")
    pause_channel(actor=world.operator, channel=Channel.objects.get(pk=paused))
    body = {"name": "官网", "members": [{"staff_id": world.wang.pk, "daily_cap": 5}]}
    welcome = {"variants": [{"text": "您好{customer_name}"}]}
    one = {"channel_id": main}
    return {
        ("get", "/api/v1/channels"): (one, None),
        ("post", "/api/v1/channels"): (one, body),
        ("get", "/api/v1/channels/{channel_id}"): (one, None),
        ("put", "/api/v1/channels/{channel_id}"): (one, body),
        ("post", "/api/v1/channels/{channel_id}/pause"): (one, None),
        ("post", "/api/v1/channels/{channel_id}/resume"): ({"channel_id": paused}, None),
        ("post", "/api/v1/channels/{channel_id}/archive"): ({"channel_id": archived}, None),
        ("post", "/api/v1/channels/{channel_id}/duplicate"): (one, None),
        ("get", "/api/v1/channels/{channel_id}/adds"): (one, None),
        ("get", "/api/v1/channels/{channel_id}/stats"): (one, None),
        ("get", "/api/v1/channel-stats"): (one, None),
        ("get", "/api/v1/channels/{channel_id}/welcome"): (one, None),
        ("put", "/api/v1/channels/{channel_id}/welcome"): (one, welcome),
        ("put", "/api/v1/welcome-message"): (one, welcome),
    }


def _group_codes_offline(world, ids: dict[str, Any]) -> dict[tuple[str, str], tuple[dict[str, Any], Any]]:
    """Group live codes and offline member imports: a code to read and change, another with a group."""
    code_ids = ids | {"code_id": GroupCode.objects.create(corp=world.corp, name="活码").pk}
    pool = GroupCode.objects.create(corp=world.corp, name="另一个活码")
    entry = GroupCodeEntry.objects.create(
        corp=world.corp, code=pool, group=GroupChat.objects.create(corp=world.corp, chat_id="wrDoc"),
        image=b"png", image_sha256="0" * 64, expires_at=now() + dt.timedelta(days=1),
    )  # fmt: skip
    imported = upload_import(
        actor=Actor(corp=world.corp, role="admin"),
        file_name="m.csv",
        data="姓名,手机\n陈静,13800138000\n".encode(),
    )
    return {
        ("get", "/api/v1/group-codes"): (code_ids, None),
        ("post", "/api/v1/group-codes"): (code_ids, {"name": "新活码"}),
        ("get", "/api/v1/group-codes/{code_id}"): (code_ids, None),
        ("patch", "/api/v1/group-codes/{code_id}"): (code_ids, {"title": "入群"}),
        ("delete", "/api/v1/group-codes/{code_id}"): (code_ids, None),
        ("delete", "/api/v1/group-codes/{code_id}/entries/{entry_id}"): (
            ids | {"code_id": pool.pk, "entry_id": entry.pk},
            None,
        ),
        ("get", "/api/v1/offline/imports/{import_id}"): (ids | {"import_id": imported.pk}, None),
    }


# File uploads (multipart/form-data) are exercised in tests/api/test_group_codes_offline.py.
MULTIPART = {("post", "/api/v1/group-codes/{code_id}/entries"), ("post", "/api/v1/offline/imports")}


ORDER = ["get", "post", "put", "patch", "delete"]  # reads first, deletes last, so ids stay valid


def _send(client: ApiClient, method: str, url: str, body: Any) -> Any:
    if body == "UPLOAD":  # a multipart form with a file
        from django.core.files.uploadedfile import SimpleUploadedFile

        png = SimpleUploadedFile("a.png", b"\x89PNG\r\n\x1a\n" + bytes(64), content_type="image/png")
        return client.client.post(url, {"kind": "image", "file": png})
    if method in {"get", "delete"}:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body)


def test_every_documented_operation_answers_as_documented(world, keys, book, doc):
    # given
    create_custom_field(corp=world.corp, key="level", label="等级", kind="choice", choices=["金", "银"])
    calls = _calls(world, book)
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented - MULTIPART == set(calls)

    for method, path in sorted(calls, key=lambda c: (ORDER.index(c[0]), c[1])):
        params, body = calls[(method, path)]
        if body == "ALL_GROUPS":
            body = {"group_ids": [g["id"] for g in reversed(keys.admin.get("/tag-groups").json())]}
        url = path.format(**params)
        operation = doc["paths"][path][method]

        # when: as an admin key, with no key, and (for paths with ids) for another corp's key
        responses = [_send(keys.admin, method, url, body), _send(ApiClient(), method, url, body)]
        if "{" in path:
            responses.append(_send(keys.other_corp, method, url, body))

        # then: each status is documented and each body matches the documented schema
        expected = [{"200", "201"}, {"401"}, {"404"}]
        for response, statuses in zip(responses, expected, strict=False):
            status = str(response.status_code)
            assert status in statuses, (method, path, status, response.content[:300])
            assert response["Content-Type"].startswith("application/json")
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            check(response.json(), schema, doc, f"{method.upper()} {path} → {status}")


def test_validation_errors_match_the_documented_schema(world, keys, book, doc):
    # when
    response = keys.admin.post("/tags", {"group_id": "not a number"})

    # then
    assert response.status_code == 422
    schema = doc["paths"]["/api/v1/tags"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    check(response.json(), schema, doc)
    assert {e["loc"][-1] for e in response.json()["errors"]} == {"group_id", "name"}


@pytest.mark.parametrize(
    "body",
    [
        {"message": "no code"},
        {"code": 5, "message": "a number for a code"},
        {"code": "x", "message": "m", "field": 3},
        ["not", "an", "object"],
    ],
)
def test_the_schema_check_rejects_bodies_that_do_not_match(doc, body):
    # given
    schema = {"$ref": "#/components/schemas/ErrorOut"}

    # when / then
    with pytest.raises(AssertionError):
        check(body, schema, doc)
