"""Fixtures: one real PouchDB Server for the session (started by the project's own store module on a
free loopback port), the real app in front of it, grids and users made with the `linli`
directory functions, a driver for real PouchDB clients in node, and the real app on a loopback
port with a real headless Chromium (Debian's, driven by Playwright) for the PWA's tests."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import couchdb
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, async_playwright

from server.admin import directory
from server.config import Config
from server.domain.scope import grid_db
from server.store.couch import basic_authorization
from server.store.embedded import PROJECT_ROOT, EmbeddedStore
from server.web.app import create_app

PASSWORD = "correct-horse-9"
NODE_CLIENT = PROJECT_ROOT / "tests" / "node" / "pouch_client.mjs"
TEST_LIMITS = {"max_document_bytes": 200_000, "max_attachment_bytes": 100_000,
               "max_request_bytes": 2_000_000, "max_batch_docs": 500,
               # hundreds of test grids: each app would build every grid's view indexes
               "aggregates_warm_up": False}
# Debian's build: Playwright's own browser download is not reachable (scripts/setup installs it).
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium calls Google's hosts, which on a closed
# network only slows every start down.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# A test using one of these is slow (a real browser, the app served for one, `linli serve` in its
# own process): it must carry @pytest.mark.slow, so that `scripts/test --fast` cannot silently grow
# (tests/test_markers.py). Hypothesis' generated inputs count too (tests/test_fuzz.py).
SLOW_FIXTURES = frozenset({"browser", "live_server", "served"})
_codes = itertools.count(1)


def slow_but_unmarked(items: list[pytest.Item]) -> list[str]:
    """The tests that use a slow fixture or generated inputs without the `slow` marker."""
    return [item.nodeid for item in items
            if (SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
                or getattr(getattr(item, "obj", None), "is_hypothesis_test", False))
            and item.get_closest_marker("slow") is None]


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if unmarked := slow_but_unmarked(items):
        raise pytest.UsageError("these tests are slow (a browser, a served process or "
                                "generated inputs) but not marked @pytest.mark.slow: "
                                + ", ".join(unmarked))


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path_factory.mktemp("store"))
    store.start_sync()
    yield store
    store.stop_sync()


@pytest.fixture(scope="session")
def couch(store: EmbeddedStore) -> couchdb.Server:
    return directory.prepared(couchdb.Server(store.url))


@pytest.fixture(scope="session")
def config(store: EmbeddedStore, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return Config.from_mapping({"data": tmp_path_factory.mktemp("data"),
                                "couchdb_url": store.url, **TEST_LIMITS})


@dataclasses.dataclass
class City:
    """Grids and users made on demand, each with a unique code so tests never share data."""

    couch: couchdb.Server

    def grid(self, community: str = "", street: str = "") -> str:
        code = f"t{os.getpid()}n{next(_codes)}"
        directory.add_grid(self.couch, code, f"测试网格 {code}", community=community,
                           street=street)
        return code

    def user(self, role: str = "worker", **scope: Any) -> str:
        name = f"{role[:3]}{uuid.uuid4().hex[:10]}"
        directory.add_user(self.couch, name, role, PASSWORD, **scope)
        return name

    def db(self, code: str) -> couchdb.Database:
        return self.couch[grid_db(code)]

    def records(self, code: str) -> int:
        """Documents in a grid's database other than its design documents (the views)."""
        return sum(1 for row in self.db(code).view("_all_docs")
                   if not row.id.startswith("_design/"))


@pytest.fixture(scope="session")
def city(couch: couchdb.Server) -> City:
    return City(couch)


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> TestClient:
    return await aiohttp_client(create_app(config))


async def wait_for_user(client: TestClient, name: str) -> None:
    """The server learns of new users from the directory's changes feed: wait for it."""
    from server.web.keys import DIRECTORY

    directory_index = client.app[DIRECTORY]
    for _ in range(200):
        if name in directory_index.users:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the server never saw user {name}")


def basic(name: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": basic_authorization(name, password)}


def visit(grid: str, author: str, n: int | str, **fields: Any) -> dict[str, Any]:
    doc = {"_id": f"household_visit:{grid}-{n}", "type": "household_visit",
           "schema_version": 1, "grid": grid, "created_by": author,
           "household": f"household:{grid}-0001", "visited_on": "2026-11-20",
           "outcome": "completed"}
    doc.update(fields)
    return doc


@dataclasses.dataclass
class NodeClient:
    """A real PouchDB 9 client in node; each call is one process of tests/node/pouch_client.mjs."""

    workdir: Path

    def local(self, name: str) -> str:
        return str(self.workdir / name)

    async def run(self, command: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            "node", str(NODE_CLIENT), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(command).encode()), timeout)
        lines = [line for line in out.decode().splitlines() if line.strip()]
        assert lines, f"no result from node (exit {proc.returncode}): {err.decode()[-2000:]}"
        result = json.loads(lines[-1])
        result["_exit"] = proc.returncode
        result["_stderr"] = err.decode()[-2000:]
        return result

    async def start(self, command: dict[str, Any]) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            "node", str(NODE_CLIENT), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(command).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        return proc


@pytest.fixture
def node(tmp_path: Path) -> NodeClient:
    return NodeClient(tmp_path)


def auth_for(name: str) -> dict[str, str]:
    return {"username": name, "password": PASSWORD}


@pytest.fixture
def make_docs() -> Callable[..., list[dict[str, Any]]]:
    def make(grid: str, author: str, count: int, start: int = 0) -> list[dict[str, Any]]:
        return [visit(grid, author, f"{i:05d}", persons_present=i % 7)
                for i in range(start, start + count)]
    return make


@pytest.fixture
async def store_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="session")
async def live_server(config: Config) -> AsyncIterator[str]:
    """The real app on a free loopback port for the whole session, for a real browser: its base
    URL, e.g. "http://127.0.0.1:43117"."""
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)  # port 0: the system picks a free one
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """A real headless Chromium for the session; each test opens its own context or page."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
