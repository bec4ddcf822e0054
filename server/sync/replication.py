"""The replication services behind the gateway's routes: admitting a batch of documents, relaying
feeds and reads as streams, keeping each user's checkpoints apart, and handing what the server
accepted to the receipt log. The routes (web/routing.py, web/gateway.py) only parse, authorize
and call these."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import re
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from server import errors
from server.domain.scope import User
from server.domain.validation import (
    MAX_REVISIONS,
    REVISION,
    REVISION_HASH,
    Refusal,
    SchemaRegistry,
    Stamp,
    WriteContext,
    building_id,
    check_author,
    check_authorship,
    check_document,
    check_room,
    check_stubs,
    foreign_stamps,
    refuse,
    stubbed_ids,
)
from server.store.couch import READ_TIMEOUT, CouchClient, NotFound, StoreUnavailable, db_path
from server.sync.authors import AuthorIndex
from server.sync.receipts import ReceiptLog
from server.sync.resident_queue import staff_refusals

log = logging.getLogger(__name__)

# Response headers worth passing from the store to the client; hop-by-hop ones are not.
RELAYED_HEADERS = ("Content-Type", "ETag", "Cache-Control", "Content-Disposition")


def accepts_gzip(request: web.Request) -> bool:
    """Whether the client takes a gzip-compressed answer (every browser and PouchDB does)."""
    return any(coding.split(";")[0].strip().lower() == "gzip"
               for coding in request.headers.get("Accept-Encoding", "").split(","))
# Ancestors of a replicated revision read back to find the edit stamps it carried over.
STAMP_ANCESTORS = 20
# Documents whose stamps are read at once: a batch of a thousand edits of others' records must
# not open a thousand connections to the store.
STAMP_READS = 8

# A lone UTF-16 surrogate, as a JSON escape or as the raw bytes a broken encoder writes (json
# reads those too): where either may be, every document is measured, so each such document is
# refused alone instead of reaching the store, which would keep U+FFFD.
SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]|\xed[\xa0-\xbf]")


def encoded_size(doc: Any) -> int:
    """Bytes of `doc` as JSON; -1 when it holds a lone UTF-16 surrogate (a string cut through an
    emoji by a phone), which the store cannot hold."""
    try:
        return len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())
    except UnicodeEncodeError:
        return -1


# -- checkpoints ------------------------------------------------------------------------------

def local_id_for(user: User, client_id: str) -> str:
    """Each user's `_local/` documents live under their own prefix ('~' cannot occur in a user
    name), so no device can read or overwrite another user's checkpoint. `client_id` is the part
    after `_local/`."""
    return f"_local/{user.name}~{client_id}"


# -- writes -----------------------------------------------------------------------------------

async def stored_authors(couch: CouchClient, db: str,
                         ids: Sequence[str]) -> tuple[dict[str, str | None], frozenset[str]]:
    """created_by of the live documents among `ids`. Which exist is asked first, without their
    bodies (a push is mostly new records, and the store answers that faster); only the bodies
    of those that exist are read."""
    wanted = sorted({i for i in ids if not i.startswith("_design/")})
    if not wanted:
        return {}, frozenset()
    path = db_path(db, "_all_docs")
    page = await couch.post(path, {"keys": wanted})
    rows = [row for row in page.get("rows", []) if "error" not in row]
    existing = [str(row["key"]) for row in rows if not row.get("value", {}).get("deleted")]
    docs = await stored_docs(couch, db, existing)
    authors = {doc_id: author if isinstance(author := doc.get("created_by"), str) else None
               for doc_id, doc in docs.items()}
    deleted = [row for row in rows if row.get("value", {}).get("deleted")]
    for row in deleted:
        authors[str(row["key"])] = await deleted_author(couch, db, str(row["key"]),
                                                        str(row["value"]["rev"]))
    return authors, frozenset(str(row["key"]) for row in deleted)


async def deleted_author(couch: CouchClient, db: str, doc_id: str, tombstone: str) -> str | None:
    """The author of a deleted record: of the revision the deletion replaced. A phone that
    edited the record offline may still send its edit, and an edit beats a deletion
    (server/sync/conflicts.py); the record keeps its author. None when that revision is gone."""
    try:
        tomb = await couch.get(db_path(db, doc_id), rev=tombstone, revs="true")
        revisions = tomb.get("_revisions") or {}
        ids, start = revisions.get("ids") or [], int(revisions.get("start", 0))
        if len(ids) < 2:
            return None
        parent = await couch.get(db_path(db, doc_id), rev=f"{start - 1}-{ids[1]}")
    except NotFound:
        return None
    author = parent.get("created_by")
    return author if isinstance(author, str) else None


async def stored_docs(couch: CouchClient, db: str, ids: Sequence[str]) -> dict[str, Any]:
    """The live documents among `ids`, by id (none asked, no request)."""
    if not ids:
        return {}
    page = await couch.post(db_path(db, "_all_docs"), {"keys": list(ids)}, include_docs="true")
    return {str(row["key"]): row["doc"] for row in page.get("rows", [])
            if isinstance(row.get("doc"), dict)}


def refusal_result(doc_id: Any, refusal: Refusal) -> dict[str, Any]:
    # Always "forbidden" inside a batch: PouchDB counts it as denied and carries on, while any
    # other error name would abort the worker's whole replication.
    return {"id": doc_id if isinstance(doc_id, str) else "", "error": "forbidden",
            "reason": refusal.reason}


def check_replicated(doc: Any, new_edits: bool) -> Refusal | None:
    """A replicated revision (new_edits=false) must carry its revision id; a history
    (`_revisions`), wherever it comes, must agree with it. The store builds its revision tree
    from `_revisions` alone, so a mismatch could pass off a first revision as a late edit that
    wins, and a malformed one reaches code in the store that expects strings and numbers."""
    if not isinstance(doc, Mapping):
        return None
    rev = doc.get("_rev")
    if not new_edits and (not isinstance(rev, str) or not REVISION.match(rev)):
        return refuse("同步的记录缺少有效的版本号 _rev",
                      "A replicated document needs a valid _rev.", 400)
    if "_revisions" not in doc:
        return None
    problem = revisions_problem(doc["_revisions"], rev)
    if problem is None:
        return None
    return refuse(f"版本历史 _revisions 与 _rev 不一致：{problem[0]}",
                  f"_revisions does not agree with _rev: {problem[1]}.", 400)


def revisions_problem(history: Any, rev: Any) -> tuple[str, str] | None:
    """What is wrong with a `_revisions` member for revision `rev`, (zh, en); None if
    nothing: {"start": the generation of rev, "ids": [rev's hash, its parent's, ...]}, at most
    MAX_REVISIONS ids and no more than the generation, each a revision hash."""
    if not isinstance(rev, str) or not REVISION.match(rev):
        return "缺少有效的 _rev", "it needs a valid _rev"
    if not isinstance(history, Mapping) or set(history) != {"start", "ids"}:
        return "应为只含 start 和 ids 的对象", "it must be an object of start and ids only"
    generation, digest = rev.split("-", 1)
    start, ids = history["start"], history["ids"]
    if type(start) is not int or start != int(generation):
        return f"start 应为 {generation}", f"start must be {generation}"
    if not isinstance(ids, list) or not ids or ids[0] != digest:
        return f"ids 应以 {digest} 开头", f"ids must begin with {digest}"
    if len(ids) > min(start, MAX_REVISIONS):
        return (f"ids 最多 {min(start, MAX_REVISIONS)} 个",
                f"at most {min(start, MAX_REVISIONS)} ids")
    if not all(isinstance(i, str) and REVISION_HASH.match(i) for i in ids):
        return "ids 中有无效的版本号", "an id in ids is not a revision hash"
    return None


def parent_revisions(doc: Mapping[str, Any], new_edits: bool) -> list[str]:
    """The stored revisions an edit may start from, nearest first: its `_rev` for a new edit;
    the ancestors in its (checked) history for a replicated one."""
    rev = doc.get("_rev")
    if new_edits:
        return [rev] if isinstance(rev, str) else []
    history = doc.get("_revisions")
    if not isinstance(history, Mapping):
        return []
    start, ids = int(history["start"]), history["ids"]
    return [f"{start - n}-{ids[n]}" for n in range(1, min(len(ids), STAMP_ANCESTORS + 1))]


async def stored_stamps(couch: CouchClient, db: str, docs: Sequence[Mapping[str, Any]],
                        user: str, new_edits: bool) -> dict[str, frozenset[Stamp]]:
    """The edit stamps the store holds for each document that carries someone else's: those
    of the revisions it may start from, and of the record's live leaves (the stamps the phone
    saw when it pulled). Nothing is read for a document whose stamps are all its writer's,
    which is every document a worker makes."""
    wanted = [d for d in docs if foreign_stamps(d, user)]

    gate = asyncio.Semaphore(STAMP_READS)

    async def read(doc: Mapping[str, Any]) -> tuple[str, frozenset[Stamp]]:
        async with gate:
            return await read_one(doc)

    async def read_one(doc: Mapping[str, Any]) -> tuple[str, frozenset[Stamp]]:
        doc_id = str(doc["_id"])
        path = db_path(db, doc_id)
        found: set[Stamp] = set()
        parents = parent_revisions(doc, new_edits)
        for revs in ([json.dumps(parents)] if parents else []) + ["all"]:
            try:
                answer = await couch.get(path, open_revs=revs)
            except NotFound:
                continue
            for item in answer if isinstance(answer, list) else []:
                body = item.get("ok") if isinstance(item, Mapping) else None
                if isinstance(body, Mapping):
                    found.update(foreign_stamps(body, ""))
        return doc_id, frozenset(found)

    stamps: dict[str, frozenset[Stamp]] = {}
    for doc_id, found in await asyncio.gather(*(read(d) for d in wanted)):
        stamps[doc_id] = stamps.get(doc_id, frozenset()) | found  # an id may come twice
    return stamps


@dataclasses.dataclass(frozen=True)
class BatchOutcome:
    results: list[dict[str, Any]]  # CouchDB's answer, in input order
    refusals: list[Refusal | None]  # why each document was refused, if it was
    # A replicated batch can only make a conflict on an id that already existed, that it holds
    # twice, or that another batch was writing at the same moment: only then is the resolver
    # woken (its periodic sweep catches writes by other processes).
    may_conflict: bool = True


async def write_batch(couch: CouchClient, registry: SchemaRegistry, receipts: ReceiptLog,
                      index: AuthorIndex, ctx: WriteContext, docs: list[Any], new_edits: bool,
                      raw_body: bytes | None = None) -> BatchOutcome:
    """Validate each document, write the admitted ones in one `_bulk_docs`, and answer in input
    order: store results for the written, `forbidden` for the refused.

    Kept cheap for the common push of new records: no document is re-encoded to measure it when
    the whole body is within the document limit, and when every document is admitted the
    client's body (`raw_body`) goes to the store as it came. The stored authors of the batch's
    ids (any of them may be an edit of someone else's record) come from the author index
    (server/sync/authors.py), while the documents are checked in a worker thread."""
    ids = [d["_id"] for d in docs if isinstance(d, Mapping) and isinstance(d.get("_id"), str)]
    if new_edits:  # the store refuses a stale edit (409): no conflict to resolve
        return await _write_batch(couch, registry, receipts, index, ctx, docs, new_edits,
                                  raw_body, ids)
    with receipts.in_flight.hold(ctx.db, ids) as overlap:
        outcome = await _write_batch(couch, registry, receipts, index, ctx, docs, new_edits,
                                     raw_body, ids)
    if overlap.seen or len(set(ids)) < len(ids):  # several revisions of one id, or a race
        return dataclasses.replace(outcome, may_conflict=True)
    return outcome


async def _write_batch(couch: CouchClient, registry: SchemaRegistry, receipts: ReceiptLog,
                       index: AuthorIndex, ctx: WriteContext, docs: list[Any], new_edits: bool,
                       raw_body: bytes | None, ids: list[str]) -> BatchOutcome:
    """write_batch's work; apart, so a replicated batch's ids are held while it runs."""
    measure = raw_body is None or len(raw_body) > ctx.max_document_bytes or bool(
        SURROGATE_ESCAPE.search(raw_body))

    def check_alone() -> list[Refusal | None]:
        return [check_replicated(d, new_edits)
                or check_document(d, ctx, registry, encoded_size(d) if measure else 0)
                for d in docs]

    # Who wrote the stored documents, and the buildings the households name, are looked up
    # while the schemas are checked.
    building_ids = sorted({b for b in map(building_id, docs) if b})
    authors, buildings, stubbed, refusals = await asyncio.gather(
        index.lookup(ctx.db, ids, ctx.user.name), stored_docs(couch, ctx.db, building_ids),
        stored_docs(couch, ctx.db, stubbed_ids(docs)), asyncio.to_thread(check_alone))
    authors, deleted = authors
    ctx = dataclasses.replace(ctx, stored_authors=authors, deleted=deleted, buildings=buildings,
                              stored_attachments={i: d.get("_attachments") or {}
                                                  for i, d in stubbed.items()})
    checked = [d for d, r in zip(docs, refusals, strict=True) if r is None]
    stamps = await stored_stamps(couch, ctx.db, checked, ctx.user.name, new_edits)
    ctx = dataclasses.replace(ctx, stored_stamps=stamps)
    refusals = [r or check_authorship(d, ctx, registry) or check_room(d, ctx)
                or check_stubs(d, ctx)
                for d, r in zip(docs, refusals, strict=True)]
    refusals = await staff_refusals(couch, ctx, docs, refusals, new_edits)
    if new_edits:  # one edit of a record per batch: two could race each other in the store
        seen: set[str] = set()
        for i, doc in enumerate(docs):
            if refusals[i] is None and isinstance(doc, Mapping):
                if doc["_id"] in seen:
                    refusals[i] = refuse("同一批次中同一条记录出现了两次",
                                         "The same record appears twice in one batch.", 400)
                seen.add(str(doc["_id"]))
    # No await from here to the write: a new id another person's batch wrote or began to
    # write meanwhile is refused, and this batch's new ids are claimed until it is written.
    fresh = [str(d["_id"]) for d, v in zip(docs, refusals, strict=True)
             if v is None and d["_id"] not in authors]
    taken = index.now_taken(ctx.db, fresh, ctx.user.name)
    if taken:
        ctx = dataclasses.replace(ctx, stored_authors={**authors, **taken})
        refusals = [r or (check_author(d, ctx) if d["_id"] in taken else None)
                    for d, r in zip(docs, refusals, strict=True)]
    admitted = [d for d, v in zip(docs, refusals, strict=True) if v is None]
    revs = [] if new_edits else [[d["_id"], str(d["_rev"])] for d in admitted]
    with receipts.writing(ctx.user.name, ctx.db, revs), \
            index.claim(ctx.db, [i for i in fresh if i not in taken], ctx.user.name):
        stored: list[dict[str, Any]] | None = None
        try:
            stored = await _store_batch(couch, ctx, admitted, docs, new_edits, raw_body)
        finally:
            index.settle(ctx.db, admitted, stored)
        return _stored_batch(stored, receipts, ctx, docs, refusals, authors)


async def _store_batch(couch: CouchClient, ctx: WriteContext, admitted: list[Any],
                       docs: list[Any], new_edits: bool, raw_body: bytes | None
                       ) -> list[dict[str, Any]]:
    stored: list[dict[str, Any]] = []
    path = db_path(ctx.db, "_bulk_docs")
    if admitted and raw_body is not None and len(admitted) == len(docs):
        stored = await couch.request("POST", path, data=raw_body,
                                     headers={"Content-Type": "application/json"})
    elif admitted:
        stored = await couch.post(path, {"docs": admitted, "new_edits": new_edits})
    return stored


def _stored_batch(stored: list[dict[str, Any]], receipts: ReceiptLog, ctx: WriteContext,
                  docs: list[Any], refusals: list[Refusal | None],
                  authors: dict[str, str | None]) -> BatchOutcome:
    """The answer to a batch the store took, its receipts recorded."""
    # The embedded store may answer out of input order: match results to documents by id.
    by_id: defaultdict[str, deque[dict[str, Any]]] = defaultdict(deque)
    for result in stored:
        by_id[str(result.get("id"))].append(result)
    results: list[dict[str, Any]] = []
    accepted: list[list[str]] = []
    for doc, refusal in zip(docs, refusals, strict=True):
        if refusal is not None:
            results.append(refusal_result(doc.get("_id") if isinstance(doc, Mapping) else None,
                                          refusal))
            continue
        queue = by_id.get(doc["_id"])
        result = queue.popleft() if queue else None
        if result is not None:
            results.append(result)
        if result is None or "error" not in result:
            rev = (result or {}).get("rev") or doc.get("_rev")
            accepted.append([doc["_id"], str(rev)])
    receipts.record(ctx.user.name, ctx.db, accepted)
    return BatchOutcome(results, refusals, may_conflict=bool(authors))


class FeedLimiter:
    """Live feeds (longpoll) each hold a connection to the server, its memory and a place
    among the phones woken on every change, for up to a minute (the store sees one longpoll per
    database, server/sync/feeds.py). They are counted per user and overall, so one user's runaway
    tabs cannot crowd out everyone else."""

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user, self.total = per_user, total
        self.held: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def hold(self, user: str, live: bool) -> Iterator[None]:
        if not live:
            yield
            return
        if self.held[user] >= self.per_user or sum(self.held.values()) >= self.total:
            raise errors.too_many_requests(5)
        self.held[user] += 1
        try:
            yield
        finally:
            self.held[user] -= 1
            if not self.held[user]:
                del self.held[user]


# -- reads ------------------------------------------------------------------------------------

async def relay(request: web.Request, couch: CouchClient, method: str, path: str, *,
                params: Mapping[str, str] | None = None, body: Any = None,
                data: Any = None, headers: Mapping[str, str] | None = None,
                read_timeout: float = READ_TIMEOUT,
                deadline_s: float | None = None,
                quiet: Callable[[bytes], Awaitable[bytes | None]] | None = None,
                compress: bool = False) -> web.StreamResponse:
    """Stream the store's answer to the client chunk by chunk: a feed or a big `_all_docs` is
    never held whole in memory. The store's errors pass through in CouchDB's shape. A slow
    phone may take as long as it needs; only a silent store times out. A client that hangs up
    is noticed within HANGUP_CHECK_SECONDS even while the store says nothing (a live feed),
    and its store request is closed then; a live feed ends at `deadline_s` (CouchDB's
    `timeout`, which PouchDB Server ignores). A feed that has relayed no change by then ends
    with `quiet(sent)`, the rest of CouchDB's body for a wait that saw nothing after the bytes
    `sent` (None: cut it), if one is given. With `compress`, a successful answer goes gzipped to
    a client that accepts it: for the reads a first download is made of (a batch of documents,
    a page of changes), a fraction of the bytes on a phone's slow link for little CPU (both
    measured by scripts/bench-pwa, docs/benchmarks.md). Never for a live feed: its heartbeats
    would wait in the compressor."""
    loop = asyncio.get_running_loop()
    deadline = None if deadline_s is None else loop.time() + deadline_s
    upstream = await while_connected(request, couch.open(
        "HEAD" if request.method == "HEAD" else method, path, params=params, body=body,
        data=data, headers=headers, read_timeout=read_timeout), deadline)
    if upstream is None:  # the store has not answered yet (a feed sends nothing at first)
        unsent = web.Response(status=errors.CLIENT_CLOSED)
        if client_gone(request):
            return went_away(request, unsent)
        body = None if quiet is None else await quiet(b"")
        if body is not None:
            return web.Response(body=body, content_type="application/json")
        return cut_client(request, unsent)
    if upstream.status >= 500:  # an error's few bytes: read, so a full disk answers 503
        async with upstream:
            try:
                payload = await upstream.json(content_type=None)
            except (ValueError, aiohttp.ClientError):
                payload = {"error": "unknown", "reason": "unreadable answer"}
        raise couch.failed(upstream.status, payload)
    try:
        response = web.StreamResponse(status=upstream.status)
        for name in RELAYED_HEADERS:
            if name in upstream.headers:
                response.headers[name] = upstream.headers[name]
        if compress and upstream.status == 200 and request.method != "HEAD" and \
                accepts_gzip(request):
            response.enable_compression(web.ContentCoding.gzip)
        try:
            await response.prepare(request)
            if request.method == "HEAD":
                return response
            sent: bytearray | None = bytearray()  # the answer's start, while it is short
            while True:
                try:
                    chunk = await next_chunk(request, upstream.content, deadline)
                except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                        TimeoutError) as exc:
                    # The store failed mid-answer: cut the client's connection so it retries,
                    # never a silently truncated body that looks complete.
                    log.warning("store failed while relaying %s %s: %s", method, path, exc)
                    return cut_client(request, response)
                if chunk is None:  # the client hung up, or the feed's time is up
                    if client_gone(request):
                        return went_away(request, response)
                    rest = None if quiet is None or sent is None else await quiet(bytes(sent))
                    if rest is None:
                        return cut_client(request, response)
                    await response.write(rest)
                    break
                if not chunk:
                    break
                if sent is not None:
                    sent += chunk
                    sent = sent if len(sent) <= QUIET_PREFIX else None
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            return went_away(request, response)
        return response
    finally:
        upstream.release()


QUIET_PREFIX = 256  # bytes of a feed's start kept for `quiet`: an opening and heartbeats
HANGUP_CHECK_SECONDS = 1.0  # while the store is silent, how often the client is looked at


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def next_chunk(request: web.Request, content: aiohttp.StreamReader,
                     deadline: float | None) -> bytes | None:
    """The next bytes of the store's answer (b"" at its end); None when the client hung up
    meanwhile or `deadline` passed. The store's own read timeout still applies."""
    loop = asyncio.get_running_loop()
    while True:
        wait = HANGUP_CHECK_SECONDS if deadline is None else min(
            HANGUP_CHECK_SECONDS, deadline - loop.time())
        if wait <= 0 or client_gone(request):
            return None
        limit = asyncio.timeout(wait)
        try:
            async with limit:
                return await content.readany()
        except TimeoutError:
            if not limit.expired():
                raise  # the store's read timeout, not ours


async def while_connected(request: web.Request,
                          opening: Awaitable[aiohttp.ClientResponse],
                          deadline: float | None) -> aiohttp.ClientResponse | None:
    """The store's response, or None (its request closed) if the client hangs up or
    `deadline` passes before the store starts answering."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(opening)
    try:
        while True:
            wait = HANGUP_CHECK_SECONDS if deadline is None else min(
                HANGUP_CHECK_SECONDS, deadline - loop.time())
            if wait > 0 and not client_gone(request):
                done, _ = await asyncio.wait({task}, timeout=wait)
                if done:
                    return task.result()
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, StoreUnavailable):
                (await task).release()  # it answered just then
            return None
    except asyncio.CancelledError:
        task.cancel()
        raise


def cut_client(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.close()
    return response


def went_away(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    errors.went_away(request)
    return response


async def read_local(couch: CouchClient, user: User, db: str, client_id: str) -> dict[str, Any]:
    doc = await couch.get(db_path(db, local_id_for(user, client_id)))
    doc["_id"] = f"_local/{client_id}"
    return doc


async def write_local(couch: CouchClient, user: User, db: str, client_id: str,
                      doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc, _id=local_id_for(user, client_id))
    result = await couch.put(db_path(db, doc["_id"]), doc)
    result["id"] = f"_local/{client_id}"
    return result


async def delete_local(couch: CouchClient, user: User, db: str, client_id: str,
                       rev: str | None) -> dict[str, Any]:
    result = await couch.request("DELETE", db_path(db, local_id_for(user, client_id)),
                                 params={"rev": rev} if rev is not None else None)
    result["id"] = f"_local/{client_id}"
    return result


def refusal_error(refusal: Refusal) -> errors.CouchError:
    names = {400: "bad_request", 403: "forbidden", 409: "conflict", 413: "too_large",
             415: "bad_content_type"}
    return errors.CouchError(refusal.status, names.get(refusal.status, "forbidden"),
                             refusal.reason)

