"""Corp tags (企业标签) in groups, and tags on customer–staff relations.

WeCom tags belong to a customer–staff pair (``RelationTag``); ``CustomerTag`` is the derived per-customer view
(a tag is on a customer when it is on any of the customer's relations), kept by ``tags.services``. Tagging
rules (``TaggingRule``) and the record of which rule fired for what (``RuleApplication``) serve
``tags.rules``.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.clock import now
from siyu.core.tenancy import HOT_ROW_KEY, CorpManager, CorpOwned, corp_key


class TagGroup(CorpOwned):
    """A group of tags (标签组). ``wecom_group_id`` is empty for Siyu-only groups."""

    name = models.CharField(max_length=30)  # WeCom limit: group names up to 30 characters
    wecom_group_id = models.CharField(max_length=64, blank=True, default="")
    order = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["TagGroup"]()

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["corp", "name"], name="tag_group_unique_name"),
            models.UniqueConstraint(
                fields=["corp", "wecom_group_id"],
                condition=~models.Q(wecom_group_id=""),
                name="tag_group_unique_wecom_id",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_wecom(self) -> bool:
        return bool(self.wecom_group_id)


class Tag(CorpOwned):
    """A corp tag. ``wecom_tag_id`` is empty for Siyu-only tags."""

    group = models.ForeignKey(TagGroup, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=30)  # WeCom limit: tag names up to 30 characters
    wecom_tag_id = models.CharField(max_length=64, blank=True, default="")
    order = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["Tag"]()

    class Meta:
        ordering = ["group__order", "group_id", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["group", "name"], name="tag_unique_name_in_group"),
            models.UniqueConstraint(
                fields=["corp", "wecom_tag_id"],
                condition=~models.Q(wecom_tag_id=""),
                name="tag_unique_wecom_id",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RelationTag(CorpOwned):
    """A tag on one customer–staff relation, as WeCom keeps it."""

    # Lookups by relation and by customer are served by the two indexes below, each led by that column. No
    # database constraints (HOT_ROW_KEY): a sync writes 1.5 relation tags a relation.
    corp = corp_key(db_constraint=False)
    relation = models.ForeignKey(
        "customers.FollowRelation",
        on_delete=models.CASCADE,
        related_name="relation_tags",
        db_index=False,
        **HOT_ROW_KEY,
    )
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="+", **HOT_ROW_KEY)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False, **HOT_ROW_KEY
    )
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["RelationTag"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["relation", "tag"], name="relation_tag_unique")]
        indexes = [models.Index(fields=["customer", "tag"], name="relation_tag_customer_tag")]


class CustomerTag(CorpOwned):
    """Derived: a tag is on a customer when any of their relations carries it."""

    # Both served by the two indexes below (customer_tag_unique, customer_tag_tag_customer). No database
    # constraints (HOT_ROW_KEY): derived rows, written set-based by the tags services.
    corp = corp_key(db_constraint=False)
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.CASCADE,
        related_name="customer_tags",
        db_index=False,
        **HOT_ROW_KEY,
    )
    tag = models.ForeignKey(
        Tag, on_delete=models.CASCADE, related_name="customer_tags", db_index=False, **HOT_ROW_KEY
    )

    objects = CorpManager["CustomerTag"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "tag"], name="customer_tag_unique")]
        # (tag, customer) serves "customers with tag X" and tag counts; the unique index serves the reverse.
        indexes = [models.Index(fields=["tag", "customer"], name="customer_tag_tag_customer")]


class TaggingRule(CorpOwned):
    """An automatic tagging rule an operator set up: when its trigger happens and its conditions hold, the
    customer's relation gets its tags (``tags.rules``). ``config`` holds the kind's conditions."""

    class Kind(models.TextChoices):
        TIME_OF_ADD = "time_of_add", _("Time of add")
        GROUP_JOIN = "group_join", _("Joined a customer group")

    name = models.CharField(max_length=60)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = CorpManager["TaggingRule"]()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["corp", "kind", "enabled"], name="tagging_rule_corp_kind")]

    def __str__(self) -> str:
        return self.name


class TaggingRuleTag(CorpOwned):
    """A tag a rule applies."""

    rule = models.ForeignKey(TaggingRule, on_delete=models.CASCADE, related_name="rule_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="+")

    objects = CorpManager["TaggingRuleTag"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "tag"], name="tagging_rule_tag_unique")]


class RuleApplication(CorpOwned):
    """That a rule (``rule_key``: ``rule:<id>``, ``channel:<id>``…) fired for a subject (``subject_key``: the
    add, the group stay…): a rule fires once per subject, so a redelivered callback or a later sync never
    tags again, not even a tag someone removed since."""

    rule_key = models.CharField(max_length=60)
    subject_key = models.CharField(max_length=80)
    relation = models.ForeignKey(
        "customers.FollowRelation", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    tags_added = models.IntegerField(default=0)
    applied_at = models.DateTimeField(default=now)

    objects = CorpManager["RuleApplication"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["corp", "rule_key", "subject_key"], name="rule_application_unique"
            )
        ]
