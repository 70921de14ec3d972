"""Console pages of group codes and group welcome messages, and the public landing page (no login)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from siyu.core.clock import frozen_at
from siyu.corps.services import set_corp_credentials
from siyu.customers.models import Event
from siyu.groups.images import qr_png
from siyu.groups.models import GroupChat, GroupCode, GroupCodeEntry, GroupWelcomeTemplate
from siyu.groups.services import GroupChatInfo, GroupMemberInfo, apply_group_chat
from siyu.wecom.models import Outbox
from tests.conftest import World

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


def login(client: Client, username: str) -> Client:
    assert client.login(username=username, password=World.password)
    return client


def group(world: World, chat_id: str, name: str) -> GroupChat:
    info = GroupChatInfo(
        chat_id=chat_id,
        name=name,
        owner_userid=world.wang.userid,
        members=(GroupMemberInfo(userid=world.wang.userid, type=1),),
    )
    return apply_group_chat(corp=world.corp, info=info, source=Event.Source.WECOM).group


def upload(text: str = "https://work.weixin.qq.com/gm/x") -> SimpleUploadedFile:
    return SimpleUploadedFile("qr.png", qr_png(text, size=300), content_type="image/png")


def test_an_operator_builds_a_code_and_a_visitor_without_login_is_served_its_group(world: World) -> None:
    client = login(Client(), "operator1")
    first = group(world, "wrA", "一号群")
    # when: create a code and add a group with its QR image
    response = client.post("/groups/codes/new/", {"name": "门店活码", "title": "欢迎入群"})
    code = GroupCode.objects.get(corp=world.corp, name="门店活码")
    assert response.status_code == 302 and response["Location"] == f"/groups/codes/{code.pk}/"
    response = client.post(
        f"/groups/codes/{code.pk}/entries/new/",
        {"group_id": first.pk, "member_limit": "50", "image": upload()},
    )
    assert response.status_code == 302
    entry = GroupCodeEntry.objects.get(code=code)
    assert entry.member_limit == 50
    page = client.get(f"/groups/codes/{code.pk}/")
    assert page.status_code == 200 and "一号群" in page.content.decode()
    assert client.get(f"/groups/codes/{code.pk}/qr-m.png")["Content-Type"] == "image/png"
    # then: the public page, without any login, shows the group's QR and counts the scan
    visitor = Client()
    landing = visitor.get(f"/g/{code.token}/")
    assert landing.status_code == 200
    html = landing.content.decode()
    assert "欢迎入群" in html and f'data-entry="{entry.pk}"' in html
    image = visitor.get(f"/g/{code.token}/qr/{entry.pk}-{entry.image_sha256[:16]}.png")
    assert image.status_code == 200 and image.content == bytes(entry.image)
    assert "immutable" in image["Cache-Control"]
    code.refresh_from_db()
    assert code.scans == 1
    assert visitor.get("/g/nosuchtoken/").status_code == 404
    assert visitor.get(f"/g/{code.token}/qr/{entry.pk}-00000000.png").status_code == 404


def test_an_unavailable_code_says_so_and_alerts_the_operator(world: World) -> None:
    client = login(Client(), "admin1")
    with frozen_at(T0):
        client.post("/groups/codes/new/", {"name": "过期活码"})
        code = GroupCode.objects.get(corp=world.corp)
        client.post(
            f"/groups/codes/{code.pk}/entries/new/",
            {
                "group_id": group(world, "wrB", "二号群").pk,
                "image": upload(),
                "expires_at": "2026-03-03T10:00",
            },
        )
        entry = GroupCodeEntry.objects.get(code=code)
        # the form's time is the corp's (Asia/Shanghai): 10:00 there is 02:00 UTC
        assert entry.expires_at == dt.datetime(2026, 3, 3, 2, 0, tzinfo=dt.UTC)
        listing = client.get("/groups/codes/").content.decode()
        assert 'data-testid="expiry-warnings"' in listing
    with frozen_at(T0 + dt.timedelta(days=2)):
        landing = Client().get(f"/g/{code.token}/")
        assert 'data-testid="landing-unavailable"' in landing.content.decode()
        listing = client.get("/groups/codes/").content.decode()
        assert 'data-testid="alerts"' in listing and 'data-testid="code-unavailable"' in listing
        assert 'data-testid="code-alert"' in client.get(f"/groups/codes/{code.pk}/").content.decode()


def test_bad_uploads_are_shown_next_to_the_form(world: World) -> None:
    client = login(Client(), "operator1")
    client.post("/groups/codes/new/", {"name": "活码"})
    code = GroupCode.objects.get(corp=world.corp)
    response = client.post(
        f"/groups/codes/{code.pk}/entries/new/",
        {"group_id": group(world, "wrC", "三号群").pk, "image": SimpleUploadedFile("x.png", b"nope")},
    )
    assert response.status_code == 400
    assert "不是" in response.content.decode() or "not an image" in response.content.decode()
    assert not GroupCodeEntry.objects.exists()


def test_staff_and_managers_cannot_reach_the_pages_nor_other_corps_codes(world: World) -> None:
    code = GroupCode.objects.create(corp=world.other_corp, name="别家的")
    for username in ("wang", "manager1"):
        client = login(Client(), username)
        assert client.get("/groups/codes/").status_code == 403
        assert client.get("/groups/welcome/").status_code == 403
    admin = login(Client(), "admin1")
    assert admin.get(f"/groups/codes/{code.pk}/").status_code == 404
    assert Client().get("/groups/codes/").status_code == 302  # to the login page


def test_group_welcome_messages_are_created_edited_and_deleted_through_the_outbox(world: World) -> None:
    set_corp_credentials(corp=world.corp, secret="s3cret", token="", aes_key="")
    client = login(Client(), "operator1")
    # a bad placeholder is refused, nothing written
    bad = client.post("/groups/welcome/new/", {"name": "欢迎", "text": "你好 %nickname%"})
    assert bad.status_code == 400 and not GroupWelcomeTemplate.objects.exists()
    # when
    response = client.post(
        "/groups/welcome/new/",
        {
            "name": "欢迎",
            "text": "欢迎 %NICKNAME% 入群",
            "attachment_type": "link",
            "attachment_title": "会员权益",
            "attachment_url": "https://example.com/vip",
            "notify": "1",
        },
    )
    # then
    assert response.status_code == 302
    template = GroupWelcomeTemplate.objects.get(corp=world.corp)
    [add] = Outbox.objects.filter(corp=world.corp)
    assert add.api == "externalcontact/group_welcome_template/add"
    assert add.payload == {
        "text": {"content": "欢迎 %NICKNAME% 入群"},
        "link": {"title": "会员权益", "url": "https://example.com/vip"},
        "notify": 1,
    }
    page = client.get("/groups/welcome/").content.decode()
    assert 'data-state="syncing"' in page
    assert client.get(f"/groups/welcome/{template.pk}/").status_code == 200
    response = client.post(f"/groups/welcome/{template.pk}/", {"name": "欢迎2", "text": "新文案"})
    assert response.status_code == 302
    template.refresh_from_db()
    assert (template.name, template.text, template.attachment_type, template.version) == (
        "欢迎2",
        "新文案",
        "",
        2,
    )
    assert client.post(f"/groups/welcome/{template.pk}/delete/").status_code == 302
    assert client.get(f"/groups/welcome/{template.pk}/").status_code == 404
