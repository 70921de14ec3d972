"""Channel pages and API: operators configure, everyone else sees only channels listing people in their scope,
and nothing crosses corps."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from siyu.channels.models import Channel, ChannelAdd, MediaAsset, WelcomeVariant
from siyu.channels.services import ChannelInput, MemberInput, create_channel
from siyu.channels.views import parse_schedules
from siyu.core.errors import Invalid
from siyu.corps.models import Role
from siyu.corps.services import create_api_key
from siyu.customers.models import Event
from siyu.customers.services import add_follow_relation
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db


def login(username: str) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def channel_of(world: World, name: str, *members) -> Channel:
    return create_channel(
        actor=world.operator,
        data=ChannelInput(name=name, members=[MemberInput(staff_id=s.pk) for s in members]),
    )


def form(world: World, **extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "门店海报",
        "distribution": "round_robin",
        "skip_verify": "1",
        "welcome_mode": "own",
        f"member_{world.wang.pk}": "primary",
        f"weight_{world.wang.pk}": "1",
        f"cap_{world.wang.pk}": "30",
        f"schedule_{world.wang.pk}": "1-5 09:00-18:00",
        f"member_{world.liu.pk}": "backup",
        "variant_count": "1",
        "v0_text": "您好{customer_name}，我是{staff_name}",
        "v0_days": ["0", "1", "2", "3", "4", "5", "6"],
        "v0_links": "新品上市 | https://example.com/new | 看看吧",
    }
    data.update(extra)
    return data


def test_operator_creates_a_channel_in_the_console(world: World):
    client = login("operator1")
    response = client.post("/channels/new/", form(world))
    assert response.status_code == 302
    channel = Channel.objects.for_corp(world.corp).get(name="门店海报")
    members = {m.staff_id: m for m in channel.members.all()}
    assert members[world.wang.pk].daily_cap == 30 and not members[world.wang.pk].is_backup
    assert members[world.liu.pk].is_backup
    assert members[world.wang.pk].schedules.get().weekdays == 0b11111
    [variant] = WelcomeVariant.objects.for_corp(world.corp).filter(message__channel=channel)
    assert variant.attachments == [
        {"msgtype": "link", "title": "新品上市", "url": "https://example.com/new", "desc": "看看吧"}
    ]
    # the detail page says the QR code is on its way (this corp is not connected to WeCom)
    page = client.get(f"/channels/{channel.pk}/")
    assert page.status_code == 200
    assert 'data-testid="qr-pending"' in page.content.decode()


def test_a_refused_form_keeps_its_values_and_writes_nothing(world: World):
    client = login("operator1")
    response = client.post("/channels/new/", form(world, v0_text="您好{nickname}"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "{nickname}" in html and "门店海报" in html
    assert not Channel.objects.for_corp(world.corp).exists()


def _png() -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 32), "teal").save(buffer, format="PNG")
    return SimpleUploadedFile("cover.png", buffer.getvalue(), content_type="image/png")


def test_a_mini_program_card_is_made_in_the_editor_and_kept_when_edited(world: World):
    client = login("operator1")
    # when the operator adds a mini-program card with its cover
    cards = {"v0_miniprograms": "会员中心 | wx1234567890abcdef | pages/member/index", "v0_mp_cover": _png()}
    assert client.post("/channels/new/", form(world, **cards)).status_code == 302
    channel = Channel.objects.for_corp(world.corp).get(name="门店海报")
    [variant] = WelcomeVariant.objects.for_corp(world.corp).filter(message__channel=channel)
    card = variant.attachments[1]
    assert {k: card[k] for k in ("msgtype", "title", "appid", "page")} == {
        "msgtype": "miniprogram",
        "title": "会员中心",
        "appid": "wx1234567890abcdef",
        "page": "pages/member/index",
    }
    assert MediaAsset.objects.for_corp(world.corp).get(pk=card["asset_id"]).kind == MediaAsset.Kind.IMAGE
    # then the edit form shows it, and saving it unchanged keeps the card and its cover
    edit = client.get(f"/channels/{channel.pk}/edit/").content.decode()
    assert "会员中心 | wx1234567890abcdef | pages/member/index" in edit
    kept = {"v0_miniprograms": "会员中心 | wx1234567890abcdef | pages/member/index"}
    kept["v0_mp_cover_kept"] = str(card["asset_id"])
    assert client.post(f"/channels/{channel.pk}/edit/", form(world, **kept)).status_code == 302
    variant = WelcomeVariant.objects.for_corp(world.corp).get(message__channel=channel)
    assert variant.attachments[1]["asset_id"] == card["asset_id"]


def test_a_mini_program_card_without_a_cover_is_refused_with_its_reason(world: World):
    client = login("operator1")
    response = client.post(
        "/channels/new/", form(world, v0_miniprograms="会员中心 | wx1234567890abcdef | pages/member/index")
    )
    assert response.status_code == 400
    assert "会员中心 | wx1234567890abcdef" in response.content.decode()
    assert not Channel.objects.for_corp(world.corp).exists()


def test_staff_see_their_own_channels_and_cannot_configure(world: World):
    mine = channel_of(world, "王芳的码", world.wang)
    theirs = channel_of(world, "刘强的码", world.liu)
    client = login("wang")
    listing = client.get("/channels/").content.decode()
    assert "王芳的码" in listing and "刘强的码" not in listing
    assert client.get(f"/channels/{mine.pk}/").status_code == 200
    assert client.get(f"/channels/{theirs.pk}/").status_code == 404
    assert client.get("/channels/new/").status_code == 403
    assert client.post(f"/channels/{mine.pk}/pause/").status_code == 403


def test_adds_of_others_stay_out_of_a_staff_members_sight(world: World):
    # given a channel listing both, and one add each
    shared = channel_of(world, "共用码", world.wang, world.liu)
    for staff in (world.wang, world.liu):
        customer = factories.make_customer(world.corp, f"客户{staff.name}")
        relation = add_follow_relation(
            customer=customer, staff=staff, source=Event.Source.WECOM, state=shared.state
        )
        ChannelAdd.objects.create(
            corp=world.corp,
            relation=relation,
            customer=customer,
            staff=staff,
            channel=shared,
            state=shared.state,
            added_at=relation.added_at,
        )
    page = login("wang").get(f"/channels/{shared.pk}/").content.decode()
    assert "客户王芳" in page and "客户刘强" not in page
    everyone = login("operator1").get(f"/channels/{shared.pk}/").content.decode()
    assert "客户王芳" in everyone and "客户刘强" in everyone


def test_another_corps_channel_does_not_exist(world: World):
    other_staff = factories.make_staff(world.other_corp, "别家员工")
    from siyu.corps.access import Actor

    other = create_channel(
        actor=Actor(corp=world.other_corp, role=Role.OPERATOR),
        data=ChannelInput(name="别家", members=[MemberInput(staff_id=other_staff.pk)]),
    )
    client = login("admin1")
    assert client.get(f"/channels/{other.pk}/").status_code == 404
    assert client.get(f"/channels/{other.pk}/qr.png").status_code == 404
    assert "别家" not in client.get("/channels/").content.decode()


def test_api_creates_and_reads_channels_within_the_corp(world: World):
    operator_key = create_api_key(corp=world.corp, name="ops", role=Role.OPERATOR).plaintext
    other_key = create_api_key(corp=world.other_corp, name="other", role=Role.OPERATOR).plaintext
    client = Client(headers={"Authorization": f"Bearer {operator_key}"})
    body = {
        "name": "官网客服",
        "members": [
            {"staff_id": world.wang.pk, "daily_cap": 10},
            {"staff_id": world.liu.pk, "is_backup": True},
        ],
        "distribution": "weighted",
    }
    created = client.post("/api/v1/channels", json.dumps(body), content_type="application/json")
    assert created.status_code == 201, created.content
    channel = created.json()
    assert channel["state"].startswith("c") and len(channel["state"]) <= 30
    assert channel["members"][0]["daily_cap"] == 10
    listed = client.get("/api/v1/channels").json()
    assert [c["name"] for c in listed] == ["官网客服"]
    # another corp's key finds nothing
    stranger = Client(headers={"Authorization": f"Bearer {other_key}"})
    assert stranger.get(f"/api/v1/channels/{channel['id']}").status_code == 404
    # and a staff key cannot create
    staff_key = create_api_key(corp=world.corp, name="wang", role=Role.STAFF, staff=world.wang).plaintext
    staff = Client(headers={"Authorization": f"Bearer {staff_key}"})
    refused = staff.post("/api/v1/channels", json.dumps(body), content_type="application/json")
    assert refused.status_code == 403


def test_api_refuses_bad_input_clearly(world: World):
    operator_key = create_api_key(corp=world.corp, name="ops", role=Role.OPERATOR).plaintext
    client = Client(headers={"Authorization": f"Bearer {operator_key}"})
    body = {"name": "空码", "members": []}
    refused = client.post("/api/v1/channels", json.dumps(body), content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["field"] == "members"


def test_schedule_lines_parse_and_refuse():
    [schedule] = parse_schedules("1-5 09:00-18:00")
    assert schedule.weekdays == 0b11111 and schedule.start.hour == 9 and schedule.end.hour == 18
    [weekend] = parse_schedules("6,7 22:00-02:00")
    assert weekend.weekdays == 0b1100000
    with pytest.raises(Invalid):
        parse_schedules("weekdays 9 to 6")
