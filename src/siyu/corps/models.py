"""Tenants (WeCom corps), their departments and staff, and who may use the console or the API."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core import crypto
from siyu.core.clock import now
from siyu.core.tenancy import CorpManager, CorpOwned


class Corp(models.Model):
    """A tenant: one WeCom corp. Its secrets are stored encrypted."""

    name = models.CharField(max_length=100)
    corpid = models.CharField(max_length=64, unique=True)
    secret_encrypted = models.TextField(blank=True, default="")
    token_encrypted = models.TextField(blank=True, default="")
    aes_key_encrypted = models.TextField(blank=True, default="")
    time_zone = models.CharField(max_length=64, default="Asia/Shanghai")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.corpid})"

    @property
    def secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    @property
    def token(self) -> str:
        return crypto.decrypt(self.token_encrypted)

    @property
    def aes_key(self) -> str:
        return crypto.decrypt(self.aes_key_encrypted)


class Department(CorpOwned):
    """A WeCom department; ``parent`` builds the tree."""

    wecom_id = models.BigIntegerField()
    name = models.CharField(max_length=64)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    order = models.BigIntegerField(default=0)

    objects = CorpManager["Department"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["corp", "wecom_id"], name="department_unique_wecom_id")
        ]
        ordering = ["order", "wecom_id"]

    def __str__(self) -> str:
        return self.name


class Staff(CorpOwned):
    """A WeCom member (成员), identified by ``userid``."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        RESIGNED = "resigned", _("Resigned")
        DISABLED = "disabled", _("Disabled")

    userid = models.CharField(max_length=64)
    name = models.CharField(max_length=64)
    avatar = models.URLField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    has_contact_permission = models.BooleanField(default=True)
    departments = models.ManyToManyField(Department, through="StaffDepartment", related_name="staff")
    main_department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="main_staff"
    )
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["Staff"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corp", "userid"], name="staff_unique_userid")]
        ordering = ["name", "id"]
        verbose_name_plural = "staff"

    def __str__(self) -> str:
        return self.name


class StaffDepartment(CorpOwned):
    """Membership of a staff member in a department (a member may be in several)."""

    staff = models.ForeignKey(Staff, on_delete=models.CASCADE)
    department = models.ForeignKey(Department, on_delete=models.CASCADE)

    objects = CorpManager["StaffDepartment"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["staff", "department"], name="staff_department_unique"),
        ]


class Role(models.TextChoices):
    ADMIN = "admin", _("Admin")
    OPERATOR = "operator", _("Operator")
    MANAGER = "manager", _("Manager")
    STAFF = "staff", _("Staff")


class Membership(CorpOwned):
    """A console user's place in a corp: their role and, optionally, the staff member they are."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    staff = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Departments a manager is responsible for; when empty, a linked staff member's own departments.
    departments = models.ManyToManyField(Department, blank=True, related_name="+")
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["Membership"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corp", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.corp_id} ({self.role})"


class ApiKey(CorpOwned):
    """A REST API key of one corp. Only a SHA-256 of the key is stored."""

    name = models.CharField(max_length=100, default="")
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.OPERATOR)
    # A manager or staff key acts as this staff member (their customers, or their departments'); without it
    # such a key sees no customers, like a console login linked to nobody.
    staff = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = CorpManager["ApiKey"]()

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class AuditLog(CorpOwned):
    """Who read or changed what. Never holds message contents or secrets."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True, default="")
    at = models.DateTimeField(default=now, db_index=True)
    detail = models.JSONField(default=dict, blank=True)

    objects = CorpManager["AuditLog"]()

    class Meta:
        indexes = [models.Index(fields=["corp", "at"], name="audit_corp_at")]
