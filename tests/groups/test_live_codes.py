"""Group live codes: the group a scan is served (rollover when full and when expired), expiry warnings with a
moving clock, image checks, joins attributed to the code, and who may change codes."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import translation
from PIL import Image

from siyu.core.clock import advance, frozen_at
from siyu.core.errors import Invalid, NotFound, PermissionDenied
from siyu.customers.models import Event
from siyu.groups.images import check_group_qr, qr_png
from siyu.groups.live_codes import (
    EntryState,
    add_code_entry,
    code_view,
    create_group_code,
    get_group_code,
    list_group_codes,
    move_code_entry,
    serve_scan,
    update_code_entry,
    update_group_code,
)
from siyu.groups.models import GroupChat, GroupCode, GroupCodeJoin, GroupMember
from siyu.groups.services import GroupChatInfo, GroupMemberInfo, apply_group_chat
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    """Refusals are read in English here (the console's default language is Chinese)."""
    with translation.override("en"):
        yield


T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


def qr_image(text: str = "https://work.weixin.qq.com/gm/abc123") -> bytes:
    return qr_png(text, size=300)


def members(world, count: int, *, prefix: str = "wmGuest", scene: int = 1, at: dt.datetime = T0):
    owner = GroupMemberInfo(userid=world.wang.userid, type=GroupMember.Type.STAFF, join_time=at, join_scene=1)
    guests = [
        GroupMemberInfo(
            userid=f"{prefix}{i:04d}", type=GroupMember.Type.EXTERNAL, join_time=at, join_scene=scene
        )
        for i in range(count - 1)
    ]
    return [owner, *guests]


def make_group(world, chat_id: str, count: int = 1, **fields) -> GroupChat:
    info = GroupChatInfo(
        chat_id=chat_id, name=fields.pop("name", chat_id), owner_userid=world.wang.userid,
        members=tuple(members(world, count)),
    )  # fmt: skip
    return apply_group_chat(corp=world.corp, info=info, source=Event.Source.WECOM).group


@pytest.fixture
def pool(world):
    """A code with two groups of limit 3: the first with 2 members, the second empty but the owner."""
    with frozen_at(T0):
        first = make_group(world, "wrFirst", 2)
        second = make_group(world, "wrSecond", 1)
        code = create_group_code(actor=world.operator, name="门店群活码", title="加入会员群")
        a = add_code_entry(
            actor=world.operator, code=code, group_id=first.pk, image=qr_image("A"), member_limit=3
        )
        b = add_code_entry(
            actor=world.operator, code=code, group_id=second.pk, image=qr_image("B"), member_limit=3
        )
    return code, first, second, a, b


def test_a_scan_is_served_the_first_group_until_it_is_full_then_the_next(world, pool):
    code, _first, _second, a, b = pool
    with frozen_at(T0 + dt.timedelta(hours=1)):
        # given / when: the first group has room
        served = serve_scan(code)
        # then
        assert served == a
        # when: one more member joins the first group (WeCom's change_external_chat, mirrored)
        apply_group_chat(
            corp=world.corp,
            info=GroupChatInfo(chat_id="wrFirst", name="wrFirst", owner_userid=world.wang.userid,
                               members=tuple(members(world, 3))),
            source=Event.Source.WECOM,
        )  # fmt: skip
        # then: it is full (3 of 3) and the second is served
        assert serve_scan(code) == b
    code.refresh_from_db()
    a.refresh_from_db()
    b.refresh_from_db()
    assert (code.scans, a.scans, b.scans, code.missed_scans) == (2, 1, 1, 0)


def test_rollover_when_the_qr_expires_and_an_alert_when_nothing_is_left(world, pool):
    code, _first, _second, a, b = pool
    with frozen_at(T0):
        # given: the second group's QR expires a day later than the first's default 7 days
        update_code_entry(actor=world.operator, entry=b, expires_at=T0 + dt.timedelta(days=7))
        update_code_entry(actor=world.operator, entry=a, expires_at=T0 + dt.timedelta(days=6))
        # when / then: day 5 serves the first group
        advance(dt.timedelta(days=5))
        assert serve_scan(code) == a
        # 6 days and a second: the first QR has expired, the second is served
        advance(dt.timedelta(days=1, seconds=1))
        assert serve_scan(code) == b
        # past 7 days nothing can be served: a miss, counted, and the code is exhausted
        advance(dt.timedelta(days=1))
        assert serve_scan(code) is None
        view = code_view(GroupCode.objects.get(pk=code.pk))
        assert view.unavailable
        assert [e.state for e in view.entries] == [EntryState.EXPIRED, EntryState.EXPIRED]
    code.refresh_from_db()
    assert code.missed_scans == 1
    assert code.exhausted_at == T0 + dt.timedelta(days=7, seconds=1)


def test_expiry_warnings_follow_the_clock(world, pool):
    code, _first, _second, a, _b = pool
    with frozen_at(T0):
        # given: both QR codes expire 7 days after upload
        assert [e.state for e in code_view(code).entries] == [EntryState.OK, EntryState.OK]
        # when: 6 days later less than 24 hours are left
        advance(dt.timedelta(days=6, seconds=1))
        view = code_view(code)
        # then
        assert [e.state for e in view.entries] == [EntryState.EXPIRING, EntryState.EXPIRING]
        assert len(view.expiring) == 2 and view.serving == a
        # when: a fresh QR replaces the first one
        update_code_entry(actor=world.operator, entry=a, image=qr_image("A2"))
        assert [e.state for e in code_view(code).entries] == [EntryState.OK, EntryState.EXPIRING]


def test_a_dismissed_or_disabled_group_is_skipped_and_order_can_change(world, pool):
    code, _first, _second, a, b = pool
    with frozen_at(T0 + dt.timedelta(hours=1)):
        update_code_entry(actor=world.operator, entry=a, enabled=False)
        assert serve_scan(code) == b
        update_code_entry(actor=world.operator, entry=a, enabled=True)
        move_code_entry(actor=world.operator, entry=b, direction="up")
        assert serve_scan(code) == b
        GroupChat.objects.filter(pk=b.group_id).update(status=GroupChat.Status.DISMISSED)
        assert serve_scan(code) == a
        update_group_code(actor=world.operator, code=code, status=GroupCode.Status.PAUSED)
        assert serve_scan(code) is None
    code.refresh_from_db()
    assert code.missed_scans == 0  # a paused code is not an alert


def test_joins_by_the_group_qr_are_attributed_to_the_code(world, pool):
    code, first, _second, a, _b = pool
    customer = factories.make_customer(world.corp, "扫码客", external_userid="wmScanner01")
    invited = factories.make_customer(world.corp, "被邀请", external_userid="wmInvited01")
    later = T0 + dt.timedelta(hours=2)
    current = list(members(world, 2))
    info = GroupChatInfo(
        chat_id="wrFirst", name="wrFirst", owner_userid=world.wang.userid,
        members=(
            *current,
            GroupMemberInfo(userid=customer.external_userid, join_time=later,
                            join_scene=GroupMember.JoinScene.QR_CODE),
            GroupMemberInfo(userid=invited.external_userid, join_time=later,
                            join_scene=GroupMember.JoinScene.INVITED),
        ),
    )  # fmt: skip
    # when
    with frozen_at(later):
        apply_group_chat(corp=world.corp, info=info, source=Event.Source.WECOM)
    # then: the QR join is the code's, the invitation is not; both are on the timeline
    [join] = GroupCodeJoin.objects.for_corp(world.corp)
    assert (join.code, join.entry, join.stay.customer) == (code, a, customer)
    scanned = Event.objects.get(customer=customer, kind=Event.Kind.GROUP_JOINED)
    assert scanned.payload["group_code_id"] == code.pk
    assert "group_code_id" not in Event.objects.get(customer=invited, kind=Event.Kind.GROUP_JOINED).payload
    assert code_view(code).joins == 1
    # and the same state again records nothing more
    with frozen_at(later):
        apply_group_chat(corp=world.corp, info=info, source=Event.Source.WECOM)
    assert GroupCodeJoin.objects.for_corp(world.corp).count() == 1
    # a member who leaves ends their stay as before
    with frozen_at(later + dt.timedelta(hours=1)):
        apply_group_chat(
            corp=world.corp,
            info=GroupChatInfo(chat_id="wrFirst", name="wrFirst", owner_userid=world.wang.userid,
                               members=tuple(current)),
            source=Event.Source.WECOM,
        )  # fmt: skip
    assert Event.objects.filter(customer=customer, kind=Event.Kind.GROUP_LEFT).count() == 1
    first.refresh_from_db()
    assert first.member_count == 2


def test_joins_recorded_before_the_group_was_in_the_code_are_not_the_codes(world):
    with frozen_at(T0):
        info = GroupChatInfo(
            chat_id="wrOld", name="老群", owner_userid=world.wang.userid,
            members=tuple(members(world, 3, scene=GroupMember.JoinScene.QR_CODE)),
        )  # fmt: skip
        group = apply_group_chat(corp=world.corp, info=info, source=Event.Source.WECOM).group
    # a sync that sees the old members only after the group joined a code
    GroupMember.objects.for_corp(world.corp).filter(type=GroupMember.Type.EXTERNAL).delete()
    with frozen_at(T0 + dt.timedelta(days=1)):
        code = create_group_code(actor=world.operator, name="老群活码")
        add_code_entry(actor=world.operator, code=code, group_id=group.pk, image=qr_image())
        apply_group_chat(corp=world.corp, info=info, source=Event.Source.WECOM)
    assert not GroupCodeJoin.objects.for_corp(world.corp).exists()


def test_uploads_are_checked(world, pool):
    code, *_rest = pool
    group = make_group(world, "wrThird")
    photo = io.BytesIO()
    Image.new("RGB", (400, 400), "white").save(photo, format="PNG")
    tiny = io.BytesIO()
    Image.new("RGB", (40, 40), "white").save(tiny, format="PNG")
    gif = io.BytesIO()
    Image.open(io.BytesIO(qr_image())).save(gif, format="GIF")
    cases = {
        b"": "choose an image file",
        b"not an image at all": "not an image",
        photo.getvalue(): "no QR code",
        tiny.getvalue(): "between",
        gif.getvalue(): "PNG, JPEG or WebP",
        b"\x89PNG" + b"\0" * (6 * 1024 * 1024): "larger than",
    }
    for data, message in cases.items():
        with pytest.raises(Invalid) as refused:
            add_code_entry(actor=world.operator, code=code, group_id=group.pk, image=data)
        assert message in refused.value.message
    # a good image is re-encoded as PNG and its QR read
    checked = check_group_qr(qr_image("https://work.weixin.qq.com/gm/xyz"))
    assert checked.png.startswith(b"\x89PNG") and checked.qr_content == "https://work.weixin.qq.com/gm/xyz"


def test_limits_and_expiry_are_checked(world, pool):
    code, first, *_rest = pool
    group = make_group(world, "wrFourth")
    with frozen_at(T0):
        for kwargs, message in (
            ({"member_limit": 1}, "between 2"),
            ({"expires_at": T0 - dt.timedelta(minutes=1)}, "future"),
            ({"expires_at": T0 + dt.timedelta(days=8)}, "7 days"),
        ):
            with pytest.raises(Invalid) as refused:
                add_code_entry(actor=world.operator, code=code, group_id=group.pk, image=qr_image(), **kwargs)
            assert message in refused.value.message
        with pytest.raises(Invalid, match="already in the group code"):
            add_code_entry(actor=world.operator, code=code, group_id=first.pk, image=qr_image())
        with pytest.raises(Invalid, match="already exists"):
            create_group_code(actor=world.operator, name="门店群活码")


def test_only_admins_and_operators_manage_codes_and_corps_do_not_mix(world, pool):
    code, *_rest = pool
    for actor in (world.manager, world.staff_wang):
        with pytest.raises(PermissionDenied):
            list_group_codes(actor)
        with pytest.raises(PermissionDenied):
            create_group_code(actor=actor, name="x")
    other = factories.make_corp("别家")
    from siyu.corps.access import Actor

    outsider = Actor(corp=other, role="admin")
    with pytest.raises(NotFound):
        get_group_code(outsider, code.pk)
    assert list_group_codes(outsider) == []
    assert [v.code for v in list_group_codes(world.admin)] == [code]
