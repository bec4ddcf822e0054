"""A real PouchDB 9 client (node) replicates a grid through the gateway, both ways, one-shot and
live, with invalid records denied one by one while the rest of the batch goes through."""

from __future__ import annotations

import asyncio
import base64
import gzip
import itertools
import json
from typing import Any

import aiohttp
import pytest
from conftest import City, NodeClient, auth_for, basic, visit, wait_for_user

_counted = itertools.count(1)


async def seeded_grid(city: City, client: Any, count: int) -> tuple[str, str]:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    docs = [visit(grid, worker, f"{i:05d}", persons_present=i % 7) for i in range(count)]
    await city.run(city.db(grid).update, docs)
    await wait_for_user(client, worker)
    return grid, worker


@pytest.mark.slow  # a thousand records
async def test_pull_thousand_records(client: Any, city: City, node: NodeClient) -> None:
    grid, worker = await seeded_grid(city, client, 1000)
    result = await node.run({"op": "pull", "remote": str(client.make_url(f"/couch/grid-{grid}")),
                             "local": node.local("pull"), "auth": auth_for(worker)})
    assert result["ok"], result
    assert result["status"] == "complete"
    assert result["docs_written"] == 1001  # and the grid's design document (its views)
    assert result["local_doc_count"] == 1001


def invalid_visits(grid: str, worker: str) -> list[tuple[dict[str, Any], str]]:
    """20 records, each wrong in its own way, with a word the refusal's reason must contain."""
    def bad(n: int, **changes: Any) -> dict[str, Any]:
        doc = visit(grid, worker, f"bad{n:02d}")
        for key, value in changes.items():
            if value is None:
                doc.pop(key)
            else:
                doc[key] = value
        return doc

    image = base64.b64encode(b"\xff\xd8" + b"x" * 120_000).decode()
    small_image = base64.b64encode(b"\xff\xd8" + b"y" * 60_000).decode()
    cases: list[tuple[dict[str, Any], str]] = [
        (bad(1, outcome=None), "Outcome"),
        (bad(2, outcome="gone"), "Outcome"),
        (bad(3, visited_on="2026-13-40"), "Visit date"),
        (bad(4, persons_present=-1), "Persons present"),
        (bad(5, persons_present="three"), "Persons present"),
        (bad(6, notes="长" * 2001), "Notes"),
        (bad(7, secret_field=1), "secret_field"),
        (bad(8, grid="othergrid"), "grid"),
        (bad(9, created_by="someone.else"), "created_by"),
        (bad(10, type="spaceship"), "type"),
        (bad(11, schema_version=99), "schema_version"),
        ({**visit(grid, worker, "x"), "_id": f"household:{grid}-bad12"}, "household_visit:"),
        ({**visit(grid, worker, "x"), "_id": "household_visit:张三"}, "_id"[1:]),
        (bad(14, household="not-a-household"), "Household"),
        (bad(15, type=None), "type"),
        ({"_id": "_design/evil", "views": {}}, "design"),
        (bad(17, _attachments={"a.html": {"content_type": "text/html",
                                          "data": base64.b64encode(b"<p>").decode()}}),
         "text/html"),
        (bad(18, _attachments={"big.jpg": {"content_type": "image/jpeg", "data": image}}),
         "too large"),
        (bad(19, _attachments={f"p{i}.jpg": {"content_type": "image/jpeg", "data": small_image}
                               for i in range(3)}), "document is too large"),
        (bad(20, device_time="yesterday"), "Device time"),
    ]
    return cases


async def test_push_denies_invalid_records_one_by_one(client: Any, city: City,
                                                      node: NodeClient) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    good = [visit(grid, worker, f"ok{i:03d}", notes=f"第 {i} 户") for i in range(180)]
    cases = invalid_visits(grid, worker)
    assert len(cases) == 20
    remote = str(client.make_url(f"/couch/grid-{grid}"))
    local = node.local("push")
    result = await node.run({"op": "push", "remote": remote, "local": local,
                             "auth": auth_for(worker),
                             "docs": good + [doc for doc, _ in cases]})
    assert result["ok"], result
    assert result["status"] == "complete"
    assert result["docs_written"] == 180
    denied = {d["id"]: d for d in result["denied"]}
    assert len(denied) == 20, sorted(denied)
    for doc, word in cases:
        entry = denied[doc["_id"]]
        assert entry["error"] == "forbidden"
        assert word in entry["reason"], (doc["_id"], entry["reason"])
        assert " / " in entry["reason"]  # zh-CN, then English
    ids = await city.run(lambda: {row.id for row in city.db(grid).view("_all_docs")
                                  if not row.id.startswith("_design/")})
    assert ids == {d["_id"] for d in good}

    again = await node.run({"op": "push", "remote": remote, "local": local,
                            "auth": auth_for(worker)})
    assert again["ok"] and again["docs_read"] == 0 and again["docs_written"] == 0


async def test_live_replication_delivers_another_clients_change(
        client: Any, city: City, node: NodeClient) -> None:
    grid, worker = await seeded_grid(city, client, 20)
    other = await city.user(grids=[grid])
    await wait_for_user(client, other)
    remote = str(client.make_url(f"/couch/grid-{grid}"))
    target = f"household_visit:{grid}-live"
    watcher = await node.start({"op": "live_wait", "remote": remote, "local": node.local("live"),
                                "auth": auth_for(worker), "wait_for_id": target,
                                "timeout_ms": 5000})
    assert watcher.stdout is not None
    ready = json.loads(await asyncio.wait_for(watcher.stdout.readline(), 60))
    assert ready == {"ready": True}
    resp = await client.put(f"/couch/grid-{grid}/{target}",
                            json=visit(grid, other, "live"), headers=basic(other))
    assert resp.status == 201, await resp.text()
    line = await asyncio.wait_for(watcher.stdout.readline(), 30)
    await watcher.wait()
    result = json.loads(line)
    assert result["found"] is True, result
    assert result["latency_ms"] < 5000


@pytest.mark.slow  # a real PouchDB client cut off
async def test_interrupted_pull_resumes_from_checkpoint(client: Any, city: City,
                                                        node: NodeClient) -> None:
    grid, worker = await seeded_grid(city, client, 1000)
    command = {"op": "pull", "remote": str(client.make_url(f"/couch/grid-{grid}")),
               "local": node.local("resume"), "auth": auth_for(worker), "batch_size": 100}
    first = await node.run({**command, "stop_after_docs": 400})
    assert first["ok"] and first["status"] == "cancelled", first
    assert 400 <= first["docs_written"] < 1001
    second = await node.run(command)
    assert second["ok"] and second["status"] == "complete", second
    assert second["local_doc_count"] == 1001  # with the design document
    # Nothing already written is fetched again: the checkpoint held, and PouchDB read only
    # what was missing.
    assert second["docs_read"] == 1001 - first["docs_written"]


async def test_checkpoints_are_kept_apart_per_user(client: Any, city: City) -> None:
    grid = await city.grid()
    alice, bob = await city.user(grids=[grid]), await city.user(grids=[grid])
    await wait_for_user(client, alice)
    await wait_for_user(client, bob)
    path = f"/couch/grid-{grid}/_local/replication-id-1"
    resp = await client.put(path, json={"last_seq": "42", "session_id": "a"}, headers=basic(alice))
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["id"] == "_local/replication-id-1"
    # Bob, with the same checkpoint id, sees nothing and cannot overwrite Alice's.
    resp = await client.get(path, headers=basic(bob))
    assert resp.status == 404
    resp = await client.put(path, json={"last_seq": "7"}, headers=basic(bob))
    assert resp.status == 201
    resp = await client.get(path, headers=basic(alice))
    body = await resp.json()
    assert body["last_seq"] == "42" and body["_id"] == "_local/replication-id-1"


async def test_first_download_reads_are_gzipped_when_asked(client: Any, city: City) -> None:
    """The reads a first download is made of (a page of changes, a batch of documents, all
    documents) come gzipped to a client that accepts it, the same JSON as uncompressed, and a
    fraction of its bytes; as they were to one that does not; a live feed never (its heartbeats
    would wait in the compressor)."""
    grid, worker = await seeded_grid(city, client, 300)
    db = f"/couch/grid-{grid}"
    changes = await (await client.get(f"{db}/_changes", headers=basic(worker))).json()
    wanted = {"docs": [{"id": c["id"], "rev": c["changes"][0]["rev"]}
                       for c in changes["results"]]}
    reads = [("GET", f"{db}/_changes?style=all_docs&limit=1000", None),
             ("POST", f"{db}/_changes?style=all_docs", {}),
             ("POST", f"{db}/_bulk_get?revs=true&latest=true", wanted),
             ("GET", f"{db}/_all_docs?include_docs=true", None),
             ("POST", f"{db}/_all_docs?include_docs=true", {"keys": [d["id"] for d in
                                                                     wanted["docs"]]})]
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        for method, path, body in reads:
            answers = {}
            for encoding in ("gzip, deflate", "identity"):
                async with raw.request(method, str(client.make_url(path)), json=body,
                                       headers={**basic(worker),
                                                "Accept-Encoding": encoding}) as response:
                    assert response.status == 200, (path, await response.text())
                    answers[encoding] = (response.headers.get("Content-Encoding"),
                                         await response.read())
            (zipped_as, zipped), (plain_as, plain) = answers["gzip, deflate"], answers["identity"]
            assert (zipped_as, plain_as) == ("gzip", None), (path, zipped_as, plain_as)
            assert json.loads(gzip.decompress(zipped)) == json.loads(plain), path
            assert len(zipped) * 3 < len(plain), (path, len(zipped), len(plain))
        async with raw.get(str(client.make_url(f"{db}/_changes?feed=longpoll&since=now"
                                               "&timeout=1000")),
                           headers={**basic(worker), "Accept-Encoding": "gzip"}) as response:
            assert response.status == 200
            assert "Content-Encoding" not in response.headers
            assert json.loads(await response.read())["results"] == []


async def test_me_gives_a_worker_each_grid_s_count_as_couch_does(client: Any,
                                                                 city: City) -> None:
    """Issue 21, item 3: a fresh phone's sync bar says "0 / N" from /api/me, the login's own
    answer, a round trip before it could ask the grid: the count is /couch/'s, and only a
    worker's grids are counted (a supervisor's hundreds would cost the store a read each)."""
    community = f"33{next(_counted):010d}"
    grid = await city.grid(community=community)
    worker = await city.user(grids=[grid])
    supervisor = await city.user("supervisor", communities=[community])
    for n in range(3):
        await city.save(grid, visit(grid, worker, n))
    for name in (worker, supervisor):
        await wait_for_user(client, name)
    me = await (await client.get("/api/me", headers=basic(worker))).json()
    info = await (await client.get(f"/couch/grid-{grid}", headers=basic(worker))).json()
    (mine,) = me["grids"]
    assert mine["doc_count"] == info["doc_count"] >= 3
    me = await (await client.get("/api/me", headers=basic(supervisor))).json()
    assert [g["code"] for g in me["grids"]] == [grid]
    assert "doc_count" not in me["grids"][0]
