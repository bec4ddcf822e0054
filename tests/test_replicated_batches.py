"""Replicated batches (`new_edits=false`) that carry several revisions of one record.

A phone that edited a record twice offline, or that relays a colleague's revisions, sends them
in one `_bulk_docs`. PouchDB Server 4.2.0 once stored an empty revision when two writes of one
id met in a batch (see the resolver's two-step writes), which crashed it on the next
`_changes`. These batches must be stored as CouchDB stores them, and the store must keep
answering."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import City, basic, wait_for_user
from test_conflicts import branch, household, rev

from server.domain.scope import grid_db
from server.web.keys import RECEIPTS, RESOLVER


async def replicate(client: Any, grid: str, user: str, docs: list[dict[str, Any]]) -> list[Any]:
    resp = await client.post(f"/couch/{grid_db(grid)}/_bulk_docs",
                             json={"docs": docs, "new_edits": False}, headers=basic(user))
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def leaves(client: Any, grid: str, user: str, doc_id: str) -> list[dict[str, Any]]:
    """The live leaf revisions, as a phone would ask for them."""
    resp = await client.get(f"/couch/{grid_db(grid)}/{doc_id}",
                            params={"open_revs": "all"}, headers={**basic(user),
                                                                  "Accept": "application/json"})
    assert resp.status == 200, await resp.text()
    return [row["ok"] for row in await resp.json()
            if "ok" in row and not row["ok"].get("_deleted")]


async def store_still_answers(client: Any, grid: str, user: str) -> list[dict[str, Any]]:
    """The feed the crash happened on, read in full."""
    resp = await client.get(f"/couch/{grid_db(grid)}/_changes",
                            params={"style": "all_docs"}, headers=basic(user))
    assert resp.status == 200, await resp.text()
    return (await resp.json())["results"]


@pytest.mark.parametrize("shape", ["siblings", "chain", "same_revision_twice",
                                   "deleted_beside_live", "reversed_chain"])
async def test_several_revisions_of_one_record_in_one_batch(client: Any, city: City,
                                                            shape: str) -> None:
    grid = await city.grid()
    worker = await city.user("worker", grids=[grid])
    await wait_for_user(client, worker)
    base = household(grid, worker, shape)
    r1, r2a, r2b, r3 = (rev(1, shape), rev(2, shape + "a"), rev(2, shape + "b"),
                        rev(3, shape + "c"))
    one = branch(base, r1)
    left = branch({**base, "phone": "13905700001"}, r2a, r1)
    right = branch({**base, "remarks": "独居"}, r2b, r1)
    deleted = {"_id": base["_id"], "_deleted": True, "_rev": r2b,
               "_revisions": {"start": 2, "ids": [r2b.split("-", 1)[1], r1.split("-", 1)[1]]}}
    later = branch({**base, "phone": "13905700002"}, r3, r2a, r1)
    batch, expected = {
        "siblings": ([one, left, right], {r2a, r2b}),
        "chain": ([one, left, later], {r3}),
        "same_revision_twice": ([one, left, dict(left)], {r2a}),
        "deleted_beside_live": ([one, left, deleted], {r2a}),
        "reversed_chain": ([later, left, one], {r3}),
    }[shape]
    results = await replicate(client, grid, worker, batch)
    assert all("error" not in r for r in results), results
    assert {doc["_rev"] for doc in await leaves(client, grid, worker, base["_id"])} == expected
    changes = await store_still_answers(client, grid, worker)
    assert base["_id"] in {row["id"] for row in changes}
    # Nothing empty was stored: every live leaf is a whole household.
    for doc in await leaves(client, grid, worker, base["_id"]):
        assert doc["type"] == "household" and doc["head_name"] == base["head_name"]
    # The resolver settles what is conflicted, and the store still answers afterwards.
    await client.app[RECEIPTS].flush()
    await client.app[RESOLVER].process_grid(grid)
    assert len(await leaves(client, grid, worker, base["_id"])) == 1
    await store_still_answers(client, grid, worker)


async def test_a_forged_revision_in_a_batch_is_refused_alone(client: Any, city: City) -> None:
    """A worker's replicated batch mixing a colleague's record with their own: the takeover
    is refused per document, the rest of the batch commits, and the store keeps answering."""
    grid = await city.grid()
    owner, other = await city.user("worker", grids=[grid]), await city.user("worker", grids=[grid])
    for name in (owner, other):
        await wait_for_user(client, name)
    theirs = household(grid, owner, "theirs")
    r1 = rev(1, "theirs")
    await replicate(client, grid, owner, [branch(theirs, r1)])
    mine = household(grid, other, "mine")
    takeover = branch({**theirs, "created_by": other}, rev(2, "takeover"), r1)
    results = await replicate(client, grid, other,
                              [takeover, branch(mine, rev(1, "mine")),
                               dict(takeover)])
    # As in CouchDB, a replicated batch answers only for the documents it refused.
    assert [r["id"] for r in results] == [theirs["_id"], theirs["_id"]], results
    assert all(r["error"] == "forbidden" and "reason" in r for r in results), results
    [own] = await leaves(client, grid, other, mine["_id"])
    assert own["created_by"] == other
    [stored] = await leaves(client, grid, owner, theirs["_id"])
    assert stored["_rev"] == r1 and stored["created_by"] == owner
    await store_still_answers(client, grid, owner)
