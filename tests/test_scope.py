"""Per-grid isolation: a worker of grid A cannot read, list, pull from or push to grid B through
any endpoint, nor can an anonymous client; a grid out of scope answers like a missing database."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import City, NodeClient, auth_for, basic, eventually, visit, wait_for_user

from server.domain.scope import Directory

MISSING = {"error": "not_found", "reason": "Database does not exist."}


@pytest.fixture
async def two_grids(client: Any, city: City) -> dict[str, str]:
    a, b = await city.grid(), await city.grid()
    worker_a, worker_b = await city.user(grids=[a]), await city.user(grids=[b])
    await city.save(b, visit(b, worker_b, "secret", notes="B 的记录"))
    await wait_for_user(client, worker_a)
    await wait_for_user(client, worker_b)
    return {"a": a, "b": b, "worker_a": worker_a, "worker_b": worker_b}


def endpoints(grid: str, worker: str) -> list[tuple[str, str, Any]]:
    doc = visit(grid, worker, "intrude")
    db = f"/couch/grid-{grid}"
    return [
        ("GET", db, None),
        ("HEAD", db, None),
        ("GET", f"{db}/_changes", None),
        ("GET", f"{db}/_changes?feed=longpoll&timeout=100", None),
        ("POST", f"{db}/_changes?filter=_doc_ids", {"doc_ids": [doc["_id"]]}),
        ("GET", f"{db}/_all_docs?include_docs=true", None),
        ("POST", f"{db}/_all_docs", {"keys": [doc["_id"]]}),
        ("POST", f"{db}/_bulk_get?revs=true", {"docs": [{"id": f"household_visit:{grid}-secret"}]}),
        ("POST", f"{db}/_revs_diff", {doc["_id"]: ["1-abc"]}),
        ("POST", f"{db}/_bulk_docs", {"docs": [doc]}),
        ("POST", f"{db}/_bulk_docs", {"docs": [doc], "new_edits": False}),
        ("GET", f"{db}/household_visit:{grid}-secret", None),
        ("GET", f"{db}/household_visit:{grid}-secret?open_revs=all&revs=true", None),
        ("PUT", f"{db}/{doc['_id']}", doc),
        ("DELETE", f"{db}/household_visit:{grid}-secret?rev=1-x", None),
        ("POST", db, doc),
        ("GET", f"{db}/_local/some-checkpoint", None),
        ("PUT", f"{db}/_local/some-checkpoint", {"last_seq": 1}),
        ("GET", f"{db}/household_visit:{grid}-secret/photo.jpg", None),
        ("PUT", f"{db}/_design/x", {"views": {}}),
        ("GET", f"{db}/_design/x/_view/y", None),
        ("GET", f"{db}/_security", None),
    ]


async def test_worker_cannot_reach_another_grid(client: Any, city: City,
                                                two_grids: dict[str, str]) -> None:
    b, worker_a = two_grids["b"], two_grids["worker_a"]
    before = await city.records(b)
    for method, path, body in endpoints(b, two_grids["worker_b"]):
        resp = await client.request(method, path, json=body, headers=basic(worker_a))
        assert resp.status == 404, (method, path, resp.status, await resp.text())
        if method != "HEAD":
            assert await resp.json() == MISSING, (method, path)
    assert await city.records(b) == before
    # The same database answers exactly like one that does not exist at all.
    resp = await client.get("/couch/grid-doesnotexist", headers=basic(worker_a))
    assert resp.status == 404 and await resp.json() == MISSING


async def test_anonymous_gets_nothing(client: Any, city: City,
                                      two_grids: dict[str, str]) -> None:
    for method, path, body in endpoints(two_grids["a"], two_grids["worker_a"]):
        resp = await client.request(method, path, json=body)
        assert resp.status == 401, (method, path, resp.status)
    resp = await client.get("/couch/_all_dbs")
    assert resp.status == 401


async def test_all_dbs_lists_only_reachable_grids(client: Any, city: City,
                                                  two_grids: dict[str, str]) -> None:
    resp = await client.get("/couch/_all_dbs", headers=basic(two_grids["worker_a"]))
    assert await resp.json() == [f"grid-{two_grids['a']}"]


async def test_supervisor_sees_grids_of_their_community(client: Any, city: City) -> None:
    mine = [await city.grid(community="c_north", street="s_1"),
            await city.grid(community="c_north")]
    other = await city.grid(community="c_south", street="s_2")
    supervisor = await city.user("supervisor", communities=["c_north"])
    street_supervisor = await city.user("supervisor", streets=["s_2"])
    await wait_for_user(client, supervisor)
    await wait_for_user(client, street_supervisor)
    listed = await (await client.get("/couch/_all_dbs", headers=basic(supervisor))).json()
    assert set(listed) >= {f"grid-{g}" for g in mine}
    assert f"grid-{other}" not in listed
    resp = await client.get(f"/couch/grid-{other}", headers=basic(supervisor))
    assert resp.status == 404
    resp = await client.get(f"/couch/grid-{other}", headers=basic(street_supervisor))
    assert resp.status == 200


async def test_pouchdb_cannot_pull_or_push_another_grid(client: Any, city: City, node: NodeClient,
                                                        two_grids: dict[str, str]) -> None:
    b, worker_a = two_grids["b"], two_grids["worker_a"]
    remote = str(client.make_url(f"/couch/grid-{b}"))
    pulled = await node.run({"op": "pull", "remote": remote, "local": node.local("steal"),
                             "auth": auth_for(worker_a)})
    assert not pulled["ok"] and pulled["error"]["status"] == 404
    pushed = await node.run({"op": "push", "remote": remote, "local": node.local("intrude"),
                             "auth": auth_for(worker_a),
                             "docs": [visit(b, worker_a, "pushed")]})
    assert not pushed["ok"]
    assert await city.get(b, f"household_visit:{b}-pushed") is None


async def test_worker_sees_grid_assignment_changes(client: Any, city: City) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    assert (await client.get(f"/couch/grid-{grid}", headers=basic(worker))).status == 200

    def unassign() -> None:
        directory_db = city.couch["linli-directory"]
        doc = directory_db[f"user:{worker}"]
        doc["grids"] = []
        directory_db.save(doc)

    await city.run(unassign)

    async def gone() -> bool:
        return (await client.get(f"/couch/grid-{grid}", headers=basic(worker))).status == 404

    await eventually(gone, 5, what="the grid gone for the worker")


def test_the_directory_keeps_readable_users_and_grids_and_drops_the_rest() -> None:
    """A user or grid document is taken in when it can be read, and gone when it is deleted or
    cannot be read (a bad record must not stop the directory follower, nor keep an old entry)."""
    directory = Directory()
    directory.apply({"_id": "user:ann", "name": "ann", "role": "worker", "grids": ["g1"]})
    directory.apply({"_id": "grid:g1", "code": "g1", "name": "一网格"})
    assert directory.users["ann"].grids == {"g1"} and directory.grids["g1"].name == "一网格"
    directory.apply({"_id": "user:ann", "name": "ann", "role": "mayor"})  # unknown role
    directory.apply({"_id": "grid:g1", "name": "no code"})
    assert "ann" not in directory.users and "g1" not in directory.grids
    directory.apply({"_id": "user:bob", "name": "bob", "role": "admin"})
    directory.apply({"_id": "grid:g2", "code": "g2"})
    directory.apply({"_id": "user:bob", "_deleted": True})
    directory.apply({"_id": "grid:g2", "_deleted": True})
    assert directory.users == {} and directory.grids == {}
