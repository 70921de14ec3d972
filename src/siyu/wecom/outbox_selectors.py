"""Reads of the outbox for the console: counts by status, a filtered list, one write."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Min, QuerySet
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from siyu.core.clock import now
from siyu.core.errors import NotFound
from siyu.corps.models import Corp
from siyu.wecom.client import WRITE_APIS
from siyu.wecom.models import Outbox

# Age filters of the list: (value, label, created within (+) or before (-) this long ago).
AGES: list[tuple[str, Any, dt.timedelta]] = [
    ("lt1h", _("Last hour"), dt.timedelta(hours=1)),
    ("lt1d", _("Last day"), dt.timedelta(days=1)),
    ("lt7d", _("Last week"), dt.timedelta(days=7)),
    ("gt1h", _("Older than an hour"), -dt.timedelta(hours=1)),
    ("gt1d", _("Older than a day"), -dt.timedelta(days=1)),
]
# Keys whose values are never shown, should a payload or an answer ever carry one.
SECRET_KEYS = frozenset({"access_token", "secret", "corpsecret", "token", "encoding_aes_key", "aes_key"})


@dataclass(frozen=True)
class OutboxStats:
    """How the outbox is doing: writes waiting to be sent, the oldest one's age, writes by status."""

    waiting: int
    lag: dt.timedelta | None
    by_status: dict[str, int]

    @property
    def status_rows(self) -> list[tuple[str, str, int]]:
        """(status, label, count) in the order of the statuses."""
        return [(value, str(label), self.by_status.get(value, 0)) for value, label in Outbox.Status.choices]


def outbox_stats(corp: Corp) -> OutboxStats:
    """Waiting writes, the oldest one's age and counts by status of one corp's outbox (two queries)."""
    rows = Outbox.objects.for_corp(corp)
    by_status = {value: 0 for value in Outbox.Status.values}
    for status, count in rows.values_list("status").annotate(n=Count("pk")).order_by():
        by_status[status] = count
    open_ = [Outbox.Status.PENDING, Outbox.Status.SENDING]
    oldest = rows.filter(status__in=open_).aggregate(at=Min("created_at"))["at"]
    return OutboxStats(
        waiting=sum(by_status[s] for s in open_),
        lag=(now() - oldest) if oldest else None,
        by_status=by_status,
    )


def outbox_apis() -> list[str]:
    """The WeCom write APIs, for the list's filter."""
    return sorted(WRITE_APIS)


def list_outbox(
    corp: Corp,
    *,
    api: str = "",
    status: str = "",
    age: str = "",
    before_id: int | None = None,
    limit: int = 50,
) -> list[Outbox]:
    """A page of the corp's writes to WeCom, newest first; ``before_id`` continues after the previous page."""
    rows: QuerySet[Outbox] = Outbox.objects.for_corp(corp).defer("payload")
    if api:
        rows = rows.filter(api=api)
    if status:
        rows = rows.filter(status=status)
    for value, _label, span in AGES:
        if age == value:
            at = now() - abs(span)
            rows = (
                rows.filter(created_at__gte=at) if span > dt.timedelta(0) else rows.filter(created_at__lt=at)
            )
    if before_id is not None:
        rows = rows.filter(pk__lt=before_id)
    return list(rows.order_by("-pk")[:limit])


def get_outbox_write(corp: Corp, row_id: int) -> Outbox:
    """One write of the corp's outbox (404 for another corp's)."""
    row = Outbox.objects.for_corp(corp).filter(pk=row_id).first()
    if row is None:
        raise NotFound(gettext("no such WeCom write"))
    return row


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if str(k).lower() in SECRET_KEYS else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def shown_json(value: Any, *, indent: int | None = None) -> str:
    """A payload or an answer as text for a page, secrets (should there be any) masked."""
    if not value:
        return ""
    return json.dumps(_redacted(value), ensure_ascii=False, indent=indent, sort_keys=True)
