"""Reads of one database grouped while one is under way (读取合并), as claims are written
(server/sync/allocation.py's group commit): when 500 phones are woken at once by their own
outcomes, each asking for its one document, the store gets a few `_bulk_get`s of many ids
rather than 500 of one. A read asked while another is in flight waits for the next, which
carries every id asked meanwhile; each caller gets its own ids' documents (or the store's
error). Revisions with their history (`revs=true`), as PouchDB's `_bulk_get` asks."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from server.store.couch import CouchClient, NotFound, db_path

MOST = 1000  # ids read at once


class GroupedReads:
    """Grouped `_bulk_get`s of one database; one per database and process."""

    def __init__(self, couch: CouchClient, db: str) -> None:
        self.couch = couch
        self.db = db
        self.queued: list[tuple[frozenset[str], asyncio.Future[dict[str, dict[str, Any]]]]] = []
        self.reading: asyncio.Future[None] | None = None

    async def get(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The current winning revision of each id (with `_revisions`); deleted or missing
        ones left out."""
        wanted = frozenset(ids)
        if not wanted:
            return {}
        done: asyncio.Future[dict[str, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future())
        self.queued.append((wanted, done))
        if self.reading is None or self.reading.done():
            self.reading = asyncio.ensure_future(self.read_queued())
        return await asyncio.shield(done)

    async def read_queued(self) -> None:
        while self.queued:
            batch: list[tuple[frozenset[str], asyncio.Future[dict[str, dict[str, Any]]]]] = []
            asked: set[str] = set()
            while self.queued and (not batch or len(asked | self.queued[0][0]) <= MOST):
                item = self.queued.pop(0)
                batch.append(item)
                asked |= item[0]
            try:
                found = await self.read(sorted(asked))
            except Exception as exc:  # every caller of the batch hears it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                        done.exception()  # retrieved, whether its caller still waits or not
                continue
            for wanted, done in batch:
                if not done.done():
                    done.set_result({i: found[i] for i in wanted if i in found})

    async def read(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return await winning_revisions(self.couch, self.db, ids)


async def winning_revisions(couch: CouchClient, db: str, ids: Collection[str],
                   attachments: bool = False) -> dict[str, dict[str, Any]]:
    """The winning revision (with its history) of each id, in one `_bulk_get`; a deleted or
    missing one is left out."""
    if not ids:
        return {}
    params = {"revs": "true", **({"attachments": "true"} if attachments else {})}
    try:
        page = await couch.post(db_path(db, "_bulk_get"), {"docs": [{"id": i} for i in ids]},
                                **params)
    except NotFound:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for result in page.get("results", []):
        for item in result.get("docs", []):
            doc = item.get("ok") if isinstance(item, Mapping) else None
            if isinstance(doc, dict) and not doc.get("_deleted") and doc.get("_id") in ids:
                found[doc["_id"]] = doc
    return found
