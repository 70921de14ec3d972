"""WeCom pages: the callback endpoint WeCom calls, and the console's inbox and sync pages.

The callback view is the hot path: one corp lookup, verify and decrypt, one INSERT, an empty 200. Nothing in
it logs contents. Console pages are for admins and operators; reading an event's payload is for admins only
and audited.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.core.clock import now
from siyu.core.errors import DomainError
from siyu.corps.access import Actor
from siyu.corps.services import audit
from siyu.wecom.inbox import get_inbox_event, inbox_stats, list_inbox, replay_inbox_event
from siyu.wecom.models import InboxEvent, SyncRun
from siyu.wecom.receiver import (
    PLAIN_TEXT,
    TOO_LARGE,
    accept_event,
    callback_config,
    refusal_for,
    verify_url,
)
from siyu.wecom.reconcile import next_reconciliation
from siyu.wecom.sync import (
    get_sync_run,
    list_sync_runs,
    resume_sync,
    start_sync,
    sync_progress,
)

logger = logging.getLogger(__name__)

INBOX_PAGE_SIZE = 50  # one screen of events; older ones page with ?before=


# --- the callback endpoint ---------------------------------------------------------------------------------


def _plain(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status=status, content_type=PLAIN_TEXT)


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` (read no further than that)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@csrf_exempt
@require_http_methods(["GET", "POST"])
def callback(request: HttpRequest, corpid: str) -> HttpResponse:
    """WeCom's callback URL of one corp: GET verifies the URL, POST delivers an event (stored, then 200)."""
    params = request.GET
    signature_params = {
        "msg_signature": params.get("msg_signature", ""),
        "timestamp": params.get("timestamp", ""),
        "nonce": params.get("nonce", ""),
    }
    body = b""
    if request.method == "POST":
        read = _read_body(request, int(str(settings.SIYU["WECOM_CALLBACK_MAX_BYTES"])))
        if read is None:
            return _plain(TOO_LARGE.text, TOO_LARGE.status)
        body = read
    try:
        config = callback_config(corpid)
        if request.method == "GET":
            echo = verify_url(config, echostr=params.get("echostr", ""), **signature_params)
            # The decrypted echostr exactly: no quotes, no BOM, no newline (wecom-api.md §2.3).
            return HttpResponse(echo, content_type="text/plain")
        accept_event(config, body=body, **signature_params)
    except Exception as exc:
        refusal = refusal_for(exc, corpid)
        if refusal is None:
            raise
        return _plain(refusal.text, refusal.status)
    return HttpResponse(b"", status=200)


# --- console: access ---------------------------------------------------------------------------------------


def _configurer(request: HttpRequest) -> Actor:
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None:
        raise PermissionDenied("no role in any corp")
    if not actor.can_configure:
        raise PermissionDenied("the WeCom pages need the admin or operator role")
    return actor


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


# --- console: inbox ----------------------------------------------------------------------------------------


@login_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    """Inbox depth, lag and counts by status, and a filterable list of events, newest first."""
    actor = _configurer(request)
    status = request.GET.get("status", "")
    if status not in InboxEvent.Status.values:
        status = ""
    event = request.GET.get("event", "").strip()[:64]
    key = request.GET.get("key", "").strip()[:160]
    before = _int(request.GET.get("before"))
    rows = list_inbox(
        actor.corp, status=status, event=event, key=key, before_id=before, limit=INBOX_PAGE_SIZE + 1
    )
    more = len(rows) > INBOX_PAGE_SIZE
    rows = rows[:INBOX_PAGE_SIZE]
    context: dict[str, Any] = {
        "stats": inbox_stats(actor.corp),
        "rows": rows,
        "statuses": InboxEvent.Status.choices,
        "status": status,
        "event": event,
        "key": key,
        "next_before": rows[-1].pk if more and rows else None,
    }
    template = "wecom/inbox_rows.html" if request.headers.get("HX-Request") else "wecom/inbox.html"
    return render(request, template, context)


@login_required
@require_GET
def inbox_stats_fragment(request: HttpRequest) -> HttpResponse:
    """The depth/lag/status cards, polled by the inbox page."""
    actor = _configurer(request)
    return render(request, "wecom/inbox_stats.html", {"stats": inbox_stats(actor.corp)})


@login_required
@require_GET
def inbox_event(request: HttpRequest, event_id: int) -> HttpResponse:
    """One event: status, attempts, error; its decrypted payload for admins (audited)."""
    actor = _configurer(request)
    try:
        row = get_inbox_event(actor.corp, event_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    show_payload = actor.can_manage_users and request.GET.get("payload") == "1"
    if show_payload:
        audit(
            corp=actor.corp,
            action="wecom.inbox.read_payload",
            object_type="inbox_event",
            object_id=row.pk,
            user_id=actor.user_id,
        )
    return render(
        request,
        "wecom/inbox_event.html",
        {
            "row": row,
            "show_payload": show_payload,
            "can_read_payload": actor.can_manage_users,
            "can_replay": bool(row.message)
            and row.status not in (InboxEvent.Status.PENDING, InboxEvent.Status.PROCESSING),
        },
    )


@login_required
@require_POST
def inbox_replay(request: HttpRequest, event_id: int) -> HttpResponse:
    """Queue an event to be worked again (handlers are idempotent: nothing doubles)."""
    actor = _configurer(request)
    try:
        row = get_inbox_event(actor.corp, event_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    if not row.message or row.status in (InboxEvent.Status.PENDING, InboxEvent.Status.PROCESSING):
        messages.error(request, _("This event cannot be replayed now."))
        return redirect("wecom:inbox_event", event_id=row.pk)
    replay_inbox_event(row=row)
    audit(
        corp=actor.corp,
        action="wecom.inbox.replay",
        object_type="inbox_event",
        object_id=row.pk,
        user_id=actor.user_id,
    )
    messages.success(request, _("The event was queued again."))
    return redirect("wecom:inbox_event", event_id=row.pk)


# --- console: sync -----------------------------------------------------------------------------------------


def _run_context(run: SyncRun) -> dict[str, Any]:
    scheduled = (
        run.status == SyncRun.Status.PENDING and run.scheduled_for is not None and run.scheduled_for > now()
    )
    return {
        "run": run,
        "progress": sync_progress(run),
        "scheduled": scheduled,
        "running": run.status in (SyncRun.Status.PENDING, SyncRun.Status.RUNNING) and not scheduled,
    }


@login_required
@require_GET
def sync_list(request: HttpRequest) -> HttpResponse:
    """The sync history with progress bars, the next scheduled reconciliation and the start buttons."""
    actor = _configurer(request)
    runs = [_run_context(run) for run in list_sync_runs(actor.corp)]
    context = {
        "runs": runs,
        "any_running": any(r["running"] for r in runs),
        "next_reconciliation": next_reconciliation(actor.corp),
        "kinds": SyncRun.Kind,
    }
    template = "wecom/sync_rows.html" if request.headers.get("HX-Request") else "wecom/sync_list.html"
    return render(request, template, context)


@login_required
@require_POST
def sync_start(request: HttpRequest) -> HttpResponse:
    """Start a full sync (``kind=full``) or a reconciliation (``kind=reconcile``)."""
    actor = _configurer(request)
    kind = request.POST.get("kind", "")
    try:
        run = start_sync(corp=actor.corp, kind=kind, user_id=actor.user_id)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("wecom:sync_list")
    messages.success(request, _("Sync started."))
    return redirect(reverse("wecom:sync_detail", args=[run.pk]))


@login_required
@require_GET
def sync_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    actor = _configurer(request)
    try:
        run = get_sync_run(actor.corp, run_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    return render(request, "wecom/sync_detail.html", _run_context(run))


@login_required
@require_GET
def sync_progress_fragment(request: HttpRequest, run_id: int) -> HttpResponse:
    """The progress block htmx polls every second while the run is under way."""
    actor = _configurer(request)
    try:
        run = get_sync_run(actor.corp, run_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    return render(request, "wecom/sync_progress.html", _run_context(run))


@login_required
@require_POST
def sync_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    actor = _configurer(request)
    try:
        run = resume_sync(run=get_sync_run(actor.corp, run_id), user_id=actor.user_id)
    except DomainError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from exc
        messages.error(request, exc.message)
        return redirect("wecom:sync_detail", run_id=run_id)
    messages.success(request, _("The sync continues from where it stopped."))
    return redirect("wecom:sync_detail", run_id=run.pk)
