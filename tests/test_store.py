"""The embedded store: started by the server when COUCHDB_URL is unset, bound to loopback only,
restarted when it dies (clients meanwhile get 503 with Retry-After), and the installation's uuid
never changes. The `linli` commands work on the installation with or without a running server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from conftest import PASSWORD, TEST_LIMITS, City, Proxy, basic, eventually, visit

from server.admin import directory
from server.config import Config
from server.domain.scope import DIRECTORY_DB
from server.store.couch import CouchClient, db_path
from server.store.embedded import NO_DISK_SIZE, EmbeddedStore
from server.web.app import create_app
from server.web.keys import STORE

pytestmark = pytest.mark.slow  # each test starts a store of its own, and kills or stops it

LOOPBACK_HEX = "0100007F"


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on `port`, from /proc/net/tcp (hex, as the kernel shows them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.rsplit(":", 1)
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def linli(data: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
    return subprocess.run([sys.executable, "-m", "server", "--data", str(data), *args],
                          input=(password + "\n") if password else None, capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture
async def embedded(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    data = tmp_path / "var"
    assert linli(data, "grid", "add", "g1", "--name", "一号网格").returncode == 0
    done = linli(data, "user", "add", "w.one", "--role", "worker", "--grid", "g1",
                 "--password-stdin", password=PASSWORD)
    assert done.returncode == 0, done.stderr
    config = Config.from_mapping({"data": data, **TEST_LIMITS})
    return await aiohttp_client(create_app(config))


async def test_server_runs_its_own_store_on_loopback(embedded: TestClient) -> None:
    store = embedded.app[STORE]
    assert store.url.startswith("http://127.0.0.1:")
    assert listening_addresses(store.port) == {LOOPBACK_HEX}
    resp = await embedded.get("/couch/grid-g1", headers=basic("w.one"))
    assert resp.status == 200, await resp.text()
    assert json.loads((store.data / "store.json").read_text())["url"] == store.url


async def test_store_restarted_after_crash_and_nothing_lost(
        embedded: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """And the log says why it died: the end of the dead process's output."""
    store = embedded.app[STORE]
    doc = visit("g1", "w.one", "before-crash")
    resp = await embedded.put(f"/couch/grid-g1/{doc['_id']}", json=doc, headers=basic("w.one"))
    assert resp.status == 201
    uuid_before = (await (await embedded.get("/couch/")).json())["uuid"]
    # Something for it to say: its log is quiet (no line per request, not even its start),
    # but a filter whose design document is missing leaves a warning in its output.
    async with aiohttp.ClientSession() as direct, direct.get(
            f"{store.url}/grid-g1/_changes?filter=gone/f") as answer:
        assert answer.status == 404
    await eventually(lambda: "UnhandledPromiseRejection" in store.last_words(10**6))
    store.kill_for_test()
    await asyncio.sleep(0.05)
    resp = await embedded.get("/couch/grid-g1", headers=basic("w.one"))
    if resp.status == 503:  # caught it while down: clients are told to retry, and when
        assert resp.headers["Retry-After"]
        assert (await resp.json())["error"] == "service_unavailable"
    for _ in range(200):
        resp = await embedded.get(f"/couch/grid-g1/{doc['_id']}", headers=basic("w.one"))
        if resp.status == 200:
            break
        await asyncio.sleep(0.1)
    assert resp.status == 200
    assert store.restarts == 1
    died, = [r.getMessage() for r in caplog.records if "embedded store exited" in r.getMessage()]
    assert "last words" in died and "UnhandledPromiseRejection" in died, died
    assert (await (await embedded.get("/api/health")).json())["tasks"]["store"] == {"status": "ok"}
    assert (await (await embedded.get("/couch/")).json())["uuid"] == uuid_before


async def test_store_down_answers_503(embedded: TestClient) -> None:
    store = embedded.app[STORE]
    store._stopping = True  # hold the supervisor back so the store stays down
    store.kill_for_test()
    store.process.wait()
    resp = await embedded.get("/couch/grid-g1/_all_docs", headers=basic("w.one"))
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    assert "暂时不可用" in (await resp.json())["reason"]
    health = await (await embedded.get("/api/health")).json()
    assert health["tasks"]["store"] == {"status": "failed"} and health["status"] == "failed"


async def test_uuid_survives_restarts(tmp_path: Path, aiohttp_client: Any) -> None:
    config = Config.from_mapping({"data": tmp_path / "var"})
    uuids = []
    for _ in range(2):
        client = await aiohttp_client(create_app(config))
        uuids.append((await (await client.get("/couch/")).json())["uuid"])
        await client.close()
    assert uuids[0] == uuids[1] and len(uuids[0]) == 32


async def test_cli_while_server_runs(embedded: TestClient) -> None:
    data = embedded.app[STORE].data
    done = await asyncio.to_thread(linli, data, "grid", "add", "g2", "--name", "二号网格")
    assert done.returncode == 0, done.stderr
    done = await asyncio.to_thread(
        linli, data, "user", "add", "w.two", "--role", "worker", "--grid", "g2",
        "--password-stdin", password="another-pass-2")
    assert done.returncode == 0, done.stderr
    for _ in range(100):
        resp = await embedded.get("/couch/_all_dbs", headers=basic("w.two", "another-pass-2"))
        if resp.status == 200:
            break
        await asyncio.sleep(0.05)
    assert await resp.json() == ["grid-g2"]
    listed = await asyncio.to_thread(linli, data, "grid", "list")
    assert listed.stdout.splitlines()[0].startswith("g1\t一号网格")
    refused = await asyncio.to_thread(linli, data, "user", "add", "w.three", "--role", "worker",
                                      "--grid", "nope", "--password-stdin",
                                      password="another-pass-3")
    assert refused.returncode == 1 and "unknown grid" in refused.stderr
    weak = await asyncio.to_thread(linli, data, "user", "passwd", "w.two", "--password-stdin",
                                   password="short")
    assert weak.returncode == 1 and "8" in weak.stderr


def test_a_user_names_only_grids_that_exist(city: City) -> None:
    """`linli user add` looks up the grids it names, not the whole list: an unknown, a
    mistyped or a deleted grid is refused, each named."""
    known, gone = city.blocking.grid(), city.blocking.grid()
    directory_db = city.couch[DIRECTORY_DB]
    directory_db.delete(directory_db[f"grid:{gone}"])
    assert directory.unknown_grids(city.couch, [known, "nope", gone]) == ["nope", gone]
    with pytest.raises(directory.DirectoryError, match="nope"):
        directory.add_user(city.couch, "w.nope", "worker", PASSWORD, grids=[known, "nope"])
    assert city.blocking.user(grids=[known])


def test_a_name_is_added_once_and_a_grid_named_again_keeps_its_records(city: City) -> None:
    """`add_user` writes without asking first whether the name is free (a request less for
    every account an import adds): the store refuses the second write of a name, the account
    stays as it was; a grid added again keeps its database and what is in it."""
    grid = city.blocking.grid()
    name = city.blocking.user(grids=[grid])
    first = city.couch[DIRECTORY_DB][f"user:{name}"]
    with pytest.raises(directory.DirectoryError, match="already exists"):
        directory.add_user(city.couch, name, "supervisor", "another-pass-4", communities=["c"])
    assert city.couch[DIRECTORY_DB][f"user:{name}"] == first
    city.blocking.db(grid).save({"_id": "kept", "type": "note"})
    again = directory.add_grid(city.couch, grid, "改名的网格")
    assert again.name == "改名的网格" and city.blocking.records(grid) == 1


async def test_a_settled_feed_reads_a_stream_of_writes_a_page_at_a_time(
        store: EmbeddedStore, store_session: aiohttp.ClientSession,
        proxies: Callable[..., Any]) -> None:
    """`follow(settle=...)` (the directory's follower): the first change after a quiet spell
    is read by the longpoll already waiting; the writes made while the follower settles are
    read together, not with one `_changes` each (each is a few ms of the store's one core)."""
    proxy: Proxy = await proxies(urllib.parse.urlsplit(store.url).port)
    couch, direct = CouchClient(proxy.url(), store_session), CouchClient(store.url,
                                                                          store_session)
    db = f"settle-{uuid.uuid4().hex[:10]}"
    await direct.put(db_path(db), None)
    seen: list[str] = []

    async def follow() -> None:
        async for change, _ in couch.follow(db, settle=2.0):
            seen.append(change["id"])

    following = asyncio.ensure_future(follow())
    try:
        await eventually(lambda: proxy.paths("GET") == [f"/{db}/_changes"], what="a longpoll")
        await direct.put(db_path(db, "first"), {})
        await eventually(lambda: seen == ["first"], what="the first change")
        reads = len(proxy.paths("GET"))
        for n in range(10):
            await direct.put(db_path(db, f"then-{n}"), {})
        await eventually(lambda: len(seen) == 11, what="the ten writes", seconds=20)
        assert seen[1:] == [f"then-{n}" for n in range(10)]
        assert len(proxy.paths("GET")) - reads <= 2  # one read of the ten, and the next wait
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await direct.request("DELETE", db_path(db))


async def test_the_store_walks_no_folder_to_answer(store: EmbeddedStore,
                                                   store_session: aiohttp.ClientSession) -> None:
    """PouchDB Server asks its `_users` database for its info at every request, and pouchdb-size
    walked that database's folder for a `disk_size` each time, about 30 % of the store's CPU
    (server/store/no_disk_size.cjs): a database's info comes without it, and with what
    replication reads."""
    db = f"sizes-{uuid.uuid4().hex[:10]}"
    async with store_session.put(f"{store.url}/{db}") as resp:
        assert resp.status == 201
    async with store_session.put(f"{store.url}/{db}/a", json={"n": 1}) as resp:
        assert resp.status == 201
    async with store_session.get(f"{store.url}/{db}") as resp:
        info = await resp.json(content_type=None)
    assert "disk_size" not in info
    assert info["db_name"] == db and info["doc_count"] == 1 and info["update_seq"] == 1
    assert store.command()[1:3] == ["--require", str(NO_DISK_SIZE)]


@pytest.mark.parametrize(("method", "path", "changes"), [
    ("GET", "/grid-g1/household:g1-1", False),
    ("HEAD", "/grid-g1", False),
    ("POST", "/grid-g1/_bulk_get?revs=true", False),
    ("POST", "/grid-g1/_all_docs", False),
    ("POST", "/grid-g1/_revs_diff", False),
    ("POST", "/grid-g1/_changes?since=0", False),
    ("POST", "/linli-receipts/_design/receipts/_view/by_rev", False),
    ("POST", "/grid-g1/_bulk_docs", True),
    ("POST", "/grid-g1", True),
    ("PUT", "/grid-g1/_local/checkpoint", True),
    ("PUT", "/grid-g1", True),
    ("DELETE", "/grid-g1/household:g1-1?rev=1-a", True),
])
def test_writes_held_after_an_io_error_are_the_writes(method: str, path: str,
                                                       changes: bool) -> None:
    """After the store's I/O error only what may change the store waits for its restart."""
    from server.store.couch import writes
    assert writes(method, path) is changes
