"""Routers of each app, mounted on the API."""

from __future__ import annotations

from ninja import NinjaAPI


def register(api: NinjaAPI) -> None:
    """Mount every app's router. Apps add themselves here as they gain an API."""
    from siyu.broadcasts.api import router as broadcasts_router
    from siyu.channels.api import router as channels_router
    from siyu.corps.api import router as corps_router
    from siyu.customers.api import router as customers_router
    from siyu.customers.behaviour_api import router as behaviour_router
    from siyu.groups.api import router as groups_router
    from siyu.offline.api import router as offline_router
    from siyu.segments.api import router as segments_router
    from siyu.tags.api import router as tags_router
    from siyu.tags.rule_api import router as tagging_rules_router

    api.add_router("", customers_router)
    api.add_router("", tags_router)
    api.add_router("", corps_router)
    api.add_router("", behaviour_router)
    api.add_router("", segments_router)
    api.add_router("", groups_router)
    api.add_router("", offline_router)
    api.add_router("", channels_router)
    api.add_router("", tagging_rules_router)
    api.add_router("", broadcasts_router)
