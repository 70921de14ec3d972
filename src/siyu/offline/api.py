"""Offline member imports over the REST API: upload a file (and start it), then follow its progress."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import File, Form, Router, Schema
from ninja.files import UploadedFile
from ninja.responses import Status

from siyu.api.schemas import ERRORS, current_actor
from siyu.offline import importing
from siyu.offline.models import OfflineImport, OfflineImportRejection

router = Router(tags=["offline members"])
REJECTIONS_SHOWN = 1000


class RejectionOut(Schema):
    row: int
    reason: str
    message: str


class ImportOut(Schema):
    id: int
    file_name: str
    rows: int
    headers: list[str]
    mapping: dict[str, str]
    status: str  # "mapping" until started, then the job's status
    done: int
    counts: dict[str, int]
    rejections: list[RejectionOut]

    @classmethod
    def of(cls, upload: OfflineImport) -> ImportOut:
        job = upload.job
        result = job.result if job else {}
        keys = ("created", "updated", "unchanged", "rejected", "merged")
        return cls(
            id=upload.pk, file_name=upload.file_name, rows=len(upload.rows), headers=upload.headers,
            mapping=upload.mapping, status=job.status if job else "mapping", done=job.done if job else 0,
            counts={k: int(result.get(k, 0)) for k in keys},
            rejections=[
                RejectionOut(row=r.row_number, reason=r.reason, message=r.message)
                for r in OfflineImportRejection.objects.for_corp(upload.corp_id)
                .filter(offline_import=upload)[:REJECTIONS_SHOWN]
            ],
        )  # fmt: skip


@router.post("/offline/imports", response={201: ImportOut, **ERRORS}, summary="Upload a member file")
def upload(request: HttpRequest, file: File[UploadedFile], start: Form[bool] = True) -> Status[ImportOut]:
    """multipart/form-data: ``file`` (.csv or .xlsx, header row first). With ``start`` (default) the import
    starts at once with the columns mapped from the header (name, phone, tags, notes, custom fields)."""
    actor = current_actor(request)
    created = importing.upload_import(
        actor=actor, file_name=file.name or "members", data=file.read(importing.MAX_FILE_BYTES + 1)
    )
    if start:
        importing.start_import(actor=actor, upload=created, mapping=created.mapping)
        created.refresh_from_db()
    return Status(201, ImportOut.of(created))


@router.get("/offline/imports/{import_id}", response={200: ImportOut, **ERRORS}, summary="Get an import")
def get_import(request: HttpRequest, import_id: int) -> ImportOut:
    """An import's progress, counts and rejected rows (row number, reason, message)."""
    return ImportOut.of(importing.get_import(current_actor(request), import_id))
