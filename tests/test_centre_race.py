"""The neighbourhood centre's must-hold for slots (issue 20, docs/centre.md), against a real
`linli serve` in its own process, as the volunteering and mutual-aid races prove it: a
provider's slot with 5 places booked by 198 concurrent phones (duplicates sent at once, second
phones, retries after failures: the volunteering race's `Outboxes`), the server killed with
SIGKILL in the middle and started again on the same data. After it: exactly 5 hold the slot,
the first 5 bookers in the order the store received them; every booking stored once; every
answer a phone got the final truth; every booker's phone holding its own outcome only; and
the provider's day list showing exactly the 5 holders and the waiting line, by name."""

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
import couchdb
import pytest
from conftest import PASSWORD, basic, eventually
from test_faults import ServerProcess, served, store_get  # noqa: F401 - `served`: a fixture
from test_volunteering_race import (
    CLAIMANTS,
    Outboxes,
    a_community,
    phones_behind_one_address,
    post,
)

from server.admin import directory
from server.domain.allocation import Event, Terms, allocate
from server.domain.centre import CHINA
from server.domain.scope import CLAIMS_DB, RESIDENTS_DB
from server.sync.allocation import outcome_id

pytestmark = pytest.mark.slow  # a server killed and started again, 198 clients
__all__ = ["phones_behind_one_address"]  # autouse: set before `served` starts the server

PLACES = 5
DUPLICATES = 120  # bookers whose phone sends its booking twice at once
SECOND_PHONES = 120  # bookers who book again from another phone (another claim id)
KILL_AFTER = 100  # answered bookings before the server is killed
OPEN = {str(d): [["08:00", "20:00"]] for d in range(1, 8)}


async def test_the_last_places_of_a_slot_through_a_server_kill(
        served: ServerProcess) -> None:  # noqa: F811
    tag = os.urandom(3).hex()
    community, supervisor, residents = await asyncio.to_thread(
        a_community, served.store_url(), tag)
    staff, bookers = f"bank{tag}", residents[:-2]
    code = f"bank{tag}"
    await asyncio.to_thread(lambda: directory.add_user(
        directory.prepared(couchdb.Server(served.store_url())), staff, "provider", PASSWORD,
        communities=[community], provider=code))
    day = datetime.datetime.now(CHINA).date() + datetime.timedelta(days=1)
    starts = datetime.datetime.combine(day, datetime.time(10, 0), CHINA)
    base = served.url + "/api/centre"
    async with aiohttp.ClientSession() as http:
        status, made = await post(http, f"{base}/providers", supervisor, {
            "code": code, "kind": "bank", "name": "坊门银行服务点", "community": community,
            "services": [{"code": "cards", "name": "办卡"}], "hours": OPEN})
        assert status == 201, made

        async def opened() -> dict[str, Any] | None:
            status, got = await post(http, f"{base}/slots", staff, {
                "service": "cards", "starts_at": starts.isoformat(),
                "ends_at": (starts + datetime.timedelta(minutes=30)).isoformat(),
                "places": PLACES})
            return got if status == 201 else None
        slot = (await eventually(opened, seconds=60, what="the provider known"))["slot"]["_id"]
        key = slot.partition(":")[2]

        async def indexed(name: str) -> bool:  # the server knows where the resident lives
            async with http.get(f"{base}/providers/{code}/slots", headers=basic(name)) as resp:
                return resp.status == 200
        for name in (bookers[0], bookers[-1]):
            await eventually(lambda n=name: indexed(n), seconds=60, what="residents indexed")

        rng = random.Random(20)
        sends = [(name, f"{name}-phone1") for name in bookers]
        sends += [(name, f"{name}-phone1") for name in rng.sample(bookers, DUPLICATES)]
        sends += [(name, f"{name}-phone2") for name in rng.sample(bookers, SECOND_PHONES)]
        race = Outboxes(rng, KILL_AFTER)

        def book(name: str, claim_id: str) -> Callable[[], Awaitable[tuple[int, dict[str, Any]]]]:
            return lambda: post(http, f"{base}/slots/{key}/book", name, {"claim_id": claim_id})

        began = time.monotonic()
        await asyncio.gather(race.kill_and_restart(served), *(
            race.send(name, slot, book(name, claim_id)) for name, claim_id in sends))
        took = time.monotonic() - began
        assert race.restarted.is_set() and race.failures > 0  # the kill cut requests in flight

        store = served.store_url()
        changes = await store_get(f"{store}/{CLAIMS_DB}/_changes", include_docs="true")
        claims = [c["doc"] for c in changes["results"]
                  if c["doc"].get("type") == "claim" and c["doc"]["subject"] == slot]
        assert len(claims) == len({c["_id"] for c in claims}) == len(bookers) + SECOND_PHONES
        in_order = list(dict.fromkeys(c["claimant"] for c in claims))

        async def outcomes() -> dict[str, Any] | None:
            got = (await store_get(f"{store}/{RESIDENTS_DB}/_all_docs", include_docs="true",
                                   startkey=json.dumps(outcome_id(slot, "")),
                                   endkey=json.dumps(outcome_id(slot, "\ufff0"))))["rows"]
            found = {r["doc"]["claimant"]: r["doc"] for r in got}
            return found if len(found) == len(bookers) else None
        final = await eventually(outcomes, seconds=30, what="every booker's outcome")
        held = {w for w, d in final.items() if d["status"] == "awaiting_approval"}
        assert held == set(in_order[:PLACES]) and len(held) == PLACES
        assert {d["status"] for d in final.values()} == {"awaiting_approval", "waiting"}
        events = [Event(c["_id"], c["act"], c["claimant"],
                        datetime.datetime.fromisoformat(c["received_at"])) for c in claims]
        again = allocate(Terms(PLACES, needs_approval=True), events)
        assert {w: (o.status, o.line) for w, o in again.items()} == {
            w: (d["status"], d["line"]) for w, d in final.items()}
        for name, _, got in race.answered:  # every answer is the truth
            assert (got["status"], got["line"]) == (final[name]["status"],
                                                    final[name]["line"]), (name, got)
        assert len(race.answered) == len(sends)

        async with http.get(f"{base}/day", params={"date": day.isoformat()},
                            headers=basic(staff)) as resp:
            listed = (await resp.json())["slots"]
        bookings = next(s for s in listed if s["_id"] == slot)["bookings"]
        assert [b["status"] for b in bookings[:PLACES]] == ["awaiting_approval"] * PLACES
        assert len(bookings) == len(bookers)
        assert not any(name in json.dumps(listed) for name in bookers)  # names, not accounts

        async def phone(name: str) -> None:
            async with http.get(f"{served.url}/couch/linli-resident/_changes",
                                params={"include_docs": "true"}, headers=basic(name)) as resp:
                assert resp.status == 200
                found = {r["id"]: r["doc"] for r in (await resp.json())["results"]}
            assert {i for i in found if i.startswith("allocation:")} == {outcome_id(slot, name)}
            assert found[outcome_id(slot, name)]["status"] == final[name]["status"]
        await asyncio.gather(*(phone(name) for name in bookers))
    print(f"\n{len(sends)} bookings / {PLACES} places / {CLAIMANTS - 2} phones, killed after "
          f"{KILL_AFTER} answers: {took:.1f} s, {race.failures} failed sends retried "
          f"{race.statuses}")
