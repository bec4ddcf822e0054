"""Which figures of grids outside a user's scope are withheld, so that no withheld figure can be
worked out from the figures the same user sees anywhere (issue 13, item 4).

A supervisor sees every area's figures: the city, districts, streets and communities in full,
and grids outside their scope with small counts withheld. Withholding the small count alone
protects nothing: a community's total minus its other grids gives it back, and so does a grid's
`persons` minus its other `persons.sex.*`. The rules, applied by `withhold` to one grid's
figures at a time, in the order given:

1. Primary: a count of a grid outside the user's scope with 0 < count < SMALL is withheld
   (a zero is shown: it singles nobody out).
2. What a user can add up: every area the API or an export shows, as a set of grids, gives one
   equation per figure (the area's figure is the sum of its grids'); `equation_sets` keeps the
   areas that are not the exact sum of smaller ones shown (a street is the sum of its
   communities), since those say nothing more. Within every grid, a total is the sum of each of
   its breakdowns (`relations`: `persons` = the `persons.sex.*`, = the `persons.age.*`, ...).
   Grids of the user's own scope are known numbers; the unknowns are the withheld cells.
3. Complementary, cheap and usually enough: an equation left with exactly one withheld cell
   gives it away, so the smallest other cell of that equation (the next-smallest sibling
   category of the grid, or the same figure of the community's next-smallest grid; a count
   above zero before a zero) is withheld as well, until no equation has exactly one.
4. Complementary, exact: a withheld cell is worked out when the equations (rule 2) combine to
   it alone, i.e. its unit vector lies in their row space; `determined` finds those cells by
   Gaussian elimination. For each such cell the nearest shown cell in the equations around it
   (the smallest, counts above zero first) is withheld too, a partner for every such cell in
   one round, and rules 3 and 4 run again, at most MAX_ROUNDS times; a group that needs more
   gets every count above zero withheld.
5. Beyond protection: a cell that stays worked out when every cell that could hide it is
   withheld follows from figures shown above the grid level (a community with one grid outside
   the scope: its grid's figures are the community's, which the policy shows). Withholding it
   would only pretend, so it is shown. A grid alone in a set of its own is known at once to be
   such a grid.

The same withheld cells go to the API and to every export. Rule 4 works modulo the prime
2**61 - 1: the equations' coefficients are 0 and ±1, and a rank that differs over the rationals
would need the prime to divide one of their minors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

Cell = tuple[str, str]  # (grid code, figure name)
Equation = tuple[tuple[Cell, int], ...]
Group = tuple[frozenset[str], list[frozenset[str]]]  # grids protected together, their sets

PRIME = (1 << 61) - 1
# Rounds of rules 3 and 4 before giving up on precision and withholding every count above zero
# of the group (safe, and what a group that needs so many rounds nearly comes to anyway): a
# request must not hold the server for minutes.
MAX_ROUNDS = 60
VISITED = ("completed", "moved", "demolished")  # as server/domain/figures.py counts visits.covered
# A total and the prefix of one of its breakdowns: the total is the sum of the breakdown.
BREAKDOWNS: tuple[tuple[str, str], ...] = (
    ("households", "households.status."),
    ("visits.households_visited", "visits.latest."),
    ("persons", "persons.sex."),
    ("persons", "persons.age."),
    ("persons", "persons.registration."),
    ("screenings", "screenings.day."),
    ("screenings", "screenings.result."),
    ("screenings", "screenings.health_code."),
    ("screenings", "screenings.risk."),
    ("review.timed", "review.hours."),
    ("mediation.cases", "mediation.kind."),  # mediation cases (server/domain/mediation.py)
    ("mediation.cases", "mediation.outcome."),
    ("mediation.settled", "mediation.outcome.settled."),
    ("mediation.settled", "mediation.days."),
)
REVIEW_TOTALS = frozenset({"review.reviewed", "review.timed"})


def relations(names: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(total, parts) for every breakdown among `names`: total = sum of parts, in every area
    (a name missing from `names` is 0 everywhere, so a breakdown without parts says nothing).
    Every equality among one area's figures must be here: one left out is one an attacker
    could use and this module would not defend."""
    names = set(names)
    out: list[tuple[str, tuple[str, ...]]] = []
    for total, prefix in BREAKDOWNS:
        parts = tuple(sorted(n for n in names if n.startswith(prefix)))
        if parts:
            out.append((total, parts))
    decisions = tuple(sorted(n for n in names if n.startswith("review.")
                             and n.count(".") == 1 and n not in REVIEW_TOTALS))
    if decisions:
        out.append(("review.reviewed", decisions))
    covered = tuple(f"visits.latest.{o}" for o in VISITED if f"visits.latest.{o}" in names)
    if covered:
        out.append(("visits.covered", covered))
    return out


def equation_sets(places: Mapping[str, tuple[str, str, str]]) -> list[frozenset[str]]:
    """The sets of grids whose totals the aggregates show (each a sum over its grids), leaving
    out those that are the exact sum of smaller ones shown. `places`: grid -> (district, street,
    community) as the aggregates group them; an area with an empty code is shown as a child but
    cannot be asked for, so its own children are not shown."""
    levels = ("district", "street", "community")
    shown: set[frozenset[str]] = set()
    groups: dict[tuple[int, str], set[str]] = defaultdict(set)
    for grid, place in places.items():
        for n, code in enumerate(place):
            groups[(n, code)].add(grid)
    # The city's children: districts.
    shown.update(frozenset(grids) for (n, _), grids in groups.items() if n == 0)
    for (n, code), grids in groups.items():
        if not code:
            continue  # not queryable
        shown.add(frozenset(grids))  # the area asked for
        if n + 1 < len(levels):  # its children (a community's are grids: the unknowns)
            children: dict[str, set[str]] = defaultdict(set)
            for grid in grids:
                children[places[grid][n + 1]].add(grid)
            shown.update(frozenset(c) for c in children.values())
    kept: list[frozenset[str]] = []
    owner: dict[str, frozenset[str]] = {}  # each grid's largest set seen so far
    for grids in sorted(shown, key=len):
        covers = {owner.get(g) for g in grids}
        if None not in covers and all(c is not None and c <= grids for c in covers) and sum(
                len(c) for c in covers if c is not None) == len(grids):
            pass  # the disjoint sum of smaller sets (or a repeat): implied
        else:
            kept.append(grids)
        for g in grids:
            owner[g] = grids
    return kept


def components(unknown: Iterable[str],
               sets: Iterable[frozenset[str]]) -> list[Group]:
    """The unknown grids in groups that share no equation, each with its equations' sets
    (restricted to its unknown grids): each group is protected on its own."""
    unknown = set(unknown)
    parent = {g: g for g in unknown}

    def find(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    restricted = [frozenset(s & unknown) for s in sets]
    restricted = list(dict.fromkeys(r for r in restricted if r))
    for r in restricted:
        first, *rest = sorted(r)
        for g in rest:
            parent[find(g)] = find(first)
    members: dict[str, set[str]] = defaultdict(set)
    for g in unknown:
        members[find(g)].add(g)
    by_root: dict[str, list[frozenset[str]]] = defaultdict(list)
    for r in restricted:
        by_root[find(next(iter(r)))].append(r)
    return [(frozenset(m), by_root.get(root, [])) for root, m in sorted(members.items())]


def determined(withheld: Iterable[Cell], equations: Iterable[Equation]) -> set[Cell]:
    """The withheld cells the equations give away: those whose unit vector lies in the row
    space of the equations over the withheld cells (shown cells are known numbers). In the
    reduced row echelon form such a cell is a row of its own."""
    index = {cell: n for n, cell in enumerate(sorted(withheld))}
    cells = sorted(index, key=index.__getitem__)
    pivots: dict[int, dict[int, int]] = {}
    for equation in equations:
        row: dict[int, int] = {}
        for cell, coefficient in equation:
            n = index.get(cell)
            if n is not None:
                row[n] = (row.get(n, 0) + coefficient) % PRIME
        row = {k: v for k, v in row.items() if v}
        for col in [c for c in row if c in pivots]:
            factor = row.get(col, 0)
            if factor:
                for k, v in pivots[col].items():
                    row[k] = (row.get(k, 0) - factor * v) % PRIME
                row = {k: v for k, v in row.items() if v}
        if not row:
            continue
        col = min(row)
        inverse = pow(row[col], PRIME - 2, PRIME)
        row = {k: v * inverse % PRIME for k, v in row.items()}
        for other in pivots.values():
            factor = other.get(col, 0)
            if factor:
                for k, v in row.items():
                    other[k] = (other.get(k, 0) - factor * v) % PRIME
                for k in [k for k, v in other.items() if not v]:
                    del other[k]
        pivots[col] = row
    return {cells[col] for col, row in pivots.items() if len(row) == 1}


def withhold(figures: Mapping[str, Mapping[str, int]], sets: Iterable[frozenset[str]],
             small: int) -> dict[str, frozenset[str]]:
    """The figure names withheld for each grid of one group (`components`), by the rules in the
    module's docstring. `figures`: each grid's counts (a missing name is 0); `sets`: the
    equations' sets of those grids."""
    grids = sorted(figures)
    names = sorted({n for counts in figures.values() for n in counts}
                   | {t for t, _ in relations({n for c in figures.values() for n in c})})
    rels = relations(names)

    def value(cell: Cell) -> int:
        return int(figures[cell[0]].get(cell[1], 0))

    equations: list[Equation] = []
    for grid_set in sets:
        members = sorted(grid_set)
        equations.extend(tuple(((g, name), 1) for g in members) for name in names)
    for g in grids:
        for total, parts in rels:
            equations.append((((g, total), 1), *(((g, p), -1) for p in parts)))
    around: dict[Cell, list[int]] = defaultdict(list)
    for n, equation in enumerate(equations):
        for cell, _ in equation:
            around[cell].append(n)

    withheld = {(g, n) for g in grids for n in names if 0 < value((g, n)) < small}
    # Rule 5 known at once: a grid alone in a set the user sees totals of has every figure
    # given by that set (its area's figure less the known grids), whatever is withheld.
    lone = {(g, n) for s in sets if len(s) == 1 for g in s for n in names}
    withheld -= lone
    shown_anyway: set[Cell] = set(lone)

    def order(cell: Cell) -> tuple[bool, int, Cell]:
        v = value(cell)
        return v == 0, v, cell

    def free(cell: Cell) -> bool:
        return cell not in withheld and cell not in shown_anyway

    def nearest_free(cell: Cell) -> Cell | None:
        """The smallest shown cell nearest `cell` in the equations' graph."""
        seen, layer = {cell}, [cell]
        while layer:
            following: list[Cell] = []
            for c in layer:
                for n in around[c]:
                    for other, _ in equations[n]:
                        if other not in seen:
                            seen.add(other)
                            following.append(other)
            found = [c for c in following if free(c)]
            if found:
                return min(found, key=order)
            layer = following
        return None

    for _ in range(MAX_ROUNDS):
        changed = True
        while changed:  # rule 3
            changed = False
            for equation in equations:
                hidden = [c for c, _ in equation if c in withheld]
                if len(hidden) == 1:
                    candidates = [c for c, _ in equation if free(c)]
                    if candidates:
                        withheld.add(min(candidates, key=order))
                        changed = True
        given_away = determined(withheld, equations)  # rule 4
        if not given_away:
            break
        # A partner for every cell given away in one round (one elimination per round, not
        # per cell: a community of many grids gives away many cells at once).
        partners = {p for p in (nearest_free(c) for c in sorted(given_away)) if p is not None}
        if partners:
            withheld |= partners
        else:  # rule 5
            withheld -= given_away
            shown_anyway |= given_away
    else:  # out of rounds: withhold every count above zero the user could not see anyway
        withheld |= {(g, n) for g in grids for n in names
                     if value((g, n)) > 0 and (g, n) not in shown_anyway}
    out: dict[str, set[str]] = {g: set() for g in grids}
    for g, name in withheld:
        out[g].add(name)
    return {g: frozenset(v) for g, v in out.items()}
