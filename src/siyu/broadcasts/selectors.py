"""Reads of mass messages shared by the pages and the API, within what the actor may see.

Admins and operators see every broadcast of the corp; managers and staff see the broadcasts with a part
sent by staff they may see (``visible_staff_ids_q``), and of those only such parts and their customers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, OuterRef, QuerySet, Sum
from pyroaring import BitMap

from siyu.broadcasts.models import Broadcast, BroadcastPart, BroadcastSkip, Delivery
from siyu.corps.access import Actor
from siyu.customers.models import Customer


def broadcasts_for(actor: Actor) -> QuerySet[Broadcast]:
    """The broadcasts the actor may see, newest first."""
    found = Broadcast.objects.for_corp(actor.corp)
    if actor.sees_all_customers:
        return found
    mine = BroadcastPart.objects.filter(actor.visible_staff_ids_q(), broadcast_id=OuterRef("pk"))
    return found.filter(Exists(mine))


def parts_for(actor: Actor, broadcast: Broadcast) -> QuerySet[BroadcastPart]:
    """The broadcast's parts the actor may see, by sender."""
    parts = BroadcastPart.objects.for_corp(actor.corp).filter(broadcast=broadcast).select_related("staff")
    if not actor.sees_all_customers:
        parts = parts.filter(actor.visible_staff_ids_q())
    return parts.order_by("userid", "seq")


@dataclass
class Progress:
    """How far a broadcast (or the actor's share of it) has come."""

    planned: int = 0  # customers (or groups) in parts
    sent_by_staff: int = 0  # in parts their staff member sent
    delivered: int = 0
    not_friend: int = 0
    over_quota: int = 0
    parts: int = 0
    parts_sent: int = 0
    parts_waiting: int = 0
    parts_queued: int = 0
    parts_unknown: int = 0
    parts_failed: int = 0
    parts_cancelled: int = 0

    @property
    def sent_percent(self) -> int:
        return int(self.sent_by_staff * 100 / self.planned) if self.planned else 0

    @property
    def delivered_percent(self) -> int:
        return int(self.delivered * 100 / self.planned) if self.planned else 0

    @property
    def unsent(self) -> int:
        return max(0, self.planned - self.sent_by_staff)


def _add(
    progress: Progress, status: str, count: int, size: int, delivered: int, not_friend: int, over: int
) -> None:
    progress.parts += count
    progress.planned += size
    progress.delivered += delivered
    progress.not_friend += not_friend
    progress.over_quota += over
    if status == BroadcastPart.Status.SENT:
        progress.parts_sent += count
        progress.sent_by_staff += size
    elif status == BroadcastPart.Status.WAITING:
        progress.parts_waiting += count
    elif status == BroadcastPart.Status.QUEUED:
        progress.parts_queued += count
    elif status == BroadcastPart.Status.UNKNOWN:
        progress.parts_unknown += count
    elif status == BroadcastPart.Status.FAILED:
        progress.parts_failed += count
    elif status == BroadcastPart.Status.CANCELLED:
        progress.parts_cancelled += count


def _sums(parts: QuerySet[BroadcastPart], *group: str) -> QuerySet[BroadcastPart, tuple[Any, ...]]:
    return (
        parts.order_by()
        .values(*group, "status")
        .annotate(n=Count("id"), s=Sum("size"), d=Sum("delivered"), f=Sum("not_friend"), q=Sum("over_quota"))
        .values_list(*group, "status", "n", "s", "d", "f", "q")
    )


def progress_of(parts: QuerySet[BroadcastPart]) -> Progress:
    """Sums over parts, in one grouped query."""
    progress = Progress()
    for status, *numbers in _sums(parts):
        _add(progress, status, *(n or 0 for n in numbers))
    return progress


def progress_by_broadcast(actor: Actor, broadcast_ids: list[int]) -> dict[int, Progress]:
    """The progress of several broadcasts (the actor's share of each), in one grouped query."""
    parts = BroadcastPart.objects.for_corp(actor.corp).filter(broadcast_id__in=broadcast_ids)
    if not actor.sees_all_customers:
        parts = parts.filter(actor.visible_staff_ids_q())
    found = {pk: Progress() for pk in broadcast_ids}
    for broadcast_id, status, *numbers in _sums(parts, "broadcast_id"):
        _add(found[broadcast_id], status, *(n or 0 for n in numbers))
    return found


RESULT_FILTERS = ("sent", "not_friend", "over_quota")


@dataclass
class ResultPage:
    rows: list[Delivery]
    next_cursor: int | None


def results_page(
    actor: Actor,
    broadcast: Broadcast,
    *,
    status: str = "",
    staff_id: int | None = None,
    after: int | None = None,
    size: int = 50,
) -> ResultPage:
    """A page of per-customer outcomes (keyset on id), filtered by outcome and sender, within scope."""
    rows = (
        Delivery.objects.for_corp(actor.corp).filter(broadcast=broadcast).select_related("customer", "part")
    )
    if not actor.sees_all_customers:
        rows = rows.filter(part__in=parts_for(actor, broadcast).values("pk"))
    if status in RESULT_FILTERS:
        rows = rows.filter(status=Delivery.Status[status.upper()].value)
    if staff_id is not None:
        rows = rows.filter(part__staff_id=staff_id)
    if after is not None:
        rows = rows.filter(pk__gt=after)
    found = list(rows.order_by("pk")[: size + 1])
    more = len(found) > size
    found = found[:size]
    return ResultPage(rows=found, next_cursor=found[-1].pk if more and found else None)


def skipped_members(broadcast: Broadcast) -> dict[str, BitMap]:
    """Who a sent broadcast's planning skipped, by reason."""
    return {
        skip.reason: BitMap.deserialize(bytes(skip.members))
        for skip in BroadcastSkip.objects.for_corp(broadcast.corp_id).filter(broadcast=broadcast)
    }


# Customers per query when writing a list of them.
LIST_CHUNK = 2000


def customer_rows(corp_id: int, members: BitMap) -> Iterator[tuple[int, str, str]]:
    """(id, external_userid, name) of the customers in ``members``, in id order, a chunk at a time."""
    for start in range(0, len(members), LIST_CHUNK):
        chunk = list(members[start : start + LIST_CHUNK])
        found = {
            pk: (external_userid, name)
            for pk, external_userid, name in Customer.objects.for_corp(corp_id)
            .filter(pk__in=chunk)
            .values_list("pk", "external_userid", "name")
        }
        for pk in chunk:
            if pk in found:
                yield pk, *found[pk]


def reminders_today(part: BroadcastPart, at: dt.datetime) -> int:
    return sum(1 for t in part.reminders if dt.datetime.fromisoformat(t) > at - dt.timedelta(hours=24))
