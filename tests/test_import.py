"""Importing the household registry: 30 kinds of bad rows each refused with its row number and a
reason, the good rows written whole; a dry run writes nothing; a re-import changes nothing; an
unavailable grid loses only its own rows; XLSX and other headers work too."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from conftest import City

from server import cli
from server.admin import registry_import
from server.admin.registry_import import TEMPLATE, import_households, parse_mapping

HEADERS = list(TEMPLATE)


def row(grid: str, n: int, **changes: str) -> dict[str, str]:
    values = {"户编码": f"3308020010010{n:05d}", "网格编码": grid, "小区编码": "hehua1",
              "小区名称": "荷花一区", "幢": "3", "单元": "2", "室": f"{1 + n % 6}0{1 + n % 2}",
              "户主姓名": "王芳", "联系电话": "13905700001", "户别": "家庭户", "住房性质": "自有",
              "专有部分面积": "89.5", "特殊人群": "独居老人", "车辆数": "", "宠物数": "",
              "状态": "在住", "来源": "公安户籍",
              "备注": ""}
    values.update(changes)
    return values


def bad_rows(grid: str, other_grid: str) -> list[tuple[dict[str, str], str]]:
    """30 rows, each wrong in its own way, with a word its reason must contain."""
    n = iter(range(500, 600))
    return [
        (row(grid, next(n), 户编码=""), "household code"),
        (row(grid, next(n), 户编码="33080200100101000"), "Registry source · Household code"),
        (row(grid, next(n), 户编码="33080200100101000A"), "Registry source · Household code"),
        (row(grid, 1), "twice"),  # the code of a good row, again
        (row("nosuchgrid", next(n)), "unknown grid"),
        (row("Bad-Grid", next(n)), "Grid"),
        (row(grid, next(n), 小区编码=""), "Address · Compound"),
        (row(grid, next(n), 小区编码="荷花"), "Address · Compound"),
        (row(grid, next(n), 幢=""), "Address · Building"),
        (row(grid, next(n), 室=""), "Address · Room"),
        (row(grid, next(n), 室="123456789"), "Address · Room"),
        (row(grid, next(n), 室="1901"), "room"),  # floor 19 of a 6-floor building
        (row(grid, next(n), 单元="9"), "unit"),  # no unit 9 in that building
        (row(grid, next(n), 联系电话="12345"), "Phone"),
        (row(grid, next(n), 联系电话="139O5700001"), "Phone"),
        (row(grid, next(n), 户别="大户"), "Household type"),
        (row(grid, next(n), 住房性质="借住"), "Tenure"),
        (row(grid, next(n), 专有部分面积=""), "Exclusive area"),
        (row(grid, next(n), 专有部分面积="八十"), "not a number"),
        (row(grid, next(n), 专有部分面积="-3"), "Exclusive area"),
        (row(grid, next(n), 专有部分面积="20000"), "Exclusive area"),
        (row(grid, next(n), 特殊人群="富人"), "Special groups"),
        (row(grid, next(n), 特殊人群="独居老人,独居老人"), "Special groups"),
        (row(grid, next(n), 状态="失踪"), "Status"),
        (row(grid, next(n), 来源="道听途说"), "Registry source · Source"),
        (row(grid, next(n), 户主姓名="王" * 51), "Head of household"),
        (row(grid, next(n), 备注="长" * 2001), "Notes"),
        (row(grid, next(n), 幢="123456789"), "Address · Building"),
        (row(grid, next(n), 小区名称="荷" * 51), "Address · Compound name"),
        (row(grid, next(n), 单元="123456789"), "Address · Unit"),
    ]


def write_csv(path: Path, rows: list[dict[str, str]], headers: list[str] = HEADERS) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(headers)
        for values in rows:
            writer.writerow([values.get(h, "") for h in headers])
    return path


@pytest.fixture
def grids(city: City) -> tuple[str, str]:
    grid, other = city.blocking.grid(), city.blocking.grid()
    city.db(grid).save({"_id": "building:hehua1-3", "type": "building", "schema_version": 1,
                        "grid": grid, "created_by": "registry", "compound": "hehua1",
                        "number": "3", "units": [{"label": "1", "floors": 6,
                                                  "rooms_per_floor": 2},
                                                 {"label": "2", "floors": 6,
                                                  "rooms_per_floor": 2}]})
    return grid, other


def households(city: City, grid: str) -> dict[str, dict[str, Any]]:
    return {r.id: r.doc for r in city.db(grid).view("_all_docs", startkey="household:",
                                                     endkey="household:\ufff0",
                                                     include_docs=True)}


def test_thirty_kinds_of_bad_rows(city: City, grids: tuple[str, str], tmp_path: Path) -> None:
    grid, other = grids
    good = [row(grid, i) for i in range(1, 21)] + [row(other, i) for i in range(21, 31)]
    bad = bad_rows(grid, other)
    assert len(bad) == 30
    path = write_csv(tmp_path / "户籍.csv", good + [r for r, _ in bad])

    dry = import_households(city.couch, path, dry_run=True, progress=None)
    assert (dry.rows, dry.created, dry.refused) == (60, 30, 30)
    assert households(city, grid) == {}

    summary = import_households(city.couch, path, progress=None)
    assert (summary.created, summary.updated, summary.refused) == (30, 0, 30)
    stored = households(city, grid)
    assert len(stored) == 20 and len(households(city, other)) == 10
    doc = stored["household:330802001001000001"]
    assert doc["tenure"] == "owned" and doc["special_groups"] == ["elderly_alone"]
    assert doc["address"] == {"compound": "hehua1", "compound_name": "荷花一区",
                              "building": "3", "unit": "2", "room": "202"}
    assert doc["created_by"] == "registry" and doc["status"] == "active"

    with summary.error_file.open(encoding="utf-8-sig") as errors:  # type: ignore[union-attr]
        refused = list(csv.DictReader(errors))
    assert len(refused) == 30
    for (values, word), line in zip(bad, refused, strict=True):
        assert line["户编码"] == values["户编码"]
        assert word in line["错误原因"], (word, line["错误原因"])
        assert int(line["行号"]) == 2 + len(good) + bad.index((values, word))

    again = import_households(city.couch, path, progress=None)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 30)
    revs = {k: v["_rev"] for k, v in households(city, grid).items()}
    assert revs == {k: v["_rev"] for k, v in stored.items()}


def test_corrected_errors_import_and_changes_update(city: City, grids: tuple[str, str],
                                                    tmp_path: Path) -> None:
    grid, _ = grids
    path = write_csv(tmp_path / "a.csv", [row(grid, 1), row(grid, 2, 联系电话="12")])
    first = import_households(city.couch, path, progress=None)
    assert (first.created, first.refused) == (1, 1)
    # The office fixes the phone in the error file and imports it as it is.
    fixed = first.error_file.read_text(encoding="utf-8-sig").replace(  # type: ignore[union-attr]
        ",12,", ",13905700002,")
    retry = tmp_path / "fixed.csv"
    retry.write_text(fixed, encoding="utf-8-sig")
    second = import_households(city.couch, retry, progress=None)
    assert (second.created, second.refused) == (1, 0)
    changed = write_csv(tmp_path / "b.csv", [row(grid, 1, 户主姓名="李强")])
    third = import_households(city.couch, changed, progress=None)
    assert (third.updated, third.created) == (1, 0)
    assert households(city, grid)["household:330802001001000001"]["head_name"] == "李强"


def test_xlsx_and_other_headers(city: City, grids: tuple[str, str], tmp_path: Path) -> None:
    grid, _ = grids
    book = openpyxl.Workbook()
    sheet = book.active
    headers = ["门牌号" if h == "室" else h for h in HEADERS]
    sheet.append(headers)
    for i in range(1, 6):
        values = row(grid, i)
        values["门牌号"] = values.pop("室")
        sheet.append([values.get(h, "") for h in headers])
    sheet.append(["330802001001000098", grid, "hehua1", "", 3, 1, 101, "赵敏", 13905700009,
                  "", "租住", None, "", "", "", ""])
    sheet.append([330802001001000099, grid, "hehua1", "", 3, 1, 102, "孙磊", 13905700008,
                  "", "租住", None, "", "", "", ""])  # a code typed as a number lost digits
    path = tmp_path / "registry.xlsx"
    book.save(path)
    with pytest.raises(registry_import.ImportError_, match="室"):
        import_households(city.couch, path, progress=None)
    summary = import_households(city.couch, path, mapping=parse_mapping(["门牌号=address.room"]),
                                progress=None)
    assert (summary.created, summary.refused) == (6, 1), summary
    assert households(city, grid)["household:330802001001000098"]["address"]["room"] == "101"
    assert "15" in summary.error_file.read_text(encoding="utf-8-sig")  # type: ignore[union-attr]


def test_unavailable_grid_loses_only_its_rows(city: City, grids: tuple[str, str],
                                              tmp_path: Path) -> None:
    grid, other = grids
    del city.couch[f"grid-{other}"]
    path = write_csv(tmp_path / "c.csv", [row(grid, i) for i in range(1, 4)]
                     + [row(other, i) for i in range(4, 6)])
    summary = import_households(city.couch, path, progress=None)
    assert (summary.created, summary.refused) == (3, 2)
    assert all(d["address"]["room"] for d in households(city, grid).values())
    assert "unavailable" in summary.error_file.read_text(  # type: ignore[union-attr]
        encoding="utf-8-sig")


def test_template_and_unreadable_files(tmp_path: Path, city: City) -> None:
    template = tmp_path / "template.csv"
    registry_import.write_template(template)
    headers = next(csv.reader(io.StringIO(template.read_text(encoding="utf-8-sig"))))
    assert headers == HEADERS
    for name, content in (("x.txt", b"hello"), ("x.xlsx", b"not a zip")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(registry_import.ImportError_):
            import_households(city.couch, tmp_path / name, progress=None)


def test_progress_bar_counts_the_rows_and_what_became_of_them() -> None:
    """The progress line: a bar and its share of the rows the file holds, the counts so far and
    the pace, redrawn in place no more often than PROGRESS_SECONDS; complete at the end."""
    now = [0.0]
    out = io.StringIO()
    shown = registry_import.Progress(out, 400, clock=lambda: now[0])
    summary = registry_import.ImportSummary(rows=100, created=90, refused=10)
    shown.update(summary)
    assert out.getvalue() == ""  # too soon after the start
    now[0] = 1.0
    shown.update(summary)
    line = out.getvalue()
    assert line.startswith("\r导入中 importing [######------------------]  25% 100/400 行 rows")
    assert "新增 created 90" in line and "出错 refused 10" in line and "100 行/秒 rows/s" in line
    now[0] = 1.1
    shown.update(summary)
    assert out.getvalue() == line  # not redrawn within PROGRESS_SECONDS
    summary.rows, summary.created = 398, 388  # the file held fewer rows than it had lines
    now[0] = 2.0
    shown.finish(summary)
    last = out.getvalue()[len(line):]
    assert last.startswith("\r导入中 importing [" + "#" * 24 + "] 100% 398/398 行 rows")
    assert last.endswith("\n")
    # Rows beyond what the file seemed to hold: the bar stays full, never past 100 %.
    assert "100% 500/500" in registry_import.Progress(io.StringIO(), 400).line(
        registry_import.ImportSummary(rows=500))
    # A file that does not say how many rows: counts without a bar.
    assert registry_import.Progress(io.StringIO(), None).line(summary).startswith(
        "导入中 importing 398 行 rows · 新增 created 388")


def test_the_command_shows_progress(city: City, grids: tuple[str, str], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`linli import households FILE` draws the bar on standard error while it imports (and
    with --dry-run), then prints the summary; expected_rows counts a CSV's and an XLSX's rows."""
    grid, _ = grids
    monkeypatch.setenv("COUCHDB_URL", city.couch.resource.url)
    monkeypatch.setattr(registry_import, "PROGRESS_SECONDS", 0.0)
    path = write_csv(tmp_path / "p.csv", [row(grid, i) for i in range(700, 950)])
    assert registry_import.expected_rows(path) == 250
    for extra in (["--dry-run"], []):
        status = cli.main(["--data", str(tmp_path), "import", "households", str(path), *extra])
        out, err = capsys.readouterr()
        assert status == 0, err
        assert "[" + "#" * 24 + "] 100% 250/250 行 rows" in err, err
        assert "100/250 行 rows" in err and "200/250 行 rows" in err  # drawn on the way
        assert "新增 created: 250" in out
    assert len(households(city, grid)) >= 250
    book = openpyxl.Workbook()
    book.active.append(HEADERS)
    for i in range(3):
        book.active.append(list(row(grid, 960 + i).values()))
    book.save(tmp_path / "p.xlsx")
    assert registry_import.expected_rows(tmp_path / "p.xlsx") == 3
