"""server/domain/allowed_ids.py: the ids each resident's phone may hold, kept from the changes
feeds; what leaves a phone when access ends; and its size for a city."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from server.domain.allowed_ids import RESIDENTS, AllowedIds

G1, G2 = "grid:g1", "grid:g2"


def household(code: str, grid: str = "g1", building: str = "3", **fields: Any) -> dict[str, Any]:
    return {"_id": f"household:{code}", "type": "household", "grid": grid, "status": "active",
            "address": {"compound": "fmj", "building": building, "room": "301"}, **fields}


def person(code: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"_id": f"person:{code}-{n}", "type": "person", "household": f"household:{code}",
            "status": "present", **fields}


def link(account: str, code: str, status: str = "active") -> dict[str, Any]:
    return {"_id": f"resident:{account}-{code}", "type": "resident", "account": account,
            "household": f"household:{code}", "status": status, "role": "owner"}


def notice(key: str, level: str, codes: list[str], status: str = "published",
           **fields: Any) -> dict[str, Any]:
    return {"_id": f"notice:{key}", "type": "notice", "status": status,
            "audience": {"level": level, "codes": codes, **fields}}


def building_of_two() -> AllowedIds:
    """Two households of one building (grid g1) and one in grid g2, a resident each."""
    index = AllowedIds()
    index.apply({"_id": "grid:g1", "type": "grid", "code": "g1", "community": "c1",
                 "street": "s1"}, "directory")
    index.apply({"_id": "grid:g2", "type": "grid", "code": "g2", "community": "c2",
                 "street": "s1"}, "directory")
    for code, grid in (("h1", "g1"), ("h2", "g1"), ("h3", "g2")):
        index.apply(household(code, grid, special_groups=["elderly_alone"] if code == "h1"
                              else []), f"grid:{grid}")
        for n in (1, 2):
            index.apply(person(code, n), f"grid:{grid}")
    for account, code, grid in (("r.wang", "h1", "g1"), ("r.li", "h2", "g1"),
                                ("r.zhao", "h3", "g2")):
        index.apply(link(account, code), f"grid:{grid}")
    return index


def test_a_record_stored_under_the_same_id_in_another_grid_changes_nothing() -> None:
    """A worker of grid g2 stores a household, a member and a link under the ids of g1's
    records (ids are the registry's codes, not the grid's): g1's resident keeps their own
    household and members, and a resident linked in g2 holds g2's copy only, never g1's."""
    index = building_of_two()
    before = index.allowed("r.wang")
    index.apply(household("h1", "g2", head_name="伪造户主", status="moved_out"), G2)
    index.apply(person("h1", 1, status="moved_out"), G2)
    index.apply(person("h1", 9), G2)
    index.apply(link("r.wang", "h1", status="removed"), G2)
    assert index.allowed("r.wang") == before
    assert index.homes("r.wang") == {"household:h1": "g1"}
    index.apply(household("h1", "g2"), G2)
    index.apply(link("r.intruder", "h1"), G2)
    assert index.allowed("r.intruder")[G2] == {"resident:r.intruder-h1", "household:h1",
                                               "person:h1-9"}
    assert G1 not in index.allowed("r.intruder")
    assert index.allowed("r.wang") == before


def test_a_resident_holds_their_household_and_its_members_only() -> None:
    index = building_of_two()
    assert index.allowed("r.wang") == {G1: {"household:h1", "person:h1-1", "person:h1-2",
                                            "resident:r.wang-h1"}}
    assert index.allowed("r.li") == {G1: {"household:h2", "person:h2-1", "person:h2-2",
                                          "resident:r.li-h2"}}
    assert index.allowed("r.nobody") == {}


def test_notices_reach_their_audience() -> None:
    index = building_of_two()
    index.apply(notice("city", "city", []), RESIDENTS)
    index.apply(notice("c1", "community", ["c1"]), RESIDENTS)
    index.apply(notice("g2", "grid", ["g2"]), RESIDENTS)
    index.apply(notice("b3", "building", ["fmj-3"]), RESIDENTS)
    index.apply(notice("old", "community", ["c1"], tags=["elderly_alone"]), RESIDENTS)
    index.apply(notice("draft", "city", [], status="draft"), RESIDENTS)
    assert index.allowed("r.wang")[RESIDENTS] == {"notice:city", "notice:c1", "notice:b3",
                                                   "notice:old"}
    assert index.allowed("r.li")[RESIDENTS] == {"notice:city", "notice:c1", "notice:b3"}
    assert index.allowed("r.zhao")[RESIDENTS] == {"notice:city", "notice:g2", "notice:b3"}


def test_own_submissions_follow_the_household() -> None:
    index = building_of_two()
    index.apply({"_id": "correction_request:1", "created_by": "r.wang",
                 "household": "household:h1"}, G1)
    index.apply({"_id": "notice_receipt:1", "created_by": "r.wang",
                 "household": "household:h1"}, RESIDENTS)
    index.apply({"_id": "data_request:1", "created_by": "r.wang",
                 "household": "household:h1"}, RESIDENTS)
    index.apply({"_id": "correction_request:2", "created_by": "r.li",
                 "household": "household:h2"}, G1)
    wang = index.allowed("r.wang")
    assert {"correction_request:1"} <= wang[G1] and "correction_request:2" not in wang[G1]
    assert wang[RESIDENTS] == {"notice_receipt:1", "data_request:1"}
    index.apply(link("r.wang", "h1", status="removed"), G1)  # moved out
    assert index.allowed("r.wang") == {RESIDENTS: {"data_request:1"}}  # owed to the person


def test_a_submission_naming_another_household_reaches_no_one() -> None:
    """A forged `household` (refused at the gate by server/domain/resident_writes.py) would
    still show nothing: not to its author, whose household it is not, nor to the household's
    resident, whose submission it is not."""
    index = building_of_two()
    index.apply({"_id": "correction_request:9", "created_by": "r.li",
                 "household": "household:h1"}, G1)
    assert "correction_request:9" not in index.allowed("r.li")[G1]
    assert "correction_request:9" not in index.allowed("r.wang")[G1]


def test_moving_out_purges_the_household_from_the_phone() -> None:
    index = building_of_two()
    index.apply(notice("c1", "community", ["c1"]), RESIDENTS)
    held = {database: set(ids) for database, ids in index.allowed("r.wang").items()}
    assert index.purge("r.wang", held) == {}
    touched = index.apply(link("r.wang", "h1", status="removed"), G1)
    assert touched == {"account:r.wang"}
    held[G1].add("_local/checkpoint")
    assert index.purge("r.wang", held) == {
        G1: ["household:h1", "person:h1-1", "person:h1-2", "resident:r.wang-h1"],
        RESIDENTS: ["notice:c1"]}
    assert index.allowed("r.li")[G1] >= {"household:h2"}  # the neighbour keeps theirs


def test_a_withdrawn_or_deleted_notice_leaves_every_phone() -> None:
    index = building_of_two()
    index.apply(notice("c1", "community", ["c1"]), RESIDENTS)
    index.apply(notice("city", "city", []), RESIDENTS)
    touched = index.apply(notice("c1", "community", ["c1"], status="withdrawn"), RESIDENTS)
    assert touched == {"community:c1"}
    assert index.purge("r.li", {RESIDENTS: ["notice:c1", "notice:city"]}) == {
        RESIDENTS: ["notice:c1"]}
    index.apply({"_id": "notice:city", "_deleted": True}, RESIDENTS)
    assert index.allowed("r.li").get(RESIDENTS, frozenset()) == frozenset()


def test_a_notice_moved_to_another_audience_is_refiled() -> None:
    index = building_of_two()
    index.apply(notice("n", "grid", ["g1"]), RESIDENTS)
    index.apply(notice("n", "grid", ["g2"]), RESIDENTS)
    assert "notice:n" not in index.allowed("r.wang").get(RESIDENTS, ())
    assert "notice:n" in index.allowed("r.zhao")[RESIDENTS]


def test_members_come_and_go() -> None:
    index = building_of_two()
    index.apply(person("h1", 2, status="moved_out"), G1)
    index.apply(person("h1", 1, household="household:h2"), G1)  # recorded in another household
    assert index.allowed("r.wang")[G1] == {"household:h1", "resident:r.wang-h1"}
    assert "person:h1-1" in index.allowed("r.li")[G1]
    index.apply({"_id": "person:h1-1", "_deleted": True}, G1)
    assert "person:h1-1" not in index.allowed("r.li")[G1]


def test_a_household_moved_out_or_deleted_gives_nothing_and_can_return() -> None:
    index = building_of_two()
    index.apply(notice("c1", "community", ["c1"]), RESIDENTS)
    index.apply(household("h1", status="moved_out"), G1)
    assert index.allowed("r.wang") == {}
    index.apply(household("h1"), G1)
    assert index.allowed("r.wang")[G1] >= {"person:h1-1", "person:h1-2"}
    index.apply({"_id": "household:h1", "_deleted": True}, G1)
    assert index.allowed("r.wang") == {}


def test_changes_before_their_household_arrive_in_any_order() -> None:
    index = AllowedIds()
    index.apply(link("r.wang", "h1"), G1)
    index.apply(person("h1", 1), G1)
    assert index.allowed("r.wang") == {}  # no household stored yet
    index.apply(household("h1"), G1)
    assert index.allowed("r.wang")[G1] == {"household:h1", "person:h1-1", "resident:r.wang-h1"}
    index.apply(notice("c1", "community", ["c1"]), RESIDENTS)
    assert RESIDENTS not in index.allowed("r.wang")  # the grid's community is not known yet
    index.apply({"_id": "grid:g1", "code": "g1", "community": "c1", "street": "s1"},
                "directory")
    assert index.allowed("r.wang")[RESIDENTS] == {"notice:c1"}


def test_the_follow_up_is_fed_by_the_index() -> None:
    index = building_of_two()
    index.apply(household("h4"), G1)  # nobody has signed up for it
    places = index.places()
    assert set(places) == {"household:h1", "household:h2", "household:h3", "household:h4"}
    assert places["household:h1"].community == "c1" and "elderly_alone" in places[
        "household:h1"].tags
    assert index.with_residents() == {"household:h1", "household:h2", "household:h3"}


def test_feed_keys_wake_only_the_phones_concerned() -> None:
    index = building_of_two()
    touched = index.apply(notice("g2", "grid", ["g2"]), RESIDENTS)
    assert touched & index.keys("r.zhao") and not touched & index.keys("r.wang")
    touched = index.apply(person("h1", 3), G1)
    assert touched & index.keys("r.wang") and not touched & index.keys("r.li")
    assert "city:" in index.keys("r.nobody")


def test_foreign_and_broken_changes_are_ignored() -> None:
    index = building_of_two()
    before = index.sizes()
    for doc in ({"_id": "_design/x"}, {"_id": 7}, {}, {"_id": "household_visit:1"},
                {"_id": "grid:g9", "_deleted": True}, {"_id": "notice:x", "status": "published",
                                                        "audience": "city"}):
        source = RESIDENTS if str(doc.get("_id")).startswith("notice:") else G1
        assert index.apply(doc, source) == frozenset()
    assert index.sizes() == before


# -- size for a city ----------------------------------------------------------------------

RESIDENTS_MEASURED = 10_000
CITY_RESIDENTS = 160_000
# Issue 15's budget was 300 MB; the server's memory at the full city (issue 21: ≤ 200 MB
# beside an export) asks for less: 263 MiB measured here before the index's records shrank.
BUDGET_BYTES = 200 * 1024 * 1024


def synthetic_city(residents: int) -> Iterator[tuple[dict[str, Any], str]]:
    """A city shaped like the seed: ~100 households per grid, 10 grids per community, 3 present
    members a household, 1.1 residents per household, 800 notices over communities and grids.
    Made as the index takes it, so each change is dropped once applied, as a feed's are."""
    households = residents * 10 // 11
    grids = households // 100 + 1
    for g in range(grids):
        yield ({"_id": f"grid:g{g}", "code": f"g{g}", "community": f"c{g // 10}",
                "street": f"s{g // 100}"}, "directory")
    for h in range(households):
        code, source = f"3308020010010{h:06d}", f"grid:g{h // 100}"
        yield household(code, f"g{h // 100}", building=str(h % 40), tenure="owned"), source
        yield from ((person(code, n), source) for n in (1, 2, 3))
    for r in range(residents):
        h = r % households
        yield link(f"r.{r:07d}", f"3308020010010{h:06d}"), f"grid:g{h // 100}"
    for n in range(800):
        level, codes = ("community", [f"c{n % (grids // 10 + 1)}"]) if n % 2 else (
            "grid", [f"g{n % grids}"])
        yield notice(str(n), level, codes), RESIDENTS


def build(changes: Iterable[tuple[dict[str, Any], str]]) -> AllowedIds:
    index = AllowedIds()
    for doc, source in changes:
        index.apply(doc, source)
    return index


@pytest.mark.slow  # ten thousand residents: a measurement
def test_the_index_for_a_city_fits_its_budget() -> None:
    """Measured: tracemalloc on 10,000 residents (9,090 households, 27,270 members, 800
    notices), scaled to 160,000 residents; within `BUDGET_BYTES`, built ≤ 60 s. On the
    development machine (`pytest -s` prints it): 1,017 B a resident, 155 MiB for the city
    (1,721 B and 263 MiB with a set per household, a tuple key per member and a frozenset of
    tags each); 0.2-0.7 s to build for 10,000 (3-11 s for the city), changes made included,
    as busy as the machine was; allowed() about 30 µs a resident."""
    started = time.perf_counter()
    build(synthetic_city(RESIDENTS_MEASURED))
    built = time.perf_counter() - started
    gc.collect()
    tracemalloc.start()
    index = build(synthetic_city(RESIDENTS_MEASURED))
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_resident = held / RESIDENTS_MEASURED
    print(f"\nallowed-ids index: {per_resident:.0f} B per resident, "
          f"{per_resident * CITY_RESIDENTS / 2**20:.0f} MiB for {CITY_RESIDENTS:,}; "
          f"built in {built:.2f} s for {RESIDENTS_MEASURED:,}")
    assert per_resident * CITY_RESIDENTS <= BUDGET_BYTES
    assert built * CITY_RESIDENTS / RESIDENTS_MEASURED <= 60
    allowed = index.allowed("r.0000042")
    assert len(allowed["grid:g0"]) == 5 and allowed[RESIDENTS]
    started = time.perf_counter()
    for r in range(RESIDENTS_MEASURED):
        index.allowed(f"r.{r:07d}")
    asked = (time.perf_counter() - started) / RESIDENTS_MEASURED
    print(f"allowed(): {asked * 1e6:.0f} µs a resident")
    assert asked < 0.001  # a sync's first step, far below the 1 s for a first sync
