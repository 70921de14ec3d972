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


def corp_key(*, db_index: bool = True) -> Any:
    """The ``corp`` column of a corp-owned table. A table whose every lookup by corp is served by a composite
    index that leads with ``corp`` (a unique constraint, the list's sort index) declares it with
    ``db_index=False``: a one-column index there is never chosen, yet costs every insert."""
    return models.ForeignKey("corps.Corp", on_delete=models.CASCADE, related_name="+", db_index=db_index)


class CorpOwned(models.Model):
    """Abstract base for every table that belongs to a corp."""

    corp = corp_key()

    objects: Any = CorpManager()

    class Meta:
        abstract = True
