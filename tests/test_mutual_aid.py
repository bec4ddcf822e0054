"""Mutual aid (issue 20) through the real app on the real embedded store: a listing of each
kind, bad input of every class refused by label (zh-CN first) with nothing stored, seats and
stock allocated exactly through the one allocation, a loan lent, returned by both sides and
rated once, a group-buy's pickup list and its cash recorded, messages through the app, a
listing reported and hidden; and no neighbour's account, phone or unit on any answer."""

from __future__ import annotations

import datetime
import json
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user
from test_reports import b64, jpeg
from test_volunteering import DB, phone, ready_town, stored_ids

from server.domain.scope import RESIDENTS_DB
from server.sync.grouped import GroupedReads
from server.web.keys import CONFIG, COUCH, RESIDENT_INDEX

PREFIX = "/api/mutual-aid"


def later(days: float) -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)).isoformat(
        timespec="seconds")


def ride(**changes: Any) -> dict[str, Any]:
    return {"kind": "carpool", "title": "周六去火车站", "from": "坊门小区东门", "to": "火车站",
            "departs_at": later(2), "seats": 2, **changes}


def offer(**changes: Any) -> dict[str, Any]:
    return {"kind": "groupbuy", "title": "空中菜场：蔬菜包", "deadline": later(1),
            "items": [{"name": "蔬菜包", "price_fen": 2880, "stock": 2, "unit": "一份 5 斤"},
                      {"name": "鸡蛋", "price_fen": 1500, "stock": 5, "unit": "30 枚"}],
            "pickup_points": ["东门", "北门"], **changes}


async def call(client: TestClient, user: str, method: str, path: str,
               body: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, PREFIX + path, headers=basic(user), json=body)
    text = await resp.text()
    return resp.status, json.loads(text) if text else None


async def listed(client: TestClient, user: str, query: str = "") -> list[dict[str, Any]]:
    status, page = await call(client, user, "GET", "/listings" + query)
    assert status == 200, page
    return list(page["listings"])


async def test_bad_listings_are_refused_by_label_and_store_nothing(client: TestClient,
                                                                  city: City) -> None:
    town = await ready_town(client, city)
    held = await stored_ids(city, RESIDENTS_DB, "mutual_aid_listing:")  # other modules' too
    limit = client.app[CONFIG].report_photo_max_bytes
    cases = [
        (ride(seats=0), "座位数"), (ride(seats="2"), "座位数"), (ride(seats=True), "座位数"),
        (ride(departs_at=later(-1)), "出发时间"), (ride(departs_at="tomorrow"), "出发时间"),
        (ride(title="\ud800"), "标题"), (ride(title="x" * 61), "标题"),
        (ride(created_by=town.rb), "发布者"), (ride(community=town.c3), "社区"),
        (ride(status="hidden"), "状态"), (ride(household="h"), "household"),
        (ride(scope="city"), "可见范围"), (ride(kind="car"), "类别"),
        ({"kind": "swap", "title": "旧自行车"}, "想换的东西"),
        ({"kind": "swap", "title": "旧自行车", "free": True, "wanted": "书"}, "想换的东西"),
        ({"kind": "swap", "title": "旧自行车", "free": True,
          "photos": [b64(b"\xff\xd8\xff" + b"0" * (limit + 10))]}, "照片"),
        ({"kind": "swap", "title": "旧自行车", "free": True, "photos": [b64(b"%PDF-1.4")]}, "照片"),
        ({"kind": "swap", "title": "旧自行车", "free": True,
          "photos": [b64(jpeg())] * 4}, "照片"),
        ({"kind": "tool", "title": "电钻", "loan_days": 0}, "借期"),
        ({"kind": "book", "title": "三体", "loan_days": 61}, "借期"),
    ]
    for sent, label in cases:
        status, answer = await call(client, town.ra, "POST", "/listings", sent)
        assert status == 400, (sent, answer)
        assert set(answer) == {"error", "reason"} and label in answer["reason"], (sent, answer)
        assert " / " in answer["reason"] and "/seats" not in answer["reason"]
    status, answer = await call(client, town.ra, "POST", "/listings", [1, 2])
    assert status == 400
    status, answer = await call(client, town.ra, "POST", "/listings", offer())
    assert status == 403 and "供应商" in answer["reason"]  # not a supplier
    assert await stored_ids(city, RESIDENTS_DB, "mutual_aid_listing:") == held


async def test_a_ride_is_seen_by_its_compound_and_its_seats_claimed_exactly(
        client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    status, answer = await call(client, town.ra, "POST", "/listings", ride())
    assert status == 201, answer
    ride_id = answer["listing"]["_id"]
    text = json.dumps(answer, ensure_ascii=False)
    assert town.ra not in text and "301" not in text and "王伟" not in text
    seen = await listed(client, town.rb)
    assert [x["_id"] for x in seen] == [ride_id] and not seen[0]["mine"]
    assert town.ra not in json.dumps(seen) and seen[0]["poster"].startswith("本小区居民")
    assert await listed(client, town.rc) == []  # another community
    status, missing = await call(client, town.rc, "GET", f"/listings/{ride_id}")
    status_made_up, made_up = await call(client, town.rc, "GET",
                                         "/listings/mutual_aid_listing:0123456789abcdef")
    assert (status, missing) == (status_made_up, made_up) and status == 404

    status, own = await call(client, town.ra, "POST", f"/listings/{ride_id}/claim",
                             {"claim_id": "own-claim-1"})
    assert status == 403, own
    third = town.worker1  # a worker is no resident: refused
    status, _ = await call(client, third, "POST", f"/listings/{ride_id}/claim",
                           {"claim_id": "worker-claim"})
    assert status == 403
    status, first = await call(client, town.rb, "POST", f"/listings/{ride_id}/claim",
                               {"claim_id": "rb-claim-01"})
    assert (status, first["status"]) == (201, "confirmed"), first
    status, again = await call(client, town.rb, "POST", f"/listings/{ride_id}/claim",
                               {"claim_id": "rb-claim-01"})
    assert (status, again["repeated"], again["status"]) == (200, True, "confirmed")
    status, forged = await call(client, town.rb, "POST", f"/listings/{ride_id}/claim",
                                {"claim_id": "rb-claim-02", "claimant": town.ra})
    assert status == 400 and "claimant" in forged["reason"]
    mine = await phone(client, town.rb)
    assert any(i.startswith("allocation:mutual_aid_listing.") for i in mine), sorted(mine)
    status, view = await call(client, town.rb, "GET", f"/listings/{ride_id}")
    assert view["parts"] == [{"taken": 1, "status": "confirmed", "line": 0}]
    status, claims = await call(client, town.ra, "GET", f"/listings/{ride_id}/claims")
    assert status == 200 and claims["taken"] == [1]
    assert town.rb not in json.dumps(claims) and len(claims["claimants"][0]["with"]) == 16
    status, _ = await call(client, town.rb, "GET", f"/listings/{ride_id}/claims")
    assert status == 404  # not the poster's
    poster_phone = await phone(client, town.ra)
    assert ride_id in poster_phone and ride_id not in await phone(client, town.rb)


async def test_a_group_buy_sells_its_stock_exactly_and_records_the_cash(
        client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    status, refusal = await call(client, town.ra, "POST", "/suppliers",
                                 {"phone": town.ra, "shop": "坊门菜场", "community": town.c1})
    assert status == 403, refusal
    status, answer = await call(client, town.sup1, "POST", "/suppliers",
                                {"phone": town.ra, "shop": "坊门菜场", "community": town.c3})
    assert status == 400 and "社区" in answer["reason"]
    status, answer = await call(client, town.sup1, "POST", "/suppliers",
                                {"phone": town.ra, "shop": "坊门菜场", "community": town.c1})
    assert status == 201, answer
    for bad, label in ((offer(items=[{"name": "菜", "price_fen": -1, "stock": 1,
                                      "unit": "份"}]), "价格（分）"),
                       (offer(items=[{"name": "菜", "price_fen": 1.5, "stock": 1,
                                      "unit": "份"}]), "价格（分）"),
                       (offer(items=[{"name": "菜", "price_fen": 1, "stock": 0,
                                      "unit": "份"}]), "库存"),
                       (offer(deadline=later(-0.01)), "截单时间"),
                       (offer(pickup_points=[]), "自提点"), (offer(scope="compound"), "可见范围")):
        status, answer = await call(client, town.ra, "POST", "/listings", bad)
        assert status == 400 and label in answer["reason"], (bad, answer)
    status, answer = await call(client, town.ra, "POST", "/listings", offer())
    assert status == 201, answer
    buy = answer["listing"]["_id"]
    assert answer["listing"]["poster"] == "坊门菜场" and answer["listing"]["scope"] == "community"
    status, _own = await call(client, town.ra, "POST", f"/listings/{buy}/claim",
                             {"claim_id": "self-order-1", "item": 0})
    assert status == 403
    others = [town.rb] + [await city_resident(client, city, town) for _ in range(2)]
    outcomes = []
    for n, buyer in enumerate(others):
        status, got = await call(client, buyer, "POST", f"/listings/{buy}/claim",
                                 {"claim_id": f"order-{n}-item0", "item": 0, "pickup": n % 2})
        assert status == 201, got
        outcomes.append(got["status"])
    assert outcomes == ["confirmed", "confirmed", "waiting"]  # stock 2, in the order received
    status, bad_item = await call(client, town.rb, "POST", f"/listings/{buy}/claim",
                                  {"claim_id": "order-bad-item", "item": 9})
    assert status == 400 and "商品" in bad_item["reason"]
    status, eggs = await call(client, town.rb, "POST", f"/listings/{buy}/claim",
                              {"claim_id": "order-0-item1", "item": 1, "pickup": 0})
    assert eggs["status"] == "confirmed"
    status, pick = await call(client, town.ra, "GET", f"/listings/{buy}/pickups")
    assert status == 200, pick
    assert [p["point"] for p in pick["points"]] == ["东门", "北门"]
    east = pick["points"][0]["orders"]
    assert len(east) == 1 and east[0]["total_fen"] == 2880 + 1500 and len(east[0]["code"]) == 6
    assert len(pick["points"][1]["orders"]) == 1
    assert town.rb not in json.dumps(pick) and "302" not in json.dumps(pick)
    deal_path = f"/listings/{buy}/deal"
    status, over = await call(client, town.ra, "POST", deal_path,
                              {"act": "pickup", "with": east[0]["with"], "paid_fen": 4381})
    assert status == 400 and "收款" in over["reason"]
    status, paid = await call(client, town.ra, "POST", deal_path,
                              {"act": "pickup", "with": east[0]["with"], "paid_fen": 4380})
    assert status == 200 and paid["deal"]["paid_fen"] == 4380, paid
    status, _twice = await call(client, town.ra, "POST", deal_path,
                               {"act": "pickup", "with": east[0]["with"], "paid_fen": 4380})
    assert status == 400
    for who, side in ((town.rb, None), (town.ra, east[0]["with"])):
        body = {"act": "rate", "stars": 5, **({"with": side} if side else {})}
        status, rated = await call(client, who, "POST", deal_path, body)
        assert status == 200, rated
        status, again = await call(client, who, "POST", deal_path, body)
        assert status == 400 and "评分" in again["reason"]
    held = await phone(client, town.rb)
    deals = [d for i, d in held.items() if i.startswith("mutual_aid_deal:")]
    assert len(deals) == 1 and deals[0]["ratings"] == {"owner": 5, "taker": 5}


async def city_resident(client: TestClient, city: City, town: Any) -> str:
    """Another resident of the community (a household of its own in g1)."""
    from test_notices import a_resident
    n = 10 + len(await stored_ids(city, f"grid-{town.g1}", "household:"))
    household = f"household:{town.g1}-{n:04d}"
    await city.save(town.g1, {
        "_id": household, "type": "household", "schema_version": 1, "grid": town.g1,
        "created_by": town.worker1, "head_name": "邻居", "tenure": "owned", "status": "active",
        "address": {"compound": "c1", "compound_name": "坊门小区", "building": "5", "unit": "1",
                    "room": str(100 + n)}})
    account = await a_resident(city, town.g1, household)
    index = client.app[RESIDENT_INDEX]
    index.notice(f"grid-{town.g1}")
    # The server learns of the account from the directory's feed, of its link from the grid's:
    # either may trail the other, so wait for both (as `ready_town` does).
    await wait_for_user(client, account)
    await eventually(lambda: index.ids.households(account), what="the link indexed")
    await eventually(lambda: all(p.community for p in index.ids.places_of(account).values()),
                     what="the household's community indexed")
    return account


async def test_a_loan_is_returned_by_both_sides_and_rated_once(client: TestClient,
                                                               city: City) -> None:
    town = await ready_town(client, city)
    status, answer = await call(client, town.ra, "POST", "/listings",
                                {"kind": "tool", "title": "电钻", "loan_days": 3,
                                 "scope": "community", "photos": [b64(jpeg())]})
    assert status == 201, answer
    drill = answer["listing"]["_id"]
    assert answer["listing"]["photos"] == ["photo-1.jpg"]
    resp = await client.get(f"{PREFIX}/listings/{drill}/photos/photo-1.jpg",
                            headers=basic(town.rb))
    assert resp.status == 200 and b"WHERE-I-LIVE" not in await resp.read()
    status, got = await call(client, town.rb, "POST", f"/listings/{drill}/claim",
                             {"claim_id": "borrow-0001"})
    assert got["status"] == "awaiting_approval", got
    status, claims = await call(client, town.ra, "GET", f"/listings/{drill}/claims")
    neighbour = claims["claimants"][0]["with"]
    deal_path = f"/listings/{drill}/deal"
    status, early = await call(client, town.ra, "POST", deal_path,
                               {"act": "lend", "with": neighbour})
    assert status == 400, early  # not approved yet: holds no confirmed place
    status, ok = await call(client, town.ra, "POST", f"/listings/{drill}/decide",
                            {"with": neighbour, "approve": True, "claim_id": "approve-001"})
    assert ok["status"] == "confirmed", ok
    status, lent = await call(client, town.ra, "POST", deal_path,
                              {"act": "lend", "with": neighbour})
    assert status == 200 and lent["deal"]["due_at"], lent
    status, early_rate = await call(client, town.rb, "POST", deal_path, {"act": "rate",
                                                                        "stars": 4})
    assert status == 400 and "完成" in early_rate["reason"]
    status, back = await call(client, town.rb, "POST", deal_path, {"act": "return"})
    assert status == 200 and "completed_at" not in back["deal"]
    status, _again = await call(client, town.rb, "POST", deal_path, {"act": "return"})
    assert status == 400
    status, back = await call(client, town.ra, "POST", deal_path,
                              {"act": "return", "with": neighbour})
    assert status == 200 and back["deal"]["completed_at"], back
    status, rated = await call(client, town.rb, "POST", deal_path, {"act": "rate", "stars": 4})
    assert status == 200 and rated["deal"]["ratings"] == {"taker": 4}
    status, bad = await call(client, town.ra, "POST", deal_path,
                             {"act": "rate", "with": neighbour, "stars": 6})
    assert status == 400 and "评分" in bad["reason"]
    status, view = await call(client, town.rb, "GET", f"/listings/{drill}")
    assert view["listing"]["round"] == 2 and view["parts"][0]["status"] is None


async def test_messages_reports_and_hiding(client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    status, answer = await call(client, town.ra, "POST", "/listings",
                                {"kind": "book", "title": "三体", "loan_days": 14})
    book = answer["listing"]["_id"]
    status, sent = await call(client, town.rb, "POST", f"/listings/{book}/messages",
                              {"text": "请问周末能借吗？", "key": "msg-000001"})
    assert status == 201, sent
    status, again = await call(client, town.rb, "POST", f"/listings/{book}/messages",
                               {"text": "请问周末能借吗？", "key": "msg-000001"})
    assert status == 200 and again["repeated"]
    status, threads = await call(client, town.ra, "GET", f"/listings/{book}/messages")
    assert len(threads["threads"]) == 1 and town.rb not in json.dumps(threads)
    thread = threads["threads"][0]["thread"]
    status, reply = await call(client, town.ra, "POST", f"/listings/{book}/messages",
                               {"text": "可以", "key": "msg-000002", "thread": thread})
    assert status == 201, reply
    status, mine = await call(client, town.rb, "GET", f"/listings/{book}/messages")
    assert [m["mine"] for m in mine["threads"][0]["messages"]] == [True, False]
    status, _ = await call(client, town.rc, "POST", f"/listings/{book}/messages",
                           {"text": "hi", "key": "msg-000003"})
    assert status == 404
    status, _ = await call(client, town.rb, "POST", f"/listings/{book}/report",
                           {"reason": "疑似广告"})
    assert status == 201
    status, again = await call(client, town.rb, "POST", f"/listings/{book}/report",
                               {"reason": "疑似广告"})
    assert status == 200 and again["repeated"]
    status, _ = await call(client, town.rb, "POST", f"/listings/{book}/hide", {"reason": "x"})
    assert status == 403
    status, queue = await call(client, town.sup1, "GET", "/reported")
    assert [r["_id"] for r in queue["listings"]] == [book] and queue["listings"][0]["reports"] == 1
    status, hidden = await call(client, town.sup1, "POST", f"/listings/{book}/hide",
                                {"reason": "广告"})
    assert status == 200 and hidden["status"] == "hidden"
    assert await listed(client, town.rb) == []
    status, _ = await call(client, town.rb, "GET", f"/listings/{book}")
    assert status == 404
    status, own = await call(client, town.ra, "GET", "/mine")
    assert own["listings"][0]["hidden_reason"] == "广告"


async def test_attackers_classes_on_the_page_the_claims_and_the_deals(client: TestClient,
                                                                      city: City) -> None:
    """Query parameters, wrong types, nesting, names, lone surrogates, forged fields and other
    people's ids: each refused by label or answered as a made-up listing; nothing stored."""
    town = await ready_town(client, city)
    status, answer = await call(client, town.ra, "POST", "/listings", ride())
    ride_id = answer["listing"]["_id"]
    for query, label in (("?kind=taxi", "类别"), ("?limit=0", "条数"), ("?limit=51", "条数"),
                         ("?limit=abc", "条数"), ("?kind=book&kind=tool", "参数"),
                         ("?grid=g1", "参数"), ("?before=garbage", "编号")):
        status, refusal = await call(client, town.rb, "GET", "/listings" + query)
        assert status == 400 and label in refusal["reason"], (query, refusal)
    before = await stored_ids(city, "linli-claims", "claim:mutual_aid_listing")
    for body in ({"claim_id": 12345678}, {"claim_id": "short"}, {"claim_id": "a" * 65},
                 {"claim_id": "../../etc/x"}, {"claim_id": "\ud800abcdefgh"},
                 {"claim_id": {"$gt": ""}}, {"claim_id": ["abcdefgh"]}, {}):
        status, refusal = await call(client, town.rb, "POST", f"/listings/{ride_id}/claim", body)
        assert status == 400 and "申请编号" in refusal["reason"], (body, refusal)
    status, refusal = await call(client, town.rb, "POST", f"/listings/{ride_id}/claim",
                                 {"claim_id": "abcdefgh", "created_by": town.ra})
    assert status == 400 and "created_by" in refusal["reason"]
    assert await stored_ids(city, "linli-claims", "claim:mutual_aid_listing") == before
    made_up = await call(client, town.rb, "GET", "/listings/mutual_aid_listing:0123456789abcdef")
    for listing in ("mutual_aid_listing:..%2F..%2Fx", "mutual_aid_listing:0123456789ABCDEF",
                    "notice:x", ride_id.replace("mutual_aid_listing", "mutual_aid_deal")):
        assert await call(client, town.rb, "GET", f"/listings/{listing}") == made_up, listing
    status, _ = await call(client, town.rb, "GET", f"/listings/{ride_id}/photos/..%2Fx.jpg")
    assert status == 404
    # Another community's resident: every act answers as for a made-up listing.
    for method, path, body in (("POST", "/claim", {"claim_id": "abcdefgh"}),
                               ("POST", "/deal", {"act": "rate", "stars": 5}),
                               ("GET", "/messages", None),
                               ("POST", "/messages", {"text": "hi", "key": "abcdefgh"}),
                               ("POST", "/report", {"reason": "x"}),
                               ("GET", "/claims", None), ("GET", "/pickups", None)):
        status, refusal = await call(client, town.rc, method, f"/listings/{ride_id}{path}", body)
        assert status == 404 and refusal == made_up[1], (path, refusal)
    # The poster names a neighbour only by a thread key of their own listing's claimants.
    for body, label in (({"act": "handover", "with": "0123456789abcdef"}, "对方"),
                        ({"act": "steal", "with": "0123456789abcdef"}, "对方"),
                        ({"act": "rate", "stars": 5, "taker": town.rb}, "taker")):
        status, refusal = await call(client, town.ra, "POST", f"/listings/{ride_id}/deal", body)
        assert status == 400 and label in refusal["reason"], (body, refusal)
    status, refusal = await call(client, town.rb, "POST", f"/listings/{ride_id}/messages",
                                 {"text": "hi", "key": "abcdefgh", "thread": "0" * 16})
    assert status == 400 and "thread" in refusal["reason"]  # a neighbour names no thread
    key = ride_id.split(":", 1)[1]
    assert await stored_ids(city, RESIDENTS_DB, f"mutual_aid_deal:{key}") == []
    assert await stored_ids(city, RESIDENTS_DB, f"mutual_aid_message:{key}") == []


async def test_a_new_outcome_reaches_the_phone_from_memory_as_the_store_holds_it(
        client: TestClient, city: City) -> None:
    """The allocator's new outcomes are served to the phones they wake from the index's
    memory (`own_docs`), with the history `_bulk_get?revs=true` gives, and only while the
    index holds that revision: a changed outcome is read from the store."""
    town = await ready_town(client, city)
    status, answer = await call(client, town.ra, "POST", "/listings", ride(seats=1))
    ride_id = answer["listing"]["_id"]
    status, first = await call(client, town.rb, "POST", f"/listings/{ride_id}/claim",
                               {"claim_id": "rb-fresh-01"})
    assert (status, first["status"]) == (201, "confirmed"), first
    index = client.app[RESIDENT_INDEX]
    [mine] = [i for i in index.fresh if i.startswith(f"allocation:{ride_id.replace(':', '.')}")]

    async def pulled() -> dict[str, Any]:
        resp = await client.post(f"{DB}/_bulk_get", params={"revs": "true"},
                                 json={"docs": [{"id": mine}]}, headers=basic(town.rb))
        [result] = (await resp.json())["results"]
        return dict(result["docs"][0].get("ok") or {})
    stored = await city.run(lambda: city.couch[RESIDENTS_DB].get(mine, revs=True))
    reads = index.own_reads
    index.own_reads = GroupedReads(client.app[COUCH], "linli-no-such-database")
    try:  # the store is not asked: the phone gets the outcome all the same, history and all
        assert await pulled() == stored and stored["_revisions"]["start"] == 1
        status, _ = await call(client, town.rb, "POST", f"/listings/{ride_id}/cancel",
                               {"claim_id": "rb-fresh-02"})
        assert status in (200, 201)
        await eventually(lambda: index.owned[mine][1].startswith("2-"), what="the change")
        assert await pulled() == {}  # the kept first revision is no longer served
    finally:
        index.own_reads = reads
    changed = await pulled()
    assert changed["_rev"].startswith("2-") and changed["status"] == "cancelled", changed
