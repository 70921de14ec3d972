"""The customer detail page: profile, custom fields, staff relations (remark, tags), tags, timeline, notes.

Reads go through ``customers.selectors``; every change goes through a service, which appends its timeline
event.
Each form posts to a small endpoint that answers htmx with the changed fragment (plus out-of-band refreshes of
the derived tags and the timeline) and a plain browser with a redirect back to the page, so the page works
without JavaScript too. Bad input re-renders the form with its errors (400) and writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from siyu.core.errors import DomainError, Invalid, NotFound
from siyu.corps.access import Actor
from siyu.corps.services import audit
from siyu.customers.models import Customer, CustomField, Event, FollowRelation, Note
from siyu.customers.selectors import customer_relations, customer_timeline, get_customer
from siyu.customers.services import add_note, set_custom_fields, update_relation_remark
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.tags.services import mark_relation_tags, resolve_tags

# A screenful of events; "load more" fetches the next page of the same size.
TIMELINE_PAGE_SIZE = 20
# Notes shown on the page, newest first; older ones stay on record (their adding is on the timeline).
NOTES_SHOWN = 50
SOURCE = Event.Source.CONSOLE

# WeCom's follow_user.add_way codes (externalcontact/get); codes not listed here show as "Other (n)".
ADD_WAY_LABELS = {
    0: gettext_lazy("Unknown source"),
    1: gettext_lazy("Scanned a QR code"),
    2: gettext_lazy("Searched a mobile number"),
    3: gettext_lazy("Shared business card"),
    4: gettext_lazy("Group chat"),
    5: gettext_lazy("Phone contacts"),
    6: gettext_lazy("WeChat contacts"),
    8: gettext_lazy("Third-party app"),
    9: gettext_lazy("Searched an email"),
    10: gettext_lazy("WeChat Channels"),
    11: gettext_lazy("Schedule participant"),
    12: gettext_lazy("Meeting participant"),
    13: gettext_lazy("WeChat friend's WeCom"),
    14: gettext_lazy("Smart device customer service"),
    15: gettext_lazy("On-site service"),
    16: gettext_lazy("Customer acquisition link"),
    201: gettext_lazy("Shared by a colleague"),
    202: gettext_lazy("Assigned by an admin"),
}

# What the fields named in remark_changed / profile_changed payloads are called on screen.
FIELD_LABELS = {
    "remark": gettext_lazy("Remark"),
    "description": gettext_lazy("Description"),
    "remark_mobiles": gettext_lazy("Remark mobiles"),
    "remark_corp_name": gettext_lazy("Remark corp name"),
    "name": gettext_lazy("Name"),
    "unionid": gettext_lazy("UnionID"),
    "avatar": gettext_lazy("Avatar"),
    "gender": gettext_lazy("Gender"),
    "type": gettext_lazy("Type"),
    "corp_name": gettext_lazy("Corp name"),
    "corp_full_name": gettext_lazy("Corp full name"),
}

# Remark mobiles are typed one per line; commas (half- or full-width) and semicolons separate them too.
MOBILE_SEPARATORS = re.compile(r"[\r\n,，;；]+")
FORM_ERROR = "form"  # errors that belong to no one field


def add_way_label(code: int) -> str:
    label = ADD_WAY_LABELS.get(code)
    return str(label) if label is not None else _("Other (%(code)s)") % {"code": code}


# ---------- view models ----------


@dataclass
class RelationCard:
    """One staff relation as the page shows it, with its tag editor and remark form."""

    relation: FollowRelation
    tags: list[Tag]
    tag_choices: list[tuple[TagGroup, list[Tag]]]
    editable: bool
    add_way_label: str
    form: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    tag_error: str = ""


@dataclass
class FieldChange:
    label: str
    before: str
    after: str


@dataclass
class TimelineEntry:
    """One event, with what its template needs to say it in words."""

    event: Event
    kind_label: str
    source_label: str
    detail: str = ""
    author: str = ""
    changes: list[FieldChange] = field(default_factory=list)


@dataclass
class CustomFieldRow:
    field: CustomField
    value: str
    error: str = ""


# ---------- access ----------


def _actor(request: HttpRequest) -> Actor:
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None:
        raise PermissionDenied("no role in any corp")
    return actor


def _customer_or_404(actor: Actor, customer_id: int) -> Customer:
    """The customer if the actor may see them; another corp's or an out-of-scope customer does not exist."""
    try:
        return get_customer(actor, customer_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _relation_or_404(actor: Actor, customer: Customer, relation_id: int) -> FollowRelation:
    """A relation of this customer the actor may edit: own (staff), their departments' (manager), all."""
    relation = (
        FollowRelation.objects.for_corp(actor.corp)
        .filter(actor.visible_staff_ids_q(), pk=relation_id, customer=customer)
        .select_related("staff", "customer")
        .first()
    )
    if relation is None:
        raise Http404("relation not found")
    return relation


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


# ---------- building the page ----------


def _tags_by_group(tags: list[Tag]) -> list[tuple[TagGroup, list[Tag]]]:
    groups: dict[int, tuple[TagGroup, list[Tag]]] = {}
    for tag in tags:
        groups.setdefault(tag.group_id, (tag.group, []))[1].append(tag)
    return list(groups.values())


def _relation_cards(
    actor: Actor,
    customer: Customer,
    *,
    only: int | None = None,
    errors: dict[int, dict[str, str]] | None = None,
    forms: dict[int, dict[str, str]] | None = None,
    tag_errors: dict[int, str] | None = None,
) -> list[RelationCard]:
    """The relations the actor may see, each with the corp's tags it could still add (two + one queries)."""
    relations = customer_relations(actor, customer)
    if only is not None:
        relations = [r for r in relations if r.pk == only]
    all_tags = list(Tag.objects.for_corp(actor.corp).select_related("group"))
    cards = []
    for relation in relations:
        tags = [rt.tag for rt in relation.relation_tags.all()]
        present = {t.pk for t in tags}
        form = (forms or {}).get(relation.pk) or {
            "remark": relation.remark,
            "description": relation.description,
            "remark_mobiles": "\n".join(relation.remark_mobiles),
        }
        cards.append(
            RelationCard(
                relation=relation,
                tags=tags,
                tag_choices=_tags_by_group([t for t in all_tags if t.pk not in present]),
                # WeCom cannot tag or annotate a relation that has ended; its record stays read-only.
                editable=relation.status == FollowRelation.Status.ACTIVE,
                add_way_label=add_way_label(relation.add_way),
                form=form,
                errors=(errors or {}).get(relation.pk, {}),
                tag_error=(tag_errors or {}).get(relation.pk, ""),
            )
        )
    return cards


def _customer_tags(actor: Actor, customer: Customer) -> list[tuple[TagGroup, list[Tag]]]:
    """The derived per-customer view: a tag is on the customer when any relation carries it."""
    rows = (
        CustomerTag.objects.for_corp(actor.corp)
        .filter(customer=customer)
        .select_related("tag", "tag__group")
        .order_by("tag__group__order", "tag__group_id", "tag__order", "tag_id")
    )
    return _tags_by_group([row.tag for row in rows])


def _custom_field_rows(
    customer: Customer,
    fields: list[CustomField],
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> list[CustomFieldRow]:
    current = customer.custom_fields
    return [
        CustomFieldRow(
            field=f,
            value=(values[f.key] if values is not None and f.key in values else _display(current.get(f.key))),
            error=(errors or {}).get(f.key, ""),
        )
        for f in fields
    ]


def _display(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _timeline_entries(
    events: list[Event], fields: list[CustomField], hidden_staff: set[int] | None = None
) -> list[TimelineEntry]:
    """Put each event in words; one query for the names of note authors on the page, none otherwise.

    The remarks on a relation the actor may not see stay hidden here too: the event says that the remark
    changed, not what it says (``hidden_staff``: the staff whose relations are out of the actor's scope).
    """
    author_ids = {
        e.payload.get("author_id")
        for e in events
        if e.kind == Event.Kind.NOTE_ADDED and e.payload.get("author_id")
    }
    authors: dict[int, str] = {}
    if author_ids:
        user_model = get_user_model()
        authors = dict(
            user_model.objects.filter(pk__in=author_ids).values_list("pk", user_model.USERNAME_FIELD)
        )
    custom_labels = {f"custom.{f.key}": f.label for f in fields}
    kinds = dict(Event.Kind.choices)
    sources = dict(Event.Source.choices)
    entries = []
    for event in events:
        payload = event.payload if isinstance(event.payload, dict) else {}
        entry = TimelineEntry(
            event=event,
            kind_label=str(kinds.get(event.kind, event.kind)),
            source_label=str(sources.get(event.source, event.source)),
        )
        if event.kind == Event.Kind.ADDED:
            entry.detail = add_way_label(int(payload.get("add_way") or 0))
        elif event.kind == Event.Kind.NOTE_ADDED:
            entry.author = authors.get(payload.get("author_id") or 0, "")
        elif event.kind == Event.Kind.REMARK_CHANGED and event.staff_id not in (hidden_staff or set()):
            before, after = payload.get("before") or {}, payload.get("after") or {}
            entry.changes = [
                FieldChange(str(FIELD_LABELS.get(k, k)), _display(before.get(k)), _display(after.get(k)))
                for k in after
            ]
        elif event.kind == Event.Kind.PROFILE_CHANGED:
            names = [str(custom_labels.get(f) or FIELD_LABELS.get(f, f)) for f in payload.get("fields") or []]
            entry.detail = "、".join(names)
        entries.append(entry)
    return entries


def _timeline_context(
    actor: Actor, customer: Customer, fields: list[CustomField], cursor: str | None
) -> dict[str, Any]:
    page = customer_timeline(actor, customer, cursor=cursor, page_size=TIMELINE_PAGE_SIZE)
    hidden_staff: set[int] = set()
    if not actor.sees_all_customers:
        staff_ids = {e.staff_id for e in page.items if e.kind == Event.Kind.REMARK_CHANGED and e.staff_id}
        if staff_ids:
            visible = FollowRelation.objects.for_corp(actor.corp).filter(
                actor.visible_staff_ids_q(), customer=customer, staff_id__in=staff_ids
            )
            hidden_staff = staff_ids - set(visible.values_list("staff_id", flat=True))
    return {
        "timeline": _timeline_entries(page.items, fields, hidden_staff),
        "timeline_next": page.next_cursor,
        "timeline_from_cursor": bool(cursor),
    }


def _notes(actor: Actor, customer: Customer) -> tuple[list[Note], bool]:
    rows = list(
        Note.objects.for_corp(actor.corp)
        .filter(customer=customer)
        .select_related("author")
        .order_by("-created_at", "-id")[: NOTES_SHOWN + 1]
    )
    return rows[:NOTES_SHOWN], len(rows) > NOTES_SHOWN


def _custom_fields(actor: Actor) -> list[CustomField]:
    return list(CustomField.objects.for_corp(actor.corp).order_by("order", "id"))


def _page_context(
    actor: Actor,
    customer: Customer,
    *,
    timeline_cursor: str | None = None,
    relation_errors: dict[int, dict[str, str]] | None = None,
    relation_forms: dict[int, dict[str, str]] | None = None,
    tag_errors: dict[int, str] | None = None,
    custom_values: dict[str, str] | None = None,
    custom_errors: dict[str, str] | None = None,
    note_error: str = "",
    note_text: str = "",
) -> dict[str, Any]:
    """Everything the page shows, in a fixed number of queries whatever the number of relations or tags."""
    fields = _custom_fields(actor)
    notes, more_notes = _notes(actor, customer)
    return {
        "customer": customer,
        "time_zone": actor.corp.time_zone,
        "relation_cards": _relation_cards(
            actor, customer, errors=relation_errors, forms=relation_forms, tag_errors=tag_errors
        ),
        "customer_tags": _customer_tags(actor, customer),
        "custom_fields": _custom_field_rows(customer, fields, values=custom_values, errors=custom_errors),
        "custom_form_error": (custom_errors or {}).get(FORM_ERROR, ""),
        "notes": notes,
        "more_notes": more_notes,
        "note_error": note_error,
        "note_text": note_text,
        **_timeline_context(actor, customer, fields, timeline_cursor),
    }


def _render_page(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    return render(request, "customers/detail.html", context, status=status)


def _back_to_page(customer: Customer, anchor: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("customers:detail", args=[customer.pk]) + f"#{anchor}")


# ---------- pages ----------


@login_required
@require_GET
def customer_detail(request: HttpRequest, customer_id: int) -> HttpResponse:
    """The detail page; every view of it is audited."""
    actor = _actor(request)
    customer = _customer_or_404(actor, customer_id)
    cursor = request.GET.get("timeline_cursor") or None
    try:
        context = _page_context(actor, customer, timeline_cursor=cursor)
    except Invalid:  # a stale or hand-edited cursor: show the newest events instead
        context = _page_context(actor, customer)
    audit(
        corp=actor.corp,
        action="customer.view",
        object_type="customer",
        object_id=customer.pk,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
    )
    return _render_page(request, context)


@login_required
@require_GET
def customer_timeline_page(request: HttpRequest, customer_id: int) -> HttpResponse:
    """The next page of the timeline ("load more"); a plain browser gets the detail page at that page."""
    actor = _actor(request)
    customer = _customer_or_404(actor, customer_id)
    cursor = request.GET.get("cursor") or None
    if not _is_htmx(request):
        url = reverse("customers:detail", args=[customer.pk])
        return HttpResponseRedirect(
            f"{url}?timeline_cursor={cursor}#timeline" if cursor else f"{url}#timeline"
        )
    try:
        context = _timeline_context(actor, customer, _custom_fields(actor), cursor)
    except Invalid as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    audit(
        corp=actor.corp,
        action="customer.view",
        object_type="customer",
        object_id=customer.pk,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
        detail={"part": "timeline"},
    )
    return render(
        request,
        "customers/detail_timeline_items.html",
        {**context, "customer": customer, "time_zone": actor.corp.time_zone},
    )


def _relation_response(
    request: HttpRequest,
    actor: Actor,
    customer: Customer,
    relation: FollowRelation,
    *,
    message: str = "",
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    tag_error: str = "",
) -> HttpResponse:
    """After a relation edit: htmx gets the card (and fresh tags and timeline); a browser gets the page."""
    failed = bool(errors or tag_error)
    if _is_htmx(request):
        cards = _relation_cards(
            actor,
            customer,
            only=relation.pk,
            errors={relation.pk: errors or {}},
            forms={relation.pk: form} if form else None,
            tag_errors={relation.pk: tag_error},
        )
        if not cards:  # pragma: no cover - the relation was found in scope a moment ago
            raise Http404("relation not found")
        context: dict[str, Any] = {"card": cards[0], "customer": customer, "time_zone": actor.corp.time_zone}
        if not failed:
            context["customer_tags"] = _customer_tags(actor, customer)
            context.update(_timeline_context(actor, customer, _custom_fields(actor), None))
            context["refresh"] = True
            context["message"] = message
        return render(
            request, "customers/detail_relation_response.html", context, status=400 if failed else 200
        )
    if failed:
        context = _page_context(
            actor,
            customer,
            relation_errors={relation.pk: errors or {}},
            relation_forms={relation.pk: form} if form else None,
            tag_errors={relation.pk: tag_error},
        )
        return _render_page(request, context, status=400)
    if message:
        messages.success(request, message)
    return _back_to_page(customer, f"relation-{relation.pk}")


def _require_editable(relation: FollowRelation) -> None:
    if relation.status != FollowRelation.Status.ACTIVE:
        raise Invalid(_("This relation has ended; it can no longer be changed."), field=FORM_ERROR)


@login_required
@require_POST
def relation_remark(request: HttpRequest, customer_id: int, relation_id: int) -> HttpResponse:
    """Change the remark, description and remark mobiles of one relation (``update_relation_remark``)."""
    actor = _actor(request)
    customer = _customer_or_404(actor, customer_id)
    relation = _relation_or_404(actor, customer, relation_id)
    form = {
        "remark": request.POST.get("remark", ""),
        "description": request.POST.get("description", ""),
        "remark_mobiles": request.POST.get("remark_mobiles", ""),
    }
    try:
        _require_editable(relation)
        changed = update_relation_remark(
            relation=relation,
            source=SOURCE,
            remark=form["remark"].strip(),
            description=form["description"].strip(),
            remark_mobiles=MOBILE_SEPARATORS.split(form["remark_mobiles"]),
        )
    except Invalid as exc:
        return _relation_response(
            request, actor, customer, relation, errors={exc.field or FORM_ERROR: exc.message}, form=form
        )
    message = _("Remark saved.") if changed else _("Nothing to change.")
    return _relation_response(request, actor, customer, relation, message=message)


def _tag_ids(raw: list[str]) -> list[int]:
    ids = []
    for value in raw:
        if value == "":
            continue
        if not value.isdigit():
            raise Invalid(_("Choose a tag from the list."), field="tags")
        ids.append(int(value))
    return ids


@login_required
@require_POST
def relation_tags(request: HttpRequest, customer_id: int, relation_id: int) -> HttpResponse:
    """Add or remove tags on one relation (``mark_relation_tags``): ``add`` and ``remove`` carry tag ids."""
    actor = _actor(request)
    customer = _customer_or_404(actor, customer_id)
    relation = _relation_or_404(actor, customer, relation_id)
    try:
        _require_editable(relation)
        add = resolve_tags(actor.corp, _tag_ids(request.POST.getlist("add")))
        remove = resolve_tags(actor.corp, _tag_ids(request.POST.getlist("remove")))
        if not add and not remove:
            raise Invalid(_("Choose a tag to add."), field="tags")
        result = mark_relation_tags(relation=relation, add=add, remove=remove, source=SOURCE)
    except DomainError as exc:  # an unknown or another corp's tag id is NotFound; shown like any bad input
        return _relation_response(request, actor, customer, relation, tag_error=exc.message)
    if result.added and not result.removed:
        message = _("Tag added.")
    elif result.removed and not result.added:
        message = _("Tag removed.")
    elif result.added or result.removed:
        message = _("Tags updated.")
    else:
        message = _("Nothing to change.")
    return _relation_response(request, actor, customer, relation, message=message)


class _TrialRun(Exception):
    """Raised inside a transaction to undo a run whose result is only needed for its errors."""


def _save_custom_fields(customer: Customer, values: dict[str, str]) -> dict[str, str]:
    """Set custom fields through ``set_custom_fields``; on bad input, an error per bad field and no write.

    The service stops at the first bad field. To show all of them at once, the bad field is dropped and the
    rest tried again until the service accepts them; when any field was bad, the transaction is rolled back.
    """
    errors: dict[str, str] = {}
    try:
        with transaction.atomic():
            remaining = dict(values)
            while True:
                try:
                    set_custom_fields(customer=customer, values=remaining, source=SOURCE)
                    break
                except Invalid as exc:
                    if exc.field not in remaining:
                        errors[FORM_ERROR] = exc.message
                        break
                    errors[exc.field] = exc.message
                    del remaining[exc.field]
            if errors:
                raise _TrialRun
    except _TrialRun:
        customer.refresh_from_db(fields=["custom_fields", "updated_at"])
    return errors


@login_required
@require_POST
def customer_custom_fields(request: HttpRequest, customer_id: int) -> HttpResponse:
    """Set the customer's custom profile fields; every field the corp defines is on the form."""
    actor = _actor(request)
    customer = _customer_or_404(actor, customer_id)
    fields = _custom_fields(actor)
    values = {f.key: request.POST.get(f"cf_{f.key}", "") for f in fields if f"cf_{f.key}" in request.POST}
    errors = _save_custom_fields(customer, values)
    if _is_htmx(request):
        context: dict[str, Any] = {
            "customer": customer,
            "time_zone": actor.corp.time_zone,
            "custom_fields": _custom_field_rows(
                customer, fields, values=values if errors else None, errors=errors
            ),
            "custom_form_error": errors.get(FORM_ERROR, ""),
        }
        if not errors:
            context.update(_timeline_context(actor, customer, fields, None))
            context["refresh"] = True
            context["message"] = _("Custom fields saved.")
        return render(
            request, "customers/detail_custom_fields_response.html", context, status=400 if errors else 200
        )
    if errors:
        return _render_page(
            request, _page_context(actor, customer, custom_values=values, custom_errors=errors), status=400
        )
    messages.success(request, _("Custom fields saved."))
    return _back_to_page(customer, "custom-fields")


@login_required
@require_POST
def customer_add_note(request: HttpRequest, customer_id: int) -> HttpResponse:
    """Add a note to the customer (``add_note``); the timeline records that it was added, not its text."""
    actor = _actor(request)
    customer = _customer_or_404(actor, customer_id)
    text = request.POST.get("text", "")
    error = ""
    try:
        add_note(customer=customer, author_id=actor.user_id, text=text, source=SOURCE)
    except Invalid as exc:
        error = exc.message
    if _is_htmx(request):
        notes, more_notes = _notes(actor, customer)
        context: dict[str, Any] = {
            "customer": customer,
            "time_zone": actor.corp.time_zone,
            "notes": notes,
            "more_notes": more_notes,
            "note_error": error,
            "note_text": text if error else "",
        }
        if not error:
            context.update(_timeline_context(actor, customer, _custom_fields(actor), None))
            context["refresh"] = True
        return render(request, "customers/detail_notes_response.html", context, status=400 if error else 200)
    if error:
        return _render_page(
            request, _page_context(actor, customer, note_error=error, note_text=text), status=400
        )
    messages.success(request, _("Note added."))
    return _back_to_page(customer, "notes")
