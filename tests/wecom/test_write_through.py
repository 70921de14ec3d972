"""Changes made in Siyu reach WeCom through the outbox; changes that came from WeCom are not sent back.

Against the simulator: the console or the API changes a relation's tags or remark, or the corp's tags; one
outbox row is stored in the same transaction; the real worker function sends it; the simulator's state
shows the change and, as in WeCom, an API-made change emits no callback. Reconciliation and callbacks do
not undo a change that is still on its way.
"""

from __future__ import annotations

import json
import time

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import translation

from siyu.core.errors import Invalid
from siyu.corps.access import actor_for_user
from siyu.corps.models import Role
from siyu.corps.services import create_api_key, create_console_user
from siyu.customers.models import Event, FollowRelation
from siyu.customers.services import update_relation_remark
from siyu.tags.models import RelationTag, Tag, TagGroup
from siyu.tags.services import (
    create_tag,
    create_tag_group,
    delete_tag,
    delete_tag_group,
    mark_relation_tags,
    rename_tag,
    tag_customers,
)
from siyu.wecom.limits import Priority
from siyu.wecom.models import Outbox, SyncRun
from siyu.wecom.outbox import send_due
from siyu.wecom.sync import run_sync, start_sync
from tests import factories
from tests.wecom.inbound_support import WeComEnv, simulated_wecom

pytestmark = pytest.mark.django_db

MARK_TAG = "externalcontact/mark_tag"
REMARK = "externalcontact/remark"
PASSWORD = "correct-horse-battery-staple"


# --- helpers ---------------------------------------------------------------------------------------------


def _run_to_end(run_id: int) -> SyncRun:
    while True:
        turn = run_sync(run_id)
        if turn.run.status in (SyncRun.Status.DONE, SyncRun.Status.FAILED):
            return turn.run


def synced(env: WeComEnv, kind: str = SyncRun.Kind.FULL) -> SyncRun:
    run = _run_to_end(start_sync(corp=env.corp, kind=kind, enqueue=False).pk)
    assert run.status == SyncRun.Status.DONE, run.error
    return run


def a_relation_and_a_tag_it_lacks(env: WeComEnv) -> tuple[FollowRelation, Tag]:
    """An active relation and a WeCom tag not on it, both known to Siyu and WeCom."""
    for relation in (
        FollowRelation.objects.for_corp(env.corp)
        .filter(status=FollowRelation.Status.ACTIVE)
        .select_related("customer", "staff")
        .order_by("pk")
    ):
        on_it = set(RelationTag.objects.filter(relation=relation).values_list("tag_id", flat=True))
        tag = Tag.objects.for_corp(env.corp).exclude(wecom_tag_id="").exclude(pk__in=on_it).first()
        if tag is not None:
            return relation, tag
    raise AssertionError("the simulated corp has no relation missing a tag")


def in_wecom(env: WeComEnv, relation: FollowRelation):
    """The simulator's side of a relation."""
    return env.sim.state.customers[relation.customer.external_userid].follows[relation.staff.userid]


def console_for(env: WeComEnv, role: str = Role.ADMIN) -> tuple[Client, object]:
    user = create_console_user(corp=env.corp, username=f"o-{role}", password=PASSWORD, role=role)
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))
    return client, actor_for_user(user.pk, env.corp)


def writes(env: WeComEnv, api: str | None = None) -> list[Outbox]:
    rows = Outbox.objects.for_corp(env.corp).order_by("pk")
    return list(rows.filter(api=api) if api else rows)


def callbacks_settled(env: WeComEnv) -> int:
    """How many callbacks the simulator has posted, once it has had time to post any it was going to."""
    time.sleep(0.3)
    return len(env.receiver.posts())


def send_all() -> None:
    report = send_due(budget=20)
    assert report.failed == 0 and report.retrying == 0, report


# --- relation tags -----------------------------------------------------------------------------------------


def test_a_tag_added_in_the_console_reaches_wecom_without_a_callback(settings):
    with simulated_wecom(settings) as env:
        # given a synced corp, a relation and a WeCom tag not on it
        synced(env)
        relation, tag = a_relation_and_a_tag_it_lacks(env)
        client, _actor = console_for(env)
        callbacks = callbacks_settled(env)
        # when the tag is added in the console
        url = reverse("customers:relation_tags", args=[relation.customer_id, relation.pk])
        assert client.post(url, {"add": [tag.pk]}).status_code == 302
        # then one mark_tag write waits in the outbox, made of the change
        [row] = writes(env)
        assert row.api == MARK_TAG and row.status == Outbox.Status.PENDING
        assert row.priority == Priority.USER
        assert row.payload == {
            "userid": relation.staff.userid,
            "external_userid": relation.customer.external_userid,
            "add_tag": [tag.wecom_tag_id],
            "remove_tag": [],
        }
        event = Event.objects.for_corp(env.corp).get(kind=Event.Kind.TAGGED, source=Event.Source.CONSOLE)
        assert row.idempotency_key == f"mark_tag:relation:{relation.pk}:event:{event.pk}"
        assert tag.wecom_tag_id not in in_wecom(env, relation).tag_ids
        # when the worker sends it
        send_all()
        # then WeCom has the tag, the write is done, and WeCom emitted no callback for an API change
        row.refresh_from_db()
        assert row.status == Outbox.Status.DONE and row.attempts == 1 and row.sent_at is not None
        assert tag.wecom_tag_id in in_wecom(env, relation).tag_ids
        assert callbacks_settled(env) == callbacks
        # when the tag is removed again in the console
        assert client.post(url, {"remove": [tag.pk]}).status_code == 302
        send_all()
        # then it is gone in WeCom too, through a second write
        assert [w.payload["remove_tag"] for w in writes(env, MARK_TAG)] == [[], [tag.wecom_tag_id]]
        assert tag.wecom_tag_id not in in_wecom(env, relation).tag_ids


def test_a_tag_change_that_came_from_wecom_is_not_sent_back(settings):
    with simulated_wecom(settings) as env:
        # given a synced corp
        synced(env)
        relation, tag = a_relation_and_a_tag_it_lacks(env)
        ids = {"userid": relation.staff.userid, "external_userid": relation.customer.external_userid}
        # when a member tags the customer and edits the remark in the WeCom client (callbacks)
        env.act("tag_in_client", add_tag=[tag.wecom_tag_id], **ids)
        env.act("edit_remark", remark="老客户", **ids)
        # then Siyu has the changes and nothing waits to be sent to WeCom
        relation.refresh_from_db()
        assert relation.remark == "老客户"
        assert RelationTag.objects.filter(relation=relation, tag=tag).exists()
        assert writes(env) == []
        # and a sync that repairs a missed change sends nothing either
        env.sim.actions.tag_in_client(remove_tag=[tag.wecom_tag_id], **ids)
        synced(env, SyncRun.Kind.RECONCILE)
        assert not RelationTag.objects.filter(relation=relation, tag=tag).exists()
        assert writes(env) == []


def test_siyu_only_tags_stay_in_siyu(settings):
    with simulated_wecom(settings) as env:
        # given a synced corp and a Siyu-only tag
        synced(env)
        relation, wecom_tag = a_relation_and_a_tag_it_lacks(env)
        local = create_tag(
            group=create_tag_group(corp=env.corp, name="内部分级", source=Event.Source.CONSOLE),
            name="重点",
            source=Event.Source.CONSOLE,
        )
        # when only the Siyu-only tag is added
        mark_relation_tags(relation=relation, add=[local], source=Event.Source.CONSOLE)
        # then nothing is sent
        assert writes(env) == []
        # when both kinds are removed and added at once
        mark_relation_tags(relation=relation, add=[wecom_tag], remove=[local], source=Event.Source.API)
        # then only the WeCom tag is sent
        [row] = writes(env)
        assert row.payload["add_tag"] == [wecom_tag.wecom_tag_id] and row.payload["remove_tag"] == []
        # and the Siyu-only group and tag were never sent
        assert not Outbox.objects.for_corp(env.corp).exclude(api=MARK_TAG).exists()


def test_a_corp_not_connected_to_wecom_keeps_its_changes(world):
    # given a corp without an app secret, and a tag that came from WeCom once
    group = create_tag_group(corp=world.corp, name="客户等级", wecom_group_id="etGROUP1")
    tag = create_tag(group=group, name="VIP", wecom_tag_id="etTAG1")
    relation = factories.follow(factories.make_customer(world.corp), world.wang)
    # when it is tagged, remarked (longer than WeCom allows), renamed and deleted from the console
    mark_relation_tags(relation=relation, add=[tag], source=Event.Source.CONSOLE)
    update_relation_remark(relation=relation, source=Event.Source.CONSOLE, remark="长" * 30)
    rename_tag(tag=tag, name="贵宾", source=Event.Source.CONSOLE)
    delete_tag_group(group=group, source=Event.Source.CONSOLE)
    # then the changes are Siyu's only
    assert not Outbox.objects.exists()
    relation.refresh_from_db()
    assert relation.remark == "长" * 30
    # and a group cannot be created in a WeCom the corp is not connected to
    with pytest.raises(Invalid) as error:
        create_tag_group(
            corp=world.corp, name="新分组", tag_names=["甲"], source=Event.Source.CONSOLE, in_wecom=True
        )
    assert error.value.field == "wecom"
    assert not TagGroup.objects.for_corp(world.corp).filter(name="新分组").exists()


def test_bulk_tagging_stores_one_mark_tag_per_relation(settings):
    with simulated_wecom(settings, customers=40) as env:
        # given a synced corp and a WeCom tag
        synced(env)
        _client, actor = console_for(env)
        tag = Tag.objects.for_corp(env.corp).exclude(wecom_tag_id="").order_by("pk").first()
        customers = list(
            FollowRelation.objects.for_corp(env.corp)
            .filter(status=FollowRelation.Status.ACTIVE)
            .values_list("customer_id", flat=True)
            .distinct()[:25]
        )
        untagged = (
            FollowRelation.objects.for_corp(env.corp)
            .filter(status=FollowRelation.Status.ACTIVE, customer_id__in=customers)
            .exclude(relation_tags__tag=tag)
        )
        expected = {r.pk: r for r in untagged.select_related("customer", "staff")}
        assert expected
        # when they are tagged in bulk
        result = tag_customers(
            actor=actor, customer_ids=customers, add_tag_ids=[tag.pk], source=Event.Source.CONSOLE
        )
        # then each relation that changed has one bulk-priority mark_tag write
        rows = writes(env, MARK_TAG)
        assert result.relations_changed == len(expected) == len(rows)
        assert {row.priority for row in rows} == {Priority.BULK}
        assert sorted((r.payload["external_userid"], r.payload["userid"]) for r in rows) == sorted(
            (r.customer.external_userid, r.staff.userid) for r in expected.values()
        )
        assert all(r.payload["add_tag"] == [tag.wecom_tag_id] for r in rows)
        # when the same selection is tagged again, nothing changes and nothing more is stored
        tag_customers(actor=actor, customer_ids=customers, add_tag_ids=[tag.pk], source=Event.Source.CONSOLE)
        assert len(writes(env, MARK_TAG)) == len(rows)
        # when the worker sends them
        send_all()
        # then WeCom has the tag on every relation
        assert all(tag.wecom_tag_id in in_wecom(env, r).tag_ids for r in expected.values())


def test_a_change_that_rolls_back_sends_nothing(settings):
    with simulated_wecom(settings) as env:
        synced(env)
        relation, tag = a_relation_and_a_tag_it_lacks(env)

        # when the transaction of a tag change fails after the change
        class Boom(Exception):
            pass

        with pytest.raises(Boom), transaction.atomic():
            mark_relation_tags(relation=relation, add=[tag], source=Event.Source.CONSOLE)
            raise Boom
        # then neither the tag nor its write is stored
        assert writes(env) == []
        assert not RelationTag.objects.filter(relation=relation, tag=tag).exists()


# --- remarks ----------------------------------------------------------------------------------------------


def test_a_remark_made_in_siyu_reaches_wecom(settings):
    with simulated_wecom(settings) as env:
        # given a synced corp
        synced(env)
        relation, _tag = a_relation_and_a_tag_it_lacks(env)
        callbacks = callbacks_settled(env)
        # when the remark, the description, the mobiles and the company are changed over the API
        changed = update_relation_remark(
            relation=relation,
            source=Event.Source.API,
            remark="王总(上海)",
            description="采购负责人",
            remark_mobiles=["13800138000"],
            remark_corp_name="思域科技",
        )
        # then one remark write carries the fields that changed
        [row] = writes(env)
        assert row.api == REMARK
        assert {k: row.payload[k] for k in ("remark", "description", "remark_company", "remark_mobiles")} == {
            "remark": "王总(上海)",
            "description": "采购负责人",
            "remark_company": "思域科技",
            "remark_mobiles": ["13800138000"],
        }
        assert set(changed) <= {"remark", "description", "remark_mobiles", "remark_corp_name"}
        # when sent
        send_all()
        # then WeCom has them, without a callback
        follow = in_wecom(env, relation)
        assert (follow.remark, follow.description, follow.remark_corp_name, follow.remark_mobiles) == (
            "王总(上海)",
            "采购负责人",
            "思域科技",
            ["13800138000"],
        )
        assert callbacks_settled(env) == callbacks


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [("remark", "长" * 21, 20), ("description", "长" * 151, 150), ("remark_corp_name", "长" * 21, 20)],
)
def test_a_remark_longer_than_wecom_allows_is_refused(settings, field, value, limit):
    with simulated_wecom(settings) as env:
        # given a synced corp
        synced(env)
        relation, _tag = a_relation_and_a_tag_it_lacks(env)
        before = (relation.remark, relation.description, relation.remark_corp_name)
        # when a change longer than WeCom keeps is made in Siyu
        with translation.override("en"), pytest.raises(Invalid) as error:
            update_relation_remark(relation=relation, source=Event.Source.CONSOLE, **{field: value})
        # then it is refused with the field and WeCom's limit, and nothing is written or sent
        assert error.value.field == field
        assert f"at most {limit} characters" in error.value.message
        relation.refresh_from_db()
        assert (relation.remark, relation.description, relation.remark_corp_name) == before
        assert writes(env) == []
        assert not Event.objects.for_corp(env.corp).filter(kind=Event.Kind.REMARK_CHANGED).exists()


def test_the_api_answers_400_for_a_remark_wecom_would_refuse(settings):
    with simulated_wecom(settings) as env:
        synced(env)
        relation, _tag = a_relation_and_a_tag_it_lacks(env)
        key = create_api_key(corp=env.corp, name="crm", role=Role.ADMIN).plaintext
        client = Client(headers={"Authorization": f"Bearer {key}"})
        url = f"/api/v1/customers/{relation.customer_id}/relations/{relation.pk}"
        # when
        response = client.patch(url, json.dumps({"remark": "长" * 21}), content_type="application/json")
        # then
        assert response.status_code == 400
        assert (response.json()["code"], response.json()["field"]) == ("invalid", "remark")
        assert writes(env) == []
        # and a remark within the limit is accepted and stored for WeCom
        ok = client.patch(url, json.dumps({"remark": "长" * 20}), content_type="application/json")
        assert ok.status_code == 200
        assert [w.payload["remark"] for w in writes(env, REMARK)] == ["长" * 20]


# --- corp tags ---------------------------------------------------------------------------------------------


def test_a_tag_created_in_a_wecom_group_gets_its_wecom_id(settings):
    with simulated_wecom(settings) as env:
        # given a synced corp with a WeCom tag group
        synced(env)
        group = TagGroup.objects.for_corp(env.corp).exclude(wecom_group_id="").order_by("pk").first()
        key = create_api_key(corp=env.corp, name="crm", role=Role.OPERATOR).plaintext
        client = Client(headers={"Authorization": f"Bearer {key}"})
        # when a tag is created in it over the API
        response = client.post(
            "/api/v1/tags",
            json.dumps({"group_id": group.pk, "name": "高意向"}),
            content_type="application/json",
        )
        assert response.status_code == 201
        tag = Tag.objects.for_corp(env.corp).get(pk=response.json()["id"])
        # then it has no WeCom id yet, and an add_corp_tag into the group waits
        assert tag.wecom_tag_id == ""
        [row] = writes(env)
        assert row.api == "externalcontact/add_corp_tag"
        assert row.payload == {"group_id": group.wecom_group_id, "tag": [{"name": "高意向"}]}
        # when the worker sends it
        send_all()
        # then the tag carries the id WeCom gave it, and WeCom has it in the group
        tag.refresh_from_db()
        assert tag.wecom_tag_id
        in_sim = env.sim.state.tags[tag.wecom_tag_id]
        assert (in_sim.name, in_sim.group_id) == ("高意向", group.wecom_group_id)
        assert Outbox.objects.get(pk=row.pk).result["tag_group"]["tag"][0]["id"] == tag.wecom_tag_id
        # and a reconciliation afterwards has nothing to repair
        assert synced(env, SyncRun.Kind.RECONCILE).repairs == {}


def test_a_wecom_group_created_in_the_console_gets_its_ids(settings):
    with simulated_wecom(settings) as env:
        # given a synced corp
        synced(env)
        client, _actor = console_for(env)
        # when an admin creates a group "also in WeCom" without a first tag
        refused = client.post(reverse("tags:group_create"), {"name": "购买阶段", "wecom": "1", "tags": ""})
        # then it is refused: WeCom has no empty groups
        assert refused.status_code == 400
        assert not TagGroup.objects.for_corp(env.corp).filter(name="购买阶段").exists()
        # when created with two tags
        created = client.post(
            reverse("tags:group_create"), {"name": "购买阶段", "wecom": "1", "tags": "已询价\n已下单"}
        )
        assert created.status_code == 302
        # then one add_corp_tag creates the group with its tags in WeCom
        [row] = writes(env)
        assert row.payload == {"group_name": "购买阶段", "tag": [{"name": "已询价"}, {"name": "已下单"}]}
        send_all()
        group = TagGroup.objects.for_corp(env.corp).get(name="购买阶段")
        assert group.wecom_group_id
        assert env.sim.state.tag_groups[group.wecom_group_id].name == "购买阶段"
        tags = {t.name: t.wecom_tag_id for t in Tag.objects.for_corp(env.corp).filter(group=group)}
        assert all(tags.values())
        assert {env.sim.state.tags[i].name for i in tags.values()} == {"已询价", "已下单"}
        # and a group without the box ticked stays in Siyu
        client.post(reverse("tags:group_create"), {"name": "内部", "tags": "甲"})
        assert len(writes(env)) == 1
        assert TagGroup.objects.for_corp(env.corp).get(name="内部").wecom_group_id == ""


def test_renames_and_deletions_of_wecom_tags_reach_wecom(settings):
    with simulated_wecom(settings) as env:
        # given a synced corp with a WeCom group of at least two tags
        synced(env)
        group = next(
            g
            for g in TagGroup.objects.for_corp(env.corp).exclude(wecom_group_id="").order_by("pk")
            if Tag.objects.filter(group=g).count() >= 2
        )
        first, second = Tag.objects.for_corp(env.corp).filter(group=group).order_by("pk")[:2]
        # when a tag and the group are renamed, and a tag is deleted, from Siyu
        rename_tag(tag=first, name="改名标签", source=Event.Source.CONSOLE)
        from siyu.tags.services import rename_tag_group

        rename_tag_group(group=group, name="改名分组", source=Event.Source.API)
        delete_tag(tag=second, source=Event.Source.CONSOLE)
        # then the writes go out in order and WeCom matches
        assert [w.api for w in writes(env)] == [
            "externalcontact/edit_corp_tag",
            "externalcontact/edit_corp_tag",
            "externalcontact/del_corp_tag",
        ]
        send_all()
        state = env.sim.state
        assert state.tags[first.wecom_tag_id].name == "改名标签"
        assert state.tag_groups[group.wecom_group_id].name == "改名分组"
        assert state.tags[second.wecom_tag_id].deleted
        # when the whole group is deleted
        delete_tag_group(group=group, source=Event.Source.CONSOLE)
        # then one del_corp_tag deletes it with its tags
        last = writes(env)[-1]
        assert last.payload == {"group_id": [group.wecom_group_id], "tag_id": []}
        send_all()
        assert state.tag_groups[group.wecom_group_id].deleted
        assert synced(env, SyncRun.Kind.RECONCILE).repairs == {}


# --- reconciliation and callbacks do not undo what is on its way -----------------------------------------


def test_reconciliation_keeps_changes_still_on_their_way_to_wecom(settings):
    with simulated_wecom(settings) as env:
        # given a synced corp, and changes made in Siyu that the worker has not sent yet
        synced(env)
        relation, tag = a_relation_and_a_tag_it_lacks(env)
        mark_relation_tags(relation=relation, add=[tag], source=Event.Source.CONSOLE)
        update_relation_remark(relation=relation, source=Event.Source.CONSOLE, remark="待发送")
        renamed = Tag.objects.for_corp(env.corp).exclude(wecom_tag_id="").exclude(pk=tag.pk).first()
        rename_tag(tag=renamed, name="待发送的名字", source=Event.Source.CONSOLE)
        doomed = (
            Tag.objects.for_corp(env.corp)
            .exclude(wecom_tag_id="")
            .exclude(pk__in=[tag.pk, renamed.pk])
            .exclude(group_id=renamed.group_id)
            .first()
        )
        doomed_id = doomed.wecom_tag_id
        delete_tag(tag=doomed, source=Event.Source.CONSOLE)
        # when a reconciliation runs before they are sent
        run = synced(env, SyncRun.Kind.RECONCILE)
        # then it undid none of them, and says what it kept
        relation.refresh_from_db()
        assert relation.remark == "待发送"
        assert RelationTag.objects.filter(relation=relation, tag=tag).exists()
        assert Tag.objects.get(pk=renamed.pk).name == "待发送的名字"
        assert not Tag.objects.for_corp(env.corp).filter(wecom_tag_id=doomed_id).exists()
        assert run.repairs.get("pending_writes_kept", 0) >= 3
        assert set(run.repairs) == {"pending_writes_kept"}
        # when the writes are sent, WeCom has them and the next reconciliation has nothing to do
        send_all()
        assert tag.wecom_tag_id in in_wecom(env, relation).tag_ids
        assert in_wecom(env, relation).remark == "待发送"
        assert synced(env, SyncRun.Kind.RECONCILE).repairs.keys() <= {"pending_writes_kept"}


def test_a_callback_does_not_undo_a_tag_still_on_its_way(settings):
    with simulated_wecom(settings) as env:
        # given a synced corp and a tag added in Siyu but not sent yet
        synced(env)
        relation, tag = a_relation_and_a_tag_it_lacks(env)
        mark_relation_tags(relation=relation, add=[tag], source=Event.Source.CONSOLE)
        ids = {"userid": relation.staff.userid, "external_userid": relation.customer.external_userid}
        # when the member edits the remark in the client meanwhile (the handler re-reads the relation)
        env.act("edit_remark", remark="客户端改的", **ids)
        # then the remark from WeCom is taken and the tag on its way is kept
        relation.refresh_from_db()
        assert relation.remark == "客户端改的"
        assert RelationTag.objects.filter(relation=relation, tag=tag).exists()


def test_a_failed_write_is_not_kept_against_wecom(settings):
    with simulated_wecom(settings) as env:
        # given a tag added in Siyu whose write WeCom refuses (the tag was deleted in WeCom meanwhile)
        synced(env)
        relation, tag = a_relation_and_a_tag_it_lacks(env)
        mark_relation_tags(relation=relation, add=[tag], source=Event.Source.CONSOLE)
        env.sim.actions.console_delete_tag(id=tag.wecom_tag_id)
        # when the worker sends it
        report = send_due(budget=20)
        # then the write failed with WeCom's reason, visible on the row
        [row] = writes(env)
        assert report.failed == 1 and row.status == Outbox.Status.FAILED
        row.refresh_from_db()
        assert row.errcode == 40068
        # and the next reconciliation follows WeCom: the tag is gone from Siyu
        synced(env, SyncRun.Kind.RECONCILE)
        assert not Tag.objects.for_corp(env.corp).filter(pk=tag.pk).exists()
