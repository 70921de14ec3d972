"""Behaviour reported by other systems (a shop, a website): recorded on the customer's timeline.

Commerce is a later capability; until then a shop or a mini-program reports what customers did through
``POST /api/v1/customers/{id}/events`` with one of ``EXTERNAL_KINDS``. Each report is an ``Event`` (source
``api``) that segments count (``NOT purchased(30d)``). A report carries the sender's own id for it (an order
number): the same id twice is recorded once.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from siyu.core.clock import now
from siyu.core.errors import Invalid
from siyu.customers.events import record_event
from siyu.customers.models import Customer, Event

EXTERNAL_KINDS = (Event.Kind.PURCHASED.value, Event.Kind.REFUNDED.value, Event.Kind.VISITED.value)
# Kinds that carry an amount (in the currency's units, e.g. 99.50 yuan).
AMOUNT_KINDS = (Event.Kind.PURCHASED.value, Event.Kind.REFUNDED.value)
MAX_AMOUNT = Decimal("1000000000")  # a billion: beyond any single order, so a larger one is a mistake
MAX_PAYLOAD_BYTES = 2048  # extra details stay small: the timeline is not a document store
# A report may be late (a shop's batch upload) but not from the future beyond clock skew.
MAX_AGE = dt.timedelta(days=3650)
MAX_SKEW = dt.timedelta(minutes=5)


def _amount(raw: Any) -> str:
    if isinstance(raw, bool) or raw is None:
        raise Invalid(_("amount is required for this kind (a number ≥ 0)"), field="amount")
    try:
        amount = Decimal(str(raw))
    except InvalidOperation as exc:
        raise Invalid(_("amount must be a number ≥ 0"), field="amount") from exc
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        raise Invalid(_("amount must be a number from 0 to 1,000,000,000"), field="amount")
    return str(amount.quantize(Decimal("0.01")))


@transaction.atomic
def record_behaviour(
    *,
    customer: Customer,
    kind: str,
    external_id: str = "",
    occurred_at: dt.datetime | None = None,
    payload: dict[str, Any] | None = None,
    source: str = Event.Source.API,
) -> Event | None:
    """Record what a customer did elsewhere; None when ``external_id`` was reported already."""
    if kind not in EXTERNAL_KINDS:
        raise Invalid(_("kind must be one of %(kinds)s") % {"kinds": ", ".join(EXTERNAL_KINDS)}, field="kind")
    if len(external_id) > 64:
        raise Invalid(_("external_id has at most 64 characters"), field="external_id")
    moment = now()
    when = occurred_at or moment
    if when.tzinfo is None:
        raise Invalid(_("occurred_at needs a time zone (e.g. +08:00)"), field="occurred_at")
    if when > moment + MAX_SKEW or when < moment - MAX_AGE:
        raise Invalid(_("occurred_at must be in the past ten years, not in the future"), field="occurred_at")
    details = dict(payload or {})
    if kind in AMOUNT_KINDS:
        details["amount"] = _amount(details.get("amount"))
    elif "amount" in details:
        raise Invalid(_("only purchases and refunds carry an amount"), field="amount")
    if len(json.dumps(details, ensure_ascii=False).encode()) > MAX_PAYLOAD_BYTES:
        raise Invalid(
            _("details may hold at most %(max)d bytes") % {"max": MAX_PAYLOAD_BYTES}, field="payload"
        )
    if external_id:
        details["external_id"] = external_id
    key = f"{kind}:{customer.pk}:{external_id}" if external_id else None
    return record_event(
        corp_id=customer.corp_id,
        customer_id=customer.pk,
        kind=kind,
        source=source,
        occurred_at=when,
        payload=details,
        dedupe_key=key,
    )
