"""Who created each record of a grid (记录创建人索引), kept in the server, so that a pushed
batch is admitted without asking the store who wrote its ids.

The rule is the domain's (server/domain/validation.py, `check_author`): a record's
`created_by` is fixed by its first revision, and nobody takes over another person's record by
pushing a first revision under its id. The gateway used to ask the store before every batch
(`_all_docs` by keys, then the bodies): on the embedded store about 12 ms of its CPU a batch of
100, most of what a push cost the store beside the write itself. Now:

- a grid's index is built once per process from its changes (with their documents), the first
  time the server writes to it; until it is built, a batch is looked up in the store as before;
- after that it rides on the residents' index's reads of the grid's changes
  (server/sync/allowed.py, `ResidentIndex.catch_up`), which read every change of a grid written
  to anyway: no second reader of the same changes;
- before a batch is answered from it, the store is asked only how far the database is
  (`update_seq`, about a tenth of the lookup's cost); if the index is behind, the changes since
  are read then (one read for all the batches waiting), so a record written by another process,
  an import or straight into the store is known before any batch is checked against it;
- the gateway's own writes go in synchronously (`settle`), and the new ids of a batch are
  claimed before it reaches the store (`claim`): of two people pushing a first revision under
  the same new id at once, the second is refused;
- an id it cannot be sure of (a deletion whose record it never saw, a write whose outcome is
  unknown) is asked of the store, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

from server.store.couch import CouchClient, CouchFailure, NotFound, StoreUnavailable, db_path
from server.sync.feeds import seq_number

log = logging.getLogger(__name__)

PAGE = 1000  # changes read at once while building

# (ids' authors, the deleted among them): what `replication.stored_authors` answers
Answer = tuple[dict[str, str | None], frozenset[str]]
StoreLookup = Callable[[CouchClient, str, Sequence[str]], Awaitable[Answer]]
# Bring the residents' index's reading of a grid database up to a seq (ResidentIndex.reach)
Reach = Callable[[str, int], Awaitable[None]]


@dataclasses.dataclass
class GridAuthors:
    """One grid database's authors, as far as `applied` (a seq) and the server's own writes."""

    authors: dict[str, str | None] = dataclasses.field(default_factory=dict)
    deleted: set[str] = dataclasses.field(default_factory=set)
    unsure: set[str] = dataclasses.field(default_factory=set)  # asked of the store
    claims: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)  # id: who, n
    applied: int = -1  # every change up to this seq is in (-1: still being built)
    early: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)  # while building
    early_upto: int = 0  # how far the residents' index read while this was being built

    def take(self, change: Mapping[str, Any]) -> None:
        """One change of the database's feed (with its document), in seq order."""
        doc_id = change.get("id")
        doc = change.get("doc")
        if not isinstance(doc_id, str) or doc_id.startswith("_design/"):
            return
        if change.get("deleted") or not isinstance(doc, Mapping) or doc.get("_deleted"):
            # the author of a deleted record is that of the revision the deletion replaced
            if doc_id in self.authors and doc_id not in self.unsure:
                self.deleted.add(doc_id)
            else:
                self.unsure.add(doc_id)
            return
        author = doc.get("created_by")
        self.authors[doc_id] = author if isinstance(author, str) else None
        self.deleted.discard(doc_id)
        self.unsure.discard(doc_id)


class AuthorIndex:
    """The authors of every grid database this server writes to; see the module docstring."""

    def __init__(self, couch: CouchClient, reach: Reach, store_lookup: StoreLookup) -> None:
        self.couch = couch
        self.reach = reach
        self.store_lookup = store_lookup  # replication.stored_authors
        self.grids: dict[str, GridAuthors] = {}
        self.builds: dict[str, asyncio.Task[None]] = {}
        self.asked_store = 0  # ids looked up in the store (the index could not be sure)

    # -- feeding ---------------------------------------------------------------------------------

    def observe(self, db: str, change: Mapping[str, Any]) -> None:
        """A change of `db` read by the residents' index (in seq order)."""
        grid = self.grids.get(db)
        seq = seq_number(change.get("seq"))
        if grid is None or seq is None:
            return
        if grid.applied < 0:
            grid.early.append(change)
        elif seq > grid.applied:
            grid.take(change)
            grid.applied = seq

    def caught_up(self, db: str, seq: Any) -> None:
        """The residents' index has read `db` up to `seq` (a page's last_seq)."""
        grid = self.grids.get(db)
        number = seq_number(seq)
        if grid is not None and number is not None:
            if grid.applied < 0:
                grid.early_upto = max(grid.early_upto, number)
            else:
                grid.applied = max(grid.applied, number)

    async def close(self) -> None:
        """Stop the builds under way (at shutdown)."""
        for task in self.builds.values():
            task.cancel()
        for task in self.builds.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.builds.clear()

    def built(self, db: str) -> bool:
        grid = self.grids.get(db)
        return grid is not None and grid.applied >= 0

    def start_build(self, db: str) -> None:
        if db not in self.builds or (self.builds[db].done() and not self.built(db)):
            self.builds[db] = asyncio.create_task(self.build(db), name=f"authors {db}")

    async def build(self, db: str) -> None:
        """Read every change of `db` with its document, once. The residents' index is made to
        read the database first, so every change after this read reaches `observe`."""
        try:
            await self.reach(db, 0)
            grid = self.grids.setdefault(db, GridAuthors())
            since, last = "0", 0
            while True:
                page = await self.couch.get(db_path(db, "_changes"), since=since,
                                            limit=str(PAGE), include_docs="true")
                for change in page.get("results", []):
                    grid.take(change)
                since = str(page.get("last_seq", since))
                last = seq_number(page.get("last_seq")) or last
                if len(page.get("results", [])) < PAGE:
                    break
                await asyncio.sleep(0)  # a big grid's build must not hold the loop
            for change in grid.early:
                if (seq_number(change.get("seq")) or 0) > last:
                    grid.take(change)
            grid.early.clear()
            grid.applied = max(last, grid.early_upto)
            log.info("authors of %s: %d records", db, len(grid.authors))
        except (StoreUnavailable, CouchFailure) as exc:
            log.warning("authors of %s not built (%s); the store is asked meanwhile", db, exc)
            self.grids.pop(db, None)
        except BaseException:
            self.grids.pop(db, None)
            raise

    # -- asking ----------------------------------------------------------------------------------

    async def lookup(self, db: str, ids: Sequence[str], user: str) -> Answer:
        """created_by of the stored records among `ids` (None: stored without one), and which
        of them are deleted, as `replication.stored_authors` answers; an id claimed by another
        person's batch under way counts as theirs."""
        wanted = sorted({i for i in ids if not i.startswith("_design/")})
        if not wanted:
            return {}, frozenset()
        grid = self.grids.get(db)
        if grid is None or grid.applied < 0 or not await self.current(db):
            self.start_build(db)
            self.asked_store += len(wanted)
            return await self.store_lookup(self.couch, db, wanted)
        authors: dict[str, str | None] = {}
        unsure = [i for i in wanted if i in grid.unsure]
        for doc_id in wanted:
            if doc_id in grid.authors and doc_id not in grid.unsure:
                authors[doc_id] = grid.authors[doc_id]
        deleted = {i for i in authors if i in grid.deleted}
        if unsure:
            self.asked_store += len(unsure)
            stored, gone = await self.store_lookup(self.couch, db, unsure)
            authors.update(stored)
            deleted |= gone
        for doc_id in wanted:
            claim = grid.claims.get(doc_id)
            if claim is not None and claim[0] != user and doc_id not in authors:
                authors[doc_id] = claim[0]  # another person's batch is writing it now
        return authors, frozenset(deleted)

    async def current(self, db: str) -> bool:
        """Whether the index holds every change the store has made to `db` up to now: asks the
        store its update_seq and, if the index is behind, has its changes read."""
        try:
            info = await self.couch.get(db_path(db))
        except NotFound:
            return False
        wanted = seq_number(info.get("update_seq"))
        grid = self.grids.get(db)
        if wanted is None or grid is None:
            return False
        if grid.applied < wanted:
            await self.reach(db, wanted)
        grid = self.grids.get(db)
        return grid is not None and grid.applied >= wanted

    def now_taken(self, db: str, ids: Sequence[str], user: str) -> dict[str, str | None]:
        """Of the new `ids` a batch is about to write, those another person's write (or claim)
        made theirs since the batch was looked up, with their author."""
        grid = self.grids.get(db)
        if grid is None:
            return {}
        taken: dict[str, str | None] = {}
        for doc_id in ids:
            claim = grid.claims.get(doc_id)
            if claim is not None and claim[0] != user:
                taken[doc_id] = claim[0]
            elif doc_id in grid.authors and doc_id not in grid.deleted:
                taken[doc_id] = grid.authors[doc_id]
        return taken

    @contextlib.contextmanager
    def claim(self, db: str, ids: Sequence[str], user: str) -> Iterator[None]:
        """Hold the new `ids` a batch writes for `user` while it is written (call `now_taken`
        first, with no await in between)."""
        grid = self.grids.get(db)
        if grid is None:
            yield
            return
        for doc_id in ids:
            _, held = grid.claims.get(doc_id, (user, 0))
            grid.claims[doc_id] = (user, held + 1)
        try:
            yield
        finally:
            for doc_id in ids:
                who, held = grid.claims.pop(doc_id, (user, 1))
                if held > 1:
                    grid.claims[doc_id] = (who, held - 1)

    def settle(self, db: str, docs: Sequence[Mapping[str, Any]],
               results: Sequence[Mapping[str, Any]] | None) -> None:
        """The server wrote `docs` (the store answered `results` by id; None: its outcome is
        unknown, the store failed under it): into the index at once."""
        grid = self.grids.get(db)
        if grid is None:
            return
        failed = {str(r.get("id")) for r in results or [] if "error" in r}
        for doc in docs:
            doc_id = str(doc["_id"])
            if results is None:
                grid.unsure.add(doc_id)
            elif doc_id not in failed:
                grid.take({"id": doc_id, "doc": doc, "deleted": doc.get("_deleted") is True})
