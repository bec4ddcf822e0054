"""Review (审核) as the store holds it: the queue of a grid's reviewable records with their
states, and one record's history, read from the views and the receipts. The rules (states,
verdicts, what a supervisor sees) are server/domain/review.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from server.domain.ordering import Verdict
from server.domain.review import Filters, history, record_view, state_of
from server.domain.scope import grid_db
from server.store.couch import CouchClient, CouchFailure, NotFound, db_path
from server.sync import ordering
from server.sync.ordering import ReceiptLookup

MAX_LISTED = 2000


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


MAX_REVISIONS = 50  # of one record's history, the newest ones; older ones are only counted


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
    try:
        rows = (await couch.get(db_path(db, "_design/linli", "_view", "verdicts_by_record"),
                                key=_json(doc_id)))["rows"]
    except NotFound:
        rows = []
    judged = await _ordered(couch, db, [verdict_of(row) for row in rows], receipts)
    return record_view(grid, current, history(listed, bodies, {
        rev: who for (_, rev), who in sent.items()}, unmasked), judged, unmasked,
        older_revisions=max(0, len(infos) - len(listed)))
