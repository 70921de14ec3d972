"""Routing of inbox events to what they mean for Siyu: every event type of wecom-api.md §3 and WeCom's
contact-change events (``change_contact``).

A handler reads the event, fetches the details WeCom does not put in callbacks through the client (in
the worker, never in the HTTP request) and mirrors them (``mirror.Mirror``) through the domain services.
Dedupe keys of the events it records start with ``wecom:<inbox dedupe key>``, so working the same row again
records nothing; and because details are re-read from WeCom, a late or repeated event never moves state
backwards.

Events Siyu has no use for are ``Ignored`` (the reason is shown in the console). A handler's return value is
the one-line outcome shown in the console.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from django.db import transaction

from siyu.core.clock import now
from siyu.corps.models import Corp, Staff
from siyu.corps.services import change_staff_userid, delete_department, upsert_department, upsert_staff
from siyu.customers.events import record_event
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.groups.models import GroupChat
from siyu.groups.services import dismiss_group_chat, link_customer_stays
from siyu.wecom import schemas as s
from siyu.wecom.client import WeComClient
from siyu.wecom.errors import InvalidExternalUserId, InvalidUserId, NoExternalContactRelation, WeComError
from siyu.wecom.messages import CHAT_EVENT, CONTACT_EVENT, ORG_EVENT, TAG_EVENT, Message
from siyu.wecom.mirror import STAFF_STATUS, Mirror, RelationFacts, from_timestamp
from siyu.wecom.models import InboxEvent
from siyu.wecom.signals import contact_added, group_joined

SOURCE = Event.Source.WECOM
# del_external_contact's Source when the relation ended because an in-service transfer completed (§3.1).
DELETE_BY_TRANSFER = "DELETE_BY_TRANSFER"
# groupchat/get's errcode for a chat_id WeCom no longer has (the group was dismissed): WeCom's global error
# code 40050 "chatid不存在", as the simulator answers it too.
CHAT_NOT_FOUND = 40050


class Ignored(Exception):
    """The event asks nothing of Siyu; the message says why (shown in the console)."""


@dataclass
class Context:
    """One inbox row being worked: its message, corp, client and mirror."""

    row: InboxEvent
    message: Message
    client_factory: Callable[[Corp], WeComClient]
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def corp(self) -> Corp:
        return self.row.corp

    @cached_property
    def client(self) -> WeComClient:
        return self.client_factory(self.corp)

    @cached_property
    def mirror(self) -> Mirror:
        return Mirror(
            corp=self.corp,
            client=self.client,
            source=SOURCE,
            dedupe_prefix=f"wecom:{self.row.dedupe_key}",
            payload_extra=dict(self.extra),
        )

    @property
    def at(self) -> dt.datetime:
        """When WeCom says it happened (CreateTime), else when it arrived."""
        return self.message.create_time or self.row.received_at or now()

    def key(self, suffix: str) -> str:
        return f"wecom:{self.row.dedupe_key}:{suffix}"

    def require(self, *names: str) -> list[str]:
        values = [self.message.get(name) for name in names]
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        if missing:
            raise ValueError(f"the event has no {', '.join(missing)}")
        return values


Handler = Callable[[Context], str]


def handle(*, row: InboxEvent, message: Message, client_factory: Callable[[Corp], WeComClient]) -> str:
    """Work one event; returns the outcome, raises ``Ignored`` for events Siyu does not use."""
    if message.msg_type != "event":
        raise Ignored("not an event")
    handler = HANDLERS.get((message.event, message.change_type))
    if handler is None:
        raise Ignored(f"no handler for {message.event or '?'}/{message.change_type or '-'}")
    return handler(Context(row=row, message=message, client_factory=client_factory))


# --- change_external_contact --------------------------------------------------------------------------------


def _customer_detail(ctx: Context, external_userid: str) -> s.CustomerDetail | None:
    """``externalcontact/get``, or None when WeCom says the customer or every relation with them is gone."""
    try:
        return ctx.client.get_customer_all(external_userid)
    except (InvalidExternalUserId, NoExternalContactRelation):
        return None


def _active_relation(corp: Corp, external_userid: str, userid: str) -> FollowRelation | None:
    return (
        FollowRelation.objects.for_corp(corp)
        .filter(
            customer__external_userid=external_userid,
            staff__userid=userid,
            status=FollowRelation.Status.ACTIVE,
        )
        .select_related("customer", "staff")
        .first()
    )


def _current_relation(ctx: Context, external_userid: str, follow: s.FollowUser) -> FollowRelation | None:
    """The active relation here that is WeCom's ``follow``, or None.

    One added before WeCom's ``createtime`` is an earlier relation the customer and the member ended and then
    started again; the deletion's event has not been worked (it comes later, or was lost). That relation is
    ended now, so the new one is added (and welcomed); the late deletion then finds the newer one and keeps
    it. WeCom does not say who deleted: "staff", as a sync records a deletion it finds.
    """
    relation = _active_relation(ctx.corp, external_userid, follow.userid)
    created = from_timestamp(follow.createtime)
    if relation is None or created is None or relation.added_at >= created:
        return relation
    ctx.mirror.end_relation(
        relation, by="staff", at=created, key=f"{external_userid}:{follow.userid}:replaced"
    )
    return None


def _add_state(ctx: Context, follow: s.FollowUser) -> str:
    """The contact way ``state`` of the relation WeCom has now (the channel it is attributed to).

    The event's State belongs to the add it announces. When WeCom's relation was created after the event (the
    customer was deleted and added again since, perhaps without a state), the event's State is an earlier
    relation's: WeCom's own ``follow_user.state`` is the truth, as a sync reads it."""
    event_state = ctx.message.get("State") or ""
    created = from_timestamp(follow.createtime)
    event_time = ctx.message.create_time
    if follow.state or (created is not None and event_time is not None and created > event_time):
        return follow.state
    return event_state


def on_contact_added(ctx: Context) -> str:
    """add_external_contact / add_half_external_contact: the customer, the relation, its remark and tags."""
    external_userid, userid = ctx.require("ExternalUserID", "UserID")
    half = ctx.message.change_type == "add_half_external_contact"
    if half:
        ctx.extra["half"] = True
    detail = _customer_detail(ctx, external_userid)
    if detail is None:
        return "customer no longer in WeCom: nothing to add"
    follow = next((f for f in detail.follow_user if f.userid == userid), None)
    if follow is None:
        ctx.mirror.customer(detail.external_contact)
        return "relation no longer in WeCom (deleted since): nothing added"
    facts = RelationFacts.from_follow_user(follow)
    # What may need WeCom (a member or a tag Siyu does not know yet) is resolved first, so that the writes are
    # one short transaction, committed once, and the welcome (after commit) waits for one commit, not four.
    staff = ctx.mirror.staff(userid)
    ctx.mirror.tags_by_wecom_id(facts.tag_ids)
    with transaction.atomic():
        customer = ctx.mirror.customer(detail.external_contact)
        state = _add_state(ctx, follow)
        current = _current_relation(ctx, external_userid, follow)
        outcome = ctx.mirror.relation(customer, facts, state=state, relation=current, known=True)
        welcome_code = ctx.message.get("WelcomeCode")
        if outcome.relation is None or not (outcome.added or welcome_code):
            return "relation already recorded" + (" (remark or tags updated)" if outcome.changed else "")
        # A relation already recorded with a welcome code to use: a sync read it from WeCom before this event
        # was worked. Its add is still this event's (``channels.handlers.record_add`` takes over an add a sync
        # recorded, welcome included; one recorded by an earlier delivery of this event stays as it is).
        # Joins worked before this add (callbacks come in any order) left stays without their customer.
        link_customer_stays(customer=customer, source=SOURCE, payload_extra=ctx.extra)
        relation = outcome.relation
        received_at = ctx.row.received_at
        transaction.on_commit(
            lambda: contact_added.send(
                sender=Mirror,
                corp=ctx.corp,
                customer=customer,
                staff=staff,
                relation=relation,
                state=state,
                welcome_code=welcome_code,
                half=half,
                received_at=received_at,
            )
        )
    return "relation added" if outcome.added else "relation already recorded by a sync: its add and welcome"


def on_contact_edited(ctx: Context) -> str:
    """edit_external_contact: remark, description or corp tags changed on the relation; re-read and mirror."""
    external_userid, userid = ctx.require("ExternalUserID", "UserID")
    detail = _customer_detail(ctx, external_userid)
    if detail is None:
        return "customer no longer in WeCom: nothing to update"
    customer = ctx.mirror.customer(detail.external_contact)
    follow = next((f for f in detail.follow_user if f.userid == userid), None)
    if follow is None:
        return "relation no longer in WeCom: left to its delete event"
    current = _current_relation(ctx, external_userid, follow)
    outcome = ctx.mirror.relation(
        customer, RelationFacts.from_follow_user(follow), relation=current, known=True
    )
    if outcome.added:
        link_customer_stays(customer=customer, source=SOURCE, payload_extra=ctx.extra)
        return "relation was missing here: added"
    parts = []
    if outcome.remark_changed:
        parts.append("remark updated")
    if outcome.tags_added or outcome.tags_removed:
        parts.append(f"tags +{outcome.tags_added} -{outcome.tags_removed}")
    return ", ".join(parts) or "nothing changed"


def _on_contact_ended(ctx: Context, *, by: str) -> str:
    external_userid, userid = ctx.require("ExternalUserID", "UserID")
    relation = _active_relation(ctx.corp, external_userid, userid)
    if relation is None:
        return "no active relation here: nothing to end"
    if relation.added_at > ctx.at:
        return "the relation was added again after this deletion: kept"
    if relation.added_at == ctx.at and _still_in_wecom(ctx, external_userid, userid, relation.added_at):
        # Added and deleted within one second (CreateTime has whole seconds): only WeCom can tell whether the
        # relation here is the one this event deleted or the one added again after it.
        return "the relation was added again in the second of this deletion: kept"
    if ctx.message.get("Source") == DELETE_BY_TRANSFER:
        ctx.extra["reason"] = "transfer"
    ended = ctx.mirror.end_relation(relation, by=by, at=ctx.at, key=f"{external_userid}:{userid}:ended")
    return "relation ended" if ended else "relation already ended"


def _still_in_wecom(ctx: Context, external_userid: str, userid: str, added_at: dt.datetime) -> bool:
    detail = _customer_detail(ctx, external_userid)
    follow = next((f for f in detail.follow_user if f.userid == userid), None) if detail else None
    return follow is not None and from_timestamp(follow.createtime) == added_at


def on_contact_deleted_by_staff(ctx: Context) -> str:
    """del_external_contact: the member deleted the customer (or a transfer did: DELETE_BY_TRANSFER)."""
    return _on_contact_ended(ctx, by="staff")


def on_contact_deleted_by_customer(ctx: Context) -> str:
    """del_follow_user: the customer deleted the member."""
    return _on_contact_ended(ctx, by="customer")


def _known_customer(ctx: Context, external_userid: str) -> Customer | None:
    customer = Customer.objects.for_corp(ctx.corp).filter(external_userid=external_userid).first()
    if customer is None:
        detail = _customer_detail(ctx, external_userid)
        if detail is not None:
            customer, _outcomes = ctx.mirror.customer_detail(detail)
    return customer


def on_transfer_failed(ctx: Context) -> str:
    """transfer_fail: a customer handed over to ``UserID`` (the takeover member) was not taken over."""
    external_userid, userid = ctx.require("ExternalUserID", "UserID")
    customer = _known_customer(ctx, external_userid)
    if customer is None:
        return "customer unknown here and in WeCom: nothing to record"
    takeover = ctx.mirror.staff(userid)
    record_event(
        corp_id=ctx.corp.pk,
        customer_id=customer.pk,
        staff_id=takeover.pk,
        kind=Event.Kind.TRANSFER_FAILED,
        source=SOURCE,
        occurred_at=ctx.at,
        payload={"fail_reason": ctx.message.get("FailReason"), "takeover_userid": userid},
        dedupe_key=ctx.key("transfer_failed"),
    )
    return f"transfer failed: {ctx.message.get('FailReason') or 'no reason given'}"


def on_archive_approved(ctx: Context) -> str:
    """msg_audit_approved: the customer agreed to chat archiving with the member."""
    external_userid, userid = ctx.require("ExternalUserID", "UserID")
    customer = _known_customer(ctx, external_userid)
    if customer is None:
        return "customer unknown here and in WeCom: nothing to record"
    staff = ctx.mirror.staff(userid)
    record_event(
        corp_id=ctx.corp.pk,
        customer_id=customer.pk,
        staff_id=staff.pk,
        kind=Event.Kind.ARCHIVE_APPROVED,
        source=SOURCE,
        occurred_at=ctx.at,
        payload={"userid": userid},
        dedupe_key=ctx.key("archive_approved"),
    )
    return "archiving consent recorded"


# --- change_external_chat -----------------------------------------------------------------------------------

MEMBER_CHANGES = ("add_member", "del_member")


def on_chat_changed(ctx: Context) -> str:
    """create / update (every UpdateDetail): re-read the group (``groupchat/get``) and mirror it."""
    (chat_id,) = ctx.require("ChatId")
    group = GroupChat.objects.for_corp(ctx.corp).filter(chat_id=chat_id).first()
    detail = ctx.message.get("UpdateDetail")
    if (
        group is not None
        and group.status == GroupChat.Status.DISMISSED
        and group.dismissed_at
        and group.dismissed_at >= ctx.at
    ):
        return "the group was dismissed after this change: nothing to do"
    current_version = ctx.message.get("CurMemVer")
    if (
        group is not None
        and detail in MEMBER_CHANGES
        and current_version
        and group.member_version == current_version
    ):
        return "member list already at this version"
    try:
        chat = ctx.client.groupchat_get(chat_id)
    except WeComError as exc:
        if exc.errcode != CHAT_NOT_FOUND:
            raise
        # Dismissed since: retrying cannot read it, and waiting would hold the dismiss event queued behind.
        return "group no longer in WeCom: left to its dismiss event"
    quit_scene = ctx.message.get_int("QuitScene") if detail == "del_member" else None
    change = ctx.mirror.group_chat(chat, at=ctx.at, quit_scene=quit_scene)
    joined = set(change.joined)
    joined_customers = [m.userid for m in chat.member_list if m.type == 2 and m.userid in joined]
    if joined_customers and not change.created:
        # Live joins only: the members a group has when Siyu first sees it are not news.
        _announce_joins(ctx, change.group, joined_customers)
    verb = "created" if change.created else "updated"
    return f"group {verb}: {len(change.joined)} joined, {len(change.left)} left" + (
        f", changed {', '.join(sorted(set(change.changed) - {'member_version'}))}"
        if set(change.changed) - {"member_version"} and not change.created
        else ""
    )


def _announce_joins(ctx: Context, group: GroupChat, external_userids: list[str]) -> None:
    corp, at = ctx.corp, ctx.at
    join_scene = ctx.message.get_int("JoinScene")
    transaction.on_commit(
        lambda: group_joined.send(
            sender=Mirror,
            corp=corp,
            group=group,
            external_userids=external_userids,
            join_scene=join_scene,
            at=at,
        )
    )


def on_chat_dismissed(ctx: Context) -> str:
    """dismiss: the group is gone; every current stay ends."""
    (chat_id,) = ctx.require("ChatId")
    dismissed = dismiss_group_chat(corp=ctx.corp, chat_id=chat_id, source=SOURCE, at=ctx.at)
    return "group dismissed" if dismissed else "group already dismissed"


# --- change_external_tag ------------------------------------------------------------------------------------


def on_tag_changed(ctx: Context) -> str:
    """create / update / delete / shuffle of a tag or tag group: re-read the corp's tag list and mirror it.

    One ``get_corp_tag_list`` covers every case: a deleted group's tags go without callbacks of their own,
    and a reorder needs every group's order anyway (tag events are rare admin actions: the read is cheap).
    """
    if ctx.message.get("StrategyId"):
        raise Ignored("rule-group tags (StrategyId) are not mirrored")
    groups = ctx.client.get_corp_tag_list()
    ctx.mirror.tag_groups(groups, complete=True)
    changes = {k: v for k, v in ctx.mirror.repairs.items() if v}
    return ", ".join(f"{k} {v}" for k, v in sorted(changes.items())) or "tags already up to date"


# --- change_contact (members and departments) ---------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip().isdigit()]


def on_member_changed(ctx: Context) -> str:
    """create_user / update_user: re-read the member (``user/get``).

    Callbacks configured after 2022-08-15 carry only UserID and Department, so the event's own fields are only
    a fallback for a member the app cannot read.
    """
    (userid,) = ctx.require("UserID")
    new_userid = ctx.message.get("NewUserID")
    if new_userid and new_userid != userid:
        change_staff_userid(corp=ctx.corp, userid=userid, new_userid=new_userid)
        userid = new_userid
    try:
        member = ctx.client.user_get(userid)
    except InvalidUserId:
        return "member no longer in WeCom: nothing to update"
    except WeComError:
        status = ctx.message.get_int("Status")
        departments = ctx.message.get("Department")
        upsert_staff(
            corp=ctx.corp,
            userid=userid,
            name=ctx.message.get("Name") or None,
            avatar=ctx.message.get("Avatar") or None,
            status=STAFF_STATUS.get(status) if status is not None else None,
            department_wecom_ids=_int_list(departments) if departments else None,
            main_department_wecom_id=ctx.message.get_int("MainDepartment"),
        )
        return "member updated from the event (not readable through the API)"
    ctx.mirror.member(member)
    return "member updated"


def on_member_deleted(ctx: Context) -> str:
    """delete_user: the member left; kept as resigned so their customers' history (and inheritance) stays."""
    (userid,) = ctx.require("UserID")
    if not Staff.objects.for_corp(ctx.corp).filter(userid=userid).exists():
        return "unknown member: nothing to do"
    upsert_staff(corp=ctx.corp, userid=userid, status=Staff.Status.RESIGNED)
    return "member marked resigned"


def on_department_changed(ctx: Context) -> str:
    """create_party / update_party: the event carries Name, ParentId and Order (update_party only the changed
    ones); a create without a name is re-read (``department/get``)."""
    (raw_id,) = ctx.require("Id")
    department_id = int(raw_id)
    name = ctx.message.get("Name") or None
    if name is None and ctx.message.change_type == "create_party":
        try:
            department = ctx.client.department_get(department_id)
        except WeComError:
            department = None
        if department is not None:
            ctx.mirror.department(department)
            return "department created"
    upsert_department(
        corp=ctx.corp,
        wecom_id=department_id,
        name=name,
        parent_wecom_id=ctx.message.get_int("ParentId"),
        order=ctx.message.get_int("Order"),
    )
    return "department updated"


def on_department_deleted(ctx: Context) -> str:
    """delete_party."""
    (raw_id,) = ctx.require("Id")
    deleted = delete_department(corp=ctx.corp, wecom_id=int(raw_id))
    return "department deleted" if deleted else "unknown department: nothing to do"


HANDLERS: dict[tuple[str, str], Handler] = {
    (CONTACT_EVENT, "add_external_contact"): on_contact_added,
    (CONTACT_EVENT, "add_half_external_contact"): on_contact_added,
    (CONTACT_EVENT, "edit_external_contact"): on_contact_edited,
    (CONTACT_EVENT, "del_external_contact"): on_contact_deleted_by_staff,
    (CONTACT_EVENT, "del_follow_user"): on_contact_deleted_by_customer,
    (CONTACT_EVENT, "transfer_fail"): on_transfer_failed,
    (CONTACT_EVENT, "msg_audit_approved"): on_archive_approved,
    (CHAT_EVENT, "create"): on_chat_changed,
    (CHAT_EVENT, "update"): on_chat_changed,
    (CHAT_EVENT, "dismiss"): on_chat_dismissed,
    (TAG_EVENT, "create"): on_tag_changed,
    (TAG_EVENT, "update"): on_tag_changed,
    (TAG_EVENT, "delete"): on_tag_changed,
    (TAG_EVENT, "shuffle"): on_tag_changed,
    (ORG_EVENT, "create_user"): on_member_changed,
    (ORG_EVENT, "update_user"): on_member_changed,
    (ORG_EVENT, "delete_user"): on_member_deleted,
    (ORG_EVENT, "create_party"): on_department_changed,
    (ORG_EVENT, "update_party"): on_department_changed,
    (ORG_EVENT, "delete_party"): on_department_deleted,
}
