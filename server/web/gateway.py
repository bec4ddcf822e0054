"""The CouchDB-compatible endpoint at `/couch/`: the replication gateway.

Routing is explicit and lives in this file. Every request is authenticated (cookie or Basic), then
its database is resolved to what the user may do there; a database outside the user's scope
answers exactly like a missing one. On a grid database:

- reads a PouchDB client needs (`GET /db`, `_changes`, `_bulk_get`, `_all_docs`, `_revs_diff`,
  documents, attachments, views) are relayed as streams, with only known query parameters
  forwarded, each checked by its kind (params.py), and `_changes` filters only when the store can
  run them (filters.py: it crashes on a bad one);
- every write (`_bulk_docs`, `PUT`/`POST`/`DELETE` of a document or attachment) is validated first
  (validation.py) and recorded in a receipt (replication.py);
- `_local/` checkpoints are kept apart per user.

Databases created outside Linli's naming scheme are passed through untouched, to admins only,
so CouchDB tools find no surprise there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from aiohttp import web

from server import errors
from server.domain.scope import DIRECTORY_DB, DbAccess, User, grid_of_db, is_linli_name
from server.domain.validation import (
    WriteContext,
    check_attachment_upload,
    check_deletion,
    check_id,
)
from server.store.couch import (
    READ_TIMEOUT,
    Conflict,
    CouchFailure,
    NotFound,
    StoreUnavailable,
    db_path,
)
from server.sync import filters, personal, replication
from server.sync import params as qparams
from server.web.auth import SESSION_COOKIE, SESSION_RENEW_SECONDS, Session, ended_session_doc
from server.web.keys import (
    AGGREGATES,
    AUTH,
    CONFIG,
    COUCH,
    DIRECTORY,
    FEEDS_HELD,
    INSTALLATION,
    LIVE_FEEDS,
    POUCHDB_BACKEND,
    RECEIPTS,
    RENEW_SESSION,
    RESOLVER,
    SCHEMAS,
    SESSION,
    USER,
)

PREFIX = "/couch"
COUCHDB_VERSION = "3.3.3"  # the CouchDB API the gateway speaks
MAX_UUIDS = 1000

UNSAFE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH", "COPY"})
MIN_HEARTBEAT_MS, MAX_FEED_TIMEOUT_MS = 1000, 60_000
RAW_REQUEST_HEADERS = ("Content-Type", "Accept", "If-Match", "If-None-Match", "Destination")


# -- authentication ---------------------------------------------------------------------------

def client_address(request: web.Request) -> str:
    if request.app[CONFIG].trust_proxy and "X-Forwarded-For" in request.headers:
        # The rightmost entry is the one our own proxy appended; the rest the client wrote.
        return request.headers["X-Forwarded-For"].split(",")[-1].strip()
    return request.remote or "unknown"


def is_secure(request: web.Request) -> bool:
    if request.app[CONFIG].trust_proxy:
        return request.headers.get("X-Forwarded-Proto", request.scheme) == "https"
    return request.secure


def own_origin(request: web.Request) -> str:
    return f"{'https' if is_secure(request) else 'http'}://{request.host}"


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Who is asking: HTTP Basic on any request, or the session cookie. A cookie-borne unsafe
    request from another site is refused (CSRF), on top of the SameSite=Strict cookie."""
    auth = request.app[AUTH]
    user: User | None = None
    renew = False
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        user = await auth.check_basic(header, client_address(request))
    elif SESSION_COOKIE in request.cookies:
        found = auth.read_session(request.cookies[SESSION_COOKIE])
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
    return await handler(request)


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


async def renew_session(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, streamed ones included (a pull-only phone must keep its session). The
    cookie goes in as a header: aiohttp (3.14) turns `set_cookie` into headers before this
    hook runs, so a cookie set here would be dropped without a word."""
    user, session = request.get(USER), request.get(SESSION)
    if user is not None and session is not None and request.get(RENEW_SESSION):
        # The same session, renewed: logging out with any of its cookies ends all of them.
        response.headers.add("Set-Cookie", request.app[AUTH].cookie_header(
            user, secure=is_secure(request), session=session.id))


def check_same_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if (origin is not None and origin != own_origin(request)) or fetch_site == "cross-site":
        raise errors.forbidden("请求来自其他网站，已拒绝", "Cross-site request refused.")


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


def require_user(request: web.Request) -> User:
    user: User | None = request.get(USER)
    if user is None:
        raise errors.unauthorized()
    return user


# -- request parsing --------------------------------------------------------------------------

def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """JSON in UTF-8, as CouchDB takes it (a UTF-16 body would reach the store as it came).
    Lone surrogates are let through here, escaped or as raw bytes, so that the document that
    holds one is refused alone and the rest of its batch is stored (validation.check_document);
    every other path that stores a body refuses them whole (couch.py, when encoding)."""
    try:
        return json.loads(raw.decode("utf-8", "surrogatepass"), parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise errors.bad_request("请求内容不是有效的 JSON",
                                 "The request body is not valid JSON.") from None


async def read_body(request: web.Request) -> bytes:
    if request.content_type != "application/json":
        raise errors.unsupported_media("请求内容类型应为 application/json",
                                       "Content-Type must be application/json.")
    return await request.read()  # bounded by client_max_size: 413 above it


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    if allow_empty and request.content_type != "application/json" and not request.can_read_body:
        return {}
    raw = await read_body(request)
    if allow_empty and not raw.strip():
        return {}
    return parse_json(raw)


def as_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.bad_request("请求内容应为 JSON 对象",
                                 "The request body must be a JSON object.")
    return body


async def read_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    return as_object(await read_json(request, allow_empty=allow_empty))


def pick(query: Mapping[str, str], allowed: frozenset[str]) -> dict[str, str]:
    """The query parameters of `allowed`, each checked by its kind (params.py): a bad one is a
    400 and never reaches the store."""
    return qparams.pick(query, allowed)


def check_count(items: Any, limit: int, what: str) -> None:
    if len(items) > limit:
        raise errors.too_large(f"一次最多 {limit} 条{what}，收到 {len(items)} 条",
                               f"At most {limit} {what} items per request, got {len(items)}.")


def path_segments(request: web.Request) -> list[str]:
    """The path after /couch/, split on '/' before decoding, so `a%2Fb` stays one segment. An
    empty, `.` or `..` segment (encoded or not) is refused: nothing may climb out of the
    database it names. One trailing slash is allowed (PouchDB asks for `/db/`)."""
    raw = request.rel_url.raw_path[len(PREFIX):]
    if raw.startswith("/"):
        raw = raw[1:]
    if raw.endswith("/"):
        raw = raw[:-1]
    if not raw:
        return []
    segments = [unquote(s) for s in raw.split("/")]
    if any(s in ("", ".", "..") for s in segments):
        raise errors.bad_request("路径无效", "Invalid path: empty, '.' or '..' segment.")
    return segments


def encode_path(segments: list[str]) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


def json_answer(body: Any, status: int = 200) -> web.Response:
    return errors.json_response(body, status=status)


# -- the one entry point ----------------------------------------------------------------------

async def couch_endpoint(request: web.Request) -> web.StreamResponse:
    segments = path_segments(request)
    if not segments:
        return welcome(request)
    head = segments[0]
    if head.startswith("_"):
        return await server_endpoint(request, head, segments[1:])
    user = require_user(request)
    access = request.app[DIRECTORY].access(user, head)
    if access is None:
        return database_out_of_scope(request, user, head, segments[1:])
    if access.raw:
        return await raw_proxy(request, segments)
    return await grid_endpoint(request, user, access, segments)


def welcome(request: web.Request) -> web.Response:
    return json_answer({"couchdb": "Welcome", "version": COUCHDB_VERSION,
                        "uuid": request.app[INSTALLATION].uuid,
                        "vendor": {"name": "Linli 邻里"}, "features": []})


def database_out_of_scope(request: web.Request, user: User, db: str,
                          rest: list[str]) -> web.Response:
    """Answers for a database the user may not reach: the same as for a missing one."""
    if request.method == "PUT" and not rest:
        if not user.is_admin:
            raise errors.CouchError(401, "unauthorized", "You are not a server admin.")
        if grid_of_db(db) is not None:
            raise errors.forbidden("网格数据库由 linli grid add 创建",
                                   "Grid databases are created with `linli grid add`.")
        if is_linli_name(db):
            raise errors.forbidden("这是 Linli 的保留名称", "This database name is reserved.")
        raise errors.bad_request("数据库名称无效", "Illegal database name.")
    raise errors.db_not_found()


# -- /couch/_session, _all_dbs, _uuids ----------------------------------------------------------

async def server_endpoint(request: web.Request, head: str, rest: list[str]) -> web.StreamResponse:
    if rest:
        raise errors.doc_not_found()
    if head == "_session":
        return await session_endpoint(request)
    if head == "_all_dbs" and request.method in ("GET", "HEAD"):
        user = require_user(request)
        all_dbs = await request.app[COUCH].get("/_all_dbs")
        return json_answer(request.app[DIRECTORY].visible_dbs(user, all_dbs))
    if head == "_uuids" and request.method in ("GET", "HEAD"):
        require_user(request)
        count = pick(request.query, frozenset({"count"})).get("count", "1")
        if int(count) > MAX_UUIDS:
            raise errors.bad_request(f"一次最多 {MAX_UUIDS} 个", f"count must be at most "
                                     f"{MAX_UUIDS}.")
        return json_answer({"uuids": [uuid.uuid4().hex for _ in range(int(count))]})
    if head == "_up" and request.method in ("GET", "HEAD"):
        await request.app[COUCH].get("/")
        return json_answer({"status": "ok"})
    if request.get(USER) is None:
        raise errors.unauthorized()
    raise errors.doc_not_found()


def user_context(user: User | None) -> dict[str, Any]:
    if user is None:
        return {"name": None, "roles": []}
    return {"name": user.name, "roles": (["_admin"] if user.is_admin else []) + [user.role]}


async def session_endpoint(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    if request.method == "GET":
        user = request.get(USER)
        method = "cookie" if SESSION_COOKIE in request.cookies and user else (
            "default" if user else None)
        info: dict[str, Any] = {"authentication_handlers": ["cookie", "default"]}
        if method:
            info["authenticated"] = method
        return json_answer({"ok": True, "userCtx": user_context(user), "info": info})
    if request.method == "DELETE":
        session = request.get(SESSION)
        if session is not None:
            await end_session(request, session)
        response = json_answer({"ok": True})
        auth.clear_cookie(response)
        return response
    if request.method != "POST":
        raise errors.CouchError(405, "method_not_allowed", "Only GET,POST,DELETE allowed")
    check_same_origin(request)  # login CSRF: a foreign page must not log a phone into its account
    if request.content_type == "application/x-www-form-urlencoded":
        raw = await request.read()
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    else:
        form = await read_object(request)
    name, password = form.get("name", form.get("username")), form.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not name:
        raise errors.bad_request("请输入用户名和密码", "A name and a password are required.")
    user = await auth.check_password(name, password, client_address(request))
    response = json_answer({"ok": True, "name": user.name, "roles": user_context(user)["roles"]})
    auth.set_cookie(response, request, user, secure=is_secure(request))
    return response


async def end_session(request: web.Request, session: Session) -> None:
    """Log a session out for every server process: refused here at once, and stored in the
    directory, whose changes feed every process follows (within a second). If the store
    cannot take it, the logout fails (503) rather than pretend: the cookie would still work
    elsewhere."""
    expires = time.time() + request.app[AUTH].session_seconds  # every copy has lapsed by then
    request.app[DIRECTORY].ended_sessions[session.id] = expires
    doc = ended_session_doc(session.id, session.user.name, expires)
    with contextlib.suppress(Conflict):  # already logged out (twice, or elsewhere)
        await request.app[COUCH].put(db_path(DIRECTORY_DB, doc["_id"]), doc)


# -- a grid database --------------------------------------------------------------------------

def method_not_allowed(allowed: str) -> errors.CouchError:
    return errors.CouchError(405, "method_not_allowed", f"Only {allowed} allowed")


def write_context(request: web.Request, user: User, access: DbAccess) -> WriteContext:
    config = request.app[CONFIG]
    assert access.grid is not None
    return WriteContext(user=user, db=access.db, grid=access.grid,
                        max_document_bytes=config.max_document_bytes,
                        max_attachment_bytes=config.max_attachment_bytes,
                        max_document_attachments_bytes=config.max_document_attachments_bytes,
                        retired=request.app[DIRECTORY].retired_schemas)


def refuse_local_ids(ids: Any) -> None:
    """Checkpoints are reached only through `/_local/{id}`, where they are kept apart per user;
    never through the bulk endpoints, which would reach every user's."""
    if any(isinstance(i, str) and i.startswith("_local/") for i in ids):
        raise errors.forbidden("不能批量读取 _local 文档",
                               "_local documents cannot be read through bulk requests.")


async def grid_endpoint(request: web.Request, user: User, access: DbAccess,
                        segments: list[str]) -> web.StreamResponse:
    couch, db, method = request.app[COUCH], access.db, request.method
    rest = segments[1:]
    personal.refuse_masked_reader(request, user, access, rest)
    personal.audit_grid_read(request, user, access, rest)
    if not rest:
        if method in ("GET", "HEAD"):
            return await replication.relay(request, couch, "GET", db_path(db))
        if method == "POST":
            return await write_document(request, user, access, None)
        if method == "PUT":
            raise errors.CouchError(412, "file_exists", "The database could not be created, "
                                    "the file already exists.")
        raise method_not_allowed("GET,HEAD,POST,PUT")
    special = rest[0]
    if special == "_changes" and len(rest) == 1:
        return await changes(request, user, access)
    if special == "_bulk_docs" and len(rest) == 1:
        return await bulk_docs(request, user, access)
    if special in ("_bulk_get", "_revs_diff") and len(rest) == 1:
        return await bulk_read(request, access, special)
    if special == "_all_docs" and len(rest) == 1:
        return await all_docs(request, access)
    if special == "_local" and len(rest) == 2:
        return await local_document(request, user, access, rest[1])
    if special == "_design" and len(rest) >= 2:
        ddoc = f"_design/{rest[1]}"
        if len(rest) == 2:
            return await document(request, user, access, ddoc)
        if len(rest) == 4 and rest[2] == "_view" and method in ("GET", "HEAD"):
            return await replication.relay(request, couch, "GET",
                                           db_path(db, ddoc, "_view", rest[3]),
                                           params=pick(request.query, qparams.VIEW))
    if special.startswith("_design/") and len(rest) == 1:  # the client encoded the slash
        return await document(request, user, access, special)
    if special.startswith("_"):
        if user.is_admin:  # maintenance (_security, _compact, _find...) stays an admin's tool
            return await raw_proxy(request, segments)
        if special == "_security":  # not a document id: who may reach the database
            raise errors.forbidden("只有管理员可以查看或修改数据库的权限设置",
                                   "Only admins may read or change a database's _security.")
        if method in ("PUT", "DELETE") and len(rest) == 1:
            refusal = check_id(special, write_context(request, user, access))
            if refusal is not None:
                raise replication.refusal_error(refusal)
        raise errors.forbidden("此操作不能通过网关进行",
                               "This operation is not available through the gateway.")
    if len(rest) == 1:
        return await document(request, user, access, special)
    return await attachment(request, user, access, special, "/".join(rest[1:]))


def changes_params(request: web.Request) -> dict[str, str]:
    """The `_changes` parameters worth forwarding, checked: a bad value never reaches the store
    (the embedded one dies on some), and a feed cannot be made to spin or to hang for ever.
    `filter`, `doc_ids` and `view` are the caller's to check and forward."""
    forwarded = pick(request.query, qparams.CHANGES)
    feed = forwarded.get("feed", "normal")
    if "heartbeat" in forwarded:
        forwarded["heartbeat"] = str(max(MIN_HEARTBEAT_MS, int(forwarded["heartbeat"])))
    if "timeout" in forwarded:
        forwarded["timeout"] = str(min(MAX_FEED_TIMEOUT_MS, int(forwarded["timeout"])))
    elif feed == "longpoll" and "heartbeat" not in forwarded:
        forwarded["timeout"] = str(MAX_FEED_TIMEOUT_MS)
    return forwarded


async def changes(request: web.Request, user: User, access: DbAccess) -> web.StreamResponse:
    """The changes feed, normal or longpoll, streamed. A grid database is wholly in its users'
    scope, so nothing is filtered out for their sake and every filter the store can run safely
    is passed (filters.py). A longpoll waits in the server (feeds.py), which reads with the same
    filter on each change, at most MAX_FEED_TIMEOUT_MS even with a heartbeat, so each phone's
    scope is checked again at least every minute."""
    if request.method not in ("GET", "HEAD", "POST"):
        raise method_not_allowed("GET,POST")
    given = request.query.getall("filter", [])
    if len(given) > 1:
        raise errors.bad_request("只能指定一个 filter", "Give at most one filter.")
    params = changes_params(request)
    for name in ("filter", "doc_ids", "view"):  # forwarded below, for their filter only
        params.pop(name, None)
    query_ids = request.query.get("doc_ids")
    body = await read_object(request, allow_empty=True) if request.method == "POST" else {}
    live = params.get("feed") == "longpoll"
    upstream_body: dict[str, Any] | None = None
    recheck = None  # a live feed checks its filter again before each read (feeds.py)
    if given and given[0] != "_doc_ids":
        recheck = functools.partial(filters.upstream, request.app[COUCH], access.db, user,
                                    given[0], request.query, body)
        params.update(await recheck())
    elif given:
        doc_ids = body.get("doc_ids")
        if doc_ids is None and query_ids is not None:
            doc_ids = parse_json(query_ids.encode())
        if not isinstance(doc_ids, list) or not all(isinstance(i, str) for i in doc_ids):
            raise errors.bad_request("doc_ids 应为记录编号列表",
                                     "doc_ids must be a list of document ids.")
        check_count(doc_ids, request.app[CONFIG].max_batch_docs, "doc_ids")
        refuse_local_ids(doc_ids)
        params["filter"] = "_doc_ids"
        upstream_body = {"doc_ids": doc_ids}
    path = db_path(access.db, "_changes")
    if request.method == "HEAD":  # headers only: never a wait (the store's would send nothing
        live = False              # until the read timeout, holding its connection)
        for name in ("feed", "heartbeat", "timeout"):
            params.pop(name, None)
    with request.app[FEEDS_HELD].hold(user.name, live):
        if live and request.method != "HEAD":  # waits in the server, not in the store
            heartbeat = params.get("heartbeat")
            return await request.app[LIVE_FEEDS].longpoll(
                request, access.db, params, upstream_body,
                timeout_s=int(params.get("timeout", MAX_FEED_TIMEOUT_MS)) / 1000,
                heartbeat_s=int(heartbeat) / 1000 if heartbeat else None, recheck=recheck)
        return await replication.relay(request, request.app[COUCH],
                                       "POST" if upstream_body else "GET", path, params=params,
                                       body=upstream_body)


async def bulk_docs(request: web.Request, user: User, access: DbAccess) -> web.Response:
    if request.method != "POST":
        raise method_not_allowed("POST")
    raw = await read_body(request)
    body = as_object(parse_json(raw))
    docs, new_edits = body.get("docs"), body.get("new_edits", True)
    if not isinstance(docs, list):
        raise errors.bad_request("缺少 docs 列表", "POST body must include a `docs` list.")
    if not isinstance(new_edits, bool):
        raise errors.bad_request("new_edits 应为 true 或 false", "new_edits must be a boolean.")
    check_count(docs, request.app[CONFIG].max_batch_docs, "")
    outcome = await replication.write_batch(
        request.app[COUCH], request.app[SCHEMAS], request.app[RECEIPTS],
        write_context(request, user, access), docs, new_edits,
        raw_body=raw if set(body) <= {"docs", "new_edits"} else None)
    if access.grid is not None:
        request.app[AGGREGATES].notice(access.grid)
        if not new_edits and outcome.may_conflict:  # only there can a conflict arise
            request.app[RESOLVER].notice(access.grid)
    return json_answer(outcome.results, status=201)


async def bulk_read(request: web.Request, access: DbAccess, endpoint: str) -> web.StreamResponse:
    if request.method != "POST":
        raise method_not_allowed("POST")
    body = await read_object(request)
    if endpoint == "_bulk_get":
        items = body.get("docs")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise errors.bad_request("缺少 docs 列表", "POST body must include a `docs` list.")
        if not items:  # PouchDB Server never answers an empty _bulk_get: the request would hang
            return json_answer({"results": []})
        ids = [i.get("id") for i in items]
    else:
        items = body
        ids = list(body)
    check_count(items, request.app[CONFIG].max_batch_docs, "")
    refuse_local_ids(ids)
    forwarded = pick(request.query, qparams.BULK_GET) if endpoint == "_bulk_get" else {}
    return await replication.relay(request, request.app[COUCH], "POST",
                                   db_path(access.db, endpoint), params=forwarded, body=body)


async def all_docs(request: web.Request, access: DbAccess) -> web.StreamResponse:
    forwarded = pick(request.query, qparams.ALL_DOCS)
    path = db_path(access.db, "_all_docs")
    if "keys" in forwarded:
        query_keys = qparams.json_value("keys", forwarded["keys"])
        if not isinstance(query_keys, list):
            raise errors.bad_request("keys 应为列表", "`keys` must be a list.")
        check_count(query_keys, request.app[CONFIG].max_batch_docs, "keys")
        refuse_local_ids(query_keys)
    if request.method in ("GET", "HEAD"):
        return await replication.relay(request, request.app[COUCH], "GET", path,
                                       params=forwarded)
    if request.method != "POST":
        raise method_not_allowed("GET,HEAD,POST")
    body = await read_object(request)
    keys = body.get("keys")
    if keys is not None:
        if not isinstance(keys, list):
            raise errors.bad_request("keys 应为列表", "`keys` must be a list.")
        check_count(keys, request.app[CONFIG].max_batch_docs, "keys")
        refuse_local_ids(keys)
    return await replication.relay(request, request.app[COUCH], "POST", path, params=forwarded,
                                   body={"keys": keys} if keys is not None else {})


async def local_document(request: web.Request, user: User, access: DbAccess,
                         client_id: str) -> web.Response:
    """A client's checkpoint, kept per user (replication.local_id_for), with the store's own
    semantics: revisions 0-N, `rev` as a query parameter or `_rev`, 409 for a wrong one.
    Attachments are refused: the store keeps a `_local` document's `_attachments` as plain
    data it can never serve as attachments (and CouchDB keeps none on `_local` documents)."""
    couch = request.app[COUCH]
    if request.method in ("GET", "HEAD"):
        return json_answer(await replication.read_local(couch, user, access.db, client_id))
    if request.method == "PUT":
        raw = await read_body(request)
        if len(raw) > request.app[CONFIG].max_document_bytes:
            raise errors.too_large("检查点文档太大", "The _local document is too large.")
        doc = as_object(parse_json(raw))
        if "_attachments" in doc:
            raise errors.bad_request("_local 文档不能带附件",
                                     "_local documents cannot carry attachments.")
        rev = pick(request.query, qparams.WRITE).get("rev")
        if rev is not None and "_rev" not in doc:
            doc["_rev"] = rev
        result = await replication.write_local(couch, user, access.db, client_id, doc)
        return json_answer(result, status=201)
    if request.method == "DELETE":
        rev = pick(request.query, qparams.WRITE).get("rev")
        return json_answer(await replication.delete_local(couch, user, access.db, client_id,
                                                          rev))
    raise method_not_allowed("GET,HEAD,PUT,DELETE")


async def document(request: web.Request, user: User, access: DbAccess,
                   doc_id: str) -> web.StreamResponse:
    if request.method in ("GET", "HEAD"):
        return await replication.relay(request, request.app[COUCH], "GET",
                                       db_path(access.db, doc_id),
                                       params=pick(request.query, qparams.DOCUMENT))
    if request.method == "PUT":
        return await write_document(request, user, access, doc_id)
    if request.method == "DELETE":
        return await delete_document(request, user, access, doc_id)
    raise method_not_allowed("GET,HEAD,PUT,DELETE")


STORE_ERROR_STATUS = {"conflict": 409, "forbidden": 403, "unauthorized": 401,
                      "not_found": 404, "bad_request": 400}


async def write_document(request: web.Request, user: User, access: DbAccess,
                         doc_id: str | None) -> web.Response:
    """A single `PUT /db/id` or `POST /db`: the same path as a batch of one, CouchDB's
    statuses."""
    doc = await read_object(request)
    if doc_id is not None:
        doc["_id"] = doc_id
    elif "_id" not in doc:
        doc["_id"] = f"{doc['type']}:{uuid.uuid4().hex}" if isinstance(
            doc.get("type"), str) else uuid.uuid4().hex
    query = pick(request.query, qparams.WRITE)
    if "rev" in query and "_rev" not in doc:
        doc["_rev"] = query["rev"]
    new_edits = query.get("new_edits") != "false"
    outcome = await replication.write_batch(
        request.app[COUCH], request.app[SCHEMAS], request.app[RECEIPTS],
        write_context(request, user, access), [doc], new_edits)
    if access.grid is not None:
        request.app[AGGREGATES].notice(access.grid)
        if not new_edits and outcome.may_conflict:
            request.app[RESOLVER].notice(access.grid)
    [refusal], [result] = outcome.refusals, outcome.results or [{"id": doc["_id"]}]
    if refusal is not None:
        raise replication.refusal_error(refusal)
    if "error" in result:
        raise errors.CouchError(STORE_ERROR_STATUS.get(result["error"], 400),
                                str(result["error"]), str(result.get("reason", "")))
    return json_answer({"ok": True, "id": doc["_id"], "rev": result.get("rev", doc.get("_rev"))},
                       status=201)


async def delete_document(request: web.Request, user: User, access: DbAccess,
                          doc_id: str) -> web.Response:
    """`DELETE /db/id?rev=`: the store writes a bare tombstone; who may delete it is checked
    as for a tombstone in a batch (the type's writers, the author)."""
    couch, db = request.app[COUCH], access.db
    authors, deleted = await replication.stored_authors(couch, db, [doc_id])
    ctx = dataclasses.replace(write_context(request, user, access), stored_authors=authors,
                              deleted=deleted)
    refusal = check_id(doc_id, ctx) or check_deletion(doc_id, ctx, request.app[SCHEMAS])
    if refusal is not None:
        raise replication.refusal_error(refusal)
    rev = pick(request.query, qparams.WRITE).get("rev", "")
    with request.app[RECEIPTS].writing(user.name, db):
        result = await couch.request("DELETE", db_path(db, doc_id), params={"rev": rev})
        request.app[RECEIPTS].record(user.name, db, [[doc_id, str(result.get("rev"))]])
    return json_answer(result)


async def attachment(request: web.Request, user: User, access: DbAccess, doc_id: str,
                     name: str) -> web.StreamResponse:
    """Attachments are read one by one (PouchDB fetches them so), but written only inside their
    document, where the whole revision is validated: a standalone write would change a record
    without its checks. Admins may still use the standalone form."""
    couch, db = request.app[COUCH], access.db
    path = db_path(db, doc_id, name)
    params = pick(request.query, qparams.ATTACHMENT)
    if request.method in ("GET", "HEAD"):
        return await replication.relay(request, couch, "GET", path, params=params)
    if request.method not in ("PUT", "DELETE"):
        raise method_not_allowed("GET,HEAD,PUT,DELETE")
    ctx = write_context(request, user, access)
    if not user.is_admin:
        raise errors.forbidden("附件请随记录一起保存", "Send attachments inside their document.")
    refusal = check_id(doc_id, ctx)
    if refusal is None and request.method == "PUT":
        content = await request.read()
        try:  # the record it joins decides which types it may carry, and their total
            stored: dict[str, Any] | None = await couch.get(db_path(db, doc_id))
        except NotFound:
            stored = None
        refusal = check_attachment_upload(name, request.content_type, len(content), ctx,
                                          stored, request.app[SCHEMAS])
    if refusal is not None:
        raise replication.refusal_error(refusal)
    with request.app[RECEIPTS].writing(user.name, db):
        if request.method == "PUT":
            result = await couch.request("PUT", path, params=params, data=content,
                                         headers={"Content-Type": request.content_type})
        else:
            result = await couch.request("DELETE", path, params=params)
        request.app[RECEIPTS].record(user.name, db, [[doc_id, str(result.get("rev"))]])
    return json_answer(result, status=201 if request.method == "PUT" else 200)


# -- raw CouchDB, admins only -----------------------------------------------------------------

async def raw_proxy(request: web.Request, segments: list[str]) -> web.StreamResponse:
    """A database outside Linli's naming scheme (or an admin's maintenance call): relayed as it
    came, so CouchDB tools behave as against CouchDB, once the parameters CouchDB gives a kind
    are checked (PouchDB Server answers 500 to some bad ones). The one exception protects
    PouchDB Server, which crashes on `_changes` filters other than `_doc_ids`, and on a
    `selector` or `view` parameter even without a filter."""
    qparams.check(request.query, skip=frozenset({"feed"}))  # admins may ask for continuous
    given = request.query.getall("filter", [])
    if request.app[POUCHDB_BACKEND] and "_changes" in segments and (
            any(f != "_doc_ids" for f in given) or "selector" in request.query
            or "view" in request.query):
        what = given[0] if given else "selector/view"
        raise errors.bad_request("内置数据库不支持此过滤器",
                                 f"The embedded store cannot run filter {what!r} safely; "
                                 "use a real CouchDB for it.")
    headers = {h: request.headers[h] for h in RAW_REQUEST_HEADERS if h in request.headers}
    data = await request.read() if request.can_read_body else None
    live = request.query.get("feed") in ("longpoll", "continuous", "eventsource")
    params: Mapping[str, str] = request.query
    deadline_s = None
    if live and request.method != "HEAD":
        # CouchDB's timeout, which PouchDB Server ignores: the gateway ends the feed then.
        # The store's heartbeat (6 s unless asked) keeps the read timeout from firing sooner.
        timeout_ms = request.query.get("timeout", "")
        asked = int(timeout_ms) if timeout_ms.isdecimal() and len(timeout_ms) < 10 else None
        deadline_s = min(asked or MAX_FEED_TIMEOUT_MS, MAX_FEED_TIMEOUT_MS) / 1000
    elif live:
        params = {k: v for k, v in request.query.items()
                  if k not in ("feed", "heartbeat", "timeout")}
    return await replication.relay(request, request.app[COUCH], request.method,
                                   encode_path(segments), params=params, data=data,
                                   headers=headers, read_timeout=READ_TIMEOUT,
                                   deadline_s=deadline_s)


def setup_routes(app: web.Application) -> None:
    app.router.add_route("*", PREFIX, couch_endpoint)
    app.router.add_route("*", PREFIX + "/{tail:.*}", couch_endpoint)
