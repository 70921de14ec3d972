"""Every callback event type, from the simulator through the receiver and the worker into the domain."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from siyu.core.clock import now
from siyu.corps.models import Department, Staff
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.groups.models import GroupChat, GroupMember
from siyu.tags.models import RelationTag, Tag, TagGroup
from siyu.wecom.crypto import CallbackCrypto
from siyu.wecom.inbox import claimable, drain_inbox, replay_inbox_event
from siyu.wecom.models import InboxEvent
from siyu.wecom.signals import contact_added
from tests.wecom.inbound_support import event_xml, post_callback, simulated_wecom

pytestmark = pytest.mark.django_db


def crypto_of(env) -> CallbackCrypto:
    config = env.sim.config
    return CallbackCrypto(config.token, config.aes_key, config.corpid)


def relation(env, external_userid: str, userid: str, status: str = "active") -> FollowRelation | None:
    return (
        FollowRelation.objects.for_corp(env.corp)
        .filter(customer__external_userid=external_userid, staff__userid=userid, status=status)
        .first()
    )


def events_of(env, external_userid: str) -> list[Event]:
    return list(
        Event.objects.for_corp(env.corp).filter(customer__external_userid=external_userid).order_by("id")
    )


def snapshot(env) -> dict[str, object]:
    """Everything the handlers may change, to compare before and after a replay."""
    corp = env.corp
    return {
        "customers": Customer.objects.for_corp(corp).count(),
        "relations": sorted(FollowRelation.objects.for_corp(corp).values_list("pk", "status", "remark")),
        "relation_tags": sorted(RelationTag.objects.for_corp(corp).values_list("relation_id", "tag_id")),
        "events": Event.objects.for_corp(corp).count(),
        "groups": sorted(GroupChat.objects.for_corp(corp).values_list("chat_id", "status", "name")),
        "stays": sorted(GroupMember.objects.for_corp(corp).values_list("pk", "left_at")),
        "tags": sorted(Tag.objects.for_corp(corp).values_list("wecom_tag_id", "name")),
        "staff": sorted(Staff.objects.for_corp(corp).values_list("userid", "status", "name")),
        "departments": sorted(Department.objects.for_corp(corp).values_list("wecom_id", "name")),
    }


# --- change_external_contact ------------------------------------------------------------------------------


def test_add_external_contact_creates_customer_relation_and_event(
    settings, django_capture_on_commit_callbacks
):
    with simulated_wecom(settings) as env:
        # given a contact way with a state (the channel)
        way = env.sim.call(
            "externalcontact/add_contact_way",
            {"type": 1, "scene": 2, "state": "web-home", "user": [env.sim.state.follow_users()[0]]},
        )
        heard = []
        contact_added.connect(lambda **kw: heard.append(kw), weak=False, dispatch_uid="test-heard")
        try:
            # when a customer scans it
            with django_capture_on_commit_callbacks(execute=True):
                added = env.act("scan_contact_way", config_id=way["config_id"])
        finally:
            contact_added.disconnect(dispatch_uid="test-heard")
        # then the customer, the relation with its channel and the timeline event are there
        found = relation(env, added["external_userid"], added["userid"])
        assert found is not None
        assert found.state == "web-home"
        assert found.add_way == 1
        customer = Customer.objects.for_corp(env.corp).get(external_userid=added["external_userid"])
        assert customer.name == added["name"]
        [event] = [e for e in events_of(env, added["external_userid"]) if e.kind == Event.Kind.ADDED]
        assert event.source == Event.Source.WECOM
        assert event.dedupe_key.startswith("wecom:")
        assert event.payload["state"] == "web-home"
        # and listeners hear about it once, with the welcome code
        assert len(heard) == 1
        assert heard[0]["welcome_code"] == added["welcome_code"]
        assert heard[0]["state"] == "web-home"
        assert InboxEvent.objects.for_corp(env.corp).get().status == InboxEvent.Status.DONE


def test_add_half_external_contact_is_an_add_marked_half(settings):
    with simulated_wecom(settings) as env:
        added = env.act("add_customer", half=True)
        found = relation(env, added["external_userid"], added["userid"])
        assert found is not None
        [event] = [e for e in events_of(env, added["external_userid"]) if e.kind == Event.Kind.ADDED]
        assert event.payload["half"] is True


def test_edit_external_contact_updates_remark_and_tags(settings):
    with simulated_wecom(settings) as env:
        # given a relation, and a corp tag Siyu has never seen
        added = env.act("add_customer")
        tag_id = next(iter(t.id for t in env.sim.state.tags.values() if not t.deleted))
        # when the member edits the remark, then tags the customer in the client
        env.act(
            "edit_remark", userid=added["userid"], external_userid=added["external_userid"], remark="老客户"
        )
        env.act(
            "tag_in_client",
            userid=added["userid"],
            external_userid=added["external_userid"],
            add_tag=[tag_id],
        )
        # then
        found = relation(env, added["external_userid"], added["userid"])
        assert found.remark == "老客户"
        tag = Tag.objects.for_corp(env.corp).get(wecom_tag_id=tag_id)  # fetched and created on the way
        assert RelationTag.objects.for_corp(env.corp).filter(relation=found, tag=tag).exists()
        kinds = [e.kind for e in events_of(env, added["external_userid"])]
        assert Event.Kind.REMARK_CHANGED in kinds and Event.Kind.TAGGED in kinds
        # when the tag is removed in the client
        env.act(
            "tag_in_client",
            userid=added["userid"],
            external_userid=added["external_userid"],
            remove_tag=[tag_id],
        )
        # then
        assert not RelationTag.objects.for_corp(env.corp).filter(relation=found).exists()
        assert Event.Kind.UNTAGGED in [e.kind for e in events_of(env, added["external_userid"])]


def test_staff_deletes_customer_ends_the_relation(settings):
    with simulated_wecom(settings) as env:
        added = env.act("add_customer")
        env.act("staff_deletes_customer", userid=added["userid"], external_userid=added["external_userid"])
        assert relation(env, added["external_userid"], added["userid"]) is None
        assert relation(
            env, added["external_userid"], added["userid"], FollowRelation.Status.DELETED_BY_STAFF
        )
        assert events_of(env, added["external_userid"])[-1].kind == Event.Kind.DELETED_BY_STAFF


def test_customer_deletes_staff_ends_the_relation_by_customer(settings):
    with simulated_wecom(settings) as env:
        added = env.act("add_customer")
        env.act("customer_deletes_staff", userid=added["userid"], external_userid=added["external_userid"])
        assert relation(
            env, added["external_userid"], added["userid"], FollowRelation.Status.DELETED_BY_CUSTOMER
        )
        assert events_of(env, added["external_userid"])[-1].kind == Event.Kind.DELETED_BY_CUSTOMER


def test_delete_by_transfer_is_recorded_as_a_transfer(settings, client):
    with simulated_wecom(settings) as env:
        added = env.act("add_customer")
        # when the relation ends because an in-service transfer completed (Source=DELETE_BY_TRANSFER)
        xml = event_xml(
            "change_external_contact",
            "del_external_contact",
            create_time=int(now().timestamp()) + 5,
            UserID=added["userid"],
            ExternalUserID=added["external_userid"],
            Source="DELETE_BY_TRANSFER",
        )
        assert post_callback(client, crypto_of(env), xml).status_code == 200
        env.work()
        # then
        ended = relation(
            env, added["external_userid"], added["userid"], FollowRelation.Status.DELETED_BY_STAFF
        )
        assert ended is not None
        last = events_of(env, added["external_userid"])[-1]
        assert (last.kind, last.payload["reason"]) == (Event.Kind.DELETED_BY_STAFF, "transfer")


def test_transfer_fail_is_on_the_customer_timeline(settings, client):
    with simulated_wecom(settings) as env:
        added = env.act("add_customer")
        takeover = next(u for u in env.sim.state.follow_users() if u != added["userid"])
        xml = event_xml(
            "change_external_contact",
            "transfer_fail",
            FailReason="customer_refused",
            UserID=takeover,
            ExternalUserID=added["external_userid"],
        )
        post_callback(client, crypto_of(env), xml)
        env.work()
        last = events_of(env, added["external_userid"])[-1]
        assert last.kind == Event.Kind.TRANSFER_FAILED
        assert last.payload == {"fail_reason": "customer_refused", "takeover_userid": takeover}
        assert last.staff.userid == takeover
        # the relation with the handover member is untouched
        assert relation(env, added["external_userid"], added["userid"]) is not None


def test_msg_audit_approved_is_on_the_customer_timeline(settings):
    with simulated_wecom(settings) as env:
        added = env.act("add_customer")
        env.act("msg_audit_approved", userid=added["userid"], external_userid=added["external_userid"])
        last = events_of(env, added["external_userid"])[-1]
        assert last.kind == Event.Kind.ARCHIVE_APPROVED
        assert last.staff.userid == added["userid"]


def test_an_add_whose_relation_is_gone_in_wecom_adds_nothing(settings):
    with simulated_wecom(settings) as env:
        # given an add and a delete made in WeCom before Siyu worked either
        added = env.sim.actions.add_customer()
        env.sim.actions.staff_deletes_customer(
            userid=added["userid"], external_userid=added["external_userid"]
        )
        env.deliver(minimum=2)
        # when the add is worked (re-reading WeCom), then the delete
        env.work()
        # then no relation was ever made active, and nothing is left to end
        assert (
            not FollowRelation.objects.for_corp(env.corp)
            .filter(customer__external_userid=added["external_userid"])
            .exists()
        )
        outcomes = set(InboxEvent.objects.for_corp(env.corp).values_list("outcome", flat=True))
        # (the simulator posts callbacks in parallel, so either may have arrived first)
        assert outcomes == {
            "customer no longer in WeCom: nothing to add",
            "no active relation here: nothing to end",
        }


# --- ordering and replay --------------------------------------------------------------------------------


def test_events_of_one_customer_are_worked_in_order(settings, client):
    with simulated_wecom(settings) as env:
        # given an add, then a delete of the same customer that WeCom's API does not reflect yet (the delete's
        # callback can arrive before externalcontact/get shows it), and another customer's add after both
        added = env.sim.actions.add_customer()
        env.deliver()
        delete = event_xml(
            "change_external_contact",
            "del_external_contact",
            create_time=int(now().timestamp()) + 1,
            UserID=added["userid"],
            ExternalUserID=added["external_userid"],
        )
        post_callback(client, crypto_of(env), delete)
        other = env.sim.actions.add_customer()
        env.deliver()
        rows = list(InboxEvent.objects.for_corp(env.corp).order_by("id"))
        kinds = [r.change_type for r in rows]
        assert kinds == ["add_external_contact", "del_external_contact", "add_external_contact"]
        # then only the first event of each customer may be claimed: the delete waits for the add
        assert [r.pk for r in claimable(now(), corp_id=env.corp.pk)] == [rows[0].pk, rows[2].pk]
        # when worked
        drain_inbox(corp_id=env.corp.pk)
        # then the add applied before the delete (worked the other way round, the add would have won)
        assert relation(env, added["external_userid"], added["userid"]) is None
        assert relation(
            env, added["external_userid"], added["userid"], FollowRelation.Status.DELETED_BY_STAFF
        )
        assert relation(env, other["external_userid"], other["userid"]) is not None
        worked = list(
            InboxEvent.objects.for_corp(env.corp).order_by("processed_at").values_list("pk", flat=True)
        )
        assert worked.index(rows[0].pk) < worked.index(rows[1].pk)


def test_a_delete_older_than_a_re_add_does_not_end_the_new_relation(settings, client):
    with simulated_wecom(settings) as env:
        added = env.act("add_customer")
        found = relation(env, added["external_userid"], added["userid"])
        # when a late delete from before the relation was added arrives
        xml = event_xml(
            "change_external_contact",
            "del_external_contact",
            create_time=int(found.added_at.timestamp()) - 60,
            UserID=added["userid"],
            ExternalUserID=added["external_userid"],
        )
        post_callback(client, crypto_of(env), xml)
        env.work()
        # then the relation stays
        assert relation(env, added["external_userid"], added["userid"]) is not None
        assert "kept" in InboxEvent.objects.for_corp(env.corp).order_by("-id").first().outcome


def test_replaying_a_worked_event_changes_nothing(settings):
    with simulated_wecom(settings) as env:
        # given every kind of change worked once
        added = env.act("add_customer")
        tag_id = next(iter(t.id for t in env.sim.state.tags.values() if not t.deleted))
        env.act(
            "tag_in_client",
            userid=added["userid"],
            external_userid=added["external_userid"],
            add_tag=[tag_id],
        )
        env.act(
            "edit_remark", userid=added["userid"], external_userid=added["external_userid"], remark="复购"
        )
        chat = env.act("group_create", external_userids=[added["external_userid"]])
        env.act("group_join", chat_id=chat["chat_id"], new_customers=2)
        env.act("staff_create", name="新同事")
        env.act("console_create_tag", name="新标签", group_name="新分组", minimum=2)
        env.act("staff_deletes_customer", userid=added["userid"], external_userid=added["external_userid"])
        before = snapshot(env)
        rows = list(InboxEvent.objects.for_corp(env.corp).order_by("id"))
        assert {r.status for r in rows} == {InboxEvent.Status.DONE}
        # when every row is replayed
        for row in rows:
            replay_inbox_event(row=row)
        env.work()
        # then nothing changed
        assert snapshot(env) == before
        assert {r.status for r in InboxEvent.objects.for_corp(env.corp)} == {InboxEvent.Status.DONE}


# --- change_external_chat ---------------------------------------------------------------------------------


def test_group_lifecycle(settings):
    with simulated_wecom(settings) as env:
        # given a customer Siyu knows
        added = env.act("add_customer")
        # when a member creates a group with them
        chat = env.act(
            "group_create", owner=added["userid"], name="复购群", external_userids=[added["external_userid"]]
        )
        group = GroupChat.objects.for_corp(env.corp).get(chat_id=chat["chat_id"])
        # then the group, its members and the customer's join are there
        assert group.name == "复购群"
        assert group.owner.userid == added["userid"]
        assert set(
            GroupMember.objects.for_corp(env.corp).filter(group=group).values_list("userid", flat=True)
        ) == {
            added["userid"],
            added["external_userid"],
        }
        assert events_of(env, added["external_userid"])[-1].kind == Event.Kind.GROUP_JOINED
        # when two customers join by QR code and the first one is removed
        joined = env.act("group_join", chat_id=chat["chat_id"], new_customers=2, join_scene=3)
        env.act("group_leave", chat_id=chat["chat_id"], userids=[added["external_userid"]], quit_scene=1)
        # then
        group.refresh_from_db()
        assert group.member_count == 3
        stay = GroupMember.objects.for_corp(env.corp).get(group=group, userid=added["external_userid"])
        assert stay.left_at is not None and stay.quit_scene == GroupMember.QuitScene.REMOVED
        newcomer = GroupMember.objects.for_corp(env.corp).get(group=group, userid=joined["joined"][0])
        assert newcomer.join_scene == GroupMember.JoinScene.QR_CODE
        left = events_of(env, added["external_userid"])[-1]
        assert (left.kind, left.payload["quit_scene"]) == (Event.Kind.GROUP_LEFT, 1)
        # when it is renamed, its notice and owner change
        new_owner = next(u for u in env.sim.state.follow_users() if u != added["userid"])
        env.act("group_rename", chat_id=chat["chat_id"], name="VIP 群")
        env.act("group_notice", chat_id=chat["chat_id"], notice="周五活动")
        env.act("group_change_owner", chat_id=chat["chat_id"], owner=new_owner)
        group.refresh_from_db()
        assert (group.name, group.notice, group.owner_userid) == ("VIP 群", "周五活动", new_owner)
        # when it is dismissed
        env.act("group_dismiss", chat_id=chat["chat_id"])
        group.refresh_from_db()
        assert group.status == GroupChat.Status.DISMISSED
        assert not GroupMember.objects.for_corp(env.corp).filter(group=group, left_at=None).exists()


def test_a_member_change_at_the_known_version_needs_no_refetch(settings, client):
    with simulated_wecom(settings) as env:
        chat = env.act("group_create")
        group = GroupChat.objects.for_corp(env.corp).get(chat_id=chat["chat_id"])
        calls_before = env.sim.limits.calls["externalcontact/groupchat/get"]
        xml = event_xml(
            "change_external_chat",
            "update",
            ChatId=chat["chat_id"],
            UpdateDetail="add_member",
            JoinScene=0,
            MemChangeCnt=1,
            MemChangeList=["someone"],
            LastMemVer="0" * 32,
            CurMemVer=group.member_version,
        )
        post_callback(client, crypto_of(env), xml)
        env.work()
        row = InboxEvent.objects.for_corp(env.corp).order_by("-id").first()
        assert row.outcome == "member list already at this version"
        assert env.sim.limits.calls["externalcontact/groupchat/get"] == calls_before


# --- change_external_tag -----------------------------------------------------------------------------------


def test_tag_events_mirror_the_corp_tags(settings):
    with simulated_wecom(settings) as env:
        # when an admin creates a group with a tag in WeCom's admin console
        created = env.act("console_create_tag", name="高意向", group_name="意向", minimum=2)
        group = TagGroup.objects.for_corp(env.corp).get(wecom_group_id=created["group_id"])
        tag = Tag.objects.for_corp(env.corp).get(wecom_tag_id=created["tag_id"])
        assert (group.name, tag.name, tag.group_id) == ("意向", "高意向", group.pk)
        # when it is renamed
        env.act("console_rename_tag", id=created["tag_id"], name="强意向")
        tag.refresh_from_db()
        assert tag.name == "强意向"
        # when a second tag is added and the group's tags are reordered
        second = env.act("console_create_tag", name="弱意向", group_id=created["group_id"])
        shuffled = env.act("console_shuffle_tags", group_id=created["group_id"])
        order = list(
            Tag.objects.for_corp(env.corp)
            .filter(group=group)
            .order_by("order")
            .values_list("wecom_tag_id", flat=True)
        )
        assert order == shuffled["order"]
        # when the tag is deleted, then the whole group
        env.act("console_delete_tag", id=second["tag_id"])
        assert not Tag.objects.for_corp(env.corp).filter(wecom_tag_id=second["tag_id"]).exists()
        env.act("console_delete_tag", id=created["group_id"])
        assert not TagGroup.objects.for_corp(env.corp).filter(wecom_group_id=created["group_id"]).exists()
        assert not Tag.objects.for_corp(env.corp).filter(wecom_tag_id=created["tag_id"]).exists()


def test_rule_group_tags_are_ignored(settings, client):
    with simulated_wecom(settings) as env:
        xml = event_xml("change_external_tag", "create", Id="etRULE", TagType="tag", StrategyId=1)
        post_callback(client, crypto_of(env), xml)
        env.work()
        row = InboxEvent.objects.for_corp(env.corp).get()
        assert row.status == InboxEvent.Status.IGNORED
        assert "StrategyId" in row.outcome


# --- change_contact ----------------------------------------------------------------------------------------


def test_member_and_department_changes(settings):
    with simulated_wecom(settings) as env:
        # given
        department = env.act("department_create", name="直播组", parentid=1)
        created = Department.objects.for_corp(env.corp).get(wecom_id=department["id"])
        assert created.name == "直播组"
        # when a member is created in it (the event carries only UserID and Department)
        member = env.act("staff_create", name="赵敏", department=department["id"])
        staff = Staff.objects.for_corp(env.corp).get(userid=member["userid"])
        # then the member was read through user/get: name and department
        assert staff.name == "赵敏"
        assert staff.main_department == created
        # when renamed, the department renamed, the member resigns and the department is deleted
        env.act("staff_update", userid=member["userid"], name="赵敏敏")
        env.act("department_update", id=department["id"], name="直播一组")
        env.act("staff_resign", userid=member["userid"])
        staff.refresh_from_db()
        created.refresh_from_db()
        assert (staff.name, staff.status, created.name) == ("赵敏敏", Staff.Status.RESIGNED, "直播一组")
        env.sim.state.staff.pop(member["userid"])  # gone from the address book, so the department is empty
        env.act("department_delete", id=department["id"])
        assert not Department.objects.for_corp(env.corp).filter(wecom_id=department["id"]).exists()


def test_unknown_events_are_ignored_and_say_why(settings, client):
    with simulated_wecom(settings) as env:
        post_callback(client, crypto_of(env), event_xml("enter_agent"))
        post_callback(client, crypto_of(env), event_xml("change_external_contact", "brand_new_change"))
        env.work()
        outcomes = sorted(InboxEvent.objects.for_corp(env.corp).values_list("status", "outcome"))
        assert outcomes == [
            (InboxEvent.Status.IGNORED, "no handler for change_external_contact/brand_new_change"),
            (InboxEvent.Status.IGNORED, "no handler for enter_agent/-"),
        ]


def test_a_changed_userid_keeps_the_member_and_their_relations(settings, client):
    with simulated_wecom(settings) as env:
        # given a member with a customer
        added = env.act("add_customer")
        staff = Staff.objects.for_corp(env.corp).get(userid=added["userid"])
        # when WeCom reports the member's userid changed (update_user with NewUserID)
        xml = event_xml("change_contact", "update_user", UserID=added["userid"], NewUserID="renamed.member")
        post_callback(client, crypto_of(env), xml)
        env.work()
        # then it is the same member under the new id, with the same relations
        staff.refresh_from_db()
        assert staff.userid == "renamed.member"
        assert relation(env, added["external_userid"], "renamed.member") is not None
        assert not Staff.objects.for_corp(env.corp).filter(userid=added["userid"]).exists()


def _active_state(env) -> set[tuple[str, str, str, frozenset[str]]]:
    """Siyu's active relations: (customer, member, remark, WeCom tag ids)."""
    relations = (
        FollowRelation.objects.for_corp(env.corp).filter(status="active").select_related("customer", "staff")
    )
    tags: dict[int, set[str]] = {}
    for relation_id, wecom_tag_id in RelationTag.objects.for_corp(env.corp).values_list(
        "relation_id", "tag__wecom_tag_id"
    ):
        tags.setdefault(relation_id, set()).add(wecom_tag_id)
    return {
        (r.customer.external_userid, r.staff.userid, r.remark, frozenset(tags.get(r.pk, set())))
        for r in relations
    }


def _wecom_state(env, external_userids: set[str]) -> set[tuple[str, str, str, frozenset[str]]]:
    state = env.sim.state
    return {
        (c.external_userid, f.userid, f.remark, frozenset(f.tag_ids))
        for c in state.customers.values()
        if c.external_userid in external_userids
        for f in c.follows.values()
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_order_of_deliveries_with_repeats_ends_in_wecoms_state(settings, seed):
    import random

    with simulated_wecom(settings) as env:
        # given a burst of changes to three customers in WeCom
        actions = env.sim.actions
        u1, u2 = env.sim.state.follow_users()[:2]
        tag_a, tag_b = [t.id for t in env.sim.state.tags.values() if not t.deleted][:2]
        a = actions.add_customer(userid=u1)["external_userid"]
        b = actions.add_customer(userid=u1)["external_userid"]
        actions.edit_remark(userid=u1, external_userid=a, remark="先备注")
        actions.tag_in_client(userid=u1, external_userid=a, add_tag=[tag_a, tag_b])
        actions.add_customer(userid=u2, external_userid=a)
        actions.staff_deletes_customer(userid=u1, external_userid=b)
        actions.tag_in_client(userid=u1, external_userid=a, remove_tag=[tag_b])
        c = actions.add_customer(userid=u2)["external_userid"]
        actions.customer_deletes_staff(userid=u2, external_userid=c)
        actions.edit_remark(userid=u2, external_userid=a, remark="后备注")
        posts = env.receiver.wait_for(10)
        assert len(posts) == 10
        # when their callbacks arrive shuffled, some of them more than once, and are worked as they come
        rng = random.Random(seed)
        deliveries = posts + rng.sample(posts, 4)
        rng.shuffle(deliveries)
        for index, post in enumerate(deliveries):
            path = f"/wecom/callback/{env.corp.corpid}/?{urlencode(post.query)}"
            assert env.client.post(path, data=post.body, content_type="text/xml").status_code == 200
            if index % 3 == 2:
                env.work()
        env.work()
        # then Siyu's active relations, remarks and tags are WeCom's
        assert _active_state(env) == _wecom_state(env, {a, b, c})
        assert InboxEvent.objects.for_corp(env.corp).exclude(status=InboxEvent.Status.DONE).count() == 0
