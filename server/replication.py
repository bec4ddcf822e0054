"""The replication services behind the gateway's routes: admitting a batch of documents, relaying
feeds and reads as streams, keeping each user's checkpoints apart, and handing what the server
accepted to the receipt log. The routes (gateway.py) only parse, authorize and call these."""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from server import errors
from server.couch import CouchClient, db_path
from server.receipts import ReceiptLog
from server.scope import User
from server.validation import Refusal, SchemaRegistry, WriteContext, check_document, refuse

log = logging.getLogger(__name__)

# Response headers worth passing from the store to the client; hop-by-hop ones are not.
RELAYED_HEADERS = ("Content-Type", "ETag", "Cache-Control", "Content-Disposition")
RELAY_CHUNK = 64 * 1024


def encoded_size(doc: Any) -> int:
    return len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())


# -- checkpoints ------------------------------------------------------------------------------

def local_id_for(user: User, client_id: str) -> str:
    """Each user's `_local/` documents live under their own prefix ('~' cannot occur in a user
    name), so no device can read or overwrite another user's checkpoint."""
    return f"_local/{user.name}~{client_id}"


def client_local_id(user: User, stored_id: str) -> str:
    prefix = f"_local/{user.name}~"
    return "_local/" + stored_id[len(prefix):] if stored_id.startswith(prefix) else stored_id


# -- writes -----------------------------------------------------------------------------------

async def stored_authors(couch: CouchClient, db: str, ids: Sequence[str]) -> dict[str, str | None]:
    """created_by of the live documents among `ids`, read in one request."""
    wanted = sorted({i for i in ids if not i.startswith("_design/")})
    if not wanted:
        return {}
    page = await couch.post(db_path(db, "_all_docs"), {"keys": wanted}, include_docs="true")
    found: dict[str, str | None] = {}
    for row in page.get("rows", []):
        doc = row.get("doc")
        if isinstance(doc, dict) and not row.get("value", {}).get("deleted"):
            author = doc.get("created_by")
            found[str(row["key"])] = author if isinstance(author, str) else None
    return found


def refusal_result(doc_id: Any, refusal: Refusal) -> dict[str, Any]:
    # Always "forbidden" inside a batch: PouchDB counts it as denied and carries on, while any
    # other error name would abort the worker's whole replication.
    return {"id": doc_id if isinstance(doc_id, str) else "", "error": "forbidden",
            "reason": refusal.reason}


def is_edit(doc: Any, new_edits: bool) -> bool:
    """Whether `doc` is a revision on top of an earlier one (or a deletion): only then can the
    stored author matter. A first revision is its writer's own creation."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("_id"), str):
        return False
    rev = doc.get("_rev")
    if doc.get("_deleted") or (new_edits and rev is not None):
        return True
    return not new_edits and isinstance(rev, str) and not rev.startswith("1-")


async def write_batch(couch: CouchClient, registry: SchemaRegistry, receipts: ReceiptLog,
                      ctx_base: WriteContext, db: str, docs: list[Any], new_edits: bool,
                      raw_body: bytes | None = None) -> list[dict[str, Any]]:
    """Validate each document, write the admitted ones in one `_bulk_docs`, and answer in input
    order: store results for the written, `forbidden` for the refused.

    Kept cheap for the common push of new records: stored authors are read (one request) only
    for edits and deletions; no document is re-encoded to measure it when the whole body is
    within the document limit; and when every document is admitted, the client's body (`raw_body`)
    goes to the store as it came."""
    edited = [d["_id"] for d in docs if is_edit(d, new_edits)]
    authors = await stored_authors(couch, db, edited) if ctx_base.grid is not None else {}
    ctx = WriteContext(user=ctx_base.user, grid=ctx_base.grid,
                       max_document_bytes=ctx_base.max_document_bytes,
                       max_attachment_bytes=ctx_base.max_attachment_bytes,
                       stored_authors=authors)
    small = raw_body is not None and len(raw_body) <= ctx.max_document_bytes
    verdicts: list[Refusal | None] = [
        check_replicated(d, new_edits)
        or check_document(d, ctx, registry, 0 if small else encoded_size(d))
        for d in docs]
    admitted = [d for d, v in zip(docs, verdicts, strict=True) if v is None]
    stored: list[dict[str, Any]] = []
    path = db_path(db, "_bulk_docs")
    if admitted and raw_body is not None and len(admitted) == len(docs):
        stored = await couch.request("POST", path, data=raw_body,
                                     headers={"Content-Type": "application/json"})
    elif admitted:
        stored = await couch.post(path, {"docs": admitted, "new_edits": new_edits})
    # The embedded store may answer out of input order: match results to documents by id.
    by_id: defaultdict[str, deque[dict[str, Any]]] = defaultdict(deque)
    for result in stored:
        by_id[str(result.get("id"))].append(result)
    results: list[dict[str, Any]] = []
    accepted: list[list[str]] = []
    for doc, verdict in zip(docs, verdicts, strict=True):
        if verdict is not None:
            results.append(refusal_result(doc.get("_id") if isinstance(doc, Mapping) else None,
                                          verdict))
            continue
        queue = by_id.get(doc["_id"])
        result = queue.popleft() if queue else None
        if result is not None:
            results.append(result)
        if result is None or "error" not in result:
            rev = (result or {}).get("rev") or doc.get("_rev")
            accepted.append([doc["_id"], str(rev)])
    receipts.record(ctx.user.name, db, accepted)
    return results


def check_replicated(doc: Any, new_edits: bool) -> Refusal | None:
    """A replicated revision (new_edits=false) must carry its revision id; without it the store
    answers an error name that would abort the client's whole replication."""
    if new_edits or not isinstance(doc, Mapping) or isinstance(doc.get("_rev"), str):
        return None
    return refuse("同步的记录缺少版本号 _rev", "A replicated document needs its _rev.", 400)


# -- reads ------------------------------------------------------------------------------------

async def relay(request: web.Request, couch: CouchClient, method: str, path: str, *,
                params: Mapping[str, str] | None = None, body: Any = None,
                data: Any = None, headers: Mapping[str, str] | None = None,
                timeout: float | None = 60) -> web.StreamResponse:
    """Stream the store's answer to the client chunk by chunk: a feed or a big `_all_docs` is
    never held whole in memory. The store's errors pass through in CouchDB's shape."""
    upstream = await couch.open(method, path, params=params, body=body, data=data,
                                headers=headers, timeout=timeout)
    try:
        response = web.StreamResponse(status=upstream.status)
        for name in RELAYED_HEADERS:
            if name in upstream.headers:
                response.headers[name] = upstream.headers[name]
        if request.method == "HEAD":  # headers only: a body here would corrupt keep-alive
            response.content_length = 0
            await response.prepare(request)
            await response.write_eof()
            return response
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(RELAY_CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        # The store died mid-answer: cut the client's connection so it retries, never a
        # silently truncated body that looks complete.
        log.warning("store failed while relaying %s %s: %s", method, path, exc)
        if request.transport is not None:
            request.transport.close()
        return response
    finally:
        upstream.release()


async def read_local(couch: CouchClient, user: User, db: str, client_id: str) -> dict[str, Any]:
    doc = await couch.get(db_path(db, local_id_for(user, client_id)))
    doc["_id"] = client_id
    return doc


async def write_local(couch: CouchClient, user: User, db: str, client_id: str,
                      doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc, _id=local_id_for(user, client_id))
    result = await couch.put(db_path(db, doc["_id"]), doc)
    result["id"] = client_id
    return result


async def delete_local(couch: CouchClient, user: User, db: str, client_id: str,
                       rev: str) -> dict[str, Any]:
    result = await couch.request("DELETE", db_path(db, local_id_for(user, client_id)),
                                 params={"rev": rev})
    result["id"] = client_id
    return result


def refusal_error(refusal: Refusal) -> errors.CouchError:
    names = {400: "bad_request", 403: "forbidden", 413: "too_large", 415: "bad_content_type"}
    return errors.CouchError(refusal.status, names.get(refusal.status, "forbidden"),
                             refusal.reason)

