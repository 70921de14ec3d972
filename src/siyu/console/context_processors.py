"""What every console page needs: the corp, the actor, the corps one may switch to, the navigation."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from siyu.console.navigation import navigation_for
from siyu.corps.models import Role

# The switcher lists at most this many corps; a superuser with more switches by the corp id in the URL of
# the admin pages (later). Bounded so every page costs one small query whatever the number of tenants.
MAX_SWITCHABLE_CORPS = 50


def console(request: HttpRequest) -> dict[str, Any]:
    actor = getattr(request, "actor", None)
    corp = getattr(request, "corp", None)
    user = getattr(request, "user", None)
    corps: list[Any] = []
    if user is not None and user.is_authenticated:
        from siyu.corps.access import corps_for_user

        corps = list(corps_for_user(user.pk, is_superuser=user.is_superuser)[:MAX_SWITCHABLE_CORPS])
    return {
        "current_corp": corp,
        "actor": actor,
        "role_label": Role(actor.role).label if actor is not None else "",
        # Times are stored in UTC and shown in the corp's zone (base.html wraps every page in it).
        "corp_time_zone": corp.time_zone if corp is not None else settings.TIME_ZONE,
        "switchable_corps": corps,
        "navigation": navigation_for(
            actor, request.resolver_match.view_name if request.resolver_match else ""
        ),
    }
