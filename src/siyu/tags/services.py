"""Operations on tag groups, tags and the tags on customer–staff relations.

Changes made in Siyu (``source`` console, api or system) to WeCom tags reach WeCom through
``siyu.wecom.services``, in the same transaction; Siyu-only tags and groups stay here. The functions the WeCom
mirror calls without a ``source`` (create, rename) treat the change as WeCom's own and send nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils.translation import gettext as _

from siyu.core.bulk import in_list, insert_rows, key_list, select_rows
from siyu.core.clock import now
from siyu.core.errors import ErrorCode, Invalid, NotFound
from siyu.corps.access import Actor
from siyu.corps.models import Corp
from siyu.customers.events import record_event
from siyu.customers.models import Event, FollowRelation
from siyu.tags.models import CustomerTag, RelationTag, Tag, TagGroup
from siyu.wecom import services as wecom

MAX_NAME = 30  # WeCom: tag and tag-group names are at most 30 characters


def _clean_name(name: str, what: str) -> str:
    name = (name or "").strip()
    group = what == "tag group"  # one whole sentence per kind of name, so that each translates as one
    if not name:
        raise Invalid(_("tag group name is required") if group else _("tag name is required"), field="name")
    if len(name) > MAX_NAME:
        message = (
            _("tag group name is at most %(max)d characters")
            if group
            else _("tag name is at most %(max)d characters")
        )
        raise Invalid(message % {"max": MAX_NAME}, field="name")
    return name


@transaction.atomic
def create_tag_group(
    *,
    corp: Corp,
    name: str,
    tag_names: Sequence[str] = (),
    wecom_group_id: str = "",
    source: str | None = None,
    in_wecom: bool = False,
) -> TagGroup:
    """Create a tag group with its first tags; ``in_wecom`` creates it in WeCom too (needs a first tag)."""
    name = _clean_name(name, "tag group")
    if TagGroup.objects.for_corp(corp).filter(name=name).exists():
        raise Invalid(_("tag group “%(name)s” already exists") % {"name": name}, field="name")
    order = (TagGroup.objects.for_corp(corp).aggregate(m=Max("order"))["m"] or 0) + 1
    group = TagGroup.objects.create(corp=corp, name=name, order=order, wecom_group_id=wecom_group_id)
    tags = [create_tag(group=group, name=tag_name) for tag_name in tag_names]
    if in_wecom and not wecom_group_id:
        wecom.tag_group_created(group=group, tags=tags, source=source or "")
    return group


@transaction.atomic
def rename_tag_group(*, group: TagGroup, name: str, source: str | None = None) -> TagGroup:
    """Rename a group; a WeCom group renamed in Siyu (``source`` given) is renamed in WeCom too."""
    name = _clean_name(name, "tag group")
    if TagGroup.objects.for_corp(group.corp_id).filter(name=name).exclude(pk=group.pk).exists():
        raise Invalid(_("tag group “%(name)s” already exists") % {"name": name}, field="name")
    if group.name == name:
        return group
    group.name = name
    group.save(update_fields=["name"])
    if source is not None:
        wecom.tag_group_renamed(group=group, source=source)
    return group


@transaction.atomic
def create_tag(*, group: TagGroup, name: str, wecom_tag_id: str = "", source: str | None = None) -> Tag:
    """Create a tag; one made in Siyu (``source`` given) in a WeCom group is created in WeCom too."""
    name = _clean_name(name, "tag")
    if Tag.objects.for_corp(group.corp_id).filter(group=group, name=name).exists():
        raise Invalid(
            _("tag “%(name)s” already exists in “%(group)s”") % {"name": name, "group": group.name},
            field="name",
        )
    order = (Tag.objects.for_corp(group.corp_id).filter(group=group).aggregate(m=Max("order"))["m"] or 0) + 1
    tag = Tag.objects.create(
        corp_id=group.corp_id, group=group, name=name, order=order, wecom_tag_id=wecom_tag_id
    )
    if source is not None:
        wecom.tag_created(tag=tag, source=source)
    return tag


@transaction.atomic
def rename_tag(*, tag: Tag, name: str, source: str | None = None) -> Tag:
    """Rename a tag; a WeCom tag renamed in Siyu (``source`` given) is renamed in WeCom too."""
    name = _clean_name(name, "tag")
    if Tag.objects.for_corp(tag.corp_id).filter(group_id=tag.group_id, name=name).exclude(pk=tag.pk).exists():
        raise Invalid(_("tag “%(name)s” already exists in this group") % {"name": name}, field="name")
    if tag.name == name:
        return tag
    tag.name = name
    tag.save(update_fields=["name"])
    if source is not None:
        wecom.tag_renamed(tag=tag, source=source)
    return tag


@transaction.atomic
def reorder_tag_groups(*, corp: Corp, group_ids: Sequence[int]) -> None:
    """Set the display order of groups to the order of ``group_ids`` (all of the corp's groups)."""
    groups = {g.pk: g for g in TagGroup.objects.for_corp(corp)}
    if sorted(group_ids) != sorted(groups):
        raise Invalid(_("the new order must list every tag group exactly once"), field="group_ids")
    for position, group_id in enumerate(group_ids, start=1):
        TagGroup.objects.filter(pk=group_id).update(order=position)


@transaction.atomic
def reorder_tags(*, group: TagGroup, tag_ids: Sequence[int]) -> None:
    """Set the order of a group's tags to the order of ``tag_ids`` (all of the group's tags)."""
    tags = set(Tag.objects.for_corp(group.corp_id).filter(group=group).values_list("pk", flat=True))
    if sorted(tag_ids) != sorted(tags):
        raise Invalid(_("the new order must list every tag of the group exactly once"), field="tag_ids")
    for position, tag_id in enumerate(tag_ids, start=1):
        Tag.objects.filter(pk=tag_id).update(order=position)


@transaction.atomic
def delete_tag(*, tag: Tag, source: str) -> int:
    """Delete a tag everywhere; returns how many customers carried it. One corp-level event records it."""
    wecom.tag_deleted(tag=tag, source=source)
    return _delete_tag(tag=tag, source=source)


def _delete_tag(*, tag: Tag, source: str) -> int:
    carried = CustomerTag.objects.for_corp(tag.corp_id).filter(tag=tag).count()
    record_event(
        corp_id=tag.corp_id,
        kind=Event.Kind.TAG_DELETED,
        source=source,
        payload={"tag_id": tag.pk, "name": tag.name, "customers": carried},
        dedupe_key=f"tag_deleted:{tag.pk}",
    )
    tag.delete()
    return carried


@transaction.atomic
def delete_tag_group(*, group: TagGroup, source: str) -> int:
    """Delete a group and all its tags; returns the number of tags deleted."""
    tags = list(Tag.objects.for_corp(group.corp_id).filter(group=group))
    # WeCom deletes a group with its tags in one call: the tags' own deletions are not sent.
    wecom.tag_group_deleted(group=group, source=source)
    for tag in tags:
        _delete_tag(tag=tag, source=source)
    group.delete()
    return len(tags)


def resolve_tags(corp: Corp | int, tag_ids: Iterable[int]) -> list[Tag]:
    """The corp's tags for these ids; any id that is not one of them is a clear error."""
    wanted = list(dict.fromkeys(int(t) for t in tag_ids))
    corp_id = corp if isinstance(corp, int) else corp.pk
    found = {t.pk: t for t in Tag.objects.for_corp(corp_id).filter(pk__in=wanted)}
    missing = [t for t in wanted if t not in found]
    if missing:
        raise NotFound(
            _("unknown tag id(s): %(ids)s") % {"ids": ", ".join(map(str, missing))},
            code=ErrorCode.UNKNOWN_TAG,
        )
    return [found[t] for t in wanted]


@dataclass(frozen=True)
class MarkResult:
    added: list[int]
    removed: list[int]


@transaction.atomic
def mark_relation_tags(
    *,
    relation: FollowRelation,
    add: Sequence[Tag] = (),
    remove: Sequence[Tag] = (),
    source: str,
    dedupe_prefix: str | None = None,
    payload_extra: Mapping[str, Any] | None = None,
) -> MarkResult:
    """Tag and untag one customer–staff relation. A tag already there is not applied again."""
    if relation.status != FollowRelation.Status.ACTIVE and (add or remove):
        raise Invalid(_("this relation has ended; its tags are kept as they were"), field="relation")
    for tag in [*add, *remove]:
        if tag.corp_id != relation.corp_id:
            raise NotFound(_("unknown tag id: %(id)s") % {"id": tag.pk}, code=ErrorCode.UNKNOWN_TAG)
    overlap = {t.pk for t in add} & {t.pk for t in remove}
    if overlap:
        raise Invalid(_("a tag cannot be added and removed at once"), field="tags")
    present = set(
        RelationTag.objects.for_corp(relation.corp_id)
        .filter(relation=relation)
        .values_list("tag_id", flat=True)
    )
    added = [t for t in add if t.pk not in present]
    removed = [t for t in remove if t.pk in present]
    recorded: list[Event] = []
    for tag in added:
        try:
            with transaction.atomic():
                RelationTag.objects.create(
                    corp_id=relation.corp_id, relation=relation, tag=tag, customer_id=relation.customer_id
                )
        except IntegrityError:  # a concurrent request applied it first: nothing to record
            continue
        CustomerTag.objects.bulk_create(
            [CustomerTag(corp_id=relation.corp_id, customer_id=relation.customer_id, tag=tag)],
            ignore_conflicts=True,
        )
        tagged = record_event(
            corp_id=relation.corp_id,
            customer_id=relation.customer_id,
            staff_id=relation.staff_id,
            kind=Event.Kind.TAGGED,
            source=source,
            payload={"tag_id": tag.pk, "tag": tag.name, "relation_id": relation.pk, **(payload_extra or {})},
            dedupe_key=f"{dedupe_prefix}:tagged:{tag.pk}" if dedupe_prefix else None,
        )
        recorded.extend([tagged] if tagged else [])
    if removed:
        RelationTag.objects.for_corp(relation.corp_id).filter(
            relation=relation, tag_id__in=[t.pk for t in removed]
        ).delete()
        still_carried = set(
            RelationTag.objects.for_corp(relation.corp_id)
            .filter(customer_id=relation.customer_id, tag_id__in=[t.pk for t in removed])
            .values_list("tag_id", flat=True)
        )
        CustomerTag.objects.for_corp(relation.corp_id).filter(
            customer_id=relation.customer_id, tag_id__in=[t.pk for t in removed if t.pk not in still_carried]
        ).delete()
        for tag in removed:
            untagged = record_event(
                corp_id=relation.corp_id,
                customer_id=relation.customer_id,
                staff_id=relation.staff_id,
                kind=Event.Kind.UNTAGGED,
                source=source,
                payload={
                    "tag_id": tag.pk,
                    "tag": tag.name,
                    "relation_id": relation.pk,
                    **(payload_extra or {}),
                },
                dedupe_key=f"{dedupe_prefix}:untagged:{tag.pk}" if dedupe_prefix else None,
            )
            recorded.extend([untagged] if untagged else [])
    if added or removed:
        # The change's first event names it: a retried request that changes nothing sends nothing more.
        wecom.relation_tags_changed(
            relation=relation,
            added=added,
            removed=removed,
            source=source,
            change_id=f"event:{recorded[0].pk}" if recorded else None,
        )
    return MarkResult(added=[t.pk for t in added], removed=[t.pk for t in removed])


@dataclass(frozen=True)
class BulkTagResult:
    customers: int
    relations_changed: int
    skipped_customers: int  # no active relation the actor may tag
    customers_changed: int = 0  # customers on whom at least one tag was added or removed


def tag_customers(
    *,
    actor: Actor,
    customer_ids: Sequence[int],
    add_tag_ids: Sequence[int] = (),
    remove_tag_ids: Sequence[int] = (),
    source: str,
) -> BulkTagResult:
    """Tag customers on every active relation the actor may edit (WeCom tags live on relations).

    Customers outside the actor's scope or of another corp are skipped as if they did not exist. The whole
    selection is one transaction of set-based statements (callers pass batches of a few hundred), with the
    same effects and events as ``mark_relation_tags`` one relation at a time; a retry does not tag twice.
    """
    add = resolve_tags(actor.corp, add_tag_ids)
    remove = resolve_tags(actor.corp, remove_tag_ids)
    if not add and not remove:
        raise Invalid(_("choose at least one tag to add or remove"), field="tags")
    if {t.pk for t in add} & {t.pk for t in remove}:
        raise Invalid(_("a tag cannot be added and removed at once"), field="tags")
    with transaction.atomic():
        relations = list(
            FollowRelation.objects.for_corp(actor.corp)
            .filter(
                actor.visible_staff_ids_q(),
                customer_id__in=list(customer_ids),
                status=FollowRelation.Status.ACTIVE,
            )
            .order_by("customer_id", "id")
        )
        changed_relations = _bulk_mark(relations, add=add, remove=remove, source=source, corp=actor.corp)
    customers = {r.customer_id for r in relations}
    requested = len(set(customer_ids))
    return BulkTagResult(
        customers=len(customers),
        relations_changed=len(changed_relations),
        skipped_customers=requested - len(customers),
        customers_changed=len({r.customer_id for r in relations if r.pk in changed_relations}),
    )


def _bulk_mark(
    relations: Sequence[FollowRelation],
    *,
    add: Sequence[Tag],
    remove: Sequence[Tag],
    source: str,
    corp: Corp,
) -> set[int]:
    """Set-based ``mark_relation_tags`` over many relations; returns the ids of relations that changed."""
    if not relations:
        return set()
    corp_id = relations[0].corp_id
    by_id = {r.pk: r for r in relations}
    tag_ids = [t.pk for t in [*add, *remove]]
    present = set(
        RelationTag.objects.for_corp(corp_id)
        .filter(relation_id__in=list(by_id), tag_id__in=tag_ids)
        .values_list("relation_id", "tag_id")
    )
    now_ = now()
    to_add = [(r, t) for r in relations for t in add if (r.pk, t.pk) not in present]
    to_remove = [(r, t) for r in relations for t in remove if (r.pk, t.pk) in present]
    events: list[Event] = []
    if to_add:
        RelationTag.objects.bulk_create(
            [
                RelationTag(corp_id=corp_id, relation=r, tag=t, customer_id=r.customer_id, created_at=now_)
                for r, t in to_add
            ],
            ignore_conflicts=True,
        )
        CustomerTag.objects.bulk_create(
            [CustomerTag(corp_id=corp_id, customer_id=r.customer_id, tag=t) for r, t in to_add],
            ignore_conflicts=True,
        )
    if to_remove:
        RelationTag.objects.for_corp(corp_id).filter(
            relation_id__in={r.pk for r, _t in to_remove}, tag_id__in=[t.pk for t in remove]
        ).delete()
        affected = {(r.customer_id, t.pk) for r, t in to_remove}
        still = set(
            RelationTag.objects.for_corp(corp_id)
            .filter(customer_id__in={c for c, _t in affected}, tag_id__in=[t.pk for t in remove])
            .values_list("customer_id", "tag_id")
        )
        gone = affected - still
        for tag in remove:
            customers = [c for c, t in gone if t == tag.pk]
            if customers:
                CustomerTag.objects.for_corp(corp_id).filter(tag=tag, customer_id__in=customers).delete()
    for kind, pairs in ((Event.Kind.TAGGED, to_add), (Event.Kind.UNTAGGED, to_remove)):
        events.extend(
            Event(
                corp_id=corp_id,
                customer_id=r.customer_id,
                staff_id=r.staff_id,
                kind=kind,
                source=source,
                occurred_at=now_,
                recorded_at=now_,
                payload={"tag_id": t.pk, "tag": t.name, "relation_id": r.pk},
                dedupe_key=f"{kind}:{uuid.uuid4().hex}",
            )
            for r, t in pairs
        )
    Event.objects.bulk_create(events)
    # One mark_tag per changed relation (WeCom tags one relation per call), named by its first event.
    added: dict[int, list[Tag]] = {}
    removed: dict[int, list[Tag]] = {}
    for r, t in to_add:
        added.setdefault(r.pk, []).append(t)
    for r, t in to_remove:
        removed.setdefault(r.pk, []).append(t)
    first_event: dict[int, int] = {}
    for event in events:
        if event.pk is not None:
            first_event.setdefault(event.payload["relation_id"], event.pk)
    changed = set(added) | set(removed)
    wecom.relations_tags_changed(
        corp=corp,
        changes=[
            wecom.RelationTagChange(
                relation_id=pk,
                added=added.get(pk, []),
                removed=removed.get(pk, []),
                change_id=f"event:{first_event[pk]}" if pk in first_event else None,
            )
            for pk in sorted(changed)
        ],
        source=source,
    )
    return changed


@transaction.atomic
def link_tag_group(*, group: TagGroup, wecom_group_id: str) -> TagGroup:
    """Tie a Siyu tag group to the WeCom group of the same name (a corp had both before its first sync)."""
    if (
        TagGroup.objects.for_corp(group.corp_id)
        .filter(wecom_group_id=wecom_group_id)
        .exclude(pk=group.pk)
        .exists()
    ):
        raise Invalid(_("another tag group is already tied to this WeCom group"), field="wecom_group_id")
    group.wecom_group_id = wecom_group_id
    group.save(update_fields=["wecom_group_id"])
    return group


@transaction.atomic
def link_tag(*, tag: Tag, wecom_tag_id: str) -> Tag:
    """Tie a Siyu tag to the WeCom tag of the same name in the same group."""
    if Tag.objects.for_corp(tag.corp_id).filter(wecom_tag_id=wecom_tag_id).exclude(pk=tag.pk).exists():
        raise Invalid(_("another tag is already tied to this WeCom tag"), field="wecom_tag_id")
    tag.wecom_tag_id = wecom_tag_id
    tag.save(update_fields=["wecom_tag_id"])
    return tag


class RelationRef(Protocol):
    """What ``add_relation_tags`` needs of a relation (a ``FollowRelation``, or what an import returned)."""

    @property
    def pk(self) -> int: ...
    @property
    def corp_id(self) -> int: ...
    @property
    def customer_id(self) -> int: ...
    @property
    def staff_id(self) -> int: ...


RELATION_TAG_COLUMNS = ("corp", "relation", "tag", "customer", "created_at")
CUSTOMER_TAG_COLUMNS = ("corp", "customer", "tag")
EVENT_COLUMNS = (
    "corp", "customer", "staff", "kind", "occurred_at", "source", "payload", "dedupe_key", "recorded_at",
)  # fmt: skip


# The (customer id, tag id) pairs of some customers' tags; the caller appends the condition on customer_id.
CUSTOMER_TAGS_SQL = "SELECT customer_id, tag_id FROM tags_customertag WHERE corp_id = %s AND "
# The same on PostgreSQL, a lookup per customer whatever the statistics (``core.bulk.key_list``).
CUSTOMER_TAGS_BY_KEY_SQL = (
    "SELECT ct.customer_id, ct.tag_id FROM {keys} CROSS JOIN LATERAL (SELECT customer_id, tag_id "
    "FROM tags_customertag WHERE corp_id = %s AND customer_id = k.key OFFSET 0) ct"
)


def add_relation_tags(
    *,
    pairs: Sequence[tuple[RelationRef, Tag]],
    source: str,
    dedupe_prefixes: Mapping[int, str] | None = None,
    payload_extra: Mapping[str, Any] | None = None,
) -> int:
    """Set-based tagging of many relations: the add half of ``mark_relation_tags``, with the same effects and
    ``tagged`` events (keyed ``<prefix>:tagged:<tag>`` when ``dedupe_prefixes`` names the relation's prefix).
    A tag already on its relation is skipped, by the unique constraint, so a concurrent tagging never doubles
    an event. Returns how many tags were added."""
    if not pairs:
        return 0
    corp_id = pairs[0][0].corp_id
    for relation, tag in pairs:
        if relation.corp_id != corp_id or tag.corp_id != corp_id:
            raise NotFound(_("unknown tag id: %(id)s") % {"id": tag.pk}, code=ErrorCode.UNKNOWN_TAG)
    wanted = {(r.pk, t.pk): (r, t) for r, t in pairs}
    moment = now()
    with transaction.atomic(savepoint=False):  # all or nothing with the caller's transaction
        added = insert_rows(
            RelationTag,
            RELATION_TAG_COLUMNS,
            ((corp_id, r.pk, t.pk, r.customer_id, moment) for r, t in wanted.values()),
            returning=("relation_id", "tag_id"),
        )
        if not added:
            return 0
        to_add = [wanted[(relation_id, tag_id)] for relation_id, tag_id in sorted(added)]
        customer_tags = dict.fromkeys((r.customer_id, t.pk) for r, t in to_add)
        # Another relation of the customer may carry the tag already, so its customer tag is there: read
        # first, so that the bulk insert meets no conflict (which would send it down the slower path).
        customer_ids = {customer_id for customer_id, _tag in customer_tags}
        if connection.vendor == "postgresql":
            keys, params = key_list(customer_ids, "bigint")
            present = set(select_rows(CUSTOMER_TAGS_BY_KEY_SQL.format(keys=keys), [*params, corp_id]))
        else:
            of_customers, params = in_list("customer_id", customer_ids)
            present = set(select_rows(CUSTOMER_TAGS_SQL + of_customers, [corp_id, *params]))
        insert_rows(
            CustomerTag,
            CUSTOMER_TAG_COLUMNS,
            [(corp_id, *pair) for pair in customer_tags if pair not in present],
        )
        prefixes = dedupe_prefixes or {}
        extra = dict(payload_extra or {})
        insert_rows(
            Event,
            EVENT_COLUMNS,
            (
                (
                    corp_id,
                    r.customer_id,
                    r.staff_id,
                    Event.Kind.TAGGED.value,
                    moment,
                    source,
                    {"tag_id": t.pk, "tag": t.name, "relation_id": r.pk, **extra},
                    (f"{prefixes[r.pk]}:tagged:{t.pk}" if r.pk in prefixes else f"tagged:{uuid.uuid4().hex}")[
                        :200
                    ],
                    moment,
                )
                for r, t in to_add
            ),
        )
    return len(to_add)
