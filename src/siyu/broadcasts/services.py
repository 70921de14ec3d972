"""Mass messages: compose, preview, send, remind, cancel. The only write path to broadcasts.

Composing and sending need the admin or operator role. Every check that can refuse a message (content,
audience, schedule) runs when it is composed and again when the worker sends it, so nothing reaches WeCom that
WeCom would refuse, and a tag or segment deleted in between fails the send with a clear reason before anything
is sent. Sending is idempotent: the compose form's ``request_key`` finds the broadcast a double submission
made, a second "send" of a broadcast already sent changes nothing, and every WeCom write carries a key derived
from the broadcast and its part (see ``execution``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from siyu.broadcasts import audience as aud
from siyu.broadcasts import caps
from siyu.broadcasts.content import MEDIA_MAX_BYTES, check_content, media_ids
from siyu.broadcasts.models import Broadcast, BroadcastMedia, BroadcastPart, BroadcastSkip
from siyu.broadcasts.planning import plan_customers
from siyu.core.clock import now
from siyu.core.errors import Conflict, ErrorCode, Invalid, NotFound, PermissionDenied
from siyu.corps.access import Actor
from siyu.corps.models import Staff
from siyu.corps.services import audit
from siyu.wecom import mass

NAME_MAX = 100
# A schedule further out than this is most likely a typo (and WeCom's media would have expired long before).
SCHEDULE_MAX = dt.timedelta(days=90)
# WeCom: "24小时内每个群发最多触发三次提醒" (wecom-api.md §4.5).
REMINDERS_PER_DAY = 3
REMINDER_WINDOW = dt.timedelta(hours=24)
# A second reminder of the same part within this long is the same click arriving twice: it is not sent again.
REMINDER_DEBOUNCE = dt.timedelta(seconds=30)
KIND_AUDIENCES: dict[str, tuple[str, ...]] = {
    Broadcast.Kind.CUSTOMERS: (aud.SEGMENT, aud.TAGS, aud.CUSTOMERS),
    Broadcast.Kind.GROUPS: (aud.GROUPS,),
    Broadcast.Kind.MOMENTS: (aud.MOMENTS,),
}
OPEN = (Broadcast.Status.SENDING, Broadcast.Status.TRACKING)


def _composer(actor: Actor) -> None:
    if not actor.can_configure:
        raise PermissionDenied(_("mass messages are composed and sent by admins and operators"))


def get_broadcast(*, actor: Actor, broadcast_id: int, for_update: bool = False) -> Broadcast:
    """A broadcast of the actor's corp that the actor may see (staff: one with a part of theirs); else 404."""
    found = Broadcast.objects.for_corp(actor.corp).filter(pk=broadcast_id)
    if for_update:
        found = found.select_for_update()
    broadcast = found.first()
    if broadcast is None:
        raise NotFound(_("mass message not found"))
    if not actor.sees_all_customers:
        mine = BroadcastPart.objects.for_corp(actor.corp).filter(
            actor.visible_staff_ids_q(), broadcast=broadcast
        )
        if not mine.exists():
            raise NotFound(_("mass message not found"))
    return broadcast


@dataclass
class Draft:
    """A checked message: what will be stored."""

    kind: str
    name: str
    text: str
    attachments: list[dict[str, Any]]
    audience: aud.AudienceSpec
    scheduled_at: dt.datetime | None


def check_draft(
    *,
    actor: Actor,
    kind: str,
    name: str,
    text: str,
    attachments: list[Any] | None,
    audience: Any,
    scheduled_at: dt.datetime | None,
) -> Draft:
    """Everything a message needs, checked; ``Invalid`` names the first problem."""
    if kind not in Broadcast.Kind.values:
        raise Invalid(_("unknown kind of mass message"), field="kind")
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise Invalid(
            _("give the message a name of 1 to %(max)d characters") % {"max": NAME_MAX}, field="name"
        )
    clean_text, clean_attachments = check_content(
        text=text, attachments=attachments or [], moment=kind == Broadcast.Kind.MOMENTS
    )
    wanted = media_ids(clean_attachments)
    if wanted:
        found = dict(
            BroadcastMedia.objects.for_corp(actor.corp).filter(pk__in=list(wanted)).values_list("pk", "kind")
        )
        for media_id, media_kind in wanted.items():
            if found.get(media_id) != media_kind:
                raise Invalid(
                    _("attachment file %(id)d is not an uploaded %(kind)s of this corp")
                    % {"id": media_id, "kind": media_kind},
                    field="attachments",
                    code=ErrorCode.BAD_ATTACHMENT,
                )
    spec = aud.AudienceSpec.parse(audience)
    if spec.type not in KIND_AUDIENCES[kind]:
        raise Invalid(_("this audience does not fit this kind of message"), field="type")
    check_audience(actor=actor, kind=kind, spec=spec)
    if scheduled_at is not None:
        if scheduled_at.tzinfo is None:
            raise Invalid(_("the schedule needs a time zone"), field="scheduled_at")
        moment = now()
        if scheduled_at < moment - dt.timedelta(minutes=1):
            raise Invalid(_("the scheduled time has passed"), field="scheduled_at")
        if scheduled_at > moment + SCHEDULE_MAX:
            raise Invalid(_("schedule at most 90 days ahead"), field="scheduled_at")
    return Draft(kind, name, clean_text, clean_attachments, spec, scheduled_at)


def check_audience(*, actor: Actor, kind: str, spec: aud.AudienceSpec) -> int:
    """How many the audience holds now; ``Invalid`` (``empty_audience``) when nobody."""
    if kind == Broadcast.Kind.CUSTOMERS:
        count = len(aud.resolve_customers(actor.corp, spec).candidates)
    elif kind == Broadcast.Kind.GROUPS:
        count = aud.resolve_groups(actor.corp, spec).count
    else:
        found = aud.resolve_moment(actor.corp, spec)
        count = len(found.userids) + len(found.department_ids)
        if not count:
            raise Invalid(
                _("choose the staff who publish the moment"), field="staff_ids", code=ErrorCode.EMPTY_AUDIENCE
            )
    if not count:
        raise Invalid(
            _("the audience is empty: nobody would receive this message"),
            field="audience",
            code=ErrorCode.EMPTY_AUDIENCE,
        )
    return count


@transaction.atomic
def create_broadcast(
    *,
    actor: Actor,
    kind: str,
    name: str,
    text: str,
    attachments: list[Any] | None = None,
    audience: Any,
    scheduled_at: dt.datetime | None = None,
    request_key: str = "",
) -> Broadcast:
    """Store a checked draft; a ``request_key`` already used returns the broadcast it made (double submit)."""
    _composer(actor)
    request_key = (request_key or "")[:64]
    if request_key:
        existing = Broadcast.objects.for_corp(actor.corp).filter(request_key=request_key).first()
        if existing is not None:
            return existing
    draft = check_draft(
        actor=actor,
        kind=kind,
        name=name,
        text=text,
        attachments=attachments,
        audience=audience,
        scheduled_at=scheduled_at,
    )
    broadcast = Broadcast.objects.create(
        corp=actor.corp,
        kind=draft.kind,
        name=draft.name,
        text=draft.text,
        attachments=draft.attachments,
        audience=draft.audience.as_json(),
        scheduled_at=draft.scheduled_at,
        request_key=request_key,
        created_by_id=actor.user_id,
    )
    audit(
        corp=actor.corp,
        action="broadcast.create",
        object_type="broadcast",
        object_id=broadcast.pk,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
        detail={"kind": broadcast.kind},
    )
    return broadcast


@transaction.atomic
def update_broadcast(
    *,
    actor: Actor,
    broadcast_id: int,
    name: str,
    text: str,
    attachments: list[Any] | None = None,
    audience: Any,
    scheduled_at: dt.datetime | None = None,
) -> Broadcast:
    """Change a draft (a message not sent yet)."""
    _composer(actor)
    broadcast = get_broadcast(actor=actor, broadcast_id=broadcast_id, for_update=True)
    if broadcast.status != Broadcast.Status.DRAFT:
        raise Conflict(_("only a draft can be changed"))
    draft = check_draft(
        actor=actor,
        kind=broadcast.kind,
        name=name,
        text=text,
        attachments=attachments,
        audience=audience,
        scheduled_at=scheduled_at,
    )
    broadcast.name, broadcast.text, broadcast.attachments = draft.name, draft.text, draft.attachments
    broadcast.audience, broadcast.scheduled_at = draft.audience.as_json(), draft.scheduled_at
    broadcast.save(update_fields=["name", "text", "attachments", "audience", "scheduled_at"])
    return broadcast


# --- attachment files -------------------------------------------------------------------------------------

# What each kind of file must start with (its magic number): WeCom takes JPG and PNG images and MP4 videos.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
MP4_BRAND = b"ftyp"  # bytes 4–8 of an MP4 (ISO base media) file
FILENAME_MAX = 200


def store_media(
    *, actor: Actor, kind: str, filename: str, content_type: str, content: bytes
) -> BroadcastMedia:
    """Keep a file for an attachment, refused beyond WeCom's size and type limits before anything is sent."""
    _composer(actor)
    if kind not in MEDIA_MAX_BYTES:
        raise Invalid(
            _("a file can be an image, a video or a file"), field="kind", code=ErrorCode.BAD_ATTACHMENT
        )
    if not content:
        raise Invalid(_("the file is empty"), field="file", code=ErrorCode.BAD_ATTACHMENT)
    limit = MEDIA_MAX_BYTES[kind]
    if len(content) > limit:
        raise Invalid(
            _("the file is %(size)s MB; WeCom takes at most %(max)d MB for this kind")
            % {"size": f"{len(content) / (1 << 20):.1f}", "max": limit >> 20},
            field="file",
            code=ErrorCode.BAD_ATTACHMENT,
        )
    if kind == BroadcastMedia.Kind.IMAGE and not content.startswith(IMAGE_MAGIC):
        raise Invalid(_("WeCom takes JPG or PNG images"), field="file", code=ErrorCode.BAD_ATTACHMENT)
    if kind == BroadcastMedia.Kind.VIDEO and content[4:8] != MP4_BRAND:
        raise Invalid(_("WeCom takes MP4 videos"), field="file", code=ErrorCode.BAD_ATTACHMENT)
    name = (filename or "").replace("/", "_").replace("\\", "_").strip()[:FILENAME_MAX] or kind
    return BroadcastMedia.objects.create(
        corp=actor.corp,
        kind=kind,
        filename=name,
        content_type=(content_type or "")[:100],
        size=len(content),
        content=content,
        created_by_id=actor.user_id,
    )


# --- preview ----------------------------------------------------------------------------------------------


@dataclass
class StaffCount:
    staff_id: int
    name: str
    userid: str
    count: int


@dataclass
class Preview:
    """What a send would do now: who receives (per staff member), who is skipped and why."""

    at: dt.datetime
    audience: int
    recipients: int
    skipped: dict[str, int]
    staff: list[StaffCount]
    quiet_until: dt.datetime | None = None
    held: bool = False
    tasks: int = 0  # WeCom tasks it would create
    plan: Any = field(default=None, repr=False)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def _staff_counts(corp_id: int, counts: dict[int, int]) -> list[StaffCount]:
    staff = {s.pk: s for s in Staff.objects.for_corp(corp_id).filter(pk__in=list(counts))}
    rows = [
        StaffCount(
            staff_id=pk,
            name=staff[pk].name if pk in staff else "?",
            userid=staff[pk].userid if pk in staff else "",
            count=n,
        )
        for pk, n in counts.items()
    ]
    return sorted(rows, key=lambda r: (-r.count, r.name))


def send_time(broadcast: Broadcast) -> dt.datetime:
    """When a broadcast goes out: its schedule, or now."""
    moment = now()
    return max(broadcast.scheduled_at, moment) if broadcast.scheduled_at else moment


def preview_broadcast(*, actor: Actor, broadcast: Broadcast) -> Preview:
    """The plan of a broadcast if it were sent at its time, with caps checked but nothing reserved."""
    _composer(actor)
    at = send_time(broadcast)
    spec = aud.AudienceSpec.parse(broadcast.audience)
    if broadcast.kind == Broadcast.Kind.CUSTOMERS:
        resolved = aud.resolve_customers(actor.corp, spec)
        plan = plan_customers(corp=actor.corp, audience=resolved, at=at, reserve=False)
        staff = _staff_counts(actor.corp.pk, plan.staff_counts())
        tasks = sum(-(-c.count // mass.MAX_CUSTOMERS_PER_TASK) for c in staff)
        return Preview(
            at=plan.at,
            audience=plan.audience,
            recipients=plan.recipients,
            skipped=plan.skipped_counts(),
            staff=staff,
            quiet_until=plan.quiet_until,
            held=plan.held,
            tasks=tasks,
            plan=plan,
        )
    skipped = dict.fromkeys(BroadcastSkip.Reason.values, 0)
    quiet = caps.quiet_until(corp=actor.corp, at=at)
    policy = caps.policy_for(actor.corp)
    skip_all = quiet is not None and policy.quiet_action == policy.QuietAction.SKIP
    if broadcast.kind == Broadcast.Kind.GROUPS:
        groups = aud.resolve_groups(actor.corp, spec)
        counts = {owner: len(chats) for owner, chats in groups.by_owner.items()}
        skipped[BroadcastSkip.Reason.NOT_FRIEND] = len(groups.ownerless)
        staff = _staff_counts(actor.corp.pk, counts)
        total = sum(counts.values())
        tasks = sum(-(-n // mass.MAX_GROUPS_PER_TASK) for n in counts.values())
    else:
        moment = aud.resolve_moment(actor.corp, spec)
        ids = dict(
            Staff.objects.for_corp(actor.corp).filter(userid__in=moment.userids).values_list("userid", "pk")
        )
        staff = _staff_counts(actor.corp.pk, {ids[u]: 1 for u in moment.userids if u in ids})
        total, tasks = len(moment.userids) + len(moment.department_ids), 1
    if skip_all:
        skipped[BroadcastSkip.Reason.QUIET_HOURS] = total
        total, tasks, staff = 0, 0, []
    return Preview(
        at=quiet if quiet is not None and not skip_all else at,
        audience=total + skipped[BroadcastSkip.Reason.QUIET_HOURS] + skipped[BroadcastSkip.Reason.NOT_FRIEND],
        recipients=total,
        skipped=skipped,
        staff=staff,
        quiet_until=quiet,
        held=quiet is not None and not skip_all,
        tasks=tasks,
    )


# --- send, cancel, remind ---------------------------------------------------------------------------------


@transaction.atomic
def send_broadcast(*, actor: Actor, broadcast_id: int) -> Broadcast:
    """Send a draft now or at its schedule (the worker plans and sends it). Sending twice changes nothing."""
    _composer(actor)
    broadcast = get_broadcast(actor=actor, broadcast_id=broadcast_id, for_update=True)
    if broadcast.status != Broadcast.Status.DRAFT:
        return broadcast  # already on its way (a double click, a retried request)
    if not broadcast.corp.secret:  # read afresh: the corp may have been connected since the login
        raise Invalid(_("this corp is not connected to WeCom yet: set its app secret first"), field="corp")
    if broadcast.scheduled_at is not None and broadcast.scheduled_at < now() - dt.timedelta(minutes=1):
        raise Invalid(
            _("the scheduled time has passed: change it, or clear it to send now"), field="scheduled_at"
        )
    spec = aud.AudienceSpec.parse(broadcast.audience)
    check_audience(actor=actor, kind=broadcast.kind, spec=spec)  # a tag deleted since composing fails here
    broadcast.status = Broadcast.Status.SCHEDULED
    broadcast.save(update_fields=["status"])
    audit(
        corp=actor.corp,
        action="broadcast.send",
        object_type="broadcast",
        object_id=broadcast.pk,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
    )
    from siyu.broadcasts.tasks import enqueue_execution

    when = broadcast.scheduled_at
    transaction.on_commit(lambda: enqueue_execution(broadcast.pk, run_after=when))
    return broadcast


@transaction.atomic
def cancel_broadcast(*, actor: Actor, broadcast_id: int) -> Broadcast:
    """Cancel what has not gone out: the whole message before it is sent, else every part not sent yet."""
    _composer(actor)
    broadcast = get_broadcast(actor=actor, broadcast_id=broadcast_id, for_update=True)
    if broadcast.status in (Broadcast.Status.DRAFT, Broadcast.Status.SCHEDULED):
        broadcast.status = Broadcast.Status.CANCELLED
        broadcast.finished_at = now()
        broadcast.save(update_fields=["status", "finished_at"])
    elif broadcast.status in OPEN:
        from siyu.broadcasts.execution import request_cancel

        request_cancel(broadcast)
    else:
        raise Conflict(_("this mass message has finished; there is nothing left to cancel"))
    audit(
        corp=actor.corp,
        action="broadcast.cancel",
        object_type="broadcast",
        object_id=broadcast.pk,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
    )
    return broadcast


def reminders_left(part: BroadcastPart, at: dt.datetime | None = None) -> int:
    """How many reminders WeCom still takes for this part in the last 24 hours."""
    moment = at or now()
    recent = [t for t in part.reminders if dt.datetime.fromisoformat(t) > moment - REMINDER_WINDOW]
    return max(0, REMINDERS_PER_DAY - len(recent))


@transaction.atomic
def remind_part(*, actor: Actor, part_id: int) -> BroadcastPart:
    """Remind a staff member to send their part (``remind_groupmsg_send``; 3 per 24 hours)."""
    _composer(actor)
    part = BroadcastPart.objects.for_corp(actor.corp).select_for_update().filter(pk=part_id).first()
    if part is None:
        raise NotFound(_("mass message not found"))
    if part.status != BroadcastPart.Status.WAITING or not part.msgid:
        raise Conflict(_("only a part staff have not sent yet can be reminded"))
    moment = now()
    if part.reminders and moment - dt.datetime.fromisoformat(part.reminders[-1]) < REMINDER_DEBOUNCE:
        return part
    if reminders_left(part, moment) <= 0:
        raise Invalid(
            _("WeCom takes at most %(max)d reminders per message in 24 hours") % {"max": REMINDERS_PER_DAY},
            field="reminders",
            code=ErrorCode.REMINDER_LIMIT,
        )
    mass.remind(
        corp=actor.corp,
        idempotency_key=f"bcast:{part.broadcast_id}:part:{part.pk}:remind:{len(part.reminders)}",
        msgid=part.msgid,
    )
    part.reminders = [*part.reminders, moment.isoformat()]
    part.save(update_fields=["reminders"])
    return part


def remind_unsent(*, actor: Actor, broadcast_id: int) -> int:
    """Remind every staff member whose part is unsent and who can still be reminded; returns how many."""
    _composer(actor)
    broadcast = get_broadcast(actor=actor, broadcast_id=broadcast_id)
    reminded = 0
    parts = (
        BroadcastPart.objects.for_corp(actor.corp)
        .filter(broadcast=broadcast, status=BroadcastPart.Status.WAITING)
        .exclude(msgid="")
    )
    for part in parts:
        if reminders_left(part) > 0:
            remind_part(actor=actor, part_id=part.pk)
            reminded += 1
    return reminded
