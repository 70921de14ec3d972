"""Reads of channels and their adds, for pages, the API and channel analytics.

Scope: admins and operators see every channel and every add. A manager or a staff member sees the channels
that list someone they may see (themselves, or their departments' staff), and only those people's adds —
customers added to others stay out of their sight, as in the customer list.

Analytics read ``ChannelAdd`` directly: one row per add with ``channel_id`` (None: other / unknown),
``staff_id``, ``added_at`` and the welcome's ``welcome_status`` / ``welcome_seconds``; ``adds_per_day`` is the
grouped count they start from.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, Prefetch, QuerySet
from django.db.models.functions import TruncDate

from siyu.channels.contact_way import _members_prefetch
from siyu.channels.models import Channel, ChannelAdd, ChannelStaff, ChannelTag, WelcomeMessage, WelcomeVariant
from siyu.core.clock import now
from siyu.core.errors import NotFound
from siyu.core.timewindows import start_of_day, zone
from siyu.corps.access import Actor
from siyu.corps.models import Staff

RECENT_ADDS = 50


def visible_adds(actor: Actor) -> QuerySet[ChannelAdd]:
    """The adds the actor may see."""
    return ChannelAdd.objects.for_corp(actor.corp).filter(actor.visible_staff_ids_q())


def visible_channels(actor: Actor, *, include_archived: bool = False) -> QuerySet[Channel]:
    """The channels the actor may see (see the module)."""
    channels = Channel.objects.for_corp(actor.corp)
    if not include_archived:
        channels = channels.exclude(status=Channel.Status.ARCHIVED)
    if not actor.sees_all_customers:
        members = ChannelStaff.objects.for_corp(actor.corp).filter(actor.visible_staff_ids_q())
        channels = channels.filter(pk__in=members.values("channel_id"))
    return channels


def get_channel(actor: Actor, channel_id: int) -> Channel:
    """One channel the actor may see; 404 otherwise (another corp's, or out of scope)."""
    channel = (
        visible_channels(actor, include_archived=True)
        .filter(pk=channel_id)
        .select_related("group", "corp")
        .prefetch_related(_members_prefetch(actor.corp))
        .first()
    )
    if channel is None:
        raise NotFound()
    return channel


@dataclass
class ChannelRow:
    """A channel with its counts for the list."""

    channel: Channel
    today: int = 0
    total: int = 0
    welcomed_today: int = 0
    members: list[str] = field(default_factory=list)


def channel_rows(actor: Actor, *, status: str = "", group_id: int | None = None) -> list[ChannelRow]:
    """The list page: channels with today's adds, all adds and who receives — four queries in all."""
    channels = visible_channels(actor, include_archived=status == Channel.Status.ARCHIVED)
    if status:
        channels = channels.filter(status=status)
    if group_id is not None:
        channels = channels.filter(group_id=group_id)
    rows = {
        c.pk: ChannelRow(channel=c)
        for c in channels.select_related("group").prefetch_related(
            Prefetch(
                "members",
                queryset=ChannelStaff.objects.for_corp(actor.corp)
                .select_related("staff")
                .order_by("is_backup", "order"),
            )
        )
    }
    for row in rows.values():
        row.members = [m.staff.name for m in row.channel.members.all()]
    adds = visible_adds(actor).filter(channel_id__in=list(rows))
    since = start_of_day(now(), actor.corp.time_zone)
    for channel_id, n in adds.values_list("channel_id").annotate(n=Count("id")).order_by():
        rows[channel_id].total = n
    for channel_id, status_value, n in (
        adds.filter(added_at__gte=since)
        .values_list("channel_id", "welcome_status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        rows[channel_id].today += n
        if status_value == ChannelAdd.Welcome.SENT:
            rows[channel_id].welcomed_today += n
    return list(rows.values())


@dataclass
class MemberToday:
    """A member of a channel with their adds through it today and whether WeCom lists them now."""

    member: ChannelStaff
    today: int
    listed: bool


def members_today(channel: Channel) -> list[MemberToday]:
    """The channel's members (prefetched) with today's adds through the channel."""
    since = start_of_day(now(), channel.corp.time_zone)
    counts = dict(
        ChannelAdd.objects.for_corp(channel.corp_id)
        .filter(channel=channel, added_at__gte=since)
        .values_list("staff_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    listed = set(channel.pushed.get("user") or [])
    return [
        MemberToday(member=m, today=counts.get(m.staff_id, 0), listed=m.staff.userid in listed)
        for m in channel.members.all()
    ]


def recent_adds(actor: Actor, channel: Channel | None, *, limit: int = RECENT_ADDS) -> list[ChannelAdd]:
    """The latest adds of a channel (or of none: other / unknown) the actor may see."""
    adds = visible_adds(actor).filter(channel=channel).select_related("customer", "staff")
    return list(adds.order_by("-added_at", "-id")[:limit])


def channel_tags(channel: Channel) -> list[int]:
    return list(
        ChannelTag.objects.for_corp(channel.corp_id).filter(channel=channel).values_list("tag_id", flat=True)
    )


def welcome_variants(corp_id: int, channel: Channel | None) -> list[WelcomeVariant]:
    """The variants of a channel's own welcome message (or of the corp default), in order."""
    message = WelcomeMessage.objects.for_corp(corp_id).filter(channel=channel).first()
    if message is None:
        return []
    return list(WelcomeVariant.objects.for_corp(corp_id).filter(message=message).order_by("order", "id"))


@dataclass(frozen=True)
class DayCount:
    """Adds of one day (the corp's calendar), of one channel (None: other / unknown) and staff member."""

    day: dt.date
    channel_id: int | None
    staff_id: int
    adds: int
    welcomed: int


def adds_per_day(
    actor: Actor, *, start: dt.date, end: dt.date, channel_ids: list[int] | None = None
) -> list[DayCount]:
    """Adds per day, channel and staff member in [start, end] (the corp's days), and how many welcomed."""
    tz = zone(actor.corp.time_zone)
    since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    adds = visible_adds(actor).filter(added_at__gte=since, added_at__lt=until)
    if channel_ids is not None:
        adds = adds.filter(channel_id__in=channel_ids)
    counts: dict[tuple[dt.date, int | None, int], list[int]] = defaultdict(lambda: [0, 0])
    for day, channel_id, staff_id, status, n in (
        adds.annotate(day=TruncDate("added_at", tzinfo=tz))
        .values_list("day", "channel_id", "staff_id", "welcome_status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        entry = counts[(day, channel_id, staff_id)]
        entry[0] += n
        if status == ChannelAdd.Welcome.SENT:
            entry[1] += n
    return [
        DayCount(day=k[0], channel_id=k[1], staff_id=k[2], adds=v[0], welcomed=v[1])
        for k, v in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2]))
    ]


def staff_choices(actor: Actor) -> list[Staff]:
    """Staff who can be a channel's members: active, with customer-contact permission."""
    return list(
        Staff.objects.for_corp(actor.corp)
        .filter(status=Staff.Status.ACTIVE, has_contact_permission=True)
        .order_by("name", "id")
    )
