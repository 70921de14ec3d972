"""Customers (WeCom external contacts), their relations with staff, notes and the timeline."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.clock import now
from siyu.core.tenancy import HOT_ROW_KEY, CorpManager, CorpOwned, corp_key


class Customer(CorpOwned):
    """An external contact (外部联系人) of the corp, one per ``external_userid``."""

    # customer_unique_external_userid and customer_corp_added lead with it; no constraint (HOT_ROW_KEY)
    corp = corp_key(db_index=False, db_constraint=False)

    class Gender(models.IntegerChoices):  # WeCom: 0 unknown, 1 male, 2 female
        UNKNOWN = 0, _("Unknown")
        MALE = 1, _("Male")
        FEMALE = 2, _("Female")

    class Type(models.IntegerChoices):  # WeCom: 1 WeChat user, 2 WeCom user
        WECHAT = 1, _("WeChat")
        WECOM = 2, _("WeCom")

    external_userid = models.CharField(max_length=64)
    unionid = models.CharField(max_length=64, blank=True, default="")
    name = models.CharField(max_length=64)
    avatar = models.URLField(max_length=500, blank=True, default="")
    gender = models.SmallIntegerField(choices=Gender.choices, default=Gender.UNKNOWN)
    type = models.SmallIntegerField(choices=Type.choices, default=Type.WECHAT)
    corp_name = models.CharField(max_length=64, blank=True, default="")
    corp_full_name = models.CharField(max_length=128, blank=True, default="")
    custom_fields = models.JSONField(default=dict, blank=True)
    # Denormalised for the list: when the customer was last added by any staff member (sort key), and a
    # lower-cased text of name, remarks, remark mobiles and external_userid (search).
    last_added_at = models.DateTimeField(default=now)
    search_text = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = CorpManager["Customer"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["corp", "external_userid"], name="customer_unique_external_userid"
            )
        ]
        indexes = [models.Index(fields=["corp", "-last_added_at", "-id"], name="customer_corp_added")]

    def __str__(self) -> str:
        return self.name


class CustomField(CorpOwned):
    """A per-corp profile field shown on every customer (e.g. 生日, 会员等级)."""

    class Kind(models.TextChoices):
        TEXT = "text", _("Text")
        NUMBER = "number", _("Number")
        DATE = "date", _("Date")
        CHOICE = "choice", _("Choice")

    key = models.SlugField(max_length=40)
    label = models.CharField(max_length=40)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TEXT)
    choices = models.JSONField(default=list, blank=True)
    order = models.IntegerField(default=0)

    objects = CorpManager["CustomField"]()

    class Meta:
        ordering = ["order", "id"]
        constraints = [models.UniqueConstraint(fields=["corp", "key"], name="custom_field_unique_key")]

    def __str__(self) -> str:
        return self.label


class FollowRelation(CorpOwned):
    """A customer ↔ staff relation (follow_user). Re-adding after a delete is a new row: history stays."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DELETED_BY_STAFF = "deleted_by_staff", _("Deleted by staff")
        DELETED_BY_CUSTOMER = "deleted_by_customer", _("Deleted by customer")

    # Lookups by corp, customer and staff are served by the composite indexes below, each led by that column.
    # No database constraint on its keys (HOT_ROW_KEY): a first sync writes relations by the hundred thousand.
    corp = corp_key(db_index=False, db_constraint=False)  # HOT_ROW_KEY
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="relations", db_index=False, **HOT_ROW_KEY
    )
    staff = models.ForeignKey(
        "corps.Staff", on_delete=models.CASCADE, related_name="relations", db_index=False, **HOT_ROW_KEY
    )
    remark = models.CharField(max_length=64, blank=True, default="")
    description = models.CharField(max_length=256, blank=True, default="")
    remark_corp_name = models.CharField(max_length=64, blank=True, default="")
    remark_mobiles = models.JSONField(default=list, blank=True)
    add_way = models.IntegerField(default=0)  # WeCom add_way codes (0 unknown, 1 scan QR, … 202 admin assign)
    state = models.CharField(max_length=30, blank=True, default="")  # contact-way state: the channel
    oper_userid = models.CharField(max_length=64, blank=True, default="")
    added_at = models.DateTimeField(default=now)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.ACTIVE)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    objects = CorpManager["FollowRelation"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "staff"], condition=models.Q(status="active"), name="relation_one_active"
            )
        ]
        indexes = [
            models.Index(fields=["staff", "status", "customer"], name="relation_staff_status"),
            models.Index(fields=["corp", "state"], name="relation_corp_state"),
            # A customer's relations; the list's "followed by staff X" test from the index alone.
            models.Index(fields=["customer", "staff", "status"], name="relation_customer_staff"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}↔{self.staff_id} ({self.status})"


class Note(CorpOwned):
    """A note a console user wrote on a customer."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["Note"]()

    class Meta:
        ordering = ["-created_at", "-id"]


class Event(CorpOwned):
    """The append-only timeline (客户轨迹). ``dedupe_key`` makes recording the same fact twice a no-op."""

    class Kind(models.TextChoices):  # extensible: later capabilities add kinds
        ADDED = "added", _("Added")
        DELETED_BY_STAFF = "deleted_by_staff", _("Deleted by staff")
        DELETED_BY_CUSTOMER = "deleted_by_customer", _("Deleted by customer")
        TAGGED = "tagged", _("Tagged")
        UNTAGGED = "untagged", _("Untagged")
        REMARK_CHANGED = "remark_changed", _("Remark changed")
        PROFILE_CHANGED = "profile_changed", _("Profile changed")
        NOTE_ADDED = "note_added", _("Note added")
        CHATTED = "chatted", _("Chatted")
        TAG_DELETED = "tag_deleted", _("Tag deleted")
        GROUP_JOINED = "group_joined", _("Joined a customer group")
        GROUP_LEFT = "group_left", _("Left a customer group")
        TRANSFER_FAILED = "transfer_failed", _("Transfer failed")
        ARCHIVE_APPROVED = "archive_approved", _("Agreed to chat archiving")
        # Behaviour reported by other systems through the API (siyu.customers.behaviour)
        PURCHASED = "purchased", _("Purchased")
        REFUNDED = "refunded", _("Refunded")
        VISITED = "visited", _("Visited")
        # Membership of dynamic segments (siyu.segments)
        SEGMENT_ENTERED = "segment_entered", _("Entered a segment")
        SEGMENT_EXITED = "segment_exited", _("Left a segment")
        OFFLINE_MERGED = "offline_merged", _("Matched an offline member")
        WELCOMED = "welcomed", _("Welcome message sent")
        WELCOME_NOT_SENT = "welcome_not_sent", _("Welcome message not sent")
        BROADCAST_RECEIVED = "broadcast_received", _("Received a mass message")

    class Source(models.TextChoices):
        CONSOLE = "console", _("Console")
        API = "api", _("API")
        WECOM = "wecom", _("WeCom")
        SYNC = "sync", _("Sync")
        SEED = "seed", _("Demo data")
        SYSTEM = "system", _("System")

    # The timeline's keys carry no database constraint (HOT_ROW_KEY): a sync appends 2.5 events a relation.
    corp = corp_key(db_index=False, db_constraint=False)  # event_unique_dedupe_key, event_corp_kind_time lead
    customer = models.ForeignKey(  # event_customer_timeline leads with it
        Customer,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,
        **HOT_ROW_KEY,
    )
    staff = models.ForeignKey(
        "corps.Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", **HOT_ROW_KEY
    )
    kind = models.CharField(max_length=40)
    occurred_at = models.DateTimeField(default=now)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SYSTEM)
    payload = models.JSONField(default=dict, blank=True)
    dedupe_key = models.CharField(max_length=200)
    recorded_at = models.DateTimeField(default=now)

    objects = CorpManager["Event"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corp", "dedupe_key"], name="event_unique_dedupe_key")]
        indexes = [
            models.Index(fields=["customer", "-occurred_at", "-id"], name="event_customer_timeline"),
            models.Index(fields=["corp", "kind", "occurred_at"], name="event_corp_kind_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}@{self.occurred_at:%Y-%m-%d}"
