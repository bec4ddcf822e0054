"""The issue's "one rating per household per period, across offline phones" against a real
`linli serve` in its own process (docs/fees.md, Ratings): 40 paid households of two owners,
each owner with two phones, every phone rating once with its own request id (half of them
sending it twice at once), 320 sends racing, and the server killed with SIGKILL after 100
answers and started again on the same data; the phones send again what got no answer, as
their outboxes do (tests/test_volunteering_race.py `Outboxes`). After it: every household has
exactly one rating, the one whose claim the store received first of the household's claims;
exactly the phone(s) that sent that claim were told it counted, every other one 已评价; each
claim is stored once."""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import aiohttp
import couchdb
import pytest
from conftest import PASSWORD, basic, eventually
from test_faults import ServerProcess, served  # noqa: F401 - `served`: a fixture
from test_volunteering_race import Outboxes, phones_behind_one_address

from server.admin import directory
from server.domain import fees as rules
from server.domain.scope import CLAIMS_DB, DIRECTORY_DB, FEES_DB, VOTES_DB
from server.store.bulk import save_many
from server.sync.ratings import subject_of, unit_claimant

pytestmark = pytest.mark.slow  # a server killed and started again, 320 sends
__all__ = ["phones_behind_one_address"]  # autouse: set before `served` starts the server

HOUSEHOLDS = 40
PHONES = 2  # per owner; two owners a household
KILL_AFTER = 100
COMPANY = "91330802MA2RATE01Y"
SCORES = {"cleaning": 4, "security": 4, "repairs": 4, "attitude": 4}


def a_compound(store_url: str, tag: str) -> tuple[str, dict[str, list[str]]]:
    """A compound of paid households, each of two owners (their accounts and login phones),
    written to the server's store as the register's import, the roll and the payments are.
    Returns the compound and each unit's owners' accounts."""
    couch = directory.prepared(couchdb.Server(store_url))
    compound = f"rate{tag}"
    couch[DIRECTORY_DB].save({"_id": f"compound:{compound}", "type": "compound",
                              "schema_version": 1, "code": compound, "name": "荷花苑",
                              "community": "330802001001", "property_company": COMPANY})
    owners: dict[str, list[str]] = {}
    units, pays, logins = [], [], []
    for n in range(HOUSEHOLDS):
        address = f"1-1-{101 + n}"
        names = [f"r{tag}h{n:02d}o{k}" for k in range(2)]
        owners[address] = names
        phones = [f"139{int(tag, 16) % 10**5:05d}{n:02d}{k}" for k in range(2)]
        for name, phone in zip(names, phones, strict=True):
            directory.add_user(couch, name, "resident", PASSWORD)
            logins.append({"_id": f"login:{phone}", "account": name})
        units.append({"_id": f"property_unit:{compound}:{address}", "type": "property_unit",
                      "schema_version": 1, "created_by": "register", "compound": compound,
                      "building": "1", "unit": "1", "room": str(101 + n), "area_cm2": 900_000,
                      "area_source": "register", "developer_held": False,
                      "owners": [{"name": "业主", "phone": p} for p in phones]})
        bill = rules.bill_key(f"{compound}:{address}", "2026-Q4")
        pays.append({"_id": f"fee_txn:pay:{bill}", "type": "fee_txn", "schema_version": 1,
                     "created_by": "linli-fees", "kind": "payment", "order": f"o{tag}{n:04d}",
                     "bill": bill, "transaction": f"4200{tag}{n:04d}",
                     "paid_at": "2026-11-20T10:00:00+08:00", "day": "2026-11-20",
                     "lines": rules.payment_lines(f"{compound}:{address}", 20000, True),
                     "recorded_at": "2026-11-20T02:00:00+00:00"})
    save_many(couch[DIRECTORY_DB], logins)
    save_many(couch[VOTES_DB], units)
    roll = {"_id": f"fee_roll:{compound}:2026-Q4", "type": "fee_roll", "schema_version": 1,
            "created_by": "admin", "compound": compound, "period": "2026-Q4",
            "due_date": "2026-12-31", "source": "import", "company": COMPANY,
            "late_rule": rules.LateRule().as_data(), "bills": dict.fromkeys(owners, 20000),
            "issued_at": "2026-10-01T00:00:00+00:00"}
    if FEES_DB not in couch:
        couch.create(FEES_DB)
    assert all(ok for ok, _, _ in save_many(couch[FEES_DB], [roll, *pays]))
    return compound, owners


async def test_one_rating_per_household_through_a_server_kill(
        served: ServerProcess) -> None:  # noqa: F811
    tag = os.urandom(3).hex()
    compound, owners = await asyncio.to_thread(a_compound, served.store_url(), tag)
    rng = random.Random(19)
    sends: list[tuple[str, str, str]] = []  # (owner, address, request): one per phone
    for address, names in owners.items():
        for name in names:
            for phone in range(PHONES):
                request = f"{name}-p{phone}-{tag}"
                sends += [(name, address, request)] * (2 if rng.random() < 0.5 else 1)
    rng.shuffle(sends)
    boxes = Outboxes(rng, KILL_AFTER)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        async def rate(name: str, address: str, request: str) -> tuple[int, dict[str, Any]]:
            bill = f"{compound}:{address}:2026-Q4"
            async with http.post(f"{served.url}/api/fees/bills/{bill}/rating", headers=basic(
                    name), json={"request": request, "scores": SCORES}) as resp:
                body = await resp.json(content_type=None)
                return resp.status, {**body, "request": request}

        async def known(name: str) -> bool:  # the server knows them as owners
            async with http.get(f"{served.url}/api/fees/bills", headers=basic(name)) as resp:
                return resp.status == 200 and len((await resp.json())["bills"]) == 1
        for names in owners.values():
            for name in names:
                await eventually(lambda n=name: known(n), seconds=60, what=f"{name} an owner")
        await asyncio.gather(boxes.kill_and_restart(served), *(
            boxes.send(name, address, lambda n=name, a=address, r=request: rate(n, a, r))
            for name, address, request in sends))
    assert boxes.restarted.is_set() and len(boxes.answered) == len(sends)

    def stored() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        couch = couchdb.Server(served.store_url())
        claims = [row["doc"] for row in couch[CLAIMS_DB].changes(include_docs=True)["results"]
                  if str(row["id"]).startswith("claim:fee_rating.") and compound in row["id"]]
        ratings = {row.id: dict(row.doc) for row in couch[FEES_DB].view(
            "_all_docs", include_docs=True, startkey=f"fee_rating:{compound}:",
            endkey=f"fee_rating:{compound}:\ufff0")}
        return claims, ratings
    claims, ratings = await asyncio.to_thread(stored)
    assert len(claims) == len({r for _, _, r in sends})  # each phone's claim stored once
    assert len(ratings) == HOUSEHOLDS  # one rating each household
    for address in owners:
        claimant = unit_claimant(f"{compound}:{address}")
        mine = [c for c in claims if c["claimant"] == claimant]
        assert mine and all(c["subject"] == subject_of(compound, "2026-Q4") for c in mine)
        winner = mine[0]["_id"]  # the first of the household's claims in the store's order
        rating = ratings[f"fee_rating:{compound}:{address}:2026-Q4"]
        assert rating["claim"] == winner
        told = [(body["request"], body["status"]) for name, a, body in boxes.answered
                if a == address]
        counted = {r for r, s in told if s == "counted"}
        assert counted == {mine[0]["claim_id"]}, (address, told)
        assert all(s == "rated_already" for r, s in told if r not in counted)
    assert boxes.failures > 0  # the kill cut some sends, which were sent again
