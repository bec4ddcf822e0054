"""The audit of reveals in the store (`linli-audit`): entries are created, never updated.

Each entry is written with a PUT of a new id (server/domain/reveals.py makes it unique), so a
second write of the same id would be a conflict, never an edit. The database is internal:
no `/couch/` route reaches it, whatever the role (server/web/routing.py resolves internal names
to "not found"), so entries can be read through the admin's `/api/audit` only and changed by
nothing in the app. Each entry also leaves a `linli.audit` log line, as every unmasked read
does (server/sync/personal.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from server.domain import reveals
from server.domain.scope import AUDIT_DB
from server.store.couch import CouchClient, db_path

audit = logging.getLogger("linli.audit")

PAGE = 500  # entries read at a time when listing


async def append(couch: CouchClient, found: Mapping[str, Any]) -> None:
    """Write one new entry, and its log line."""
    await couch.put(db_path(AUDIT_DB, found["_id"]), dict(found))
    audit.info("%s revealed %s of %s in %s; reason: %s %r; until %s", found["user"],
               ",".join(found["fields"]) or "-", found["record"], found["grid"],
               found["reason"], found["reason_text"], found["until"])


async def latest(couch: CouchClient, user: str, grid: str, record: str) -> dict[str, Any] | None:
    """The latest reveal of `record` by `user`, if any (one range read of ids)."""
    prefix = f"{reveals.ENTRY_PREFIX}{reveals.subject_key(user, grid, record)}:"
    page = await couch.get(db_path(AUDIT_DB, "_all_docs"), descending="true", limit="1",
                           include_docs="true", startkey=json.dumps(prefix + "\ufff0"),
                           endkey=json.dumps(prefix))
    rows = page.get("rows", [])
    return rows[0]["doc"] if rows else None


async def entries(couch: CouchClient, wanted: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
    """Every entry passing the filters, page by page (the caller sorts and bounds)."""
    start = reveals.ENTRY_PREFIX
    while True:
        page = await couch.get(db_path(AUDIT_DB, "_all_docs"), include_docs="true",
                               limit=str(PAGE + 1), startkey=json.dumps(start),
                               endkey=json.dumps(reveals.ENTRY_PREFIX + "\ufff0"))
        rows = page.get("rows", [])
        for found in rows[:PAGE]:
            doc = found.get("doc") or {}
            if reveals.matches(doc, wanted):
                yield {k: v for k, v in doc.items() if k != "_rev"}
        if len(rows) <= PAGE:
            return
        start = rows[PAGE]["id"]
