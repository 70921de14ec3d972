"""The demo corp's channels: one per channel of the seed's history, configured as an operator would.

``seed_channels`` makes them (once) through the services — members who took most of the channel's customers,
a backup, a daily cap small enough that the demo's traffic reaches it within minutes, the channel's 来源渠道
tag, welcome messages — and attributes the seeded history to them (``backfill_adds``). Their contact ways
are created in WeCom (the simulator) by the worker's periodic push once the corp is connected; from then on
``contact_ways_for_export`` carries them into the simulator's state file, so the traffic driver keeps scanning
the same codes across restarts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count

from siyu.channels import rollups
from siyu.channels.models import Channel
from siyu.channels.services import (
    ChannelInput,
    MemberInput,
    ScheduleInput,
    VariantInput,
    backfill_adds,
    create_channel,
    save_welcome_message,
)
from siyu.core.timewindows import EVERY_DAY, weekdays_mask
from siyu.corps.access import Actor
from siyu.corps.models import Corp, Role, Staff
from siyu.customers.models import FollowRelation
from siyu.tags.models import Tag

# The demo's traffic (20 adds a minute, 70 % through channels) brings a channel about 3 a minute: a cap of 15
# a day shows a member filling up and the backup taking over within the first quarter hour.
DEMO_CAP = 15
PRIMARY = 2  # members per channel besides its backup
DEFAULT_WELCOME = "您好{customer_name}，我是{staff_name}，很高兴为您服务！有任何问题随时找我～"
STORE_DAY = "欢迎光临{channel_name}！我是店员{staff_name}，到店出示本消息可领取新人礼一份。"
STORE_EVENING = "晚上好{customer_name}，门店已打烊，我是{staff_name}，明早十点起为您服务。"


def _members(corp: Corp, state: str) -> list[Staff]:
    takers = (
        FollowRelation.objects.for_corp(corp)
        .filter(state=state, staff__status=Staff.Status.ACTIVE, staff__has_contact_permission=True)
        .values("staff_id")
        .annotate(n=Count("id"))
        .order_by("-n", "staff_id")
    )
    ids = [row["staff_id"] for row in takers[: PRIMARY + 1]]
    staff = {s.pk: s for s in Staff.objects.for_corp(corp).filter(pk__in=ids)}
    return [staff[i] for i in ids if i in staff]


def seed_channels(*, corp: Corp, channels: dict[str, str]) -> list[Channel]:
    """One channel per ``state → name`` (those that do not exist yet), and the history attributed to them."""
    actor = Actor(corp=corp, role=Role.ADMIN)
    made = []
    for state, name in channels.items():
        if Channel.objects.for_corp(corp).filter(state=state).exists():
            continue
        people = _members(corp, state)
        if not people:
            continue
        tags = list(
            Tag.objects.for_corp(corp).filter(group__name="来源渠道", name=name).values_list("pk", flat=True)
        )
        store = state == "ch_store"
        members = [
            MemberInput(
                staff_id=s.pk,
                daily_cap=DEMO_CAP,
                # The store's staff work shifts; the others answer whenever.
                schedules=[ScheduleInput(weekdays_mask(range(7)), dt.time(10), dt.time(22))] if store else [],
            )
            for s in people[:PRIMARY]
        ]
        members += [MemberInput(staff_id=s.pk, is_backup=True) for s in people[PRIMARY:]]
        channel = create_channel(
            actor=actor,
            state=state,
            data=ChannelInput(
                name=name,
                members=members,
                distribution=Channel.Distribution.WEIGHTED if store else Channel.Distribution.ROUND_ROBIN,
                remark_template="{customer_name}-" + name,
                welcome_mode=Channel.WelcomeMode.OWN if store else Channel.WelcomeMode.DEFAULT,
                tag_ids=tags,
            ),
        )
        if store:
            save_welcome_message(
                actor=actor,
                channel=channel,
                variants=[
                    VariantInput(text=STORE_DAY, weekdays=EVERY_DAY, start=dt.time(10), end=dt.time(21)),
                    VariantInput(text=STORE_EVENING),
                ],
            )
        made.append(channel)
    save_welcome_message(actor=actor, channel=None, variants=[VariantInput(text=DEFAULT_WELCOME)])
    backfill_adds(corp=corp)
    rollups.rebuild(corp)
    return made


def contact_ways_for_export(corp: Corp) -> list[dict[str, Any]]:
    """The contact ways of the corp's live channels as the simulator's state file lists them."""
    ways = []
    for channel in (
        Channel.objects.for_corp(corp).exclude(status=Channel.Status.ARCHIVED).exclude(config_id="")
    ):
        users = list(channel.pushed.get("user") or [])
        if not users:
            continue
        ways.append(
            {
                "config_id": channel.config_id,
                "state": channel.state,
                "remark": channel.name[:30],
                "type": 2,
                "scene": 2,
                "user": users,
                "qr_code": channel.qr_code,
                "skip_verify": bool(channel.pushed.get("skip_verify", True)),
            }
        )
    return ways
