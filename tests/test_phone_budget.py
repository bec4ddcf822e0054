"""Issue 23, item 4: a phone's budget per grid. A grid holding more than a phone may carry is
refused to a device's first download (server/domain/phone_budget.py); a phone that already
holds it reads on from its checkpoint."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from conftest import City, basic, visit, wait_for_user

from server.config import Config
from server.domain.phone_budget import grid_size, over_budget
from server.domain.scope import grid_db
from server.web.app import create_app


async def test_a_grid_over_the_budget_is_refused_to_a_first_download(
        aiohttp_client: Any, config: Config, city: City) -> None:
    small = dataclasses.replace(config, phone_grid_max_documents=4)
    client = await aiohttp_client(create_app(small))
    big, fits = await city.grid(), await city.grid()
    worker = await city.user(grids=[big, fits])
    await wait_for_user(client, worker)
    for n in range(6):
        await city.save(big, visit(big, worker, n))
    await city.save(fits, visit(fits, worker, 1))
    for query in ("", "?since=0", "?feed=longpoll&since=0&timeout=1000", "?style=all_docs"):
        resp = await client.get(f"/couch/{grid_db(big)}/_changes{query}", headers=basic(worker))
        assert resp.status == 413, (query, await resp.text())
        body = await resp.json()
        assert set(body) == {"error", "reason"} and "拆分" in body["reason"]
        assert "split" in body["reason"] and "at most 4 documents" in body["reason"]
    resp = await client.get(f"/couch/{grid_db(big)}/_changes?since=now", headers=basic(worker))
    assert resp.status == 200  # a phone holding the grid reads on
    resp = await client.get(f"/couch/{grid_db(fits)}/_changes", headers=basic(worker))
    assert resp.status == 200 and (await resp.json())["results"]


@pytest.mark.parametrize(("info", "refused"), [
    ({"doc_count": 10}, False), ({"doc_count": 11}, True),
    ({"doc_count": 5, "sizes": {"external": 1001}}, True),
    ({"doc_count": 5, "sizes": {"external": 1000}}, False),
    ({"doc_count": "11", "sizes": {"external": True}}, False), ({}, False),
    ({"doc_count": 5, "sizes": "big"}, False)])
def test_the_budget_reads_what_the_store_reports(info: dict[str, Any], refused: bool) -> None:
    assert (over_budget(info, 10, 1000) is not None) is refused
    assert grid_size(info)[0] in (0, 5, 10, 11)
