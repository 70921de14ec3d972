"""The console's navigation: only what exists, only what the actor may use."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from siyu.corps.access import Actor


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    active: bool


# (label, url name, needs configure permission). Capabilities add their pages here as they land.
ITEMS = [
    (_("Customers"), "customers:list", False),
    (_("Tags"), "tags:list", False),
    (_("Staff"), "corps:staff_list", False),
    (_("Departments"), "corps:department_list", False),
]


def navigation_for(actor: Actor | None, view_name: str) -> list[NavItem]:
    if actor is None:
        return []
    items = []
    for label, name, needs_configure in ITEMS:
        if needs_configure and not actor.can_configure:
            continue
        active = view_name.split(":")[0] == name.split(":")[0] and (
            name.split(":")[0] != "corps" or view_name.split(":")[-1].split("_")[0] == name.split(":")[1].split("_")[0]
        )
        items.append(NavItem(label=str(label), url=reverse(name), active=active))
    return items
