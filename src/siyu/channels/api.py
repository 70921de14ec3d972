"""Channels over the REST API: reads for everyone (within their scope), changes for admins and operators."""

from __future__ import annotations

import datetime as dt

from django.http import HttpRequest
from ninja import Field, Router, Schema
from ninja.responses import Status

from siyu.api.schemas import ERRORS, BodyId, StaffRef, current_actor
from siyu.channels import selectors, services, stats
from siyu.channels.models import Channel, ChannelAdd, WelcomeVariant
from siyu.corps.access import Actor

router = Router(tags=["channels"])


# ---- schemas ---------------------------------------------------------------------------------------------


class ScheduleIO(Schema):
    weekdays: int = Field(description="Bit mask of weekdays, bit 0 is Monday (127: every day).", ge=1, le=127)
    start: dt.time
    end: dt.time = Field(description="Past midnight when not after start.")


class MemberIO(Schema):
    staff_id: BodyId
    is_backup: bool = Field(False, description="Receives only while no other member can.")
    weight: int = Field(1, ge=1, le=100, description="Share with the weighted spread.")
    daily_cap: int | None = Field(None, ge=1, description="Adds through this channel per day; empty: none.")
    schedules: list[ScheduleIO] = Field([], description="When the member serves; none: always.")


class ChannelIn(Schema):
    name: str = Field(description="At most 60 characters.")
    members: list[MemberIO]
    group_id: BodyId | None = None
    distribution: str = Field("round_robin", description="round_robin, weighted or fewest_today.")
    skip_verify: bool = Field(True, description="Accept customers automatically.")
    skip_verify_start: dt.time | None = Field(
        None, description="Auto-accept only from this time (corp time)."
    )
    skip_verify_end: dt.time | None = None
    remark_template: str = Field(
        "", description="Placeholders {customer_name}, {staff_name}, {channel_name}."
    )
    description_template: str = ""
    welcome_mode: str = Field("default", description="default, own or none.")
    tag_ids: list[BodyId] = Field([], description="Tags every customer added through the channel gets.")

    def as_input(self) -> services.ChannelInput:
        return services.ChannelInput(
            name=self.name,
            members=[
                services.MemberInput(
                    staff_id=m.staff_id,
                    is_backup=m.is_backup,
                    weight=m.weight,
                    daily_cap=m.daily_cap,
                    schedules=[services.ScheduleInput(w.weekdays, w.start, w.end) for w in m.schedules],
                )
                for m in self.members
            ],
            group_id=self.group_id,
            distribution=self.distribution,
            skip_verify=self.skip_verify,
            skip_verify_start=self.skip_verify_start,
            skip_verify_end=self.skip_verify_end,
            remark_template=self.remark_template,
            description_template=self.description_template,
            welcome_mode=self.welcome_mode,
            tag_ids=self.tag_ids,
        )


class ChannelOut(Schema):
    id: int
    name: str
    state: str = Field(description="The contact way's state: every add that carries it is this channel's.")
    status: str
    group_id: int | None
    distribution: str
    skip_verify: bool
    skip_verify_start: dt.time | None
    skip_verify_end: dt.time | None
    remark_template: str
    description_template: str
    welcome_mode: str
    config_id: str = Field(description="WeCom's contact way id; empty until WeCom created it.")
    qr_code: str
    listed_userids: list[str] = Field(description="Who the contact way lists now, as last told to WeCom.")
    push_error: str
    members: list[MemberIO]
    tag_ids: list[int]
    created_at: dt.datetime

    @classmethod
    def of(cls, channel: Channel) -> ChannelOut:
        data = services.channel_input(channel)
        return cls(
            id=channel.pk,
            name=channel.name,
            state=channel.state,
            status=channel.status,
            group_id=channel.group_id,
            distribution=channel.distribution,
            skip_verify=channel.skip_verify,
            skip_verify_start=channel.skip_verify_start,
            skip_verify_end=channel.skip_verify_end,
            remark_template=channel.remark_template,
            description_template=channel.description_template,
            welcome_mode=channel.welcome_mode,
            config_id=channel.config_id,
            qr_code=channel.qr_code,
            listed_userids=list(channel.pushed.get("user") or []),
            push_error=channel.push_error,
            members=[
                MemberIO(
                    staff_id=m.staff_id,
                    is_backup=m.is_backup,
                    weight=m.weight,
                    daily_cap=m.daily_cap,
                    schedules=[
                        ScheduleIO(weekdays=w.weekdays, start=w.start, end=w.end) for w in m.schedules
                    ],
                )
                for m in data.members
            ],
            tag_ids=list(data.tag_ids),
            created_at=channel.created_at,
        )


class ChannelSummaryOut(Schema):
    id: int
    name: str
    state: str
    status: str
    group_id: int | None
    adds_today: int
    welcomed_today: int
    adds: int


class AddOut(Schema):
    id: int
    customer_id: int
    staff: StaffRef
    channel_id: int | None = Field(description="Empty: other / unknown (no state, or one no channel has).")
    state: str
    added_at: dt.datetime
    received_at: dt.datetime | None
    welcome_status: str
    welcome_reason: str
    welcome_errcode: int | None
    welcome_seconds: float | None = Field(description="From the callback to WeCom accepting the welcome.")
    paused: bool

    @classmethod
    def of(cls, add: ChannelAdd) -> AddOut:
        return cls(
            id=add.pk,
            customer_id=add.customer_id,
            staff=StaffRef(id=add.staff_id, userid=add.staff.userid, name=add.staff.name),
            channel_id=add.channel_id,
            state=add.state,
            added_at=add.added_at,
            received_at=add.received_at,
            welcome_status=add.welcome_status,
            welcome_reason=add.welcome_reason,
            welcome_errcode=add.welcome_errcode,
            welcome_seconds=add.welcome_seconds,
            paused=add.paused,
        )


class LinkIO(Schema):
    msgtype: str = Field(description="image, video, file (with asset_id), link, or miniprogram.")
    asset_id: int | None = None
    title: str = ""
    url: str = ""
    desc: str = ""
    picurl: str = ""
    appid: str = ""
    page: str = ""


class VariantIO(Schema):
    text: str = Field("", description="At most 4000 bytes; placeholders as in remarks.")
    attachments: list[LinkIO] = Field([], description="Up to 9, as WeCom allows.")
    weekdays: int = Field(127, ge=1, le=127)
    start: dt.time | None = None
    end: dt.time | None = None

    @classmethod
    def of(cls, variant: WelcomeVariant) -> VariantIO:
        return cls(
            text=variant.text,
            attachments=[LinkIO(**a) for a in variant.attachments],
            weekdays=variant.weekdays,
            start=variant.start,
            end=variant.end,
        )


class WelcomeIn(Schema):
    variants: list[VariantIO] = Field(description="In order; the first whose days and hours hold is sent.")


# ---- helpers ---------------------------------------------------------------------------------------------


def _channel(actor: Actor, channel_id: int) -> Channel:
    return selectors.get_channel(actor, channel_id)


def _variants(payload: WelcomeIn) -> list[services.VariantInput]:
    return [
        services.VariantInput(
            text=v.text,
            attachments=[
                {k: val for k, val in a.dict().items() if val not in ("", None)} for a in v.attachments
            ],
            weekdays=v.weekdays,
            start=v.start,
            end=v.end,
        )
        for v in payload.variants
    ]


class FiguresOut(Schema):
    adds: int
    deleted_by_staff: int
    deleted_by_customer: int
    deletions: int
    net: int = Field(description="Adds less deletions.")
    retention_1d: float | None = Field(
        description="Of the adds whose first day has passed, the share still friends after it; null: none."
    )
    retention_7d: float | None
    retention_30d: float | None
    cohort_1d: int = Field(description="Adds whose first day has passed (retention_1d's denominator).")
    cohort_7d: int
    cohort_30d: int
    welcome_sent: int
    welcome_failed: int = Field(description="Refused by WeCom or failed.")
    welcome_expired: int
    welcome_not_needed: int = Field(description="No welcome code from WeCom, none configured, not connected.")
    welcome_pending: int
    welcome_rate: float | None = Field(description="sent / (sent + failed + expired); null: none tried.")
    welcome_median_seconds: float | None = Field(
        description="Median seconds from the callback to WeCom accepting the welcome (from a histogram)."
    )
    welcome_mean_seconds: float | None


class StatsRowOut(Schema):
    key: str = Field(
        description="A period's first day (ISO date), or a channel / staff id (empty: other / unknown)."
    )
    label: str
    figures: FiguresOut


class StatsOut(Schema):
    start: dt.date
    end: dt.date
    granularity: str = Field(description="day or week (ISO weeks, keyed by their Monday).")
    breakdown: str = Field(description="channel or staff: what by_key is per.")
    pending_days: int = Field(description="Days still being counted by the worker (numbers may lag).")
    total: FiguresOut
    by_period: list[StatsRowOut]
    by_key: list[StatsRowOut]

    @classmethod
    def of(cls, result: stats.Stats) -> StatsOut:
        def row(r: stats.Row) -> StatsRowOut:
            return StatsRowOut(key=r.key, label=r.label, figures=FiguresOut(**r.figures.as_dict()))

        q = result.query
        return cls(
            start=q.start,
            end=q.end,
            granularity=q.granularity,
            breakdown=q.breakdown,
            pending_days=result.pending_days,
            total=FiguresOut(**result.total.as_dict()),
            by_period=[row(r) for r in result.periods],
            by_key=[row(r) for r in result.breakdown],
        )


# ---- endpoints -------------------------------------------------------------------------------------------


@router.get("/channels", response={200: list[ChannelSummaryOut], **ERRORS}, summary="List channels")
def list_channels(request: HttpRequest, status: str = "") -> list[ChannelSummaryOut]:
    """The channels the caller may see with today's adds (the corp's day) and all adds."""
    actor = current_actor(request)
    rows = selectors.channel_rows(actor, status=status if status in Channel.Status.values else "")
    return [
        ChannelSummaryOut(
            id=r.channel.pk,
            name=r.channel.name,
            state=r.channel.state,
            status=r.channel.status,
            group_id=r.channel.group_id,
            adds_today=r.today,
            welcomed_today=r.welcomed_today,
            adds=r.total,
        )
        for r in rows
    ]


@router.post("/channels", response={201: ChannelOut, **ERRORS}, summary="Create a channel")
def create_channel(request: HttpRequest, payload: ChannelIn) -> Status[ChannelOut]:
    actor = current_actor(request)
    channel = services.create_channel(actor=actor, data=payload.as_input())
    return Status(201, ChannelOut.of(_channel(actor, channel.pk)))


@router.get("/channels/{channel_id}", response={200: ChannelOut, **ERRORS}, summary="Get a channel")
def get_channel(request: HttpRequest, channel_id: int) -> ChannelOut:
    return ChannelOut.of(_channel(current_actor(request), channel_id))


@router.put("/channels/{channel_id}", response={200: ChannelOut, **ERRORS}, summary="Change a channel")
def update_channel(request: HttpRequest, channel_id: int, payload: ChannelIn) -> ChannelOut:
    actor = current_actor(request)
    services.update_channel(actor=actor, channel=_channel(actor, channel_id), data=payload.as_input())
    return ChannelOut.of(_channel(actor, channel_id))


@router.post("/channels/{channel_id}/pause", response={200: ChannelOut, **ERRORS}, summary="Pause a channel")
def pause_channel(request: HttpRequest, channel_id: int) -> ChannelOut:
    """Auto-accept off, member list frozen; adds are attributed but get none of the channel's automation."""
    actor = current_actor(request)
    services.pause_channel(actor=actor, channel=_channel(actor, channel_id))
    return ChannelOut.of(_channel(actor, channel_id))


@router.post(
    "/channels/{channel_id}/resume", response={200: ChannelOut, **ERRORS}, summary="Resume a channel"
)
def resume_channel(request: HttpRequest, channel_id: int) -> ChannelOut:
    actor = current_actor(request)
    services.resume_channel(actor=actor, channel=_channel(actor, channel_id))
    return ChannelOut.of(_channel(actor, channel_id))


@router.post(
    "/channels/{channel_id}/archive", response={200: ChannelOut, **ERRORS}, summary="Archive a channel"
)
def archive_channel(request: HttpRequest, channel_id: int) -> ChannelOut:
    """Deletes the contact way in WeCom (the QR code stops working); the adds stay attributed."""
    actor = current_actor(request)
    services.archive_channel(actor=actor, channel=_channel(actor, channel_id))
    return ChannelOut.of(_channel(actor, channel_id))


@router.post(
    "/channels/{channel_id}/duplicate", response={201: ChannelOut, **ERRORS}, summary="Duplicate a channel"
)
def duplicate_channel(request: HttpRequest, channel_id: int) -> Status[ChannelOut]:
    actor = current_actor(request)
    copy = services.duplicate_channel(actor=actor, channel=_channel(actor, channel_id))
    return Status(201, ChannelOut.of(_channel(actor, copy.pk)))


@router.get("/channels/{channel_id}/adds", response={200: list[AddOut], **ERRORS}, summary="A channel's adds")
def channel_adds(request: HttpRequest, channel_id: int, limit: int = 50) -> list[AddOut]:
    """The latest adds through the channel that the caller may see, with their welcome outcome."""
    actor = current_actor(request)
    channel = _channel(actor, channel_id)
    return [AddOut.of(a) for a in selectors.recent_adds(actor, channel, limit=max(1, min(limit, 200)))]


@router.get(
    "/channels/{channel_id}/welcome",
    response={200: WelcomeIn, **ERRORS},
    summary="A channel's welcome message",
)
def get_welcome(request: HttpRequest, channel_id: int) -> WelcomeIn:
    actor = current_actor(request)
    channel = _channel(actor, channel_id)
    return WelcomeIn(variants=[VariantIO.of(v) for v in selectors.welcome_variants(actor.corp.pk, channel)])


@router.put(
    "/channels/{channel_id}/welcome", response={200: WelcomeIn, **ERRORS}, summary="Set a channel's welcome"
)
def set_welcome(request: HttpRequest, channel_id: int, payload: WelcomeIn) -> WelcomeIn:
    """The channel's own welcome message (used when its welcome_mode is ``own``); no variants removes it."""
    actor = current_actor(request)
    channel = _channel(actor, channel_id)
    services.save_welcome_message(actor=actor, channel=channel, variants=_variants(payload))
    return WelcomeIn(variants=[VariantIO.of(v) for v in selectors.welcome_variants(actor.corp.pk, channel)])


@router.put(
    "/welcome-message", response={200: WelcomeIn, **ERRORS}, summary="Set the default welcome message"
)
def set_default_welcome(request: HttpRequest, payload: WelcomeIn) -> WelcomeIn:
    """The corp's default: adds without a channel, and channels whose welcome_mode is ``default``."""
    actor = current_actor(request)
    services.save_welcome_message(actor=actor, channel=None, variants=_variants(payload))
    return WelcomeIn(variants=[VariantIO.of(v) for v in selectors.welcome_variants(actor.corp.pk, None)])


@router.get("/channel-stats", response={200: StatsOut, **ERRORS}, summary="Channel analytics")
def channel_stats(
    request: HttpRequest,
    start: dt.date | None = None,
    end: dt.date | None = None,
    granularity: str = "day",
    breakdown: str = "channel",
    group_id: int | None = None,
    channel: str = "",
) -> StatsOut:
    """Adds, deletions, net, retention after 1/7/30 days and welcome outcomes of the channels the caller may
    see, per day or ISO week and per channel or staff member, from the daily rollup (the corp's days; the
    last 30 days by default). ``channel``: a channel's id, or ``unknown`` for adds of no channel."""
    actor = current_actor(request)
    channel_id = _channel(actor, int(channel)).pk if channel.isdigit() else None
    query = stats.make_query(
        actor,
        start=start,
        end=end,
        granularity=granularity,
        breakdown=breakdown,
        group_id=group_id,
        channel_id=channel_id,
        unknown_only=channel == "unknown",
    )
    return StatsOut.of(stats.stats(actor, query))


@router.get(
    "/channels/{channel_id}/stats", response={200: StatsOut, **ERRORS}, summary="A channel's analytics"
)
def one_channel_stats(
    request: HttpRequest,
    channel_id: int,
    start: dt.date | None = None,
    end: dt.date | None = None,
    granularity: str = "day",
) -> StatsOut:
    """The channel's figures per day or ISO week and per staff member (see ``/channel-stats``)."""
    actor = current_actor(request)
    channel = _channel(actor, channel_id)
    query = stats.make_query(
        actor,
        start=start,
        end=end,
        granularity=granularity,
        breakdown=stats.BY_STAFF,
        channel_id=channel.pk,
    )
    return StatsOut.of(stats.stats(actor, query))
