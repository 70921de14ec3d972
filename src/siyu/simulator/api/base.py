"""The API routing table and the parameter checks every endpoint shares.

WeCom answers a malformed or out-of-range parameter with 40058 ("不合法的参数": bad JSON, a value too long,
too many items, a required value missing), so these helpers do too unless an endpoint documents a sharper
code (41035 missing external userid, 41037 missing contact-way type, …).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from siyu.simulator.errors import ApiError

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

Result = dict[str, Any]


@dataclass
class Request:
    """One /cgi-bin/ call as the handlers see it."""

    method: str
    api: str  # the path after /cgi-bin/, e.g. "externalcontact/get"
    query: dict[str, str]
    body: bytes
    client_ip: str = "127.0.0.1"
    content_type: str = ""
    _json: dict[str, Any] | None = field(default=None, repr=False)

    def json(self) -> dict[str, Any]:
        """The JSON body; 40058 when it is missing or not a JSON object (WeCom's "json不合法")."""
        if self._json is None:
            try:
                data = json.loads(self.body.decode("utf-8")) if self.body.strip() else None
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ApiError(40058, "invalid json") from exc
            if not isinstance(data, dict):
                raise ApiError(40058, "invalid json: a JSON object is required")
            self._json = data
        return self._json


Handler = Callable[["Simulator", Request], Result]


@dataclass(frozen=True)
class Route:
    """An endpoint: its handler and whether it needs an access_token."""

    handler: Handler
    method: str
    auth: bool = True


ROUTES: dict[str, Route] = {}


def route(api: str, *, method: str = "POST", auth: bool = True) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES[api] = Route(handler=handler, method=method, auth=auth)
        return handler

    return register


# --- parameters ------------------------------------------------------------------------------------------


def get_str(
    data: dict[str, Any],
    name: str,
    *,
    required: bool = False,
    max_chars: int | None = None,
    max_bytes: int | None = None,
    missing: int = 40058,
    default: str = "",
) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(missing, f"missing {name}" if missing == 40058 else None)
        return default
    if not isinstance(value, str):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        else:
            raise ApiError(40058, f"field `{name}` must be a string")
    if max_chars is not None and len(value) > max_chars:
        raise ApiError(40058, f"field `{name}` exceed max length {max_chars}")
    if max_bytes is not None and len(value.encode()) > max_bytes:
        raise ApiError(40058, f"field `{name}` exceed max length {max_bytes} bytes")
    return value


def get_int(
    data: dict[str, Any],
    name: str,
    *,
    default: int | None = None,
    required: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
    clamp: bool = False,
) -> int:
    """An integer field (strings of digits accepted, as WeCom's query parameters are strings)."""
    value = data.get(name)
    if value is None or value == "":
        if required or default is None:
            raise ApiError(40058, f"missing {name}")
        return default
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError as exc:
            raise ApiError(40058, f"field `{name}` must be an integer") from exc
    if not isinstance(value, int):
        raise ApiError(40058, f"field `{name}` must be an integer")
    if maximum is not None and value > maximum:
        if not clamp:
            raise ApiError(40058, f"field `{name}` exceed max value {maximum}")
        value = maximum
    if minimum is not None and value < minimum:
        if not clamp:
            raise ApiError(40058, f"field `{name}` below min value {minimum}")
        value = minimum
    return value


def get_bool(data: dict[str, Any], name: str, *, default: bool) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    raise ApiError(40058, f"field `{name}` must be a boolean")


def get_list(
    data: dict[str, Any], name: str, *, item: type = str, max_items: int | None = None, required: bool = False
) -> list[Any]:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(40058, f"missing {name}")
        return []
    if not isinstance(value, list):
        raise ApiError(40058, f"field `{name}` must be an array")
    for entry in value:
        if item is int:
            if not isinstance(entry, int) or isinstance(entry, bool):
                raise ApiError(40058, f"field `{name}` must be an array of integers")
        elif not isinstance(entry, item):
            raise ApiError(40058, f"field `{name}` must be an array of {item.__name__}")
    if max_items is not None and len(value) > max_items:
        raise ApiError(40058, f"field `{name}` exceed max length {max_items}")
    if required and not value:
        raise ApiError(40058, f"missing {name}")
    return value


def get_object(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(40058, f"field `{name}` must be an object")
    return value


def page(items: list[Any], start: int, limit: int) -> tuple[list[Any], int | None]:
    """A slice and the index the next page starts at (``None`` when this is the last page)."""
    chunk = items[start : start + limit]
    following = start + limit
    return chunk, following if following < len(items) else None
