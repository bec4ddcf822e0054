"""The synthetic city (server/demo/city.py): deterministic, the requested size, every document valid
against the schemas and the domain rules, unique ids, and a consistent hierarchy."""

from __future__ import annotations

import collections
import random
from datetime import date
from typing import Any

import pytest

from server.demo.city import (
    BUILDING_AUTHOR,
    CENSUS_CAMPAIGN,
    MAX_GRID,
    MIN_GRID,
    SCREENING_CAMPAIGN,
    TODAY,
    City,
    credit_code,
    credit_code_ok,
    directory_docs,
    generate_city,
    grid_sizes,
    id_number_check,
    iter_grids,
    plan_city,
    worker_name,
)
from server.domain import rules
from server.domain.validation import RECORD_ID, SchemaRegistry

SIZE = 3_000
GRID_KINDS = ("buildings", "households", "persons", "visits", "census", "screenings")


@pytest.fixture(scope="module")
def town() -> City:
    return generate_city(SIZE)


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry()


def by_type(town: City, kind: str) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in town.directory_docs if d["type"] == kind}


def test_same_seed_same_city(town: City) -> None:
    again = generate_city(SIZE)
    assert list(again.docs()) == list(town.docs())
    other = generate_city(SIZE, seed=2021)
    assert list(other.docs()) != list(town.docs())


def test_iter_grids_streams_the_same_grids(town: City) -> None:
    stream = iter_grids(SIZE)
    first = next(stream)  # a generator: one grid at a time
    assert first.code == next(iter(town.grids))
    grids = [first, *stream]
    assert [g.code for g in grids] == list(town.grids)
    assert all(list(g.docs()) == list(town.grids[g.code].docs()) for g in grids)
    assert directory_docs(SIZE) == town.directory_docs


def test_sizes(town: City) -> None:
    households = town.count("households")
    assert abs(households - SIZE) <= SIZE / 100
    for grid in town.grids.values():
        assert MIN_GRID <= len(grid.households) <= MAX_GRID
    persons = town.count("persons")
    assert 2.3 <= persons / households <= 3.1
    sizes = collections.Counter(p["household"] for g in town.grids.values() for p in g.persons)
    assert set(sizes.values()) <= set(range(1, 7))
    assert len(sizes) == households


@pytest.mark.parametrize("households", [200, 201, 450, 599, 600, 601, 1_000, 1_199, 5_000,
                                        20_011, 164_253])
def test_grid_sizes_add_up(households: int) -> None:
    sizes = grid_sizes(households, random.Random(households))
    assert sum(sizes) == households
    assert all(MIN_GRID <= s <= MAX_GRID for s in sizes)


def test_a_small_city_is_one_grid() -> None:
    assert grid_sizes(150, random.Random(1)) == [150]
    small = generate_city(150)
    assert [len(g.households) for g in small.grids.values()] == [150]
    with pytest.raises(ValueError):
        grid_sizes(0, random.Random(1))


def test_the_real_scale_plan() -> None:
    plan = plan_city(164_253)
    assert sum(g.households for g in plan.grids) == 164_253
    kinds = collections.Counter(d["type"] for d in plan.directory_docs)
    assert kinds["grid"] == len(plan.grids) > 400
    assert kinds["district"] >= 2 and kinds["street"] >= 10 and kinds["compound"] > 800
    ids = [d["_id"] for d in plan.directory_docs]
    assert len(ids) == len(set(ids))
    names = [d["name"] for d in plan.directory_docs if d["type"] in ("compound", "community")]
    assert len(names) == len(set(names))


def test_every_document_is_valid(town: City, registry: SchemaRegistry) -> None:
    problems = []
    for doc in town.docs():
        problems += [(doc["_id"], p) for p in registry.problems(doc)]
        assert RECORD_ID.match(doc["_id"])["type"] == doc["type"], doc["_id"]
    assert problems == []
    for doc in town.directory_docs:
        assert registry.schemas[(doc["type"], 1)]["x-database"] == "directory"
        assert "grid" not in doc or doc["type"] == "grid"
    for code, grid in town.grids.items():
        for doc in grid.docs():
            assert registry.schemas[(doc["type"], 1)]["x-database"] == "grid"
            assert doc["grid"] == code


def test_persons_pass_the_rules(town: City) -> None:
    for grid in town.grids.values():
        for person in grid.persons:
            assert rules.person_problems(person, TODAY) == [], person["_id"]
            n = person["id_number"]
            assert rules.id_check_char(n[:17]) == n[17]
            assert rules.id_sex(n) == person["sex"]
            born = rules.id_birth_date(n)
            assert born is not None and born < TODAY
            assert (born.year, born.month) == (person["birth_year"], person["birth_month"])
            assert n[:2] in ("33", "34", "35", "36", "41", "43", "51", "52")


def test_the_check_character_is_the_rules_one() -> None:
    rng = random.Random(5)
    for _ in range(2_000):
        first17 = "".join(rng.choice("0123456789") for _ in range(17))
        assert id_number_check(first17) == rules.id_check_char(first17)


def test_every_room_exists(town: City) -> None:
    for grid in town.grids.values():
        buildings = {(b["compound"], b["number"]): b for b in grid.buildings}
        rooms = set()
        for household in grid.households:
            address = household["address"]
            building = buildings.get((address["compound"], address["building"]))
            assert rules.room_problems(address, building) == [], household["_id"]
            rooms.add((address["compound"], address["building"], address["unit"],
                       address["room"]))
        assert len(rooms) == len(grid.households)  # one household per room
        for b in grid.buildings:
            assert b["created_by"] == BUILDING_AUTHOR
            assert b["_id"] == f"building:{b['compound']}-{b['number']}"
            for unit in b["units"]:
                assert 5 <= unit["floors"] <= 33 and 2 <= unit["rooms_per_floor"] <= 4
            assert 1 <= len(b["units"]) <= 4


def test_ids_are_unique(town: City) -> None:
    ids = [d["_id"] for d in town.docs()]
    assert len(ids) == len(set(ids))
    numbers = [p["id_number"] for g in town.grids.values() for p in g.persons]
    assert len(numbers) == len(set(numbers))


def test_hierarchy(town: City) -> None:
    districts = by_type(town, "district")
    streets = by_type(town, "street")
    communities = by_type(town, "community")
    grids = by_type(town, "grid")
    compounds = by_type(town, "compound")
    companies = by_type(town, "property_company")
    assert {"district:330802"} <= set(districts)
    for d in districts.values():
        assert len(d["code"]) == 6 and d["code"].startswith("3308")
    for s in streets.values():
        assert f"district:{s['district']}" in districts
        assert len(s["code"]) == 9 and s["code"].startswith(s["district"])
        assert s["name"].endswith("街道")
    for c in communities.values():
        assert f"street:{c['street']}" in streets
        assert len(c["code"]) == 12 and c["code"].startswith(c["street"])
        assert streets[f"street:{c['street']}"]["district"] == c["district"]
        assert c["name"].endswith("社区")
    assert set(grids) == {f"grid:{code}" for code in town.grids}
    for g in grids.values():
        community = communities[f"community:{g['community']}"]
        assert (community["street"], community["district"]) == (g["street"], g["district"])
        assert g["code"].startswith("g" + g["community"])
        assert g["name"].startswith(community["name"]) and g["name"].endswith("网格")
    for c in compounds.values():
        assert f"community:{c['community']}" in communities
        assert 1 <= len(c["aliases"]) <= 2 and c["name"] not in c["aliases"]
        assert "property_company" not in c or c["property_company"] in companies
    for company in companies.values():
        assert credit_code_ok(company["code"])
        assert company["code"][2:8] in {d["code"] for d in districts.values()}

    for code, grid in town.grids.items():
        community = grids[f"grid:{code}"]["community"]
        assert grid.worker == worker_name(code) == f"w_{code}"
        households = {h["_id"]: h for h in grid.households}
        persons = {p["_id"]: p for p in grid.persons}
        for b in grid.buildings:
            assert compounds[f"compound:{b['compound']}"]["community"] == community
        for h in households.values():
            compound = compounds[f"compound:{h['address']['compound']}"]
            assert compound["community"] == community
            assert h["address"]["compound_name"] == compound["name"]
            key = h["_id"].removeprefix("household:")
            assert h["registry"]["code"] == key and key.startswith(community)
        for p in persons.values():
            assert p["household"] in households
        for v in grid.visits:
            assert v["household"] in households
        for c in grid.census:
            assert c["household"] in households
        for s in grid.screenings:
            assert s["person"] in persons and persons[s["person"]]["household"] == s["household"]
        for doc in [*grid.households, *grid.persons, *grid.visits, *grid.census,
                    *grid.screenings]:
            assert doc["created_by"] == grid.worker


def test_compounds_lie_in_one_grid(town: City) -> None:
    grid_of: dict[str, set[str]] = collections.defaultdict(set)
    for code, grid in town.grids.items():
        for h in grid.households:
            grid_of[h["address"]["compound"]].add(code)
    assert all(len(g) == 1 for g in grid_of.values())
    assert set(grid_of) == {d["code"] for d in town.directory_docs if d["type"] == "compound"}


def test_families_are_consistent(town: City) -> None:
    children = shared = 0
    for grid in town.grids.values():
        members: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for p in grid.persons:
            members[p["household"]].append(p)
        for h in grid.households:
            family = members[h["_id"]]
            key = h["_id"].removeprefix("household:")
            assert [p["_id"] for p in family] == [f"person:{key}-{n}"
                                                  for n in range(1, len(family) + 1)]
            head = family[0]
            assert head["relationship"] == "0"
            assert [p["relationship"] for p in family].count("0") == 1
            assert h["head_name"] == head["name"]
            assert TODAY.year - head["birth_year"] >= 18
            spouses = [p for p in family if p["relationship"] == "1"]
            assert len(spouses) <= 1
            for s in spouses:
                assert s["sex"] != head["sex"]
                assert s["marital_status"] == head["marital_status"] == "2"
            for p in family:
                assert 2 <= len(p["name"]) <= 3
                gap = p["birth_year"] - head["birth_year"]
                if p["relationship"] == "2":
                    assert gap >= 15, p["_id"]
                    children += 1
                    parents = {head["name"][0], *(s["name"][0] for s in spouses)}
                    shared += p["name"][0] in parents
                elif p["relationship"] in ("3", "4"):
                    assert gap <= -15, p["_id"]
                elif p["relationship"] == "7":
                    assert gap >= 30, p["_id"]
            if h["household_type"] == "family":
                assert {p["relationship"] for p in family[1:]} <= set("12345678")
            if "elderly_alone" in h.get("special_groups", ()):
                assert len(family) == 1 and TODAY.year - head["birth_year"] >= 65
            assert ("area_m2" in h) == (h["tenure"] == "owned")
    assert shared / children > 0.85


def test_distributions(town: City) -> None:
    households = [h for g in town.grids.values() for h in g.households]
    persons = [p for g in town.grids.values() for p in g.persons]
    tenure = collections.Counter(h["tenure"] for h in households)
    assert 0.64 < tenure["owned"] / len(households) < 0.76
    assert 0.19 < tenure["rented"] / len(households) < 0.31
    assert collections.Counter(h["registry"]["source"] for h in households).most_common(1)[0][
        0] == "public_security"
    assert sum(h["status"] == "active" for h in households) / len(households) > 0.9
    assert sum(h["household_type"] == "collective" for h in households) < len(households) / 50
    assert sum(p["ethnicity"] == "01" for p in persons) / len(persons) > 0.98
    assert sum(p["residence_status"] == "consistent" for p in persons) / len(persons) > 0.7
    adults = [p for p in persons if TODAY.year - p["birth_year"] >= 19]
    assert sum("phone" in p for p in adults) / len(adults) > 0.8
    assert not any("phone" in p for p in persons if TODAY.year - p["birth_year"] < 18)
    sexes = collections.Counter(p["sex"] for p in persons)
    assert 0.45 < sexes["1"] / len(persons) < 0.55


def test_work_already_done(town: City) -> None:
    households = town.count("households")
    visited = {v["household"] for g in town.grids.values() for v in g.visits}
    assert 0.55 < len(visited) / households < 0.65
    assert 0.26 < town.count("census") / households < 0.34
    assert 0.12 < town.count("screenings") / town.count("persons") < 0.18
    outcomes = collections.Counter(v["outcome"] for g in town.grids.values() for v in g.visits)
    assert outcomes.most_common(1)[0][0] == "completed"
    assert outcomes["nobody_home"] > 0 and outcomes["refused"] > 0
    for grid in town.grids.values():
        for v in grid.visits:
            n = int(v["_id"].rsplit("-", 1)[1])
            assert v["_id"] == f"household_visit:{v['household'].removeprefix('household:')}-{n}"
            assert date(2026, 1, 1) <= date.fromisoformat(v["visited_on"]) < TODAY
            assert v["device_time"].startswith(v["visited_on"])
        for c in grid.census:
            key = c["household"].removeprefix("household:")
            assert c["_id"] == f"census_household:{key}-{CENSUS_CAMPAIGN}"
            assert c["campaign"] == CENSUS_CAMPAIGN
            assert date(2026, 1, 1) <= date.fromisoformat(c["enumerated_on"]) < TODAY
        for s in grid.screenings:
            key = s["person"].removeprefix("person:")
            assert s["_id"] == f"screening:{key}-{SCREENING_CAMPAIGN}"
            assert s["campaign"] == SCREENING_CAMPAIGN
            assert date(2026, 1, 1) <= date.fromisoformat(s["screened_on"]) < TODAY
    screenings = [s for g in town.grids.values() for s in g.screenings]
    normal = sum(36.0 <= s["temperature"] <= 37.5 for s in screenings)
    assert normal / len(screenings) > 0.95
    assert sum(s["health_code"] == "green" for s in screenings) / len(screenings) > 0.9


def test_another_today(registry: SchemaRegistry) -> None:
    today = date(2025, 3, 10)
    small = generate_city(400, seed=3, today=today)
    for doc in small.docs():
        assert registry.problems(doc) == []
        if doc["type"] == "person":
            assert rules.person_problems(doc, today) == []
        for field in ("visited_on", "enumerated_on", "screened_on"):
            if field in doc:
                assert date.fromisoformat(doc[field]) < today


def test_credit_codes() -> None:
    # Two real codes (both check characters right), and one with a digit changed.
    assert credit_code_ok("91110000802100433B")
    assert credit_code_ok("91350100M000100Y43")
    assert not credit_code_ok("91110000802100434B")
    code = credit_code("330802", "12345678")
    assert code.startswith("91330802") and credit_code_ok(code)
