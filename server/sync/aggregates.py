"""Aggregates (统计): what supervisors count, at every level of the hierarchy (grid → community
(社区) → street (街道) → district (区) → city).

Each grid's figures come from the CouchDB views in its own database (store/designs/linli.json),
which the store keeps up to date incrementally; a query never scans documents. The server keeps
each grid's figures with the database's update sequence they were computed at, recomputes a grid
only when its sequence moved (the gateway's writes mark it; `refresh` checks them all), and then
reads again only the views of the record types written since (the ids in the changes feed name
them), and rolls the figures up the hierarchy by addition. A grid written to all the time is
refreshed in the background at most every `refresh_seconds`, one refresh of a grid at a time: each
read makes the embedded store run the view's map function over every new document.

Figures are flat counters with dotted names (`households`, `visits.latest.completed`,
`persons.age.15-59`...), so rolling up is adding.

Time to review (from a record's first receipt by the server to its first verdict) is a median,
and medians do not add up. So each grid keeps a histogram with fixed buckets (`review.hours.le_4`
counts the records reviewed within 4 hours and more than 2, `review.hours.over_1440` those after
60 days), the histograms roll up by addition like every other counter, and an area's median is
the bucket that holds it: bounded memory and exact rolling up, at the buckets' resolution. The
receipt times come from a view of `linli-receipts` (reduced to each record's first receipt),
queried for the grid's reviewed records only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from server.domain.figures import (
    GROUPED,
    REVIEW_HOURS,
    SMALL,
    VIEW_TYPE,
    VIEWS,
    Area,
    area_entry,
    areas,
    changed_types,
    first_verdicts,
    parents,
    places,
    verdict_row,
    view_figures,
)
from server.domain.scope import Directory, User, grid_db
from server.domain.suppression import Group, components, equation_sets, withhold
from server.store.couch import (
    CouchClient,
    CouchFailure,
    NotFound,
    StoreUnavailable,
    db_path,
)
from server.sync import ordering
from server.sync.ordering import ReceiptLookup, Verdict, seq_number
from server.sync.receipts import FIRST_RECEIVED, ReceiptViews
from server.sync.supervisor import Lag

log = logging.getLogger(__name__)

DESIGN = "_design/linli"
WITHHELD_KEPT = 1024  # groups of grids whose withheld figures are kept between queries
CHANGES_LIMIT = 5000  # changes read to find the types written; more: every view is read
REFRESH_SECONDS = 2.0
TICK_SECONDS = 0.25


@dataclasses.dataclass
class Cached:
    """A grid's figures, each view's part, and what they were computed at."""

    seq: Any
    year: int
    parts: dict[str, Counter[str]]
    figures: Counter[str]


class Aggregates:
    def __init__(self, couch: CouchClient, directory: Directory, census_campaign: str,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.couch, self.directory = couch, directory
        self.census_campaign = census_campaign
        self.refresh_seconds = refresh_seconds
        self.grids: dict[str, tuple[Any, Counter[str]]] = {}  # code -> (update_seq, figures)
        self.cached: dict[str, Cached] = {}
        self.dirty: set[str] = set()
        self.noticed: dict[str, float] = {}  # monotonic time each dirty grid was first noticed
        self.locks: dict[str, asyncio.Lock] = {}  # one refresh of a grid at a time
        self.started: dict[str, float] = {}  # loop time the grid's last refresh began
        self.view_reads = 0  # for tests and benchmarks
        self.receipt_views = ReceiptViews(couch)
        # The server's receipts of verdicts (the resolver's lookup) and this process's pending
        # receipts, wired by the app: the latest verdict is the one received last.
        self.receipts_for: ReceiptLookup | None = None
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

    def lag(self) -> Lag:
        """How long the oldest write not yet counted has waited, and how many grids wait."""
        waiting = [self.noticed[code] for code in self.dirty if code in self.noticed]
        return Lag(seconds=time.monotonic() - min(waiting) if waiting else None,
                   items=len(self.dirty))

    async def grid_figures(self, code: str) -> Counter[str]:
        """Bring one grid's figures up to date, one refresh of it at a time; a caller that
        waited for another's refresh and finds the grid no longer noticed still checks its
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
        db = grid_db(code)
        try:
            info = await self.couch.get(db_path(db))
        except NotFound:
            return Counter()
        seq, year = info.get("update_seq"), datetime.date.today().year
        cached = self.cached.get(code)
        if cached is not None and cached.seq == seq:
            return cached.figures
        views = set(VIEWS)
        if cached is not None and cached.year == year:
            types = await self.types_since(db, cached.seq, seq)
            if types is not None:
                views = {view for view in VIEWS if VIEW_TYPE[view] in types}
        parts = dict(cached.parts) if cached is not None else {}
        for view in VIEWS:
            if view not in views:
                continue
            params = {"group": "true"} if view in GROUPED else {}
            try:
                answer = await self.couch.get(db_path(db, DESIGN, "_view", view), **params)
            except NotFound:  # its design document is still being installed
                return Counter()
            self.view_reads += 1
            rows = answer.get("rows", [])
            received = None
            if view == "verdicts_latest":
                rows = await self.receipted(db, rows)
                received = await self.first_receipts(db, sorted(first_verdicts(rows)))
            parts[view] = view_figures(view, rows, self.census_campaign, year, received)
        figures: Counter[str] = Counter()
        for part in parts.values():
            figures.update(part)
        figures = +figures
        self.cached[code] = Cached(seq, year, parts, figures)
        self.grids[code] = (seq, figures)
        return figures

    async def types_since(self, db: str, since: Any, now: Any) -> set[str] | None:
        """The record types written to `db` since update sequence `since` (ids only, a few
        bytes a change); None when that cannot be told and every view must be read."""
        old, new = seq_number(since), seq_number(now)
        if old is None or new is None or new < old:  # the database was made again
            return None
        try:
            page = await self.couch.get(db_path(db, "_changes"), since=str(since),
                                        limit=str(CHANGES_LIMIT))
        except NotFound:
            return None
        results = page.get("results") or []
        if len(results) >= CHANGES_LIMIT:
            return None
        return changed_types(str(row.get("id", "")) for row in results)

    async def receipted(self, db: str, rows: list[dict[str, Any]]) -> list[Verdict]:
        """The verdicts of `verdicts_latest` rows with the server's receipts (this process's
        pending ones written first), so the latest is the one received last."""
        if self.flush_receipts is not None:
            with contextlib.suppress(CouchFailure, StoreUnavailable):
                await self.flush_receipts()
        verdicts = [verdict_row(row) for row in rows]
        try:
            return await ordering.with_receipts(self.couch, db, verdicts, self.receipts_for)
        except (NotFound, CouchFailure):
            return await ordering.with_receipts(self.couch, db, verdicts, None)

    async def first_receipts(self, db: str, records: list[str]) -> dict[str, float]:
        """When the server first received each of `records` (ms), from the receipts view:
        one reduced row per reviewed record, never the receipts themselves. A verdict is
        given after its record's receipt is written (the verdicts API flushes the receipt log
        first), so a grid's cached figures, kept by its update sequence, stay right."""
        if not records:
            return {}
        found: dict[str, float] = {}
        for row in await self.receipt_views.rows(
                FIRST_RECEIVED, [[db, record] for record in records], group="true"):
            value = row.get("value")
            if isinstance(value, dict) and isinstance(value.get("min"), int | float):
                found[str(row["key"][1])] = float(value["min"])
        return found

    async def refresh(self, codes: Iterable[str] | None = None) -> None:
        """Bring the figures of `codes` (default: every grid) up to date."""
        wanted = sorted(self.directory.grids if codes is None else codes)
        semaphore = asyncio.Semaphore(8)

        async def one(code: str) -> None:
            async with semaphore:
                await self.grid_figures(code)

        await asyncio.gather(*(one(code) for code in wanted))

    async def refresh_dirty(self, codes: Iterable[str] | None = None) -> None:
        """Bring the noticed grids among `codes` (default: all noticed) up to date."""
        wanted = set(self.dirty) if codes is None else self.dirty & set(codes)
        await self.refresh(wanted)

    async def warm_up(self) -> None:
        """Read every grid's views once: the store builds a view's index when it is first
        read, and a dashboard should not wait for it. On the embedded store that is about a
        minute for the demo's 1,000 households but hours for a city of 164,253 (1.5 ms of store
        CPU per document per view, scripts/bench-aggregates); Apache CouchDB is far faster."""
        try:
            await self.refresh()
        except (CouchFailure, StoreUnavailable) as exc:
            log.warning("aggregates not warmed up: %s", exc)

    async def run(self) -> None:
        """Keep the figures of the grids written to fresh, so a dashboard query only adds
        numbers up: a grid written to all the time is refreshed once every refresh_seconds,
        not once a batch, since each refresh makes the store update and read its views."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = loop.time()
            due = [code for code in self.dirty
                   if now - self.started.get(code, -math.inf) >= self.refresh_seconds]
            if not due:
                continue
            try:
                await self.refresh_dirty(due)
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
        await self.refresh_dirty(needed)
        old = time.monotonic() - self.refresh_seconds
        shared = self.shared()
        # a grid the background is refreshing is no longer noticed but may not be counted yet:
        # wait for that refresh (then one update-sequence read)
        await self.refresh([c for c in needed if c not in self.grids
                            or (c in self.locks and self.locks[c].locked())
                            or (shared and self.checked.get(c, -math.inf) < old)])
        withheld = self.withheld(groups)

        def shown(a: Area) -> dict[str, Any]:
            outside = a.level == "grid" and not self.directory.reaches(user, a.code)
            return area_entry(a, self.total(a.grids), self.directory.area_name(a.level, a.code),
                              withheld.get(a.code, frozenset()) if outside else None)

        return {**shown(area), "parents": parents(self.directory, area),
                "children": [shown(c) for c in children], "review_hours": list(REVIEW_HOURS)}
