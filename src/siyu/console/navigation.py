"""The console's navigation: only what exists, only what the actor may use."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from siyu.corps.access import Actor


@dataclass(frozen=True)
class NavEntry:
    """One link of the sidebar; ``section`` is the view-name prefix of every page it stands for."""

    label: str | Promise
    url_name: str
    section: str
    needs_configure: bool = False


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    active: bool


# Capabilities add their pages here as they land.
ENTRIES = [
    NavEntry(_("Customers"), "customers:list", section="customers:"),
    NavEntry(_("Tags"), "tags:list", section="tags:"),
    NavEntry(_("Staff"), "corps:staff_list", section="corps:staff_"),
    NavEntry(_("Departments"), "corps:department_list", section="corps:department_"),
    NavEntry(_("Callback inbox"), "wecom:inbox", section="wecom:inbox", needs_configure=True),
    NavEntry(_("WeCom sync"), "wecom:sync_list", section="wecom:sync", needs_configure=True),
]


def navigation_for(actor: Actor | None, view_name: str) -> list[NavItem]:
    """The links ``actor`` may follow, the one of the current page marked active."""
    if actor is None:
        return []
    return [
        NavItem(
            label=str(entry.label), url=reverse(entry.url_name), active=view_name.startswith(entry.section)
        )
        for entry in ENTRIES
        if actor.can_configure or not entry.needs_configure
    ]
