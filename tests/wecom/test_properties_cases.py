"""The orderings the property test found wrong, each pinned down: callbacks delivered in a chosen order."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from siyu.customers.models import Event, FollowRelation
from siyu.groups.models import GroupChat, GroupMember
from siyu.wecom.mirror import from_timestamp
from siyu.wecom.models import InboxEvent
from tests.wecom.inbound_support import simulated_wecom
from tests.wecom.test_properties import assert_no_doubled_events

pytestmark = pytest.mark.django_db


def deliver_in(env: Any, order: list[int]) -> None:
    """Post the callbacks made since the last delivery in ``order`` (indexes); the inbox worked after each."""
    posts = env.receiver.wait_for(env.forwarded + len(order))[env.forwarded :]
    assert len(posts) == len(order)
    for i in order:
        post = posts[i]
        path = f"/wecom/callback/{env.corp.corpid}/?{urlencode(post.query)}"
        assert env.client.post(path, data=post.body, content_type="text/xml").status_code == 200
        env.work()
    env.forwarded += len(posts)
    statuses = set(InboxEvent.objects.for_corp(env.corp).values_list("status", flat=True))
    assert statuses <= {InboxEvent.Status.DONE, InboxEvent.Status.IGNORED}


def relations(env: Any, external_userid: str, userid: str) -> list[FollowRelation]:
    return list(
        FollowRelation.objects.for_corp(env.corp)
        .filter(customer__external_userid=external_userid, staff__userid=userid)
        .order_by("id")
    )


def test_a_re_add_worked_before_its_deletion_keeps_the_new_relation(settings):
    # one sender: the simulator's callbacks arrive in the order they were made
    with simulated_wecom(settings, callback_workers=1) as env:
        userid = env.sim.state.follow_users()[0]
        added = env.act("add_customer", userid=userid)
        customer = added["external_userid"]
        # given the customer is deleted, then added again a second later
        env.sim.clock.freeze()
        env.sim.clock.advance(1)
        env.sim.actions.staff_deletes_customer(userid=userid, external_userid=customer)
        env.sim.clock.advance(1)
        env.sim.actions.add_customer(userid=userid, external_userid=customer)
        # when the add is worked before the deletion
        deliver_in(env, [1, 0])
        # then the old relation ended and the new one, with WeCom's createtime, is active
        old, new = relations(env, customer, userid)
        follow = env.sim.state.customers[customer].follows[userid]
        assert old.status != FollowRelation.Status.ACTIVE
        assert (new.status, new.added_at) == (FollowRelation.Status.ACTIVE, from_timestamp(follow.createtime))
        assert_no_doubled_events(env.corp)


def test_a_deletion_and_re_add_in_one_second_keep_the_relation(settings):
    with simulated_wecom(settings, callback_workers=1) as env:
        userid = env.sim.state.follow_users()[0]
        env.sim.clock.freeze()
        customer = env.act("add_customer", userid=userid)["external_userid"]
        # given, in the same second as the add, the customer deletes the member and adds them again
        env.sim.actions.customer_deletes_staff(userid=userid, external_userid=customer)
        env.sim.actions.add_customer(userid=userid, external_userid=customer)
        # when the re-add is worked before the deletion
        deliver_in(env, [1, 0])
        # then the relation is active, as in WeCom (the deletion could not tell, so WeCom was asked)
        [relation] = relations(env, customer, userid)
        assert relation.status == FollowRelation.Status.ACTIVE
        assert_no_doubled_events(env.corp)


def test_an_add_worked_after_a_re_add_without_state_takes_wecoms_state(settings):
    with simulated_wecom(settings, callback_workers=1) as env:
        userid = env.sim.state.follow_users()[0]
        env.sim.clock.freeze()
        # given a customer added through a contact way, deleted, and added again a second later without one
        customer = env.sim.actions.add_customer(userid=userid, state="expo-2024")["external_userid"]
        env.sim.actions.staff_deletes_customer(userid=userid, external_userid=customer)
        env.sim.clock.advance(1)
        env.sim.actions.add_customer(userid=userid, external_userid=customer)
        # when all three are worked in order, after the re-add happened
        deliver_in(env, [0, 1, 2])
        # then the active relation has WeCom's state: the first add's State was an earlier relation's
        active = [r for r in relations(env, customer, userid) if r.status == FollowRelation.Status.ACTIVE]
        assert [r.state for r in active] == [env.sim.state.customers[customer].follows[userid].state] == [""]
        assert_no_doubled_events(env.corp)


def test_a_group_join_worked_before_the_customers_add_is_on_the_customers_timeline(settings):
    with simulated_wecom(settings, callback_workers=1) as env:
        chat_id = sorted(env.sim.state.groups)[0]
        # given a new customer adds a member and joins one of their groups
        customer = env.sim.actions.add_customer()["external_userid"]
        env.sim.actions.group_join(chat_id=chat_id, external_userids=[customer])
        # when the join is worked before the add
        deliver_in(env, [1, 0])
        # then the stay belongs to the customer, and the join is on their timeline once
        stay = GroupMember.objects.for_corp(env.corp).get(group__chat_id=chat_id, userid=customer)
        assert stay.customer is not None and stay.customer.external_userid == customer
        joined = Event.objects.for_corp(env.corp).filter(customer=stay.customer, kind=Event.Kind.GROUP_JOINED)
        assert joined.count() == 1
        assert_no_doubled_events(env.corp)


def test_changes_of_a_group_dismissed_since_do_not_hold_up_its_dismissal(settings):
    with simulated_wecom(settings, callback_workers=1) as env:
        # given a group created, renamed and dismissed before its callbacks are worked
        chat_id = env.sim.actions.group_create(name="快闪群")["chat_id"]
        env.sim.actions.group_rename(chat_id=chat_id, name="快闪群2")
        env.sim.actions.group_dismiss(chat_id=chat_id)
        # when they are worked in order (WeCom no longer knows the group when the first two are)
        deliver_in(env, [0, 1, 2])
        # then every event is done at once, and the group is dismissed
        assert GroupChat.objects.for_corp(env.corp).get(chat_id=chat_id).status == GroupChat.Status.DISMISSED
