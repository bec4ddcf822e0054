"""A campaign's purge in the store: the grid databases rebuilt without its records.

The embedded store (PouchDB Server 4.2) has no `_purge` (it answers 400), and deleting a record
then compacting its database drops the old bodies from the index but leaves their bytes in
the LevelDB log files (tests/test_campaigns.py shows both). So the equivalent: every leaf
revision of every record that stays (tombstones and conflicts included, each with its
revision history, so phones see the same revisions) is copied into a fresh database, the grid
database is destroyed (its files go), made again, and the copy written back; then the copy
is destroyed. What a grid's database held of the campaign is then on no file of the store.

The grid's checkpoints (`_local`) are not copied: each phone's next sync starts from the
beginning and compares revisions, sending back what the server lacks, so a write that came
in during the rebuild is sent again. The records of the campaign a phone sends back are
refused (server/domain/campaigns.py, rule 3)."""

from __future__ import annotations

import contextlib
import datetime
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from server.domain import campaigns as rules
from server.domain.scope import DIRECTORY_DB, Directory, grid_db
from server.store.couch import CouchClient, NotFound, db_path

audit = logging.getLogger("linli.audit")

PAGE = 500  # leaves read and written at a time


async def leaves(couch: CouchClient, db: str) -> AsyncIterator[list[tuple[str, str]]]:
    """(id, rev) of every leaf revision of every document but checkpoints, a page at a time."""
    since = "0"
    while True:
        page = await couch.get(db_path(db, "_changes"), style="all_docs", since=since,
                               limit=str(PAGE))
        results = page.get("results", [])
        found = [(str(c["id"]), str(r["rev"])) for c in results for r in c.get("changes", [])
                 if not str(c["id"]).startswith("_local/")]
        if found:
            yield found
        if len(results) < PAGE:
            return
        since = str(page.get("last_seq"))


async def bodies(couch: CouchClient, db: str, wanted: list[tuple[str, str]],
                 attachments: bool = True) -> list[dict[str, Any]]:
    """The leaves `wanted`, each with its revision history (and its attachments' data)."""
    answer = await couch.post(db_path(db, "_bulk_get"), {
        "docs": [{"id": i, "rev": r} for i, r in wanted]}, revs="true",
        attachments=str(attachments).lower())
    return [d["ok"] for result in answer.get("results", []) for d in result.get("docs", [])
            if isinstance(d.get("ok"), dict)]


async def copy(couch: CouchClient, source: str, target: str, drop: set[str]) -> int:
    """Every leaf of `source` but those of the ids in `drop`, into `target`, as they are."""
    copied = 0
    async for page in leaves(couch, source):
        kept = [(i, r) for i, r in page if i not in drop]
        if not kept:
            continue
        docs = await bodies(couch, source, kept)
        written = await couch.post(db_path(target, "_bulk_docs"),
                                   {"docs": docs, "new_edits": False})
        failed = [w for w in written if isinstance(w, dict) and w.get("error")]
        if failed:
            raise RuntimeError(f"rebuilding {source}: {failed[:3]}")
        copied += len(docs)
    return copied


async def to_drop(couch: CouchClient, db: str, key: str) -> tuple[set[str], list[dict[str, Any]]]:
    """The ids of a grid database to purge for campaign `key`, and the records counted."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    async for page in leaves(couch, db):
        wanted = [(i, r) for i, r in page if not i.startswith("_design/")]
        for doc in await bodies(couch, db, wanted, attachments=False) if wanted else []:
            by_id.setdefault(str(doc["_id"]), []).append(doc)
    drop = rules.dropped(by_id, key)
    counted = [d for i in drop for d in by_id[i] if rules.filed_under(d, key)
               and not d.get("_deleted")]
    return drop, counted


async def rebuild(couch: CouchClient, db: str, drop: set[str]) -> None:
    """`db` made again without the documents `drop` (see the module's docstring)."""
    spare = f"linli-rebuild-{uuid.uuid4().hex[:12]}"
    await couch.put(db_path(spare), None)
    try:
        await copy(couch, db, spare, drop)
        await couch.request("DELETE", db_path(db))
        await couch.put(db_path(db), None)
        await copy(couch, spare, db, set())
    finally:
        with contextlib.suppress(NotFound):
            await couch.request("DELETE", db_path(spare))


async def purge(couch: CouchClient, directory: Directory, key: str, grids: list[str], by: str,
                now: datetime.datetime) -> dict[str, Any]:
    """Purge campaign `key` from `grids` (rule 2). The grids are marked purged first, and the
    running server told at once, so no phone can send the records back while the databases
    are rebuilt; the campaign's document then records what went and the figures counted."""
    path = db_path(DIRECTORY_DB, f"campaign:{key}")
    campaign = await couch.get(path)
    done = {g for g, mark in (campaign.get("purged") or {}).items()
            if isinstance(mark, dict) and mark.get("records") is not None}
    grids = [g for g in grids if g not in done]  # purged before: its figures stay as counted
    at = now.isoformat(timespec="seconds")
    campaign.setdefault("purged", {}).update(
        {grid: {"at": at, "by": by, "records": None} for grid in grids})
    campaign["_rev"] = (await couch.put(path, campaign))["rev"]
    directory.apply(campaign)
    for grid in grids:
        db = grid_db(grid)
        try:
            drop, counted = await to_drop(couch, db, key)
        except NotFound:
            continue
        if drop:
            await rebuild(couch, db, drop)
        campaign["purged"][grid]["records"] = len(counted)
        campaign.setdefault("figures", {})[grid] = rules.figures_of(counted)
        audit.info("%s purged campaign %s from %s: %d record(s), %d document(s)", by, key,
                   grid, len(counted), len(drop))
    campaign["_rev"] = (await couch.put(path, campaign))["rev"]
    directory.apply(campaign)
    return {k: v for k, v in campaign.items() if k != "_rev"}


def listed(campaign: Mapping[str, Any]) -> dict[str, Any]:
    """A campaign as the supervisors' list shows it: its dates, the grids purged, figures."""
    return {**{k: v for k, v in campaign.items() if not k.startswith("_")},
            "due_on": rules.due_on(campaign)}
