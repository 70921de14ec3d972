"""Puts the current corp and actor on each console request."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from siyu.core.errors import PermissionDenied
from siyu.corps.access import actor_for_user, corps_for_user

SESSION_CORP_KEY = "siyu_corp_id"


class CorpContextMiddleware:
    """Sets ``request.corp`` and ``request.actor`` (None when anonymous or without a corp)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.corp = None  # type: ignore[attr-defined]
        request.actor = None  # type: ignore[attr-defined]
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            corps = corps_for_user(user.pk, is_superuser=user.is_superuser)
            wanted = request.session.get(SESSION_CORP_KEY)
            corp = (corps.filter(pk=wanted).first() if wanted else None) or corps.first()
            if corp is not None:
                try:
                    request.actor = actor_for_user(user.pk, corp, is_superuser=user.is_superuser)  # type: ignore[attr-defined]
                    request.corp = corp  # type: ignore[attr-defined]
                except PermissionDenied:
                    pass
        return self.get_response(request)
