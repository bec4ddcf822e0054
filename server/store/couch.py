"""The server's one client to CouchDB (or the embedded store): a single aiohttp session, HTTP
statuses turned into typed exceptions in one place, and a changes-feed follower that restarts with
back-off instead of taking the server down."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aiohttp
import yarl

from server import errors

log = logging.getLogger(__name__)

READ_TIMEOUT = 90.0  # longer than a feed's heartbeat (10 s), so only a silent store times out
# How the store says it could not read or write its files: PouchDB Server's LevelDB errors (a full
# disk: "IO error: ... No space left on device"; a database whose opening failed: OpenError),
# CouchDB's enospc.
IO_FAILURE = re.compile(r"IO error|OpenError|No space left|ENOSPC", re.IGNORECASE)


# PouchDB Server may never answer a request to a database deleted a moment before (its cached
# handle of the database is destroyed under the request): a request still unanswered after this
# long makes the client ask whether its database still exists, and a 404 then ends it at once
# (it hung until the read timeout, 90 s, and answered 503).
DELETED_PROBE_SECONDS = 2.0
# A live feed's longpoll is never probed (it is meant to wait; the live feeds look for deleted
# databases themselves, with one list for all, sync/feeds.py), and the probes of all other reads
# share one list of databases per DELETED_PROBE_SECONDS: idle, 500 watchers' longpolls asked the
# store for `_all_dbs` some 250 times a second.


READ_POSTS = ("_changes", "_all_docs", "_bulk_get", "_revs_diff")


def writes(method: str, path: str) -> bool:
    """Whether a request may change what the store holds (a POST that only reads does not)."""
    if method in ("GET", "HEAD"):
        return False
    last = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return not (method == "POST" and (last in READ_POSTS or "/_view/" in path))


def probed_database(method: str, path: str) -> str | None:
    """The database a read is about (still percent-encoded), when a missing one should end it:
    never a write (which the store may have applied), the server's own endpoints or its own
    databases (a store in trouble, its disk full, may not find those for a while)."""
    parts = path.split("?", 1)[0].lstrip("/").split("/")
    if not parts[0] or parts[0].startswith(("_", "linli-")):
        return None
    if method in ("GET", "HEAD") or (method == "POST" and parts[-1] in READ_POSTS):
        return parts[0]
    return None


class CouchFailure(Exception):
    """CouchDB answered with an error status."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body if isinstance(body, dict) else {"error": "unknown", "reason": str(body)}
        super().__init__(f"{status} {self.body}")

    @property
    def error(self) -> str:
        return str(self.body.get("error", ""))

    def as_couch_error(self) -> errors.CouchError:
        return errors.CouchError(self.status, self.error or "unknown",
                                 str(self.body.get("reason", "")))


class NotFound(CouchFailure):
    pass


class Conflict(CouchFailure):
    pass


class StoreUnavailable(Exception):
    """The store cannot be reached (down, restarting, or its disk is full)."""


def basic_authorization(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def split_credentials(url: str) -> tuple[str, str | None]:
    """`http://user:pass@host:5984/` → (`http://host:5984`, its Authorization header)."""
    parts = urlsplit(url)
    auth = None
    if parts.username is not None:
        auth = basic_authorization(unquote(parts.username), unquote(parts.password or ""))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth


def db_path(db: str, *rest: str) -> str:
    """The URL path of a database or something in it; `_design/` and `_local/` keep their
    slash, as the embedded store does not decode `%2F` after them in view paths."""
    parts = [quote(db, safe="")]
    for part in rest:
        prefix = next((p for p in ("_design/", "_local/") if part.startswith(p)), "")
        parts.append(prefix + quote(part[len(prefix):], safe=""))
    return "/" + "/".join(parts)


class CouchClient:
    def __init__(self, url: str, session: aiohttp.ClientSession,
                 on_io_error: Callable[[], None] | None = None,
                 writes_held: Callable[[], bool] | None = None) -> None:
        self.base, self.auth = split_credentials(url)
        self.session = session
        self.on_io_error = on_io_error  # the embedded store's supervisor, told of I/O errors
        # ... and whether writes must wait for its restart: after an I/O error the embedded
        # store's log may hold a torn record, and what it takes after it is lost when it
        # restarts (LevelDB drops the rest of the block), though it answered ok.
        self.writes_held = writes_held
        self._listing: tuple[float, asyncio.Future[list[str] | None]] | None = None

    def failed(self, status: int, payload: Any) -> Exception:
        """The exception for an error answer of the store. An I/O error (its disk is full) is
        the store being unavailable, not the request being wrong: 503 with Retry-After, so
        clients keep their records and retry, never a 500 they would give up on."""
        if status >= 500 and isinstance(payload, dict) and IO_FAILURE.search(
                f"{payload.get('error', '')} {payload.get('reason', '')}"):
            if self.on_io_error is not None:
                self.on_io_error()
            return StoreUnavailable(f"{status} {payload}")
        return failure(status, payload)

    async def open(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                   body: Any = None, data: Any = None, headers: Mapping[str, str] | None = None,
                   read_timeout: float = READ_TIMEOUT, probe: bool = True
                   ) -> aiohttp.ClientResponse:
        """Send a request and return the response unread, for streaming; the caller releases it.
        `path` is already percent-encoded and is sent exactly as it is (never normalised, so a
        `..` that slipped through could not climb out of a database). There is no total time
        limit, as a slow phone may take minutes to receive a photo; a store silent for
        `read_timeout` seconds is a failure. `probe=False` for a read meant to wait (a live
        feed's longpoll): it is never taken for one hanging on a deleted database."""
        if self.writes_held is not None and writes(method, path) and self.writes_held():
            raise StoreUnavailable("the store had an I/O error (its disk full?): writes wait "
                                   "for its restart")
        hdrs = dict(headers or {})
        if body is not None:
            try:
                data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            except UnicodeEncodeError:  # a lone UTF-16 surrogate the client sent: not storable
                raise errors.bad_request(
                    "请求中有损坏的字符（不完整的表情符号？）",
                    "The request holds a broken character (half an emoji?).") from None
            hdrs["Content-Type"] = "application/json"
        hdrs.setdefault("Accept", "application/json")
        hdrs["Accept-Encoding"] = "identity"  # loopback: compressing would only cost CPU
        if self.auth is not None:
            hdrs["Authorization"] = self.auth
        sending = asyncio.ensure_future(self.session.request(
            method, yarl.URL(self.base + path, encoded=True), params=params, data=data,
            headers=hdrs, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5,
                                                        sock_read=read_timeout)))
        try:
            db = probed_database(method, path) if probe else None
            while db is not None:
                done, _ = await asyncio.wait({sending}, timeout=DELETED_PROBE_SECONDS)
                if done:
                    break
                if not await self.exists(db):
                    sending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError,
                                             TimeoutError):
                        (await sending).release()  # it answered just then
                    raise NotFound(404, {"error": "not_found", "reason": "no_db_file"})
            return await sending
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        except BaseException:
            sending.cancel()
            raise

    async def exists(self, db: str) -> bool:
        """Whether the store still lists `db` (percent-encoded); True when it cannot tell. The
        list, not `GET /db`: a database the store failed to open (its disk full) answers 404
        there for a while, but is still listed. One list serves every probe for
        DELETED_PROBE_SECONDS."""
        now = asyncio.get_running_loop().time()
        if self._listing is None or now - self._listing[0] >= DELETED_PROBE_SECONDS:
            self._listing = (now, asyncio.ensure_future(self._list_dbs()))
        names = await asyncio.shield(self._listing[1])
        return names is None or unquote(db) in names

    async def _list_dbs(self) -> list[str] | None:
        try:
            async with self.session.get(
                    yarl.URL(self.base + "/_all_dbs", encoded=True),
                    headers={"Authorization": self.auth} if self.auth else None,
                    timeout=aiohttp.ClientTimeout(total=DELETED_PROBE_SECONDS * 5)) as resp:
                names = await resp.json(content_type=None) if resp.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None
        return [str(n) for n in names] if isinstance(names, list) else None

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request, read its JSON answer; error statuses become typed exceptions."""
        resp = await self.open(method, path, **kwargs)
        async with resp:
            try:
                payload = await resp.json(content_type=None)
            except (json.JSONDecodeError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                    UnicodeDecodeError) as exc:
                if resp.status >= 500 or isinstance(exc, aiohttp.ClientError):
                    raise StoreUnavailable(f"{resp.status}: unreadable answer") from exc
                payload = {"error": "unknown", "reason": "unreadable answer"}
        if resp.status >= 400:
            raise self.failed(resp.status, payload)
        return payload

    async def get(self, path: str, **params: str) -> Any:
        return await self.request("GET", path, params=params or None)

    async def put(self, path: str, body: Any, **params: str) -> Any:
        return await self.request("PUT", path, body=body, params=params or None)

    async def post(self, path: str, body: Any, **params: str) -> Any:
        return await self.request("POST", path, body=body, params=params or None)

    async def ensure_db(self, db: str, **params: str) -> bool:
        """Create `db` if missing (`params`: CouchDB's `q`, `n`); True when it was created."""
        try:
            await self.put(db_path(db), None, **params)
            return True
        except CouchFailure as exc:
            if exc.status == 412:
                return False
            raise

    async def follow(self, db: str, since: str = "0", *, include_docs: bool = True,
                     heartbeat_ms: int = 10_000, settle: float = 0.0
                     ) -> AsyncIterator[tuple[dict[str, Any], str]]:
        """Yield (change, seq) for every change of `db` after `since`, for ever. A failure of the
        store restarts the feed from the last seq with back-off; it never ends the server.
        `settle`: seconds to wait after a page of changes before asking again, so that a
        stream of writes is read a page at a time, not one request (and one of the store's
        own) a write; the first change after a quiet spell still comes at once."""
        delay = 0.5
        while True:
            try:
                params = {"feed": "longpoll", "since": since, "heartbeat": str(heartbeat_ms),
                          "limit": "500", "style": "all_docs"}
                if include_docs:
                    params["include_docs"] = "true"
                page = await self.request("GET", db_path(db, "_changes"), params=params,
                                          probe=False)
                delay = 0.5
                for change in page.get("results", []):
                    since = str(change.get("seq", since))
                    yield change, since
                since = str(page.get("last_seq", since))
                if settle and page.get("results"):
                    await asyncio.sleep(settle)
            except asyncio.CancelledError:
                raise
            except (StoreUnavailable, CouchFailure) as exc:
                log.warning("changes feed of %s failed (%s); retrying in %.1fs", db, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)


def failure(status: int, payload: Any) -> CouchFailure:
    if status == 404:
        return NotFound(status, payload)
    if status == 409:
        return Conflict(status, payload)
    return CouchFailure(status, payload)
