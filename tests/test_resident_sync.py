"""The resident's sync endpoint (issue 15): `/couch/linli-resident` holds exactly the ids the
account may hold (server/sync/allowed.py), households and persons as the resident view, and
answers an id that is not the resident's exactly as a missing one. The real app on the real
embedded store; residents made by the real sign-up and verify."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from conftest import City, NodeClient, Proxy, basic, eventually
from test_residents_signup import (
    PASSWORD,
    Community,
    a_community,
    account_of,
    signup_body,
)
from test_residents_signup import joined as signed_up_and_verified

from server.config import Config
from server.domain.scope import Directory
from server.store.couch import CouchClient
from server.store.embedded import EmbeddedStore
from server.sync.allowed import SYNC_ID, ResidentIndex, ResidentSeq
from server.web.app import create_app
from server.web.keys import DIRECTORY, LIVE_FEEDS, RESIDENT_FEEDS_HELD, RESIDENT_INDEX

DB = "/couch/linli-resident"


async def two_neighbours(client: TestClient, city: City,
                         caplog: pytest.LogCaptureFixture) -> tuple[Community, str, str]:
    """王伟 at 3-2-301 and 李娜 at 3-2-302, each activated at once: their phones."""
    place = await a_community(client, city)
    phones = []
    for name, address in (("王伟", "三幢二单元301室"), ("李娜", "3幢2单元302")):
        phone = place.phones[name]  # on record: activated at once
        status, _ = await signed_up_and_verified(client, caplog,
                                                 signup_body(place, phone, name, address))
        assert status == 200
        phones.append(phone)
    index = client.app[RESIDENT_INDEX]
    for phone in phones:
        account = await account_of(client, phone)
        await eventually(lambda a=account: index.ids.households(a), what="the link indexed")
    return place, phones[0], phones[1]


async def test_a_sign_up_is_indexed_as_written_without_reading_its_grid_back(
        aiohttp_client: Any, config: Config, city: City, store: EmbeddedStore,
        proxies: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    """The server tells the index what a verify wrote, revisions and all: the resident's
    household is theirs when the verify answers, and the grid is not read back for it (one
    `_changes` a sign-up, a fifth of the store's work for one). The grid's first write is read,
    since the index had never read that grid."""
    proxy: Proxy = await proxies(urllib.parse.urlsplit(store.url).port)
    client = await aiohttp_client(create_app(dataclasses.replace(
        config, couchdb_url=proxy.url(), resident_sweep_seconds=3600)))
    place = await a_community(client, city)
    index, db = client.app[RESIDENT_INDEX], f"grid-{place.grid}"
    status, _ = await signed_up_and_verified(client, caplog, signup_body(
        place, place.phones["王伟"], "王伟", "3幢2单元301"))
    assert status == 200
    await eventually(lambda: db in index.since, what="the grid read once")
    await eventually(lambda: not index.reading, what="its read ended")
    before = len(proxy.requests)
    status, _ = await signed_up_and_verified(client, caplog, signup_body(
        place, place.phones["王芳"], "王芳", "3幢2单元301"))
    assert status == 200
    account = await account_of(client, place.phones["王芳"])
    assert index.ids.households(account) == (place.household(1),)
    assert not [p for _, p in proxy.requests[before:] if p.startswith(f"/{db}/_changes")]


async def feed(client: TestClient, phone: str, **params: str) -> dict[str, Any]:
    resp = await client.get(f"{DB}/_changes", params=params, headers=basic(phone, PASSWORD))
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_first_sync_holds_the_household_masked_and_nothing_of_the_neighbours(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, wang, li = await two_neighbours(client, city, caplog)
    account = await account_of(client, wang)
    page = await feed(client, wang, style="all_docs", since="0", include_docs="true")
    ids = {row["id"] for row in page["results"]}
    assert ids == {SYNC_ID, place.household(1), f"person:{place.grid}-1",
                   f"resident:{account}-{place.grid}-0001"}
    docs = {row["id"]: row["doc"] for row in page["results"]}
    household = docs[place.household(1)]
    assert household["head_name"] == "王伟" and household["phone"] == f"{wang[:3]}****{wang[-4:]}"
    assert "edits" not in household and "_revisions" not in household
    # Nothing of the neighbour's, on any reading path, answered as for a missing id.
    other, nowhere = place.household(2), f"household:{place.grid}-9999"
    auth = basic(wang, PASSWORD)
    for doc_id in (other, nowhere):
        resp = await client.get(f"{DB}/{doc_id}", headers=auth)
        assert (resp.status, await resp.json()) == (404, {"error": "not_found",
                                                          "reason": "missing"})
    answers = []
    for doc_id in (other, nowhere):
        got = []
        for method, path, body in (
                ("POST", "_bulk_get", {"docs": [{"id": doc_id}]}),
                ("POST", "_all_docs", {"keys": [doc_id]}),
                ("POST", "_revs_diff", {doc_id: ["1-abc"]})):
            resp = await client.request(method, f"{DB}/{path}", json=body, headers=auth)
            got.append((resp.status, (await resp.text()).replace(doc_id, "ID")))
        answers.append(got)
    assert answers[0] == answers[1]
    assert "李娜" not in json.dumps(page, ensure_ascii=False)
    # The neighbour's phone: their own household, not his.
    theirs = await feed(client, li, since="0")
    assert place.household(2) in {r["id"] for r in theirs["results"]}
    assert place.household(1) not in {r["id"] for r in theirs["results"]}


async def test_a_change_to_the_household_arrives_live_a_neighbours_never(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, wang, li = await two_neighbours(client, city, caplog)
    last = (await feed(client, wang, since="0"))["last_seq"]
    theirs = (await feed(client, li, since="0"))["last_seq"]
    waiting = asyncio.ensure_future(feed(client, wang, since=last, feed="longpoll",
                                         timeout="10000"))
    neighbour = asyncio.ensure_future(feed(client, li, since=theirs, feed="longpoll",
                                           timeout="3000"))
    feeds = client.app[LIVE_FEEDS]
    await eventually(lambda: len(feeds.by_key) == 2, what="both phones wait in the server")
    stored = await city.get(place.grid, place.household(1))
    await city.save(place.grid, {**stored, "head_name": "王伟伟"})
    client.app[RESIDENT_INDEX].notice(f"grid-{place.grid}")
    page = await asyncio.wait_for(waiting, 10)
    assert place.household(1) in {r["id"] for r in page["results"]}
    assert (await neighbour)["results"] == []
    assert ResidentSeq.parse(page["last_seq"]) is not None


def person(place: Community, n: int, household: int, name: str) -> dict[str, Any]:
    return {"_id": f"person:{place.grid}-{n}", "type": "person", "schema_version": 1,
            "grid": place.grid, "created_by": place.worker, "household": place.household(
                household), "name": name, "status": "present", "relationship": "2", "sex": "2",
            "birth_year": 1980, "birth_month": 1, "id_number": "330802198001010024"}


async def test_a_pouchdb_phone_replicates_its_household_live_and_purges_on_moving_out(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture,
        node: NodeClient) -> None:
    """A real PouchDB client replicating as the resident: the first pull brings exactly the
    allowed ids; a member added to the household arrives live, one added next door never;
    when the link is removed (moved out) the purge list names everything the phone held."""
    place, wang, _ = await two_neighbours(client, city, caplog)
    account = await account_of(client, wang)
    remote, local = str(client.make_url(DB)), node.local("phone")
    auth = {"username": wang, "password": PASSWORD}
    pulled = await node.run({"op": "pull", "remote": remote, "local": local, "auth": auth})
    assert pulled["ok"] and pulled["status"] == "complete", pulled
    held = await node.run({"op": "count", "local": local, "with_ids": True})
    link = f"resident:{account}-{place.grid}-0001"
    assert set(held["ids"]) == {SYNC_ID, place.household(1), f"person:{place.grid}-1", link}

    for target, household, arrives in ((f"person:{place.grid}-2", 1, True),
                                       (f"person:{place.grid}-3", 2, False)):
        watcher = await node.start({"op": "live_wait", "remote": remote, "local": local,
                                    "auth": auth, "wait_for_id": target, "timeout_ms": 4000})
        assert watcher.stdout is not None
        ready = json.loads(await asyncio.wait_for(watcher.stdout.readline(), 60))
        assert ready == {"ready": True}
        resp = await client.put(f"/couch/grid-{place.grid}/{target}",
                                json=person(place, int(target[-1]), household, "新成员"),
                                headers=basic(place.worker))
        assert resp.status == 201, await resp.text()
        result = json.loads(await asyncio.wait_for(watcher.stdout.readline(), 30))
        await watcher.wait()
        assert result["found"] is arrives, (target, result)
    held = await node.run({"op": "count", "local": local, "with_ids": True})
    assert f"person:{place.grid}-2" in held["ids"]
    assert f"person:{place.grid}-3" not in held["ids"]

    stored = await city.get(place.grid, link)
    await city.save(place.grid, {**stored, "status": "removed"})
    client.app[RESIDENT_INDEX].notice(f"grid-{place.grid}")
    index = client.app[RESIDENT_INDEX]
    await eventually(lambda: not index.ids.households(account), what="the move indexed")
    resp = await client.post("/api/residents/purge", json={"held": held["ids"]},
                             headers=basic(wang, PASSWORD))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["purge"] == sorted(set(held["ids"]) - {SYNC_ID})
    again = await node.run({"op": "pull", "remote": remote, "local": node.local("fresh"),
                            "auth": auth})
    assert again["ok"] and again["local_doc_count"] == 1, again  # the doorbell alone


def a_notice(place: Community, n: int, **fields: Any) -> dict[str, Any]:
    return {"_id": f"notice:{place.grid}-{n}", "type": "notice", "schema_version": 1,
            "created_by": "chen.jing", "title": "停水通知", "body": "12月5日停水检修。",
            "audience": {"level": "community", "codes": [place.code]}, "status": "published",
            "needs_confirmation": True, "published_at": "2026-12-03T09:00:00+08:00", **fields}


async def save_notice(city: City, doc: dict[str, Any]) -> None:
    await city.run(lambda: city.couch["linli-residents"].save(doc))


async def test_a_push_stores_nothing_and_the_routes_writes_come_back(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture,
        node: NodeClient) -> None:
    """A PouchDB push as the resident: a household edited, a receipt, a correction and a data
    request, forged or not, each denied naming the route of its kind, bilingual, and none of
    it stored. A receipt made by its route comes back to the phone on the next pull, and the
    notice of another community never does."""
    place, wang, li = await two_neighbours(client, city, caplog)
    me, neighbour = await account_of(client, wang), await account_of(client, li)
    await save_notice(city, a_notice(place, 1))
    await save_notice(city, a_notice(place, 2, audience={"level": "community",
                                                         "codes": ["elsewhere"]}))
    index = client.app[RESIDENT_INDEX]
    await eventually(lambda: f"notice:{place.grid}-1" in index.allowed(me).get(
        "residents", ()), what="the notice indexed")
    home, grid = place.household(1), place.grid
    receipt = {"_id": f"notice_receipt:{grid}-1:{me}", "type": "notice_receipt",
               "schema_version": 1, "created_by": me, "notice": f"notice:{grid}-1",
               "household": home, "grid": grid, "read_at": "2026-12-03T10:00:00+08:00"}
    household = {k: v for k, v in (await city.get(grid, home)).items() if k != "_rev"}
    pushed = {
        "household_edit": ({**household, "head_name": "冒名"}, "只能读取"),
        "receipt": (receipt, "/api/notices/<id>/receipt"),
        "as_neighbour": ({**receipt, "_id": f"notice_receipt:{grid}-1:{neighbour}",
                          "created_by": neighbour, "household": place.household(2)},
                         "/api/notices/<id>/receipt"),
        "correction": ({"_id": f"correction_request:{me}-1", "type": "correction_request",
                        "schema_version": 1, "grid": grid, "created_by": me, "household": home,
                        "changes": [{"record": home, "field": "/phone",
                                     "proposed": "13800138000"}], "status": "open"},
                       "/api/residents/corrections"),
        "data_request": ({"_id": f"data_request:{place.code}:{me}:20261203:1",
                          "type": "data_request", "schema_version": 1, "created_by": me,
                          "kind": "access", "status": "open",
                          "requested_at": "2026-12-03T10:00:00+08:00"},
                         "/api/residents/data-requests"),
    }
    remote = str(client.make_url(DB))
    auth = {"username": wang, "password": PASSWORD}
    result = await node.run({"op": "push", "remote": remote, "local": node.local("push"),
                             "auth": auth, "docs": [d for d, _ in pushed.values()]})
    assert result["ok"] and result["docs_written"] == 0, result
    denied = {d["id"]: d for d in result["denied"]}
    assert len(denied) == len(pushed), denied
    for doc, word in pushed.values():
        entry = denied[doc["_id"]]
        assert entry["error"] == "forbidden" and word in entry["reason"], (doc["_id"], entry)
        assert " / " in entry["reason"]  # zh-CN, then English
    residents = await city.run(city.couch.__getitem__, "linli-residents")
    for doc, _ in pushed.values():
        if doc["_id"] != home:
            assert await city.get(grid, doc["_id"]) is None, doc["_id"]
            assert await city.run(residents.get, doc["_id"]) is None, doc["_id"]
    assert (await city.get(grid, home))["head_name"] == "王伟"
    for method in ("PUT", "DELETE"):
        resp = await client.request(method, f"{DB}/{receipt['_id']}", json=receipt,
                                    headers=basic(wang, PASSWORD))
        assert resp.status == 403 and "只能读取" in (await resp.json())["reason"]
    # The receipt made by its route comes back to the phone.
    resp = await client.post(f"/api/notices/notice:{grid}-1/receipt", json={},
                             headers=basic(wang, PASSWORD))
    assert resp.status == 200, await resp.text()
    await eventually(lambda: receipt["_id"] in index.allowed(me).get("residents", ()),
                     what="the receipt indexed")
    local = node.local("pull")
    pulled = await node.run({"op": "pull", "remote": remote, "local": local, "auth": auth})
    assert pulled["ok"], pulled
    held = await node.run({"op": "count", "local": local, "with_ids": True})
    assert {receipt["_id"], f"notice:{grid}-1"} <= set(held["ids"])
    assert f"notice:{grid}-2" not in held["ids"]


async def test_a_server_started_later_knows_every_resident_and_reads_other_writers(
        aiohttp_client: Any, client: TestClient, city: City, config: Config,
        caplog: pytest.LogCaptureFixture) -> None:
    """The index of a server started after the residents joined is built from every grid at
    start (the default), and a write it did not make (another process, an import) reaches it
    at its sweep. The suite's own setting reads a grid from this server's first write on."""
    place, wang, _ = await two_neighbours(client, city, caplog)
    account = await account_of(client, wang)
    later = await aiohttp_client(create_app(dataclasses.replace(
        config, grid_passes_at_start=True)))
    index = later.app[RESIDENT_INDEX]
    index.sweep_seconds = 0.2
    await asyncio.wait_for(index.ready.wait(), 60)
    assert index.allowed(account)[f"grid:{place.grid}"] == {
        place.household(1), f"person:{place.grid}-1", f"resident:{account}-{place.grid}-0001"}
    await city.save(place.grid, person(place, 7, 1, "新成员"))
    await eventually(lambda: f"person:{place.grid}-7" in index.allowed(account).get(
        f"grid:{place.grid}", ()), what="the sweep reads the import")
    assert not client.app[RESIDENT_INDEX].every_grid


async def test_a_held_feed_rings_when_ids_leave_and_a_stale_seq_gets_a_resend(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """A live phone whose ids shrink with no row to send (its notice withdrawn) gets the
    constant linli-sync row at once, so its replication passes a batch and asks for its purge
    list; a seq from another process (or before a restart) gets every allowed id again."""
    place, wang, _ = await two_neighbours(client, city, caplog)
    account = await account_of(client, wang)
    notice = a_notice(place, 1)
    await save_notice(city, notice)
    index = client.app[RESIDENT_INDEX]
    await eventually(lambda: notice["_id"] in index.allowed(account).get("residents", ()),
                     what="the notice indexed")
    first = await feed(client, wang, since="0")
    held = {r["id"] for r in first["results"]}
    assert notice["_id"] in held
    waiting = asyncio.ensure_future(feed(client, wang, since=first["last_seq"],
                                         feed="longpoll", timeout="10000"))
    feeds = client.app[LIVE_FEEDS]
    await eventually(lambda: len(feeds.by_key) == 1, what="the phone waits in the server")
    residents = await city.run(city.couch.__getitem__, "linli-residents")
    stored = await city.run(residents.get, notice["_id"])
    await city.run(residents.save, {**stored, "status": "withdrawn"})
    page = await asyncio.wait_for(waiting, 10)
    assert [r["id"] for r in page["results"]] == [SYNC_ID]
    resp = await client.post("/api/residents/purge", json={"held": sorted(held)},
                             headers=basic(wang, PASSWORD))
    assert (await resp.json())["purge"] == [notice["_id"]]
    stale = str(ResidentSeq(10**9, "ffffffff"))
    again = await feed(client, wang, since=stale)
    assert {r["id"] for r in again["results"]} == held - {notice["_id"]}


async def test_residents_live_feeds_are_counted_apart_from_the_staffs(
        aiohttp_client: Any, client: TestClient, city: City, config: Config,
        caplog: pytest.LogCaptureFixture) -> None:
    """A resident's held feed costs no store connection: residents have their own count
    (`max_resident_feeds`), so a full staff count does not refuse them, and theirs refuses
    the one too many with 429 and Retry-After."""
    place, wang, li = await two_neighbours(client, city, caplog)
    small = await aiohttp_client(create_app(dataclasses.replace(
        config, max_live_feeds=1, max_resident_feeds=1)))
    await eventually(lambda: small.app[RESIDENT_INDEX].ready.is_set(), what="index ready")
    small.app[RESIDENT_INDEX].notice(f"grid-{place.grid}")
    first = await feed(small, wang, since="now")
    # held long enough to be seen held on a loaded machine (CI once saw a 3 s one end first)
    held = asyncio.ensure_future(feed(small, wang, since=first["last_seq"], feed="longpoll",
                                      timeout="8000"))
    staff = asyncio.ensure_future(small.get(
        f"/couch/grid-{place.grid}/_changes", params={"feed": "longpoll", "timeout": "8000"},
        headers=basic(place.worker)))
    await eventually(lambda: small.app[RESIDENT_FEEDS_HELD].held[
        account_name(small, wang)] == 1, what="the resident's feed held")
    resp = await small.get(f"{DB}/_changes", params={"feed": "longpoll", "since": "now"},
                           headers=basic(li, PASSWORD))
    assert resp.status == 429 and resp.headers["Retry-After"]
    assert (await held)["results"] == [] and (await staff).status == 200


def account_name(client: TestClient, phone: str) -> str:
    user = client.app[DIRECTORY].user(phone)
    return user.name if user is not None else ""


async def test_a_notice_is_read_from_the_store_once_per_revision_for_every_phone(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """Every phone of a community fetches a new notice at once: one store read of it is
    shared by all, until the notice changes; each phone gets it whole."""
    place, wang, li = await two_neighbours(client, city, caplog)
    notice = a_notice(place, 1)
    await save_notice(city, notice)
    index = client.app[RESIDENT_INDEX]
    account = await account_of(client, li)
    await eventually(lambda: notice["_id"] in index.allowed(account).get("residents", ()),
                     what="the notice indexed")
    asked = {"docs": [{"id": notice["_id"]}]}
    answers = await asyncio.gather(*(client.post(
        f"{DB}/_bulk_get?revs=true", json=asked, headers=basic(phone, PASSWORD))
        for phone in (wang, li, wang, li)))
    bodies = [await resp.json() for resp in answers]
    assert all(b == bodies[0] for b in bodies)
    [[got]] = [[d["ok"] for d in r["docs"]] for r in bodies[0]["results"]]
    assert got["title"] == "停水通知" and got["_revisions"]["start"] == 1
    rev, shared = index.notice_reads[notice["_id"]]
    assert rev == got["_rev"]
    await client.post(f"{DB}/_bulk_get", json=asked, headers=basic(wang, PASSWORD))
    assert index.notice_reads[notice["_id"]][1] is shared  # no new read
    residents = await city.run(city.couch.__getitem__, "linli-residents")
    stored = await city.run(residents.get, notice["_id"])
    await city.run(residents.save, {**stored, "title": "停水通知（更正）"})
    await eventually(lambda: index.notices[notice["_id"]][1] != rev, what="the edit indexed")
    resp = await client.post(f"{DB}/_bulk_get?revs=true", json=asked,
                             headers=basic(wang, PASSWORD))
    [result] = (await resp.json())["results"]
    assert result["docs"][0]["ok"]["title"] == "停水通知（更正）"
    assert result["docs"][0]["ok"]["_revisions"]["start"] == 2
    assert index.notice_reads[notice["_id"]][1] is not shared


async def test_stamps_are_kept_from_the_index_ready_on() -> None:
    """Before the index is ready no phone holds a seq of this process, so no stamp is kept
    (164,253 households' stamps were 22 MiB at the full city), and a seq handed out at ready
    is not reset by them; from ready on, a change to a household stamps it."""
    async with aiohttp.ClientSession() as session:  # never asked: nothing is read
        index = ResidentIndex(CouchClient("http://127.0.0.1:9", session), Directory())
        home = {"_id": "household:h1", "type": "household", "status": "active"}
        index.apply({"doc": home}, "grid:g1")
        index.apply({"doc": {**home, "_id": "resident:r1-h1", "type": "resident",
                             "account": "r1", "household": "household:h1"}}, "grid:g1")
        assert index.stamps == {}
        index.ready.set()
        before = ResidentSeq(index.counter, index.epoch)
        assert index.reset_at("r1") <= before.counter
        index.apply({"doc": {"_id": "person:h1-1", "type": "person", "status": "present",
                             "household": "household:h1"}}, "grid:g1")
        assert index.stamps == {"household:household:h1": index.counter}
