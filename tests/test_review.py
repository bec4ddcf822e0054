"""Review (server/sync/review.py, /api/review): states after ODK Central's, verdicts given many at
once and checked first, scope, and the worker's edit after "has issues"."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from typing import Any
from urllib.parse import quote

import openpyxl
import pytest
from conftest import City, basic, eventually, visit, wait_for_user

from server.domain.scope import grid_db


async def states(client: Any, boss: str, grid: str, **query: str) -> dict[str, str]:
    params = "&".join(f"{k}={v}" for k, v in {"grid": grid, **query}.items())
    resp = await client.get(f"/api/review?{params}", headers=basic(boss))
    assert resp.status == 200, await resp.text()
    return {r["record"]: r["state"] for r in (await resp.json())["records"]}


async def test_review_states_and_verdicts(client: Any, city: City) -> None:
    grid = await city.grid(community="reviewville")
    worker = await city.user("worker", grids=[grid])
    boss = await city.user("supervisor", communities=["reviewville"])
    outsider = await city.user("supervisor", communities=["elsewhere"])
    for name in (worker, boss, outsider):
        await wait_for_user(client, name)
    docs = [visit(grid, worker, n, visited_on=f"2026-11-{10 + n}") for n in range(6)]
    resp = await client.post(f"/couch/{grid_db(grid)}/_bulk_docs", json={"docs": docs},
                             headers=basic(worker))
    revs = {r["id"]: r["rev"] for r in await resp.json()}
    assert set((await states(client, boss, grid)).values()) == {"received"}

    ids = list(revs)
    resp = await client.post("/api/review/verdicts", headers=basic(boss), json={
        "grid": grid, "verdicts": [
            *({"record": i, "record_rev": revs[i], "decision": "approved"} for i in ids[:3]),
            {"record": ids[3], "record_rev": revs[ids[3]], "decision": "has_issues"}]})
    assert resp.status == 400  # has_issues needs a comment: nothing written
    assert "Comment" in (await resp.json())["reason"]
    assert set((await states(client, boss, grid)).values()) == {"received"}

    resp = await client.post("/api/review/verdicts", headers=basic(boss), json={
        "grid": grid, "verdicts": [
            *({"record": i, "record_rev": revs[i], "decision": "approved"} for i in ids[:3]),
            {"record": ids[3], "record_rev": revs[ids[3]], "decision": "has_issues",
             "comment": "走访日期有误"},
            {"record": ids[4], "record_rev": revs[ids[4]], "decision": "rejected",
             "comment": "不是本户"}]})
    assert resp.status == 200, await resp.text()
    now = await states(client, boss, grid)
    assert [now[i] for i in ids] == ["approved"] * 3 + ["has_issues", "rejected", "received"]
    assert await states(client, boss, grid, state="approved") == {i: "approved" for i in ids[:3]}
    assert await states(client, boss, grid, worker="nobody") == {}
    assert set(await states(client, boss, grid, **{"from": "2026-11-14"})) == set(ids[4:])

    # The worker corrects the record: it is "edited", waiting for another look.
    fixed = {**docs[3], "_rev": revs[ids[3]], "visited_on": "2026-11-12"}
    resp = await client.put(f"/couch/{grid_db(grid)}/{ids[3]}", json=fixed,
                            headers=basic(worker))
    assert resp.status == 201
    assert (await states(client, boss, grid))[ids[3]] == "edited"

    # The filtered list exports as it is listed, as CSV and as XLSX.
    listed = (await (await client.get(f"/api/review?grid={grid}&state=approved",
                                      headers=basic(boss))).json())["records"]
    resp = await client.get(f"/api/export?what=review&grid={grid}&state=approved",
                            headers=basic(boss))
    assert resp.status == 200, await resp.text()
    lines = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert lines[0][:4] == ["网格 grid", "社区 community", "记录 record", "类型 type"]
    assert [(r[2], r[7], r[8]) for r in lines[1:]] == [
        (r["record"], "通过", boss) for r in listed]
    resp = await client.get(f"/api/export?what=review&grid={grid}&format=xlsx",
                            headers=basic(boss))
    sheet = openpyxl.load_workbook(io.BytesIO(await resp.read()), read_only=True).active
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    labels = {"approved": "通过", "has_issues": "有问题", "rejected": "不通过",
              "received": "待审核", "edited": "已修改待复核"}
    assert {row[2]: row[7] for row in rows} == {
        record: labels[state] for record, state in (await states(client, boss, grid)).items()}
    resp = await client.get(f"/api/export?what=review&grid={grid}", headers=basic(outsider))
    assert resp.status == 404

    # Scope and roles.
    resp = await client.get(f"/api/review?grid={grid}", headers=basic(outsider))
    assert resp.status == 404
    assert (await client.get("/api/review", headers=basic(worker))).status == 403
    resp = await client.post("/api/review/verdicts", headers=basic(outsider), json={
        "grid": grid, "verdicts": [{"record": ids[5], "record_rev": revs[ids[5]],
                                    "decision": "approved"}]})
    assert resp.status == 404
    resp = await client.post("/api/review/verdicts", headers=basic(boss), json={
        "grid": grid, "verdicts": [{"record": f"household:{grid}-0001", "record_rev": "1-a",
                                    "decision": "approved"}]})
    assert resp.status == 400 and "没有这条可审核的记录" in (await resp.json())["reason"]
    resp = await client.get(f"/api/review?grid={grid}&state=maybe", headers=basic(boss))
    assert resp.status == 400


def person(grid: str, author: str, **fields: Any) -> dict[str, Any]:
    doc = {"_id": f"person:{grid}-0001-1", "type": "person", "schema_version": 1, "grid": grid,
           "created_by": author, "household": f"household:{grid}-0001", "name": "严福根",
           "relationship": "0", "sex": "1", "birth_year": 1951, "birth_month": 6,
           "id_number": "330602195106047697", "phone": "13905701234", "status": "present"}
    doc.update(fields)
    return doc


async def history(client: Any, boss: str, grid: str, doc_id: str,
                  **query: str) -> dict[str, Any]:
    params = "&".join(f"{k}={quote(v, safe='')}"
                      for k, v in {"grid": grid, "id": doc_id, **query}.items())
    resp = await client.get(f"/api/review/record?{params}", headers=basic(boss))
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def test_a_record_with_its_history_and_differences(
        client: Any, city: City, caplog: pytest.LogCaptureFixture) -> None:
    grid = await city.grid(community="historyville")
    worker = await city.user("worker", grids=[grid])
    boss = await city.user("supervisor", communities=["historyville"], rights=["unmask"])
    outsider = await city.user("supervisor", communities=["elsewhere"])
    for name in (worker, boss, outsider):
        await wait_for_user(client, name)
    db = f"/couch/{grid_db(grid)}"

    # A visit written, judged "has issues", then corrected twice by its worker.
    doc = visit(grid, worker, 1, persons_present=2)
    resp = await client.put(f"{db}/{doc['_id']}", json=doc, headers=basic(worker))
    first = (await resp.json())["rev"]
    resp = await client.post("/api/review/verdicts", headers=basic(boss), json={
        "grid": grid, "verdicts": [{"record": doc["_id"], "record_rev": first,
                                    "decision": "has_issues", "comment": "人数不对"}]})
    assert resp.status == 200, await resp.text()
    second_doc = {**doc, "_rev": first, "persons_present": 3, "notes": "补记"}
    resp = await client.put(f"{db}/{doc['_id']}", json=second_doc, headers=basic(worker))
    second = (await resp.json())["rev"]
    third_doc = {**second_doc, "_rev": second}
    del third_doc["notes"]
    resp = await client.put(f"{db}/{doc['_id']}", json=third_doc, headers=basic(worker))
    third = (await resp.json())["rev"]

    with caplog.at_level(logging.INFO, logger="linli.audit"):
        found = await history(client, boss, grid, doc["_id"])
    assert any(boss in r.getMessage() and doc["_id"] in r.getMessage()
               and "UNMASKED" not in r.getMessage() for r in caplog.records)
    assert (found["rev"], found["state"], found["record_type"]) == (third, "edited",
                                                                   "household_visit")
    assert found["record"]["persons_present"] == 3 and "notes" not in found["record"]
    assert [v["decision"] for v in found["verdicts"]] == ["has_issues"]
    assert found["verdicts"][0]["comment"] == "人数不对" and found["verdicts"][0]["by"] == boss
    assert found["verdicts"][0]["record_rev"] == first
    revisions = found["revisions"]
    assert [r["rev"] for r in revisions] == [third, second, first]
    assert all(r["kept"] and not r["deleted"] for r in revisions)
    assert {r["by"] for r in revisions} == {worker}
    assert all(r["received_at"] for r in revisions)
    assert revisions[0]["compared_with"] == second
    assert revisions[0]["changes"] == [
        {"field": "notes", "from": "补记", "kind": "removed"}]
    assert revisions[1]["changes"] == [
        {"field": "notes", "to": "补记", "kind": "added"},
        {"field": "persons_present", "from": 2, "to": 3, "kind": "changed"}]
    assert revisions[2]["compared_with"] is None
    assert {c["field"] for c in revisions[2]["changes"]} >= {"visited_on", "outcome"}

    # Personal data: masked, also in the differences, unless asked for, which is audited.
    member = person(grid, worker)
    resp = await client.put(f"{db}/{member['_id']}", json=member, headers=basic(worker))
    assert resp.status == 201, await resp.text()
    moved = {**member, "_rev": (await resp.json())["rev"], "phone": "13905709876"}
    resp = await client.put(f"{db}/{member['_id']}", json=moved, headers=basic(worker))
    assert resp.status == 201, await resp.text()
    found = await history(client, boss, grid, member["_id"])
    assert found["masked"] and found["state"] == "received"  # a profile is reviewed too
    assert found["record"]["id_number"] == "330***********7697"
    assert found["record"]["phone"] == "139****9876"
    assert found["revisions"][0]["changes"] == [
        {"field": "phone", "from": "139****1234", "to": "139****9876", "kind": "changed"}]
    text = json.dumps(found, ensure_ascii=False)
    assert "330602195106047697" not in text and "13905701234" not in text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="linli.audit"):
        found = await history(client, boss, grid, member["_id"], unmask="1",
                              reason="verify_identity")
    assert found["record"]["id_number"] == "330602195106047697" and not found["masked"]
    assert found["revisions"][0]["changes"][0]["from"] == "13905701234"
    assert any(boss in r.getMessage() and "UNMASKED" in r.getMessage()
               for r in caplog.records)

    # After a compaction the store keeps only the current body: older ones are "not kept",
    # but who sent them and when is still known.
    database = city.db(grid)
    await asyncio.to_thread(database.compact)

    async def compacted() -> dict[str, Any] | None:
        found = await history(client, boss, grid, doc["_id"])
        return None if any(r["kept"] for r in found["revisions"][1:]) else found

    found = await eventually(compacted, 10, every=0.1, what="the compaction done")
    revisions = found["revisions"]
    assert [r["kept"] for r in revisions] == [True, False, False]
    assert "changes" not in revisions[1] and revisions[1]["by"] == worker
    assert revisions[0]["compared_with"] is None

    # Scope, roles, and what can be opened.
    url = f"/api/review/record?grid={grid}&id={quote(doc['_id'])}"
    assert (await client.get(url, headers=basic(outsider))).status == 404
    assert (await client.get(url, headers=basic(worker))).status == 403
    for wrong in (f"household_visit:{grid}-nothing", "_design/linli", "verdict:x"):
        resp = await client.get(f"/api/review/record?grid={grid}&id={quote(wrong)}",
                                headers=basic(boss))
        assert resp.status == 404, wrong
        assert "没有这条可审核的记录" in (await resp.json())["reason"]
