"""Tag pages: tag groups and their tags with customer counts.

Everyone with a role sees the page; only admins and operators (``actor.can_configure``) may create, rename,
reorder or delete, and the write endpoints answer 403 to anyone else. Every change goes through
``tags.services``; a refused name is shown next to its form (400) and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.core.errors import Invalid
from siyu.corps.access import Actor, scope_customers
from siyu.customers.models import Customer, Event
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.tags.services import (
    create_tag,
    create_tag_group,
    delete_tag,
    delete_tag_group,
    rename_tag,
    rename_tag_group,
    reorder_tag_groups,
    reorder_tags,
)

SOURCE = Event.Source.CONSOLE
DIRECTIONS = ("up", "down")


@dataclass
class TagRow:
    tag: Tag
    customers: int
    rename_value: str = ""
    rename_error: str = ""


@dataclass
class GroupBlock:
    group: TagGroup
    tags: list[TagRow] = field(default_factory=list)
    first: bool = False
    last: bool = False
    rename_value: str = ""
    rename_error: str = ""
    new_tag_value: str = ""
    new_tag_error: str = ""


# ---------- access ----------


def _actor(request: HttpRequest) -> Actor:
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None:
        raise PermissionDenied("no role in any corp")
    return actor


def _configurer(request: HttpRequest) -> Actor:
    """The actor, if they may change tags (admin, operator); anyone else gets 403."""
    actor = _actor(request)
    if not actor.can_configure:
        raise PermissionDenied("changing tags needs the admin or operator role")
    return actor


def _group_or_404(actor: Actor, group_id: int) -> TagGroup:
    group = TagGroup.objects.for_corp(actor.corp).filter(pk=group_id).first()
    if group is None:
        raise Http404("tag group not found")
    return group


def _tag_or_404(actor: Actor, tag_id: int) -> Tag:
    tag = Tag.objects.for_corp(actor.corp).filter(pk=tag_id).select_related("group").first()
    if tag is None:
        raise Http404("tag not found")
    return tag


# ---------- reads ----------


def tag_customer_counts(actor: Actor) -> dict[int, int]:
    """Customers carrying each tag, in one grouped query; only the actor's customers unless they see all."""
    rows = CustomerTag.objects.for_corp(actor.corp)
    if not actor.sees_all_customers:
        rows = rows.filter(
            customer_id__in=scope_customers(actor, Customer.objects.for_corp(actor.corp)).values("pk")
        )
    return dict(rows.order_by().values("tag_id").annotate(n=Count("id")).values_list("tag_id", "n"))


def _group_blocks(actor: Actor, errors: dict[str, str], values: dict[str, str]) -> list[GroupBlock]:
    """Groups in display order with their tags and counts: three queries whatever the number of tags.

    ``errors`` and ``values`` are keyed by form (``rename-group-<id>``, ``new-tag-<group id>``,
    ``rename-tag-<id>``) so a refused name comes back next to the form that sent it.
    """
    counts = tag_customer_counts(actor)
    blocks: dict[int, GroupBlock] = {}
    for group in TagGroup.objects.for_corp(actor.corp).order_by("order", "id"):
        rename, new_tag = f"rename-group-{group.pk}", f"new-tag-{group.pk}"
        blocks[group.pk] = GroupBlock(
            group=group,
            rename_value=values.get(rename, group.name),
            rename_error=errors.get(rename, ""),
            new_tag_value=values.get(new_tag, ""),
            new_tag_error=errors.get(new_tag, ""),
        )
    for tag in Tag.objects.for_corp(actor.corp).order_by("order", "id"):
        block = blocks.get(tag.group_id)
        if block is not None:
            rename = f"rename-tag-{tag.pk}"
            block.tags.append(
                TagRow(
                    tag=tag,
                    customers=counts.get(tag.pk, 0),
                    rename_value=values.get(rename, tag.name),
                    rename_error=errors.get(rename, ""),
                )
            )
    ordered = list(blocks.values())
    if ordered:
        ordered[0].first = True
        ordered[-1].last = True
    return ordered


def _page(
    request: HttpRequest,
    actor: Actor,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    errors, values = errors or {}, values or {}
    blocks = _group_blocks(actor, errors, values)
    context: dict[str, Any] = {
        "groups": blocks,
        "tag_count": sum(len(b.tags) for b in blocks),
        "can_configure": actor.can_configure,
        "page_error": errors.get("page", ""),
        "new_group_error": errors.get("new-group", ""),
        "new_group_name": values.get("new-group", ""),
        "new_group_tags": values.get("new-group-tags", ""),
        "new_group_wecom": values.get("new-group-wecom") == "1",
    }
    return render(request, "tags/list.html", context, status=status)


def _back(anchor: str = "") -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("tags:list") + (f"#{anchor}" if anchor else ""))


# ---------- pages ----------


@login_required
@require_GET
def tag_list(request: HttpRequest) -> HttpResponse:
    """Groups and tags with how many customers carry each; editable for admins and operators."""
    return _page(request, _actor(request))


@login_required
@require_POST
def group_create(request: HttpRequest) -> HttpResponse:
    """Create a group, optionally with its first tags (one name per line)."""
    actor = _configurer(request)
    name = request.POST.get("name", "")
    raw_tags = request.POST.get("tags", "")
    tag_names = [line.strip() for line in raw_tags.splitlines() if line.strip()]
    try:
        group = create_tag_group(
            corp=actor.corp,
            name=name,
            tag_names=tag_names,
            source=SOURCE,
            in_wecom=request.POST.get("wecom") == "1",
        )
    except Invalid as exc:
        return _page(
            request,
            actor,
            errors={"new-group": exc.message},
            values={
                "new-group": name,
                "new-group-tags": raw_tags,
                "new-group-wecom": request.POST.get("wecom", ""),
            },
            status=400,
        )
    messages.success(request, _("Tag group “%(name)s” created.") % {"name": group.name})
    return _back(f"group-{group.pk}")


@login_required
@require_POST
def group_rename(request: HttpRequest, group_id: int) -> HttpResponse:
    actor = _configurer(request)
    group = _group_or_404(actor, group_id)
    name = request.POST.get("name", "")
    form_id = f"rename-group-{group.pk}"
    try:
        rename_tag_group(group=group, name=name, source=SOURCE)
    except Invalid as exc:
        return _page(request, actor, errors={form_id: exc.message}, values={form_id: name}, status=400)
    messages.success(request, _("Tag group renamed."))
    return _back(f"group-{group.pk}")


def _moved(ids: list[int], moving: int, direction: str) -> list[int]:
    """``ids`` with ``moving`` one place up or down (unchanged at either end)."""
    if direction not in DIRECTIONS:
        raise Invalid(_("Move up or down."), field="direction")
    position = ids.index(moving)
    other = position - 1 if direction == "up" else position + 1
    if 0 <= other < len(ids):
        ids[position], ids[other] = ids[other], ids[position]
    return ids


@login_required
@require_POST
def group_move(request: HttpRequest, group_id: int) -> HttpResponse:
    """Move a group one place up or down (``reorder_tag_groups`` with the whole new order)."""
    actor = _configurer(request)
    group = _group_or_404(actor, group_id)
    ids = list(TagGroup.objects.for_corp(actor.corp).order_by("order", "id").values_list("pk", flat=True))
    try:
        reorder_tag_groups(
            corp=actor.corp, group_ids=_moved(ids, group.pk, request.POST.get("direction", ""))
        )
    except Invalid as exc:
        return _page(request, actor, errors={"page": exc.message}, status=400)
    return _back(f"group-{group.pk}")


@login_required
@require_http_methods(["GET", "POST"])
def group_delete(request: HttpRequest, group_id: int) -> HttpResponse:
    """GET asks for confirmation (how many tags, how many customers); POST deletes the group and its tags."""
    actor = _configurer(request)
    group = _group_or_404(actor, group_id)
    if request.method == "POST":
        deleted = delete_tag_group(group=group, source=SOURCE)
        text = ngettext(
            "Tag group “%(name)s” deleted with its %(n)d tag.",
            "Tag group “%(name)s” deleted with its %(n)d tags.",
            deleted,
        )
        messages.success(request, text % {"name": group.name, "n": deleted})
        return _back()
    tags = list(Tag.objects.for_corp(actor.corp).filter(group=group).order_by("order", "id"))
    customers = (
        CustomerTag.objects.for_corp(actor.corp)
        .filter(tag__group=group)
        .values("customer_id")
        .distinct()
        .count()
    )
    return render(
        request,
        "tags/confirm_delete.html",
        {"group": group, "tags": tags, "customers": customers, "what": "group"},
    )


@login_required
@require_POST
def tag_create(request: HttpRequest, group_id: int) -> HttpResponse:
    actor = _configurer(request)
    group = _group_or_404(actor, group_id)
    name = request.POST.get("name", "")
    form_id = f"new-tag-{group.pk}"
    try:
        tag = create_tag(group=group, name=name, source=SOURCE)
    except Invalid as exc:
        return _page(request, actor, errors={form_id: exc.message}, values={form_id: name}, status=400)
    messages.success(request, _("Tag “%(name)s” created.") % {"name": tag.name})
    return _back(f"group-{group.pk}")


@login_required
@require_POST
def tag_rename(request: HttpRequest, tag_id: int) -> HttpResponse:
    actor = _configurer(request)
    tag = _tag_or_404(actor, tag_id)
    name = request.POST.get("name", "")
    form_id = f"rename-tag-{tag.pk}"
    try:
        rename_tag(tag=tag, name=name, source=SOURCE)
    except Invalid as exc:
        return _page(request, actor, errors={form_id: exc.message}, values={form_id: name}, status=400)
    messages.success(request, _("Tag renamed."))
    return _back(f"group-{tag.group_id}")


@login_required
@require_POST
def tag_move(request: HttpRequest, tag_id: int) -> HttpResponse:
    """Move a tag one place up or down inside its group (``reorder_tags`` with the whole new order)."""
    actor = _configurer(request)
    tag = _tag_or_404(actor, tag_id)
    ids = list(
        Tag.objects.for_corp(actor.corp)
        .filter(group_id=tag.group_id)
        .order_by("order", "id")
        .values_list("pk", flat=True)
    )
    try:
        reorder_tags(group=tag.group, tag_ids=_moved(ids, tag.pk, request.POST.get("direction", "")))
    except Invalid as exc:
        return _page(request, actor, errors={"page": exc.message}, status=400)
    return _back(f"group-{tag.group_id}")


@login_required
@require_http_methods(["GET", "POST"])
def tag_delete(request: HttpRequest, tag_id: int) -> HttpResponse:
    """GET asks for confirmation (how many customers carry the tag); POST deletes it everywhere."""
    actor = _configurer(request)
    tag = _tag_or_404(actor, tag_id)
    if request.method == "POST":
        carried = delete_tag(tag=tag, source=SOURCE)
        text = ngettext(
            "Tag “%(name)s” deleted; it was removed from %(n)d customer.",
            "Tag “%(name)s” deleted; it was removed from %(n)d customers.",
            carried,
        )
        messages.success(request, text % {"name": tag.name, "n": carried})
        return _back(f"group-{tag.group_id}")
    customers = CustomerTag.objects.for_corp(actor.corp).filter(tag=tag).count()
    return render(request, "tags/confirm_delete.html", {"tag": tag, "customers": customers, "what": "tag"})
