"""Exports (导出): the rows of every sheet a supervisor downloads, as plain lists of cells.

Households and persons, one row per record, follow PIPL: ID numbers and phones masked and
special groups hidden (server/domain/masking.py) unless the exporter has the right and asks
(`unmask=1`). The review list carries no personal data; the aggregates' sheet writes a withheld
figure as WITHHELD, never its value. Every cell passes `safe_cell`, so no text a phone sent
becomes a formula in a spreadsheet. Reading the store page by page and writing CSV or XLSX is
server/sync/exports.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from server.domain.figures import REVIEW_BUCKETS
from server.domain.masking import HIDDEN, mask_id_number, mask_phone

WHAT = ("households", "persons", "review", "aggregates")  # the sheets, by `?what=`
FORMATS = ("csv", "xlsx")


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
         lambda d, u: ",".join(d.get("special_groups", [])) if u else HIDDEN),
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


def header(what: str) -> list[str]:
    """The first row of a households' or persons' sheet: each column named in zh and en."""
    return [f"{zh} {en}" for zh, en, _ in COLUMNS[what]]


def record_row(what: str, doc: Mapping[str, Any], unmasked: bool) -> list[Any]:
    """One household or person as a row, masked unless `unmasked`."""
    return [cell(doc, unmasked) for _, _, cell in COLUMNS[what]]


# --- every cell of every export passes here ------------------------------------------------------

# What makes a spreadsheet read a cell as a formula (OWASP "CSV Injection"; ASVS 1.2.10 adds
# the NUL): a text starting with one of these, also after blanks, is written with a leading `'`.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
FORMULA_AFTER_BLANKS = ("=", "+", "-", "@")
TEXT_MARK = "'"
# The control characters XLSX cannot hold (openpyxl's ILLEGAL_CHARACTERS_RE, which refuses them;
# a test holds the two equal).
ILLEGAL_CHARACTERS = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


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
    return ILLEGAL_CHARACTERS.sub("\ufffd", text)


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in values]


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


def review_rows(listed: Iterable[Mapping[str, Any]]) -> Iterator[list[Any]]:
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


def aggregate_rows(report: Mapping[str, Any]) -> Iterator[list[Any]]:
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


def file_name(what: str, kind: str, report: Mapping[str, Any] | None = None) -> str:
    """The name a sheet is downloaded under; the aggregates' names their area."""
    if what == "aggregates" and report is not None:
        area = f"-{report['code']}" if report["code"] else ""
        return f"linli-aggregates-{report['level']}{area}.{kind}"
    return f"linli-{what}.{kind}"
