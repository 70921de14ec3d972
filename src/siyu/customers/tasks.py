"""Background work for customers. Tasks are thin: they call the module that holds the logic."""

from __future__ import annotations

from django_tasks import task

from siyu.customers.bulk import process_bulk_tag_job


@task()
def run_bulk_tag_job(job_id: int) -> None:
    """Work a bulk tag job (see ``customers.bulk``); resumes where a previous run stopped."""
    process_bulk_tag_job(job_id=job_id)
