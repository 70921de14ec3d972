"""Bulk tagging of many customers as a background job the console can watch.

A job covers either the customers picked on the page or everyone matching a filter. The worker walks them in
customer-id order, ``BULK_BATCH_SIZE`` at a time; each batch and the job's progress (the last id done and the
counts) commit together, so a worker that dies mid-batch leaves the batch undone and its successor resumes
right there. Replaying customers is harmless anyway: ``tag_customers`` never applies a tag twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.core.clock import now
from siyu.core.errors import DomainError, Invalid
from siyu.core.models import Job
from siyu.corps.access import Actor, actor_for_api_key, actor_for_user
from siyu.corps.models import ApiKey
from siyu.corps.services import audit
from siyu.customers.filters import filter_from_params, filter_to_params
from siyu.customers.models import Event
from siyu.customers.selectors import CustomerFilter, count_customers, filter_customers
from siyu.tags.services import resolve_tags, tag_customers

logger = logging.getLogger(__name__)

BULK_TAG = "bulk_tag"
# Picked ids travel in the job's JSON params; beyond this many, select "all matching the filter" instead.
MAX_PICKED_CUSTOMERS = 10_000
# A task run stops after this long and enqueues its continuation, so one job never holds a worker for hours
# and a deploy that restarts workers loses at most one batch of work (which is then redone).
RUN_TIME_BUDGET_SECONDS = 120.0


def start_bulk_tag(
    *,
    actor: Actor,
    add_tag_ids: Sequence[int] = (),
    remove_tag_ids: Sequence[int] = (),
    customer_ids: Sequence[int] | None = None,
    customer_filter: CustomerFilter | None = None,
) -> Job:
    """Create a bulk tag job for the picked customers or for all matching a filter; it runs after commit."""
    add = [t.pk for t in resolve_tags(actor.corp, add_tag_ids)]
    remove = [t.pk for t in resolve_tags(actor.corp, remove_tag_ids)]
    if not add and not remove:
        raise Invalid(_("choose at least one tag to add or remove"), field="tags")
    if set(add) & set(remove):
        raise Invalid(_("a tag cannot be added and removed at once"), field="tags")
    if (customer_ids is None) == (customer_filter is None):
        raise Invalid(_("pick customers or choose all customers matching the filter"), field="customers")
    params: dict[str, Any] = {
        "add_tag_ids": add,
        "remove_tag_ids": remove,
        "user_id": actor.user_id,
        "api_key_id": actor.api_key_id,
    }
    if customer_ids is not None:
        picked = sorted({int(pk) for pk in customer_ids})
        if not picked:
            raise Invalid(_("pick at least one customer"), field="customers")
        if len(picked) > MAX_PICKED_CUSTOMERS:
            raise Invalid(
                _("at most %(max)d picked customers; select all matching the filter instead")
                % {"max": MAX_PICKED_CUSTOMERS},
                field="customers",
            )
        params["customer_ids"] = picked
        total = len(picked)
    else:
        assert customer_filter is not None
        params["filter"] = filter_to_params(customer_filter)
        with timezone.override(actor.corp.time_zone):
            total = count_customers(actor, customer_filter)
    with transaction.atomic():
        job = Job.objects.create(
            corp=actor.corp,
            kind=BULK_TAG,
            total=total,
            params=params,
            result={"cursor": 0, "customers_changed": 0, "relations_changed": 0, "skipped": 0},
            created_by_id=actor.user_id,
        )
        audit(
            corp=actor.corp,
            action="customers.bulk_tag",
            object_type="job",
            object_id=job.pk,
            user_id=actor.user_id,
            api_key_id=actor.api_key_id,
            detail={
                "customers": total,
                "add_tag_ids": add,
                "remove_tag_ids": remove,
                "by_filter": "filter" in params,
            },
        )
        _enqueue_on_commit(job.pk)
    return job


def resume_bulk_tag(*, job: Job) -> bool:
    """Enqueue another run of an unfinished job (its worker died or was stopped); False if it is finished.

    Safe even when a run is still going: runs take the job row's lock per batch and continue from its cursor.
    """
    if job.kind != BULK_TAG or job.status in (Job.Status.DONE, Job.Status.FAILED):
        return False
    with transaction.atomic():
        _enqueue_on_commit(job.pk)
    return True


def _enqueue_on_commit(job_id: int) -> None:
    from siyu.customers.tasks import run_bulk_tag_job

    transaction.on_commit(lambda: run_bulk_tag_job.enqueue(job_id=job_id))


def _actor_for_job(job: Job) -> Actor:
    """Who started the job, with their scope as it is now (a revoked role stops the job)."""
    params = job.params
    if params.get("api_key_id"):
        return actor_for_api_key(
            ApiKey.objects.select_related("corp").get(pk=params["api_key_id"], corp=job.corp)
        )
    user = get_user_model().objects.get(pk=params["user_id"])
    return actor_for_user(user.pk, job.corp, is_superuser=user.is_superuser)


def _next_customer_ids(actor: Actor, job: Job, after: int, size: int) -> list[int]:
    if "customer_ids" in job.params:
        return [pk for pk in job.params["customer_ids"] if pk > after][:size]
    customer_filter = filter_from_params(job.params["filter"])
    with timezone.override(actor.corp.time_zone):
        return list(
            filter_customers(actor, customer_filter)
            .filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:size]
        )


def _finish(job_id: int, *, status: str, error: str = "") -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        job.status = status
        job.error = error
        job.finished_at = now()
        # A filter's matches can grow while the job runs: never show more done than total.
        job.total = max(job.total, job.done)
        job.save(update_fields=["status", "error", "finished_at", "total"])
    return job


def process_bulk_tag_job(*, job_id: int, max_batches: int | None = None) -> Job | None:
    """Work a bulk tag job from where it stands, batch by batch; returns the job (None if there is none).

    Stops after ``max_batches`` (or the run's time budget) leaving the job running, to be continued by the
    next call: the task enqueues that continuation itself.
    """
    job = Job.objects.select_related("corp").filter(pk=job_id, kind=BULK_TAG).first()
    if job is None or job.status in (Job.Status.DONE, Job.Status.FAILED):
        return job
    try:
        actor = _actor_for_job(job)
    except (DomainError, get_user_model().DoesNotExist, ApiKey.DoesNotExist):
        # Shown on the job's page; written in the worker's language, the configured default.
        return _finish(
            job_id, status=Job.Status.FAILED, error=_("the user who started this job can no longer tag")
        )
    Job.objects.filter(pk=job_id, status=Job.Status.PENDING).update(status=Job.Status.RUNNING)
    batch_size = cast(int, settings.SIYU["BULK_BATCH_SIZE"])
    started = time.monotonic()
    batches = 0
    while True:
        if max_batches is not None and batches >= max_batches:
            return Job.objects.get(pk=job_id)
        if time.monotonic() - started > RUN_TIME_BUDGET_SECONDS:
            _enqueue_on_commit(job_id)
            return Job.objects.get(pk=job_id)
        try:
            with transaction.atomic():
                job = Job.objects.select_for_update().get(pk=job_id)
                if job.status != Job.Status.RUNNING:
                    return job
                ids = _next_customer_ids(actor, job, int(job.result.get("cursor", 0)), batch_size)
                if not ids:
                    break
                outcome = tag_customers(
                    actor=actor,
                    customer_ids=ids,
                    add_tag_ids=job.params["add_tag_ids"],
                    remove_tag_ids=job.params["remove_tag_ids"],
                    source=Event.Source.CONSOLE,
                )
                job.done += len(ids)
                job.result = {
                    "cursor": ids[-1],
                    "customers_changed": job.result.get("customers_changed", 0) + outcome.customers_changed,
                    "relations_changed": job.result.get("relations_changed", 0) + outcome.relations_changed,
                    "skipped": job.result.get("skipped", 0) + outcome.skipped_customers,
                }
                job.save(update_fields=["done", "result"])
        except (
            DomainError
        ) as exc:  # e.g. a tag was deleted meanwhile: stop with the reason, keep what is done
            return _finish(job_id, status=Job.Status.FAILED, error=exc.message)
        batches += 1
    return _finish(job_id, status=Job.Status.DONE)
