"""Segment pages: the list with counts and trend, the builder with a live count, the members page.

Thin: check access, call a selector or service, render. Operators and admins build; every role reads the
list and the members within its own scope (the customer list's rules).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.core.errors import DomainError, NotFound
from siyu.corps.access import Actor
from siyu.customers.models import FollowRelation
from siyu.segments import selectors, services
from siyu.segments.models import Segment
from siyu.tags.models import Tag

# The builder shows this many members as a sample next to the live count.
SAMPLE_SIZE = 8
# The list's chart draws the trend of this many segments (the largest): more lines are unreadable.
CHART_SERIES = 8


class SegmentForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=60)
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"), choices=Segment.Kind.choices, initial=Segment.Kind.DYNAMIC
    )
    description = forms.CharField(label=gettext_lazy("Description"), max_length=200, required=False)
    text = forms.CharField(label=gettext_lazy("Conditions"), max_length=4000, widget=forms.Textarea)


def _actor(request: HttpRequest) -> Actor:
    actor = getattr(request, "actor", None)
    if actor is None:
        raise Http404
    return actor


def _builder(request: HttpRequest) -> Actor:
    """The actor, if they may build segments (admin, operator); anyone else gets 403."""
    actor = _actor(request)
    if not actor.can_configure:
        raise PermissionDenied("building segments needs the admin or operator role")
    return actor


def _segment(actor: Actor, segment_id: int) -> Segment:
    try:
        return selectors.get_segment(actor, segment_id)
    except NotFound as exc:
        raise Http404 from exc


def _no_corp(request: HttpRequest) -> HttpResponse:
    return render(request, "console/no_corp.html", status=403)


def _chart(segments: list[Segment], corp_id: int) -> dict[str, Any]:
    trends = selectors.trends(corp_id, [s.pk for s in segments])
    return {
        "series": [
            {"name": s.name, "points": [[at.isoformat(), value] for at, value in trends.get(s.pk, [])]}
            for s in segments
        ]
    }


@login_required
@require_GET
def segment_list(request: HttpRequest) -> HttpResponse:
    actor = getattr(request, "actor", None)
    if actor is None:
        return _no_corp(request)
    rows = selectors.list_segments(actor)
    largest = sorted((r for r in rows if r.count), key=lambda r: -(r.count or 0))[:CHART_SERIES]
    return render(
        request,
        "segments/list.html",
        {
            "rows": rows,
            # The trend is of whole segments: only for those who see every customer.
            "chart": _chart([r.segment for r in largest], actor.corp.pk)
            if actor.sees_all_customers
            else None,
            "can_build": actor.can_configure,
        },
    )


def _builder_context(actor: Actor, form: SegmentForm, segment: Segment | None) -> dict[str, Any]:
    return {
        "form": form,
        "segment": segment,
        "tags": Tag.objects.for_corp(actor.corp).select_related("group"),
        "statuses": FollowRelation.Status.choices,
    }


def _save(request: HttpRequest, actor: Actor, segment: Segment | None) -> HttpResponse:
    form = SegmentForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if segment is None:
                segment = services.create_segment(
                    corp=actor.corp,
                    data=services.SegmentInput(
                        name=data["name"],
                        kind=data["kind"],
                        text=data["text"],
                        description=data["description"],
                    ),
                    user_id=actor.user_id,
                )
                messages.success(request, _("Segment “%(name)s” created.") % {"name": segment.name})
            else:
                segment = services.update_segment(
                    segment=segment,
                    name=data["name"],
                    description=data["description"],
                    text=data["text"],
                    refreeze=request.POST.get("refreeze") == "1",
                )
                messages.success(request, _("Segment “%(name)s” saved.") % {"name": segment.name})
            return redirect("segments:detail", segment_id=segment.pk)
        except DomainError as exc:
            form.add_error("text" if exc.field in (None, "text", "expression") else None, exc.message)
    return render(request, "segments/builder.html", _builder_context(actor, form, segment), status=400)


@login_required
@require_http_methods(["GET", "POST"])
def segment_new(request: HttpRequest) -> HttpResponse:
    actor = _builder(request)
    if request.method == "POST":
        return _save(request, actor, None)
    form = SegmentForm(initial={"text": request.GET.get("text", "")})
    return render(request, "segments/builder.html", _builder_context(actor, form, None))


@login_required
@require_http_methods(["GET", "POST"])
def segment_edit(request: HttpRequest, segment_id: int) -> HttpResponse:
    actor = _builder(request)
    segment = _segment(actor, segment_id)
    if request.method == "POST":
        return _save(request, actor, segment)
    form = SegmentForm(
        initial={
            "name": segment.name,
            "kind": segment.kind,
            "description": segment.description,
            "text": segment.text,
        }
    )
    return render(request, "segments/builder.html", _builder_context(actor, form, segment))


@login_required
@require_POST
def segment_preview(request: HttpRequest) -> HttpResponse:
    """The builder's live count (htmx, as the operator types): count, sample and the canonical text, or the
    error inline."""
    actor = _builder(request)
    text = request.POST.get("text", "")
    context: dict[str, Any] = {"text": text}
    if text.strip():
        try:
            expression = services.parse_expression(corp=actor.corp, text=text)
            members = selectors.count_expression(actor, expression)
            context.update(
                count=len(members),
                canonical=expression.to_text(),
                sample=selectors.member_page(actor, members, page_size=SAMPLE_SIZE).items,
            )
        except DomainError as exc:
            context["error"] = exc.message
    return render(request, "segments/_preview.html", context)


@login_required
@require_GET
def segment_detail(request: HttpRequest, segment_id: int) -> HttpResponse:
    """The members page: the customer list's rows for the segment's members within the reader's scope."""
    actor = _actor(request)
    segment = _segment(actor, segment_id)
    context: dict[str, Any] = {
        "segment": segment,
        "can_build": actor.can_configure,
        "chart": _chart([segment], actor.corp.pk) if actor.sees_all_customers else None,
        "rows": [],
    }
    try:
        members = selectors.visible_members(actor, segment)
        page = selectors.member_page(actor, members, cursor=request.GET.get("cursor") or None)
        context.update(page=page, rows=_rows(page.items))
    except DomainError as exc:
        context["error"] = exc.message
    return render(request, "segments/detail.html", context, status=200 if "error" not in context else 400)


def _rows(customers: list[Any]) -> list[Any]:
    from siyu.customers.selectors import CustomerPage
    from siyu.customers.views import _rows as customer_rows

    return customer_rows(
        CustomerPage(items=customers, next_cursor=None, sort="-id", page_size=len(customers))
    )


@login_required
@require_POST
def segment_delete(request: HttpRequest, segment_id: int) -> HttpResponse:
    actor = _builder(request)
    segment = _segment(actor, segment_id)
    services.delete_segment(segment=segment)
    messages.success(request, _("Segment “%(name)s” deleted.") % {"name": segment.name})
    return redirect("segments:list")


@login_required
@require_POST
def segment_exclude(request: HttpRequest, segment_id: int) -> HttpResponse:
    """Keep the ticked members out of the segment (or release them: back to what the conditions say)."""
    actor = _builder(request)
    segment = _segment(actor, segment_id)
    ids = [int(v) for v in request.POST.getlist("ids") if v.isdigit()]
    mode = None if request.POST.get("mode") == "release" else "exclude"
    try:
        changed = services.set_overrides(segment=segment, customer_ids=ids, mode=mode)
        messages.success(request, _("%(count)d customers changed.") % {"count": changed})
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("segments:detail", segment_id=segment.pk)
