"""Issue 13, items 8 and 13: everything the gateway stores passes validation (tombstones,
replicated histories, broken characters, the fields that name a person), and `_local` documents
behave through `/couch/` as they do in the store itself.

Each test sends a class of inputs through the real app to the real embedded store and then
reads the store directly: what was refused left nothing behind, what was admitted is stored as
sent, and the store still answers."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import couchdb
import pytest
from conftest import City, basic, visit, wait_for_user

from server.store.embedded import EmbeddedStore

HASH = "a" * 32


class Scene:
    """A grid with two workers and a supervisor, another grid, and a record of each worker."""

    def __init__(self, client: Any, city: City) -> None:
        self.client, self.city = client, city
        community = f"tomb{id(self) % 1_000_000}"
        self.grid, self.other_grid = city.blocking.grid(community=community), city.blocking.grid()
        self.w = city.blocking.user(grids=[self.grid])
        self.w2 = city.blocking.user(grids=[self.grid])
        self.boss = city.blocking.user("supervisor", communities=[community])
        self.base = f"/couch/grid-{self.grid}"

    async def ready(self) -> Scene:
        for name in (self.w, self.w2, self.boss):
            await wait_for_user(self.client, name)
        return self

    async def bulk(self, who: str, docs: list[Any], new_edits: bool = True,
                   raw: bytes | None = None) -> list[dict[str, Any]]:
        headers = {**basic(who), "Content-Type": "application/json"}
        body = raw if raw is not None else json.dumps(
            {"docs": docs, "new_edits": new_edits}).encode()
        resp = await self.client.post(f"{self.base}/_bulk_docs", data=body, headers=headers)
        assert resp.status == 201, await resp.text()
        results: list[dict[str, Any]] = await resp.json()
        return results

    async def create(self, who: str, doc: dict[str, Any]) -> str:
        resp = await self.client.put(f"{self.base}/{doc['_id']}", json=doc, headers=basic(who))
        assert resp.status == 201, await resp.text()
        rev: str = (await resp.json())["rev"]
        return rev

    async def stored(self, doc_id: str, **params: Any) -> Any:
        """The document as the store holds it (None: no such document, deleted or not)."""
        def read() -> Any:
            db = self.city.db(self.grid)
            rows = list(db.view("_all_docs", keys=[doc_id]))
            value = rows[0].value if rows else None
            if not value or "error" in value or value.get("deleted"):
                return None
            return db.get(doc_id, rev=rows[0].value["rev"], **params)

        return await self.city.run(read)

    async def leaves(self, doc_id: str) -> list[dict[str, Any]]:
        """Every leaf revision of `doc_id` in the store, deleted ones included."""
        def read() -> list[dict[str, Any]]:
            resource = self.city.db(self.grid).resource(doc_id)
            try:
                _, _, body = resource.get_json(open_revs="all")
            except couchdb.http.ResourceNotFound:
                return []
            return [item["ok"] for item in body if "ok" in item]

        return await self.city.run(read)


@pytest.fixture
async def scene(client: Any, city: City) -> Scene:
    return await (await city.run(Scene, client, city)).ready()


def refused(result: dict[str, Any], *words: str) -> None:
    assert result.get("error") == "forbidden", result
    for word in words:
        assert word in result["reason"], (word, result["reason"])


def building(grid: str, author: str, key: str) -> dict[str, Any]:
    return {"_id": f"building:{key}", "type": "building", "schema_version": 1, "grid": grid,
            "created_by": author, "compound": "yuan", "number": key,
            "units": [{"label": "1", "floors": 6, "rooms_per_floor": 2}]}


def household2(grid: str, author: str, key: str, **fields: Any) -> dict[str, Any]:
    doc = {"_id": f"household:{grid}-{key}", "type": "household", "schema_version": 2,
           "grid": grid, "created_by": author, "registry": {"source": "grid_survey"},
           "address": {"compound": "yuan", "building": "3", "unit": "1", "room": "301"},
           "status": "active"}
    doc.update(fields)
    return doc


def tombstone(doc_id: str, rev: str | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": doc_id, "_deleted": True, **extra}
    if rev is not None:
        doc["_rev"] = rev
    return doc


def replicated(doc: dict[str, Any], rev: str, *parents: str) -> dict[str, Any]:
    """`doc` as PouchDB's replicator sends it: `_rev` and its history."""
    ids = [r.split("-", 1)[1] for r in (rev, *parents)]
    return {**doc, "_rev": rev, "_revisions": {"start": int(rev.split("-")[0]), "ids": ids}}


def deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


# -- tombstones -------------------------------------------------------------------------------

async def test_a_deletion_carries_no_body(scene: Scene) -> None:
    """A tombstone is `_id`, `_rev`, `_deleted` (and `_revisions` when replicated); anything
    else is refused, by every way of deleting, and the record stays as it was."""
    ways: list[tuple[str, Any]] = []
    for n, extra in enumerate([{"notes": "我删的"}, {"type": "household_visit"},
                               {"grid": scene.grid}, {"created_by": scene.w},
                               {"_attachments": {"a.png": {"content_type": "image/png",
                                                           "data": "iVBORw0KGgo="}}},
                               {"_conflicts": ["1-" + HASH]}, {"_x": 1},
                               {"resolved_by": "linli-resolver"}]):
        doc = visit(scene.grid, scene.w, f"body{n}")
        rev = await scene.create(scene.w, doc)
        ways.append((doc["_id"], extra))
        # _bulk_docs, new_edits true
        [result] = await scene.bulk(scene.w, [tombstone(doc["_id"], rev, **extra)])
        refused(result)
        # replicated (new_edits=false)
        [result] = await scene.bulk(scene.w, [replicated(
            tombstone(doc["_id"], **extra), "2-" + HASH, rev)], new_edits=False)
        refused(result)
        # PUT with _deleted
        resp = await scene.client.put(f"{scene.base}/{doc['_id']}?rev={rev}", json=tombstone(
            doc["_id"], rev, **extra), headers=basic(scene.w))
        assert resp.status in (400, 403), await resp.text()
        body = await resp.json()
        assert set(body) == {"error", "reason"} and "删除" in body["reason"], body
        assert (await scene.stored(doc["_id"]))["_rev"] == rev
        assert len(await scene.leaves(doc["_id"])) == 1
    # The same deletions without a body pass, each way.
    for n, way in enumerate(["bulk", "replicated", "put", "delete"]):
        doc = visit(scene.grid, scene.w, f"plain{n}")
        rev = await scene.create(scene.w, doc)
        if way == "bulk":
            [result] = await scene.bulk(scene.w, [tombstone(doc["_id"], rev)])
            assert result.get("ok"), result
        elif way == "replicated":
            assert await scene.bulk(scene.w, [replicated(tombstone(doc["_id"]), "2-" + HASH,
                                                         rev)], new_edits=False) == []
        else:
            url = f"{scene.base}/{doc['_id']}?rev={rev}"
            resp = await (scene.client.put(url, json=tombstone(doc["_id"], rev),
                                           headers=basic(scene.w)) if way == "put"
                          else scene.client.delete(url, headers=basic(scene.w)))
            assert resp.status in (200, 201), await resp.text()
        assert await scene.stored(doc["_id"]) is None
        [gone] = await scene.leaves(doc["_id"])
        assert gone["_deleted"] is True
        assert set(gone) <= {"_id", "_rev", "_deleted", "_revisions"}, gone


async def test_the_huge_deep_tombstone_of_another_grids_record(scene: Scene) -> None:
    """Today a 3.9 MB, 900-deep tombstone naming another grid's record is stored. By any way,
    for an id that exists or not, it is refused and the store keeps nothing of it."""
    junk = {"grid": scene.other_grid, "notes": "x" * 3_900_000, "nested": deep(900)}
    other_record = f"household_visit:{scene.other_grid}-victim"
    cases = [
        ("bulk, no such id", [tombstone(other_record, **junk)], True),
        ("replicated, no such id", [replicated(tombstone(other_record, **junk),
                                               "1-" + HASH)], False),
        ("replicated, deep history", [tombstone(other_record, _rev="900-" + HASH,
                                                _revisions={"start": 900,
                                                            "ids": [HASH] * 900,
                                                            "nested": deep(900)})], False),
    ]
    for what, docs, new_edits in cases:
        raw = json.dumps({"docs": docs, "new_edits": new_edits}).encode()
        headers = {**basic(scene.w), "Content-Type": "application/json"}
        resp = await scene.client.post(f"{scene.base}/_bulk_docs", data=raw, headers=headers)
        assert resp.status in (201, 400, 413), (what, resp.status)
        if resp.status == 201:
            [result] = await resp.json()
            refused(result)
        assert await scene.leaves(other_record) == [], what


async def test_a_worker_deletes_only_what_they_may_write(scene: Scene) -> None:
    """The rights of a write hold for a deletion: the type's writers, the record's author, and
    for a replicated tombstone of an id this grid has never seen, the type's writers too."""
    boss_building = building(scene.grid, scene.boss, "b1")
    boss_rev = await scene.create(scene.boss, boss_building)
    others = visit(scene.grid, scene.w2, "theirs")
    others_rev = await scene.create(scene.w2, others)
    # A record without an author (written before authors were checked): supervisors only.
    anonymous = visit(scene.grid, scene.w, "anon")
    del anonymous["created_by"]
    anonymous_rev = (await scene.city.save(scene.grid, anonymous))[1]
    own = visit(scene.grid, scene.w, "own")
    own_rev = await scene.create(scene.w, own)
    for doc_id, rev, words in [(boss_building["_id"], boss_rev, ["building"]),
                               (others["_id"], others_rev, [scene.w2]),
                               (anonymous["_id"], anonymous_rev, [])]:
        [result] = await scene.bulk(scene.w, [tombstone(doc_id, rev)])
        refused(result, *words)
        assert await scene.bulk(scene.w, [replicated(tombstone(doc_id), "9-" + HASH, rev)],
                                new_edits=False) != []
        resp = await scene.client.delete(f"{scene.base}/{doc_id}?rev={rev}",
                                         headers=basic(scene.w))
        assert resp.status == 403, await resp.text()
        assert (await scene.stored(doc_id))["_rev"] == rev
        assert all(not leaf.get("_deleted") for leaf in await scene.leaves(doc_id))
    # Tombstones of ids this grid never held: only of types the worker may write.
    for doc_id in ["building:never", "verdict:household_visit:x-1:2", "resolution:x:1",
                   "nosuchtype:1"]:
        [result] = await scene.bulk(scene.w, [replicated(tombstone(doc_id), "2-" + HASH,
                                                         "1-" + "b" * 32)], new_edits=False)
        refused(result)
        [result] = await scene.bulk(scene.w, [tombstone(doc_id)])
        refused(result)
        assert await scene.leaves(doc_id) == []
    # A record made and deleted on a phone before it ever synced arrives as a bare tombstone.
    offline = f"household_visit:{scene.grid}-offline"
    assert await scene.bulk(scene.w, [replicated(tombstone(offline), "2-" + HASH,
                                                 "1-" + "b" * 32)], new_edits=False) == []
    assert [leaf["_deleted"] for leaf in await scene.leaves(offline)] == [True]
    # What they may write, they may delete; a supervisor deletes the building.
    [result] = await scene.bulk(scene.w, [tombstone(own["_id"], own_rev)])
    assert result.get("ok"), result
    resp = await scene.client.delete(f"{scene.base}/{boss_building['_id']}?rev={boss_rev}",
                                     headers=basic(scene.boss))
    assert resp.status == 200, await resp.text()


# -- replicated histories ---------------------------------------------------------------------

BAD_HISTORIES: dict[str, Any] = {
    "start is text": {"start": "2", "ids": [HASH, "b" * 32]},
    "start is true": {"start": True, "ids": [HASH]},
    "start is a fraction": {"start": 2.0, "ids": [HASH, "b" * 32]},
    "start disagrees": {"start": 3, "ids": [HASH, "b" * 32]},
    "first id disagrees": {"start": 2, "ids": ["c" * 32, "b" * 32]},
    "an id is a number": {"start": 2, "ids": [HASH, 7]},
    "an id is an object": {"start": 2, "ids": [HASH, {"a": deep(200)}]},
    "an id is empty": {"start": 2, "ids": [HASH, ""]},
    "an id is not hex-ish": {"start": 2, "ids": [HASH, "../x"]},
    "an id is huge": {"start": 2, "ids": [HASH, "b" * 10_000]},
    "more ids than generations": {"start": 2, "ids": [HASH, "b" * 32, "c" * 32]},
    "too many ids": {"start": 5000, "ids": [HASH] + ["b" * 32] * 4999},
    "no ids": {"start": 2, "ids": []},
    "ids not a list": {"start": 2, "ids": HASH},
    "an extra member": {"start": 2, "ids": [HASH, "b" * 32], "x": deep(100)},
    "not an object": [2, HASH],
}


async def test_a_replicated_history_must_agree_with_its_revision(scene: Scene) -> None:
    """Each bad `_revisions` is refused alone; the good document beside it is stored, and the
    store still answers."""
    for n, (what, history) in enumerate(BAD_HISTORIES.items()):
        rev = "5000-" + HASH if what == "too many ids" else "2-" + HASH
        bad = {**visit(scene.grid, scene.w, f"bad{n}"), "_rev": rev, "_revisions": history}
        good = replicated(visit(scene.grid, scene.w, f"good{n}"), "2-" + HASH, "1-" + "b" * 32)
        results = await scene.bulk(scene.w, [bad, good], new_edits=False)
        assert len(results) == 1, (what, results)
        refused(results[0], "_revisions")
        assert results[0]["id"] == bad["_id"]
        assert await scene.leaves(bad["_id"]) == [], what
        assert (await scene.stored(good["_id"]))["_rev"] == good["_rev"], what


# -- broken characters ------------------------------------------------------------------------

LONE_SURROGATES = {"escaped high": b"\\ud800", "escaped low": b"\\udfb7",
                   "escaped upper case": b"\\uD83D", "raw high": "\ud800".encode(
                       "utf-8", "surrogatepass"),
                   "raw low": "\udc00".encode("utf-8", "surrogatepass")}


@pytest.mark.parametrize("where", ["value", "key", "nested value", "nested key",
                                   "deeply nested value"])
@pytest.mark.parametrize("lone", sorted(LONE_SURROGATES))
async def test_lone_surrogates_are_refused_per_document(scene: Scene, lone: str,
                                                        where: str) -> None:
    """A lone UTF-16 surrogate, escaped or as raw bytes, in a key or a value: that document is
    refused with a reason that says so (bilingual), the rest of the batch is stored, and
    nothing becomes U+FFFD."""
    mark = "LONEMARK"
    doc = visit(scene.grid, scene.w, f"{lone[:3]}{where[:3]}".replace(" ", ""))
    if where == "value":
        doc["notes"] = f"半个表情{mark}"
    elif where == "key":
        doc[mark] = "x"
    elif where == "nested value":
        doc["persons_present"] = {"a": [mark]}
    elif where == "deeply nested value":  # deeper than Python's recursion, within JSON's
        deep: Any = mark
        for _ in range(700):
            deep = [deep]
        doc["persons_present"] = deep
    else:
        doc["persons_present"] = {mark: 1}
    good = visit(scene.grid, scene.w, f"ok{lone[:3]}{where[:3]}".replace(" ", ""))
    for new_edits in (True, False):
        docs = [doc, good] if new_edits else [replicated(doc, "1-" + HASH),
                                              replicated(good, "1-" + HASH)]
        raw = json.dumps({"docs": docs, "new_edits": new_edits}).encode().replace(
            mark.encode(), LONE_SURROGATES[lone])
        results = await scene.bulk(scene.w, [], raw=raw)
        bad_result = next(r for r in results if r.get("id") == doc["_id"])
        refused(bad_result, "字符", "character")
        assert await scene.leaves(doc["_id"]) == []
    assert await scene.stored(good["_id"]) is not None
    # A single PUT: the same reason, as a 400.
    raw = json.dumps(doc).encode().replace(mark.encode(), LONE_SURROGATES[lone])
    resp = await scene.client.put(f"{scene.base}/{doc['_id']}", data=raw, headers={
        **basic(scene.w), "Content-Type": "application/json"})
    assert resp.status == 400, await resp.text()
    assert "character" in (await resp.json())["reason"]
    assert await scene.leaves(doc["_id"]) == []


async def test_no_replacement_character_reaches_the_store(scene: Scene) -> None:
    """Whatever the gateway stored holds no U+FFFD it was not sent: raw surrogate bytes in a
    checkpoint are refused too."""
    raw = b'{"last_seq": "' + "\ud83d".encode("utf-8", "surrogatepass") + b'"}'
    resp = await scene.client.put(f"{scene.base}/_local/ck", data=raw, headers={
        **basic(scene.w), "Content-Type": "application/json"})
    assert resp.status == 400, await resp.text()
    assert "character" in (await resp.json())["reason"]


# -- fields that name a person ----------------------------------------------------------------

def stamp(field: str, by: str, at: str = "1764806400000-0000") -> dict[str, str]:
    return {"field": field, "at": at, "by": by}


async def test_edits_name_their_real_author(scene: Scene) -> None:
    """`edits[].by` is checked against who writes: a new stamp is the writer's own; another
    person's stamp must be one the store already holds for that record, unchanged. The same for
    households and persons, written or replicated."""
    w, w2 = scene.w, scene.w2
    # A new record cannot carry another person's edit.
    forged = household2(scene.grid, w, "h1", edits=[stamp("status", w2)])
    [result] = await scene.bulk(w, [forged])
    refused(result, "by")
    [result] = await scene.bulk(w, [replicated(forged, "1-" + HASH)], new_edits=False)
    refused(result, "by")
    resp = await scene.client.put(f"{scene.base}/{forged['_id']}", json=forged,
                                  headers=basic(w))
    assert resp.status == 403
    assert await scene.leaves(forged["_id"]) == []
    # Its own stamps pass.
    mine = household2(scene.grid, w, "h2", edits=[stamp("status", w)])
    rev = await scene.create(w, mine)
    # Another worker edits it: keeps w's stamp, adds theirs.
    edit = {**mine, "_rev": rev, "tenure": "rented",
            "edits": [stamp("status", w), stamp("tenure", w2, "1764806500000-0000")]}
    [result] = await scene.bulk(w2, [edit])
    assert result.get("ok"), result
    rev2 = result["rev"]
    # ...but may not change w's stamp, nor claim an edit of w's.
    for edits in ([stamp("status", w, "1764806999999-0000"), stamp("tenure", w2)],
                  [stamp("status", w), stamp("tenure", w)],
                  [stamp("status", w2), stamp("tenure", w2), stamp("phone", w)]):
        [result] = await scene.bulk(w2, [{**edit, "_rev": rev2, "edits": edits}])
        refused(result, "by")
        [result] = await scene.bulk(w2, [replicated({**edit, "edits": edits}, "3-" + HASH,
                                                    rev2, rev)], new_edits=False)
        refused(result, "by")
    # Replicated from a phone that edited an older revision offline: the stamps it kept are
    # those of the revision it started from, which the store still holds.
    offline = {**mine, "phone": "13905700001",
               "edits": [stamp("status", w), stamp("phone", w2, "1764806600000-0000")]}
    assert await scene.bulk(w2, [replicated(offline, "2-" + "c" * 32, rev)],
                            new_edits=False) == []
    assert (await scene.stored(mine["_id"]))["_rev"] in (rev2, "2-" + "c" * 32)


# -- _local documents -------------------------------------------------------------------------

LOCAL_STEPS: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("PUT", "", {"last_seq": 1}),
    ("PUT", "", {"last_seq": 2}),  # no _rev: 409
    ("PUT", "", {"last_seq": 2, "_rev": "0-7"}),  # a wrong rev: 409
    ("PUT", "", {"last_seq": 2, "_rev": "1-" + HASH}),  # a wrong rev: 409
    ("PUT", "", {"last_seq": 2, "_rev": "0-1"}),
    ("GET", "", None),
    ("HEAD", "", None),
    ("GET", "?rev=0-2", None),
    ("PUT", "?rev=0-2", {"last_seq": 3}),
    ("DELETE", "?rev=0-1", None),  # a wrong rev
    ("GET", "", None),
    ("DELETE", "?rev=0-3", None),
    ("GET", "", None),
    ("HEAD", "", None),
    ("DELETE", "?rev=0-3", None),  # already gone
    ("PUT", "", {"last_seq": 4}),  # made again: 0-1
    ("GET", "", None),
]


@pytest.mark.slow  # 18 steps against the store
async def test_local_documents_behave_as_in_the_store(scene: Scene, store: EmbeddedStore,
                                                      store_session: aiohttp.ClientSession
                                                      ) -> None:
    """The same steps against the store itself and through `/couch/`: the same statuses and
    bodies (the checkpoint's stored id aside, which is kept per user)."""
    plain = f"localcmp{scene.grid}"
    async with store_session.put(f"{store.url}/{plain}") as resp:
        assert resp.status == 201
    seen: list[tuple[Any, ...]] = []
    for method, query, body in LOCAL_STEPS:
        direct = store_session.request(method, f"{store.url}/{plain}/_local/ck{query}",
                                       json=body)
        async with direct as resp:
            want = (resp.status, (await resp.read()) if method != "HEAD" else b"")
        via = await scene.client.request(method, f"{scene.base}/_local/ck{query}", json=body,
                                         headers=basic(scene.w))
        got = (via.status, (await via.read()) if method != "HEAD" else b"")
        step = (method, query, body)
        assert got[0] == want[0], (step, got, want)
        if want[1]:
            assert json.loads(got[1]) == json.loads(want[1]), (step, got, want)
        seen.append((step, got[0]))
    assert [s for _, s in seen].count(409) >= 3, seen
    async with store_session.delete(f"{store.url}/{plain}") as resp:
        assert resp.status == 200


async def test_attachments_on_local_documents_are_refused(scene: Scene) -> None:
    """The store keeps `_attachments` of a `_local` document as plain data and cannot serve
    them: the gateway refuses them, inline or standalone, with a reason."""
    doc = {"last_seq": 1, "_attachments": {"a.png": {"content_type": "image/png",
                                                     "data": "iVBORw0KGgo="}}}
    resp = await scene.client.put(f"{scene.base}/_local/att", json=doc, headers=basic(scene.w))
    assert resp.status == 400, await resp.text()
    assert "_local" in (await resp.json())["reason"]
    resp = await scene.client.put(f"{scene.base}/_local/att/a.png", data=b"\x89PNG",
                                  headers={**basic(scene.w), "Content-Type": "image/png"})
    assert resp.status in (400, 403), await resp.text()
    resp = await scene.client.get(f"{scene.base}/_local/att", headers=basic(scene.w))
    assert resp.status == 404


async def test_members_the_store_hides_keep_their_shape(scene: Scene) -> None:
    """`_conflicts`, `_deleted_conflicts`, `_local_seq`, `_revs_info` (what a read answers
    with) and `_revisions` are not part of the stored body, but the store keeps them in the
    document's hidden metadata, read on every access: only their real shape passes."""
    junk = {"x": deep(300), "pad": "y" * 100_000}
    for n, member in enumerate(["_conflicts", "_deleted_conflicts", "_local_seq", "_revs_info",
                                "_revisions"]):
        doc = {**visit(scene.grid, scene.w, f"hidden{n}"), member: junk}
        [result] = await scene.bulk(scene.w, [doc])
        refused(result, member)
        assert await scene.leaves(doc["_id"]) == []
    # What a CouchDB read gives back may be written back, as CouchDB allows.
    doc = visit(scene.grid, scene.w, "readback")
    rev = await scene.create(scene.w, doc)
    [result] = await scene.bulk(scene.w, [{
        **doc, "_rev": rev, "_conflicts": ["1-" + HASH], "_deleted_conflicts": [],
        "_local_seq": 7, "_revs_info": [{"rev": rev, "status": "available"}],
        "_revisions": {"start": 1, "ids": [rev.split("-")[1]]}}])
    assert result.get("ok"), result


async def test_a_batch_of_edits_keeping_others_stamps(scene: Scene) -> None:
    """A push of many edits of records another worker stamped: every stamp is looked up (a few
    at a time), all are admitted, and one forged among them is refused alone."""
    w, w2 = scene.w, scene.w2
    made = [household2(scene.grid, w, f"many{n}", edits=[stamp("status", w)]) for n in range(30)]
    results = await scene.bulk(w, made)
    edits = [{**doc, "_rev": r["rev"], "tenure": "rented",
              "edits": [stamp("status", w), stamp("tenure", w2, "1764806500000-0000")]}
             for doc, r in zip(made, results, strict=True)]
    edits[7]["edits"][0] = stamp("status", w, "1764806999999-0001")  # moved: not w's stamp
    results = await scene.bulk(w2, edits)
    assert [r.get("ok") for n, r in enumerate(results) if n != 7] == [True] * 29, results
    refused(results[7], "by")
