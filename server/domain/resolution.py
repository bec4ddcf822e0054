"""The trail a resolved conflict leaves (冲突处理记录): which leaves of a record's revision tree
were merged, and the `resolution` document that says how, built from what domain/merging.py
decided. Pure: the resolver (server/sync/conflicts.py) reads the leaves and the receipts and
writes what these functions return.

- The leaves' common ancestor is the newest revision in every leaf's history; the branch kept
  is CouchDB's own winner (the longest, then the greatest revision id), so the merge is written
  where every replica already looks.
- A trail is named by the set of leaves it resolves: every process names it alike, and
  recording twice is the store's 409, never a duplicate.
- A merge whose body breaks a rule that spans fields is not written as merged: the revision
  received last stands whole, and every differing field waits for a supervisor.
- A deletion against an edit: the edit stands, and the trail says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain import merging
from server.domain.scope import User
from server.domain.validation import Limits, SchemaRegistry, check_record, write_context

RESOLVER = "linli-resolver"  # the author of resolutions (user names starting linli- are reserved)
MAX_TRAIL_REVISIONS = 50
# A merge of revisions whose sizes were checked on their way in is not refused for its size.
UNLIMITED = Limits(1 << 30, 1 << 30, 1 << 30)
Receipt = tuple[str | None, str | None]  # (who sent a revision, when the server received it)


def trail_id(record: str, revs: Iterable[str]) -> str:
    """The same set of leaves gives the same trail id in every process: recording twice is a
    409, not a duplicate."""
    digest = hashlib.sha256("|".join(sorted(revs)).encode()).hexdigest()[:16]
    return f"resolution:{record}:{digest}"


def history(doc: Mapping[str, Any]) -> list[str]:
    """The revision ids of a leaf, newest first, from its `_revisions`."""
    revisions = doc.get("_revisions") or {}
    start, ids = int(revisions.get("start", 0)), revisions.get("ids") or []
    return [f"{start - i}-{rev_id}" for i, rev_id in enumerate(ids)] or [str(doc["_rev"])]


def common_ancestor(leaves: list[Mapping[str, Any]]) -> str | None:
    shared = set(history(leaves[0]))
    for leaf in leaves[1:]:
        shared &= set(history(leaf))
    if not shared:
        return None
    return max(shared, key=lambda rev: (int(rev.split("-", 1)[0]), rev))


def couch_winner(leaves: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The leaf CouchDB and PouchDB both pick: the longest branch, then the greatest id."""
    return max(leaves, key=lambda d: (int(str(d["_rev"]).split("-", 1)[0]), str(d["_rev"])))


def body_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def shown(value: Any) -> dict[str, Any]:
    return {"missing": True} if value is merging.MISSING else {"value": value}


def valid_or_provisional(grid: str, merged: merging.Merge, revisions: list[merging.Revision],
                         registry: SchemaRegistry) -> merging.Merge:
    """A merge of valid revisions can still break a rule that spans fields (an owned home
    needs its area): then the last received revision stands whole, and every differing field
    waits for a supervisor."""
    ctx = write_context(User(name=RESOLVER, role="admin"), grid, UNLIMITED)
    doc = {**merged.body, "_id": f"{merged.body.get('type', '')}:check"}
    if check_record(doc, ctx, registry) is None:
        return merged
    fallback = merging.last_received(None, revisions)
    return merging.Merge(dict(fallback.body), tuple(
        dataclasses.replace(d, undecided=True, rule="concurrent_edits")
        for d in fallback.fields))


def trail(grid: str, doc_id: str, doc_type: str, leaves: list[dict[str, Any]],
          receipts: Mapping[str, Receipt], ancestor_rev: str | None, result_rev: str | None,
          merged: merging.Merge | None, winner: Mapping[str, Any], *, at: str) -> dict[str, Any]:
    """The resolution document of a record's leaves (`receipts` by revision), resolved at the
    server's time `at`: each revision with its sender and outcome, each field with its rule."""
    def revision(d: Mapping[str, Any]) -> dict[str, Any]:
        rev = str(d["_rev"])
        by, received = receipts.get(rev, (None, None))
        outcome = "deleted" if d.get("_deleted") else (
            "kept" if rev == str(winner["_rev"]) else "merged")
        device_time = d.get("device_time")
        return {"rev": rev, "deleted": bool(d.get("_deleted")), "by": by,
                "received_at": received,
                "device_time": device_time[:40] if isinstance(device_time, str) else None,
                "outcome": outcome}

    def choice(r: merging.Revision, value: Any) -> dict[str, Any]:
        return {"rev": r.rev, "by": r.by, "received_at": r.received_at, **shown(value)}

    fields = [] if merged is None else [
        {"field": d.field, "rule": d.rule, "undecided": d.undecided,
         "chosen": choice(d.chosen, d.value),
         "alternatives": [choice(r, v) for r, v in d.alternatives]}
        for d in merged.fields]
    return {"type": "resolution", "schema_version": 1, "grid": grid,
            "created_by": RESOLVER, "record": doc_id, "record_type": doc_type,
            "resolved_at": at, "ancestor_rev": ancestor_rev,
            "result_rev": result_rev,
            # the resolver's own old tombstones are not part of this story
            "revisions": [revision(d) for d in leaves
                          if d.get("resolved_by") != RESOLVER][:MAX_TRAIL_REVISIONS],
            "fields": fields,
            "status": "open" if merged is not None and merged.undecided else "resolved"}


def deletion_trail(grid: str, doc_id: str, live: Mapping[str, Any], leaves: list[dict[str, Any]],
                   receipts: Mapping[tuple[str, str], Receipt], *,
                   at: str) -> dict[str, Any] | None:
    """A phone deleted the record while another edited it: the edit stands (CouchDB's own
    rule), and the trail says so. Named by the deletions alone, so later edits of the record
    do not record them again (the store answers 409). None when no phone deleted it."""
    user_deletions = [d for d in leaves if d.get("_deleted")
                      and d.get("resolved_by") != RESOLVER]
    if not user_deletions:
        return None

    def by(d: Mapping[str, Any]) -> dict[str, Any]:
        who, received = receipts.get((doc_id, str(d["_rev"])), (None, None))
        return {"rev": str(d["_rev"]), "by": who, "received_at": received}

    own = {str(d["_rev"]): receipts.get((doc_id, str(d["_rev"])), (None, None))
           for d in leaves}
    found = trail(grid, doc_id, str(live.get("type", "")), leaves, own, None,
                  str(live["_rev"]), None, live, at=at)
    found["fields"] = [{"field": "_deleted", "rule": "edit_beats_deletion",
                        "undecided": False, "chosen": {**by(live), "value": False},
                        "alternatives": [{**by(d), "value": True} for d in user_deletions]}]
    return {**found, "_id": trail_id(doc_id, [str(d["_rev"]) for d in user_deletions])}
