"""Issue 13, item 14 (store supervision) and item 11 (no leaked connections).

Item 14: the embedded store killed (SIGKILL of its pid) in the middle of a real PouchDB client's
push of 2,000 records: every request in flight answers 503 with Retry-After within a second, the
store is restarted, and after the client's retry every record is stored once with a receipt;
the server itself killed mid-push: the receipts it had not written yet are rebuilt from the store
at the next start, marked as rebuilt.

Item 11: a live `_changes` ends when its database is deleted, when the client goes away and at
its timeout; a client resetting its connection is one INFO line, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import os
import signal
import socket
import struct
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from conftest import City, NodeClient, Proxy, basic, eventually, visit, wait_for_user
from test_faults import (
    ServerProcess,
    add_worker_in,
    each_once,
    own_app,
    push,
    served,  # noqa: F401 - a fixture
    store_get,
    stored,
    stored_ids,
    visits,
    write_docs,
)

from server.config import Config
from server.domain.scope import RECEIPTS_DB, grid_db
from server.store.embedded import EmbeddedStore
from server.web.app import create_app
from server.web.keys import LIVE_FEEDS, STORE


async def receipt_docs(store_url: str, db: str) -> list[dict[str, Any]]:
    rows = (await store_get(f"{store_url}/{RECEIPTS_DB}/_all_docs", include_docs="true"))["rows"]
    return [row["doc"] for row in rows
            if row["doc"].get("type") == "receipt" and row["doc"].get("db") == db]


def receipts_by_rev(docs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for doc in docs:
        for doc_id, rev in doc["revs"]:
            found.setdefault((doc_id, rev), []).append(doc)
    return found


async def every_revision_has_one_receipt(store_url: str, db: str, seconds: float = 60
                                         ) -> dict[tuple[str, str], dict[str, Any]]:
    """Wait until each stored revision of `db` has a receipt; each has exactly one."""
    async def all_receipted() -> dict[tuple[str, str], list[dict[str, Any]]] | None:
        records = await stored(store_url, db)
        revs = {(doc_id, doc["_rev"]) for doc_id, doc in records.items()}
        by_rev = receipts_by_rev(await receipt_docs(store_url, db))
        return by_rev if revs <= by_rev.keys() else None

    by_rev = await eventually(all_receipted, seconds, every=0.2, what="every revision receipted")
    twice = {key: docs for key, docs in by_rev.items() if len(docs) > 1}
    assert not twice, list(twice.items())[:3]
    return {key: docs[0] for key, docs in by_rev.items()}


def utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


@pytest.mark.slow
async def test_server_killed_mid_push_receipts_rebuilt(served: ServerProcess,  # noqa: F811
                                                       node: NodeClient) -> None:
    """`kill -9` of `linli serve` just after it acknowledged a batch (its receipts are written
    a moment later, in the background): at the next start every acknowledged record gets its
    receipt, rebuilt from the store and marked so; the retry's records get ordinary ones."""
    grid = f"rcpt{os.getpid()}"
    db = grid_db(grid)
    worker = await served.add_worker([grid])
    docs = visits(grid, worker, 300)
    proxy = await Proxy(served.port).start()
    killed_at: list[datetime.datetime] = []

    def kill_once_the_third_batch_is_answered(method: str, path: str) -> None:
        if (path.split("?")[0].endswith("/_bulk_docs") and proxy.bulk_docs_seen == 3
                and served.process is not None and served.process.poll() is None):
            served.kill9()
            killed_at.append(datetime.datetime.now(datetime.UTC))

    proxy.on_answer = kill_once_the_third_batch_is_answered
    remote = proxy.url(f"/couch/{db}")
    try:
        first = await push(node, remote, "phone", worker, batch_size=50,
                           docs_file=write_docs(node, "docs", docs))
    finally:
        proxy.on_answer = None
    assert not first["ok"] and killed_at, first
    acked = set(first["acked"])
    assert 100 <= len(acked) < len(docs)
    # What the killed server left: the store it orphaned still runs. Receipts lost there are
    # the point of this test (printed, as the kill's timing decides how many).
    left = receipts_by_rev(await receipt_docs(served.store_url(), db))
    print(f"acknowledged without a receipt at the kill: "
          f"{len(acked - {i for i, _ in left})} of {len(acked)}")

    await served.start()
    receipts = await every_revision_has_one_receipt(served.store_url(), db)
    assert acked <= {doc_id for doc_id, _ in receipts}
    for (doc_id, _rev), receipt in receipts.items():
        if receipt.get("rebuilt"):
            assert receipt["user"] is None  # who sent it is not known any more
            assert utc(receipt["received_at"]) >= killed_at[0]  # by the restart at the latest
            assert utc(receipt["rebuilt_at"]) >= utc(receipt["received_at"])
        else:
            assert receipt["user"] == worker
            assert utc(receipt["received_at"]) <= killed_at[0]
        assert doc_id in acked

    before_retry = await stored_ids(served.store_url(), db)
    try:
        retry = await push(node, remote, "phone", worker, batch_size=50)
    finally:
        await proxy.close()
    assert retry["ok"], retry
    assert retry["docs_written"] == len(docs) - len(before_retry)  # nothing sent twice
    each_once(await stored(served.store_url(), db), docs)
    receipts = await every_revision_has_one_receipt(served.store_url(), db)
    fresh = [r for (doc_id, _), r in receipts.items() if doc_id not in acked]
    assert fresh and all(not r.get("rebuilt") and r["user"] == worker for r in fresh)


@pytest.mark.slow
async def test_store_killed_mid_push_of_2000(tmp_path: Path, node: NodeClient) -> None:
    """SIGKILL of the store's pid while a real PouchDB client pushes 2,000 records and phones
    wait on live feeds: every request in flight answers 503 with Retry-After within a second,
    the store is restarted, and after the client's retry all 2,000 are stored once, each with
    one receipt (those of a batch the store took as it died included)."""
    client = await own_app(tmp_path / "var")
    try:
        store = client.app[STORE]
        grid = "storekill2000"
        db = grid_db(grid)
        quiet = grid_db("storekillquiet")  # a grid nobody writes to while its phones wait
        worker = await add_worker_in(client, store.url, [grid, "storekillquiet"])
        docs = visits(grid, worker, 2000)
        remote = str(client.make_url(f"/couch/{db}"))
        pushing = asyncio.ensure_future(push(node, remote, "phone", worker, batch_size=100,
                                             docs_file=write_docs(node, "docs", docs)))
        async def well_under_way() -> bool:
            assert not pushing.done(), pushing.result()
            return len(await stored_ids(store.url, db)) >= 700

        await eventually(well_under_way, 120, every=0.02)
        # Phones waiting on a grid's live feed, without heartbeats: nothing sent yet.
        waiting: list[asyncio.Future[tuple[int, str, float]]] = []

        async def wait_on_feed() -> tuple[int, str, float]:
            resp = await client.get(f"/couch/{quiet}/_changes", headers=basic(worker), params={
                "feed": "longpoll", "since": "now", "timeout": "60000"})
            await resp.read()
            return resp.status, resp.headers.get("Retry-After", ""), time.monotonic()

        waiting = [asyncio.ensure_future(wait_on_feed()) for _ in range(3)]
        feeds = client.app[LIVE_FEEDS]
        await eventually(lambda: feeds.waiting() == 3)  # all three wait in the server
        pid = store.process.pid
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        for status, retry_after, at in await asyncio.wait_for(asyncio.gather(*waiting), 30):
            assert status == 503 and retry_after, status
            assert at - killed < 1.0, at - killed
        first = await asyncio.wait_for(pushing, 120)
        assert not first["ok"] and first["error"]["status"] == 503, first
        assert first["local_doc_count"] == len(docs)
        async def restarted() -> bool:  # by the supervisor
            return (store.restarts == 1 and store.process.pid != pid and (await client.get(
                f"/couch/{db}", headers=basic(worker))).status == 200)

        await eventually(restarted, 30)
        before_retry = await stored_ids(store.url, db)
        assert set(first["acked"]) <= before_retry
        retry = await push(node, remote, "phone", worker, batch_size=100)
        assert retry["ok"], retry
        assert retry["docs_written"] == len(docs) - len(before_retry)
        each_once(await stored(store.url, db), docs)
        receipts = await every_revision_has_one_receipt(store.url, db)
        assert len(receipts) == len(docs)
        assert all(r["user"] == worker for r in receipts.values())
    finally:
        await client.close()


@pytest.mark.slow  # a fault: the store's answer lost
async def test_a_batch_stored_as_the_store_failed_gets_its_receipt(
        aiohttp_client: Any, config: Config, store: EmbeddedStore, city: City,
        node: NodeClient) -> None:
    """The store takes a batch and its connection dies before the answer reaches the server
    (a store dying at that moment): the phone gets 503 and its retry finds the records there
    (`_revs_diff`), so nothing would ever carry a receipt for them. The server rebuilds those
    receipts, with the sender and the moment the batch arrived, since it still knows them."""
    to_store = await Proxy(int(store.url.rsplit(":", 1)[1])).start()
    batches: list[str] = []

    def second_batch_of_the_grid(method: str, path: str) -> bool:
        if method == "POST" and path.split("?")[0] == f"/{grid_db(grid)}/_bulk_docs":
            batches.append(path)
            return len(batches) == 2
        return False

    to_store.drop_answer = second_batch_of_the_grid
    grid = await city.grid()
    client = await aiohttp_client(create_app(dataclasses.replace(
        config, couchdb_url=to_store.url(""))))
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    db = grid_db(grid)
    docs = visits(grid, worker, 150)
    sent = datetime.datetime.now(datetime.UTC)
    first = await push(node, str(client.make_url(f"/couch/{db}")), "phone", worker,
                       batch_size=50, docs_file=write_docs(node, "docs", docs))
    assert not first["ok"] and first["error"]["status"] == 503, first
    assert to_store.cuts == 1 and len(first["acked"]) == 50
    unanswered = await stored_ids(store.url, db) - set(first["acked"])
    assert unanswered  # the second batch is there, though the phone was not told
    retry = await push(node, str(client.make_url(f"/couch/{db}")), "phone", worker,
                       batch_size=50)
    assert retry["ok"] and retry["docs_written"] == 100 - len(unanswered), retry
    each_once(await stored(store.url, db), docs)
    receipts = await every_revision_has_one_receipt(store.url, db, 30)
    await to_store.close()
    rebuilt = {doc_id for (doc_id, _), r in receipts.items() if r.get("rebuilt")}
    assert rebuilt == unanswered
    assert all(r["user"] == worker and utc(r["received_at"]) >= sent
               for r in receipts.values())


# -- item 11: no leaked connections --------------------------------------------------------------

@pytest.fixture
async def feeds_client(aiohttp_client: Any, config: Config) -> TestClient:
    return await aiohttp_client(create_app(dataclasses.replace(config, max_feeds_per_user=100)))


@pytest.mark.slow  # waits out heartbeats, three times
@pytest.mark.parametrize("attempt", range(3))  # the store's hang came one time in three
async def test_a_deleted_database_ends_its_live_feeds_at_once(
        feeds_client: TestClient, city: City, attempt: int) -> None:
    """Phones waiting on a grid's live feed (with and without heartbeats) learn within
    seconds that its database was deleted (PouchDB Server never ends the server's own
    longpoll on it, and at times never answers a read of a database deleted a moment before),
    and any request to it then answers 404 at once: a HEAD of a live feed too, which waited
    for the read timeout (90 s) and answered 503."""
    client = feeds_client
    feeds = client.app[LIVE_FEEDS]
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    db = grid_db(grid)

    async def wait_on_feed(**params: str) -> tuple[int, float]:
        resp = await client.get(f"/couch/{db}/_changes", headers=basic(worker), params={
            "feed": "longpoll", "since": "now", **params})
        try:
            await resp.read()
        except aiohttp.ClientPayloadError:  # heartbeats went out: the connection is cut
            return 0, time.monotonic()
        return resp.status, time.monotonic()

    waiting = [asyncio.ensure_future(wait_on_feed(timeout="60000")) for _ in range(3)]
    waiting.append(asyncio.ensure_future(wait_on_feed(heartbeat="1000")))
    await eventually(lambda: feeds.waiting() == 4 and feeds.watching() == 1)
    await asyncio.sleep(1.5)  # a heartbeat went out
    deleted = time.monotonic()
    await asyncio.to_thread(city.couch.delete, db)
    ended = await asyncio.wait_for(asyncio.gather(*waiting), 60)
    assert [status for status, _ in ended] == [404, 404, 404, 0], ended
    assert max(at for _, at in ended) - deleted < 5.0, [at - deleted for _, at in ended]
    await eventually(lambda: not feeds.watchers, 15)  # its store longpoll closed
    for method, path, params in [
            ("GET", "", {}), ("HEAD", "/_changes", {"feed": "longpoll", "since": "now"}),
            ("GET", "/_changes", {"feed": "longpoll", "since": "now", "timeout": "60000"}),
            ("POST", "/_bulk_docs", {}), ("GET", "/_all_docs", {})]:
        started = time.monotonic()
        resp = await client.request(method, f"/couch/{db}{path}", params=params,
                                    headers=basic(worker),
                                    json={"docs": [visit(grid, worker, "late")]}
                                    if method == "POST" else None)
        assert resp.status == 404, (method, path, resp.status, await resp.text())
        assert time.monotonic() - started < 2.0, (method, path)


async def raw_database(city: City) -> tuple[str, str]:
    """A database outside Linli's naming scheme (relayed as it is, to admins only) and an
    admin."""
    name = f"plain{os.getpid()}x{os.urandom(3).hex()}"
    await asyncio.to_thread(city.couch.create, name)
    return name, await city.user("admin")


async def test_a_relayed_live_feed_ends_at_its_timeout_and_when_its_client_goes(
        feeds_client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """A live feed relayed as it is (an admin's, on a database of their own) ends at CouchDB's
    `timeout` (the store ignores it); a client that hangs up while the store says nothing is
    noticed within seconds (not at the store's next heartbeat or change), in one INFO line."""
    client = feeds_client
    caplog.set_level(logging.INFO)
    name, admin = await raw_database(city)
    await wait_for_user(client, admin)
    started = time.monotonic()
    resp = await client.get(f"/couch/{name}/_changes", headers=basic(admin), params={
        "feed": "longpoll", "since": "now", "timeout": "2000", "heartbeat": "1000"})
    with contextlib.suppress(aiohttp.ClientPayloadError):
        await asyncio.wait_for(resp.read(), 30)
    assert time.monotonic() - started < 6.0

    url = str(client.make_url(f"/couch/{name}/_changes"))
    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(session.get(url, headers=basic(admin), params={
            "feed": "continuous", "since": "now", "heartbeat": "60000"}))
        await asyncio.sleep(1.0)
        pending.cancel()
    hung_up = time.monotonic()
    with contextlib.suppress(asyncio.CancelledError):
        await pending

    def noticed() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "went away" in r.getMessage()
                and "_changes" in r.getMessage()]

    await eventually(lambda: bool(noticed()), 10)
    assert time.monotonic() - hung_up < 4.0
    assert len(noticed()) == 1 and noticed()[0].levelno == logging.INFO


async def reset_after(port: int, request: bytes, read_bytes: int) -> None:
    """Send `request`, read `read_bytes` of the answer (0: none), then reset the connection
    (RST, as a phone losing its network or a killed client does)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    if read_bytes:
        await reader.readexactly(read_bytes)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.mark.slow  # faults: 20 connections reset
async def test_a_client_resetting_its_connection_is_one_info_line(
        feeds_client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """Resets at every stage of an answer (before it, in a long streamed one, while a live
    feed waits with heartbeats): never a traceback or an error, at most one INFO line each."""
    client = feeds_client
    caplog.set_level(logging.INFO)
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    db = grid_db(grid)
    docs = [visit(grid, worker, f"{i:04d}", notes="x" * 2000) for i in range(300)]
    resp = await client.post(f"/couch/{db}/_bulk_docs", json={"docs": docs},
                             headers=basic(worker))
    assert resp.status == 201
    port = client.server.port
    auth = basic(worker)["Authorization"]

    def get(path: str) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
                f"Accept: application/json\r\n\r\n").encode()

    big = f"/couch/{db}/_all_docs?include_docs=true"
    live = f"/couch/{db}/_changes?feed=longpoll&since=now&heartbeat=1000"
    cases = [(get(big), 0), (get(big), 200), (get(f"/couch/{db}/{docs[0]['_id']}"), 0),
             (get(live), 0), (get(live), 200)]
    for request, read_bytes in cases * 4:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await reset_after(port, request, read_bytes)
    # the sweep finds the waiting feeds' clients gone, and says so
    await eventually(lambda: client.app[LIVE_FEEDS].waiting() == 0 and len(
        [r for r in caplog.records if "went away" in r.getMessage()]) >= 8, 15)
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info
           or ("went away" in r.getMessage() and r.levelno > logging.INFO)]
    assert not bad, [(r.name, r.getMessage()) for r in bad][:5]
    lines = [r for r in caplog.records if "went away" in r.getMessage()]
    assert all(r.levelno == logging.INFO for r in lines)
    assert len(lines) <= len(cases) * 4
    assert len(lines) >= 8  # the live feeds' (5 of 20 at least) and the streamed ones
