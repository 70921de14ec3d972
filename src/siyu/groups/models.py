"""Customer groups (客户群) and who was in them when: a member's every stay is a row, so history is kept."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.clock import now
from siyu.core.tenancy import CorpManager, CorpOwned, corp_key


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
    corp = corp_key(db_index=False)
    group = models.ForeignKey(GroupChat, on_delete=models.CASCADE, related_name="members", db_index=False)
    userid = models.CharField(max_length=64)  # a staff userid or an external_userid
    type = models.SmallIntegerField(choices=Type.choices, default=Type.EXTERNAL)
    staff = models.ForeignKey(
        "corps.Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="group_stays",
        db_index=False,
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
