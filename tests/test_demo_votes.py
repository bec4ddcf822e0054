"""The demo city's owners' votes (server/demo/votes.py): the register drawn from a compound's
households, every record valid by its schema, an open vote without a result and a closed
election whose stored result is what the server's count gives; once stored, the app lists both
and the recount reproduces the election's bytes."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user

from server.admin import votes as vote_admin
from server.demo import votes as demo
from server.demo.city import City as DemoCity
from server.demo.city import generate_city
from server.demo.residents import DEMO_RESIDENT
from server.domain.scope import DIRECTORY_DB
from server.domain.validation import SchemaRegistry

NOW = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def town() -> DemoCity:
    return generate_city(1000, 2020)


def compound_of(town: DemoCity) -> tuple[str, str]:
    home = next(h for g in town.grids.values() for h in g.households
                if h.get("phone") == DEMO_RESIDENT)
    a = home["address"]
    return a["compound"], f"property_unit:{a['compound']}:{a['building']}-{a['unit']}-{a['room']}"


def test_the_register_and_the_votes_are_valid_and_counted(town: DemoCity) -> None:
    compound, mine = compound_of(town)
    units = demo.register(town, compound)
    assert len(units) > 30 and sum(u["developer_held"] for u in units) == demo.DEVELOPER_UNITS
    assert any(u["_id"] == mine for u in units)
    registry = SchemaRegistry()
    [(motion, open_docs, none), (election, docs, body)] = demo.plan(
        units, compound, "racct", mine, NOW)
    for doc in [*units, motion, election, *(d for d in open_docs + docs
                                            if d["_id"].startswith("ballot:"))]:
        assert registry.problems(doc) == [], doc["_id"]
    assert none is None and body is not None
    assert not any(d.get("unit") == mine for d in open_docs)  # the tour's to cast
    result = json.loads(body)
    assert result["participation"]["met"] and result["passed"]
    assert len(result["elected"]) + len(result["tied"]) >= 5 or result["open_seats"]
    assert any(d.get("created_by") == "racct" and d["unit"] == mine for d in docs)
    assert demo.plan(units, compound, "racct", mine, NOW)[1][2] == body  # deterministic


async def test_stored_the_app_lists_them_and_the_recount_agrees(
        client: TestClient, city: City, town: DemoCity) -> None:
    admin = await city.user("admin")
    resident = await city.user("resident")
    await city.run(lambda: city.couch[DIRECTORY_DB].save({"_id": f"login:{DEMO_RESIDENT}",
                                                          "account": resident}))
    written = await city.run(demo.seed_votes, city.couch, town, DEMO_RESIDENT)
    again = await city.run(demo.seed_votes, city.couch, town, DEMO_RESIDENT)
    assert (written, again) == (2, 0)
    await wait_for_user(client, admin)
    await wait_for_user(client, resident)
    resp = await client.get("/api/votes", headers=basic(admin))
    listed = {v["id"]: v for v in (await resp.json())["votes"]}
    assert listed[demo.OPEN_KEY]["state"] == "open"
    assert listed[demo.ELECTION_KEY]["state"] == "closed" and listed[demo.ELECTION_KEY]["passed"]
    resp = await client.get(f"/api/votes/{demo.ELECTION_KEY}/result", headers=basic(admin))
    recount = await city.run(vote_admin.recount, city.couch, demo.ELECTION_KEY)
    assert recount.identical and recount.body == await resp.read()
    async def seen() -> Any:  # the app learns of the login from the directory's feed
        resp = await client.get(f"/api/votes/{demo.ELECTION_KEY}", headers=basic(resident))
        return resp if resp.status == 200 else None
    resp = await eventually(seen, seconds=5, what="the resident's login known")
    shown: dict[str, Any] = (await resp.json())["vote"]
    [ballot] = shown["my_ballots"]
    assert [ballot["receipt"], "counted"] in shown["result"]["receipts"]
