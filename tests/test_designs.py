"""The project's views live in store/designs/ and reach every grid database: at `grid add`, and
at server start for grids whose design documents are missing or old."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import City, basic, visit, wait_for_user

from server.config import Config
from server.store.designs import design_docs
from server.web.app import create_app


async def test_views_count_what_was_synced(client: Any, city: City) -> None:
    grid = city.grid()
    worker = city.user(grids=[grid])
    await wait_for_user(client, worker)
    docs = [visit(grid, worker, i, outcome=("completed", "refused")[i % 2]) for i in range(9)]
    resp = await client.post(f"/couch/grid-{grid}/_bulk_docs", json={"docs": docs},
                             headers=basic(worker))
    assert resp.status == 201
    resp = await client.get(f"/couch/grid-{grid}/_design/linli/_view/visits_by_outcome"
                            "?group_level=1", headers=basic(worker))
    rows = {r["key"][0]: r["value"] for r in (await resp.json())["rows"]}
    assert rows == {"completed": 5, "refused": 4}


async def test_server_installs_missing_or_old_designs(aiohttp_client: Any, config: Config,
                                                     city: City) -> None:
    grid = city.grid()
    db = city.db(grid)
    stale = db["_design/linli"]
    stale["views"] = {"old": {"map": "function (doc) {}"}}
    db.save(stale)
    await aiohttp_client(create_app(config))
    wanted = design_docs()[0]
    for _ in range(100):
        if db["_design/linli"]["views"] == wanted["views"]:
            break
        await asyncio.sleep(0.05)
    assert db["_design/linli"]["views"] == wanted["views"]
    rev = db["_design/linli"]["_rev"]
    await aiohttp_client(create_app(config))  # unchanged content is not rewritten
    await asyncio.sleep(0.5)
    assert db["_design/linli"]["_rev"] == rev
