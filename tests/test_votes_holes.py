"""The holes an attacker's review found in owners' votes (docs/votes.md), each closed: a grid
worker's paper ballot only for the units of their own grids, never over an owner's own online
ballot, never for the developer's units, always with its signing owner named and an audit
line; a secret ballot's who and how not joinable from what the store writes."""

from __future__ import annotations

import datetime
import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, designs_installed
from test_votes import PNG, Estate, an_estate, cast, motion_docs, open_vote


@pytest.fixture
async def estate(city: City, client: TestClient) -> Estate:
    return await an_estate(city, client)


PHOTO = {"content_type": "image/png", "data": __import__("base64").b64encode(PNG).decode()}


async def paper(client: TestClient, worker: str, vote: str, unit: str,
                **body: Any) -> tuple[int, dict[str, Any]]:
    body = {"request": f"paper-{os.urandom(6).hex()}", "unit": unit, "choice": "no",
            "photo": PHOTO, **body}
    resp = await client.post(f"/api/votes/{vote}/paper", json=body, headers=basic(worker))
    return resp.status, await resp.json()


async def households_in(city: City, client: TestClient, estate: Estate, grid: str,
                        *buildings: str) -> None:
    """Households of the worker's grid living in `buildings` of the estate's compound."""
    await designs_installed(client)
    for building in buildings:
        await city.save(grid, {"_id": f"household:h{os.urandom(6).hex()}", "type": "household",
                               "address": {"compound": estate.compound, "building": building,
                                           "room": "101"}})


def read_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def worker_grid(client: TestClient, worker: str) -> str:
    from server.web.keys import DIRECTORY
    return sorted(client.app[DIRECTORY].users[worker].grids)[0]


async def test_a_paper_ballot_is_only_for_units_of_the_workers_own_grids(
        client: TestClient, city: City, estate: Estate) -> None:
    vote = await open_vote(client, estate)
    status, _ = await paper(client, estate.worker, vote, estate.unit(3), signed_by="丁")
    assert status == 403  # no household of the worker's grid lives in building 1
    await households_in(city, client, estate, worker_grid(client, estate.other_worker), "1")
    status, _ = await paper(client, estate.other_worker, vote, estate.unit(3), signed_by="丁")
    assert status == 404  # another community's worker does not see the vote
    docs = await motion_docs(city, vote)
    assert not [d for d in docs if d.get("type") == "ballot"]


async def test_a_paper_ballot_never_replaces_an_owners_own_and_names_its_signer(
        client: TestClient, city: City, estate: Estate, caplog: Any) -> None:
    vote = await open_vote(client, estate)
    await households_in(city, client, estate, worker_grid(client, estate.worker), "1")
    status, mine = await cast(client, estate, "A", vote, choice="yes")
    assert status == 201
    status, answer = await paper(client, estate.worker, vote, estate.unit(1), signed_by="甲")
    assert status == 409, answer  # the owner voted online: their own ballot stands
    one = await client.get(f"/api/votes/{vote}", headers=basic(estate.people["A"]))
    assert [b["status"] for b in (await one.json())["vote"]["my_ballots"]] == ["counted"]
    status, answer = await paper(client, estate.worker, vote, estate.unit(5), signed_by="开发商")
    assert status == 403  # the developer's units: only through a named representative
    for signer in (None, "", "某人", 7):
        status, answer = await paper(client, estate.worker, vote, estate.unit(3),
                                     **({} if signer is None else {"signed_by": signer}))
        assert status == 400 and "签名" in answer["reason"], (signer, answer)
    with caplog.at_level(logging.INFO, logger="linli.audit"):
        status, answer = await paper(client, estate.worker, vote, estate.unit(3),
                                     signed_by="丁")
    assert status == 201, answer
    assert any(estate.worker in r.getMessage() and estate.unit(3) in r.getMessage()
               and "丁" in r.getMessage() for r in caplog.records if r.name == "linli.audit")
    one = await client.get(f"/api/votes/{vote}", headers=basic(estate.people["D"]))
    told = [b for b in (await one.json())["vote"]["my_ballots"] if b["unit"] == estate.unit(3)]
    assert told and told[0]["paper"] and told[0]["signed_by"] == "丁"  # D's phone sees it
    status, later = await cast(client, estate, "D", vote, unit=estate.unit(3), choice="yes")
    assert status == 201 and later["ballot"]["status"] == "counted"  # D's own outranks paper
    assert mine["ballot"]["status"] == "counted"


async def test_paper_after_online_never_counts_even_when_the_check_raced(
        client: TestClient, city: City, estate: Estate) -> None:
    """The rule is the count's, not only the route's: a paper ballot received after the owner's
    online one (two requests racing past the route's check) is outranked in the tally."""
    from server.domain import votes as rules
    electorate = rules.Electorate.of([rules.Unit("u1", 100, frozenset({"A"}))])
    online = rules.RawBallot("b1", "u1", "yes", "A")
    on_paper = rules.RawBallot("b2", "u1", "no", "W", paper=True)
    tally = rules.tally(electorate, [online, on_paper])
    assert tally.counted["u1"] == online and tally.status["b2"] == "outranked"
    tally = rules.tally(electorate, [on_paper, online])
    assert tally.counted["u1"] == online and tally.status["b2"] == "replaced"


async def test_a_secret_paper_ballot_cannot_lock_out_an_owner_with_a_phone(
        client: TestClient, city: City, estate: Estate) -> None:
    vote = await open_vote(client, estate, secret=True)
    await households_in(city, client, estate, worker_grid(client, estate.worker), "1")
    status, answer = await paper(client, estate.worker, vote, estate.unit(1), signed_by="甲")
    assert status == 409, answer  # A has a phone on the register: A votes, secretly
    status, _ = await cast(client, estate, "A", vote, choice="yes", secret_key="c" * 64)
    assert status == 201


async def test_the_store_writes_no_line_per_request(client: TestClient, city: City,
                                                    estate: Estate, store: Any) -> None:
    """PouchDB Server's log.txt named every document a request wrote, in order: a secret
    ballot's who and how one line apart. It keeps warnings and errors only."""
    vote = await open_vote(client, estate, secret=True)
    status, _ = await cast(client, estate, "A", vote, choice="yes", secret_key="d" * 64)
    assert status == 201
    log_txt = store.dir / "log.txt"
    written = log_txt.read_text() if log_txt.exists() else ""
    assert vote not in written and "voted" not in written and "ballot" not in written


async def test_a_secret_how_waits_for_a_shuffled_batch_and_its_who_keeps_no_time(
        client: TestClient, city: City, estate: Estate, store: Any) -> None:
    """The how of a secret ballot is not written beside its who: it waits, pending in the box,
    until a batch is full (or the vote closes), then goes in with the others in a shuffled
    order, and the pending entry is deleted and compacted away. The who keeps no request id
    and no time; the voter's receipt is not the how's id."""
    from test_votes import T0, all_docs

    from server.domain import votes as rules
    from server.web.keys import VOTES

    client.app[VOTES].box_batch = 3
    vote = await open_vote(client, estate, secret=True)
    keys = {who: os.urandom(32).hex() for who in "ABD"}
    answers = {}
    for who in "AB":
        status, answers[who] = await cast(client, estate, who, vote, choice="yes",
                                          secret_key=keys[who])
        assert status == 201
    box = await all_docs(city, f"linli-vote-{vote}-box")
    assert not [d for d in box if d["_id"].startswith("ballot_choice:")]  # no how yet
    who_docs = [d for d in await motion_docs(city, vote) if d["_id"].startswith("voted:")]
    assert who_docs and not any(k in d for d in who_docs for k in ("request", "received_at"))
    status, answers["D"] = await cast(client, estate, "D", vote, choice="no",
                                      unit=estate.unit(3), secret_key=keys["D"])
    box = await all_docs(city, f"linli-vote-{vote}-box")
    assert sorted(d["_id"] for d in box) == sorted(
        f"ballot_choice:{rules.sealed(k, 'how')}" for k in keys.values())  # pending gone
    for who, answer in answers.items():
        receipt = answer["ballot"]["receipt"]
        assert not any(d["_id"].removeprefix("ballot_choice:").startswith(receipt)
                       for d in box), who  # a receipt names no box document
    pending = f"{store.url}/linli-vote-{vote}-box/pending:{rules.sealed(keys['A'], 'pending')}"
    [leaf] = await city.run(read_json, pending + "?revs=true&open_revs=all")
    revisions = leaf["ok"]["_revisions"]
    first = f"{revisions['start'] - 1}-{revisions['ids'][1]}"
    assert leaf["ok"].get("_deleted") and "how" not in leaf["ok"]
    assert "how" not in await city.run(read_json, f"{pending}?rev={first}")  # compacted away
    # A fourth and fifth ballot stay pending; the close writes them, and counts them.
    status, _ = await cast(client, estate, "D", vote, choice="no", unit=estate.unit(4),
                           secret_key=os.urandom(32).hex())
    assert status == 201
    estate.clock.now = T0 + datetime.timedelta(days=8)
    resp = await client.get(f"/api/votes/{vote}/result", headers=basic(estate.sup))
    result = json.loads(await resp.read())
    assert result["ballots"] == {"counted": 4, "voted": 4}
    assert {a["ballot"]["receipt"] for a in answers.values()} < {r for r, _ in
                                                                 result["receipts"]}


async def test_changes_of_mind_are_capped_per_unit_and_ballots_per_account(
        client: TestClient, city: City, estate: Estate) -> None:
    """Each change of mind is a permanent document and every answer tallies the feed: a unit
    takes at most MAX_BALLOTS_PER_UNIT ballots in a vote (a retry of one is not another), and
    an account at most BALLOTS_PER_WINDOW a window, told when to try again."""
    from server.sync import votes as store_votes
    from server.web import votes as web_votes

    vote = await open_vote(client, estate)
    request = "cap-first-1"
    for n in range(store_votes.MAX_BALLOTS_PER_UNIT):
        status, _ = await cast(client, estate, "A", vote, choice="yes" if n % 2 else "no",
                               **({"request": request} if n == 0 else {}))
        assert status == 201
    status, answer = await cast(client, estate, "A", vote, choice="yes")
    assert status == 429 and "更改" in answer["reason"], answer
    status, _ = await cast(client, estate, "A", vote, choice="no", request=request)
    assert status == 201  # the retry of a ballot already taken is answered as before
    docs = [d for d in await motion_docs(city, vote) if d.get("unit") == estate.unit(1)]
    assert len(docs) == store_votes.MAX_BALLOTS_PER_UNIT
    statuses = []
    for _ in range(web_votes.BALLOTS_PER_WINDOW + 1):
        resp = await client.post(f"/api/votes/{vote}/ballot", json={"choice": "yes"},
                                 headers=basic(estate.people["B"]))
        statuses.append(resp.status)
    assert statuses[-1] == 429 and "Retry-After" in resp.headers


async def test_a_phone_given_to_another_account_takes_its_units_along(
        client: TestClient, city: City, estate: Estate) -> None:
    """A recycled phone: its login now names another account, the number of logins unchanged.
    The index of phones by account follows every change of a login, not their count."""
    from conftest import eventually

    from server.domain.scope import DIRECTORY_DB
    from server.web.keys import DIRECTORY

    vote = await open_vote(client, estate)
    one = await client.get(f"/api/votes/{vote}", headers=basic(estate.people["A"]))
    assert one.status == 200
    logins = client.app[DIRECTORY].logins
    [phone_a] = [p for p, account in logins.items() if account == estate.people["A"]]

    def give_away() -> None:
        db = city.couch[DIRECTORY_DB]
        doc = db[f"login:{phone_a}"]
        doc["account"] = estate.people["T"]
        db.save(doc)

    await city.run(give_away)
    await eventually(lambda: logins.get(phone_a) == estate.people["T"], every=0.02)
    one = await client.get(f"/api/votes/{vote}", headers=basic(estate.people["A"]))
    assert one.status == 404
    one = await client.get(f"/api/votes/{vote}", headers=basic(estate.people["T"]))
    assert one.status == 200 and (await one.json())["vote"]["my_units"] == [estate.unit(1)]
