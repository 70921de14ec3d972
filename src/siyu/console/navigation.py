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
    needs_admin: bool = False  # user management, API keys, the audit log


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    active: bool


# Capabilities add their pages here as they land.
ENTRIES = [
    NavEntry(_("Customers"), "customers:list", section="customers:"),
    NavEntry(_("Tags"), "tags:list", section="tags:"),
    NavEntry(_("Segments"), "segments:list", section="segments:"),
    NavEntry(_("Offline members"), "offline:member_list", section="offline:"),
    NavEntry(_("Channels"), "channels:list", section="channels:"),
    NavEntry(
        _("Welcome message"), "channels:default_welcome", section="channels:default", needs_configure=True
    ),
    NavEntry(_("Tagging rules"), "tagging:rules", section="tagging:", needs_configure=True),
    NavEntry(_("Mass messages"), "broadcasts:list", section="broadcasts:"),
    NavEntry(_("Staff"), "corps:staff_list", section="corps:staff_"),
    NavEntry(_("Departments"), "corps:department_list", section="corps:department_"),
    NavEntry(_("Group codes"), "groups:code_list", section="groups:code", needs_configure=True),
    NavEntry(_("Group welcome"), "groups:welcome_list", section="groups:welcome", needs_configure=True),
    NavEntry(_("Callback inbox"), "wecom:inbox", section="wecom:inbox", needs_configure=True),
    NavEntry(_("WeCom sync"), "wecom:sync_list", section="wecom:sync", needs_configure=True),
    NavEntry(_("WeCom outbox"), "wecom:outbox", section="wecom:outbox", needs_configure=True),
    NavEntry(
        _("Custom fields"), "corps:settings_fields", section="corps:settings_field", needs_configure=True
    ),
    NavEntry(_("Users"), "corps:settings_users", section="corps:settings_user", needs_admin=True),
    NavEntry(_("API keys"), "corps:settings_api_keys", section="corps:settings_api_key", needs_admin=True),
    NavEntry(_("Audit log"), "corps:settings_audit", section="corps:settings_audit", needs_admin=True),
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
        if (actor.can_configure or not entry.needs_configure)
        and (actor.can_manage_users or not entry.needs_admin)
    ]
