"""Authentication as CouchDB does it (a session cookie from `/_session`, or HTTP Basic on any
request), with Argon2id password hashes, login failure limits per account and per address, and a
cap on how many hashes run at once so a login storm cannot exhaust memory.

Every cookie names its session (a random id, kept when the cookie is renewed). Logging out
stores the session's end in the directory database (`ended_session:<id>`), which every server
process follows, so a copied cookie is refused everywhere after a logout, not only by the process
that saw it. A password change gives the user a new session salt, which ends all their
sessions at once."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import dataclasses
import datetime
import hashlib
import hmac
import http.cookies
import json
import re
import secrets
import time
from collections.abc import Callable, Container
from typing import Any

import argon2
from aiohttp import web

from server import errors
from server.domain.accounts import PASSWORD_HASHER
from server.domain.scope import ENDED_SESSION, User

SESSION_COOKIE = "AuthSession"  # CouchDB's name, so CouchDB clients handle it unchanged
SESSION_RENEW_SECONDS = 3600  # re-issue the cookie at most hourly, as CouchDB refreshes its own
BASIC_CACHE_SECONDS = 300  # a PouchDB client sends Basic on every request: verify once per 5 min
BASIC_CACHE_ENTRIES = 10_000
RATE_KEYS_MAX = 100_000  # bound the memory of the failure counters under a spray of addresses

_DUMMY_HASH = PASSWORD_HASHER.hash(secrets.token_hex(16))


SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


def new_session_id() -> str:
    return secrets.token_hex(16)


def ended_session_doc(session: str, user: str, expires: float) -> dict[str, Any]:
    """The directory's record that a session was logged out; kept until every cookie of it
    has expired by itself (`expires`, epoch seconds), then pruned."""
    now = datetime.datetime.now(datetime.UTC)
    return {"_id": f"{ENDED_SESSION}:{session}", "type": ENDED_SESSION, "user": user,
            "ended_at": now.isoformat(timespec="seconds"), "expires": int(expires) + 1}


@dataclasses.dataclass(frozen=True)
class Session:
    user: User
    issued: int  # when this cookie was issued (renewal issues a new one)
    id: str  # the session's id, the same in every renewed cookie of it


class FailureCounter:
    """Failures per key in a sliding window; bounded in the number of keys it keeps."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict())

    def _recent(self, key: str) -> collections.deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            return collections.deque()
        cutoff = self.clock() - self.window
        while hits and hits[0] <= cutoff:
            hits.popleft()
        if not hits:
            del self._hits[key]
        return hits

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again; 0 when it may try now."""
        hits = self._recent(key)
        if len(hits) < self.limit:
            return 0
        return max(1, int(hits[0] + self.window - self.clock()) + 1)

    def record(self, key: str) -> None:
        hits = self._hits.setdefault(key, collections.deque())
        hits.append(self.clock())
        self._hits.move_to_end(key)
        while len(hits) > self.limit:
            hits.popleft()
        while len(self._hits) > RATE_KEYS_MAX:
            self._hits.popitem(last=False)

    def clear(self, key: str) -> None:
        self._hits.pop(key, None)

    def forget_one(self, key: str) -> None:
        hits = self._hits.get(key)
        if hits:
            hits.pop()
            if not hits:
                del self._hits[key]


class Authenticator:
    def __init__(self, *, secret: bytes, session_seconds: float, failures_per_account: int,
                 failures_per_address: int, window_seconds: float, hash_concurrency: int,
                 lookup: Callable[[str], User | None],
                 ended: Container[str] = frozenset(),
                 revoked: Container[str] = frozenset()) -> None:
        self.secret = secret
        self.session_seconds = session_seconds
        self.lookup = lookup
        self.ended = ended  # ids of sessions logged out (the directory's `ended_session:`)
        self.revoked = revoked  # ids of sessions whose device an admin revoked (for ever)
        self.by_account = FailureCounter(failures_per_account, window_seconds)
        self.by_address = FailureCounter(failures_per_address, window_seconds)
        self._hashing = asyncio.Semaphore(hash_concurrency)
        self._basic_cache: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self._basic_pending: dict[bytes, asyncio.Future[User]] = {}

    # -- passwords ---------------------------------------------------------------------------
    async def _verify(self, user: User | None, password: str) -> bool:
        stored = user.password if user is not None and user.password else _DUMMY_HASH
        async with self._hashing:
            try:
                ok = await asyncio.to_thread(PASSWORD_HASHER.verify, stored, password)
            except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
                ok = False
        return ok and user is not None and not user.disabled

    def check_locked(self, name: str, address: str) -> None:
        """A 429 saying when to try again while the account or the address is locked."""
        wait = max(self.by_account.retry_after(name), self.by_address.retry_after(address))
        if wait:
            raise errors.too_many_requests(wait)

    async def check_password(self, name: str, password: str, address: str) -> User:
        """The user, or a 401/429 CouchError. Failures count against both the account and the
        address; a locked account or address is refused before any hashing."""
        self.check_locked(name, address)
        # Counted before hashing, so guesses sent all at once cannot slip past the limit.
        self.by_account.record(name)
        self.by_address.record(address)
        user = self.lookup(name)
        if await self._verify(user, password):
            self.by_account.clear(name)
            self.by_address.forget_one(address)
            assert user is not None
            return user
        raise errors.unauthorized("用户名或密码错误", "Name or password is incorrect.")

    async def check_basic(self, header: str, address: str) -> User:
        try:
            decoded = base64.b64decode(header.split(" ", 1)[1], validate=True).decode()
            name, _, password = decoded.partition(":")
        except (IndexError, binascii.Error, UnicodeDecodeError):
            raise errors.unauthorized("登录信息格式错误",
                                      "Malformed Basic authorization header.") from None
        user = self.lookup(name)
        if user is None or user.disabled:
            return await self.check_password(name, password, address)
        # Basic is a login on every request: a locked account or address is locked for it too,
        # even with a password verified a moment ago, exactly as for a cookie login.
        self.check_locked(name, address)
        key = self._basic_key(user, password)
        expires = self._basic_cache.get(key)
        if expires is not None and expires > time.monotonic():
            return user
        # PouchDB opens with several requests at once: hash once for all of them.
        pending = self._basic_pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self.check_password(name, password, address))
            self._basic_pending[key] = pending
            pending.add_done_callback(lambda _: self._basic_pending.pop(key, None))
        user = await asyncio.shield(pending)
        self._basic_cache[key] = time.monotonic() + BASIC_CACHE_SECONDS
        while len(self._basic_cache) > BASIC_CACHE_ENTRIES:
            self._basic_cache.popitem(last=False)
        return user

    @staticmethod
    def _basic_key(user: User, password: str) -> bytes:
        # The stored hash is part of the key: a password change invalidates the cached entry.
        return hashlib.sha256(f"{user.name}\0{password}\0{user.password}".encode()).digest()

    # -- session cookies ---------------------------------------------------------------------
    def _mac(self, user: User, payload: bytes) -> str:
        key = self.secret + user.session_salt.encode()
        return base64.urlsafe_b64encode(
            hmac.new(key, payload, hashlib.sha256).digest()).decode().rstrip("=")

    def issue(self, user: User, now: float | None = None, session: str | None = None) -> str:
        """A cookie for a new session, or for `session` renewed."""
        issued = int(now if now is not None else time.time())
        payload = base64.urlsafe_b64encode(json.dumps(
            {"n": user.name, "t": issued, "s": session or new_session_id()},
            separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{payload}.{self._mac(user, payload.encode())}"

    @staticmethod
    def _payload(token: str) -> tuple[str, str, int, Any] | None:
        """A cookie's payload (not yet checked), its name, time and session; None if garbled."""
        payload = token.partition(".")[0]
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return payload, str(data["n"]), int(data["t"]), data["s"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None

    def is_revoked(self, token: str) -> bool:
        """Whether a cookie names a session whose device was revoked, however old the cookie:
        the phone holding it must be told, to wipe itself (server/domain/devices.py)."""
        found = self._payload(token)
        return found is not None and isinstance(found[3], str) and found[3] in self.revoked

    def read_session(self, token: str) -> Session | None:
        """The session of a valid, unexpired cookie whose user still exists, whose password has
        not changed since (the salt changes with it) and that was not logged out or revoked;
        else None."""
        found, mac = self._payload(token), token.partition(".")[2]
        if found is None:
            return None
        payload, name, issued, session = found
        # A cookie that names no session could never be revoked: refused (made before
        # sessions had ids; the phone logs in again, its records stay on it).
        if not isinstance(session, str) or not SESSION_ID.match(session):
            return None
        user = self.lookup(name)
        if user is None or user.disabled:
            return None
        if not hmac.compare_digest(mac, self._mac(user, payload.encode())):
            return None
        if issued + self.session_seconds < time.time() or issued > time.time() + 60:
            return None
        if session in self.ended or session in self.revoked:
            return None
        return Session(user, issued, session)

    def set_cookie(self, response: web.StreamResponse, request: web.Request, user: User,
                   secure: bool, session: str | None = None) -> None:
        response.set_cookie(SESSION_COOKIE, self.issue(user, session=session),
                            max_age=int(self.session_seconds), path="/", httponly=True,
                            samesite="Strict", secure=secure)

    def cookie_header(self, user: User, secure: bool, session: str | None = None) -> str:
        """The same cookie as `set_cookie`, as a Set-Cookie header value."""
        cookie: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
        cookie[SESSION_COOKIE] = self.issue(user, session=session)
        morsel = cookie[SESSION_COOKIE]
        morsel.update({"max-age": str(int(self.session_seconds)), "path": "/",
                       "httponly": True, "samesite": "Strict", "secure": secure})
        return morsel.OutputString()

    @staticmethod
    def clear_cookie(response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path="/")
