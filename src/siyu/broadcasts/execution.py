"""The worker's side of a broadcast: plan and send it when it is due, then follow it in WeCom until done.

``execute_broadcast`` runs in one transaction: it resolves the audience, plans it (reserving the caps), writes
the parts and their ``add_msg_template`` writes to the outbox. A worker that dies before the commit leaves the
broadcast as it was (scheduled, nothing reserved, nothing queued) and the sweep runs it again; after the
commit the outbox owns the sends, once per idempotency key ``bcast:<broadcast>:part:<staff>:<chunk>``.

``poll_broadcast`` follows the parts: the outbox's answer (WeCom's ``msgid``), each staff member's progress
(``get_groupmsg_task``), and once a part is sent the per-customer outcomes (``get_groupmsg_send_result``,
page by page from a saved cursor), stored as ``Delivery`` rows with a timeline event for every customer
reached. Customers WeCom did not reach get their cap back. WeCom is called outside database transactions.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils.translation import gettext as _
from pyroaring import BitMap

from siyu.broadcasts import audience as aud
from siyu.broadcasts import caps
from siyu.broadcasts.content import SIYU_MEDIA, media_ids
from siyu.broadcasts.models import (
    Broadcast,
    BroadcastMedia,
    BroadcastPart,
    BroadcastSkip,
    CapPolicy,
    Delivery,
    LedgerDay,
)
from siyu.broadcasts.planning import Plan, plan_customers
from siyu.core.bulk import insert_rows
from siyu.core.clock import now
from siyu.core.errors import DomainError
from siyu.corps.models import Staff
from siyu.customers.events import record_events
from siyu.customers.models import Customer, Event
from siyu.wecom import errors as wecom_errors
from siyu.wecom import mass

log = logging.getLogger(__name__)

# Ids per query when turning customer ids into external_userids (and back).
ID_CHUNK = 5000
# Result pages read per part per poll: a poll stays short, the next one continues from the cursor.
PAGES_PER_POLL = 20
# How long Siyu follows a broadcast: staff may confirm days later; after this, unsent parts count as not sent.
TRACKING_PERIOD = dt.timedelta(days=7)
# A scheduled broadcast the sweep queued is not queued again for this long (the worker plans it in seconds).
EXECUTION_CLAIM = dt.timedelta(minutes=1)
# WeCom's temporary media live 3 days; an upload younger than this is reused, an older one made again.
MEDIA_FRESH = dt.timedelta(days=2)


def poll_interval(age: dt.timedelta) -> dt.timedelta:
    """How soon to look again: often while staff usually confirm, rarely after."""
    if age < dt.timedelta(minutes=10):
        return dt.timedelta(seconds=10)
    if age < dt.timedelta(hours=2):
        return dt.timedelta(minutes=1)
    return dt.timedelta(minutes=10)


def part_key(broadcast_id: int, staff_id: int | str, seq: int) -> str:
    """The idempotency key of a part's WeCom write: the same part is never created twice."""
    return f"bcast:{broadcast_id}:part:{staff_id}:{seq}"


def _external_userids(corp_id: int, members: BitMap) -> list[str]:
    ids = list(members)
    found: list[str] = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        rows = dict(
            Customer.objects.for_corp(corp_id).filter(pk__in=chunk).values_list("pk", "external_userid")
        )
        found.extend(rows[c] for c in chunk if c in rows)
    return found


def _fail(broadcast: Broadcast, message: str) -> str:
    broadcast.status = Broadcast.Status.FAILED
    broadcast.error = message[:2000]
    broadcast.finished_at = now()
    broadcast.save(update_fields=["status", "error", "finished_at"])
    return "failed"


def _store_skips(broadcast: Broadcast, skipped: dict[str, BitMap]) -> None:
    for reason, members in skipped.items():
        if members:
            members.run_optimize()
            BroadcastSkip.objects.update_or_create(
                corp_id=broadcast.corp_id,
                broadcast=broadcast,
                reason=reason,
                defaults={"members": members.serialize(), "size": len(members)},
            )


def prepare_attachments(broadcast: Broadcast) -> list[dict[str, Any]]:
    """The attachments as WeCom takes them: files kept in Siyu uploaded to WeCom (again, when their media id
    may have expired) and named by their media id. Calls WeCom: outside any transaction."""
    wanted = media_ids(broadcast.attachments)
    if not wanted:
        return list(broadcast.attachments)
    moment = broadcast.kind == Broadcast.Kind.MOMENTS
    media = {m.pk: m for m in BroadcastMedia.objects.for_corp(broadcast.corp_id).filter(pk__in=list(wanted))}
    for item in media.values():
        fresh = item.uploaded_at is not None and item.uploaded_at > now() - MEDIA_FRESH
        if item.media_id and item.for_moment == moment and fresh:
            continue
        item.media_id = mass.upload(
            corp=broadcast.corp,
            kind=item.kind,
            filename=item.filename,
            content=bytes(item.content),
            content_type=item.content_type,
            moment=moment,
        )
        item.for_moment, item.uploaded_at = moment, now()
        item.save(update_fields=["media_id", "for_moment", "uploaded_at"])
    resolved = []
    for attachment in broadcast.attachments:
        kind = str(attachment["msgtype"])
        body = dict(attachment[kind])
        if SIYU_MEDIA in body:
            body = {"media_id": media[int(body[SIYU_MEDIA])].media_id}
        resolved.append({"msgtype": kind, kind: body})
    return resolved


def _send_customer_parts(broadcast: Broadcast, plan: Plan, attachments: list[dict[str, Any]]) -> int:
    staff = {s.pk: s for s in Staff.objects.for_corp(broadcast.corp_id).filter(pk__in=list(plan.by_staff))}
    created = 0
    for staff_id in sorted(plan.by_staff):
        members = plan.by_staff[staff_id]
        sender = staff.get(staff_id)
        if sender is None or not members:
            continue
        for seq, start in enumerate(range(0, len(members), mass.MAX_CUSTOMERS_PER_TASK)):
            chunk = members[start : start + mass.MAX_CUSTOMERS_PER_TASK]
            key = part_key(broadcast.pk, staff_id, seq)
            chunk.run_optimize()
            BroadcastPart.objects.create(
                corp_id=broadcast.corp_id,
                broadcast=broadcast,
                staff=sender,
                userid=sender.userid,
                seq=seq,
                members=chunk.serialize(),
                size=len(chunk),
                idempotency_key=key,
            )
            mass.send_msg_template(
                corp=broadcast.corp,
                idempotency_key=key,
                sender=sender.userid,
                text=broadcast.text,
                attachments=attachments,
                external_userids=_external_userids(broadcast.corp_id, chunk),
            )
            created += 1
    return created


def _send_group_parts(
    broadcast: Broadcast, groups: aud.GroupAudience, attachments: list[dict[str, Any]]
) -> int:
    staff = {s.pk: s for s in Staff.objects.for_corp(broadcast.corp_id).filter(pk__in=list(groups.by_owner))}
    created = 0
    for owner_id in sorted(groups.by_owner):
        sender = staff.get(owner_id)
        if sender is None:
            continue
        chats = groups.by_owner[owner_id]
        for seq, start in enumerate(range(0, len(chats), mass.MAX_GROUPS_PER_TASK)):
            chunk = chats[start : start + mass.MAX_GROUPS_PER_TASK]
            key = part_key(broadcast.pk, owner_id, seq)
            BroadcastPart.objects.create(
                corp_id=broadcast.corp_id,
                broadcast=broadcast,
                staff=sender,
                userid=sender.userid,
                seq=seq,
                chat_ids=chunk,
                size=len(chunk),
                idempotency_key=key,
            )
            mass.send_msg_template(
                corp=broadcast.corp,
                idempotency_key=key,
                sender=sender.userid,
                text=broadcast.text,
                attachments=attachments,
                chat_ids=chunk,
            )
            created += 1
    return created


def _send_moment(broadcast: Broadcast, moment: aud.MomentAudience, attachments: list[dict[str, Any]]) -> int:
    key = part_key(broadcast.pk, "moment", 0)
    BroadcastPart.objects.create(
        corp_id=broadcast.corp_id,
        broadcast=broadcast,
        userid="",
        size=len(moment.userids),
        idempotency_key=key,
    )
    mass.send_moment_task(
        corp=broadcast.corp,
        idempotency_key=key,
        text=broadcast.text,
        attachments=attachments,
        userids=moment.userids,
        department_ids=moment.department_ids,
        tag_ids=moment.tag_ids,
    )
    return 1


def execute_broadcast(*, broadcast_id: int) -> str:
    """Plan and send a due broadcast; returns what happened: sent, held, skipped, failed (or why not)."""
    found = Broadcast.objects.select_related("corp").filter(pk=broadcast_id).first()
    if found is None or found.status != Broadcast.Status.SCHEDULED:
        return "not scheduled"
    try:
        attachments = prepare_attachments(found)
    except mass.TrackingUnavailable:
        return "retry"
    except (wecom_errors.Throttled, wecom_errors.TransientError, wecom_errors.WeComUnavailable):
        return "retry"  # the sweep runs it again
    except wecom_errors.WeComError as exc:
        with transaction.atomic():
            return _fail(found, _("WeCom refused an attachment (errcode %(code)d)") % {"code": exc.errcode})
    with transaction.atomic():
        broadcast = (
            Broadcast.objects.select_for_update().select_related("corp").filter(pk=broadcast_id).first()
        )
        if broadcast is None or broadcast.status != Broadcast.Status.SCHEDULED:
            return "not scheduled"
        moment = now()
        due = max(filter(None, (broadcast.scheduled_at, broadcast.held_until)), default=moment)
        if due > moment:
            return "not due"
        corp = broadcast.corp
        policy = caps.policy_for(corp)
        quiet_end = caps.quiet_until(corp=corp, at=moment, policy=policy)
        if quiet_end is not None and policy.quiet_action == CapPolicy.QuietAction.WAIT:
            broadcast.held_until = quiet_end
            broadcast.save(update_fields=["held_until"])
            from siyu.broadcasts.tasks import enqueue_execution

            transaction.on_commit(lambda: enqueue_execution(broadcast_id, run_after=quiet_end))
            return "held"
        try:
            spec = aud.AudienceSpec.parse(broadcast.audience)
            if broadcast.kind == Broadcast.Kind.CUSTOMERS:
                resolved = aud.resolve_customers(corp, spec)
                if not resolved.candidates:
                    return _fail(broadcast, _("the audience is empty: nobody would receive this message"))
                plan = plan_customers(corp=corp, audience=resolved, at=moment, reserve=True)
                _store_skips(broadcast, plan.skipped)
                broadcast.plan = plan.summary()
                parts = _send_customer_parts(broadcast, plan, attachments)
            elif broadcast.kind == Broadcast.Kind.GROUPS:
                groups = aud.resolve_groups(corp, spec)
                broadcast.plan = {
                    "audience": groups.count,
                    "recipients": groups.count - len(groups.ownerless),
                    "skipped": {BroadcastSkip.Reason.NOT_FRIEND: len(groups.ownerless)},
                    "staff": {str(k): len(v) for k, v in groups.by_owner.items()},
                }
                parts = 0 if quiet_end is not None else _send_group_parts(broadcast, groups, attachments)
            else:
                moment_audience = aud.resolve_moment(corp, spec)
                broadcast.plan = {
                    "audience": len(moment_audience.userids),
                    "recipients": len(moment_audience.userids),
                }
                parts = 0 if quiet_end is not None else _send_moment(broadcast, moment_audience, attachments)
        except DomainError as exc:  # a tag or segment deleted since composing, an empty audience…
            return _fail(broadcast, exc.message)
        broadcast.sent_at = broadcast.ledger_at = moment
        if quiet_end is not None:  # quiet hours, and the corp skips sends that fall in them
            broadcast.status = Broadcast.Status.SKIPPED
            broadcast.error = _("quiet hours: the corp skips sends that fall in them")
            broadcast.finished_at = moment
        elif not parts:
            broadcast.status = Broadcast.Status.SKIPPED
            broadcast.error = _("nobody left to send to after the skips")
            broadcast.finished_at = moment
        else:
            broadcast.status = Broadcast.Status.SENDING
            broadcast.next_poll_at = moment + poll_interval(dt.timedelta())
            broadcast.tracking_until = moment + TRACKING_PERIOD
        broadcast.save()
        return "sent" if parts else "skipped"


def request_cancel(broadcast: Broadcast) -> None:
    """Cancel every part not sent yet: at once in WeCom for parts it has, on arrival for the others."""
    parts = BroadcastPart.objects.for_corp(broadcast.corp_id).filter(
        broadcast=broadcast, status__in=(BroadcastPart.Status.QUEUED, BroadcastPart.Status.WAITING)
    )
    for part in parts:
        part.cancel_requested = True
        part.save(update_fields=["cancel_requested"])
        if part.status == BroadcastPart.Status.WAITING and part.msgid:
            _cancel_in_wecom(broadcast, part)
    broadcast.next_poll_at = now()
    broadcast.save(update_fields=["next_poll_at"])


def _cancel_in_wecom(broadcast: Broadcast, part: BroadcastPart) -> None:
    mass.cancel(
        corp=broadcast.corp, idempotency_key=f"bcast:{broadcast.pk}:part:{part.pk}:cancel", msgid=part.msgid
    )


# --- tracking ----------------------------------------------------------------------------------------------


def _release_unreached(broadcast: Broadcast, part: BroadcastPart) -> None:
    """Give the caps back for the part's customers WeCom did not deliver to (once)."""
    if part.released or broadcast.kind != Broadcast.Kind.CUSTOMERS or broadcast.ledger_at is None:
        return
    members = BitMap.deserialize(bytes(part.members)) if part.members else BitMap()
    delivered = BitMap(
        Delivery.objects.for_corp(broadcast.corp_id)
        .filter(part=part, status=Delivery.Status.SENT)
        .exclude(customer=None)
        .values_list("customer_id", flat=True)
    )
    unreached = members - delivered
    if unreached:
        caps.release(
            corp=broadcast.corp,
            customer_ids=unreached,
            at=broadcast.ledger_at,
            channel=LedgerDay.Channel.WECOM_MASS,
        )
    part.released = True


def _apply_writes(broadcast: Broadcast) -> None:
    """Parts whose WeCom write finished: their msgid (or jobid), or the failure."""
    queued = list(
        BroadcastPart.objects.for_corp(broadcast.corp_id).filter(
            broadcast=broadcast, status=BroadcastPart.Status.QUEUED
        )
    )
    if not queued:
        return
    states = mass.write_states(corp=broadcast.corp, idempotency_keys=[p.idempotency_key for p in queued])
    for part in queued:
        state = states.get(part.idempotency_key)
        if state is None or not (state.done or state.failed):
            continue
        with transaction.atomic():
            if state.done:
                part.msgid = str(state.result.get("msgid", ""))
                part.jobid = str(state.result.get("jobid", ""))
                part.fail_count = len(state.result.get("fail_list") or [])
                part.status = BroadcastPart.Status.WAITING
                if part.cancel_requested and part.msgid:
                    _cancel_in_wecom(broadcast, part)
            else:
                part.status = BroadcastPart.Status.UNKNOWN if state.unknown else BroadcastPart.Status.FAILED
                part.error = state.error[:2000]
                if part.status == BroadcastPart.Status.FAILED:  # WeCom has nothing: nobody was reached
                    _release_unreached(broadcast, part)
            part.save()


def _apply_task_progress(broadcast: Broadcast) -> None:
    """Which staff have sent their part (one ``get_groupmsg_task`` per WeCom task)."""
    waiting = (
        BroadcastPart.objects.for_corp(broadcast.corp_id)
        .filter(broadcast=broadcast, status=BroadcastPart.Status.WAITING)
        .exclude(msgid="")
    )
    for part in waiting:
        cancelled = part.cancel_requested and _write_done(
            broadcast, f"bcast:{broadcast.pk}:part:{part.pk}:cancel"
        )
        try:
            progress = mass.msg_task_progress(corp=broadcast.corp, msgid=part.msgid)
        except mass.TrackingUnavailable:
            continue
        mine = next((p for p in progress if p.userid == part.userid), None)
        with transaction.atomic():
            if mine is not None and mine.sent:
                part.status = BroadcastPart.Status.SENT
                part.sent_at = mine.send_time or now()
            elif cancelled:
                part.status = BroadcastPart.Status.CANCELLED
                _release_unreached(broadcast, part)
            part.save()


def _write_done(broadcast: Broadcast, key: str) -> bool:
    state = mass.write_states(corp=broadcast.corp, idempotency_keys=[key]).get(key)
    return state is not None and state.done


def _customer_ids(corp_id: int, external_userids: Iterable[str]) -> dict[str, int]:
    wanted = list(dict.fromkeys(external_userids))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), ID_CHUNK):
        chunk = wanted[start : start + ID_CHUNK]
        found.update(
            Customer.objects.for_corp(corp_id)
            .filter(external_userid__in=chunk)
            .values_list("external_userid", "pk")
        )
    return found


def _record_results(broadcast: Broadcast, part: BroadcastPart, results: list[mass.SendResult]) -> int:
    """Store a page of outcomes and the timeline events of the customers reached; returns the unsent count."""
    final = [r for r in results if r.status in Delivery.Status.values]
    customers = (
        _customer_ids(broadcast.corp_id, [r.target for r in final])
        if broadcast.kind == Broadcast.Kind.CUSTOMERS
        else {}
    )
    moment = now()
    rows = [
        (
            broadcast.corp_id,
            broadcast.pk,
            part.pk,
            customers.get(r.target),
            r.target,
            r.status,
            r.send_time,
            moment,
        )
        for r in final
    ]
    insert_rows(
        Delivery,
        ("corp", "broadcast", "part", "customer", "target", "status", "sent_at", "recorded_at"),
        rows,
    )
    events = [
        (
            broadcast.corp_id,
            customers[r.target],
            part.staff_id,
            Event.Kind.BROADCAST_RECEIVED.value,
            r.send_time or moment,
            Event.Source.WECOM.value,
            {"broadcast_id": broadcast.pk, "name": broadcast.name, "userid": part.userid},
            f"broadcast:{broadcast.pk}:{r.target}",
            moment,
        )
        for r in final
        if r.status == Delivery.Status.SENT and r.target in customers
    ]
    record_events(events)
    return len(results) - len(final)


def _apply_results(broadcast: Broadcast) -> None:
    """Per-customer outcomes of sent parts, a bounded number of pages per poll."""
    parts = (
        BroadcastPart.objects.for_corp(broadcast.corp_id)
        .filter(broadcast=broadcast, status=BroadcastPart.Status.SENT, results_done=False)
        .exclude(msgid="")
    )
    for part in parts:
        cursor = part.results_cursor
        for _page in range(PAGES_PER_POLL):
            try:
                results, next_cursor = mass.msg_send_results(
                    corp=broadcast.corp, msgid=part.msgid, userid=part.userid, cursor=cursor
                )
            except mass.TrackingUnavailable:
                break
            with transaction.atomic():
                unsent = _record_results(broadcast, part, results)
                if unsent:
                    # WeCom has not settled every customer yet: read the whole list again next time.
                    next_cursor, part.results_cursor = "", ""
                else:
                    part.results_cursor = next_cursor
                if not next_cursor and not unsent:
                    part.results_done = True
                _count(part)
                if part.results_done:
                    _release_unreached(broadcast, part)
                part.save()
            if not next_cursor:
                break
            cursor = next_cursor


def _count(part: BroadcastPart) -> None:
    counts = dict(
        Delivery.objects.for_corp(part.corp_id)
        .filter(part=part)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    part.delivered = counts.get(Delivery.Status.SENT, 0)
    part.not_friend = counts.get(Delivery.Status.NOT_FRIEND, 0)
    part.over_quota = counts.get(Delivery.Status.OVER_QUOTA, 0)


def _apply_moment(broadcast: Broadcast) -> None:
    part = BroadcastPart.objects.for_corp(broadcast.corp_id).filter(broadcast=broadcast).first()
    if part is None or part.status != BroadcastPart.Status.WAITING or not part.jobid:
        return
    try:
        if not part.moment_id:
            job = mass.moment_job(corp=broadcast.corp, jobid=part.jobid)
            if not job.finished:
                return
            part.moment_id = job.moment_id
            if job.errcode:
                part.status, part.error = BroadcastPart.Status.FAILED, f"errcode {job.errcode}"
            broadcast.plan = {**broadcast.plan, "invalid_userids": job.invalid_userids}
        if part.moment_id and part.status == BroadcastPart.Status.WAITING:
            published = mass.moment_publishers(corp=broadcast.corp, moment_id=part.moment_id)
            broadcast.plan = {**broadcast.plan, "published": published}
            part.delivered = sum(published.values())
            if published and all(published.values()):
                part.status, part.sent_at = BroadcastPart.Status.SENT, now()
                part.results_done = True
    except mass.TrackingUnavailable:
        pass
    part.save()
    broadcast.save(update_fields=["plan"])


TERMINAL = Q(
    status__in=(BroadcastPart.Status.CANCELLED, BroadcastPart.Status.FAILED, BroadcastPart.Status.UNKNOWN)
) | Q(status=BroadcastPart.Status.SENT, results_done=True)


def poll_broadcast(*, broadcast_id: int) -> str:
    """Follow a sent broadcast one step; returns its status after the step."""
    broadcast = Broadcast.objects.select_related("corp").filter(pk=broadcast_id).first()
    if broadcast is None or broadcast.status not in (Broadcast.Status.SENDING, Broadcast.Status.TRACKING):
        return broadcast.status if broadcast else "missing"
    _apply_writes(broadcast)
    if broadcast.kind == Broadcast.Kind.MOMENTS:
        _apply_moment(broadcast)
    else:
        _apply_task_progress(broadcast)
        _apply_results(broadcast)
    moment = now()
    with transaction.atomic():
        broadcast = Broadcast.objects.select_for_update().select_related("corp").get(pk=broadcast_id)
        parts = BroadcastPart.objects.for_corp(broadcast.corp_id).filter(broadcast=broadcast)
        open_parts = parts.exclude(TERMINAL)
        if (
            not parts.filter(status=BroadcastPart.Status.QUEUED).exists()
            and broadcast.status == Broadcast.Status.SENDING
        ):
            broadcast.status = Broadcast.Status.TRACKING
        expired = broadcast.tracking_until is not None and moment >= broadcast.tracking_until
        if not open_parts.exists() or expired:
            for part in open_parts.filter(status=BroadcastPart.Status.WAITING):
                _release_unreached(broadcast, part)
                part.save(update_fields=["released"])
            broadcast.status = Broadcast.Status.DONE
            broadcast.finished_at = moment
            broadcast.next_poll_at = None
        else:
            broadcast.next_poll_at = moment + poll_interval(moment - (broadcast.sent_at or moment))
        broadcast.save(update_fields=["status", "finished_at", "next_poll_at"])
    return broadcast.status


def claim_due_polls(*, limit: int = 50) -> list[int]:
    """Broadcasts due a poll, each claimed by moving its next poll ahead (one UPDATE wins per broadcast)."""
    moment = now()
    due = (
        Broadcast.objects.filter(
            status__in=(Broadcast.Status.SENDING, Broadcast.Status.TRACKING), next_poll_at__lte=moment
        )
        .order_by("next_poll_at")
        .values_list("pk", flat=True)[:limit]
    )
    claimed = []
    lease = moment + dt.timedelta(minutes=2)  # a poll that dies is picked up again after this
    for pk in list(due):
        if Broadcast.objects.filter(pk=pk, next_poll_at__lte=moment).update(next_poll_at=lease):
            claimed.append(pk)
    return claimed


def due_executions(*, limit: int = 100) -> list[int]:
    """Scheduled broadcasts whose time has come (the sweep's net for a lost deferred task), each claimed for a
    minute so that a sweep does not queue it again while a worker has it."""
    moment = now()
    due = (
        Broadcast.objects.filter(status=Broadcast.Status.SCHEDULED)
        .filter(Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=moment))
        .filter(Q(held_until__isnull=True) | Q(held_until__lte=moment))
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=moment))
        .values_list("pk", flat=True)[:limit]
    )
    claimed = []
    for pk in list(due):
        claim = Broadcast.objects.filter(pk=pk, status=Broadcast.Status.SCHEDULED).filter(
            Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=moment)
        )
        if claim.update(next_poll_at=moment + EXECUTION_CLAIM):
            claimed.append(pk)
    return claimed
