"""Reactions of the tags app to WeCom's events: tagging rules for customers who joined a customer group."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from siyu.corps.models import Corp
from siyu.customers.models import FollowRelation
from siyu.groups.models import GroupChat, GroupMember
from siyu.tags.rules import Facts, Trigger, apply_rules
from siyu.wecom.signals import group_joined

log = logging.getLogger(__name__)


def on_group_joined(
    *,
    corp: Corp,
    group: GroupChat,
    external_userids: Sequence[str],
    join_scene: int | None = None,
    at: dt.datetime,
    **_: Any,
) -> None:
    """Apply group-join rules to each joining customer's active relations (WeCom tags live on relations)."""
    stays = dict(
        GroupMember.objects.for_corp(corp)
        .filter(group=group, userid__in=list(external_userids), left_at=None, customer__isnull=False)
        .values_list("customer_id", "pk")
    )
    if not stays:
        return  # not customers of the corp (yet): nobody's relation to tag
    relations = (
        FollowRelation.objects.for_corp(corp)
        .filter(customer_id__in=list(stays), status=FollowRelation.Status.ACTIVE)
        .select_related("customer", "staff")
        .order_by("id")
    )
    for relation in relations:
        with transaction.atomic():
            apply_rules(
                Facts(
                    corp=corp,
                    trigger=Trigger.GROUP_JOINED,
                    relation=relation,
                    subject_key=f"stay:{stays[relation.customer_id]}:relation:{relation.pk}",
                    at=at,
                    group_id=group.pk,
                    join_scene=join_scene,
                )
            )


def connect() -> None:
    group_joined.connect(on_group_joined, dispatch_uid="tags.on_group_joined")
