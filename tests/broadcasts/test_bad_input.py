"""Bad input is refused with a clear, stable error before anything is stored or sent."""

from __future__ import annotations

import pytest

from siyu.broadcasts import services as svc
from siyu.broadcasts.models import Broadcast
from siyu.core.errors import ErrorCode, Invalid, PermissionDenied
from siyu.corps.services import set_corp_credentials
from siyu.wecom.models import Outbox
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def customers(world: World) -> list[int]:
    found = []
    for n in range(3):
        customer = factories.make_customer(world.corp, f"客户{n}")
        factories.follow(customer, world.wang)
        found.append(customer.pk)
    return found


def _create(world: World, customers: list[int], **values):
    fields = {
        "kind": Broadcast.Kind.CUSTOMERS,
        "name": "测试群发",
        "text": "你好",
        "audience": {"type": "customers", "customer_ids": customers},
        **values,
    }
    return svc.create_broadcast(actor=world.operator, **fields)


def _refused(world: World, customers: list[int], **values) -> Invalid:
    with pytest.raises(Invalid) as caught:
        _create(world, customers, **values)
    assert not Broadcast.objects.for_corp(world.corp).exists()
    assert not Outbox.objects.exists()
    return caught.value


def test_text_over_4000_bytes(world: World, customers: list[int]) -> None:
    # 1,334 Chinese characters are 4,002 bytes in UTF-8, though only 1,334 characters
    error = _refused(world, customers, text="好" * 1334)
    assert error.code == ErrorCode.TEXT_TOO_LONG and error.field == "text"
    assert _create(world, customers, text="好" * 1333).text == "好" * 1333


def test_attachments_over_the_limits(world: World, customers: list[int]) -> None:
    image = {"msgtype": "image", "image": {"pic_url": "https://img.example.com/a.png"}}
    assert _refused(world, customers, attachments=[image] * 10).code == ErrorCode.BAD_ATTACHMENT
    assert _refused(world, customers, attachments=[{"msgtype": "voice", "voice": {}}]).field == (
        "attachments.0.msgtype"
    )
    long_title = {"msgtype": "link", "link": {"title": "标" * 43, "url": "https://example.com"}}
    assert _refused(world, customers, attachments=[long_title]).field == "attachments.0.link.title"
    bad_url = {"msgtype": "link", "link": {"title": "活动", "url": "javascript:alert(1)"}}
    assert _refused(world, customers, attachments=[bad_url]).field == "attachments.0.link.url"
    no_media = {"msgtype": "video", "video": {}}
    assert _refused(world, customers, attachments=[no_media]).field == "attachments.0.video.media_id"
    # and nine mixed attachments are fine
    link = {"msgtype": "link", "link": {"title": "活动", "url": "https://example.com/a"}}
    created = _create(world, customers, attachments=[image] * 8 + [link], text="")
    assert len(created.attachments) == 9


def test_moments_take_images_or_one_video_or_one_link(world: World) -> None:
    image = {"msgtype": "image", "image": {"media_id": "MEDIA1"}}
    video = {"msgtype": "video", "video": {"media_id": "MEDIA2"}}
    values = {"kind": Broadcast.Kind.MOMENTS, "audience": {"type": "moments", "staff_ids": [world.wang.pk]}}
    assert _refused(world, [], attachments=[image, video], **values).code == ErrorCode.BAD_ATTACHMENT
    assert _refused(world, [], attachments=[video, video], **values).code == ErrorCode.BAD_ATTACHMENT
    assert _create(world, [], attachments=[image] * 9, **values).kind == Broadcast.Kind.MOMENTS


def test_empty_message_and_empty_audience(world: World, customers: list[int]) -> None:
    assert _refused(world, customers, text="  ").field == "text"
    assert _refused(world, []).code == ErrorCode.EMPTY_AUDIENCE
    lonely = factories.make_tag(world.corp, "无人")
    error = _refused(world, customers, audience={"type": "tags", "tag_ids": [lonely.pk]})
    assert error.code == ErrorCode.EMPTY_AUDIENCE
    # everyone excluded is empty too
    error = _refused(
        world,
        customers,
        audience={"type": "customers", "customer_ids": customers, "exclude_customer_ids": customers},
    )
    assert error.code == ErrorCode.EMPTY_AUDIENCE


def test_unknown_and_foreign_ids(world: World, customers: list[int]) -> None:
    stranger = factories.make_customer(world.other_corp, "外人")
    assert _refused(world, [*customers, stranger.pk]).code == ErrorCode.UNKNOWN_CUSTOMER
    assert (
        _refused(world, customers, audience={"type": "tags", "tag_ids": [999999]}).code
        == ErrorCode.UNKNOWN_TAG
    )
    assert (
        _refused(world, customers, audience={"type": "customers", "customer_ids": ["x"]}).field
        == "customer_ids"
    )
    assert _refused(world, customers, audience={"type": "everyone"}).field == "type"


def test_a_deleted_tag_is_refused_at_send(world: World, customers: list[int]) -> None:
    from siyu.customers.models import Customer, Event
    from siyu.tags.models import CustomerTag
    from siyu.tags.services import delete_tag

    tag = factories.make_tag(world.corp, "北京")
    for customer in Customer.objects.for_corp(world.corp):
        CustomerTag.objects.create(corp=world.corp, customer=customer, tag=tag)
    broadcast = _create(world, customers, audience={"type": "tags", "tag_ids": [tag.pk]})
    set_corp_credentials(corp=world.corp, secret="app-secret", token="", aes_key="")
    delete_tag(tag=tag, source=Event.Source.CONSOLE)
    with pytest.raises(Invalid) as caught:
        svc.send_broadcast(actor=world.operator, broadcast_id=broadcast.pk)
    assert caught.value.code == ErrorCode.UNKNOWN_TAG
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.DRAFT


def test_only_admins_and_operators_compose(world: World, customers: list[int]) -> None:
    for actor in (world.manager, world.staff_wang):
        with pytest.raises(PermissionDenied):
            svc.create_broadcast(
                actor=actor,
                kind=Broadcast.Kind.CUSTOMERS,
                name="x",
                text="x",
                audience={"type": "customers", "customer_ids": customers},
            )


def test_a_segment_that_cannot_be_evaluated_is_refused(world: World, customers: list[int]) -> None:
    # an unknown segment (or, before the segment engine is installed, any segment) stores nothing
    from siyu.core.errors import DomainError

    with pytest.raises(DomainError) as caught:
        _create(world, customers, audience={"type": "segment", "segment_id": 987654})
    assert caught.value.field == "segment_id" or caught.value.status == 404
    assert not Broadcast.objects.for_corp(world.corp).exists()


PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)
MP4 = bytes(4) + b"ftypisom" + bytes(100)


def test_files_over_wecom_limits_are_refused(world: World) -> None:
    from siyu.broadcasts.content import MEDIA_MAX_BYTES

    def store(kind: str, content: bytes, name: str = "x"):
        return svc.store_media(
            actor=world.operator, kind=kind, filename=name, content_type="", content=content
        )

    too_big = PNG + bytes(MEDIA_MAX_BYTES["image"] - len(PNG) + 1)
    for kind, content in (
        ("image", too_big),
        ("image", b"GIF89a" + bytes(10)),
        ("video", PNG),
        ("image", b""),
    ):
        with pytest.raises(Invalid) as caught:
            store(kind, content)
        assert caught.value.code == ErrorCode.BAD_ATTACHMENT
    with pytest.raises(Invalid):
        store("voice", PNG)
    assert store("image", PNG[:-1] + bytes(1), "海报.png").size == len(PNG)
    assert store("video", MP4).kind == "video"
    assert store("file", b"%PDF-1.4 ...", "价目表.pdf").filename == "价目表.pdf"
    with pytest.raises(PermissionDenied):
        svc.store_media(actor=world.staff_wang, kind="image", filename="x", content_type="", content=PNG)


def test_an_attachment_must_name_a_file_of_this_corp_and_kind(world: World, customers: list[int]) -> None:
    from siyu.broadcasts.models import BroadcastMedia

    image = svc.store_media(
        actor=world.operator, kind="image", filename="a.png", content_type="", content=PNG
    )
    foreign = BroadcastMedia.objects.create(
        corp=world.other_corp, kind="image", filename="b", size=1, content=PNG
    )
    for ref, kind in ((foreign.pk, "image"), (image.pk, "video"), (999999, "image")):
        error = _refused(world, customers, attachments=[{"msgtype": kind, kind: {"siyu_media": ref}}])
        assert error.code == ErrorCode.BAD_ATTACHMENT
    created = _create(world, customers, attachments=[{"msgtype": "image", "image": {"siyu_media": image.pk}}])
    assert created.attachments == [{"msgtype": "image", "image": {"siyu_media": image.pk}}]
