"""Helpers for the channel tests: an operator of the simulated corp, its staff, a channel with its QR."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from siyu.channels.models import Channel
from siyu.channels.services import (
    ChannelInput,
    MemberInput,
    VariantInput,
    create_channel,
    save_welcome_message,
)
from siyu.corps.access import Actor
from siyu.corps.models import Corp, Role, Staff
from siyu.corps.services import upsert_staff
from siyu.tags.models import Tag
from siyu.wecom.outbox import send_due
from tests import factories


def operator_of(corp: Corp) -> Actor:
    return Actor(corp=corp, role=Role.OPERATOR)


def staff_like_sim(env: Any) -> list[Staff]:
    """The simulator's members who may take customers, as Siyu's staff (what a sync would bring)."""
    state = env.sim.state
    return [
        upsert_staff(corp=env.corp, userid=userid, name=state.staff[userid].name)
        for userid in state.follow_users()
    ]


def channel_with_way(
    env: Any,
    members: Sequence[Staff],
    *,
    backups: Sequence[Staff] = (),
    caps: dict[str, int] | None = None,
    **fields: Any,
) -> Channel:
    """A channel of ``members`` (and ``backups``) whose contact way the worker made in the simulator."""
    caps = caps or {}
    data = ChannelInput(
        name=fields.pop("name", "抖音直播间"),
        members=[
            *(MemberInput(staff_id=s.pk, daily_cap=caps.get(s.userid)) for s in members),
            *(MemberInput(staff_id=s.pk, is_backup=True, daily_cap=caps.get(s.userid)) for s in backups),
        ],
        **fields,
    )
    channel = create_channel(actor=operator_of(env.corp), data=data)
    send_due()
    channel.refresh_from_db()
    assert channel.config_id, channel.push_error
    return channel


def way_users(env: Any, channel: Channel) -> list[str]:
    """Who the simulator's contact way lists now."""
    return list(env.sim.state.contact_ways[channel.config_id].user)


def automated_channel(env: Any, welcome_text: str) -> tuple[Channel, Tag]:
    """A channel of two members with its own welcome message, remark template and auto-tag; and the tag."""
    staff = staff_like_sim(env)
    tag = factories.make_tag(env.corp, "抖音", group="来源")
    channel = channel_with_way(
        env,
        staff[:2],
        welcome_mode=Channel.WelcomeMode.OWN,
        remark_template="{customer_name}-抖音",
        tag_ids=[tag.pk],
    )
    save_welcome_message(
        actor=operator_of(env.corp), channel=channel, variants=[VariantInput(text=welcome_text)]
    )
    return channel, tag
