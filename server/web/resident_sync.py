"""The resident's sync endpoint (居民同步): `/couch/linli-resident`, one virtual database per
logged-in resident that speaks enough of CouchDB's replication protocol for PouchDB, holding
exactly the ids `AllowedIds` gives their account (server/sync/allowed.py), wherever they are
stored. routing.py lists its routes (`RESIDENT_ROUTES`); the contract is docs/residents.md.

- Every document leaves through `shown`: a household or person through the resident view
  (server/domain/household_view.py: ID numbers down to their last four, phones masked, the
  worker's notes left out, no attachments), on every path: `_changes?include_docs`,
  `_all_docs`, `_bulk_get`, a document, `open_revs`, an attachment. Only the winning revision
  is ever served: an old one may hold what the view now hides elsewhere.
- An id the resident may not hold answers exactly as a missing one, on every path, so no
  answer tells whether a neighbour's record exists.
- `_changes` is computed from memory; a longpoll waits on the account's keys (feeds.py).
- Read-only: a resident's receipts and requests are made by their routes (`ROUTES`), which
  decide what is limited; a push is denied, naming them.
- What the phone must remove: `POST /api/residents/purge`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from server import errors
from server.domain import mutual_aid, reports
from server.domain.household_view import VIEWED_TYPES, resident_view
from server.domain.messages import bilingual
from server.domain.scope import RESIDENTS_DB, User
from server.store.couch import CouchClient, db_path
from server.sync import params as qparams
from server.sync import replication
from server.sync.allowed import SYNC_DOC, SYNC_ID, VIRTUAL, ResidentIndex, ResidentSeq, Row
from server.sync.authors import AuthorIndex
from server.sync.feeds import Waiter, cut, finish, hung_up
from server.sync.grouped import winning_revisions
from server.sync.replication import FeedLimiter
from server.web import residents
from server.web.guard import require_still_signed_in, require_user
from server.web.keys import (
    AGGREGATES,
    AUTHORS,
    CONFIG,
    COUCH,
    DIRECTORY,
    LIVE_FEEDS,
    RESIDENT_FEEDS_HELD,
    RESIDENT_INDEX,
    RESIDENT_OBSERVERS,
    SUPERVISOR,
)
from server.web.parsing import check_count, json_answer, parse_json, pick, read_body, read_object

RESIDENT_DB = "linli-resident"
READY_SECONDS = 10.0  # a phone asking while the index is built waits this long, then 503
MAX_FEED_TIMEOUT_MS, MIN_HEARTBEAT_MS = 60_000, 1000
MISSING = {"error": "not_found", "reason": "missing"}


@dataclasses.dataclass(frozen=True)
class Phone:
    """A request to the resident endpoint once its route is found: the resident, the path
    after /couch/, the parts the route names, the query parameters it checks first."""

    user: User
    segments: tuple[str, ...]
    parts: Mapping[str, str]
    query: Mapping[str, str]


def require_resident(request: web.Request) -> User:
    """Anyone else finds no such database."""
    user = require_user(request)
    if user.role != "resident" or user.disabled:
        raise errors.db_not_found()
    return user


async def index_of(request: web.Request) -> ResidentIndex:
    index = request.app[RESIDENT_INDEX]
    if not index.ready.is_set():
        try:
            async with asyncio.timeout(READY_SECONDS):
                await index.ready.wait()
        except TimeoutError:
            raise errors.store_unavailable() from None
    return index


def shown(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document as a resident's phone receives it. The view drops `_revisions` with
    the rest of the store's bookkeeping; it is put back (revision ids, no content) so the
    phone's revision tree stays one branch instead of a conflict per edit."""
    kind = str(doc.get("_id", "")).split(":", 1)[0]
    viewed = kind in VIEWED_TYPES or doc.get("type") in VIEWED_TYPES
    out = resident_view({**doc, "type": kind} if viewed and doc.get("type") not in
                        VIEWED_TYPES else doc)
    if viewed:
        out.pop("_attachments", None)
        out["type"] = doc.get("type")
        if "type" not in doc:
            del out["type"]
    if kind == "report_step":  # staff by their part, not their login name
        out = reports.resident_step_view(out)
    if kind == "mutual_aid_deal":  # the taker's: never the poster's account
        out = mutual_aid.taker_view(out)
    if isinstance(doc.get("_revisions"), Mapping):
        out["_revisions"] = doc["_revisions"]
    return out


def in_history(rev: str | None, doc: Mapping[str, Any]) -> bool:
    """Whether `rev` is the document's revision or one of its ancestors."""
    if rev is None or rev == doc.get("_rev"):
        return True
    revisions = doc.get("_revisions")
    if not isinstance(revisions, Mapping):
        return False
    start, ids = revisions.get("start"), revisions.get("ids")
    if not isinstance(start, int) or not isinstance(ids, list):
        return False
    return rev in {f"{start - n}-{i}" for n, i in enumerate(ids)}


async def winners(request: web.Request, located: Mapping[str, str],
                  attachments: bool) -> dict[str, dict[str, Any]]:
    """The winning revision (with its history) of each located id, read from the store in one
    `_bulk_get` per database (a notice's once per revision for every phone: `shared_notices`);
    a deleted or missing one is left out."""
    index, couch = request.app[RESIDENT_INDEX], request.app[COUCH]
    by_db: dict[str, list[str]] = {}
    for doc_id, db in located.items():
        by_db.setdefault(db, []).append(doc_id)
    found: dict[str, dict[str, Any]] = {}
    for db, ids in by_db.items():
        if db == VIRTUAL:
            found.update({i: dict(SYNC_DOC) for i in ids})
            continue
        if db == RESIDENTS_DB and not attachments:
            found.update(await shared_notices(couch, index, [i for i in ids
                                                             if i in index.notices]))
            found.update(await index.own_docs(i for i in ids if i not in index.notices))
            continue
        found.update(await read_winners(couch, db, ids, attachments))
    return found


async def read_winners(couch: CouchClient, db: str, ids: list[str],
                       attachments: bool) -> dict[str, dict[str, Any]]:
    return await winning_revisions(couch, db, set(ids), attachments)


async def shared_notices(couch: CouchClient, index: ResidentIndex,
                         ids: list[str]) -> dict[str, dict[str, Any]]:
    """Notices as the store holds them, read once per revision however many phones ask: a
    community notice brings its thousands of woken phones to `_bulk_get` at once, which would
    be as many store reads of one document. The read is shared (`index.notice_reads`, one
    entry per notice, its current revision's) and never changed by those who share it."""
    loop = asyncio.get_running_loop()
    mine: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
    waiting: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
    for doc_id in ids:
        rev = index.notices[doc_id][1]
        held = index.notice_reads.get(doc_id)
        if held is None or held[0] != rev or (held[1].done() and (
                held[1].cancelled() or held[1].exception() is not None)):
            held = (rev, loop.create_future())
            index.notice_reads[doc_id] = held
            mine[doc_id] = held[1]
        waiting[doc_id] = held[1]
    if mine:  # a task of its own: the phone that started it may hang up, the others wait
        reading = asyncio.ensure_future(read_winners(couch, RESIDENTS_DB, list(mine), False))
        reading.add_done_callback(functools.partial(settle, mine))
    found = {}
    for doc_id, future in waiting.items():
        doc = await asyncio.shield(future)
        if doc is not None:
            found[doc_id] = doc
    return found


def settle(futures: Mapping[str, asyncio.Future[dict[str, Any] | None]],
           reading: asyncio.Future[dict[str, dict[str, Any]]]) -> None:
    """Hand a shared read's outcome to each notice's waiters (an error to all of them)."""
    failure = None if reading.cancelled() else reading.exception()
    for doc_id, future in futures.items():
        if reading.cancelled():
            future.cancel()
        elif failure is not None:
            future.set_exception(failure)
            future.exception()  # retrieved, whether anyone waits or not
        else:
            future.set_result(reading.result().get(doc_id))


def answered(doc: Mapping[str, Any], revs: bool) -> dict[str, Any]:
    out = shown(doc)
    if not revs:
        out.pop("_revisions", None)
    return out


async def fetch(request: web.Request, phone: Phone, items: Sequence[tuple[str, str | None]],
                *, revs: bool, attachments: bool) -> list[dict[str, Any] | None]:
    """Each (id, rev) asked as the phone may see it: the winning revision when `rev` is it or
    an ancestor of it, else None (answered as missing, as for any id not the phone's)."""
    index = request.app[RESIDENT_INDEX]
    located = index.located(phone.user.name, {i for i, _ in items})
    docs = await winners(request, located, attachments)
    out: list[dict[str, Any] | None] = []
    for doc_id, rev in items:
        doc = docs.get(doc_id)
        out.append(answered(doc, revs) if doc is not None and in_history(rev, doc) else None)
    return out


# -- the database itself ------------------------------------------------------------------------

async def info(request: web.Request, phone: Phone) -> web.Response:
    index = await index_of(request)
    allowed = index.allowed(phone.user.name)
    return json_answer({"db_name": RESIDENT_DB, "doc_count": sum(map(len, allowed.values())),
                        "doc_del_count": 0,
                        "update_seq": str(ResidentSeq(index.counter, index.epoch)),
                        "instance_start_time": "0"})


async def database_exists(request: web.Request, phone: Phone) -> web.Response:
    raise errors.CouchError(412, "file_exists", "The database could not be created, "
                            "the file already exists.")


def read_only() -> errors.CouchError:
    return errors.forbidden("居民同步只能读取", "The resident sync is read-only.")


async def refused(request: web.Request, phone: Phone) -> web.Response:
    """Every write, and every endpoint not listed (`_design`, `_find`, `_security`...): the
    same answer whatever the ids named."""
    require_resident(request)
    raise read_only()


# A resident's requests and receipts are made by their routes, which decide what is limited
# (one receipt per notice, stamped by the server; five open corrections; five data requests
# a day) in the order they arrive and from who the resident is: a push would skip all that.
ROUTES = {"notice_receipt": "POST /api/notices/<id>/receipt",
          "correction_request": "POST /api/residents/corrections",
          "data_request": "POST /api/residents/data-requests",
          "claim": "POST /api/volunteer/tasks/<id>/claim",
          "report": "POST /api/reports", "report_step": "POST /api/reports/<id>/steps",
          "mutual_aid_listing": "POST /api/mutual-aid/listings"}


def refusal(doc: Any) -> dict[str, Any]:
    kind = doc.get("type") if isinstance(doc, Mapping) else None
    route = ROUTES.get(kind) if isinstance(kind, str) else None
    reason = (bilingual(f"居民同步只能读取；请通过 {route} 提交", f"The resident sync is "
                        f"read-only; send it through {route}.") if route is not None
              else read_only().reason)
    return {"id": doc.get("_id") if isinstance(doc, Mapping) else None, "error": "forbidden",
            "reason": reason}


async def bulk_docs(request: web.Request, phone: Phone) -> web.Response:
    """A push stores nothing: each document `forbidden`, which PouchDB counts as denied and
    goes on, naming the route that takes its kind."""
    body = await read_object(request)
    docs = body.get("docs")
    if not isinstance(docs, list):
        raise errors.bad_request("缺少 docs 列表", "POST body must include a `docs` list.")
    check_count(docs, request.app[CONFIG].max_batch_docs, "")
    return json_answer([refusal(doc) for doc in docs], status=201)


# -- `_changes` -----------------------------------------------------------------------------

def page(rows: list[Row], last: ResidentSeq,
         docs: Mapping[str, dict[str, Any] | None] | None) -> bytes:
    results = []
    for row in rows:
        result: dict[str, Any] = {"seq": str(row.seq), "id": row.id,
                                  "changes": [{"rev": row.rev}]}
        if docs is not None:
            result["doc"] = docs.get(row.id)
        results.append(result)
    return json.dumps({"results": results, "last_seq": str(last)}, ensure_ascii=False,
                      separators=(",", ":")).encode()


def changes_doc_ids(request: web.Request, body: Mapping[str, Any]) -> frozenset[str] | None:
    given = request.query.getall("filter", [])
    if not given:
        return None
    if given != ["_doc_ids"]:
        raise errors.bad_request("居民同步只支持 _doc_ids 过滤器",
                                 "The resident sync takes no filter but _doc_ids.")
    doc_ids = body.get("doc_ids")
    if doc_ids is None and "doc_ids" in request.query:
        doc_ids = parse_json(request.query["doc_ids"].encode())
    if not isinstance(doc_ids, list) or not all(isinstance(i, str) for i in doc_ids):
        raise errors.bad_request("doc_ids 应为记录编号列表",
                                 "doc_ids must be a list of document ids.")
    check_count(doc_ids, request.app[CONFIG].max_batch_docs, "doc_ids")
    return frozenset(doc_ids)


async def changes(request: web.Request, phone: Phone) -> web.StreamResponse:
    """The phone's changes, normal or longpoll (PouchDB asks no other feed)."""
    index = await index_of(request)
    params = pick(request.query, qparams.CHANGES)
    if params.get("descending") == "true":
        raise errors.bad_request("居民同步不支持 descending", "The resident sync is not "
                                 "read in descending order.")
    body = await read_object(request, allow_empty=True) if request.method == "POST" else {}
    doc_ids = changes_doc_ids(request, body)
    raw = params.get("since")
    since = (ResidentSeq(index.counter, index.epoch) if raw == "now"
             else ResidentSeq.parse(raw) if raw not in (None, "0") else None)
    limit = max(1, int(params["limit"])) if "limit" in params else None
    include_docs = params.get("include_docs") == "true"
    live = params.get("feed") == "longpoll" and request.method != "HEAD"
    account = phone.user.name
    with request.app[RESIDENT_FEEDS_HELD].hold(account, live):
        if not live:
            rows, last = await index.changes(account, since, limit, doc_ids)
            return web.Response(body=await rendered(request, phone, rows, last, include_docs),
                                content_type="application/json")
        timeout_ms = min(MAX_FEED_TIMEOUT_MS, int(params.get("timeout", MAX_FEED_TIMEOUT_MS)))
        heartbeat = params.get("heartbeat")
        heartbeat_s = max(MIN_HEARTBEAT_MS, int(heartbeat)) / 1000 if heartbeat else None
        return await longpoll(request, phone, index, since, limit, doc_ids, include_docs,
                              timeout_ms / 1000, heartbeat_s)


async def rendered(request: web.Request, phone: Phone, rows: list[Row], last: ResidentSeq,
                   include_docs: bool) -> bytes:
    docs = None
    if include_docs:
        got = await fetch(request, phone, [(r.id, r.rev) for r in rows], revs=False,
                          attachments=False)
        docs = {row.id: doc for row, doc in zip(rows, got, strict=True)}
    return page(rows, last, docs)


async def longpoll(request: web.Request, phone: Phone, index: ResidentIndex,
                   since: ResidentSeq | None, limit: int | None, doc_ids: frozenset[str] | None,
                   include_docs: bool, timeout_s: float,
                   heartbeat_s: float | None) -> web.StreamResponse:
    """CouchDB's longpoll, waited in the server on the account's keys only: its rows at once
    if any are due; else, woken by a change of one of its keys, its rows then, or at the
    timeout an empty page. A change that takes ids away without any row due answers the
    constant `linli-sync` row, so the phone ends its batch and asks for its purge list."""
    feeds = request.app[LIVE_FEEDS]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    account = phone.user.name
    waiter = Waiter(request)
    keys = index.ids.keys(account)
    feeds.join_keys(keys, waiter)
    held = index.fingerprint(account)
    response: web.StreamResponse | None = None
    try:
        while True:
            waiter.woken.clear()
            rows, last = await index.changes(account, since, limit, doc_ids)
            if not rows and index.fingerprint(account) != held and (
                    doc_ids is None or SYNC_ID in doc_ids):
                rows = [Row(SYNC_ID, SYNC_DOC["_rev"], VIRTUAL, last)]
            if rows or feeds.closing or deadline <= loop.time():
                body = await rendered(request, phone, rows, last, include_docs)
                return await finish(request, response, body)
            woken, response = await feeds.wait(request, response, waiter, deadline,
                                               heartbeat_s, None)
            if waiter.gone:
                return hung_up(request, response)
            if not woken:
                return await finish(request, response, page([], last, None))
            try:
                require_still_signed_in(request)  # disabled or logged out while it waited
            except errors.CouchError:
                if response is None:
                    raise
                return cut(request, response)
            moved = index.ids.keys(account)  # activated, moved out: other keys now
            if moved != keys:
                feeds.leave_keys(keys, waiter)
                keys = moved
                feeds.join_keys(keys, waiter)
    except ConnectionResetError:
        return hung_up(request, response)
    finally:
        feeds.leave_keys(keys, waiter)


# -- `_revs_diff`, `_bulk_get`, `_all_docs` ---------------------------------------------------

async def revs_diff(request: web.Request, phone: Phone) -> web.Response:
    """Which revisions the server lacks: for an id the phone may not hold, all of them, as
    for an id that does not exist."""
    body = await read_object(request)
    check_count(body, request.app[CONFIG].max_batch_docs, "")
    if not all(isinstance(revs, list) and all(isinstance(r, str) for r in revs)
               for revs in body.values()):
        raise errors.bad_request("_revs_diff 应为 {编号: [版本]}",
                                 "_revs_diff takes {id: [revisions]}.")
    index = await index_of(request)
    located = index.located(phone.user.name, body)
    out: dict[str, Any] = {i: {"missing": revs} for i, revs in body.items() if revs}
    by_db: dict[str, dict[str, Any]] = {}
    for doc_id, db in located.items():
        by_db.setdefault(db, {})[doc_id] = body[doc_id]
    for db, asked in by_db.items():
        if db == VIRTUAL:
            answer = {i: {"missing": [r for r in revs if r != SYNC_DOC["_rev"]]}
                      for i, revs in asked.items()}
        else:
            answer = await request.app[COUCH].post(db_path(db, "_revs_diff"), asked)
        for doc_id in asked:
            if doc_id in answer and answer[doc_id].get("missing"):
                out[doc_id] = {"missing": answer[doc_id]["missing"]}
            else:
                out.pop(doc_id, None)
    return json_answer(out)


async def bulk_get(request: web.Request, phone: Phone) -> web.Response:
    body = await read_object(request)
    items = body.get("docs")
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(
            i.get("id"), str) and isinstance(i.get("rev", ""), str) for i in items):
        raise errors.bad_request("缺少 docs 列表", "POST body must include a `docs` list.")
    check_count(items, request.app[CONFIG].max_batch_docs, "")
    query = pick(request.query, qparams.BULK_GET)
    await index_of(request)
    asked = [(str(i["id"]), i.get("rev")) for i in items]
    got = await fetch(request, phone, asked, revs=query.get("revs") == "true",
                      attachments=query.get("attachments") == "true")
    results = [{"id": doc_id, "docs": [{"ok": doc} if doc is not None else {"error": {
        "id": doc_id, "rev": rev or "undefined", **MISSING}}]}
        for (doc_id, rev), doc in zip(asked, got, strict=True)]
    return json_answer({"results": results})


def all_docs_query(request: web.Request) -> dict[str, str]:
    return pick(request.query, qparams.ALL_DOCS)


def json_param(query: Mapping[str, str], *names: str) -> Any:
    for name in names:
        if name in query:
            return qparams.json_value(name, query[name])
    return None


async def all_docs(request: web.Request, phone: Phone) -> web.Response:
    """The phone's ids (never anyone else's), by key or by range; `include_docs` as `shown`."""
    index = await index_of(request)
    query = phone.query
    keys = json_param(query, "keys")
    if request.method == "POST":
        keys = (await read_object(request, allow_empty=True)).get("keys", keys)
    if keys is not None and (not isinstance(keys, list) or not all(
            isinstance(k, str) for k in keys)):
        raise errors.bad_request("keys 应为记录编号列表", "`keys` must be a list of ids.")
    allowed = index.allowed(phone.user.name)
    label_of = {i: label for label, ids in allowed.items() for i in ids}
    if keys is not None:
        check_count(keys, request.app[CONFIG].max_batch_docs, "keys")
        chosen = list(keys)
    else:
        chosen = in_range(sorted(label_of), query)
    revs = await index.revisions((k, label_of[k]) for k in set(chosen) if k in label_of)
    docs: dict[str, dict[str, Any] | None] = {}
    if query.get("include_docs") == "true":
        shown_docs = await fetch(request, phone, [(k, None) for k in revs], revs=False,
                                 attachments=False)
        docs = dict(zip(revs, shown_docs, strict=True))
    rows: list[dict[str, Any]] = []
    for key in chosen:
        if key not in revs:
            rows.append({"key": key, "error": "not_found"})
            continue
        row: dict[str, Any] = {"id": key, "key": key, "value": {"rev": revs[key]}}
        if key in docs:
            row["doc"] = docs[key]
        rows.append(row)
    if keys is None:
        rows = [r for r in rows if "error" not in r]
    return json_answer({"total_rows": len(label_of), "offset": 0, "rows": rows})


def in_range(ids: list[str], query: Mapping[str, str]) -> list[str]:
    descending = query.get("descending") == "true"
    start = json_param(query, "startkey", "start_key")
    end = json_param(query, "endkey", "end_key")
    key = json_param(query, "key")
    inclusive = query.get("inclusive_end", "true") != "false"
    if descending:
        ids = ids[::-1]
    chosen = []
    for i in ids:
        if key is not None and i != key:
            continue
        if isinstance(start, str) and (i < start if not descending else i > start):
            continue
        if isinstance(end, str) and ((i > end if not descending else i < end) or (
                not inclusive and i == end)):
            continue
        chosen.append(i)
    skip = int(query.get("skip", "0"))
    limit = int(query["limit"]) if "limit" in query else None
    chosen = chosen[skip:]
    return chosen[:limit] if limit is not None else chosen


# -- a document, its attachments, the phone's checkpoints ---------------------------------------

async def read_document(request: web.Request, phone: Phone) -> web.Response:
    """One document: the winning revision as `shown`; `open_revs` answered in CouchDB's list
    shape. Not the phone's, or an older revision: 404 as for a missing one."""
    query = pick(request.query, qparams.DOCUMENT)
    await index_of(request)
    doc_id = phone.parts["doc"]
    open_revs = json_param(query, "open_revs") if query.get("open_revs") != "all" else "all"
    asked_rev = query.get("rev")
    [doc] = await fetch(request, phone, [(doc_id, None)], revs=query.get("revs") == "true",
                        attachments=query.get("attachments") == "true")
    if open_revs is not None:
        if doc is None:
            if open_revs == "all":
                return json_answer([])
            return json_answer([{"missing": r} for r in open_revs])
        revs = [doc["_rev"]] if open_revs == "all" else open_revs
        return json_answer([{"ok": doc} if r == doc["_rev"] else {"missing": r} for r in revs])
    if doc is None or (asked_rev is not None and asked_rev != doc["_rev"]):
        raise errors.doc_not_found()
    return json_answer(doc)


async def read_attachment(request: web.Request, phone: Phone) -> web.StreamResponse:
    """A notice's image; a household's or person's never (the view carries none)."""
    pick(request.query, qparams.ATTACHMENT)
    index = await index_of(request)
    doc_id = phone.parts["doc"]
    located = index.located(phone.user.name, [doc_id])
    kind = doc_id.split(":", 1)[0]
    db = located.get(doc_id)
    if db is None or db == VIRTUAL or kind in VIEWED_TYPES:
        raise errors.doc_not_found()
    return await replication.relay(request, request.app[COUCH], "GET",
                                   db_path(db, doc_id, phone.parts["attachment"]))


async def read_local(request: web.Request, phone: Phone) -> web.Response:
    return json_answer(await replication.read_local(request.app[COUCH], phone.user,
                                                    RESIDENTS_DB, phone.parts["id"]))


async def put_local(request: web.Request, phone: Phone) -> web.Response:
    raw = await read_body(request)
    if len(raw) > request.app[CONFIG].max_document_bytes:
        raise errors.too_large("检查点文档太大", "The _local document is too large.")
    doc = parse_json(raw)
    if not isinstance(doc, dict) or "_attachments" in doc:
        raise errors.bad_request("检查点应为不带附件的 JSON 对象",
                                 "A checkpoint is a JSON object without attachments.")
    rev = pick(request.query, qparams.WRITE).get("rev")
    if rev is not None and "_rev" not in doc:
        doc["_rev"] = rev
    return json_answer(await replication.write_local(request.app[COUCH], phone.user,
                                                     RESIDENTS_DB, phone.parts["id"], doc),
                       status=201)


async def delete_local(request: web.Request, phone: Phone) -> web.Response:
    rev = pick(request.query, qparams.WRITE).get("rev")
    return json_answer(await replication.delete_local(request.app[COUCH], phone.user,
                                                      RESIDENTS_DB, phone.parts["id"], rev))


# -- the purge list ---------------------------------------------------------------------------

async def purge(request: web.Request) -> web.Response:
    """`{"held": [ids]}` → `{"purge": [ids]}`: what the phone holds and may no longer (moved
    out, a notice withdrawn). An id that is not the phone's is listed whether it exists or
    not: the answer is the list given less the phone's own."""
    user = residents.require_resident(request, ("清理手机上的记录", "has a purge list"))
    body = await read_object(request)
    held = body.get("held")
    if not isinstance(held, list) or not all(isinstance(i, str) for i in held):
        raise errors.bad_request("held 应为记录编号列表", "`held` must be a list of ids.")
    check_count(held, request.app[CONFIG].max_batch_docs, "held")
    index = await index_of(request)
    return json_answer({"purge": index.purge(user.name, held)})


# -- wiring -------------------------------------------------------------------------------------

async def index_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store and the directory are open (cleanup contexts run in order); the
    residents' records, opened next, tell it what they write (web/residents.py)."""
    config = app[CONFIG]
    index = ResidentIndex(app[COUCH], app[DIRECTORY], wake=app[LIVE_FEEDS].wake_keys,
                          sweep_seconds=config.resident_sweep_seconds,
                          every_grid=config.grid_passes_at_start,
                          observers=app.get(RESIDENT_OBSERVERS, ()))
    app[RESIDENT_INDEX] = index
    # The gateway's author index reads no changes of its own: it follows this index's reads.
    authors = AuthorIndex(app[COUCH], index.reach, replication.stored_authors)
    index.followers.append(authors)
    app[AUTHORS] = authors
    # ... and neither does the figures' fold when the index has read them (sync/aggregates.py).
    figures = app[AGGREGATES]
    figures.since_of = index.since.get
    index.followers.append(figures)
    task = app[SUPERVISOR].start("residents-index", index.run, probe=index.lag)
    yield
    await app[SUPERVISOR].stop([task])
    await authors.close()


def setup(app: web.Application) -> None:
    """With the `/couch/` routes (routing.setup_routes): the index, the count of residents'
    live feeds (apart from the staff's: a resident's costs no store connection) and the purge
    route."""
    config = app[CONFIG]
    app[RESIDENT_FEEDS_HELD] = FeedLimiter(config.max_feeds_per_user, config.max_resident_feeds)
    app.cleanup_ctx.append(index_ctx)
    app.router.add_post("/api/residents/purge", purge)
