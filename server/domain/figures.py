"""Figures (统计数字): what supervisors count, folded record by record, pure.

Figures are flat counters with dotted names (`households`, `visits.latest.completed`,
`persons.age.15-59`...), so rolling a grid's figures up the hierarchy (grid → community (社区) →
street (街道) → district (区) → city) is adding. Time to review (from a record's first receipt by
the server to its first verdict) is a median, and medians do not add up: each grid keeps a
histogram with fixed buckets (`review.hours.le_4` counts the records reviewed within 4 hours and
more than 2, `review.hours.over_1440` those after 60 days), which adds up like every counter, and
an area's median is the bucket that holds it. Following the changes feeds and keeping each
record's part is server/sync/figure_fold.py, rolling up server/sync/aggregates.py; which small
counts are withheld, server/domain/suppression.py.
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


def receipt_marks(receipt: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """What a receipt (server/sync/receipts.py) tells the figures: (grid database, record id,
    revision, when the server received it) for each revision it acknowledges."""
    at, db = receipt.get("received_at"), receipt.get("db")
    if (receipt.get("type") != "receipt" or not isinstance(at, str) or not isinstance(db, str)
            or not isinstance(receipt.get("revs"), list)):
        return []
    return [(db, str(rev[0]), str(rev[1]), at) for rev in receipt["revs"]
            if isinstance(rev, list | tuple) and len(rev) >= 2]


# --- folding: each record's part of its grid's figures (汇总折叠规则) ---------------------------
#
# A grid's figures are the sum of parts, each depending on a few records only, so a new
# revision replaces its old part exactly (server/sync/figure_fold.py keeps the records of the
# parts, server/sync/aggregates.py follows the changes feeds):
# - a household, a present person, a census form, a screening, an open conflict: its own part;
# - a household's visits together: how many, and the outcome of the latest (by visit date, then
#   the phone's time, then id);
# - a record's verdicts together, with the server's receipts: the decision received last, and
#   the time from the record's first receipt to its first verdict.

FOLDED = frozenset({"household", "person", "census_household", "screening", "resolution",
                    "household_visit", "verdict"})
TIMED = frozenset({"household_visit", "census_household", "screening"})  # reviewed and timed


def fold_entry(doc: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """What a record gives the figures: (its kind, the unit its part is counted in, the fields
    the part needs); None when it counts for nothing (a deleted record, a moved-out person...),
    so nothing needs keeping of it."""
    kind = doc.get("type")
    if doc.get("_deleted") or kind not in FOLDED:
        return None
    doc_id = str(doc.get("_id", ""))
    if kind == "household":
        return kind, doc_id, {"status": doc.get("status") or ""}
    if kind == "person":
        if doc.get("status") != "present":
            return None
        return kind, doc_id, {"sex": doc.get("sex"), "birth_year": doc.get("birth_year"),
                              "registration": doc.get("residence_status") or ""}
    if kind == "census_household":
        return kind, doc_id, {"campaign": doc.get("campaign")}
    if kind == "screening":
        return kind, doc_id, {"day": doc.get("screened_on"), "result": doc.get("test_result") or "",
                              "code": doc.get("health_code") or "",
                              "risk": doc.get("risk_category") or ""}
    if kind == "resolution":
        return (kind, doc_id, {}) if doc.get("status") == "open" else None
    if kind == "household_visit":
        return kind, str(doc.get("household")), {
            "on": str(doc.get("visited_on") or ""), "time": str(doc.get("device_time") or ""),
            "outcome": doc.get("outcome")}
    return kind, str(doc.get("record")), {"rev": str(doc.get("_rev", "")),
                                         "decision": str(doc.get("decision", ""))}


def record_part(kind: str, data: Mapping[str, Any], census_campaign: str,
                year: int) -> Counter[str]:
    """The part of a record counted on its own (household, person, census form, screening,
    open conflict)."""
    out: Counter[str] = Counter()
    if kind == "household":
        out["households"] += 1
        out[f"households.status.{data['status']}"] += 1
    elif kind == "person":
        out["persons"] += 1
        out[f"persons.sex.{data['sex']}"] += 1
        out[f"persons.age.{age_band(data['birth_year'], year)}"] += 1
        out[f"persons.registration.{data['registration'] or 'unknown'}"] += 1
    elif kind == "census_household":
        if data.get("campaign") == census_campaign:
            out["census.enumerated"] += 1
    elif kind == "screening":
        out["screenings"] += 1
        out[f"screenings.day.{data['day']}"] += 1
        out[f"screenings.result.{data['result'] or 'unknown'}"] += 1
        out[f"screenings.health_code.{data['code'] or 'unknown'}"] += 1
        out[f"screenings.risk.{data['risk'] or 'unknown'}"] += 1
    elif kind == "resolution":
        out["conflicts.open"] += 1
    return out


def visits_part(visits: Iterable[tuple[str, Mapping[str, Any]]]) -> Counter[str]:
    """One household's visits (id, fields): how many, and the outcome of the latest."""
    out: Counter[str] = Counter()
    latest: tuple[tuple[str, str, str], Any] | None = None
    for visit_id, data in visits:
        out["visits.total"] += 1
        order = (data["on"], data["time"], visit_id)
        if latest is None or order > latest[0]:
            latest = (order, data["outcome"])
    if latest is not None:
        out["visits.households_visited"] += 1
        out[f"visits.latest.{latest[1]}"] += 1
        if latest[1] in VISITED:
            out["visits.covered"] += 1
    return out


def first_verdicts(verdicts: Iterable[Verdict]) -> dict[str, float]:
    """Each reviewed record's first verdict time (ms), by the server's receipts: a verdict
    without one yet is not timed (a phone's clock never is)."""
    first: dict[str, float] = {}
    for verdict in verdicts:
        at = epoch_ms(verdict.received_at)
        if at is not None and (verdict.record not in first or at < first[verdict.record]):
            first[verdict.record] = at
    return first


def review_part(verdicts: Iterable[Verdict], first_receipt: float | None) -> Counter[str]:
    """One record's verdicts (with their receipts and store sequences, domain/ordering.py):
    the decision received last counts, and the hours from the record's first receipt (ms) to
    its first verdict received, when both are known and in that order."""
    judged = list(verdicts)
    out: Counter[str] = Counter()
    if not judged:
        return out
    out["review.reviewed"] += 1
    out[f"review.{ordering.latest(judged).decision}"] += 1
    verdict_at = first_verdicts(judged).get(judged[0].record)
    # A record the server never received (imported, or verdict older than its first receipt:
    # written before it ever came from a phone) has no time to review.
    if first_receipt is not None and verdict_at is not None and verdict_at >= first_receipt:
        out[hours_bucket((verdict_at - first_receipt) / 3_600_000)] += 1
        out["review.timed"] += 1
    return out


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
