"""Customer list exports: CSV (streamed) and Excel (openpyxl write-only), one row per customer.

Rows are read page by page through ``list_customers`` (three queries per page, whatever the page holds), so
memory stays flat however many rows go out.
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
import zoneinfo
from collections.abc import Iterable, Iterator
from typing import IO, Any, cast

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from siyu.corps.access import Actor
from siyu.customers.models import Customer, FollowRelation
from siyu.customers.selectors import CustomerFilter, list_customers

# Excel and LibreOffice run a cell that starts with one of these as a formula ("CSV injection"); customer
# names and remarks come from WeChat users, so such values are written as text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
UTF8_BOM = "\ufeff"  # without it Excel reads a UTF-8 CSV as the local code page and garbles Chinese


def export_header() -> list[str]:
    return [
        _("External user ID"),
        _("Name"),
        _("Type"),
        _("Gender"),
        _("Corp name"),
        _("Following staff"),
        _("Remarks"),
        _("Remark mobiles"),
        _("Channels"),
        _("Tags"),
        _("Last added at"),
    ]


def _local(moment: dt.datetime | None, zone: Any) -> str:
    if moment is None:
        return ""
    return timezone.localtime(moment, zone).strftime("%Y-%m-%d %H:%M:%S")


def _row(customer: Customer, zone: Any) -> list[str]:
    relations: list[FollowRelation] = [
        r for r in customer.relations.all() if r.status == FollowRelation.Status.ACTIVE
    ]  # prefetched by list_customers
    mobiles = dict.fromkeys(m for r in relations for m in (r.remark_mobiles or []))
    return [
        customer.external_userid,
        customer.name,
        str(Customer.Type(customer.type).label)
        if customer.type in Customer.Type.values
        else str(customer.type),
        str(Customer.Gender(customer.gender).label) if customer.gender in Customer.Gender.values else "",
        customer.corp_name,
        "; ".join(r.staff.name for r in relations),
        "; ".join(f"{r.staff.name}: {r.remark}" for r in relations if r.remark),
        "; ".join(str(m) for m in mobiles),
        "; ".join(dict.fromkeys(r.state for r in relations if r.state)),
        "; ".join(ct.tag.name for ct in customer.customer_tags.all()),
        _local(customer.last_added_at, zone),
    ]


def export_rows(actor: Actor, customer_filter: CustomerFilter) -> Iterator[list[str]]:
    """The header, then one row per matching customer (in the list's default order)."""
    zone = zoneinfo.ZoneInfo(actor.corp.time_zone)
    yield export_header()
    cursor: str | None = None
    while True:
        with timezone.override(zone):
            page = list_customers(
                actor, customer_filter, cursor=cursor, page_size=cast(int, settings.SIYU["MAX_PAGE_SIZE"])
            )
        for customer in page.items:
            yield _row(customer, zone)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _as_text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a generator."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """CSV text for streaming: a BOM first (for Excel), then one line per row."""
    writer = csv.writer(_Echo())
    yield UTF8_BOM
    for row in rows:
        yield writer.writerow([_as_text(value) for value in row])


def write_xlsx(rows: Iterable[list[str]]) -> IO[bytes]:
    """An .xlsx workbook in a temporary file (rewound), written in openpyxl's constant-memory mode."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title="customers")
    for row in rows:
        cells = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"  # text, never a formula, whatever the value starts with
            cells.append(cell)
        sheet.append(cells)
    spool = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - handed to FileResponse, which closes it
    workbook.save(spool)
    spool.seek(0)
    return spool
