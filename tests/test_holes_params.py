"""Issue 13, items 9 and 12: query parameters and `_changes` filters through `/couch/`.

Item 9: every JSON, boolean, number and enumerated parameter CouchDB accepts, on every endpoint
that forwards it, answers a bad value with a CouchDB-shaped 400 whose reason (zh-CN, then
English) names the parameter: never a 500, never the store's own answer. Good values still work
against the real store.

Item 12: `filter=ddoc/name`, `filter=_view&view=...` and `filter=_selector` work from a real
PouchDB client when the store can run them; a missing design document, filter or view is a 404;
a filter Linli does not ship and every malformed selector are refused; and the embedded store
(PouchDB Server, which dies on a filter error) is the same process afterwards, with other grids
answering. A live longpoll honours the filter.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
from typing import Any
from urllib.parse import quote

import pytest
from conftest import City, NodeClient, auth_for, basic, eventually, visit, wait_for_user
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_inputs import expect_error, household

from server.store.embedded import EmbeddedStore
from server.sync import params as qparams
from server.web.keys import LIVE_FEEDS

# What CouchDB 3 documents for each parameter, written here from its API reference, with values
# it refuses. Every parameter the gateway forwards must be listed (checked below).
BOOLEAN = ["maybe", "2", "", "TRUE", "1"]
COUNT = ["-1", "1e9", "abc", "", "1.5", "99999999999"]
JSON_VALUE = ["notjson", "", "{", "[1,", "1e999", "'a'", "[" * 40 + "]" * 40]
JSON_LIST = ["x", "", "{}", "5", '"a"']
REV_LIST = ["notjson", "", "[1]", '["x"]', "{}"]
BAD: dict[str, list[str]] = {
    **dict.fromkeys(["include_docs", "descending", "revs", "latest", "conflicts", "attachments",
                     "att_encoding_info", "revs_info", "deleted_conflicts", "local_seq",
                     "reduce", "group", "inclusive_end", "update_seq", "sorted", "stable"],
                    BOOLEAN),
    **dict.fromkeys(["limit", "skip", "heartbeat", "timeout", "group_level", "seq_interval"],
                    COUNT),
    **dict.fromkeys(["key", "startkey", "endkey", "start_key", "end_key"], JSON_VALUE),
    "keys": JSON_VALUE + JSON_LIST,
    "doc_ids": [*JSON_LIST, "[1]"],
    "open_revs": ["notjson", "", "{}", "[1]", '["x"]'],
    "atts_since": REV_LIST,
    "rev": ["garbage", "", "1-", "x-abc"],
    "since": ["x", "[1]", '"x"', "-1", "1.5", ""],
    "style": ["x", ""],
    "feed": ["continuous", "eventsource", "x"],
    "stale": ["x", ""],
    "update": ["x", ""],
    "view": ["bad", "", "a/b/c"],
}
_serial = itertools.count(os.getpid() * 1000)
TEXT_PARAMS = {"startkey_docid", "endkey_docid", "start_key_doc_id", "end_key_doc_id", "filter"}


class Scene:
    def __init__(self, client: Any, city: City, store: EmbeddedStore) -> None:
        self.client, self.city, self.store = client, city, store
        self.community = f"qp{next(_serial)}"
        self.grid = city.blocking.grid(community=self.community)
        self.other_grid = city.blocking.grid()
        self.worker = city.blocking.user(grids=[self.grid])
        self.other_worker = city.blocking.user(grids=[self.other_grid])
        self.boss = city.blocking.user("supervisor", communities=[self.community])
        self.admin = city.blocking.user("admin")
        self.base = f"/couch/grid-{self.grid}"
        self.pid = store.process.pid if store.process else None
        self.docs: list[dict[str, Any]] = []

    async def ready(self) -> Scene:
        for name in (self.worker, self.other_worker, self.boss, self.admin):
            await wait_for_user(self.client, name)
        visits = [visit(self.grid, self.worker, i, persons_present=i % 5) for i in range(8)]
        homes = [household(self.grid, self.worker, f"{i:04d}") for i in range(1, 5)]
        homes[0]["phone"] = "13905700001"
        homes[1]["special_groups"] = ["elderly_alone", "hardship"]
        homes[2]["special_groups"] = ["hardship"]
        resp = await self.client.post(f"{self.base}/_bulk_docs", headers=basic(self.worker),
                                      json={"docs": visits + homes})
        results = await resp.json()
        assert resp.status == 201 and all("ok" in r for r in results), results
        self.docs = visits + homes
        # An admin's own design document: a filter that throws, a view that throws.
        await self.city.save(self.grid, {
            "_id": "_design/admin",
            "filters": {"throws": "function (doc) { return doc.address.compound === 'x'; }"},
            "views": {"throws": {"map": "function (doc) { emit(doc.address.room); }"}}})
        return self

    def ids(self, keep: Any = lambda d: True) -> list[str]:
        return sorted(d["_id"] for d in self.docs if keep(d))

    async def store_survived(self) -> None:
        """The embedded store is the same process as at the start, and other grids answer."""
        assert self.store.process is not None and self.store.process.poll() is None
        assert self.store.process.pid == self.pid, "the store was restarted"
        resp = await self.client.get(f"/couch/grid-{self.other_grid}/_changes",
                                     headers=basic(self.other_worker))
        assert resp.status == 200, await resp.text()

    async def changes(self, query: str, body: Any = None, who: str | None = None) -> Any:
        headers = basic(who or self.worker)
        if body is None:
            return await self.client.get(f"{self.base}/_changes?{query}", headers=headers)
        return await self.client.post(f"{self.base}/_changes?{query}", headers=headers,
                                      json=body)


@pytest.fixture
async def scene(client: Any, city: City, store: EmbeddedStore) -> Scene:
    return await (await city.run(Scene, client, city, store)).ready()


def endpoints(scene: Scene) -> list[tuple[str, str, frozenset[str], Any]]:
    """(method, path, parameters it forwards, body) for every endpoint that forwards any."""
    doc = scene.docs[0]["_id"]
    return [("GET", f"{scene.base}/{doc}", qparams.DOCUMENT, None),
            ("GET", f"{scene.base}/_all_docs", qparams.ALL_DOCS, None),
            ("POST", f"{scene.base}/_all_docs", qparams.ALL_DOCS, {"keys": [doc]}),
            ("GET", f"{scene.base}/_design/linli/_view/by_type", qparams.VIEW, None),
            ("GET", f"{scene.base}/_changes", qparams.CHANGES - {"filter"}, None),
            ("POST", f"{scene.base}/_bulk_get", qparams.BULK_GET, {"docs": [{"id": doc}]}),
            ("GET", f"{scene.base}/{doc}/photo.png", qparams.ATTACHMENT, None)]


def test_every_forwarded_parameter_has_bad_values_here() -> None:
    forwarded = (qparams.CHANGES | qparams.DOCUMENT | qparams.VIEW | qparams.BULK_GET
                 | qparams.ATTACHMENT)
    assert forwarded - TEXT_PARAMS <= BAD.keys(), forwarded - TEXT_PARAMS - BAD.keys()


async def test_a_malformed_query_parameter_is_a_400_on_every_endpoint(scene: Scene) -> None:
    tried = 0
    for method, path, allowed, body in endpoints(scene):
        for name in sorted(allowed - TEXT_PARAMS):
            for value in BAD[name]:
                query = f"{name}={quote(value, safe='')}"
                if name == "doc_ids":
                    query += "&filter=_doc_ids"
                if name == "view":
                    query += "&filter=_view"
                resp = await scene.client.request(method, f"{path}?{query}", json=body,
                                                  headers=basic(scene.worker))
                reason = await expect_error(resp, 400, name)
                assert "参数" in reason, reason
                tried += 1
    assert tried > 300, tried
    await scene.store_survived()


async def test_the_parameters_of_writes_and_uuids_are_checked_too(scene: Scene) -> None:
    doc = visit(scene.grid, scene.worker, "w")
    path = f"{scene.base}/{doc['_id']}"
    for query in ("new_edits=maybe", "new_edits=", "rev=garbage", "rev="):
        name = query.split("=")[0]
        for method in ("PUT", "DELETE"):
            resp = await scene.client.request(method, f"{path}?{query}", json=doc,
                                              headers=basic(scene.worker))
            await expect_error(resp, 400, name)
        resp = await scene.client.delete(f"{scene.base}/_local/x?{query}",
                                          headers=basic(scene.worker))
        assert resp.status in (400, 404), await resp.text()
    for count in ("x", "-1", "1e3"):
        resp = await scene.client.get(f"/couch/_uuids?count={count}", headers=basic(scene.worker))
        await expect_error(resp, 400, "count")
    resp = await scene.client.put(f"{path}?new_edits=true", json=doc, headers=basic(scene.worker))
    assert resp.status == 201, await resp.text()
    rev = (await resp.json())["rev"]
    resp = await scene.client.delete(f"{path}?rev={rev}", headers=basic(scene.worker))
    assert resp.status == 200, await resp.text()
    await scene.store_survived()


async def test_well_formed_parameters_still_reach_the_store(scene: Scene) -> None:
    ask = scene.client.get
    auth = basic(scene.worker)
    visits = scene.ids(lambda d: d["type"] == "household_visit")
    resp = await ask(f"{scene.base}/_all_docs?startkey=%22household_visit:%22&endkey="
                     "%22household_visit:%EF%BF%B0%22&include_docs=true&limit=3&skip=1"
                     "&descending=false&inclusive_end=true&update_seq=true&conflicts=false",
                     headers=auth)
    page = await resp.json()
    assert resp.status == 200, page
    assert [r["id"] for r in page["rows"]] == visits[1:4]
    assert all(r["doc"]["type"] == "household_visit" for r in page["rows"])
    resp = await ask(f"{scene.base}/_all_docs?keys={quote(json.dumps(visits[:2]))}",
                     headers=auth)
    assert [r["id"] for r in (await resp.json())["rows"]] == visits[:2]
    for extra in ("&update=true", "&stale=ok"):  # built by the first, read as is by the next
        resp = await ask(f"{scene.base}/_design/linli/_view/by_type?group_level=1&reduce=true"
                         f"&group=true{extra}", headers=auth)
        rows = (await resp.json())["rows"]
        assert {"key": ["household_visit"], "value": len(visits)} in rows, rows
    doc = scene.docs[0]["_id"]
    resp = await ask(f"{scene.base}/{doc}?revs=true&revs_info=true&conflicts=true"
                     "&latest=true&atts_since=%5B%5D&local_seq=false", headers=auth)
    got = await resp.json()
    assert resp.status == 200 and got["_id"] == doc and "_revisions" in got, got
    for open_revs in ("all", quote('"all"'), quote(json.dumps([got["_rev"]]))):
        resp = await ask(f"{scene.base}/{doc}?open_revs={open_revs}",
                         headers={**auth, "Accept": "application/json"})
        assert resp.status == 200 and (await resp.json())[0]["ok"]["_rev"] == got["_rev"]
    for since in ("0", quote('"0"'), "now"):
        resp = await ask(f"{scene.base}/_changes?since={since}&style=all_docs&limit=100"
                         "&include_docs=false&descending=false&conflicts=true", headers=auth)
        page = await resp.json()
        assert resp.status == 200, page
        records = [r for r in page["results"] if not r["id"].startswith("_design/")]
        assert len(records) == (0 if since == "now" else len(scene.docs))
    resp = await scene.client.post(f"{scene.base}/_bulk_get?revs=true&latest=true"
                                   "&attachments=false", headers=auth,
                                   json={"docs": [{"id": doc}]})
    assert (await resp.json())["results"][0]["docs"][0]["ok"]["_id"] == doc
    await scene.store_survived()


# -- item 12: filters --------------------------------------------------------------------------

async def pull_ids(scene: Scene, node: NodeClient, **options: Any) -> list[str]:
    """A one-shot pull into a fresh local database with PouchDB's filter `options`: the ids
    of the records it got."""
    local = node.local(f"pull{len(list(node.workdir.iterdir()))}")
    result = await node.run({"op": "pull", "remote": str(scene.client.make_url(scene.base)),
                             "local": local, "auth": auth_for(scene.worker), **options})
    assert result["ok"], result
    counted = await node.run({"op": "count", "local": local, "with_ids": True})
    return list(counted["ids"])


@pytest.mark.slow  # a real PouchDB client per filter
async def test_a_real_pouchdb_client_pulls_through_each_kind_of_filter(
        scene: Scene, node: NodeClient) -> None:
    by_type = await pull_ids(scene, node, filter="linli/by_type",
                             query_params={"record_type": "household"})
    assert by_type == scene.ids(lambda d: d["type"] == "household")
    selected = await pull_ids(scene, node, selector={
        "type": "household_visit", "persons_present": {"$gte": 2, "$ne": 3}})
    assert selected == scene.ids(lambda d: d["type"] == "household_visit"
                                 and d["persons_present"] >= 2 and d["persons_present"] != 3)
    viewed = await pull_ids(scene, node, filter="_view", view="linli/persons_by_household")
    assert viewed == []  # no person in the grid: the view emits for none
    viewed = await pull_ids(scene, node, filter="_view", view="linli/households_by_address")
    assert viewed == scene.ids(lambda d: d["type"] == "household")
    await scene.store_survived()


SELECTORS_THE_STORE_WOULD_DIE_ON: list[Any] = [
    5, "x", [], None,
    {"persons_present": {"$bogus": 1}},
    {"$or": 5}, {"$or": []}, {"$nor": [5]}, {"$and": {"a": 1}}, {"$not": 5},
    {"persons_present": {"$in": 5}}, {"persons_present": {"$nin": "x"}},
    {"persons_present": {"$all": {}}}, {"persons_present": {"$size": "x"}},
    {"persons_present": {"$size": -1}}, {"persons_present": {"$mod": [0, 1]}},
    {"persons_present": {"$mod": "x"}}, {"persons_present": {"$type": "foo"}},
    {"persons_present": {"$exists": "yes"}}, {"type": {"$type": []}}, "\ud800",
    {"type": "\udc00x"},
    {"outcome": {"$regex": "("}}, {"outcome": {"$regex": "^(a+)+$"}},
    {"tags": {"$elemMatch": {"$eq": 1}}}, {"tags": {"$allMatch": {"$gt": 1}}},
    {"tags": {"$keyMapMatch": {"$gt": 1}}}, {"outcome": {"$beginsWith": "c"}},
    {"$text": "x"}, {"$where": "1"}, {"": 1}, {"a": {"$gt": 1, "b": 2}},
    {"a": {"$eq": {"$and": [1]}}},
    {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": 1}}}}}}}}}},
    {"$or": [{"$or": [{"$or": [{"$or": [{"$or": [{"$or": [{"$or": [{"$or": [
        {"$or": [{"a": 1}]}]}]}]}]}]}]}]}]},
    {f"f{i}": "x" * 100 for i in range(60)},
]


async def test_bad_selectors_are_refused_and_the_store_lives(scene: Scene) -> None:
    for selector in SELECTORS_THE_STORE_WOULD_DIE_ON:
        resp = await scene.changes("filter=_selector", {"selector": selector})
        await expect_error(resp, 400, "selector")
    resp = await scene.changes("filter=_selector", {})
    await expect_error(resp, 400, "selector")
    resp = await scene.changes("filter=_selector")  # GET: no body to carry one
    await expect_error(resp, 400, "selector")
    await scene.store_survived()


# Selectors CouchDB runs, in shapes the embedded store throws on as they are (nested sub-fields
# of a missing field, `$ne` inside `$or`, `$and` beside a list holding null, a lone `$not`): the
# gateway forwards an equivalent the store runs.
GOOD_SELECTORS: list[tuple[Any, Any]] = [
    ({"address": {"compound": {"$gt": ""}}}, lambda d: "address" in d),
    ({"$or": [{"persons_present": {"$ne": 1}}, {"type": "household"}]},
     lambda d: d.get("persons_present") != 1),
    ({"$and": [{"type": "household_visit"}, {"persons_present": {"$in": [None, 0, 4]}}]},
     lambda d: d.get("persons_present") in (0, 4)),
    ({"$not": {"persons_present": {"$eq": 2, "$gt": 3}}}, lambda d: True),
    ({"$nor": [{"type": "household"}, {"persons_present": {"$lt": 3}}]},
     lambda d: d["type"] != "household" and d["persons_present"] >= 3),
    ({"phone": {"$exists": True}, "status": "active"}, lambda d: "phone" in d),
    ({"persons_present": {"$mod": [2, 1], "$type": "number"}},
     lambda d: d.get("persons_present", 0) % 2 == 1),
    ({}, lambda d: True),
    # CouchDB matches no missing field but with `$exists: false`, `$ne` and `$not` included
    ({"persons_present": {"$ne": 1}}, lambda d: d.get("persons_present", 1) != 1),
    ({"phone": {"$not": {"$eq": "x"}}}, lambda d: "phone" in d),
    ({"$not": {"phone": "13905700001"}}, lambda d: d.get("phone") != "13905700001"),
    ({"phone": {"$exists": False, "$ne": 1}}, lambda d: False),
    ({"special_groups": {"$all": []}}, lambda d: False),  # the store alone: every array
    ({"special_groups": {"$all": ["hardship"], "$size": 1}},
     lambda d: d.get("special_groups") == ["hardship"]),
]


async def test_well_formed_selectors_select_what_couchdb_would(scene: Scene) -> None:
    for selector, keep in GOOD_SELECTORS:
        resp = await scene.changes("filter=_selector&include_docs=true", {"selector": selector})
        page = await resp.json()
        assert resp.status == 200, (selector, page)
        got = sorted(r["id"] for r in page["results"] if not r["id"].startswith("_design/"))
        assert got == scene.ids(keep), selector
    await scene.store_survived()


async def test_missing_or_unvetted_design_functions_never_reach_the_store(scene: Scene) -> None:
    for query in ("filter=nope/f", "filter=linli/nope", "filter=_view&view=nope/v",
                  "filter=_view&view=linli/nope", "filter=admin/nope"):
        resp = await scene.changes(query)
        body = await resp.json()
        assert resp.status == 404 and body["error"] == "not_found", (query, body)
    for query in ("filter=admin/throws", "filter=_view&view=admin/throws"):
        await expect_error(await scene.changes(query), 400, "Linli")
    for query in ("filter=_view", "filter=_bogus", "filter=bad", "filter=a/b/c",
                  "filter=linli/by_type&filter=_doc_ids"):
        resp = await scene.changes(query)
        assert resp.status in (400, 404), (query, resp.status, await resp.text())
    for query in ("view=admin/throws", "view=nope/v&filter=linli/by_type"):
        resp = await scene.changes(query)  # a view without filter=_view is not forwarded
        assert resp.status == 200, await resp.text()
    await scene.store_survived()


async def test_a_masked_supervisor_may_not_probe_records_with_a_selector(scene: Scene) -> None:
    probe = {"selector": {"phone": {"$gt": "139"}}}
    await expect_error(await scene.changes("filter=_selector", probe, who=scene.boss), 403)
    resp = await scene.changes("filter=linli/by_type&record_type=household", who=scene.boss)
    assert resp.status == 200


async def test_a_live_longpoll_honours_its_filter(scene: Scene) -> None:
    resp = await scene.changes("since=now&limit=10")
    assert resp.status == 200
    since = (await resp.json())["last_seq"]
    feed = asyncio.create_task(scene.client.post(
        f"{scene.base}/_changes?feed=longpoll&since={since}&timeout=30000&filter=_selector",
        headers=basic(scene.worker), json={"selector": {"type": "household"}}))
    feeds = scene.client.app[LIVE_FEEDS]
    await eventually(lambda: feed.done() or feeds.waiting(), every=0.01)  # it waits in the server
    first, second = visit(scene.grid, scene.worker, "late"), household(scene.grid, scene.worker,
                                                                       "0099")
    for doc in (first, second):  # the first wakes the feed, which must not answer with it
        put = await scene.client.put(f"{scene.base}/{doc['_id']}", json=doc,
                                     headers=basic(scene.worker))
        assert put.status == 201, await put.text()
    resp = await asyncio.wait_for(feed, 30)
    page = await resp.json()
    assert resp.status == 200, page
    assert [r["id"] for r in page["results"]] == [second["_id"]]
    await scene.store_survived()


async def test_a_filter_gone_while_a_longpoll_waits_ends_the_feed_not_the_store(
        scene: Scene) -> None:
    """The design document is checked when the feed starts, and again before each read after
    the phone waited: one deleted meanwhile ends the feed with a 404. (Deleted as the feed
    starts, before its first read, the store answers the 404: test_store_design_races.py.)"""
    resp = await scene.changes("since=now")
    since = (await resp.json())["last_seq"]
    feed = asyncio.create_task(scene.client.get(
        f"{scene.base}/_changes?feed=longpoll&since={since}&timeout=30000"
        "&filter=linli/by_type&record_type=household", headers=basic(scene.worker)))
    feeds = scene.client.app[LIVE_FEEDS]
    # It waits in the server once its first read found nothing, and the database is watched
    # (waiting() counts it from before that read, which could then come after the deletion).
    await eventually(lambda: feed.done() or feeds.watching(), every=0.01)
    db = scene.city.db(scene.grid)
    await scene.city.run(lambda: db.delete(db["_design/linli"]))
    doc = household(scene.grid, scene.worker, "0098")
    put = await scene.client.put(f"{scene.base}/{doc['_id']}", json=doc,
                                 headers=basic(scene.worker))
    assert put.status == 201, await put.text()
    resp = await asyncio.wait_for(feed, 30)
    body = await resp.json()
    assert resp.status == 404 and body["error"] == "not_found", body
    await scene.store_survived()


async def test_an_admins_raw_database_checks_parameters_and_never_runs_a_filter(
        scene: Scene) -> None:
    """Raw databases (admins only) are relayed as they came, but a bad parameter is still a
    400 (PouchDB Server answers `open_revs=notjson` with a 500), and a `selector` or `view`
    parameter, which PouchDB Server runs as a filter even without `filter=`, never travels."""
    name = f"scratch{scene.admin[-8:]}"
    auth = basic(scene.admin)
    assert (await scene.client.put(f"/couch/{name}", headers=auth)).status == 201
    resp = await scene.client.put(f"/couch/{name}/d", json={"n": 1}, headers=auth)
    assert resp.status == 201, await resp.text()
    for query in ("open_revs=notjson", "revs=maybe", "atts_since=x"):
        await expect_error(await scene.client.get(f"/couch/{name}/d?{query}", headers=auth),
                           400, query.split("=")[0])
    for query in ("keys=x", "limit=-1", "skip=abc", "descending=2"):
        resp = await scene.client.get(f"/couch/{name}/_all_docs?{query}", headers=auth)
        await expect_error(resp, 400, query.split("=")[0])
    for query in ("selector=5", "view=x/nope", "selector=%7B%7D", "filter=_view&view=x/v"):
        resp = await scene.client.get(f"/couch/{name}/_changes?{query}", headers=auth)
        await expect_error(resp, 400, "embedded store")
    resp = await scene.client.get(f"/couch/{name}/d?revs=true&open_revs=all",
                                  headers={**auth, "Accept": "application/json"})
    assert resp.status == 200, await resp.text()
    resp = await scene.client.get(f"/couch/{name}/_changes?feed=continuous&timeout=100",
                                  headers=auth)
    assert resp.status == 200, await resp.text()
    await scene.store_survived()


async def test_an_admins_quiet_raw_feed_ends_as_couchdbs_does(scene: Scene) -> None:
    """A live feed of a raw database with nothing to send ends at its `timeout` with CouchDB's
    answer (200, no results, `last_seq`), not a cut connection: PouchDB Server sends no
    headers until a change or its 6 s heartbeat, so an empty database's feed had nothing to
    relay when the gateway's deadline came."""
    name = f"quiet{scene.admin[-8:]}"
    auth = basic(scene.admin)
    assert (await scene.client.put(f"/couch/{name}", headers=auth)).status == 201
    resp = await scene.client.get(f"/couch/{name}/_changes?feed=continuous&timeout=100",
                                  headers=auth)
    assert resp.status == 200, await resp.text()
    assert json.loads((await resp.text()).strip().splitlines()[-1])["last_seq"] == 0
    resp = await scene.client.put(f"/couch/{name}/d", json={"n": 1}, headers=auth)
    assert resp.status == 201, await resp.text()
    for query in ("since=now", "since=1"):
        resp = await scene.client.get(
            f"/couch/{name}/_changes?feed=longpoll&timeout=100&{query}", headers=auth)
        assert resp.status == 200, await resp.text()
        assert json.loads(await resp.text()) == {"results": [], "last_seq": 1}
    await scene.store_survived()


# -- the selector's meaning, kept through the rewrite -------------------------------------------

MISSING = object()
TYPE_RANK = {type(None): 0, bool: 1, int: 2, float: 2, str: 3, list: 4, dict: 5}


def collate(a: Any, b: Any) -> int:
    """CouchDB's order of JSON values (null, false, true, numbers, strings, arrays), for the
    values drawn here."""
    ra, rb = TYPE_RANK[type(a)], TYPE_RANK[type(b)]
    if ra != rb:
        return -1 if ra < rb else 1
    if isinstance(a, list):
        for x, y in zip(a, b, strict=False):
            if (c := collate(x, y)) != 0:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if isinstance(a, dict):
        return 0 if a == b else (-1 if json.dumps(a) < json.dumps(b) else 1)
    return (a > b) - (a < b)


def field(doc: Any, path: str) -> Any:
    value = doc
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


def type_name(value: Any) -> str:
    return {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
            list: "array", dict: "object"}[type(value)]


def operator_matches(op: str, arg: Any, value: Any) -> bool:
    """One operator on a field that exists, as CouchDB's mango_selector.erl has it."""
    if op in ("$in", "$nin"):
        values = value if isinstance(value, list) else [value]
        found = any(collate(v, a) == 0 for a in arg for v in values)
        return found if op == "$in" else not found
    return {
        "$eq": lambda: collate(value, arg) == 0, "$ne": lambda: collate(value, arg) != 0,
        "$gt": lambda: collate(value, arg) > 0, "$gte": lambda: collate(value, arg) >= 0,
        "$lt": lambda: collate(value, arg) < 0, "$lte": lambda: collate(value, arg) <= 0,
        "$exists": lambda: arg is True, "$type": lambda: type_name(value) == arg,
        "$size": lambda: isinstance(value, list) and len(value) == arg,
        "$all": lambda: isinstance(value, list) and bool(arg) and all(
            any(collate(v, a) == 0 for v in value) for a in arg),
        "$mod": lambda: isinstance(value, int) and not isinstance(value, bool)
        and int(math.fmod(value, arg[0])) == arg[1],
        "$not": lambda: not condition_matches(arg, value),
    }[op]()


def condition_matches(cond: Any, value: Any) -> bool:
    if not isinstance(cond, dict):
        cond = {"$eq": cond}
    if not cond or not all(k.startswith("$") for k in cond):
        raise AssertionError("sub-fields are flattened before this")
    if value is MISSING:  # nothing but `$exists: false` matches a missing field
        return all(op == "$exists" and arg is False for op, arg in cond.items())
    return all(operator_matches(op, arg, value) for op, arg in cond.items())


def matches(selector: dict[str, Any], doc: Any, prefix: str = "") -> bool:
    for key, cond in selector.items():
        if key in ("$and", "$or", "$nor"):
            results = [matches(s, doc) for s in cond]
            ok = all(results) if key == "$and" else any(results) if key == "$or" else not any(
                results)
        elif key == "$not":
            ok = not matches(cond, doc)
        elif isinstance(cond, dict) and cond and not any(k.startswith("$") for k in cond):
            ok = matches(cond, doc, f"{prefix}{key}.")
        else:
            ok = condition_matches(cond, field(doc, prefix + key))
        if not ok:
            return False
    return True


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 5), st.sampled_from(
    ["", "household", "household_visit", "completed", "yuan", "3", "active", "13905700001",
     "𠮷", "王", "hardship", "elderly_alone"]))
ARGS = {**dict.fromkeys(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"],
                        st.one_of(VALUES, st.lists(VALUES, max_size=2))),
        "$exists": st.booleans(),
        "$type": st.sampled_from(["null", "boolean", "number", "string", "array", "object"]),
        "$in": st.lists(VALUES.filter(lambda v: v is not None), max_size=3),
        "$nin": st.lists(VALUES.filter(lambda v: v is not None), max_size=3),
        "$all": st.lists(VALUES, max_size=2), "$size": st.integers(0, 2),
        "$mod": st.tuples(st.sampled_from([-3, 2, 3]), st.integers(-1, 2)).map(list)}
FIELD_PATHS = ["type", "persons_present", "outcome", "status", "phone", "address",
               "special_groups", "special_groups",
               "address.compound", "address.room", "registry.source", "views.by_type.reduce",
               "nope", "nope.deeper"]
OPS = st.sampled_from(sorted(ARGS)).flatmap(lambda op: ARGS[op].map(lambda a: {op: a}))
CONDITION = st.deferred(lambda: st.one_of(
    VALUES, OPS, st.builds(lambda a, b: {**a, **b}, OPS, OPS),
    st.builds(lambda c: {"$not": c}, OPS),
    st.dictionaries(st.sampled_from(["compound", "room", "x"]), VALUES, min_size=1,
                    max_size=2)))
MEANINGFUL = st.deferred(lambda: st.one_of(
    st.dictionaries(st.sampled_from(FIELD_PATHS), CONDITION, max_size=3),
    st.builds(lambda op, parts: {op: parts}, st.sampled_from(["$and", "$or", "$nor"]),
              st.lists(MEANINGFUL, min_size=1, max_size=3)),
    st.builds(lambda part: {"$not": part}, MEANINGFUL)))


@pytest.mark.slow  # generated inputs, 150 selectors
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(selector=MEANINGFUL)
async def test_a_selector_means_what_it_means_in_couchdb(scene: Scene, selector: Any) -> None:
    """The selector the gateway rewrites for the store selects what CouchDB's own reading of
    it would, over the grid's records and design documents."""
    resp = await scene.changes("filter=_selector&include_docs=true", {"selector": selector})
    page = await resp.json()
    if resp.status == 400 and "nested" in page["reason"]:
        return  # deeper than MAX_SELECTOR_DEPTH: refused, the only refusal here
    assert resp.status == 200, (selector, page)
    got = sorted(r["id"] for r in page["results"])
    docs = await scene.city.run(lambda: [row.doc for row in scene.city.db(scene.grid).view(
        "_all_docs", include_docs=True)])
    assert got == sorted(d["_id"] for d in docs if matches(selector, d)), selector
