"""Figures (统计数字): what supervisors count, computed from the rows of each grid's views, pure.

Figures are flat counters with dotted names (`households`, `visits.latest.completed`,
`persons.age.15-59`...), so rolling a grid's figures up the hierarchy (grid → community (社区) →
street (街道) → district (区) → city) is adding. Time to review (from a record's first receipt by
the server to its first verdict) is a median, and medians do not add up: each grid keeps a
histogram with fixed buckets (`review.hours.le_4` counts the records reviewed within 4 hours and
more than 2, `review.hours.over_1440` those after 60 days), which adds up like every counter, and
an area's median is the bucket that holds it. Reading the views, caching and rolling up are
server/sync/aggregates.py; which small counts are withheld, server/domain/suppression.py.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain import ordering
from server.domain.ordering import Verdict
from server.domain.scope import Directory, Grid

AGE_BANDS = ((0, 14, "0-14"), (15, 59, "15-59"), (60, 79, "60-79"), (80, 200, "80+"))
VISITED = frozenset({"completed", "moved", "demolished"})
SMALL = 5  # a count below this is not shown below the community level without the right
LEVELS = ("city", "district", "street", "community", "grid")
REVIEW_HOURS = (1, 2, 4, 8, 12, 24, 48, 72, 120, 168, 336, 720, 1440)  # the buckets' upper edges
REVIEW_BUCKETS = (*(f"review.hours.le_{h}" for h in REVIEW_HOURS),
                  f"review.hours.over_{REVIEW_HOURS[-1]}")
# A grid's median time to review is shown only when its histogram is: a bucket withheld would
# otherwise be narrowed down by the median.
REVIEW_HIDDEN = frozenset({*REVIEW_BUCKETS, "review.timed"})


def hours_bucket(hours: float) -> str:
    """The histogram counter a time to review falls in: (previous edge, edge]."""
    for edge, name in zip(REVIEW_HOURS, REVIEW_BUCKETS, strict=False):
        if hours <= edge:
            return name
    return REVIEW_BUCKETS[-1]


def median_bucket(figures: Mapping[str, int]) -> dict[str, Any] | None:
    """The bucket holding the (lower) median time to review, from a rolled-up histogram:
    {"records", "from_hours", "to_hours"}; `to_hours` is None for the open last bucket."""
    counts = [int(figures.get(name, 0)) for name in REVIEW_BUCKETS]
    total = sum(counts)
    if not total:
        return None
    wanted, seen = (total + 1) // 2, 0
    for n, count in enumerate(counts):
        seen += count
        if seen >= wanted:
            low = REVIEW_HOURS[n - 1] if n else 0
            high = REVIEW_HOURS[n] if n < len(REVIEW_HOURS) else None
            return {"records": total, "from_hours": low, "to_hours": high}
    return None  # not reached


def epoch_ms(stamp: Any) -> float | None:
    """An ISO time (a server receipt's) in milliseconds, or None when it is not one."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp() * 1000


def age_band(birth_year: Any, year: int) -> str:
    if not isinstance(birth_year, int):
        return "unknown"
    age = year - birth_year
    return next((label for low, high, label in AGE_BANDS if low <= age <= high), "unknown")


def district_of(street: str) -> str:
    return street[:6] if len(street) >= 6 else ""


def verdict_row(row: Mapping[str, Any]) -> Verdict:
    """A `verdicts_latest` row ([rev, decision] by record) as a verdict, not yet receipted."""
    rev, decision = [*row["value"], ""][:2]
    return Verdict(id=str(row.get("id", "")), rev=str(rev), record=str(row["key"]),
                   decision=str(decision))


def first_verdicts(verdicts: Iterable[Verdict]) -> dict[str, float]:
    """Each reviewed record's first verdict time (ms), by the server's receipts: a verdict
    without one yet is not timed (a phone's clock never is)."""
    first: dict[str, float] = {}
    for verdict in verdicts:
        at = epoch_ms(verdict.received_at)
        if at is not None and (verdict.record not in first or at < first[verdict.record]):
            first[verdict.record] = at
    return first


def figures_from(rows: Mapping[str, list[dict[str, Any]]], census_campaign: str,
                 year: int, received: Mapping[str, float] | None = None) -> Counter[str]:
    """One grid's figures from its views' rows and its reviewed records' first receipt times
    (ms, by record id; pure, so a brute-force count can be compared with it field by field)."""
    out: Counter[str] = Counter()
    for view in VIEWS:
        out.update(view_figures(view, rows[view], census_campaign, year, received))
    return +out  # zero counts dropped


def view_figures(view: str, rows: list[dict[str, Any]], census_campaign: str, year: int,
                 received: Mapping[str, float] | None = None) -> Counter[str]:
    """The figures one view gives (each view's counters have their own names, so a grid's
    figures are the sum and a view whose records did not change keeps its part)."""
    out: Counter[str] = Counter()
    if view == "households_by_status":
        for row in rows:
            out["households"] += row["value"]
            out[f"households.status.{row['key']}"] += row["value"]
    elif view == "visits_by_household":
        latest: dict[str, str] = {}
        for row in rows:  # sorted by household, then date: the last wins
            latest[row["key"][0]] = row["value"]
        out["visits.households_visited"] = len(latest)
        for outcome in latest.values():
            out[f"visits.latest.{outcome}"] += 1
            if outcome in VISITED:
                out["visits.covered"] += 1
        out["visits.total"] = len(rows)
    elif view == "census_by_campaign":
        for row in rows:
            if row["key"] == census_campaign:
                out["census.enumerated"] += row["value"]
    elif view == "persons_by_sex_birth_status":
        for row in rows:
            sex, birth_year, registration = row["key"]
            n = row["value"]
            out["persons"] += n
            out[f"persons.sex.{sex}"] += n
            out[f"persons.age.{age_band(birth_year, year)}"] += n
            out[f"persons.registration.{registration or 'unknown'}"] += n
    elif view == "screenings_by_day":
        for row in rows:
            day, result, code, risk = row["key"]
            n = row["value"]
            out["screenings"] += n
            out[f"screenings.day.{day}"] += n
            out[f"screenings.result.{result or 'unknown'}"] += n
            out[f"screenings.health_code.{code or 'unknown'}"] += n
            out[f"screenings.risk.{risk or 'unknown'}"] += n
    elif view == "verdicts_latest":
        # Rows come as verdicts with their receipts (Aggregates reads them); bare view rows
        # are taken as verdicts not yet receipted, ordered by id only.
        judged = [r if isinstance(r, Verdict) else verdict_row(r) for r in rows]
        by_record: dict[str, list[Verdict]] = {}
        for verdict in judged:
            by_record.setdefault(verdict.record, []).append(verdict)
        for group in by_record.values():
            out[f"review.{ordering.latest(group).decision}"] += 1  # received last
        out["review.reviewed"] = len(by_record)
        for record, verdict_at in first_verdicts(judged).items():
            receipt_at = (received or {}).get(record)
            # A record the server never received (imported, or verdict older than its first
            # receipt: written before it ever came from a phone) has no time to review.
            if receipt_at is not None and verdict_at >= receipt_at:
                out[hours_bucket((verdict_at - receipt_at) / 3_600_000)] += 1
                out["review.timed"] += 1
    elif view == "open_conflicts":
        out["conflicts.open"] = len(rows)
    return +out


VIEWS = ("households_by_status", "visits_by_household", "census_by_campaign",
         "persons_by_sex_birth_status", "screenings_by_day", "verdicts_latest", "open_conflicts")
GROUPED = frozenset({"households_by_status", "census_by_campaign", "persons_by_sex_birth_status",
                     "screenings_by_day"})
# The record type each view's map function emits for. A record's id starts with its type
# (validation.py refuses any other), so the ids in the changes feed since a grid's figures were
# computed tell which views can have changed.
VIEW_TYPE = {"households_by_status": "household", "visits_by_household": "household_visit",
             "census_by_campaign": "census_household", "persons_by_sex_birth_status": "person",
             "screenings_by_day": "screening", "verdicts_latest": "verdict",
             "open_conflicts": "resolution"}


def changed_types(ids: Iterable[str]) -> set[str] | None:
    """The record types among changed ids; None when an id has no type (a design document, or
    one written straight to the store), which may have changed any view."""
    types: set[str] = set()
    for doc_id in ids:
        kind, colon, _key = doc_id.partition(":")
        if not colon or doc_id.startswith("_"):
            return None
        types.add(kind)
    return types


# --- areas: the hierarchy above the grids, and what a user sees of each --------------------------

@dataclasses.dataclass
class Area:
    """An area of the hierarchy (a grid, community, street, district or the city) and the grids
    under it."""

    level: str
    code: str
    grids: list[str]


def area_of(grid: Grid, level: str) -> str:
    """The code of the area at `level` that holds `grid` (a district is its street's first six
    digits)."""
    return {"city": "", "district": district_of(grid.street), "street": grid.street,
            "community": grid.community, "grid": grid.code}[level]


def areas(directory: Directory, level: str, code: str) -> tuple[Area, list[Area]]:
    """The area and its children, each with the grids under it."""
    inside = [g for g in directory.grids.values() if level == "city" or area_of(g, level) == code]
    area = Area(level, code, [g.code for g in inside])
    if level == "grid":
        return area, []
    below = LEVELS[LEVELS.index(level) + 1]
    children: dict[str, list[str]] = {}
    for grid in inside:
        children.setdefault(area_of(grid, below), []).append(grid.code)
    return area, [Area(below, c, sorted(codes)) for c, codes in sorted(children.items())]


def places(directory: Directory) -> dict[str, tuple[str, str, str]]:
    """Each grid's (district, street, community), as `areas` groups them."""
    return {g.code: (district_of(g.street), g.street, g.community)
            for g in directory.grids.values()}


def area_entry(area: Area, full: Mapping[str, int], name: str,
               hidden: frozenset[str] | None) -> dict[str, Any]:
    """An area's figures as a user sees them: all of them, or, for a grid outside the user's
    scope (`hidden` given), all but the withheld ones, which are listed in `suppressed` (below
    the community level a small count could single out a household, and the cells that would
    give it back are withheld with it). The median time to review is shown only with its
    histogram."""
    entry: dict[str, Any] = {"level": area.level, "code": area.code, "grids": len(area.grids)}
    shown = dict(full)
    if hidden is not None:
        shown = {k: v for k, v in shown.items() if k not in hidden}
        entry["suppressed"] = sorted(hidden)
    entry["figures"] = shown
    if name:
        entry["name"] = name
    if "review.timed" in shown and not (hidden or frozenset()) & REVIEW_HIDDEN:
        entry["time_to_review"] = median_bucket(full)
    return entry


def parents(directory: Directory, area: Area) -> list[dict[str, str]]:
    """The areas above `area`, from the city down, each with its name when the directory
    knows it (for the dashboard's breadcrumbs)."""
    if area.level == "city":
        return []
    grid = directory.grids.get(area.grids[0]) if area.grids else None
    community = area.code if area.level == "community" else (grid.community if grid else "")
    street = area.code if area.level == "street" else (
        grid.street if grid and grid.street else community[:9])
    district = area.code if area.level == "district" else district_of(street)
    chain = {"district": district, "street": street, "community": community}
    out = [{"level": "city", "code": ""}]
    for level in LEVELS[1:LEVELS.index(area.level)]:
        code = chain.get(level, "")
        if code:
            item = {"level": level, "code": code}
            name = directory.area_name(level, code)
            if name:
                item["name"] = name
            out.append(item)
    return out
