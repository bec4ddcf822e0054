"""The store's side of the grid worker's resident work (网格员的居民工作): the checks of a
staff phone's writes of sign-ups, links, codes and correction answers against the revision
they start from, and the audit of those acts. The rules are server/domain/resident_queue.py;
the links of sign-ups decided at the door are server/sync/door_links.py.

Links are the server's to write, not the phone's: two phones may decide one sign-up
differently offline, and only the decision the server received first may make a link. The
phone's decision is validated and stored as any grid write, and logged here."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from server.domain import resident_queue
from server.domain.scope import User
from server.domain.validation import Refusal, WriteContext
from server.store.couch import CouchClient, NotFound, db_path

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")


async def _parent(couch: CouchClient, db: str, doc: Mapping[str, Any],
                  new_edits: bool) -> dict[str, Any] | None:
    """The stored revision a write starts from: its `_rev` for a new edit, the nearest
    ancestor the store holds for a replicated one; None for a new record."""
    rev = doc.get("_rev")
    if new_edits:
        revs = [rev] if isinstance(rev, str) else []
    else:
        history = doc.get("_revisions")
        if not isinstance(history, Mapping):
            return None
        start, ids = int(history["start"]), history["ids"]
        revs = [f"{start - n}-{ids[n]}" for n in range(1, min(len(ids), 21))]
    if not revs:
        return None
    try:
        answer = await couch.get(db_path(db, str(doc["_id"])), open_revs=json.dumps(revs))
    except NotFound:
        return None
    found = {item["ok"]["_rev"]: item["ok"] for item in answer if isinstance(answer, list)
             and isinstance(item, Mapping) and isinstance(item.get("ok"), Mapping)}
    return next((dict(found[r]) for r in revs if r in found and not found[r].get("_deleted")),
                None)


async def _households(couch: CouchClient, db: str, ids: Sequence[str]) -> frozenset[str]:
    """The live households among `ids` that the grid's database holds."""
    wanted = sorted({i for i in ids if i.startswith("household:")})
    if not wanted:
        return frozenset()
    page = await couch.post(db_path(db, "_all_docs"), {"keys": wanted})
    return frozenset(str(row["key"]) for row in page.get("rows", [])
                     if "error" not in row and not (row.get("value") or {}).get("deleted"))


def staff_deletion(ctx: WriteContext, doc_id: str) -> Refusal | None:
    """Rule 6 for a deletion by staff (a tombstone in a batch, or `DELETE`) of a record the
    server holds (`ctx.stored_authors` read for it)."""
    if ctx.user.role not in resident_queue.STAFF_ROLES or doc_id not in ctx.stored_authors:
        return None
    problem = resident_queue.deletion_problem(doc_id)
    return Refusal(problem.message) if problem is not None else None


async def staff_refusals(couch: CouchClient, ctx: WriteContext, docs: Sequence[Any],
                         refusals: list[Refusal | None], new_edits: bool) -> list[Refusal | None]:
    """The refusals of a batch with the queue rules applied to a worker's or supervisor's
    writes of the queue types (admins, the server among them, are not held to them)."""
    if ctx.user.role not in resident_queue.STAFF_ROLES:
        return refusals
    out = [r or (staff_deletion(ctx, str(d["_id"])) if isinstance(d, Mapping)
                 and d.get("_deleted") is True else None)
           for d, r in zip(docs, refusals, strict=True)]
    picked = [i for i, d in enumerate(docs) if out[i] is None and isinstance(d, Mapping)
              and not d.get("_deleted") and d.get("type") in resident_queue.QUEUE_TYPES]
    if not picked:
        return out
    named = [str(docs[i].get("household")) for i in picked]
    parents, households = await asyncio.gather(
        asyncio.gather(*(_parent(couch, ctx.db, docs[i], new_edits) for i in picked)),
        _households(couch, ctx.db, named))
    now = datetime.datetime.now(datetime.UTC)
    for i, stored in zip(picked, parents, strict=True):
        problem = resident_queue.staff_problem(docs[i], stored, ctx.user.name, households, now)
        if problem is not None:
            out[i] = Refusal(problem.message)
    return out


def log_staff_writes(user: User, grid: str, docs: Sequence[Any],
                     refusals: Sequence[Refusal | None]) -> bool:
    """The audit of the acts a staff phone's batch carried (a resident removed, a code made or
    revoked, a sign-up or correction answered); True when a sign-up was decided, so its link
    may be due."""
    decided = False
    for doc, refusal in zip(docs, refusals, strict=True):
        if refusal is not None or not isinstance(doc, Mapping) or doc.get("_deleted"):
            continue
        kind, doc_id = doc.get("type"), doc.get("_id")
        if kind == "resident" and doc.get("status") == "removed":
            audit.info("%s removed resident %s (%s) of %s in %s", user.name, doc.get("account"),
                       doc_id, doc.get("household"), grid)
        elif kind == "activation_code":
            audit.info("%s wrote activation code %s for %s in %s (%s)", user.name, doc_id,
                       doc.get("household"), grid, doc.get("status", "active"))
        elif kind == "signup" and doc.get("status") != "pending":
            decided = True
            audit.info("%s decided sign-up %s in %s: %s", user.name, doc_id, grid,
                       doc.get("status"))
        elif kind == "correction_request" and doc.get("status") != "open":
            audit.info("%s answered correction %s in %s: %s", user.name, doc_id, grid,
                       doc.get("status"))
    return decided
