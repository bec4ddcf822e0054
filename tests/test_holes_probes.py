"""Asking whether a database still exists costs the store little (issue 13, item 11).

A read unanswered after DELETED_PROBE_SECONDS asks the store for `_all_dbs`, so one to a deleted
database ends in a 404 at once. The live feeds' idle longpolls (up to 25 s each, one per watched
database) are such reads: idle, 500 watchers asked for `_all_dbs` some 250 times a second. These
tests count the `_all_dbs` reaching the store through a proxy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.parse
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from conftest import City, Proxy, eventually

from server.domain.scope import grid_db
from server.store.couch import DELETED_PROBE_SECONDS, CouchClient, NotFound, db_path
from server.store.embedded import EmbeddedStore
from server.sync.feeds import LiveFeeds, Watcher

IDLE_DATABASES = 12
SLOW_READS = 12
HELD_SECONDS = 3 * DELETED_PROBE_SECONDS + 0.5  # each read held: three probes apiece before


@dataclasses.dataclass
class SlowStore:
    """The store behind a proxy: `_changes` reads without `feed` of the databases in `held`
    are answered only after HELD_SECONDS (a store slow to answer)."""

    proxy: Proxy
    held: set[str]

    def seen(self, path: str) -> int:
        return self.proxy.paths().count(path)


@pytest.fixture
async def slow_store(store: EmbeddedStore, proxies: Callable[..., Awaitable[Proxy]]
                     ) -> SlowStore:
    held: set[str] = set()

    def hold(method: str, path: str) -> float:
        where, _, query = path.partition("?")
        return HELD_SECONDS if (where.lstrip("/").split("/", 1)[0] in held
                                and where.endswith("/_changes")
                                and "feed" not in urllib.parse.parse_qs(query)) else 0

    return SlowStore(await proxies(int(store.url.rsplit(":", 1)[1]), hold=hold), held)


async def test_idle_live_feeds_do_not_ask_for_the_databases(
        slow_store: SlowStore, city: City) -> None:
    dbs = [grid_db(await city.grid()) for _ in range(IDLE_DATABASES)]
    async with aiohttp.ClientSession() as session:
        feeds = LiveFeeds(CouchClient(slow_store.proxy.url(), session))
        watchers = [Watcher(feeds, db) for db in dbs]
        for watcher in watchers:
            watcher.task = asyncio.create_task(watcher.run())
        try:
            def watching() -> int:  # each watcher's longpoll reached the store
                return len({p for p in slow_store.proxy.paths() if p.endswith("/_changes")})

            await eventually(lambda: watching() == IDLE_DATABASES)
            await asyncio.sleep(HELD_SECONDS)  # the window observed: every longpoll idle
            assert watching() == IDLE_DATABASES
            assert slow_store.seen("/_all_dbs") == 0
        finally:
            for watcher in watchers:
                assert watcher.task is not None
                watcher.task.cancel()
            await asyncio.gather(*(w.task for w in watchers if w.task), return_exceptions=True)
    for db in dbs:
        await city.run(city.couch.delete, db)


async def test_slow_reads_share_one_list_of_databases(
        slow_store: SlowStore, city: City) -> None:
    db = grid_db(await city.grid())
    slow_store.held.add(db)
    async with aiohttp.ClientSession() as session:
        couch = CouchClient(slow_store.proxy.url(), session)
        pages = await asyncio.gather(*(couch.get(db_path(db, "_changes"))
                                       for _ in range(SLOW_READS)))
        assert all(isinstance(page["results"], list) for page in pages)
        # Each read probed every DELETED_PROBE_SECONDS; one list serves every probe meanwhile.
        assert slow_store.seen("/_all_dbs") <= HELD_SECONDS // DELETED_PROBE_SECONDS + 1

        # a read of a deleted database still ends in a 404, at once
        await city.run(city.couch.delete, db)
        started = asyncio.get_running_loop().time()
        with pytest.raises(NotFound):
            await couch.get(db_path(db, "_changes"))
        assert asyncio.get_running_loop().time() - started < 3 * DELETED_PROBE_SECONDS
