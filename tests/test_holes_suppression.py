"""Issue 13, item 4: small counts stay hidden under subtraction.

A supervisor of one community collects every figure they can see, at every level (GET
/api/aggregates for the district, its streets, their communities and every grid, and the same
as exports), writes down every equation those figures satisfy (an area's figure is the sum of
its children's; within every area a total is the sum of each of its breakdowns) and solves
them exactly: no withheld figure may come out. The figures come from random small grids, so
hundreds of counts are below the threshold."""

from __future__ import annotations

import csv
import io
import itertools
import os
import random
import time
from collections import defaultdict
from fractions import Fraction
from typing import Any

import pytest
from conftest import City, basic, wait_for_user

from server.domain import exports
from server.domain.figures import SMALL
from server.domain.suppression import components, equation_sets, withhold
from server.store.bulk import save_many
from server.web.keys import AGGREGATES, CONFIG

_districts = itertools.count(1)

# Every equality among one area's figures (a total and the prefixes of its breakdowns), written
# out here from the figures' meaning in server/sync/aggregates.py, not taken from the code tested.
BREAKDOWNS = {
    "households": ["households.status."],
    "visits.households_visited": ["visits.latest."],
    "persons": ["persons.sex.", "persons.age.", "persons.registration."],
    "screenings": ["screenings.day.", "screenings.result.", "screenings.health_code.",
                   "screenings.risk."],
    "review.timed": ["review.hours."],
}
COVERED = ("visits.latest.completed", "visits.latest.moved", "visits.latest.demolished")


def area_relations(names: set[str]) -> list[tuple[str, list[str]]]:
    out = []
    for total, prefixes in BREAKDOWNS.items():
        for prefix in prefixes:
            parts = [n for n in names if n.startswith(prefix)]
            if parts:
                out.append((total, parts))
    decisions = [n for n in names if n.startswith("review.") and n.count(".") == 1
                 and n not in ("review.reviewed", "review.timed")]
    if decisions:
        out.append(("review.reviewed", decisions))
    covered = [n for n in COVERED if n in names]
    if covered:
        out.append(("visits.covered", covered))
    return out


def grid_records(grid: str, rng: random.Random, campaign: str) -> list[dict[str, Any]]:
    """A small grid: a few of everything, so that most of its counts are small."""
    docs: list[dict[str, Any]] = []
    households = rng.randint(0, 14)
    for n in range(households):
        docs.append({"_id": f"household:{grid}-{n}", "type": "household", "schema_version": 2,
                     "grid": grid, "status": rng.choice(["active", "active", "vacant",
                                                         "moved_out"])})
    for n in range(rng.randint(0, 16)):
        docs.append({"_id": f"person:{grid}-{n}", "type": "person", "schema_version": 1,
                     "grid": grid, "household": f"household:{grid}-{n % max(households, 1)}",
                     "status": rng.choice(["present"] * 5 + ["moved_out"]),
                     "sex": rng.choice("12"), "birth_year": rng.choice([1940, 1960, 1990, 2018]),
                     "residence_status": rng.choice(["registered", "floating", ""])})
    for n in range(rng.randint(0, 12)):
        docs.append({"_id": f"household_visit:{grid}-{n}", "type": "household_visit",
                     "schema_version": 1, "grid": grid,
                     "household": f"household:{grid}-{rng.randrange(max(households, 1))}",
                     "visited_on": f"2026-11-{rng.randint(10, 20)}",
                     "outcome": rng.choice(["completed", "nobody_home", "refused", "moved"])})
    for n in range(rng.randint(0, 12)):
        docs.append({"_id": f"screening:{grid}-{n}", "type": "screening", "schema_version": 1,
                     "grid": grid, "screened_on": f"2026-11-{rng.randint(20, 23)}",
                     "test_result": rng.choice(["negative", "negative", "positive"]),
                     "health_code": rng.choice(["green", "green", "yellow", "red"]),
                     "risk_category": rng.choice(["none", "none", "close_contact"])})
    for n in range(rng.randint(0, 7)):
        docs.append({"_id": f"census_household:{grid}-{n}", "type": "census_household",
                     "schema_version": 1, "grid": grid, "campaign": campaign})
    return docs


def determined(unknowns: list[tuple[str, str]],
               equations: list[dict[tuple[str, str], int]]) -> set[tuple[str, str]]:
    """The unknowns the equations fix, by exact reduction over the rationals (independent of
    the server's own reduction): an unknown is fixed when it is a row of its own in the
    reduced row echelon form."""
    column = {u: n for n, u in enumerate(unknowns)}
    rows = [{column[c]: Fraction(v) for c, v in eq.items() if c in column and v}
            for eq in equations]
    rows = [r for r in rows if r]
    pivots: dict[int, dict[int, Fraction]] = {}
    for row in rows:
        for col in [c for c in row if c in pivots]:
            factor = row.get(col)
            if factor:
                for k, v in pivots[col].items():
                    row[k] = row.get(k, Fraction(0)) - factor * v
                row = {k: v for k, v in row.items() if v}
        if not row:
            continue
        col = min(row)
        row = {k: v / row[col] for k, v in row.items()}
        for other in pivots.values():
            factor = other.get(col)
            if factor:
                for k, v in row.items():
                    other[k] = other.get(k, Fraction(0)) - factor * v
                for k in [k for k, v in other.items() if not v]:
                    del other[k]
        pivots[col] = row
    return {unknowns[col] for col, row in pivots.items() if len(row) == 1}


def export_columns(text: str) -> dict[tuple[str, str], dict[str, str]]:
    rows = list(csv.reader(io.StringIO(text)))
    names = [row[0] for row in rows]
    out = {}
    for col in range(2, len(rows[0])):
        cells = {name: row[col] for name, row in zip(names, rows, strict=True)}
        out[(cells["level"], cells["code"])] = cells
    return out


@pytest.mark.slow  # a district of grids solved
async def test_no_withheld_figure_can_be_worked_out_at_any_level(client: Any,
                                                                 city: City) -> None:
    rng = random.Random(13)
    district = f"9{os.getpid() % 1000:03d}{next(_districts):02d}"
    streets = [f"{district}{s:03d}" for s in (1, 2)]
    # Community: grids in it. The first is the supervisor's; one has a single grid.
    plan = {f"{streets[0]}001": 3, f"{streets[0]}002": 4, f"{streets[0]}003": 1,
            f"{streets[1]}001": 2, f"{streets[1]}002": 5}
    campaign = client.app[CONFIG].census_campaign
    grids: dict[str, list[str]] = {}
    for community, count in plan.items():
        grids[community] = [await city.grid(community=community, street=community[:9])
                            for _ in range(count)]
        for grid in grids[community]:
            assert all(ok for ok, _, _ in await city.run(save_many, city.db(grid),
                                                         grid_records(grid, rng, campaign)))
    own = next(iter(plan))
    boss = await city.user("supervisor", communities=[own])
    admin = await city.user("admin")
    await wait_for_user(client, boss)
    await wait_for_user(client, admin)
    every_grid = [g for gs in grids.values() for g in gs]
    await client.app[AGGREGATES].refresh(every_grid)

    queries = [("district", district), *(("street", s) for s in streets),
               *(("community", c) for c in plan), *(("grid", g) for g in every_grid)]
    seen: dict[tuple[str, str], dict[str, Any]] = {}  # every area as the boss sees it
    truth: dict[tuple[str, str], dict[str, int]] = {}  # as an admin sees it
    sums: list[tuple[tuple[str, str], list[tuple[str, str]]]] = []
    for level, code in queries:
        resp = await client.get(f"/api/aggregates?level={level}&code={code}",
                                headers=basic(boss))
        assert resp.status == 200, await resp.text()
        report = await resp.json()
        full = await (await client.get(f"/api/aggregates?level={level}&code={code}",
                                       headers=basic(admin))).json()
        resp = await client.get(f"/api/export?what=aggregates&format=csv&level={level}"
                                f"&code={code}", headers=basic(boss))
        sheet = export_columns((await resp.read()).decode("utf-8-sig"))
        for entry, real in zip([report, *report["children"]], [full, *full["children"]],
                               strict=True):
            key = (entry["level"], entry["code"])
            mine = {"figures": entry["figures"], "suppressed": set(entry.get("suppressed", []))}
            assert seen.setdefault(key, mine) == mine, key  # the same wherever it is shown
            truth[key] = real["figures"]
            # Shown figures are exact; withheld ones are withheld in the export too.
            assert all(real["figures"].get(k, 0) == v for k, v in entry["figures"].items())
            for name, cell in sheet[key].items():
                if name in mine["suppressed"]:
                    assert cell == exports.WITHHELD, (key, name)
                elif name in real["figures"] or name in entry["figures"]:
                    assert cell == str(entry["figures"].get(name, 0)), (key, name, cell)
        sums.append(((report["level"], report["code"]),
                     [(c["level"], c["code"]) for c in report["children"]]))

    names = {n for area in seen.values() for n in [*area["figures"], *area["suppressed"]]}
    unknowns = sorted((f"{level}/{code}", name) for (level, code), area in seen.items()
                      for name in area["suppressed"])
    assert len(unknowns) > 50  # the grids are small: much is withheld

    def term(key: tuple[str, str], name: str) -> tuple[tuple[str, str] | None, int]:
        """(the unknown, 0) when withheld, else (None, the number shown)."""
        area = seen[key]
        if name in area["suppressed"]:
            return (f"{key[0]}/{key[1]}", name), 0
        return None, int(area["figures"].get(name, 0))

    equations: list[dict[tuple[str, str], int]] = []
    for parent, children in sums:
        if not children or parent[0] == "grid":
            continue
        for name in names:  # the parent's figure is the sum of its children's
            eq: dict[tuple[str, str], int] = defaultdict(int)
            constant = 0
            for key, sign in [(parent, 1), *((c, -1) for c in children)]:
                unknown, value = term(key, name)
                if unknown is None:
                    constant += sign * value
                else:
                    eq[unknown] += sign
            assert eq or constant == 0, (parent, name)
            equations.append(dict(eq))
    for key in seen:
        for total, parts in area_relations(names):  # a total is the sum of its breakdown
            eq = defaultdict(int)
            constant = 0
            for name, sign in [(total, 1), *((p, -1) for p in parts)]:
                unknown, value = term(key, name)
                if unknown is None:
                    constant += sign * value
                else:
                    eq[unknown] += sign
            assert eq or constant == 0, (key, total)
            equations.append(dict(eq))
    # The relations hold on the true figures (so none is missing from what the attacker knows).
    for key, figures in truth.items():
        for total, parts in area_relations(names):
            assert figures.get(total, 0) == sum(figures.get(p, 0) for p in parts), (key, total)

    worked_out = determined(unknowns, equations)
    assert not worked_out, sorted(worked_out)[:10]

    # Every small count of a grid outside the scope is withheld, except in a community whose
    # only grid it is: there the grid's figures are the community's own, shown at that level.
    for community, codes in plan.items():
        for grid in grids[community]:
            key = ("grid", grid)
            if community == own:
                assert not seen[key]["suppressed"]
                continue
            small = {k for k, v in truth[key].items() if 0 < v < SMALL}
            if codes == 1:
                assert seen[key]["figures"] == seen[("community", community)]["figures"]
            else:
                assert small <= seen[key]["suppressed"], (grid, small - seen[key]["suppressed"])


def withheld_cells_worked_out(members: list[str], hidden: dict[str, set[str]],
                              names: set[str]) -> set[tuple[str, str]]:
    """The withheld cells (grid, figure) of one community's grids that its published sums fix:
    each figure's total over the grids (the community's, shown) and, within a grid, each total
    as the sum of its breakdown."""
    unknowns = sorted((g, n) for g in members for n in hidden[g])
    equations = [{(g, name): 1 for g in members if name in hidden[g]} for name in names]
    for g in members:
        for total, parts in area_relations(names):
            eq: dict[tuple[str, str], int] = defaultdict(int)
            for name, sign in [(total, 1), *((p, -1) for p in parts)]:
                if name in hidden[g]:
                    eq[(g, name)] += sign
            equations.append(dict(eq))
    return determined(unknowns, equations)


@pytest.mark.parametrize("seed", range(40))
def test_withheld_cells_cannot_be_worked_out_from_random_tables(seed: int) -> None:
    """The rule alone on random communities of 1-6 grids with random small counts: whatever
    it withholds, no withheld cell is fixed by the equations, and every small count is
    withheld unless its grid is alone in its community."""
    rng = random.Random(seed)
    places, figures = {}, {}
    for c in range(rng.randint(1, 4)):
        for g in range(rng.randint(1, 6)):
            code = f"c{c}g{g}"
            places[code] = ("330100", "330100001", f"330100001{c:03d}")
            counts: dict[str, int] = {}
            persons = rng.choice([0, 1, 2, 3, 4, 6, 12, 30])
            counts["persons"] = persons
            for prefix, cats in (("persons.sex.", "12"), ("persons.age.", "abcd"),
                                 ("persons.registration.", "rf")):
                for _ in range(persons):
                    name = prefix + rng.choice(cats)
                    counts[name] = counts.get(name, 0) + 1
            households = rng.choice([0, 2, 5, 9, 20])
            counts["households"] = households
            for _ in range(households):
                name = "households.status." + rng.choice(["active", "vacant"])
                counts[name] = counts.get(name, 0) + 1
            counts["visits.total"] = rng.choice([0, 1, 3, 7])
            figures[code] = {k: v for k, v in counts.items() if v}
    sets = equation_sets(places)
    groups: dict[str, list[str]] = defaultdict(list)
    for code, place in places.items():
        groups[place[2]].append(code)
    names = {n for f in figures.values() for n in f}
    for community, members in groups.items():
        mine = [s for s in sets if set(s) <= set(members)]
        hidden = withhold({g: figures[g] for g in members}, mine, SMALL)
        assert not withheld_cells_worked_out(members, hidden, names), (seed, community)
        if len(members) > 1:
            for g in members:
                assert {k for k, v in figures[g].items() if v < SMALL} <= hidden[g]


def test_a_crowded_district_is_protected_in_a_moment() -> None:
    """Hundreds of grids in one group, many of them alone in their communities (as a city
    whose communities each have one grid outside the user's scope): the rule used to take more
    than a minute for 100 grids, holding every request of the server meanwhile (seen in a full
    test run: an export at community level blocked the server for minutes). Now a moment, and
    no withheld cell of a community of several grids can be worked out from that community."""
    rng = random.Random(1)
    names = ["persons", "households", *(f"persons.sex.{s}" for s in "12"),
             *(f"persons.age.{a}" for a in "abcdefgh"),
             *(f"households.status.{h}" for h in ("active", "vacant", "moved", "demolished")),
             "screenings", *(f"screenings.result.{r}" for r in "abcde")]
    places, figures = {}, {}
    for g in range(100):
        code = f"g{g:03d}"
        community = rng.choice(["", f"330100001{g:03d}", f"330100001{g:03d}",
                                f"3301000019{g % 7}"])
        places[code] = ("", "", community)  # grids outside any district: the city's own
        counts = {n: rng.choice([0] * 6 + [1, 2, 3, 6]) for n in names}
        counts["persons"] = sum(counts[f"persons.sex.{s}"] for s in "12")
        figures[code] = {k: v for k, v in counts.items() if v}
    sets = equation_sets(places)
    started = time.monotonic()
    hidden = {}
    for group, group_sets in components(list(places), sets):
        hidden.update(withhold({g: figures[g] for g in group}, group_sets, SMALL))
    assert time.monotonic() - started < 5
    names = {n for f in figures.values() for n in f}  # type: ignore[assignment]
    communities: dict[str, list[str]] = defaultdict(list)
    for code, place in places.items():
        communities[place[2]].append(code)
    for code, members in communities.items():
        if not code or len(members) < 2:
            continue
        assert not withheld_cells_worked_out(members, hidden, names), code
        for g in members:
            assert {k for k, v in figures[g].items() if v < SMALL} <= hidden[g]
