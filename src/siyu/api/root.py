"""The REST API (django-ninja): authentication, error shape, and the routers of each app."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from siyu.core.errors import DomainError, ErrorCode, Invalid, PermissionDenied
from siyu.corps.access import Actor, actor_for_api_key
from siyu.corps.services import authenticate_api_key


class BearerKey(HttpBearer):
    """``Authorization: Bearer <api key>``; the key decides the corp, the role and the staff it acts as."""

    def authenticate(self, request: HttpRequest, token: str) -> Actor | None:
        key = authenticate_api_key(token.strip())
        if key is None:
            # A client that presents a key means to use it: a wrong or revoked key is a 401, not a silent
            # fall-back to whatever session cookie the same client may also carry.
            raise AuthenticationError()
        actor = actor_for_api_key(key)
        request.actor = actor  # type: ignore[attr-defined]
        return actor


class ConsoleSession(APIKeyCookie):
    """The console's login session. Writes must carry the CSRF token, as they do on the console's pages."""

    param_name = (
        settings.SESSION_COOKIE_NAME
    )  # for the OpenAPI document: Django's middleware reads the session

    def _get_key(self, request: HttpRequest) -> str | None:
        # No CSRF check for anonymous requests: they are refused anyway, and a client with a wrong API key
        # must hear "unauthenticated", not "CSRF failed".
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if self.csrf and check_csrf(request) is not None:
            raise PermissionDenied(_("CSRF check failed: send the csrftoken cookie's value in X-CSRFToken"))
        return "session"

    def authenticate(self, request: HttpRequest, key: str | None) -> Actor | None:
        if key is None:
            return None
        # CorpContextMiddleware resolved the corp the user is working in and their role there.
        actor = getattr(request, "actor", None)
        if not isinstance(actor, Actor):
            raise PermissionDenied(_("you have no role in any corp"))
        return actor


NUL = "\x00"


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class StrictParser(Parser):
    """Standard JSON only, and no NUL characters anywhere: PostgreSQL cannot store them in text columns."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        # A failure here becomes ninja's 400 "Cannot parse request body" (code ``invalid``).
        data = json.loads(request.body, parse_constant=_refuse_constant)  # NaN and Infinity are not JSON
        if _contains_nul(data):
            raise ValueError("the body contains a NUL character")
        return data

    def parse_querydict(
        self, data: MultiValueDict[str, Any], list_fields: list[str], request: HttpRequest
    ) -> dict[str, Any]:
        for key, values in data.lists():
            if NUL in key or any(isinstance(v, str) and NUL in v for v in values):
                raise Invalid(_("parameters may not contain NUL characters"), field=key.replace(NUL, ""))
        return super().parse_querydict(data, list_fields, request)


api = NinjaAPI(
    title="Siyu API",
    version="1",
    description=(
        "REST API of Siyu (私域). Authenticate with `Authorization: Bearer <api key>` "
        "(`siyu apikey create --corp CORPID`); the console's own session works too (writes need its CSRF "
        "token). A key's role limits what it sees as it limits a console user. Errors are JSON: "
        '`{"code": …, "message": …, "field": …}` with a stable `code`. Lists are keyset-paginated: pass '
        "`next_cursor` back as `cursor`."
    ),
    auth=[BearerKey(), ConsoleSession()],
    parser=StrictParser(),
    urls_namespace="api",
)


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": str(code), "message": message, "field": field}
    body.update(extra)
    return body


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return api.create_response(request, error_body(exc.code, exc.message, exc.field), status=exc.status)


def _field_of(errors: list[dict[str, Any]]) -> str | None:
    """The first offending field, without the part of the request it came from ("body", "query"…)."""
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if len(loc) > 1 and loc[0] in {"body", "query", "path", "header", "cookie", "form"}:
            loc = loc[1:]
        if len(loc) > 1 and loc[0] in {"payload", "filters"}:  # the endpoint's own parameter name
            loc = loc[1:]
        if loc:
            return ".".join(loc)
    return None


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [{k: v for k, v in e.items() if k in {"type", "loc", "msg"}} for e in exc.errors]
    return api.create_response(
        request,
        error_body(
            ErrorCode.INVALID, _("the request does not match its schema"), _field_of(errors), errors=errors
        ),
        status=422,
    )


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return api.create_response(
        request,
        error_body(
            ErrorCode.UNAUTHENTICATED, _("send Authorization: Bearer <api key>, or log in to the console")
        ),
        status=401,
    )


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = {
        401: ErrorCode.UNAUTHENTICATED,
        403: ErrorCode.PERMISSION_DENIED,
        404: ErrorCode.NOT_FOUND,
    }.get(exc.status_code, ErrorCode.INVALID)
    return api.create_response(request, error_body(code, str(exc)), status=exc.status_code)


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, error_body(ErrorCode.NOT_FOUND, _("not found")), status=404)


def _register_routers() -> None:
    from siyu.api import routers

    routers.register(api)


_register_routers()
