"""The outbox page: every write to WeCom, its tries, error and answer; failed writes can be sent again.

For admins and operators. A write's payload (message texts, customer ids) is for admins only, and reading it
is audited; so is sending a write again.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from siyu.core.errors import DomainError
from siyu.corps.access import Actor
from siyu.corps.services import audit
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import requeue_write
from siyu.wecom.outbox_selectors import (
    AGES,
    get_outbox_write,
    list_outbox,
    outbox_apis,
    outbox_stats,
    shown_json,
)

OUTBOX_PAGE_SIZE = 50  # one screen of writes; older ones page with ?before=


def _configurer(request: HttpRequest) -> Actor:
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None:
        raise PermissionDenied("no role in any corp")
    if not actor.can_configure:
        raise PermissionDenied("the WeCom pages need the admin or operator role")
    return actor


def _write(actor: Actor, row_id: int) -> Outbox:
    try:
        return get_outbox_write(actor.corp, row_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc


@login_required
@require_GET
def outbox(request: HttpRequest) -> HttpResponse:
    """Counts by status and a list of writes filtered by API, status and age, newest first."""
    actor = _configurer(request)
    apis = outbox_apis()
    api = request.GET.get("api", "")
    api = api if api in apis else ""
    status = request.GET.get("status", "")
    status = status if status in Outbox.Status.values else ""
    age = request.GET.get("age", "")
    age = age if age in {value for value, _label, _span in AGES} else ""
    rows = list_outbox(
        actor.corp,
        api=api,
        status=status,
        age=age,
        before_id=int(before) if (before := request.GET.get("before", "")).isdigit() else None,
        limit=OUTBOX_PAGE_SIZE + 1,
    )
    more = len(rows) > OUTBOX_PAGE_SIZE
    rows = rows[:OUTBOX_PAGE_SIZE]
    context: dict[str, Any] = {
        "stats": outbox_stats(actor.corp),
        "rows": [(row, shown_json(row.result)) for row in rows],
        "apis": apis,
        "statuses": Outbox.Status.choices,
        "ages": [(value, label) for value, label, _span in AGES],
        "api": api,
        "status": status,
        "age": age,
        "next_before": rows[-1].pk if more and rows else None,
        "here": request.get_full_path(),
    }
    template = "wecom/outbox_rows.html" if request.headers.get("HX-Request") else "wecom/outbox.html"
    return render(request, template, context)


@login_required
@require_GET
def outbox_stats_fragment(request: HttpRequest) -> HttpResponse:
    """The counts, polled by the outbox page."""
    actor = _configurer(request)
    return render(request, "wecom/outbox_stats.html", {"stats": outbox_stats(actor.corp)})


@login_required
@require_GET
def outbox_write(request: HttpRequest, row_id: int) -> HttpResponse:
    """One write: status, tries, error, WeCom's answer; its payload for admins (audited)."""
    actor = _configurer(request)
    row = _write(actor, row_id)
    show_payload = actor.can_manage_users and request.GET.get("payload") == "1"
    if show_payload:
        audit(
            corp=actor.corp,
            action="wecom.outbox.read_payload",
            object_type="outbox",
            object_id=row.pk,
            user_id=actor.user_id,
        )
    return render(
        request,
        "wecom/outbox_write.html",
        {
            "row": row,
            "result": shown_json(row.result, indent=2),
            "payload": shown_json(row.payload, indent=2) if show_payload else "",
            "show_payload": show_payload,
            "can_read_payload": actor.can_manage_users,
        },
    )


@login_required
@require_POST
def outbox_requeue(request: HttpRequest, row_id: int) -> HttpResponse:
    """Send a failed write again (its tries start from zero); back to where the button was."""
    actor = _configurer(request)
    row = _write(actor, row_id)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("wecom:outbox_write", args=[row.pk])
    try:
        requeue_write(corp=actor.corp, outbox_id=row.pk)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    audit(
        corp=actor.corp,
        action="wecom.outbox.requeue",
        object_type="outbox",
        object_id=row.pk,
        user_id=actor.user_id,
        detail={"api": row.api},
    )
    messages.success(request, _("The write will be sent again."))
    return redirect(back)
