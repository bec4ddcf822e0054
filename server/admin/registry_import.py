"""Import of the household registry (户籍/住户底册) as a street office keeps it: a CSV or XLSX file
with Chinese column headers (TEMPLATE below; other headers through a mapping), one row a
household.

Every row is checked the way a record from a phone is (the schema, then the room against the
building where the building is known); bad rows never stop the good ones and are written, with
the reason, to an error file in the same layout, which the office corrects and imports again.
A household is one document, so it is written whole or not at all; re-importing the same file
changes nothing (the household code is the document id, and unchanged households are not
rewritten).
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import couchdb

from server.domain.exports import safe_row
from server.domain.rules import room_problems
from server.domain.scope import DIRECTORY_DB, GRID_CODE, grid_db
from server.domain.validation import SchemaRegistry, shared_registry
from server.store.bulk import save_many

IMPORTER = "registry"  # created_by of imported households: the registry, not a person
BATCH = 1000  # households written per request
# Batches written at once, each to its own grid's database: the store is one process, but it
# parses one request while its disk writes another's (docs/benchmarks.md, "Domain benchmark").
WRITERS = 3
PROGRESS_SECONDS = 0.5  # how often the progress line is redrawn
REASON_COLUMN = "错误原因"
CELL_PROBLEMS = "\x00problems"  # a row's key for what was wrong with its cells themselves
EXACT_DIGITS = 15  # Excel keeps numbers as doubles: a longer number typed as one lost digits

# Column header → field. Values of coded fields may be the Chinese label, the English label or
# the code itself; the labels come from the schema, the one source of truth.
TEMPLATE: dict[str, str] = {
    "户编码": "registry.code",
    "网格编码": "grid",
    "小区编码": "address.compound",
    "小区名称": "address.compound_name",
    "幢": "address.building",
    "单元": "address.unit",
    "室": "address.room",
    "户主姓名": "head_name",
    "联系电话": "phone",
    "户别": "household_type",
    "住房性质": "tenure",
    "专有部分面积": "area_m2",
    "特殊人群": "special_groups",
    "车辆数": "vehicles",
    "宠物数": "pets",
    "状态": "status",
    "来源": "registry.source",
    "备注": "remarks",
}
NUMBER_FIELDS = {"area_m2"}
INTEGER_FIELDS = {"vehicles", "pets"}
LIST_FIELDS = {"special_groups"}
DEFAULTS = {"status": "active", "registry.source": "public_security", "household_type": "family"}


@dataclasses.dataclass
class ImportSummary:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    error_file: Path | None = None
    removed: list[str] = dataclasses.field(default_factory=list)  # a register's replace

    def text(self, dry_run: bool) -> str:
        head = ("试运行（未写入）/ dry run (nothing written)" if dry_run
                else "导入完成 / import done")
        lines = [head,
                 f"  行数 rows: {self.rows}",
                 f"  新增 created: {self.created}",
                 f"  更新 updated: {self.updated}",
                 f"  未变 unchanged: {self.unchanged}",
                 f"  出错 refused: {self.refused}"]
        if self.removed:
            lines.append(f"  删除 removed: {len(self.removed)}")
            lines += [f"    {doc_id}" for doc_id in self.removed]
        if self.error_file is not None:
            lines.append(f"  出错的行见 rows refused are in: {self.error_file}")
        return "\n".join(lines)


class ImportError_(ValueError):
    """The file itself cannot be imported (unreadable, or a required column is missing)."""


def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """(headers, rows as {header: text}) with spreadsheet row numbers (the header is row 1)."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _xlsx_rows(path)
    if path.suffix.lower() == ".csv":
        return _csv_rows(path)
    raise ImportError_(f"只支持 .xlsx 和 .csv 文件 / only .xlsx and .csv files: {path.name}")


def _csv_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK by default
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ImportError_("文件编码无法识别（应为 UTF-8 或 GBK）/ unknown file encoding")
    reader = csv.reader(io.StringIO(text))
    headers = [h.strip() for h in next(reader, [])]

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for number, values in enumerate(reader, start=2):
            if any(v.strip() for v in values):
                yield number, dict(zip(headers, (v.strip() for v in values), strict=False))
    return headers, rows()


def _xlsx_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    import openpyxl  # only for XLSX files

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not XLSX
        raise ImportError_(f"无法读取 XLSX 文件 / cannot read the XLSX file: {exc}") from exc
    sheet = book.worksheets[0]
    cells = sheet.iter_rows(values_only=True)
    headers = [str(h).strip() if h is not None else "" for h in next(cells, ())]

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value).strip()

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            for number, values in enumerate(cells, start=2):
                if not any(v is not None and str(v).strip() for v in values):
                    continue
                row = dict(zip(headers, map(text, values), strict=False))
                long_numbers = [h for h, v in zip(headers, values, strict=False)
                                if isinstance(v, (int, float)) and abs(v) >= 10 ** EXACT_DIGITS]
                if long_numbers:
                    row[CELL_PROBLEMS] = "；".join(
                        f"“{h}”是数字格式，Excel 只保留 15 位，请把该列设为文本后重新输入 / "
                        f"{h} is stored as a number, which Excel keeps to 15 digits: format the "
                        "column as text and type it again" for h in long_numbers)
                yield number, row
        finally:
            book.close()
    return headers, rows()


class HouseholdRows:
    """Turns a row into a household document, with the schema's labels for coded fields."""

    def __init__(self, registry: SchemaRegistry, mapping: Mapping[str, str]) -> None:
        self.registry = registry
        self.mapping = dict(mapping)
        schema = registry.validators[("household", 1)].schema
        self.codes: dict[str, dict[str, str]] = {}
        for field, prop in _coded_fields(schema):
            lookup = {}
            for code, labels in prop.get("x-enum-labels", {}).items():
                lookup[code.lower()] = code
                for label in labels:
                    lookup[str(label).strip().lower()] = code
            self.codes[field] = lookup

    def document(self, row: Mapping[str, str]) -> tuple[dict[str, Any] | None, list[str]]:
        values: dict[str, str] = dict(DEFAULTS)
        for header, field in self.mapping.items():
            if row.get(header, "").strip():
                values[field] = row[header].strip()
        problems: list[str] = []
        doc: dict[str, Any] = {"type": "household", "schema_version": 1, "created_by": IMPORTER}
        for field, text in values.items():
            value: Any = text
            if field in self.codes and field not in LIST_FIELDS:
                value = self.codes[field].get(text.lower(), text)
            elif field in LIST_FIELDS:
                parts = [p.strip() for p in text.replace("，", ",").replace("、", ",").split(",")]
                value = [self.codes[field].get(p.lower(), p) for p in parts if p]
            elif field in NUMBER_FIELDS or field in INTEGER_FIELDS:
                try:
                    value = float(text)
                    if field in INTEGER_FIELDS and value.is_integer():
                        value = int(value)
                except ValueError:
                    problems.append(f"{field}：“{text}”不是数字 / {field}: {text!r} is not "
                                    "a number")
                    continue
            _put(doc, field, value)
        if row.get(CELL_PROBLEMS):
            problems.append(row[CELL_PROBLEMS])
            return None, problems
        code = doc.get("registry", {}).get("code")
        if not code:
            problems.append("缺少户编码 / the household code is missing")
            return None, problems
        doc["_id"] = f"household:{code}"
        problems += self.registry.problems(doc)
        return (None if problems else doc), problems


def _coded_fields(schema: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        if "x-enum-labels" in prop:
            yield path, prop
        yield from _coded_fields(prop, path + ".")


def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[last] = value


def write_template(path: Path) -> None:
    """The template a street office fills in: the headers and one example row."""
    example = {"户编码": "330802001001010001", "网格编码": "fmj01", "小区编码": "hehua1",
               "小区名称": "荷花一区", "幢": "3", "单元": "2", "室": "301", "户主姓名": "王芳",
               "联系电话": "13905700001", "户别": "家庭户", "住房性质": "自有",
               "专有部分面积": "89.5", "特殊人群": "独居老人", "车辆数": "1", "宠物数": "0",
               "状态": "在住",
               "来源": "公安户籍", "备注": ""}
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(TEMPLATE)
        writer.writerow([example[h] for h in TEMPLATE])


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """`--map 门牌=address.room` options over the template: a column of another name."""
    mapping = dict(TEMPLATE)
    for pair in pairs:
        header, sep, field = pair.partition("=")
        if not sep or field.strip() not in TEMPLATE.values():
            raise ImportError_(f"映射 {pair!r} 无效，应为 列名=字段，字段为 "
                               f"{', '.join(sorted(set(TEMPLATE.values())))}")
        mapping = {h: f for h, f in mapping.items() if f != field.strip()}
        mapping[header.strip()] = field.strip()
    return mapping


class _Writer:
    """Writes one grid's households in batches: new ones created, changed ones updated on top of
    the stored revision (keeping who created them), unchanged ones left alone.

    Which households a grid already holds is read once per grid as a range of ids (a range
    scan is fast where a lookup of a thousand keys is not), and stored bodies only for the ids
    that exist. Writes go to the store from a worker thread, so the next batch is parsed and
    checked while the last one is written."""

    def __init__(self, server: couchdb.Server, dry_run: bool, summary: ImportSummary,
                 refuse: Callable[[int, Mapping[str, str], str], None]) -> None:
        self.server, self.dry_run, self.summary, self.refuse = server, dry_run, summary, refuse
        self.pending: dict[str, list[tuple[int, Mapping[str, str], dict[str, Any]]]] = {}
        self.buildings: dict[str, dict[str, dict[str, Any]]] = {}
        self.known: dict[str, set[str]] = {}
        self.databases: dict[str, couchdb.Database] = {}
        self.queued = 0
        self.writes: concurrent.futures.ThreadPoolExecutor = (
            concurrent.futures.ThreadPoolExecutor(max_workers=WRITERS))
        self.in_flight: list[concurrent.futures.Future[None]] = []
        self.lock = threading.Lock()

    def add(self, number: int, row: Mapping[str, str], doc: dict[str, Any]) -> None:
        """Queue a household; once a batch's worth is queued, the grid with the most goes to
        the store (a grid holds fewer households than a batch, so waiting for one grid to fill
        a batch would hold everything back to the end)."""
        self.pending.setdefault(doc["grid"], []).append((number, row, doc))
        self.queued += 1
        if self.queued >= BATCH:
            self.flush(max(self.pending, key=lambda grid: len(self.pending[grid])))

    def finish(self) -> None:
        for grid in list(self.pending):
            self.flush(grid)
        for future in self.in_flight:
            future.result()
        self.writes.shutdown()

    def database(self, grid: str) -> couchdb.Database:
        """A grid's database, opened once (a missing one is said by the first read of it)."""
        if grid not in self.databases:
            name = grid_db(grid)
            self.databases[grid] = couchdb.Database(self.server.resource(name), name)
        return self.databases[grid]

    def grid_state(self, grid: str, db: couchdb.Database) -> tuple[dict[str, Any], set[str]]:
        if grid not in self.known:
            rows = db.view("_all_docs", startkey="building:", endkey="building:\ufff0",
                           include_docs=True)
            self.buildings[grid] = {row.id: row.doc for row in rows}
            self.known[grid] = {row.id for row in db.view(
                "_all_docs", startkey="household:", endkey="household:\ufff0")}
        return self.buildings[grid], self.known[grid]

    @staticmethod
    def stored(db: couchdb.Database, existing: set[str], known: set[str]
               ) -> dict[str, dict[str, Any]]:
        """The stored bodies of `existing`: one range from the lowest id to the highest when
        that range holds few others (a grid's households mostly come in order), as a range
        scan is fast where a lookup of many keys is not; else by their keys."""
        if not existing:
            return {}
        low, high = min(existing), max(existing)
        if sum(1 for doc_id in known if low <= doc_id <= high) <= 2 * len(existing):
            rows = db.view("_all_docs", startkey=low, endkey=high, include_docs=True)
        else:
            rows = db.view("_all_docs", keys=sorted(existing), include_docs=True)
        return {row.id: row.doc for row in rows if row.id in existing and row.doc is not None}

    def flush(self, grid: str) -> None:
        batch = self.pending.pop(grid, [])
        self.queued -= len(batch)
        if not batch:
            return
        try:
            db = self.database(grid)
            buildings, known = self.grid_state(grid, db)
            existing = {d["_id"] for _, _, d in batch if d["_id"] in known}
            stored = self.stored(db, existing, known)
        except (couchdb.ResourceNotFound, couchdb.ServerError, OSError) as exc:
            for number, row, _ in batch:
                self.refuse(number, row, f"网格 {grid} 的数据库不可用 / the database of grid "
                            f"{grid} is unavailable: {exc}")
            return
        writes: list[tuple[int, Mapping[str, str], dict[str, Any], str]] = []
        for number, row, doc in batch:
            address = doc["address"]
            building = buildings.get(f"building:{address['compound']}-{address['building']}")
            if building is not None:
                problems = room_problems(address, building)
                if problems:
                    self.refuse(number, row, "；".join(p.message for p in problems))
                    continue
            old = stored.get(doc["_id"])
            if old is None:
                writes.append((number, row, doc, "created"))
                continue
            merged = {**doc, "_rev": old["_rev"], "created_by": old.get("created_by", IMPORTER)}
            if {k: v for k, v in old.items() if k != "_rev"} == {
                    k: v for k, v in merged.items() if k != "_rev"}:
                self.summary.unchanged += 1
            else:
                writes.append((number, row, merged, "updated"))
        with self.lock:
            for _, _, doc, kind in writes:
                setattr(self.summary, kind, getattr(self.summary, kind) + 1)
                known.add(doc["_id"])
        if writes and not self.dry_run:
            self.in_flight = [f for f in self.in_flight if not f.done()]
            if len(self.in_flight) >= 2 * WRITERS:
                self.in_flight.pop(0).result()
            self.in_flight.append(self.writes.submit(self.write, db, writes))

    def write(self, db: couchdb.Database,
              writes: list[tuple[int, Mapping[str, str], dict[str, Any], str]]) -> None:
        try:
            results = save_many(db, [doc for _, _, doc, _ in writes])
        except (couchdb.ServerError, OSError) as exc:
            results = [(False, doc["_id"], exc) for _, _, doc, _ in writes]
        failed = {doc_id: str(err) for ok, doc_id, err in results if not ok}
        for number, row, doc, kind in writes:
            if doc["_id"] in failed:
                with self.lock:  # the reading thread counts and refuses too
                    setattr(self.summary, kind, getattr(self.summary, kind) - 1)
                self.refuse(number, row, f"写入失败 / not written: {failed[doc['_id']]}")


def expected_rows(path: Path) -> int | None:
    """About how many rows the file holds, for the progress bar: a CSV's lines, an XLSX sheet's
    stated size; None when the file does not say."""
    try:
        if path.suffix.lower() == ".csv":
            with path.open("rb") as data:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: data.read(1 << 20), b""))
            return max(lines - 1, 0)  # less the header
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True)
        try:
            rows = book.worksheets[0].max_row
        finally:
            book.close()
        return max(rows - 1, 0) if rows else None
    except Exception:  # the import itself says what is wrong with the file
        return None


class Progress:
    """The import's progress line (进度), redrawn in place at most every PROGRESS_SECONDS: a bar
    and its share when the number of rows is known, the rows read of it, what became of them
    so far, and the pace. `finish` draws it once more, complete, and ends the line."""

    WIDTH = 24

    def __init__(self, out: TextIO, total: int | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out, self.total, self.clock = out, total, clock
        self.started = self.last = clock()

    def line(self, summary: ImportSummary, done: bool = False) -> str:
        rows = summary.rows
        total = rows if done else max(self.total or 0, rows)
        elapsed = max(self.clock() - self.started, 1e-9)
        counts = (f"新增 created {summary.created:,} · 更新 updated {summary.updated:,} · "
                  f"未变 unchanged {summary.unchanged:,} · 出错 refused {summary.refused:,} · "
                  f"{rows / elapsed:,.0f} 行/秒 rows/s")
        if not total or (self.total is None and not done):
            return f"导入中 importing {rows:,} 行 rows · {counts}"
        share = min(rows / total, 1.0)
        filled = round(share * self.WIDTH)
        return (f"导入中 importing [{'#' * filled}{'-' * (self.WIDTH - filled)}] "
                f"{share:4.0%} {rows:,}/{total:,} 行 rows · {counts}")

    def update(self, summary: ImportSummary) -> None:
        now = self.clock()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            self.out.write("\r" + self.line(summary))
            self.out.flush()

    def finish(self, summary: ImportSummary) -> None:
        self.out.write("\r" + self.line(summary, done=True) + "\n")
        self.out.flush()


def import_households(server: couchdb.Server, path: Path, *, dry_run: bool = False,
                      mapping: Mapping[str, str] | None = None, error_file: Path | None = None,
                      progress: TextIO | None = sys.stderr,
                      registry: SchemaRegistry | None = None) -> ImportSummary:
    """Import the households of `path`; see the module's docstring."""
    mapping = dict(mapping or TEMPLATE)
    headers, rows = read_rows(path)
    missing = [h for h, f in mapping.items() if f in ("registry.code", "grid", "address.room",
                                                     "address.building", "address.compound")
               and h not in headers]
    if missing:
        raise ImportError_(f"缺少必需的列：{'、'.join(missing)} / required columns missing: "
                           f"{', '.join(missing)}")
    converter = HouseholdRows(registry or shared_registry(), mapping)
    grids = {row.id.partition(":")[2] for row in server[DIRECTORY_DB].view(
        "_all_docs", startkey="grid:", endkey="grid:\ufff0")}
    summary = ImportSummary()
    error_file = error_file or path.with_name(f"{path.stem}.errors.csv")
    refused: list[list[Any]] = []
    lock = threading.Lock()

    def refuse(number: int, row: Mapping[str, str], reason: str) -> None:
        with lock:  # also called from the writing thread
            summary.refused += 1
            refused.append([number, *(row.get(h, "") for h in headers), reason])

    writer = _Writer(server, dry_run, summary, refuse)
    shown = Progress(progress, expected_rows(path)) if progress is not None else None
    seen: set[str] = set()
    try:
        for number, row in rows:
            summary.rows += 1
            if shown is not None and summary.rows % 100 == 0:
                shown.update(summary)
            doc, problems = converter.document(row)
            if doc is not None and doc["_id"] in seen:
                problems = ["户编码在文件中重复 / the household code appears twice in the file"]
            if doc is not None and not GRID_CODE.match(str(doc.get("grid", ""))):
                problems = problems or ["网格编码无效 / invalid grid code"]
            if doc is not None and doc["grid"] not in grids:
                problems = [f"没有网格 {doc['grid']} / unknown grid {doc['grid']}"]
            if problems or doc is None:
                refuse(number, row, "；".join(problems))
                continue
            seen.add(doc["_id"])
            writer.add(number, row, doc)
        writer.finish()
        if shown is not None:
            shown.finish(summary)
    finally:
        if refused:  # in row order, in the file's own layout, ready to correct and re-import
            with error_file.open("w", encoding="utf-8-sig", newline="") as out:
                errors_out = csv.writer(out)
                errors_out.writerow(["行号", *headers, REASON_COLUMN])
                errors_out.writerows(safe_row(r)  # a cell is text, never a formula
                                     for r in sorted(refused, key=lambda r: r[0]))
    summary.error_file = error_file if summary.refused else None
    return summary
