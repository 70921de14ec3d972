"""Reactions to other apps' signals: relations with new remark mobiles are matched against the pool."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from siyu.customers.signals import remark_mobiles_changed


@receiver(remark_mobiles_changed)
def on_remark_mobiles_changed(sender: Any, corp_id: int, relation_ids: list[int], **kwargs: Any) -> None:
    """Queue the match (its own transaction, retried by the task queue), never in the sender's way."""
    from siyu.offline.models import OfflineMember
    from siyu.offline.tasks import match_offline_relations

    # Most corps' pools are empty or fully merged: no task for them.
    if OfflineMember.objects.for_corp(corp_id).filter(status=OfflineMember.Status.PENDING).exists():
        match_offline_relations.enqueue(corp_id=corp_id, relation_ids=list(relation_ids))
