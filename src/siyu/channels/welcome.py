"""Welcome messages (欢迎语): which one an add gets, its text and attachments, and what became of it.

WeCom hands a ``welcome_code`` with the add event; ``send_welcome_msg`` must use it within 20 seconds, once
(wecom-api.md §4.4). So the message is planned from what is already known (the channel, the add's local time
for the variant, the names for the placeholders; attachments' media uploaded ahead, ``MediaAsset``), queued in
the outbox at ``Priority.WELCOME`` with the code as its idempotency key and the code's end as its
``expires_at``, and sent at once by the worker that handled the add (``send_now``), ahead of anything else.

Outcomes, per add (``ChannelAdd.welcome_status``): sent (and how long after the callback), or not sent and
why: no code from WeCom (the admin console has its own welcome message, or the customer was welcomed at a half
add), no message configured, corp not connected, refused by WeCom (41050 invalid or expired code, 41051 the
customer has already chatted or was welcomed — neither is retried), expired (the 20 s passed before it could
be sent, while 41096 "being distributed" retries ran out of time, or before it was even queued), or failed
otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from siyu.channels import rollups
from siyu.channels.models import Channel, ChannelAdd, MediaAsset, WelcomeMessage, WelcomeVariant
from siyu.core.clock import now
from siyu.core.errors import Invalid
from siyu.core.timewindows import in_window, local
from siyu.corps.models import Corp, Staff
from siyu.customers.events import record_event
from siyu.customers.models import Customer, Event
from siyu.wecom import schemas as s
from siyu.wecom.errors import WeComError, WeComUnavailable
from siyu.wecom.media import still_valid, upload_media
from siyu.wecom.services import sends_to_wecom

log = logging.getLogger(__name__)

SEND_WELCOME = "externalcontact/send_welcome_msg"
# wecom-api.md §4.4: "call within 20 s of receiving the event"; the add's createtime (whole seconds, never
# after the code was issued) starts the count, so the deadline errs early rather than late.
WINDOW = dt.timedelta(seconds=20)
TEXT_MAX_BYTES = 4000  # §4.4: text ≤ 4000 bytes
ATTACHMENTS_MAX = 9  # §4.4: ≤ 9 attachments
# §4.5 field limits (bytes): link title ≤ 128, url/picurl ≤ 2048, desc ≤ 512; mini-program title ≤ 64.
LINK_TITLE_MAX, URL_MAX, LINK_DESC_MAX, MINIPROGRAM_TITLE_MAX = 128, 2048, 512, 64
PLACEHOLDERS = ("customer_name", "staff_name", "channel_name")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
ASSET_KINDS = {"image": MediaAsset.Kind.IMAGE, "video": MediaAsset.Kind.VIDEO, "file": MediaAsset.Kind.FILE}
REJECTED_REASONS = {
    41050: "invalid or expired welcome code",
    41051: "the customer has already chatted with the member, or was already welcomed",
}


# --- templates ----------------------------------------------------------------------------------------------


def check_template(text: str, *, max_bytes: int | None = None, field: str = "text") -> str:
    """Refuse placeholders Siyu does not know and texts WeCom would refuse once the names are filled in."""
    unknown = sorted({m for m in _PLACEHOLDER.findall(text) if m not in PLACEHOLDERS})
    if unknown:
        raise Invalid(
            _("unknown placeholder %(names)s; use %(known)s")
            % {
                "names": ", ".join("{" + u + "}" for u in unknown),
                "known": ", ".join("{" + p + "}" for p in PLACEHOLDERS),
            },
            field=field,
        )
    if max_bytes is not None and len(text.encode()) > max_bytes:
        raise Invalid(
            _("the text is longer than WeCom allows (%(max)d bytes)") % {"max": max_bytes}, field=field
        )
    return text


def render(template: str, *, customer_name: str, staff_name: str, channel_name: str = "") -> str:
    """Fill the placeholders; other braces stay as they are."""
    values = {"customer_name": customer_name, "staff_name": staff_name, "channel_name": channel_name}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def clip_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode(errors="ignore")


# --- choosing -----------------------------------------------------------------------------------------------


def message_for(corp: Corp, channel: Channel | None) -> WelcomeMessage | None:
    """The message an add gets: its channel's own or the corp default, as the channel says; adds without a
    (live) channel get the corp default."""
    if channel is not None and channel.status == Channel.Status.ACTIVE:
        if channel.welcome_mode == Channel.WelcomeMode.NONE:
            return None
        if channel.welcome_mode == Channel.WelcomeMode.OWN:
            own = WelcomeMessage.objects.for_corp(corp).filter(channel=channel).first()
            if own is not None:
                return own
    return WelcomeMessage.objects.for_corp(corp).filter(channel=None).first()


def variant_for(message: WelcomeMessage, local_at: dt.datetime) -> WelcomeVariant | None:
    """The first variant (in order) whose weekdays and hours hold at the add's local time."""
    for variant in (
        WelcomeVariant.objects.for_corp(message.corp_id).filter(message=message).order_by("order", "id")
    ):
        if in_window(local_at, weekdays=variant.weekdays, start=variant.start, end=variant.end):
            return variant
    return None


# --- attachments --------------------------------------------------------------------------------------------


def _asset_media_id(corp: Corp, asset_id: int) -> str:
    """A valid media_id for the asset, uploading it again when the last one is too old (a WeCom call)."""
    asset = MediaAsset.objects.for_corp(corp).filter(pk=asset_id).first()
    if asset is None:
        raise Invalid(_("an attachment's file is gone"), field="attachments")
    if asset.media_id and still_valid(asset.media_uploaded_at):
        return asset.media_id
    return renew_media(asset)


def renew_media(asset: MediaAsset) -> str:
    """Upload the asset to WeCom and keep the new media_id."""
    uploaded = upload_media(
        corp=asset.corp,
        kind=asset.kind,
        filename=asset.filename,
        content=bytes(asset.data),
        content_type=asset.content_type or "application/octet-stream",
    )
    MediaAsset.objects.filter(pk=asset.pk).update(
        media_id=uploaded.media_id, media_uploaded_at=uploaded.uploaded_at
    )
    return uploaded.media_id


def wecom_attachments(corp: Corp, attachments: list[dict[str, Any]]) -> list[s.Attachment]:
    """The stored attachments as WeCom's objects (§4.4), with media_ids for files and images."""
    out = []
    for item in attachments[:ATTACHMENTS_MAX]:
        msgtype = item.get("msgtype")
        if msgtype in ASSET_KINDS:
            media_id = _asset_media_id(corp, int(item["asset_id"]))
            out.append(s.Attachment(msgtype=msgtype, **{msgtype: {"media_id": media_id}}))
        elif msgtype == "link":
            link = {k: item[k] for k in ("title", "url", "desc", "picurl") if item.get(k)}
            out.append(s.Attachment(msgtype="link", link=link))
        elif msgtype == "miniprogram":
            out.append(
                s.Attachment(
                    msgtype="miniprogram",
                    miniprogram={
                        "title": item["title"],
                        "appid": item["appid"],
                        "page": item["page"],
                        "pic_media_id": _asset_media_id(corp, int(item["asset_id"])),
                    },
                )
            )
    return out


# --- planning an add's welcome ------------------------------------------------------------------------------


@dataclass
class Plan:
    """What an add's welcome will be: a request to queue, or why there is none."""

    status: str
    reason: str = ""
    request: s.WelcomeMessageRequest | None = None
    message: WelcomeMessage | None = None
    variant: WelcomeVariant | None = None
    deadline: dt.datetime | None = None


def plan(
    *,
    corp: Corp,
    channel: Channel | None,
    customer: Customer,
    staff: Staff,
    welcome_code: str,
    added_at: dt.datetime,
) -> Plan:
    """Decide the welcome of one add. May upload an attachment's file (a WeCom call): call it outside a
    transaction."""
    deadline = added_at + WINDOW
    if not welcome_code:
        return Plan(status=ChannelAdd.Welcome.NO_CODE, deadline=None)
    if not sends_to_wecom(corp=corp, source=Event.Source.SYSTEM):
        return Plan(status=ChannelAdd.Welcome.NOT_CONNECTED, deadline=deadline)
    message = message_for(corp, channel)
    if message is None:
        return Plan(status=ChannelAdd.Welcome.NO_MESSAGE, deadline=deadline)
    variant = variant_for(message, local(added_at, corp.time_zone))
    if variant is None:
        return Plan(
            status=ChannelAdd.Welcome.NO_MESSAGE,
            reason="no variant for this day and hour",
            message=message,
            deadline=deadline,
        )
    live_channel = channel if channel is not None and channel.status == Channel.Status.ACTIVE else None
    text = clip_bytes(
        render(
            variant.text,
            customer_name=customer.name,
            staff_name=staff.name,
            channel_name=live_channel.name if live_channel else "",
        ),
        TEXT_MAX_BYTES,
    )
    try:
        attachments = wecom_attachments(corp, list(variant.attachments or []))
    except (WeComError, WeComUnavailable, Invalid) as exc:
        # An attachment that cannot be had must not cost the customer the greeting: the text goes alone.
        log.warning(
            "welcome: an attachment of variant %d could not be prepared: %s", variant.pk, type(exc).__name__
        )
        attachments = []
    if not text.strip() and not attachments:
        return Plan(
            status=ChannelAdd.Welcome.NO_MESSAGE, reason="empty message", message=message, deadline=deadline
        )
    request = s.WelcomeMessageRequest(
        welcome_code=welcome_code,
        text=s.Text(content=text) if text.strip() else None,
        attachments=attachments,
    )
    return Plan(
        status=ChannelAdd.Welcome.QUEUED, request=request, message=message, variant=variant, deadline=deadline
    )


# --- outcomes -----------------------------------------------------------------------------------------------


def settled(
    *,
    corp_id: int,
    outbox_id: int,
    status: str,
    errcode: int | None,
    reason: str,
    expired: bool,
    attempts: int,
    at: dt.datetime,
) -> None:
    """The welcome's outbox row ended: record the outcome on the add and, on the timeline, sent or not."""
    with transaction.atomic():
        add = (
            ChannelAdd.objects.for_corp(corp_id)
            .select_for_update()
            .filter(welcome_outbox_id=outbox_id)
            .first()
        )
        if add is None or add.welcome_status != ChannelAdd.Welcome.QUEUED:
            return
        if status == "done":
            add.welcome_status = ChannelAdd.Welcome.SENT
            add.welcome_sent_at = at
            add.welcome_reason = ""
        elif expired:
            add.welcome_status = ChannelAdd.Welcome.EXPIRED
            add.welcome_reason = reason[:200]
        elif errcode in REJECTED_REASONS:
            add.welcome_status = ChannelAdd.Welcome.REJECTED
            text = f"{errcode}: {REJECTED_REASONS[errcode]}"
            if errcode == 41051 and attempts > 1:
                # A try that timed out may have reached WeCom: the customer was probably welcomed by it.
                text += " (after a try whose answer was lost: probably delivered by it)"
            add.welcome_reason = text[:200]
        else:
            add.welcome_status = ChannelAdd.Welcome.FAILED
            add.welcome_reason = reason[:200]
        add.welcome_errcode = errcode
        add.save(update_fields=["welcome_status", "welcome_sent_at", "welcome_reason", "welcome_errcode"])
        rollups.mark_adds(corp_id, [add.added_at])
        record_outcome_event(add)


def record_outcome_event(add: ChannelAdd) -> None:
    """Put a welcome that was meant to go out on the customer's timeline: sent, or not and why."""
    sent = add.welcome_status == ChannelAdd.Welcome.SENT
    record_event(
        corp_id=add.corp_id,
        customer_id=add.customer_id,
        staff_id=add.staff_id,
        kind=Event.Kind.WELCOMED if sent else Event.Kind.WELCOME_NOT_SENT,
        source=Event.Source.SYSTEM,
        occurred_at=add.welcome_sent_at or now(),
        payload={
            "relation_id": add.relation_id,
            "channel_id": add.channel_id,
            "welcome_status": add.welcome_status,
            "reason": add.welcome_reason,
            "errcode": add.welcome_errcode,
            "seconds": round(add.welcome_seconds, 3) if add.welcome_seconds is not None else None,
        },
        dedupe_key=f"welcome:add:{add.pk}",
    )
