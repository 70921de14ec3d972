"""Merging an offline member into the WeCom customer whose relation carries the member's phone.

The match is on the normalised phone (``offline.phones``) of a relation's remark mobiles. A merge happens
once per member, in one transaction: the imported tags go onto the matching relation through the tag
services (so WeCom tags are written to WeCom with ``mark_tag``), the notes become a note on the customer,
imported custom fields fill the customer's empty ones, and the timeline records the merge. Running it again
finds the member merged and does nothing.

Triggers: ``customers.signals.remark_mobiles_changed`` (a relation added with remark mobiles — by a
callback's add or a sync — or edited to carry new ones) enqueues ``match_relations`` for those relations;
an import ends by matching its members against the relations Siyu already has (``match_existing``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from django.db import transaction

from siyu.core.clock import now
from siyu.customers.events import record_event
from siyu.customers.models import CustomField, Event, FollowRelation
from siyu.customers.services import add_note, set_custom_fields
from siyu.offline.models import OfflineMember
from siyu.offline.phones import normalise_phone
from siyu.tags.models import Tag
from siyu.tags.services import mark_relation_tags

logger = logging.getLogger(__name__)

SOURCE = Event.Source.SYSTEM  # Siyu's own decision: written through to WeCom like a console change
# Relations read per query when matching an import against the relations Siyu has.
SCAN_BATCH = 2000


def relation_phones(remark_mobiles: Iterable[str]) -> set[str]:
    """The normalised phones among a relation's remark mobiles."""
    return {p for p in (normalise_phone(m) for m in remark_mobiles or ()) if p}


@transaction.atomic
def merge_member(*, member_id: int, relation_id: int) -> bool:
    """Merge one pending member into the customer of one active relation; False if there was nothing to do
    (merged already, or the relation has ended)."""
    member = OfflineMember.objects.select_for_update().filter(pk=member_id).first()
    if member is None or member.status != OfflineMember.Status.PENDING:
        return False
    relation = (
        FollowRelation.objects.for_corp(member.corp_id)
        .select_related("customer", "staff", "corp")
        .filter(pk=relation_id, status=FollowRelation.Status.ACTIVE)
        .first()
    )
    if relation is None:
        return False
    customer = relation.customer
    tags = list(Tag.objects.for_corp(member.corp_id).filter(pk__in=member.tag_ids))  # deleted since: skipped
    extra = {"offline_member_id": member.pk}
    if tags:
        mark_relation_tags(
            relation=relation,
            add=tags,
            source=SOURCE,
            dedupe_prefix=f"offline:{member.pk}",
            payload_extra=extra,
        )
    if member.notes:
        add_note(customer=customer, author_id=None, text=member.notes, source=SOURCE)
    known = set(CustomField.objects.for_corp(member.corp_id).values_list("key", flat=True))
    fill = {
        k: v
        for k, v in member.custom_fields.items()
        if k in known and customer.custom_fields.get(k) in (None, "")
    }
    if fill:
        set_custom_fields(customer=customer, values=fill, source=SOURCE)
    member.status = OfflineMember.Status.MERGED
    member.customer = customer
    member.relation = relation
    member.merged_at = now()
    member.updated_at = member.merged_at
    member.save(update_fields=["status", "customer", "relation", "merged_at", "updated_at"])
    record_event(
        corp_id=member.corp_id,
        customer_id=customer.pk,
        staff_id=relation.staff_id,
        kind=Event.Kind.OFFLINE_MERGED,
        source=SOURCE,
        payload={
            "offline_member_id": member.pk,
            "relation_id": relation.pk,
            "name": member.name,
            "tags": [t.name for t in tags],
            "import_id": member.last_import_id,
        },
        dedupe_key=f"offline_merged:{member.pk}",
    )
    return True


def _merge_pairs(corp_id: int, phones_by_relation: dict[int, set[str]]) -> int:
    """Merge the pending members whose phone one of these relations carries; returns how many merged."""
    wanted = set().union(*phones_by_relation.values()) if phones_by_relation else set()
    if not wanted:
        return 0
    members = dict(
        OfflineMember.objects.for_corp(corp_id)
        .filter(phone__in=wanted, status=OfflineMember.Status.PENDING)
        .values_list("phone", "pk")
    )
    merged = 0
    for relation_id, phones in sorted(phones_by_relation.items()):
        for phone in sorted(phones):
            member_id = members.pop(phone, None)
            if member_id is not None:
                merged += merge_member(member_id=member_id, relation_id=relation_id)
    return merged


def match_relations(*, corp_id: int, relation_ids: Sequence[int]) -> int:
    """Merge the pending members these relations' remark mobiles name; returns how many merged."""
    rows = (
        FollowRelation.objects.for_corp(corp_id)
        .filter(pk__in=list(relation_ids), status=FollowRelation.Status.ACTIVE)
        .values_list("pk", "remark_mobiles")
    )
    return _merge_pairs(corp_id, {pk: relation_phones(mobiles) for pk, mobiles in rows})


@dataclass(frozen=True)
class ScanStep:
    """One batch of ``match_existing``: the last relation id read, and the members merged."""

    cursor: int
    merged: int
    read: int


def relations_with_mobiles(corp_id: int) -> int:
    """How many active relations carry remark mobiles (what ``match_existing`` reads)."""
    return (
        FollowRelation.objects.for_corp(corp_id)
        .filter(status=FollowRelation.Status.ACTIVE)
        .exclude(remark_mobiles=[])
        .count()
    )


def match_existing(*, corp_id: int, after: int = 0, batch: int = SCAN_BATCH) -> Iterator[ScanStep]:
    """Walk the active relations with remark mobiles in id order, merging pending members they name."""
    cursor = after
    while True:
        rows = list(
            FollowRelation.objects.for_corp(corp_id)
            .filter(status=FollowRelation.Status.ACTIVE, pk__gt=cursor)
            .exclude(remark_mobiles=[])
            .order_by("pk")
            .values_list("pk", "remark_mobiles")[:batch]
        )
        if not rows:
            return
        cursor = rows[-1][0]
        phones = {pk: found for pk, mobiles in rows if (found := relation_phones(mobiles))}
        yield ScanStep(cursor=cursor, merged=_merge_pairs(corp_id, phones), read=len(rows))
