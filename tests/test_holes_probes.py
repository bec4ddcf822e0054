"""Asking whether a database still exists costs the store little (issue 13, item 11).

A read unanswered after DELETED_PROBE_SECONDS asks the store for `_all_dbs`, so one to a deleted
database ends in a 404 at once. The live feeds' idle longpolls (up to 25 s each, one per watched
database) are such reads: idle, 500 watchers asked for `_all_dbs` some 250 times a second. These
tests count the `_all_dbs` reaching the store through a proxy.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from conftest import City

from server.domain.scope import grid_db
from server.store.couch import DELETED_PROBE_SECONDS, CouchClient, NotFound, db_path
from server.store.embedded import EmbeddedStore, free_port
from server.sync.feeds import LiveFeeds, Watcher

IDLE_DATABASES = 12
SLOW_READS = 12
HELD_SECONDS = 3 * DELETED_PROBE_SECONDS + 0.5  # each read held: three probes apiece before


class Counting:
    """A proxy to the store counting the requests by path; `_changes` reads without `feed` to
    databases named in `held` are answered only after HELD_SECONDS (a store slow to answer)."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url
        self.seen: collections.Counter[str] = collections.Counter()
        self.held: set[str] = set()

    async def relay(self, request: web.Request) -> web.StreamResponse:
        self.seen[request.path] += 1
        db = request.path.lstrip("/").split("/", 1)[0]
        if db in self.held and request.path.endswith("/_changes") \
                and "feed" not in request.query:
            await asyncio.sleep(HELD_SECONDS)
        async with aiohttp.ClientSession() as session, session.request(
                request.method, self.store_url + request.path_qs, data=await request.read(),
                headers={"Content-Type": "application/json"}) as resp:
            return web.Response(body=await resp.read(), status=resp.status,
                                content_type="application/json")


@pytest.fixture
async def proxy(store: EmbeddedStore) -> AsyncIterator[tuple[str, Counting]]:
    counting = Counting(store.url)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", counting.relay)
    runner = web.AppRunner(app, shutdown_timeout=1.0)  # the store never ends idle longpolls
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", counting
    await runner.cleanup()


async def test_idle_live_feeds_do_not_ask_for_the_databases(
        proxy: tuple[str, Counting], city: City) -> None:
    url, counting = proxy
    dbs = [grid_db(city.grid()) for _ in range(IDLE_DATABASES)]
    async with aiohttp.ClientSession() as session:
        feeds = LiveFeeds(CouchClient(url, session))
        watchers = [Watcher(feeds, db) for db in dbs]
        for watcher in watchers:
            watcher.task = asyncio.create_task(watcher.run())
        try:
            await asyncio.sleep(HELD_SECONDS)  # the window measured: every longpoll idle
            watching = sum(1 for p in list(counting.seen) if p.endswith("/_changes"))
            assert watching == IDLE_DATABASES  # each watcher's longpoll reached the store
            assert counting.seen["/_all_dbs"] == 0
        finally:
            for watcher in watchers:
                assert watcher.task is not None
                watcher.task.cancel()
            await asyncio.gather(*(w.task for w in watchers if w.task), return_exceptions=True)
    for db in dbs:
        del city.couch[db]


async def test_slow_reads_share_one_list_of_databases(
        proxy: tuple[str, Counting], city: City) -> None:
    url, counting = proxy
    db = grid_db(city.grid())
    counting.held.add(db)
    async with aiohttp.ClientSession() as session:
        couch = CouchClient(url, session)
        pages = await asyncio.gather(*(couch.get(db_path(db, "_changes"))
                                       for _ in range(SLOW_READS)))
        assert all(isinstance(page["results"], list) for page in pages)
        # Each read probed every DELETED_PROBE_SECONDS; one list serves every probe meanwhile.
        assert counting.seen["/_all_dbs"] <= HELD_SECONDS // DELETED_PROBE_SECONDS + 1

        del city.couch[db]  # a read of a deleted database still ends in a 404, at once
        started = asyncio.get_running_loop().time()
        with pytest.raises(NotFound):
            await couch.get(db_path(db, "_changes"))
        assert asyncio.get_running_loop().time() - started < 3 * DELETED_PROBE_SECONDS
