"""Customer pages: the list (filters, keyset pages, count fragment), bulk tagging jobs, exports.

Thin: parse the query string with ``CustomerFilterForm``, call a selector or service, render.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from siyu.core.clock import now
from siyu.core.errors import DomainError
from siyu.core.models import Job
from siyu.corps.access import Actor
from siyu.corps.services import audit
from siyu.customers.bulk import BULK_TAG, resume_bulk_tag, start_bulk_tag
from siyu.customers.exports import csv_lines, export_rows, write_xlsx
from siyu.customers.filters import CustomerFilterForm, FilterOptions, filter_query, load_filter_options
from siyu.customers.models import Customer, FollowRelation
from siyu.customers.selectors import DEFAULT_SORT, CustomerPage, count_customers, list_customers
from siyu.tags.models import Tag

# A row shows this many tag chips, then "+n": enough to read, short enough to keep rows one line high.
ROW_TAG_CHIPS = 6


def _actor(request: HttpRequest) -> Actor | None:
    return getattr(request, "actor", None)


def _no_corp(request: HttpRequest) -> HttpResponse:
    return render(request, "console/no_corp.html", status=403)


@dataclass
class CustomerRow:
    """One line of the list, ready to render: relations visible to the actor (active first) and tags."""

    customer: Customer
    relations: list[FollowRelation]
    tags: list[Tag]
    more_tags: int


def _rows(page: CustomerPage) -> list[CustomerRow]:
    rows = []
    for customer in page.items:
        relations = list(customer.relations.all())  # prefetched by list_customers
        active = [r for r in relations if r.status == FollowRelation.Status.ACTIVE]
        tags = [ct.tag for ct in customer.customer_tags.all()]  # prefetched too
        rows.append(
            CustomerRow(
                customer=customer,
                relations=active or relations,
                tags=tags[:ROW_TAG_CHIPS],
                more_tags=max(0, len(tags) - ROW_TAG_CHIPS),
            )
        )
    return rows


def _with(query: QueryDict, **values: str) -> str:
    copy = query.copy()
    for key, value in values.items():
        copy.pop(key, None)
        if value:
            copy[key] = value
    return copy.urlencode()


def _list_context(request: HttpRequest, actor: Actor) -> tuple[dict[str, Any], int]:
    """Everything the list page and its row fragment show; the status is 400 for a bad filter or cursor."""
    options = load_filter_options(actor)
    form = CustomerFilterForm(request.GET, options=options)
    page: CustomerPage | None = None
    error = ""
    if form.is_valid():
        try:
            # Date filters mean days in the corp's zone, as shown on the page.
            with timezone.override(actor.corp.time_zone):
                page = list_customers(
                    actor,
                    form.to_filter(),
                    sort=form.chosen_sort,
                    cursor=form.chosen_cursor,
                    page_size=form.chosen_page_size,
                )
        except DomainError as exc:
            error = exc.message
    query = filter_query(request.GET)
    sort = form.chosen_sort if page is not None else DEFAULT_SORT
    paging = {"sort": "" if sort == DEFAULT_SORT else sort, "page_size": request.GET.get("page_size", "")}
    next_query = _with(query, cursor=page.next_cursor, **paging) if page and page.next_cursor else ""
    context = {
        "form": form,
        "options": options,
        "selected": _selected(form, options),
        "page": page,
        "rows": _rows(page) if page is not None else [],
        "error": error,
        "sort": sort,
        "filter_query": query.urlencode(),
        "next_query": next_query,
        "first_query": _with(query, **paging) if form.chosen_cursor else "",
        "sort_queries": {
            "name": _with(query, sort="-name" if sort == "name" else "name"),
            "added": _with(query, sort="added" if sort == "-added" else ""),
        },
        "export_max_rows": settings.SIYU["EXPORT_MAX_ROWS"],
        "can_filter_by_staff": options.show_staff_filters,
    }
    return context, 200 if page is not None else 400


def _selected(form: CustomerFilterForm, options: FilterOptions) -> dict[str, set[int]]:
    """Ids ticked in the pickers, read from the raw data so an invalid form keeps what was chosen."""

    def ids(name: str, offered: set[int]) -> set[int]:
        raw = form.data.getlist(name) if hasattr(form.data, "getlist") else []
        return {int(v) for v in raw if v.isdigit()} & offered

    return {
        "tag": ids("tag", options.tag_ids),
        "staff": ids("staff", {s.pk for s in options.staff}),
        "department": ids("department", {d.pk for d in options.departments}),
    }


@login_required
@require_GET
def customer_list(request: HttpRequest) -> HttpResponse:
    actor = _actor(request)
    if actor is None:
        return _no_corp(request)
    context, status = _list_context(request, actor)
    return render(request, "customers/list.html", context, status=status)


@login_required
@require_GET
def customer_rows(request: HttpRequest) -> HttpResponse:
    """The next page's rows and pager (htmx "more": rows are appended, the pager swapped out-of-band)."""
    actor = _actor(request)
    if actor is None:
        return _no_corp(request)
    context, status = _list_context(request, actor)
    context["first_query"] = ""  # the rows join a page that starts at the first row
    return render(request, "customers/list_rows.html", context, status=status)


@login_required
@require_GET
def customer_count(request: HttpRequest) -> HttpResponse:
    """The number of customers matching the filter, loaded apart so the list itself stays fast."""
    actor = _actor(request)
    if actor is None:
        return _no_corp(request)
    form = CustomerFilterForm(filter_query(request.GET), options=load_filter_options(actor))
    count: int | None = None
    if form.is_valid():
        with timezone.override(actor.corp.time_zone):
            count = count_customers(actor, form.to_filter())
    return render(
        request, "customers/list_count.html", {"count": count}, status=200 if count is not None else 400
    )


def _back_to_list(query: str) -> HttpResponse:
    return redirect(reverse("customers:list") + (f"?{query}" if query else ""))


@login_required
@require_GET
def customer_export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """The customers matching the filter as CSV (streamed, UTF-8 with BOM) or .xlsx, up to EXPORT_MAX_ROWS."""
    actor = _actor(request)
    if actor is None:
        return _no_corp(request)
    query = filter_query(request.GET)
    form = CustomerFilterForm(query, options=load_filter_options(actor))
    if not form.is_valid():
        messages.error(request, _("The filter is not valid; fix it before exporting."))
        return _back_to_list(query.urlencode())
    customer_filter = form.to_filter()
    with timezone.override(actor.corp.time_zone):
        count = count_customers(actor, customer_filter)
    maximum = cast(int, settings.SIYU["EXPORT_MAX_ROWS"])
    if count > maximum:
        messages.error(
            request,
            _("%(count)s customers match, more than the %(max)s an export may hold. Narrow the filter.")
            % {"count": f"{count:,}", "max": f"{maximum:,}"},
        )
        return _back_to_list(query.urlencode())
    audit(
        corp=actor.corp,
        action="customers.export",
        object_type="customer",
        user_id=actor.user_id,
        detail={"format": fmt, "rows": count, "filter": query.urlencode()},
    )
    stamp = timezone.localtime(now(), timezone.get_default_timezone()).strftime("%Y%m%d-%H%M")
    rows = export_rows(actor, customer_filter)
    if fmt == "csv":
        response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="customers-{stamp}.csv"'
        return response
    return FileResponse(
        write_xlsx(rows),
        as_attachment=True,
        filename=f"customers-{stamp}.xlsx",
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


@login_required
@require_POST
def customer_bulk_tag(request: HttpRequest) -> HttpResponse:
    """Start a bulk tag job on the picked customers or on all matching the filter, then show its progress."""
    actor = _actor(request)
    if actor is None:
        return _no_corp(request)
    query = request.POST.get("filter_query", "")
    try:
        add = [int(v) for v in request.POST.getlist("add_tag")]
        remove = [int(v) for v in request.POST.getlist("remove_tag")]
        picked = [int(v) for v in request.POST.getlist("ids")]
    except ValueError:
        messages.error(request, _("The selection is not valid."))
        return _back_to_list(query)
    customer_filter = None
    if request.POST.get("all_matching") == "1":
        form = CustomerFilterForm(filter_query(QueryDict(query)), options=load_filter_options(actor))
        if not form.is_valid():
            messages.error(request, _("The filter is not valid; fix it before tagging."))
            return _back_to_list(query)
        customer_filter = form.to_filter()
    try:
        job = start_bulk_tag(
            actor=actor,
            add_tag_ids=add,
            remove_tag_ids=remove,
            customer_ids=None if customer_filter is not None else picked,
            customer_filter=customer_filter,
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return _back_to_list(query)
    return redirect(
        reverse("customers:job", args=[job.pk]) + (f"?{QueryDict(query).urlencode()}" if query else "")
    )


def _job(actor: Actor, job_id: int) -> Job:
    """A bulk job of the actor's corp; people who do not see every customer see only their own jobs."""
    jobs = Job.objects.for_corp(actor.corp).filter(pk=job_id, kind=BULK_TAG)
    if not actor.sees_all_customers:
        jobs = jobs.filter(created_by_id=actor.user_id)
    job = jobs.first()
    if job is None:
        raise Http404("job not found")
    return job


def _job_context(request: HttpRequest, job: Job) -> dict[str, Any]:
    add_ids: list[int] = job.params.get("add_tag_ids", [])
    remove_ids: list[int] = job.params.get("remove_tag_ids", [])
    tags = {t.pk: t for t in Tag.objects.for_corp(job.corp_id).filter(pk__in=[*add_ids, *remove_ids])}
    return {
        "job": job,
        "add_tags": [tags[pk] for pk in add_ids if pk in tags],
        "remove_tags": [tags[pk] for pk in remove_ids if pk in tags],
        "by_filter": "filter" in job.params,
        "running": job.status in (Job.Status.PENDING, Job.Status.RUNNING),
        "shown_done": min(job.done, job.total),
        "unchanged": max(0, job.done - job.result.get("customers_changed", 0) - job.result.get("skipped", 0)),
        "list_query": filter_query(request.GET).urlencode(),
        "elapsed": (job.finished_at or now()) - job.created_at if job.created_at else dt.timedelta(0),
    }


@login_required
@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    actor = _actor(request)
    if actor is None:
        return _no_corp(request)
    return render(request, "customers/job.html", _job_context(request, _job(actor, job_id)))


@login_required
@require_GET
def job_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    """The progress fragment htmx polls every second until the job is done or failed."""
    actor = _actor(request)
    if actor is None:
        return _no_corp(request)
    return render(request, "customers/job_progress.html", _job_context(request, _job(actor, job_id)))


@login_required
@require_POST
def job_resume(request: HttpRequest, job_id: int) -> HttpResponse:
    """Run an unfinished job again from where it stands (after a worker died mid-way)."""
    actor = _actor(request)
    if actor is None:
        return _no_corp(request)
    job = _job(actor, job_id)
    if resume_bulk_tag(job=job):
        messages.info(request, _("The job will continue where it stopped."))
    query = filter_query(request.GET).urlencode()
    return redirect(reverse("customers:job", args=[job.pk]) + (f"?{query}" if query else ""))
