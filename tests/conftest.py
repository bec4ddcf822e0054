"""Fixtures: one real PouchDB Server for the session (started by the project's own store module on a
free loopback port), the real app in front of it, grids and users made with the `linli`
directory functions, a driver for real PouchDB clients in node, and the real app on a loopback
port with a real headless Chromium (Debian's, driven by Playwright) for the PWA's tests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import inspect
import itertools
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import argon2
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
               "aggregates_warm_up": False,
               # and go through every one of them, all through each test, slowing every other
               # request (store CPU > test CPU); tests of these passes turn them on
               "grid_passes_at_start": False,
               # many apps, each with its own clock, share a worker's store: each runs its own
               # jobs (a vote closed by another app's clock would never close); the leases are
               # tested with real processes (test_lease, test_two_processes)
               "leases": False}
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
# A test using one of these works on a copy of the run's demo city (tests/test_pwa.py), which
# the first of them to run makes.
CITY_FIXTURES = frozenset({"demo", "templates"})
# The test accounts' one password, hashed once with argon2id at the least work: thousands of test
# accounts each hashed at 19 MiB, then verified at every app's first login, were a third of the
# suite's CPU. Every other password (the command line's, residents' sign-ups, the OWASP check in
# test_auth.py) is hashed as in production; verifying still runs argon2 on a real hash.
TEST_ACCOUNT_HASH = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1,
                                          type=argon2.Type.ID).hash(PASSWORD)
_codes = itertools.count(1)
T = TypeVar("T")
SESSION_STORE = pytest.StashKey[EmbeddedStore]()


def pytest_configure(config: pytest.Config) -> None:
    """Every python-couchdb request checks that it is not made on a running event loop's thread:
    a blocking call there stalls the server under test and every client sharing its loop."""
    if not getattr(directory.hash_password, "for_test_accounts", False):
        hash_password = directory.hash_password

        def test_accounts_hashed_once(password: str) -> str:
            return TEST_ACCOUNT_HASH if password == PASSWORD else hash_password(password)

        test_accounts_hashed_once.for_test_accounts = True  # type: ignore[attr-defined]
        directory.hash_password = test_accounts_hashed_once
    request = couchdb.http.Session.request
    if getattr(request, "checks_the_loop", False):
        return

    @functools.wraps(request)
    def off_the_loop(self: couchdb.http.Session, method: str, url: str, *args: Any,
                     **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop runs on this thread
            return request(self, method, url, *args, **kwargs)
        raise AssertionError(f"python-couchdb's {method} {url} was called on the event loop: "
                             "use `await city.run(...)` (a thread) or the async client")

    off_the_loop.checks_the_loop = True  # type: ignore[attr-defined]
    couchdb.http.Session.request = off_the_loop


async def eventually(check: Callable[[], T | Awaitable[T]], seconds: float = 10,
                     every: float = 0.05, what: str = "") -> T:
    """Wait for an event the test cannot await directly (the server following the directory, a
    receipt written in the background): `check()` until it returns something true, which is
    returned; after `seconds`, the test fails. `check` may be a coroutine function."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {seconds} s: {what or check}; last: {found!r}")
        await asyncio.sleep(every)


async def a_later_millisecond() -> None:
    """Until the clock has moved on from this millisecond: the server stamps receipts to the
    millisecond, so a write after this one gets a later receipt than a write before."""
    from server.sync.receipts import utc_now

    start = utc_now()
    await eventually(lambda: utc_now() > start, every=0.001)


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
    items[:] = costly_modules_first(items)


def costly_modules_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The modules with slow tests first, in their own order otherwise, each module's tests kept
    together and in order. xdist (loadscope, without its reordering) hands modules out in this
    order: a browser module of several minutes left to the end of a run kept one worker busy
    while the other stood idle. Among them, one module on the demo city first, then those
    without it: the first worker makes the city's template (minutes) while the other runs
    these, where it used to wait for the template at the next module on the city."""
    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    slow = {module(item) for item in items if item.get_closest_marker("slow")}
    city = {module(item) for item in items
            if CITY_FIXTURES.intersection(getattr(item, "fixturenames", ()))}
    first = next((module(item) for item in items if module(item) in city), None)
    return sorted(items, key=lambda item: (module(item) not in slow, module(item) != first,
                                           module(item) in city))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """The session's store dying fails the test it died in, with its exit code and last words,
    and is started again on the same port: not restarted behind the tests' back (that would
    hide the crash), nor left dead (every later test of the worker would fail instead of the
    one that killed it, and its trace would be lost)."""
    outcome = yield
    store = item.config.stash.get(SESSION_STORE, None)
    if store is None or store.process is None or store.process.poll() is None:
        return
    report: pytest.TestReport = outcome.get_result()
    words = (f"the embedded store died during this test's {call.when} (exit code "
             f"{store.process.returncode}); its last words:\n{store.last_words()}")
    if report.failed:
        report.sections.append(("embedded store died", words))
    else:
        report.outcome, report.longrepr = "failed", words
    store.stop_sync()
    store.start_sync()


# A request's first line, as a proxy sees it go by.
REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|DELETE|COPY) (/\S*) HTTP/1\.[01]\r\n")


@dataclasses.dataclass
class Proxy:
    """A TCP proxy on a free loopback port in front of a server (the app or the store), which
    notes each request line it carries, for a test to cut, hold or count at the worst moment.
    Each hook is given the request's method and path:
    - `hold`: seconds to wait before the request goes on (a store slow to answer);
    - `on_request`: runs once the request's first bytes have been handed on;
    - `drop_answer`: if true, the answer is dropped with the connection as soon as the server
      starts sending it: the server did the work, the client never hears of it;
    - `on_answer`: runs once the answer's first bytes have been passed back.
    `cut_bulk_docs` drops the answers of these `POST .../_bulk_docs` (1-based, over all
    connections), as `drop_answer` would."""

    upstream_port: int
    cut_bulk_docs: set[int] = dataclasses.field(default_factory=set)
    hold: Callable[[str, str], float] | None = None
    on_request: Callable[[str, str], None] | None = None
    drop_answer: Callable[[str, str], bool] | None = None
    on_answer: Callable[[str, str], None] | None = None
    requests: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    bulk_docs_seen: int = 0
    cuts: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self, method: str | None = None) -> list[str]:
        """The paths asked for so far, without their query, in order."""
        return [path.split("?")[0] for m, path in self.requests if method in (None, m)]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        asked: list[tuple[str, str]] = []
        cut = asyncio.Event()

        async def upstream() -> None:
            while data := await reader.read(65536):
                seen = [(m[1].decode(), m[2].decode()) for m in REQUEST_LINE.finditer(data)]
                for method, path in seen:
                    self.requests.append((method, path))
                    asked.append((method, path))
                    if method == "POST" and path.split("?")[0].endswith("/_bulk_docs"):
                        self.bulk_docs_seen += 1
                        if self.bulk_docs_seen in self.cut_bulk_docs:
                            cut.set()
                    if self.hold is not None and (delay := self.hold(method, path)):
                        await asyncio.sleep(delay)  # the slow server this proxy plays
                up_writer.write(data)
                await up_writer.drain()
                for method, path in seen:
                    if self.on_request is not None:
                        self.on_request(method, path)

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                answer = asked[-1] if asked and data.startswith(b"HTTP/1.") else None
                if cut.is_set() or (answer and self.drop_answer is not None
                                    and self.drop_answer(*answer)):
                    self.cuts += 1  # the server answers: it has done the work
                    return
                writer.write(data)
                await writer.drain()
                if answer and self.on_answer is not None:
                    self.on_answer(*answer)

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.transport.abort()
            up_writer.transport.abort()


@pytest.fixture
async def proxies() -> AsyncIterator[Callable[..., Awaitable[Proxy]]]:
    """Makes started Proxy objects (`await proxies(port, **hooks)`), closed after the test."""
    made: list[Proxy] = []

    async def make(upstream_port: int, **options: Any) -> Proxy:
        made.append(Proxy(upstream_port, **options))
        return await made[-1].start()

    try:
        yield make
    finally:
        for proxy in made:
            await proxy.close()


@pytest.fixture(scope="session")
def store(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path_factory.mktemp("store"))
    store.start_sync()
    request.config.stash[SESSION_STORE] = store  # watched after each test (above)
    yield store
    store.stop_sync()


@dataclasses.dataclass
class Templates:
    """Folders made once for the whole run (all workers) and copied for each module that asks:
    a store with the demo city loaded and its views built costs a minute of CPU to make, and a
    copy of its files a fraction of a second. `make(folder)` fills an empty folder, and leaves
    no process running on it."""

    root: Path

    async def copy(self, name: str, make: Callable[[Path], Awaitable[None]], into: Path) -> Path:
        made = self.root / name
        with (self.root / f"{name}.lock").open("w") as lock:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)  # one worker makes it
            if not made.exists():
                building = self.root / f"{name}.building"
                shutil.rmtree(building, ignore_errors=True)
                building.mkdir()
                await make(building)
                building.rename(made)
        shutil.copytree(made, into, dirs_exist_ok=True)
        return into


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Templates:
    # the parent of a worker's temporary folder is shared by all the run's workers
    base = tmp_path_factory.getbasetemp()
    return Templates(base if worker_id == "master" else base.parent)


@pytest.fixture(scope="session")
def couch(store: EmbeddedStore) -> couchdb.Server:
    return directory.prepared(couchdb.Server(store.url))


@pytest.fixture(scope="session")
def config(store: EmbeddedStore, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return Config.from_mapping({"data": tmp_path_factory.mktemp("data"),
                                "couchdb_url": store.url, **TEST_LIMITS})


@dataclasses.dataclass
class BlockingCity:
    """The test city's grids and users, made with the `linli` directory functions: python-couchdb,
    whose calls block, so only for synchronous code (a sync test or fixture, a thread). Async
    code goes through `City`."""

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
        """A grid's database, without asking the store anything yet."""
        return couchdb.Database(self.couch.resource(grid_db(code)), grid_db(code))

    def records(self, code: str) -> int:
        """Documents in a grid's database other than its design documents (the views)."""
        return sum(1 for row in self.db(code).view("_all_docs")
                   if not row.id.startswith("_design/"))


@dataclasses.dataclass
class City:
    """Grids and users made on demand, each with a unique code so tests never share data. For async
    tests: each call runs python-couchdb in a thread, never on the event loop (which a blocking
    call would stall, with every server and client of the test on it)."""

    blocking: BlockingCity

    @property
    def couch(self) -> couchdb.Server:
        return self.blocking.couch

    def db(self, code: str) -> couchdb.Database:
        """A grid's database, to hand its methods to `run` (`await city.run(db.save, doc)`)."""
        return self.blocking.db(code)

    async def grid(self, community: str = "", street: str = "") -> str:
        return await self.run(self.blocking.grid, community, street)

    async def user(self, role: str = "worker", **scope: Any) -> str:
        return await self.run(self.blocking.user, role, **scope)

    async def records(self, code: str) -> int:
        return await self.run(self.blocking.records, code)

    async def get(self, code: str, doc_id: str, **options: Any) -> Any:
        """A document of a grid's database as the store holds it, None if it has none."""
        return await self.run(self.db(code).get, doc_id, **options)

    async def save(self, code: str, doc: dict[str, Any]) -> tuple[str, str]:
        """Written straight to the store (as an import would), bypassing the server."""
        return await self.run(self.db(code).save, doc)

    @staticmethod
    async def run(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`call(...)` in a worker thread: python-couchdb (or any blocking call) off the loop."""
        return await asyncio.to_thread(call, *args, **kwargs)


@pytest.fixture(scope="session")
def city(couch: couchdb.Server) -> City:
    return City(BlockingCity(couch))


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> TestClient:
    return await aiohttp_client(create_app(config))


async def wait_for_user(client: TestClient, name: str) -> None:
    """The server learns of new users from the directory's changes feed: wait for it."""
    from server.web.keys import DIRECTORY

    index = client.app[DIRECTORY]
    await eventually(lambda: name in index.users, every=0.02, what=f"the server sees {name}")


async def designs_installed(client: TestClient) -> None:
    """The app's design installer, a task at start, has been through every grid (until then it
    may still write a grid's design documents, undoing a test's own edit of them)."""
    from server.web.keys import SUPERVISOR

    entry = client.app[SUPERVISOR].entries["designs"]
    await eventually(lambda: entry.done, 120, what="designs installed")


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
