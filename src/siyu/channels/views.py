"""Channel pages: the list, the create/edit form with its welcome message editor, the detail page with the QR
code, the poster and the recent adds, and the corp's default welcome message.

Everyone with a role sees the channels listing people they may see (``selectors``); only admins and operators
(``actor.can_configure``) create, edit, pause, archive or duplicate, and those endpoints answer 403 to anyone
else. A refused form comes back with its values and the reason (400); nothing is written.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.channels import qr, selectors, services, stats
from siyu.channels.models import Channel, ChannelAdd, ChannelGroup, MediaAsset
from siyu.channels.welcome import PLACEHOLDERS
from siyu.channels.welcome import render as render_template
from siyu.core.clock import now
from siyu.core.errors import DomainError, Invalid, NotFound
from siyu.core.timewindows import mask_days, start_of_day
from siyu.corps.access import Actor
from siyu.tags.models import Tag

WEEKDAY_LABELS = (
    gettext_lazy("Mon"),
    gettext_lazy("Tue"),
    gettext_lazy("Wed"),
    gettext_lazy("Thu"),
    gettext_lazy("Fri"),
    gettext_lazy("Sat"),
    gettext_lazy("Sun"),
)
VARIANT_ROWS_EMPTY = 1  # blank variants offered below the existing ones
_SCHEDULE = re.compile(r"^\s*([1-7](?:\s*[-,]\s*[1-7])*)\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")


def _actor(request: HttpRequest) -> Actor:
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None:
        raise PermissionDenied("no role in any corp")
    return actor


def _configurer(request: HttpRequest) -> Actor:
    actor = _actor(request)
    if not actor.can_configure:
        raise PermissionDenied("channels are configured by admins and operators")
    return actor


def _channel_or_404(actor: Actor, channel_id: int) -> Channel:
    try:
        return selectors.get_channel(actor, channel_id)
    except NotFound as exc:
        raise Http404("channel not found") from exc


# ---------- parsing the form ----------


def _time(value: str, field_name: str) -> dt.time | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise Invalid(_("times are written HH:MM"), field=field_name) from None


def _int(value: str, field_name: str, *, empty: int | None = None) -> int | None:
    value = (value or "").strip()
    if not value:
        return empty
    try:
        return int(value)
    except ValueError:
        raise Invalid(_("a whole number is expected"), field=field_name) from None


def parse_schedules(text: str) -> list[services.ScheduleInput]:
    """Lines like ``1-5 09:00-18:00`` or ``6,7 10:00-16:00`` (1 is Monday): when a member serves."""
    schedules = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        match = _SCHEDULE.match(line)
        if match is None:
            raise Invalid(
                _("a schedule line is weekdays and hours, e.g. 1-5 09:00-18:00 (1 is Monday)"),
                field="schedules",
            )
        days: set[int] = set()
        for part in match.group(1).replace(" ", "").split(","):
            first, _sep, last = part.partition("-")
            low, high = int(first), int(last or first)
            if low > high:
                raise Invalid(_("a weekday range runs from the earlier day"), field="schedules")
            days.update(range(low - 1, high))
        start, end = _time(match.group(2), "schedules"), _time(match.group(3), "schedules")
        assert start is not None and end is not None
        schedules.append(services.ScheduleInput(weekdays=sum(1 << d for d in days), start=start, end=end))
    return schedules


def format_schedules(schedules: list[Any]) -> str:
    lines = []
    for w in schedules:
        days = ",".join(str(d + 1) for d in mask_days(w.weekdays))
        lines.append(f"{days} {w.start:%H:%M}-{w.end:%H:%M}")
    return "\n".join(lines)


def _weekdays(request: HttpRequest, name: str) -> int:
    days = [int(d) for d in request.POST.getlist(name) if d.isdigit() and 0 <= int(d) <= 6]
    return sum(1 << d for d in set(days))


def _channel_input(request: HttpRequest, actor: Actor) -> services.ChannelInput:
    post = request.POST
    members = []
    for staff in selectors.staff_choices(actor):
        role = post.get(f"member_{staff.pk}", "")
        if role not in ("primary", "backup"):
            continue
        members.append(
            services.MemberInput(
                staff_id=staff.pk,
                is_backup=role == "backup",
                weight=_int(post.get(f"weight_{staff.pk}", ""), "weight", empty=1) or 1,
                daily_cap=_int(post.get(f"cap_{staff.pk}", ""), "daily_cap"),
                schedules=parse_schedules(post.get(f"schedule_{staff.pk}", "")),
            )
        )
    group = post.get("group", "")
    return services.ChannelInput(
        name=post.get("name", ""),
        members=members,
        group_id=int(group) if group.isdigit() else None,
        distribution=post.get("distribution", Channel.Distribution.ROUND_ROBIN),
        skip_verify=post.get("skip_verify") == "1",
        skip_verify_start=_time(post.get("skip_verify_start", ""), "skip_verify_start"),
        skip_verify_end=_time(post.get("skip_verify_end", ""), "skip_verify_end"),
        remark_template=post.get("remark_template", "").strip(),
        description_template=post.get("description_template", "").strip(),
        welcome_mode=post.get("welcome_mode", Channel.WelcomeMode.DEFAULT),
        tag_ids=[int(t) for t in post.getlist("tags") if t.isdigit()],
    )


def _upload_kind(content_type: str) -> str:
    if content_type in services.IMAGE_TYPES:
        return MediaAsset.Kind.IMAGE
    if content_type == "video/mp4":
        return MediaAsset.Kind.VIDEO
    return MediaAsset.Kind.FILE


def _variant_inputs(request: HttpRequest, actor: Actor) -> list[services.VariantInput]:
    """The variants of the welcome editor: text, days, hours; links one per line (title | url | description);
    mini-program cards one per line (title | appid | page) sharing the variant's cover image; files uploaded
    here become image, video or file attachments."""
    post = request.POST
    count = _int(post.get("variant_count", "0"), "variants", empty=0) or 0
    variants = []
    for i in range(min(count, services.VARIANTS_MAX)):
        prefix = f"v{i}_"
        text = post.get(prefix + "text", "")
        attachments: list[dict[str, Any]] = []
        for j, kept in enumerate(post.getlist(prefix + "kept")):
            if post.get(f"{prefix}keep_{j}") == "1" and kept:
                msgtype, _sep, asset_id = kept.partition(":")
                attachments.append({"msgtype": msgtype, "asset_id": asset_id})
        for line in post.get(prefix + "links", "").splitlines():
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split("|")]
            link = {"msgtype": "link", "title": parts[0], "url": parts[1] if len(parts) > 1 else ""}
            if len(parts) > 2 and parts[2]:
                link["desc"] = parts[2]
            attachments.append(link)
        attachments += _miniprograms(request, actor, prefix)
        for upload in request.FILES.getlist(prefix + "files"):
            content_type = upload.content_type or ""
            kind = _upload_kind(content_type)
            asset = services.add_media_asset(
                actor=actor,
                kind=kind,
                filename=upload.name or "file",
                content=upload.read(),
                content_type=content_type,
            )
            attachments.append({"msgtype": kind, "asset_id": asset.pk})
        if not text.strip() and not attachments:
            continue  # an empty row of the editor
        variants.append(
            services.VariantInput(
                text=text,
                attachments=attachments,
                weekdays=_weekdays(request, prefix + "days") or 0,
                start=_time(post.get(prefix + "start", ""), "start"),
                end=_time(post.get(prefix + "end", ""), "end"),
            )
        )
    return variants


def _miniprograms(request: HttpRequest, actor: Actor, prefix: str) -> list[dict[str, Any]]:
    """A variant's mini-program cards: one per line (title | appid | page), each with the variant's cover
    (uploaded now, else the one kept from before; the service refuses a card without one)."""
    lines = [line for line in request.POST.get(prefix + "miniprograms", "").splitlines() if line.strip()]
    if not lines:
        return []
    cover: Any = request.POST.get(prefix + "mp_cover_kept", "")
    upload = request.FILES.get(prefix + "mp_cover")
    if upload is not None:
        cover = services.add_media_asset(
            actor=actor,
            kind=MediaAsset.Kind.IMAGE,
            filename=upload.name or "cover",
            content=upload.read(),
            content_type=upload.content_type or "",
        ).pk
    cards = []
    for line in lines:
        parts = [p.strip() for p in line.split("|")] + ["", ""]
        cards.append(
            {
                "msgtype": "miniprogram",
                "title": parts[0],
                "appid": parts[1],
                "page": parts[2],
                "asset_id": cover,
            }
        )
    return cards


# ---------- building the form ----------


@dataclass
class MemberRow:
    staff: Any
    role: str = ""
    weight: str = "1"
    cap: str = ""
    schedule: str = ""


@dataclass
class AttachmentRow:
    value: str  # "msgtype:asset_id"
    label: str


@dataclass
class VariantRow:
    index: int
    text: str = ""
    days: list[int] = field(default_factory=lambda: list(range(7)))
    start: str = ""
    end: str = ""
    links: str = ""
    files: list[AttachmentRow] = field(default_factory=list)
    miniprograms: str = ""
    mp_cover: AttachmentRow | None = None


def _filename(assets: dict[int, MediaAsset], attachment: dict[str, Any]) -> str:
    asset = assets.get(int(attachment["asset_id"]))
    return asset.filename if asset is not None else "?"


def _variant_rows(actor: Actor, variants: list[Any]) -> list[VariantRow]:
    assets = {
        a.pk: a
        for a in MediaAsset.objects.for_corp(actor.corp).filter(
            pk__in=[int(a["asset_id"]) for v in variants for a in v.attachments if a.get("asset_id")]
        )
    }
    rows = []
    for i, variant in enumerate(variants):
        links = [
            " | ".join(p for p in (a.get("title", ""), a.get("url", ""), a.get("desc", "")) if p)
            for a in variant.attachments
            if a.get("msgtype") == "link"
        ]
        files = [
            AttachmentRow(
                value=f"{a['msgtype']}:{a['asset_id']}",
                label=f"{a['msgtype']}: {_filename(assets, a)}",
            )
            for a in variant.attachments
            if a.get("asset_id") and a.get("msgtype") != "miniprogram"
        ]
        cards = [a for a in variant.attachments if a.get("msgtype") == "miniprogram"]
        rows.append(
            VariantRow(
                index=i,
                text=variant.text,
                days=mask_days(variant.weekdays),
                start=f"{variant.start:%H:%M}" if variant.start else "",
                end=f"{variant.end:%H:%M}" if variant.end else "",
                links="\n".join(links),
                files=files,
                miniprograms="\n".join(f"{a['title']} | {a['appid']} | {a['page']}" for a in cards),
                mp_cover=AttachmentRow(value=str(cards[0]["asset_id"]), label=_filename(assets, cards[0]))
                if cards and cards[0].get("asset_id")
                else None,
            )
        )
    for extra in range(VARIANT_ROWS_EMPTY):
        rows.append(VariantRow(index=len(rows) + extra))
    return rows


def _form_context(
    actor: Actor, channel: Channel | None, *, data: services.ChannelInput | None, variants: list[Any]
) -> dict[str, Any]:
    members = {m.staff_id: m for m in (data.members if data else [])}
    rows = []
    for staff in selectors.staff_choices(actor):
        member = members.get(staff.pk)
        rows.append(
            MemberRow(
                staff=staff,
                role=("backup" if member.is_backup else "primary") if member else "",
                weight=str(member.weight) if member else "1",
                cap=str(member.daily_cap) if member and member.daily_cap else "",
                schedule=format_schedules(list(member.schedules)) if member else "",
            )
        )
    chosen_tags = set(data.tag_ids if data else [])
    return {
        "channel": channel,
        "data": data,
        "member_rows": rows,
        "groups": list(ChannelGroup.objects.for_corp(actor.corp)),
        "tags": list(
            Tag.objects.for_corp(actor.corp).select_related("group").order_by("group__order", "order")
        ),
        "chosen_tags": chosen_tags,
        "distributions": Channel.Distribution.choices,
        "welcome_modes": Channel.WelcomeMode.choices,
        "variant_rows": _variant_rows(actor, variants),
        "weekday_labels": list(enumerate(WEEKDAY_LABELS)),
        "placeholders": ["{" + p + "}" for p in PLACEHOLDERS],
    }


def _form_page(
    request: HttpRequest,
    actor: Actor,
    channel: Channel | None,
    *,
    data: services.ChannelInput | None,
    variants: list[Any],
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = _form_context(actor, channel, data=data, variants=variants)
    context["error"] = error
    return render(request, "channels/form.html", context, status=status)


def _save(request: HttpRequest, actor: Actor, channel: Channel | None) -> HttpResponse:
    variants: list[Any] = []
    data: services.ChannelInput | None = None
    saved = channel
    try:
        # One transaction: a refused welcome message leaves no half-made channel (nor uploaded files) behind.
        with transaction.atomic():
            data = _channel_input(request, actor)
            variants = _variant_inputs(request, actor)
            if saved is None:
                saved = services.create_channel(actor=actor, data=data)
            else:
                saved = services.update_channel(actor=actor, channel=saved, data=data)
            if data.welcome_mode == Channel.WelcomeMode.OWN or variants:
                services.save_welcome_message(actor=actor, channel=saved, variants=variants)
    except DomainError as exc:
        return _form_page(
            request, actor, channel, data=data, variants=variants, error=exc.message, status=400
        )
    messages.success(request, _("Channel “%(name)s” saved.") % {"name": saved.name})
    return HttpResponseRedirect(reverse("channels:detail", args=[saved.pk]))


# ---------- pages ----------


@login_required
@require_GET
def channel_list(request: HttpRequest) -> HttpResponse:
    """Channels with their status, today's adds and who receives."""
    actor = _actor(request)
    status = request.GET.get("status", "")
    if status not in Channel.Status.values:
        status = ""
    group = request.GET.get("group", "")
    rows = selectors.channel_rows(actor, status=status, group_id=int(group) if group.isdigit() else None)
    unknown_today = (
        selectors.visible_adds(actor)
        .filter(channel=None, added_at__gte=start_of_day(now(), actor.corp.time_zone))
        .count()
    )
    return render(
        request,
        "channels/list.html",
        {
            "rows": rows,
            "status": status,
            "statuses": Channel.Status.choices,
            "groups": list(ChannelGroup.objects.for_corp(actor.corp)),
            "group": group,
            "can_configure": actor.can_configure,
            "unknown_today": unknown_today,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def channel_create(request: HttpRequest) -> HttpResponse:
    actor = _configurer(request)
    if request.method == "POST":
        return _save(request, actor, None)
    return _form_page(request, actor, None, data=None, variants=[])


@login_required
@require_http_methods(["GET", "POST"])
def channel_edit(request: HttpRequest, channel_id: int) -> HttpResponse:
    actor = _configurer(request)
    channel = _channel_or_404(actor, channel_id)
    if request.method == "POST":
        return _save(request, actor, channel)
    return _form_page(
        request,
        actor,
        channel,
        data=services.channel_input(channel),
        variants=selectors.welcome_variants(actor.corp.pk, channel),
    )


@login_required
@require_GET
def channel_detail(request: HttpRequest, channel_id: int) -> HttpResponse:
    """The QR code and poster, who receives now and today's counts, the channel's analytics (per staff member)
    and the recent adds with their welcome."""
    actor = _actor(request)
    channel = _channel_or_404(actor, channel_id)
    adds = selectors.recent_adds(actor, channel)
    try:
        query = _stats_query(request, actor, channel=channel)
    except Invalid as error:
        return _invalid_stats(request, error)
    return render(
        request,
        "channels/detail.html",
        {
            **_stats_context(
                stats.stats(actor, query),
                csv_url=reverse("channels:stats_csv", args=[channel.pk]),
                csv_param="table",
            ),
            "channel": channel,
            "members": selectors.members_today(channel),
            "adds": adds,
            "sizes": list(qr.SIZES),
            "can_configure": actor.can_configure,
            "tags": list(Tag.objects.for_corp(actor.corp).filter(pk__in=selectors.channel_tags(channel))),
            "welcome_statuses": dict(ChannelAdd.Welcome.choices),
            "mode": channel.pushed.get("mode", ""),
        },
    )


@login_required
@require_GET
def channel_qr(request: HttpRequest, channel_id: int) -> HttpResponse:
    """The QR code as a PNG in one of the print sizes (``?size=12cm``); ``download=1`` saves it."""
    actor = _actor(request)
    channel = _channel_or_404(actor, channel_id)
    size = request.GET.get("size", qr.DEFAULT_SIZE)
    try:
        data = qr.qr_png(channel, size)
    except Invalid as exc:
        return HttpResponse(
            exc.message, status=404 if not channel.qr_code else 400, content_type="text/plain"
        )
    response = HttpResponse(data, content_type="image/png")
    if request.GET.get("download") == "1":
        response["Content-Disposition"] = f'attachment; filename="channel-{channel.pk}-{size}.png"'
    return response


@login_required
@require_GET
def channel_poster(request: HttpRequest, channel_id: int) -> HttpResponse:
    """A printable poster: the title, a text, the QR code, a footer (query parameters)."""
    actor = _actor(request)
    channel = _channel_or_404(actor, channel_id)
    try:
        data = qr.poster_png(
            channel,
            title=request.GET.get("title", ""),
            text=request.GET.get("text", ""),
            footer=request.GET.get("footer", _("Scan to add us on WeCom")),
        )
    except Invalid as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain")
    response = HttpResponse(data, content_type="image/png")
    response["Content-Disposition"] = f'attachment; filename="channel-{channel.pk}-poster.png"'
    return response


def _action(request: HttpRequest, channel_id: int, verb: str) -> HttpResponse:
    actor = _configurer(request)
    channel = _channel_or_404(actor, channel_id)
    try:
        if verb == "pause":
            services.pause_channel(actor=actor, channel=channel)
            messages.success(request, _("Paused: auto-accept is off and the channel's automation stops."))
        elif verb == "resume":
            services.resume_channel(actor=actor, channel=channel)
            messages.success(request, _("Resumed."))
        elif verb == "archive":
            services.archive_channel(actor=actor, channel=channel)
            messages.success(
                request, _("Archived: the QR code stops working; its adds stay attributed to it.")
            )
        elif verb == "duplicate":
            copy = services.duplicate_channel(actor=actor, channel=channel)
            messages.success(request, _("Duplicated as “%(name)s”.") % {"name": copy.name})
            return HttpResponseRedirect(reverse("channels:edit", args=[copy.pk]))
    except DomainError as exc:
        messages.error(request, exc.message)
    return HttpResponseRedirect(reverse("channels:detail", args=[channel.pk]))


@login_required
@require_POST
def channel_pause(request: HttpRequest, channel_id: int) -> HttpResponse:
    return _action(request, channel_id, "pause")


@login_required
@require_POST
def channel_resume(request: HttpRequest, channel_id: int) -> HttpResponse:
    return _action(request, channel_id, "resume")


@login_required
@require_POST
def channel_archive(request: HttpRequest, channel_id: int) -> HttpResponse:
    return _action(request, channel_id, "archive")


@login_required
@require_POST
def channel_duplicate(request: HttpRequest, channel_id: int) -> HttpResponse:
    return _action(request, channel_id, "duplicate")


@login_required
@require_POST
def group_create(request: HttpRequest) -> HttpResponse:
    actor = _configurer(request)
    try:
        services.create_channel_group(actor=actor, name=request.POST.get("name", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    return HttpResponseRedirect(reverse("channels:list"))


@login_required
@require_http_methods(["GET", "POST"])
def default_welcome(request: HttpRequest) -> HttpResponse:
    """The corp's default welcome message: adds without a channel, and channels that use the default."""
    actor = _configurer(request)
    error, status = "", 200
    variants: list[Any] = selectors.welcome_variants(actor.corp.pk, None)
    if request.method == "POST":
        try:
            with transaction.atomic():
                variants = _variant_inputs(request, actor)
                services.save_welcome_message(actor=actor, channel=None, variants=variants)
            messages.success(request, _("Default welcome message saved."))
            return HttpResponseRedirect(reverse("channels:default_welcome"))
        except DomainError as exc:
            error, status = exc.message, 400
    return render(
        request,
        "channels/default_welcome.html",
        {
            "variant_rows": _variant_rows(actor, variants),
            "weekday_labels": list(enumerate(WEEKDAY_LABELS)),
            "placeholders": ["{" + p + "}" for p in PLACEHOLDERS],
            "error": error,
        },
        status=status,
    )


@login_required
@require_POST
def welcome_preview(request: HttpRequest) -> HttpResponse:
    """htmx: a welcome text with example names in place of the placeholders."""
    _configurer(request)
    text = render_template(
        request.POST.get("text", "")[:4000],
        customer_name=_("Zhang San"),
        staff_name=request.POST.get("staff_name", "") or _("Wang Fang"),
        channel_name=request.POST.get("channel_name", ""),
    )
    return render(request, "channels/_preview.html", {"text": text})


# ---------- analytics ----------


def _stats_query(request: HttpRequest, actor: Actor, *, channel: Channel | None = None) -> stats.Query:
    """The analytics query of a request (GET): dates, granularity, breakdown, channel group or channel."""
    get = request.GET
    if channel is not None:
        return stats.make_query(
            actor,
            start=get.get("start"),
            end=get.get("end"),
            granularity=get.get("granularity", ""),
            breakdown=stats.BY_STAFF,
            channel_id=channel.pk,
        )
    picked = get.get("channel", "")
    group = get.get("group", "")
    channel_id = None
    if picked.isdigit():
        channel_id = _channel_or_404(actor, int(picked)).pk
    return stats.make_query(
        actor,
        start=get.get("start"),
        end=get.get("end"),
        granularity=get.get("granularity", ""),
        breakdown=get.get("breakdown", ""),
        channel_id=channel_id,
        group_id=int(group) if group.isdigit() else None,
        unknown_only=picked == "unknown",
    )


@dataclass
class TableRow:
    key: str
    label: str
    cells: list[str]


def _stats_context(result: stats.Stats, *, csv_url: str, csv_param: str) -> dict[str, Any]:
    q = result.query
    params: dict[str, str] = {
        "start": q.start.isoformat(),
        "end": q.end.isoformat(),
        "granularity": q.granularity,
        "breakdown": q.breakdown,
    }
    if q.unknown_only:
        params["channel"] = "unknown"
    elif q.channel_id is not None:
        params["channel"] = str(q.channel_id)
    if q.group_id is not None:
        params["group"] = str(q.group_id)
    return {
        "csv_url": csv_url,
        "csv_param": csv_param,
        "csv_query": urlencode(params),
        "stats": result,
        "query": q,
        "total_cells": stats.cells(result.total),
        "period_rows": [TableRow(r.key, r.label, stats.cells(r.figures)) for r in result.periods],
        "key_rows": [TableRow(r.key, r.label, stats.cells(r.figures)) for r in result.breakdown],
        "header": stats.csv_header("")[1:],
        "chart": stats.chart_data(result),
        "retention_days": list(stats.RETENTION),
        "granularities": [(stats.DAY, _("By day")), (stats.WEEK, _("By week"))],
    }


def _stats_csv(result: stats.Stats, table: str, name: str) -> HttpResponse:
    """One of the page's tables as CSV, UTF-8 with a BOM so Excel reads the Chinese."""
    import csv
    import io

    from siyu.customers.exports import UTF8_BOM

    q = result.query
    if table == "breakdown":
        first = _("Channel") if q.breakdown == stats.BY_CHANNEL else _("Staff member")
        rows = result.breakdown
    else:
        first = _("Week") if q.granularity == stats.WEEK else _("Day")
        rows = result.periods
    out = io.StringIO()
    out.write(UTF8_BOM)
    writer = csv.writer(out)
    writer.writerow(stats.csv_header(first))
    for row in rows:
        writer.writerow(stats.csv_line(row))
    writer.writerow(stats.csv_line(stats.Row(key="", label=_("Total"), figures=result.total)))
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{name}-{table}-{q.start.isoformat()}-{q.end.isoformat()}.csv"'
    )
    return response


def _invalid_stats(request: HttpRequest, error: DomainError) -> HttpResponse:
    return HttpResponse(str(error), status=400, content_type="text/plain; charset=utf-8")


@login_required
@require_GET
def channel_stats(request: HttpRequest) -> HttpResponse:
    """Analytics of all the channels the actor may see: charts, tables and their CSV
    (``?export=periods|breakdown``)."""
    actor = _actor(request)
    try:
        query = _stats_query(request, actor)
    except Invalid as error:
        return _invalid_stats(request, error)
    result = stats.stats(actor, query)
    export = request.GET.get("export", "")
    if export in ("periods", "breakdown"):
        return _stats_csv(result, export, "channels")
    context = _stats_context(result, csv_url=reverse("channels:stats"), csv_param="export")
    context.update(
        {
            "groups": list(ChannelGroup.objects.for_corp(actor.corp)),
            "channels": list(selectors.visible_channels(actor, include_archived=True).order_by("name")),
            "picked": request.GET.get("channel", ""),
            "breakdowns": [(stats.BY_CHANNEL, _("By channel")), (stats.BY_STAFF, _("By staff member"))],
        }
    )
    return render(request, "channels/stats.html", context)


@login_required
@require_GET
def channel_stats_csv(request: HttpRequest, channel_id: int) -> HttpResponse:
    """A channel's analytics tables as CSV (``?table=periods|breakdown``)."""
    actor = _actor(request)
    channel = _channel_or_404(actor, channel_id)
    try:
        query = _stats_query(request, actor, channel=channel)
    except Invalid as error:
        return _invalid_stats(request, error)
    table = request.GET.get("table", "periods")
    if table not in ("periods", "breakdown"):
        table = "periods"
    return _stats_csv(stats.stats(actor, query), table, f"channel-{channel.pk}")
