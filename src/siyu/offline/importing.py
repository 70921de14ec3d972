"""Importing offline members from a CSV or Excel file: a job with progress, every rejected row reported.

1. ``upload_import`` reads the file once (CSV in UTF-8 or GB18030, or .xlsx), keeps its rows and guesses how
   its columns map (name, phone, tags, notes, custom fields) from the header.
2. ``start_import`` takes the mapping the operator confirmed and starts a ``core.models.Job``.
3. The worker (``process_import_job``) checks each row and writes the members ``BATCH`` rows per transaction;
   a row that cannot be imported is recorded with its row number and reason. Then it matches the pool against
   the relations Siyu already has (``merging.match_existing``), so members who are WeCom customers already
   merge at once.

Decisions: a row is rejected for a missing name, a phone that is not one, a phone already seen earlier in the
file, an unknown or ambiguous tag (tags are not created from a file: a typo would become a WeCom tag every
staff member sees; create the tag, then import again), a custom-field value the field does not accept, or a
member already merged with a customer. Importing is idempotent: a phone is one member, so importing the
same file again changes nothing, and a changed row updates its pending member.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from siyu.core.clock import now
from siyu.core.errors import DomainError, Invalid, NotFound
from siyu.core.models import Job
from siyu.corps.access import Actor
from siyu.corps.services import audit
from siyu.customers.models import CustomField
from siyu.customers.services import clean_custom_value
from siyu.offline.merging import match_existing, relations_with_mobiles
from siyu.offline.models import OfflineImport, OfflineImportRejection, OfflineMember
from siyu.offline.phones import normalise_phone
from siyu.tags.models import Tag

IMPORT_JOB = "offline_import"
# A member file of a shop or a loyalty programme: tens of thousands of rows at most. The file is parsed in
# the request, so its size is bounded: 10 MB of CSV is ~150,000 rows.
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
# Rows checked and written per transaction: ~0.2 s of work, so progress moves every poll of the page.
BATCH = 500
NAME_MAX = 64
NOTES_MAX = 2000
PREVIEW_ROWS = 10
FIELDS = ("name", "phone", "tags", "notes")
# Header words that name each field, as member files write them (compared lower-cased, without spaces).
HEADER_WORDS = {
    "name": ("name", "姓名", "名字", "客户姓名", "会员姓名", "称呼"),
    "phone": ("phone", "mobile", "手机", "手机号", "手机号码", "电话", "联系电话", "tel"),
    "tags": ("tags", "tag", "标签", "客户标签"),
    "notes": ("notes", "note", "备注", "说明"),
}
TAG_SEPARATORS = re.compile(r"[,，;；、|]")
GROUP_SEPARATOR = "/"  # "地区/上海" names the tag 上海 of the group 地区 when a name is in several groups


# --- reading files ----------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a phone number Excel stored as a number
    return str(value).strip()


def _read_csv(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK (a subset of GB18030)
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte sequence
        raise Invalid(_("the CSV file is neither UTF-8 nor GBK text"), field="file")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [[_cell(c) for c in row] for row in csv.reader(io.StringIO(text), dialect)]


def _read_xlsx(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise Invalid(_("the file is not an Excel workbook (.xlsx) Siyu can read"), field="file") from exc
    try:
        sheet = workbook.worksheets[0]
        rows = []
        for row in sheet.iter_rows(values_only=True):
            rows.append([_cell(c) for c in row])
            if len(rows) > MAX_ROWS + 1:
                break
        return rows
    finally:
        workbook.close()


def read_rows(file_name: str, data: bytes) -> tuple[str, list[list[str]]]:
    """The format and the rows (header first) of an uploaded file; ``Invalid`` for what cannot be read."""
    if not data:
        raise Invalid(_("choose a file"), field="file")
    if len(data) > MAX_FILE_BYTES:
        raise Invalid(
            _("the file is larger than %(max)d MB") % {"max": MAX_FILE_BYTES // (1024 * 1024)}, field="file"
        )
    lowered = file_name.lower()
    if lowered.endswith(".xlsx") or data[:4] == b"PK\x03\x04":
        fmt, rows = OfflineImport.Format.XLSX, _read_xlsx(data)
    elif lowered.endswith((".csv", ".txt")):
        fmt, rows = OfflineImport.Format.CSV, _read_csv(data)
    else:
        raise Invalid(_("upload a .csv or .xlsx file"), field="file")
    while rows and not any(rows[-1]):
        rows.pop()  # trailing blank lines
    if not rows or not any(rows[0]):
        raise Invalid(_("the file is empty: its first row should name the columns"), field="file")
    if len(rows) - 1 > MAX_ROWS:
        raise Invalid(_("the file has more than %(max)d rows: split it") % {"max": MAX_ROWS}, field="file")
    if len(rows) == 1:
        raise Invalid(_("the file has a header but no rows"), field="file")
    return str(fmt), rows


def guess_mapping(headers: Sequence[str], custom_fields: Iterable[CustomField]) -> dict[str, str]:
    """Column index → field, from the header's words (a custom field by its key or label)."""
    targets = {word: field for field, words in HEADER_WORDS.items() for word in words}
    for custom in custom_fields:
        targets.setdefault(custom.key.lower(), f"custom:{custom.key}")
        targets.setdefault(custom.label.lower().replace(" ", ""), f"custom:{custom.key}")
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for index, header in enumerate(headers):
        field = targets.get(header.lower().replace(" ", ""), "")
        if field and field not in taken:
            mapping[str(index)] = field
            taken.add(field)
    return mapping


def mapping_choices(corp_id: int) -> list[tuple[str, str]]:
    """What a column may be mapped to: the four fields and the corp's custom fields."""
    labels = {"name": _("Name"), "phone": _("Phone"), "tags": _("Tags"), "notes": _("Notes")}
    choices = [("", _("(ignore)")), *labels.items()]
    choices += [
        (f"custom:{f.key}", _("Custom field: %(label)s") % {"label": f.label})
        for f in CustomField.objects.for_corp(corp_id)
    ]
    return choices


def upload_import(*, actor: Actor, file_name: str, data: bytes) -> OfflineImport:
    """Store an uploaded member file, parsed, with a guessed column mapping (nothing imported yet)."""
    actor.require_configure()
    fmt, rows = read_rows(file_name, data)
    headers = rows[0]
    width = max(len(r) for r in rows)
    headers = headers + [""] * (width - len(headers))
    with transaction.atomic():
        upload = OfflineImport.objects.create(
            corp=actor.corp,
            file_name=file_name[:200],
            file_format=fmt,
            sha256=hashlib.sha256(data).hexdigest(),
            headers=headers,
            rows=rows[1:],
            mapping=guess_mapping(headers, CustomField.objects.for_corp(actor.corp)),
            created_by_id=actor.user_id,
        )
        audit(
            corp=actor.corp,
            action="offline.import_upload",
            object_type="offline_import",
            object_id=upload.pk,
            user_id=actor.user_id,
            api_key_id=actor.api_key_id,
            detail={"rows": len(rows) - 1, "format": fmt},
        )
    return upload


def get_import(actor: Actor, import_id: int) -> OfflineImport:
    """An import of the actor's corp (admins and operators only); anything else is a 404."""
    actor.require_configure()
    found = OfflineImport.objects.for_corp(actor.corp).filter(pk=import_id).select_related("job").first()
    if found is None:
        raise NotFound(_("import not found"))
    return found


def clean_mapping(corp_id: int, headers: Sequence[str], mapping: dict[str, str]) -> dict[str, str]:
    """A column mapping, checked: each field at most once, name and phone present."""
    allowed = {value for value, _label in mapping_choices(corp_id)}
    cleaned: dict[str, str] = {}
    used: set[str] = set()
    for index, field in mapping.items():
        if not field:
            continue
        if not str(index).isdigit() or int(index) >= len(headers):
            raise Invalid(_("the mapping names a column the file does not have"), field="mapping")
        if field not in allowed:
            raise Invalid(_("unknown field in the mapping: %(field)s") % {"field": field}, field="mapping")
        if field in used:
            raise Invalid(_("two columns are mapped to the same field"), field="mapping")
        used.add(field)
        cleaned[str(int(index))] = field
    if "name" not in used or "phone" not in used:
        raise Invalid(_("map one column to the name and one to the phone"), field="mapping")
    return cleaned


def start_import(*, actor: Actor, upload: OfflineImport, mapping: dict[str, str]) -> Job:
    """Start importing an uploaded file with this column mapping; runs in the background after commit."""
    actor.require_configure()
    if upload.corp_id != actor.corp.pk:
        raise NotFound(_("import not found"))
    if upload.job_id is not None:
        raise Invalid(_("this file is already being imported"), field="mapping")
    cleaned = clean_mapping(upload.corp_id, upload.headers, mapping)
    with transaction.atomic():
        job = Job.objects.create(
            corp=actor.corp,
            kind=IMPORT_JOB,
            total=len(upload.rows),
            params={"import_id": upload.pk},
            result={"cursor": 0, "created": 0, "updated": 0, "unchanged": 0, "rejected": 0, "merged": 0,
                    "phase": "rows"},
            created_by_id=actor.user_id,
        )  # fmt: skip
        upload.mapping = cleaned
        upload.job = job
        upload.save(update_fields=["mapping", "job"])
        _enqueue_on_commit(job.pk)
    return job


def resume_import(*, job: Job) -> bool:
    """Enqueue another run of an unfinished import (its worker stopped); False if it is finished."""
    if job.kind != IMPORT_JOB or job.status in (Job.Status.DONE, Job.Status.FAILED):
        return False
    with transaction.atomic():
        _enqueue_on_commit(job.pk)
    return True


def _enqueue_on_commit(job_id: int) -> None:
    from siyu.offline.tasks import run_offline_import

    transaction.on_commit(lambda: run_offline_import.enqueue(job_id=job_id))


# --- checking rows ----------------------------------------------------------------------------------------


class Rejected(Exception):
    """A row that is not imported, with its reason code and a message for the report."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class MemberRow:
    """A checked row: what its member should hold."""

    name: str
    phone: str
    tag_ids: list[int]
    notes: str
    custom_fields: dict[str, Any]


class TagNames:
    """The corp's tags by name and by "group/name", to resolve the tags column."""

    def __init__(self, corp_id: int):
        self.by_name: dict[str, list[int]] = {}
        self.by_path: dict[str, int] = {}
        for pk, name, group in Tag.objects.for_corp(corp_id).values_list("pk", "name", "group__name"):
            self.by_name.setdefault(name, []).append(pk)
            self.by_path[f"{group}{GROUP_SEPARATOR}{name}"] = pk

    def resolve(self, cell: str) -> list[int]:
        found: list[int] = []
        for raw in TAG_SEPARATORS.split(cell):
            name = raw.strip()
            if not name:
                continue
            if GROUP_SEPARATOR in name:
                path = GROUP_SEPARATOR.join(p.strip() for p in name.split(GROUP_SEPARATOR, 1))
                if path not in self.by_path:
                    raise Rejected("unknown_tag", _("unknown tag: %(tag)s") % {"tag": name})
                pk = self.by_path[path]
            else:
                candidates = self.by_name.get(name, [])
                if not candidates:
                    raise Rejected("unknown_tag", _("unknown tag: %(tag)s") % {"tag": name})
                if len(candidates) > 1:
                    raise Rejected(
                        "unknown_tag",
                        _("the tag %(tag)s is in several groups: write it as group/tag") % {"tag": name},
                    )
                pk = candidates[0]
            if pk not in found:
                found.append(pk)
        return found


def check_row(
    cells: Sequence[str], mapping: dict[str, str], tags: TagNames, fields: dict[str, CustomField]
) -> MemberRow:
    """A row's member, or ``Rejected`` with the first reason it cannot be imported."""
    values = {field: cells[int(i)] if int(i) < len(cells) else "" for i, field in mapping.items()}
    name = values.get("name", "").strip()
    if not name:
        raise Rejected("missing_name", _("the name is missing"))
    if len(name) > NAME_MAX:
        raise Rejected("bad_value", _("the name is longer than %(max)d characters") % {"max": NAME_MAX})
    raw_phone = values.get("phone", "").strip()
    phone = normalise_phone(raw_phone)
    if phone is None:
        message = (
            _("the phone is missing")
            if not raw_phone
            else _("not a phone number: %(phone)s") % {"phone": raw_phone[:40]}
        )
        raise Rejected("bad_phone", message)
    notes = values.get("notes", "").strip()
    if len(notes) > NOTES_MAX:
        raise Rejected("bad_value", _("the notes are longer than %(max)d characters") % {"max": NOTES_MAX})
    custom: dict[str, Any] = {}
    for field, raw in values.items():
        if field.startswith("custom:") and raw.strip():
            definition = fields.get(field.removeprefix("custom:"))
            if definition is None:
                continue  # deleted since the mapping was made
            try:
                custom[definition.key] = clean_custom_value(definition, raw.strip())
            except DomainError as exc:
                raise Rejected("bad_value", exc.message) from exc
    return MemberRow(
        name=name,
        phone=phone,
        tag_ids=tags.resolve(values.get("tags", "")),
        notes=notes,
        custom_fields=custom,
    )


# --- the job ----------------------------------------------------------------------------------------------


def _write_batch(upload: OfflineImport, start: int, rows: Sequence[Sequence[str]]) -> dict[str, int]:
    """Check and write rows ``start``… of the file (0-based data rows); returns the counts."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    tags = TagNames(upload.corp_id)
    fields = {f.key: f for f in CustomField.objects.for_corp(upload.corp_id)}
    checked: list[tuple[int, MemberRow]] = []
    rejections: list[OfflineImportRejection] = []
    first_row: dict[str, int] = dict(upload_phone_rows(upload, start))

    def reject(row_number: int, reason: str, message: str, cells: Sequence[str]) -> None:
        rejections.append(
            OfflineImportRejection(
                corp_id=upload.corp_id,
                offline_import=upload,
                row_number=row_number,
                reason=reason,
                message=message[:300],
                values=list(cells),
            )
        )

    for offset, cells in enumerate(rows):
        row_number = start + offset + 2  # the header is row 1
        if not any(cells):
            continue  # a blank line is not a member
        phone = _row_phone(cells, upload.mapping)
        earlier = first_row.setdefault(phone, row_number) if phone else row_number
        if earlier != row_number:
            reject(
                row_number,
                "duplicate_in_file",
                _("the same phone as row %(row)d: a phone is one member") % {"row": earlier},
                cells,
            )
            continue
        try:
            checked.append((row_number, check_row(cells, upload.mapping, tags, fields)))
        except Rejected as exc:
            reject(row_number, exc.reason, exc.message, cells)
    existing = {
        m.phone: m
        for m in OfflineMember.objects.for_corp(upload.corp_id).filter(
            phone__in=[m.phone for _r, m in checked]
        )
    }
    moment = now()
    new: list[OfflineMember] = []
    for row_number, member in checked:
        current = existing.get(member.phone)
        if current is None:
            new.append(
                OfflineMember(
                    corp_id=upload.corp_id,
                    name=member.name,
                    phone=member.phone,
                    tag_ids=member.tag_ids,
                    notes=member.notes,
                    custom_fields=member.custom_fields,
                    last_import=upload,
                    created_at=moment,
                    updated_at=moment,
                )
            )
            continue
        if current.status == OfflineMember.Status.MERGED:
            reject(
                row_number,
                "already_merged",
                _("this phone's member has already merged with a customer"),
                rows[row_number - start - 2],
            )
            continue
        wanted = (member.name, member.tag_ids, member.notes, member.custom_fields)
        if wanted == (current.name, current.tag_ids, current.notes, current.custom_fields):
            counts["unchanged"] += 1
            continue
        current.name, current.tag_ids, current.notes, current.custom_fields = wanted
        current.last_import = upload
        current.updated_at = moment
        current.save(update_fields=["name", "tag_ids", "notes", "custom_fields", "last_import", "updated_at"])
        counts["updated"] += 1
    OfflineMember.objects.bulk_create(new)
    counts["created"] = len(new)
    # A resumed batch may have recorded some of its rejections already: those rows stay as they are.
    OfflineImportRejection.objects.bulk_create(rejections, ignore_conflicts=True)
    counts["rejected"] = len(rejections)
    return counts


def _row_phone(cells: Sequence[str], mapping: dict[str, str]) -> str | None:
    """The row's normalised phone if it has one and a name: what makes a later row with it a duplicate."""
    columns = {field: int(i) for i, field in mapping.items()}
    name_col, phone_col = columns.get("name"), columns.get("phone")
    if name_col is None or phone_col is None or max(name_col, phone_col) >= len(cells):
        return None
    return normalise_phone(cells[phone_col]) if cells[name_col].strip() else None


def upload_phone_rows(upload: OfflineImport, before: int) -> Iterable[tuple[str, int]]:
    """(phone, row number) of the first of the rows before data row ``before`` to hold each phone, so a
    duplicate is found across batches (from the stored rows: no database reads)."""
    seen: dict[str, int] = {}
    for offset, cells in enumerate(upload.rows[:before]):
        phone = _row_phone(cells, upload.mapping)
        if phone is not None:
            seen.setdefault(phone, offset + 2)
    return seen.items()


def _finish(job_id: int, *, status: str, error: str = "") -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        job.status = status
        job.error = error
        job.finished_at = now()
        job.save(update_fields=["status", "error", "finished_at"])
    return job


def process_import_job(*, job_id: int, max_batches: int | None = None) -> Job | None:
    """Work an import job from where it stands; each batch and the job's progress commit together, so a
    worker that dies leaves its batch undone and the next run redoes exactly that batch."""
    job = Job.objects.filter(pk=job_id, kind=IMPORT_JOB).first()
    if job is None or job.status in (Job.Status.DONE, Job.Status.FAILED):
        return job
    Job.objects.filter(pk=job_id, status=Job.Status.PENDING).update(status=Job.Status.RUNNING)
    batches = 0
    while True:
        if max_batches is not None and batches >= max_batches:
            return Job.objects.get(pk=job_id)
        with transaction.atomic():
            job = Job.objects.select_for_update().get(pk=job_id)
            if job.status != Job.Status.RUNNING:
                return job
            upload = OfflineImport.objects.get(pk=job.params["import_id"])
            result = dict(job.result)
            if result.get("phase") == "rows":
                start = int(result["cursor"])
                rows = upload.rows[start : start + BATCH]
                if rows:
                    counts = _write_batch(upload, start, rows)
                    for key, value in counts.items():
                        result[key] = result.get(key, 0) + value
                    result["cursor"] = start + len(rows)
                    job.done = result["cursor"]
                else:
                    result.update(phase="match", cursor=0, match_total=relations_with_mobiles(upload.corp_id),
                                  match_done=0)  # fmt: skip
            else:
                step = next(match_existing(corp_id=upload.corp_id, after=int(result["cursor"])), None)
                if step is None:
                    job.result = result
                    job.save(update_fields=["result"])
                    break
                result["cursor"] = step.cursor
                result["match_done"] = result.get("match_done", 0) + step.read
                result["merged"] = result.get("merged", 0) + step.merged
            job.result = result
            job.save(update_fields=["result", "done"])
        batches += 1
    return _finish(job_id, status=Job.Status.DONE)


# --- reports ----------------------------------------------------------------------------------------------


def rejection_lines(upload: OfflineImport) -> Iterable[list[str]]:
    """The rejected rows as CSV lines: row number, reason, message, then the row's own cells."""
    yield [_("Row"), _("Reason"), _("Message"), *upload.headers]
    labels = dict(OfflineImportRejection.Reason.choices)
    for rejection in OfflineImportRejection.objects.for_corp(upload.corp_id).filter(offline_import=upload):
        yield [
            str(rejection.row_number),
            str(labels.get(rejection.reason, rejection.reason)),
            rejection.message,
            *[str(v) for v in rejection.values],
        ]
