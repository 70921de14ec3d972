"""Operations on corps, console users and API keys. The only write path other apps may call."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from siyu.core import crypto
from siyu.core.clock import now
from siyu.core.errors import Conflict, Invalid, NotFound
from siyu.corps.access import Actor
from siyu.corps.models import ApiKey, AuditLog, Corp, Department, Membership, Role, Staff, StaffDepartment

# WeCom callback configuration: Token is at most 32 letters/digits, EncodingAESKey exactly 43 letters/digits
# (base64 of a 32-byte AES key without its trailing "=").
TOKEN_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")
AES_KEY_RE = re.compile(r"^[A-Za-z0-9]{43}$")
CORPID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
API_KEY_PREFIX = "siyu_"


def validate_aes_key(aes_key: str) -> None:
    if len(aes_key) != 43:
        raise Invalid(
            _("EncodingAESKey must be exactly 43 characters, got %(length)d") % {"length": len(aes_key)},
            field="aes_key",
        )
    if not AES_KEY_RE.match(aes_key):
        raise Invalid(_("EncodingAESKey may contain only letters and digits"), field="aes_key")
    try:
        raw = base64.b64decode(aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise Invalid(_("EncodingAESKey is not valid base64"), field="aes_key") from exc
    if len(raw) != 32:  # pragma: no cover - 43 base64 characters always decode to 32 bytes
        raise Invalid(_("EncodingAESKey must decode to a 32-byte key"), field="aes_key")


def create_corp(*, name: str, corpid: str, secret: str = "", token: str = "", aes_key: str = "") -> Corp:
    """Create a tenant; validates WeCom's formats and stores the secrets encrypted."""
    name = name.strip()
    if not name:
        raise Invalid(_("corp name is required"), field="name")
    if not CORPID_RE.match(corpid):
        raise Invalid(_("corpid must be 1–64 letters, digits, '-' or '_'"), field="corpid")
    if token and not TOKEN_RE.match(token):
        raise Invalid(_("callback Token must be 1–32 letters or digits"), field="token")
    if aes_key:
        validate_aes_key(aes_key)
    if Corp.objects.filter(corpid=corpid).exists():
        raise Conflict(_("a corp with corpid %(corpid)s already exists") % {"corpid": corpid})
    return Corp.objects.create(
        name=name,
        corpid=corpid,
        secret_encrypted=crypto.encrypt(secret),
        token_encrypted=crypto.encrypt(token),
        aes_key_encrypted=crypto.encrypt(aes_key),
    )


@transaction.atomic
def set_corp_credentials(*, corp: Corp, secret: str, token: str, aes_key: str) -> list[str]:
    """Replace the corp's WeCom secret and callback Token/EncodingAESKey (encrypted); returns what changed."""
    if token and not TOKEN_RE.match(token):
        raise Invalid(_("callback Token must be 1–32 letters or digits"), field="token")
    if aes_key:
        validate_aes_key(aes_key)
    wanted = {"secret": secret, "token": token, "aes_key": aes_key}
    changed = [name for name, value in wanted.items() if getattr(corp, name) != value]
    for name in changed:
        setattr(corp, f"{name}_encrypted", crypto.encrypt(wanted[name]))
    if changed:
        corp.save(update_fields=[f"{name}_encrypted" for name in changed])
        audit(
            corp=corp,
            action="corp.credentials",
            object_type="corp",
            object_id=corp.pk,
            detail={"changed": changed},
        )
    return changed


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    plaintext: str


def hash_api_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_api_key(
    *, corp: Corp, name: str = "", role: str = Role.OPERATOR, staff: Staff | None = None
) -> NewApiKey:
    """Create an API key; the plaintext is returned once and never stored."""
    if role not in Role.values:
        raise Invalid(_("unknown role “%(role)s”") % {"role": role}, field="role")
    if staff is not None and staff.corp_id != corp.pk:
        raise Invalid(_("staff member belongs to another corp"), field="staff")
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        corp=corp, name=name, prefix=plaintext[:12], key_hash=hash_api_key(plaintext), role=role, staff=staff
    )
    return NewApiKey(api_key=api_key, plaintext=plaintext)


def authenticate_api_key(plaintext: str) -> ApiKey | None:
    """The active key for a presented plaintext, or None."""
    if not plaintext.startswith(API_KEY_PREFIX):
        return None
    key = (
        ApiKey.objects.select_related("corp")
        .filter(key_hash=hash_api_key(plaintext), revoked_at=None)
        .first()
    )
    if key is not None and (key.last_used_at is None or (now() - key.last_used_at).total_seconds() > 60):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now())  # at most once a minute per key
    return key


def revoke_api_key(*, api_key: ApiKey) -> None:
    api_key.revoked_at = now()
    api_key.save(update_fields=["revoked_at"])


@transaction.atomic
def create_console_user(
    *,
    corp: Corp,
    username: str,
    password: str,
    role: str,
    staff: Staff | None = None,
    departments: list[Department] | None = None,
    is_superuser: bool = False,
) -> User:
    """Create a console login with a role in ``corp``."""
    if role not in Role.values:
        raise Invalid(_("unknown role “%(role)s”") % {"role": role}, field="role")
    if staff is not None and staff.corp_id != corp.pk:
        raise Invalid(_("staff member belongs to another corp"), field="staff")
    if User.objects.filter(username=username).exists():
        raise Conflict(_("user “%(username)s” already exists") % {"username": username})
    user = User.objects.create_user(username=username, password=password)
    if is_superuser:
        user.is_superuser = True
        user.is_staff = True
        user.save(update_fields=["is_superuser", "is_staff"])
    membership = Membership.objects.create(corp=corp, user=user, role=role, staff=staff)
    if departments:
        membership.departments.set([d for d in departments if d.corp_id == corp.pk])
    return user


def set_membership(*, corp: Corp, user: User, role: str, staff: Staff | None = None) -> Membership:
    """Give an existing user a role in a corp (a superuser may hold several)."""
    if role not in Role.values:
        raise Invalid(_("unknown role “%(role)s”") % {"role": role}, field="role")
    membership, _created = Membership.objects.update_or_create(
        corp=corp, user=user, defaults={"role": role, "staff": staff}
    )
    return membership


def audit(
    *,
    corp: Corp | int,
    action: str,
    object_type: str,
    object_id: str | int = "",
    user_id: int | None = None,
    api_key_id: int | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    """Record who read or changed what (never contents or secrets)."""
    AuditLog.objects.create(
        corp_id=corp if isinstance(corp, int) else corp.pk,
        user_id=user_id,
        api_key_id=api_key_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        detail=detail or {},
    )


# --- the org chart, as WeCom reports it (sync and contact-change callbacks) ---------------------------------


@transaction.atomic
def upsert_department(
    *,
    corp: Corp,
    wecom_id: int,
    name: str | None = None,
    parent_wecom_id: int | None = None,
    order: int | None = None,
) -> Department:
    """Create or update a department from WeCom; fields left None are kept. An unknown parent stays empty."""
    department = Department.objects.for_corp(corp).select_for_update().filter(wecom_id=wecom_id).first()
    parent = None
    if parent_wecom_id is not None and parent_wecom_id != wecom_id:
        parent = Department.objects.for_corp(corp).filter(wecom_id=parent_wecom_id).first()
    if department is None:
        return Department.objects.create(
            corp=corp,
            wecom_id=wecom_id,
            name=(name or str(wecom_id))[:64],
            parent=parent,
            order=order or 0,
        )
    changed: list[str] = []
    if name is not None and department.name != name[:64]:
        department.name = name[:64]
        changed.append("name")
    if parent_wecom_id is not None and department.parent_id != (parent.pk if parent else None):
        department.parent = parent
        changed.append("parent")
    if order is not None and department.order != order:
        department.order = order
        changed.append("order")
    if changed:
        department.save(update_fields=changed)
    return department


@transaction.atomic
def delete_department(*, corp: Corp, wecom_id: int) -> bool:
    """Remove a department WeCom deleted; its members stay, without it. False if it was not there."""
    deleted, _detail = Department.objects.for_corp(corp).filter(wecom_id=wecom_id).delete()
    return bool(deleted)


@transaction.atomic
def upsert_staff(
    *,
    corp: Corp,
    userid: str,
    name: str | None = None,
    avatar: str | None = None,
    status: str | None = None,
    department_wecom_ids: Sequence[int] | None = None,
    main_department_wecom_id: int | None = None,
) -> Staff:
    """Create or update a member from WeCom; fields left None are kept, departments given replace the old."""
    if not userid or len(userid) > 64:
        raise Invalid(_("userid is required (at most 64 characters)"), field="userid")
    if status is not None and status not in Staff.Status.values:
        raise Invalid(
            _("status must be one of %(statuses)s") % {"statuses": ", ".join(Staff.Status.values)},
            field="status",
        )
    staff = Staff.objects.for_corp(corp).select_for_update().filter(userid=userid).first()
    if staff is None:
        staff = Staff.objects.create(
            corp=corp,
            userid=userid,
            name=(name or userid)[:64],
            avatar=avatar or "",
            status=status or Staff.Status.ACTIVE,
        )
    else:
        changed: list[str] = []
        for field, value in (("name", name[:64] if name else None), ("avatar", avatar), ("status", status)):
            if value is not None and getattr(staff, field) != value:
                setattr(staff, field, value)
                changed.append(field)
        if changed:
            staff.save(update_fields=changed)
    if department_wecom_ids is not None:
        departments = {
            d.wecom_id: d
            for d in Department.objects.for_corp(corp).filter(wecom_id__in=list(department_wecom_ids))
        }
        wanted = {d.pk for d in departments.values()}
        current = set(
            StaffDepartment.objects.for_corp(corp).filter(staff=staff).values_list("department_id", flat=True)
        )
        StaffDepartment.objects.for_corp(corp).filter(
            staff=staff, department_id__in=current - wanted
        ).delete()
        StaffDepartment.objects.bulk_create(
            [StaffDepartment(corp=corp, staff=staff, department_id=pk) for pk in wanted - current],
            ignore_conflicts=True,
        )
        main_id = main_department_wecom_id
        main = departments.get(main_id) if main_id is not None else None
        if main is None and department_wecom_ids:
            main = departments.get(department_wecom_ids[0])
        if staff.main_department_id != (main.pk if main else None):
            staff.main_department = main
            staff.save(update_fields=["main_department"])
    return staff


@transaction.atomic
def change_staff_userid(*, corp: Corp, userid: str, new_userid: str) -> Staff | None:
    """Follow a member whose userid WeCom changed. None when neither id is known; the new id wins a clash."""
    if not new_userid or len(new_userid) > 64:
        raise Invalid(_("new userid is required (at most 64 characters)"), field="new_userid")
    staff = Staff.objects.for_corp(corp).select_for_update().filter(userid=userid).first()
    existing = Staff.objects.for_corp(corp).filter(userid=new_userid).first()
    if staff is None or existing is not None:
        return existing
    staff.userid = new_userid
    staff.save(update_fields=["userid"])
    return staff


# --- console settings: users, roles and API keys, changed by an admin and audited -------------------------

# Generated passwords: 12 random bytes, 16 URL-safe characters (~96 bits), easy to copy and to type once.
GENERATED_PASSWORD_BYTES = 12
API_KEY_NAME_MAX = ApiKey._meta.get_field("name").max_length or 100
USERNAME_MAX = User._meta.get_field("username").max_length or 150


@dataclass(frozen=True)
class NewConsoleUser:
    """A login just created; ``password`` is set only when Siyu generated it (to be shown once)."""

    user: User
    membership: Membership
    password: str | None


def generate_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def _check_password(password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise Invalid(" ".join(str(m) for m in exc.messages), field="password") from exc


def _check_role_links(
    *, corp: Corp, role: str, staff: Staff | None, departments: Sequence[Department]
) -> list[Department]:
    """Validate a role with its staff link and departments; returns the departments that apply to the role."""
    if role not in Role.values:
        raise Invalid(_("unknown role “%(role)s”") % {"role": role}, field="role")
    if staff is not None and staff.corp_id != corp.pk:
        raise Invalid(_("the staff member belongs to another corp"), field="staff")
    if any(d.corp_id != corp.pk for d in departments):
        raise Invalid(_("a department belongs to another corp"), field="departments")
    if role == Role.STAFF and staff is None:
        raise Invalid(_("a staff login must be linked to the staff member it is"), field="staff")
    if role == Role.MANAGER and staff is None and not departments:
        raise Invalid(
            _("a manager needs departments to manage, or a linked staff member"), field="departments"
        )
    # Only a manager's scope is made of departments; other roles keep none so nothing stale remains.
    return list(departments) if role == Role.MANAGER else []


def _membership_state(membership: Membership) -> dict[str, object]:
    return {
        "role": membership.role,
        "staff_id": membership.staff_id,
        "department_ids": sorted(d.pk for d in membership.departments.all()),
    }


def _other_active_admins(corp: Corp, membership: Membership) -> bool:
    """Whether an active admin other than ``membership``'s user remains.

    Locks every active admin's membership and user row (``membership``'s included), so two admins demoting
    or deactivating each other at the same moment run one after the other and the second sees the first.
    """
    admins = (
        Membership.objects.for_corp(corp)
        .select_for_update()
        .filter(role=Role.ADMIN, user__is_active=True)
        .order_by("pk")
    )
    return any(pk != membership.pk for pk in admins.values_list("pk", flat=True))


def _require_other_admin(corp: Corp, membership: Membership, field: str) -> None:
    if membership.role != Role.ADMIN or not membership.user.is_active:
        return
    if not _other_active_admins(corp, membership):
        raise Invalid(_("this is the corp's last active admin: make another user admin first"), field=field)


def _require_own_login(actor: Actor, membership: Membership) -> None:
    """Password and active flag belong to the login, not the membership: refuse those of a shared login.

    A superuser, or a login with a role in another corp too, is not this corp's alone to lock out or take
    over; only a superuser may change it.
    """
    if actor.user_id is not None and User.objects.filter(pk=actor.user_id, is_superuser=True).exists():
        return
    shared = membership.user.is_superuser or (
        Membership.objects.filter(user_id=membership.user_id).exclude(corp_id=membership.corp_id).exists()
    )
    if shared:
        raise Invalid(
            _("this login also works outside this corp; only a superuser can change it"), field="user"
        )


def _audit_as(actor: Actor, *, action: str, object_type: str, object_id: int, **detail: object) -> None:
    audit(
        corp=actor.corp,
        action=action,
        object_type=object_type,
        object_id=object_id,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
        detail=detail,
    )


@transaction.atomic
def create_console_user_as(
    *,
    actor: Actor,
    username: str,
    password: str | None,
    role: str,
    staff: Staff | None = None,
    departments: Sequence[Department] = (),
) -> NewConsoleUser:
    """An admin creates a login in their corp; without a password one is generated. Audited."""
    actor.require_admin()
    corp = actor.corp
    username = username.strip()
    if not username:
        raise Invalid(_("a username is required"), field="username")
    try:
        UnicodeUsernameValidator()(username)
    except DjangoValidationError as exc:
        raise Invalid(" ".join(str(m) for m in exc.messages), field="username") from exc
    if len(username) > USERNAME_MAX:
        raise Invalid(_("a username is at most %(max)d characters") % {"max": USERNAME_MAX}, field="username")
    if User.objects.filter(username__iexact=username).exists():
        raise Invalid(_("the username “%(username)s” is taken") % {"username": username}, field="username")
    scoped = _check_role_links(corp=corp, role=role, staff=staff, departments=departments)
    generated = not password
    plaintext = password or generate_password()
    _check_password(plaintext, User(username=username))
    user = create_console_user(
        corp=corp, username=username, password=plaintext, role=role, staff=staff, departments=scoped
    )
    membership = Membership.objects.for_corp(corp).get(user=user)
    _audit_as(
        actor,
        action="user.create",
        object_type="user",
        object_id=user.pk,
        username=username,
        **_membership_state(membership),
    )
    return NewConsoleUser(user=user, membership=membership, password=plaintext if generated else None)


@transaction.atomic
def update_membership(
    *,
    actor: Actor,
    membership: Membership,
    role: str,
    staff: Staff | None = None,
    departments: Sequence[Department] = (),
) -> Membership:
    """Change a user's role, staff link and managed departments in the corp. The last admin stays. Audited."""
    actor.require_admin()
    corp = actor.corp
    if membership.corp_id != corp.pk:
        raise NotFound(_("user not found"))
    scoped = _check_role_links(corp=corp, role=role, staff=staff, departments=departments)
    if role != Role.ADMIN:
        _require_other_admin(corp, membership, "role")
    before = _membership_state(membership)
    membership.role = role
    membership.staff = staff
    membership.save(update_fields=["role", "staff"])
    membership.departments.set(scoped)
    after = _membership_state(membership)
    if after != before:
        _audit_as(
            actor,
            action="user.update",
            object_type="user",
            object_id=membership.user_id,
            before=before,
            after=after,
        )
    return membership


@transaction.atomic
def deactivate_user(*, actor: Actor, membership: Membership) -> None:
    """Stop a login (never deleted: the audit log keeps naming it); its sessions end. The last admin stays."""
    actor.require_admin()
    if membership.corp_id != actor.corp.pk:
        raise NotFound(_("user not found"))
    _require_own_login(actor, membership)
    _require_other_admin(actor.corp, membership, "active")
    user = membership.user
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
        _audit_as(actor, action="user.deactivate", object_type="user", object_id=user.pk)


@transaction.atomic
def reactivate_user(*, actor: Actor, membership: Membership) -> None:
    """Let a deactivated login in again. Audited."""
    actor.require_admin()
    if membership.corp_id != actor.corp.pk:
        raise NotFound(_("user not found"))
    _require_own_login(actor, membership)
    user = membership.user
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
        _audit_as(actor, action="user.reactivate", object_type="user", object_id=user.pk)


@transaction.atomic
def reset_password(*, actor: Actor, membership: Membership) -> str:
    """Give a login a new generated password, returned once; its sessions end. Audited (not the password)."""
    actor.require_admin()
    if membership.corp_id != actor.corp.pk:
        raise NotFound(_("user not found"))
    _require_own_login(actor, membership)
    password = generate_password()
    user = membership.user
    user.set_password(password)
    user.save(update_fields=["password"])
    _audit_as(actor, action="user.password_reset", object_type="user", object_id=user.pk)
    return password


@transaction.atomic
def create_api_key_as(*, actor: Actor, name: str, role: str, staff: Staff | None = None) -> NewApiKey:
    """An admin creates an API key of their corp; the plaintext is returned once. Audited."""
    actor.require_admin()
    name = name.strip()
    if not name:
        raise Invalid(_("a name is required (say what the key is for)"), field="name")
    if len(name) > API_KEY_NAME_MAX:
        raise Invalid(_("a name is at most %(max)d characters") % {"max": API_KEY_NAME_MAX}, field="name")
    if role not in Role.values:
        raise Invalid(_("unknown role “%(role)s”") % {"role": role}, field="role")
    if staff is not None and staff.corp_id != actor.corp.pk:
        raise Invalid(_("the staff member belongs to another corp"), field="staff")
    if role in (Role.MANAGER, Role.STAFF) and staff is None:
        raise Invalid(_("a manager or staff key acts as a staff member: choose one"), field="staff")
    if role in (Role.ADMIN, Role.OPERATOR):
        staff = None  # these roles see every customer; a link would mean nothing
    new = create_api_key(corp=actor.corp, name=name, role=role, staff=staff)
    _audit_as(
        actor,
        action="api_key.create",
        object_type="api_key",
        object_id=new.api_key.pk,
        name=name,
        role=role,
        prefix=new.api_key.prefix,
        staff_id=new.api_key.staff_id,
    )
    return new


@transaction.atomic
def revoke_api_key_as(*, actor: Actor, api_key: ApiKey) -> None:
    """An admin revokes a key of their corp; it stops working at once. Revoking twice is a no-op. Audited."""
    actor.require_admin()
    if api_key.corp_id != actor.corp.pk:
        raise NotFound(_("API key not found"))
    if api_key.revoked_at is not None:
        return
    revoke_api_key(api_key=api_key)
    _audit_as(
        actor, action="api_key.revoke", object_type="api_key", object_id=api_key.pk, prefix=api_key.prefix
    )
