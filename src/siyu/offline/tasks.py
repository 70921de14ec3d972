"""Background work for offline members. Tasks are thin: they call the module that holds the logic."""

from __future__ import annotations

from django_tasks import task

from siyu.offline.importing import process_import_job
from siyu.offline.merging import match_relations


@task()
def run_offline_import(job_id: int) -> None:
    """Work an import job (see ``offline.importing``); resumes where a previous run stopped."""
    process_import_job(job_id=job_id)


@task()
def match_offline_relations(corp_id: int, relation_ids: list[int]) -> None:
    """Merge the pending members whose phones these relations now carry."""
    match_relations(corp_id=corp_id, relation_ids=relation_ids)
