"""Channel live codes (渠道活码), who receives their customers and when, welcome messages, and every add.

A ``Channel`` is a WeCom 「联系我」 contact way that Siyu configures: its ``state`` (a short code, stable for
the channel's life and never reused) comes back on every add it brings, so each add is attributed to it. Which
staff the contact way lists is Siyu's to decide from moment to moment (``ChannelStaff``: weights, daily caps,
backups; ``ChannelSchedule``: weekdays and hours); ``pushed`` is what WeCom was last told.

``ChannelAdd`` records every add Siyu heard of, one per relation, with its channel (empty for "other /
unknown"), its staff member and what became of its welcome message. It is the table channel analytics read.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from siyu.core.clock import now
from siyu.core.tenancy import CorpManager, CorpOwned

# WeCom: a contact way's state and remark are at most 30 characters (wecom-api.md §4.3).
STATE_MAX = 30
# A bit per weekday, Monday first (datetime.weekday()); every day is 127.
EVERY_DAY = 0b1111111


class ChannelGroup(CorpOwned):
    """A folder of channels (渠道分组), e.g. 门店, 线上广告."""

    name = models.CharField(max_length=30)
    order = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["ChannelGroup"]()

    class Meta:
        ordering = ["order", "id"]
        constraints = [models.UniqueConstraint(fields=["corp", "name"], name="channel_group_unique_name")]

    def __str__(self) -> str:
        return self.name


class Channel(CorpOwned):
    """A channel live code: a WeCom contact way whose ``state`` attributes every add to this channel."""

    class Status(models.TextChoices):
        ACTIVE = "active", pgettext_lazy("channel status", "Active")
        PAUSED = "paused", pgettext_lazy("channel status", "Paused")
        ARCHIVED = "archived", pgettext_lazy("channel status", "Archived")

    class Distribution(models.TextChoices):
        ROUND_ROBIN = "round_robin", _("Round robin")
        WEIGHTED = "weighted", _("Weighted")
        FEWEST_TODAY = "fewest_today", _("Fewest customers today")

    class WelcomeMode(models.TextChoices):
        DEFAULT = "default", _("The corp's default welcome message")
        OWN = "own", _("The channel's own welcome message")
        NONE = "none", _("No welcome message")

    name = models.CharField(max_length=60)
    group = models.ForeignKey(
        ChannelGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="channels"
    )
    state = models.CharField(max_length=STATE_MAX)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    distribution = models.CharField(
        max_length=16, choices=Distribution.choices, default=Distribution.ROUND_ROBIN
    )
    # Auto-accept (WeCom's skip_verify); with a window, only between these times (the corp's time zone).
    skip_verify = models.BooleanField(default=True)
    skip_verify_start = models.TimeField(null=True, blank=True)
    skip_verify_end = models.TimeField(null=True, blank=True)
    # Written on each new relation: {customer_name}, {staff_name}, {channel_name}, {date}.
    remark_template = models.CharField(max_length=60, blank=True, default="")
    description_template = models.CharField(max_length=300, blank=True, default="")
    welcome_mode = models.CharField(max_length=8, choices=WelcomeMode.choices, default=WelcomeMode.DEFAULT)
    # The WeCom side: the contact way's id and QR code, and what it was last told (user list, skip_verify…).
    config_id = models.CharField(max_length=64, blank=True, default="")
    qr_code = models.URLField(max_length=500, blank=True, default="")
    pushed = models.JSONField(default=dict, blank=True)
    pushed_at = models.DateTimeField(null=True, blank=True)
    push_error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)
    paused_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = CorpManager["Channel"]()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # States are never reused, archived channels included: old adds stay attributed to them.
            models.UniqueConstraint(fields=["corp", "state"], name="channel_unique_state"),
        ]
        indexes = [models.Index(fields=["corp", "status"], name="channel_corp_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class ChannelTag(CorpOwned):
    """A tag every customer added through the channel gets (on the new relation)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="channel_tags")
    tag = models.ForeignKey("tags.Tag", on_delete=models.CASCADE, related_name="+")

    objects = CorpManager["ChannelTag"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "tag"], name="channel_tag_unique")]


class ChannelStaff(CorpOwned):
    """A staff member who receives the channel's customers: weight, daily cap, backup or not."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="members")
    staff = models.ForeignKey("corps.Staff", on_delete=models.CASCADE, related_name="+")
    # Backups receive only while no primary member can (all capped or off their schedules).
    is_backup = models.BooleanField(default=False)
    weight = models.PositiveSmallIntegerField(default=1)
    # Adds through this channel per day (the corp's day); empty: no cap.
    daily_cap = models.PositiveIntegerField(null=True, blank=True)
    order = models.IntegerField(default=0)

    objects = CorpManager["ChannelStaff"]()

    class Meta:
        ordering = ["is_backup", "order", "id"]
        constraints = [models.UniqueConstraint(fields=["channel", "staff"], name="channel_staff_unique")]


class ChannelSchedule(CorpOwned):
    """When a member serves: on these weekdays, between ``start`` and ``end`` (corp time; past midnight when
    ``end`` ≤ ``start``). A member without schedules serves at all times."""

    member = models.ForeignKey(ChannelStaff, on_delete=models.CASCADE, related_name="schedules")
    weekdays = models.PositiveSmallIntegerField(default=EVERY_DAY)  # bit 0 is Monday
    start = models.TimeField()
    end = models.TimeField()

    objects = CorpManager["ChannelSchedule"]()

    class Meta:
        ordering = ["id"]


class MediaAsset(CorpOwned):
    """A file a welcome message attaches (image, video, file). Kept in the database, so every web and worker
    process reads it; WeCom's media_id for it lasts three days and is renewed by upload."""

    class Kind(models.TextChoices):
        IMAGE = "image", _("Image")
        VIDEO = "video", _("Video")
        FILE = "file", _("File")

    kind = models.CharField(max_length=8, choices=Kind.choices)
    filename = models.CharField(max_length=128)
    content_type = models.CharField(max_length=100, blank=True, default="")
    size = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    data = models.BinaryField()
    media_id = models.CharField(max_length=128, blank=True, default="")
    media_uploaded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["MediaAsset"]()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.filename


class WelcomeMessage(CorpOwned):
    """A welcome message (欢迎语): a channel's own, or the corp's default (no channel) for the others."""

    channel = models.OneToOneField(
        Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="welcome_message"
    )
    updated_at = models.DateTimeField(default=now)

    objects = CorpManager["WelcomeMessage"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["corp"], condition=models.Q(channel=None), name="welcome_one_corp_default"
            )
        ]


class WelcomeVariant(CorpOwned):
    """One version of a welcome message: text with placeholders and up to 9 attachments, for some weekdays
    and hours. The first variant (by ``order``) whose days and hours hold at the add is sent."""

    message = models.ForeignKey(WelcomeMessage, on_delete=models.CASCADE, related_name="variants")
    order = models.IntegerField(default=0)
    weekdays = models.PositiveSmallIntegerField(default=EVERY_DAY)
    # Both empty: all day. Past midnight when end ≤ start.
    start = models.TimeField(null=True, blank=True)
    end = models.TimeField(null=True, blank=True)
    text = models.TextField(blank=True, default="")
    # [{"msgtype": "image"|"video"|"file", "asset_id": n} | {"msgtype": "link", "title", "url", "desc",
    #   "picurl"} | {"msgtype": "miniprogram", "title", "appid", "page", "asset_id"}]
    attachments = models.JSONField(default=list, blank=True)

    objects = CorpManager["WelcomeVariant"]()

    class Meta:
        ordering = ["order", "id"]


class ChannelAdd(CorpOwned):
    """One add (a new customer–staff relation) Siyu heard of: its channel (empty: other / unknown), its staff
    member, and its welcome message's outcome and timing."""

    class Welcome(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENT = "sent", pgettext_lazy("welcome message", "Sent")
        NO_CODE = "no_code", _("No welcome code from WeCom")
        NO_MESSAGE = "no_message", _("No welcome message configured")
        NOT_CONNECTED = "not_connected", _("Corp not connected to WeCom")
        REJECTED = "rejected", _("Refused by WeCom")
        EXPIRED = "expired", _("Welcome code expired before sending")
        FAILED = "failed", pgettext_lazy("welcome message", "Failed")

    class Source(models.TextChoices):
        CALLBACK = "callback", _("Callback")
        SYNC = "sync", _("Found by a sync")

    relation = models.OneToOneField(
        "customers.FollowRelation", on_delete=models.CASCADE, related_name="channel_add"
    )
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey("corps.Staff", on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="adds")
    state = models.CharField(max_length=STATE_MAX, blank=True, default="")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CALLBACK)
    half = models.BooleanField(default=False)  # add_half_external_contact: auto-accepted, not yet confirmed
    paused = models.BooleanField(default=False)  # the channel was paused: none of its automation ran
    added_at = models.DateTimeField()  # WeCom's createtime of the relation
    received_at = models.DateTimeField(null=True, blank=True)  # when the callback reached Siyu
    welcome_status = models.CharField(max_length=14, choices=Welcome.choices, default=Welcome.NO_CODE)
    welcome_reason = models.CharField(max_length=200, blank=True, default="")
    welcome_errcode = models.IntegerField(null=True, blank=True)
    welcome_message = models.ForeignKey(
        WelcomeMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    welcome_variant = models.ForeignKey(
        WelcomeVariant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    welcome_outbox = models.ForeignKey(
        "wecom.Outbox", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    welcome_deadline = models.DateTimeField(null=True, blank=True)
    welcome_queued_at = models.DateTimeField(null=True, blank=True)
    welcome_sent_at = models.DateTimeField(null=True, blank=True)  # when WeCom accepted it
    recorded_at = models.DateTimeField(default=now)
    # When the channel's remark and the tagging rules were applied (once per add); empty until then.
    automated_at = models.DateTimeField(null=True, blank=True)
    # When the relation ended and by whom ("staff" / "customer"), copied from the relation for analytics.
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.CharField(max_length=8, blank=True, default="")

    objects = CorpManager["ChannelAdd"]()

    class Meta:
        ordering = ["-added_at", "-id"]
        indexes = [
            models.Index(fields=["corp", "channel", "added_at"], name="channel_add_channel_day"),
            models.Index(fields=["corp", "staff", "added_at"], name="channel_add_staff_day"),
            models.Index(fields=["corp", "added_at"], name="channel_add_corp_day"),
            models.Index(
                fields=["recorded_at"], condition=models.Q(automated_at=None), name="channel_add_unautomated"
            ),
            models.Index(
                fields=["corp", "ended_at"],
                condition=models.Q(ended_at__isnull=False),
                name="channel_add_ended",
            ),
        ]

    @property
    def welcome_seconds(self) -> float | None:
        """Seconds from the callback (or the add) to WeCom accepting the welcome message."""
        if self.welcome_sent_at is None:
            return None
        start = self.received_at or self.added_at
        return max(0.0, (self.welcome_sent_at - start).total_seconds())


# Upper bounds (seconds) of the add→welcome histogram's buckets; the last bucket is everything above.
WELCOME_BUCKETS = (1, 2, 3, 5, 8, 12, 20)


class ChannelDay(CorpOwned):
    """The rollup channel analytics read: one (corp day, channel or other / unknown, staff member).

    ``adds`` and the welcome columns count the adds of that day; the deletion columns count relations (of any
    add on record) that ended that day; ``retained_N`` counts that day's adds whose relation had not ended N
    days after it began (final once N days have passed). ``welcome_wN`` is a histogram of seconds from the
    callback to WeCom accepting the welcome, bucket N ending at ``WELCOME_BUCKETS[N]`` (w7: above 20 s).
    Rebuilt per (corp, day) from ``ChannelAdd`` (``rollups``), never edited in place."""

    day = models.DateField()
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey("corps.Staff", on_delete=models.CASCADE, related_name="+")
    adds = models.IntegerField(default=0)
    deleted_by_staff = models.IntegerField(default=0)
    deleted_by_customer = models.IntegerField(default=0)
    retained_1 = models.IntegerField(default=0)
    retained_7 = models.IntegerField(default=0)
    retained_30 = models.IntegerField(default=0)
    welcome_sent = models.IntegerField(default=0)
    welcome_failed = models.IntegerField(default=0)  # refused by WeCom, or failed
    welcome_expired = models.IntegerField(default=0)
    welcome_not_needed = models.IntegerField(default=0)  # no code, no message, corp not connected
    welcome_pending = models.IntegerField(default=0)  # queued
    welcome_seconds = models.FloatField(default=0.0)  # sum over the timed sent ones
    welcome_timed = models.IntegerField(default=0)
    welcome_w0 = models.IntegerField(default=0)
    welcome_w1 = models.IntegerField(default=0)
    welcome_w2 = models.IntegerField(default=0)
    welcome_w3 = models.IntegerField(default=0)
    welcome_w4 = models.IntegerField(default=0)
    welcome_w5 = models.IntegerField(default=0)
    welcome_w6 = models.IntegerField(default=0)
    welcome_w7 = models.IntegerField(default=0)

    objects = CorpManager["ChannelDay"]()

    class Meta:
        indexes = [
            models.Index(fields=["corp", "day"], name="channel_day_corp_day"),
            models.Index(fields=["corp", "channel", "day"], name="channel_day_channel"),
        ]


class ChannelDayDirty(CorpOwned):
    """A (corp, day) whose rollup rows must be rebuilt: marked in the transaction that changed an add, cleared
    by the one that rebuilt it."""

    day = models.DateField()
    marked_at = models.DateTimeField(default=now)

    objects = CorpManager["ChannelDayDirty"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corp", "day"], name="channel_day_dirty_unique")]
