"""The must-hold for mutual aid's seats and stock (issue 20, docs/allocation.md), against a
real `linli serve` in its own process, as the volunteering race proves it for tasks: a
supplier's group-buy item with a stock of 10 and a neighbour's ride with 4 seats, ordered and
claimed by 198 concurrent clients (duplicates sent at once, second phones, retries after
failures), the server killed with SIGKILL in the middle and started again on the same data.
After it: exactly the stock and the seats held, by the first claimants in the order the store
received them; every claim stored once; every answer a client got the final truth; every
claimant's phone, real PouchDB clients among them, holding its own outcomes and nobody
else's."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from conftest import PASSWORD, NodeClient, basic, eventually
from test_faults import ServerProcess, served, store_get  # noqa: F401 - `served`: a fixture
from test_volunteering_race import (
    CLAIMANTS,
    Outboxes,
    a_community,
    phones_behind_one_address,
    post,
)

from server.domain.allocation import Event, Terms, allocate
from server.domain.scope import CLAIMS_DB, RESIDENTS_DB
from server.sync.allocation import outcome_id

pytestmark = pytest.mark.slow  # a server killed and started again, 198 clients
__all__ = ["phones_behind_one_address"]  # autouse: set before `served` starts the server

STOCK = 10
SEATS = 4
RIDERS = 60  # claimants who also claim a seat
DUPLICATES = 120  # claimants whose phone sends its order twice at once
SECOND_PHONES = 120  # claimants who order again from another phone (another claim id)
KILL_AFTER = 120  # answered claims before the server is killed


async def test_stock_and_seats_are_exact_through_a_server_kill(
        served: ServerProcess, node: NodeClient) -> None:  # noqa: F811
    tag = os.urandom(3).hex()
    community, supervisor, residents = await asyncio.to_thread(
        a_community, served.store_url(), tag)
    supplier, driver, claimants = residents[0], residents[1], residents[2:]
    now = datetime.datetime.now(datetime.UTC)
    base = served.url + "/api/mutual-aid"
    async with aiohttp.ClientSession() as http:
        status, made = await post(http, f"{base}/suppliers", supervisor,
                                  {"phone": supplier, "shop": "坊门菜场", "community": community})
        assert status == 201, made

        async def offered() -> dict[str, Any] | None:
            status, got = await post(http, f"{base}/listings", supplier, {
                "kind": "groupbuy", "title": "空中菜场：蔬菜包",
                "deadline": (now + datetime.timedelta(days=1)).isoformat(),
                "items": [{"name": "蔬菜包", "price_fen": 2880, "stock": STOCK,
                           "unit": "一份 5 斤"}], "pickup_points": ["东门", "北门"]})
            return got if status == 201 else None
        buy = (await eventually(offered, seconds=60, what="the supplier known"))["listing"]["_id"]
        async def driven() -> dict[str, Any] | None:
            status, got = await post(http, f"{base}/listings", driver, {
                "kind": "carpool", "title": "周六去火车站", "from": "东门", "to": "火车站",
                "departs_at": (now + datetime.timedelta(days=2)).isoformat(), "seats": SEATS})
            return got if status == 201 else None
        ride = (await eventually(driven, seconds=60, what="the driver indexed"))["listing"]["_id"]

        async def indexed(name: str) -> bool:  # the server knows where the resident lives
            status, _ = await get_json(http, f"{base}/listings/{ride}", name)
            return status == 200
        for name in (claimants[0], claimants[-1]):
            await eventually(lambda n=name: indexed(n), seconds=60, what="residents indexed")
        item, seat = f"{buy}.i0", f"{ride}.r1"

        rng = random.Random(20)
        sends: list[tuple[str, str, str, dict[str, Any]]] = []  # (who, listing, subject, body)
        for n, name in enumerate(claimants):
            sends.append((name, buy, item, {"claim_id": f"{name}-phone1", "item": 0,
                                            "pickup": n % 2}))
        for name in rng.sample(claimants, DUPLICATES):
            sends.append((name, buy, item, {"claim_id": f"{name}-phone1", "item": 0,
                                            "pickup": 0}))
        for name in rng.sample(claimants, SECOND_PHONES):
            sends.append((name, buy, item, {"claim_id": f"{name}-phone2", "item": 0,
                                            "pickup": 1}))
        riders = rng.sample(claimants, RIDERS)
        sends += [(name, ride, seat, {"claim_id": f"{name}-seat1"}) for name in riders]
        race = Outboxes(rng, KILL_AFTER)

        def claim(name: str, listing: str, body: dict[str, Any]
                  ) -> Callable[[], Awaitable[tuple[int, dict[str, Any]]]]:
            return lambda: post(http, f"{base}/listings/{listing}/claim", name, body)

        began = time.monotonic()
        await asyncio.gather(race.kill_and_restart(served), *(
            race.send(name, subject, claim(name, listing, body))
            for name, listing, subject, body in sends))
        took = time.monotonic() - began
        assert race.restarted.is_set() and race.failures > 0  # the kill cut requests in flight

        store = served.store_url()
        changes = (await store_get(f"{store}/{CLAIMS_DB}/_changes", include_docs="true"))
        claims = [c["doc"] for c in changes["results"] if c["doc"].get("type") == "claim"]
        finals: dict[str, dict[str, dict[str, Any]]] = {}
        for subject, places, who in ((item, STOCK, claimants), (seat, SEATS, riders)):
            mine = [c for c in claims if c["subject"] == subject]
            expected = len(who) + (SECOND_PHONES if subject == item else 0)
            assert len(mine) == len({c["_id"] for c in mine}) == expected, subject
            in_order = list(dict.fromkeys(c["claimant"] for c in mine))

            async def outcomes(s: str = subject, n: int = len(who)) -> dict[str, Any] | None:
                got = (await store_get(f"{store}/{RESIDENTS_DB}/_all_docs", include_docs="true",
                                       startkey=json.dumps(outcome_id(s, "")),
                                       endkey=json.dumps(outcome_id(s, "\ufff0"))))["rows"]
                found = {r["doc"]["claimant"]: r["doc"] for r in got}
                return found if len(found) == n else None
            final = await eventually(outcomes, seconds=30, what="every claimant's outcome")
            held = {w for w, d in final.items() if d["status"] == "confirmed"}
            assert held == set(in_order[:places]) and len(held) == places, subject
            events = [Event(c["_id"], c["act"], c["claimant"],
                            datetime.datetime.fromisoformat(c["received_at"])) for c in mine]
            again = allocate(Terms(places), events)
            assert {w: (o.status, o.line) for w, o in again.items()} == {
                w: (d["status"], d["line"]) for w, d in final.items()}
            finals[subject] = final
        rows = (await store_get(f"{store}/{CLAIMS_DB}/_all_docs", include_docs="true",
                                conflicts="true"))["rows"]
        assert not [r for r in rows if r["doc"].get("_conflicts")]

        # Every answer a client got is the truth (nothing was cancelled: nothing changes).
        for name, subject, got in race.answered:
            assert got["status"] == finals[subject][name]["status"], (name, subject, got)
            assert got["line"] == finals[subject][name]["line"], (name, subject, got)
        assert len(race.answered) == len(sends)

        # The supplier's pickup list: exactly the stock, each buyer once, at their point.
        status_code, pick = await get_json(http, f"{base}/listings/{buy}/pickups", supplier)
        assert status_code == 200
        assert sum(len(p["orders"]) for p in pick["points"]) == STOCK

        async def phone(name: str) -> None:
            async with http.get(f"{served.url}/couch/linli-resident/_changes",
                                params={"include_docs": "true"}, headers=basic(name)) as resp:
                assert resp.status == 200
                held = {r["id"]: r["doc"] for r in (await resp.json())["results"]}
            wanted = {outcome_id(s, name) for s in finals if name in finals[s]}
            assert {i for i in held if i.startswith("allocation:")} == wanted
            for s in finals:
                if name in finals[s]:
                    assert held[outcome_id(s, name)]["status"] == finals[s][name]["status"]
        await asyncio.gather(*(phone(name) for name in claimants))
    # Real PouchDB phones (two holding a portion, two waiting) pull and show the same.
    final = finals[item]
    for name in [*sorted(w for w in final if final[w]["status"] == "confirmed")[:2],
                 *sorted(w for w in final if final[w]["status"] == "waiting")[:2]]:
        local = node.local(name)
        pulled = await node.run({"op": "pull", "remote": f"{served.url}/couch/linli-resident",
                                 "local": local, "auth": {"username": name,
                                                          "password": PASSWORD}})
        assert pulled["ok"], pulled
        docs = (await node.run({"op": "count", "local": local, "with_docs": True}))["docs"]
        assert docs[outcome_id(item, name)]["status"] == final[name]["status"]
    print(f"\n{len(sends)} orders and claims / stock {STOCK}, {SEATS} seats / "
          f"{CLAIMANTS - 2} clients, killed after {KILL_AFTER} answers: {took:.1f} s, "
          f"{race.failures} failed sends retried {race.statuses}")


async def get_json(http: aiohttp.ClientSession, url: str, user: str) -> tuple[int, Any]:
    async with http.get(url, headers=basic(user)) as resp:
        return resp.status, await resp.json(content_type=None)

