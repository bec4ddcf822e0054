"""Live changes feeds held by the server (sync/feeds.py): many phones waiting on one grid hold
one store connection between them, a write reaches them all at once, and a phone that waits gets
heartbeats, an empty page at its timeout, and its waiter released if it hangs up."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, visit, wait_for_user

from server.config import Config
from server.web.app import create_app
from server.web.keys import COUCH, FEEDS_HELD, LIVE_FEEDS

PHONES = 200


@pytest.fixture
async def feeds_client(aiohttp_client: Any, config: Config) -> TestClient:
    return await aiohttp_client(create_app(dataclasses.replace(config, max_feeds_per_user=1000)))


@pytest.fixture
async def phones() -> AsyncIterator[aiohttp.ClientSession]:
    """Many phones at once: no client-side connection limit (the test client's is 100)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def grid_with_two_workers(client: TestClient, city: City) -> tuple[str, str, str]:
    grid = await city.grid()
    worker, other = await city.user(grids=[grid]), await city.user(grids=[grid])
    await wait_for_user(client, worker)
    await wait_for_user(client, other)
    return grid, worker, other


async def current_seq(client: TestClient, grid: str, user: str) -> Any:
    resp = await client.get(f"/couch/grid-{grid}", headers=basic(user))
    return (await resp.json())["update_seq"]


def store_connections(store_url: str) -> int:
    """TCP connections this process holds open to the store, read from the kernel's table: the
    server's pool, whatever it thinks it holds."""
    port = int(store_url.rsplit(":", 1)[1].split("/")[0])
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/self/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


async def test_many_longpolls_share_one_store_connection(
        feeds_client: TestClient, phones: aiohttp.ClientSession, city: City,
        config: Config) -> None:
    client = feeds_client
    grid, worker, other = await grid_with_two_workers(client, city)
    since = json.dumps(await current_seq(client, grid, worker))
    url = str(client.make_url(f"/couch/grid-{grid}/_changes"))
    params = {"feed": "longpoll", "since": since, "heartbeat": "10000", "style": "all_docs"}

    async def phone() -> tuple[float, dict[str, Any]]:
        async with phones.get(url, params=params, headers=basic(worker)) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.read()
        return time.monotonic(), json.loads(body)

    feeds = client.app[LIVE_FEEDS]
    connector = client.app[COUCH].session.connector
    assert connector is not None
    # This process holds other connections to the store too (the tests' python-couchdb pool,
    # other apps of this worker): those are counted before the phones come, from the sockets
    # that are not this app's, and left out of what the waits may hold.
    ours = {id(c.transport) for c in connector._acquired if c.transport is not None}
    ours |= {id(p.transport) for conns in connector._conns.values() for p, _ in conns
             if p.transport is not None}
    others = store_connections(config.couchdb_url or "") - len(ours)
    waiting = [asyncio.create_task(phone()) for _ in range(PHONES)]
    await eventually(lambda: feeds.waiting() == PHONES, 30)
    # The phones' first reads came all at once; the pool closes those idle connections after
    # its keep-alive (2 s, checked every 2 s). What stays open is what the waits hold.
    await eventually(lambda: store_connections(config.couchdb_url or "") <= others + 5, 15)
    # The pool's own count: the watcher's and the directory's longpolls, the residents
    # database's follower (server/sync/allowed.py), and at most one short read of a background
    # task (the two-second `_all_dbs` check of deleted databases, the residents' index reading
    # a grid): never one per phone.
    await eventually(lambda: len(connector._acquired) <= 4, 10)
    assert feeds.watching() == 1
    assert not any(task.done() for task in waiting)

    doc = visit(grid, other, "reach")
    sent = time.monotonic()
    resp = await client.put(f"/couch/grid-{grid}/{doc['_id']}", json=doc, headers=basic(other))
    assert resp.status == 201
    answers = await asyncio.wait_for(asyncio.gather(*waiting), 30)
    latencies = sorted(at - sent for at, _ in answers)
    for _at, page in answers:
        assert [change["id"] for change in page["results"]] == [doc["_id"]]
        assert page["last_seq"] == page["results"][0]["seq"]
    assert latencies[-1] < 3.0, latencies[-10:]  # every one of the 200, at once
    await eventually(lambda: feeds.waiting() == 0)
    assert client.app[FEEDS_HELD].held == {}


async def test_heartbeats_then_the_timeout_answer(feeds_client: TestClient, city: City) -> None:
    client = feeds_client
    grid, worker, _other = await grid_with_two_workers(client, city)
    seq = await current_seq(client, grid, worker)
    started = time.monotonic()
    resp = await client.get(f"/couch/grid-{grid}/_changes", headers=basic(worker), params={
        "feed": "longpoll", "since": json.dumps(seq), "heartbeat": "1000", "timeout": "3500"})
    assert resp.status == 200
    assert resp.content_type == "application/json"
    arrivals: list[tuple[float, bytes]] = []
    async for chunk in resp.content.iter_any():
        arrivals.append((time.monotonic() - started, chunk))
    body = b"".join(chunk for _, chunk in arrivals)
    # CouchDB's heartbeat: a newline while nothing happens; PouchDB parses past the whitespace.
    assert body.startswith(b"\n\n\n"), body
    assert arrivals[0][1].strip() == b"" and arrivals[0][0] < 2.0, arrivals
    assert json.loads(body) == {"results": [], "last_seq": seq}
    assert 3.4 < arrivals[-1][0] < 6.0, arrivals

    # No heartbeat asked: nothing until the timeout, then the empty page with the current seq
    # (since=now included, as CouchDB answers it).
    for since in (json.dumps(seq), "now"):
        started = time.monotonic()
        resp = await client.get(f"/couch/grid-{grid}/_changes", headers=basic(worker), params={
            "feed": "longpoll", "since": since, "timeout": "1000"})
        assert resp.status == 200
        assert await resp.read() == b'{"results":[],"last_seq":%d}\n' % seq
        assert 0.9 < time.monotonic() - started < 4.0


async def test_changes_already_there_are_answered_at_once(feeds_client: TestClient,
                                                         city: City) -> None:
    client = feeds_client
    grid, worker, other = await grid_with_two_workers(client, city)
    seq = await current_seq(client, grid, worker)
    doc = visit(grid, other, "before")
    assert (await client.put(f"/couch/grid-{grid}/{doc['_id']}", json=doc,
                             headers=basic(other))).status == 201
    started = time.monotonic()
    resp = await client.get(f"/couch/grid-{grid}/_changes", headers=basic(worker), params={
        "feed": "longpoll", "since": json.dumps(seq), "heartbeat": "10000",
        "include_docs": "true"})
    page = await resp.json()
    assert time.monotonic() - started < 2.0
    assert [c["doc"]["_id"] for c in page["results"]] == [doc["_id"]]


async def test_doc_ids_longpoll_wakes_only_for_its_documents(feeds_client: TestClient,
                                                            city: City) -> None:
    client = feeds_client
    grid, worker, other = await grid_with_two_workers(client, city)
    seq = await current_seq(client, grid, worker)
    mine, elsewhere = visit(grid, other, "mine"), visit(grid, other, "elsewhere")
    waiting = asyncio.ensure_future(client.post(
        f"/couch/grid-{grid}/_changes", headers=basic(worker), json={"doc_ids": [mine["_id"]]},
        params={"feed": "longpoll", "since": json.dumps(seq), "filter": "_doc_ids",
                "timeout": "20000"}))
    feeds = client.app[LIVE_FEEDS]
    await eventually(lambda: feeds.waiting() == 1)
    assert (await client.put(f"/couch/grid-{grid}/{elsewhere['_id']}", json=elsewhere,
                             headers=basic(other))).status == 201
    await asyncio.sleep(1.0)
    assert not waiting.done()  # woken, read again, nothing of its own: waits on
    assert (await client.put(f"/couch/grid-{grid}/{mine['_id']}", json=mine,
                             headers=basic(other))).status == 201
    resp = await asyncio.wait_for(waiting, 10)
    page = await resp.json()
    assert [c["id"] for c in page["results"]] == [mine["_id"]]


async def test_a_phone_that_hangs_up_releases_its_waiter(
        feeds_client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    client = feeds_client
    feeds = client.app[LIVE_FEEDS]
    feeds.linger_s = 0.2
    grid, worker, _other = await grid_with_two_workers(client, city)
    url = str(client.make_url(f"/couch/grid-{grid}/_changes"))
    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(session.get(url, headers=basic(worker), params={
            "feed": "longpoll", "since": "now", "timeout": "60000"}))
        await eventually(lambda: feeds.waiting() == 1 and feeds.watching() == 1)
        pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    # No heartbeat to fail on: the sweep finds it.
    await eventually(lambda: feeds.waiting() == 0, 5)
    await eventually(lambda: not feeds.watchers, 5)  # its watcher stopped after lingering
    assert client.app[FEEDS_HELD].held == {}
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # a hang-up is no error


@pytest.mark.slow  # waits out the store's linger
async def test_a_deleted_database_ends_the_waits(feeds_client: TestClient, city: City) -> None:
    client = feeds_client
    feeds = client.app[LIVE_FEEDS]
    feeds.cutoff_s, feeds.linger_s = 1.0, 0.2  # PouchDB Server never ends such a longpoll
    grid, worker, _other = await grid_with_two_workers(client, city)
    waiting = [asyncio.ensure_future(client.get(
        f"/couch/grid-{grid}/_changes", headers=basic(worker),
        params={"feed": "longpoll", "since": "now", "timeout": "60000"})) for _ in range(3)]
    await eventually(lambda: feeds.waiting() == 3)
    started = time.monotonic()
    await city.run(city.couch.delete, f"grid-{grid}")
    # Within a few seconds when the machine is idle (the cut-off and the two-second check of
    # `_all_dbs`); the bound says "long before the phone's own 60 s", which is what a phone feels,
    # and holds on two cores that are also driving browsers (it was 10 s and once missed there).
    for resp in await asyncio.wait_for(asyncio.gather(*waiting), 40):
        assert resp.status == 404
        assert (await resp.json())["error"] == "not_found"
    assert time.monotonic() - started < 30
    await eventually(lambda: not feeds.watchers, 5)
