"""Receipts: what the server received, when (by the server's clock, never the phone's) and from
whom, one server-owned document per accepted write in `linli-receipts`.

A replicated revision must be stored exactly as the phone sent it, so the receipt cannot live in
the record itself. Receipts are stamped when the write is acknowledged and written by a background
task, many per `_bulk_docs`, so a push costs no extra round trip per batch. The price: a server
killed outright loses the receipts of its last flush interval; the records themselves are already
safe in the store by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from typing import Any

from server.couch import CouchClient, CouchFailure, NotFound, StoreUnavailable, db_path
from server.scope import RECEIPTS_DB

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25  # the most receipts a hard kill can lose; a quarter second of writes
FLUSH_DOCS = 500  # flush early under load, and never more in one write
MAX_PENDING = 200_000  # while the store is down; beyond it the oldest receipts are dropped
RETRY_SECONDS = 2.0


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def transient(result: Any) -> bool:
    """Whether the store's refusal of one document may pass on a retry."""
    if not isinstance(result, dict):
        return True
    status = result.get("status")  # PouchDB's shape; CouchDB's names only the error
    name = f"{result.get('error', '')} {result.get('name', '')}"
    text = f"{result.get('reason', '')} {result.get('message', '')}"
    return (isinstance(status, int) and status >= 500) or "IO error" in text \
        or "unknown_error" in name or "internal_server_error" in name


class ReceiptLog:
    def __init__(self, couch: CouchClient) -> None:
        self.couch = couch
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # the writer task and the resolver both flush

    def record(self, user: str, db: str, revs: list[list[str]]) -> None:
        """Stamp a receipt for accepted `[id, rev]` pairs; written shortly after."""
        if not revs:
            return
        self._pending.append({"type": "receipt", "db": db, "user": user,
                              "received_at": utc_now(), "revs": revs})
        if len(self._pending) > MAX_PENDING:
            dropped = len(self._pending) - MAX_PENDING
            del self._pending[:dropped]
            log.error("receipt backlog full: %d oldest receipts dropped", dropped)
        if len(self._pending) >= FLUSH_DOCS:
            self._wake.set()

    async def flush(self) -> None:
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[:FLUSH_DOCS]
            try:
                results = await self.couch.post(db_path(RECEIPTS_DB, "_bulk_docs"),
                                                {"docs": batch})
            except NotFound:  # someone deleted the database: make it again
                await self.couch.ensure_db(RECEIPTS_DB)
                raise
            except (CouchFailure, StoreUnavailable) as exc:
                log.warning("%d receipts not written yet (%s); retrying", len(self._pending),
                            exc)
                raise
            # The store can accept the request and refuse documents one by one (its disk full
            # mid-batch): those stay pending, or they would be lost without a word.
            if not isinstance(results, list) or len(results) != len(batch):
                results = [{"error": "unreadable answer", "status": 500}] * len(batch)
            refused = [doc for doc, result in zip(batch, results, strict=True)
                       if not isinstance(result, dict) or "error" in result]
            # Only a refusal that may pass later is retried (the store's trouble: 5xx or an
            # I/O error); one that never will (too large, say) would block every flush after it.
            again = [doc for doc, result in zip(batch, results, strict=True)
                     if doc in refused and transient(result)]
            del self._pending[:len(batch)]
            if len(refused) > len(again):
                log.error("%d receipts refused for good by the store: %s",
                          len(refused) - len(again), results[batch.index(refused[0])])
            if again:
                self._pending[:0] = again
                log.warning("%d receipts refused by the store; retrying", len(again))
                raise StoreUnavailable("receipts refused by the store")

    async def run(self) -> None:
        """Flush every FLUSH_SECONDS (sooner under load) until cancelled, then once more."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
                self._wake.clear()
                try:
                    await self.flush()
                except (CouchFailure, StoreUnavailable):
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            try:
                await asyncio.shield(self.flush())
            except (CouchFailure, StoreUnavailable):
                log.error("%d receipts lost at shutdown", len(self._pending))
