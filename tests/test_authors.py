"""The author index (server/sync/authors.py): a push is checked against who created each record
without asking the store per batch, with the same guarantee as the store's lookup had: nobody
takes over another person's record by pushing a first revision under its id."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import City, basic, eventually, visit, wait_for_user

from server.domain.scope import grid_db
from server.web.app import create_app
from server.web.keys import AUTHORS, CONFIG


async def replicate(client: Any, grid: str, user: str, docs: list[dict[str, Any]]) -> list[Any]:
    """The errors of a replicated batch (CouchDB answers nothing for a revision stored)."""
    resp = await client.post(f"/couch/{grid_db(grid)}/_bulk_docs",
                             json={"docs": docs, "new_edits": False}, headers=basic(user))
    assert resp.status == 201, await resp.text()
    return [r for r in await resp.json() if "error" in r]


def first(doc: dict[str, Any], digest: str) -> dict[str, Any]:
    """`doc` as a phone replicates its first revision."""
    return {**doc, "_rev": f"1-{digest * 32}", "_revisions": {"start": 1, "ids": [digest * 32]}}


async def built_grid(client: Any, city: City, workers: int) -> tuple[str, list[str]]:
    """A grid, its workers, and the author index of its database built (a first write makes
    the server build it; until then the store is asked)."""
    grid = await city.grid()
    names = [await city.user(grids=[grid]) for _ in range(workers)]
    for name in names:
        await wait_for_user(client, name)
    await replicate(client, grid, names[0], [first(visit(grid, names[0], "seed"), "5")])
    index = client.app[AUTHORS]
    await eventually(lambda: index.built(grid_db(grid)), what="the author index built")
    return grid, names


async def test_a_push_of_new_records_asks_the_store_no_author(client: Any, city: City) -> None:
    grid, [worker] = await built_grid(client, city, 1)
    index = client.app[AUTHORS]
    asked = index.asked_store
    docs = [first(visit(grid, worker, f"n{i}"), "a") for i in range(50)]
    assert await replicate(client, grid, worker, docs) == []
    edits = [{**visit(grid, worker, f"n{i}", outcome="refused"), "_rev": f"2-{'b' * 32}",
              "_revisions": {"start": 2, "ids": ["b" * 32, "a" * 32]}} for i in range(50)]
    assert await replicate(client, grid, worker, edits) == []
    assert index.asked_store == asked  # answered from the index, both times


async def test_two_workers_racing_for_one_new_id_one_wins(client: Any, city: City) -> None:
    """Both find the id free; the second to reach the write is refused, never stored beside
    the first as a conflicting first revision that could win."""
    grid, [one, two] = await built_grid(client, city, 2)
    for n in range(5):
        doc_id = f"household_visit:{grid}-race{n}"
        mine = first({**visit(grid, one, 0), "_id": doc_id}, "c")
        theirs = first({**visit(grid, two, 0), "_id": doc_id}, "d")
        answers = await asyncio.gather(replicate(client, grid, one, [mine]),
                                       replicate(client, grid, two, [theirs]))
        assert sorted(map(len, answers)) == [0, 1], answers
        [refused] = answers[0] or answers[1]
        assert refused["error"] == "forbidden" and "created_by" in refused["reason"], refused
        stored = await city.get(grid, doc_id, conflicts=True)
        assert "_conflicts" not in stored, stored
        winner = two if answers[0] else one
        assert stored["created_by"] == winner


async def test_a_takeover_right_after_the_write_is_refused(client: Any, city: City) -> None:
    """The record was written a moment ago, through this server or straight into the store:
    the index knows it before the residents' sweep of the feeds would have read it."""
    grid, [owner, other] = await built_grid(client, city, 2)
    index = client.app[AUTHORS]
    for n in range(3):
        doc = visit(grid, owner, f"own{n}")
        assert await replicate(client, grid, owner, [first(doc, "e")]) == []
        [result] = await replicate(client, grid, other,
                                   [first({**doc, "created_by": other}, "f")])
        assert result["error"] == "forbidden" and owner in result["reason"], result
    straight = visit(grid, owner, "straight")
    await city.save(grid, dict(straight))
    asked = index.asked_store
    [result] = await replicate(client, grid, other, [first({**straight, "created_by": other},
                                                           "9")])
    assert result["error"] == "forbidden" and owner in result["reason"], result
    assert index.asked_store == asked  # the index read the store's change, not the record
    stored = await city.get(grid, straight["_id"], conflicts=True)
    assert stored["created_by"] == owner and "_conflicts" not in stored


async def test_a_deleted_record_keeps_its_author(client: Any, city: City) -> None:
    grid, [owner, other] = await built_grid(client, city, 2)
    doc = visit(grid, owner, "gone")
    assert await replicate(client, grid, owner, [first(doc, "1")]) == []
    gone = {"_id": doc["_id"], "_deleted": True, "_rev": f"2-{'2' * 32}",
            "_revisions": {"start": 2, "ids": ["2" * 32, "1" * 32]}}
    assert await replicate(client, grid, owner, [gone]) == []
    late_edit = {**doc, "created_by": other, "_rev": f"2-{'3' * 32}",
                 "_revisions": {"start": 2, "ids": ["3" * 32, "1" * 32]}}
    [result] = await replicate(client, grid, other, [late_edit])
    assert result["error"] == "forbidden", result
    again = first({**doc, "created_by": other, "outcome": "refused"}, "4")
    assert await replicate(client, grid, other, [again]) == []  # made anew, from scratch


async def test_a_new_server_rebuilds_the_index_from_the_store(client: Any, city: City,
                                                             aiohttp_client: Any) -> None:
    grid, [owner, other] = await built_grid(client, city, 2)
    doc = visit(grid, owner, "before")
    await replicate(client, grid, owner, [first(doc, "6")])
    fresh = await aiohttp_client(create_app(client.app[CONFIG]))
    await wait_for_user(fresh, other)
    for attempt in range(2):  # the first asks the store while the index is built
        [result] = await replicate(fresh, grid, other, [first({**doc, "created_by": other},
                                                              str(7 + attempt))])
        assert result["error"] == "forbidden" and owner in result["reason"], result
        await eventually(lambda: fresh.app[AUTHORS].built(grid_db(grid)), what="built")
