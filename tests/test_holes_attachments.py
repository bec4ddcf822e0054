"""Issue 13, items 1 and 2 (the gateway's half): attachments can't crash the store, and their
names can't poison phones.

The embedded store (PouchDB Server 4.2.0) dies outright on an attachment whose `data` is not a
string, on `follows: true` without a multipart body and on an attachment with neither data nor
stub; it refuses a whole batch (412, 400, 500) for an unknown stub, a name with a leading `_` or
data that is not base64. Each such document must be refused on its own, in every write path
(`_bulk_docs` with new_edits true and false, `PUT` and `POST` of a document), while the rest of
its batch is stored and the store keeps running.

Inside a batch a refusal is `forbidden`, not the `bad_request` issue 13 names: a PouchDB client
counts `forbidden` as denied and carries on, but aborts its whole replication on any other
per-document error (shared/PROTOCOL.md), so one bad photo would stop every later record of that
phone. A single `PUT`/`POST`, which no replication uses, answers `400 bad_request` (413, 415 for
sizes and types) as CouchDB would.

These tests run their own store, so a crash on a build without the fix fails here and leaves the
session's store to the other tests."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import couchdb
import pytest
from aiohttp.test_utils import TestClient
from conftest import (
    TEST_LIMITS,
    BlockingCity,
    City,
    NodeClient,
    auth_for,
    basic,
    visit,
    wait_for_user,
)

from server.admin import directory
from server.config import Config
from server.store.embedded import EmbeddedStore
from server.web.app import create_app

# Own limits: a per-document total below two single attachments, within one document's size.
LIMITS = {**TEST_LIMITS, "max_document_bytes": 1_000_000, "max_attachment_bytes": 100_000,
          "max_document_attachments_bytes": 150_000}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
PNG64 = base64.b64encode(PNG).decode()
BIG = b"\xff\xd8\xff" + b"\1" * 80_000  # under the single limit; two are over the total


def md5(content: bytes) -> str:
    return "md5-" + base64.b64encode(hashlib.md5(content).digest()).decode()


def photo(content: bytes = PNG, content_type: str = "image/png", **extra: Any) -> dict[str, Any]:
    return {"content_type": content_type, "data": base64.b64encode(content).decode(), **extra}


# -- a store of our own, and the app in front of it ----------------------------------------------

@pytest.fixture(scope="module")
def own_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path_factory.mktemp("attach-store"))
    store.start_sync()
    yield store
    store.stop_sync()


@pytest.fixture(scope="module")
def own_city(own_store: EmbeddedStore) -> City:
    return City(BlockingCity(directory.prepared(couchdb.Server(own_store.url))))


@pytest.fixture
async def own_client(aiohttp_client: Any, own_store: EmbeddedStore,
                     tmp_path: Path) -> AsyncIterator[TestClient]:
    config = Config.from_mapping({"data": tmp_path, "couchdb_url": own_store.url, **LIMITS})
    yield await aiohttp_client(create_app(config))


class Scene:
    """A grid and its worker, a second grid with its own worker (the bystander whose grid must
    keep answering), and an admin."""

    def __init__(self, client: TestClient, city: City, store: EmbeddedStore) -> None:
        self.client, self.city, self.store = client, city, store
        self.grid, self.other = city.blocking.grid(), city.blocking.grid()
        self.worker = city.blocking.user(grids=[self.grid])
        self.bystander = city.blocking.user(grids=[self.other])
        self.admin = city.blocking.user("admin")
        self.base = f"/couch/grid-{self.grid}"
        self.pid = store.process.pid if store.process else 0

    async def ready(self) -> Scene:
        for name in (self.worker, self.bystander, self.admin):
            await wait_for_user(self.client, name)
        return self

    async def bulk(self, docs: list[Any], new_edits: bool = True) -> list[dict[str, Any]]:
        resp = await self.client.post(f"{self.base}/_bulk_docs", headers=basic(self.worker),
                                      json={"docs": docs, "new_edits": new_edits})
        text = await resp.text()
        assert resp.status == 201, (resp.status, text)
        return list(json.loads(text))

    async def store_is_alive(self) -> None:
        """The store process is the same one, and another grid answers at once."""
        process = self.store.process
        assert process is not None and process.poll() is None, "the store died"
        assert process.pid == self.pid, "the store was restarted"
        started = time.monotonic()
        resp = await self.client.get(f"/couch/grid-{self.other}/", headers=basic(self.bystander))
        assert resp.status == 200, (resp.status, await resp.text())
        assert time.monotonic() - started < 2.0

    async def stored(self, doc_id: str) -> dict[str, Any] | None:
        return await self.city.get(self.grid, doc_id)  # type: ignore[no-any-return]


@pytest.fixture
async def scene(own_client: TestClient, own_city: City, own_store: EmbeddedStore) -> Scene:
    if own_store.process is None or own_store.process.poll() is not None:
        own_store.stop_sync()  # killed by an earlier test (a build without the fix): start anew
        own_store.start_sync()
    return await (await own_city.run(Scene, own_client, own_city, own_store)).ready()


def refused(result: dict[str, Any], doc_id: str, *words: str) -> None:
    """Refused on its own inside a batch: denied (PouchDB goes on), with a bilingual reason."""
    assert result.get("id") == doc_id and result.get("error") == "forbidden", result
    reason = str(result.get("reason"))
    assert " / " in reason and any("\u4e00" <= c <= "\u9fff" for c in reason), reason
    for word in words:
        assert word in reason, (word, reason)


def bad_attachments(stored_digest: str) -> dict[str, Any]:
    """Each class of attachment the store cannot take, or that lies about its bytes: label to
    the `_attachments` value of a household visit."""
    def one(**att: Any) -> dict[str, Any]:
        return {"p.png": att}

    return {
        "data_number": one(content_type="image/png", data=5),
        "data_array": one(content_type="image/png", data=[1, 2]),
        "data_object": one(content_type="image/png", data={"a": 1}),
        "data_null": one(content_type="image/png", data=None),
        "data_true": one(content_type="image/png", data=True),
        "data_not_base64": one(content_type="image/png", data="!!not base64!!"),
        "data_unpadded": one(content_type="image/png", data="YWI"),
        "data_with_newline": one(content_type="image/png", data="YWJj\nYWJj"),
        "follows": one(content_type="image/png", follows=True, length=3),
        "follows_false": one(content_type="image/png", follows=False, data=PNG64),
        "neither_data_nor_stub": one(content_type="image/png"),
        "empty_object": one(),
        "stub_unknown": one(content_type="image/png", stub=True, digest=md5(b"never stored")),
        "stub_without_digest": one(content_type="image/png", stub=True),
        "stub_of_another_record": one(content_type="image/png", stub=True,
                                      digest=stored_digest),
        "stub_not_true": one(content_type="image/png", stub=1, digest=stored_digest),
        "stub_with_data": one(content_type="image/png", stub=True, digest=md5(PNG),
                              data=PNG64),
        "content_type_number": one(content_type=5, data=PNG64),
        "content_type_null": one(content_type=None, data=PNG64),
        "content_type_absent": one(data=PNG64),
        "content_type_list": one(content_type=["image/png"], data=PNG64),
        "length_wrong": one(**photo(length=len(PNG) + 1)),
        "length_text": one(**photo(length=str(len(PNG)))),
        "length_negative": one(**photo(length=-1)),
        "digest_wrong": one(**photo(digest=md5(b"other bytes"))),
        "digest_number": one(**photo(digest=5)),
        "revpos_text": one(**photo(revpos="1")),
        "encoding_gzip": one(**photo(encoding="gzip")),
        "unknown_member": one(**photo(script="alert(1)")),
        "attachments_text": "x",
        "attachments_list": [photo()],
        "attachments_null": None,
        "value_text": {"p.png": "x"},
        "value_null": {"p.png": None},
        "value_list": {"p.png": [1]},
        "type_not_allowed": {"p.html": photo(b"<script>alert(1)</script>", "text/html")},
        "too_large": {"big.jpg": photo(b"\xff" * (LIMITS["max_attachment_bytes"] + 1),
                                       "image/jpeg")},
        "too_large_together": {"a.jpg": photo(BIG, "image/jpeg"),
                               "b.jpg": photo(BIG, "image/jpeg")},
    }


@pytest.mark.slow  # 39 bad stubs, the store checked after each
async def test_bad_attachments_are_refused_one_by_one_and_the_store_lives(scene: Scene) -> None:
    """Every class, each in its own `_bulk_docs` beside a good document with a photo (new_edits
    true, and false as in a phone's push), then alone in a `PUT` and a `POST`: each refused
    with its own reason, the good one stored, and after each the store is the same process and
    another grid answers at once."""
    source = visit(scene.grid, scene.worker, "source", _attachments={"door.png": photo()})
    [result] = await scene.bulk([source])
    assert result.get("ok"), result
    cases = bad_attachments(md5(PNG))
    for new_edits in (True, False):
        for label, attachments in cases.items():
            key = f"{label}-{int(new_edits)}"
            bad = visit(scene.grid, scene.worker, f"bad-{key}", _attachments=attachments)
            ok = visit(scene.grid, scene.worker, f"ok-{key}",
                       _attachments={"door photo (1).png": photo()})
            if not new_edits:
                ok["_rev"], bad["_rev"] = "1-" + "a" * 32, "1-" + "b" * 32
            results = {r["id"]: r for r in await scene.bulk([bad, ok], new_edits)}
            await scene.store_is_alive()
            refused(results[bad["_id"]], bad["_id"])
            assert "error" not in results.get(ok["_id"], {}), (label, results)
            assert await scene.stored(bad["_id"]) is None, label
            assert await scene.stored(ok["_id"]) is not None, label
    for label, attachments in cases.items():
        doc = visit(scene.grid, scene.worker, f"put-{label}", _attachments=attachments)
        resp = await scene.client.put(f"{scene.base}/{doc['_id']}", json=doc,
                                      headers=basic(scene.worker))
        body = await resp.json()
        assert resp.status in (400, 413, 415), (label, resp.status, body)
        assert set(body) == {"error", "reason"} and " / " in body["reason"], (label, body)
        resp = await scene.client.post(scene.base, json={**doc, "_id": doc["_id"] + "-post"},
                                       headers=basic(scene.worker))
        assert resp.status in (400, 413, 415), (label, resp.status, await resp.text())
        assert await scene.stored(doc["_id"]) is None
        assert await scene.stored(doc["_id"] + "-post") is None
        await scene.store_is_alive()


async def test_the_reasons_say_what_is_wrong(scene: Scene) -> None:
    cases = bad_attachments(md5(PNG))
    expected = {"data_number": "base64", "follows": "follows", "neither_data_nor_stub": "data",
                "stub_unknown": "stub", "content_type_number": "content_type",
                "length_wrong": "length", "digest_wrong": "digest",
                "attachments_text": "_attachments", "value_text": "object",
                "type_not_allowed": "text/html", "too_large": "too large",
                "too_large_together": "together"}
    docs = [visit(scene.grid, scene.worker, f"why-{label}", _attachments=cases[label])
            for label in expected]
    results = {r["id"]: r for r in await scene.bulk(docs)}
    for label, word in expected.items():
        refused(results[f"household_visit:{scene.grid}-why-{label}"], "household_visit:"
                f"{scene.grid}-why-{label}", word)


async def test_content_types_are_per_form(scene: Scene) -> None:
    """A form lists what its records may carry (`x-attachments`): photos on a visit, a PDF on
    a screening, nothing on a household or a person (personal data the API masks)."""
    grid, w = scene.grid, scene.worker
    household = {"_id": f"household:{grid}-a1", "type": "household", "schema_version": 1,
                 "grid": grid, "created_by": w, "registry": {"source": "grid_survey"},
                 "address": {"compound": "yuan", "building": "3", "unit": "1", "room": "301"},
                 "status": "active"}
    screening = {"_id": f"screening:{grid}-a1", "type": "screening", "schema_version": 1,
                 "grid": grid, "created_by": w, "person": f"person:{grid}-0001-1",
                 "household": f"household:{grid}-0001", "campaign": "2026-screening",
                 "screened_on": "2026-11-20", "temperature": 36.6, "health_code": "green"}
    pdf = photo(b"%PDF-1.4\n", "application/pdf")
    results = await scene.bulk([
        {**household, "_attachments": {"door.jpg": photo(content_type="image/jpeg")}},
        {**screening, "_attachments": {"report.pdf": pdf}},
        visit(grid, w, "pdf", _attachments={"report.pdf": pdf}),
        visit(grid, w, "webp", _attachments={"door.webp": photo(content_type="image/webp")}),
    ])
    by_id = {r["id"]: r for r in results}
    refused(by_id[household["_id"]], household["_id"], "不能带附件", "no attachments")
    assert by_id[screening["_id"]].get("ok"), by_id
    refused(by_id[f"household_visit:{grid}-pdf"], f"household_visit:{grid}-pdf",
            "application/pdf", "image/jpeg")
    assert by_id[f"household_visit:{grid}-webp"].get("ok"), by_id


async def test_stubs_keep_what_is_stored_and_nothing_else(scene: Scene) -> None:
    """An edit that keeps its photo by stub is stored; a stub naming another record's photo, a
    renamed or retyped stub, or one that pushes the document's total over the limit is not."""
    grid, w = scene.grid, scene.worker
    [first] = await scene.bulk([visit(grid, w, "kept", _attachments={
        "a.jpg": photo(BIG, "image/jpeg")})])
    stored = await scene.stored(first["id"])
    assert stored is not None
    stub = dict(stored["_attachments"]["a.jpg"])
    assert stub.get("stub") is True
    edits = [
        {**stored, "notes": "一", "_attachments": {"a.jpg": stub}},
    ]
    [ok] = await scene.bulk(edits)
    assert ok.get("ok"), ok
    stored = await scene.stored(first["id"])
    assert stored is not None and stored["notes"] == "一"
    stub = dict(stored["_attachments"]["a.jpg"])
    cases = {
        "renamed": {"b.jpg": stub},
        "retyped": {"a.jpg": {**stub, "content_type": "image/png"}},
        "wrong_length": {"a.jpg": {**stub, "length": 1}},
        "over_total": {"a.jpg": stub, "b.jpg": photo(BIG, "image/jpeg")},
    }
    for label, attachments in cases.items():
        [result] = await scene.bulk([{**stored, "notes": label, "_attachments": attachments}])
        refused(result, first["id"])
        await scene.store_is_alive()
    current = await scene.stored(first["id"])
    assert current is not None and current["_rev"] == stored["_rev"]


NAMES_REFUSED = ["../../x.png", "./x.png", "..", ".", "", "a/b.png", "/x.png", "a\\b.png",
                 "x\x00.png", "x\n.png", "x\x1f.png", "x\x7f.png", "x\x85.png", "x\x9f.png",
                 "_x.png", "_", "é" * 126 + ".png", "photo\u202egnp.exe", "x\u2066.png"]
NAMES_ACCEPTED = ["照片.png", "door photo (1).jpg", "a.b.c.png", "a" * 251 + ".png", "x_.png",
                  "..x.png", "x..png", "😀.png"]


async def test_poisoned_attachment_names_are_refused_on_every_write_path(scene: Scene) -> None:
    grid, w = scene.grid, scene.worker
    for new_edits in (True, False):
        docs = []
        for i, name in enumerate(NAMES_REFUSED + NAMES_ACCEPTED):
            doc = visit(grid, w, f"name{i}-{int(new_edits)}", _attachments={name: photo()})
            if not new_edits:
                doc["_rev"] = "1-" + "c" * 32
            docs.append(doc)
        results = {r["id"]: r for r in await scene.bulk(docs, new_edits)}
        for doc, name in zip(docs, NAMES_REFUSED + NAMES_ACCEPTED, strict=True):
            if name in NAMES_REFUSED:
                refused(results[doc["_id"]], doc["_id"], "附件名称")
                assert await scene.stored(doc["_id"]) is None, name
            else:
                assert "error" not in results.get(doc["_id"], {}), (name, results[doc["_id"]])
                stored = await scene.stored(doc["_id"])
                assert stored is not None and list(stored["_attachments"]) == [name]
    # A lone surrogate (half an emoji) as it travels from a broken client: JSON's escape.
    raw = json.dumps({"docs": [visit(grid, w, "surrogate",
                                     _attachments={"x\ud800.png": photo()})]})
    resp = await scene.client.post(f"{scene.base}/_bulk_docs", data=raw, headers={
        **basic(w), "Content-Type": "application/json"})
    [result] = await resp.json()
    assert result.get("error") == "forbidden", result
    for i, name in enumerate(NAMES_REFUSED):
        doc = visit(grid, w, f"putname{i}", _attachments={name: photo()})
        resp = await scene.client.put(f"{scene.base}/{doc['_id']}", json=doc, headers=basic(w))
        assert resp.status == 400, (name, resp.status, await resp.text())
        resp = await scene.client.post(scene.base, json={**doc, "_id": doc["_id"] + "p"},
                                       headers=basic(w))
        assert resp.status == 400, (name, resp.status, await resp.text())
    await scene.store_is_alive()


async def test_an_admins_standalone_attachment_is_held_to_the_same_rules(scene: Scene) -> None:
    grid, w, admin = scene.grid, scene.worker, scene.admin
    [result] = await scene.bulk([visit(grid, w, "standalone")])
    doc_id, rev = result["id"], result["rev"]

    async def put(name: str, rev: str, content_type: str = "image/png",
                  content: bytes = PNG) -> Any:
        path = f"{scene.base}/{quote(doc_id, safe=':')}/{quote(name, safe='')}?rev={rev}"
        return await scene.client.put(path, data=content, headers={
            **basic(admin), "Content-Type": content_type})

    for name in NAMES_REFUSED:
        if name in ("", ".", ".."):
            continue  # not even a path: the gateway refuses the URL itself
        resp = await put(name, rev)
        # 404: aiohttp's router does not route a path with a newline in it at all
        assert resp.status == (404 if "\n" in name else 400), (name, resp.status,
                                                                await resp.text())
    resp = await put("page.html", rev, "text/html", b"<script>alert(1)</script>")
    assert resp.status == 415, await resp.text()
    resp = await put("a.jpg", rev, "image/jpeg", BIG)
    assert resp.status == 201, await resp.text()
    rev = (await resp.json())["rev"]
    resp = await put("b.jpg", rev, "image/jpeg", BIG)  # over the document's total
    assert resp.status == 413, await resp.text()
    # Onto a record that does not exist: it would be a document without a form.
    resp = await scene.client.put(f"{scene.base}/household_visit:{grid}-none/x.png", data=PNG,
                                  headers={**basic(admin), "Content-Type": "image/png"})
    assert resp.status == 400, await resp.text()
    stored = await scene.stored(doc_id)
    assert stored is not None and list(stored["_attachments"]) == ["a.jpg"]
    await scene.store_is_alive()


@pytest.mark.slow  # a real PouchDB client
async def test_a_phones_pull_is_not_stopped_by_attachment_names(scene: Scene,
                                                                 node: NodeClient) -> None:
    """A worker's batch holds records with poisoned attachment names among good ones; then a
    real PouchDB client pulls the grid. Before the fix the names were stored and the pull
    stopped at the first such record; now they are refused and the pull brings every record."""
    grid, w = scene.grid, scene.worker
    good = [visit(grid, w, f"pull-ok{i}", _attachments={f"门牌 {i}.png": photo()})
            for i in range(6)]
    poisoned = [visit(grid, w, f"pull-bad{i}", _attachments={name: photo()})
                for i, name in enumerate(["../../x.png", "./x.png", "a/b.png", "a\\b.png",
                                          "x\x07.png", ".."])]
    docs = [d for pair in zip(good, poisoned, strict=True) for d in pair]
    results = {r["id"]: r for r in await scene.bulk(docs)}
    assert all("error" not in results[d["_id"]] for d in good), results
    result = await node.run({"op": "pull", "remote": str(scene.client.make_url(scene.base)),
                             "local": node.local("phone"), "auth": auth_for(w),
                             "batch_size": 4})
    assert result["ok"] and result["status"] == "complete", result
    counted = await node.run({"op": "count", "local": node.local("phone"), "with_ids": True})
    assert set(counted["ids"]) >= {d["_id"] for d in good}, counted
    assert not set(counted["ids"]) & {d["_id"] for d in poisoned}, counted
    await scene.store_is_alive()
