"""Adds Siyu learned of without a callback, or whose listener stopped half-way, are caught up by the beat; the
demo's channels attribute the seeded history."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image

from siyu.channels import handlers
from siyu.channels.demo import contact_ways_for_export, seed_channels
from siyu.channels.handlers import attribute_missed, automate_waiting, complete_pending, record_add
from siyu.channels.models import Channel, ChannelAdd, ChannelDay, ChannelDayDirty, ChannelTag
from siyu.channels.services import ChannelInput, MemberInput, create_channel
from siyu.core import clock
from siyu.corps.access import Actor
from siyu.corps.models import Role
from siyu.corps.seed import seed
from siyu.corps.services import create_corp
from siyu.customers.models import Event, FollowRelation
from siyu.customers.services import add_follow_relation
from siyu.tags.models import RelationTag
from siyu.wecom.inbox import store_message
from siyu.wecom.models import InboxEvent
from tests import factories
from tests.wecom.inbound_support import event_xml

pytestmark = pytest.mark.django_db


def connected_corp():
    return create_corp(name="补记企业", corpid="wwcatchup0001", secret="s3cret")


def test_a_recent_relation_without_a_callback_is_attributed_and_tagged():
    # given a channel with an auto-tag, and a relation with its state that a sync brought (no callback)
    corp = connected_corp()
    staff = factories.make_staff(corp, "店员")
    tag = factories.make_tag(corp, "补记")
    channel = create_channel(
        actor=Actor(corp=corp, role=Role.OPERATOR),
        data=ChannelInput(name="海报", members=[MemberInput(staff_id=staff.pk)], tag_ids=[tag.pk]),
    )
    relation = add_follow_relation(
        customer=factories.make_customer(corp), staff=staff, source=Event.Source.SYNC, state=channel.state
    )
    # when the beat catches up
    assert attribute_missed() == 1
    # then the add is the channel's, recorded as found by a sync, and its automation ran (without WeCom: no
    # write is needed for a tag the corp's WeCom does not know)
    add = ChannelAdd.objects.for_corp(corp).get(relation=relation)
    assert add.channel_id == channel.pk and add.source == ChannelAdd.Source.SYNC
    assert add.welcome_status == ChannelAdd.Welcome.NO_CODE
    assert RelationTag.objects.filter(relation=relation, tag=tag).exists()
    # and again finds nothing more
    assert attribute_missed() == 0


def _recorded(corp, staff, relation, state: str = ""):
    """The add of ``relation`` recorded as its callback's handler records it, without a welcome code."""
    return record_add(
        corp=corp,
        customer=relation.customer,
        staff=staff,
        relation=relation,
        state=state,
        welcome_code="",
        half=False,
        received_at=None,
    )


def test_an_add_whose_automation_stopped_is_finished_once():
    corp = connected_corp()
    staff = factories.make_staff(corp, "店员")
    tag = factories.make_tag(corp, "半途")
    channel = create_channel(
        actor=Actor(corp=corp, role=Role.OPERATOR),
        data=ChannelInput(name="码", members=[MemberInput(staff_id=staff.pk)], tag_ids=[tag.pk]),
    )
    relation = add_follow_relation(
        customer=factories.make_customer(corp), staff=staff, source=Event.Source.WECOM, state=channel.state
    )
    # given the add was recorded, then its worker stopped
    add, _row = _recorded(corp, staff, relation, state=channel.state)
    assert add is not None and add.automated_at is None
    # when the beat looks after the grace period while another customer's add waits in the inbox
    with clock.frozen_at(clock.now() + dt.timedelta(minutes=2)):
        store_message(
            corp_id=corp.pk,
            plaintext=event_xml(
                "change_external_contact", "add_external_contact", UserID="u1", ExternalUserID="wmnext"
            ).encode(),
        )
        # then that add's welcome comes first: nothing is automated yet
        assert complete_pending() == 0
        # when it has been worked, the beat finishes the add
        InboxEvent.objects.for_corp(corp).update(status=InboxEvent.Status.DONE)
        assert complete_pending() == 1
        assert complete_pending() == 0
    assert RelationTag.objects.filter(relation=relation, tag=tag).count() == 1


def test_demo_channels_take_the_seeded_history():
    report = seed(customers=60, seed_value=3, corpid="wwdemochannels1", name="示范")
    corp = report.corp
    made = seed_channels(corp=corp, channels={"ch_store": "门店扫码", "ch_ad": "线上广告"})
    assert {c.state for c in made} == {"ch_store", "ch_ad"}
    store = Channel.objects.for_corp(corp).get(state="ch_store")
    assert ChannelTag.objects.for_corp(corp).filter(channel=store, tag__name="门店扫码").exists()
    # every relation is attributed, by its state
    relations = FollowRelation.objects.for_corp(corp)
    assert ChannelAdd.objects.for_corp(corp).count() == relations.count()
    assert (
        ChannelAdd.objects.for_corp(corp).filter(channel=store).count()
        == relations.filter(state="ch_store").count()
    )
    # and the analytics rollup counts the whole history: every add, and every relation that ended, by side
    days = ChannelDay.objects.for_corp(corp)
    assert relations.exclude(status=FollowRelation.Status.ACTIVE).exists()  # the seed ends some
    assert sum(days.values_list("adds", flat=True)) == relations.count()
    assert (
        sum(days.values_list("deleted_by_staff", flat=True))
        == relations.filter(status=FollowRelation.Status.DELETED_BY_STAFF).count()
    )
    assert (
        sum(days.values_list("deleted_by_customer", flat=True))
        == relations.filter(status=FollowRelation.Status.DELETED_BY_CUSTOMER).count()
    )
    assert not ChannelDayDirty.objects.for_corp(corp).exists()
    # no contact way exists before the worker pushes one: nothing to export yet
    assert contact_ways_for_export(corp) == []


def test_qr_image_of_the_simulator_is_a_real_code(settings):
    # the simulator's QR image decodes as an image of the expected size (WeCom's are 430 px)
    from siyu.simulator.testing import running_simulator

    with running_simulator() as sim:
        way = sim.call(
            "externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": [sim.state.follow_users()[0]]}
        )
        import httpx

        image = Image.open(io.BytesIO(httpx.get(way["qr_code"], trust_env=False).content))
        assert 400 <= image.size[0] <= 450 and image.size[0] == image.size[1]


def test_a_welcome_outcome_lost_on_the_way_is_read_from_the_outbox():
    from siyu.channels.handlers import settle_lost_outcomes
    from siyu.wecom.models import Outbox
    from siyu.wecom.outbox import enqueue_write

    # given an add whose welcome row was sent, but whose outcome never reached the add
    corp = connected_corp()
    staff = factories.make_staff(corp, "店员")
    relation = add_follow_relation(
        customer=factories.make_customer(corp), staff=staff, source=Event.Source.WECOM
    )
    add, _row = _recorded(corp, staff, relation)
    row = enqueue_write(
        corp=corp,
        api="externalcontact/send_welcome_msg",
        payload={"welcome_code": "CODE", "text": {"content": "hi"}},
        idempotency_key="welcome:CODE",
    )
    sent_at = clock.now()
    Outbox.objects.filter(pk=row.pk).update(status=Outbox.Status.DONE, sent_at=sent_at)
    ChannelAdd.objects.filter(pk=add.pk).update(
        welcome_status=ChannelAdd.Welcome.QUEUED,
        welcome_outbox=row,
        welcome_deadline=sent_at,
        received_at=sent_at - dt.timedelta(seconds=1),
    )
    # when the beat looks a few minutes later
    with clock.frozen_at(sent_at + dt.timedelta(minutes=5)):
        assert settle_lost_outcomes() == 1
        assert settle_lost_outcomes() == 0
    add.refresh_from_db()
    assert add.welcome_status == ChannelAdd.Welcome.SENT
    assert add.welcome_seconds == pytest.approx(1.0)
    assert (
        Event.objects.for_corp(corp).filter(kind=Event.Kind.WELCOMED, customer=relation.customer).count() == 1
    )


def test_the_automation_task_tries_each_add_once_a_run_and_leaves_a_failing_one_to_the_beat(monkeypatch):
    corp = factories.make_corp()
    staff = factories.make_staff(corp)
    relations = [
        add_follow_relation(customer=factories.make_customer(corp), staff=staff, source=Event.Source.WECOM)
        for _ in range(2)
    ]
    # given two adds waiting for their automation, the first of which fails every time
    adds = [_recorded(corp, staff, relation)[0] for relation in relations]
    real = handlers.automate
    tried: list[int] = []

    def automate(add):
        tried.append(add.pk)
        if add.pk == adds[0].pk:
            raise RuntimeError("WeCom refused")
        real(add)

    monkeypatch.setattr(handlers, "automate", automate)
    # when the task runs
    assert automate_waiting(corp.pk) == (2, False)
    # then each was tried once: the second is done, the first left for the beat (no spinning on it)
    assert tried == [adds[0].pk, adds[1].pk]
    assert [ChannelAdd.objects.get(pk=add.pk).automated_at is None for add in adds] == [True, False]
