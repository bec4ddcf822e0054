"""Door links (上门核实后的居民关联): the resident link a sign-up decided at the door makes,
written by the server once the decision stands (rule 2 of server/domain/resident_queue.py).

When a grid is written to with a decided sign-up (by the gateway, or by the conflict resolver,
which settles competing decisions: the first received stands), `DoorLinks` reads the grid's
sign-ups and writes the link of each one decided at the door, without conflicting revisions,
whose link is missing. The link's id is fixed by the account and household, so a second writer
(another server process) finds it written; every grid is looked at once after a start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from server.domain import resident_queue
from server.domain.scope import grid_db
from server.store.couch import Conflict, CouchFailure, NotFound, StoreUnavailable, db_path
from server.sync.residents import Residents, link_id, utc_now
from server.sync.supervisor import Lag

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")
PAGE = 500
RETRY_SECONDS = 1.0
START_SWEEP_SECONDS = 30.0


class DoorLinks:
    """Writes the resident link of each sign-up decided at the door (rule 2 of
    server/domain/resident_queue.py), for the grids it is told were written to, and for every
    grid once at start (a decision stored just before a restart). Owned by the app."""

    def __init__(self, residents: Residents, grids: Sequence[str],
                 start_sweep_seconds: float = START_SWEEP_SECONDS) -> None:
        self.residents = residents
        self.at_start = list(grids)
        self.start_sweep_seconds = start_sweep_seconds
        self.dirty: set[str] = set()
        self.settling = 0  # grids being read now
        self.written = 0
        self.wake = asyncio.Event()

    def notice(self, grid: str) -> None:
        """`grid` was written to with a decided sign-up, or its conflicts were settled."""
        self.dirty.add(grid)
        self.wake.set()

    def lag(self) -> Lag:
        return Lag(items=len(self.dirty) + self.settling)

    def done(self) -> bool:
        """Nothing noticed is left to settle (for tests and probes)."""
        return not self.dirty and not self.settling

    async def run(self) -> None:
        # Every grid once, a little after start: a server restarting does not read a city's
        # sign-ups while it is busiest, and a decision written meanwhile is noticed anyway.
        sweep = asyncio.get_running_loop().call_later(
            self.start_sweep_seconds, lambda: [self.notice(g) for g in self.at_start])
        try:
            await self._settle_noticed()
        finally:
            sweep.cancel()

    async def _settle_noticed(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            grids, self.dirty = sorted(self.dirty), set()
            self.settling = len(grids)
            for grid in grids:
                try:
                    await self.settle(grid)
                except (CouchFailure, StoreUnavailable) as exc:
                    log.warning("door links of grid %s: %s", grid, exc)
                    self.dirty.add(grid)
                finally:
                    self.settling -= 1
            if self.dirty:
                await asyncio.sleep(RETRY_SECONDS)
                self.wake.set()

    async def settle(self, grid: str) -> None:
        """Every sign-up of the grid decided at the door, without conflicts, gets its link."""
        couch, db = self.residents.couch, grid_db(grid)
        start = json.dumps("signup:")
        while True:
            try:
                page = await couch.get(db_path(db, "_all_docs"), include_docs="true",
                                       conflicts="true", startkey=start,
                                       endkey=json.dumps("signup:\ufff0"), limit=str(PAGE + 1))
            except NotFound:
                return
            rows = [r for r in page.get("rows", []) if isinstance(r.get("doc"), dict)]
            for row in rows[:PAGE]:
                await self.link(grid, row["doc"])
            if len(rows) <= PAGE:
                return
            start = json.dumps(rows[PAGE]["id"])

    async def link(self, grid: str, signup: Mapping[str, Any]) -> None:
        if signup.get("_conflicts"):
            return  # the resolver settles which decision stands first, then tells us again
        now = utc_now()
        account, household = str(signup.get("account")), str(signup.get("household"))
        link = resident_queue.door_link(signup, link_id(account, household), now)
        if link is None:
            return
        couch, db = self.residents.couch, grid_db(grid)
        with contextlib.suppress(NotFound):
            await couch.get(db_path(db, link["_id"]))
            return
        try:
            written = await self.residents.write(grid, [link])
        except Conflict:
            return
        if written and written[0].get("ok"):
            self.written += 1
            await self.residents.add_grid(account, grid)
            audit.info("%s activated %s of %s at the door (%s)", signup.get("decided_by"),
                       account, household, signup.get("_id"))
