"""The contact-cap ledger: how often Siyu reached each customer, and whether it may reach them again.

A small interface for every outbound feature (mass messages now, SOP journeys later):

- ``check(corp=, customer_ids=, at=, channel=)`` → ``CapOutcome``: who may be reached at ``at``, who may not
  and why (``wecom_quota``, ``business_cap``); changes nothing.
- ``reserve(...)``: the same, and counts one contact for each customer granted, atomically with the caller's
  transaction; concurrent reservations are serialised, so two sends never both take a customer's last slot.
- ``release(corp=, customer_ids=, at=, channel=)``: gives one contact back per customer, on the day it was
  reserved for (a customer WeCom did not reach, a cancelled send).
- ``quiet_until(corp=, at=)``: when ``at`` falls in the corp's quiet hours, the moment they end.

Two caps. WeCom's receive quota (wecom-api.md §4.5) counts mass messages per customer per calendar period —
the month (as many as it has days, or 4 on the legacy rule), the week (7) or the day (1) — in WeCom's time
(China). The business cap is the corp's own: at most N messages from Siyu per customer in any D days, over
every channel. Days are WeCom's days (Asia/Shanghai), so the quota periods are exact; the business cap counts
the same days.

Storage: per (channel, day) a few roaring bitmaps of customer ids, layer k holding the customers reached at
least k times that day. A count over a window is a sum of those layers in binary across bitmaps (bit-sliced),
restricted to the customers asked about, compared with the cap: a million customers take tens of
milliseconds, and a reservation writes only the layers of one day (a few compressed bitmaps), never a row
per customer.
"""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _
from pyroaring import BitMap

from siyu.broadcasts.models import CapPolicy, LedgerDay
from siyu.core.clock import now
from siyu.core.errors import Invalid
from siyu.corps.models import Corp

# WeCom counts its quota in its own day: China Standard Time.
WECOM_TIME_ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
WECOM_QUOTA = "wecom_quota"
BUSINESS_CAP = "business_cap"
# The longest business-cap window a corp may set; the ledger keeps days this far back (and a month for the
# WeCom quota, which is shorter).
MAX_BUSINESS_DAYS = 90
MAX_BUSINESS_COUNT = 100
KEEP_DAYS = MAX_BUSINESS_DAYS + 1


@dataclass
class CapOutcome:
    """Who may be reached, and who may not, by reason (each customer under one reason: WeCom's first)."""

    granted: BitMap
    refused: dict[str, BitMap] = field(default_factory=dict)

    def refused_count(self) -> int:
        return sum(len(b) for b in self.refused.values())


# --- policy ------------------------------------------------------------------------------------------------


def policy_for(corp: Corp) -> CapPolicy:
    """The corp's contact rules (defaults until an administrator changes them)."""
    policy = CapPolicy.objects.for_corp(corp).first()
    if policy is None:
        policy, _created = CapPolicy.objects.get_or_create(corp=corp)
    return policy


def update_policy(
    *,
    corp: Corp,
    wecom_quota: str,
    business_cap_count: int,
    business_cap_days: int,
    quiet_start: dt.time | None,
    quiet_end: dt.time | None,
    quiet_action: str,
    sender_policy: str,
    staff_priority: Iterable[int] = (),
) -> CapPolicy:
    """Change a corp's contact rules; refused values raise ``Invalid`` and change nothing."""
    from siyu.corps.models import Staff

    if wecom_quota not in CapPolicy.WeComQuota.values:
        raise Invalid(_("unknown WeCom quota rule"), field="wecom_quota")
    if not 0 <= business_cap_count <= MAX_BUSINESS_COUNT:
        raise Invalid(
            _("the business cap allows 0 (none) to %(max)d messages") % {"max": MAX_BUSINESS_COUNT},
            field="business_cap_count",
        )
    if not 1 <= business_cap_days <= MAX_BUSINESS_DAYS:
        raise Invalid(
            _("the business cap counts over 1 to %(max)d days") % {"max": MAX_BUSINESS_DAYS},
            field="business_cap_days",
        )
    if (quiet_start is None) != (quiet_end is None) or (quiet_start is not None and quiet_start == quiet_end):
        raise Invalid(_("quiet hours need a start and a different end, or neither"), field="quiet_start")
    if quiet_action not in CapPolicy.QuietAction.values:
        raise Invalid(_("unknown quiet hours action"), field="quiet_action")
    if sender_policy not in CapPolicy.SenderPolicy.values:
        raise Invalid(_("unknown sender rule"), field="sender_policy")
    priority = list(dict.fromkeys(int(s) for s in staff_priority))
    if priority and Staff.objects.for_corp(corp).filter(pk__in=priority).count() != len(priority):
        raise Invalid(_("the priority list names staff outside this corp"), field="staff_priority")
    policy = policy_for(corp)
    policy.wecom_quota = wecom_quota
    policy.business_cap_count = business_cap_count
    policy.business_cap_days = business_cap_days
    policy.quiet_start, policy.quiet_end = quiet_start, quiet_end
    policy.quiet_action = quiet_action
    policy.sender_policy = sender_policy
    policy.staff_priority = priority
    policy.updated_at = now()
    policy.save()
    return policy


# --- time --------------------------------------------------------------------------------------------------


def wecom_day(at: dt.datetime) -> dt.date:
    """The calendar day of ``at`` in WeCom's time."""
    return at.astimezone(WECOM_TIME_ZONE).date()


def quota_window(rule: str, day: dt.date) -> tuple[dt.date, int]:
    """The first day of WeCom's quota period containing ``day``, and how many messages it allows."""
    if rule == CapPolicy.WeComQuota.ONE_PER_DAY:
        return day, 1
    if rule == CapPolicy.WeComQuota.SEVEN_PER_WEEK:
        return day - dt.timedelta(days=day.weekday()), 7
    first = day.replace(day=1)
    if rule == CapPolicy.WeComQuota.FOUR_PER_MONTH:
        return first, 4
    return first, calendar.monthrange(day.year, day.month)[1]


def quiet_until(*, corp: Corp, at: dt.datetime, policy: CapPolicy | None = None) -> dt.datetime | None:
    """If ``at`` falls in the corp's quiet hours (its own time zone), when they end; else None."""
    policy = policy or policy_for(corp)
    start, end = policy.quiet_start, policy.quiet_end
    if start is None or end is None:
        return None
    zone = zoneinfo.ZoneInfo(corp.time_zone)
    local = at.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    overnight = start > end
    inside = (clock >= start or clock < end) if overnight else (start <= clock < end)
    if not inside:
        return None
    end_day = local.date()
    if overnight and clock >= start:
        end_day += dt.timedelta(days=1)
    # Wall-clock arithmetic in the zone, so a daylight-saving change lands on the local end time.
    return dt.datetime.combine(end_day, end, tzinfo=zone).astimezone(dt.UTC)


# --- counting ----------------------------------------------------------------------------------------------


def _load(
    corp_id: int, channels: Iterable[str], first: dt.date, last: dt.date
) -> dict[tuple[str, dt.date], list[BitMap]]:
    """The layers of each (channel, day) in [first, last], in layer order."""
    found: dict[tuple[str, dt.date], dict[int, BitMap]] = {}
    rows = LedgerDay.objects.for_corp(corp_id).filter(
        channel__in=list(channels), day__gte=first, day__lte=last
    )
    for channel, day, layer, members in rows.values_list("channel", "day", "layer", "members"):
        found.setdefault((channel, day), {})[layer] = BitMap.deserialize(bytes(members))
    return {key: [layers[k] for k in sorted(layers)] for key, layers in found.items()}


def at_least(customers: BitMap, days: Iterable[list[BitMap]], threshold: int) -> BitMap:
    """The customers of ``customers`` counted at least ``threshold`` times over ``days`` (each a list of unary
    layers: layer k holds those counted at least k+1 times that day).

    Each customer's count is kept in binary across bitmaps (``bits[i]``: bit i of the count), every layer adds
    one by a ripple-carry on the bitmaps, and the count is compared with the threshold from the top bit down:
    a few bitmap operations per layer, whatever the threshold (a month's quota is 28–31).
    """
    if threshold <= 0:
        return BitMap(customers)
    width = threshold.bit_length() + 1
    bits: list[BitMap] = [BitMap() for _ in range(width)]
    saturated = BitMap()  # counts past what ``width`` bits hold: certainly at least the threshold
    for layers in days:
        for layer in layers:
            carry = layer & customers
            for i in range(width):
                if not carry:
                    break
                bits[i], carry = bits[i] ^ carry, bits[i] & carry
            saturated |= carry
    # count >= threshold, decided from the most significant bit: greater where the count has a 1 and the
    # threshold a 0 while all higher bits were equal; equal all the way down is at least, too.
    greater, equal = BitMap(), BitMap(customers)
    for i in range(width - 1, -1, -1):
        if threshold >> i & 1:
            equal &= bits[i]
        else:
            greater |= equal & bits[i]
            equal -= bits[i]
    return greater | equal | (saturated & customers)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _evaluate(corp: Corp, policy: CapPolicy, customers: BitMap, at: dt.datetime, channel: str) -> CapOutcome:
    day = wecom_day(at)
    refused: dict[str, BitMap] = {}
    remaining = BitMap(customers)
    business = policy.business_cap_count > 0
    business_first = day - dt.timedelta(days=policy.business_cap_days - 1)
    quota_first, allowed = quota_window(policy.wecom_quota, day)
    first = min(quota_first, business_first) if business else quota_first
    if channel != LedgerDay.Channel.WECOM_MASS and not business:
        return CapOutcome(granted=remaining, refused={})
    ledger = _load(corp.pk, LedgerDay.Channel.values, first, day)
    if channel == LedgerDay.Channel.WECOM_MASS:
        quota_days = [ledger.get((LedgerDay.Channel.WECOM_MASS, d), []) for d in _days(quota_first, day)]
        over = at_least(remaining, quota_days, allowed)
        if over:
            refused[WECOM_QUOTA] = over
            remaining -= over
    if business and remaining:
        business_days = [
            ledger.get((c, d), []) for c in LedgerDay.Channel.values for d in _days(business_first, day)
        ]
        over = at_least(remaining, business_days, policy.business_cap_count)
        if over:
            refused[BUSINESS_CAP] = over
            remaining -= over
    return CapOutcome(granted=remaining, refused=refused)


def check(
    *, corp: Corp, customer_ids: BitMap, at: dt.datetime, channel: str = LedgerDay.Channel.WECOM_MASS
) -> CapOutcome:
    """Who of ``customer_ids`` may be reached at ``at`` over ``channel``; records nothing."""
    return _evaluate(corp, policy_for(corp), BitMap(customer_ids), at, channel)


def _lock(corp: Corp) -> CapPolicy:
    """Take the corp's ledger lock for this transaction: an UPDATE of its policy row (a row lock on
    PostgreSQL; on SQLite the write lock, taken before reading, so no two writers read the same counts)."""
    policy = policy_for(corp)
    CapPolicy.objects.filter(pk=policy.pk).update(ledger_version=F("ledger_version") + 1)
    policy.refresh_from_db()
    return policy


def _save_day(corp: Corp, channel: str, day: dt.date, before: list[BitMap], after: list[BitMap]) -> None:
    moment = now()
    for layer, members in enumerate(after, start=1):
        if layer <= len(before) and before[layer - 1] == members:
            continue
        members.run_optimize()
        LedgerDay.objects.update_or_create(
            corp=corp,
            channel=channel,
            day=day,
            layer=layer,
            defaults={"members": members.serialize(), "size": len(members), "updated_at": moment},
        )
    if len(after) < len(before):
        LedgerDay.objects.for_corp(corp).filter(channel=channel, day=day, layer__gt=len(after)).delete()


@transaction.atomic
def reserve(
    *, corp: Corp, customer_ids: BitMap, at: dt.datetime, channel: str = LedgerDay.Channel.WECOM_MASS
) -> CapOutcome:
    """Count one contact at ``at`` for each customer the caps allow; returns who was granted, who refused."""
    policy = _lock(corp)
    outcome = _evaluate(corp, policy, BitMap(customer_ids), at, channel)
    granted = outcome.granted
    if granted:
        day = wecom_day(at)
        before = _load(corp.pk, [channel], day, day).get((channel, day), [])
        after = [BitMap(layer) for layer in before]
        # Each granted customer moves up one layer: layer k+1 gains those already in layer k.
        for k in range(len(after) - 1, -1, -1):
            promoted = after[k] & granted
            if promoted:
                if k + 1 == len(after):
                    after.append(promoted)
                else:
                    after[k + 1] |= promoted
        if after:
            after[0] |= granted
        else:
            after.append(BitMap(granted))
        _save_day(corp, channel, day, before, after)
        _prune(corp, day)
    return outcome


@transaction.atomic
def release(
    *, corp: Corp, customer_ids: BitMap, at: dt.datetime, channel: str = LedgerDay.Channel.WECOM_MASS
) -> int:
    """Give back one contact per customer on the day of ``at``; returns how many were counted there."""
    _lock(corp)
    day = wecom_day(at)
    before = _load(corp.pk, [channel], day, day).get((channel, day), [])
    if not before:
        return 0
    after = [BitMap(layer) for layer in before]
    left = BitMap(customer_ids)
    released = 0
    for k in range(len(after) - 1, -1, -1):  # from the top: each customer loses their highest layer
        hit = after[k] & left
        if hit:
            after[k] -= hit
            left -= hit
            released += len(hit)
    while after and not after[-1]:
        after.pop()
    _save_day(corp, channel, day, before, after)
    return released


def contacts_on(*, corp: Corp, day: dt.date, channel: str = LedgerDay.Channel.WECOM_MASS) -> dict[int, int]:
    """How many times each customer was counted on ``day`` (small days only: for tests and pages)."""
    counts: dict[int, int] = {}
    for layer in _load(corp.pk, [channel], day, day).get((channel, day), []):
        for customer_id in layer:
            counts[customer_id] = counts.get(customer_id, 0) + 1
    return counts


def _prune(corp: Corp, day: dt.date) -> None:
    """Forget days no window reaching ``day`` looks at."""
    oldest = day - dt.timedelta(days=KEEP_DAYS)
    LedgerDay.objects.for_corp(corp).filter(day__lt=oldest).delete()
