"""Schemas and helpers shared by every app's API: the error body, small references, the acting actor."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Schema

from siyu.core.errors import ErrorCode, Invalid
from siyu.corps.access import Actor
from siyu.customers.models import Event

# Ids are 64-bit (BigAutoField). Bounding them keeps an absurd id a schema error rather than an overflow
# in the database driver (SQLite refuses integers beyond 64 bits in a query).
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]  # in a query string, where every value arrives as text
BodyId = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]  # in JSON: true or 2.0 is not an id


class ErrorOut(Schema):
    """Every error: a stable ``code`` (``ErrorCode``), a message for people, the offending field if any."""

    code: str
    message: str
    field: str | None = None


class ValidationErrorOut(ErrorOut):
    """A request that does not match its schema (422): the validation errors, as pydantic reports them."""

    errors: list[dict[str, Any]] = []


# Documented on every endpoint; the handlers in ``root`` produce these bodies.
ERRORS: dict[int, type[Schema]] = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    422: ValidationErrorOut,
}


class Deleted(Schema):
    """What a delete removed."""

    deleted: bool = True
    customers: int = 0
    tags: int = 0


class StaffRef(Schema):
    id: int
    userid: str
    name: str


class TagRef(Schema):
    id: int
    name: str
    group_id: int


def current_actor(request: HttpRequest) -> Actor:
    """The actor the authentication resolved (an API key or a console login)."""
    actor = request.auth  # type: ignore[attr-defined]
    if not isinstance(actor, Actor):  # pragma: no cover - every endpoint requires authentication
        raise TypeError("endpoint reached without an authenticated actor")
    return actor


def event_source(actor: Actor) -> str:
    """Timeline source of a change: ``api`` for API keys, ``console`` for the console's own calls."""
    return Event.Source.API if actor.api_key_id is not None else Event.Source.CONSOLE


def encode_id_cursor(pk: int) -> str:
    """An opaque cursor for lists ordered by id, newest first."""
    return base64.urlsafe_b64encode(json.dumps(["id", pk]).encode()).decode().rstrip("=")


def decode_id_cursor(cursor: str) -> int:
    try:
        kind, pk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if kind != "id" or not isinstance(pk, int) or isinstance(pk, bool) or not 0 < pk <= MAX_ID:
            raise ValueError("not an id cursor")
    except (ValueError, TypeError, binascii.Error) as exc:
        raise Invalid(
            _("the page cursor is not valid for this list"), field="cursor", code=ErrorCode.BAD_CURSOR
        ) from exc
    return pk
