"""Mass messages over the API: create, preview, send, status, results, remind, cancel; errors and scope."""

from __future__ import annotations

from siyu.broadcasts.execution import execute_broadcast
from siyu.corps.services import set_corp_credentials
from tests.api.conftest import Book, Keys, error_of


def _body(book: Book, **values):
    return {
        "name": "API 群发",
        "text": "你好",
        "audience": {
            "type": "customers",
            "customer_ids": [book.wang_only.pk, book.liu_only.pk, book.shared.pk],
        },
        **values,
    }


def test_create_preview_send_and_follow(keys: Keys, book: Book, world) -> None:
    # a corp not connected to WeCom cannot send
    draft = keys.operator.post("/broadcasts", _body(book)).json()["id"]
    assert error_of(keys.operator.post(f"/broadcasts/{draft}/send")) == (400, "invalid")
    set_corp_credentials(corp=world.corp, secret="app-secret", token="", aes_key="")
    # when created twice with the same request key
    first = keys.operator.post("/broadcasts", _body(book, request_key="req-1"))
    second = keys.operator.post("/broadcasts", _body(book, request_key="req-1"))
    assert first.status_code == 201 and first.json()["id"] == second.json()["id"]
    broadcast_id = first.json()["id"]
    # then the preview splits it by staff member
    preview = keys.operator.get(f"/broadcasts/{broadcast_id}/preview").json()
    assert preview["recipients"] == 3 and sum(s["count"] for s in preview["staff"]) == 3
    assert preview["skipped"]["not_friend"] == 0
    # when sent and planned by the worker
    sent = keys.operator.post(f"/broadcasts/{broadcast_id}/send")
    assert sent.json()["status"] == "scheduled"
    execute_broadcast(broadcast_id=broadcast_id)
    status = keys.operator.get(f"/broadcasts/{broadcast_id}").json()
    assert status["status"] == "sending" and status["progress"]["planned"] == 3
    assert {p["userid"] for p in status["parts"]} <= {world.wang.userid, world.liu.userid}
    # staff see only their own part; the other corp sees nothing
    mine = keys.staff_wang.get(f"/broadcasts/{broadcast_id}").json()
    assert {p["userid"] for p in mine["parts"]} == {world.wang.userid}
    assert error_of(keys.other_corp.get(f"/broadcasts/{broadcast_id}")) == (404, "not_found")
    assert keys.operator.get(f"/broadcasts/{broadcast_id}/results").json() == {
        "items": [],
        "next_after": None,
    }
    # a part not yet created in WeCom cannot be reminded
    part_id = status["parts"][0]["id"]
    assert error_of(keys.operator.post(f"/broadcasts/{broadcast_id}/remind", {"part_id": part_id})) == (
        409,
        "conflict",
    )
    # cancel
    assert keys.operator.post(f"/broadcasts/{broadcast_id}/cancel").status_code == 200


def test_errors_have_stable_codes(keys: Keys, book: Book) -> None:
    assert error_of(keys.operator.post("/broadcasts", _body(book, text="好" * 1400))) == (
        400,
        "text_too_long",
    )
    attachments = [{"msgtype": "image", "image": {"pic_url": "https://x.example/a.png"}}] * 10
    assert error_of(keys.operator.post("/broadcasts", _body(book, attachments=attachments))) == (
        400,
        "bad_attachment",
    )
    assert error_of(
        keys.operator.post(
            "/broadcasts", _body(book, audience={"type": "tags", "tag_ids": [book.foreign_tag.pk]})
        )
    ) == (400, "unknown_tag")
    assert error_of(
        keys.operator.post(
            "/broadcasts", _body(book, audience={"type": "customers", "customer_ids": [book.foreign.pk]})
        )
    ) == (400, "unknown_customer")
    assert error_of(keys.staff_wang.post("/broadcasts", _body(book))) == (403, "permission_denied")
    assert keys.operator.post("/broadcasts", _body(book, audience={"type": "nobody"})).status_code == 422
