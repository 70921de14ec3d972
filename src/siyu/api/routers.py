"""Routers of each app, mounted on the API."""

from __future__ import annotations

from ninja import NinjaAPI


def register(api: NinjaAPI) -> None:
    """Mount every app's router. Apps add themselves here as they gain an API."""
