"""Live changes feeds held by the server, not the store.

A phone's live pull is a longpoll `_changes` that mostly waits for nothing. Relayed one for one,
1,000 phones held 1,000 store connections, the store (node) grew to 2.8 GB, every write woke some
50 store listeners per grid, and a record took 27 s (p95) to reach every device. Here the server
holds ONE longpoll to the store per database someone waits on (its watcher) and wakes that
database's phones on a change. Each phone reads its own changes with a short, normal `_changes`
and waits holding no store connection at all, with CouchDB's heartbeat newlines if it asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from server import errors
from server.store.couch import CouchClient, CouchFailure, NotFound, StoreUnavailable, db_path
from server.sync.supervisor import Lag

log = logging.getLogger(__name__)

# A watcher's longpoll asks CouchDB to answer within WATCH_MS; PouchDB Server ignores `timeout`
# (and never ends a longpoll on a deleted database), so the server gives up at WATCH_CUTOFF_S and
# asks again. A deleted database is noticed sooner, by DELETED_CHECK_SECONDS (below).
WATCH_MS = 20_000
WATCH_CUTOFF_S = 25.0
WATCH_LIMIT = "500"  # changes per watcher answer: only its last_seq is used
# The store connections the watchers may hold: one per database, so a city's every grid is
# watched. Past it, a database's phones re-read their changes every POLL_SECONDS instead.
MAX_WATCHED_DATABASES = 500
POLL_SECONDS = 5.0
# A live phone asks again within milliseconds of each answer: a watcher outlives its last waiter
# by this long, rather than closing and reopening its store connection on every change.
LINGER_SECONDS = 10.0
SWEEP_SECONDS = 1.0  # how often phones that hung up while waiting are looked for
# How often the watched databases are checked to still exist: PouchDB Server never ends a
# longpoll on a deleted database, so without it a phone would wait WATCH_CUTOFF_S to learn.
# One `_all_dbs` for every watched database at once.
DELETED_CHECK_SECONDS = 2.0
DELETED_CHECK_TIMEOUT_S = 10.0
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 30.0
PEEK_BYTES = 64 * 1024  # an empty page is far smaller: a longer answer has results
FEED_PARAMS = frozenset({"feed", "heartbeat", "timeout"})


class Waiter:
    """One phone's longpoll while it waits: woken by its database's watcher, by the sweep when
    the phone hung up (`gone`), or at shutdown."""

    __slots__ = ("gone", "request", "woken")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.woken = asyncio.Event()
        self.gone = False

    def connected(self) -> bool:
        transport = self.request.transport
        return transport is not None and not transport.is_closing()


class Watcher:
    """The one longpoll to the store for one database, on behalf of all its waiters. It follows
    the database from the seq a waiter last read and wakes every waiter on any change; on a
    store error it wakes them too (their own read then answers the error) and backs off."""

    def __init__(self, feeds: LiveFeeds, db: str) -> None:
        self.feeds, self.db = feeds, db
        self.waiters: set[Waiter] = set()
        self.since: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.retiring: asyncio.TimerHandle | None = None
        self.wakes = 0  # changes (or failures) seen: for tests and logs
        self.failing_since: float | None = None  # loop time of the first failure in a row

    def wake(self) -> None:
        self.wakes += 1
        for waiter in self.waiters:
            waiter.woken.set()

    async def run(self) -> None:
        delay = BACKOFF_MIN_S
        path = db_path(self.db, "_changes")
        while True:
            params = {"feed": "longpoll", "since": self.since or "now", "limit": WATCH_LIMIT,
                      "timeout": str(WATCH_MS)}
            try:
                async with asyncio.timeout(self.feeds.cutoff_s):
                    page = await self.feeds.couch.request("GET", path, params=params,
                                                          probe=False)  # end_deleted looks
            except TimeoutError:
                continue  # nothing happened (PouchDB Server never answers an idle longpoll)
            except Exception as exc:  # the store's errors, and any surprise: never end
                if not isinstance(exc, NotFound):  # a deleted database: its waiters learn it
                    if self.failing_since is None:
                        self.failing_since = asyncio.get_running_loop().time()
                    log.warning("live feed of %s failed (%r); retrying in %.1fs", self.db, exc,
                                delay)
                self.wake()  # each waiter reads again: the error reaches the phone, which retries
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            delay, self.failing_since = BACKOFF_MIN_S, None
            page = page if isinstance(page, dict) else {}
            before = self.since
            if page.get("last_seq") is not None:
                self.since = json_seq(page["last_seq"])
            if page.get("results"):
                self.wake()
                if self.since == before:  # a store that does not move on: never spin
                    await asyncio.sleep(BACKOFF_MIN_S)


class LiveFeeds:
    """Every database's watcher, started by its first waiter and stopped LINGER_SECONDS after
    its last one left, and the sweep that releases phones which hung up while waiting."""

    def __init__(self, couch: CouchClient, *, max_watched: int = MAX_WATCHED_DATABASES) -> None:
        self.couch = couch
        self.max_watched = max_watched
        self.cutoff_s, self.linger_s = WATCH_CUTOFF_S, LINGER_SECONDS  # tests shorten them
        self.watchers: dict[str, Watcher] = {}
        self.someone_waits = asyncio.Event()  # wakes the sweep
        self.reads: dict[Any, tuple[int, asyncio.Future[Read | None]]] = {}
        self.serial = itertools.count()  # orders wake-up marks and reads sent
        self.closing = False
        # Residents' feeds wait on keys, not databases (server/sync/allowed.py): a change wakes
        # the waiters of the keys it touches (`household:<id>`, `community:<code>`...).
        self.keyed: dict[str, set[Waiter]] = {}
        self.by_key: set[Waiter] = set()

    # -- bookkeeping --------------------------------------------------------------------------
    def waiting(self) -> int:
        return sum(len(w.waiters) for w in self.watchers.values())

    def watching(self) -> int:
        return sum(1 for w in self.watchers.values() if w.task is not None)

    def lag(self) -> Lag:
        """How long the longest-failing watcher has failed (its phones wait for nothing), and how
        many databases' watchers fail."""
        failing = [w.failing_since for w in self.watchers.values()
                   if w.task is not None and w.failing_since is not None]
        now = asyncio.get_running_loop().time()
        return Lag(seconds=now - min(failing) if failing else None, items=len(failing))

    def join_keys(self, keys: frozenset[str], waiter: Waiter) -> None:
        for key in keys:
            self.keyed.setdefault(key, set()).add(waiter)
        self.by_key.add(waiter)
        self.someone_waits.set()

    def leave_keys(self, keys: frozenset[str], waiter: Waiter) -> None:
        self.by_key.discard(waiter)
        for key in keys:
            held = self.keyed.get(key)
            if held is not None:
                held.discard(waiter)
                if not held:
                    del self.keyed[key]

    def wake_keys(self, keys: frozenset[str]) -> None:
        for key in keys:
            for waiter in self.keyed.get(key, ()):
                waiter.woken.set()

    def join(self, db: str, waiter: Waiter) -> Watcher:
        watcher = self.watchers.get(db)
        if watcher is None:
            watcher = self.watchers[db] = Watcher(self, db)
        if watcher.retiring is not None:
            watcher.retiring.cancel()
            watcher.retiring = None
        watcher.waiters.add(waiter)
        self.someone_waits.set()
        return watcher

    def leave(self, watcher: Watcher, waiter: Waiter) -> None:
        watcher.waiters.discard(waiter)
        if watcher.waiters:
            return
        if watcher.task is None:
            self.retire(watcher)
        elif watcher.retiring is None:
            watcher.retiring = asyncio.get_running_loop().call_later(
                self.linger_s, self.retire, watcher)

    def retire(self, watcher: Watcher) -> None:
        watcher.retiring = None
        if watcher.waiters:
            return
        if watcher.task is not None:
            watcher.task.cancel()
            watcher.task = None
        if self.watchers.get(watcher.db) is watcher:
            del self.watchers[watcher.db]

    def arm(self, watcher: Watcher, since: str) -> bool:
        """Make sure the database is watched, from `since` (the seq its waiter just read up to)
        if the watcher starts now. False when every watcher slot is taken by a database that
        still has waiters: this one's waiters poll."""
        if watcher.task is not None and not watcher.task.done():
            return True
        if self.watching() >= self.max_watched:
            idle = next((w for w in self.watchers.values()
                         if w.task is not None and not w.waiters), None)
            if idle is None:
                return False
            self.retire(idle)
        watcher.since = since
        watcher.task = asyncio.create_task(watcher.run(), name=f"live-feed {watcher.db}")
        return True

    async def sweep(self) -> None:
        """Run for ever by the supervisor (server/sync/supervisor.py): aiohttp does not cancel a
        handler whose client hung up, so while phones wait, look for those that did, and for
        watched databases that were deleted. A failure of either ends the sweep, and the
        supervisor logs it and starts it again."""
        loop = asyncio.get_running_loop()
        check_at = loop.time() + DELETED_CHECK_SECONDS
        checking: asyncio.Task[None] | None = None
        try:
            while True:
                if not self.by_key and not any(w.waiters for w in self.watchers.values()):
                    self.someone_waits.clear()
                    await self.someone_waits.wait()
                    check_at = loop.time() + DELETED_CHECK_SECONDS
                await asyncio.sleep(SWEEP_SECONDS)
                held = [w for watcher in self.watchers.values() for w in watcher.waiters]
                for waiter in [*held, *self.by_key]:
                    if not waiter.connected():
                        waiter.gone = True
                        waiter.woken.set()
                if checking is not None and checking.done():
                    checking, done = None, checking
                    done.result()  # its failure is the sweep's
                if loop.time() >= check_at and checking is None:
                    check_at = loop.time() + DELETED_CHECK_SECONDS
                    checking = asyncio.create_task(self.end_deleted(), name="live-feeds-dbs")
        finally:
            if checking is not None:
                checking.cancel()

    async def end_deleted(self) -> None:
        """Stop the watchers of databases that no longer exist (their store longpolls would
        hang on) and wake their waiters, whose own read then answers 404."""
        watched = [w for w in self.watchers.values() if w.task is not None]
        if not watched:
            return
        try:
            names = await self.couch.request("GET", "/_all_dbs",
                                             read_timeout=DELETED_CHECK_TIMEOUT_S)
        except (StoreUnavailable, CouchFailure) as exc:
            log.info("could not list the databases (%s)", exc)
            return
        existing = set(names) if isinstance(names, list) else None
        if existing is None:
            return
        for watcher in watched:
            if watcher.db not in existing and watcher.task is not None:
                watcher.task.cancel()  # closes its store connection
                watcher.task = None
                watcher.wake()

    def shutting_down(self) -> None:
        """Every waiter answers at once, so the server's shutdown does not wait a minute."""
        self.closing = True
        for watcher in self.watchers.values():
            watcher.wake()
        for waiter in self.by_key:
            waiter.woken.set()

    async def close(self) -> None:
        self.shutting_down()
        tasks = [w.task for w in self.watchers.values() if w.task is not None]
        for watcher in list(self.watchers.values()):
            if watcher.retiring is not None:
                watcher.retiring.cancel()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.watchers.clear()

    # -- one phone's longpoll ------------------------------------------------------------------
    async def longpoll(self, request: web.Request, db: str, params: Mapping[str, str],
                       body: Any, *, timeout_s: float, heartbeat_s: float | None,
                       recheck: Callable[[], Awaitable[object]] | None = None
                       ) -> web.StreamResponse:
        """Answer a phone's `feed=longpoll` as CouchDB does: its changes at once if there are
        any; otherwise, after waiting for a change of the database (a "\\n" every heartbeat
        meanwhile), its changes then, or at `timeout_s` an empty page with the current seq.
        Its changes are always a normal `_changes` with its own parameters (filter, style,
        limit, include_docs...), read when it arrives and each time its database changes.
        `recheck` runs before each read after the first: a filter the store could run when the
        phone asked may be gone by the time the database changes, and the embedded store dies
        on a missing one; its error then ends the feed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        query = {k: v for k, v in params.items() if k not in FEED_PARAMS}
        method = "POST" if body is not None else "GET"
        path = db_path(db, "_changes")
        waiter = Waiter(request)
        watcher = self.join(db, waiter)
        response: web.StreamResponse | None = None
        first = True
        try:
            while True:
                waiter.woken.clear()  # before reading: a change from now on wakes it
                if recheck is not None and not first:
                    try:
                        await recheck()
                    except (errors.CouchError, CouchFailure):
                        if response is None:
                            raise
                        return cut(request, response)
                first = False
                try:
                    got = await self.read(method, path, query, body, next(self.serial))
                except StoreUnavailable:
                    if response is None:
                        raise
                    return cut(request, response)  # heartbeats went out: 200 is said already
                empty = empty_page(got)
                if empty is None or self.closing:
                    return await answer(request, response, self.couch, got)
                if empty.get("last_seq") is not None and query.get("descending") != "true":
                    query["since"] = json_seq(empty["last_seq"])  # nothing matched up to there
                watched = self.arm(watcher, query.get("since", "now"))
                if deadline - loop.time() <= 0:
                    return await finish(request, response, got.head)
                woken, response = await self.wait(
                    request, response, waiter, deadline,
                    heartbeat_s, None if watched else POLL_SECONDS)
                if waiter.gone:
                    return hung_up(request, response)
                if not woken:
                    return await finish(request, response, got.head)
        except ConnectionResetError:  # writing to a phone that hung up
            return hung_up(request, response)
        finally:
            self.leave(watcher, waiter)

    async def read(self, method: str, path: str, query: Mapping[str, str], body: Any,
                   after: int) -> Read:
        """A phone's normal `_changes`, its start read. The phones of a grid woken together
        mostly ask the very same (same since, same parameters): the others take the answer of
        one such read if it is short, instead of 50 reads of the store. Only of a read sent
        after `after` (the phone's wake-up mark): an older one may not hold the change."""
        key = (method, path, tuple(sorted(query.items())), json.dumps(body, sort_keys=True))
        number, shared = self.reads.get(key, (-1, None))
        if shared is not None and number > after:
            await asyncio.wait({shared})
            if not shared.cancelled():
                failure = shared.exception()
                if failure is not None:
                    raise failure
                if shared.result() is not None:
                    return shared.result()
        own: asyncio.Future[Read | None] | None = None
        if key not in self.reads:
            own = asyncio.get_running_loop().create_future()
            self.reads[key] = (next(self.serial), own)
        try:
            got = await read_changes(self.couch, method, path, query, body)
        except Exception as exc:
            if own is not None:
                own.set_exception(exc)
                own.exception()  # retrieved, whether anyone else waited on it or not
            raise
        except BaseException:
            if own is not None:
                own.cancel()
            raise
        finally:
            if own is not None and self.reads.get(key, (0, None))[1] is own:
                del self.reads[key]
        if own is not None:
            own.set_result(got if got.rest is None else None)
        return got

    async def wait(self, request: web.Request, response: web.StreamResponse | None,
                   waiter: Waiter, deadline: float, heartbeat_s: float | None,
                   poll_s: float | None) -> tuple[bool, web.StreamResponse | None]:
        """Wait to be woken (True) or for the deadline (False), writing a heartbeat newline
        every `heartbeat_s`; an unwatched database's waiter reads again every `poll_s`."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        beat = loop.time() + heartbeat_s if heartbeat_s else deadline
        while True:
            now = loop.time()
            until = min(beat, deadline, started + poll_s if poll_s else deadline)
            if now >= deadline:
                return False, response
            try:
                async with asyncio.timeout(max(0.0, until - now)):
                    await waiter.woken.wait()
                return True, response
            except TimeoutError:
                pass
            now = loop.time()
            if poll_s and now >= started + poll_s:
                return True, response
            if heartbeat_s and beat <= now < deadline:
                try:
                    if response is None:
                        response = await start_answer(request)
                    await response.write(b"\n")
                except ConnectionResetError:
                    waiter.gone = True
                    return True, response
                beat = now + heartbeat_s


def json_seq(seq: Any) -> str:
    """A seq as the `since` parameter takes it: CouchDB 3's opaque string as is, an integer
    (PouchDB Server) in decimal."""
    return seq if isinstance(seq, str) else json.dumps(seq)


def seq_number(seq: Any) -> int | None:
    """A seq's place in its database's order: PouchDB Server's integer (as a number or as
    `json_seq` wrote it); None for CouchDB 3's opaque strings, whose order is not a number."""
    if isinstance(seq, int) and not isinstance(seq, bool):
        return seq
    if isinstance(seq, str) and seq.isdecimal() and len(seq) < 19:
        return int(seq)
    return None


@dataclasses.dataclass(frozen=True)
class Read:
    """The store's answer to a normal `_changes`: whole when short (`rest` None), else its
    start and the response the rest is streamed from."""

    status: int
    content_type: str
    head: bytes
    rest: aiohttp.ClientResponse | None = None


async def read_changes(couch: CouchClient, method: str, path: str, query: Mapping[str, str],
                       body: Any) -> Read:
    upstream = await couch.open(method, path, params=query, body=body)
    head = b""
    try:
        while len(head) < PEEK_BYTES:
            chunk = await upstream.content.read(PEEK_BYTES - len(head))
            if not chunk:
                break
            head += chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        upstream.release()
        raise StoreUnavailable(str(exc)) from exc
    got = Read(upstream.status, upstream.content_type or "application/json", head)
    if len(head) < PEEK_BYTES or upstream.content.at_eof():
        upstream.release()
        return got
    return dataclasses.replace(got, rest=upstream)


def empty_page(got: Read) -> dict[str, Any] | None:
    """The store's answer when it is a page without results (the phone waits); None when it
    has results or is anything else (an error, say), to be answered as it is."""
    if got.status != 200 or got.rest is not None:
        return None
    try:
        page = json.loads(got.head)
    except ValueError:
        return None
    if isinstance(page, dict) and page.get("results") == []:
        return page
    return None


def hung_up(request: web.Request, response: web.StreamResponse | None) -> web.StreamResponse:
    """What a handler returns for a phone gone: aiohttp finds the connection closed and logs
    the request, no error (499, nginx's "client closed request", when nothing was sent)."""
    errors.went_away(request)
    return response if response is not None else web.Response(status=errors.CLIENT_CLOSED)


def cut(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """End an answer already begun by closing the connection: the phone sees a network error
    and retries, where a well-formed body would be taken for the truth."""
    if request.transport is not None:
        request.transport.close()
    return response


async def start_answer(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    await response.prepare(request)
    return response


async def finish(request: web.Request, response: web.StreamResponse | None,
                 body: bytes) -> web.StreamResponse:
    """Answer with `body`, after any heartbeat newlines already written."""
    if response is None:
        response = await start_answer(request)
    await response.write(body)
    await response.write_eof()
    return response


async def answer(request: web.Request, response: web.StreamResponse | None, couch: CouchClient,
                 got: Read) -> web.StreamResponse:
    """Relay the store's answer (its start, then the rest streamed). Once heartbeats went out
    the status is 200 already: an error then cuts the connection, and the phone retries."""
    try:
        if response is not None and got.status != 200:
            log.warning("store answered %s to a waiting longpoll", got.status)
            return cut(request, response)
        if response is None:
            if got.status >= 500:
                try:
                    payload = json.loads(got.head)
                except ValueError:
                    payload = {"error": "unknown", "reason": "unreadable answer"}
                raise couch.failed(got.status, payload)
            response = web.StreamResponse(status=got.status)
            response.content_type = got.content_type
            await response.prepare(request)
        await response.write(got.head)
        while got.rest is not None:
            try:
                chunk = await got.rest.content.read(PEEK_BYTES)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("store failed while answering a longpoll: %s", exc)
                return cut(request, response)  # never a truncated body that looks complete
            if not chunk:
                break
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        if got.rest is not None:
            got.rest.release()
