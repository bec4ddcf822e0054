"""The handlers of a database's endpoints at `/couch/{db}/...`; routing.py names each one, with
its methods, and resolves the database before any handler runs. On a grid database:

- reads a PouchDB client needs (`GET /db`, `_changes`, `_bulk_get`, `_all_docs`, `_revs_diff`,
  documents, attachments, views) are relayed as streams (those a first download is made of,
  `_changes` but a live one, `_bulk_get` and `_all_docs`, gzipped for a client that accepts it),
  with only known query parameters forwarded, each checked by its kind (params.py), and
  `_changes` filters only when the store can run them (filters.py: it crashes on a bad one);
- every write (`_bulk_docs`, `PUT`/`POST`/`DELETE` of a document or attachment) is validated first
  (validation.py) and recorded in a receipt (replication.py);
- `_local/` checkpoints are kept apart per user.

Databases created outside Linli's naming scheme are passed through untouched, to admins only
(`raw_proxy`), so CouchDB tools find no surprise there.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from server import errors
from server.domain import phone_budget, retention, validation
from server.domain.scope import DbAccess, User, grid_of_db, is_linli_name
from server.domain.validation import (
    WriteContext,
    check_attachment_upload,
    check_deletion,
    check_id,
)
from server.store.couch import READ_TIMEOUT, NotFound, db_path
from server.sync import filters, replication
from server.sync import params as qparams
from server.sync.resident_queue import log_staff_writes, staff_deletion
from server.web.guard import require_still_signed_in
from server.web.keys import (
    AGGREGATES,
    AUTHORS,
    CONFIG,
    COUCH,
    DIRECTORY,
    DOOR_LINKS,
    FEEDS_HELD,
    LIVE_FEEDS,
    POUCHDB_BACKEND,
    RECEIPTS,
    RESIDENT_INDEX,
    RESOLVER,
    SCHEMAS,
)
from server.web.parsing import (
    as_object,
    check_count,
    encode_path,
    json_answer,
    parse_json,
    pick,
    read_body,
    read_object,
)

MIN_HEARTBEAT_MS, MAX_FEED_TIMEOUT_MS = 1000, 60_000
RAW_REQUEST_HEADERS = ("Content-Type", "Accept", "If-Match", "If-None-Match", "Destination")
STORE_ERROR_STATUS = {"conflict": 409, "forbidden": 403, "unauthorized": 401,
                      "not_found": 404, "bad_request": 400}


@dataclasses.dataclass(frozen=True)
class Target:
    """A request to a grid database once its route is found: who asks, what they may do in the
    database, the path after /couch/, the parts of it the route names (`doc`, `attachment`...),
    and the query parameters the route checks before its method (`Route.query`)."""

    user: User
    access: DbAccess
    segments: tuple[str, ...]
    parts: Mapping[str, str]
    query: Mapping[str, str]

    @property
    def db(self) -> str:
        return self.access.db

    @property
    def doc_id(self) -> str:
        """`{doc}`, or `_design/{ddoc}` however the client wrote its slash."""
        return f"_design/{self.parts['ddoc']}" if "ddoc" in self.parts else self.parts["doc"]


def method_not_allowed(allowed: str) -> errors.CouchError:
    return errors.CouchError(405, "method_not_allowed", f"Only {allowed} allowed")


def write_context(request: web.Request, target: Target) -> WriteContext:
    assert target.access.grid is not None
    directory = request.app[DIRECTORY]
    return validation.write_context(target.user, target.access.grid, request.app[CONFIG],
                                    directory.retired_schemas,
                                    directory.purged_campaigns(target.access.grid),
                                    datetime.datetime.now(retention.CHINA).date())


def refuse_local_ids(ids: Any) -> None:
    """Checkpoints are reached only through `/_local/{id}`, where they are kept apart per user;
    never through the bulk endpoints, which would reach every user's."""
    if any(isinstance(i, str) and i.startswith("_local/") for i in ids):
        raise errors.forbidden("不能批量读取 _local 文档",
                               "_local documents cannot be read through bulk requests.")


def checked_ids(request: web.Request, ids: Any, what: str) -> None:
    """A list of ids or keys in a request: bounded, and no checkpoint among them."""
    check_count(ids, request.app[CONFIG].max_batch_docs, what)
    refuse_local_ids(ids)


def notice_writes(request: web.Request, target: Target, outcome: replication.BatchOutcome,
                  new_edits: bool, docs: list[Any]) -> None:
    """The figures of the grid are out of date; a replicated write may have made a conflict;
    a staff member's resident work is logged, and a sign-up decided may be due its link."""
    grid = target.access.grid
    if grid is not None:
        request.app[AGGREGATES].notice(grid)
        if log_staff_writes(target.user, grid, docs, outcome.refusals):
            request.app[DOOR_LINKS].notice(grid)
        request.app[RESIDENT_INDEX].notice(target.db)
        if not new_edits and outcome.may_conflict:  # only there can a conflict arise
            request.app[RESOLVER].notice(grid)


async def relay_get(request: web.Request, target: Target, *path: str,
                    params: Mapping[str, str] | None = None,
                    compress: bool = False) -> web.StreamResponse:
    """A read relayed from the store as a stream (gzipped with `compress`: replication.relay)."""
    return await replication.relay(request, request.app[COUCH], "GET",
                                   db_path(target.db, *path), params=params,
                                   compress=compress)


# -- the database itself: `{db}` ----------------------------------------------------------------

async def database_info(request: web.Request, target: Target) -> web.StreamResponse:
    return await relay_get(request, target)


async def post_document(request: web.Request, target: Target) -> web.Response:
    return await write_document(request, target, None)


async def database_exists(request: web.Request, target: Target) -> web.Response:
    raise errors.CouchError(412, "file_exists", "The database could not be created, "
                            "the file already exists.")


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


# -- `_changes` ---------------------------------------------------------------------------------

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


def changes_doc_ids(request: web.Request, body: Mapping[str, Any]) -> list[str]:
    """The ids of `filter=_doc_ids`, from the body or else the query, as CouchDB takes them."""
    doc_ids = body.get("doc_ids")
    query_ids = request.query.get("doc_ids")
    if doc_ids is None and query_ids is not None:
        doc_ids = parse_json(query_ids.encode())
    if not isinstance(doc_ids, list) or not all(isinstance(i, str) for i in doc_ids):
        raise errors.bad_request("doc_ids 应为记录编号列表",
                                 "doc_ids must be a list of document ids.")
    checked_ids(request, doc_ids, "doc_ids")
    return doc_ids


Recheck = Callable[[], Awaitable[dict[str, str]]]


async def changes_filter(request: web.Request, target: Target, name: str | None,
                         body: Mapping[str, Any]) -> tuple[dict[str, str],
                                                           dict[str, Any] | None,
                                                           Recheck | None]:
    """The filter a feed reads with: the parameters it adds, the body sent to the store, and
    how a live feed checks it again before each read (feeds.py)."""
    if name is None:
        return {}, None, None
    if name == "_doc_ids":
        return {"filter": name}, {"doc_ids": changes_doc_ids(request, body)}, None
    upstream = functools.partial(filters.upstream, request.app[COUCH], target.db, target.user,
                                 name, request.query, body)
    return await upstream(), None, upstream


async def changes(request: web.Request, target: Target) -> web.StreamResponse:
    """The changes feed, normal or longpoll, streamed. A grid database is wholly in its users'
    scope, so nothing is filtered out for their sake and every filter the store can run safely
    is passed (filters.py). A longpoll waits in the server (feeds.py), which reads with the same
    filter on each change, at most MAX_FEED_TIMEOUT_MS even with a heartbeat, so each phone's
    scope is checked again at least every minute."""
    given = request.query.getall("filter", [])
    if len(given) > 1:
        raise errors.bad_request("只能指定一个 filter", "Give at most one filter.")
    params = changes_params(request)
    for name in ("filter", "doc_ids", "view"):  # forwarded below, for their filter only
        params.pop(name, None)
    body = await read_object(request, allow_empty=True) if request.method == "POST" else {}
    live = params.get("feed") == "longpoll"
    if params.get("since", "0") == "0" and target.access.grid is not None:  # a first download
        config = request.app[CONFIG]
        info = await request.app[COUCH].get(db_path(target.db))
        refusal = phone_budget.over_budget(info, config.phone_grid_max_documents,
                                           config.phone_grid_max_bytes)
        if refusal is not None:
            raise refusal
    added, upstream_body, refilter = await changes_filter(request, target,
                                                          given[0] if given else None, body)
    params.update(added)

    async def recheck() -> object:
        """Before each read after the first: the asker still signed in and still reaching
        this database (a disabled worker's waiting feed gets nothing more), then the filter."""
        user = require_still_signed_in(request)
        if request.app[DIRECTORY].access(user, target.db) is None:
            raise errors.db_not_found()
        return await refilter() if refilter is not None else None

    if request.method == "HEAD":  # headers only: never a wait (the store's would send nothing
        live = False              # until the read timeout, holding its connection)
        for name in ("feed", "heartbeat", "timeout"):
            params.pop(name, None)
    with request.app[FEEDS_HELD].hold(target.user.name, live):
        if live:  # waits in the server, not in the store
            heartbeat = params.get("heartbeat")
            return await request.app[LIVE_FEEDS].longpoll(
                request, target.db, params, upstream_body,
                timeout_s=int(params.get("timeout", MAX_FEED_TIMEOUT_MS)) / 1000,
                heartbeat_s=int(heartbeat) / 1000 if heartbeat else None, recheck=recheck)
        return await replication.relay(request, request.app[COUCH],
                                       "POST" if upstream_body else "GET",
                                       db_path(target.db, "_changes"), params=params,
                                       body=upstream_body, compress=True)


# -- `_bulk_docs`, `_bulk_get`, `_revs_diff`, `_all_docs` ---------------------------------------

async def bulk_docs(request: web.Request, target: Target) -> web.Response:
    raw = await read_body(request)
    body = as_object(parse_json(raw))
    docs, new_edits = body.get("docs"), body.get("new_edits", True)
    if not isinstance(docs, list):
        raise errors.bad_request("缺少 docs 列表", "POST body must include a `docs` list.")
    if not isinstance(new_edits, bool):
        raise errors.bad_request("new_edits 应为 true 或 false", "new_edits must be a boolean.")
    check_count(docs, request.app[CONFIG].max_batch_docs, "")
    outcome = await replication.write_batch(
        request.app[COUCH], request.app[SCHEMAS], request.app[RECEIPTS], request.app[AUTHORS],
        write_context(request, target), docs, new_edits,
        raw_body=raw if set(body) <= {"docs", "new_edits"} else None)
    notice_writes(request, target, outcome, new_edits, docs)
    return json_answer(outcome.results, status=201)


async def bulk_get(request: web.Request, target: Target) -> web.StreamResponse:
    body = await read_object(request)
    items = body.get("docs")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise errors.bad_request("缺少 docs 列表", "POST body must include a `docs` list.")
    if not items:  # PouchDB Server never answers an empty _bulk_get: the request would hang
        return json_answer({"results": []})
    checked_ids(request, [i.get("id") for i in items], "")
    return await replication.relay(request, request.app[COUCH], "POST",
                                   db_path(target.db, "_bulk_get"),
                                   params=pick(request.query, qparams.BULK_GET), body=body,
                                   compress=True)


async def revs_diff(request: web.Request, target: Target) -> web.StreamResponse:
    body = await read_object(request)
    checked_ids(request, list(body), "")
    return await replication.relay(request, request.app[COUCH], "POST",
                                   db_path(target.db, "_revs_diff"), params={}, body=body)


def all_docs_query(request: web.Request) -> dict[str, str]:
    """`_all_docs`'s parameters, `keys` among them, checked whatever the method."""
    forwarded = pick(request.query, qparams.ALL_DOCS)
    if "keys" in forwarded:
        query_keys = qparams.json_value("keys", forwarded["keys"])
        if not isinstance(query_keys, list):
            raise errors.bad_request("keys 应为列表", "`keys` must be a list.")
        checked_ids(request, query_keys, "keys")
    return forwarded


async def all_docs(request: web.Request, target: Target) -> web.StreamResponse:
    return await relay_get(request, target, "_all_docs", params=target.query, compress=True)


async def all_docs_by_keys(request: web.Request, target: Target) -> web.StreamResponse:
    body = await read_object(request)
    keys = body.get("keys")
    if keys is not None:
        if not isinstance(keys, list):
            raise errors.bad_request("keys 应为列表", "`keys` must be a list.")
        checked_ids(request, keys, "keys")
    return await replication.relay(request, request.app[COUCH], "POST",
                                   db_path(target.db, "_all_docs"), params=target.query,
                                   body={"keys": keys} if keys is not None else {},
                                   compress=True)


# -- `_local/{id}`: a client's checkpoint, kept per user (replication.local_id_for) ------------
# The store's own semantics: revisions 0-N, `rev` as a query parameter or `_rev`, 409 for a
# wrong one.

async def read_local(request: web.Request, target: Target) -> web.Response:
    return json_answer(await replication.read_local(request.app[COUCH], target.user, target.db,
                                                    target.parts["id"]))


async def put_local(request: web.Request, target: Target) -> web.Response:
    """Attachments are refused: the store keeps a `_local` document's `_attachments` as plain
    data it can never serve as attachments (and CouchDB keeps none on `_local` documents)."""
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
    result = await replication.write_local(request.app[COUCH], target.user, target.db,
                                           target.parts["id"], doc)
    return json_answer(result, status=201)


async def delete_local(request: web.Request, target: Target) -> web.Response:
    rev = pick(request.query, qparams.WRITE).get("rev")
    return json_answer(await replication.delete_local(request.app[COUCH], target.user,
                                                      target.db, target.parts["id"], rev))


# -- documents, design documents and views ----------------------------------------------------

async def read_document(request: web.Request, target: Target) -> web.StreamResponse:
    return await relay_get(request, target, target.doc_id,
                           params=pick(request.query, qparams.DOCUMENT))


async def put_document(request: web.Request, target: Target) -> web.Response:
    return await write_document(request, target, target.doc_id)


async def write_document(request: web.Request, target: Target,
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
        request.app[COUCH], request.app[SCHEMAS], request.app[RECEIPTS], request.app[AUTHORS],
        write_context(request, target), [doc], new_edits)
    notice_writes(request, target, outcome, new_edits, [doc])
    [refusal], [result] = outcome.refusals, outcome.results or [{"id": doc["_id"]}]
    if refusal is not None:
        raise replication.refusal_error(refusal)
    if "error" in result:
        raise errors.CouchError(STORE_ERROR_STATUS.get(result["error"], 400),
                                str(result["error"]), str(result.get("reason", "")))
    return json_answer({"ok": True, "id": doc["_id"], "rev": result.get("rev", doc.get("_rev"))},
                       status=201)


async def delete_document(request: web.Request, target: Target) -> web.Response:
    """`DELETE /db/id?rev=`: the store writes a bare tombstone; who may delete it is checked
    as for a tombstone in a batch (the type's writers, the author)."""
    db, doc_id = target.db, target.doc_id
    authors, deleted = await request.app[AUTHORS].lookup(db, [doc_id], target.user.name)
    ctx = dataclasses.replace(write_context(request, target), stored_authors=authors,
                              deleted=deleted)
    refusal = (check_id(doc_id, ctx) or check_deletion(doc_id, ctx, request.app[SCHEMAS])
               or staff_deletion(ctx, doc_id))
    if refusal is not None:
        raise replication.refusal_error(refusal)
    rev = pick(request.query, qparams.WRITE).get("rev", "")
    return json_answer(await receipted(request, target, "DELETE", db_path(db, doc_id),
                                       params={"rev": rev}))


async def receipted(request: web.Request, target: Target, method: str, path: str,
                    **options: Any) -> dict[str, Any]:
    """A write of one document sent to the store as it is, acknowledged in a receipt."""
    name, db, receipts = target.user.name, target.db, request.app[RECEIPTS]
    with receipts.writing(name, db):
        result: dict[str, Any] = await request.app[COUCH].request(method, path, **options)
        receipts.record(name, db, [[target.doc_id, str(result.get("rev"))]])
    return result


async def view(request: web.Request, target: Target) -> web.StreamResponse:
    return await relay_get(request, target, target.doc_id, "_view", target.parts["view"],
                           params=pick(request.query, qparams.VIEW))


# -- attachments ------------------------------------------------------------------------------
# Read one by one (PouchDB fetches them so), but written only inside their document, where the
# whole revision is validated: a standalone write would change a record without its checks.
# Admins may still use the standalone form.

async def read_attachment(request: web.Request, target: Target) -> web.StreamResponse:
    return await relay_get(request, target, target.doc_id, target.parts["attachment"],
                           params=target.query)


def attachment_context(request: web.Request, target: Target) -> WriteContext:
    """A standalone attachment write is an admin's only, its record's id checked as for any
    write."""
    ctx = write_context(request, target)
    if not target.user.is_admin:
        raise errors.forbidden("附件请随记录一起保存", "Send attachments inside their document.")
    refusal = check_id(target.doc_id, ctx)
    if refusal is not None:
        raise replication.refusal_error(refusal)
    return ctx


async def put_attachment(request: web.Request, target: Target) -> web.Response:
    ctx = attachment_context(request, target)
    couch, doc_id, name = request.app[COUCH], target.doc_id, target.parts["attachment"]
    content = await request.read()
    try:  # the record it joins decides which types it may carry, and their total
        stored: dict[str, Any] | None = await couch.get(db_path(target.db, doc_id))
    except NotFound:
        stored = None
    refusal = check_attachment_upload(name, request.content_type, len(content), ctx, stored,
                                      request.app[SCHEMAS])
    if refusal is not None:
        raise replication.refusal_error(refusal)
    result = await receipted(request, target, "PUT", db_path(target.db, doc_id, name),
                             params=target.query, data=content,
                             headers={"Content-Type": request.content_type})
    return json_answer(result, status=201)


async def delete_attachment(request: web.Request, target: Target) -> web.Response:
    attachment_context(request, target)
    path = db_path(target.db, target.doc_id, target.parts["attachment"])
    return json_answer(await receipted(request, target, "DELETE", path, params=target.query))


def attachment_query(request: web.Request) -> dict[str, str]:
    return pick(request.query, qparams.ATTACHMENT)


# -- whatever else: not through the gateway, or an admin's maintenance -----------------------

async def beyond_gateway(request: web.Request, target: Target) -> web.StreamResponse:
    """Any other `_` endpoint of a grid database: an admin's maintenance call (`_security`,
    `_compact`, `_find`...) relayed as it came; refused to everyone else."""
    if target.user.is_admin:
        return await raw_proxy(request, list(target.segments))
    special = target.segments[1]
    if special == "_security":  # not a document id: who may reach the database
        raise errors.forbidden("只有管理员可以查看或修改数据库的权限设置",
                               "Only admins may read or change a database's _security.")
    if request.method in ("PUT", "DELETE") and len(target.segments) == 2:
        refusal = check_id(special, write_context(request, target))
        if refusal is not None:
            raise replication.refusal_error(refusal)
    raise errors.forbidden("此操作不能通过网关进行",
                           "This operation is not available through the gateway.")


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
    params, deadline_s = raw_feed(request)
    quiet = None
    if request.query.get("feed") in ("longpoll", "continuous") and segments[-1:] == ["_changes"]:
        quiet = functools.partial(quiet_feed, request, segments[0])
    return await replication.relay(request, request.app[COUCH], request.method,
                                   encode_path(segments), params=params, data=data,
                                   headers=headers, read_timeout=READ_TIMEOUT,
                                   deadline_s=deadline_s, quiet=quiet)


async def quiet_feed(request: web.Request, db: str, sent: bytes) -> bytes | None:
    """The rest of CouchDB's body for a live feed whose `timeout` passed with no change to send
    after `sent` (heartbeats, a longpoll's opening): no results and the `since` it was given
    (the database's seq for `now`). PouchDB Server ignores `timeout`, so without this a short
    one ended in a cut connection where CouchDB answers 200. None when a change was sent."""
    opened = b"".join(sent.split())
    longpoll = request.query.get("feed") == "longpoll"
    if opened not in ((b"", b'{"results":[') if longpoll else (b"",)):
        return None
    since: Any = request.query.get("since", "0")
    if since == "now":
        since = (await request.app[COUCH].get(encode_path([db])))["update_seq"]
    elif since.isdecimal() and len(since) < 16:
        since = int(since)
    if not longpoll:
        return json.dumps({"last_seq": since, "pending": 0}).encode() + b"\n"
    whole = json.dumps({"results": [], "last_seq": since}, separators=(",", ":")).encode()
    return whole[len(opened):] + b"\n"


def raw_feed(request: web.Request) -> tuple[Mapping[str, str], float | None]:
    """The parameters relayed as they came, and when the gateway ends a live feed: at CouchDB's
    timeout, which PouchDB Server ignores (the store's heartbeat, 6 s unless asked, keeps the
    read timeout from firing sooner). A HEAD never waits."""
    if request.query.get("feed") not in ("longpoll", "continuous", "eventsource"):
        return request.query, None
    if request.method == "HEAD":
        return {k: v for k, v in request.query.items()
                if k not in ("feed", "heartbeat", "timeout")}, None
    timeout_ms = request.query.get("timeout", "")
    asked = int(timeout_ms) if timeout_ms.isdecimal() and len(timeout_ms) < 10 else None
    return request.query, min(asked or MAX_FEED_TIMEOUT_MS, MAX_FEED_TIMEOUT_MS) / 1000
