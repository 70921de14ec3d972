"""What happens when a customer is added: attribution, welcome message, remark, tags, rotation.

``on_contact_added`` listens to ``wecom.signals.contact_added`` (after the relation is committed, in the
worker that handled the callback) and works in steps, each committed before the next, so the welcome message —
whose code lasts 20 s — goes out before anything else:

1. the add is recorded (``ChannelAdd``: its channel by ``state``, or none for "other / unknown") with its
   welcome message queued in the outbox, in one transaction; a repeat finds the add and stops;
2. the welcome message is sent at once from this thread (``send_now``);
3. the channel's remark template and the tagging rules (the channel's auto-tags, time of add…) are applied,
   through the write-through services (WeCom ``remark`` / ``mark_tag``, timeline events), once per add —
   at once, or, while other adds wait in the inbox or are being worked (a burst), by the low-priority
   ``automate_waiting`` task once none does: their welcome codes are running out, a remark and tags can
   wait;
4. the channel's contact way is looked at again (a member may have reached their cap) and pushed if needed.

A paused channel's adds are attributed to it (marked paused) and get the corp default welcome message, but
none of the channel's own automation. ``complete_pending`` finishes step 3 for adds whose worker stopped after
step 1, and ``attribute_missed`` records adds Siyu learned of without a callback (a sync, a lost event).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from siyu.channels import contact_way, rollups, welcome
from siyu.channels.models import Channel, ChannelAdd, ChannelStaff, ChannelTag
from siyu.core.clock import now
from siyu.core.tasks import enqueue
from siyu.core.timewindows import local
from siyu.corps.models import Corp, Staff
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.customers.services import update_relation_remark
from siyu.customers.signals import relation_ended
from siyu.tags.rules import Facts, Match, Trigger, apply_rules, register_kind
from siyu.wecom.inbox import adds_waiting, working_row
from siyu.wecom.limits import Priority
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import EXPIRED_REASON, enqueue_write, send_now
from siyu.wecom.signals import contact_added, write_settled

log = logging.getLogger(__name__)

SOURCE = Event.Source.SYSTEM
# wecom-api.md §4.1: remark ≤ 20 characters, description ≤ 150 (what Siyu sends must fit the API).
REMARK_MAX = 20
DESCRIPTION_MAX = 150
# An add whose automation has not finished this long after it was recorded is finished by the beat.
PENDING_GRACE = dt.timedelta(minutes=1)
# Relations without an add record, added this recently, are recorded (and automated) by the beat: older ones
# predate Siyu's channels and are only attributed by ``services.backfill_adds``.
MISSED_HORIZON = dt.timedelta(hours=24)
# Adds waiting for their remark and tags (``automate_waiting``): the task's priority below the inbox's drains
# (0), the adds read at a time, and the seconds one task runs before it hands over to a new one.
AUTOMATION_PRIORITY = -10
AUTOMATION_BATCH = 50
AUTOMATION_RUN_SECONDS = 30.0
# How long the task waits before looking again when adds are waiting.
AUTOMATION_RETRY = dt.timedelta(seconds=1)
# A relation's end as ``ChannelAdd.ended_by`` says it.
ENDED_BY: dict[str, str] = {
    FollowRelation.Status.DELETED_BY_STAFF.value: "staff",
    FollowRelation.Status.DELETED_BY_CUSTOMER.value: "customer",
}


def channel_for_state(corp: Corp | int, state: str) -> Channel | None:
    """The channel a contact way's state names, archived ones included (their adds stay theirs)."""
    if not state:
        return None
    return Channel.objects.for_corp(corp).filter(state=state).first()


# --- the channel as a kind of tagging rule ------------------------------------------------------------------


class ChannelRule:
    """A live channel's auto-tags, on every relation added through it."""

    triggers = frozenset({Trigger.RELATION_ADDED})

    def matches(self, facts: Facts) -> list[Match]:
        if facts.channel_id is None:
            return []
        channel = Channel.objects.for_corp(facts.corp).filter(pk=facts.channel_id).first()
        if channel is None or channel.status != Channel.Status.ACTIVE:
            return []
        tags = [
            ct.tag
            for ct in ChannelTag.objects.for_corp(facts.corp).filter(channel=channel).select_related("tag")
        ]
        if not tags:
            return []
        return [Match(rule_key=f"channel:{channel.pk}", name=channel.name, tags=tags)]


# --- an add -------------------------------------------------------------------------------------------------


def on_contact_added(
    *,
    corp: Corp,
    customer: Customer,
    staff: Staff,
    relation: FollowRelation,
    state: str = "",
    welcome_code: str = "",
    half: bool = False,
    received_at: dt.datetime | None = None,
    **_: Any,
) -> None:
    """Receiver of ``contact_added``: every step of an add (see the module); never raises."""
    try:
        add, row = record_add(
            corp=corp,
            customer=customer,
            staff=staff,
            relation=relation,
            state=state or "",
            welcome_code=welcome_code or "",
            half=half,
            received_at=received_at,
        )
    except Exception:  # the relation is in; the beat's complete/attribute jobs catch up with the rest
        log.exception("channels: recording add of relation %s failed", relation.pk)
        return
    if add is None:
        return
    if row is not None:
        try:
            send_now(row)
        except Exception:  # the outbox worker sends it while the code is valid, or records it expired
            log.exception("channels: sending the welcome of add %s at once failed", add.pk)
    if adds_waiting(corp.pk, besides=working_row()):
        automate_later(corp.pk)
    else:
        _automate_logged(add)
    if add.channel_id is not None:
        try:
            refresh_channel(add.channel_id, corp)
        except Exception:
            log.exception("channels: refreshing channel %s after an add failed", add.channel_id)


def automate_later(corp_id: int) -> None:
    """Have the corp's adds automated by ``automate_waiting`` once no add waits (a task a corp and second)."""
    from siyu.channels.tasks import automate_adds

    if not cache.add(f"siyu:automate-later:{corp_id}:{math.floor(time.time())}", 1, timeout=5):
        return
    # A queue that cannot take it is logged and the add left to the beat's catch-up (``complete_pending``).
    transaction.on_commit(
        lambda: enqueue(automate_adds, corp_id=corp_id, priority=AUTOMATION_PRIORITY), robust=True
    )


def automate_waiting(corp_id: int, *, max_seconds: float = AUTOMATION_RUN_SECONDS) -> tuple[int, bool]:
    """Automate the corp's adds that wait for it, oldest first, giving way whenever an add waits in the
    inbox or is being worked (its welcome comes first). Returns (adds automated, whether some are left)."""
    started = time.monotonic()
    done = 0
    after = 0  # each add once a run: one that fails (or another worker holds) is left to the beat's catch-up
    while True:
        batch = list(
            ChannelAdd.objects.for_corp(corp_id)
            .filter(automated_at=None, pk__gt=after)
            .order_by("id")[:AUTOMATION_BATCH]
        )
        if not batch:
            return done, False
        for add in batch:
            if adds_waiting(corp_id) or time.monotonic() - started > max_seconds:
                return done, True
            _automate_logged(add)
            after = add.pk
            done += 1


def _automate_logged(add: ChannelAdd) -> None:
    try:
        automate(add)
    except Exception:
        log.exception("channels: automation of add %s failed (the beat retries it)", add.pk)


def record_add(
    *,
    corp: Corp,
    customer: Customer,
    staff: Staff,
    relation: FollowRelation,
    state: str,
    welcome_code: str,
    half: bool,
    received_at: dt.datetime | None,
    source: str = ChannelAdd.Source.CALLBACK,
) -> tuple[ChannelAdd | None, int | None]:
    """Step 1: the add and its welcome message, queued. Returns (add, welcome outbox id), or (None, None)
    when the add is on record already (one add per relation: the unique relation refuses a second one)."""
    channel = channel_for_state(corp, state)
    paused = channel is not None and channel.status != Channel.Status.ACTIVE
    plan = welcome.plan(
        corp=corp,
        channel=channel,
        customer=customer,
        staff=staff,
        welcome_code=welcome_code,
        added_at=relation.added_at,
    )
    moment = now()
    ended = relation.status != FollowRelation.Status.ACTIVE
    if plan.request is not None and plan.deadline is not None and moment >= plan.deadline:
        plan.status, plan.reason = ChannelAdd.Welcome.EXPIRED, "the code expired before the add was handled"
        plan.request = None
    try:
        with transaction.atomic():
            # The welcome's row first, so the add is written once, already pointing at it.
            row = _queue_welcome(corp, plan, welcome_code)
            add = ChannelAdd.objects.create(
                corp=corp,
                relation=relation,
                customer=customer,
                staff=staff,
                channel=channel,
                state=state[:30],
                source=source,
                half=half,
                paused=paused,
                added_at=relation.added_at,
                received_at=received_at,
                **_welcome_fields(plan, row, moment),
                ended_at=relation.status_changed_at if ended else None,
                ended_by=ENDED_BY.get(relation.status, ""),
            )
            rollups.mark_adds(corp, [add.added_at, add.ended_at])
            if row is None and plan.status == ChannelAdd.Welcome.EXPIRED:
                welcome.record_outcome_event(add)
    except IntegrityError:
        # The add is on record already: a repeat, a concurrent worker, or a sync that read the relation from
        # WeCom before this callback was worked — that one has no welcome, and this callback's code may still
        # be used.
        if source != ChannelAdd.Source.CALLBACK or not welcome_code:
            return None, None
        return _take_over_synced(
            corp=corp,
            relation=relation,
            plan=plan,
            welcome_code=welcome_code,
            at=moment,
            received_at=received_at,
        )
    return add, row.pk if row is not None else None


def _queue_welcome(corp: Corp, plan: welcome.Plan, welcome_code: str) -> Outbox | None:
    """The add's welcome in the outbox (None when there is nothing to send), keyed by its code."""
    if plan.request is None:
        return None
    return enqueue_write(
        corp=corp,
        api=welcome.SEND_WELCOME,
        payload=plan.request,
        idempotency_key=f"welcome:{welcome_code}",
        priority=Priority.WELCOME,
        expires_at=plan.deadline,
    )


def _welcome_fields(plan: welcome.Plan, row: Outbox | None, at: dt.datetime) -> dict[str, Any]:
    """An add's welcome columns as planned, queued at ``at`` in ``row``."""
    return {
        "welcome_status": plan.status,
        "welcome_reason": plan.reason[:200],
        "welcome_message": plan.message,
        "welcome_variant": plan.variant,
        "welcome_deadline": plan.deadline,
        "welcome_outbox": row,
        "welcome_queued_at": at if row is not None else None,
    }


def _take_over_synced(
    *,
    corp: Corp,
    relation: FollowRelation,
    plan: welcome.Plan,
    welcome_code: str,
    at: dt.datetime,
    received_at: dt.datetime | None,
) -> tuple[ChannelAdd | None, int | None]:
    """The callback of an add a sync recorded first (``source`` sync, no welcome): the add becomes the
    callback's, with its welcome queued. Returns (add, welcome outbox id), or (None, None) when the add was
    recorded by a callback (or already taken over)."""
    with transaction.atomic():
        add = (
            ChannelAdd.objects.for_corp(corp)
            .select_for_update()
            .filter(
                relation=relation, source=ChannelAdd.Source.SYNC, welcome_status=ChannelAdd.Welcome.NO_CODE
            )
            .first()
        )
        if add is None:
            return None, None
        row = _queue_welcome(corp, plan, welcome_code)
        fields = {
            "source": ChannelAdd.Source.CALLBACK,
            "received_at": received_at,
            **_welcome_fields(plan, row, at),
        }
        for name, value in fields.items():
            setattr(add, name, value)
        add.save(update_fields=list(fields))
        rollups.mark_adds(corp, [add.added_at])
        if row is None and plan.status == ChannelAdd.Welcome.EXPIRED:
            welcome.record_outcome_event(add)
    return add, row.pk if row is not None else None


def automate(add: ChannelAdd) -> None:
    """Step 3: the channel's remark template and the tagging rules, once per add."""
    if add.automated_at is not None:
        return
    with transaction.atomic():
        # One worker automates an add; another that finds it being automated leaves it to that one.
        locked = (
            ChannelAdd.objects.for_corp(add.corp_id)
            .select_for_update(skip_locked=True)
            .filter(pk=add.pk)
            .first()
        )
        if locked is None or locked.automated_at is not None:
            return
        relation = (
            FollowRelation.objects.for_corp(add.corp_id)
            .select_related("customer", "staff", "corp")
            .get(pk=add.relation_id)
        )
        corp = relation.corp
        channel = Channel.objects.for_corp(corp).filter(pk=add.channel_id).first() if add.channel_id else None
        live = channel is not None and channel.status == Channel.Status.ACTIVE
        if relation.status == FollowRelation.Status.ACTIVE:
            if live and channel is not None:
                _apply_remark(channel, relation, add)
            apply_rules(
                Facts(
                    corp=corp,
                    trigger=Trigger.RELATION_ADDED,
                    relation=relation,
                    subject_key=f"add:{add.pk}",
                    at=add.added_at,
                    channel_id=add.channel_id if live else None,
                    state=add.state,
                )
            )
        ChannelAdd.objects.filter(pk=add.pk).update(automated_at=now())
        add.automated_at = now()


def _apply_remark(channel: Channel, relation: FollowRelation, add: ChannelAdd) -> None:
    if not channel.remark_template and not channel.description_template:
        return
    names = {
        "customer_name": relation.customer.name,
        "staff_name": relation.staff.name,
        "channel_name": channel.name,
    }
    remark = (
        welcome.render(channel.remark_template, **names)[:REMARK_MAX] if channel.remark_template else None
    )
    description = (
        welcome.render(channel.description_template, **names)[:DESCRIPTION_MAX]
        if channel.description_template
        else None
    )
    update_relation_remark(
        relation=relation,
        source=SOURCE,
        remark=remark,
        description=description,
        dedupe_key=f"channel:{channel.pk}:add:{add.pk}:remark",
        payload_extra={"channel_id": channel.pk},
    )


def refresh_channel(channel_id: int, corp: Corp) -> None:
    """Step 4: push the channel's contact way if the add changed who should receive, and send it at once.

    Only counts move with an add: a round-robin channel without caps lists the same members whatever they
    are (its schedules are the beat's business), so it is not looked at again here."""
    channel = Channel.objects.for_corp(corp).filter(pk=channel_id).select_related("corp").first()
    if channel is None or channel.status != Channel.Status.ACTIVE:
        return
    if (
        channel.distribution == Channel.Distribution.ROUND_ROBIN
        and not ChannelStaff.objects.for_corp(corp).filter(channel=channel, daily_cap__isnull=False).exists()
    ):
        return
    contact_way.send_pushed(contact_way.push(channel, priority=Priority.EVENT))


# --- catching up --------------------------------------------------------------------------------------------


def complete_pending() -> int:
    """Finish adds whose automation did not run (their worker stopped after recording them)."""
    done = 0
    cutoff = now() - PENDING_GRACE
    busy: dict[int, bool] = {}  # corps whose adds are being worked now: theirs wait (welcomes first)
    for add in ChannelAdd.objects.filter(automated_at=None, recorded_at__lt=cutoff).order_by("id")[:500]:
        if add.corp_id not in busy:
            busy[add.corp_id] = adds_waiting(add.corp_id)
        if busy[add.corp_id]:
            continue
        try:
            automate(add)
            done += 1
        except Exception:
            log.exception("channels: automation of add %s failed", add.pk)
    return done


def settle_lost_outcomes(*, limit: int = 500) -> int:
    """Welcomes still marked queued long after their code expired: their outbox row settled but the outcome
    never reached the add (the worker stopped in between). Read it from the row; returns how many."""
    cutoff = now() - PENDING_GRACE
    fixed = 0
    stale = ChannelAdd.objects.filter(
        welcome_status=ChannelAdd.Welcome.QUEUED, welcome_deadline__lt=cutoff, welcome_outbox__isnull=False
    ).select_related("welcome_outbox")[:limit]
    for add in stale:
        row = add.welcome_outbox
        if row is None or row.status not in (Outbox.Status.DONE, Outbox.Status.FAILED):
            continue
        welcome.settled(
            corp_id=add.corp_id,
            outbox_id=row.pk,
            status=row.status,
            errcode=row.errcode,
            reason=row.last_error,
            expired=row.last_error.startswith(EXPIRED_REASON),
            attempts=row.attempts,
            at=row.sent_at or now(),
        )
        fixed += 1
    return fixed


def attribute_missed(*, horizon: dt.timedelta = MISSED_HORIZON, limit: int = 500) -> int:
    """Record recent relations that have no add record (learned from a sync, or their callback's listener
    never ran): attributed by their state, automated like any add; no welcome (its code is long gone).

    Recent relations are found through their ``added`` events (indexed by corp, kind and time), not by
    scanning the relations."""
    since = now() - horizon
    recorded = 0
    for corp in Corp.objects.exclude(secret_encrypted="").order_by("id"):
        relation_ids = {
            payload.get("relation_id")
            for payload in Event.objects.for_corp(corp)
            .filter(kind=Event.Kind.ADDED, occurred_at__gte=since)
            .values_list("payload", flat=True)
            if isinstance(payload, dict)
        }
        ids = [i for i in relation_ids if isinstance(i, int)]
        missing = (
            FollowRelation.objects.for_corp(corp)
            .filter(pk__in=ids, status=FollowRelation.Status.ACTIVE)
            .filter(~Exists(ChannelAdd.objects.filter(relation_id=OuterRef("pk"))))
            .select_related("customer", "staff")
            .order_by("id")[:limit]
        )
        for relation in missing:
            add, _row = record_add(
                corp=corp,
                customer=relation.customer,
                staff=relation.staff,
                relation=relation,
                state=relation.state,
                welcome_code="",
                half=False,
                received_at=None,
                source=ChannelAdd.Source.SYNC,
            )
            if add is not None:
                recorded += 1
                try:
                    automate(add)
                except Exception:
                    log.exception("channels: automation of add %s failed", add.pk)
    return recorded


# --- outbox outcomes ----------------------------------------------------------------------------------------


def on_write_settled(
    *,
    corp_id: int,
    outbox_id: int,
    api: str,
    status: str,
    errcode: int | None = None,
    reason: str = "",
    expired: bool = False,
    attempts: int = 1,
    at: dt.datetime | None = None,
    **_: Any,
) -> None:
    """Receiver of ``write_settled``: welcome outcomes and contact-way answers."""
    if api == welcome.SEND_WELCOME:
        welcome.settled(
            corp_id=corp_id,
            outbox_id=outbox_id,
            status=status,
            errcode=errcode,
            reason=reason,
            expired=expired,
            attempts=attempts,
            at=at or now(),
        )
    elif api in contact_way.CONTACT_WAY_APIS:
        contact_way.settled(
            corp_id=corp_id, outbox_id=outbox_id, api=api, status=status, reason=reason, errcode=errcode
        )


def local_added_at(add: ChannelAdd, corp: Corp) -> dt.datetime:
    """When the add happened on the corp's wall clock."""
    return local(add.added_at, corp.time_zone)


def connect() -> None:
    relation_ended.connect(rollups.relation_ended, dispatch_uid="channels.rollups.relation_ended")
    contact_added.connect(on_contact_added, dispatch_uid="channels.on_contact_added")
    write_settled.connect(on_write_settled, dispatch_uid="channels.on_write_settled")
    register_kind("channel", ChannelRule())
