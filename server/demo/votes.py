"""The demo city's owners' votes (业主表决): the property register of the demo resident's
compound, drawn from its households (an owned household's area and head; a rented one's
landlord, registered without a phone; a few units the developer has not sold), one open vote
(renewing the property company, some owners have voted) and one closed election of the
owners' committee (its result counted by server/domain/votes.py as the server counts it).
Deterministic and idempotent: a vote already there is left as it is.

The open vote closes 30 days after the demo city is first loaded; the election closed before.
The demo resident (15706666600) owns their home: they have voted in the election (their
receipt is in its result) and not yet in the open vote, which the README's tour casts."""

from __future__ import annotations

import datetime
import hashlib
import random
from decimal import Decimal
from typing import Any

import couchdb

from server.demo.city import City
from server.domain import votes
from server.domain.scope import DIRECTORY_DB, VOTES_DB
from server.store.bulk import save_many

Doc = dict[str, Any]
OPEN_KEY, ELECTION_KEY = "de30000000000001", "de30000000000002"
CANDIDATES = ("王建国", "李秀英", "张伟", "刘芳", "陈明", "杨丽", "赵磊")
DEVELOPER_UNITS = 4


def register(city: City, compound: str) -> list[Doc]:
    """The compound's units from its households: owned ones by their head (phone and all),
    rented ones by a landlord without a phone, and the developer's unsold ones."""
    households = sorted((h for grid in city.grids.values() for h in grid.households
                         if h["address"]["compound"] == compound), key=lambda h: str(h["_id"]))
    rng = random.Random(f"linli-demo-register-{compound}")
    units: dict[str, Doc] = {}
    for n, h in enumerate(households):
        address = h["address"]
        key = f"{address['building']}-{address['unit']}-{address['room']}"
        if f"property_unit:{compound}:{key}" in units:
            continue
        area = h.get("area_m2") or round(rng.uniform(60, 120), 1)
        owners = ([{"name": h["head_name"], **({"phone": h["phone"]} if h.get("phone") else {})}]
                  if h.get("tenure") == "owned" else [{"name": f"业主{n:03d}"}])
        held = n % 40 == 39 and n // 40 < DEVELOPER_UNITS
        units[f"property_unit:{compound}:{key}"] = {
            "_id": f"property_unit:{compound}:{key}", "type": "property_unit",
            "schema_version": 1, "created_by": "register", "compound": compound,
            "building": address["building"], "unit": address["unit"], "room": address["room"],
            "area_cm2": votes.area_cm2(Decimal(str(area))), "area_source": "register",
            "developer_held": held, "owners": [] if held else owners}
    return list(units.values())


def _ballot(vote: str, unit: str, by: str, n: int, field: str, choice: Any,
            at: datetime.datetime) -> Doc:
    digest = hashlib.sha256(f"{vote}:{by}:{n}".encode()).hexdigest()[:32]
    return {"_id": f"ballot:{digest}", "type": "ballot", "schema_version": 1, "created_by": by,
            "motion": f"motion:{vote}", "unit": unit, field: choice, "channel": "online",
            "received_at": at.isoformat(timespec="milliseconds"), "request": f"demo{n:06d}"}


def plan(units: list[Doc], compound: str, resident: str, resident_unit: str,
         now: datetime.datetime) -> list[tuple[Doc, list[Doc], bytes | None]]:
    """(motion, its database's documents in the order written, the result's bytes or None)
    for the open vote and the closed election."""
    rng = random.Random(f"linli-demo-votes-{compound}")
    electorate = votes.electorate_doc(units)
    ids = [u["_id"] for u in units if not u["developer_held"]]
    opened = now - datetime.timedelta(days=3)
    motion = {"_id": f"motion:{OPEN_KEY}", "type": "motion", "schema_version": 1,
              "created_by": "chen.jing", "compound": compound, "matter": "manager",
              "title": "续聘物业服务企业（三年）",
              "body": "现物业服务合同年底到期。续聘原物业公司三年，物业费标准不变。\n\n"
                      "请在截止前投票；截止前可以改票，以最后一次为准。",
              "opens_at": opened.isoformat(timespec="seconds"),
              "closes_at": (now + datetime.timedelta(days=30)).isoformat(timespec="seconds"),
              "secret": False, "ballots": f"linli-vote-{OPEN_KEY}",
              "opened_at": opened.isoformat(timespec="seconds")}
    open_docs = [electorate]
    for n, unit in enumerate(rng.sample([u for u in ids if u != resident_unit],
                                        len(ids) * 2 // 5)):
        open_docs.append(_ballot(OPEN_KEY, unit, f"r{rng.getrandbits(48):012x}", n, "choice",
                                 rng.choice(["yes", "yes", "yes", "no", "abstain"]),
                                 opened + datetime.timedelta(minutes=7 * n)))
    started = now - datetime.timedelta(days=45)
    election = {"_id": f"motion:{ELECTION_KEY}", "type": "motion", "schema_version": 1,
                "created_by": "chen.jing", "compound": compound, "matter": "committee",
                "title": "选举第二届业主委员会", "body": "选出 5 名委员，每票最多选 5 人。",
                "seats": 5, "candidates": [{"id": f"c{i}", "name": name}
                                           for i, name in enumerate(CANDIDATES, start=1)],
                "opens_at": started.isoformat(timespec="seconds"),
                "closes_at": (started + datetime.timedelta(days=14)).isoformat(
                    timespec="seconds"),
                "secret": False, "ballots": f"linli-vote-{ELECTION_KEY}",
                "opened_at": started.isoformat(timespec="seconds")}
    election_docs = [electorate]
    weights = [9, 8, 7, 6, 6, 3, 2]  # how many owners favour each candidate
    voters = rng.sample(ids, len(ids) * 4 // 5)
    if resident_unit in ids and resident_unit not in voters:
        voters[0] = resident_unit
    for n, unit in enumerate(voters):
        picks = sorted({rng.choices([f"c{i}" for i in range(1, 8)], weights)[0]
                        for _ in range(5)})
        by = resident if unit == resident_unit else f"r{rng.getrandbits(48):012x}"
        election_docs.append(_ballot(ELECTION_KEY, unit, by, n, "picks", picks,
                                     started + datetime.timedelta(minutes=11 * n)))
    election_docs.append({"_id": "close", "closed_at": election["closes_at"]})
    rows = [{"id": d["_id"], "seq": n + 1, "doc": d} for n, d in enumerate(election_docs)]
    body = votes.count_from(election, rows, None)
    return [(motion, open_docs, None), (election, election_docs, body)]


def seed_votes(server: couchdb.Server, city: City, resident_phone: str,
               now: datetime.datetime | None = None) -> int:
    """Write the demo's votes where missing; how many were written."""
    login = server[DIRECTORY_DB].get(f"login:{resident_phone}")
    home = next(h for grid in city.grids.values() for h in grid.households
                if h.get("phone") == resident_phone)
    compound = str(home["address"]["compound"])
    address = home["address"]
    units = register(city, compound)
    resident_unit = f"property_unit:{compound}:{address['building']}-{address['unit']}-" \
                    f"{address['room']}"
    mine = next(u for u in units if u["_id"] == resident_unit)
    mine["owners"] = [{"name": home["head_name"], "phone": resident_phone}]
    mine["developer_held"] = False
    if VOTES_DB not in server:
        server.create(VOTES_DB)
    stored = {row.id for row in server[VOTES_DB].view("_all_docs", keys=[u["_id"] for u in units])
              if "value" in row}
    save_many(server[VOTES_DB], [u for u in units if u["_id"] not in stored])
    written = 0
    for motion, docs, body in plan(units, compound, str((login or {}).get("account", "")),
                                   resident_unit, now or datetime.datetime.now(datetime.UTC)):
        if motion["_id"] in server[VOTES_DB]:
            continue
        db = server.create(motion["ballots"]) if motion["ballots"] not in server else \
            server[motion["ballots"]]
        for doc in docs:  # one at a time: their order is the order of receipt
            db.save(dict(doc))
        if body is not None:
            db.save({"_id": "result", "canonical": body.decode(),
                     "sha256": hashlib.sha256(body).hexdigest()})
        server[VOTES_DB].save(dict(motion))
        written += 1
    return written
