"""WeCom services for the other apps: what a change made in Siyu has to do in WeCom.

Domain services call these inside their own transaction, right after changing Siyu's tables. The write goes
into the outbox in that transaction, and the worker sends it after commit: a change that rolls back sends
nothing, and a retry never sends twice (one row per idempotency key, derived from the change — its event id,
or the tag's own id).

Only changes made in Siyu (``WRITE_THROUGH_SOURCES``) are sent. A change that came from WeCom — a callback
(``wecom``) or a sync (``sync``) — is WeCom's already, and sending it back would loop. A corp without an app
secret is not connected to WeCom: its changes stay in Siyu, as do Siyu-only tags and groups (no WeCom id).

The mirror asks ``pending_relation_writes`` and ``pending_tag_writes`` what is still on its way to WeCom, so a
reconciliation, or a callback's re-read, does not undo a change WeCom has not received yet. The outbox worker
calls ``apply_write_result`` when a write is done, which stores the ids WeCom gave to tags created here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from siyu.core.clock import now
from siyu.core.errors import Invalid
from siyu.corps.models import Corp
from siyu.customers.models import Event, FollowRelation
from siyu.tags.models import Tag, TagGroup
from siyu.wecom import schemas as s
from siyu.wecom.limits import Priority
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import enqueue_write, enqueue_writes

log = logging.getLogger(__name__)

MARK_TAG = "externalcontact/mark_tag"
REMARK = "externalcontact/remark"
ADD_CORP_TAG = "externalcontact/add_corp_tag"
EDIT_CORP_TAG = "externalcontact/edit_corp_tag"
DEL_CORP_TAG = "externalcontact/del_corp_tag"

#: Sources of the changes that must reach WeCom (the others came from WeCom, or are demo data).
WRITE_THROUGH_SOURCES = frozenset({Event.Source.CONSOLE, Event.Source.API, Event.Source.SYSTEM})

# externalcontact/remark: remark ≤20 characters, description ≤150, remark_company ≤20 (wecom-api.md §4.1).
# Siyu's columns hold more (what WeCom's clients may have stored), but what Siyu sends must fit the API.
REMARK_MAX = 20
DESCRIPTION_MAX = 150
REMARK_COMPANY_MAX = 20

# A write WeCom accepted this recently may be missing from an answer read just before it was sent (a sync page
# fetched, then applied); the mirror keeps honouring it this long. The same margin as sync's DELETION_GRACE.
SETTLE = timedelta(seconds=60)
# Done rows are looked up among those created this recently, which bounds the index range: a write is sent or
# given up well within a day (retries back off to an hour at most, WECOM_OUTBOX_MAX_ATTEMPTS times).
RECENT = timedelta(days=1)

OPEN = (Outbox.Status.PENDING, Outbox.Status.SENDING)


# --- when a change goes to WeCom ---------------------------------------------------------------------------


def sends_to_wecom(*, corp: Corp, source: str | None) -> bool:
    """Whether a change from ``source`` goes to WeCom: it was made in Siyu and the corp is connected."""
    return source in WRITE_THROUGH_SOURCES and bool(corp.secret)


def _change_key(change_id: int | str | None) -> str:
    return str(change_id) if change_id else uuid.uuid4().hex


# --- customers: remarks and tags on relations --------------------------------------------------------------


def check_remark(*, relation: FollowRelation, source: str, changed: Mapping[str, Any]) -> None:
    """Refuse a remark change WeCom would refuse, when it is going to WeCom (only the fields that change)."""
    if not sends_to_wecom(corp=relation.corp, source=source):
        return
    # One whole sentence per field, so that each translates as a sentence.
    limits = {
        "remark": (REMARK_MAX, _("WeCom keeps a remark of at most %(max)d characters")),
        "description": (DESCRIPTION_MAX, _("WeCom keeps a description of at most %(max)d characters")),
        "remark_corp_name": (
            REMARK_COMPANY_MAX,
            _("WeCom keeps a company in the remark of at most %(max)d characters"),
        ),
    }
    for name, (limit, message) in limits.items():
        value = changed.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise Invalid(message % {"max": limit}, field=name)


def relation_remark_changed(
    *, relation: FollowRelation, source: str, changed: Mapping[str, Any], change_id: int | str | None
) -> Outbox | None:
    """Send a relation's changed remark, description, remark mobiles or company to WeCom (``remark``)."""
    if not changed or not sends_to_wecom(corp=relation.corp, source=source):
        return None
    check_remark(relation=relation, source=source, changed=changed)
    body: dict[str, Any] = {
        "userid": relation.staff.userid,
        "external_userid": relation.customer.external_userid,
    }
    for name, wecom_name in (
        ("remark", "remark"),
        ("description", "description"),
        ("remark_corp_name", "remark_company"),
        ("remark_mobiles", "remark_mobiles"),
    ):
        if name in changed:
            # An empty remark_mobiles list clears them in WeCom; empty strings clear the text fields.
            body[wecom_name] = list(changed[name]) if name == "remark_mobiles" else changed[name]
    return enqueue_write(
        corp=relation.corp,
        api=REMARK,
        payload=body,
        idempotency_key=f"remark:relation:{relation.pk}:{_change_key(change_id)}",
        priority=Priority.USER,
    )


def _wecom_ids(tags: Iterable[Tag]) -> list[str]:
    return list(dict.fromkeys(t.wecom_tag_id for t in tags if t.wecom_tag_id))


def relation_tags_changed(
    *,
    relation: FollowRelation,
    added: Sequence[Tag],
    removed: Sequence[Tag],
    source: str,
    change_id: int | str | None,
) -> Outbox | None:
    """Send tags added to or removed from one relation to WeCom (``mark_tag``); Siyu-only tags stay here."""
    add, remove = _wecom_ids(added), _wecom_ids(removed)
    if not (add or remove) or not sends_to_wecom(corp=relation.corp, source=source):
        return None
    return enqueue_write(
        corp=relation.corp,
        api=MARK_TAG,
        payload=s.MarkTagRequest(
            userid=relation.staff.userid,
            external_userid=relation.customer.external_userid,
            add_tag=add,
            remove_tag=remove,
        ),
        idempotency_key=f"mark_tag:relation:{relation.pk}:{_change_key(change_id)}",
        priority=Priority.USER,
    )


@dataclass(frozen=True)
class RelationTagChange:
    """Tags one bulk change added to and removed from one relation; ``change_id`` names the change."""

    relation_id: int
    added: Sequence[Tag]
    removed: Sequence[Tag]
    change_id: int | str | None


def relations_tags_changed(
    *, corp: Corp, changes: Sequence[RelationTagChange], source: str, priority: Priority = Priority.BULK
) -> int:
    """``relation_tags_changed`` for many relations in a few statements: one ``mark_tag`` row per relation
    (WeCom tags one relation per call). Returns how many rows were stored."""
    wanted = [
        (c, add, remove)
        for c in changes
        for add, remove in [(_wecom_ids(c.added), _wecom_ids(c.removed))]
        if add or remove
    ]
    if not wanted or not sends_to_wecom(corp=corp, source=source):
        return 0
    who = {
        pk: (userid, external_userid)
        for pk, userid, external_userid in FollowRelation.objects.for_corp(corp)
        .filter(pk__in=[c.relation_id for c, _a, _r in wanted])
        .values_list("pk", "staff__userid", "customer__external_userid")
    }
    writes: list[tuple[str, dict[str, Any] | s.WeComRequest, str]] = [
        (
            MARK_TAG,
            s.MarkTagRequest(
                userid=who[c.relation_id][0],
                external_userid=who[c.relation_id][1],
                add_tag=add,
                remove_tag=remove,
            ),
            f"mark_tag:relation:{c.relation_id}:{_change_key(c.change_id)}",
        )
        for c, add, remove in wanted
        if c.relation_id in who
    ]
    return enqueue_writes(corp=corp, writes=writes, priority=priority)


# --- corp tags and tag groups ------------------------------------------------------------------------------


def _group_key(group: TagGroup) -> str:
    return f"add_corp_tag:tag_group:{group.pk}"


def tag_group_created(*, group: TagGroup, tags: Sequence[Tag], source: str) -> Outbox:
    """Create a group made in Siyu in WeCom too, with its tags (WeCom has no empty groups: ``add_corp_tag``);
    the ids WeCom gives are stored on the group and tags when the write is done."""
    if source not in WRITE_THROUGH_SOURCES:
        raise Invalid(_("only a group made in Siyu is created in WeCom from here"), field="wecom")
    if not group.corp.secret:
        raise Invalid(_("this corp is not connected to WeCom (no app secret)"), field="wecom")
    if not tags:
        raise Invalid(_("a WeCom tag group needs at least one tag"), field="tags")
    return enqueue_write(
        corp=group.corp,
        api=ADD_CORP_TAG,
        payload=s.AddCorpTagRequest(group_name=group.name, tag=[s.NewCorpTag(name=t.name) for t in tags]),
        idempotency_key=_group_key(group),
        priority=Priority.USER,
    )


def tag_created(*, tag: Tag, source: str) -> Outbox | None:
    """Create a tag made in Siyu in its WeCom group (``add_corp_tag``); its id is stored once WeCom answers.

    A group whose own creation is still on its way to WeCom has no id yet: the tag goes to it by name, which
    WeCom resolves to the same group.
    """
    group = tag.group
    if tag.wecom_tag_id or not sends_to_wecom(corp=group.corp, source=source):
        return None
    if group.wecom_group_id:
        request = s.AddCorpTagRequest(group_id=group.wecom_group_id, tag=[s.NewCorpTag(name=tag.name)])
    elif (
        Outbox.objects.for_corp(group.corp_id)
        .filter(idempotency_key=_group_key(group))
        .exclude(status=Outbox.Status.FAILED)
        .exists()
    ):
        request = s.AddCorpTagRequest(group_name=group.name, tag=[s.NewCorpTag(name=tag.name)])
    else:
        return None  # a Siyu-only group
    return enqueue_write(
        corp=group.corp,
        api=ADD_CORP_TAG,
        payload=request,
        idempotency_key=f"add_corp_tag:tag:{tag.pk}",
        priority=Priority.USER,
    )


def tag_renamed(*, tag: Tag, source: str) -> Outbox | None:
    """Rename a WeCom tag in WeCom (``edit_corp_tag``)."""
    return _renamed(
        corp_id=tag.corp_id, wecom_id=tag.wecom_tag_id, name=tag.name, kind="tag", pk=tag.pk, source=source
    )


def tag_group_renamed(*, group: TagGroup, source: str) -> Outbox | None:
    """Rename a WeCom tag group in WeCom (``edit_corp_tag``: the id is a tag's or a group's)."""
    return _renamed(
        corp_id=group.corp_id,
        wecom_id=group.wecom_group_id,
        name=group.name,
        kind="tag_group",
        pk=group.pk,
        source=source,
    )


def _renamed(*, corp_id: int, wecom_id: str, name: str, kind: str, pk: int, source: str) -> Outbox | None:
    if not wecom_id:
        return None
    corp = Corp.objects.get(pk=corp_id)
    if not sends_to_wecom(corp=corp, source=source):
        return None
    # Renames record no event: each gets its own key, so renaming back and forth sends every step.
    return enqueue_write(
        corp=corp,
        api=EDIT_CORP_TAG,
        payload=s.EditCorpTagRequest(id=wecom_id, name=name),
        idempotency_key=f"edit_corp_tag:{kind}:{pk}:{uuid.uuid4().hex}",
        priority=Priority.USER,
    )


def tag_deleted(*, tag: Tag, source: str) -> Outbox | None:
    """Delete a WeCom tag in WeCom (``del_corp_tag``). WeCom deletes a group with its last tag."""
    if not tag.wecom_tag_id:
        return None
    corp = Corp.objects.get(pk=tag.corp_id)
    if not sends_to_wecom(corp=corp, source=source):
        return None
    return enqueue_write(
        corp=corp,
        api=DEL_CORP_TAG,
        payload=s.DelCorpTagRequest(tag_id=[tag.wecom_tag_id]),
        idempotency_key=f"del_corp_tag:tag:{tag.pk}",
        priority=Priority.USER,
    )


def tag_group_deleted(*, group: TagGroup, source: str) -> Outbox | None:
    """Delete a WeCom tag group, with all its tags, in WeCom (one ``del_corp_tag``)."""
    if not group.wecom_group_id:
        return None
    corp = Corp.objects.get(pk=group.corp_id)
    if not sends_to_wecom(corp=corp, source=source):
        return None
    return enqueue_write(
        corp=corp,
        api=DEL_CORP_TAG,
        payload=s.DelCorpTagRequest(group_id=[group.wecom_group_id]),
        idempotency_key=f"del_corp_tag:tag_group:{group.pk}",
        priority=Priority.USER,
    )


# --- answers of done writes --------------------------------------------------------------------------------


def apply_write_result(row: Outbox) -> None:
    """Store what WeCom answered to a done write made for Siyu: the ids of groups and tags created here, and
    of group welcome templates (``groups.welcome``)."""
    if row.status == Outbox.Status.DONE and row.api.startswith("externalcontact/group_welcome_template/"):
        from siyu.groups.welcome import template_written

        template_written(row)
        return
    if row.api != ADD_CORP_TAG or row.status != Outbox.Status.DONE:
        return
    kind, _sep, pk = row.idempotency_key.removeprefix("add_corp_tag:").partition(":")
    if kind not in ("tag", "tag_group") or not pk.isdigit():
        return
    answer = s.AddCorpTagResponse.model_validate(row.result).tag_group
    with transaction.atomic():
        if kind == "tag":
            tag = Tag.objects.for_corp(row.corp_id).select_related("group").filter(pk=int(pk)).first()
            if tag is None:
                return  # deleted here meanwhile
            group = tag.group
        else:
            found = TagGroup.objects.for_corp(row.corp_id).filter(pk=int(pk)).first()
            if found is None:
                return
            group = found
        _link(group, answer)


def _link(group: TagGroup, answer: s.CorpTagGroup) -> None:
    from siyu.tags.services import link_tag, link_tag_group

    if not group.wecom_group_id and answer.group_id:
        try:
            link_tag_group(group=group, wecom_group_id=answer.group_id)
        except Invalid:
            log.warning("tag group %d: WeCom group already tied to another group", group.pk)
            return
    unlinked = {t.name: t for t in Tag.objects.for_corp(group.corp_id).filter(group=group, wecom_tag_id="")}
    for created in answer.tag:
        tag = unlinked.get(created.name)
        if tag is None:
            continue
        try:
            link_tag(tag=tag, wecom_tag_id=created.id)
        except Invalid:
            log.warning("tag %d: WeCom tag already tied to another tag", tag.pk)


# --- what is still on its way to WeCom (for the mirror) ----------------------------------------------------


def _in_flight(moment: Any) -> Q:
    return Q(status__in=OPEN) | Q(
        status=Outbox.Status.DONE, created_at__gte=moment - RECENT, sent_at__gte=moment - SETTLE
    )


class _RelationFacts(Protocol):
    """What the mirror knows of a relation (``mirror.RelationFacts``): a dataclass with these fields."""

    @property
    def tag_ids(self) -> tuple[str, ...]: ...


F = TypeVar("F", bound=_RelationFacts)


@dataclass
class RelationWrites:
    """What writes on their way to WeCom change on one relation, in the order they were made."""

    add_tags: list[str] = field(default_factory=list)
    remove_tags: list[str] = field(default_factory=list)
    remark: dict[str, Any] = field(default_factory=dict)

    def note(self, api: str, payload: Mapping[str, Any]) -> None:
        if api == MARK_TAG:
            for tag_id in payload.get("add_tag", []):
                self.remove_tags = [t for t in self.remove_tags if t != tag_id]
                self.add_tags.append(tag_id)
            for tag_id in payload.get("remove_tag", []):
                self.add_tags = [t for t in self.add_tags if t != tag_id]
                self.remove_tags.append(tag_id)
        elif api == REMARK:
            for wecom_name, name in (
                ("remark", "remark"),
                ("description", "description"),
                ("remark_company", "remark_corp_name"),
                ("remark_mobiles", "remark_mobiles"),
            ):
                if wecom_name in payload:
                    self.remark[name] = payload[wecom_name]

    def applied_to(self, facts: F) -> F:
        """``facts`` (what WeCom answered for the relation) as they will be once these writes are in."""
        tags = [t for t in facts.tag_ids if t not in set(self.remove_tags)]
        tags += [t for t in dict.fromkeys(self.add_tags) if t not in tags]
        changes: dict[str, Any] = {"tag_ids": tuple(tags)}
        for name, value in self.remark.items():
            changes[name] = tuple(value) if name == "remark_mobiles" else value
        return replace(facts, **changes)  # type: ignore[type-var]  # a dataclass, see _RelationFacts


def pending_relation_writes(
    *, corp: Corp, external_userids: Iterable[str]
) -> dict[tuple[str, str], RelationWrites]:
    """Writes to these customers' relations that WeCom's answers may not show yet — pending, being sent, or
    sent in the last ``SETTLE`` — by (external_userid, userid)."""
    wanted = list(set(external_userids))
    if not wanted:
        return {}
    in_flight = Outbox.objects.for_corp(corp).filter(_in_flight(now()), api__in=[MARK_TAG, REMARK])
    if len(wanted) > 1 and not in_flight.exists():
        # Usually none: one cheap look instead of matching a page's hundreds of customers in the payloads.
        return {}
    rows = in_flight.filter(payload__external_userid__in=wanted).order_by("pk").values_list("api", "payload")
    writes: dict[tuple[str, str], RelationWrites] = {}
    for api, payload in rows:
        key = (str(payload.get("external_userid", "")), str(payload.get("userid", "")))
        writes.setdefault(key, RelationWrites()).note(api, payload)
    return writes


@dataclass
class TagWrites:
    """Changes to corp tags on their way to WeCom: WeCom ids being deleted, and names being given."""

    deleted: set[str] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)


def pending_tag_writes(*, corp: Corp) -> TagWrites:
    """Renames and deletions of tags and groups that WeCom's tag list may not show yet."""
    writes = TagWrites()
    rows = (
        Outbox.objects.for_corp(corp)
        .filter(_in_flight(now()), api__in=[EDIT_CORP_TAG, DEL_CORP_TAG])
        .order_by("pk")
        .values_list("api", "payload")
    )
    for api, payload in rows:
        if api == EDIT_CORP_TAG and payload.get("name"):
            writes.names[str(payload["id"])] = str(payload["name"])
        elif api == DEL_CORP_TAG:
            writes.deleted.update(str(i) for i in [*payload.get("tag_id", []), *payload.get("group_id", [])])
    return writes
