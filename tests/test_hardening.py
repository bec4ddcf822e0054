"""Every bad request gets the right status, a CouchDB-shaped error with a reason a person can act
on, and writes nothing; the embedded store stays up throughout."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import PASSWORD, TEST_LIMITS, City, basic, eventually, visit, wait_for_user


@pytest.fixture
async def grid_worker(client: Any, city: City) -> tuple[str, str]:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    return grid, worker


async def expect_error(resp: Any, status: int, *words: str) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, (resp.status, text)
    body = json.loads(text)
    assert set(body) == {"error", "reason"}, body
    for word in words:
        assert word in body["reason"], (word, body["reason"])
    return body


async def test_bad_bodies_are_refused_and_nothing_is_written(
        client: Any, city: City, grid_worker: tuple[str, str]) -> None:
    grid, worker = grid_worker
    auth = basic(worker)
    bulk = f"/couch/grid-{grid}/_bulk_docs"
    json_type = {**auth, "Content-Type": "application/json"}

    await expect_error(await client.post(bulk, data=b'{"docs": [', headers=json_type),
                       400, "JSON")
    deep = b"[" * 10_000 + b"]" * 10_000
    await expect_error(await client.post(bulk, data=b'{"docs": ' + deep + b"}",
                                         headers=json_type), 400, "JSON")
    await expect_error(await client.post(bulk, data=b'{"docs": [NaN]}', headers=json_type),
                       400, "JSON")
    await expect_error(await client.post(bulk, data=b'{"docs": []}',
                                         headers={**auth, "Content-Type": "text/plain"}),
                       415, "application/json")
    await expect_error(await client.post(bulk, json={"docs": {"a": 1}}, headers=auth), 400, "docs")
    await expect_error(await client.post(bulk, json=[1, 2], headers=auth), 400, "object")
    await expect_error(await client.post(bulk, json={"docs": [], "new_edits": "no"},
                                         headers=auth), 400, "new_edits")
    resp = await client.post(bulk, json={"docs": [visit(grid, worker, "norev")],
                                         "new_edits": False}, headers=auth)
    [result] = await resp.json()
    assert resp.status == 201 and result["error"] == "forbidden" and "_rev" in result["reason"]
    too_many = [visit(grid, worker, i) for i in range(TEST_LIMITS["max_batch_docs"] + 1)]
    await expect_error(await client.post(bulk, json={"docs": too_many}, headers=auth),
                       413, str(TEST_LIMITS["max_batch_docs"]))
    huge = b'{"docs": [{"notes": "' + b"x" * TEST_LIMITS["max_request_bytes"] + b'"}]}'
    await expect_error(await client.post(bulk, data=huge, headers=json_type), 413)
    big_doc = visit(grid, worker, "big", _attachments={
        "p.jpg": {"content_type": "image/jpeg", "data": "QUFB" * 60_000}})
    await expect_error(await client.put(f"/couch/grid-{grid}/{big_doc['_id']}", json=big_doc,
                                        headers=auth), 413, "too large")
    await expect_error(await client.get(f"/couch/grid-{grid}/_all_docs?limit=ten",
                                        headers=auth), 400, "limit")
    assert await city.records(grid) == 0


@pytest.mark.parametrize(("doc_id", "status", "word"), [
    ("household_visit:张三", 400, "<type>:<key>"),
    ("household_visit:a%2Fb", 400, "<type>:<key>"),
    ("_secret", 400, "underscore"),
    ("_design%2Fevil", 403, "design"),
    ("household_visit:" + "x" * 300, 400, "too long"),
    ("household:" + "fmj01-0001", 400, "household_visit:"),
])
async def test_odd_document_ids(client: Any, city: City, grid_worker: tuple[str, str],
                                doc_id: str, status: int, word: str) -> None:
    grid, worker = grid_worker
    doc = visit(grid, worker, "x")
    doc.pop("_id")
    resp = await client.put(f"/couch/grid-{grid}/{doc_id}", json=doc, headers=basic(worker))
    await expect_error(resp, status, word)
    assert await city.records(grid) == 0


async def test_slash_in_path_is_not_a_different_document(
        client: Any, city: City, grid_worker: tuple[str, str]) -> None:
    grid, worker = grid_worker
    doc = visit(grid, worker, "a")
    resp = await client.put(f"/couch/grid-{grid}/household_visit:{grid}-a/extra", json=doc,
                            headers={**basic(worker), "Content-Type": "application/json"})
    await expect_error(resp, 403, "attachments")  # a standalone attachment write
    resp = await client.put(f"/couch/grid-{grid}/not-a-record/p.png", data=b"\x89PNG",
                            headers={**basic(worker), "Content-Type": "image/png"})
    await expect_error(resp, 403, "attachments")
    assert await city.records(grid) == 0


@pytest.mark.parametrize("path", [
    "{db}/%2E%2E/{other}", "{db}/%2E/x", "{db}//x",
    "{db}/%2E%2E/linli-directory", "{db}/%2e%2e/_all_dbs", "{db}/x/%2E%2E/%2E%2E/{other}",
])
async def test_dot_segments_never_climb_out(client: Any, city: City,
                                            grid_worker: tuple[str, str], path: str) -> None:
    grid, worker = grid_worker
    other = await city.grid()
    admin = await city.user("admin")
    await wait_for_user(client, admin)
    url = "/couch/" + path.format(db=f"grid-{grid}", other=f"grid-{other}")
    import yarl
    for who in (worker, admin):
        for method in ("GET", "DELETE", "PUT"):
            resp = await client.request(method, yarl.URL(url, encoded=True), headers=basic(who),
                                        json={"type": "x"} if method == "PUT" else None)
            assert resp.status == 400, (who, method, url, resp.status)
    assert await city.run(lambda: f"grid-{other}" in city.couch and "linli-directory" in city.couch)
    assert await city.records(grid) == 0


async def test_literal_dot_segments_sent_as_is(client: Any, city: City,
                                               grid_worker: tuple[str, str]) -> None:
    """As `curl --path-as-is` sends them, unfolded by any client library."""
    import asyncio

    grid, worker = grid_worker
    auth = basic(worker)["Authorization"]
    for path in (f"/couch/grid-{grid}/../linli-directory", f"/couch/grid-{grid}/./x"):
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(f"DELETE {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                     "Connection: close\r\n\r\n".encode())
        status_line = (await reader.readline()).decode()
        writer.close()
        assert status_line.split()[1] in ("400", "404"), (path, status_line)
    assert await city.run(city.couch.__contains__, "linli-directory")


async def test_replicated_revisions_cannot_take_over_records(
        client: Any, city: City, grid_worker: tuple[str, str]) -> None:
    grid, worker = grid_worker
    other = await city.user(grids=[grid])
    await wait_for_user(client, other)
    theirs = visit(grid, other, "theirs")
    resp = await client.put(f"/couch/grid-{grid}/{theirs['_id']}", json=theirs,
                            headers=basic(other))
    assert resp.status == 201
    bulk = f"/couch/grid-{grid}/_bulk_docs"
    takeover = {**theirs, "created_by": worker, "outcome": "refused", "_rev": "1-" + "f" * 32}
    forged_history = {**takeover, "_revisions": {"start": 9, "ids": ["f" * 32]}}
    for doc in (takeover, forged_history):
        resp = await client.post(bulk, json={"docs": [doc], "new_edits": False},
                                 headers=basic(worker))
        [result] = await resp.json()
        assert result["error"] == "forbidden", result
    stored = await city.get(grid, theirs["_id"], conflicts=True)
    assert stored["outcome"] == "completed" and "_conflicts" not in stored


async def test_stub_attachments_cannot_change_type(client: Any, city: City,
                                                   grid_worker: tuple[str, str]) -> None:
    grid, worker = grid_worker
    import base64
    doc = visit(grid, worker, "stub", _attachments={"p.png": {
        "content_type": "image/png", "data": base64.b64encode(b"<script>x</script>").decode()}})
    resp = await client.put(f"/couch/grid-{grid}/{doc['_id']}", json=doc, headers=basic(worker))
    assert resp.status == 201
    stored = await (await client.get(f"/couch/grid-{grid}/{doc['_id']}",
                                     headers=basic(worker))).json()
    stored["_attachments"]["p.png"]["content_type"] = "text/html"
    resp = await client.put(f"/couch/grid-{grid}/{doc['_id']}", json=stored,
                            headers=basic(worker))
    await expect_error(resp, 415, "text/html")


async def test_checkpoints_are_not_reachable_in_bulk(client: Any, city: City,
                                                     grid_worker: tuple[str, str]) -> None:
    grid, worker = grid_worker
    other = await city.user(grids=[grid])
    await wait_for_user(client, other)
    resp = await client.put(f"/couch/grid-{grid}/_local/ck", json={"last_seq": 5},
                            headers=basic(other))
    assert resp.status == 201
    stored_id = f"_local/{other}~ck"
    db = f"/couch/grid-{grid}"
    for method, path, body in [
        ("POST", f"{db}/_bulk_get", {"docs": [{"id": stored_id}]}),
        ("POST", f"{db}/_revs_diff", {stored_id: ["0-1"]}),
        ("POST", f"{db}/_all_docs", {"keys": [stored_id]}),
        ("GET", f'{db}/_all_docs?keys=["{stored_id}"]', None),
        ("POST", f"{db}/_changes?filter=_doc_ids", {"doc_ids": [stored_id]}),
    ]:
        resp = await client.request(method, path, json=body, headers=basic(worker))
        await expect_error(resp, 403, "_local")


async def test_broken_characters_are_refused_per_document(
        client: Any, city: City, grid_worker: tuple[str, str]) -> None:
    grid, worker = grid_worker
    good = visit(grid, worker, "g")
    raw = json.dumps({"docs": [good, visit(grid, worker, "b", notes="PLACEHOLDER")]})
    raw = raw.replace("PLACEHOLDER", "half an emoji \\ud83d")
    resp = await client.post(f"/couch/grid-{grid}/_bulk_docs", data=raw.encode(),
                             headers={**basic(worker), "Content-Type": "application/json"})
    assert resp.status == 201
    results = await resp.json()
    assert "error" not in results[0] and results[1]["error"] == "forbidden"
    assert await city.records(grid) == 1


async def test_live_feeds_are_bounded(aiohttp_client: Any, config: Any, city: City) -> None:
    import asyncio
    import dataclasses

    from server.web.app import create_app
    from server.web.keys import LIVE_FEEDS
    client = await aiohttp_client(create_app(dataclasses.replace(config, max_feeds_per_user=2)))
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    url = f"/couch/grid-{grid}/_changes?feed=longpoll&since=now&timeout=3000"
    held = [asyncio.ensure_future(client.get(url, headers=basic(worker))) for _ in range(2)]
    feeds = client.app[LIVE_FEEDS]
    await eventually(lambda: feeds.waiting() == 2)  # both wait in the server
    resp = await client.get(url, headers=basic(worker))
    await expect_error(resp, 429)
    assert resp.headers["Retry-After"]
    for task in held:
        assert (await task).status == 200
    resp = await client.get(f"/couch/grid-{grid}/_changes?feed=continuous", headers=basic(worker))
    await expect_error(resp, 400, "longpoll")


async def test_forged_owner_fields(client: Any, city: City,
                                   grid_worker: tuple[str, str]) -> None:
    grid, worker = grid_worker
    other = await city.user(grids=[grid])
    await wait_for_user(client, other)
    base = f"/couch/grid-{grid}"
    forged_author = visit(grid, "someone.else", "f1")
    await expect_error(await client.put(f"{base}/{forged_author['_id']}", json=forged_author,
                                        headers=basic(worker)), 403, "created_by")
    forged_grid = visit("othergrid", worker, "f2")
    await expect_error(await client.put(f"{base}/{forged_grid['_id']}", json=forged_grid,
                                        headers=basic(worker)), 403, "grid")
    forged_receipt = visit(grid, worker, "f3", received_at="2020-01-01T00:00:00Z")
    await expect_error(await client.put(f"{base}/{forged_receipt['_id']}", json=forged_receipt,
                                        headers=basic(worker)), 403, "received_at")
    # A record someone else created keeps its author when edited.
    own = visit(grid, other, "f4")
    resp = await client.put(f"{base}/{own['_id']}", json=own, headers=basic(other))
    assert resp.status == 201
    edit = {**own, "_rev": (await resp.json())["rev"], "created_by": worker}
    await expect_error(await client.put(f"{base}/{own['_id']}", json=edit,
                                        headers=basic(worker)), 403, "created_by")
    # The same through replication (new_edits=false): an edit (generation 2) is checked
    # against the stored author, whoever pushes it.
    rev2 = {**own, "_rev": "2-" + "b" * 32, "notes": "改过",
            "_revisions": {"start": 2, "ids": ["b" * 32, edit["_rev"].split("-")[1]]}}
    resp = await client.post(f"{base}/_bulk_docs", headers=basic(worker), json={
        "docs": [{**rev2, "created_by": worker}], "new_edits": False})
    [result] = await resp.json()
    assert result["error"] == "forbidden" and "created_by" in result["reason"]
    resp = await client.post(f"{base}/_bulk_docs", headers=basic(worker), json={
        "docs": [rev2], "new_edits": False})
    assert all("error" not in r for r in await resp.json())
    assert (await city.get(grid, own["_id"]))["notes"] == "改过"
    edit["_rev"] = rev2["_rev"]
    # ...and a worker may not delete it.
    resp = await client.delete(f"{base}/{own['_id']}?rev={edit['_rev']}", headers=basic(worker))
    await expect_error(resp, 403, other)
    assert await city.records(grid) == 1


async def test_design_documents_are_for_admins(client: Any, city: City,
                                               grid_worker: tuple[str, str]) -> None:
    grid, worker = grid_worker
    admin = await city.user("admin")
    await wait_for_user(client, admin)
    ddoc = {"views": {"all": {"map": "function (doc) { emit(doc._id); }"}}}
    resp = await client.put(f"/couch/grid-{grid}/_design/x", json=ddoc, headers=basic(worker))
    await expect_error(resp, 403, "design")
    resp = await client.post(f"/couch/grid-{grid}/_bulk_docs",
                             json={"docs": [{"_id": "_design/y", **ddoc}]}, headers=basic(worker))
    assert resp.status == 201
    [result] = await resp.json()
    assert result["error"] == "forbidden" and "design" in result["reason"]
    assert await city.get(grid, "_design/x") is None and await city.get(grid, "_design/y") is None
    resp = await client.put(f"/couch/grid-{grid}/_design/x", json=ddoc, headers=basic(admin))
    assert resp.status == 201, await resp.text()
    resp = await client.get(f"/couch/grid-{grid}/_design/x/_view/all", headers=basic(worker))
    assert resp.status == 200 and (await resp.json())["total_rows"] == 0


@pytest.mark.parametrize(("query", "get_status", "post_status"), [
    ("filter=_selector", 400, 200),  # a selector comes in a POST body only (issue 13, item 12)
    ("filter=ddoc/missing", 404, 404), ("filter=_view&view=x/y", 404, 404),
    ("feed=eventsource", 400, 400), ("filter=_design", 400, 400), ("limit=-1", 400, 400),
    ("limit=²", 400, 400), ("filter=_doc_ids&filter=x/y", 400, 400), ("since=abc", 400, 400),
    ("since=1e999", 400, 400),
])
async def test_changes_filters_never_reach_the_store(client: Any, city: City,
                                                     grid_worker: tuple[str, str], query: str,
                                                     get_status: int, post_status: int) -> None:
    grid, worker = grid_worker
    for method, status in (("GET", get_status), ("POST", post_status)):
        resp = await client.request(method, f"/couch/grid-{grid}/_changes?{query}",
                                    json={"selector": {"type": "x"}}, headers=basic(worker))
        if status == 400:
            await expect_error(resp, 400)
        else:
            assert resp.status == status, await resp.text()
    resp = await client.get("/couch/_up")
    assert resp.status == 200  # the store is still alive


async def test_cross_site_cookie_requests_are_refused(client: Any, city: City,
                                                      grid_worker: tuple[str, str]) -> None:
    grid, worker = grid_worker
    resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD})
    assert resp.status == 200
    doc = visit(grid, worker, "csrf")
    resp = await client.put(f"/couch/grid-{grid}/{doc['_id']}", json=doc,
                            headers={"Origin": "https://evil.example"})
    await expect_error(resp, 403, "Cross-site")
    resp = await client.post("/couch/_session", data={"name": worker, "password": "x"},
                             headers={"Origin": "https://evil.example"})
    await expect_error(resp, 403)
    assert await city.records(grid) == 0


async def test_raw_databases_behave_like_couchdb_for_admins_only(
        client: Any, city: City, grid_worker: tuple[str, str]) -> None:
    _grid, worker = grid_worker
    admin = await city.user("admin")
    await wait_for_user(client, admin)
    name = f"scratch{admin[-6:]}"
    resp = await client.put(f"/couch/{name}", headers=basic(admin))
    assert resp.status == 201, await resp.text()
    resp = await client.put(f"/couch/{name}/anything", json={"free": "form", "n": 1},
                            headers=basic(admin))
    assert resp.status == 201
    resp = await client.get(f"/couch/{name}/anything", headers=basic(admin))
    assert json.loads(await resp.text())["free"] == "form"
    resp = await client.get(f"/couch/{name}/anything", headers=basic(worker))
    assert resp.status == 404
    resp = await client.put(f"/couch/{name}2", headers=basic(worker))
    await expect_error(resp, 401, "admin")
    for bad, word in ((f"/couch/{name}/_changes?filter=_selector", "embedded store"),
                      (f"/couch/{name}/%5Fchanges?filter=nope/nope", "embedded store"),
                      # refused before any filter is looked at: no parameter may come twice
                      (f"/couch/{name}/_changes?filter=_doc_ids&filter=nope/nope", "filter")):
        import yarl
        resp = await client.get(yarl.URL(bad, encoded=True), headers=basic(admin))
        await expect_error(resp, 400, word)
    assert (await client.get("/couch/_up")).status == 200
    listed = await (await client.get("/couch/_all_dbs", headers=basic(admin))).json()
    assert name in listed and "linli-directory" not in listed
    resp = await client.get("/couch/linli-directory/_all_docs", headers=basic(admin))
    assert resp.status == 404


async def test_types_keep_to_their_database_and_writers(client: Any, city: City) -> None:
    grid = await city.grid(community="c_rev")
    worker = await city.user(grids=[grid])
    supervisor = await city.user("supervisor", communities=["c_rev"])
    await wait_for_user(client, worker)
    await wait_for_user(client, supervisor)
    record = visit(grid, worker, "reviewed")
    resp = await client.put(f"/couch/grid-{grid}/{record['_id']}", json=record,
                            headers=basic(worker))
    rev = (await resp.json())["rev"]

    def verdict(author: str) -> dict[str, Any]:
        return {"_id": f"verdict:{record['_id']}:{author}", "type": "verdict",
                "schema_version": 1, "grid": grid, "created_by": author,
                "record": record["_id"], "record_rev": rev, "decision": "has_issues",
                "comment": "身份证号有误"}

    resp = await client.put(f"/couch/grid-{grid}/verdict:{record['_id']}:{worker}",
                            json=verdict(worker), headers=basic(worker))
    await expect_error(resp, 403, "Only supervisor, admin")
    resp = await client.put(f"/couch/grid-{grid}/verdict:{record['_id']}:{supervisor}",
                            json=verdict(supervisor), headers=basic(supervisor))
    assert resp.status == 201, await resp.text()
    no_comment = {**verdict(supervisor), "_id": "verdict:x:2"}
    del no_comment["comment"]
    resp = await client.put(f"/couch/grid-{grid}/verdict:x:2", json=no_comment,
                            headers=basic(supervisor))
    await expect_error(resp, 403, "Comment")
    district = {"type": "district", "schema_version": 1, "code": "330802", "name": "柯城区",
                "grid": grid, "created_by": worker}
    resp = await client.put(f"/couch/grid-{grid}/district:330802", json=district,
                            headers=basic(worker))
    await expect_error(resp, 403)


async def test_household_rooms_must_exist_in_known_buildings(
        client: Any, city: City, grid_worker: tuple[str, str]) -> None:
    grid, worker = grid_worker
    await city.save(grid, {"_id": "building:yuan-3", "type": "building", "schema_version": 1,
                           "grid": grid, "created_by": "admin", "compound": "yuan", "number": "3",
                           "units": [{"label": "1", "floors": 6, "rooms_per_floor": 2}]})

    def household(n: int, building: str, room: str) -> dict[str, Any]:
        return {"_id": f"household:{grid}-{n}", "type": "household", "schema_version": 1,
                "grid": grid, "created_by": worker, "registry": {"source": "grid_survey"},
                "address": {"compound": "yuan", "building": building, "unit": "1",
                            "room": room}, "status": "active"}

    docs = [household(1, "3", "602"), household(2, "3", "901"), household(3, "3", "603"),
            household(4, "7", "901")]  # building 7 is not recorded yet: no error
    resp = await client.post(f"/couch/grid-{grid}/_bulk_docs", json={"docs": docs},
                             headers=basic(worker))
    results = await resp.json()
    assert ["error" in r for r in results] == [False, True, True, False], results
    assert "no room 901" in results[1]["reason"] and "no room 603" in results[2]["reason"]
    assert "/address" not in results[1]["reason"] + results[2]["reason"]
