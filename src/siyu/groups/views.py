"""Console pages of group live codes and group welcome messages, for admins and operators.

Thin: parse the form, call ``groups.live_codes`` or ``groups.welcome``, render. A refused value is shown next
to its form (400) and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.core.clock import now
from siyu.core.errors import DomainError, Invalid
from siyu.corps.access import Actor
from siyu.groups import live_codes, welcome
from siyu.groups.images import MAX_UPLOAD_BYTES, POSTER_SIZES, qr_png
from siyu.groups.models import GroupCode, GroupCodeEntry, GroupWelcomeTemplate

IMAGE_FIELD = "image"


def _configurer(request: HttpRequest) -> Actor:
    """The actor, if they may manage group codes and welcome messages (admin, operator); else 403."""
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None or not actor.can_configure:
        raise PermissionDenied("group codes need the admin or operator role")
    return actor


def _code(actor: Actor, code_id: int) -> GroupCode:
    try:
        return live_codes.get_group_code(actor, code_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc


def _entry(actor: Actor, code: GroupCode, entry_id: int) -> GroupCodeEntry:
    try:
        return live_codes.get_entry(actor, code, entry_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc


def landing_url(request: HttpRequest, code: GroupCode) -> str:
    """The code's public link, on ``SIYU_PUBLIC_URL`` when set, else on the address of this request."""
    path = reverse("group_code_landing", args=[code.token])
    base = settings.SIYU["PUBLIC_URL"]
    return f"{base}{path}" if base else request.build_absolute_uri(path)


def _int(value: str | None, field: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not value.lstrip("-").isdigit():
        raise Invalid(_("enter a whole number"), field=field)
    return int(value)


def _local_datetime(value: str | None, actor: Actor) -> dt.datetime | None:
    """A ``datetime-local`` input, meant in the corp's time zone; blank is None."""
    value = (value or "").strip()
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise Invalid(_("enter a date and time"), field="expires_at")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, _zone(actor))
    return parsed


def _zone(actor: Actor) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(actor.corp.time_zone or settings.TIME_ZONE)


def _upload(request: HttpRequest) -> bytes | None:
    upload = request.FILES.get(IMAGE_FIELD)
    if upload is None:
        return None
    # Read at most one byte past the limit: the image check refuses anything larger with a clear message.
    return upload.read(MAX_UPLOAD_BYTES + 1)


# ---------- group codes ----------


def _list_page(request: HttpRequest, actor: Actor, *, error: str = "", values: dict[str, str] | None = None,
               status: int = 200) -> HttpResponse:  # fmt: skip
    views = live_codes.list_group_codes(actor)
    context = {
        "codes": views,
        "alerts": [v for v in views if v.unavailable],
        "expiring": [v for v in views if v.expiring and not v.unavailable],
        "error": error,
        "values": values or {},
        "default_limit": live_codes.DEFAULT_MEMBER_LIMIT,
    }
    return render(request, "groups/code_list.html", context, status=status)


@login_required
@require_GET
def code_list(request: HttpRequest) -> HttpResponse:
    """Every group code with the group it serves, its counts and what needs attention."""
    return _list_page(request, _configurer(request))


@login_required
@require_POST
def code_create(request: HttpRequest) -> HttpResponse:
    actor = _configurer(request)
    values = {k: request.POST.get(k, "") for k in ("name", "title", "description", "default_member_limit")}
    try:
        code = live_codes.create_group_code(
            actor=actor,
            name=values["name"],
            title=values["title"],
            description=values["description"],
            default_member_limit=_int(values["default_member_limit"], "default_member_limit"),
        )
    except Invalid as exc:
        return _list_page(request, actor, error=exc.message, values=values, status=400)
    messages.success(request, _("Group code “%(name)s” created: add its groups.") % {"name": code.name})
    return HttpResponseRedirect(reverse("groups:code_detail", args=[code.pk]))


def _detail_page(
    request: HttpRequest,
    actor: Actor,
    code: GroupCode,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    view = live_codes.code_view(code)
    default_expiry = timezone.localtime(now() + live_codes.QR_VALID_FOR, _zone(actor))
    context = {
        "view": view,
        "code": code,
        "landing_url": landing_url(request, code),
        "groups": list(live_codes.groups_for_pool(actor)[:2000]),
        "errors": errors or {},
        "values": values or {},
        "poster_sizes": list(POSTER_SIZES),
        "default_expiry": default_expiry.strftime("%Y-%m-%dT%H:%M"),
        "max_expiry": default_expiry.strftime("%Y-%m-%dT%H:%M"),
        "warning_hours": int(live_codes.EXPIRY_WARNING.total_seconds() // 3600),
        "now": now(),
    }
    return render(request, "groups/code_detail.html", context, status=status)


@login_required
@require_GET
def code_detail(request: HttpRequest, code_id: int) -> HttpResponse:
    """A code: its public link and QR, its pool in order with each state, and the forms to change it."""
    actor = _configurer(request)
    return _detail_page(request, actor, _code(actor, code_id))


@login_required
@require_POST
def code_edit(request: HttpRequest, code_id: int) -> HttpResponse:
    actor = _configurer(request)
    code = _code(actor, code_id)
    values = {
        k: request.POST.get(k, "") for k in ("name", "title", "description", "default_member_limit", "status")
    }
    try:
        live_codes.update_group_code(
            actor=actor,
            code=code,
            name=values["name"],
            title=values["title"],
            description=values["description"],
            status=values["status"] or None,
            default_member_limit=_int(values["default_member_limit"], "default_member_limit"),
        )
    except Invalid as exc:
        code.refresh_from_db()
        return _detail_page(request, actor, code, errors={"code": exc.message}, values=values, status=400)
    messages.success(request, _("Group code saved."))
    return HttpResponseRedirect(reverse("groups:code_detail", args=[code.pk]))


@login_required
@require_http_methods(["GET", "POST"])
def code_delete(request: HttpRequest, code_id: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes the code (its printed QR stops working)."""
    actor = _configurer(request)
    code = _code(actor, code_id)
    if request.method == "POST":
        live_codes.delete_group_code(actor=actor, code=code)
        messages.success(request, _("Group code “%(name)s” deleted.") % {"name": code.name})
        return HttpResponseRedirect(reverse("groups:code_list"))
    return render(request, "groups/code_delete.html", {"code": code, "view": live_codes.code_view(code)})


@login_required
@require_POST
def entry_add(request: HttpRequest, code_id: int) -> HttpResponse:
    """Add a group to the end of the pool with its uploaded QR image."""
    actor = _configurer(request)
    code = _code(actor, code_id)
    values = {k: request.POST.get(k, "") for k in ("group_id", "member_limit", "expires_at")}
    try:
        group_id = _int(values["group_id"], "group_id")
        if group_id is None:
            raise Invalid(_("choose a group"), field="group_id")
        entry = live_codes.add_code_entry(
            actor=actor,
            code=code,
            group_id=group_id,
            image=_upload(request) or b"",
            member_limit=_int(values["member_limit"], "member_limit"),
            expires_at=_local_datetime(values["expires_at"], actor),
        )
    except DomainError as exc:
        return _detail_page(request, actor, code, errors={"entry": exc.message}, values=values, status=400)
    messages.success(request, _("Group “%(name)s” added to the code.") % {"name": entry.group.name})
    return HttpResponseRedirect(reverse("groups:code_detail", args=[code.pk]) + f"#entry-{entry.pk}")


@login_required
@require_POST
def entry_edit(request: HttpRequest, code_id: int, entry_id: int) -> HttpResponse:
    """Change a group's member limit or expiry, switch it on or off, or replace its QR image."""
    actor = _configurer(request)
    code = _code(actor, code_id)
    entry = _entry(actor, code, entry_id)
    try:
        # An unticked checkbox sends nothing: the hidden "enabled_seen" says the form had the switch.
        seen = request.POST.get("enabled_seen") == "1"
        live_codes.update_code_entry(
            actor=actor,
            entry=entry,
            member_limit=_int(request.POST.get("member_limit"), "member_limit"),
            expires_at=_local_datetime(request.POST.get("expires_at"), actor),
            enabled=request.POST.get("enabled") == "1" if seen else None,
            image=_upload(request),
        )
    except DomainError as exc:
        errors = {"entry_id": str(entry.pk), "entry_edit": exc.message}
        return _detail_page(request, actor, code, errors=errors, status=400)
    messages.success(request, _("Group “%(name)s” saved.") % {"name": entry.group.name})
    return HttpResponseRedirect(reverse("groups:code_detail", args=[code.pk]) + f"#entry-{entry.pk}")


@login_required
@require_POST
def entry_move(request: HttpRequest, code_id: int, entry_id: int) -> HttpResponse:
    actor = _configurer(request)
    code = _code(actor, code_id)
    entry = _entry(actor, code, entry_id)
    try:
        live_codes.move_code_entry(actor=actor, entry=entry, direction=request.POST.get("direction", ""))
    except DomainError as exc:
        return _detail_page(request, actor, code, errors={"page": exc.message}, status=400)
    return HttpResponseRedirect(reverse("groups:code_detail", args=[code.pk]) + f"#entry-{entry.pk}")


@login_required
@require_POST
def entry_remove(request: HttpRequest, code_id: int, entry_id: int) -> HttpResponse:
    actor = _configurer(request)
    code = _code(actor, code_id)
    entry = _entry(actor, code, entry_id)
    live_codes.remove_code_entry(actor=actor, entry=entry)
    messages.success(request, _("Group “%(name)s” taken out of the code.") % {"name": entry.group.name})
    return HttpResponseRedirect(reverse("groups:code_detail", args=[code.pk]))


@login_required
@require_GET
def entry_image(request: HttpRequest, code_id: int, entry_id: int) -> HttpResponse:
    """A group's uploaded QR image, for the console."""
    actor = _configurer(request)
    entry = _entry(actor, _code(actor, code_id), entry_id)
    response = HttpResponse(bytes(entry.image), content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


@login_required
@require_GET
def code_qr(request: HttpRequest, code_id: int, size: str) -> HttpResponse:
    """The QR of the code's public link to print, small, medium or large (``?download=1`` to save it)."""
    actor = _configurer(request)
    code = _code(actor, code_id)
    if size not in POSTER_SIZES:
        raise Http404("no such size")
    response = HttpResponse(
        qr_png(landing_url(request, code), size=POSTER_SIZES[size]), content_type="image/png"
    )
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="group-code-{code.pk}-{size}.png"'
    return response


# ---------- group welcome messages ----------

ATTACHMENT_INPUTS = sorted({name for fields in welcome.ATTACHMENT_FIELDS.values() for name, _r in fields})


def _welcome_values(request: HttpRequest) -> dict[str, str]:
    keys = ["name", "text", "attachment_type", *[f"attachment_{n}" for n in ATTACHMENT_INPUTS]]
    return {k: request.POST.get(k, "") for k in keys}


def _attachment_of(values: dict[str, str]) -> dict[str, str]:
    return {n: values.get(f"attachment_{n}", "") for n in ATTACHMENT_INPUTS}


def _welcome_list(
    request: HttpRequest,
    actor: Actor,
    *,
    error: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    templates = list(welcome.live_templates(actor))
    states = welcome.template_states(actor.corp.pk, templates)
    context = {
        "templates": [(t, states[t.pk]) for t in templates],
        "error": error,
        "values": values or {"notify": "1"},
        "attachment_types": GroupWelcomeTemplate.AttachmentType.choices,
        "max_templates": welcome.MAX_TEMPLATES,
        "nickname": welcome.NICKNAME,
        "connected": bool(actor.corp.secret),
    }
    return render(request, "groups/welcome_list.html", context, status=status)


@login_required
@require_GET
def welcome_list(request: HttpRequest) -> HttpResponse:
    """The corp's group welcome messages, where each stands with WeCom, and a form for a new one."""
    return _welcome_list(request, _configurer(request))


@login_required
@require_POST
def welcome_create(request: HttpRequest) -> HttpResponse:
    actor = _configurer(request)
    values = _welcome_values(request)
    values["notify"] = "1" if request.POST.get("notify") == "1" else ""
    try:
        template = welcome.create_group_welcome(
            actor=actor,
            name=values["name"],
            text=values["text"],
            attachment_type=values["attachment_type"],
            attachment=_attachment_of(values),
            notify=bool(values["notify"]),
        )
    except Invalid as exc:
        return _welcome_list(request, actor, error=exc.message, values=values, status=400)
    messages.success(request, _("Group welcome message “%(name)s” created.") % {"name": template.name})
    return HttpResponseRedirect(reverse("groups:welcome_list") + f"#welcome-{template.pk}")


@login_required
@require_http_methods(["GET", "POST"])
def welcome_edit(request: HttpRequest, template_id: int) -> HttpResponse:
    """GET shows the template in a form; POST saves it (a changed content is sent to WeCom)."""
    actor = _configurer(request)
    try:
        template = welcome.get_template(actor, template_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    error = ""
    if request.method == "POST":
        values = _welcome_values(request)
        try:
            welcome.update_group_welcome(
                actor=actor,
                template=template,
                name=values["name"],
                text=values["text"],
                attachment_type=values["attachment_type"],
                attachment=_attachment_of(values),
            )
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, _("Group welcome message saved."))
            return HttpResponseRedirect(reverse("groups:welcome_list") + f"#welcome-{template.pk}")
    else:
        values = {"name": template.name, "text": template.text, "attachment_type": template.attachment_type}
        values.update({f"attachment_{k}": str(v) for k, v in template.attachment.items()})
    return render(
        request,
        "groups/welcome_edit.html",
        {
            "template": template,
            "values": values,
            "error": error,
            "attachment_types": GroupWelcomeTemplate.AttachmentType.choices,
            "nickname": welcome.NICKNAME,
            "state": welcome.template_states(actor.corp.pk, [template])[template.pk],
        },
        status=400 if error else 200,
    )


@login_required
@require_POST
def welcome_delete(request: HttpRequest, template_id: int) -> HttpResponse:
    actor = _configurer(request)
    try:
        template = welcome.get_template(actor, template_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    welcome.delete_group_welcome(actor=actor, template=template)
    messages.success(request, _("Group welcome message “%(name)s” deleted.") % {"name": template.name})
    return HttpResponseRedirect(reverse("groups:welcome_list"))
