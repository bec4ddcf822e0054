"""Exports (导出) of households and persons to CSV or XLSX, streamed page by page from the store
with bounded memory. Personal data follows PIPL: ID numbers and phone numbers are masked, and
sensitive fields (special groups) left out, unless the exporter has the right and asks
(`unmask=1`); that request is written to the audit log.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from server.domain.scope import grid_db
from server.store.couch import CouchClient, NotFound, db_path
from server.sync.aggregates import REVIEW_BUCKETS

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


async def pages(couch: CouchClient, grids: Iterable[str],
                prefix: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The records whose ids start with `prefix`, grid by grid, PAGE at a time. The next page
    is asked for while the caller works on this one, so the store and the writer overlap."""
    codes = list(grids)

    async def fetch(index: int, start: str) -> list[dict[str, Any]]:
        try:
            page = await couch.get(db_path(grid_db(codes[index]), "_all_docs"),
                                   include_docs="true", startkey=json.dumps(start),
                                   endkey=json.dumps(prefix + "\ufff0"), limit=str(PAGE + 1))
        except NotFound:
            return []
        return [r["doc"] for r in page.get("rows", []) if r.get("doc")]

    index = 0
    pending = asyncio.ensure_future(fetch(0, prefix)) if codes else None
    try:
        while pending is not None:
            docs = await pending
            pending = None
            if len(docs) > PAGE:
                pending = asyncio.ensure_future(fetch(index, docs[PAGE]["_id"]))
            elif index + 1 < len(codes):
                index += 1
                pending = asyncio.ensure_future(fetch(index, prefix))
            yield docs[:PAGE]
    finally:
        if pending is not None:  # the download was abandoned
            pending.cancel()


async def rows(couch: CouchClient, grids: Iterable[str], what: str,
               unmasked: bool) -> AsyncIterator[list[Any]]:
    """The header, then one row per record, a page at a time: memory stays bounded by PAGE."""
    columns = COLUMNS[what]
    yield [f"{zh} {en}" for zh, en, _ in columns]
    async for docs in pages(couch, grids, PREFIX[what]):
        for doc in docs:
            yield [cell(doc, unmasked) for _, _, cell in columns]


# --- every cell of every export passes here ------------------------------------------------------

# What makes a spreadsheet read a cell as a formula (OWASP "CSV Injection"; ASVS 1.2.10 adds
# the NUL): a text starting with one of these, also after blanks, is written with a leading `'`.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
FORMULA_AFTER_BLANKS = ("=", "+", "-", "@")
TEXT_MARK = "'"


def safe_cell(value: Any) -> Any:
    """A value as an export writes it: numbers stay numbers, nothing stays None, anything else
    becomes text that no spreadsheet runs. A record's text is the phone's, so a head's name
    `=HYPERLINK(...)` must reach the sheet as those characters, not as a live link (issue 13,
    item 5). Control characters XLSX cannot hold (openpyxl refuses them, which would end an
    export half-way) become U+FFFD, in CSV too, so both formats say the same."""
    if value is None:
        return ""
    if isinstance(value, int | float):  # and bool
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if text.startswith(FORMULA_LEADS) or text.lstrip().startswith(FORMULA_AFTER_BLANKS):
        text = TEXT_MARK + text
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in values]


def csv_line(values: list[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow(safe_row(values))
    return out.getvalue().encode("utf-8")


def _append(sheet: Any, batch: list[list[Any]]) -> None:
    for values in batch:
        row = []
        for value in safe_row(values):
            cell = WriteOnlyCell(sheet, value)
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula, whatever openpyxl would guess
            row.append(cell)
        sheet.append(row)


async def xlsx_file(source: AsyncIterator[list[Any]], title: str) -> Any:
    """A write-only workbook (openpyxl streams rows to disk), in a temporary file. openpyxl
    takes a quarter of a millisecond a row, so the rows are written in a thread, a page at a
    time: a city's export would otherwise hold every sync on the server for seconds."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title)
    batch: list[list[Any]] = []
    async for values in source:
        batch.append(values)
        if len(batch) >= PAGE:
            await asyncio.to_thread(_append, sheet, batch)
            batch = []
    await asyncio.to_thread(_append, sheet, batch)
    handle = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it once sent)
    await asyncio.to_thread(workbook.save, handle)
    handle.seek(0)
    return handle


# --- the review list as a sheet ----------------------------------------------------------------

REVIEW_COLUMNS: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = [
    ("网格 grid", lambda r: r["grid"]),
    ("记录 record", lambda r: r["record"]),
    ("类型 type", lambda r: r["record_type"]),
    ("日期 date", lambda r: r["date"]),
    ("网格员 worker", lambda r: r.get("worker") or ""),
    ("户 household", lambda r: r.get("household") or ""),
    ("审核状态 state", lambda r: r["state"]),
    ("审核人 reviewer", lambda r: (r.get("verdict") or {}).get("by") or ""),
    ("审核时间 reviewed at", lambda r: (r.get("verdict") or {}).get("at") or ""),
    ("意见 comment", lambda r: (r.get("verdict") or {}).get("comment") or ""),
]


async def review_rows(listed: Iterable[Mapping[str, Any]]) -> AsyncIterator[list[Any]]:
    """The review queue exactly as `/api/review` lists it (it carries no personal data)."""
    yield [heading for heading, _ in REVIEW_COLUMNS]
    for record in listed:
        yield [cell(record) for _, cell in REVIEW_COLUMNS]


# --- the aggregates as a sheet ----------------------------------------------------------------

# A figure of a grid outside the exporter's scope withheld as in the API: a small count or a cell
# that would give one back, with one mark for both, so the sheet does not tell them apart.
WITHHELD = "已隐藏 withheld"
FIGURE_GROUPS = ("households", "visits", "census", "persons", "screenings", "review",
                 "conflicts")
FIGURE_LABELS = {  # a figure's name (or the prefix before its code) -> zh, en
    "households": ("户数", "households"),
    "households.status": ("户数·状态", "households by status"),
    "visits.total": ("走访次数", "visits"),
    "visits.households_visited": ("已走访户数", "households visited"),
    "visits.covered": ("已覆盖户数", "households covered"),
    "visits.latest": ("最近一次走访结果", "latest visit outcome"),
    "census.enumerated": ("普查已登记户数", "census forms"),
    "persons": ("在住人口", "persons present"),
    "persons.sex": ("人口·性别", "persons by sex"),
    "persons.age": ("人口·年龄段", "persons by age band"),
    "persons.registration": ("人口·户籍状态", "persons by registration"),
    "screenings": ("排查人次", "screenings"),
    "screenings.day": ("排查·日期", "screenings by day"),
    "screenings.result": ("排查·结果", "screenings by result"),
    "screenings.health_code": ("排查·健康码", "screenings by health code"),
    "screenings.risk": ("排查·风险类别", "screenings by risk"),
    "review.reviewed": ("已审核记录", "records reviewed"),
    "review.timed": ("计时的审核记录", "reviews timed"),
    "review.hours": ("审核用时", "time to review"),
    "review": ("最近审核结果", "latest verdict"),
    "conflicts.open": ("未决冲突", "open conflicts"),
}


def figure_label(name: str) -> str:
    """A figure's bilingual label: its own, or its group's with the code after it."""
    if name in FIGURE_LABELS:
        zh, en = FIGURE_LABELS[name]
        return f"{zh} {en}"
    prefix, _, code = name.rpartition(".")
    while prefix and prefix not in FIGURE_LABELS:
        prefix = prefix.rpartition(".")[0]
    zh, en = FIGURE_LABELS.get(prefix, ("", ""))
    if prefix == "review.hours":
        bound, _, hours = code.partition("_")
        code = f"{'≤' if bound == 'le' else '>'}{hours}h"
    return f"{zh} {en}: {code}".strip() if zh else name


def figure_order(name: str) -> tuple[int, int, str]:
    group = name.split(".", 1)[0]
    index = FIGURE_GROUPS.index(group) if group in FIGURE_GROUPS else len(FIGURE_GROUPS)
    bucket = REVIEW_BUCKETS.index(name) + 1 if name in REVIEW_BUCKETS else 0
    return index, bucket, name


def area_heading(entry: Mapping[str, Any]) -> str:
    if entry["level"] == "city":
        return "全市 city"
    return f"{entry.get('name') or entry['level']} {entry['code']}"


def median_text(entry: Mapping[str, Any]) -> str:
    bucket = entry.get("time_to_review")
    if not bucket:
        return ""
    high = bucket["to_hours"]
    return f"{bucket['from_hours']}–{high}" if high is not None else f">{bucket['from_hours']}"


async def aggregate_rows(report: Mapping[str, Any]) -> AsyncIterator[list[Any]]:
    """An area and its children as columns, one figure a row, exactly as the API gave them:
    a withheld figure is written WITHHELD, never its value (the sheet carries no personal data)."""
    areas = [report, *report.get("children", [])]
    yield ["指标 figure", "说明 label", *(area_heading(a) for a in areas)]
    yield ["level", "级别 level", *(a["level"] for a in areas)]
    yield ["code", "编码 code", *(a["code"] for a in areas)]
    yield ["grids", "网格数 grids", *(a["grids"] for a in areas)]
    yield ["review.median_hours", "审核用时中位数（小时，所在区间）median hours to review "
           "(its bucket)", *(median_text(a) for a in areas)]
    names = set()
    for area in areas:
        names.update(area.get("figures", {}))
        names.update(area.get("suppressed", []))
    for name in sorted(names, key=figure_order):
        yield [name, figure_label(name), *(
            WITHHELD if name in a.get("suppressed", []) else a.get("figures", {}).get(name, 0)
            for a in areas)]
