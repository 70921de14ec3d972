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


def corp_key(*, db_index: bool = True, db_constraint: bool = True) -> Any:
    """The ``corp`` column of a corp-owned table. A table whose every lookup by corp is served by a composite
    index that leads with ``corp`` (a unique constraint, the list's sort index) declares it with
    ``db_index=False``: a one-column index there is never chosen, yet costs every insert.

    The tables a full sync fills by the hundred thousand declare it with ``db_constraint=False`` (see
    ``HOT_ROW_KEY``): the corp is the tenant every service writes with, and deleting a corp deletes its rows
    through Django (``on_delete``) all the same."""
    return models.ForeignKey(
        "corps.Corp",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=db_index,
        db_constraint=db_constraint,
    )


# Foreign keys of the rows a full sync writes several of per relation (customers, relations, timeline events,
# relation and customer tags, group stays) are declared without a database constraint. PostgreSQL checks a
# constraint row by row (a lookup and a share lock of the parent row, ~10 µs each): about 24 checks per
# relation, nearly half of the server's CPU in a first sync (bench/sync.py, 100,000 customers: PostgreSQL
# 67.5 → 41.0 cpu-s with these keys unconstrained, the limiter's statements written out too). Integrity stays
# with the code: every such row is written by its app's services with ids read
# in the same transaction, and parents are deleted through Django, which deletes (or nulls) these rows first
# (``on_delete``). The keys of relations and group stays followed (2 and up to 3 checks a row, and each check
# share-locks its customer's row, which the sync then updates). Links written one at a time keep their
# constraint.
HOT_ROW_KEY: dict[str, Any] = {"db_constraint": False}


class CorpOwned(models.Model):
    """Abstract base for every table that belongs to a corp."""

    corp = corp_key()

    objects: Any = CorpManager()

    class Meta:
        abstract = True
