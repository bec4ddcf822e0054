"""The conflict resolver (冲突处理). When two phones edit the same record offline, CouchDB keeps
every leaf revision and picks a winner by its own arbitrary rule. This follower, running inside
the server, merges them by the domain's rules (server/domain/merging.py) and keeps a trail.

- It reads each grid database's changes feed (`style=all_docs`) from a checkpoint kept in that
  database (`_local/linli-resolver`, which never replicates), promptly for the grids the gateway
  has just written a replicated batch to that can make a conflict (one touching a stored record,
  holding two revisions of one record, or racing another batch for the same record: a reconnect
  storm of new records wakes nobody), and every `sweep_seconds` for all grids (writes made by
  another server process, or straight to CouchDB). Only records with more than one leaf are
  looked at.
- A conflicted record is resolved with one `_bulk_docs`: the merged revision on the winning
  branch and the losing leaves deleted (their tombstones marked `resolved_by`). A 409 means
  someone moved first: the record is read again on the next pass, never forced.
- Deterministic and idempotent: the merge is a pure function of the revisions, their common
  ancestor and the server's receipts; a second resolver's write on the same branch is refused by
  the store (409), and identical contents are only collapsed, never merged again.
- Every resolution is recorded as a `resolution` document in the grid database (so the worker's
  phone shows it): the revisions involved, who sent each and when the server received it, and
  for each field what was chosen and by which rule. Undecided fields keep a provisional value and
  the resolution stays `open` for a supervisor (`server/web/api.py`).
- A deletion against an edit: the edit wins (CouchDB's own rule for live against deleted
  leaves), and the conflict is recorded.
- A feed or store error restarts the pass with back-off; it never takes the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from server.domain import merging, resolution
from server.domain.resolution import (
    RESOLVER,
    body_of,
    common_ancestor,
    couch_winner,
    deletion_trail,
    trail_id,
    valid_or_provisional,
)
from server.domain.scope import Directory, grid_db, grid_of_db
from server.domain.validation import SchemaRegistry
from server.store.couch import (
    Conflict,
    CouchClient,
    CouchFailure,
    NotFound,
    StoreUnavailable,
    db_path,
)
from server.sync.receipts import ReceiptLog, ReceiptViews, Received, utc_now
from server.sync.supervisor import Lag

log = logging.getLogger(__name__)

CHECKPOINT = "_local/linli-resolver"
PAGE = 200
SWEEP_SECONDS = 30.0
SETTLE_SECONDS = 0.3  # after a write is noticed, so its receipt is flushed first
MAX_BACKOFF = 60.0
RECEIPT_WAIT = 5.0  # the longest a revision without a receipt holds its page back


@dataclasses.dataclass
class ResolverStats:
    resolved: int = 0
    collapsed: int = 0
    opened: int = 0  # resolutions left open for a supervisor
    deletions_recorded: int = 0
    retried: int = 0  # 409: someone moved first
    passes: int = 0


@dataclasses.dataclass
class Plan:
    """One conflicted record of a page: its leaves and what will be written for it."""

    doc_id: str
    leaves: list[dict[str, Any]]
    live: list[dict[str, Any]]
    winner: dict[str, Any]
    revisions: list[merging.Revision]
    receipts: dict[str, tuple[str | None, str | None]]
    ancestor_rev: str | None
    identical: bool
    merged: merging.Merge | None = None
    trail: dict[str, Any] | None = None
    result_rev: str | None = None

    @property
    def doc_type(self) -> str:
        return str(self.winner.get("type", ""))

    @classmethod
    def of(cls, doc_id: str, leaves: list[dict[str, Any]],
           receipts: Mapping[tuple[str, str], tuple[str | None, str | None]]) -> Plan:
        live = [d for d in leaves if not d.get("_deleted")]
        own = {str(d["_rev"]): receipts.get((doc_id, str(d["_rev"])), (None, None))
               for d in leaves}
        revisions = [merging.Revision(rev=str(d["_rev"]), body=body_of(d),
                                      by=own[str(d["_rev"])][0],
                                      received_at=own[str(d["_rev"])][1]) for d in live]
        return cls(doc_id=doc_id, leaves=leaves, live=live, winner=dict(couch_winner(live)),
                   revisions=revisions, receipts=own, ancestor_rev=common_ancestor(live),
                   identical=all(r.body == revisions[0].body for r in revisions))


class Resolver:
    def __init__(self, couch: CouchClient, registry: SchemaRegistry, directory: Directory,
                 receipts: ReceiptLog | None = None, sweep_seconds: float = SWEEP_SECONDS,
                 sweep_at_start: bool = True) -> None:
        self.couch, self.registry, self.directory = couch, registry, directory
        self.receipts = receipts
        self.sweep_seconds = sweep_seconds
        self.sweep_at_start = sweep_at_start  # else the first sweep is sweep_seconds later
        # Told of every grid the resolver wrote to, so the figures (open conflicts, merged
        # values) follow its writes as they follow the gateway's.
        self.on_written: Callable[[str], None] | None = None
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()
        self.stats = ResolverStats()
        self.idle = asyncio.Event()  # set whenever a pass has ended with nothing noticed since
        self.receipt_views = ReceiptViews(couch)
        self.first_seen: dict[tuple[str, str], float] = {}  # revisions still without receipt

    def notice(self, grid: str) -> None:
        """The gateway wrote to `grid`: look at it soon."""
        self.dirty.add(grid)
        self.idle.clear()
        self.wake.set()

    def lag(self) -> Lag:
        """The grids written to and not yet looked at."""
        return Lag(items=len(self.dirty))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + (0.0 if self.sweep_at_start else self.sweep_seconds)
        backoff = 1.0
        while True:
            if loop.time() >= next_sweep:
                grids = set(self.directory.grids)
                next_sweep = loop.time() + self.sweep_seconds
            else:
                grids = set(self.dirty)
            self.dirty -= grids
            try:
                failed = 0
                for grid in sorted(grids):
                    try:
                        await self.process_grid(grid)
                    except (CouchFailure, Conflict) as exc:  # this grid only: go on
                        failed += 1
                        self.dirty.add(grid)
                        log.warning("conflict resolver: grid %s: %s", grid, exc)
                backoff = 1.0 if not failed else backoff
            except asyncio.CancelledError:
                raise
            except (CouchFailure, StoreUnavailable) as exc:
                log.warning("conflict resolver: %s; retrying in %.0f s", exc, backoff)
                self.dirty |= grids
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            except Exception:
                log.exception("conflict resolver failed; retrying in %.0f s", backoff)
                self.dirty |= grids
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self.stats.passes += 1
            if not self.dirty:
                self.idle.set()
            self.wake.clear()
            if not self.dirty:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(),
                                           max(0.0, next_sweep - loop.time()))
            await asyncio.sleep(SETTLE_SECONDS)

    # -- one grid -------------------------------------------------------------------------------

    async def process_grid(self, grid: str) -> None:
        db = grid_db(grid)
        checkpoint = await self.read_checkpoint(db)
        since = checkpoint.get("since", "0")
        if self.receipts is not None:
            await self.receipts.flush()
        while True:
            try:
                page = await self.couch.get(db_path(db, "_changes"), since=str(since),
                                            limit=str(PAGE), style="all_docs")
            except NotFound:
                return  # the grid's database is gone
            items = [(str(row["id"]), revs) for row in page["results"]
                     if len(revs := [c["rev"] for c in row.get("changes") or ()]) > 1
                     and not str(row["id"]).startswith("_design/")]
            if items and not await self.resolve_many(grid, items):
                # A revision whose receipt is not written yet: this page again, shortly.
                self.dirty.add(grid)
                self.wake.set()
                return
            # A sweep of an unchanged grid writes nothing (it was a write per grid per sweep).
            if page["last_seq"] != since:
                since = page["last_seq"]
                checkpoint = await self.save_checkpoint(db, checkpoint, since)
            if len(page["results"]) < PAGE:
                return

    async def read_checkpoint(self, db: str) -> dict[str, Any]:
        try:
            return dict(await self.couch.get(db_path(db, CHECKPOINT)))
        except NotFound:
            return {"_id": CHECKPOINT}

    async def save_checkpoint(self, db: str, checkpoint: dict[str, Any],
                              since: Any) -> dict[str, Any]:
        body = {**checkpoint, "since": since, "saved_at": utc_now()}
        try:
            result = await self.couch.put(db_path(db, CHECKPOINT), body)
            return {**body, "_rev": result["rev"]}
        except Conflict:  # another resolver saved one: it has been this far
            return await self.read_checkpoint(db)

    # -- one record -----------------------------------------------------------------------------

    async def leaf_revs(self, db: str, doc_id: str) -> list[str]:
        """The leaf revisions of a record, deleted ones included, from the changes feed
        (`style=all_docs` lists them; PouchDB Server ignores `deleted_conflicts`)."""
        page = await self.couch.post(db_path(db, "_changes"), {"doc_ids": [doc_id]},
                                     filter="_doc_ids", style="all_docs")
        return [c["rev"] for row in page.get("results", []) for c in row.get("changes", [])]

    async def bulk_get(self, db: str,
                       wanted: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Revisions by (id, rev), with their histories, in one `_bulk_get` (PouchDB Server
        answers `open_revs` only in multipart). Missing ones are left out."""
        if not wanted:
            return {}
        answer = await self.couch.post(db_path(db, "_bulk_get"),
                                       {"docs": [{"id": i, "rev": r} for i, r in wanted]},
                                       revs="true")
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for result in answer.get("results", []):
            for item in result.get("docs", []):
                if "ok" in item:
                    found[(str(item["ok"]["_id"]), str(item["ok"]["_rev"]))] = item["ok"]
        return found

    async def leaves(self, db: str, doc_id: str,
                     revs: list[str] | None = None) -> list[dict[str, Any]]:
        """Every leaf revision of a record, deleted ones included, with its history."""
        revs = revs if revs is not None else await self.leaf_revs(db, doc_id)
        found = await self.bulk_get(db, [(doc_id, r) for r in revs])
        return [found[(doc_id, r)] for r in revs if (doc_id, r) in found]

    async def receipts_for(self, db: str, wanted: list[tuple[str, str]]
                           ) -> dict[tuple[str, str], Received]:
        """Who sent each revision and when the server first received it, by (id, rev)."""
        return await self.receipt_views.by_rev(db, wanted)

    async def resolve(self, grid: str, doc_id: str, revs: list[str] | None = None) -> bool:
        revs = revs if revs is not None else await self.leaf_revs(grid_db(grid), doc_id)
        return await self.resolve_many(grid, [(doc_id, revs)])

    async def resolve_many(self, grid: str, items: list[tuple[str, list[str]]]) -> bool:
        """Resolve a page of conflicted records: their revisions, receipts and ancestors read
        in one request each; every record's merged revision, the tombstones of its losing
        leaves and its trail in one `_bulk_docs`. False, with nothing done, while a live
        revision has no receipt yet (the gateway writes receipts just after the store
        acknowledges): its sender and receipt time decide, so the page waits a moment. A
        revision that never gets one (written straight to the store) waits RECEIPT_WAIT."""
        db = grid_db(grid)
        wanted = [(doc_id, rev) for doc_id, revs in items for rev in revs]
        docs, receipts = await asyncio.gather(self.bulk_get(db, wanted),
                                              self.receipts_for(db, wanted))
        now = asyncio.get_running_loop().time()
        contested = {doc_id for doc_id, revs in items
                     if sum(1 for r in revs if (doc_id, r) in docs
                            and not docs[(doc_id, r)].get("_deleted")) > 1}
        unreceipted = [key for key, doc in docs.items() if key[0] in contested
                       and not doc.get("_deleted") and key not in receipts]
        for key in receipts:
            self.first_seen.pop(key, None)
        if len(self.first_seen) > 100_000:  # never more than the revisions of a few pages
            self.first_seen.clear()
        waiting = [now - self.first_seen.setdefault(key, now) < RECEIPT_WAIT
                   for key in unreceipted]  # every key registered, so they wait together
        if any(waiting):
            return False
        for key in unreceipted:
            self.first_seen.pop(key, None)
        plans: list[Plan] = []
        lost_deletions: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []
        for doc_id, revs in items:
            leaves = [docs[(doc_id, r)] for r in revs if (doc_id, r) in docs]
            live = [d for d in leaves if not d.get("_deleted")]
            deleted = [d for d in leaves if d.get("_deleted")]
            if len(live) == 1 and any(d.get("resolved_by") != RESOLVER for d in deleted):
                lost_deletions.append((doc_id, live[0], leaves))
            elif len(live) >= 2:
                plans.append(Plan.of(doc_id, leaves, receipts))
        ancestors = await self.bulk_get(db, [(p.doc_id, p.ancestor_rev) for p in plans
                                             if not p.identical and p.ancestor_rev])
        # First the merged revisions, one per record; then, only for the records whose merge
        # was accepted, their losing leaves' tombstones and their trails. Never two writes of
        # one id in a request: PouchDB Server 4.2.0 stores a refused same-id write as an empty
        # revision, which can win and then crash the store on the next changes feed.
        merges: list[dict[str, Any]] = []
        for plan in plans:
            if plan.identical:
                continue
            if plan.ancestor_rev is None:
                base: dict[str, Any] | None = {}  # created apart on each side
            else:  # None: compacted away; differing fields wait for a supervisor
                stored = ancestors.get((plan.doc_id, plan.ancestor_rev))
                base = None if stored is None or stored.get("_deleted") else body_of(stored)
            plan.merged = valid_or_provisional(
                grid, merging.merge(plan.doc_type, base, plan.revisions), plan.revisions,
                self.registry)
            trail = resolution.trail(grid, plan.doc_id, plan.doc_type, plan.leaves,
                                     plan.receipts, plan.ancestor_rev, None, plan.merged,
                                     plan.winner, at=utc_now())
            trail["_id"] = trail_id(plan.doc_id, [str(d["_rev"]) for d in plan.leaves])
            if not self.trail_is_valid(trail):
                continue  # never a merge without its trail; logged, tried again next pass
            plan.trail = trail
            new_body = {**plan.merged.body, "_id": plan.doc_id, "_rev": plan.winner["_rev"]}
            if "_attachments" in plan.winner:
                new_body["_attachments"] = plan.winner["_attachments"]
            merges.append(new_body)
        merged = await self.write_all(db, merges)
        accepted: list[Plan] = []
        for plan in plans:
            result = merged.get(plan.doc_id)
            if plan.identical or (result is not None and result.get("ok")):
                accepted.append(plan)
                if result is not None:
                    plan.result_rev = str(result["rev"])
                    if self.receipts is not None:  # a revision the server received too
                        self.receipts.record(RESOLVER, db, [[plan.doc_id, plan.result_rev]])
            elif result is not None:
                self.stats.retried += 1  # someone moved first: read again on the next pass
        tombstones = [[{"_id": p.doc_id, "_rev": d["_rev"], "_deleted": True,
                        "resolved_by": RESOLVER}
                       for d in p.live if d["_rev"] != p.winner["_rev"]] for p in accepted]
        trails = [p.trail for p in accepted if p.trail is not None]
        for doc_id, live, leaves in lost_deletions:
            deletion = deletion_trail(grid, doc_id, live, leaves, receipts, at=utc_now())
            if deletion is not None:
                self.stats.deletions_recorded += 1
            if deletion is not None and self.trail_is_valid(deletion):
                trails.append(deletion)  # a 409: recorded before
        for round_ in range(max((len(t) for t in tombstones), default=0)):
            batch = [t[round_] for t in tombstones if len(t) > round_]
            if round_ == 0:
                batch += trails
            await self.write_all(db, batch)
        if not tombstones and trails:
            await self.write_all(db, trails)
        for plan in accepted:
            if plan.identical:
                self.stats.collapsed += 1
            else:
                self.stats.resolved += 1
                if plan.merged is not None and plan.merged.undecided:
                    self.stats.opened += 1
        return True

    async def write_all(self, db: str, writes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """`_bulk_docs` of writes with distinct ids (see `resolve_many`), results by id: the
        embedded store does not always answer in input order."""
        if not writes:
            return {}
        results = await self.couch.post(db_path(db, "_bulk_docs"), {"docs": writes})
        grid = grid_of_db(db)
        if self.on_written is not None and grid is not None:
            self.on_written(grid)
        return {str(r.get("id")): r for r in results}

    def trail_is_valid(self, trail: Mapping[str, Any]) -> bool:
        problems = self.registry.problems(trail)
        if problems:  # a bug of ours: the record's merge stands; say so loudly
            log.error("resolution trail %s is invalid: %s", trail.get("_id"), problems)
        return not problems

    async def until_idle(self, timeout: float = 30.0) -> None:
        """For tests and benchmarks: wait until a pass has ended with nothing left to look at."""
        await asyncio.wait_for(self.idle.wait(), timeout)
