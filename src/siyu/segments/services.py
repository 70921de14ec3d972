"""Segments: parsing and evaluating expressions, and every write to segments (the only write path).

The contract other apps use (mass messaging, journeys):

- ``parse_expression(corp=, text=)`` → ``Expression`` (``Expression.from_json`` / ``.to_json()`` /
  ``.to_text()``); bad input is ``Invalid`` with a stable code and a message naming the problem;
- ``evaluate(corp=, expression=)`` → ``pyroaring.BitMap`` of the customer ids matching now;
- ``segment_customer_ids(corp=, segment_id=)`` → a segment's members (dynamic: now; snapshot: as frozen),
  manual includes and excludes applied; ``Invalid`` (``segment_references_deleted_tag``) when the segment
  names a tag that no longer exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from pyroaring import BitMap

from siyu.core.bulk import insert_rows
from siyu.core.clock import now
from siyu.core.errors import Conflict, ErrorCode, Invalid, NotFound
from siyu.corps.models import Corp, Department, Staff
from siyu.customers.models import Customer, Event
from siyu.segments import engine
from siyu.segments.expressions import (
    DepartmentCondition,
    Expression,
    StaffCondition,
    TagCondition,
    walk,
)
from siyu.segments.models import Segment, SegmentCount, SegmentOverride
from siyu.segments.parser import parse
from siyu.tags.models import Tag

MAX_NAME = 60
# Includes or excludes set in one call: what a console selection or an API call reasonably sends.
MAX_OVERRIDES_PER_CALL = 10_000


def parse_expression(*, corp: Corp, text: str) -> Expression:
    """The expression of ``text`` in ``corp`` (tags, staff, departments and fields resolved by name)."""
    return parse(corp=corp, text=text)


def _missing_references(corp: Corp, expression: Expression) -> tuple[set[int], set[int], set[int]]:
    nodes = walk(expression.root)
    tag_ids = expression.tag_ids()
    staff_ids = {s.id for n in nodes if isinstance(n, TagCondition) for s in n.staff}
    staff_ids |= {n.staff.id for n in nodes if isinstance(n, StaffCondition)}
    dept_ids = {n.department.id for n in nodes if isinstance(n, DepartmentCondition)}
    tags = (
        set(Tag.objects.for_corp(corp).filter(pk__in=tag_ids).values_list("pk", flat=True))
        if tag_ids
        else set()
    )
    staff = (
        set(Staff.objects.for_corp(corp).filter(pk__in=staff_ids).values_list("pk", flat=True))
        if staff_ids
        else set()
    )
    depts = (
        set(Department.objects.for_corp(corp).filter(pk__in=dept_ids).values_list("pk", flat=True))
        if dept_ids
        else set()
    )
    return tag_ids - tags, staff_ids - staff, dept_ids - depts


def check_expression(*, corp: Corp, expression: Expression, segment: Segment | None = None) -> None:
    """Every tag, staff member and department the expression names exists in the corp; a stored segment's
    missing tag is ``segment_references_deleted_tag``, an ad-hoc expression's ``unknown_tag``."""
    tags, staff, depts = _missing_references(corp, expression)
    if tags:
        names = sorted(
            {
                t.name
                for n in walk(expression.root)
                if isinstance(n, TagCondition)
                for t in n.tags
                if t.id in tags
            }
        )
        if segment is not None:
            raise Invalid(
                _("segment “%(segment)s” uses tags that were deleted (%(tags)s): edit its conditions")
                % {"segment": segment.name, "tags": ", ".join(names)},
                field="expression",
                code=ErrorCode.SEGMENT_REFERENCES_DELETED_TAG,
            )
        raise Invalid(
            _("unknown tag “%(name)s”") % {"name": ", ".join(names)},
            field="expression",
            code=ErrorCode.UNKNOWN_TAG,
        )
    if staff:
        raise Invalid(
            _("the expression names a staff member who is not in this corp"),
            field="expression",
            code=ErrorCode.UNKNOWN_STAFF,
        )
    if depts:
        raise Invalid(
            _("the expression names a department that is not in this corp"),
            field="expression",
            code=ErrorCode.UNKNOWN_DEPARTMENT,
        )


def evaluate(*, corp: Corp, expression: Expression) -> BitMap:
    """The ids of the corp's customers the expression selects now (the index reads every row committed
    before the call)."""
    check_expression(corp=corp, expression=expression)
    with engine.index_for(corp, fresh_seconds=0) as index:
        return index.dense.to_pks(engine.evaluate_numbers(corp, index, expression))


def count(*, corp: Corp, expression: Expression, within: BitMap | None = None) -> int:
    """How many customers the expression selects now (``within``: only among these customer ids)."""
    check_expression(corp=corp, expression=expression)
    with engine.index_for(corp, fresh_seconds=0) as index:
        numbers = engine.evaluate_numbers(corp, index, expression)
        if within is None:
            return len(numbers)
        return len(index.dense.to_pks(numbers) & within)


def _overrides(segment: Segment) -> tuple[BitMap, BitMap]:
    included, excluded = BitMap(), BitMap()
    for customer_id, mode in (
        SegmentOverride.objects.for_corp(segment.corp_id)
        .filter(segment=segment)
        .values_list("customer_id", "mode")
    ):
        (included if mode == SegmentOverride.Mode.INCLUDE else excluded).add(customer_id)
    return included, excluded


def _get_segment(corp: Corp, segment_id: int) -> Segment:
    segment = Segment.objects.for_corp(corp).filter(pk=segment_id).first()
    if segment is None:
        raise NotFound(_("segment not found"))
    return segment


def members_of(segment: Segment, *, fresh_seconds: float | None = 0) -> BitMap:
    """A segment's members now (see ``segment_customer_ids``); ``fresh_seconds``: how old the index may be
    (pages pass None: the configured ``SEGMENT_FRESH_SECONDS``; the default 0 reads every committed row)."""
    corp = segment.corp
    expression = Expression.from_json(segment.expression)
    check_expression(corp=corp, expression=expression, segment=segment)
    if segment.kind == Segment.Kind.SNAPSHOT and segment.frozen_members is not None:
        members = BitMap.deserialize(bytes(segment.frozen_members))
    else:
        with engine.index_for(corp, fresh_seconds=fresh_seconds) as index:
            members = index.dense.to_pks(engine.evaluate_numbers(corp, index, expression))
    included, excluded = _overrides(segment)
    return (members | included) - excluded


def segment_customer_ids(*, corp: Corp, segment_id: int) -> BitMap:
    """The customer ids in a segment: dynamic segments as of now, snapshots as frozen; manual includes added
    and excludes removed. ``NotFound`` for another corp's segment."""
    return members_of(_get_segment(corp, segment_id))


# --- writes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentInput:
    """What an operator sets on a segment: the expression as text or as a JSON tree (one of them)."""

    name: str
    kind: str = Segment.Kind.DYNAMIC
    text: str | None = None
    expression: dict[str, Any] | None = None
    description: str = ""


def resolve_input(*, corp: Corp, text: str | None, expression: dict[str, Any] | None) -> Expression:
    """The expression given as text or JSON (exactly one), checked against the corp."""
    if (text is None) == (expression is None):
        raise Invalid(_("give the expression either as text or as a JSON tree"), field="text")
    parsed = (
        parse_expression(corp=corp, text=text) if text is not None else Expression.from_json(expression or {})
    )
    check_expression(corp=corp, expression=parsed)
    return parsed


def _clean_name(name: str) -> str:
    cleaned = (name or "").strip()
    if not cleaned or len(cleaned) > MAX_NAME:
        raise Invalid(_("a segment name has 1 to %(max)d characters") % {"max": MAX_NAME}, field="name")
    return cleaned


def _freeze(segment: Segment, expression: Expression) -> None:
    with engine.index_for(segment.corp, fresh_seconds=0) as index:
        members = index.dense.to_pks(engine.evaluate_numbers(segment.corp, index, expression))
    segment.frozen_members = members.serialize()
    segment.frozen_at = now()
    segment.last_count = len(members)
    segment.last_evaluated_at = segment.frozen_at


@transaction.atomic
def create_segment(*, corp: Corp, data: SegmentInput, user_id: int | None = None) -> Segment:
    """Create a segment; a snapshot is frozen now."""
    if data.kind not in Segment.Kind.values:
        raise Invalid(_("kind is dynamic or snapshot"), field="kind")
    expression = resolve_input(corp=corp, text=data.text, expression=data.expression)
    segment = Segment(
        corp=corp,
        name=_clean_name(data.name),
        description=(data.description or "").strip()[:200],
        kind=data.kind,
        expression=expression.to_json(),
        text=expression.to_text(),
        created_by_id=user_id,
    )
    if segment.kind == Segment.Kind.SNAPSHOT:
        _freeze(segment, expression)
    try:
        with transaction.atomic():
            segment.save()
    except IntegrityError as exc:
        raise Conflict(_("a segment called “%(name)s” exists already") % {"name": segment.name}) from exc
    refresh_segment(segment=segment)  # the first count of the trend, and the baseline of entered / exited
    return segment


@transaction.atomic
def update_segment(
    *,
    segment: Segment,
    name: str | None = None,
    description: str | None = None,
    text: str | None = None,
    expression: dict[str, Any] | None = None,
    refreeze: bool = False,
) -> Segment:
    """Rename, describe or change the conditions of a segment. A snapshot is frozen again when its conditions
    change or ``refreeze`` is asked; includes and excludes stay."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    if name is not None:
        segment.name = _clean_name(name)
    if description is not None:
        segment.description = description.strip()[:200]
    changed = text is not None or expression is not None
    if changed:
        parsed = resolve_input(corp=segment.corp, text=text, expression=expression)
        segment.expression = parsed.to_json()
        segment.text = parsed.to_text()
    if segment.kind == Segment.Kind.SNAPSHOT and (changed or refreeze):
        _freeze(segment, Expression.from_json(segment.expression))
    segment.updated_at = now()
    try:
        with transaction.atomic():
            segment.save()
    except IntegrityError as exc:
        raise Conflict(_("a segment called “%(name)s” exists already") % {"name": segment.name}) from exc
    return segment


@transaction.atomic
def delete_segment(*, segment: Segment) -> None:
    """Delete a segment with its overrides and trend (its members' timeline events stay)."""
    segment.delete()


@transaction.atomic
def set_overrides(*, segment: Segment, customer_ids: list[int], mode: str | None) -> int:
    """Include (``include``), exclude (``exclude``) or release (None) customers by hand; returns how many
    customers changed. Customers of another corp are refused."""
    if mode is not None and mode not in SegmentOverride.Mode.values:
        raise Invalid(_("mode is include or exclude"), field="mode")
    wanted = sorted(set(customer_ids))
    if len(wanted) > MAX_OVERRIDES_PER_CALL:
        raise Invalid(
            _("at most %(max)d customers at a time") % {"max": MAX_OVERRIDES_PER_CALL}, field="customer_ids"
        )
    known = set(Customer.objects.for_corp(segment.corp_id).filter(pk__in=wanted).values_list("pk", flat=True))
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise Invalid(
            _("customer %(id)s is not in this corp") % {"id": unknown[0]},
            field="customer_ids",
            code=ErrorCode.UNKNOWN_CUSTOMER,
        )
    existing = SegmentOverride.objects.for_corp(segment.corp_id).filter(
        segment=segment, customer_id__in=wanted
    )
    if mode is None:
        removed, _by_model = existing.delete()
        return removed
    changed = existing.exclude(mode=mode).update(mode=mode)
    present = set(existing.values_list("customer_id", flat=True))
    SegmentOverride.objects.bulk_create(
        SegmentOverride(corp_id=segment.corp_id, segment=segment, customer_id=c, mode=mode)
        for c in wanted
        if c not in present
    )
    return changed + len([c for c in wanted if c not in present])


@dataclass(frozen=True)
class SegmentRefresh:
    """What one re-evaluation of a segment found."""

    count: int
    entered: int
    exited: int


def _hour(moment: Any) -> Any:
    return moment.replace(minute=0, second=0, microsecond=0)


@transaction.atomic
def refresh_segment(*, segment: Segment) -> SegmentRefresh:
    """Re-evaluate a segment: record its count for the trend and, for a dynamic segment, a
    ``segment_entered`` / ``segment_exited`` event for every customer who came or went since the last
    re-evaluation (the first one sets the baseline silently). Keys ``segment_entered:<segment>:<round>:<id>``
    make a repeated round a no-op."""
    segment = Segment.objects.select_for_update().select_related("corp").get(pk=segment.pk)
    members = members_of(segment)
    moment = now()
    entered = exited = 0
    if segment.kind == Segment.Kind.DYNAMIC:
        previous = BitMap.deserialize(bytes(segment.members)) if segment.members is not None else None
        round_no = segment.evaluation_round + 1
        if previous is not None:
            came, went = members - previous, previous - members
            entered, exited = len(came), len(went)
            rows = [
                (
                    segment.corp_id,
                    customer_id,
                    None,
                    kind,
                    moment,
                    Event.Source.SYSTEM.value,
                    {"segment_id": segment.pk, "segment": segment.name},
                    f"{kind}:{segment.pk}:{round_no}:{customer_id}",
                    moment,
                )
                for kind, ids in (
                    (Event.Kind.SEGMENT_ENTERED.value, came),
                    (Event.Kind.SEGMENT_EXITED.value, went),
                )
                for customer_id in ids
            ]
            if rows:
                insert_rows(
                    Event,
                    (
                        "corp",
                        "customer",
                        "staff",
                        "kind",
                        "occurred_at",
                        "source",
                        "payload",
                        "dedupe_key",
                        "recorded_at",
                    ),
                    rows,
                )
        if previous is None or entered or exited:
            segment.members = members.serialize()
        segment.evaluation_round = round_no
    segment.last_count = len(members)
    segment.last_evaluated_at = moment
    segment.save(update_fields=["members", "evaluation_round", "last_count", "last_evaluated_at"])
    SegmentCount.objects.update_or_create(
        corp_id=segment.corp_id, segment=segment, at=_hour(moment), defaults={"count": len(members)}
    )
    return SegmentRefresh(count=len(members), entered=entered, exited=exited)
