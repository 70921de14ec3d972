"""Console pages of offline members: the pool, one member, imports (upload, column mapping, progress and the
report of rejected rows), and the CSV export.

Phones are personal data, as customers are: the list shows them masked; a member's page and the export show
them in full and are audited. Admins and operators see the whole pool and import; managers and staff see
the merged members whose customer they may see.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.core.errors import DomainError
from siyu.core.models import Job
from siyu.corps.access import Actor, scope_customers
from siyu.corps.services import audit
from siyu.customers.models import Customer
from siyu.offline import importing
from siyu.offline.models import OfflineImport, OfflineImportRejection, OfflineMember
from siyu.offline.phones import mask_phone, normalise_phone
from siyu.tags.models import Tag

PAGE_SIZE = 50
REPORT_ROWS = 200  # rejected rows shown on the page; the CSV has them all


def _actor(request: HttpRequest) -> Actor:
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None:
        raise PermissionDenied("no role in any corp")
    return actor


def _configurer(request: HttpRequest) -> Actor:
    actor = _actor(request)
    if not actor.can_configure:
        raise PermissionDenied("imports need the admin or operator role")
    return actor


def visible_members(actor: Actor) -> QuerySet[OfflineMember]:
    """The pool as the actor may see it: all of it for admins and operators, else the merged members whose
    customer is in their scope (a pending member belongs to no staff member yet)."""
    members = OfflineMember.objects.for_corp(actor.corp)
    if actor.sees_all_customers:
        return members
    customers = scope_customers(actor, Customer.objects.for_corp(actor.corp)).values("pk")
    return members.filter(status=OfflineMember.Status.MERGED, customer_id__in=customers)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_response(lines: Iterable[list[str]], filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def stream() -> Iterator[str]:
        yield "\ufeff"  # Excel opens UTF-8 CSV correctly with a BOM
        for line in lines:
            yield writer.writerow(line)

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# ---------- the pool ----------


@login_required
@require_GET
def member_list(request: HttpRequest) -> HttpResponse:
    """The pool, newest first, filtered by status and searched by name or phone; phones masked."""
    actor = _actor(request)
    status = request.GET.get("status", "")
    query = request.GET.get("q", "").strip()
    members = visible_members(actor)
    if status in OfflineMember.Status.values:
        members = members.filter(status=status)
    if query:
        phone = normalise_phone(query)
        members = members.filter(phone=phone) if phone else members.filter(name__icontains=query)
    before = request.GET.get("before", "")
    if before.isdigit():
        members = members.filter(pk__lt=int(before))
    page = list(members.select_related("customer").order_by("-id")[: PAGE_SIZE + 1])
    tags = {
        t.pk: t for t in Tag.objects.for_corp(actor.corp).filter(pk__in={i for m in page for i in m.tag_ids})
    }
    rows = [
        {"member": m, "phone": mask_phone(m.phone), "tags": [tags[i] for i in m.tag_ids if i in tags]}
        for m in page[:PAGE_SIZE]
    ]
    counts = {s: visible_members(actor).filter(status=s).count() for s in OfflineMember.Status.values}
    context = {
        "rows": rows,
        "next_before": page[PAGE_SIZE - 1].pk if len(page) > PAGE_SIZE else None,
        "status": status,
        "q": query,
        "counts": counts,
        "can_import": actor.can_configure,
        "imports": list(OfflineImport.objects.for_corp(actor.corp).select_related("job")[:5])
        if actor.can_configure
        else [],
    }
    return render(request, "offline/member_list.html", context)


@login_required
@require_GET
def member_detail(request: HttpRequest, member_id: int) -> HttpResponse:
    """One member with the full phone; every view is audited."""
    actor = _actor(request)
    member = visible_members(actor).filter(pk=member_id).select_related("customer", "relation__staff").first()
    if member is None:
        raise Http404("member not found")
    audit(
        corp=actor.corp,
        action="offline_member.view",
        object_type="offline_member",
        object_id=member.pk,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
    )
    tags = list(Tag.objects.for_corp(actor.corp).filter(pk__in=member.tag_ids).select_related("group"))
    return render(request, "offline/member_detail.html", {"member": member, "tags": tags})


@login_required
@require_GET
def member_export(request: HttpRequest) -> StreamingHttpResponse:
    """The members the actor may see as CSV (full phones); audited like a customer export."""
    actor = _actor(request)
    members = visible_members(actor).order_by("id")
    audit(
        corp=actor.corp,
        action="offline_members.export",
        object_type="offline_member",
        user_id=actor.user_id,
        detail={"rows": members.count()},
    )
    tag_names = dict(Tag.objects.for_corp(actor.corp).values_list("pk", "name"))
    statuses = dict(OfflineMember.Status.choices)

    def lines() -> Iterator[list[str]]:
        yield [_("Name"), _("Phone"), _("Tags"), _("Notes"), _("Status"), _("Customer"), _("Merged at")]
        for member in members.select_related("customer").iterator(chunk_size=1000):
            yield [
                member.name,
                member.phone,
                "、".join(tag_names[t] for t in member.tag_ids if t in tag_names),
                member.notes,
                str(statuses.get(member.status, member.status)),
                member.customer.name if member.customer else "",
                member.merged_at.isoformat() if member.merged_at else "",
            ]

    return _csv_response(lines(), "offline-members.csv")


# ---------- imports ----------


@login_required
@require_http_methods(["GET", "POST"])
def import_new(request: HttpRequest) -> HttpResponse:
    """Upload a member file (CSV or .xlsx); the next page maps its columns."""
    actor = _configurer(request)
    error = ""
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            if upload is None:
                from siyu.core.errors import Invalid

                raise Invalid(_("choose a file"), field="file")
            created = importing.upload_import(
                actor=actor,
                file_name=upload.name or "members",
                data=upload.read(importing.MAX_FILE_BYTES + 1),
            )
        except DomainError as exc:
            error = exc.message
        else:
            return HttpResponseRedirect(reverse("offline:import_detail", args=[created.pk]))
    return render(
        request,
        "offline/import_new.html",
        {"error": error, "max_rows": importing.MAX_ROWS},
        status=400 if error else 200,
    )


def _import_context(upload: OfflineImport, *, mapping_error: str = "") -> dict[str, Any]:
    job: Job | None = upload.job
    result = job.result if job else {}
    rejections = list(
        OfflineImportRejection.objects.for_corp(upload.corp_id).filter(offline_import=upload)[:REPORT_ROWS]
    )
    return {
        "upload": upload,
        "job": job,
        "result": result,
        "running": job is not None and job.status in (Job.Status.PENDING, Job.Status.RUNNING),
        "matching": result.get("phase") == "match",
        "rejections": rejections,
        "rejected_total": result.get("rejected", 0),
        "choices": importing.mapping_choices(upload.corp_id),
        "columns": [
            (str(i), header, upload.mapping.get(str(i), "")) for i, header in enumerate(upload.headers)
        ],
        "preview": [
            [row[i] if i < len(row) else "" for i in range(len(upload.headers))]
            for row in upload.rows[: importing.PREVIEW_ROWS]
        ],
        "mapping_error": mapping_error,
    }


@login_required
@require_http_methods(["GET", "POST"])
def import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    """Before the import: its columns and first rows, to map; after: progress, counts and the report."""
    actor = _configurer(request)
    try:
        upload = importing.get_import(actor, import_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    if request.method == "POST":
        mapping = {str(i): request.POST.get(f"column_{i}", "") for i in range(len(upload.headers))}
        try:
            importing.start_import(actor=actor, upload=upload, mapping=mapping)
        except DomainError as exc:
            upload.mapping = {k: v for k, v in mapping.items() if v}
            return render(
                request,
                "offline/import_detail.html",
                _import_context(upload, mapping_error=exc.message),
                status=400,
            )
        messages.success(request, _("The import has started."))
        return HttpResponseRedirect(reverse("offline:import_detail", args=[upload.pk]))
    return render(request, "offline/import_detail.html", _import_context(upload))


@login_required
@require_GET
def import_progress(request: HttpRequest, import_id: int) -> HttpResponse:
    """The progress fragment htmx polls every second until the import is done."""
    actor = _configurer(request)
    try:
        upload = importing.get_import(actor, import_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    return render(request, "offline/import_progress.html", _import_context(upload))


@login_required
@require_POST
def import_resume(request: HttpRequest, import_id: int) -> HttpResponse:
    actor = _configurer(request)
    try:
        upload = importing.get_import(actor, import_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    if upload.job is not None and importing.resume_import(job=upload.job):
        messages.info(request, _("The import will continue where it stopped."))
    return HttpResponseRedirect(reverse("offline:import_detail", args=[upload.pk]))


@login_required
@require_GET
def import_rejections(request: HttpRequest, import_id: int) -> StreamingHttpResponse:
    """Every rejected row of an import as CSV: row number, reason, message and the row itself (audited)."""
    actor = _configurer(request)
    try:
        upload = importing.get_import(actor, import_id)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    audit(
        corp=actor.corp,
        action="offline.import_rejections",
        object_type="offline_import",
        object_id=upload.pk,
        user_id=actor.user_id,
    )
    return _csv_response(importing.rejection_lines(upload), f"import-{upload.pk}-rejected.csv")
