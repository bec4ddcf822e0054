"""`linli seed-demo` writes a synthetic city through the real paths, idempotently, and its
workers can log in and reach their grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import City, basic, wait_for_user

from server.config import Config
from server.demo.seed import DEMO_PASSWORD, seed_city
from server.domain.validation import SchemaRegistry


@pytest.mark.slow  # a city of 900 households, seeded twice
async def test_seed_city_twice(client: Any, city: City, tmp_path: Path) -> None:
    import asyncio

    config = Config.from_mapping({"data": tmp_path})
    first = await asyncio.to_thread(seed_city, city.couch, config, 900, 7, logins=True,
                                    progress=None)
    assert first["households_created"] == 900 and first["grids"] >= 2
    again = await asyncio.to_thread(seed_city, city.couch, config, 900, 7, logins=True,
                                    progress=None)
    assert (again["households_created"], again["households_unchanged"]) == (0, 900)
    assert (again["records_written"], again["logins"]) == (0, 0)

    registry = SchemaRegistry()
    grid = sorted(g for g in await city.run(list, city.couch)
                  if g.startswith("grid-g"))[0][len("grid-"):]
    docs = await city.run(lambda: [row.doc for row in city.db(grid).view(
        "_all_docs", include_docs=True) if not row.id.startswith("_design/")])
    assert {d["type"] for d in docs} >= {"building", "household", "person", "household_visit"}
    assert all(registry.problems(d) == [] for d in docs)
    worker = f"w_{grid}"
    await wait_for_user(client, worker)
    resp = await client.get(f"/couch/grid-{grid}", headers=basic(worker, DEMO_PASSWORD))
    assert (await resp.json())["doc_count"] == len(docs) + 1  # and the design document
