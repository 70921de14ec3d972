"""A channel's QR code and poster, duplicate and archive — against the simulated WeCom."""

from __future__ import annotations

import io

import pytest
from django.test import Client
from PIL import Image

from siyu.channels.models import Channel, ChannelAdd, WelcomeMessage
from siyu.channels.services import (
    VariantInput,
    archive_channel,
    duplicate_channel,
    save_welcome_message,
)
from siyu.corps.models import Role
from siyu.corps.services import create_console_user
from siyu.wecom.outbox import send_due
from tests.channels.support import channel_with_way, operator_of, staff_like_sim
from tests.wecom.inbound_support import simulated_wecom

pytestmark = pytest.mark.django_db


def test_qr_sizes_and_poster_come_from_wecoms_image(settings):
    with simulated_wecom(settings) as env:
        staff = staff_like_sim(env)
        channel = channel_with_way(env, staff[:1], name="门店")
        user = create_console_user(corp=env.corp, username="ops", password="x" * 12, role=Role.OPERATOR)
        client = Client()
        client.force_login(user)
        # when the QR code is asked for in two sizes, and as a poster
        small = client.get(f"/channels/{channel.pk}/qr.png?size=8cm")
        large = client.get(f"/channels/{channel.pk}/qr.png?size=50cm&download=1")
        poster = client.get(f"/channels/{channel.pk}/poster.png?title=扫码领券&text=到店出示")
        # then they are PNGs of the print sizes, scaled from WeCom's (the simulator's) own image
        assert Image.open(io.BytesIO(small.content)).size == (258, 258)
        assert Image.open(io.BytesIO(large.content)).size == (1280, 1280)
        assert "attachment" in large["Content-Disposition"]
        assert Image.open(io.BytesIO(poster.content)).size == (1240, 1754)
        assert client.get(f"/channels/{channel.pk}/qr.png?size=2m").status_code == 400


def test_duplicate_has_its_own_state_and_contact_way(settings):
    with simulated_wecom(settings) as env:
        staff = staff_like_sim(env)
        channel = channel_with_way(env, staff[:2], welcome_mode=Channel.WelcomeMode.OWN)
        operator = operator_of(env.corp)
        save_welcome_message(actor=operator, channel=channel, variants=[VariantInput(text="你好")])
        copy = duplicate_channel(actor=operator, channel=channel)
        send_due()
        copy.refresh_from_db()
        assert copy.state != channel.state
        assert copy.config_id and copy.config_id != channel.config_id
        assert sorted(env.sim.state.contact_ways[copy.config_id].user) == sorted(s.userid for s in staff[:2])
        assert WelcomeMessage.objects.for_corp(env.corp).get(channel=copy).variants.get().text == "你好"


def test_archive_deletes_the_contact_way_and_keeps_attribution(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff = staff_like_sim(env)
        channel = channel_with_way(env, staff[:1])
        with django_capture_on_commit_callbacks(execute=True):
            added = env.act("scan_contact_way", config_id=channel.config_id)
        archive_channel(actor=operator_of(env.corp), channel=channel)
        send_due()
        assert channel.config_id not in env.sim.state.contact_ways
        add = ChannelAdd.objects.for_corp(env.corp).get(customer__external_userid=added["external_userid"])
        assert add.channel_id == channel.pk
        assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ARCHIVED
