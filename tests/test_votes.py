"""Owners' votes through the real app on the real embedded store: who may open a vote and what
it may say, who may vote (owners on the register, not tenants, not another compound), ballots
in the server's order of receipt (replays, changes of mind, co-owners clashing), paper ballots
only with their photo, nothing but participation before the close, late ballots kept and not
counted, the published result reproduced byte for byte by the recount, and the secret ballot's
who and how stored apart."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import hashlib
import itertools
import json
import os
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, designs_installed, eventually, wait_for_user

from server.admin import votes as vote_admin
from server.domain.scope import DIRECTORY_DB, VOTES_DB
from server.sync.votes import Votes
from server.web.keys import COUCH, DIRECTORY, SCHEMAS, VOTES

_n = itertools.count(1)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
T0 = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.UTC)


@dataclasses.dataclass
class Clock:
    now: datetime.datetime = T0

    def __call__(self) -> datetime.datetime:
        return self.now


@dataclasses.dataclass
class Estate:
    """Compound `compound` of community c (grid g, its worker and supervisor): u1 A's; u2 B's
    and C's together; u3 and u4 D's; u5 the developer's; plus T, a tenant (no unit), and E, an
    owner in another compound."""

    compound: str
    other_compound: str
    sup: str
    other_sup: str
    worker: str
    other_worker: str
    admin: str
    people: dict[str, str]  # letter -> account
    clock: Clock

    def unit(self, n: int, compound: str | None = None) -> str:
        return f"property_unit:{compound or self.compound}:1-1-{n}0{n}"


def phone(tag: int, letter: str) -> str:
    return f"139{tag % 100000:05d}{ord(letter) - 60:03d}"


def unit_doc(compound: str, n: int, area_cm2: int, owners: list[tuple[str, str]],
             held: bool = False) -> dict[str, Any]:
    return {"_id": f"property_unit:{compound}:1-1-{n}0{n}", "type": "property_unit",
            "schema_version": 1, "created_by": "register", "compound": compound,
            "building": "1", "unit": "1", "room": f"{n}0{n}", "area_cm2": area_cm2,
            "area_source": "register", "developer_held": held,
            "owners": [{"name": name, "phone": p} for name, p in owners]}


async def an_estate(city: City, client: TestClient) -> Estate:
    tag = os.getpid() * 1000 + next(_n)
    community, other_community = f"33{tag:010d}"[:12], f"34{tag:010d}"[:12]
    compound, other = f"v{tag}", f"w{tag}"
    grid = await city.grid(community=community)
    other_grid = await city.grid(community=other_community)
    people = {letter: await city.user("resident") for letter in "ABCDTE"}

    def write() -> None:
        dir_db, votes_db = city.couch[DIRECTORY_DB], city.couch[VOTES_DB]
        for code, comm in ((compound, community), (other, other_community)):
            dir_db.save({"_id": f"compound:{code}", "type": "compound", "schema_version": 1,
                         "code": code, "name": "荷花苑", "community": comm})
        for letter, account in people.items():
            dir_db.save({"_id": f"login:{phone(tag, letter)}", "account": account})
        p = {letter: phone(tag, letter) for letter in people}
        for doc in (unit_doc(compound, 1, 1_000_000, [("甲", p["A"])]),
                    unit_doc(compound, 2, 1_000_000, [("乙", p["B"]), ("丙", p["C"])]),
                    unit_doc(compound, 3, 1_000_000, [("丁", p["D"])]),
                    unit_doc(compound, 4, 1_000_000, [("丁", p["D"])]),
                    unit_doc(compound, 5, 1_000_000, [], held=True),
                    unit_doc(other, 1, 1_000_000, [("戊", p["E"])])):
            votes_db.save(doc)

    await city.run(write)
    estate = Estate(compound, other, await city.user("supervisor", communities=[community]),
                    await city.user("supervisor", communities=[other_community]),
                    await city.user("worker", grids=[grid]),
                    await city.user("worker", grids=[other_grid]),
                    await city.user("admin"), people, Clock())
    client.app[VOTES].clock = estate.clock
    for name in (*people.values(), estate.sup, estate.other_sup, estate.worker,
                 estate.other_worker, estate.admin):
        await wait_for_user(client, name)
    logins = client.app[DIRECTORY].logins
    await eventually(lambda: all(phone(tag, x) in logins for x in people), every=0.02)
    return estate


@pytest.fixture
async def estate(city: City, client: TestClient) -> Estate:
    return await an_estate(city, client)


def draft(estate: Estate, **changes: Any) -> dict[str, Any]:
    body = {"compound": estate.compound, "matter": "manager", "title": "续聘物业公司",
            "closes_at": (T0 + datetime.timedelta(days=7)).isoformat()}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def open_vote(client: TestClient, estate: Estate, **changes: Any) -> str:
    resp = await client.post("/api/votes", json=draft(estate, **changes),
                             headers=basic(estate.sup))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["vote"]["id"])


async def cast(client: TestClient, estate: Estate, who: str, vote: str,
               **body: Any) -> tuple[int, dict[str, Any]]:
    body.setdefault("request", f"req{next(_n):08d}")
    resp = await client.post(f"/api/votes/{vote}/ballot", json=body,
                             headers=basic(estate.people.get(who, who)))
    return resp.status, await resp.json()


async def all_docs(city: City, db_name: str) -> list[dict[str, Any]]:
    return await city.run(lambda: [r.doc for r in city.couch[db_name].view(
        "_all_docs", include_docs=True)])


async def motion_docs(city: City, vote: str) -> list[dict[str, Any]]:
    return await all_docs(city, f"linli-vote-{vote}")


async def test_who_may_open_a_vote_and_what_it_may_say(client: TestClient, city: City,
                                                       estate: Estate) -> None:
    for who in (estate.worker, estate.people["A"]):
        resp = await client.post("/api/votes", json=draft(estate), headers=basic(who))
        assert resp.status == 403
    resp = await client.post("/api/votes", json=draft(estate), headers=basic(estate.other_sup))
    assert resp.status == 400 and "管辖范围" in (await resp.json())["reason"]
    later = (T0 + datetime.timedelta(days=7)).isoformat()
    bad: list[tuple[dict[str, Any], str]] = [
        (draft(estate, created_by="someone"), "created_by"),
        (draft(estate, ballots="linli-directory"), "ballots"),
        (draft(estate, extra=1), "extra"),
        (draft(estate, matter="tax"), "Matter"),
        (draft(estate, matter=["other"]), "Matter"),
        (draft(estate, title=""), "Title"),
        (draft(estate, title="标\x07题"), "U+0007"),
        (draft(estate, title="长" * 121), "Title"),
        (draft(estate, title=7), "Title"),
        (draft(estate, closes_at="2026-12-08"), "Closes at"),
        (draft(estate, closes_at=T0.isoformat()), "Closes at"),
        (draft(estate, closes_at="2026-11-01T00:00:00+08:00"), "Closes at"),
        (draft(estate, closes_at="2027-12-01T00:00:00+08:00"), "within 90 days"),
        (draft(estate, opens_at=later), "Closes at"),
        (draft(estate, secret="yes"), "Secret ballot"),
        (draft(estate, seats=5, candidates=["王"]), "only for electing"),
        (draft(estate, matter="committee", seats=6, candidates=["王"]), "odd"),
        (draft(estate, matter="committee", seats=5, candidates=[]), "Candidates"),
        (draft(estate, matter="committee", seats=5, candidates=["王", "王"]), "twice"),
        (draft(estate, matter="committee", seats=5, candidates=[{"name": "王"}]), "Candidates"),
        (draft(estate, compound="nosuch"), "Compound"),
        (draft(estate, compound=estate.compound + "/../x"), "Compound"),
    ]
    for body, word in bad:
        resp = await client.post("/api/votes", json=body, headers=basic(estate.sup))
        reason = (await resp.json())["reason"]
        assert resp.status == 400 and word in reason and " / " in reason, (body, reason)
    for raw in (b'{"title": "\\ud800"}', b"[]", b"{", "标题".encode("gbk")):
        resp = await client.post("/api/votes", data=raw, headers={
            **basic(estate.sup), "Content-Type": "application/json"})
        assert resp.status in (400, 415)
    resp = await client.get("/api/votes", headers=basic(estate.sup))
    assert (await resp.json())["votes"] == []


async def test_owners_vote_tenants_and_strangers_cannot(client: TestClient, city: City,
                                                        estate: Estate) -> None:
    vote = await open_vote(client, estate)
    status, answer = await cast(client, estate, "A", vote, choice="yes")
    assert status == 201 and answer["ballot"]["status"] == "counted"
    assert answer["ballot"]["unit"] == estate.unit(1) and len(answer["ballot"]["receipt"]) == 20
    for who in ("T", "E"):  # a tenant, an owner of another compound: no such vote for them
        status, answer = await cast(client, estate, who, vote, choice="yes")
        assert status == 404
        resp = await client.get(f"/api/votes/{vote}", headers=basic(estate.people[who]))
        assert resp.status == 404
        resp = await client.get("/api/votes", headers=basic(estate.people[who]))
        assert (await resp.json())["votes"] == []
    status, _ = await cast(client, estate, "A", "0" * 16, choice="yes")
    assert status == 404  # a made-up vote answers as one they may not see
    status, answer = await cast(client, estate, "D", vote, choice="yes")
    assert status == 400 and "several" in answer["reason"]
    status, answer = await cast(client, estate, "D", vote, choice="yes", unit=estate.unit(1))
    assert status == 403 and "registered owner" in answer["reason"]
    status, answer = await cast(client, estate, "D", vote, choice="no", unit=estate.unit(3))
    assert status == 201
    resp = await client.post(f"/api/votes/{vote}/ballot", json={
        "request": "abcdefgh", "choice": "yes"}, headers=basic(estate.worker))
    assert resp.status == 403
    for body, word in (({"choice": "maybe"}, "Choice"), ({"picks": ["c1"]}, "Candidates"),
                       ({"choice": "yes", "created_by": "x"}, "created_by"),
                       ({"choice": "yes", "received_at": "2000-01-01T00:00:00Z"}, "received_at"),
                       ({"choice": "yes", "late": False}, "late"),
                       ({"choice": "yes", "unit": 5}, "Unit"),
                       ({"choice": "yes", "secret_key": "a" * 64}, "Secret key"),
                       ({"choice": "yes", "request": "../x"}, "Request id"),
                       ({"choice": "yes", "request": "a" * 65}, "Request id")):
        status, answer = await cast(client, estate, "A", vote, **body)
        assert status == 400 and word in answer["reason"], (body, answer)
    # while open: participation, never the approval or a result
    resp = await client.get(f"/api/votes/{vote}", headers=basic(estate.sup))
    shown = (await resp.json())["vote"]
    assert shown["state"] == "open" and "result" not in shown and "passed" not in shown
    assert shown["participation"]["units"] == 2 and "approval" not in json.dumps(shown)
    resp = await client.get(f"/api/votes/{vote}/result", headers=basic(estate.sup))
    assert resp.status == 409 and "participation" in (await resp.json())["reason"]
    ballots = [d for d in await motion_docs(city, vote) if d["_id"].startswith("ballot:")]
    assert len(ballots) == 2  # nothing refused was stored


async def test_replays_and_changes_of_mind(client: TestClient, city: City,
                                           estate: Estate) -> None:
    vote = await open_vote(client, estate)
    first = await cast(client, estate, "A", vote, choice="yes", request="phone-a-0001")
    again = await cast(client, estate, "A", vote, choice="yes", request="phone-a-0001")
    assert first == again  # the queued request sent twice is one ballot
    status, answer = await cast(client, estate, "A", vote, choice="no", request="phone-a-0001")
    assert status == 409
    status, answer = await cast(client, estate, "A", vote, choice="no", request="phone-a-0002")
    assert status == 201 and answer["ballot"]["status"] == "counted"
    resp = await client.get(f"/api/votes/{vote}", headers=basic(estate.people["A"]))
    mine = (await resp.json())["vote"]["my_ballots"]
    assert [(b["choice"], b["status"]) for b in mine] == [("yes", "replaced"), ("no", "counted")]
    # another account cannot take A's request id
    status, _ = await cast(client, estate, "B", vote, choice="yes", request="phone-a-0001")
    assert status == 201


async def test_co_owners_clashing_the_later_counts_and_both_are_told(
        client: TestClient, estate: Estate) -> None:
    vote = await open_vote(client, estate)
    status, _ = await cast(client, estate, "B", vote, choice="no")
    assert status == 201
    status, c_answer = await cast(client, estate, "C", vote, choice="yes")
    assert status == 201 and "co-owner" in c_answer["ballot"]["told"]
    resp = await client.get(f"/api/votes/{vote}", headers=basic(estate.people["B"]))
    seen_by_b = (await resp.json())["vote"]["my_ballots"]
    assert [(b["mine"], b["status"], b["clash"]) for b in seen_by_b] == [
        (True, "replaced", True), (False, "counted", True)]


async def test_paper_ballots_only_with_their_photo(client: TestClient, city: City,
                                                   estate: Estate) -> None:
    vote = await open_vote(client, estate)
    url = f"/api/votes/{vote}/paper"
    body = {"request": "paper-0001", "unit": estate.unit(3), "choice": "no", "signed_by": "丁"}
    photo = {"content_type": "image/png", "data": base64.b64encode(PNG).decode()}
    await designs_installed(client)  # a household of the worker's grid lives in building 1
    await city.save(sorted(client.app[DIRECTORY].users[estate.worker].grids)[0], {
        "_id": "household:h1", "type": "household",
        "address": {"compound": estate.compound, "building": "1", "room": "303"}})
    for bad, word in ((body, "Photo"), ({**body, "photo": "x"}, "Photo"),
                      ({**body, "photo": {"content_type": "image/png",
                                          "data": base64.b64encode(b"%PDF-1.4").decode()}},
                       "bytes"),
                      ({**body, "photo": {"content_type": "text/html",
                                          "data": base64.b64encode(PNG).decode()}}, "JPEG"),
                      ({**body, "photo": {"content_type": "image/png", "data": "!!"}}, "base64"),
                      ({**body, "photo": {"content_type": "image/png", "data": base64.b64encode(
                          b"\x89PNG\r\n\x1a\n" + b"\0" * 600_000).decode()}}, "KB")):
        resp = await client.post(url, json=bad, headers=basic(estate.worker))
        reason = (await resp.json())["reason"]
        assert resp.status == 400 and word in reason, (word, reason)
    resp = await client.post(url, json={**body, "photo": photo},
                             headers=basic(estate.other_worker))
    assert resp.status == 404
    resp = await client.post(url, json={**body, "photo": photo}, headers=basic(estate.sup))
    assert resp.status == 403
    resp = await client.post(url, json={**body, "unit": estate.unit(1, estate.other_compound),
                                        "photo": photo}, headers=basic(estate.worker))
    assert resp.status == 403
    resp = await client.post(url, json={**body, "photo": photo}, headers=basic(estate.worker))
    assert resp.status == 201
    stored = [d for d in await motion_docs(city, vote) if d["_id"].startswith("ballot:")]
    assert [(d["channel"], d["created_by"], sorted(d["_attachments"])) for d in stored] == [
        ("paper", estate.worker, ["photo"])]


async def test_closing_late_ballots_and_the_recount(client: TestClient, city: City,
                                                    estate: Estate) -> None:
    vote = await open_vote(client, estate, matter="rebuild")
    for who, choice, unit in (("A", "yes", None), ("B", "yes", None), ("D", "yes", 3),
                              ("D", "yes", 4)):
        status, _ = await cast(client, estate, who, vote, choice=choice,
                               **({"unit": estate.unit(unit)} if unit else {}))
        assert status == 201
    estate.clock.now = T0 + datetime.timedelta(days=7)  # the closing time itself: closed
    status, answer = await cast(client, estate, "C", vote, choice="no")
    assert status == 202 and answer["ballot"]["status"] == "late"
    assert "not counted" in answer["ballot"]["told"]
    resp = await client.get(f"/api/votes/{vote}/result", headers=basic(estate.people["A"]))
    published = await resp.read()
    result = json.loads(published)
    # 4 of 5 units (4/5 of the area) and 3 of 4 owners (A, B+C, D; the developer) took part
    assert result["participation"]["area_share"]["exact"] == "4/5"
    assert result["participation"]["owners_share"]["exact"] == "3/4"
    assert result["participation"]["met"] is True
    assert result["approval_threshold"] == ">=3/4" and result["passed"] is True
    assert result["ballots"] == {"counted": 4, "replaced": 0, "not_on_register": 0}
    kept = [d for d in await motion_docs(city, vote) if d.get("created_by") == estate.people["C"]]
    assert len(kept) == 1  # the late ballot is kept, outside the published count
    again = await city.run(vote_admin.recount, city.couch, vote)
    assert again.identical and again.body == published
    stored = next(d for d in await motion_docs(city, vote) if d["_id"] == "result")
    assert stored["sha256"] == hashlib.sha256(published).hexdigest()
    # the receipt A was given is in the published list, counted
    resp = await client.get(f"/api/votes/{vote}", headers=basic(estate.people["A"]))
    receipt = (await resp.json())["vote"]["my_ballots"][0]["receipt"]
    assert [receipt, "counted"] in result["receipts"]


async def test_a_secret_ballot_keeps_who_apart_from_how(client: TestClient, city: City,
                                                        estate: Estate) -> None:
    client.app[VOTES].box_batch = 1  # each how into the box at once (test_votes_holes: more)
    vote = await open_vote(client, estate, secret=True)
    key = os.urandom(32).hex()
    status, answer = await cast(client, estate, "A", vote, choice="yes", secret_key=key,
                                request="secret-a-1")
    assert status == 201
    retry = await cast(client, estate, "A", vote, choice="yes", secret_key=key,
                       request="secret-a-1")
    assert retry == (201, answer)
    status, answer = await cast(client, estate, "A", vote, choice="no",
                                secret_key=os.urandom(32).hex())
    assert status == 409 and "cannot be changed" in answer["reason"]
    status, _ = await cast(client, estate, "B", vote, choice="no")
    assert status == 400  # a secret vote takes the voter's key
    for who, unit in (("B", None), ("D", 3), ("D", 4)):
        status, _ = await cast(client, estate, who, vote, choice="yes",
                               secret_key=os.urandom(32).hex(),
                               **({"unit": estate.unit(unit)} if unit else {}))
        assert status == 201
    who_docs = [d for d in await motion_docs(city, vote) if d["_id"].startswith("voted:")]
    how_docs = await all_docs(city, f"linli-vote-{vote}-box")
    assert len(who_docs) == len(how_docs) == 4
    assert not any("choice" in d or "picks" in d for d in who_docs)
    shown = json.dumps(how_docs, ensure_ascii=False)
    assert not any(a in shown for a in estate.people.values()) and "property_unit" not in shown
    assert sorted(d["head"] for d in how_docs) == ["1/1", "1/1", "1/2", "1/2"]
    estate.clock.now = T0 + datetime.timedelta(days=8)
    resp = await client.get(f"/api/votes/{vote}/result", headers=basic(estate.sup))
    result = json.loads(await resp.read())
    assert result["approval"]["owners"] == "3/1"  # A, B, and D by halves: three heads
    assert result["approval"]["area_share"]["exact"] == "1/1" and result["passed"] is True
    again = await city.run(vote_admin.recount, city.couch, vote)
    assert again.identical
    # Sealed at the close: the hows copied in one batch, the box (and with it the order
    # they came in) gone.
    names = await city.run(lambda: list(city.couch))
    assert f"linli-vote-{vote}-box" not in names
    sealed = await all_docs(city, f"linli-vote-{vote}-sealed")
    assert [{k: v for k, v in d.items() if k != "_rev"} for d in sealed] == [
        {k: v for k, v in d.items() if k != "_rev"} for d in how_docs]


async def test_a_secret_ballot_cut_off_by_a_crash_is_healed_by_the_phones_retry(
        client: TestClient, city: City, estate: Estate) -> None:
    """Killed between who and how: the who is stored, the how is not. The phone, unanswered,
    sends the same request with the same key again: the how is written, once."""
    from server.domain import votes as rules

    client.app[VOTES].box_batch = 1
    vote = await open_vote(client, estate, secret=True)
    key = os.urandom(32).hex()
    request = "crash-cut-1"
    account = estate.people["A"]
    await city.run(lambda: city.couch[f"linli-vote-{vote}"].save({
        "_id": f"voted:{estate.unit(1)}", "type": "ballot", "schema_version": 1,
        "created_by": account, "motion": f"motion:{vote}", "unit": estate.unit(1),
        "channel": "online", "received_at": "2026-12-01T08:00:00.000+00:00",
        "request": request, "sealed": rules.sealed(key, "who")}))
    assert await all_docs(city, f"linli-vote-{vote}-box") == []
    for _ in range(2):
        status, answer = await cast(client, estate, "A", vote, choice="no", secret_key=key,
                                    request=request)
        assert status == 201 and answer["ballot"]["status"] == "counted"
    [how] = await all_docs(city, f"linli-vote-{vote}-box")
    assert how["_id"] == f"ballot_choice:{rules.sealed(key, 'how')}" and how["choice"] == "no"


async def test_bodies_of_every_shape_are_refused_and_store_nothing(
        client: TestClient, city: City, estate: Estate) -> None:
    vote = await open_vote(client, estate)
    url = f"/api/votes/{vote}/ballot"
    for raw in (b"", b"[]", b"null", b'"yes"', b"{", b'{"choice": "\\ud800"}',
                b'{"request": {"$gt": ""}, "choice": "yes"}',
                b'{"request": "abcdefgh", "choice": ["yes"]}',
                b'{"request": "abcdefgh", "choice": "yes", "unit": ["x"]}',
                b'{"request": "abcdefgh\\u0000", "choice": "yes"}',
                b'{"request": "abcdefgh", "choice": "yes", "picks": "' + b"x" * 5000 + b'"}',
                "标题".encode("gbk")):
        resp = await client.post(url, data=raw, headers={
            **basic(estate.people["A"]), "Content-Type": "application/json"})
        assert resp.status in (400, 415), (raw[:40], resp.status)
        assert " / " in (await resp.json())["reason"]
    for path in (f"/api/votes/{vote[:-1]}/ballot", "/api/votes/..%2f..%2fx/ballot",
                 f"/api/votes/{vote.upper()}/ballot", "/api/votes/{vote}/ballot"):
        resp = await client.post(path, json={"request": "abcdefgh", "choice": "yes"},
                                 headers=basic(estate.people["A"]))
        assert resp.status == 404, path
    assert [d for d in await motion_docs(city, vote) if d["_id"].startswith("ballot:")] == []


async def test_a_vote_past_its_close_is_counted_without_anyone_asking(
        client: TestClient, city: City, estate: Estate) -> None:
    vote = await open_vote(client, estate)
    status, _ = await cast(client, estate, "A", vote, choice="yes")
    assert status == 201
    estate.clock.now = T0 + datetime.timedelta(days=7)

    async def counted() -> bool:
        return any(d["_id"] == "result" for d in await motion_docs(city, vote))

    await eventually(counted, seconds=30, what="the supervised task closing the vote")
    again = await city.run(vote_admin.recount, city.couch, vote)
    assert again.identical


async def test_a_process_that_meets_a_vote_first_in_a_flood_loads_it_once(
        client: TestClient, city: City, estate: Estate) -> None:
    """A server restarted during a flood meets a vote it has not loaded in many requests at
    once: they share one state (one closing lock, one count), not one state each, as they
    did (five counts, five "closed and counted" lines in tests/test_votes_race.py)."""
    vote = await open_vote(client, estate)
    app = client.app
    fresh = Votes(app[COUCH], app[DIRECTORY], app[SCHEMAS], estate.clock)  # as a restart
    user = app[DIRECTORY].users[estate.people["A"]]
    states = await asyncio.gather(*(fresh.state(user, vote) for _ in range(20)))
    assert {id(s) for s in states} == {id(fresh.motions[vote])}
    estate.clock.now = T0 + datetime.timedelta(days=7)
    results = await asyncio.gather(*(fresh.ensure_closed(s) for s in states))
    assert len(set(results)) == 1 and fresh.motions[vote].result == results[0]


async def test_the_list_serves_each_vote_from_its_cache_made_again_when_it_changes(
        client: TestClient, city: City, estate: Estate) -> None:
    """The list joins each vote's bytes as last made; a ballot (participation changed) or the
    close makes them again, and the list shows them at once."""
    vote = await open_vote(client, estate)

    async def entry() -> tuple[dict[str, Any], bytes]:
        resp = await client.get("/api/votes", headers=basic(estate.sup))
        assert resp.status == 200
        found = next(v for v in (await resp.json())["votes"] if v["id"] == vote)
        listed = client.app[VOTES].motions[vote].listed
        assert listed is not None and json.loads(listed[1]) == found
        return found, listed[1]

    before, made = await entry()
    assert before["participation"]["units"] == 0
    again, kept = await entry()
    assert again == before and kept is made  # nothing changed: the same bytes, not made anew
    assert (await cast(client, estate, "A", vote, choice="yes"))[0] == 201
    after, _ = await entry()
    assert after["participation"]["units"] == 1 and after["state"] == "open"
    estate.clock.now = T0 + datetime.timedelta(days=7)
    closed, _ = await entry()
    assert closed["state"] == "closed" and closed["participation"]["units"] == 1


async def test_the_developers_named_representative_votes_its_unsold_units_counted_once(
        client: TestClient, city: City, estate: Estate) -> None:
    """The register names the developer's representative (by phone) on its unsold units: they
    vote each unit online, and all the developer's units count as one owner (司法解释 art. 9),
    whoever votes them; a tenant's account is no representative of units not on its phone."""
    account = estate.people["T"]
    rep_phone = next(p for p, a in client.app[DIRECTORY].logins.items() if a == account)
    await city.run(lambda: [city.couch[VOTES_DB].save(unit_doc(
        estate.compound, n, 1_000_000, [("某某置业有限公司", rep_phone)], held=True))
        for n in (6, 7)])
    vote = await open_vote(client, estate)
    status, answer = await cast(client, estate, "T", vote, choice="yes")
    assert status == 400 and "choose" in answer["reason"]  # two units: which one
    for n in (6, 7):
        status, _ = await cast(client, estate, "T", vote, choice="yes", unit=estate.unit(n))
        assert status == 201
    status, _ = await cast(client, estate, "T", vote, choice="yes", unit=estate.unit(5))
    assert status == 403  # the developer's unit 5 names no representative
    assert (await cast(client, estate, "A", vote, choice="no"))[0] == 201
    estate.clock.now = T0 + datetime.timedelta(days=7)
    resp = await client.get(f"/api/votes/{vote}/result", headers=basic(estate.sup))
    result = json.loads(await resp.read())
    # A, B+C, D and the developer (units 5, 6 and 7 together): four owners; two took part
    assert result["electorate"]["owners"] == 4 and result["participation"]["owners"] == 2
    assert result["participation"]["units"] == 3 and result["approval"]["owners"] == 1
    assert result["approval"]["area_cm2"] == 2_000_000
