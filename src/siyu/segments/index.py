"""The in-memory segment index of one corp: roaring bitmaps over a dense customer number.

Customers are numbered 0, 1, 2, … in the order the index first sees them (ascending id at a rebuild, so the
numbers usually follow the ids); the bitmaps hold these numbers, which keeps them compact (roaring containers
fill up) whatever the ids of other corps look like. ``DenseMap`` converts at the boundary.

Families of bitmaps (each customer is in the bitmaps its current state puts it in):

- ``tags[tag_id]``: customers carrying the tag (``CustomerTag``);
- ``staff[staff_id]``, ``states[state]``, ``added[local day]``: over *active* relations;
- ``statuses[status]``: customers with a relation in that status;
- ``genders[g]``, ``types[t]``, ``fields[(key, value)]``: profile attributes;
- ``universe``: every customer.

Behaviour is kept per event kind and local day as levels: ``behaviour[kind][day][k]`` holds the customers who
did ``kind`` at least ``k + 1`` times that day; a window is the union of its days (and, for "at least N", a
count over the levels). Days rather than instants: a window slides at midnight by itself, with no event.

State is refreshed per customer (``replace_state``: drop the customers from every state bitmap, add their
current rows); behaviour only grows (``add_occurrences``), one call per event, which the tail guarantees.
"""

from __future__ import annotations

import array
import datetime as dt
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from pyroaring import BitMap

FORMAT_VERSION = 1
MAGIC = b"SIYUSEG1"
# Numbers assigned since the last sort are looked up in a dict; past this many the sorted arrays are remade
# (an argsort of nearly sorted ids: ~0.1 s at 10M).
RESORT_AFTER = 65536


def bitmap_of(values: np.ndarray | Sequence[int]) -> BitMap:
    """A bitmap of unsigned 32-bit values; from numpy through ``array`` (10× faster than iterating)."""
    as_array = array.array("I")
    as_array.frombytes(np.asarray(values, dtype=np.uint32).tobytes())
    return BitMap(as_array)


def numbers_of(bitmap: BitMap) -> np.ndarray:
    return np.frombuffer(bitmap.to_array(), dtype=np.uint32)


class DenseMap:
    """Customer id ↔ dense number, for one corp's index."""

    def __init__(self, pks: np.ndarray | None = None):
        pks = np.asarray(pks if pks is not None else np.empty(0, dtype=np.int64), dtype=np.int64)
        self._pks = pks.copy()
        self.n = len(pks)
        self._recent: dict[int, int] = {}
        self._sort()
        # When the ids are one run (id = number + offset: customers numbered at a rebuild of a corp whose ids
        # are consecutive, common with one corp per database), converting is a shift of the whole bitmap.
        live = self.pks
        contiguous = self.n > 0 and int(live[-1]) - int(live[0]) == self.n - 1 and self._sorted_dense is None
        self._offset: int | None = int(live[0]) if contiguous else None

    def _sort(self) -> None:
        live = self._pks[: self.n]
        if self.n == 0 or bool(np.all(live[1:] > live[:-1])):
            self._sorted_pks = live.copy()
            self._sorted_dense: np.ndarray | None = None  # the identity: numbers follow the ids
        else:
            order = np.argsort(live, kind="stable")
            self._sorted_pks = live[order]
            self._sorted_dense = order.astype(np.uint32)
        self._recent = {}

    @property
    def pks(self) -> np.ndarray:
        return self._pks[: self.n]

    def lookup(self, pks: np.ndarray) -> np.ndarray:
        """Dense numbers of ``pks``; -1 for ids not numbered yet."""
        pks = np.asarray(pks, dtype=np.int64)
        result = np.full(len(pks), -1, dtype=np.int64)
        if len(self._sorted_pks):
            idx = np.searchsorted(self._sorted_pks, pks)
            idx_clipped = np.minimum(idx, len(self._sorted_pks) - 1)
            found = self._sorted_pks[idx_clipped] == pks
            dense = idx_clipped if self._sorted_dense is None else self._sorted_dense[idx_clipped]
            result[found] = dense[found]
        if self._recent:
            for i in np.flatnonzero(result < 0):
                result[i] = self._recent.get(int(pks[i]), -1)
        return result

    def assign(self, pks: np.ndarray) -> np.ndarray:
        """Dense numbers of ``pks``, numbering those not seen yet."""
        pks = np.asarray(pks, dtype=np.int64)
        dense = self.lookup(pks)
        missing = np.unique(pks[dense < 0])
        if len(missing):
            if self.n + len(missing) > len(self._pks):
                grown = np.empty(max(2 * len(self._pks), self.n + len(missing), 1024), dtype=np.int64)
                grown[: self.n] = self._pks[: self.n]
                self._pks = grown
            if self._offset is not None and not (
                int(missing[0]) == self._offset + self.n
                and int(missing[-1]) - int(missing[0]) == len(missing) - 1
            ):
                self._offset = None
            if self.n == 0 and int(missing[-1]) - int(missing[0]) == len(missing) - 1:
                self._offset = int(missing[0])
            self._pks[self.n : self.n + len(missing)] = missing
            for offset, pk in enumerate(missing.tolist()):
                self._recent[pk] = self.n + offset
            self.n += len(missing)
            if len(self._recent) > RESORT_AFTER:
                self._sort()
            dense = self.lookup(pks)
        return dense

    def to_pks(self, numbers: BitMap) -> BitMap:
        """Customer ids of dense numbers."""
        if not numbers:
            return BitMap()
        if self._offset is not None:
            return numbers.shift(self._offset)
        return bitmap_of(self._pks[numbers_of(numbers)])


@dataclass
class Gap:
    """Ids the tail found missing below its cursor in one read: their transactions may still commit."""

    first_seen: float  # epoch seconds
    # PostgreSQL: the snapshot's xmax after the read; once every older transaction has ended (the xmin
    # passes it) a last look settles the gap. 0 where there is no such number (SQLite).
    xmax: int
    ids: BitMap


@dataclass
class StateRow:
    """What one customer's current rows put them in (read by the maintenance from the tables)."""

    gender: int = 0
    type: int = 1
    fields: list[tuple[str, str]] = field(default_factory=list)
    tags: list[int] = field(default_factory=list)
    active_staff: list[int] = field(default_factory=list)
    active_states: list[str] = field(default_factory=list)
    added_days: list[int] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)


def _add(family: dict[Any, BitMap], key: Any, numbers: np.ndarray | list[int]) -> None:
    target = family.get(key)
    if target is None:
        family[key] = bitmap_of(numbers)
    else:
        target.update(bitmap_of(numbers))


class CorpIndex:
    """The bitmaps of one corp, the dense numbering, and the timeline position they reflect."""

    def __init__(self, *, corp_id: int, time_zone: str):
        self.corp_id = corp_id
        self.time_zone = time_zone
        self.tz = ZoneInfo(time_zone)
        self.dense = DenseMap()
        self.universe = BitMap()
        self.tags: dict[int, BitMap] = {}
        self.staff: dict[int, BitMap] = {}
        self.states: dict[str, BitMap] = {}
        self.statuses: dict[str, BitMap] = {}
        self.genders: dict[int, BitMap] = {}
        self.types: dict[int, BitMap] = {}
        self.fields: dict[tuple[str, str], BitMap] = {}
        self.added: dict[int, BitMap] = {}
        self.behaviour: dict[str, dict[int, list[BitMap]]] = {}
        # The tails: the highest id applied and the ids below it not seen yet (with when first missed).
        self.event_cursor = 0
        self.event_gaps: list[Gap] = []
        self.customer_cursor = 0
        self.customer_gaps: list[Gap] = []
        self.rebuilt_at = 0.0  # when this lineage was built from the tables (epoch seconds)
        self.updates = 0  # bitmap changes applied since the index was built or loaded (for saving it)
        self._day_cache: dict[int, int] = {}

    # --- time ------------------------------------------------------------------------------------------

    def day_of(self, moment: dt.datetime) -> int:
        """The local calendar day (proleptic ordinal) of an instant, in the corp's zone."""
        # Zone offsets are whole quarter hours, so every instant of a quarter hour is on the same local day.
        quarter = int(moment.timestamp()) // 900
        day = self._day_cache.get(quarter)
        if day is None:
            day = moment.astimezone(self.tz).date().toordinal()
            if len(self._day_cache) > 100_000:
                self._day_cache.clear()
            self._day_cache[quarter] = day
        return day

    # --- state -----------------------------------------------------------------------------------------

    def _state_families(self) -> list[dict[Any, BitMap]]:
        return [
            self.tags,
            self.staff,
            self.states,
            self.statuses,
            self.genders,
            self.types,
            self.fields,
            self.added,
        ]

    def replace_state(self, rows: dict[int, StateRow], gone: Iterable[int] = ()) -> int:
        """Make the index say what ``rows`` (customer id → current state) say; ``gone`` customers no longer
        exist. Returns the number of (customer, bitmap) memberships written."""
        gone = list(gone)
        ids = np.fromiter(rows.keys(), dtype=np.int64, count=len(rows))
        numbers = self.dense.assign(ids)
        touched = bitmap_of(numbers)
        if gone:
            known = self.dense.lookup(np.asarray(gone, dtype=np.int64))
            dead = bitmap_of(known[known >= 0])
            touched |= dead
            self.universe.difference_update(dead)
            for kinds in self.behaviour.values():
                for levels in kinds.values():
                    for level in levels:
                        level.difference_update(dead)
        for family in self._state_families():
            for key in [k for k, bitmap in family.items() if not bitmap.isdisjoint(touched)]:
                family[key].difference_update(touched)
                if not family[key]:
                    del family[key]
        self.universe.update(bitmap_of(numbers))
        grouped: dict[tuple[int, Any], list[int]] = {}
        for number, row in zip(numbers.tolist(), rows.values(), strict=True):
            entries: list[tuple[int, Any]] = [(4, row.gender), (5, row.type)]
            entries.extend((0, t) for t in row.tags)
            entries.extend((1, s) for s in row.active_staff)
            entries.extend((2, s) for s in row.active_states)
            entries.extend((3, s) for s in row.statuses)
            entries.extend((6, f) for f in row.fields)
            entries.extend((7, d) for d in row.added_days)
            for entry in entries:
                grouped.setdefault(entry, []).append(number)
        families = self._state_families()
        written = 0
        for (family_no, key), members in grouped.items():
            _add(families[family_no], key, members)
            written += len(members)
        self.updates += written + len(gone)
        return written

    def add_tag_pairs(self, numbers: np.ndarray, tag_ids: np.ndarray) -> None:
        """Bulk: add (dense number, tag) pairs (a rebuild or the benchmark's load)."""
        order = np.argsort(tag_ids, kind="stable")
        sorted_tags = tag_ids[order]
        sorted_numbers = numbers[order]
        bounds = np.flatnonzero(np.diff(sorted_tags)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(sorted_tags)]))
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            if end > start:
                _add(self.tags, int(sorted_tags[start]), sorted_numbers[start:end])
        self.updates += len(numbers)

    def drop_tag(self, tag_id: int) -> None:
        if self.tags.pop(tag_id, None) is not None:
            self.updates += 1

    # --- behaviour -------------------------------------------------------------------------------------

    def add_occurrences(self, kind: str, numbers: Sequence[int], days: Sequence[int]) -> None:
        """One occurrence of ``kind`` per (customer number, local day) pair, repeats counting up."""
        by_day = self.behaviour.setdefault(kind, {})
        for number, day in zip(numbers, days, strict=True):
            levels = by_day.setdefault(day, [])
            for level in levels:
                if number not in level:
                    level.add(number)
                    break
            else:
                levels.append(BitMap([number]))
        self.updates += len(numbers)

    def add_counts(self, kind: str, day: int, numbers: np.ndarray, counts: np.ndarray) -> None:
        """Bulk: customers ``numbers`` did ``kind`` ``counts`` times on ``day`` (into an empty day)."""
        levels = self.behaviour.setdefault(kind, {}).setdefault(day, [])
        for k in range(int(counts.max()) if len(counts) else 0):
            chosen = numbers[counts > k]
            if k < len(levels):
                levels[k].update(bitmap_of(chosen))
            else:
                levels.append(bitmap_of(chosen))
        self.updates += int(counts.sum()) if len(counts) else 0

    # --- saving ----------------------------------------------------------------------------------------

    def serialize(self) -> bytes:
        """The index as bytes: a JSON header (keys, offsets, tails) and the bitmaps' portable format."""
        blobs: list[bytes] = []
        offset = 0

        def put(data: bytes) -> list[int]:
            nonlocal offset
            blobs.append(data)
            start = offset
            offset += len(data)
            return [start, len(data)]

        families: dict[str, list[Any]] = {}
        names = ["tags", "staff", "states", "statuses", "genders", "types", "fields", "added"]
        for name, family in zip(names, self._state_families(), strict=True):
            families[name] = [
                [list(k) if isinstance(k, tuple) else k, put(b.serialize())] for k, b in family.items()
            ]
        behaviour = [
            [kind, day, [put(level.serialize()) for level in levels]]
            for kind, days in self.behaviour.items()
            for day, levels in days.items()
        ]
        header = {
            "version": FORMAT_VERSION,
            "corp_id": self.corp_id,
            "time_zone": self.time_zone,
            "pks": put(self.dense.pks.tobytes()),
            "universe": put(self.universe.serialize()),
            "families": families,
            "behaviour": behaviour,
            "event_cursor": self.event_cursor,
            "rebuilt_at": self.rebuilt_at,
            "event_gaps": [[g.first_seen, g.xmax, put(g.ids.serialize())] for g in self.event_gaps],
            "customer_cursor": self.customer_cursor,
            "customer_gaps": [[g.first_seen, g.xmax, put(g.ids.serialize())] for g in self.customer_gaps],
        }
        head = json.dumps(header, ensure_ascii=False).encode()
        return MAGIC + struct.pack(">I", len(head)) + head + b"".join(blobs)

    @classmethod
    def deserialize(cls, data: bytes | memoryview) -> CorpIndex:
        view = memoryview(data)
        if bytes(view[: len(MAGIC)]) != MAGIC:
            raise ValueError("not a segment index")
        (size,) = struct.unpack(">I", view[len(MAGIC) : len(MAGIC) + 4])
        start = len(MAGIC) + 4
        header = json.loads(bytes(view[start : start + size]))
        if header.get("version") != FORMAT_VERSION:
            raise ValueError("segment index of another format version")
        body = view[start + size :]

        def bitmap(span: list[int]) -> BitMap:
            return BitMap.deserialize(bytes(body[span[0] : span[0] + span[1]]))

        index = cls(corp_id=header["corp_id"], time_zone=header["time_zone"])
        pk_span = header["pks"]
        index.dense = DenseMap(np.frombuffer(body[pk_span[0] : pk_span[0] + pk_span[1]], dtype=np.int64))
        index.universe = bitmap(header["universe"])
        families = dict(
            zip(
                ["tags", "staff", "states", "statuses", "genders", "types", "fields", "added"],
                index._state_families(),
                strict=True,
            )
        )
        for name, entries in header["families"].items():
            family = families[name]
            for key, span in entries:
                family[tuple(key) if isinstance(key, list) else key] = bitmap(span)
        for kind, day, spans in header["behaviour"]:
            index.behaviour.setdefault(kind, {})[day] = [bitmap(s) for s in spans]
        index.event_cursor = header["event_cursor"]
        index.rebuilt_at = header["rebuilt_at"]
        index.event_gaps = [Gap(t, x, bitmap(s)) for t, x, s in header["event_gaps"]]
        index.customer_cursor = header["customer_cursor"]
        index.customer_gaps = [Gap(t, x, bitmap(s)) for t, x, s in header["customer_gaps"]]
        return index

    def memory_bytes(self) -> int:
        """Serialized size of the bitmaps: what the index holds, near enough (roaring's in-memory size is
        within a few percent of its portable format)."""
        total = len(self.universe.serialize())
        for family in self._state_families():
            total += sum(len(b.serialize()) for b in family.values())
        for days in self.behaviour.values():
            total += sum(len(level.serialize()) for levels in days.values() for level in levels)
        return total
