"""Review (server/review.py, /api/review): states after ODK Central's, verdicts given many at
once and checked first, scope, and the worker's edit after "has issues"."""

from __future__ import annotations

from typing import Any

from conftest import City, basic, visit, wait_for_user

from server.scope import grid_db


async def states(client: Any, boss: str, grid: str, **query: str) -> dict[str, str]:
    params = "&".join(f"{k}={v}" for k, v in {"grid": grid, **query}.items())
    resp = await client.get(f"/api/review?{params}", headers=basic(boss))
    assert resp.status == 200, await resp.text()
    return {r["record"]: r["state"] for r in (await resp.json())["records"]}


async def test_review_states_and_verdicts(client: Any, city: City) -> None:
    grid = city.grid(community="reviewville")
    worker = city.user("worker", grids=[grid])
    boss = city.user("supervisor", communities=["reviewville"])
    outsider = city.user("supervisor", communities=["elsewhere"])
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
    assert "comment" in (await resp.json())["reason"]
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
