"""Exports (导出) of households and persons to CSV or XLSX, streamed page by page from the store
with bounded memory. Personal data follows PIPL: ID numbers and phone numbers are masked, and
sensitive fields (special groups) left out, unless the exporter has the right and asks
(`unmask=1`); that request is written to the audit log.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from openpyxl import Workbook

from server.couch import CouchClient, NotFound, db_path
from server.scope import grid_db

PAGE = 1000
audit = logging.getLogger("linli.audit")


def mask_id_number(value: Any) -> str:
    text = str(value or "")
    return text[:3] + "*" * (len(text) - 7) + text[-4:] if len(text) > 7 else "*" * len(text)


def mask_phone(value: Any) -> str:
    text = str(value or "")
    return text[:3] + "****" + text[-4:] if len(text) >= 11 else "*" * len(text)


def address(doc: Mapping[str, Any]) -> str:
    a = doc.get("address") or {}
    unit = f"{a.get('unit')}单元" if a.get("unit") else ""
    return f"{a.get('compound_name') or a.get('compound', '')}{a.get('building', '')}幢{unit}" \
        f"{a.get('room', '')}室"


Column = tuple[str, str, Callable[[Mapping[str, Any], bool], Any]]

COLUMNS: dict[str, list[Column]] = {
    "households": [
        ("编号", "id", lambda d, _u: d["_id"]),
        ("网格", "grid", lambda d, _u: d.get("grid", "")),
        ("地址", "address", lambda d, _u: address(d)),
        ("户主", "head_name", lambda d, _u: d.get("head_name", "")),
        ("联系电话", "phone", lambda d, u: d.get("phone", "") if u else mask_phone(d.get("phone"))),
        ("户类型", "household_type", lambda d, _u: d.get("household_type", "")),
        ("住房性质", "tenure", lambda d, _u: d.get("tenure", "")),
        ("面积", "area_m2", lambda d, _u: d.get("area_m2", "")),
        ("特殊人群", "special_groups",
         lambda d, u: ",".join(d.get("special_groups", [])) if u else "(已隐藏 hidden)"),
        ("状态", "status", lambda d, _u: d.get("status", "")),
    ],
    "persons": [
        ("编号", "id", lambda d, _u: d["_id"]),
        ("网格", "grid", lambda d, _u: d.get("grid", "")),
        ("户", "household", lambda d, _u: d.get("household", "")),
        ("姓名", "name", lambda d, _u: d.get("name", "")),
        ("性别", "sex", lambda d, _u: d.get("sex", "")),
        ("出生年", "birth_year", lambda d, _u: d.get("birth_year", "")),
        ("身份证号", "id_number",
         lambda d, u: d.get("id_number", "") if u else mask_id_number(d.get("id_number"))),
        ("联系电话", "phone", lambda d, u: d.get("phone", "") if u else mask_phone(d.get("phone"))),
        ("户籍状态", "residence_status", lambda d, _u: d.get("residence_status", "")),
        ("状态", "status", lambda d, _u: d.get("status", "")),
    ],
}
PREFIX = {"households": "household:", "persons": "person:"}


async def rows(couch: CouchClient, grids: Iterable[str], what: str,
               unmasked: bool) -> AsyncIterator[list[Any]]:
    """The header, then one row per record, a page at a time: memory stays bounded by PAGE."""
    columns = COLUMNS[what]
    yield [f"{zh} {en}" for zh, en, _ in columns]
    prefix = PREFIX[what]
    for grid in grids:
        start = prefix
        while True:
            try:
                page = await couch.get(db_path(grid_db(grid), "_all_docs"), include_docs="true",
                                       startkey=json.dumps(start),
                                       endkey=json.dumps(prefix + "\ufff0"),
                                       limit=str(PAGE + 1))
            except NotFound:
                break
            docs = [r["doc"] for r in page.get("rows", []) if r.get("doc")]
            for doc in docs[:PAGE]:
                yield [cell(doc, unmasked) for _, _, cell in columns]
            if len(docs) <= PAGE:
                break
            start = docs[PAGE]["_id"]


def csv_line(values: list[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue().encode("utf-8")


async def xlsx_file(source: AsyncIterator[list[Any]], title: str) -> Any:
    """A write-only workbook (openpyxl streams rows to disk), in a temporary file."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title)
    async for values in source:
        sheet.append(values)
    handle = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it once sent)
    workbook.save(handle)
    handle.seek(0)
    return handle
