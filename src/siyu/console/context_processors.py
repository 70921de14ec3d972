"""What every console page needs: the corp, the actor, the corps one may switch to, the navigation."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from siyu.console.navigation import navigation_for


def console(request: HttpRequest) -> dict[str, Any]:
    actor = getattr(request, "actor", None)
    user = getattr(request, "user", None)
    corps: list[Any] = []
    if user is not None and user.is_authenticated:
        from siyu.corps.access import corps_for_user

        corps = list(corps_for_user(user.pk, is_superuser=user.is_superuser)[:50])
    return {
        "current_corp": getattr(request, "corp", None),
        "actor": actor,
        "switchable_corps": corps,
        "navigation": navigation_for(actor, request.resolver_match.view_name if request.resolver_match else ""),
    }
