"""Receipts: what the server received, when (by the server's clock, never the phone's) and from
whom, one server-owned document per accepted write in `linli-receipts`.

A replicated revision must be stored exactly as the phone sent it, so the receipt cannot live in
the record itself. Receipts are stamped when the write is acknowledged and written by a background
task, many per `_bulk_docs`, so a push costs no extra round trip per batch. A server killed
outright loses the receipts of its last flush interval, and a write whose store died under it may
be stored without ever being acknowledged (the phone's retry then finds it there and sends nothing):
so the receipts are rebuilt from the store (`Rebuilder`): at start for every grid, and after a
write whose outcome is unknown for its database. Each grid's changes are read from a checkpoint
kept with the receipts, and every stored revision without a receipt gets one, marked `rebuilt`.

What "received at" means in a rebuilt receipt: the server no longer knows when it received the
write, only a moment by which it had: the start of the server that rebuilds it (after a kill), or
the moment the store failed under the write. That moment is the receipt's `received_at`, so order
by receipt stays right against every later write, and `user` is null (unknown) unless the failed
write is still remembered (then its sender and the time it arrived are exact). Fields only ever
added: `rebuilt: true` and `rebuilt_at` (when the rebuild wrote it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from server.domain.scope import RECEIPTS_DB
from server.store import designs
from server.store.couch import CouchClient, CouchFailure, NotFound, StoreUnavailable, db_path
from server.sync.supervisor import Lag

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25  # the most receipts a hard kill can lose; a quarter second of writes
FLUSH_DOCS = 500  # flush early under load, and never more in one write
MAX_PENDING = 200_000  # while the store is down; beyond it the oldest receipts are dropped
RETRY_SECONDS = 2.0


def receipt_id() -> str:
    """A new receipt's id (receipts written before ids were given have the store's own)."""
    return f"receipt:{uuid.uuid4().hex}"


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


class Overlap:
    """Set when another batch wrote one of the same ids while this one was in flight."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False


class WritesInFlight:
    """The ids each replicated batch of this process is looking up and writing. Two phones
    pushing the same new id at once both find it missing in the store, and the conflict their
    two writes make would otherwise wait for the resolver's sweep."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], list[Overlap]] = {}

    @contextlib.contextmanager
    def hold(self, db: str, ids: Sequence[str]) -> Iterator[Overlap]:
        mark = Overlap()
        keys = {(db, i) for i in ids}
        for key in keys:
            others = self._held.setdefault(key, [])
            if others:
                mark.seen = True
                for other in others:
                    other.seen = True
            others.append(mark)
        try:
            yield mark
        finally:
            for key in keys:
                others = self._held[key]
                others.remove(mark)
                if not others:
                    del self._held[key]


class ReceiptLog:
    def __init__(self, couch: CouchClient) -> None:
        self.couch = couch
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # the writer task and the resolver both flush
        # Writes under way, per database: a rebuild waits for those begun before it looked.
        self._writing: collections.defaultdict[str, set[asyncio.Event]] = \
            collections.defaultdict(set)
        self.rebuilder: Rebuilder | None = None  # told of writes whose outcome is unknown
        # The ids of the replicated batches under way (sync/replication.py): one per app, owned
        # with the receipts, which follow the same writes.
        self.in_flight = WritesInFlight()

    @contextlib.contextmanager
    def writing(self, user: str, db: str, revs: list[list[str]] | None = None) -> Iterator[None]:
        """Around a write to the store and its `record`. If the store fails under it, the write
        may be stored all the same, unacknowledged: its database's receipts are rebuilt, with
        `revs` (known beforehand for replicated revisions) credited to `user` at this moment."""
        done = asyncio.Event()
        arrived = utc_now()
        self._writing[db].add(done)
        try:
            yield
        except (StoreUnavailable, TimeoutError, CouchFailure) as exc:
            if self.rebuilder is not None and (not isinstance(exc, CouchFailure)
                                               or exc.status >= 500):
                self.rebuilder.uncertain(db, user, arrived, revs or [])
            raise
        finally:
            done.set()
            self._writing[db].discard(done)
            if not self._writing[db]:
                del self._writing[db]

    async def settled(self, db: str) -> None:
        """Once every write to `db` begun before this call has ended, and its receipt is
        flushed."""
        ongoing = list(self._writing.get(db, ()))
        for done in ongoing:
            await done.wait()
        await self.flush()

    def record(self, user: str, db: str, revs: list[list[str]]) -> None:
        """Stamp a receipt for accepted `[id, rev]` pairs; written shortly after."""
        if not revs:
            return
        # Its own id, so the store's answer is matched to it whatever the answer's order, and a
        # retry of a receipt the store already took is a conflict, never a second receipt.
        self._pending.append({"_id": receipt_id(), "type": "receipt", "db": db, "user": user,
                              "received_at": utc_now(), "revs": revs})
        if len(self._pending) > MAX_PENDING:
            dropped = len(self._pending) - MAX_PENDING
            del self._pending[:dropped]
            log.error("receipt backlog full: %d oldest receipts dropped", dropped)
        if len(self._pending) >= FLUSH_DOCS:
            self._wake.set()

    def pending(self) -> int:
        return len(self._pending)

    def lag(self) -> Lag:
        """How long the oldest receipt not yet written has waited, and how many wait."""
        if not self._pending:
            return Lag(items=0)
        oldest = datetime.datetime.fromisoformat(self._pending[0]["received_at"])
        waited = datetime.datetime.now(datetime.UTC) - oldest
        return Lag(seconds=max(0.0, waited.total_seconds()), items=len(self._pending))

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
            # mid-batch): those stay pending, or they would be lost without a word. Answers are
            # matched by id (the store answers out of order); a conflict is a receipt already
            # written (a retry after an answer lost on the way).
            answers = [a for a in results if isinstance(a, dict)] \
                if isinstance(results, list) else []
            by_id = {str(a.get("id")): a for a in answers}
            refused: list[tuple[dict[str, Any], Any]] = []
            for doc in batch:
                answer = by_id.get(doc["_id"], {"error": "no answer", "status": 500})
                if "error" in answer and answer["error"] != "conflict":
                    refused.append((doc, answer))
            # Only a refusal that may pass later is retried (the store's trouble: 5xx or an
            # I/O error); one that never will (too large, say) would block every flush after it.
            again = [doc for doc, answer in refused if transient(answer)]
            del self._pending[:len(batch)]
            if len(refused) > len(again):
                log.error("%d receipts refused for good by the store: %s",
                          len(refused) - len(again),
                          next(a for _, a in refused if not transient(a)))
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


# -- the receipts' views ------------------------------------------------------------------------

VIEW_KEYS = 300  # keys per receipts view query
BY_REV = db_path(RECEIPTS_DB, "_design/receipts", "_view", "by_rev")  # designs/receipts.json

Received = tuple[str | None, str | None]  # who sent a revision, when the server received it


class ReceiptViews:
    """The views of the receipts database (server/store/designs/, installed before the first
    query), read a page of keys at a time. The resolver and the rebuilder each hold one."""

    def __init__(self, couch: CouchClient) -> None:
        self.couch = couch
        self.installed = False

    async def rows(self, path: str, keys: list[list[str]],
                   **params: str) -> list[dict[str, Any]]:
        if not self.installed:
            await designs.install(self.couch, RECEIPTS_DB, designs.RECEIPTS)
            self.installed = True
        rows: list[dict[str, Any]] = []
        for start in range(0, len(keys), VIEW_KEYS):
            answer = await self.couch.post(path, {"keys": keys[start:start + VIEW_KEYS]},
                                           **params)
            rows += answer.get("rows", [])
        return rows

    async def by_rev(self, db: str, wanted: list[tuple[str, str]]
                     ) -> dict[tuple[str, str], Received]:
        """Who sent each revision of `db` and when the server first received it, by (id, rev);
        a revision without a receipt is left out."""
        found: dict[tuple[str, str], Received] = {}
        for row in await self.rows(BY_REV, [[db, i, r] for i, r in wanted]):
            user, received = row["value"]
            key = (str(row["key"][1]), str(row["key"][2]))
            if key not in found or (received or "") < (found[key][1] or ""):
                found[key] = (user, received)
        return found


# -- rebuilding receipts from the store ---------------------------------------------------------

REBUILD_PAGE = 500  # changes read at once
REBUILD_RETRY_SECONDS = 1.0  # while the store is down
REBUILD_DELAY_SECONDS = 0.5  # after a failed write: its store is likely restarting
CHECKPOINT_PREFIX = "_local/receipts~"  # one per grid database, in the receipts database
SERVER_MARK = db_path(RECEIPTS_DB, "_local/receipts-server")  # did the last server stop cleanly?


def seq_number(seq: Any) -> int:
    """The ordering part of a seq: PouchDB Server's integer, CouchDB's `N-...` prefix."""
    try:
        return int(str(seq).split("-", 1)[0])
    except ValueError:
        return 0


class Rebuilder:
    """Gives every stored revision of a grid a receipt. Reads the grid's changes from its
    checkpoint up to its update seq at the start of the pass, after every write begun before
    then has ended and its receipts are flushed (so a receipt still on its way is never taken
    for a lost one), and writes the missing receipts, then the checkpoint."""

    def __init__(self, couch: CouchClient, receipts: ReceiptLog) -> None:
        self.couch, self.receipts = couch, receipts
        self.views = ReceiptViews(couch)
        receipts.rebuilder = self
        self.wanted: dict[str, str] = {}  # db -> the latest "received by" moment to rebuild with
        self.known: dict[tuple[str, str, str], tuple[str, str]] = {}  # (db, id, rev) -> who, when
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.rebuilt = 0  # receipts written by rebuilds: for tests and logs

    def uncertain(self, db: str, user: str, arrived: str, revs: list[list[str]]) -> None:
        """A write to `db` failed in the store: it may be stored unacknowledged."""
        self.wanted[db] = max(self.wanted.get(db, ""), utc_now())
        for doc_id, rev in revs:
            self.known[(db, str(doc_id), str(rev))] = (user, arrived)
        self.idle.clear()
        self.wake.set()

    async def starting(self, dbs: list[str], started: str) -> None:
        """At start: if the last server did not stop cleanly (its last receipts flushed), every
        grid is looked at; then this server is marked running until `stopped`."""
        try:
            mark: dict[str, Any] = await self.couch.get(SERVER_MARK)
        except NotFound:
            mark = {}
        if mark.get("running", True):
            self.request(dbs, started)
        with contextlib.suppress(CouchFailure):  # another server started meanwhile
            await self.couch.put(SERVER_MARK, {**mark, "running": True, "started": started})

    async def stopped(self) -> None:
        """Every receipt is written: the next start need not look for lost ones."""
        mark: dict[str, Any] = await self.couch.get(SERVER_MARK)
        await self.couch.put(SERVER_MARK, {**mark, "running": False, "stopped": utc_now()})

    def lag(self) -> Lag:
        """The databases whose receipts wait to be rebuilt."""
        return Lag(items=len(self.wanted))

    def request(self, dbs: list[str], received_by: str) -> None:
        for db in dbs:
            self.wanted[db] = max(self.wanted.get(db, ""), received_by)
        if dbs:
            self.idle.clear()
            self.wake.set()

    async def run(self) -> None:
        """Rebuild what is asked, database by database, retrying while the store is down."""
        while True:
            if not self.wanted:
                self.idle.set()
                self.wake.clear()
                await self.wake.wait()
                await asyncio.sleep(REBUILD_DELAY_SECONDS)
            for db in sorted(self.wanted):
                received_by = self.wanted.pop(db)
                try:
                    await self.rebuild(db, received_by)
                except (StoreUnavailable, CouchFailure) as exc:
                    log.warning("receipts of %s not rebuilt yet (%s); retrying", db, exc)
                    self.wanted[db] = max(self.wanted.get(db, ""), received_by)
                    await asyncio.sleep(REBUILD_RETRY_SECONDS)
                except Exception:  # a surprise must not end the task and every rebuild after
                    log.exception("receipts of %s not rebuilt (unexpected error); retrying", db)
                    self.wanted[db] = max(self.wanted.get(db, ""), received_by)
                    await asyncio.sleep(REBUILD_RETRY_SECONDS)

    async def rebuild(self, db: str, received_by: str) -> int:
        """One pass over `db`; the number of receipts written."""
        # What was remembered when the pass began, and only that, is forgotten after it: a write
        # failing during the pass may be stored after the pass read past it, and the next pass
        # must still credit it to its sender.
        remembered = {k: v for k, v in self.known.items() if k[0] == db}
        checkpoint_path = db_path(RECEIPTS_DB, CHECKPOINT_PREFIX + db)
        try:
            checkpoint: dict[str, Any] = await self.couch.get(checkpoint_path)
        except NotFound:
            checkpoint = {}
        try:
            info = await self.couch.get(db_path(db))
        except NotFound:
            return 0  # the database is gone
        until = seq_number(info.get("update_seq"))
        await self.receipts.settled(db)
        since = checkpoint.get("since", "0")
        written = 0
        while True:
            try:
                page = await self.couch.get(db_path(db, "_changes"), since=str(since),
                                            limit=str(REBUILD_PAGE), style="all_docs")
            except NotFound:
                return written
            results = page.get("results") or []
            rows = [r for r in results if seq_number(r.get("seq")) <= until]
            wanted = [(str(r["id"]), str(c["rev"])) for r in rows
                      if not str(r.get("id", "")).startswith(("_design/", "_local/"))
                      for c in r.get("changes") or () if isinstance(c, dict) and "rev" in c]
            missing = await self.without_receipt(db, wanted)
            written += await self.write(db, missing, received_by)
            if rows:
                since = rows[-1]["seq"]
            if len(rows) < len(results) or len(results) < REBUILD_PAGE:
                break
        if since != checkpoint.get("since", "0"):
            body = {**checkpoint, "since": since, "at": utc_now()}
            with contextlib.suppress(CouchFailure):  # another pass moved it: it is read next
                await self.couch.put(checkpoint_path, body)
        for key, value in remembered.items():
            if self.known.get(key) == value:
                del self.known[key]
        return written

    async def without_receipt(self, db: str, wanted: list[tuple[str, str]]
                              ) -> list[tuple[str, str]]:
        found = await self.views.by_rev(db, wanted)
        return [pair for pair in wanted if pair not in found]

    async def write(self, db: str, missing: list[tuple[str, str]], received_by: str) -> int:
        if not missing:
            return 0
        now = utc_now()
        groups: dict[tuple[str | None, str], list[list[str]]] = {}
        for doc_id, rev in missing:
            user, arrived = self.known.get((db, doc_id, rev), (None, received_by))
            groups.setdefault((user, arrived), []).append([doc_id, rev])
        docs = [{"_id": receipt_id(), "type": "receipt", "db": db, "user": user,
                 "received_at": arrived,
                 "revs": revs, "rebuilt": True, "rebuilt_at": now}
                for (user, arrived), revs in groups.items()]
        results = await self.couch.post(db_path(RECEIPTS_DB, "_bulk_docs"), {"docs": docs})
        if any(not isinstance(r, dict) or "error" in r for r in results or ()):
            raise StoreUnavailable(f"rebuilt receipts refused: {results}")
        log.warning("%d receipts of %s rebuilt from the store (received by %s)", len(missing),
                    db, received_by)
        self.rebuilt += len(missing)
        return len(missing)
