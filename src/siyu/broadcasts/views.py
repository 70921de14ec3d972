"""Mass message pages: list, compose (with a live recipient count), preview with skip reasons, detail with
per-staff progress and per-customer results, the preview's CSV, and the corp's contact rules.

Admins and operators compose, send, remind and cancel; managers and staff see the broadcasts their staff
send, and only those parts. Every change goes through ``broadcasts.services``; a refused input is shown next
to the form (400) and nothing is stored.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.broadcasts import audience as aud
from siyu.broadcasts import caps, selectors, services
from siyu.broadcasts.content import MEDIA_MAX_BYTES, SIYU_MEDIA
from siyu.broadcasts.models import Broadcast, BroadcastPart, BroadcastSkip, CapPolicy, Delivery
from siyu.core.clock import now
from siyu.core.errors import DomainError, Invalid, NotFound
from siyu.corps.access import Actor
from siyu.corps.models import Department, Staff
from siyu.corps.services import audit
from siyu.customers.exports import csv_lines
from siyu.customers.models import Customer
from siyu.groups.models import GroupChat
from siyu.tags.models import Tag

ATTACHMENT_ROWS_MAX = 9
# Read one byte past WeCom's largest limit: enough to refuse a file that is too big without reading it all.
MEDIA_READ_MAX = max(MEDIA_MAX_BYTES.values()) + 1
LIST_PAGE = 30
RESULTS_PAGE = 50


def _actor(request: HttpRequest) -> Actor:
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None:
        raise PermissionDenied("no role in any corp")
    return actor


def _composer(request: HttpRequest) -> Actor:
    actor = _actor(request)
    if not actor.can_configure:
        raise PermissionDenied("mass messages need the admin or operator role")
    return actor


def _broadcast(actor: Actor, broadcast_id: int) -> Broadcast:
    try:
        return services.get_broadcast(actor=actor, broadcast_id=broadcast_id)
    except NotFound:
        raise Http404("mass message not found") from None


# ---------- list ----------


@login_required
@require_GET
def broadcast_list(request: HttpRequest) -> HttpResponse:
    """Mass messages with status and progress, newest first."""
    actor = _actor(request)
    found = selectors.broadcasts_for(actor)
    try:
        before = int(request.GET.get("before", "0")) or None
    except ValueError:
        before = None
    if before:
        found = found.filter(pk__lt=before)
    page = list(found.order_by("-pk")[: LIST_PAGE + 1])
    more = len(page) > LIST_PAGE
    page = page[:LIST_PAGE]
    progress = selectors.progress_by_broadcast(actor, [b.pk for b in page])
    rows = [(b, progress[b.pk]) for b in page]
    return render(
        request,
        "broadcasts/list.html",
        {"rows": rows, "next_before": page[-1].pk if more else None, "can_compose": actor.can_configure},
    )


# ---------- compose ----------


def _ids(request: HttpRequest, name: str) -> list[int]:
    return [int(v) for v in request.POST.getlist(name) if v.strip().isdigit()]


def _picked_customers(actor: Actor, text: str) -> list[int]:
    """Customers named one per line by external_userid (or id); unknown names are refused."""
    names = [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
    if len(names) > aud.PICKED_MAX:
        raise Invalid(_("at most %(max)d in %(field)s") % {"max": aud.PICKED_MAX, "field": "customers"})
    known = dict(
        Customer.objects.for_corp(actor.corp)
        .filter(external_userid__in=names)
        .values_list("external_userid", "pk")
    )
    found: list[int] = []
    for name in names:
        if name in known:
            found.append(known[name])
        elif name.isdigit():
            found.append(int(name))
        else:
            raise Invalid(
                _("no customer has the external_userid %(name)s") % {"name": name[:64]}, field="customer_ids"
            )
    return found


MEDIA_PREFIX = "media:"  # a row naming a file already uploaded to Siyu (by its id), as a draft keeps it


def _attachments(actor: Actor, request: HttpRequest) -> list[dict[str, Any]]:
    """The attachment rows as WeCom attachment objects; an uploaded file is stored first (and checked)."""
    rows: list[dict[str, Any]] = []
    for n in range(ATTACHMENT_ROWS_MAX + 1):
        kind = request.POST.get(f"att-{n}-type", "")
        url = request.POST.get(f"att-{n}-url", "").strip()
        title = request.POST.get(f"att-{n}-title", "").strip()
        upload = request.FILES.get(f"att-{n}-file")
        if upload is not None and kind in ("image", "video", "file"):
            media = services.store_media(
                actor=actor,
                kind=kind,
                filename=upload.name or kind,
                content_type=upload.content_type or "",
                content=upload.read(MEDIA_READ_MAX),
            )
            rows.append({"msgtype": kind, kind: {SIYU_MEDIA: media.pk}})
            continue
        if not kind or not (url or title):
            continue
        if url.startswith(MEDIA_PREFIX) and url[len(MEDIA_PREFIX) :].isdigit():
            rows.append({"msgtype": kind, kind: {SIYU_MEDIA: int(url[len(MEDIA_PREFIX) :])}})
        elif kind == "image":
            key = "pic_url" if url.startswith(("http://", "https://")) else "media_id"
            rows.append({"msgtype": "image", "image": {key: url}})
        elif kind == "link":
            link = {"title": title, "url": url}
            if request.POST.get(f"att-{n}-desc", "").strip():
                link["desc"] = request.POST.get(f"att-{n}-desc", "").strip()
            rows.append({"msgtype": "link", "link": link})
        elif kind in ("video", "file"):
            rows.append({"msgtype": kind, kind: {"media_id": url}})
        else:
            rows.append({"msgtype": kind, kind: {}})  # refused by the content check, with its reason
    return rows


def _attachment_rows(post: Any, stored: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The attachment rows of the form: as submitted, or from the draft, and one empty row to fill."""
    rows: list[dict[str, str]] = []
    if post is not None:
        for n in range(ATTACHMENT_ROWS_MAX):
            row = {k: post.get(f"att-{n}-{k}", "") for k in ("type", "url", "title", "desc")}
            if any(row.values()):
                rows.append(row)
    else:
        for item in stored:
            kind = str(item.get("msgtype", ""))
            body = item.get(kind) or {}
            url = body.get("pic_url") or body.get("url") or body.get("media_id") or ""
            if SIYU_MEDIA in body:
                url = f"{MEDIA_PREFIX}{body[SIYU_MEDIA]}"
            rows.append(
                {"type": kind, "url": url, "title": body.get("title", ""), "desc": body.get("desc", "")}
            )
    if not rows:
        rows.append({"type": "", "url": "", "title": "", "desc": ""})
    return rows


def _audience(actor: Actor, request: HttpRequest, kind: str) -> dict[str, Any]:
    post = request.POST
    if kind == Broadcast.Kind.GROUPS:
        return {
            "type": "groups",
            "group_ids": _ids(request, "group_ids"),
            "staff_ids": _ids(request, "owner_ids"),
        }
    if kind == Broadcast.Kind.MOMENTS:
        return {
            "type": "moments",
            "staff_ids": _ids(request, "sender_ids"),
            "department_ids": _ids(request, "department_ids"),
            "tag_ids": _ids(request, "moment_tag_ids"),
        }
    kind_of_audience = post.get("audience_type", aud.TAGS)
    spec: dict[str, Any] = {"type": kind_of_audience, "exclude_tag_ids": _ids(request, "exclude_tag_ids")}
    if kind_of_audience == aud.SEGMENT:
        spec["segment_id"] = post.get("segment_id", "")
    elif kind_of_audience == aud.TAGS:
        spec["tag_ids"] = _ids(request, "tag_ids")
        spec["match"] = post.get("match", "any")
    else:
        spec["customer_ids"] = _picked_customers(actor, post.get("customers", ""))
    return spec


def _schedule(actor: Actor, value: str) -> dt.datetime | None:
    if not value.strip():
        return None
    try:
        local = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(_("the schedule is not a date and time"), field="scheduled_at") from None
    return local.replace(tzinfo=zoneinfo.ZoneInfo(actor.corp.time_zone))


def _segments(actor: Actor) -> list[Any]:
    import importlib

    try:
        models = importlib.import_module("siyu.segments.models")
    except ImportError:
        return []
    return list(models.Segment.objects.for_corp(actor.corp).order_by("name")[:500])


def _compose_context(
    actor: Actor, request: HttpRequest, kind: str, broadcast: Broadcast | None
) -> dict[str, Any]:
    spec = broadcast.audience if broadcast else {}
    post = request.POST if request.method == "POST" else None
    rows = _attachment_rows(post, broadcast.attachments if broadcast else [])

    def picked(name: str, stored: str) -> set[int]:
        return set(_ids(request, name)) if post else set(spec.get(stored, []))

    customers_text = ""
    if post:
        customers_text = post.get("customers", "")
    elif spec.get("customer_ids"):
        customers_text = "\n".join(
            Customer.objects.for_corp(actor.corp)
            .filter(pk__in=spec["customer_ids"][:5000])
            .values_list("external_userid", flat=True)
        )
    zone = zoneinfo.ZoneInfo(actor.corp.time_zone)
    schedule = ""
    if post:
        schedule = post.get("scheduled_at", "")
    elif broadcast and broadcast.scheduled_at:
        schedule = broadcast.scheduled_at.astimezone(zone).strftime("%Y-%m-%dT%H:%M")
    return {
        "kind": kind,
        "kinds": Broadcast.Kind.choices,
        "broadcast": broadcast,
        "name": post.get("name", "") if post else (broadcast.name if broadcast else ""),
        "text": post.get("text", "") if post else (broadcast.text if broadcast else ""),
        "audience_type": post.get("audience_type", aud.TAGS) if post else spec.get("type", aud.TAGS),
        "segment_id": post.get("segment_id", "") if post else str(spec.get("segment_id", "")),
        "segments": _segments(actor),
        "tags": Tag.objects.for_corp(actor.corp)
        .select_related("group")
        .order_by("group__order", "order", "id"),
        "tag_ids": picked("tag_ids", "tag_ids"),
        "match": post.get("match", "any") if post else spec.get("match", "any"),
        "exclude_tag_ids": picked("exclude_tag_ids", "exclude_tag_ids"),
        "customers_text": customers_text,
        "groups": GroupChat.objects.for_corp(actor.corp)
        .filter(status=GroupChat.Status.ACTIVE)
        .order_by("name")[:500],
        "group_ids": picked("group_ids", "group_ids"),
        "owner_ids": picked("owner_ids", "staff_ids"),
        "sender_ids": picked("sender_ids", "staff_ids"),
        "department_ids": picked("department_ids", "department_ids"),
        "moment_tag_ids": picked("moment_tag_ids", "tag_ids"),
        "staff": Staff.objects.for_corp(actor.corp).filter(status=Staff.Status.ACTIVE).order_by("name"),
        "departments": Department.objects.for_corp(actor.corp).order_by("order", "wecom_id"),
        "attachment_rows": rows,
        "attachment_kinds": [
            ("image", _("Image")),
            ("link", _("Link")),
            ("video", _("Video")),
            ("file", _("File")),
        ],
        "scheduled_at": schedule,
        "request_key": post.get("request_key", "") if post else uuid.uuid4().hex,
        "time_zone": actor.corp.time_zone,
    }


@login_required
@require_http_methods(["GET", "POST"])
def compose(request: HttpRequest, broadcast_id: int | None = None) -> HttpResponse:
    """Write a mass message (kind, audience, text and attachments, schedule); saved as a draft, previewed."""
    actor = _composer(request)
    broadcast = _broadcast(actor, broadcast_id) if broadcast_id else None
    if broadcast is not None and broadcast.status != Broadcast.Status.DRAFT:
        return HttpResponseRedirect(reverse("broadcasts:detail", args=[broadcast.pk]))
    kind = broadcast.kind if broadcast else request.POST.get("kind") or request.GET.get("kind") or "customers"
    if kind not in Broadcast.Kind.values:
        kind = Broadcast.Kind.CUSTOMERS
    context = _compose_context(actor, request, kind, broadcast)
    if request.method == "POST" and request.POST.get("action") != "add_attachment":
        try:
            values: dict[str, Any] = {
                "name": request.POST.get("name", ""),
                "text": request.POST.get("text", ""),
                "attachments": _attachments(actor, request),
                "audience": _audience(actor, request, kind),
                "scheduled_at": _schedule(actor, request.POST.get("scheduled_at", "")),
            }
            if broadcast is None:
                broadcast = services.create_broadcast(
                    actor=actor, kind=kind, request_key=request.POST.get("request_key", ""), **values
                )
            else:
                broadcast = services.update_broadcast(actor=actor, broadcast_id=broadcast.pk, **values)
        except DomainError as exc:
            context.update(error=exc.message, error_field=exc.field or "", error_code=str(exc.code))
            return render(request, "broadcasts/compose.html", context, status=400)
        return HttpResponseRedirect(reverse("broadcasts:preview", args=[broadcast.pk]))
    if request.method == "POST" and len(context["attachment_rows"]) < ATTACHMENT_ROWS_MAX:  # one more row
        context["attachment_rows"].append({"type": "", "url": "", "title": "", "desc": ""})
    return render(request, "broadcasts/compose.html", context)


@login_required
@require_POST
def audience_count(request: HttpRequest) -> HttpResponse:
    """The live recipient count of the compose form (htmx): how many the audience holds now."""
    actor = _composer(request)
    kind = request.POST.get("kind", Broadcast.Kind.CUSTOMERS)
    if kind not in Broadcast.Kind.values:
        kind = Broadcast.Kind.CUSTOMERS
    try:
        spec = aud.AudienceSpec.parse(_audience(actor, request, kind))
        if kind == Broadcast.Kind.CUSTOMERS:
            found = aud.resolve_customers(actor.corp, spec)
            count, excluded = len(found.candidates), len(found.excluded)
        elif kind == Broadcast.Kind.GROUPS:
            count, excluded = aud.resolve_groups(actor.corp, spec).count, 0
        else:
            count, excluded = len(aud.resolve_moment(actor.corp, spec).userids), 0
        context: dict[str, Any] = {"count": count, "excluded": excluded, "kind": kind}
    except DomainError as exc:
        context = {"error": exc.message}
    return render(request, "broadcasts/_count.html", context)


# ---------- preview, send ----------


SKIP_LABELS = dict(BroadcastSkip.Reason.choices)


@login_required
@require_GET
def preview(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    """Who will receive it (per staff member), who is skipped and why; send or edit from here."""
    actor = _composer(request)
    broadcast = _broadcast(actor, broadcast_id)
    if broadcast.status != Broadcast.Status.DRAFT:
        return HttpResponseRedirect(reverse("broadcasts:detail", args=[broadcast.pk]))
    context: dict[str, Any] = {"broadcast": broadcast, "skip_labels": SKIP_LABELS}
    try:
        found = services.preview_broadcast(actor=actor, broadcast=broadcast)
        reasons = [(r, str(SKIP_LABELS[r]), n) for r, n in found.skipped.items() if n]
        context.update(
            preview=found,
            reasons=reasons,
            chart={"labels": [label for _r, label, _n in reasons], "values": [n for _r, _l, n in reasons]},
        )
    except DomainError as exc:
        context["error"] = exc.message
    return render(request, "broadcasts/preview.html", context)


@login_required
@require_POST
def send(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    """Send the draft (now or at its schedule). Pressing twice sends once."""
    actor = _composer(request)
    broadcast = _broadcast(actor, broadcast_id)
    try:
        broadcast = services.send_broadcast(actor=actor, broadcast_id=broadcast.pk)
    except DomainError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(reverse("broadcasts:preview", args=[broadcast.pk]))
    messages.success(request, _("The mass message is on its way."))
    return HttpResponseRedirect(reverse("broadcasts:detail", args=[broadcast.pk]))


@login_required
@require_GET
def preview_csv(request: HttpRequest, broadcast_id: int) -> HttpResponse | StreamingHttpResponse:
    """Every customer of the audience with what happens to them (receives through whom, or skipped and why).

    Before the send it is the preview's plan; after, the plan the send made. Audited like exports.
    """
    actor = _composer(request)
    broadcast = _broadcast(actor, broadcast_id)
    if broadcast.kind != Broadcast.Kind.CUSTOMERS:
        raise Http404("only mass messages to customers have a customer list")
    if broadcast.status == Broadcast.Status.DRAFT:
        try:
            plan = services.preview_broadcast(actor=actor, broadcast=broadcast).plan
        except DomainError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(reverse("broadcasts:preview", args=[broadcast.pk]))
        by_staff, skipped = plan.by_staff, plan.skipped
    else:
        from pyroaring import BitMap

        by_staff = {}
        for part in (
            BroadcastPart.objects.for_corp(actor.corp).filter(broadcast=broadcast).exclude(staff=None)
        ):
            members = BitMap.deserialize(bytes(part.members)) if part.members else BitMap()
            by_staff[part.staff_id] = by_staff.get(part.staff_id, BitMap()) | members
        skipped = selectors.skipped_members(broadcast)
    staff = dict(Staff.objects.for_corp(actor.corp).values_list("pk", "name"))
    audit(
        corp=actor.corp,
        action="broadcast.export",
        object_type="broadcast",
        object_id=broadcast.pk,
        user_id=actor.user_id,
        detail={"rows": sum(len(m) for m in by_staff.values()) + sum(len(m) for m in skipped.values())},
    )

    def rows() -> Any:
        yield [_("External user ID"), _("Name"), _("Outcome"), _("Sent by")]
        for staff_id, members in sorted(by_staff.items()):
            for _pk, external_userid, name in selectors.customer_rows(actor.corp.pk, members):
                yield [external_userid, name, _("Will receive"), staff.get(staff_id, "")]
        for reason, members in skipped.items():
            for _pk, external_userid, name in selectors.customer_rows(actor.corp.pk, members):
                yield [external_userid, name, str(SKIP_LABELS.get(reason, reason)), ""]

    response = StreamingHttpResponse(csv_lines(rows()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="broadcast-{broadcast.pk}.csv"'
    return response


# ---------- detail ----------


def _detail_context(request: HttpRequest, actor: Actor, broadcast: Broadcast) -> dict[str, Any]:
    parts = list(selectors.parts_for(actor, broadcast))
    moment = now()
    status = request.GET.get("status", "")
    try:
        staff_filter = int(request.GET.get("staff", "")) if request.GET.get("staff") else None
        after = int(request.GET.get("after", "")) if request.GET.get("after") else None
    except ValueError:
        staff_filter, after = None, None
    page = selectors.results_page(
        actor, broadcast, status=status, staff_id=staff_filter, after=after, size=RESULTS_PAGE
    )
    part_rows = [
        {
            "part": p,
            "sent_percent": 100 if p.status == BroadcastPart.Status.SENT else 0,
            "delivered_percent": int(p.delivered * 100 / p.size) if p.size else 0,
            "reminders_left": services.reminders_left(p, moment),
        }
        for p in parts
    ]
    return {
        "broadcast": broadcast,
        "progress": selectors.progress_of(selectors.parts_for(actor, broadcast)),
        "part_rows": part_rows,
        "can_manage": actor.can_configure,
        "open": broadcast.status in services.OPEN or broadcast.status == Broadcast.Status.SCHEDULED,
        "results": page.rows,
        "next_after": page.next_cursor,
        "result_status": status,
        "result_staff": staff_filter,
        "result_filters": [(f, Delivery.Status[f.upper()].label) for f in selectors.RESULT_FILTERS],
        "senders": sorted(
            {(p.staff_id, p.staff.name) for p in parts if p.staff_id and p.staff}, key=lambda s: s[1]
        ),
        "skipped": [
            (str(SKIP_LABELS.get(r, r)), n) for r, n in (broadcast.plan.get("skipped") or {}).items() if n
        ],
        "published": broadcast.plan.get("published") or {},
    }


@login_required
@require_GET
def detail(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    """A sent mass message: per-staff progress, reminders, cancel, per-customer results (paged, filtered)."""
    actor = _actor(request)
    broadcast = _broadcast(actor, broadcast_id)
    if broadcast.status == Broadcast.Status.DRAFT and actor.can_configure:
        return HttpResponseRedirect(reverse("broadcasts:preview", args=[broadcast.pk]))
    context = _detail_context(request, actor, broadcast)
    template = "broadcasts/_progress.html" if request.headers.get("HX-Request") else "broadcasts/detail.html"
    return render(request, template, context)


@login_required
@require_POST
def remind(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    """Remind one staff member (``part``) or every one who has not sent yet."""
    actor = _composer(request)
    broadcast = _broadcast(actor, broadcast_id)
    try:
        part_id = request.POST.get("part", "")
        if part_id.isdigit():
            if (
                not BroadcastPart.objects.for_corp(actor.corp)
                .filter(pk=int(part_id), broadcast=broadcast)
                .exists()
            ):
                raise Http404("part not found")
            services.remind_part(actor=actor, part_id=int(part_id))
            messages.success(request, _("Reminder sent."))
        else:
            count = services.remind_unsent(actor=actor, broadcast_id=broadcast.pk)
            messages.success(request, _("Reminded %(count)d staff members.") % {"count": count})
    except DomainError as exc:
        messages.error(request, exc.message)
    return HttpResponseRedirect(reverse("broadcasts:detail", args=[broadcast.pk]))


@login_required
@require_POST
def cancel(request: HttpRequest, broadcast_id: int) -> HttpResponse:
    """Cancel what has not gone out."""
    actor = _composer(request)
    broadcast = _broadcast(actor, broadcast_id)
    try:
        services.cancel_broadcast(actor=actor, broadcast_id=broadcast.pk)
        messages.success(request, _("Cancelled what had not been sent."))
    except DomainError as exc:
        messages.error(request, exc.message)
    return HttpResponseRedirect(reverse("broadcasts:detail", args=[broadcast.pk]))


# ---------- contact rules ----------


def _time(value: str) -> dt.time | None:
    if not value.strip():
        return None
    try:
        return dt.time.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(_("a time is written like 22:00"), field="quiet_start") from None


@login_required
@require_http_methods(["GET", "POST"])
def rules(request: HttpRequest) -> HttpResponse:
    """The corp's contact rules: WeCom's receive quota, the business cap, quiet hours, who sends."""
    actor = _composer(request)
    policy = caps.policy_for(actor.corp)
    context: dict[str, Any] = {
        "policy": policy,
        "quotas": CapPolicy.WeComQuota.choices,
        "quiet_actions": CapPolicy.QuietAction.choices,
        "sender_policies": CapPolicy.SenderPolicy.choices,
        "staff": Staff.objects.for_corp(actor.corp).filter(status=Staff.Status.ACTIVE).order_by("name"),
    }
    if request.method == "POST":
        post = request.POST
        try:
            caps.update_policy(
                corp=actor.corp,
                wecom_quota=post.get("wecom_quota", ""),
                business_cap_count=int(post.get("business_cap_count", "0") or 0),
                business_cap_days=int(post.get("business_cap_days", "7") or 0),
                quiet_start=_time(post.get("quiet_start", "")),
                quiet_end=_time(post.get("quiet_end", "")),
                quiet_action=post.get("quiet_action", ""),
                sender_policy=post.get("sender_policy", ""),
                staff_priority=_ids(request, "staff_priority"),
            )
        except ValueError:
            context["error"] = _("the business cap needs whole numbers")
            return render(request, "broadcasts/rules.html", context, status=400)
        except DomainError as exc:
            context["error"] = exc.message
            return render(request, "broadcasts/rules.html", context, status=400)
        audit(corp=actor.corp, action="broadcast.rules", object_type="cap_policy", user_id=actor.user_id)
        messages.success(request, _("Contact rules saved."))
        return HttpResponseRedirect(reverse("broadcasts:rules"))
    return render(request, "broadcasts/rules.html", context)
