"""Aggregates (统计): what supervisors count, at every level of the hierarchy (grid → community
(社区) → street (街道) → district (区) → city).

Each grid's figures are folded record by record as the server reads its changes feed, never
computed by the store's views (server/sync/figure_fold.py keeps each record's part and the
checkpoints in an embedded SQLite file; the rules are server/domain/figures.py's). A grid is read
when the gateway wrote to it (`notice`; at most every `refresh_seconds` in the background, one
reader of a grid at a time), when a dashboard asks for it while noticed, and at start from its
checkpoint (`warm_up`); each read asks the store for the database's update sequence first and
reads only the changes since the checkpoint. The receipts database is read the same way (the
verdicts' receipt times and the records' first receipts, for the decision received last and
the time to review). A dashboard query then only adds the grids' figures up the hierarchy.

Figures are flat counters with dotted names (`households`, `visits.latest.completed`,
`persons.age.15-59`...), so rolling up is adding.

Time to review (from a record's first receipt by the server to its first verdict) is a median,
and medians do not add up. So each grid keeps a histogram with fixed buckets (`review.hours.le_4`
counts the records reviewed within 4 hours and more than 2, `review.hours.over_1440` those after
60 days), the histograms roll up by addition like every other counter, and an area's median is
the bucket that holds it: bounded memory and exact rolling up, at the buckets' resolution.

`rebuild` folds every grid again from nothing into a new file while the figures of the last
one keep answering, then takes the new one in its place; an admin starts one in the running
server (`start_rebuild`, POST /api/aggregates/rebuild), and its progress is the aggregates'
entry of GET /api/health (`rebuild`: grids and changes folded so far, then its seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from server.domain.figures import (
    REVIEW_HOURS,
    SMALL,
    Area,
    area_entry,
    areas,
    parents,
    places,
)
from server.domain.scope import RECEIPTS_DB, Directory, User, grid_db, grid_of_db
from server.domain.suppression import Group, components, equation_sets, withhold
from server.store.couch import (
    CouchClient,
    CouchFailure,
    NotFound,
    StoreUnavailable,
    db_path,
)
from server.sync.figure_fold import FoldStore, seq_of, this_year
from server.sync.supervisor import Lag

log = logging.getLogger(__name__)

WITHHELD_KEPT = 1024  # groups of grids whose withheld figures are kept between queries
PAGE = 1000  # changes read at once
REFRESH_SECONDS = 2.0
TICK_SECONDS = 0.25
RECEIPTS_SECONDS = 2.0
# A grid the gateway wrote to is folded in the background no sooner than this after: the
# residents' index reads its changes at once, and the fold takes them from there.
RIDE_SECONDS = 0.5  # the receipts database read at least this often in the background
# A rebuild reads one grid at a time and works this share of its time: after each page it
# pauses as long as the page took (its reading and folding, under whatever load), so the sync
# beside it keeps the machine (docs/benchmarks.md). At full speed a rebuild of the full city
# would take about 1.5 min of a quiet machine's two cores.
REBUILD_SHARE = 0.5
FILE = "figures.sqlite3"


async def dropped(future: asyncio.Future[Any]) -> None:
    """A page asked for ahead and not wanted: cancelled, its failure (if any) not raised."""
    if not future.done():
        future.cancel()
        await asyncio.wait([future])
    if not future.cancelled():
        future.exception()  # retrieved, so never logged as unretrieved


class Aggregates:
    def __init__(self, couch: CouchClient, directory: Directory, census_campaign: str,
                 refresh_seconds: float = REFRESH_SECONDS, path: Path | None = None) -> None:
        self.couch, self.directory = couch, directory
        self.census_campaign = census_campaign
        self.refresh_seconds = refresh_seconds
        self.path = path
        self.fold = FoldStore(path, census_campaign)
        self.grids: dict[str, tuple[Any, Counter[str]]] = {}  # code -> (checkpoint, figures)
        self.loaded = False
        self.dirty: set[str] = set()
        self.noticed: dict[str, float] = {}  # monotonic time each dirty grid was first noticed
        self.locks: dict[str, asyncio.Lock] = {}  # one reader of a grid's changes at a time
        self.receipts_lock = asyncio.Lock()
        self.started: dict[str, float] = {}  # loop time the grid's last refresh began
        self.changes_read = 0  # pages of changes read (tests and benchmarks)
        self.receipts_read = -math.inf  # loop time the receipts were last read
        self.rebuilding = False
        self.rebuild_progress: dict[str, Any] = {}  # the running or last rebuild (health)
        self._rebuild_task: asyncio.Task[None] | None = None
        # The pages of a grid's changes the residents' index read (server/sync/allowed.py), each
        # with the seq it was read from, waiting to be folded: the store is not asked twice for
        # the same changes. `since_of` tells a page's start (the index's own record of it).
        self.since_of: Callable[[str], Any] | None = None
        self.reading: dict[str, tuple[int, list[Mapping[str, Any]]]] = {}
        self.pages: dict[str, list[tuple[int, list[Mapping[str, Any]], int]]] = {}
        self.riding = 0  # changes taken from the index's reads (tests and benchmarks)
        # This process's pending receipts, written before the receipts are read (the app wires
        # it): a verdict's receipt decides whether it is the latest and when it was given.
        self.flush_receipts: Callable[[], Awaitable[None]] | None = None
        self._sets: tuple[Any, list[frozenset[str]]] | None = None
        # Whether other server processes write to the store too (docs/deployment.md): then a
        # grid's figures not checked against the store for `refresh_seconds` are checked at a
        # query, one update-sequence read each, since this process is not told of their writes.
        self.shared: Callable[[], bool] = lambda: False
        self.checked: dict[str, float] = {}  # monotonic time each grid was last checked
        self._withheld: dict[Any, dict[str, frozenset[str]]] = {}

    def notice(self, grid: str) -> None:
        self.dirty.add(grid)
        self.noticed.setdefault(grid, time.monotonic())

    # -- riding on the residents' index's reads (its GridFollower) -------------------------------

    def observe(self, db: str, change: Mapping[str, Any]) -> None:
        """A change of `db` the residents' index read (in seq order, with its document)."""
        if self.since_of is None or grid_of_db(db) is None:
            return
        if db not in self.reading:
            start = seq_of(self.since_of(db))
            if start is None:
                return
            self.reading[db] = (start, [])
        self.reading[db][1].append(change)

    def caught_up(self, db: str, seq: Any) -> None:
        """The index read `db` up to `seq`: the page is kept for the next fold of the grid."""
        start, changes = self.reading.pop(db, (None, []))
        last, code = seq_of(seq), grid_of_db(db)
        if start is None or last is None or code is None or not changes:
            return
        pages = self.pages.setdefault(db, [])
        pages.append((start, changes, last))
        if sum(len(page[1]) for page in pages) > PAGE * 10:  # not folded for long: read again
            del self.pages[db]
            return
        self.notice(code)

    async def fold_pages(self, db: str) -> tuple[int, Counter[str]] | None:
        """Fold the pages the index read of `db`, those that start where the figures are."""
        pages = self.pages.pop(db, [])
        done = None
        year = this_year()
        for start, changes, last in pages:
            before = done[0] if done is not None else self.grids.get(
                grid_of_db(db) or "", (0, None))[0]
            folded = await asyncio.to_thread(self.fold.fold, db, start, changes, last, year)
            if folded is not None:
                self.riding += sum(1 for c in changes if (seq_of(c.get("seq")) or 0) > before)
                done = folded
        return done

    def lag(self) -> Lag:
        """How long the oldest write not yet counted has waited, and how many grids wait."""
        waiting = [self.noticed[code] for code in self.dirty if code in self.noticed]
        return Lag(seconds=time.monotonic() - min(waiting) if waiting else None,
                   items=len(self.dirty),
                   detail={"rebuild": dict(self.rebuild_progress)} if self.rebuild_progress
                   else None)

    async def load(self) -> None:
        """The figures of the last checkpoints, from the file, once."""
        if self.loaded:
            return
        kept = await asyncio.to_thread(self.fold.figures, this_year())
        for db, (applied, figures) in kept.items():
            code = grid_of_db(db)
            if code is not None and code not in self.grids:
                self.grids[code] = (applied, figures)
        self.loaded = True

    async def grid_figures(self, code: str) -> Counter[str]:
        """Bring one grid's figures up to date, one reader of it at a time; a caller that
        waited for another's read and finds the grid no longer noticed still checks its
        update sequence, which is one cheap request."""
        lock = self.locks.setdefault(code, asyncio.Lock())
        async with lock:
            self.dirty.discard(code)
            noticed = self.noticed.pop(code, None)
            self.started[code] = asyncio.get_running_loop().time()
            self.checked[code] = time.monotonic()
            try:
                return await self._grid_figures(code)
            except BaseException:
                self.dirty.add(code)
                self.noticed[code] = min(self.noticed.get(code, math.inf),
                                         noticed or time.monotonic())
                raise

    async def _grid_figures(self, code: str) -> Counter[str]:
        await self.load()
        db = grid_db(code)
        try:
            info = await self.couch.get(db_path(db))
        except NotFound:
            return Counter()
        now = seq_of(info.get("update_seq"))
        if code in self.grids and db in self.pages:
            folded = await self.fold_pages(db)
            if folded is not None:
                self.grids[code] = folded
        applied, figures = self.grids.get(code, (0, Counter()))
        if now is not None and now == applied and code in self.grids:
            return figures
        if now is not None and now < applied:  # the database was made again
            await asyncio.to_thread(self.fold.forget, db)
            self.grids.pop(code, None)
        applied, figures = await self.read(self.fold, db)
        self.grids[code] = (applied, figures)
        return figures

    async def page(self, db: str, since: int) -> dict[str, Any]:
        """A page of `db`'s changes with their documents, from `since`."""
        found = await self.couch.get(db_path(db, "_changes"), since=str(since),
                                     limit=str(PAGE), include_docs="true")
        self.changes_read += 1
        return found

    async def read(self, fold: FoldStore, db: str, counted: Callable[[int], None] | None = None,
                   share: float | None = None) -> tuple[int, Counter[str]]:
        """Fold `db`'s changes since `fold`'s checkpoint, a page at a time; the next page is
        asked of the store while this one is folded (in a worker thread). `counted` is told
        how many changes each page held. With `share`, work only that share of the time:
        each page read and folded, then a pause, nothing asked ahead."""
        applied = await asyncio.to_thread(fold.applied, db)
        year = this_year()
        loop = asyncio.get_running_loop()
        coming: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(self.page(db, applied))
        try:
            while True:
                began = loop.time()
                page = await coming
                results = page.get("results") or []
                last = seq_of(page.get("last_seq")) or applied
                full = len(results) >= PAGE
                if full and share is None:
                    coming = asyncio.ensure_future(self.page(db, last))
                done = await asyncio.to_thread(fold.fold, db, applied, results, last, year)
                if counted is not None:
                    counted(len(results))
                if done is None:  # another process moved the checkpoint on: from there
                    await dropped(coming)
                    applied = await asyncio.to_thread(fold.applied, db)
                    coming = asyncio.ensure_future(self.page(db, applied))
                    continue
                applied, figures = done
                if not full:
                    return applied, figures
                if share is not None:
                    await asyncio.sleep((loop.time() - began) * (1 - share) / share)
                    coming = asyncio.ensure_future(self.page(db, applied))
        finally:
            await dropped(coming)

    async def read_receipts(self, fold: FoldStore | None = None, flush: bool = True,
                            share: float | None = None) -> None:
        """Fold the receipts written since the last read (this process's pending ones
        written first, unless `flush` is off: the background's reads leave them to their
        writer's own pace). Into `fold`, a rebuild's new file, without the live figures'
        lock (only the rebuild writes to it), working `share` of the time as `read` does."""
        if flush and self.flush_receipts is not None:
            with contextlib.suppress(CouchFailure, StoreUnavailable):
                await self.flush_receipts()
        live = fold is None
        async with self.receipts_lock if live else contextlib.nullcontext():
            await self.load()
            fold = fold or self.fold
            loop = asyncio.get_running_loop()
            if live:
                self.receipts_read = loop.time()
            applied = await asyncio.to_thread(fold.receipts_applied)
            year = this_year()
            while True:
                began = loop.time()
                try:
                    page = await self.couch.get(db_path(RECEIPTS_DB, "_changes"),
                                                since=str(applied), limit=str(PAGE),
                                                include_docs="true")
                except NotFound:
                    return
                results = page.get("results") or []
                last = seq_of(page.get("last_seq")) or applied
                changed = await asyncio.to_thread(fold.fold_receipts, applied, results, last,
                                                  year)
                if changed is None:
                    applied = await asyncio.to_thread(fold.receipts_applied)
                    continue
                applied = max(applied, last)
                for db, (grid_applied, figures) in changed.items():
                    code = grid_of_db(db)
                    if live and code is not None and code in self.grids:
                        self.grids[code] = (grid_applied, figures)
                if len(results) < PAGE:
                    return
                if share is not None:
                    await asyncio.sleep((loop.time() - began) * (1 - share) / share)

    async def refresh(self, codes: Iterable[str] | None = None) -> None:
        """Bring the figures of `codes` (default: every grid) up to date."""
        wanted = sorted(self.directory.grids if codes is None else codes)
        await self.read_receipts()
        semaphore = asyncio.Semaphore(4)

        async def one(code: str) -> None:
            async with semaphore:
                await self.grid_figures(code)

        await asyncio.gather(*(one(code) for code in wanted))
        await self.read_receipts()  # receipts of records read just now

    async def refresh_dirty(self, codes: Iterable[str] | None = None) -> None:
        """Bring the noticed grids among `codes` (default: all noticed) up to date."""
        wanted = set(self.dirty) if codes is None else self.dirty & set(codes)
        if wanted:
            await self.refresh(wanted)

    async def warm_up(self) -> None:
        """Read every grid from its checkpoint once at start (from nothing, without a file: on
        the embedded store about a millisecond of its CPU per 100 records' changes)."""
        try:
            await self.refresh()
        except (CouchFailure, StoreUnavailable) as exc:
            log.warning("aggregates not warmed up: %s", exc)

    def start_rebuild(self) -> bool:
        """Start a rebuild in the background (an admin asked for it); False, with nothing
        done, while one runs."""
        if self.rebuilding:
            return False
        self.rebuilding = True
        self.rebuild_progress = self._progress()
        self._rebuild_task = asyncio.get_running_loop().create_task(
            self._rebuild_logged(self.rebuild_progress))
        return True

    def _progress(self) -> dict[str, Any]:
        return {"running": True, "started_at": datetime.datetime.now(datetime.UTC).isoformat(
                    timespec="seconds"),
                "grids": len(self.directory.grids), "grids_done": 0, "changes": 0}

    async def _rebuild_logged(self, progress: dict[str, Any]) -> None:
        try:
            await self.rebuild(progress)
        except (CouchFailure, StoreUnavailable) as exc:
            log.warning("figures not rebuilt: %s", exc)
        except Exception:
            log.exception("figures not rebuilt")

    async def stop_rebuild(self) -> None:
        """A rebuild still running given up (the server stops): the last figures stay."""
        task, self._rebuild_task = self._rebuild_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def rebuild(self, progress: dict[str, Any] | None = None) -> None:
        """Fold every grid and the receipts again from nothing into a new file, while the
        figures kept so far keep answering; then the new file takes the old one's place, each
        grid read up to date under its lock first, so no answer mixes the two. `progress` is
        kept up to date as it goes (GET /api/health shows it)."""
        self.rebuilding = True
        began = time.monotonic()
        progress = self._progress() if progress is None else progress
        self.rebuild_progress = progress

        def counted(changes: int) -> None:
            progress["changes"] += changes

        fresh_path = None if self.path is None else self.path.with_name(self.path.name + ".new")
        if fresh_path is not None:
            for leftover in (fresh_path, Path(f"{fresh_path}-wal"), Path(f"{fresh_path}-shm")):
                leftover.unlink(missing_ok=True)
        fresh = FoldStore(fresh_path, self.census_campaign)
        try:
            codes = sorted(self.directory.grids)
            progress["grids"] = len(codes)
            await self.read_receipts(fresh, share=REBUILD_SHARE)
            for code in codes:
                with contextlib.suppress(NotFound):
                    await self.read(fresh, grid_db(code), counted, REBUILD_SHARE)
                progress["grids_done"] += 1
            await self.read_receipts(fresh, share=REBUILD_SHARE)
            locks = [self.locks.setdefault(code, asyncio.Lock()) for code in codes]
            async with contextlib.AsyncExitStack() as held:
                await held.enter_async_context(self.receipts_lock)
                for lock in locks:
                    await held.enter_async_context(lock)
                figures = {}
                for code in codes:
                    with contextlib.suppress(NotFound):
                        figures[code] = await self.read(fresh, grid_db(code), counted)
                old = self.fold
                self.fold, self.grids = fresh, figures
                await asyncio.to_thread(old.close)
                if self.path is not None and fresh_path is not None:
                    for suffix in ("-wal", "-shm"):
                        Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                    os.replace(fresh_path, self.path)
                    for suffix in ("-wal", "-shm"):
                        if Path(f"{fresh_path}{suffix}").exists():
                            os.replace(f"{fresh_path}{suffix}", f"{self.path}{suffix}")
            await self.read_receipts()
        except BaseException as exc:
            progress["failed"] = type(exc).__name__  # never its message (GET /api/health)
            if fresh is not self.fold:
                await asyncio.to_thread(fresh.close)
            raise
        finally:
            progress.update(running=False, seconds=round(time.monotonic() - began, 1))
            self.rebuilding = False

    async def run(self) -> None:
        """Keep the figures of the grids written to fresh, so a dashboard query only adds
        numbers up: a grid written to all the time is read once every refresh_seconds, not
        once a batch; the receipts every RECEIPTS_SECONDS when nothing was noticed."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = loop.time()
            waited = time.monotonic() - RIDE_SECONDS
            due = [code for code in self.dirty
                   if now - self.started.get(code, -math.inf) >= self.refresh_seconds
                   and self.noticed.get(code, -math.inf) <= waited]
            try:
                if due:
                    await self.refresh_dirty(due)
                elif now - self.receipts_read >= RECEIPTS_SECONDS:
                    await self.read_receipts(flush=False)
            except (CouchFailure, StoreUnavailable) as exc:
                log.warning("aggregates not refreshed: %s", exc)

    def total(self, codes: Iterable[str]) -> Counter[str]:
        out: Counter[str] = Counter()
        for code in codes:
            cached = self.grids.get(code)
            if cached is not None:
                out.update(cached[1])
        return out

    def equation_sets(self) -> list[frozenset[str]]:
        """The areas whose totals are shown (domain/suppression.py), kept while the directory's
        grids stay where they are."""
        grid_places = places(self.directory)
        key = tuple(sorted(grid_places.items()))
        if self._sets is None or self._sets[0] != key:
            self._sets = (key, equation_sets(grid_places))
        return self._sets[1]

    def protection_groups(self, user: User, codes: Iterable[str]) -> list[Group]:
        """The groups of grids outside `user`'s scope (domain/suppression.py) holding `codes`."""
        wanted = {c for c in codes if not self.directory.reaches(user, c)}
        if not wanted:
            return []
        unknown = [c for c in self.directory.grids if not self.directory.reaches(user, c)]
        return [(group, sets) for group, sets in components(unknown, self.equation_sets())
                if group & wanted]

    def withheld(self, groups: list[Group]) -> dict[str, frozenset[str]]:
        """The figures withheld of each grid of `groups`, kept while their figures stay."""
        out: dict[str, frozenset[str]] = {}
        for group, sets in groups:
            key = (group, tuple((g, str(self.grids.get(g, (None,))[0])) for g in sorted(group)))
            found = self._withheld.get(key)
            if found is None:
                found = withhold({g: self.grids.get(g, (None, Counter()))[1] for g in group},
                                 sets, SMALL)
                if len(self._withheld) >= WITHHELD_KEPT:
                    self._withheld.pop(next(iter(self._withheld)))
                self._withheld[key] = found
            out.update(found)
        return out

    async def report(self, user: User, level: str, code: str) -> dict[str, Any]:
        area, children = areas(self.directory, level, code)
        shown_grids = [a.code for a in (area, *children) if a.level == "grid"]
        groups = self.protection_groups(user, shown_grids)
        needed = sorted({*area.grids, *(g for group, _ in groups for g in group)})
        await self.load()
        await self.refresh_dirty(needed)
        old = time.monotonic() - self.refresh_seconds
        shared = self.shared()
        # a grid the background is refreshing is no longer noticed but may not be counted yet:
        # wait for that refresh (then one update-sequence read)
        wanted = [c for c in needed if c not in self.grids
                  or (c in self.locks and self.locks[c].locked())
                  or (shared and self.checked.get(c, -math.inf) < old)]
        if wanted:
            await self.refresh(wanted)
        withheld = self.withheld(groups)

        def shown(a: Area) -> dict[str, Any]:
            outside = a.level == "grid" and not self.directory.reaches(user, a.code)
            return area_entry(a, self.total(a.grids), self.directory.area_name(a.level, a.code),
                              withheld.get(a.code, frozenset()) if outside else None)

        return {**shown(area), "parents": parents(self.directory, area),
                "children": [shown(c) for c in children], "review_hours": list(REVIEW_HOURS)}
