"""Mass messages (群发) to customers, customer groups and moments; and the contact-cap ledger they share.

A ``Broadcast`` is what an operator composed. When it is sent, the worker plans it (audience, the staff member
who sends to each customer, caps) into ``BroadcastPart`` rows — one WeCom task each — and records who was
skipped and why (``BroadcastSkip``). WeCom's per-customer outcomes arrive as ``Delivery`` rows.

The ledger (``CapPolicy`` + ``LedgerDay``) counts what Siyu sent to each customer per day; ``caps.py`` is its
service interface, for mass messages now and for SOP journeys later.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from siyu.core.clock import now
from siyu.core.tenancy import CorpManager, CorpOwned


class CapPolicy(CorpOwned):
    """A corp's contact rules (one per corp): WeCom's receive quota, business cap, quiet hours, senders."""

    class WeComQuota(models.TextChoices):
        # WeCom's receive quota per customer (wecom-api.md §4.5): days-in-month per month by default; an admin
        # can switch the corp to 7 per week or 1 per day; 4 per month is the legacy rule.
        DAYS_IN_MONTH = "days_in_month", _("As many as the month has days, per month")
        SEVEN_PER_WEEK = "7_per_week", _("7 per week")
        ONE_PER_DAY = "1_per_day", _("1 per day")
        FOUR_PER_MONTH = "4_per_month", _("4 per month (legacy)")

    class QuietAction(models.TextChoices):
        WAIT = "wait", _("Wait until quiet hours end")
        SKIP = "skip", _("Skip the send")

    class SenderPolicy(models.TextChoices):
        RECENT = "recent", _("Last who chatted, else the most recently added staff")
        PRIORITY = "priority", _("The first staff member of a priority list")

    wecom_quota = models.CharField(
        max_length=16, choices=WeComQuota.choices, default=WeComQuota.DAYS_IN_MONTH
    )
    # At most ``business_cap_count`` messages from Siyu per customer in any ``business_cap_days`` days
    # (0: no business cap).
    business_cap_count = models.PositiveSmallIntegerField(default=0)
    business_cap_days = models.PositiveSmallIntegerField(default=7)
    # Quiet hours in the corp's time zone; both empty = none. The end may be before the start (overnight).
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    quiet_action = models.CharField(max_length=8, choices=QuietAction.choices, default=QuietAction.WAIT)
    sender_policy = models.CharField(max_length=10, choices=SenderPolicy.choices, default=SenderPolicy.RECENT)
    staff_priority = models.JSONField(default=list, blank=True)  # staff ids, first preferred
    # Bumped by every reservation: its UPDATE is the lock that serialises writers of the ledger.
    ledger_version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=now)

    objects = CorpManager["CapPolicy"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corp"], name="cap_policy_one_per_corp")]


class LedgerDay(CorpOwned):
    """One layer of one day of the contact ledger: a roaring bitmap of the customers Siyu reached at least
    ``layer`` times that day (WeCom's day, China time) over ``channel``."""

    class Channel(models.TextChoices):
        WECOM_MASS = "wecom_mass", _("WeCom mass message")  # counts towards WeCom's receive quota
        OTHER = "other", _("Other outbound")  # only towards the business cap

    day = models.DateField()
    channel = models.CharField(max_length=12, choices=Channel.choices)
    layer = models.PositiveSmallIntegerField()
    members = models.BinaryField()
    size = models.IntegerField(default=0)
    updated_at = models.DateTimeField(default=now)

    objects = CorpManager["LedgerDay"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["corp", "channel", "day", "layer"], name="ledger_day_unique_layer"
            )
        ]


class Broadcast(CorpOwned):
    """A mass message an operator composed: to customers, to customer groups, or to customer moments."""

    class Kind(models.TextChoices):
        CUSTOMERS = "customers", _("Customers")
        GROUPS = "groups", _("Customer groups")
        MOMENTS = "moments", _("Customer moments")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        SENDING = "sending", _("Sending")
        TRACKING = "tracking", _("Waiting for staff")
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")
        SKIPPED = "skipped", _("Skipped")
        FAILED = "failed", _("Failed")

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CUSTOMERS)
    name = models.CharField(max_length=100)
    text = models.TextField(blank=True, default="")
    attachments = models.JSONField(default=list, blank=True)  # WeCom's attachment objects (msgtype + body)
    audience = models.JSONField(default=dict, blank=True)  # see audience.AudienceSpec
    scheduled_at = models.DateTimeField(null=True, blank=True)  # None: as soon as it is sent
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # The compose form's one-time key: a second submission of the same form finds this broadcast.
    request_key = models.CharField(max_length=64, blank=True, default="")
    # Quiet hours held the send until then.
    held_until = models.DateTimeField(null=True, blank=True)
    # What planning found: {"audience": n, "recipients": n, "skipped": {reason: n}, "staff": {staff_id: n}}.
    plan = models.JSONField(default=dict, blank=True)
    # The ledger day its reservation went to (released there for customers WeCom did not reach).
    ledger_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    tracking_until = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = CorpManager["Broadcast"]()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["corp", "request_key"],
                condition=~models.Q(request_key=""),
                name="broadcast_request_key",
            )
        ]
        indexes = [
            models.Index(fields=["corp", "-created_at", "-id"], name="broadcast_corp_created"),
            models.Index(fields=["status", "next_poll_at"], name="broadcast_due"),
        ]

    def __str__(self) -> str:
        return self.name


class BroadcastMedia(CorpOwned):
    """A file attached to a mass message (image, video, file), kept here until the send uploads it to WeCom:
    WeCom's media ids expire after 3 days, so a scheduled message uploads it when it goes out."""

    class Kind(models.TextChoices):
        IMAGE = "image", _("Image")
        VIDEO = "video", _("Video")
        FILE = "file", _("File")

    kind = models.CharField(max_length=8, choices=Kind.choices)
    filename = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100, blank=True, default="")
    size = models.IntegerField()
    content = models.BinaryField()
    # The last upload to WeCom and its media id; ``for_moment``: uploaded as a moment attachment.
    media_id = models.CharField(max_length=256, blank=True, default="")
    for_moment = models.BooleanField(default=False)
    uploaded_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["BroadcastMedia"]()

    def __str__(self) -> str:
        return self.filename


class BroadcastSkip(CorpOwned):
    """The customers a broadcast's planning left out for one reason (a roaring bitmap of customer ids)."""

    class Reason(models.TextChoices):
        NOT_FRIEND = "not_friend", _("No longer a friend")
        WECOM_QUOTA = "wecom_quota", _("Over WeCom's receive quota")
        BUSINESS_CAP = "business_cap", _("Over the business cap")
        QUIET_HOURS = "quiet_hours", _("Quiet hours")
        EXCLUDED = "excluded", _("Excluded")

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="skips")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    members = models.BinaryField()
    size = models.IntegerField(default=0)

    objects = CorpManager["BroadcastSkip"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["broadcast", "reason"], name="broadcast_skip_unique")]


class BroadcastPart(CorpOwned):
    """One WeCom task of a broadcast: one staff member's ``add_msg_template`` (≤ 10,000 customers or ≤ 2,000
    groups), or the ``add_moment_task``."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("On its way to WeCom")
        WAITING = "waiting", _("Not sent yet")
        SENT = "sent", pgettext_lazy("a staff member's part of a mass message", "Sent")
        CANCELLED = "cancelled", _("Cancelled")
        FAILED = "failed", _("Failed")
        UNKNOWN = "unknown", _("Outcome unknown")

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="parts")
    staff = models.ForeignKey(
        "corps.Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    userid = models.CharField(max_length=64, blank=True, default="")  # the sender, as WeCom knows them
    seq = models.IntegerField(default=0)  # the chunk of this staff member's customers
    members = models.BinaryField(default=b"")  # customer ids (a roaring bitmap)
    chat_ids = models.JSONField(default=list, blank=True)  # customer groups
    size = models.IntegerField(default=0)
    idempotency_key = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    msgid = models.CharField(max_length=128, blank=True, default="")
    jobid = models.CharField(max_length=128, blank=True, default="")
    moment_id = models.CharField(max_length=128, blank=True, default="")
    fail_count = models.IntegerField(default=0)  # WeCom's fail_list: customers it would not take
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered = models.IntegerField(default=0)
    not_friend = models.IntegerField(default=0)
    over_quota = models.IntegerField(default=0)
    results_cursor = models.CharField(max_length=512, blank=True, default="")
    results_done = models.BooleanField(default=False)
    released = models.BooleanField(default=False)  # caps given back for customers WeCom did not reach
    reminders = models.JSONField(default=list, blank=True)  # ISO times of reminders sent
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")

    objects = CorpManager["BroadcastPart"]()

    class Meta:
        ordering = ["broadcast", "userid", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["corp", "idempotency_key"], name="broadcast_part_unique_key")
        ]


class Delivery(CorpOwned):
    """WeCom's outcome for one customer (or group) of a part: sent, not a friend, or over the quota."""

    class Status(models.IntegerChoices):  # get_groupmsg_send_result status (wecom-api.md §4.5)
        SENT = 1, pgettext_lazy("a mass message to one customer", "Sent")
        NOT_FRIEND = 2, _("Not a friend")
        OVER_QUOTA = 3, _("Over the receive quota")

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="deliveries")
    part = models.ForeignKey(BroadcastPart, on_delete=models.CASCADE, related_name="deliveries")
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    target = models.CharField(max_length=64)  # external_userid, or chat_id for groups
    status = models.SmallIntegerField(choices=Status.choices)
    sent_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(default=now)

    objects = CorpManager["Delivery"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["part", "target"], name="delivery_unique_target")]
        indexes = [models.Index(fields=["broadcast", "status", "id"], name="delivery_broadcast_status")]
