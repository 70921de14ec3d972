"""Siyu's own evaluation path: expressions compiled to roaring bitmap operations over a corp's index.

Each process keeps one ``CorpIndex`` per corp it has evaluated for (``index_for``): loaded from the newest
saved copy or rebuilt, and caught up with the tables when it was last caught up more than
``SEGMENT_FRESH_SECONDS`` ago. One lock per corp serialises catch-up and evaluation (each takes milliseconds);
threads of a web process share the index.

Conditions without a bitmap of their own (tags on relations with given staff: a (tag, staff) bitmap per pair
would not pay) are read from the tables for that condition only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import cast
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from pyroaring import BitMap

from siyu.corps.models import Corp
from siyu.segments.expressions import (
    ACTIVITY_KINDS,
    GENDERS,
    TYPES,
    ActiveCondition,
    AddedCondition,
    And,
    AttributeCondition,
    BehaviourCondition,
    DepartmentCondition,
    Expression,
    FieldCondition,
    Node,
    Not,
    Or,
    StaffCondition,
    TagCondition,
)
from siyu.segments.index import CorpIndex, bitmap_of, numbers_of
from siyu.segments.maintenance import catch_up, load_snapshot, newest_rebuild, rebuild
from siyu.segments.reference import department_staff_ids
from siyu.segments.windows import day_bounds, today, window_start_day
from siyu.tags.models import RelationTag

_EMPTY = BitMap()


@dataclass
class _Loaded:
    index: CorpIndex
    lock: threading.RLock
    caught_up_at: float
    identity: tuple[int, str, str]
    lineage_checked_at: float = 0.0


# How often a process looks whether the worker rebuilt the corp's index (then it loads that copy).
LINEAGE_CHECK_SECONDS = 60.0


_registry: dict[int, _Loaded] = {}
_registry_lock = threading.Lock()


def _identity(corp: Corp) -> tuple[int, str, str]:
    return (corp.pk, corp.corpid, corp.time_zone)


def reset() -> None:
    """Forget every loaded index (tests; a process that wants to reload)."""
    with _registry_lock:
        _registry.clear()


def install(corp: Corp, index: CorpIndex) -> None:
    """Use ``index`` for the corp from now on (after a rebuild)."""
    with _registry_lock:
        _registry[corp.pk] = _Loaded(index, threading.RLock(), time.monotonic(), _identity(corp))


def _entry(corp: Corp) -> _Loaded:
    with _registry_lock:
        entry = _registry.get(corp.pk)
        if entry is not None and entry.identity == _identity(corp):
            return entry
        # caught_up_at -1: not loaded yet
        entry = _Loaded(
            CorpIndex(corp_id=corp.pk, time_zone=corp.time_zone), threading.RLock(), -1.0, _identity(corp)
        )
        _registry[corp.pk] = entry
        return entry


class IndexLease:
    """A corp's index, current, held under its lock for the duration of a ``with`` block."""

    def __init__(self, corp: Corp, *, fresh_seconds: float | None = None):
        self.corp = corp
        self.entry = _entry(corp)
        self.fresh = (
            cast(float, settings.SIYU["SEGMENT_FRESH_SECONDS"]) if fresh_seconds is None else fresh_seconds
        )

    def __enter__(self) -> CorpIndex:
        entry = self.entry
        entry.lock.acquire()
        try:
            if entry.caught_up_at < 0:
                entry.index = load_snapshot(self.corp) or rebuild(self.corp)
                catch_up(entry.index)
                entry.caught_up_at = entry.lineage_checked_at = time.monotonic()
            elif time.monotonic() - entry.caught_up_at >= self.fresh:
                if time.monotonic() - entry.lineage_checked_at >= LINEAGE_CHECK_SECONDS:
                    entry.lineage_checked_at = time.monotonic()
                    if newest_rebuild(self.corp) > entry.index.rebuilt_at + 1e-3:
                        entry.index = load_snapshot(self.corp) or entry.index
                catch_up(entry.index)
                entry.caught_up_at = time.monotonic()
        except BaseException:
            entry.caught_up_at = -1.0  # half-applied: load again next time
            entry.lock.release()
            raise
        return entry.index

    def __exit__(self, *exc: object) -> None:
        self.entry.lock.release()


def index_for(corp: Corp, *, fresh_seconds: float | None = None) -> IndexLease:
    return IndexLease(corp, fresh_seconds=fresh_seconds)


# --- compiling ---------------------------------------------------------------------------------------------


class Compiler:
    """Evaluates expression nodes to bitmaps of dense numbers over one index.

    Leaves return the index's own bitmaps (copying a 5M-customer bitmap would cost more than the whole
    evaluation) and nothing here changes a bitmap in place: a result may be the index's own, to read only."""

    def __init__(self, corp: Corp, index: CorpIndex):
        self.corp = corp
        self.index = index
        self.tz = ZoneInfo(index.time_zone)
        self._today = today(self.tz).toordinal()

    def run(self, node: Node) -> BitMap:
        if isinstance(node, And):
            positives = [a for a in node.args if not isinstance(a, Not)]
            negatives = [a.arg for a in node.args if isinstance(a, Not)]
            parts = sorted((self.run(a) for a in positives), key=len) if positives else [self.index.universe]
            result = BitMap.intersection(*parts) if len(parts) > 1 else parts[0]
            for negative in negatives:
                if not result:
                    break
                result = result - self.run(negative)
            return result
        if isinstance(node, Or):
            return BitMap.union(*(self.run(a) for a in node.args))
        if isinstance(node, Not):
            return self.index.universe - self.run(node.arg)
        if isinstance(node, TagCondition):
            if node.staff:
                return self._tags_on_staff_relations(node)
            bitmaps = [self.index.tags.get(t.id, _EMPTY) for t in node.tags]
            if node.mode == "all":
                return BitMap.intersection(*sorted(bitmaps, key=len)) if len(bitmaps) > 1 else bitmaps[0]
            carried = BitMap.union(*bitmaps) if len(bitmaps) > 1 else bitmaps[0]
            return self.index.universe - carried if node.mode == "none" else carried
        if isinstance(node, AttributeCondition):
            if node.attribute == "gender":
                return self.index.genders.get(GENDERS[node.value], _EMPTY)
            if node.attribute == "type":
                return self.index.types.get(TYPES[node.value], _EMPTY)
            if node.attribute == "status":
                return self.index.statuses.get(node.value, _EMPTY)
            return self.index.states.get(node.value, _EMPTY)
        if isinstance(node, FieldCondition):
            return self.index.fields.get((node.key, node.value), _EMPTY)
        if isinstance(node, StaffCondition):
            return self.index.staff.get(node.staff.id, _EMPTY)
        if isinstance(node, DepartmentCondition):
            staff_ids = department_staff_ids(self.corp, node.department.id)
            return BitMap.union(_EMPTY, *(self.index.staff.get(s, _EMPTY) for s in staff_ids))
        if isinstance(node, AddedCondition):
            if node.days is not None:
                first: int | None = window_start_day(self.tz, node.days).toordinal()
                last: int | None = None
            else:
                assert node.on is not None
                low, high = day_bounds(node.comparator, node.on)
                first = low.toordinal() if low else None
                last = high.toordinal() if high else None
            days = [
                b
                for d, b in self.index.added.items()
                if (first is None or d >= first) and (last is None or d <= last)
            ]
            return BitMap.union(_EMPTY, *days)
        if isinstance(node, BehaviourCondition):
            return self._behaviour(node)
        if isinstance(node, ActiveCondition):
            first_day = self._today - (node.days - 1)
            return BitMap.union(
                _EMPTY,
                *(
                    levels[0]
                    for kind in ACTIVITY_KINDS
                    for day, levels in self.index.behaviour.get(kind, {}).items()
                    if day >= first_day and levels
                ),
            )
        raise TypeError(f"not an expression node: {node!r}")

    def _behaviour(self, node: BehaviourCondition) -> BitMap:
        days = self.index.behaviour.get(node.kind, {})
        first_day = None if node.days is None else self._today - (node.days - 1)
        chosen = [levels for day, levels in days.items() if first_day is None or day >= first_day]
        if node.min_count == 1:
            return BitMap.union(_EMPTY, *(levels[0] for levels in chosen if levels))
        # At least N in the window: every level of every day is one occurrence of its customers.
        level_arrays = [numbers_of(level) for levels in chosen for level in levels]
        if not level_arrays:
            return BitMap()
        values, counts = np.unique(np.concatenate(level_arrays), return_counts=True)
        return bitmap_of(values[counts >= node.min_count])

    def _tags_on_staff_relations(self, node: TagCondition) -> BitMap:
        rows = RelationTag.objects.for_corp(self.corp).filter(
            tag_id__in=[t.id for t in node.tags], relation__staff_id__in=[s.id for s in node.staff]
        )
        if node.mode == "all":
            wanted = len({t.id for t in node.tags})
            by_customer: dict[int, set[int]] = {}
            for customer_id, tag_id in rows.values_list("customer_id", "tag_id"):
                by_customer.setdefault(customer_id, set()).add(tag_id)
            customer_ids = [c for c, tags in by_customer.items() if len(tags) == wanted]
        else:
            customer_ids = list(rows.values_list("customer_id", flat=True).distinct())
        numbers = self.index.dense.lookup(np.asarray(customer_ids, dtype=np.int64))
        carried = bitmap_of(numbers[numbers >= 0])
        return self.index.universe - carried if node.mode == "none" else carried


def evaluate_numbers(corp: Corp, index: CorpIndex, expression: Expression) -> BitMap:
    """Dense numbers of the customers the expression selects (the caller holds the index's lease). The result
    may be one of the index's own bitmaps: read it, never change it."""
    return Compiler(corp, index).run(expression.root)
