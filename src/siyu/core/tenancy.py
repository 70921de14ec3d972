"""Tenant scoping: every row belongs to a corp and every query names the corp it reads.

Models that carry a corp use ``CorpManager``; its querysets are reached through ``for_corp(corp)``. The plain
``all()`` stays available for migrations, admin commands and the tenancy test, which walks every model and
checks it has a ``corp`` and this manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.db import models

if TYPE_CHECKING:
    from siyu.corps.models import Corp

M = TypeVar("M", bound=models.Model)


class CorpQuerySet(models.QuerySet[M], Generic[M]):
    def for_corp(self, corp: Corp | int) -> CorpQuerySet[M]:
        corp_id = corp if isinstance(corp, int) else corp.pk
        return self.filter(corp_id=corp_id)


class CorpManager(models.Manager[M], Generic[M]):
    """Default manager of corp-owned models."""

    def get_queryset(self) -> CorpQuerySet[M]:
        return CorpQuerySet(self.model, using=self._db)

    def for_corp(self, corp: Corp | int) -> CorpQuerySet[M]:
        return self.get_queryset().for_corp(corp)


class CorpOwned(models.Model):
    """Abstract base for every table that belongs to a corp."""

    corp = models.ForeignKey("corps.Corp", on_delete=models.CASCADE, related_name="+")

    objects: Any = CorpManager()

    class Meta:
        abstract = True
