"""Wave-4 review probes (attacker's view) of fees, mutual aid, the PIPL work and the handler's
queue: each test is one class of hostile input that once crashed, leaked or revealed, kept
so that it stays fixed (/work/review-wave4.md has the write-up)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user
from test_fees import SECRET, a_compound, app_client, call, roll  # noqa: F401 (app_client: a fixture)
from test_mutual_aid import PREFIX, ride
from test_mutual_aid import call as aid
from test_reports import PREFIX as REPORTS
from test_reports import b64, get, jpeg, post
from test_reports import body as report_body
from test_reports import ready as reports_town
from test_volunteering import phone, ready_town, stored_ids

from server.domain import fees as rules
from server.domain.scope import DIRECTORY_DB, FEES_DB, RESIDENTS_DB
from server.web.keys import DIRECTORY, FEES
from server.web.mutual_aid import MESSAGE_LIMITS, POST_LIMITS


async def raw_request(client: TestClient, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte (headers a client library would refuse)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


async def test_listing_pages_refuse_a_limit_that_is_no_ascii_number(client: TestClient,
                                                                     city: City) -> None:
    town = await ready_town(client, city)
    for limit in ("%C2%B2", "%D9%A3", "1" * 5000, "-1", "0", "51", "1.5", ""):
        resp = await client.get(f"{PREFIX}/listings?limit={limit}", headers=basic(town.ra))
        assert resp.status == 400, (limit, resp.status, await resp.text())
        answer = await resp.json()
        assert set(answer) == {"error", "reason"} and "条数" in answer["reason"], answer


async def test_a_notification_with_undecodable_headers_is_refused_not_a_crash(
        city: City, app_client: TestClient) -> None:  # noqa: F811
    for name in (b"Wechatpay-Signature", b"Wechatpay-Nonce", b"Wechatpay-Timestamp"):
        head = (b"POST /api/fees/notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + name + b": \xff\xfe\xed\xa0\x80\r\n"
                + b"".join(n + b": 1\r\n" for n in (b"Wechatpay-Signature", b"Wechatpay-Nonce",
                                                   b"Wechatpay-Timestamp") if n != name))
        status, body = await raw_request(app_client, head, b'{"resource": {}}')
        assert status == 401, (name, status, body)
        assert json.loads(body)["error"] == "unauthorized"


@pytest.mark.parametrize("bad", ["\udcff\udcfe", "１７００００００００", "²", "9" * 5000])
def test_a_header_that_is_no_ascii_number_is_forged_not_an_error(bad: str) -> None:
    for part in ("timestamp", "nonce", "signature"):
        headers = {"timestamp": str(int(time.time())), "nonce": "n", "signature": "s", part: bad}
        if part != "signature":  # signed right, so the timestamp's own check is reached
            headers["signature"] = rules.signature(SECRET.encode(), headers["timestamp"],
                                                   headers["nonce"], b"{}")
        with pytest.raises(rules.Forged):
            rules.verify(SECRET.encode(), headers, b"{}", time.time())


async def test_a_bill_file_with_a_huge_cell_is_refused_not_a_crash(
        city: City, app_client: TestClient) -> None:  # noqa: F811
    c = await a_compound(city, app_client)
    text = "幢,单元,室,账期,金额（元）\n1,1,101,2026-11," + "9" * 200_000 + "\n"
    status, answer = await call(app_client, "POST", "/api/fees/rolls/import", c.company, {
        "compound": c.code, "due_date": "2026-12-31", "name": "bills.csv",
        "file": base64.b64encode(text.encode()).decode()})
    assert status == 400, answer
    assert set(answer) >= {"error", "reason"}


async def test_the_takers_phone_never_holds_the_posters_account(client: TestClient,
                                                                 city: City) -> None:
    """Rule 2: a neighbour never learns the poster's account (it would let them follow one
    poster across listings); the lent book's deal reaches the taker's phone without it."""
    town = await ready_town(client, city)
    status, answer = await aid(client, town.ra, "POST", "/listings",
                               {"kind": "book", "title": "三体", "loan_days": 3,
                                "scope": "community"})
    assert status == 201, answer
    book = answer["listing"]["_id"]
    status, got = await aid(client, town.rb, "POST", f"/listings/{book}/claim",
                            {"claim_id": "borrow-0001"})
    assert status == 201, got
    status, claims = await aid(client, town.ra, "GET", f"/listings/{book}/claims")
    neighbour = claims["claimants"][0]["with"]
    for body in ({"with": neighbour, "approve": True, "claim_id": "approve-001"},
                 {"act": "lend", "with": neighbour}):
        status, done = await aid(client, town.ra, "POST", f"/listings/{book}/"
                                 + ("decide" if "approve" in body else "deal"), body)
        assert status == 200, done
    async def lent() -> dict[str, Any]:  # the sync's index follows the store's feed
        found = await phone(client, town.rb)
        return found if any(d.get("due_at") for i, d in found.items()
                            if i.startswith("mutual_aid_deal:")) else {}
    held = await eventually(lent, what="the lent deal on the taker's phone")
    deals = [d for i, d in held.items() if i.startswith("mutual_aid_deal:")]
    assert len(deals) == 1 and deals[0]["taker"] == town.rb, deals
    assert town.ra not in json.dumps(held), deals
    status, mine = await aid(client, town.rb, "GET", "/mine")
    assert status == 200 and town.ra not in json.dumps(mine)


def surrogate_body(template: dict[str, Any], field: str) -> bytes:
    """`template` as JSON with `field`'s value a lone surrogate, written as JSON's escape."""
    return json.dumps({**template, field: "@@"}).replace('"@@"', '"a\\ud800b"').encode()


async def refused_whole(client: TestClient, user: str, path: str, template: dict[str, Any],
                        field: str) -> None:
    resp = await client.post(path, data=surrogate_body(template, field),
                             headers={**basic(user), "Content-Type": "application/json"})
    text = await resp.text()
    assert 400 <= resp.status < 500, (path, field, resp.status, text)
    assert set(json.loads(text)) >= {"error", "reason"}, text


async def test_lone_surrogates_in_mutual_aid_bodies_are_refused(client: TestClient,
                                                                city: City) -> None:
    town = await ready_town(client, city)
    _, answer = await aid(client, town.ra, "POST", "/listings", ride())
    listing = PREFIX + "/listings/" + answer["listing"]["_id"]
    for path, template, field in (
            (PREFIX + "/listings", ride(), "title"), (PREFIX + "/listings", ride(), "from"),
            (PREFIX + "/listings", ride(), "departs_at"),
            (listing + "/messages", {"key": "message-0001", "text": "x"}, "text"),
            (listing + "/messages", {"key": "message-0001", "text": "x"}, "key"),
            (listing + "/report", {"reason": "x"}, "reason"),
            (listing + "/claim", {"claim_id": "claim-0001"}, "claim_id"),
            (listing + "/deal", {"act": "rate", "stars": 5}, "act")):
        await refused_whole(client, town.rb, path, template, field)
    for path, template, field in (
            (PREFIX + "/suppliers", {"phone": town.ra, "shop": "店", "community": town.c1},
             "shop"),
            (PREFIX + "/suppliers", {"phone": town.ra, "shop": "店", "community": town.c1},
             "community"),
            (PREFIX + "/suppliers", {"phone": town.ra, "shop": "店", "community": town.c1},
             "phone"),
            (listing + "/hide", {"reason": "x"}, "reason")):
        await refused_whole(client, town.sup1, path, template, field)


async def test_lone_surrogates_in_fees_bodies_are_refused(
        city: City, app_client: TestClient) -> None:  # noqa: F811
    c = await a_compound(city, app_client)
    assert (await call(app_client, "POST", "/api/fees/rolls", c.company, roll(c)))[0] == 201
    bill = (await call(app_client, "GET", "/api/fees/bills", c.owners["A"]))[1]["bills"][0]
    await refused_whole(app_client, c.owners["A"], f"/api/fees/bills/{bill['bill']}/pay",
                        {"request": "phone-a-0001"}, "request")
    for field in ("compound", "period", "due_date"):
        await refused_whole(app_client, c.company, "/api/fees/rolls",
                            roll(c, period="2027-01"), field)
    file = base64.b64encode("幢,单元,室,账期,金额（元）\n1,1,101,2027-02,1\n".encode()).decode()
    for field in ("compound", "due_date", "name"):
        await refused_whole(app_client, c.company, "/api/fees/rolls/import", {
            "compound": c.code, "due_date": "2027-03-31", "name": "b.csv", "file": file}, field)
    await refused_whole(app_client, c.admin, "/api/fees/reconcile",
                        {"day": "2026-11-20", "statement": "x"}, "day")


async def test_handler_steps_refuse_hostile_bodies_and_others_ids(client: TestClient,
                                                                  city: City) -> None:
    """The handler's queued steps (pwa/worker/reports.js) as an attacker sends them: a lone
    surrogate in any text, photos of every wrong shape, another grid's worker on this report
    (answered as a made-up one), the same request id replayed with other content."""
    town = await reports_town(client, city)
    _, answer = await post(client, town.ra, REPORTS, report_body(700, category="other"))
    rid = answer["report"]["_id"]
    path = f"{REPORTS}/{rid}/steps"
    base = {"from": "submitted", "to": "accepted", "request": "step-70000001"}
    for field in ("note", "request", "from", "to", "comment", "assignee"):
        await refused_whole(client, town.worker1, path, base, field)
    for photos in (5, "x", [5], [{}], [{"data": 5}], [{"data": "!!"}], [{"data": "\u00e9"}],
                   [{"data": b64(jpeg())}] * 4, [{"data": b64(b"%PDF-1.4 " + b"0" * 100)}]):
        got, refusal = await post(client, town.worker1, path, {**base, "photos": photos})
        assert got == 400 and set(refusal) == {"error", "reason"}, (photos, got, refusal)
    theirs = await post(client, town.worker3, path, base)
    made_up = await post(client, town.worker3, f"{REPORTS}/report:t0000n0-0000/steps", base)
    assert theirs[0] == made_up[0] == 404 and theirs[1] == made_up[1], (theirs, made_up)
    got, first = await post(client, town.worker1, path, base)
    assert got == 201, first
    got, replay = await post(client, town.worker1, path, {**base, "to": "in_progress",
                                                          "note": "改了"})
    assert got == 200 and replay["repeated"] and replay["step"]["to"] == "accepted", replay
    got, seen = await get(client, town.ra, f"{REPORTS}/{rid}")
    assert seen["status"]["state"] == "accepted", seen["status"]


async def test_paying_anothers_bill_costs_what_a_made_up_one_does(
        city: City, app_client: TestClient) -> None:  # noqa: F811
    """The owners' index is read again once stale (a whole register's read): it is read for
    every bill asked, so a slow answer never says that a unit exists."""
    c = await a_compound(city, app_client)
    assert (await call(app_client, "POST", "/api/fees/rolls", c.company, roll(c)))[0] == 201
    bill = (await call(app_client, "GET", "/api/fees/bills", c.owners["A"]))[1]["bills"][0]
    store = app_client.app[FEES]
    reads: list[str] = []
    real_range = store.range

    async def counted(prefix: str, db: str = FEES_DB) -> list[dict[str, Any]]:
        reads.append(prefix)
        return await real_range(prefix, db)
    store.range = counted  # type: ignore[method-assign]
    for key in (bill["bill"], bill["bill"].replace("1-1-101", "9-9-909")):
        store._owners = (float("-inf"), {})  # stale, as 60 s after the last read
        reads.clear()
        got, _ = await call(app_client, "POST", f"/api/fees/bills/{key}/pay",
                                 c.owners["B"], {"request": "phone-b-0003"})
        assert got == 404 and reads == ["property_unit:"], (key, got, reads)


async def test_messages_and_posts_are_limited_per_account(client: TestClient,
                                                         city: City) -> None:
    """No flood: a neighbour's messages to a listing (each a document the poster's list reads
    whole) and a post-and-close loop (each listing kept, with its photos) are counted per
    account as they arrive (a refused one given back); past the limit 429 with Retry-After,
    nothing stored."""
    town = await ready_town(client, city)
    client.app[MESSAGE_LIMITS].limit = client.app[POST_LIMITS].limit = 3  # as 60/h and 20/day
    held = len(await stored_ids(city, RESIDENTS_DB, "mutual_aid_listing:"))
    for _ in range(4):  # refused, nothing stored: not counted
        assert (await aid(client, town.ra, "POST", "/listings", ride(seats=0)))[0] == 400
    listing = ""
    for n in range(4):
        got, answer = await aid(client, town.ra, "POST", "/listings", ride(title=f"第{n}趟"))
        if n < 3:
            assert got == 201, answer
            listing = answer["listing"]["_id"]
            await aid(client, town.ra, "POST", f"/listings/{listing}/close")
        else:
            assert got == 429 and answer["error"] == "too_many_requests", answer
    assert len(await stored_ids(city, RESIDENTS_DB, "mutual_aid_listing:")) == held + 3
    _, answer = await aid(client, town.rb, "POST", "/listings", ride())
    listing = answer["listing"]["_id"]  # another account's own count
    sent = len(await stored_ids(city, RESIDENTS_DB, "mutual_aid_message:"))
    for n in range(4):
        resp = await client.post(f"{PREFIX}/listings/{listing}/messages", headers=basic(town.ra),
                                 json={"key": f"message-{n:04d}", "text": "在吗"})
        assert resp.status == (201 if n < 3 else 429), await resp.text()
    assert int(resp.headers["Retry-After"]) > 0
    assert len(await stored_ids(city, RESIDENTS_DB, "mutual_aid_message:")) == sent + 3


async def test_a_loans_next_round_is_decided_among_its_own_claimants(client: TestClient,
                                                                      city: City) -> None:
    """Round 2 of a loan: the poster cannot approve round 1's borrower, who has not asked
    again (nothing is stored); once they ask, the decision is theirs as for anyone."""
    town = await ready_town(client, city)
    _, answer = await aid(client, town.ra, "POST", "/listings", {
        "kind": "tool", "title": "电钻", "loan_days": 3, "scope": "community"})
    drill = answer["listing"]["_id"]
    path = f"/listings/{drill}"
    assert (await aid(client, town.rb, "POST", path + "/claim",
                      {"claim_id": "borrow-0001"}))[0] == 201
    neighbour = (await aid(client, town.ra, "GET", path + "/claims"))[1]["claimants"][0]["with"]
    for who, act, body in ((town.ra, "/decide", {"with": neighbour, "approve": True,
                                                 "claim_id": "approve-001"}),
                           (town.ra, "/deal", {"act": "lend", "with": neighbour}),
                           (town.rb, "/deal", {"act": "return"}),
                           (town.ra, "/deal", {"act": "return", "with": neighbour})):
        got, done = await aid(client, who, "POST", path + act, body)
        assert got == 200, (act, done)
    round_two = f"claim:{drill.replace(':', '.')}.r2:"  # the allocator's event ids
    assert await stored_ids(city, "linli-claims", round_two) == []
    got, refusal = await aid(client, town.ra, "POST", path + "/decide",
                             {"with": neighbour, "approve": True, "claim_id": "approve-002"})
    assert got == 400 and "没有申请" in refusal["reason"], refusal
    assert await stored_ids(city, "linli-claims", round_two) == []
    assert (await aid(client, town.rb, "POST", path + "/claim",
                      {"claim_id": "borrow-0002"}))[0] == 201
    got, ok = await aid(client, town.ra, "POST", path + "/decide",
                        {"with": neighbour, "approve": True, "claim_id": "approve-003"})
    assert (got, ok["status"]) == (200, "confirmed"), ok
    assert len(await stored_ids(city, "linli-claims", round_two)) == 2


async def test_the_campaigns_list_shows_each_supervisor_their_own_grids(
        client: TestClient, city: City) -> None:
    """What a purge left (figures per grid, type and day, and who purged) is shown to the
    supervisors of those grids, not to another street's."""
    tag = uuid.uuid4().hex[:6]
    grids = [await city.grid(community=f"camp{tag}{n}") for n in (1, 2)]
    sups = [await city.user("supervisor", communities=[f"camp{tag}{n}"]) for n in (1, 2)]
    admin = await city.user("admin")
    for name in (*sups, admin):
        await wait_for_user(client, name)
    key = f"pilot-{tag}"
    resp = await client.put(f"/api/campaigns/{key}", headers=basic(admin),
                            json={"ends_on": "2026-01-31", "retention_days": 30})
    assert resp.status == 200, await resp.text()

    def purged() -> None:  # as two purges left it (written straight to the store)
        doc = city.couch[DIRECTORY_DB][f"campaign:{key}"]
        doc["purged"] = {g: {"by": admin, "at": "2026-03-01T00:00:00Z", "records": 2}
                         for g in grids}
        doc["figures"] = {g: {"screening": {"2026-01-20": 2}} for g in grids}
        city.couch[DIRECTORY_DB].save(doc)
    await city.run(purged)
    await eventually(lambda: client.app[DIRECTORY].campaigns.get(key, {}).get("figures"))
    for user, seen in ((sups[0], [grids[0]]), (sups[1], [grids[1]]), (admin, sorted(grids))):
        resp = await client.get("/api/campaigns", headers=basic(user))
        [listed] = [c for c in (await resp.json())["campaigns"] if c["key"] == key]
        assert sorted(listed["figures"]) == sorted(listed["purged"]) == seen, (user, listed)


async def test_cancelling_on_a_listing_one_cannot_see_answers_as_a_made_up_one(
        client: TestClient, city: City) -> None:
    """A resident of another community cancelling on a listing they cannot see, whatever the
    body, hears what a made-up listing answers: nothing of the listing's shape."""
    town = await ready_town(client, city)
    _, answer = await aid(client, town.ra, "POST", "/listings", ride())
    ride_id = answer["listing"]["_id"]
    for body in ({}, {"claim_id": 5}, {"claim_id": "cancel-0001", "item": 3},
                 {"claim_id": "cancel-0001"}):
        theirs = await aid(client, town.rc, "POST", f"/listings/{ride_id}/cancel", body)
        made_up = await aid(client, town.rc, "POST",
                            "/listings/mutual_aid_listing:0123456789abcdef/cancel", body)
        assert theirs == made_up and theirs[0] == 404, (body, theirs, made_up)
    got, claim = await aid(client, town.rb, "POST", f"/listings/{ride_id}/claim",
                           {"claim_id": "claim-0001"})
    assert got == 201, claim
    await aid(client, town.ra, "POST", f"/listings/{ride_id}/close")  # now seen by its poster only
    got, cancelled = await aid(client, town.rb, "POST", f"/listings/{ride_id}/cancel",
                               {"claim_id": "cancel-0002"})
    assert got == 201 and cancelled["status"] == "cancelled", cancelled


async def test_a_refused_notification_cannot_write_lines_of_the_log(
        city: City, app_client: TestClient,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    forged = b'{"x": "\n2026-12-04 WARNING linli.fees payment taken for every bill\r\n"}'
    with caplog.at_level(logging.WARNING, logger="linli.fees"):
        resp = await app_client.post("/api/fees/notify", data=forged, headers={
            "Content-Type": "application/json", "Wechatpay-Timestamp": "1",
            "Wechatpay-Nonce": "n", "Wechatpay-Signature": "s"})
    assert resp.status == 401
    logged = [r.getMessage() for r in caplog.records if r.name == "linli.fees"]
    assert logged and all("\n" not in m and "\r" not in m for m in logged), logged


async def test_an_unmasked_exports_entry_names_every_grid_exported(client: TestClient,
                                                                   city: City) -> None:
    """Art. 51's record of an export: whom it covered is every grid, not the first 200
    characters of their list (a community's 30 grids were cut to about 22)."""
    community = f"wide{uuid.uuid4().hex[:6]}"
    grids = sorted([await city.grid(community=community) for _ in range(30)])
    trusted = await city.user("supervisor", communities=[community], rights=["unmask"])
    admin = await city.user("admin")
    for name in (trusted, admin):
        await wait_for_user(client, name)
    await eventually(lambda: all(g in client.app[DIRECTORY].grids for g in grids))
    resp = await client.get("/api/export?what=persons&unmask=1&reason=home_visit",
                            headers=basic(trusted))
    assert resp.status == 200, await resp.text()
    await resp.read()
    resp = await client.get(f"/api/audit?user={trusted}", headers=basic(admin))
    [entry] = (await resp.json())["entries"]
    assert entry["kind"] == "export" and entry["grid"].split(",") == grids, entry["grid"]
