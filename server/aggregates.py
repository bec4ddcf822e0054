"""Aggregates (统计): what supervisors count, at every level of the hierarchy (grid → community
(社区) → street (街道) → district (区) → city).

Each grid's figures come from the CouchDB views in its own database (server/designs/linli.json),
which the store keeps up to date incrementally; a query never scans documents. The server keeps
each grid's figures with the database's update sequence they were computed at, recomputes a grid
only when its sequence moved (the gateway's writes mark it at once; `refresh` checks them all),
and rolls the figures up the hierarchy by addition.

Figures are flat counters with dotted names (`households`, `visits.latest.completed`,
`persons.age.15-59`...), so rolling up is adding.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from server.couch import CouchClient, CouchFailure, NotFound, StoreUnavailable, db_path
from server.scope import Directory, Grid, User, grid_db

log = logging.getLogger(__name__)

DESIGN = "_design/linli"
AGE_BANDS = ((0, 14, "0-14"), (15, 59, "15-59"), (60, 79, "60-79"), (80, 200, "80+"))
VISITED = frozenset({"completed", "moved", "demolished"})
SMALL = 5  # a count below this is not shown below the community level without the right
LEVELS = ("city", "district", "street", "community", "grid")


def age_band(birth_year: Any, year: int) -> str:
    if not isinstance(birth_year, int):
        return "unknown"
    age = year - birth_year
    return next((label for low, high, label in AGE_BANDS if low <= age <= high), "unknown")


def district_of(street: str) -> str:
    return street[:6] if len(street) >= 6 else ""


@dataclasses.dataclass
class Area:
    level: str
    code: str
    grids: list[str]


def figures_from(rows: Mapping[str, list[dict[str, Any]]], census_campaign: str,
                 year: int) -> Counter[str]:
    """One grid's figures from its views' rows (pure, so a brute-force count can be compared
    with it field by field)."""
    out: Counter[str] = Counter()
    for row in rows["households_by_status"]:
        out["households"] += row["value"]
        out[f"households.status.{row['key']}"] += row["value"]
    latest: dict[str, str] = {}
    for row in rows["visits_by_household"]:  # sorted by household, then date: the last wins
        latest[row["key"][0]] = row["value"]
    out["visits.households_visited"] = len(latest)
    for outcome in latest.values():
        out[f"visits.latest.{outcome}"] += 1
        if outcome in VISITED:
            out["visits.covered"] += 1
    out["visits.total"] = len(rows["visits_by_household"])
    for row in rows["census_by_campaign"]:
        if row["key"] == census_campaign:
            out["census.enumerated"] += row["value"]
    for row in rows["persons_by_sex_birth_status"]:
        sex, birth_year, registration = row["key"]
        n = row["value"]
        out["persons"] += n
        out[f"persons.sex.{sex}"] += n
        out[f"persons.age.{age_band(birth_year, year)}"] += n
        out[f"persons.registration.{registration or 'unknown'}"] += n
    for row in rows["screenings_by_day"]:
        day, result, code, risk = row["key"]
        n = row["value"]
        out["screenings"] += n
        out[f"screenings.day.{day}"] += n
        out[f"screenings.result.{result or 'unknown'}"] += n
        out[f"screenings.health_code.{code or 'unknown'}"] += n
        out[f"screenings.risk.{risk or 'unknown'}"] += n
    verdicts: dict[str, tuple[str, str]] = {}
    for row in rows["verdicts_latest"]:
        stamp, decision = row["value"]
        if row["key"] not in verdicts or (stamp, decision) > verdicts[row["key"]]:
            verdicts[row["key"]] = (stamp, decision)
    for _stamp, decision in verdicts.values():
        out[f"review.{decision}"] += 1
    out["review.reviewed"] = len(verdicts)
    out["conflicts.open"] = len(rows["open_conflicts"])
    return +out  # zero counts dropped


VIEWS = ("households_by_status", "visits_by_household", "census_by_campaign",
         "persons_by_sex_birth_status", "screenings_by_day", "verdicts_latest", "open_conflicts")
GROUPED = frozenset({"households_by_status", "census_by_campaign", "persons_by_sex_birth_status",
                     "screenings_by_day"})


class Aggregates:
    def __init__(self, couch: CouchClient, directory: Directory, census_campaign: str) -> None:
        self.couch, self.directory = couch, directory
        self.census_campaign = census_campaign
        self.grids: dict[str, tuple[Any, Counter[str]]] = {}  # code -> (update_seq, figures)
        self.dirty: set[str] = set()

    def notice(self, grid: str) -> None:
        self.dirty.add(grid)

    async def grid_figures(self, code: str) -> Counter[str]:
        db = grid_db(code)
        try:
            info = await self.couch.get(db_path(db))
        except NotFound:
            return Counter()
        cached = self.grids.get(code)
        if cached is not None and cached[0] == info.get("update_seq"):
            return cached[1]
        rows: dict[str, list[dict[str, Any]]] = {}
        for view in VIEWS:
            params = {"group": "true"} if view in GROUPED else {}
            try:
                answer = await self.couch.get(db_path(db, DESIGN, "_view", view), **params)
            except NotFound:  # its design document is still being installed
                return Counter()
            rows[view] = answer.get("rows", [])
        figures = figures_from(rows, self.census_campaign, datetime.date.today().year)
        self.grids[code] = (info.get("update_seq"), figures)
        return figures

    async def refresh(self, codes: Iterable[str] | None = None) -> None:
        """Bring the figures of `codes` (default: every grid) up to date."""
        wanted = sorted(self.directory.grids if codes is None else codes)
        semaphore = asyncio.Semaphore(8)

        async def one(code: str) -> None:
            async with semaphore:
                await self.grid_figures(code)

        await asyncio.gather(*(one(code) for code in wanted))

    async def refresh_dirty(self) -> None:
        codes, self.dirty = self.dirty, set()
        try:
            await self.refresh(codes)
        except BaseException:
            self.dirty |= codes
            raise

    async def warm_up(self) -> None:
        """Read every grid's views once: the store builds a view's index when it is first
        read, which takes a minute for a city, and a dashboard should not wait for it."""
        try:
            await self.refresh()
        except (CouchFailure, StoreUnavailable) as exc:
            log.warning("aggregates not warmed up: %s", exc)

    async def run(self, every: float = 1.0) -> None:
        """Keep the figures of the grids written to fresh, about every second, so a dashboard
        query only adds numbers up."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.refresh_dirty()
            except (CouchFailure, StoreUnavailable) as exc:
                log.warning("aggregates not refreshed: %s", exc)

    def areas(self, level: str, code: str) -> tuple[Area, list[Area]]:
        """The area and its children, each with the grids under it."""
        grids = list(self.directory.grids.values())

        def key(grid: Grid, at: str) -> str:
            return {"city": "", "district": district_of(grid.street), "street": grid.street,
                    "community": grid.community, "grid": grid.code}[at]

        inside = [g for g in grids if level == "city" or key(g, level) == code]
        area = Area(level, code, [g.code for g in inside])
        if level == "grid":
            return area, []
        below = LEVELS[LEVELS.index(level) + 1]
        children: dict[str, list[str]] = {}
        for grid in inside:
            children.setdefault(key(grid, below), []).append(grid.code)
        return area, [Area(below, c, sorted(codes)) for c, codes in sorted(children.items())]

    def total(self, codes: Iterable[str]) -> Counter[str]:
        out: Counter[str] = Counter()
        for code in codes:
            cached = self.grids.get(code)
            if cached is not None:
                out.update(cached[1])
        return out

    async def report(self, user: User, level: str, code: str) -> dict[str, Any]:
        await self.refresh_dirty()
        area, children = self.areas(level, code)
        await self.refresh([c for c in area.grids if c not in self.grids])

        def shown(a: Area) -> dict[str, Any]:
            figures = dict(self.total(a.grids))
            entry: dict[str, Any] = {"level": a.level, "code": a.code, "grids": len(a.grids)}
            if a.level == "grid" and not self.directory.reaches(user, a.code):
                # Below the community level, small counts could single out a household.
                hidden = sorted(k for k, v in figures.items() if v < SMALL)
                figures = {k: v for k, v in figures.items() if v >= SMALL}
                entry["suppressed"] = hidden
            entry["figures"] = figures
            name = self.name_of(a)
            if name:
                entry["name"] = name
            return entry

        return {**shown(area), "children": [shown(c) for c in children]}

    def name_of(self, area: Area) -> str:
        if area.level == "grid":
            grid = self.directory.grids.get(area.code)
            return grid.name if grid else ""
        return ""
