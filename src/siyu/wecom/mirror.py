"""Bring Siyu's domain to what WeCom reports, through the domain services only.

Callback handlers and syncs share this: WeCom's answer (``externalcontact/get``, a ``batch/get_by_user``
page, ``get_corp_tag_list``, ``groupchat/get``, ``user/get``…) is the truth, and a ``Mirror`` makes the domain
match it — creating, updating or ending through the ``customers``, ``tags``, ``groups`` and ``corps``
services, which append the timeline events. Every write compares first, so mirroring the same answer twice
changes nothing; the events carry the mirror's ``source``, ``payload_extra`` (e.g. ``{"reconciled": true}``)
and dedupe keys under its ``dedupe_prefix``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from siyu.corps.models import Corp, Department, Staff
from siyu.corps.services import upsert_department, upsert_staff
from siyu.customers.models import Customer, FollowRelation
from siyu.customers.services import (
    MAX_REMARK_MOBILES,
    MOBILE_RE,
    add_follow_relation,
    end_follow_relation,
    update_relation_remark,
    upsert_customer,
)
from siyu.groups.models import GroupMember
from siyu.groups.services import (
    GroupChatChange,
    GroupChatInfo,
    GroupMemberInfo,
    apply_group_chat,
    apply_group_chats,
)
from siyu.tags.models import RelationTag, Tag, TagGroup
from siyu.tags.services import (
    create_tag,
    create_tag_group,
    delete_tag,
    delete_tag_group,
    link_tag,
    link_tag_group,
    mark_relation_tags,
    rename_tag,
    rename_tag_group,
    reorder_tag_groups,
    reorder_tags,
)
from siyu.wecom import schemas as s
from siyu.wecom.client import WeComClient
from siyu.wecom.errors import WeComError
from siyu.wecom.services import RelationWrites, TagWrites, pending_relation_writes, pending_tag_writes

logger = logging.getLogger(__name__)

# WeCom member status (user/get): 1 active, 2 disabled, 4 not yet activated, 5 left the corp.
STAFF_STATUS = {
    1: Staff.Status.ACTIVE,
    2: Staff.Status.DISABLED,
    4: Staff.Status.ACTIVE,
    5: Staff.Status.RESIGNED,
}
# WeCom tag type on a relation (externalcontact/get tags[].type): 1 corp tag; 2 personal (no id), 3 rule tag.
CORP_TAG = 1


def from_timestamp(seconds: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC) if seconds else None


def clean_mobiles(mobiles: Iterable[str]) -> list[str]:
    """WeCom's remark mobiles as Siyu accepts them: well-formed numbers only, at most five."""
    cleaned = [m.strip() for m in mobiles if m and MOBILE_RE.match(m.strip())]
    return cleaned[:MAX_REMARK_MOBILES]


@dataclass(frozen=True)
class RelationFacts:
    """One customer–member relation as WeCom reports it (``get``'s follow_user, ``batch``'s follow_info)."""

    userid: str
    remark: str = ""
    description: str = ""
    remark_corp_name: str = ""
    remark_mobiles: tuple[str, ...] = ()
    createtime: int = 0
    add_way: int = 0
    state: str = ""
    oper_userid: str = ""
    tag_ids: tuple[str, ...] = ()

    @classmethod
    def from_follow_user(cls, follow: s.FollowUser) -> RelationFacts:
        return cls(
            userid=follow.userid,
            remark=follow.remark,
            description=follow.description,
            remark_corp_name=follow.remark_corp_name,
            remark_mobiles=tuple(follow.remark_mobiles),
            createtime=follow.createtime,
            add_way=follow.add_way,
            state=follow.state,
            oper_userid=follow.oper_userid,
            tag_ids=tuple(t.tag_id for t in follow.tags if t.tag_id and t.type == CORP_TAG),
        )

    @classmethod
    def from_follow_info(cls, info: s.FollowInfo) -> RelationFacts:
        return cls(
            userid=info.userid,
            remark=info.remark,
            description=info.description,
            remark_corp_name=info.remark_corp_name,
            remark_mobiles=tuple(info.remark_mobiles),
            createtime=info.createtime,
            add_way=info.add_way,
            state=info.state,
            oper_userid=info.oper_userid,
            tag_ids=tuple(info.tag_id),
        )


@dataclass(frozen=True)
class KnownRelation:
    """An active relation as Siyu has it, in plain values: what a sync compares with WeCom's answer."""

    pk: int
    remark: str
    description: str
    remark_corp_name: str
    remark_mobiles: tuple[str, ...]
    tag_ids: frozenset[str]  # the WeCom ids of its corp tags (Siyu-only tags are not WeCom's business)


@dataclass
class RelationOutcome:
    """What mirroring one relation changed."""

    relation: FollowRelation | None
    added: bool = False
    remark_changed: bool = False
    tags_added: int = 0
    tags_removed: int = 0

    @property
    def changed(self) -> bool:
        return self.added or self.remark_changed or bool(self.tags_added or self.tags_removed)


@dataclass
class Mirror:
    """Applies WeCom's answers to one corp's domain; ``repairs`` counts what had to change."""

    corp: Corp
    client: WeComClient
    source: str
    dedupe_prefix: str
    payload_extra: dict[str, Any] = field(default_factory=dict)
    repairs: Counter[str] = field(default_factory=Counter)
    _staff: dict[str, Staff] = field(default_factory=dict)
    # The corp's WeCom tags by WeCom id, loaded once (a corp has at most a few thousand tags, wecom-api.md §6)
    # and dropped whenever this mirror changes tags.
    _tags: dict[str, Tag] | None = None
    # Writes from Siyu still on their way to WeCom, which WeCom's answers may not show yet: mirrored as if
    # WeCom had them already, so neither a sync nor a callback undoes them (``wecom.services``). Relations'
    # writes are prefetched per sync page for the customers in ``_pending_for``, else looked up one by one.
    _pending: dict[tuple[str, str], RelationWrites] = field(default_factory=dict)
    _pending_for: set[str] = field(default_factory=set)
    _tag_writes: TagWrites | None = None
    # Tag ids WeCom did not list when asked (rule-group tags, tags deleted since): not asked for again until
    # this mirror changes tags.
    _absent_tags: set[str] = field(default_factory=set)
    # A helper applies part of the answers this mirror has prepared (``helper``): it asks WeCom for nothing.
    _helping: Mirror | None = None

    def helper(self) -> Mirror:
        """A mirror for another thread applying part of the same answers, with its own ``repairs`` and the
        same corp, source, keys, members and tags. It asks WeCom for nothing and creates no member or tag:
        the answers' members and tags are resolved here first (``staff``, ``tags_by_wecom_id``), and it reads
        them from this mirror."""
        return Mirror(
            corp=self.corp,
            client=self.client,
            source=self.source,
            dedupe_prefix=self.dedupe_prefix,
            payload_extra=self.payload_extra,
            _staff=self._staff,
            _helping=self,
        )

    # -- staff and departments --

    def department(self, department: s.Department) -> Department:
        return upsert_department(
            corp=self.corp,
            wecom_id=department.id,
            name=department.name or None,
            parent_wecom_id=department.parentid or None,
            order=department.order,
        )

    def member(self, member: s.Member) -> Staff:
        staff = upsert_staff(
            corp=self.corp,
            userid=member.userid,
            name=member.name or None,
            avatar=member.avatar or None,
            status=STAFF_STATUS.get(member.status, Staff.Status.ACTIVE),
            department_wecom_ids=member.department,
            main_department_wecom_id=member.main_department,
        )
        self._staff[staff.userid] = staff
        return staff

    def staff(self, userid: str) -> Staff:
        """The member with ``userid``; one WeCom has but Siyu does not know yet is fetched (``user/get``)."""
        cached = self._staff.get(userid)
        if cached is not None:
            return cached
        if self._helping is not None:
            raise RuntimeError(f"member {userid} was not resolved before the answers were shared")
        staff = Staff.objects.for_corp(self.corp).filter(userid=userid).first()
        if staff is None:
            try:
                staff = self.member(self.client.user_get(userid))
            except WeComError as exc:
                # Outside the app's visibility or not readable: keep the relation with a placeholder member,
                # filled in by the next org sync.
                logger.info("wecom member %s not readable (%s); placeholder created", userid, exc.errcode)
                staff = upsert_staff(corp=self.corp, userid=userid)
        self._staff[userid] = staff
        return staff

    # -- corp tags --

    def tag_groups(self, groups: Sequence[s.CorpTagGroup], *, complete: bool) -> None:
        """Mirror tag groups; ``complete`` when ``groups`` is WeCom's whole list (what it lacks is gone)."""
        self._tags = None
        self._absent_tags.clear()
        seen_groups: set[str] = set()
        for group in groups:
            self.tag_group(group, complete=complete)
            seen_groups.add(group.group_id)
        if complete:
            gone = TagGroup.objects.for_corp(self.corp).exclude(wecom_group_id="")
            for local in gone.exclude(wecom_group_id__in=seen_groups):
                delete_tag_group(group=local, source=self.source)
                self.repairs["tag_groups_deleted"] += 1
            self._order_groups(groups)

    def tag_group(self, group: s.CorpTagGroup, *, complete: bool = True) -> TagGroup | None:
        """Mirror one group; ``complete`` when its ``tag`` list is all of its tags."""
        self._tags = None
        self._absent_tags.clear()
        self._tag_writes = writes = pending_tag_writes(corp=self.corp)
        if (
            group.group_id in writes.deleted
            or writes.names.get(group.group_id, group.group_name) != group.group_name
        ):
            self.repairs["pending_writes_kept"] += 1
            if group.group_id in writes.deleted:
                return None
            group = group.model_copy(update={"group_name": writes.names[group.group_id]})
        local = TagGroup.objects.for_corp(self.corp).filter(wecom_group_id=group.group_id).first()
        if group.deleted:
            if local is not None:
                delete_tag_group(group=local, source=self.source)
                self.repairs["tag_groups_deleted"] += 1
            return None
        name = group.group_name.strip()[:30] or group.group_id[:30]
        if local is None:
            same_name = TagGroup.objects.for_corp(self.corp).filter(name=name).first()
            if same_name is not None and not same_name.wecom_group_id:
                local = link_tag_group(group=same_name, wecom_group_id=group.group_id)
            elif same_name is None:
                local = create_tag_group(corp=self.corp, name=name, wecom_group_id=group.group_id)
                self.repairs["tag_groups_created"] += 1
            else:  # a different WeCom group of the same name: keep both, the newcomer marked by its id
                local = create_tag_group(
                    corp=self.corp, name=f"{name[:21]}·{group.group_id[-8:]}", wecom_group_id=group.group_id
                )
                self.repairs["tag_groups_created"] += 1
        elif local.name != name and not TagGroup.objects.for_corp(self.corp).filter(name=name).exists():
            rename_tag_group(group=local, name=name)
            self.repairs["tag_groups_renamed"] += 1
        seen: set[str] = set()
        for tag in group.tag:
            self.tag(local, tag)
            seen.add(tag.id)
        if complete:
            stale = Tag.objects.for_corp(self.corp).filter(group=local).exclude(wecom_tag_id="")
            for tag_row in stale.exclude(wecom_tag_id__in=seen):
                delete_tag(tag=tag_row, source=self.source)
                self.repairs["tags_deleted"] += 1
            self._order_tags(local, group.tag)
        return local

    def tag(self, group: TagGroup, tag: s.CorpTag) -> Tag | None:
        writes = self._tag_writes or pending_tag_writes(corp=self.corp)
        if tag.id in writes.deleted or writes.names.get(tag.id, tag.name) != tag.name:
            self.repairs["pending_writes_kept"] += 1
            if tag.id in writes.deleted:
                return None
            tag = tag.model_copy(update={"name": writes.names[tag.id]})
        local = Tag.objects.for_corp(self.corp).filter(wecom_tag_id=tag.id).first()
        if tag.deleted:
            if local is not None:
                delete_tag(tag=local, source=self.source)
                self.repairs["tags_deleted"] += 1
            return None
        name = tag.name.strip()[:30] or tag.id[:30]
        if local is None:
            same_name = Tag.objects.for_corp(self.corp).filter(group=group, name=name).first()
            if same_name is not None and not same_name.wecom_tag_id:
                return link_tag(tag=same_name, wecom_tag_id=tag.id)
            if same_name is not None:
                name = f"{name[:21]}·{tag.id[-8:]}"
            self.repairs["tags_created"] += 1
            return create_tag(group=group, name=name, wecom_tag_id=tag.id)
        if (
            local.name != name
            and not Tag.objects.for_corp(self.corp).filter(group=local.group_id, name=name).exists()
        ):
            rename_tag(tag=local, name=name)
            self.repairs["tags_renamed"] += 1
        return local

    def _order_groups(self, groups: Sequence[s.CorpTagGroup]) -> None:
        # WeCom: a larger ``order`` sorts first. WeCom groups lead, in WeCom's order; Siyu-only groups follow.
        rank = {g.group_id: i for i, g in enumerate(sorted(groups, key=lambda g: (-g.order, g.create_time)))}
        local = list(TagGroup.objects.for_corp(self.corp).order_by("order", "id"))
        wanted = sorted(
            local, key=lambda g: (0, rank[g.wecom_group_id]) if g.wecom_group_id in rank else (1, 0)
        )
        if [g.pk for g in wanted] != [g.pk for g in local]:
            reorder_tag_groups(corp=self.corp, group_ids=[g.pk for g in wanted])

    def _order_tags(self, group: TagGroup, tags: Sequence[s.CorpTag]) -> None:
        rank = {t.id: i for i, t in enumerate(sorted(tags, key=lambda t: (-t.order, t.create_time)))}
        local = list(Tag.objects.for_corp(self.corp).filter(group=group).order_by("order", "id"))
        wanted = sorted(local, key=lambda t: (0, rank[t.wecom_tag_id]) if t.wecom_tag_id in rank else (1, 0))
        if [t.pk for t in wanted] != [t.pk for t in local]:
            reorder_tags(group=group, tag_ids=[t.pk for t in wanted])

    def tags_by_wecom_id(self, tag_ids: Iterable[str]) -> dict[str, Tag]:
        """Local tags for WeCom tag ids; ids not known yet are fetched (``get_corp_tag_list``) and created.

        Ids WeCom does not list either (rule-group tags, tags deleted since) are left out.
        """
        wanted = set(tag_ids)
        if not wanted:
            return {}
        if self._helping is not None:
            tags = self._helping._tags or {}
            return {wid: tags[wid] for wid in wanted if wid in tags}
        if self._tags is None:
            self._tags = {t.wecom_tag_id: t for t in Tag.objects.for_corp(self.corp).exclude(wecom_tag_id="")}
        missing = sorted(w for w in wanted if w not in self._tags and w not in self._absent_tags)
        if missing:
            for group in self.client.get_corp_tag_list(tag_id=missing):
                # Queried by tag id: the group holds only those tags, so it is not the group's whole list.
                self.tag_group(group, complete=False)
            self._tags = {t.wecom_tag_id: t for t in Tag.objects.for_corp(self.corp).exclude(wecom_tag_id="")}
            self._absent_tags.update(w for w in missing if w not in self._tags)
        return {wid: self._tags[wid] for wid in wanted if wid in self._tags}

    # -- customers and relations --

    def customer(self, contact: s.ExternalContact) -> Customer:
        gender = contact.gender if contact.gender in Customer.Gender.values else Customer.Gender.UNKNOWN
        kind = contact.type if contact.type in Customer.Type.values else Customer.Type.WECHAT
        return upsert_customer(
            corp=self.corp,
            external_userid=contact.external_userid,
            name=contact.name or contact.external_userid,
            source=self.source,
            unionid=contact.unionid[:64],
            avatar=contact.avatar[:500],
            gender=gender,
            type=kind,
            corp_name=contact.corp_name[:64],
            corp_full_name=contact.corp_full_name[:128],
            payload_extra=self.payload_extra,
        )

    def relation(
        self,
        customer: Customer,
        facts: RelationFacts,
        *,
        state: str | None = None,
        relation: FollowRelation | None = None,
        known: bool = False,
        present_tags: dict[str, Tag] | None = None,
    ) -> RelationOutcome:
        """Make the active relation of ``customer`` with ``facts.userid`` match WeCom: add it if missing, then
        its remark and corp tags. With ``known``, ``relation`` is the active relation already looked up."""
        staff = self.staff(facts.userid)
        facts = self._with_pending_writes(customer.external_userid, facts)
        if not known:
            relation = (
                FollowRelation.objects.for_corp(self.corp)
                .filter(customer=customer, staff=staff, status=FollowRelation.Status.ACTIVE)
                .first()
            )
        key = f"{self.dedupe_prefix}:{customer.external_userid}:{staff.userid}"
        outcome = RelationOutcome(relation=relation)
        mobiles = clean_mobiles(facts.remark_mobiles)
        if relation is None:
            relation = add_follow_relation(
                customer=customer,
                staff=staff,
                source=self.source,
                remark=facts.remark[:64],
                description=facts.description[:256],
                remark_mobiles=mobiles,
                remark_corp_name=facts.remark_corp_name[:64],
                add_way=facts.add_way,
                state=(state if state is not None else facts.state)[:30],
                oper_userid=facts.oper_userid[:64],
                added_at=from_timestamp(facts.createtime),
                dedupe_key=f"{key}:added",
                payload_extra=self.payload_extra,
                looked_up=True,
            )
            outcome.relation = relation
            outcome.added = True
            self.repairs["relations_added"] += 1
        else:
            changed = update_relation_remark(
                relation=relation,
                source=self.source,
                remark=facts.remark[:64],
                description=facts.description[:256],
                remark_mobiles=mobiles,
                remark_corp_name=facts.remark_corp_name[:64],
                dedupe_key=f"{key}:remark:{relation.pk}",
                payload_extra=self.payload_extra,
            )
            if changed:
                outcome.remark_changed = True
                self.repairs["remarks_changed"] += 1
        self._relation_tags(relation, facts.tag_ids, key, outcome, {} if outcome.added else present_tags)
        return outcome

    def current_facts(self, external_userid: str, facts: RelationFacts) -> RelationFacts:
        """WeCom's answer for a relation with Siyu's writes still on their way to WeCom applied."""
        return self._with_pending_writes(external_userid, facts)

    def relation_matches(self, known: KnownRelation, facts: RelationFacts) -> bool:
        """Whether ``relation`` would leave ``known`` as it is: same remark columns, same corp tags."""
        if (
            known.remark != facts.remark[:64]
            or known.description != facts.description[:256]
            or known.remark_corp_name != facts.remark_corp_name[:64]
            or list(known.remark_mobiles) != clean_mobiles(facts.remark_mobiles)
        ):
            return False
        return set(self.tags_by_wecom_id(facts.tag_ids)) == known.tag_ids

    def prefetch_pending_writes(self, external_userids: Iterable[str]) -> None:
        """Look up the writes still on their way to WeCom for these customers' relations, in one query."""
        self._pending_for = set(external_userids)
        self._pending = pending_relation_writes(corp=self.corp, external_userids=self._pending_for)

    def _with_pending_writes(self, external_userid: str, facts: RelationFacts) -> RelationFacts:
        if external_userid in self._pending_for:
            writes = self._pending.get((external_userid, facts.userid))
        else:
            writes = pending_relation_writes(corp=self.corp, external_userids=[external_userid]).get(
                (external_userid, facts.userid)
            )
        if writes is None:
            return facts
        kept = writes.applied_to(facts)
        if kept != facts:
            self.repairs["pending_writes_kept"] += 1
        return kept

    def _relation_tags(
        self,
        relation: FollowRelation,
        tag_ids: Sequence[str],
        key: str,
        outcome: RelationOutcome,
        present: dict[str, Tag] | None,
    ) -> None:
        wanted = self.tags_by_wecom_id(tag_ids)
        if present is None:
            present = {
                rt.tag.wecom_tag_id: rt.tag
                for rt in RelationTag.objects.for_corp(self.corp)
                .filter(relation=relation)
                .exclude(tag__wecom_tag_id="")
                .select_related("tag")
            }
        add = [t for wid, t in wanted.items() if wid not in present]
        remove = [t for wid, t in present.items() if wid not in wanted]  # Siyu-only tags are left alone
        if not add and not remove:
            return
        result = mark_relation_tags(
            relation=relation,
            add=add,
            remove=remove,
            source=self.source,
            dedupe_prefix=f"{key}:tags:{relation.pk}",
            payload_extra=self.payload_extra,
        )
        outcome.tags_added += len(result.added)
        outcome.tags_removed += len(result.removed)
        self.repairs["tags_added"] += len(result.added)
        self.repairs["tags_removed"] += len(result.removed)

    def end_relation(self, relation: FollowRelation, *, by: str, at: dt.datetime | None, key: str) -> bool:
        ended = end_follow_relation(
            relation=relation,
            by=by,
            source=self.source,
            at=at,
            dedupe_key=f"{self.dedupe_prefix}:{key}",
            payload_extra=self.payload_extra,
        )
        if ended:
            self.repairs["relations_ended"] += 1
        return ended

    def customer_detail(
        self, detail: s.CustomerDetail, *, only_userid: str | None = None, state: str | None = None
    ) -> tuple[Customer, dict[str, RelationOutcome]]:
        """Mirror ``externalcontact/get``: the profile, then every relation (or only ``only_userid``'s)."""
        customer = self.customer(detail.external_contact)
        outcomes: dict[str, RelationOutcome] = {}
        for follow in detail.follow_user:
            if only_userid is not None and follow.userid != only_userid:
                continue
            outcomes[follow.userid] = self.relation(
                customer,
                RelationFacts.from_follow_user(follow),
                state=state if follow.userid == only_userid else None,
            )
        return customer, outcomes

    # -- customer groups --

    def group_chat(
        self,
        chat: s.GroupChat,
        *,
        at: dt.datetime | None = None,
        quit_scene: int | None = None,
        inheritance_status: int | None = None,
        sync_run_id: int | None = None,
    ) -> GroupChatChange:
        change = apply_group_chat(
            corp=self.corp,
            info=_group_info(chat, inheritance_status),
            source=self.source,
            at=at,
            quit_scene=quit_scene,
            payload_extra=self.payload_extra,
            sync_run_id=sync_run_id,
        )
        self._count_group_change(change)
        return change

    def group_chats(
        self, chats: Sequence[tuple[s.GroupChat, int | None]], *, sync_run_id: int | None = None
    ) -> list[GroupChatChange]:
        """Mirror many ``groupchat/get`` answers (each with its inheritance status, or None) at once."""
        changes = apply_group_chats(
            corp=self.corp,
            infos=[_group_info(chat, inheritance_status) for chat, inheritance_status in chats],
            source=self.source,
            payload_extra=self.payload_extra,
            sync_run_id=sync_run_id,
        )
        for change in changes:
            self._count_group_change(change)
        return changes

    def _count_group_change(self, change: GroupChatChange) -> None:
        self.repairs["group_members_joined"] += len(change.joined)
        self.repairs["group_members_left"] += len(change.left)


def _group_info(chat: s.GroupChat, inheritance_status: int | None) -> GroupChatInfo:
    """``groupchat/get``'s answer as the groups service takes it."""
    return GroupChatInfo(
        chat_id=chat.chat_id,
        name=chat.name,
        owner_userid=chat.owner,
        notice=chat.notice,
        created_at=from_timestamp(chat.create_time),
        admin_userids=tuple(a.userid for a in chat.admin_list),
        member_version=chat.member_version,
        inheritance_status=inheritance_status,
        members=tuple(
            GroupMemberInfo(
                userid=m.userid,
                type=m.type if m.type in GroupMember.Type.values else GroupMember.Type.EXTERNAL,
                join_time=from_timestamp(m.join_time),
                join_scene=m.join_scene,
                invitor_userid=str((m.invitor or {}).get("userid", ""))[:64],
                group_nickname=m.group_nickname,
                name=m.name,
                unionid=m.unionid[:64],
            )
            for m in chat.member_list
        ),
    )
