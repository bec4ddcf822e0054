"""Review (审核) of what grid workers synced: each survey, census and screening record has a review
state, kept in supervisor-owned verdict documents (so a verdict never collides with the
worker's edit), after ODK Central's review states:

    received → approved
    received → has_issues (with a comment) → edited (the worker changed the record since) → …
    received → rejected

The state of a record is its latest verdict, the one the server received last (sync/ordering.py:
its receipt, never the phone's `device_time`), and `edited` when that verdict asked for changes
and the record has moved past the revision it judged.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from typing import Any

from server.domain.scope import User, grid_db
from server.store.couch import CouchClient, CouchFailure, NotFound, db_path
from server.sync import exports, ordering
from server.sync.ordering import ReceiptLookup, Verdict
from server.sync.receipts import utc_now

REVIEWABLE = ("household_visit", "census_household", "screening")
STATES = ("received", "approved", "has_issues", "edited", "rejected")
DECISIONS = ("approved", "has_issues", "rejected")
MAX_LISTED = 2000


@dataclasses.dataclass(frozen=True)
class Filters:
    types: tuple[str, ...] = REVIEWABLE
    state: str | None = None
    worker: str | None = None
    since: str | None = None  # the record's own date (visit, enumeration, screening), inclusive
    until: str | None = None


def state_of(rev: str, verdicts: list[Verdict]) -> tuple[str, dict[str, Any] | None]:
    """The review state of a record at `rev`, from its verdicts (with their receipts)."""
    if not verdicts:
        return "received", None
    last = ordering.latest(verdicts)
    if last.decision == "has_issues" and last.record_rev != rev:
        return "edited", last.shown()
    return last.decision, last.shown()


def verdict_of(row: Mapping[str, Any]) -> Verdict:
    """A `verdicts_by_record` row: [device_time, decision, record_rev, comment, by, rev]."""
    device_time, decision, judged, comment, by, rev = [*row["value"], ""][:6]  # rev: new
    return Verdict(id=str(row["id"]), rev=str(rev), record=str(row["key"]),
                   decision=str(decision), record_rev=str(judged), comment=str(comment),
                   by=str(by), device_time=str(device_time))


async def queue(couch: CouchClient, grid: str, filters: Filters,
                receipts: ReceiptLookup | None = None) -> list[dict[str, Any]]:
    """One grid's reviewable records with their states, oldest first; views only, and the
    receipts of the verdicts to order them."""
    db = grid_db(grid)
    rows: list[dict[str, Any]] = []
    try:
        for doc_type in filters.types:
            start = [doc_type, filters.since or ""]
            end = [doc_type, (filters.until or "9999") + "\ufff0"]
            answer = await couch.get(db_path(db, "_design/linli", "_view", "reviewable"),
                                     startkey=_json(start), endkey=_json(end))
            rows.extend(answer.get("rows", []))
        verdict_rows = (await couch.get(
            db_path(db, "_design/linli", "_view", "verdicts_by_record")))["rows"]
    except NotFound:
        return []
    verdicts: dict[str, list[Verdict]] = {}
    for verdict in await _ordered(couch, db, [verdict_of(row) for row in verdict_rows],
                                  receipts):
        verdicts.setdefault(verdict.record, []).append(verdict)
    listed = []
    for row in rows:
        value = row["value"]
        if filters.worker and value.get("by") != filters.worker:
            continue
        state, latest = state_of(value["rev"], verdicts.get(row["id"], []))
        if filters.state and state != filters.state:
            continue
        listed.append({"grid": grid, "record": row["id"], "record_type": row["key"][0],
                       "date": row["key"][1], "rev": value["rev"], "worker": value.get("by"),
                       "household": value.get("household"), "state": state,
                       "verdict": latest})
    return listed


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def verdict_doc(user: User, grid: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """A verdict as the supervisor gives it; checked by the caller like any write."""
    doc: dict[str, Any] = {
        "_id": f"verdict:{item['record']}:{uuid.uuid4().hex[:12]}", "type": "verdict",
        "schema_version": 1, "grid": grid, "created_by": user.name,
        "record": item["record"], "record_rev": item["record_rev"],
        "decision": item.get("decision"), "device_time": utc_now()}
    if item.get("comment"):
        doc["comment"] = item["comment"]
    return doc


# --- one record, its history and the differences between its revisions ---------------------

# Records a supervisor may open: the reviewable ones and the profiles they are about.
OPENABLE = (*REVIEWABLE, "household", "person")
MAX_REVISIONS = 50  # the newest ones; older ones are only counted
HIDDEN = "(已隐藏 hidden)"
_ABSENT = object()
# Bookkeeping, not content: left out of the differences (the stamps say who changed a field).
NOT_COMPARED = frozenset({"_id", "_rev", "_revisions", "_revs_info", "_conflicts", "_deleted",
                          "edits"})


def masked(doc: Mapping[str, Any], unmasked: bool) -> dict[str, Any]:
    """A record as a supervisor may see it without asking: ID and phone numbers masked and
    special groups hidden, as exports show them (server/sync/exports.py), unless `unmasked`."""
    shown = {k: v for k, v in doc.items() if k not in ("_revisions", "_revs_info")}
    if unmasked:
        return shown
    for field, mask in (("id_number", exports.mask_id_number), ("phone", exports.mask_phone)):
        if field in shown:
            shown[field] = mask(shown[field])
    if "special_groups" in shown:
        shown["special_groups"] = HIDDEN
    return shown


def differences(before: Mapping[str, Any], after: Mapping[str, Any],
                unmasked: bool) -> list[dict[str, Any]]:
    """Field by field, what changed from one revision to the next, compared on the real values
    and shown masked: a changed phone number reads as changed even when its masks look alike."""
    shown_before, shown_after = masked(before, unmasked), masked(after, unmasked)
    changes = []
    for field in sorted((set(before) | set(after)) - NOT_COMPARED):
        if before.get(field, _ABSENT) == after.get(field, _ABSENT):
            continue
        change: dict[str, Any] = {"field": field}
        if field in before:
            change["from"] = shown_before[field]
        if field in after:
            change["to"] = shown_after[field]
        change["kind"] = ("added" if field not in before else "removed" if field not in after
                          else "changed")
        changes.append(change)
    return changes


async def _ordered(couch: CouchClient, db: str, verdicts: list[Verdict],
                   receipts: ReceiptLookup | None) -> list[Verdict]:
    """Verdicts with what orders them; without receipts when they cannot be read (the view
    not built yet, or the store failing): the store's sequence still orders them."""
    try:
        return await ordering.with_receipts(couch, db, verdicts, receipts)
    except (NotFound, CouchFailure):
        return await ordering.with_receipts(couch, db, verdicts, None)


async def _receipts(lookup: ReceiptLookup | None, db: str, wanted: list[tuple[str, str]]
                    ) -> Mapping[tuple[str, str], tuple[str | None, str | None]]:
    """Who sent each revision and when the server received it; nothing when unknown (the
    receipts view not built yet, or the store failing): the history is still worth showing."""
    if lookup is None or not wanted:
        return {}
    try:
        return await lookup(db, wanted)
    except (NotFound, CouchFailure):
        return {}


async def record_history(couch: CouchClient, grid: str, doc_id: str, *, unmasked: bool,
                         receipts: ReceiptLookup | None = None) -> dict[str, Any] | None:
    """One record of a grid with its verdicts and its revisions, newest first: each with who
    sent it and when (the server's receipts), whether the store still keeps its body (until
    a compaction it does), and what changed from the kept revision before it. None when there
    is no such record."""
    db = grid_db(grid)
    try:
        current = await couch.get(db_path(db, doc_id), revs_info="true", conflicts="true")
    except NotFound:
        return None
    infos = current.get("_revs_info", [])
    listed = infos[:MAX_REVISIONS]
    kept = [i["rev"] for i in listed if i.get("status") == "available"]
    bodies: dict[str, dict[str, Any]] = {}
    if kept:
        answer = await couch.post(db_path(db, "_bulk_get"),
                                  {"docs": [{"id": doc_id, "rev": r} for r in kept]})
        for result in answer.get("results", []):
            for item in result.get("docs", []):
                if "ok" in item:
                    bodies[str(item["ok"]["_rev"])] = item["ok"]
    sent = await _receipts(receipts, db, [(doc_id, i["rev"]) for i in listed])
    revisions: list[dict[str, Any]] = []
    older: dict[str, Any] | None = None
    for info in reversed(listed):  # oldest first, so each is compared with the one before
        rev = info["rev"]
        by, received_at = sent.get((doc_id, rev), (None, None))
        body = bodies.get(rev)
        entry: dict[str, Any] = {"rev": rev, "kept": body is not None,
                                 "deleted": info.get("status") == "deleted" or bool(
                                     body and body.get("_deleted")),
                                 "by": by, "received_at": received_at}
        if body is not None and older is not None:
            entry["compared_with"] = older["_rev"]
            entry["changes"] = differences(older, body, unmasked)
        elif body is not None:
            entry["compared_with"] = None
            entry["changes"] = differences({}, body, unmasked)
        if body is not None:
            older = body
        revisions.append(entry)
    revisions.reverse()
    try:
        rows = (await couch.get(db_path(db, "_design/linli", "_view", "verdicts_by_record"),
                                key=_json(doc_id)))["rows"]
    except NotFound:
        rows = []
    judged = await _ordered(couch, db, [verdict_of(row) for row in rows], receipts)
    state, latest = state_of(str(current["_rev"]), judged)
    verdicts = [v.shown() for v in sorted(judged, key=lambda v: v.order)]  # oldest first
    return {"grid": grid, "id": doc_id, "record_type": current.get("type"),
            "rev": current["_rev"], "record": masked(
                {k: v for k, v in current.items() if k != "_conflicts"}, unmasked),
            "masked": not unmasked, "state": state if current.get("type") in REVIEWABLE
            else None, "verdict": latest, "verdicts": verdicts, "revisions": revisions,
            "older_revisions": max(0, len(infos) - len(listed)),
            "conflicts": current.get("_conflicts", [])}
