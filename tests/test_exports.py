"""Exports (server/exports.py, GET /api/export): CSV and XLSX that open with openpyxl and match
the records they came from, masked unless the exporter asks, and that request audited."""

from __future__ import annotations

import csv
import io
import logging
from typing import Any

import pytest
from conftest import City, basic, wait_for_user
from openpyxl import load_workbook

from server import exports


def persons(grid: str, count: int) -> list[dict[str, Any]]:
    return [{"_id": f"person:{grid}-{n:04d}", "type": "person", "schema_version": 1,
             "grid": grid, "created_by": "w", "household": f"household:{grid}-{n // 3:04d}",
             "name": f"居民{n}", "relationship": "0", "sex": "1", "birth_year": 1970,
             "birth_month": 1, "id_number": f"3308021970010{n:04d}X", "phone": "13905701234",
             "status": "present"} for n in range(count)]


async def test_exports_match_the_records_and_mask_personal_data(
        client: Any, city: City, caplog: pytest.LogCaptureFixture) -> None:
    grid = city.grid(community="exportville")
    boss = city.user("supervisor", communities=["exportville"])
    worker = city.user("worker", grids=[grid])
    await wait_for_user(client, boss)
    await wait_for_user(client, worker)
    docs = persons(grid, exports.PAGE + 7)  # more than one page
    city.db(grid).update(docs)

    resp = await client.get(f"/api/export?what=persons&format=csv&grid={grid}",
                            headers=basic(boss))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    header, body = table[0], table[1:]
    assert header[0] == "编号 id" and len(body) == len(docs)
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    sample = by_id[docs[5]["_id"]]
    assert sample["姓名 name"] == "居民5"
    assert sample["身份证号 id_number"] == "330***********005X"
    assert sample["联系电话 phone"] == "139****1234"

    with caplog.at_level(logging.INFO, logger="linli.audit"):
        resp = await client.get(f"/api/export?what=persons&format=xlsx&grid={grid}&unmask=1",
                                headers=basic(boss))
        content = await resp.read()
    assert any("UNMASKED" in r.getMessage() and boss in r.getMessage()
               for r in caplog.records)
    sheet = load_workbook(io.BytesIO(content), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == len(docs) + 1
    full = {row[0]: row for row in rows[1:]}
    assert full[docs[5]["_id"]][6] == docs[5]["id_number"]

    assert (await client.get("/api/export", headers=basic(worker))).status == 403
    resp = await client.get("/api/export?what=secrets", headers=basic(boss))
    assert resp.status == 400
