"""Who is asking, and from where: the one middleware every request passes, `/couch/` and
`/api/` alike, before any route sees it.

It authenticates as CouchDB does (HTTP Basic on any request, or the session cookie) and refuses
a cross-site request that would act with what the browser sends by itself (CSRF): an unsafe
request carrying the cookie, and the login that sets it. The SameSite=Strict cookie is the
first guard; this one holds when a browser ignores it."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from server import errors
from server.domain import devices
from server.domain.messages import bilingual
from server.domain.scope import User
from server.store.couch import CouchFailure, StoreUnavailable
from server.web.auth import SESSION_COOKIE, SESSION_RENEW_SECONDS
from server.web.keys import AUTH, CONFIG, RENEW_SESSION, SESSION, USER
from server.web.parsing import PREFIX, path_segments

UNSAFE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH", "COPY"})
LOGIN = ["_session"]  # `POST /couch/_session`: CouchDB's login, which sets the cookie


def client_address(request: web.Request) -> str:
    if request.app[CONFIG].trust_proxy and "X-Forwarded-For" in request.headers:
        # The rightmost entry is the one our own proxy appended; the rest the client wrote.
        return request.headers["X-Forwarded-For"].split(",")[-1].strip()
    return request.remote or "unknown"


def is_secure(request: web.Request) -> bool:
    if request.app[CONFIG].trust_proxy:
        return request.headers.get("X-Forwarded-Proto", request.scheme) == "https"
    return request.secure


def secure_cookie(request: web.Request) -> bool:
    """Whether the session cookie is marked Secure: always in production (which runs only
    behind a TLS proxy), else when the request came over https."""
    return request.app[CONFIG].production or is_secure(request)


def own_origin(request: web.Request) -> str:
    return f"{'https' if is_secure(request) else 'http'}://{request.host}"


@web.middleware
async def guard_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Who is asking: HTTP Basic on any request, or the session cookie. A cookie-borne unsafe
    request from another site is refused (CSRF), and so is a login from another site: a
    foreign page must not log a phone into its own account."""
    auth = request.app[AUTH]
    user: User | None = None
    renew = False
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        user = await auth.check_basic(header, client_address(request))
    elif SESSION_COOKIE in request.cookies:
        found = auth.read_session(request.cookies[SESSION_COOKIE])
        if found is None and auth.is_revoked(request.cookies[SESSION_COOKIE]) \
                and request.path.startswith((PREFIX, "/api")) and not is_login(request):
            raise errors.CouchError(401, "unauthorized", bilingual(
                "此设备已被管理员停用，本机数据将被清除", "This device was revoked by an admin; "
                "its data is being wiped."), headers={devices.REVOKED_HEADER: "1"})
        if found is not None:
            user = found.user
            request[SESSION] = found
            renew = time.time() - found.issued > SESSION_RENEW_SECONDS
            if request.method in UNSAFE_METHODS:
                check_same_origin(request)
    request[USER] = user
    request[RENEW_SESSION] = renew
    if request.path.startswith((PREFIX, "/api")):
        refuse_repeated_parameters(request)
    if is_login(request):
        check_same_origin(request)
    return await handler(request)


def is_login(request: web.Request) -> bool:
    if request.method != "POST" or not request.rel_url.raw_path.startswith(PREFIX + "/"):
        return False
    try:
        return path_segments(request) == LOGIN
    except errors.CouchError:  # a bad path: the route refuses it (400)
        return False


def check_same_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if (origin is not None and origin != own_origin(request)) or fetch_site == "cross-site":
        raise errors.forbidden("请求来自其他网站，已拒绝", "Cross-site request refused.")


def refuse_repeated_parameters(request: web.Request) -> None:
    """A query parameter given twice is a 400. Some checks read the first value (whether
    documents are included, whether to unmask) and the store takes the last: with one value
    each, what is checked is what is done. CouchDB clients never repeat a parameter."""
    names = [name for name, _ in request.query.items()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        name = repeated[0][:64]
        raise errors.bad_request(f"查询参数 {name} 重复，每个参数只能给一次",
                                 f"Query parameter {name} is given more than once; give each "
                                 "parameter once.")


def require_user(request: web.Request) -> User:
    user: User | None = request.get(USER)
    if user is None:
        raise errors.unauthorized()
    return user


def require_role(request: web.Request, roles: tuple[str, ...], zh: str, en: str) -> User:
    """The logged-in user if their role is one of `roles` (and the account is enabled);
    else 403 with the route's own words."""
    user = require_user(request)
    if user.role not in roles or user.disabled:
        raise errors.forbidden(zh, en)
    return user


def require_still_signed_in(request: web.Request) -> User:
    """The asker of a request held open (a longpoll waiting up to a minute), looked up again:
    refused (401) once their account is disabled or removed, their password changed (which
    changes the session salt) or their session logged out since the request came in. A held
    feed calls this before it reads again, so nothing written after the account was closed
    reaches its phone."""
    user = require_user(request)
    auth = request.app[AUTH]
    now = auth.lookup(user.name)
    session = request.get(SESSION)
    if (now is None or now.disabled or now.removed or now.session_salt != user.session_salt
            or now.password != user.password
            or (session is not None and session.id in auth.ended)):
        raise errors.unauthorized("登录已失效，请重新登录",
                                  "Your session has ended: log in again.")
    return now


async def renew_session(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, streamed ones included (a pull-only phone must keep its session). The
    cookie goes in as a header: aiohttp (3.14) turns `set_cookie` into headers before this
    hook runs, so a cookie set here would be dropped without a word."""
    user, session = request.get(USER), request.get(SESSION)
    if user is not None and session is not None and request.get(RENEW_SESSION):
        # The same session, renewed: logging out with any of its cookies ends all of them.
        response.headers.add("Set-Cookie", request.app[AUTH].cookie_header(
            user, secure=secure_cookie(request), session=session.id))


@web.middleware
async def store_errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The store's own errors keep their CouchDB shape; an unreachable store is a 503 with
    Retry-After, so clients back off and retry instead of giving up."""
    try:
        return await handler(request)
    except CouchFailure as exc:
        raise exc.as_couch_error() from None
    except StoreUnavailable:
        raise errors.store_unavailable() from None
