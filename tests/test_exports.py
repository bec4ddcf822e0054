"""Exports (server/sync/exports.py, GET /api/export): CSV and XLSX that open with openpyxl and match
the records they came from, masked unless the exporter asks, and that request audited."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from typing import Any

import pytest
from conftest import City, basic, eventually, wait_for_user
from openpyxl import load_workbook

from server.admin import directory
from server.domain.exports import WITHHELD
from server.store.bulk import save_many
from server.store.couch import CouchClient
from server.sync import exports
from server.web.keys import DIRECTORY


def persons(grid: str, count: int) -> list[dict[str, Any]]:
    return [{"_id": f"person:{grid}-{n:04d}", "type": "person", "schema_version": 1,
             "grid": grid, "created_by": "w", "household": f"household:{grid}-{n // 3:04d}",
             "name": f"居民{n}", "relationship": "0", "sex": "1", "birth_year": 1970,
             "birth_month": 1, "id_number": f"3308021970010{n:04d}X", "phone": "13905701234",
             "status": "present"} for n in range(count)]


async def test_exports_match_the_records_and_mask_personal_data(
        client: Any, city: City, caplog: pytest.LogCaptureFixture) -> None:
    grid = await city.grid(community="exportville")
    boss = await city.user("supervisor", communities=["exportville"], rights=["unmask"])
    worker = await city.user("worker", grids=[grid])
    await wait_for_user(client, boss)
    await wait_for_user(client, worker)
    docs = persons(grid, exports.PAGE + 7)  # more than one page
    # Not `Database.update`: it matches the store's answers by position, and the store answers
    # out of order, so `docs[5]` could come back with another person's id (server/store/bulk.py).
    await city.run(save_many, city.db(grid), docs)
    second = await city.grid(community="exportville")  # and the pages of the next grid after them
    await city.run(city.db(second).update, persons(second, 3))

    resp = await client.get("/api/export?what=persons&format=csv&community=exportville",
                            headers=basic(boss))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    header, body = table[0], table[1:]
    assert len(body) == len(docs) + 3 and len({row[0] for row in body}) == len(body)
    resp = await client.get(f"/api/export?what=persons&format=csv&grid={grid}",
                            headers=basic(boss))
    table = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    header, body = table[0], table[1:]
    assert header[0] == "编号 id" and len(body) == len(docs)
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    sample = by_id[docs[5]["_id"]]
    assert sample["姓名 name"] == "居民5"
    assert sample["身份证号 id_number"] == "330***********005X"
    assert sample["联系电话 phone"] == "139****1234"

    with caplog.at_level(logging.INFO, logger="linli.audit"):
        resp = await client.get(f"/api/export?what=persons&format=xlsx&grid={grid}&unmask=1"
                                "&reason=verify_identity",
                                headers=basic(boss))
        content = await resp.read()
    assert any("UNMASKED" in r.getMessage() and boss in r.getMessage()
               for r in caplog.records)
    sheet = load_workbook(io.BytesIO(content), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == len(docs) + 1
    full = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert full[docs[5]["_id"]]["身份证号 id_number"] == docs[5]["id_number"]

    assert (await client.get("/api/export", headers=basic(worker))).status == 403
    resp = await client.get("/api/export?what=secrets", headers=basic(boss))
    assert resp.status == 400


async def test_only_users_with_the_right_may_unmask(
        client: Any, city: City, caplog: pytest.LogCaptureFixture) -> None:
    grid = await city.grid(community="maskville")
    boss = await city.user("supervisor", communities=["maskville"])
    await wait_for_user(client, boss)
    await city.run(city.db(grid).update, persons(grid, 3))
    with caplog.at_level(logging.INFO, logger="linli.audit"):
        resp = await client.get(f"/api/export?what=persons&grid={grid}&unmask=1"
                                "&reason=verify_identity",
                                headers=basic(boss))
    assert resp.status == 403
    body = await resp.json()
    assert body["error"] == "forbidden"
    zh, en = body["reason"].split(" / ")
    assert "权限" in zh and "right" in en
    assert any(boss in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
    # Masked, it is allowed; given the right (followed from the directory at once), unmasked.
    resp = await client.get(f"/api/export?what=persons&grid={grid}", headers=basic(boss))
    assert resp.status == 200
    await city.run(directory.set_rights, city.couch, boss, grant=["unmask"])
    users = client.app[DIRECTORY].users
    await eventually(lambda: users[boss].may("unmask"))
    resp = await client.get(f"/api/export?what=persons&grid={grid}&unmask=1"
                                "&reason=verify_identity",
                            headers=basic(boss))
    assert resp.status == 200 and "3308021970010" in (await resp.read()).decode("utf-8-sig")
    # The app learns the right from /api/me, to offer "show in full" only to those who may.
    resp = await client.get("/api/me", headers=basic(boss))
    assert (await resp.json())["rights"] == ["unmask"]
    await city.run(directory.set_rights, city.couch, boss, revoke=["unmask"])
    await eventually(lambda: not users[boss].may("unmask"))
    resp = await client.get(f"/api/export?what=persons&grid={grid}&unmask=1"
                                "&reason=verify_identity",
                            headers=basic(boss))
    assert resp.status == 403
    with pytest.raises(directory.DirectoryError):
        await city.run(directory.set_rights, city.couch, boss, grant=["everything"])


def sheet_columns(rows: list[list[Any]]) -> list[dict[str, Any]]:
    """The areas of an aggregates sheet, one per column: {figure name: cell}."""
    names = [row[0] for row in rows]
    return [{name: row[col] for name, row in zip(names, rows, strict=True)}
            for col in range(2, len(rows[0]))]


async def test_aggregates_export_matches_the_api(client: Any, city: City) -> None:
    community = "339997001001"
    grids = [await city.grid(community=community, street="339997001") for _ in range(2)]
    for n, grid in enumerate(grids):
        docs = persons(grid, 4 + 30 * n)  # the first grid's counts are small
        await city.run(city.db(grid).update, docs)
    stranger = await city.user("supervisor", communities=["339997001002"])
    await wait_for_user(client, stranger)
    query = f"level=community&code={community}"
    api = await (await client.get(f"/api/aggregates?{query}", headers=basic(stranger))).json()
    assert any(child["suppressed"] for child in api["children"])

    resp = await client.get(f"/api/export?what=aggregates&format=xlsx&{query}",
                            headers=basic(stranger))
    assert resp.status == 200
    assert "linli-aggregates-community-339997001001.xlsx" in resp.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(await resp.read()), read_only=True).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    resp = await client.get(f"/api/export?what=aggregates&format=csv&{query}",
                            headers=basic(stranger))
    text = (await resp.read()).decode("utf-8-sig")
    as_csv = list(csv.reader(io.StringIO(text)))
    # The same sheet either way (an empty cell reads back from XLSX as None).
    assert [["" if c is None else str(c) for c in row] for row in rows] == as_csv

    areas = [api, *api["children"]]
    columns = sheet_columns(rows)
    assert [c["code"] for c in columns] == [a["code"] for a in areas]
    figure_rows = [row[0] for row in rows[5:]]
    for area, column in zip(areas, columns, strict=True):
        assert column["level"] == area["level"] and column["grids"] == area["grids"]
        for name in figure_rows:
            if name in area.get("suppressed", []):
                assert column[name] == WITHHELD
            else:
                assert column[name] == area["figures"].get(name, 0), (area["code"], name)
        assert set(area["figures"]) <= set(figure_rows)
    assert rows[0][2] == f"{api.get('name', 'community')} {community}"
    assert "persons" in figure_rows and rows[figure_rows.index("persons") + 5][1].startswith(
        "在住人口")
    assert WITHHELD in rows[figure_rows.index("persons") + 5]

    resp = await client.get("/api/export?what=aggregates&level=street&code=000",
                            headers=basic(stranger))
    assert resp.status == 404


def household(grid: str, n: int, head: str) -> dict[str, Any]:
    return {"_id": f"household:{grid}-{n:04d}", "type": "household", "schema_version": 1,
            "grid": grid, "created_by": "w", "registry": {"source": "grid_survey"},
            "address": {"compound": "yuan", "building": "3", "room": f"{101 + n}"},
            "head_name": head, "phone": "13905701234", "status": "active"}


async def test_pages_of_many_grids_come_whole_and_in_order(
        city: City, store_session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """More grids than are read at once, with pages smaller than a grid: every household once,
    grid after grid in the order asked, a grid that has no database skipped; the XLSX of them
    reads back with openpyxl, one row a household, formula-safe and masked."""
    monkeypatch.setattr(exports, "PAGE", 4)
    codes = [await city.grid(community="pagesville") for _ in range(exports.AHEAD + 3)]
    wanted: list[str] = []
    for n, code in enumerate(codes):
        docs = [household(code, i, "=1+1" if i == 0 else f"户主{i}") for i in range(3 * n)]
        if docs:
            assert all(ok for ok, _, _ in await city.run(save_many, city.db(code), docs))
        wanted += [d["_id"] for d in docs]
    asked = [*codes[:2], "nosuchgrid", *codes[2:]]
    couch = CouchClient(city.couch.resource.url, store_session)
    got = [doc["_id"] async for page in exports.pages(couch, asked, "household:")
           for doc in page]
    assert got == wanted
    handle = await exports.xlsx_file(
        exports.rows(couch, asked, "households", unmasked=False), "households")
    with handle:
        sheet = load_workbook(handle, read_only=True).active
        table = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert [row[0] for row in table[1:]] == wanted
    heads = {row[4] for row in table[1:]}
    assert "'=1+1" in heads and "=1+1" not in heads
    assert {row[5] for row in table[1:]} == {"139****1234"}


async def test_an_abandoned_export_leaves_no_reader(city: City, store_session: Any) -> None:
    """A download given up half-way (the client went away): the grids being read at once are
    cancelled with it, none left running."""
    codes = [await city.grid(community="leftville") for _ in range(exports.AHEAD + 2)]
    for code in codes:
        await city.run(save_many, city.db(code), [household(code, i, "王") for i in range(3)])
    couch = CouchClient(city.couch.resource.url, store_session)

    def readers() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if "grid_pages" in repr(t.get_coro())]

    source = exports.pages(couch, codes, "household:")
    assert len(await anext(source)) == 3
    assert len(readers()) == exports.AHEAD
    await source.aclose()
    assert readers() == []
