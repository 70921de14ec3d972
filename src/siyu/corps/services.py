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
from django.db import transaction

from siyu.core import crypto
from siyu.core.clock import now
from siyu.core.errors import Conflict, Invalid
from siyu.corps.models import ApiKey, AuditLog, Corp, Department, Membership, Role, Staff, StaffDepartment

# WeCom callback configuration: Token is at most 32 letters/digits, EncodingAESKey exactly 43 letters/digits
# (base64 of a 32-byte AES key without its trailing "=").
TOKEN_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")
AES_KEY_RE = re.compile(r"^[A-Za-z0-9]{43}$")
CORPID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
API_KEY_PREFIX = "siyu_"


def validate_aes_key(aes_key: str) -> None:
    if len(aes_key) != 43:
        raise Invalid(f"EncodingAESKey must be exactly 43 characters, got {len(aes_key)}", field="aes_key")
    if not AES_KEY_RE.match(aes_key):
        raise Invalid("EncodingAESKey may contain only letters and digits", field="aes_key")
    try:
        raw = base64.b64decode(aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise Invalid("EncodingAESKey is not valid base64", field="aes_key") from exc
    if len(raw) != 32:  # pragma: no cover - 43 base64 characters always decode to 32 bytes
        raise Invalid("EncodingAESKey must decode to a 32-byte key", field="aes_key")


def create_corp(*, name: str, corpid: str, secret: str = "", token: str = "", aes_key: str = "") -> Corp:
    """Create a tenant; validates WeCom's formats and stores the secrets encrypted."""
    name = name.strip()
    if not name:
        raise Invalid("corp name is required", field="name")
    if not CORPID_RE.match(corpid):
        raise Invalid("corpid must be 1–64 letters, digits, '-' or '_'", field="corpid")
    if token and not TOKEN_RE.match(token):
        raise Invalid("callback Token must be 1–32 letters or digits", field="token")
    if aes_key:
        validate_aes_key(aes_key)
    if Corp.objects.filter(corpid=corpid).exists():
        raise Conflict(f"a corp with corpid {corpid} already exists")
    return Corp.objects.create(
        name=name,
        corpid=corpid,
        secret_encrypted=crypto.encrypt(secret),
        token_encrypted=crypto.encrypt(token),
        aes_key_encrypted=crypto.encrypt(aes_key),
    )


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
        raise Invalid(f"unknown role {role!r}", field="role")
    if staff is not None and staff.corp_id != corp.pk:
        raise Invalid("staff member belongs to another corp", field="staff")
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
        raise Invalid(f"unknown role {role!r}", field="role")
    if staff is not None and staff.corp_id != corp.pk:
        raise Invalid("staff member belongs to another corp", field="staff")
    if User.objects.filter(username=username).exists():
        raise Conflict(f"user {username!r} already exists")
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
        raise Invalid(f"unknown role {role!r}", field="role")
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
        raise Invalid("userid is required (at most 64 characters)", field="userid")
    if status is not None and status not in Staff.Status.values:
        raise Invalid(f"status must be one of {Staff.Status.values}", field="status")
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
        raise Invalid("new userid is required (at most 64 characters)", field="new_userid")
    staff = Staff.objects.for_corp(corp).select_for_update().filter(userid=userid).first()
    existing = Staff.objects.for_corp(corp).filter(userid=new_userid).first()
    if staff is None or existing is not None:
        return existing
    staff.userid = new_userid
    staff.save(update_fields=["userid"])
    return staff
