"""Operations on customer groups: bring a group to the state WeCom reports, dismiss it. The only write path.

WeCom tells us *that* a group changed (``change_external_chat``) and ``groupchat/get`` tells us *what* it is
now, so every change is applied as "make the group look like this": members present now and not before have
joined, members gone have left. Each stay is a ``GroupMember`` row; customers get a timeline event for each
join and leave, with a dedupe key naming the stay, so applying the same state twice records nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils.translation import gettext as _

from siyu.core.bulk import in_list, insert_rows, key_list, select_rows, update_rows
from siyu.core.clock import now
from siyu.core.errors import Invalid
from siyu.corps.models import Corp, Staff
from siyu.customers.events import record_event
from siyu.customers.models import Customer, Event
from siyu.groups.models import GroupChat, GroupCodeEntry, GroupCodeJoin, GroupMember


@dataclass(frozen=True)
class GroupMemberInfo:
    """One member of a group as ``groupchat/get`` lists it."""

    userid: str
    type: int = GroupMember.Type.EXTERNAL
    join_time: dt.datetime | None = None
    join_scene: int = GroupMember.JoinScene.UNKNOWN
    invitor_userid: str = ""
    group_nickname: str = ""
    name: str = ""
    unionid: str = ""


@dataclass(frozen=True)
class GroupChatInfo:
    """A group as ``groupchat/get`` reports it. ``inheritance_status`` None keeps the stored one."""

    chat_id: str
    name: str = ""
    owner_userid: str = ""
    notice: str = ""
    created_at: dt.datetime | None = None
    admin_userids: Sequence[str] = ()
    member_version: str = ""
    inheritance_status: int | None = None
    members: Sequence[GroupMemberInfo] = field(default_factory=tuple)


@dataclass(frozen=True)
class GroupChatChange:
    """What applying a group's state changed."""

    group: GroupChat
    created: bool
    changed: list[str]
    joined: list[str]
    left: list[str]


def _stay_payload(
    member: GroupMember, group: GroupChat, *, kind: str, extra: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "chat_id": group.chat_id,
        "group": group.name,
        "group_id": group.pk,
        "stay_id": member.pk,
        **({"join_scene": member.join_scene} if kind == Event.Kind.GROUP_JOINED else {}),
        **({"quit_scene": member.quit_scene} if kind == Event.Kind.GROUP_LEFT else {}),
        **extra,
    }


def _record_stay_event(
    member: GroupMember,
    group: GroupChat,
    *,
    kind: str,
    at: dt.datetime,
    source: str,
    extra: Mapping[str, Any],
) -> None:
    if member.customer_id is None:
        return  # not a customer of the corp (an external user no staff member has added): no timeline
    record_event(
        corp_id=group.corp_id,
        customer_id=member.customer_id,
        kind=kind,
        source=source,
        occurred_at=at,
        payload=_stay_payload(member, group, kind=kind, extra=extra),
        dedupe_key=f"{kind}:stay:{member.pk}",
    )


STAY_COLUMNS = (
    "corp", "group", "userid", "type", "staff", "customer", "unionid", "name", "group_nickname",
    "invitor_userid", "join_scene", "joined_at",
)  # fmt: skip
EVENT_COLUMNS = (
    "corp", "customer", "staff", "kind", "occurred_at", "source", "payload", "dedupe_key", "recorded_at",
)  # fmt: skip


# The ids of the groups' external members who are customers of the corp; the caller appends the condition.
CUSTOMER_IDS_SQL = "SELECT external_userid, id FROM customers_customer WHERE corp_id = %s AND "
# The same on PostgreSQL, a lookup per external_userid whatever the statistics (``core.bulk.key_list``).
CUSTOMER_IDS_BY_KEY_SQL = (
    "SELECT c.external_userid, c.id FROM {keys} CROSS JOIN LATERAL (SELECT external_userid, id "
    "FROM customers_customer WHERE corp_id = %s AND external_userid = k.key OFFSET 0) c"
)
# The columns of a group that applying WeCom's state writes (the rest are set once, when it is created).
GROUP_COLUMNS = (
    "name", "owner_userid", "owner", "notice", "admin_userids", "wecom_created_at", "member_version",
    "inheritance_status", "last_sync_run", "status", "dismissed_at", "member_count", "customer_count",
    "updated_at",
)  # fmt: skip


def apply_group_chat(
    *,
    corp: Corp,
    info: GroupChatInfo,
    source: str,
    at: dt.datetime | None = None,
    quit_scene: int | None = None,
    payload_extra: Mapping[str, Any] | None = None,
    sync_run_id: int | None = None,
) -> GroupChatChange:
    """Make the group look like ``info``: its fields, and the members who joined or left since last time.

    ``at`` is when the change happened (the callback's CreateTime); leaves are stamped with it and, when the
    callback said how members left, with ``quit_scene``.
    """
    [change] = apply_group_chats(
        corp=corp,
        infos=[info],
        source=source,
        at=at,
        quit_scene=quit_scene,
        payload_extra=payload_extra,
        sync_run_id=sync_run_id,
    )
    return change


@transaction.atomic
def apply_group_chats(
    *,
    corp: Corp,
    infos: Sequence[GroupChatInfo],
    source: str,
    at: dt.datetime | None = None,
    quit_scene: int | None = None,
    payload_extra: Mapping[str, Any] | None = None,
    sync_run_id: int | None = None,
) -> list[GroupChatChange]:
    """``apply_group_chat`` for many groups at once (a sync reads every group of the corp): the same effects
    and events, in a fixed number of statements for the batch — the groups locked, read and written
    together, their members' stays and the customers and staff they name read in one query each, the joins
    and their events inserted set-based. Returns the changes in the order of ``infos``."""
    for info in infos:
        if not info.chat_id or len(info.chat_id) > 64:
            raise Invalid(_("chat_id is required (at most 64 characters)"), field="chat_id")
    if len({info.chat_id for info in infos}) < len(infos):  # the same group twice: one after the other
        return [
            apply_group_chat(
                corp=corp,
                info=info,
                source=source,
                at=at,
                quit_scene=quit_scene,
                payload_extra=payload_extra,
                sync_run_id=sync_run_id,
            )
            for info in infos
        ]
    if not infos:
        return []
    at = at or now()
    extra = dict(payload_extra or {})
    locked = {
        group.chat_id: group
        for group in GroupChat.objects.for_corp(corp)
        .select_for_update()
        .filter(chat_id__in=[info.chat_id for info in infos])
        .order_by("pk")
    }
    # Every member of the corp the groups name, as owner or as a member, in one read.
    userids = {info.owner_userid for info in infos if info.owner_userid} | {
        m.userid for info in infos for m in info.members if m.type == GroupMember.Type.STAFF
    }
    staff = (
        dict(Staff.objects.for_corp(corp).filter(userid__in=sorted(userids)).values_list("userid", "pk"))
        if userids
        else {}
    )
    groups: list[GroupChat] = []
    created: list[GroupChat] = []
    changed_fields: list[list[str]] = []
    moment = now()
    for info in infos:
        group = locked.get(info.chat_id)
        if group is None:
            group = GroupChat(corp=corp, chat_id=info.chat_id)
            created.append(group)
        values: dict[str, Any] = {
            "name": info.name[:128],
            "owner_userid": info.owner_userid,
            "owner_id": staff.get(info.owner_userid) if info.owner_userid else None,
            "notice": info.notice,
            "admin_userids": list(info.admin_userids),
            "wecom_created_at": info.created_at or group.wecom_created_at,
            "member_version": info.member_version,
        }
        if info.inheritance_status is not None:
            values["inheritance_status"] = info.inheritance_status
        if sync_run_id is not None:
            values["last_sync_run"] = sync_run_id
        changed = [k for k, v in values.items() if getattr(group, k) != v]
        for k in changed:
            setattr(group, k, values[k])
        if group.status == GroupChat.Status.DISMISSED:
            # WeCom answered for the group, so it exists: a dismissal seen earlier was out of order.
            group.status = GroupChat.Status.ACTIVE
            group.dismissed_at = None
            changed += ["status", "dismissed_at"]
        group.member_count = len(info.members)
        group.customer_count = sum(1 for m in info.members if m.type == GroupMember.Type.EXTERNAL)
        group.updated_at = moment
        groups.append(group)
        changed_fields.append(changed)
    if created:
        GroupChat.objects.bulk_create(created)
    existing = [group for group in groups if group.chat_id in locked]
    if existing:
        GroupChat.objects.bulk_update(existing, GROUP_COLUMNS)

    # The current stays as plain values (a sync reads every member of every group): (id, customer, staff,
    # nickname, name) by group and userid.
    current: dict[int, dict[str, tuple[int, int | None, int | None, str, str]]] = {}
    if existing:
        for group_id, userid, pk, known_customer, known_staff, nickname, name in (
            GroupMember.objects.for_corp(corp)
            .filter(group_id__in=[group.pk for group in existing], left_at=None)
            .values_list("group_id", "userid", "pk", "customer_id", "staff_id", "group_nickname", "name")
        ):
            current.setdefault(group_id, {})[userid] = (pk, known_customer, known_staff, nickname, name)
    external_ids = {m.userid for info in infos for m in info.members if m.type == GroupMember.Type.EXTERNAL}
    customers = _customer_ids(corp, external_ids) if external_ids else {}

    joined: dict[int, list[str]] = {}
    new_stays: list[tuple[Any, ...]] = []
    dirty_stays: list[tuple[Any, ...]] = []
    listed_by_group: dict[int, set[str]] = {}
    for group, info in zip(groups, infos, strict=True):
        stays = current.get(group.pk, {})
        listed = {m.userid: m for m in info.members}
        listed_by_group[group.pk] = set(listed)
        joined[group.pk] = []
        for userid, member_info in listed.items():
            stay = stays.get(userid)
            customer_id = customers.get(userid) if member_info.type == GroupMember.Type.EXTERNAL else None
            staff_id = staff.get(userid) if member_info.type == GroupMember.Type.STAFF else None
            if stay is not None:
                stay_id, stay_customer_id, stay_staff_id, stay_nickname, stay_name = stay
                refreshed = (
                    member_info.group_nickname[:64],
                    member_info.name[:64] or stay_name,
                    customer_id or stay_customer_id,
                    staff_id or stay_staff_id,
                )
                if refreshed != (stay_nickname, stay_name, stay_customer_id, stay_staff_id):
                    dirty_stays.append((stay_id, *refreshed))
                continue
            new_stays.append(
                (
                    corp.pk,
                    group.pk,
                    userid,
                    member_info.type,
                    staff_id,
                    customer_id,
                    member_info.unionid,
                    member_info.name[:64],
                    member_info.group_nickname[:64],
                    member_info.invitor_userid,
                    member_info.join_scene,
                    member_info.join_time or at,
                )
            )
            joined[group.pk].append(userid)
    update_rows(GroupMember, ["group_nickname", "name", "customer", "staff"], dirty_stays)
    # The joins in two statements (a sync's first pass adds every member of every group), with the events
    # record_event would append one by one (keyed by the new stays, so none is on record yet).
    stay_ids = {
        (group_id, userid): pk
        for group_id, userid, pk in (
            insert_rows(GroupMember, STAY_COLUMNS, new_stays, returning=("group", "userid", "id"))
            if new_stays
            else []
        )
    }
    by_code = _code_joins(corp, new_stays, stay_ids) if new_stays else {}
    by_pk = {group.pk: group for group in groups}
    insert_rows(
        Event,
        EVENT_COLUMNS,
        (
            (
                corp.pk,
                customer_id,
                None,
                Event.Kind.GROUP_JOINED.value,
                joined_at,
                source,
                {
                    "chat_id": by_pk[group_id].chat_id,
                    "group": by_pk[group_id].name,
                    "group_id": group_id,
                    "stay_id": stay_ids[(group_id, userid)],
                    "join_scene": join_scene,
                    **by_code.get((group_id, userid), {}),
                    **extra,
                },
                f"{Event.Kind.GROUP_JOINED}:stay:{stay_ids[(group_id, userid)]}",
                moment,
            )
            for _c, group_id, userid, _t, _s, customer_id, _u, _n, _k, _i, join_scene, joined_at in new_stays
            # Not a customer of the corp: no timeline.
            if customer_id is not None and (group_id, userid) in stay_ids
        ),
    )

    left: dict[int, list[str]] = {}
    gone = [
        values[0]
        for group_id, stays in current.items()
        for userid, values in stays.items()
        if userid not in listed_by_group[group_id]
    ]
    for stay_row in GroupMember.objects.for_corp(corp).filter(pk__in=gone).order_by("pk") if gone else ():
        group = by_pk[stay_row.group_id]
        stay_row.left_at = at
        stay_row.quit_scene = quit_scene
        stay_row.save(update_fields=["left_at", "quit_scene"])
        left.setdefault(group.pk, []).append(stay_row.userid)
        _record_stay_event(stay_row, group, kind=Event.Kind.GROUP_LEFT, at=at, source=source, extra=extra)
    return [
        GroupChatChange(
            group=group,
            created=group.chat_id not in locked,
            changed=changed,
            joined=joined[group.pk],
            left=left.get(group.pk, []),
        )
        for group, changed in zip(groups, changed_fields, strict=True)
    ]


def _customer_ids(corp: Corp, external_userids: Collection[str]) -> dict[str, int]:
    """The ids of the corp's customers among ``external_userids``, by external_userid."""
    if connection.vendor == "postgresql":
        keys, params = key_list(external_userids, "varchar")
        return dict(select_rows(CUSTOMER_IDS_BY_KEY_SQL.format(keys=keys), [*params, corp.pk]))
    wanted, params = in_list("external_userid", external_userids)
    return dict(select_rows(CUSTOMER_IDS_SQL + wanted, [corp.pk, *params]))


def _code_joins(
    corp: Corp, new_stays: Sequence[tuple[Any, ...]], stay_ids: Mapping[tuple[int, str], int]
) -> dict[tuple[int, str], dict[str, Any]]:
    """Attribute the new stays that began with a scan of a group's QR to the group code whose pool holds
    the group (joins from before the group was added are not the code's). Returns the timeline payload
    additions by (group id, userid)."""
    entries = {
        entry.group_id: entry
        for entry in GroupCodeEntry.objects.for_corp(corp)
        .filter(group_id__in=sorted({row[1] for row in new_stays}))
        .select_related("code")
    }
    if not entries:
        return {}
    scanned = [
        (entries[row[1]], (row[1], row[2]), row[11])
        for row in new_stays
        if row[1] in entries
        and row[10] == GroupMember.JoinScene.QR_CODE
        and row[11] >= entries[row[1]].created_at
        and (row[1], row[2]) in stay_ids
    ]
    GroupCodeJoin.objects.bulk_create(
        [
            GroupCodeJoin(
                corp_id=corp.pk,
                code_id=entry.code_id,
                entry=entry,
                stay_id=stay_ids[key],
                joined_at=joined_at,
            )
            for entry, key, joined_at in scanned
        ],
        ignore_conflicts=True,
    )
    return {
        key: {"group_code_id": entry.code_id, "group_code": entry.code.name}
        for entry, key, _joined_at in scanned
    }


@transaction.atomic
def dismiss_group_chat(
    *,
    corp: Corp,
    chat_id: str,
    source: str,
    at: dt.datetime | None = None,
    payload_extra: Mapping[str, Any] | None = None,
) -> bool:
    """Mark a group dismissed and end every current stay in it. False if it was already dismissed."""
    at = at or now()
    group = GroupChat.objects.for_corp(corp).select_for_update().filter(chat_id=chat_id).first()
    if group is None:
        # Never seen (the create was missed): keep a trace so a late, out-of-order refetch is not needed.
        group = GroupChat.objects.create(corp=corp, chat_id=chat_id[:64])
    if group.status == GroupChat.Status.DISMISSED:
        return False
    group.status = GroupChat.Status.DISMISSED
    group.dismissed_at = at
    group.member_count = 0
    group.customer_count = 0
    group.updated_at = now()
    group.save(update_fields=["status", "dismissed_at", "member_count", "customer_count", "updated_at"])
    extra = {"dismissed": True, **(payload_extra or {})}
    for stay in GroupMember.objects.for_corp(corp).filter(group=group, left_at=None):
        stay.left_at = at
        stay.save(update_fields=["left_at"])
        _record_stay_event(stay, group, kind=Event.Kind.GROUP_LEFT, at=at, source=source, extra=extra)
    return True


def dismiss_unseen_group_chats(*, corp: Corp, sync_run_id: int, source: str) -> int:
    """After a full sync listed every group, the groups it did not see are gone; returns how many."""
    unseen = (
        GroupChat.objects.for_corp(corp)
        .filter(status=GroupChat.Status.ACTIVE)
        .exclude(last_sync_run=sync_run_id)
        .values_list("chat_id", flat=True)
    )
    dismissed = 0
    for chat_id in list(unseen.iterator()):
        dismissed += dismiss_group_chat(
            corp=corp, chat_id=chat_id, source=source, payload_extra={"reconciled": True}
        )
    return dismissed


@transaction.atomic
def link_customer_stays(
    *, customer: Customer, source: str, payload_extra: Mapping[str, Any] | None = None
) -> int:
    """Attach to ``customer`` the group stays recorded while Siyu did not know them yet (a join worked before
    the customer's add), with the timeline events those stays have; returns how many were attached."""
    stays = list(
        GroupMember.objects.for_corp(customer.corp_id)
        .filter(userid=customer.external_userid, type=GroupMember.Type.EXTERNAL, customer=None)
        .select_related("group")
    )
    extra = dict(payload_extra or {})
    for stay in stays:
        stay.customer_id = customer.pk
        stay.save(update_fields=["customer_id"])
        _record_stay_event(
            stay, stay.group, kind=Event.Kind.GROUP_JOINED, at=stay.joined_at, source=source, extra=extra
        )
        if stay.left_at is not None:
            _record_stay_event(
                stay, stay.group, kind=Event.Kind.GROUP_LEFT, at=stay.left_at, source=source, extra=extra
            )
    return len(stays)
