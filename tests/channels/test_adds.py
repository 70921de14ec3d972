"""An add through a channel, end to end: the simulator's scan, its callback, the worker, the welcome message,
the remark and tags, attribution — and every way a welcome message can fail to go out."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import pytest

from siyu.channels.models import Channel, ChannelAdd
from siyu.channels.services import VariantInput, save_welcome_message
from siyu.core import clock
from siyu.customers.models import Event, FollowRelation
from siyu.tags.models import RelationTag, RuleApplication
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import send_due
from siyu.wecom.sync import run_sync, start_sync
from tests import factories
from tests.channels.support import automated_channel, channel_with_way, operator_of, staff_like_sim
from tests.wecom.inbound_support import simulated_wecom

pytestmark = pytest.mark.django_db


def welcome(env, channel: Channel | None, text: str = "您好{customer_name}，我是{staff_name}") -> None:
    save_welcome_message(actor=operator_of(env.corp), channel=channel, variants=[VariantInput(text=text)])


def redeliver_last(env, capture) -> None:
    """WeCom delivers the last callback again; it is worked, on-commit work run."""
    post = env.receiver.posts()[-1]
    with capture(execute=True):
        env.client.post(
            f"/wecom/callback/{env.corp.corpid}/?{urlencode(post.query)}",
            data=post.body,
            content_type="text/xml",
        )
        env.work()


def scan(env, channel: Channel, capture) -> dict:
    """A customer scans the channel's QR code; the callback is delivered and worked, on-commit work run."""
    with capture(execute=True):
        return env.act("scan_contact_way", config_id=channel.config_id)


def the_add(env, added: dict) -> ChannelAdd:
    return ChannelAdd.objects.for_corp(env.corp).get(
        customer__external_userid=added["external_userid"], staff__userid=added["userid"]
    )


def test_scan_is_attributed_welcomed_remarked_and_tagged(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        # given a channel with a welcome message, a remark template and an auto-tag
        channel, tag = automated_channel(env, welcome_text="您好{customer_name}，我是{staff_name}")
        # when a customer scans its QR code
        added = scan(env, channel, django_capture_on_commit_callbacks)
        # then the add is the channel's, with its staff member
        add = the_add(env, added)
        assert add.channel_id == channel.pk
        assert add.state == channel.state
        assert add.source == ChannelAdd.Source.CALLBACK
        # and WeCom got the welcome message, with the names filled in, within the window
        sent = env.sim.state.welcome_codes[added["welcome_code"]]
        assert sent.used
        assert sent.message["text"]["content"] == f"您好{added['name']}，我是{add.staff.name}"
        assert add.welcome_status == ChannelAdd.Welcome.SENT
        assert add.welcome_seconds is not None and add.welcome_seconds < 20
        outbox = Outbox.objects.for_corp(env.corp).get(pk=add.welcome_outbox_id)
        assert outbox.idempotency_key == f"welcome:{added['welcome_code']}"
        assert outbox.status == Outbox.Status.DONE
        # and the timeline says so
        kinds = list(
            Event.objects.for_corp(env.corp).filter(customer=add.customer).values_list("kind", flat=True)
        )
        assert (
            Event.Kind.WELCOMED in kinds and Event.Kind.TAGGED in kinds and Event.Kind.REMARK_CHANGED in kinds
        )
        # and the remark and the tag are on the relation here and, once sent, in WeCom
        relation = FollowRelation.objects.get(pk=add.relation_id)
        assert relation.remark == f"{added['name']}-抖音"[:20]
        assert RelationTag.objects.filter(relation=relation, tag=tag).exists()
        send_due()
        follow = env.sim.state.customers[added["external_userid"]].follows[added["userid"]]
        assert follow.remark == relation.remark
        assert tag.wecom_tag_id == "" or tag.wecom_tag_id in follow.tag_ids


def test_adds_without_channel_are_other_unknown_and_get_the_corp_default(
    settings, django_capture_on_commit_callbacks
):
    with simulated_wecom(settings) as env:
        staff_like_sim(env)
        welcome(env, None, "欢迎关注")
        # when a customer adds a member outside any channel, and another with a state no channel has
        with django_capture_on_commit_callbacks(execute=True):
            plain = env.act("add_customer", state="")
            stray = env.act("add_customer", state="poster-old", add_way=1)
        # then both are attributed to nobody, and welcomed with the corp default
        for added in (plain, stray):
            add = the_add(env, added)
            assert add.channel_id is None
            assert add.welcome_status == ChannelAdd.Welcome.SENT
            assert env.sim.state.welcome_codes[added["welcome_code"]].message["text"]["content"] == "欢迎关注"
        assert the_add(env, stray).state == "poster-old"


def test_no_message_configured_is_recorded_not_sent(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff_like_sim(env)
        with django_capture_on_commit_callbacks(execute=True):
            added = env.act("add_customer")
        add = the_add(env, added)
        assert add.welcome_status == ChannelAdd.Welcome.NO_MESSAGE
        assert not env.sim.state.welcome_codes[added["welcome_code"]].used


@pytest.mark.parametrize(
    ("errcode", "status"),
    [(41050, ChannelAdd.Welcome.REJECTED), (41051, ChannelAdd.Welcome.REJECTED)],
)
def test_final_refusals_are_recorded_and_never_retried(
    settings, django_capture_on_commit_callbacks, errcode, status
):
    with simulated_wecom(settings) as env:
        staff_like_sim(env)
        welcome(env, None)
        # given WeCom refuses the welcome code
        env.sim.limits.add_fault(api="externalcontact/send_welcome_msg", kind="errcode", errcode=errcode)
        with django_capture_on_commit_callbacks(execute=True):
            added = env.act("add_customer")
        # then the add says why, the timeline too, and nothing is tried again
        add = the_add(env, added)
        assert add.welcome_status == status
        assert add.welcome_errcode == errcode
        assert str(errcode) in add.welcome_reason
        row = Outbox.objects.get(pk=add.welcome_outbox_id)
        assert row.status == Outbox.Status.FAILED and row.attempts == 1
        calls = env.sim.limits.faults[0].hits
        send_due()
        assert env.sim.limits.faults[0].hits == calls
        event = Event.objects.for_corp(env.corp).get(customer=add.customer, kind=Event.Kind.WELCOME_NOT_SENT)
        assert event.payload["errcode"] == errcode


def test_41096_is_retried_within_the_window(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff_like_sim(env)
        welcome(env, None)
        # given the code is "being distributed" twice, then free
        env.sim.limits.add_fault(
            api="externalcontact/send_welcome_msg", kind="errcode", errcode=41096, remaining=2
        )
        with django_capture_on_commit_callbacks(execute=True):
            added = env.act("add_customer")
        add = the_add(env, added)
        assert add.welcome_status == ChannelAdd.Welcome.SENT
        assert env.sim.state.welcome_codes[added["welcome_code"]].used


def test_41096_until_the_window_ends_is_expired(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff_like_sim(env)
        welcome(env, None)
        env.sim.limits.add_fault(api="externalcontact/send_welcome_msg", kind="errcode", errcode=41096)
        with django_capture_on_commit_callbacks(execute=True):
            added = env.act("add_customer")
        add = the_add(env, added)
        # the gateway's retries run out first; the outbox's next try would come after the window
        row = Outbox.objects.get(pk=add.welcome_outbox_id)
        if row.status == Outbox.Status.PENDING:
            with clock.frozen_at(add.welcome_deadline + dt.timedelta(seconds=1)):
                send_due()
            row.refresh_from_db()
        add.refresh_from_db()
        assert row.status == Outbox.Status.FAILED
        assert add.welcome_status == ChannelAdd.Welcome.EXPIRED
        assert not env.sim.state.welcome_codes[added["welcome_code"]].used


def test_timeout_then_sent(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff_like_sim(env)
        welcome(env, None)
        settings.SIYU = {**settings.SIYU, "WECOM_HTTP_TIMEOUT": 0.5}
        from siyu.wecom import gateway

        gateway._http = None  # the client's timeout is read when it is made
        # given WeCom does not answer the first try in time
        env.sim.limits.add_fault(
            api="externalcontact/send_welcome_msg", kind="timeout", seconds=1, remaining=1
        )
        try:
            with django_capture_on_commit_callbacks(execute=True):
                added = env.act("add_customer")
        finally:
            gateway._http = None
        add = the_add(env, added)
        # then the retry within the window is sent, and the outcome recorded
        assert add.welcome_status == ChannelAdd.Welcome.SENT
        assert env.sim.state.welcome_codes[added["welcome_code"]].used


def test_expired_before_sending(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff_like_sim(env)
        welcome(env, None)
        added = env.sim.actions.add_customer()
        env.deliver()
        # when the worker only gets to the callback after the code's 20 s
        with (
            clock.frozen_at(clock.now() + dt.timedelta(seconds=30)),
            django_capture_on_commit_callbacks(execute=True),
        ):
            env.work()
        add = the_add(env, added)
        assert add.welcome_status == ChannelAdd.Welcome.EXPIRED
        assert add.welcome_outbox_id is None
        assert not env.sim.state.welcome_codes[added["welcome_code"]].used
        assert Event.objects.for_corp(env.corp).filter(kind=Event.Kind.WELCOME_NOT_SENT).count() == 1


def test_auto_tags_apply_once_through_redelivery_and_sync(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff = staff_like_sim(env)
        tag = factories.make_tag(env.corp, "直播", group="来源")
        channel = channel_with_way(env, staff[:1], tag_ids=[tag.pk])
        added = scan(env, channel, django_capture_on_commit_callbacks)
        relation = FollowRelation.objects.get(pk=the_add(env, added).relation_id)
        assert RelationTag.objects.filter(relation=relation, tag=tag).count() == 1
        tagged = Event.objects.for_corp(env.corp).filter(kind=Event.Kind.TAGGED, customer=relation.customer)
        assert tagged.count() == 1
        # when WeCom delivers the add again, and a reconciliation reads WeCom afterwards
        redeliver_last(env, django_capture_on_commit_callbacks)
        send_due()
        run = start_sync(corp=env.corp, kind="reconcile", enqueue=False)
        with django_capture_on_commit_callbacks(execute=True):
            run_sync(run.pk)
        # then the tag is there once, recorded once, applied by the rule once
        assert RelationTag.objects.filter(relation=relation, tag=tag).count() == 1
        assert tagged.count() == 1
        assert (
            RuleApplication.objects.for_corp(env.corp).filter(rule_key=f"channel:{channel.pk}").count() == 1
        )
        # and removing the tag by hand is not undone by the rule
        from siyu.tags.services import mark_relation_tags

        mark_relation_tags(relation=relation, remove=[tag], source=Event.Source.CONSOLE)
        from siyu.channels.handlers import automate

        automate(the_add(env, added))
        assert not RelationTag.objects.filter(relation=relation, tag=tag).exists()


def test_changing_staff_keeps_past_attribution(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff = staff_like_sim(env)
        channel = channel_with_way(env, staff[:1])
        first = scan(env, channel, django_capture_on_commit_callbacks)
        # when the channel's staff change
        from siyu.channels.services import MemberInput, channel_input, update_channel

        data = channel_input(channel)
        update_channel(
            actor=operator_of(env.corp),
            channel=channel,
            data=type(data)(**{**data.__dict__, "members": [MemberInput(staff_id=staff[1].pk)]}),
        )
        send_due()
        second = scan(env, channel, django_capture_on_commit_callbacks)
        # then both adds stay the channel's, each with its own staff member
        assert the_add(env, first).channel_id == channel.pk
        assert the_add(env, first).staff_id == staff[0].pk
        assert the_add(env, second).channel_id == channel.pk
        assert the_add(env, second).staff_id == staff[1].pk


def test_attachments_go_with_media_ids_from_an_upload(settings, django_capture_on_commit_callbacks):
    import io

    from PIL import Image

    from siyu.channels.models import MediaAsset
    from siyu.channels.services import add_media_asset

    with simulated_wecom(settings) as env:
        staff_like_sim(env)
        picture = io.BytesIO()
        Image.new("RGB", (32, 32), "teal").save(picture, format="PNG")
        asset = add_media_asset(
            actor=operator_of(env.corp),
            kind="image",
            filename="新品.png",
            content=picture.getvalue(),
            content_type="image/png",
        )
        save_welcome_message(
            actor=operator_of(env.corp),
            channel=None,
            variants=[
                VariantInput(
                    text="看看新品",
                    attachments=[
                        {"msgtype": "image", "asset_id": asset.pk},
                        {"msgtype": "link", "title": "新品", "url": "https://example.com/n"},
                    ],
                )
            ],
        )
        with django_capture_on_commit_callbacks(execute=True):
            added = env.act("add_customer")
        sent = env.sim.state.welcome_codes[added["welcome_code"]].message
        [image, link] = sent["attachments"]
        asset = MediaAsset.objects.get(pk=asset.pk)
        assert image == {"msgtype": "image", "image": {"media_id": asset.media_id}}
        assert asset.media_id in env.sim.state.media
        assert link["link"]["url"] == "https://example.com/n"
        assert the_add(env, added).welcome_status == ChannelAdd.Welcome.SENT


@pytest.mark.parametrize("attributed_by_the_beat", [False, True])
def test_an_add_a_sync_read_first_is_still_the_callbacks_and_gets_its_welcome(
    settings, django_capture_on_commit_callbacks, attributed_by_the_beat
):
    from siyu.channels.handlers import attribute_missed

    with simulated_wecom(settings) as env:
        staff = staff_like_sim(env)
        channel = channel_with_way(env, staff[:1], welcome_mode=Channel.WelcomeMode.OWN)
        welcome(env, channel)
        # given a customer who scans the code, and a full sync that reads their new relation from WeCom
        # before the add's callback is worked (and the beat attributing that relation, or not yet)
        added = env.sim.actions.scan_contact_way(config_id=channel.config_id)
        run = start_sync(corp=env.corp, kind="full", enqueue=False)
        with django_capture_on_commit_callbacks(execute=True):
            run_sync(run.pk)
        relation = FollowRelation.objects.for_corp(env.corp).get(
            customer__external_userid=added["external_userid"]
        )
        if attributed_by_the_beat:
            attribute_missed()
            assert ChannelAdd.objects.get(relation=relation).source == ChannelAdd.Source.SYNC
        # when the callback is worked
        env.deliver()
        with django_capture_on_commit_callbacks(execute=True):
            env.work()
        # then the add is the callback's, attributed to the channel, and the customer is welcomed once
        add = ChannelAdd.objects.get(relation=relation)
        assert (add.source, add.channel_id, add.welcome_status) == (
            ChannelAdd.Source.CALLBACK,
            channel.pk,
            ChannelAdd.Welcome.SENT,
        )
        assert add.received_at is not None
        assert env.sim.state.welcome_codes[added["welcome_code"]].used
        welcomed = Event.objects.for_corp(env.corp).filter(
            kind=Event.Kind.WELCOMED, customer=relation.customer
        )
        assert welcomed.count() == 1
        # and a redelivery of the callback changes nothing
        redeliver_last(env, django_capture_on_commit_callbacks)
        assert ChannelAdd.objects.filter(relation=relation).count() == 1
        assert Outbox.objects.for_corp(env.corp).filter(api="externalcontact/send_welcome_msg").count() == 1
        assert welcomed.count() == 1
