"""Any CouchDB client can use /couch/ as if it were CouchDB: python-couchdb and PouchDB with
attachments; and every accepted write leaves a server-owned receipt."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import couchdb
from conftest import PASSWORD, City, NodeClient, auth_for, basic, eventually, visit, wait_for_user

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8


async def test_python_couchdb_through_the_gateway(client: Any, city: City) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    url = str(client.make_url("/couch/")).replace("http://", f"http://{worker}:{PASSWORD}@")

    def use_it() -> tuple[list[str], dict[str, Any], list[str], str]:
        server = couchdb.Server(url)
        names = list(server)
        db = server[f"grid-{grid}"]
        doc_id, _rev = db.save(visit(grid, worker, "py"))
        stored = dict(db[doc_id])
        changes = [c["id"] for c in db.changes(since=0)["results"]
                   if not c["id"].startswith("_design/")]
        try:
            db.save(visit(grid, worker, "bad", outcome="lost"))
            refused = ""
        except couchdb.Forbidden as exc:
            refused = str(exc)
        return names, stored, changes, refused

    names, stored, changes, refused = await asyncio.to_thread(use_it)
    assert names == [f"grid-{grid}"]
    assert stored["outcome"] == "completed" and stored["_rev"].startswith("1-")
    assert changes == [stored["_id"]]
    assert "Outcome" in refused and "/outcome" not in refused


async def test_attachments_round_trip(client: Any, city: City, node: NodeClient) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    base = f"/couch/grid-{grid}"
    # Inline, as PouchDB pushes them.
    doc = visit(grid, worker, "photo", _attachments={
        "door.jpg": {"content_type": "image/jpeg", "data": base64.b64encode(JPEG).decode()}})
    pushed = await node.run({"op": "push", "remote": str(client.make_url(base)),
                             "local": node.local("a"), "auth": auth_for(worker), "docs": [doc]})
    assert pushed["ok"] and pushed["docs_written"] == 1, pushed
    resp = await client.get(f"{base}/{doc['_id']}/door.jpg", headers=basic(worker))
    assert resp.status == 200 and await resp.read() == JPEG
    # Only inside its document for a worker, where the whole revision is validated; an admin
    # may use the standalone form, with the same type rules.
    info = await (await client.get(f"{base}/{doc['_id']}", headers=basic(worker))).json()
    resp = await client.put(f"{base}/{doc['_id']}/second.jpg?rev={info['_rev']}", data=JPEG,
                            headers={**basic(worker), "Content-Type": "image/jpeg"})
    assert resp.status == 403
    admin = await city.user("admin")
    await wait_for_user(client, admin)
    resp = await client.put(f"{base}/{doc['_id']}/second.jpg?rev={info['_rev']}", data=JPEG,
                            headers={**basic(admin), "Content-Type": "image/jpeg"})
    assert resp.status == 201, await resp.text()
    resp = await client.put(f"{base}/{doc['_id']}/page.html?rev={(await resp.json())['rev']}",
                            data=b"<p>", headers={**basic(admin), "Content-Type": "text/html"})
    assert resp.status == 415
    resp = await client.get(f"{base}/{doc['_id']}/door.jpg", headers=basic(worker))
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    # A fresh PouchDB pulls the document with both attachments.
    pulled = await node.run({"op": "pull", "remote": str(client.make_url(base)),
                             "local": node.local("b"), "auth": auth_for(worker)})
    assert pulled["ok"] and pulled["docs_written"] == 2, pulled  # and the design document
    full = await (await client.get(f"{base}/{doc['_id']}?attachments=true",
                                   headers=basic(worker))).json()
    assert set(full["_attachments"]) == {"door.jpg", "second.jpg"}


async def test_every_accepted_write_is_receipted(client: Any, city: City,
                                                 node: NodeClient) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    docs = [visit(grid, worker, i) for i in range(30)] + [visit(grid, worker, "x", outcome="?")]
    result = await node.run({"op": "push", "remote": str(client.make_url(f"/couch/grid-{grid}")),
                             "local": node.local("r"), "auth": auth_for(worker), "docs": docs})
    assert result["docs_written"] == 30
    stored = await city.run(lambda: {row.id: row.value["rev"] for row in city.db(grid).view(
        "_all_docs") if not row.id.startswith("_design/")})

    def receipts_of_the_grid() -> list[dict[str, Any]]:
        return [row.doc for row in city.couch["linli-receipts"].view("_all_docs",
                                                                     include_docs=True)
                if row.doc.get("db") == f"grid-{grid}"]

    async def all_receipted() -> list[dict[str, Any]] | None:
        receipts = await city.run(receipts_of_the_grid)
        return receipts if {rev[0]: rev[1] for r in receipts for rev in r["revs"]} == stored \
            else None

    # receipts are written by a background task within a quarter second
    receipts = await eventually(all_receipted, 5, what="every record receipted")
    assert all(r["user"] == worker and r["received_at"].endswith("+00:00") for r in receipts)


async def test_head_answers_without_a_body(client: Any, city: City) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    for _ in range(3):  # on one keep-alive connection: a stray body would break the next answer
        resp = await client.head(f"/couch/grid-{grid}", headers=basic(worker))
        assert resp.status == 200 and await resp.read() == b""
        resp = await client.get(f"/couch/grid-{grid}", headers=basic(worker))
        assert (await resp.json())["db_name"] == f"grid-{grid}"
