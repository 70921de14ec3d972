"""The REST API (django-ninja): authentication, error shape, and the routers of each app."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import APIKeyHeader, HttpBearer, SessionAuth

from siyu.core.errors import DomainError, ErrorCode
from siyu.corps.access import Actor, actor_for_api_key, actor_for_user
from siyu.corps.services import authenticate_api_key


class BearerKey(HttpBearer):
    """``Authorization: Bearer <api key>``; the key decides the corp and role."""

    def authenticate(self, request: HttpRequest, token: str) -> Actor | None:
        key = authenticate_api_key(token)
        if key is None:
            return None
        actor = actor_for_api_key(key)
        request.actor = actor  # type: ignore[attr-defined]
        return actor


class ConsoleSession(SessionAuth):
    """The console's own session (its CSRF protection applies to writes)."""

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = super().authenticate(request, key)
        if user is None:
            return None
        actor = getattr(request, "actor", None)
        if actor is None:
            return None
        return actor


api = NinjaAPI(
    title="Siyu API",
    version="1",
    description="REST API of Siyu (私域). Authenticate with `Authorization: Bearer <api key>` "
    "(`siyu apikey create --corp CORPID`). Errors are JSON: `{\"code\": …, \"message\": …}`.",
    auth=[BearerKey(), ConsoleSession()],
    urls_namespace="api",
)


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    body.update(extra)
    return body


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return api.create_response(request, error_body(exc.code, exc.message, exc.field), status=exc.status)


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return api.create_response(
        request, error_body(ErrorCode.INVALID, "request is not valid", errors=exc.errors), status=422
    )


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return api.create_response(
        request, error_body(ErrorCode.UNAUTHENTICATED, "missing or invalid API key"), status=401
    )


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = {404: ErrorCode.NOT_FOUND, 403: ErrorCode.PERMISSION_DENIED}.get(exc.status_code, ErrorCode.INVALID)
    return api.create_response(request, error_body(code, str(exc)), status=exc.status_code)


def _register_routers() -> None:
    from siyu.api import routers

    routers.register(api)


_register_routers()
