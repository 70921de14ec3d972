"""Appending to the timeline. Every domain state change calls ``record_event`` in its own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from siyu.core.bulk import insert_one
from siyu.core.clock import now
from siyu.customers.models import Event


def record_event(
    *,
    corp_id: int,
    kind: str,
    source: str,
    customer_id: int | None = None,
    staff_id: int | None = None,
    occurred_at: datetime | None = None,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> Event | None:
    """Append an event; returns None when an event with the same dedupe key is already on record."""
    key = dedupe_key or f"{kind}:{uuid.uuid4().hex}"
    event = Event(
        corp_id=corp_id,
        customer_id=customer_id,
        staff_id=staff_id,
        kind=kind,
        source=source,
        occurred_at=occurred_at or now(),
        payload=payload or {},
        dedupe_key=key[:200],
    )
    # One statement that skips a duplicate key (no savepoint, no second read): the only unique constraint
    # besides the id is the dedupe key, so a row that did not go in is a duplicate.
    return event if insert_one(event) else None


# The columns of ``record_events``' rows, in order.
BULK_EVENT_COLUMNS = (
    "corp", "customer", "staff", "kind", "occurred_at", "source", "payload", "dedupe_key", "recorded_at",
)  # fmt: skip


def record_events(rows: Iterable[Sequence[Any]]) -> int:
    """Append many events in multi-row INSERTs (``BULK_EVENT_COLUMNS`` order); rows whose dedupe key is
    already on record are skipped. Returns how many were new. For effects on thousands of customers at once
    (a mass message delivered); call it inside the transaction that makes the change."""
    from siyu.core.bulk import insert_rows

    prepared = [(*row[:7], str(row[7])[:200], *row[8:]) for row in rows]
    return len(insert_rows(Event, BULK_EVENT_COLUMNS, prepared, returning=("id",)))
