"""Retention in the store: the nightly list of what is due, and its removal once approved.

The list is made by reading every leaf of every grid database (server/sync/campaigns.py's
readers) and judging it by server/domain/retention.py; it is written as a new entry of the
audit database (`linli-audit`, internal), never updated. An approval is one more entry per
grid, `retention-approval:<list>:<grid>`, written before anything goes: a second approval of
the same list and grid (a replay, or two supervisors at once) finds it there (a conflict) and
removes nothing. What was listed and is still due on the list's day then goes the campaign
purge's way: the grid database is rebuilt without it (sync/campaigns.py `rebuild`), and a
campaign due is purged by the campaign purge itself."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp

from server.domain import retention as rules
from server.domain.scope import AUDIT_DB, DIRECTORY_DB, Directory, grid_db
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync import campaigns

audit = logging.getLogger("linli.audit")

LIST_PREFIX = "retention-list:"
APPROVAL_PREFIX = "retention-approval:"
LISTS_SHOWN = 10  # the latest lists the supervisors' screen shows


async def due_in(couch: CouchClient, db: str, today: datetime.date,
                 campaign_docs: Mapping[str, Mapping[str, Any]],
                 purged: frozenset[str]) -> rules.Due:
    """What one grid database holds past its retention on `today`."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    async for page in campaigns.leaves(couch, db):
        wanted = [(i, r) for i, r in page if not i.startswith("_design/")]
        for doc in await campaigns.bodies(couch, db, wanted, attachments=False) if wanted else []:
            by_id.setdefault(str(doc["_id"]), []).append(doc)
    return rules.due(by_id, today, campaign_docs, purged)


async def make_list(couch: CouchClient, directory: Directory, today: datetime.date,
                    now: datetime.datetime) -> dict[str, Any]:
    """The list of what every grid holds past its retention on `today`, written as a new
    audit entry (rule 3); grids with nothing due are left out."""
    grids: dict[str, Any] = {}
    for code in sorted(directory.grids):
        try:
            found = await due_in(couch, grid_db(code), today, directory.campaigns,
                                 directory.purged_campaigns(code))
        except NotFound:
            continue
        if found.records or found.campaigns:
            grids[code] = {"records": found.records, "campaigns": found.campaigns}
    at = now.isoformat(timespec="seconds")
    entry = {"_id": f"{LIST_PREFIX}{now.astimezone(datetime.UTC):%Y%m%dT%H%M%SZ}-"
                    f"{uuid.uuid4().hex[:8]}", "type": "retention_list",
             "today": today.isoformat(), "made_at": at, "grids": grids}
    await couch.put(db_path(AUDIT_DB, entry["_id"]), entry)
    audit.info("retention list %s for %s: %d record(s) and %d campaign purge(s) due in %d "
               "grid(s)", entry["_id"], entry["today"], sum(
                   len(ids) for g in grids.values() for ids in g["records"].values()),
               sum(len(g["campaigns"]) for g in grids.values()), len(grids))
    return entry


async def entries(couch: CouchClient, prefix: str, limit: int = 0) -> list[dict[str, Any]]:
    """The audit entries whose ids start with `prefix`, newest first."""
    query = {"include_docs": "true", "descending": "true", "startkey": json.dumps(
        prefix + "\ufff0"), "endkey": json.dumps(prefix)}
    page = await couch.get(db_path(AUDIT_DB, "_all_docs"), **query,
                           **({"limit": str(limit)} if limit else {}))
    return [{k: v for k, v in r["doc"].items() if k != "_rev"} for r in page.get("rows", [])
            if isinstance(r.get("doc"), dict)]


async def find_list(couch: CouchClient, list_id: str) -> dict[str, Any] | None:
    if not list_id.startswith(LIST_PREFIX):
        return None
    try:
        return await couch.get(db_path(AUDIT_DB, list_id))
    except NotFound:
        return None


async def approve(couch: CouchClient, directory: Directory, listed: Mapping[str, Any],
                  grids: list[str], by: str, now: datetime.datetime) -> dict[str, Any]:
    """Remove what `listed` names in `grids` and is still due on its day (rule 3), each grid
    once: the grids approved before (by anyone) are skipped. Returns what went, by grid."""
    today = datetime.date.fromisoformat(str(listed["today"]))
    at = now.isoformat(timespec="seconds")
    removed: dict[str, Any] = {}
    for grid in grids:
        wanted = listed["grids"].get(grid)
        if wanted is None:
            continue
        approval = {"_id": f"{APPROVAL_PREFIX}{listed['_id']}:{grid}",
                    "type": "retention_approval", "list": listed["_id"], "grid": grid,
                    "by": by, "at": at}
        try:
            await couch.put(db_path(AUDIT_DB, approval["_id"]), approval)
        except Conflict:
            continue  # approved already: exactly once
        now_due = await due_in(couch, grid_db(grid), today, directory.campaigns,
                               directory.purged_campaigns(grid))
        drop = rules.listed_ids(wanted["records"]) & rules.listed_ids(now_due.records)
        if drop:
            await campaigns.rebuild(couch, grid_db(grid), drop)
        keys = sorted(set(wanted["campaigns"]) & set(now_due.campaigns))
        for key in keys:
            await campaigns.purge(couch, directory, key, [grid], by, now)
        removed[grid] = {"records": len(drop), "campaigns": keys}
        audit.info("%s approved retention list %s in %s: %d record(s) removed, campaigns %s",
                   by, listed["_id"], grid, len(drop), ",".join(keys) or "-")
    return removed


async def approvals(couch: CouchClient, list_id: str) -> dict[str, dict[str, Any]]:
    """The approvals of a list, by grid."""
    return {str(e["grid"]): e for e in await entries(couch, f"{APPROVAL_PREFIX}{list_id}:")}


class NightlyList:
    """The nightly job: a list of what is due, every `hours` (the first one period after the
    server starts, so restarts do not each read every grid)."""

    def __init__(self, couch: CouchClient, directory: Directory, hours: float) -> None:
        self.couch, self.directory, self.hours = couch, directory, hours

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.hours * 3600)
            now = datetime.datetime.now(datetime.UTC)
            await make_list(self.couch, self.directory, now.astimezone(rules.CHINA).date(), now)


async def list_now(url: str, today: datetime.date) -> dict[str, Any]:
    """One list made at once, outside the server (`linli retention list`): the directory read
    whole, then every grid."""
    async with aiohttp.ClientSession() as http:
        couch = CouchClient(url, http)
        directory = Directory()
        page = await couch.get(db_path(DIRECTORY_DB, "_all_docs"), include_docs="true")
        for row in page.get("rows", []):
            directory.apply(row["doc"])
        return await make_list(couch, directory, today, datetime.datetime.now(datetime.UTC))
