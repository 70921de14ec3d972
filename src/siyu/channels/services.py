"""Operations on channels, their members, welcome messages and media: the only write path of ``channels``.

Every change an operator makes is checked, saved, audited, and — when it changes what the contact way should
say — pushed to WeCom through the outbox (``contact_way.push``). What the states mean in WeCom's terms:

- *active*: the contact way lists the members who should receive now, auto-accept as configured;
- *paused*: the contact way and its QR code stay (printed posters keep working), but auto-accept is turned
  off (``skip_verify`` false: each request waits for a member to accept it) and the member list is frozen;
  adds keep being attributed to the channel, marked paused, and get the corp default welcome message but none
  of the channel's own automation (welcome, remark, auto-tags);
- *archived*: the contact way is deleted in WeCom (``del_contact_way``: its QR code stops working); the
  channel and every add attributed to it stay, and its state is never given to another channel.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.translation import gettext as _

from siyu.channels import contact_way, rollups
from siyu.channels.models import (
    STATE_MAX,
    Channel,
    ChannelAdd,
    ChannelGroup,
    ChannelSchedule,
    ChannelStaff,
    ChannelTag,
    MediaAsset,
    WelcomeMessage,
    WelcomeVariant,
)
from siyu.channels.welcome import (
    ASSET_KINDS,
    ATTACHMENTS_MAX,
    LINK_DESC_MAX,
    LINK_TITLE_MAX,
    MINIPROGRAM_TITLE_MAX,
    TEXT_MAX_BYTES,
    URL_MAX,
    check_template,
)
from siyu.core.bulk import insert_rows
from siyu.core.clock import now
from siyu.core.errors import Invalid, NotFound
from siyu.core.timewindows import EVERY_DAY
from siyu.corps.access import Actor
from siyu.corps.models import Corp, Staff
from siyu.corps.services import audit
from siyu.customers.models import FollowRelation
from siyu.tags.services import resolve_tags
from siyu.wecom import schemas as s
from siyu.wecom.limits import Priority
from siyu.wecom.media import MAX_BYTES, MIN_BYTES
from siyu.wecom.outbox import enqueue_write
from siyu.wecom.services import sends_to_wecom

NAME_MAX = 60
GROUP_NAME_MAX = 30
WEIGHT_MAX = 100
CAP_MAX = 100_000
MEMBERS_MAX = contact_way.USERS_MAX
VARIANTS_MAX = 20
STATE_ALPHABET = string.ascii_lowercase + string.digits
STATE_CHARS = set(STATE_ALPHABET + string.ascii_uppercase + "-_")
# Generated states: "c" and 9 characters (36^9 ≈ 10^14 codes), short enough to read in a URL or a log.
STATE_LENGTH = 9
# Image types WeCom takes for an image attachment (JPG, PNG).
IMAGE_TYPES = ("image/jpeg", "image/png")


# --- inputs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleInput:
    weekdays: int
    start: dt.time
    end: dt.time


@dataclass(frozen=True)
class MemberInput:
    staff_id: int
    is_backup: bool = False
    weight: int = 1
    daily_cap: int | None = None
    schedules: Sequence[ScheduleInput] = ()


@dataclass(frozen=True)
class ChannelInput:
    """Everything an operator sets on a channel."""

    name: str
    members: Sequence[MemberInput]
    group_id: int | None = None
    distribution: str = Channel.Distribution.ROUND_ROBIN
    skip_verify: bool = True
    skip_verify_start: dt.time | None = None
    skip_verify_end: dt.time | None = None
    remark_template: str = ""
    description_template: str = ""
    welcome_mode: str = Channel.WelcomeMode.DEFAULT
    tag_ids: Sequence[int] = ()


@dataclass(frozen=True)
class VariantInput:
    """One variant of a welcome message: weekdays, hours (both or neither), text, attachments."""

    text: str
    attachments: Sequence[dict[str, Any]] = ()
    weekdays: int = EVERY_DAY
    start: dt.time | None = None
    end: dt.time | None = None


@dataclass(frozen=True)
class BackfillReport:
    added: int
    by_channel: dict[int | None, int] = field(default_factory=dict)


# --- checks -------------------------------------------------------------------------------------------------


def _clean_name(name: str, *, limit: int, what: str) -> str:
    name = (name or "").strip()
    if not name:
        raise Invalid(_("a name is required"), field="name")
    if len(name) > limit:
        raise Invalid(_("the name is at most %(max)d characters") % {"max": limit}, field="name")
    del what
    return name


def _check_weekdays(mask: int, field: str) -> int:
    if isinstance(mask, bool) or not isinstance(mask, int) or not 1 <= mask <= EVERY_DAY:
        raise Invalid(_("choose at least one weekday"), field=field)
    return mask


def _members(corp: Corp, members: Sequence[MemberInput]) -> list[tuple[MemberInput, Staff]]:
    if not members:
        raise Invalid(_("a channel needs at least one staff member"), field="members")
    if len(members) > MEMBERS_MAX:
        raise Invalid(
            _("a contact way lists at most %(max)d staff members") % {"max": MEMBERS_MAX}, field="members"
        )
    ids = [m.staff_id for m in members]
    if len(set(ids)) != len(ids):
        raise Invalid(_("each staff member can be listed once"), field="members")
    staff = {s.pk: s for s in Staff.objects.for_corp(corp).filter(pk__in=ids)}
    out = []
    for member in members:
        found = staff.get(member.staff_id)
        if found is None:
            raise NotFound(_("unknown staff member"))
        if not 1 <= member.weight <= WEIGHT_MAX:
            raise Invalid(_("a weight is 1 to %(max)d") % {"max": WEIGHT_MAX}, field="weight")
        if member.daily_cap is not None and not 1 <= member.daily_cap <= CAP_MAX:
            raise Invalid(
                _("a daily cap is 1 to %(max)d, or empty for none") % {"max": CAP_MAX}, field="daily_cap"
            )
        for schedule in member.schedules:
            _check_weekdays(schedule.weekdays, "schedules")
            if schedule.start == schedule.end:
                raise Invalid(_("a schedule's start and end differ"), field="schedules")
        out.append((member, found))
    if all(m.is_backup for m in members):
        raise Invalid(_("a channel needs at least one staff member who is not a backup"), field="members")
    return out


def _check(
    corp: Corp, data: ChannelInput
) -> tuple[str, list[tuple[MemberInput, Staff]], list[Any], ChannelGroup | None]:
    name = _clean_name(data.name, limit=NAME_MAX, what="channel")
    if data.distribution not in Channel.Distribution.values:
        raise Invalid(_("unknown way of spreading customers"), field="distribution")
    if data.welcome_mode not in Channel.WelcomeMode.values:
        raise Invalid(_("unknown welcome message choice"), field="welcome_mode")
    if (data.skip_verify_start is None) != (data.skip_verify_end is None):
        raise Invalid(_("give both a start and an end time, or neither"), field="skip_verify_end")
    if data.skip_verify_start is not None and data.skip_verify_start == data.skip_verify_end:
        raise Invalid(_("the auto-accept window's start and end differ"), field="skip_verify_end")
    check_template(data.remark_template, field="remark_template")
    check_template(data.description_template, field="description_template")
    members = _members(corp, data.members)
    tags = resolve_tags(corp, data.tag_ids)
    group = None
    if data.group_id is not None:
        group = ChannelGroup.objects.for_corp(corp).filter(pk=data.group_id).first()
        if group is None:
            raise NotFound(_("unknown channel group"))
    return name, members, tags, group


def _new_state(corp: Corp) -> str:
    taken = True
    state = ""
    while taken:
        state = "c" + "".join(secrets.choice(STATE_ALPHABET) for _ in range(STATE_LENGTH))
        taken = Channel.objects.for_corp(corp).filter(state=state).exists()
    return state


def _check_state(corp: Corp, state: str) -> str:
    if not state or len(state) > STATE_MAX or set(state) - STATE_CHARS:
        raise Invalid(
            _("a state is 1 to %(max)d letters, digits, - or _") % {"max": STATE_MAX}, field="state"
        )
    if Channel.objects.for_corp(corp).filter(state=state).exists():
        raise Invalid(_("another channel already has this state"), field="state")
    return state


# --- channels -----------------------------------------------------------------------------------------------


def _write_members(channel: Channel, members: list[tuple[MemberInput, Staff]]) -> None:
    ChannelStaff.objects.for_corp(channel.corp_id).filter(channel=channel).delete()
    for order, (member, staff) in enumerate(members):
        row = ChannelStaff.objects.create(
            corp_id=channel.corp_id,
            channel=channel,
            staff=staff,
            is_backup=member.is_backup,
            weight=member.weight,
            daily_cap=member.daily_cap,
            order=order,
        )
        ChannelSchedule.objects.bulk_create(
            [
                ChannelSchedule(
                    corp_id=channel.corp_id, member=row, weekdays=w.weekdays, start=w.start, end=w.end
                )
                for w in member.schedules
            ]
        )


def _write_tags(channel: Channel, tags: list[Any]) -> None:
    ChannelTag.objects.for_corp(channel.corp_id).filter(channel=channel).exclude(tag__in=tags).delete()
    present = set(
        ChannelTag.objects.for_corp(channel.corp_id).filter(channel=channel).values_list("tag_id", flat=True)
    )
    ChannelTag.objects.bulk_create(
        [ChannelTag(corp_id=channel.corp_id, channel=channel, tag=t) for t in tags if t.pk not in present]
    )


def _push(channel: Channel) -> None:
    """After commit, the worker brings the contact way in line (a person waits: user priority)."""
    contact_way.push(channel, priority=Priority.USER)


def _audit(actor: Actor, action: str, channel: Channel, **detail: object) -> None:
    audit(
        corp=actor.corp,
        action=action,
        object_type="channel",
        object_id=channel.pk,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
        detail={"name": channel.name, **detail},
    )


@transaction.atomic
def create_channel(*, actor: Actor, data: ChannelInput, state: str | None = None) -> Channel:
    """Create a channel and, in a connected corp, its WeCom contact way. ``state`` is generated unless given
    (a contact way made before Siyu, demo data)."""
    actor.require_configure()
    name, members, tags, group = _check(actor.corp, data)
    state = _check_state(actor.corp, state) if state is not None else _new_state(actor.corp)
    try:
        with transaction.atomic():
            channel = Channel.objects.create(
                corp=actor.corp,
                name=name,
                group=group,
                state=state,
                distribution=data.distribution,
                skip_verify=data.skip_verify,
                skip_verify_start=data.skip_verify_start,
                skip_verify_end=data.skip_verify_end,
                remark_template=data.remark_template,
                description_template=data.description_template,
                welcome_mode=data.welcome_mode,
                created_by_id=actor.user_id,
            )
    except IntegrityError:
        raise Invalid(_("another channel already has this state"), field="state") from None
    _write_members(channel, members)
    _write_tags(channel, tags)
    _audit(actor, "channel.create", channel, state=state)
    _push(channel)
    return channel


@transaction.atomic
def update_channel(*, actor: Actor, channel: Channel, data: ChannelInput) -> Channel:
    """Change a channel's configuration; the contact way follows. Past adds keep their attribution."""
    actor.require_configure()
    if channel.status == Channel.Status.ARCHIVED:
        raise Invalid(_("an archived channel cannot be changed"), field="status")
    name, members, tags, group = _check(actor.corp, data)
    Channel.objects.filter(pk=channel.pk).update(
        name=name,
        group=group,
        distribution=data.distribution,
        skip_verify=data.skip_verify,
        skip_verify_start=data.skip_verify_start,
        skip_verify_end=data.skip_verify_end,
        remark_template=data.remark_template,
        description_template=data.description_template,
        welcome_mode=data.welcome_mode,
        updated_at=now(),
    )
    channel.refresh_from_db()
    _write_members(channel, members)
    _write_tags(channel, tags)
    _audit(actor, "channel.update", channel)
    _push(channel)
    return channel


def channel_input(channel: Channel) -> ChannelInput:
    """A channel's configuration as an input (to duplicate it, or to fill the edit form)."""
    members = [
        MemberInput(
            staff_id=m.staff_id,
            is_backup=m.is_backup,
            weight=m.weight,
            daily_cap=m.daily_cap,
            schedules=[ScheduleInput(w.weekdays, w.start, w.end) for w in m.schedules.all()],
        )
        for m in ChannelStaff.objects.for_corp(channel.corp_id)
        .filter(channel=channel)
        .prefetch_related("schedules")
        .order_by("is_backup", "order", "id")
    ]
    return ChannelInput(
        name=channel.name,
        members=members,
        group_id=channel.group_id,
        distribution=channel.distribution,
        skip_verify=channel.skip_verify,
        skip_verify_start=channel.skip_verify_start,
        skip_verify_end=channel.skip_verify_end,
        remark_template=channel.remark_template,
        description_template=channel.description_template,
        welcome_mode=channel.welcome_mode,
        tag_ids=list(
            ChannelTag.objects.for_corp(channel.corp_id)
            .filter(channel=channel)
            .values_list("tag_id", flat=True)
        ),
    )


@transaction.atomic
def duplicate_channel(*, actor: Actor, channel: Channel) -> Channel:
    """A new channel configured like ``channel`` (members, schedules, tags, welcome message), with its own
    state and contact way."""
    base = channel_input(channel)
    suffix = _(" (copy)")
    name = (base.name[: NAME_MAX - len(suffix)] + suffix).strip()
    copy = create_channel(actor=actor, data=ChannelInput(**{**base.__dict__, "name": name}))
    own = WelcomeMessage.objects.for_corp(actor.corp).filter(channel=channel).first()
    if own is not None:
        message = WelcomeMessage.objects.create(corp=actor.corp, channel=copy)
        WelcomeVariant.objects.bulk_create(
            [
                WelcomeVariant(
                    corp=actor.corp,
                    message=message,
                    order=v.order,
                    weekdays=v.weekdays,
                    start=v.start,
                    end=v.end,
                    text=v.text,
                    attachments=v.attachments,
                )
                for v in WelcomeVariant.objects.for_corp(actor.corp).filter(message=own)
            ]
        )
    return copy


def _set_status(actor: Actor, channel: Channel, status: str, **extra: Any) -> Channel:
    Channel.objects.filter(pk=channel.pk).update(status=status, updated_at=now(), **extra)
    channel.refresh_from_db()
    _audit(actor, f"channel.{status}", channel)
    return channel


@transaction.atomic
def pause_channel(*, actor: Actor, channel: Channel) -> Channel:
    """Pause: auto-accept off and the member list frozen in WeCom; adds are attributed but not automated."""
    actor.require_configure()
    if channel.status != Channel.Status.ACTIVE:
        raise Invalid(_("only an active channel can be paused"), field="status")
    channel = _set_status(actor, channel, Channel.Status.PAUSED, paused_at=now())
    _push(channel)
    return channel


@transaction.atomic
def resume_channel(*, actor: Actor, channel: Channel) -> Channel:
    """Resume a paused channel: the contact way is brought back to what it should say now."""
    actor.require_configure()
    if channel.status != Channel.Status.PAUSED:
        raise Invalid(_("only a paused channel can be resumed"), field="status")
    channel = _set_status(actor, channel, Channel.Status.ACTIVE, paused_at=None)
    _push(channel)
    return channel


@transaction.atomic
def archive_channel(*, actor: Actor, channel: Channel) -> Channel:
    """Archive: delete the contact way in WeCom (its QR code stops working); attribution stays."""
    actor.require_configure()
    if channel.status == Channel.Status.ARCHIVED:
        raise Invalid(_("the channel is already archived"), field="status")
    channel = _set_status(actor, channel, Channel.Status.ARCHIVED, archived_at=now())
    if channel.config_id and sends_to_wecom(corp=actor.corp, source="system"):
        row = enqueue_write(
            corp=actor.corp,
            api=contact_way.DELETE,
            payload=s.DelContactWayRequest(config_id=channel.config_id),
            idempotency_key=f"del_contact_way:channel:{channel.pk}",
            priority=Priority.USER,
        )
        Channel.objects.filter(pk=channel.pk).update(pushed={"outbox_id": row.pk, "deleted": True})
    return channel


# --- channel groups -----------------------------------------------------------------------------------------


@transaction.atomic
def create_channel_group(*, actor: Actor, name: str) -> ChannelGroup:
    """A folder for channels."""
    actor.require_configure()
    name = _clean_name(name, limit=GROUP_NAME_MAX, what="group")
    if ChannelGroup.objects.for_corp(actor.corp).filter(name=name).exists():
        raise Invalid(_("a channel group of this name exists"), field="name")
    order = (ChannelGroup.objects.for_corp(actor.corp).aggregate(m=Max("order"))["m"] or 0) + 1
    return ChannelGroup.objects.create(corp=actor.corp, name=name, order=order)


@transaction.atomic
def delete_channel_group(*, actor: Actor, group: ChannelGroup) -> None:
    """Delete a folder; its channels stay, outside any folder."""
    actor.require_configure()
    group.delete()


# --- welcome messages ---------------------------------------------------------------------------------------


def _check_attachment(corp: Corp, item: dict[str, Any]) -> dict[str, Any]:
    msgtype = item.get("msgtype")

    def text(name: str, limit: int, *, required: bool = True) -> str:
        value = str(item.get(name) or "").strip()
        if required and not value:
            raise Invalid(_("an attachment's %(field)s is required") % {"field": name}, field="attachments")
        if len(value.encode()) > limit:
            raise Invalid(
                _("an attachment's %(field)s is longer than WeCom allows") % {"field": name},
                field="attachments",
            )
        return value

    def asset(kind: str) -> int:
        try:
            asset_id = int(item.get("asset_id") or 0)
        except (TypeError, ValueError):
            asset_id = 0
        if not MediaAsset.objects.for_corp(corp).filter(pk=asset_id, kind=kind).exists():
            raise Invalid(_("an attachment needs an uploaded file of the right kind"), field="attachments")
        return asset_id

    if msgtype in ASSET_KINDS:
        return {"msgtype": msgtype, "asset_id": asset(str(ASSET_KINDS[msgtype]))}
    if msgtype == "link":
        url = text("url", URL_MAX)
        if not url.startswith(("http://", "https://")):
            raise Invalid(_("a link starts with http:// or https://"), field="attachments")
        out = {"msgtype": "link", "title": text("title", LINK_TITLE_MAX), "url": url}
        for name, limit in (("desc", LINK_DESC_MAX), ("picurl", URL_MAX)):
            value = text(name, limit, required=False)
            if value:
                out[name] = value
        return out
    if msgtype == "miniprogram":
        return {
            "msgtype": "miniprogram",
            "title": text("title", MINIPROGRAM_TITLE_MAX),
            "appid": text("appid", 64),
            "page": text("page", URL_MAX),
            "asset_id": asset(MediaAsset.Kind.IMAGE),
        }
    raise Invalid(_("an attachment is an image, link, mini-program, video or file"), field="attachments")


@transaction.atomic
def save_welcome_message(
    *, actor: Actor, channel: Channel | None, variants: Sequence[VariantInput]
) -> WelcomeMessage | None:
    """Set a channel's own welcome message (or, without a channel, the corp default) to ``variants``, in
    order; no variants removes it."""
    actor.require_configure()
    if channel is not None and channel.corp_id != actor.corp.pk:
        raise NotFound(_("channel not found"))
    if len(variants) > VARIANTS_MAX:
        raise Invalid(_("at most %(max)d variants") % {"max": VARIANTS_MAX}, field="variants")
    cleaned = []
    for variant in variants:
        _check_weekdays(variant.weekdays, "weekdays")
        if (variant.start is None) != (variant.end is None):
            raise Invalid(_("give both a start and an end time, or neither"), field="end")
        check_template(variant.text, max_bytes=TEXT_MAX_BYTES)
        if len(variant.attachments) > ATTACHMENTS_MAX:
            raise Invalid(
                _("at most %(max)d attachments, as WeCom allows") % {"max": ATTACHMENTS_MAX},
                field="attachments",
            )
        attachments = [_check_attachment(actor.corp, dict(a)) for a in variant.attachments]
        if not variant.text.strip() and not attachments:
            raise Invalid(_("a welcome message needs a text or an attachment"), field="text")
        cleaned.append((variant, attachments))
    message = WelcomeMessage.objects.for_corp(actor.corp).filter(channel=channel).first()
    if not cleaned:
        if message is not None:
            message.delete()
        return None
    if message is None:
        message = WelcomeMessage.objects.create(corp=actor.corp, channel=channel)
    else:
        WelcomeVariant.objects.for_corp(actor.corp).filter(message=message).delete()
        message.updated_at = now()
        message.save(update_fields=["updated_at"])
    WelcomeVariant.objects.bulk_create(
        [
            WelcomeVariant(
                corp=actor.corp,
                message=message,
                order=order,
                weekdays=variant.weekdays,
                start=variant.start,
                end=variant.end,
                text=variant.text,
                attachments=attachments,
            )
            for order, (variant, attachments) in enumerate(cleaned)
        ]
    )
    audit(
        corp=actor.corp,
        action="welcome.save",
        object_type="welcome_message",
        object_id=message.pk,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
        detail={"channel_id": channel.pk if channel else None, "variants": len(cleaned)},
    )
    return message


@transaction.atomic
def add_media_asset(
    *, actor: Actor, kind: str, filename: str, content: bytes, content_type: str = ""
) -> MediaAsset:
    """Keep a file for attachments; WeCom's limits are checked here (size, image type)."""
    actor.require_configure()
    if kind not in MediaAsset.Kind.values:
        raise Invalid(_("a file is an image, a video or a file"), field="kind")
    if len(content) < MIN_BYTES:
        raise Invalid(_("the file is empty"), field="file")
    if len(content) > MAX_BYTES[kind]:
        raise Invalid(
            _("WeCom takes files of this kind up to %(mb)d MB") % {"mb": MAX_BYTES[kind] >> 20}, field="file"
        )
    if kind == MediaAsset.Kind.IMAGE and content_type not in IMAGE_TYPES:
        raise Invalid(_("an image is a JPG or PNG file"), field="file")
    return MediaAsset.objects.create(
        corp=actor.corp,
        kind=kind,
        filename=(filename or "file")[-128:],
        content_type=content_type[:100],
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        data=content,
    )


# --- history ------------------------------------------------------------------------------------------------

ADD_COLUMNS = (
    "corp", "relation", "customer", "staff", "channel", "state", "source", "half", "paused", "added_at",
    "welcome_status", "welcome_reason", "recorded_at", "automated_at", "ended_at", "ended_by",
)  # fmt: skip
ENDED_BY: dict[str, str] = {
    FollowRelation.Status.DELETED_BY_STAFF.value: "staff",
    FollowRelation.Status.DELETED_BY_CUSTOMER.value: "customer",
}
BACKFILL_REASON = "added before Siyu recorded adds"
BACKFILL_BATCH = 2000  # relations per query and multi-row insert: a few MB at most


def backfill_adds(*, corp: Corp) -> BackfillReport:
    """Attribute every relation of the corp that has no add record (history from before its channels, a
    first sync): by state, as the add would have been, without welcome or automation (long past). Set-based
    and idempotent: run it again and it adds nothing."""
    channels = dict(Channel.objects.for_corp(corp).values_list("state", "pk"))
    recorded_at = now()
    by_channel: dict[int | None, int] = {}
    last = 0
    total = 0
    while True:
        batch = list(
            FollowRelation.objects.for_corp(corp)
            .filter(pk__gt=last)
            .exclude(pk__in=ChannelAdd.objects.for_corp(corp).values("relation_id"))
            .order_by("pk")
            .values_list("pk", "customer_id", "staff_id", "state", "added_at", "status", "status_changed_at")[
                :BACKFILL_BATCH
            ]
        )
        if not batch:
            break
        last = batch[-1][0]
        rows = []
        for pk, customer_id, staff_id, state, added_at, status, changed_at in batch:
            ended_by = ENDED_BY.get(status, "")
            ended_at = changed_at or added_at if ended_by else None
            channel_id = channels.get(state) if state else None
            by_channel[channel_id] = by_channel.get(channel_id, 0) + 1
            rows.append(
                (
                    corp.pk, pk, customer_id, staff_id, channel_id, state or "", ChannelAdd.Source.SYNC,
                    False, False, added_at, ChannelAdd.Welcome.NO_CODE, BACKFILL_REASON, recorded_at,
                    recorded_at, ended_at, ended_by,
                )
            )  # fmt: skip
        with transaction.atomic():
            inserted = {r[0] for r in insert_rows(ChannelAdd, ADD_COLUMNS, rows, returning=("relation_id",))}
            total += len(inserted)
            rollups.mark_adds(corp, [m for r in rows if r[1] in inserted for m in (r[9], r[14])])
    return BackfillReport(added=total, by_channel=by_channel)
