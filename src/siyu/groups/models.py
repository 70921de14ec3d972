"""Customer groups (客户群) and who was in them when: a member's every stay is a row, so history is kept."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.clock import now
from siyu.core.tenancy import HOT_ROW_KEY, CorpManager, CorpOwned, corp_key


class GroupChat(CorpOwned):
    """A customer group as WeCom reports it (``groupchat/get``), identified by ``chat_id``."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DISMISSED = "dismissed", _("Dismissed")

    corp = corp_key(db_index=False)  # group_chat_unique_chat_id and group_chat_corp_status lead with it
    chat_id = models.CharField(max_length=64)
    name = models.CharField(max_length=128, blank=True, default="")
    owner = models.ForeignKey(
        "corps.Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_group_chats"
    )
    owner_userid = models.CharField(max_length=64, blank=True, default="")
    notice = models.TextField(blank=True, default="")
    admin_userids = models.JSONField(default=list, blank=True)
    wecom_created_at = models.DateTimeField(null=True, blank=True)
    # WeCom's inheritance status of the group (groupchat/list status): 0 normal, 1 awaiting inheritance after
    # the owner resigned, 2 inheriting, 3 inherited.
    inheritance_status = models.SmallIntegerField(default=0)
    # groupchat/get's member_version: a change event whose CurMemVer equals it needs no refetch.
    member_version = models.CharField(max_length=64, blank=True, default="")
    member_count = models.IntegerField(default=0)
    customer_count = models.IntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    # The full sync that last saw the group in groupchat/list; one that did not see it marks it dismissed.
    last_sync_run = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = CorpManager["GroupChat"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corp", "chat_id"], name="group_chat_unique_chat_id")]
        indexes = [models.Index(fields=["corp", "status", "name"], name="group_chat_corp_status")]
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name or self.chat_id


class GroupMember(CorpOwned):
    """One stay of a member in a group: when they joined and, once over, when and how they left."""

    class Type(models.IntegerChoices):  # WeCom member type: 1 corp member, 2 external contact
        STAFF = 1, _("Staff")
        EXTERNAL = 2, _("External contact")

    class JoinScene(models.IntegerChoices):  # groupchat/get join_scene
        UNKNOWN = 0, _("Unknown")
        INVITED = 1, _("Invited directly")
        LINK = 2, _("Invitation link")
        QR_CODE = 3, _("Scanned the group QR code")

    class QuitScene(models.IntegerChoices):  # change_external_chat QuitScene
        LEFT = 0, _("Left by themselves")
        REMOVED = 1, _("Removed by the owner or an admin")

    # Lookups by corp, group and customer are served by the indexes below, each led by that column.
    # No database constraint on its keys (HOT_ROW_KEY): a first sync writes every member of every group.
    corp = corp_key(db_index=False, db_constraint=False)  # HOT_ROW_KEY
    group = models.ForeignKey(
        GroupChat, on_delete=models.CASCADE, related_name="members", db_index=False, **HOT_ROW_KEY
    )
    userid = models.CharField(max_length=64)  # a staff userid or an external_userid
    type = models.SmallIntegerField(choices=Type.choices, default=Type.EXTERNAL)
    staff = models.ForeignKey(
        "corps.Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", **HOT_ROW_KEY
    )
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="group_stays",
        db_index=False,
        **HOT_ROW_KEY,
    )
    unionid = models.CharField(max_length=64, blank=True, default="")
    name = models.CharField(max_length=64, blank=True, default="")
    group_nickname = models.CharField(max_length=64, blank=True, default="")
    invitor_userid = models.CharField(max_length=64, blank=True, default="")
    join_scene = models.SmallIntegerField(default=JoinScene.UNKNOWN)
    joined_at = models.DateTimeField(default=now)
    left_at = models.DateTimeField(null=True, blank=True)
    # Null when the leave was seen by a sync rather than a callback (WeCom does not say how then).
    quit_scene = models.SmallIntegerField(null=True, blank=True)

    objects = CorpManager["GroupMember"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group", "userid"], condition=models.Q(left_at=None), name="group_member_one_current"
            )
        ]
        indexes = [
            models.Index(fields=["group", "left_at"], name="group_member_group_current"),
            models.Index(fields=["customer", "left_at"], name="group_member_customer"),
            # A customer's stays by external_userid, for those recorded before the customer was known.
            models.Index(fields=["corp", "userid"], name="group_member_userid"),
        ]
        ordering = ["joined_at", "id"]

    def __str__(self) -> str:
        return f"{self.userid}@{self.group_id}"

    @property
    def is_current(self) -> bool:
        return self.left_at is None


def new_code_token() -> str:
    """The public link's slug of a group code: random, so codes cannot be enumerated (72 bits)."""
    return secrets.token_urlsafe(9)


class GroupCode(CorpOwned):
    """A group live code (群活码): one stable public link that serves the QR of the first group of its pool
    with room and time left, so a printed code outlives every group QR behind it."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")

    name = models.CharField(max_length=64)
    token = models.CharField(max_length=24, unique=True, default=new_code_token)
    title = models.CharField(max_length=64, blank=True, default="")
    description = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # What a new group of the pool gets as its member limit unless the operator says otherwise.
    default_member_limit = models.IntegerField(default=200)
    scans = models.IntegerField(default=0)
    # Landing-page views that found no group to serve, and since when that has been so (None: one is served).
    missed_scans = models.IntegerField(default=0)
    exhausted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = CorpManager["GroupCode"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corp", "name"], name="group_code_unique_name")]
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class GroupCodeEntry(CorpOwned):
    """One group of a code's pool, in order: the group QR image the operator uploaded, the member count at
    which the next group takes over, and when the QR stops working."""

    code = models.ForeignKey(GroupCode, on_delete=models.CASCADE, related_name="entries")
    group = models.ForeignKey(GroupChat, on_delete=models.CASCADE, related_name="code_entries")
    position = models.IntegerField(default=0)
    # The uploaded image, checked and re-encoded as PNG; kept in the database so every web process of a
    # deployment serves it without shared storage (a group QR is tens of kilobytes).
    image = models.BinaryField()
    image_sha256 = models.CharField(max_length=64)
    image_width = models.IntegerField(default=0)
    image_height = models.IntegerField(default=0)
    qr_content = models.CharField(max_length=500, blank=True, default="")
    member_limit = models.IntegerField(default=200)
    expires_at = models.DateTimeField()
    enabled = models.BooleanField(default=True)
    scans = models.IntegerField(default=0)
    uploaded_at = models.DateTimeField(default=now)
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["GroupCodeEntry"]()

    class Meta:
        constraints = [
            # One code per group, so a join by the group's QR is attributed to exactly one code.
            models.UniqueConstraint(fields=["corp", "group"], name="group_code_entry_one_code")
        ]
        indexes = [models.Index(fields=["code", "position"], name="group_code_entry_order")]
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.code_id}#{self.position}"


class GroupCodeJoin(CorpOwned):
    """A join attributed to a group code: a stay that began by scanning the group QR (join_scene 3) of a
    group while it was in the code's pool."""

    code = models.ForeignKey(GroupCode, on_delete=models.CASCADE, related_name="joins")
    entry = models.ForeignKey(
        GroupCodeEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="joins"
    )
    stay = models.OneToOneField(GroupMember, on_delete=models.CASCADE, related_name="code_join")
    joined_at = models.DateTimeField(default=now)

    objects = CorpManager["GroupCodeJoin"]()

    class Meta:
        indexes = [models.Index(fields=["code", "joined_at"], name="group_code_join_code")]
        ordering = ["-joined_at", "-id"]


class GroupWelcomeTemplate(CorpOwned):
    """A group welcome message (入群欢迎语素材) in WeCom's library: text (``%NICKNAME%`` becomes the new
    member's nickname) and at most one attachment; members apply it to their groups in the WeCom client."""

    class AttachmentType(models.TextChoices):  # WeCom takes at most one of these, in this order of priority
        IMAGE = "image", _("Image")
        LINK = "link", _("Link")
        MINIPROGRAM = "miniprogram", _("Mini program")
        FILE = "file", _("File")
        VIDEO = "video", _("Video")

    name = models.CharField(max_length=64)
    text = models.TextField(blank=True, default="")
    attachment_type = models.CharField(max_length=12, choices=AttachmentType.choices, blank=True, default="")
    attachment = models.JSONField(default=dict, blank=True)  # the attachment's object as WeCom takes it
    notify = models.BooleanField(default=True)  # WeCom tells members to apply it to their groups
    template_id = models.CharField(max_length=64, blank=True, default="")  # WeCom's id, once it has it
    # Every edit is a new version; ``sent_version`` is the one WeCom has been sent (0: none yet).
    version = models.IntegerField(default=1)
    sent_version = models.IntegerField(default=0)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = CorpManager["GroupWelcomeTemplate"]()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["corp", "deleted_at"], name="group_welcome_corp_live")]

    def __str__(self) -> str:
        return self.name
