"""``POST /customers/{id}/events``: behaviour reported by other systems (see ``customers.behaviour``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema
from ninja.responses import Status

from siyu.api.schemas import ERRORS, current_actor
from siyu.customers import selectors
from siyu.customers.behaviour import record_behaviour
from siyu.customers.models import Event

router = Router(tags=["customers"])


class BehaviourIn(Schema):
    """Something the customer did elsewhere. ``external_id`` (e.g. the order number) makes a resend
    harmless; purchases and refunds carry ``amount``."""

    kind: Literal["purchased", "refunded", "visited"]
    external_id: str = Field("", max_length=64)
    occurred_at: dt.datetime | None = None
    amount: float | str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class BehaviourOut(Schema):
    id: int | None
    kind: str
    occurred_at: dt.datetime
    recorded: bool = Field(description="false when this external_id was reported before")


@router.post(
    "/customers/{customer_id}/events",
    response={201: BehaviourOut, 200: BehaviourOut, **ERRORS},
    summary="Report a customer's behaviour",
)
def report_behaviour(request: HttpRequest, customer_id: int, payload: BehaviourIn) -> Status[BehaviourOut]:
    """Record a purchase, refund or visit on the customer's timeline (source ``api``); segments count it."""
    actor = current_actor(request)
    customer = selectors.get_customer(actor, customer_id)
    details = dict(payload.details)
    if payload.amount is not None:
        details["amount"] = payload.amount
    event = record_behaviour(
        customer=customer,
        kind=payload.kind,
        external_id=payload.external_id,
        occurred_at=payload.occurred_at,
        payload=details,
        source=Event.Source.API,
    )
    if event is None:
        existing = Event.objects.for_corp(actor.corp).get(
            dedupe_key=f"{payload.kind}:{customer.pk}:{payload.external_id}"
        )
        return Status(
            200,
            BehaviourOut(
                id=existing.pk, kind=existing.kind, occurred_at=existing.occurred_at, recorded=False
            ),
        )
    return Status(
        201, BehaviourOut(id=event.pk, kind=event.kind, occurred_at=event.occurred_at, recorded=True)
    )
