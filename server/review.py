"""Review (审核) of what grid workers synced: each survey, census and screening record has a review
state, kept in supervisor-owned verdict documents (so a verdict never collides with the
worker's edit), after ODK Central's review states:

    received → approved
    received → has_issues (with a comment) → edited (the worker changed the record since) → …
    received → rejected

The state of a record is its latest verdict (by the time the server wrote it), and `edited` when
that verdict asked for changes and the record has moved past the revision it judged.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from typing import Any

from server.couch import CouchClient, NotFound, db_path
from server.receipts import utc_now
from server.scope import User, grid_db

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


def state_of(rev: str, verdicts: list[list[Any]]) -> tuple[str, dict[str, Any] | None]:
    """The review state of a record at `rev`, from its verdicts' view values
    [written_at, decision, record_rev, comment, by]."""
    if not verdicts:
        return "received", None
    written_at, decision, judged, comment, by = max(verdicts, key=lambda v: (v[0], v[1]))
    latest = {"decision": decision, "comment": comment, "by": by, "at": written_at,
              "record_rev": judged}
    if decision == "has_issues" and judged != rev:
        return "edited", latest
    return decision, latest


async def queue(couch: CouchClient, grid: str, filters: Filters) -> list[dict[str, Any]]:
    """One grid's reviewable records with their states, oldest first; views only."""
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
    verdicts: dict[str, list[list[Any]]] = {}
    for row in verdict_rows:
        verdicts.setdefault(row["key"], []).append(row["value"])
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
        "decision": item["decision"], "device_time": utc_now()}
    if item.get("comment"):
        doc["comment"] = item["comment"]
    return doc
