"""Exports (导出): the rows of every sheet a supervisor downloads, as plain lists of cells.

Households and persons, one row per record, follow PIPL: every field the schemas class
sensitive is masked (server/domain/masking.py: ID numbers and phones partly, special groups
hidden) unless the exporter has the right and gives a reason. The review list carries no
personal data; the aggregates' sheet writes a withheld figure as WITHHELD, never its value.
Every cell passes `safe_cell`, so no text a phone sent becomes a formula in a spreadsheet.
Reading the store page by page and writing CSV or XLSX is server/sync/exports.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from server.domain.figures import REVIEW_BUCKETS
from server.domain.masking import masked

WHAT = ("households", "persons", "review", "aggregates")  # the sheets, by `?what=`
FORMATS = ("csv", "xlsx")


CITY_ZONE = datetime.timezone(datetime.timedelta(hours=8), "Asia/Shanghai")  # no summer time


@dataclasses.dataclass(frozen=True)
class Names:
    """What a sheet shows instead of codes (issue 22, item 8): each grid's name and its
    community's (网格名, 社区名), each user's full name (姓名), and the labels the schemas give
    each enum value (`x-enum-labels`), by record type and field. A code without a name is
    shown as it is, so nothing is ever left blank."""

    grids: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    people: Mapping[str, str] = dataclasses.field(default_factory=dict)
    enums: Mapping[str, Mapping[str, Mapping[str, str]]] = dataclasses.field(
        default_factory=dict)
    titles: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Each record type's title (户情排摸走访...), from its schema."""

    def grid(self, code: Any) -> str:
        return self.grids.get(str(code or ""), ("", ""))[0] or str(code or "")

    def community(self, code: Any) -> str:
        return self.grids.get(str(code or ""), ("", ""))[1]

    def person(self, login: Any) -> str:
        return self.people.get(str(login or ""), "") or str(login or "")

    def title(self, doc_type: str) -> str:
        return self.titles.get(doc_type, doc_type)

    def enum(self, doc_type: str, field: str, value: Any) -> Any:
        """An enum value's label (a list's labels joined by 、); other values as they are."""
        labels = self.enums.get(doc_type, {}).get(field, {})
        if isinstance(value, list):
            return "、".join(str(labels.get(str(v), v)) for v in value)
        return labels.get(value, value) if isinstance(value, str) else value


def schema_names(schemas: Mapping[tuple[str, int], Mapping[str, Any]], *,
                 grids: Mapping[str, tuple[str, str]] | None = None,
                 people: Mapping[str, str] | None = None) -> Names:
    """The names of a sheet: the types' titles and their enum values' Chinese labels, from the
    top-level fields of the schemas (references inlined), every version's, the latest winning;
    with the grids' and the people's names the caller knows."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    titles: dict[str, str] = {}
    for (doc_type, _), schema in sorted(schemas.items()):
        titles[doc_type] = str(schema.get("title") or doc_type)
        for name, prop in (schema.get("properties") or {}).items():
            if not isinstance(prop, Mapping):
                continue
            items = prop.get("items")
            labels = prop.get("x-enum-labels") or (
                items.get("x-enum-labels") if isinstance(items, Mapping) else None)
            if isinstance(labels, Mapping):
                found.setdefault(doc_type, {}).setdefault(name, {}).update(
                    {str(code): str(pair[0]) for code, pair in labels.items() if pair})
    return Names(grids=grids or {}, people=people or {}, enums=found, titles=titles)


def city_time(value: Any) -> str:
    """A server's or phone's ISO time as people of the city read it: in Asia/Shanghai, with its
    offset (`2026-12-03 20:12:29+08:00`), so a sheet never shows UTC; anything unreadable as
    it is."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if when.tzinfo is None:
        return value
    return when.astimezone(CITY_ZONE).isoformat(sep=" ", timespec="seconds")


def address(doc: Mapping[str, Any]) -> str:
    a = doc.get("address") or {}
    unit = f"{a.get('unit')}单元" if a.get("unit") else ""
    return f"{a.get('compound_name') or a.get('compound', '')}{a.get('building', '')}幢{unit}" \
        f"{a.get('room', '')}室"


Column = tuple[str, str, Callable[[Mapping[str, Any], bool, Names], Any]]


def _enum(doc_type: str, field: str) -> Callable[[Mapping[str, Any], bool, Names], Any]:
    return lambda d, _u, n: n.enum(doc_type, field, d.get(field, ""))


# The columns every record sheet opens with: its id, its grid and community by name.
WHERE: list[Column] = [("编号", "id", lambda d, _u, _n: d["_id"]),
                       ("网格", "grid", lambda d, _u, n: n.grid(d.get("grid"))),
                       ("社区", "community", lambda d, _u, n: n.community(d.get("grid")))]


COLUMNS: dict[str, list[Column]] = {
    "households": [
        *WHERE,
        ("地址", "address", lambda d, _u, _n: address(d)),
        ("户主", "head_name", lambda d, _u, _n: d.get("head_name", "")),
        ("联系电话", "phone", lambda d, _u, _n: d.get("phone", "")),
        ("户类型", "household_type", _enum("household", "household_type")),
        ("住房性质", "tenure", _enum("household", "tenure")),
        ("面积", "area_m2", lambda d, _u, _n: d.get("area_m2", "")),
        ("特殊人群", "special_groups",  # a list of codes, or HIDDEN when masked
         lambda d, _u, n: n.enum("household", "special_groups", d.get("special_groups", []))),
        ("状态", "status", _enum("household", "status")),
    ],
    "persons": [
        *WHERE,
        # 户 by its address (issue 22, item 8), which sync/exports.rows adds per page; the
        # id only for a household the grid no longer holds.
        ("户", "household",
         lambda d, _u, _n: d.get("household_address") or d.get("household", "")),
        ("姓名", "name", lambda d, _u, _n: d.get("name", "")),
        ("性别", "sex", _enum("person", "sex")),
        ("出生年", "birth_year", lambda d, _u, _n: d.get("birth_year", "")),
        ("身份证号", "id_number", lambda d, _u, _n: d.get("id_number", "")),
        ("联系电话", "phone", lambda d, _u, _n: d.get("phone", "")),
        ("户籍状态", "residence_status", _enum("person", "residence_status")),
        ("状态", "status", _enum("person", "status")),
    ],
}
PREFIX = {"households": "household:", "persons": "person:"}


def header(what: str) -> list[str]:
    """The first row of a households' or persons' sheet: each column named in zh and en."""
    return [f"{zh} {en}" for zh, en, _ in COLUMNS[what]]


def record_row(what: str, doc: Mapping[str, Any], unmasked: bool,
               names: Names | None = None) -> list[Any]:
    """One household or person as a row, its sensitive fields masked unless `unmasked`, codes
    shown by `names`."""
    labels = names or Names()
    shown = masked(doc, unmasked)
    return [cell(shown, unmasked, labels) for _, _, cell in COLUMNS[what]]


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

# The two review states no verdict names (the others are the verdict's decisions, labelled in
# its schema); pwa/i18n.js says the same (`rv_*`).
STATE_LABELS = {"received": "待审核", "edited": "已修改待复核"}


def state_label(state: str, names: Names) -> str:
    return STATE_LABELS.get(state) or str(names.enum("verdict", "decision", state))


REVIEW_COLUMNS: list[tuple[str, Callable[[Mapping[str, Any], Names], Any]]] = [
    ("网格 grid", lambda r, n: n.grid(r["grid"])),
    ("社区 community", lambda r, n: n.community(r["grid"])),
    ("记录 record", lambda r, _n: r["record"]),
    ("类型 type", lambda r, n: n.title(r["record_type"])),
    ("日期 date", lambda r, _n: r["date"]),
    ("网格员 worker", lambda r, n: n.person(r.get("worker"))),
    ("户 household", lambda r, _n: r.get("household") or ""),
    ("审核状态 state", lambda r, n: state_label(r["state"], n)),
    ("审核人 reviewer", lambda r, n: n.person((r.get("verdict") or {}).get("by"))),
    ("审核时间（北京时间）reviewed at (UTC+8)",
     lambda r, _n: city_time((r.get("verdict") or {}).get("at"))),
    ("意见 comment", lambda r, _n: (r.get("verdict") or {}).get("comment") or ""),
]


def review_rows(listed: Iterable[Mapping[str, Any]],
                names: Names | None = None) -> Iterator[list[Any]]:
    """The review queue exactly as `/api/review` lists it (it carries no personal data), its
    codes shown by `names`."""
    shown = names or Names()
    yield [heading for heading, _ in REVIEW_COLUMNS]
    for record in listed:
        yield [cell(record, shown) for _, cell in REVIEW_COLUMNS]


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


# The figures whose last part is a record's enum value, by the type and field it counts.
FIGURE_ENUMS = {"households.status": ("household", "status"),
                "visits.latest": ("household_visit", "outcome"),
                "persons.sex": ("person", "sex"),
                "persons.registration": ("person", "residence_status"),
                "screenings.result": ("screening", "test_result"),
                "screenings.health_code": ("screening", "health_code"),
                "screenings.risk": ("screening", "risk_category")}
UNKNOWN = "未填"  # a figure's `unknown`: the field was left empty


def figure_label(name: str, names: Names | None = None) -> str:
    """A figure's bilingual label: its own, or its group's with its value after it, by the
    value's label when the schemas give one (`names`)."""
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
    elif names is not None and code == "unknown":
        code = UNKNOWN
    elif names is not None and prefix in FIGURE_ENUMS:
        code = str(names.enum(*FIGURE_ENUMS[prefix], code))
    elif names is not None and prefix == "review":
        code = state_label(code, names)
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


def aggregate_rows(report: Mapping[str, Any], labels: Names | None = None
                   ) -> Iterator[list[Any]]:
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
        yield [name, figure_label(name, labels), *(
            WITHHELD if name in a.get("suppressed", []) else a.get("figures", {}).get(name, 0)
            for a in areas)]


def file_name(what: str, kind: str, report: Mapping[str, Any] | None = None) -> str:
    """The name a sheet is downloaded under; the aggregates' names their area."""
    if what == "aggregates" and report is not None:
        area = f"-{report['code']}" if report["code"] else ""
        return f"linli-aggregates-{report['level']}{area}.{kind}"
    return f"linli-{what}.{kind}"
