"""The demo city's residents (server/demo/residents.py, seed.seed_residents): sign-ups gone the
way the server takes them (most activated at once, some by a worker's code, some waiting in a
grid's queue), every record valid as the server's own write, deterministic; and once stored,
the demo resident logs in by phone and sees their household, the pending one sees none."""

from __future__ import annotations

import asyncio
import collections
import datetime
from pathlib import Path
from typing import Any

import couchdb
import pytest
import test_demo_liaison
import test_demo_mediation
import test_demo_party
from conftest import Templates, basic, eventually
from test_pwa import load_demo_city

from server.config import Config
from server.demo.city import City, generate_city
from server.demo.loader import load_demo
from server.demo.residents import DEMO_PENDING, DEMO_RESIDENT, plan_residents
from server.demo.seed import DEMO_PASSWORD, SIGNUP_SERVER
from server.domain import signup
from server.domain.audience import includes, place_of
from server.domain.notices import draft_problems
from server.domain.resident_writes import resident_write_problem
from server.domain.validation import DEFAULT_LIMITS, SchemaRegistry, check_document, write_context
from server.store.embedded import EmbeddedStore
from server.web.app import create_app
from server.web.keys import DIRECTORY

HOUSEHOLDS, SEED = 1000, 2020
COMMUNITY = "330802001001"


@pytest.fixture(scope="module")
def town() -> City:
    return generate_city(HOUSEHOLDS, SEED)


def by_type(plan: Any) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for docs in plan.grids.values():
        for doc in docs:
            found[doc["type"]].append(doc)
    return found


def test_the_same_seed_gives_the_same_residents(town: City) -> None:
    one, two = (plan_residents(town, COMMUNITY, "hash", SEED) for _ in range(2))
    assert (one.grids, one.directory) == (two.grids, two.directory)
    assert plan_residents(town, COMMUNITY, "hash", SEED + 1).directory != one.directory


def test_every_way_a_sign_up_goes_is_there(town: City) -> None:
    plan = plan_residents(town, COMMUNITY, "hash", SEED)
    assert plan.outcomes["activated"] >= 30
    assert plan.outcomes["by_code"] >= 3
    assert plan.outcomes.get("queued_ambiguous", 0) + plan.outcomes.get(
        "queued_unmatched", 0) >= 5
    docs = by_type(plan)
    accounts = [d for d in plan.directory if d["type"] == "user"]
    assert len(accounts) == len(docs["signup"]) == sum(plan.outcomes.values())
    logins = [d for d in plan.directory if d["type"] == "login"]
    assert len({d["_id"] for d in logins}) == len(accounts)  # one account per phone
    assert all(a["role"] == "resident" and a["password"] == "hash" for a in accounts)


def test_every_record_passes_the_servers_checks_and_names_what_exists(town: City) -> None:
    plan = plan_residents(town, COMMUNITY, "hash", SEED)
    registry = SchemaRegistry()
    households = {h["_id"]: h for g in town.grids.values() for h in g.households}
    for grid, docs in plan.grids.items():
        ctx = write_context(SIGNUP_SERVER, grid, DEFAULT_LIMITS)
        for doc in docs:
            assert check_document(doc, ctx, registry, 0) is None, doc["_id"]
            if doc["type"] in ("resident", "activation_code"):
                assert households[doc["household"]]["grid"] == grid
    docs = by_type(plan)
    signups = {d["account"]: d for d in docs["signup"]}
    for link in docs["resident"]:
        assert link["status"] == "active"
        if link["activation"] == "automatic":  # rule 4 of domain/signup.py held
            home = households[link["household"]]
            assert signups[link["account"]]["status"] == "activated"
            assert signup.registry_role(signups[link["account"]]["name"], home) == link["role"]
    codes = {d["used_by"]: d for d in docs["activation_code"]}
    by_code = [link for link in docs["resident"] if link["activation"] == "code"]
    assert len(by_code) == len(codes) and all(
        codes[link["account"]]["household"] == link["household"] for link in by_code)
    accounts = {d["name"]: d for d in plan.directory if d["type"] == "user"}
    for link in docs["resident"]:
        assert link["grid"] in accounts[link["account"]]["resident"]["grids"]


def test_the_demo_logins_are_one_activated_and_one_waiting(town: City) -> None:
    plan = plan_residents(town, COMMUNITY, "hash", SEED)
    logins = {d["_id"]: d["account"] for d in plan.directory if d["type"] == "login"}
    docs = by_type(plan)
    signups = {d["account"]: d for d in docs["signup"]}
    links = {d["account"]: d for d in docs["resident"]}
    resident, pending = logins[f"login:{DEMO_RESIDENT}"], logins[f"login:{DEMO_PENDING}"]
    assert signups[resident]["status"] == "activated" and links[resident]["role"] == "owner"
    assert signups[pending]["status"] == "pending" and pending not in links
    assert signups[pending]["grid"] == "g330802001001a"  # the community's first grid's queue


def test_notices_are_as_the_route_makes_them_and_receipts_are_their_readers(
        town: City) -> None:
    """Each notice passes the checks of POST /api/notices; each receipt passes a resident's
    write rules (their own household, a notice they can see); some read, some confirmed, and
    in each audience some not: the follow-up has households to visit."""
    plan = plan_residents(town, COMMUNITY, "hash", SEED)
    registry = SchemaRegistry()
    notices = {d["_id"]: d for d in plan.notices if d["type"] == "notice"}
    assert len(notices) == 4 and any(n["audience"].get("tags") for n in notices.values())
    for notice in notices.values():
        draft = {k: notice[k] for k in ("title", "body", "audience", "pinned",
                                        "needs_confirmation")}
        published = datetime.datetime.fromisoformat(notice["published_at"])
        assert draft_problems(draft, published) == [] and registry.problems(notice) == []
    households = {h["_id"]: h for g in town.grids.values() for h in g.households}
    grids = {d["code"]: d for d in town.directory_docs if d["type"] == "grid"}
    links = [d for d in by_type(plan)["resident"] if d["status"] == "active"]
    receipts = [d for d in plan.notices if d["type"] == "notice_receipt"]
    for receipt in receipts:
        homes = {link["household"]: link["grid"] for link in links
                 if link["account"] == receipt["created_by"]}
        home = households[receipt["household"]]
        grid = grids[home["grid"]]
        place = place_of(home, grid["community"], grid["street"])
        assert place is not None
        visible = frozenset(n for n, doc in notices.items() if includes(doc["audience"], place))
        assert resident_write_problem(receipt, None, receipt["created_by"], homes,
                                      visible) is None, receipt["_id"]
        assert registry.problems(receipt) == []
    asked = [n for n, d in notices.items() if d["needs_confirmation"]]
    confirmed = [r for r in receipts if r["notice"] in asked and r.get("confirmed_at")]
    unconfirmed = [r for r in receipts if r["notice"] in asked and not r.get("confirmed_at")]
    assert confirmed and unconfirmed
    water = next(n for n, d in notices.items() if d["title"].endswith("停水通知"))
    assert 0 < sum(r["notice"] == water for r in receipts) < len(links)


@pytest.mark.slow  # the demo city of scripts/serve, served on a store of its own
async def test_served_the_demo_resident_logs_in_and_sees_their_household(
        aiohttp_client: Any, tmp_path: Path, templates: Templates) -> None:
    """On a copy of the run's demo city, which `linli serve --demo`'s app loaded into an empty
    store (tests/test_pwa.py, load_demo_city): served again, the app loads it again at its start
    and rewrites nothing. (Loading it from empty here too, then again, proved what the
    template's load and this one do.)"""
    data = await templates.copy("demo-city", load_demo_city, tmp_path)
    store = EmbeddedStore(data / "store")
    await store.start()
    try:
        config = Config.from_mapping({"data": data, "couchdb_url": store.url, "demo": True,
                                      "aggregates_warm_up": False})
        couch = couchdb.Server(store.url)

        def seqs() -> list[Any]:
            """The grids' update sequences and the residents' accounts' revisions (the grid
            documents of the directory are `linli grid add`'s, rewritten by every seed)."""
            accounts = [row.value["rev"] for row in couch["linli-directory"].view(
                "_all_docs", startkey="login:", endkey="login:\ufff0")]
            accounts += [row.value["rev"] for row in couch["linli-directory"].view(
                "_all_docs", startkey="user:r", endkey="user:r\ufff0")]
            return [len(accounts), accounts, *(couch[db].info()["update_seq"] for db in (
                "grid-g330802001001a", "grid-g330802001001b"))]

        before = await asyncio.to_thread(seqs)
        assert before[0] > 0  # the city is there, its residents' accounts too
        client = await aiohttp_client(create_app(config, load_demo=load_demo))
        assert await asyncio.to_thread(seqs) == before  # loaded again at start: nothing new
        await signed_in(client)
        await test_demo_party.served(client)
        await test_demo_mediation.served(client)
        await test_demo_liaison.served(client)
    finally:
        await store.stop()


async def signed_in(client: Any) -> None:
    """The demo resident is active in their household and has it in my data; the pending one
    has none."""
    directory = client.app[DIRECTORY]
    await eventually(lambda: directory.user(DEMO_RESIDENT), what="the demo resident")
    resp = await client.get("/api/me", headers=basic(DEMO_RESIDENT, DEMO_PASSWORD))
    me = (await resp.json())["resident"]
    assert me["state"] == "active"
    [link] = me["households"]
    assert link["record"]["head_name"] and link["role"] == "owner"
    mine = await client.get("/api/residents/my-data", headers=basic(DEMO_RESIDENT,
                                                                   DEMO_PASSWORD))
    assert (await mine.json())["households"] == [link["household"]]
    # The community's supervisor follows the water notice up: some households done, some to
    # visit (its receipts came from the demo's residents).
    await eventually(lambda: directory.user("chen.jing"), what="the supervisor")
    listed = await client.get("/api/notices", headers=basic("chen.jing", DEMO_PASSWORD))
    assert listed.status == 200, await listed.text()
    found = await listed.json()
    water = next(n for n in found["notices"] if n["title"].endswith("停水通知"))
    resp = await client.get(f"/api/notices/{water['_id']}/follow-up",
                            headers=basic("chen.jing", DEMO_PASSWORD))
    counts = [g["counts"] for g in (await resp.json())["grids"]]
    assert sum(c["done"] for c in counts) > 0 and sum(c["unconfirmed"] + c["unread"]
                                                      for c in counts) > 0
    await eventually(lambda: directory.user(DEMO_PENDING), what="the pending resident")
    resp = await client.get("/api/me", headers=basic(DEMO_PENDING, DEMO_PASSWORD))
    assert (await resp.json())["resident"] == {"state": "pending", "signup": "pending",
                                               "households": []}
