"""The REST API of group codes and offline member imports: CRUD, multipart uploads, roles and corps."""

from __future__ import annotations

import pytest
from django.test import Client

from siyu.corps.services import create_api_key
from siyu.customers.models import Event
from siyu.groups.images import qr_png
from siyu.groups.services import GroupChatInfo, GroupMemberInfo, apply_group_chat
from tests.conftest import World, run_tasks

pytestmark = pytest.mark.django_db


def bearer(world: World, role: str, corp=None) -> dict[str, str]:
    token = create_api_key(corp=corp or world.corp, role=role, name=f"k-{role}").plaintext
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_group_code_crud_and_a_group_added_by_upload(world: World) -> None:
    auth = bearer(world, "operator")
    client = Client()
    info = GroupChatInfo(chat_id="wrApi", name="API群", owner_userid=world.wang.userid,
                         members=(GroupMemberInfo(userid=world.wang.userid, type=1),))  # fmt: skip
    group = apply_group_chat(corp=world.corp, info=info, source=Event.Source.WECOM).group
    other = apply_group_chat(
        corp=world.corp, info=GroupChatInfo(chat_id="wrApi2", name="二群"), source=Event.Source.WECOM
    ).group
    created = client.post(
        "/api/v1/group-codes", {"name": "接口活码"}, content_type="application/json", **auth
    )
    assert created.status_code == 201, created.content
    code_id = created.json()["id"]
    image = ("qr.png", qr_png("https://work.weixin.qq.com/gm/api", size=300), "image/png")
    from django.core.files.uploadedfile import SimpleUploadedFile

    added = client.post(
        f"/api/v1/group-codes/{code_id}/entries",
        {"group_id": group.pk, "member_limit": 100, "image": SimpleUploadedFile(*image)},
        **auth,
    )
    assert added.status_code == 201, added.content
    [entry] = added.json()["entries"]
    assert (entry["group_name"], entry["member_limit"], entry["serving"]) == ("API群", 100, True)
    bad = client.post(
        f"/api/v1/group-codes/{code_id}/entries",
        {"group_id": other.pk, "image": SimpleUploadedFile("x.png", b"nope")},
        **auth,
    )
    assert bad.status_code == 400 and bad.json()["field"] == "image"
    patched = client.patch(
        f"/api/v1/group-codes/{code_id}", {"status": "paused"}, content_type="application/json", **auth
    )
    assert patched.json()["status"] == "paused" and patched.json()["unavailable"] is False
    assert client.get("/api/v1/group-codes", **bearer(world, "staff")).status_code == 403
    assert (
        client.get(f"/api/v1/group-codes/{code_id}", **bearer(world, "admin", world.other_corp)).status_code
        == 404
    )
    assert client.delete(f"/api/v1/group-codes/{code_id}", **auth).json()["deleted"] is True


def test_an_import_is_uploaded_started_and_followed(world: World, django_capture_on_commit_callbacks) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    auth = bearer(world, "operator")
    content = "姓名,手机\n陈静,13800138000\n李四,123\n".encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(
            "/api/v1/offline/imports", {"file": SimpleUploadedFile("m.csv", content)}, **auth
        )
    assert response.status_code == 201, response.content
    run_tasks()
    status = Client().get(f"/api/v1/offline/imports/{response.json()['id']}", **auth).json()
    assert status["status"] == "done"
    assert (status["counts"]["created"], status["counts"]["rejected"]) == (1, 1)
    assert status["rejections"] == [
        {"row": 3, "reason": "bad_phone", "message": status["rejections"][0]["message"]}
    ]
    assert (
        Client().get(f"/api/v1/offline/imports/{response.json()['id']}", **bearer(world, "staff")).status_code
        == 403
    )
