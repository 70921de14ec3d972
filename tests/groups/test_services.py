"""Customer groups: applying WeCom's state (joins, leaves, history), dismissal, and who sees which group."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.core.errors import NotFound
from siyu.customers.models import Event
from siyu.groups.models import GroupChat, GroupMember
from siyu.groups.selectors import customer_group_stays, get_group_chat, group_members, list_group_chats
from siyu.groups.services import (
    GroupChatInfo,
    GroupMemberInfo,
    apply_group_chat,
    dismiss_group_chat,
    dismiss_unseen_group_chats,
)
from tests import factories

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


def _info(world, members, **fields) -> GroupChatInfo:
    values = {"chat_id": "wrGroup0001", "name": "华东老客群", "owner_userid": world.wang.userid, **fields}
    return GroupChatInfo(members=tuple(members), **values)


def _staff_member(staff) -> GroupMemberInfo:
    return GroupMemberInfo(userid=staff.userid, type=GroupMember.Type.STAFF, join_time=T0, join_scene=1)


def _customer_member(customer, scene: int = 1, at: dt.datetime = T0) -> GroupMemberInfo:
    return GroupMemberInfo(
        userid=customer.external_userid, type=GroupMember.Type.EXTERNAL, join_time=at, join_scene=scene
    )


def test_applying_a_group_creates_it_with_members_and_join_events(world):
    # given a customer of the corp and an external user who is no one's customer
    customer = factories.make_customer(world.corp, "张三")
    stranger = GroupMemberInfo(userid="wmStranger", type=GroupMember.Type.EXTERNAL, join_time=T0)
    # when
    change = apply_group_chat(
        corp=world.corp,
        info=_info(world, [_staff_member(world.wang), _customer_member(customer), stranger]),
        source=Event.Source.WECOM,
    )
    # then
    group = change.group
    assert change.created and sorted(change.joined) == sorted(
        [world.wang.userid, customer.external_userid, "wmStranger"]
    )
    assert (group.owner, group.member_count, group.customer_count) == (world.wang, 3, 2)
    stays = {m.userid: m for m in group_members(group)}
    assert stays[customer.external_userid].customer == customer
    assert stays[world.wang.userid].staff == world.wang
    assert stays["wmStranger"].customer is None
    [joined] = Event.objects.for_corp(world.corp).filter(kind=Event.Kind.GROUP_JOINED)
    assert (joined.customer, joined.occurred_at, joined.payload["chat_id"]) == (customer, T0, "wrGroup0001")


def test_applying_the_same_state_twice_changes_nothing(world):
    customer = factories.make_customer(world.corp)
    info = _info(world, [_staff_member(world.wang), _customer_member(customer)])
    apply_group_chat(corp=world.corp, info=info, source=Event.Source.WECOM)
    events = Event.objects.for_corp(world.corp).count()
    change = apply_group_chat(corp=world.corp, info=info, source=Event.Source.WECOM)
    assert (change.created, change.joined, change.left, change.changed) == (False, [], [], [])
    assert Event.objects.for_corp(world.corp).count() == events
    assert GroupMember.objects.for_corp(world.corp).count() == 2


def test_leaving_and_joining_again_keeps_the_history(world):
    # given a customer in the group
    customer = factories.make_customer(world.corp)
    owner = _staff_member(world.wang)
    apply_group_chat(corp=world.corp, info=_info(world, [owner, _customer_member(customer)]), source="wecom")
    # when they are removed, then join again by QR code
    apply_group_chat(
        corp=world.corp,
        info=_info(world, [owner]),
        source="wecom",
        at=T0 + dt.timedelta(days=1),
        quit_scene=1,
    )
    rejoined = T0 + dt.timedelta(days=2)
    apply_group_chat(
        corp=world.corp, info=_info(world, [owner, _customer_member(customer, 3, rejoined)]), source="wecom"
    )
    # then there are two stays, the first closed with how it ended
    stays = list(customer_group_stays(customer))
    assert [(s.joined_at, s.left_at, s.quit_scene, s.join_scene) for s in stays] == [
        (rejoined, None, None, 3),
        (T0, T0 + dt.timedelta(days=1), 1, 1),
    ]
    kinds = list(
        Event.objects.for_corp(world.corp)
        .filter(customer=customer)
        .order_by("occurred_at")
        .values_list("kind", flat=True)
    )
    assert kinds == [Event.Kind.GROUP_JOINED, Event.Kind.GROUP_LEFT, Event.Kind.GROUP_JOINED]


def test_dismissing_ends_every_stay_once(world):
    customer = factories.make_customer(world.corp)
    apply_group_chat(
        corp=world.corp,
        info=_info(world, [_staff_member(world.wang), _customer_member(customer)]),
        source="wecom",
    )
    assert dismiss_group_chat(
        corp=world.corp, chat_id="wrGroup0001", source="wecom", at=T0 + dt.timedelta(hours=1)
    )
    assert not dismiss_group_chat(corp=world.corp, chat_id="wrGroup0001", source="wecom")
    group = GroupChat.objects.for_corp(world.corp).get()
    assert (group.status, group.member_count) == (GroupChat.Status.DISMISSED, 0)
    assert not group_members(group).exists()
    left = Event.objects.for_corp(world.corp).get(kind=Event.Kind.GROUP_LEFT)
    assert left.payload["dismissed"] is True


def test_dismissing_an_unknown_group_keeps_a_trace(world):
    assert dismiss_group_chat(corp=world.corp, chat_id="wrNeverSeen", source="wecom")
    assert (
        GroupChat.objects.for_corp(world.corp).get(chat_id="wrNeverSeen").status == GroupChat.Status.DISMISSED
    )


def test_groups_a_full_sync_did_not_see_are_dismissed(world):
    seen = apply_group_chat(
        corp=world.corp, info=_info(world, [], chat_id="wrSeen"), source="sync", sync_run_id=7
    )
    apply_group_chat(corp=world.corp, info=_info(world, [], chat_id="wrGone"), source="sync", sync_run_id=6)
    assert dismiss_unseen_group_chats(corp=world.corp, sync_run_id=7, source="sync") == 1
    statuses = dict(GroupChat.objects.for_corp(world.corp).values_list("chat_id", "status"))
    assert statuses == {"wrSeen": "active", "wrGone": "dismissed"}
    assert seen.group.last_sync_run == 7


def test_groups_are_per_corp(world):
    apply_group_chat(corp=world.corp, info=_info(world, []), source="wecom")
    apply_group_chat(corp=world.other_corp, info=_info(world, [], owner_userid=""), source="wecom")
    assert GroupChat.objects.for_corp(world.corp).count() == 1
    assert GroupChat.objects.for_corp(world.other_corp).count() == 1


def test_who_sees_which_group(world):
    # given one group of 王芳 (华东) and one of 刘强 (华南)
    east = apply_group_chat(
        corp=world.corp, info=_info(world, [_staff_member(world.wang)]), source="wecom"
    ).group
    south = apply_group_chat(
        corp=world.corp,
        info=_info(world, [_staff_member(world.liu)], chat_id="wrSouth", owner_userid=world.liu.userid),
        source="wecom",
    ).group
    other = apply_group_chat(
        corp=world.other_corp, info=_info(world, [], chat_id="wrOther"), source="wecom"
    ).group
    # then admins see both, the 华东 manager and 王芳 only 华东's, 刘强 only his
    assert set(list_group_chats(world.admin)) == {east, south}
    assert set(list_group_chats(world.operator)) == {east, south}
    assert set(list_group_chats(world.manager)) == {east}
    assert set(list_group_chats(world.staff_wang)) == {east}
    assert set(list_group_chats(world.staff_liu)) == {south}
    # and a group outside one's scope, or of another corp, does not exist for them
    with pytest.raises(NotFound):
        get_group_chat(world.staff_wang, south.pk)
    with pytest.raises(NotFound):
        get_group_chat(world.admin, other.pk)
    assert get_group_chat(world.manager, east.pk) == east


def test_dismissed_groups_are_listed_on_request(world):
    apply_group_chat(corp=world.corp, info=_info(world, []), source="wecom")
    dismiss_group_chat(corp=world.corp, chat_id="wrGroup0001", source="wecom")
    assert list(list_group_chats(world.admin)) == []
    assert len(list(list_group_chats(world.admin, status=None))) == 1
    assert len(list(list_group_chats(world.admin, status=None, search="老客"))) == 1
