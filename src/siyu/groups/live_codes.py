"""Group live codes (群活码): their pool of groups, which group a scan is served, and what needs attention.

A code has a stable public link. Each scan of it is served the QR image of the first group of its pool, in
order, that can still take members: enabled, not dismissed, below its member limit (the member count the
groups app mirrors from ``change_external_chat``) and with its QR not yet expired (WeCom's group QR codes
work for 7 days after they are made). When every group is full or expired, the landing page says so, the
miss is counted and the code shows an alert in the console until a group is served again.

Changes are for admins and operators (``actor.require_configure``); the public landing page needs no login.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, QuerySet
from django.utils.translation import gettext as _

from siyu.core.clock import now
from siyu.core.errors import Invalid, NotFound
from siyu.corps.access import Actor
from siyu.groups.images import check_group_qr
from siyu.groups.models import GroupChat, GroupCode, GroupCodeEntry, GroupCodeJoin

# WeCom: a customer group's QR code is valid for 7 days after it is made.
QR_VALID_FOR = dt.timedelta(days=7)
# Codes whose groups expire within this long are flagged, on the page and in the list, so the operator
# uploads fresh QR codes in time.
EXPIRY_WARNING = dt.timedelta(hours=24)
# WeCom: a customer group holds at most 200 members until its owner raises it (to 500, or 2000 for
# verified corps); past 200 the group's QR code no longer admits anyone.
DEFAULT_MEMBER_LIMIT = 200
MAX_MEMBER_LIMIT = 2000
NAME_MAX = 64
TITLE_MAX = 64
DESCRIPTION_MAX = 200


class EntryState(StrEnum):
    """Whether a group of a pool can be served now, and if not why."""

    OK = "ok"
    EXPIRING = "expiring"  # can be served, but its QR expires within EXPIRY_WARNING
    FULL = "full"
    EXPIRED = "expired"
    DISMISSED = "dismissed"
    DISABLED = "disabled"


SERVABLE = (EntryState.OK, EntryState.EXPIRING)


def entry_state(entry: GroupCodeEntry, at: dt.datetime | None = None) -> EntryState:
    """The state of one group of a pool at ``at`` (now by default)."""
    at = at or now()
    if not entry.enabled:
        return EntryState.DISABLED
    if entry.group.status != GroupChat.Status.ACTIVE:
        return EntryState.DISMISSED
    if entry.expires_at <= at:
        return EntryState.EXPIRED
    if entry.group.member_count >= entry.member_limit:
        return EntryState.FULL
    if entry.expires_at - at <= EXPIRY_WARNING:
        return EntryState.EXPIRING
    return EntryState.OK


@dataclass(frozen=True)
class EntryView:
    """A group of a pool as pages and the API show it."""

    entry: GroupCodeEntry
    state: EntryState
    serving: bool
    joins: int


@dataclass(frozen=True)
class CodeView:
    """A code with its pool in order, the group it serves now, and what needs the operator's attention."""

    code: GroupCode
    entries: list[EntryView]
    serving: GroupCodeEntry | None
    joins: int

    @property
    def unavailable(self) -> bool:
        """Active, and no group can be served: visitors see "unavailable" (an alert)."""
        return self.code.status == GroupCode.Status.ACTIVE and self.serving is None

    @property
    def expiring(self) -> list[EntryView]:
        return [e for e in self.entries if e.state == EntryState.EXPIRING]

    @property
    def expired(self) -> list[EntryView]:
        return [e for e in self.entries if e.state == EntryState.EXPIRED]


def _entries(code_ids: Sequence[int]) -> QuerySet[GroupCodeEntry]:
    return (
        GroupCodeEntry.objects.filter(code_id__in=list(code_ids))
        .select_related("group")
        .defer("image")
        .order_by("code_id", "position", "id")
    )


def _views(codes: Sequence[GroupCode], at: dt.datetime) -> list[CodeView]:
    """Codes with their pools, in three queries whatever their number."""
    ids = [c.pk for c in codes]
    by_code: dict[int, list[GroupCodeEntry]] = {}
    for entry in _entries(ids):
        by_code.setdefault(entry.code_id, []).append(entry)
    joins = dict(
        GroupCodeJoin.objects.filter(code_id__in=ids)
        .values("entry_id")
        .annotate(n=Count("id"))
        .values_list("entry_id", "n")
    )
    code_joins = dict(
        GroupCodeJoin.objects.filter(code_id__in=ids)
        .values("code_id")
        .annotate(n=Count("id"))
        .values_list("code_id", "n")
    )
    views = []
    for code in codes:
        entries = by_code.get(code.pk, [])
        states = [entry_state(e, at) for e in entries]
        serving = next((e for e, s in zip(entries, states, strict=True) if s in SERVABLE), None)
        views.append(
            CodeView(
                code=code,
                entries=[
                    EntryView(entry=e, state=s, serving=e is serving, joins=joins.get(e.pk, 0))
                    for e, s in zip(entries, states, strict=True)
                ],
                serving=serving if code.status == GroupCode.Status.ACTIVE else None,
                joins=code_joins.get(code.pk, 0),
            )
        )
    return views


# --- reads ------------------------------------------------------------------------------------------------


def list_group_codes(actor: Actor) -> list[CodeView]:
    """The corp's codes, by name, with their pools and state."""
    actor.require_configure()
    return _views(list(GroupCode.objects.for_corp(actor.corp).order_by("name", "id")), now())


def get_group_code(actor: Actor, code_id: int) -> GroupCode:
    """One code of the actor's corp; anything else is a 404."""
    actor.require_configure()
    code = GroupCode.objects.for_corp(actor.corp).filter(pk=code_id).first()
    if code is None:
        raise NotFound(_("group code not found"))
    return code


def code_view(code: GroupCode, at: dt.datetime | None = None) -> CodeView:
    """One code with its pool and state."""
    return _views([code], at or now())[0]


def get_entry(actor: Actor, code: GroupCode, entry_id: int) -> GroupCodeEntry:
    """One group of a code's pool; anything else is a 404."""
    entry = (
        GroupCodeEntry.objects.for_corp(actor.corp)
        .filter(code=code, pk=entry_id)
        .select_related("group")
        .first()
    )
    if entry is None:
        raise NotFound(_("group of the code not found"))
    return entry


def groups_for_pool(actor: Actor) -> QuerySet[GroupChat]:
    """Active groups that are in no code yet: those an operator may add to a pool."""
    actor.require_configure()
    taken = GroupCodeEntry.objects.for_corp(actor.corp).values("group_id")
    return (
        GroupChat.objects.for_corp(actor.corp)
        .filter(status=GroupChat.Status.ACTIVE)
        .exclude(pk__in=taken)
        .order_by("name", "id")
    )


# --- changes ----------------------------------------------------------------------------------------------


def _clean_text(value: str, *, field: str, maximum: int, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise Invalid(_("a name is required"), field=field)
    if len(value) > maximum:
        raise Invalid(
            _("%(field)s is at most %(max)d characters") % {"field": field, "max": maximum}, field=field
        )
    return value


def _clean_limit(limit: int | None, default: int) -> int:
    value = default if limit is None else limit
    if not 2 <= value <= MAX_MEMBER_LIMIT:
        raise Invalid(
            _("the member limit must be between 2 and %(max)d") % {"max": MAX_MEMBER_LIMIT},
            field="member_limit",
        )
    return value


def _clean_expiry(expires_at: dt.datetime | None, at: dt.datetime) -> dt.datetime:
    if expires_at is None:
        return at + QR_VALID_FOR
    if expires_at.tzinfo is None:
        raise Invalid(_("the expiry needs a time zone"), field="expires_at")
    if expires_at <= at:
        raise Invalid(_("the expiry must be in the future"), field="expires_at")
    if expires_at > at + QR_VALID_FOR:
        raise Invalid(
            _("a WeCom group QR code works for 7 days after it is made: the expiry cannot be later"),
            field="expires_at",
        )
    return expires_at


@transaction.atomic
def create_group_code(
    *,
    actor: Actor,
    name: str,
    title: str = "",
    description: str = "",
    default_member_limit: int | None = None,
) -> GroupCode:
    """Create a code (without groups yet); its public link is fixed from now on."""
    actor.require_configure()
    name = _clean_text(name, field="name", maximum=NAME_MAX, required=True)
    if GroupCode.objects.for_corp(actor.corp).filter(name=name).exists():
        raise Invalid(_("a group code named “%(name)s” already exists") % {"name": name}, field="name")
    return GroupCode.objects.create(
        corp=actor.corp,
        name=name,
        title=_clean_text(title, field="title", maximum=TITLE_MAX),
        description=_clean_text(description, field="description", maximum=DESCRIPTION_MAX),
        default_member_limit=_clean_limit(default_member_limit, DEFAULT_MEMBER_LIMIT),
        created_by_id=actor.user_id,
    )


@transaction.atomic
def update_group_code(
    *,
    actor: Actor,
    code: GroupCode,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    status: str | None = None,
    default_member_limit: int | None = None,
) -> GroupCode:
    """Rename, retitle, pause or resume a code; its public link stays."""
    actor.require_configure()
    if code.corp_id != actor.corp.pk:
        raise NotFound(_("group code not found"))
    if name is not None:
        name = _clean_text(name, field="name", maximum=NAME_MAX, required=True)
        if GroupCode.objects.for_corp(actor.corp).filter(name=name).exclude(pk=code.pk).exists():
            raise Invalid(_("a group code named “%(name)s” already exists") % {"name": name}, field="name")
        code.name = name
    if title is not None:
        code.title = _clean_text(title, field="title", maximum=TITLE_MAX)
    if description is not None:
        code.description = _clean_text(description, field="description", maximum=DESCRIPTION_MAX)
    if status is not None:
        if status not in GroupCode.Status.values:
            raise Invalid(_("status must be active or paused"), field="status")
        code.status = status
    if default_member_limit is not None:
        code.default_member_limit = _clean_limit(default_member_limit, DEFAULT_MEMBER_LIMIT)
    code.updated_at = now()
    code.save()
    return code


@transaction.atomic
def delete_group_code(*, actor: Actor, code: GroupCode) -> None:
    """Delete a code and its pool; its link stops working. Joins keep their timeline events."""
    actor.require_configure()
    if code.corp_id != actor.corp.pk:
        raise NotFound(_("group code not found"))
    code.delete()


def _group_for_pool(actor: Actor, group_id: int) -> GroupChat:
    group = GroupChat.objects.for_corp(actor.corp).filter(pk=group_id).first()
    if group is None:
        raise NotFound(_("customer group not found"))
    if group.status != GroupChat.Status.ACTIVE:
        raise Invalid(_("the group has been dismissed"), field="group_id")
    return group


@transaction.atomic
def add_code_entry(
    *,
    actor: Actor,
    code: GroupCode,
    group_id: int,
    image: bytes,
    member_limit: int | None = None,
    expires_at: dt.datetime | None = None,
) -> GroupCodeEntry:
    """Add a group to the end of a code's pool with its QR image (checked; expiry by default in 7 days)."""
    actor.require_configure()
    if code.corp_id != actor.corp.pk:
        raise NotFound(_("group code not found"))
    group = _group_for_pool(actor, group_id)
    at = now()
    limit = _clean_limit(member_limit, code.default_member_limit)
    expiry = _clean_expiry(expires_at, at)
    other = GroupCodeEntry.objects.for_corp(actor.corp).filter(group=group).select_related("code").first()
    if other is not None:
        raise Invalid(
            _("this group is already in the group code “%(code)s”") % {"code": other.code.name},
            field="group_id",
        )
    checked = check_group_qr(image)
    last = GroupCodeEntry.objects.for_corp(actor.corp).filter(code=code).aggregate(m=Max("position"))["m"]
    try:
        with transaction.atomic():
            entry = GroupCodeEntry.objects.create(
                corp=actor.corp,
                code=code,
                group=group,
                position=0 if last is None else last + 1,
                image=checked.png,
                image_sha256=checked.sha256,
                image_width=checked.width,
                image_height=checked.height,
                qr_content=checked.qr_content,
                member_limit=limit,
                expires_at=expiry,
                uploaded_at=at,
                created_at=at,
            )
    except IntegrityError as exc:  # the same group added by a concurrent request
        raise Invalid(_("this group is already in a group code"), field="group_id") from exc
    _touch(code)
    return entry


@transaction.atomic
def update_code_entry(
    *,
    actor: Actor,
    entry: GroupCodeEntry,
    member_limit: int | None = None,
    expires_at: dt.datetime | None = None,
    enabled: bool | None = None,
    image: bytes | None = None,
) -> GroupCodeEntry:
    """Change a group's limit, expiry or switch; a new image replaces the QR (expiry again 7 days unless
    given)."""
    actor.require_configure()
    if entry.corp_id != actor.corp.pk:
        raise NotFound(_("group of the code not found"))
    at = now()
    if member_limit is not None:
        entry.member_limit = _clean_limit(member_limit, entry.member_limit)
    if image is not None:
        checked = check_group_qr(image)
        entry.image = checked.png
        entry.image_sha256 = checked.sha256
        entry.image_width, entry.image_height = checked.width, checked.height
        entry.qr_content = checked.qr_content
        entry.uploaded_at = at
        entry.expires_at = _clean_expiry(expires_at, at)
    elif expires_at is not None:
        entry.expires_at = _clean_expiry(expires_at, at)
    if enabled is not None:
        entry.enabled = enabled
    entry.save()
    _touch(GroupCode.objects.get(pk=entry.code_id))
    return entry


@transaction.atomic
def move_code_entry(*, actor: Actor, entry: GroupCodeEntry, direction: str) -> None:
    """Move a group one place up or down in its pool."""
    actor.require_configure()
    if direction not in ("up", "down"):
        raise Invalid(_("Move up or down."), field="direction")
    entries = list(
        GroupCodeEntry.objects.for_corp(actor.corp)
        .select_for_update()
        .filter(code_id=entry.code_id)
        .order_by("position", "id")
        .only("pk", "position")
    )
    ids = [e.pk for e in entries]
    if entry.pk not in ids:
        raise NotFound(_("group of the code not found"))
    at = ids.index(entry.pk)
    other = at - 1 if direction == "up" else at + 1
    if 0 <= other < len(ids):
        ids[at], ids[other] = ids[other], ids[at]
    for position, pk in enumerate(ids):
        GroupCodeEntry.objects.filter(pk=pk).exclude(position=position).update(position=position)


@transaction.atomic
def remove_code_entry(*, actor: Actor, entry: GroupCodeEntry) -> None:
    """Take a group out of its code's pool (its past joins stay counted for the code)."""
    actor.require_configure()
    if entry.corp_id != actor.corp.pk:
        raise NotFound(_("group of the code not found"))
    code = GroupCode.objects.get(pk=entry.code_id)
    entry.delete()
    _touch(code)


def _touch(code: GroupCode) -> None:
    GroupCode.objects.filter(pk=code.pk).update(updated_at=now())


# --- the public landing page ------------------------------------------------------------------------------


def code_by_token(token: str) -> GroupCode | None:
    """The code behind a public link, whatever its corp (the link is the only key a visitor has)."""
    if not token or len(token) > 24:
        return None
    return GroupCode.objects.filter(token=token).first()


def serve_scan(code: GroupCode, at: dt.datetime | None = None) -> GroupCodeEntry | None:
    """A visitor opened the code's link: the group to serve (None when none can be), counted.

    The first servable group of the pool in order. A scan finding none is a miss: the code records since
    when it has been exhausted, which the console shows as an alert until a group is served again.
    """
    at = at or now()
    if code.status != GroupCode.Status.ACTIVE:
        return None
    served = next(
        (e for e in _entries([code.pk]).filter(enabled=True) if entry_state(e, at) in SERVABLE), None
    )
    with transaction.atomic():
        if served is None:
            GroupCode.objects.filter(pk=code.pk).update(
                scans=F("scans") + 1, missed_scans=F("missed_scans") + 1
            )
            GroupCode.objects.filter(pk=code.pk, exhausted_at=None).update(exhausted_at=at)
        else:
            GroupCode.objects.filter(pk=code.pk).update(scans=F("scans") + 1, exhausted_at=None)
            GroupCodeEntry.objects.filter(pk=served.pk).update(scans=F("scans") + 1)
    return served


# --- joins ------------------------------------------------------------------------------------------------


def code_entry_of(group: GroupChat) -> GroupCodeEntry | None:
    """The pool entry a group is in, if any (a group is in at most one code)."""
    return GroupCodeEntry.objects.for_corp(group.corp_id).filter(group=group).select_related("code").first()
