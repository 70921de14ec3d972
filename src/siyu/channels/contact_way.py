"""Keeping each channel's WeCom contact way as it should be now, and telling WeCom only when that changes.

``desired`` is what the contact way should say at a moment: the members to list (``rotation.decide``),
whether adds are auto-accepted (``skip_verify``, with its optional window), its remark and its state.
``push`` compares that with ``Channel.pushed`` — what WeCom was last told — and, when anything differs, asks
the outbox for ``add_contact_way`` (the channel has no contact way yet) or ``update_contact_way``. One write
per channel is in flight at a time: while one is open nothing more is queued, and when it settles
(``on_write_settled``) the channel is looked at again, so the last word always reflects the latest state and
two writes never race each other.

It runs when a channel is created or edited, after every add through it (a member may have reached their
cap), and every ``REFRESH_EVERY`` for every live channel (schedules open and close, days start) —
``refresh_corp``. A failed write is shown on the channel and tried again after ``PUSH_RETRY``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from django.db import transaction
from django.db.models import Count, Prefetch

from siyu.channels.models import Channel, ChannelAdd, ChannelSchedule, ChannelStaff
from siyu.channels.rotation import Candidate, Decision, Window, decide
from siyu.core.clock import now
from siyu.core.timewindows import EVERY_DAY, in_window, local, start_of_day
from siyu.corps.models import Corp, Staff
from siyu.wecom import schemas as s
from siyu.wecom.limits import Priority
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import enqueue_write, send_now
from siyu.wecom.services import sends_to_wecom

log = logging.getLogger(__name__)

ADD = "externalcontact/add_contact_way"
UPDATE = "externalcontact/update_contact_way"
DELETE = "externalcontact/del_contact_way"
CONTACT_WAY_APIS = (ADD, UPDATE, DELETE)
# The beat looks at every live channel this often: a schedule's hour or a new day reaches WeCom within it.
REFRESH_EVERY = dt.timedelta(seconds=30)
# After WeCom refused a channel's contact way, the same configuration is tried again this much later.
PUSH_RETRY = dt.timedelta(minutes=10)
REMARK_MAX = 30  # add_contact_way / update_contact_way: remark ≤ 30 characters (wecom-api.md §4.3)
USERS_MAX = 100  # ≤ 100 members per contact way (wecom-api.md §6)
SCENE_QR: Literal[2] = 2  # scene 2: a QR code (qr_code is returned), wecom-api.md §4.3
MULTI: Literal[2] = 2  # type 2: several members; type 1 takes exactly one


@dataclass(frozen=True)
class Desired:
    """What a channel's contact way should say now, and the rotation decision behind its member list."""

    fields: dict[str, Any]
    decision: Decision


def _today_counts(
    corp: Corp, channel_ids: list[int], at: dt.datetime
) -> tuple[dict[tuple[int, int], int], dict[int, int]]:
    """Adds since the corp's midnight: per (channel, staff), and per staff through any channel."""
    since = start_of_day(at, corp.time_zone)
    per_channel: dict[tuple[int, int], int] = {}
    per_staff: dict[int, int] = {}
    rows = ChannelAdd.objects.for_corp(corp).filter(added_at__gte=since)
    for channel_id, staff_id, n in (
        rows.filter(channel_id__in=channel_ids)
        .values_list("channel_id", "staff_id")
        .annotate(n=Count("id"))
        .order_by()
    ):
        per_channel[(channel_id, staff_id)] = n
    for staff_id, n in rows.values_list("staff_id").annotate(n=Count("id")).order_by():
        per_staff[staff_id] = n
    return per_channel, per_staff


def _members_prefetch(corp: Corp) -> Prefetch:
    return Prefetch(
        "members",
        queryset=ChannelStaff.objects.for_corp(corp)
        .select_related("staff")
        .prefetch_related(
            Prefetch("schedules", queryset=ChannelSchedule.objects.for_corp(corp).order_by("id"))
        )
        .order_by("is_backup", "order", "id"),
    )


def _candidates(
    channel: Channel, per_channel: dict[tuple[int, int], int], per_staff: dict[int, int]
) -> list[Candidate]:
    candidates = []
    for member in channel.members.all():
        staff = member.staff
        if staff.status != Staff.Status.ACTIVE or not staff.has_contact_permission:
            continue  # WeCom refuses a contact way listing a member who cannot take customers
        candidates.append(
            Candidate(
                userid=staff.userid,
                is_backup=member.is_backup,
                weight=member.weight,
                daily_cap=member.daily_cap,
                schedules=tuple(Window(w.weekdays, w.start, w.end) for w in member.schedules.all()),
                today_channel=per_channel.get((channel.pk, staff.pk), 0),
                today_all=per_staff.get(staff.pk, 0),
            )
        )
    return candidates


def skip_verify_now(channel: Channel, local_now: dt.datetime) -> bool:
    """Whether adds are auto-accepted now: the channel says so, inside its window if it has one; never while
    paused (a paused channel's customers wait for a member to accept them)."""
    if channel.status != Channel.Status.ACTIVE or not channel.skip_verify:
        return False
    if channel.skip_verify_start is None or channel.skip_verify_end is None:
        return True
    return in_window(
        local_now, weekdays=EVERY_DAY, start=channel.skip_verify_start, end=channel.skip_verify_end
    )


def desired(
    channel: Channel,
    *,
    at: dt.datetime,
    per_channel: dict[tuple[int, int], int],
    per_staff: dict[int, int],
) -> Desired:
    """What ``channel``'s contact way should say at ``at`` (its members must be prefetched)."""
    local_now = local(at, channel.corp.time_zone)
    decision = decide(_candidates(channel, per_channel, per_staff), channel.distribution, local_now)
    users = list(decision.userids[:USERS_MAX])
    if channel.status == Channel.Status.PAUSED and channel.pushed.get("user"):
        users = list(channel.pushed["user"])  # paused: the list stays as it was, only auto-accept goes off
    fields = {
        "user": users,
        "skip_verify": skip_verify_now(channel, local_now),
        "remark": channel.name[:REMARK_MAX],
        "state": channel.state,
    }
    return Desired(fields=fields, decision=decision)


def _open_write(channel: Channel) -> bool:
    outbox_id = channel.pushed.get("outbox_id")
    return bool(
        outbox_id
        and Outbox.objects.for_corp(channel.corp_id)
        .filter(pk=outbox_id, status__in=[Outbox.Status.PENDING, Outbox.Status.SENDING])
        .exists()
    )


def _same(pushed: dict[str, Any], fields: dict[str, Any]) -> bool:
    return all(pushed.get(k) == v for k, v in fields.items())


def _refused_recently(channel: Channel, fields: dict[str, Any], at: dt.datetime) -> bool:
    """WeCom refused this very configuration less than ``PUSH_RETRY`` ago: asking again now would only
    be refused again (an administrator has to fix the cause, e.g. a member's permission)."""
    failed_at = channel.pushed.get("failed_at")
    if not failed_at or not _same(channel.pushed.get("refused", {}), fields):
        return False
    return at < dt.datetime.fromisoformat(failed_at) + PUSH_RETRY


@transaction.atomic
def push(
    channel: Channel,
    *,
    at: dt.datetime | None = None,
    counts: tuple[dict[tuple[int, int], int], dict[int, int]] | None = None,
    priority: Priority = Priority.EVENT,
) -> Outbox | None:
    """Queue the contact-way write that brings WeCom in line with ``channel`` now, if one is needed.

    Returns the queued row (sent after commit by the worker; ``send_pushed`` sends it at once), or None when
    WeCom already says the right thing, a write is still in flight, or the corp is not connected.
    """
    at = at or now()
    locked = Channel.objects.for_corp(channel.corp_id).select_for_update().get(pk=channel.pk)
    if locked.status == Channel.Status.ARCHIVED or not sends_to_wecom(corp=locked.corp, source="system"):
        return None
    if _open_write(locked):
        return None  # it settles first; on_write_settled looks again
    channel = (
        Channel.objects.for_corp(locked.corp_id)
        .select_related("corp")
        .prefetch_related(_members_prefetch(locked.corp))
        .get(pk=locked.pk)
    )
    per_channel, per_staff = counts or _today_counts(channel.corp, [channel.pk], at)
    want = desired(channel, at=at, per_channel=per_channel, per_staff=per_staff)
    if not want.fields["user"]:
        if channel.push_error != NO_MEMBERS:
            Channel.objects.filter(pk=channel.pk).update(push_error=NO_MEMBERS)
        return None
    if channel.config_id and _same(channel.pushed, want.fields):
        return None
    if _refused_recently(channel, want.fields, at):
        return None
    if channel.config_id:
        request: s.WeComRequest = s.UpdateContactWayRequest(config_id=channel.config_id, **want.fields)
        api = UPDATE
    else:
        request = s.ContactWayRequest(type=MULTI, scene=SCENE_QR, **want.fields)
        api = ADD
    row = enqueue_write(
        corp=channel.corp,
        api=api,
        payload=request,
        idempotency_key=f"contact_way:channel:{channel.pk}:{uuid.uuid4().hex}",
        priority=priority,
    )
    pushed = {**want.fields, "outbox_id": row.pk, "mode": want.decision.mode.value}
    Channel.objects.filter(pk=channel.pk).update(pushed=pushed, pushed_at=at)
    return row


# Shown on a channel whose members are all gone (resigned, or without customer-contact permission).
NO_MEMBERS = "no member can receive customers: the contact way keeps its last list"


def send_pushed(row: Outbox | None) -> None:
    """Send a queued contact-way write right away, after the caller's transaction commits."""
    if row is not None:
        pk = row.pk
        transaction.on_commit(lambda: _send_quietly(pk))


def _send_quietly(pk: int) -> None:
    try:
        send_now(pk)
    except Exception:  # the worker sends it later; the add that triggered it must not fail
        log.exception("contact way write %d: sending at once failed", pk)


def refresh_corp(corp: Corp, *, at: dt.datetime | None = None) -> int:
    """Push every live channel of ``corp`` whose contact way no longer says what it should; returns how many
    writes were queued. A handful of queries whatever the number of channels, plus one per push."""
    at = at or now()
    if not sends_to_wecom(corp=corp, source="system"):
        return 0
    channels = list(
        Channel.objects.for_corp(corp)
        .exclude(status=Channel.Status.ARCHIVED)
        .select_related("corp")
        .prefetch_related(_members_prefetch(corp))
    )
    if not channels:
        return 0
    per_channel, per_staff = _today_counts(corp, [c.pk for c in channels], at)
    queued = 0
    for channel in channels:
        want = desired(channel, at=at, per_channel=per_channel, per_staff=per_staff)
        if channel.config_id and _same(channel.pushed, want.fields):
            continue
        if push(channel, at=at, counts=(per_channel, per_staff)) is not None:
            queued += 1
    return queued


def refresh_all() -> None:
    """The beat's job: every connected corp with live channels."""
    corp_ids = (
        Channel.objects.exclude(status=Channel.Status.ARCHIVED).values_list("corp_id", flat=True).distinct()
    )
    for corp in Corp.objects.filter(pk__in=list(corp_ids)).exclude(secret_encrypted=""):
        try:
            refresh_corp(corp)
        except Exception:  # one corp's trouble must not stop the others'
            log.exception("channels: refreshing corp %s failed", corp.pk)


def settled(*, corp_id: int, outbox_id: int, api: str, status: str, reason: str, errcode: int | None) -> None:
    """A contact-way write ended: keep WeCom's ids (add), record a refusal, and look at the channel again."""
    channel = (
        Channel.objects.for_corp(corp_id).filter(pushed__outbox_id=outbox_id).select_related("corp").first()
    )
    if channel is None:
        return
    row = Outbox.objects.get(pk=outbox_id)
    with transaction.atomic():
        if status == Outbox.Status.DONE:
            updates: dict[str, Any] = {"push_error": ""}
            if api == ADD:
                created = s.ContactWayCreated.model_validate(row.result)
                updates.update(config_id=created.config_id, qr_code=created.qr_code)
            Channel.objects.filter(pk=channel.pk).update(**updates)
        else:
            pushed = dict(channel.pushed)
            refused = {k: pushed.get(k) for k in ("user", "skip_verify", "remark", "state")}
            Channel.objects.filter(pk=channel.pk).update(
                pushed={"failed_at": now().isoformat(), "refused": refused},
                push_error=f"WeCom refused the contact way: {reason}"[:500],
            )
    if api != DELETE:
        channel.refresh_from_db()
        send_pushed(push(channel))


def pushed_counts(corp: Corp) -> dict[str, int]:
    """Open contact-way writes of the corp by API (the console shows them)."""
    rows = (
        Outbox.objects.for_corp(corp)
        .filter(api__in=CONTACT_WAY_APIS, status__in=[Outbox.Status.PENDING, Outbox.Status.SENDING])
        .values_list("api")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[str, int] = defaultdict(int)
    for api, n in rows:
        counts[api] = n
    return dict(counts)
