"""Corp settings pages: console users and roles, API keys, custom field definitions, the audit log.

Users, API keys and the audit log are the admin's (``actor.can_manage_users``); custom fields are
configuration (admin and operator, ``actor.can_configure``). Anyone else gets 403, and a row of another corp
is a 404. Every change goes through one service (``corps.services``, ``customers.services``) that validates it
and writes its audit entry in the same transaction; a refused form comes back with the error next to its field
(400) and nothing written. A generated password or a new API key is shown once, in the response to the POST
that made it (never stored, never cached), and never again.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.core.errors import Conflict, DomainError, Invalid
from siyu.corps.access import Actor
from siyu.corps.models import ApiKey, AuditLog, Department, Membership, Role, Staff
from siyu.corps.services import (
    create_api_key_as,
    create_console_user_as,
    deactivate_user,
    reactivate_user,
    reset_password,
    revoke_api_key_as,
    update_membership,
)
from siyu.corps.views import DepartmentNode, department_tree
from siyu.customers.models import Customer, CustomField
from siyu.customers.services import (
    create_custom_field_as,
    customers_with_custom_value,
    delete_custom_field,
    rename_custom_field,
    reorder_custom_fields,
)

# One screen of users or keys; a corp with more pages through them.
PAGE_SIZE = 50
# One screen of audit entries (keyset-paginated: the log only grows).
AUDIT_PAGE_SIZE = 50
DIRECTIONS = ("up", "down")
# Actions the audit log knows of, offered as suggestions in its filter (any prefix may be typed).
AUDIT_ACTIONS = (
    "customer.view",
    "customers.export",
    "customers.bulk_tag",
    "user.create",
    "user.update",
    "user.deactivate",
    "user.reactivate",
    "user.password_reset",
    "api_key.create",
    "api_key.revoke",
    "custom_field.create",
    "custom_field.rename",
    "custom_field.reorder",
    "custom_field.delete",
)


# ---------- access ----------


def _actor(request: HttpRequest) -> Actor:
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None:
        raise PermissionDenied(_("no role in any corp"))
    return actor


def _admin(request: HttpRequest) -> Actor:
    """The actor, if they manage users, keys and the audit log (admin); anyone else gets 403."""
    actor = _actor(request)
    if not actor.can_manage_users:
        raise PermissionDenied(_("this page needs the admin role"))
    return actor


def _configurer(request: HttpRequest) -> Actor:
    """The actor, if they may define custom fields (admin, operator); anyone else gets 403."""
    actor = _actor(request)
    if not actor.can_configure:
        raise PermissionDenied(_("custom fields need the admin or operator role"))
    return actor


def _membership_or_404(actor: Actor, user_id: int) -> Membership:
    membership = (
        Membership.objects.for_corp(actor.corp)
        .select_related("user", "staff")
        .filter(user_id=user_id)
        .first()
    )
    if membership is None:
        raise Http404("user not found")
    return membership


def _api_key_or_404(actor: Actor, key_id: int) -> ApiKey:
    api_key = ApiKey.objects.for_corp(actor.corp).select_related("staff").filter(pk=key_id).first()
    if api_key is None:
        raise Http404("API key not found")
    return api_key


def _field_or_404(actor: Actor, field_id: int) -> CustomField:
    field = CustomField.objects.for_corp(actor.corp).filter(pk=field_id).first()
    if field is None:
        raise Http404("custom field not found")
    return field


def _refused(form: forms.Form, exc: DomainError) -> None:
    """Put a service's refusal next to the field it names (or on top of the form)."""
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _page_of(request: HttpRequest, rows: Any) -> Page[Any]:
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))


def _show_secret(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    """The one response that carries a new password or key: never cached, never shown again."""
    response = render(request, "corps/settings_secret.html", context)
    add_never_cache_headers(response)
    return response


# ---------- forms ----------


class StaffChoiceField(forms.ModelChoiceField[Staff]):
    def label_from_instance(self, obj: Staff) -> str:
        return f"{obj.name} ({obj.userid})"


class MembershipForm(forms.Form):
    """A role in the corp, the staff member the login is, and the departments a manager manages."""

    role = forms.ChoiceField(choices=Role.choices)
    staff = StaffChoiceField(queryset=Staff.objects.none(), required=False)
    departments = forms.ModelMultipleChoiceField(queryset=Department.objects.none(), required=False)

    def __init__(self, *args: Any, actor: Actor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only this corp's rows are valid choices: another corp's id is "not a valid choice".
        self.fields["staff"].queryset = Staff.objects.for_corp(actor.corp).order_by("name", "id")  # type: ignore[attr-defined]
        self.fields["departments"].queryset = Department.objects.for_corp(actor.corp)  # type: ignore[attr-defined]


class NewUserForm(MembershipForm):
    username = forms.CharField(max_length=150)
    # Empty: Siyu generates one and shows it once.
    password = forms.CharField(required=False, strip=False, widget=forms.PasswordInput)

    field_order = ["username", "password", "role", "staff", "departments"]


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.OPERATOR)
    staff = StaffChoiceField(queryset=Staff.objects.none(), required=False)

    def __init__(self, *args: Any, actor: Actor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["staff"].queryset = Staff.objects.for_corp(actor.corp).order_by("name", "id")  # type: ignore[attr-defined]


class CustomFieldForm(forms.Form):
    key = forms.CharField(max_length=40)
    label = forms.CharField(max_length=40)
    kind = forms.ChoiceField(choices=CustomField.Kind.choices)
    choices = forms.CharField(required=False, widget=forms.Textarea)


def _picker_context(actor: Actor, form: forms.Form) -> dict[str, Any]:
    """Staff and department options for a role form, with what the form has selected."""
    staff = list(Staff.objects.for_corp(actor.corp).order_by("name", "id"))
    nodes: list[DepartmentNode] = department_tree(
        list(Department.objects.for_corp(actor.corp).order_by("order", "wecom_id"))
    )
    selected = form["departments"].value() if "departments" in form.fields else []
    return {
        "staff_options": staff,
        "department_nodes": nodes,
        "selected_staff": str(form["staff"].value() or ""),
        "selected_departments": {str(v) for v in selected or []},
        "roles": Role.choices,
    }


# ---------- users and roles ----------


@login_required
@require_GET
def user_list(request: HttpRequest) -> HttpResponse:
    """The corp's console users: role, linked staff member, managed departments, last login, active."""
    actor = _admin(request)
    memberships = (
        Membership.objects.for_corp(actor.corp)
        .select_related("user", "staff")
        .prefetch_related("departments")
        .order_by("user__username", "pk")
    )
    page = _page_of(request, memberships)
    return render(request, "corps/settings_users.html", {"page": page, "me": request.user.pk})


@login_required
@require_http_methods(["GET", "POST"])
def user_create(request: HttpRequest) -> HttpResponse:
    """Create a login; an empty password is generated and shown once."""
    actor = _admin(request)
    form = NewUserForm(request.POST or None, actor=actor, initial={"role": Role.STAFF})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            new = create_console_user_as(
                actor=actor,
                username=data["username"],
                password=data["password"],
                role=data["role"],
                staff=data["staff"],
                departments=list(data["departments"]),
            )
        except (Invalid, Conflict) as exc:  # Conflict: the same username created a moment earlier
            _refused(form, exc)
        else:
            if new.password is None:
                messages.success(request, _("User “%(name)s” created.") % {"name": new.user.username})
                return HttpResponseRedirect(reverse("corps:settings_users"))
            return _show_secret(
                request,
                {
                    "what": "password",
                    "secret": new.password,
                    "username": new.user.username,
                    "back": reverse("corps:settings_users"),
                },
            )
    context = {"form": form, **_picker_context(actor, form)}
    status = 400 if request.method == "POST" else 200
    return render(request, "corps/settings_user_form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def user_edit(request: HttpRequest, user_id: int) -> HttpResponse:
    """Change a user's role, staff link and departments; the account actions sit on the same page."""
    actor = _admin(request)
    membership = _membership_or_404(actor, user_id)
    initial = {
        "role": membership.role,
        "staff": membership.staff_id,
        "departments": [d.pk for d in membership.departments.all()],
    }
    form = MembershipForm(request.POST or None, actor=actor, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            update_membership(
                actor=actor,
                membership=membership,
                role=data["role"],
                staff=data["staff"],
                departments=list(data["departments"]),
            )
        except Invalid as exc:
            _refused(form, exc)
        else:
            messages.success(request, _("User “%(name)s” saved.") % {"name": membership.user.username})
            if membership.user_id == request.user.pk and data["role"] != Role.ADMIN:
                return HttpResponseRedirect(reverse("console:home"))  # no longer allowed here
            return HttpResponseRedirect(reverse("corps:settings_users"))
    return _user_page(request, actor, membership, form, status=400 if request.method == "POST" else 200)


def _user_page(
    request: HttpRequest,
    actor: Actor,
    membership: Membership,
    form: MembershipForm,
    *,
    account_error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "form": form,
        "membership": membership,
        "member": membership.user,
        "is_me": membership.user_id == request.user.pk,
        "account_error": account_error,
        **_picker_context(actor, form),
    }
    return render(request, "corps/settings_user_form.html", context, status=status)


def _account_refused(
    request: HttpRequest, actor: Actor, membership: Membership, exc: Invalid
) -> HttpResponse:
    form = MembershipForm(
        actor=actor,
        initial={
            "role": membership.role,
            "staff": membership.staff_id,
            "departments": [d.pk for d in membership.departments.all()],
        },
    )
    return _user_page(request, actor, membership, form, account_error=exc.message, status=400)


@login_required
@require_POST
def user_active(request: HttpRequest, user_id: int) -> HttpResponse:
    """Deactivate (``active=0``) or reactivate (``active=1``) a login; it is never deleted."""
    actor = _admin(request)
    membership = _membership_or_404(actor, user_id)
    wanted = request.POST.get("active", "")
    if wanted not in ("0", "1"):
        return _account_refused(request, actor, membership, Invalid(_("Say active=0 or active=1.")))
    try:
        if wanted == "1":
            reactivate_user(actor=actor, membership=membership)
            messages.success(request, _("User “%(name)s” can log in again.") % {"name": membership.user})
        else:
            deactivate_user(actor=actor, membership=membership)
            messages.success(request, _("User “%(name)s” deactivated.") % {"name": membership.user})
    except Invalid as exc:
        return _account_refused(request, actor, membership, exc)
    return HttpResponseRedirect(reverse("corps:settings_users"))


@login_required
@require_POST
def user_password(request: HttpRequest, user_id: int) -> HttpResponse:
    """Reset a login's password to a generated one, shown once."""
    actor = _admin(request)
    membership = _membership_or_404(actor, user_id)
    try:
        password = reset_password(actor=actor, membership=membership)
    except Invalid as exc:
        return _account_refused(request, actor, membership, exc)
    if membership.user_id == request.user.pk:
        update_session_auth_hash(request, membership.user)  # resetting one's own password keeps one logged in
    return _show_secret(
        request,
        {
            "what": "password",
            "secret": password,
            "username": membership.user.username,
            "back": reverse("corps:settings_users"),
        },
    )


# ---------- API keys ----------


def _api_key_page(request: HttpRequest, actor: Actor, form: ApiKeyForm, *, status: int = 200) -> HttpResponse:
    keys = ApiKey.objects.for_corp(actor.corp).select_related("staff").order_by("-created_at", "-pk")
    context = {
        "page": _page_of(request, keys),
        "form": form,
        "staff_options": list(Staff.objects.for_corp(actor.corp).order_by("name", "id")),
        "selected_staff": str(form["staff"].value() or ""),
        "roles": Role.choices,
    }
    return render(request, "corps/settings_api_keys.html", context, status=status)


@login_required
@require_GET
def api_key_list(request: HttpRequest) -> HttpResponse:
    """The corp's API keys (prefix only: the key itself is never stored) and a form for a new one."""
    actor = _admin(request)
    return _api_key_page(request, actor, ApiKeyForm(actor=actor))


@login_required
@require_POST
def api_key_create(request: HttpRequest) -> HttpResponse:
    """Create a key and show it once."""
    actor = _admin(request)
    form = ApiKeyForm(request.POST, actor=actor)
    if form.is_valid():
        data = form.cleaned_data
        try:
            new = create_api_key_as(actor=actor, name=data["name"], role=data["role"], staff=data["staff"])
        except Invalid as exc:
            _refused(form, exc)
        else:
            return _show_secret(
                request,
                {
                    "what": "api_key",
                    "secret": new.plaintext,
                    "api_key": new.api_key,
                    "back": reverse("corps:settings_api_keys"),
                },
            )
    return _api_key_page(request, actor, form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes the key (it stops working at once)."""
    actor = _admin(request)
    api_key = _api_key_or_404(actor, key_id)
    if request.method == "POST":
        revoke_api_key_as(actor=actor, api_key=api_key)
        messages.success(request, _("API key “%(name)s” revoked.") % {"name": api_key.name or api_key.prefix})
        return HttpResponseRedirect(reverse("corps:settings_api_keys"))
    return render(request, "corps/settings_api_key_revoke.html", {"api_key": api_key})


# ---------- custom fields ----------


@dataclass
class FieldRow:
    field: CustomField
    rename_value: str
    rename_error: str = ""


def _field_page(
    request: HttpRequest,
    actor: Actor,
    form: CustomFieldForm,
    *,
    errors: dict[int, str] | None = None,
    values: dict[int, str] | None = None,
    page_error: str = "",
    status: int = 200,
) -> HttpResponse:
    errors, values = errors or {}, values or {}
    rows = [
        FieldRow(field=f, rename_value=values.get(f.pk, f.label), rename_error=errors.get(f.pk, ""))
        for f in CustomField.objects.for_corp(actor.corp).order_by("order", "id")
    ]
    context = {"rows": rows, "form": form, "kinds": CustomField.Kind.choices, "page_error": page_error}
    return render(request, "corps/settings_fields.html", context, status=status)


@login_required
@require_GET
def field_list(request: HttpRequest) -> HttpResponse:
    """The corp's custom fields in the order the customer page shows them, and a form for a new one."""
    actor = _configurer(request)
    return _field_page(request, actor, CustomFieldForm(initial={"kind": CustomField.Kind.TEXT}))


@login_required
@require_POST
def field_create(request: HttpRequest) -> HttpResponse:
    actor = _configurer(request)
    form = CustomFieldForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            field = create_custom_field_as(
                actor=actor,
                key=data["key"],
                label=data["label"],
                kind=data["kind"],
                choices=data["choices"].splitlines(),
            )
        except Invalid as exc:
            _refused(form, exc)
        else:
            messages.success(request, _("Custom field “%(label)s” created.") % {"label": field.label})
            return HttpResponseRedirect(reverse("corps:settings_fields") + f"#field-{field.pk}")
    return _field_page(request, actor, form, status=400)


@login_required
@require_POST
def field_rename(request: HttpRequest, field_id: int) -> HttpResponse:
    actor = _configurer(request)
    field = _field_or_404(actor, field_id)
    label = request.POST.get("label", "")
    try:
        rename_custom_field(actor=actor, field=field, label=label)
    except Invalid as exc:
        return _field_page(
            request,
            actor,
            CustomFieldForm(),
            errors={field.pk: exc.message},
            values={field.pk: label},
            status=400,
        )
    messages.success(request, _("Custom field renamed."))
    return HttpResponseRedirect(reverse("corps:settings_fields") + f"#field-{field.pk}")


@login_required
@require_POST
def field_move(request: HttpRequest, field_id: int) -> HttpResponse:
    """Move a field one place up or down (``reorder_custom_fields`` with the whole new order)."""
    actor = _configurer(request)
    field = _field_or_404(actor, field_id)
    direction = request.POST.get("direction", "")
    if direction not in DIRECTIONS:
        return _field_page(request, actor, CustomFieldForm(), page_error=_("Move up or down."), status=400)
    ids = list(CustomField.objects.for_corp(actor.corp).order_by("order", "id").values_list("pk", flat=True))
    position = ids.index(field.pk)
    other = position - 1 if direction == "up" else position + 1
    if 0 <= other < len(ids):
        ids[position], ids[other] = ids[other], ids[position]
        reorder_custom_fields(actor=actor, field_ids=ids)
    return HttpResponseRedirect(reverse("corps:settings_fields") + f"#field-{field.pk}")


@login_required
@require_http_methods(["GET", "POST"])
def field_delete(request: HttpRequest, field_id: int) -> HttpResponse:
    """GET says how many customers hold a value; POST deletes the field and those values together."""
    actor = _configurer(request)
    field = _field_or_404(actor, field_id)
    if request.method == "POST":
        removed = delete_custom_field(actor=actor, field=field)
        messages.success(
            request,
            _("Custom field “%(label)s” deleted with its values on %(n)d customers.")
            % {"label": field.label, "n": removed},
        )
        return HttpResponseRedirect(reverse("corps:settings_fields"))
    return render(
        request,
        "corps/settings_field_delete.html",
        {"field": field, "customers": customers_with_custom_value(field)},
    )


# ---------- audit log ----------


@dataclass
class AuditRow:
    entry: AuditLog
    object_label: str
    object_url: str
    detail: str


class AuditFilterForm(forms.Form):
    who = forms.CharField(required=False)  # "u<user id>" or "k<api key id>"
    action = forms.CharField(required=False, max_length=64)
    since = forms.DateField(required=False)
    until = forms.DateField(required=False)
    cursor = forms.CharField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("The start date is after the end date."))
        return data


def encode_audit_cursor(entry: AuditLog) -> str:
    raw = json.dumps([entry.at.isoformat(), entry.pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_audit_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        at, pk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = dt.datetime.fromisoformat(at)
        if not isinstance(pk, int) or moment.tzinfo is None:
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise Invalid(_("This page link is broken; start from the newest entries."), field="cursor") from exc
    return moment, pk


def _audit_who(who: str) -> Q:
    if len(who) > 1 and who[0] in "uk" and who[1:].isdigit():
        return Q(user_id=int(who[1:])) if who[0] == "u" else Q(api_key_id=int(who[1:]))
    raise Invalid(_("Unknown user or API key."), field="who")


def _audit_rows(actor: Actor, entries: list[AuditLog]) -> list[AuditRow]:
    """Entries with what they name, looked up in one query per kind of object whatever the page holds."""
    ids: dict[str, set[int]] = {"customer": set(), "user": set(), "api_key": set()}
    for entry in entries:
        if entry.object_type in ids and entry.object_id.isdigit():
            ids[entry.object_type].add(int(entry.object_id))
    customers = (
        dict(Customer.objects.for_corp(actor.corp).filter(pk__in=ids["customer"]).values_list("pk", "name"))
        if ids["customer"]
        else {}
    )
    users = (
        dict(
            Membership.objects.for_corp(actor.corp)
            .filter(user_id__in=ids["user"])
            .values_list("user_id", "user__username")
        )
        if ids["user"]
        else {}
    )
    keys = (
        {k.pk: k for k in ApiKey.objects.for_corp(actor.corp).filter(pk__in=ids["api_key"])}
        if ids["api_key"]
        else {}
    )
    rows = []
    for entry in entries:
        label, url = entry.object_type, ""
        pk = int(entry.object_id) if entry.object_id.isdigit() else None
        if entry.object_type == "customer" and pk is not None:
            label = customers.get(pk, f"#{pk}")
            if pk in customers:
                url = reverse("customers:detail", args=[pk])
        elif entry.object_type == "user" and pk is not None:
            label = users.get(pk, f"#{pk}")
            if pk in users:
                url = reverse("corps:settings_user_edit", args=[pk])
        elif entry.object_type == "api_key" and pk is not None:
            key = keys.get(pk)
            label = f"{key.name} ({key.prefix}…)" if key else f"#{pk}"
        elif entry.object_type == "custom_field" and entry.detail.get("key"):
            label = str(entry.detail["key"])
        elif entry.object_id:
            label = f"{entry.object_type} #{entry.object_id}"
        detail = json.dumps(entry.detail, ensure_ascii=False, sort_keys=True) if entry.detail else ""
        rows.append(AuditRow(entry=entry, object_label=label, object_url=url, detail=detail))
    return rows


@login_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """Who read or changed what, newest first, keyset-paginated; filter by user or key, action and dates."""
    actor = _admin(request)
    form = AuditFilterForm(request.GET)
    entries = AuditLog.objects.for_corp(actor.corp)
    errors: list[str] = []
    if form.is_valid():
        data = form.cleaned_data
        zone = ZoneInfo(actor.corp.time_zone)
        try:
            if data["who"]:
                entries = entries.filter(_audit_who(data["who"]))
            if data["action"]:
                entries = entries.filter(action__startswith=data["action"].strip())
            if data["since"]:
                entries = entries.filter(at__gte=dt.datetime.combine(data["since"], dt.time(), zone))
            if data["until"]:
                end = data["until"] + dt.timedelta(days=1)
                entries = entries.filter(at__lt=dt.datetime.combine(end, dt.time(), zone))
            if data["cursor"]:
                at, pk = decode_audit_cursor(data["cursor"])
                entries = entries.filter(Q(at__lt=at) | Q(at=at, pk__lt=pk))
        except Invalid as exc:
            errors.append(exc.message)
    else:
        errors.extend(str(e) for field_errors in form.errors.values() for e in field_errors)
    if errors:
        entries = entries.none()
    page = list(entries.select_related("user", "api_key").order_by("-at", "-pk")[: AUDIT_PAGE_SIZE + 1])
    more = len(page) > AUDIT_PAGE_SIZE
    page = page[:AUDIT_PAGE_SIZE]
    query = request.GET.copy()
    query.pop("cursor", None)
    next_query = ""
    if more:
        following = query.copy()
        following["cursor"] = encode_audit_cursor(page[-1])
        next_query = following.urlencode()
    context = {
        "rows": _audit_rows(actor, page),
        "form": form,
        "errors": errors,
        "filter_query": query.urlencode(),
        "next_query": next_query,
        "paged": bool(request.GET.get("cursor")),
        "user_options": [
            (f"u{user_id}", username)
            for user_id, username in Membership.objects.for_corp(actor.corp)
            .order_by("user__username")
            .values_list("user_id", "user__username")
        ],
        "key_options": [
            (f"k{pk}", f"{name or prefix} ({prefix}…)")
            for pk, name, prefix in ApiKey.objects.for_corp(actor.corp)
            .order_by("name", "pk")
            .values_list("pk", "name", "prefix")
        ],
        "actions": AUDIT_ACTIONS,
        "who": request.GET.get("who", ""),
    }
    return render(request, "corps/settings_audit.html", context, status=400 if errors else 200)
