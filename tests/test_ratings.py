"""Service ratings and the red/black list through the real app on the real embedded store
(docs/fees.md, "Ratings"): only an owner who paid the period (or is exempt) rates, once per
household and period whichever phone or owner sends it first; every bad input refused by its
label and nothing stored; another household's bill, another compound's company, a forged
household, company or period get nothing; the board's score, lists with reasons, grade and
the company's one public answer."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import itertools
import os
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user
from test_fees import SECRET, call

from server.config import Config
from server.demo.fees import PaymentNetwork
from server.domain.scope import DIRECTORY_DB, RESIDENTS_DB, VOTES_DB
from server.web.app import create_app
from server.web.keys import DIRECTORY, FEES, RATINGS, REPORT_ROWS

_n = itertools.count(1)
SCORES = {"cleaning": 5, "security": 4, "repairs": 5, "attitude": 5}


@pytest.fixture
async def app_client(aiohttp_client: Any, config: Config) -> TestClient:
    """The app with the test payment provider (bills are paid before they are rated)."""
    return await aiohttp_client(create_app(dataclasses.replace(
        config, fees_provider="test", fees_test_secret=SECRET)))


@dataclasses.dataclass
class Place:
    code: str
    other: str
    company: str  # the credit code
    owners: dict[str, str]  # A and A2 own 1-1-101 together, B 1-1-202, E the other's 1-1-101
    staff: str  # the property company's user
    other_staff: str  # another company's
    sup: str


async def a_place(city: City, client: TestClient) -> Place:
    tag = os.getpid() * 1000 + next(_n)
    code, other = f"r{tag}", f"s{tag}"
    company, other_company = f"91{tag:016d}"[-18:], f"92{tag:016d}"[-18:]
    community = f"37{tag:010d}"[:12]
    owners = {x: await city.user("resident") for x in ("A", "A2", "B", "E")}
    phones = {x: f"138{tag % 100000:05d}{n:03d}" for n, x in enumerate(owners)}

    def unit(compound: str, room: str, who: list[str]) -> dict[str, Any]:
        return {"_id": f"property_unit:{compound}:1-1-{room}", "type": "property_unit",
                "schema_version": 1, "created_by": "register", "compound": compound,
                "building": "1", "unit": "1", "room": room, "area_cm2": 1_000_000,
                "area_source": "register", "developer_held": False,
                "owners": [{"name": "王芳", "phone": phones[x]} for x in who]}

    def write() -> None:
        for c, firm in ((code, company), (other, other_company)):
            city.couch[DIRECTORY_DB].save({
                "_id": f"compound:{c}", "type": "compound", "schema_version": 1, "code": c,
                "name": "荷花苑", "community": community, "property_company": firm})
            city.couch[DIRECTORY_DB].save({
                "_id": f"property_company:{firm}", "type": "property_company",
                "schema_version": 1, "code": firm, "name": f"物业{firm[-4:]}"})
        for x, account in owners.items():
            city.couch[DIRECTORY_DB].save({"_id": f"login:{phones[x]}", "account": account})
        for doc in (unit(code, "101", ["A", "A2"]), unit(code, "202", ["B"]),
                    unit(other, "101", ["E"])):
            city.couch[VOTES_DB].save(doc)

    await city.run(write)
    found = Place(code, other, company, owners,
                  await city.user("property", companies=[f"property_company:{company}"]),
                  await city.user("property", companies=[f"property_company:{other_company}"]),
                  await city.user("supervisor", communities=[community]))
    for name in (*owners.values(), found.staff, found.other_staff, found.sup):
        await wait_for_user(client, name)
    logins = client.app[DIRECTORY].logins
    await eventually(lambda: all(p in logins for p in phones.values()), every=0.02)
    for c, staff in ((code, found.staff), (other, found.other_staff)):
        status, made = await call(client, "POST", "/api/fees/rolls", staff, {
            "compound": c, "period": "2026-Q4", "rate_fen": 250, "due_date": "2026-12-31"})
        assert status == 201, made
    return found


async def pay(client: TestClient, owner: str, bill: str) -> None:
    """Start an order and have the test provider confirm it, as a real payment is made."""
    status, order = await call(client, "POST", f"/api/fees/bills/{bill}/pay", owner,
                               {"request": f"pay-{bill[-12:].replace(':', '-')}"})
    assert status == 201, order
    net = PaymentNetwork(SECRET.encode())
    trade = net.pay(order["order"], order["amount"], datetime.datetime.now(datetime.UTC))
    headers, body = net.notification(trade, datetime.datetime.now().timestamp())
    status, answer = await call(client, "POST", "/api/fees/notify", headers=headers, data=body)
    assert status == 200, answer


def rating(request: str, **changes: Any) -> dict[str, Any]:
    return {"request": request, "scores": dict(SCORES), "comment": "保洁很好", **changes}


async def test_only_a_paying_household_rates_once(city: City, app_client: TestClient) -> None:
    p = await a_place(city, app_client)
    a, a2, b, e = (p.owners[x] for x in ("A", "A2", "B", "E"))
    mine = f"{p.code}:1-1-101:2026-Q4"
    path = f"/api/fees/bills/{mine}/rating"
    # not paid: refused, and nothing counted
    status, answer = await call(app_client, "POST", path, a, rating("phone-a-0001"))
    assert status == 403 and "缴清" in answer["reason"]
    await pay(app_client, a, mine)
    # another household (B), another compound's owner (E), staff: the bill is not theirs
    for other in (b, e):
        status, answer = await call(app_client, "POST", path, other, rating("phone-x-0001"))
        assert status == 404 and "不是您的" in answer["reason"]
    for staff in (p.staff, p.sup):
        assert (await call(app_client, "POST", path, staff, rating("phone-s-0001")))[0] == 403
    # E cannot rate p's company through a bill of its own compound, nor name another one
    status, answer = await call(app_client, "POST", f"/api/fees/bills/{p.code}:1-1-202:2026-Q4"
                                "/rating", e, rating("phone-e-0001"))
    assert status == 404
    status, answer = await call(app_client, "POST", path, a, rating(
        "phone-a-0001", company="91000000000000000X", household="x", period="2025"))
    assert status == 400 and "不允许的字段" in answer["reason"]

    status, first = await call(app_client, "POST", path, a, rating("phone-a-0001"))
    assert status == 201 and first["status"] == "counted" and first["counted"] is True
    again = await call(app_client, "POST", path, a, rating("phone-a-0001"))
    assert again[0] == 201 and again[1]["repeated"] is True  # the phone's retry: the same one
    # the household's other owner, the same owner's second phone: 已评价, not counted
    for who, request in ((a2, "phone-a2-0001"), (a, "phone-a-0002")):
        status, told = await call(app_client, "POST", path, who, rating(
            request, scores={**SCORES, "cleaning": 1}))
        assert status == 200 and told["status"] == "rated_already", told
        assert told["told"].startswith("已评价")
    # both owners see the household's one rating, the one received first; B sees none
    for who in (a, a2):
        status, held = await call(app_client, "GET", "/api/fees/ratings", who)
        assert status == 200 and [r["scores"] for r in held["ratings"]] == [SCORES]
        assert "account" not in held["ratings"][0]
    assert (await call(app_client, "GET", "/api/fees/ratings", b))[1]["ratings"] == []
    assert (await call(app_client, "GET", "/api/fees/ratings?all=1", a))[0] == 400


async def test_an_exempt_household_rates_without_a_bill(city: City,
                                                       app_client: TestClient) -> None:
    p = await a_place(city, app_client)
    path = "/api/fees/rolls"
    base = {"compound": p.code, "period": "2026-Q3", "rate_fen": 250, "due_date": "2026-09-30"}
    for exempt, words in ((["9-9-999"], "不在不动产登记簿上"), ("1-1-202", "“免缴房屋”"),
                          ([1], "“免缴房屋”")):
        status, answer = await call(app_client, "POST", path, p.staff, {**base, "exempt": exempt})
        assert status == 400 and words in answer["reason"], answer
    status, made = await call(app_client, "POST", path, p.staff, {**base, "exempt": ["1-1-202"]})
    assert status == 201 and made["bills"] == 1  # B's unit owes nothing this period
    bills = (await call(app_client, "GET", "/api/fees/bills", p.owners["B"]))[1]["bills"]
    assert [(b["period"], b["state"]) for b in bills] == [("2026-Q4", "owed"),
                                                          ("2026-Q3", "exempt")]
    assert bills[1]["owed"] == 0 and "paid" not in bills[1]
    exempt = f"{p.code}:1-1-202:2026-Q3"
    for who, code in ((p.owners["A"], 404), (p.owners["E"], 404), (p.owners["B"], 201)):
        status, told = await call(app_client, "POST", f"/api/fees/bills/{exempt}/rating", who,
                                  rating(f"exempt-{who[-8:]}"))
        assert status == code, told
    # A, not exempt and not paid for the quarter, may not
    status, _ = await call(app_client, "POST", f"/api/fees/bills/{p.code}:1-1-101:2026-Q3/"
                           "rating", p.owners["A"], rating("phone-a-q3-01"))
    assert status == 403


BAD_SCORES: list[tuple[Any, str]] = [
    (0, "保洁"), (6, "保洁"), (2.5, "保洁"), ("5", "保洁"), (True, "保洁"), (None, "保洁"),
    (-1, "保洁"), (10**30, "保洁"), ([5], "保洁"), ({"v": 5}, "保洁")]


@pytest.mark.parametrize("value,label", BAD_SCORES)
def test_bad_score_classes_named_by_label(value: Any, label: str) -> None:
    from server.domain.ratings import rating_problems
    found = rating_problems(rating("phone-a-0001", scores={**SCORES, "cleaning": value}))
    assert len(found) == 1 and f"“{label}”" in found[0].zh, found


async def test_bad_ratings_store_nothing(city: City, app_client: TestClient) -> None:
    p = await a_place(city, app_client)
    a = p.owners["A"]
    mine = f"{p.code}:1-1-101:2026-Q4"
    await pay(app_client, a, mine)
    path = f"/api/fees/bills/{mine}/rating"
    bad: list[tuple[Any, str]] = [
        (rating("phone-a-0001", scores={**SCORES, "repairs": 0}), "“维修”"),
        (rating("phone-a-0001", scores={**SCORES, "attitude": 6}), "“服务态度”"),
        (rating("phone-a-0001", scores={**SCORES, "security": 2.5}), "“安保”"),
        (rating("phone-a-0001", scores={**SCORES, "cleaning": "5"}), "“保洁”"),
        (rating("phone-a-0001", scores={**SCORES, "cleaning": True}), "“保洁”"),
        (rating("phone-a-0001", scores={"cleaning": 5}), "“安保”"),
        (rating("phone-a-0001", scores={**SCORES, "price": 5}), "不允许的字段"),
        (rating("phone-a-0001", scores=[5, 5, 5, 5]), "“评分”"),
        (rating("phone-a-0001", comment="好" * 501), "“意见”太长"),
        (rating("phone-a-0001", comment="好\x00坏"), "控制字符"),
        (rating("phone-a-0001", comment="好\u202e坏"), "控制字符"),
        (rating("phone-a-0001", comment=["好"]), "“意见”应为文字"),
        (rating("phone-a-0001", comment={"a": {"b": {"c": 1}}}), "“意见”应为文字"),
        (rating("x"), "“请求编号”"), (rating("../../etc/passwd"), "“请求编号”"),
        (rating(5), "“请求编号”"), ([SCORES], "JSON"), ("5", "JSON")]
    for body, words in bad:
        status, answer = await call(app_client, "POST", path, a, body)
        assert status == 400 and words in answer["reason"], (body, answer)
        assert set(answer) == {"error", "reason"}
    # a lone surrogate, as a phone's broken JSON sends it (\ud83d without its pair)
    resp = await app_client.post(path, data=b'{"request":"phone-a-0009","scores":{"cleaning":5,'
                                 b'"security":5,"repairs":5,"attitude":5},"comment":"\\ud83d"}',
                                 headers={"Content-Type": "application/json", **basic(a)})
    assert resp.status == 400 and "D83D" in (await resp.json())["reason"]
    for forged in ("../x", f"{p.code}:1-1-101:2026-Q5", f"{p.other}:1-1-101:2026-Q4",
                   f"{p.code}:1-1-999:2026-Q4", "%00", "a" * 200):
        status, _ = await call(app_client, "POST", f"/api/fees/bills/{forged}/rating", a,
                               rating("phone-a-0001"))
        assert status in (404, 405), forged
    assert (await call(app_client, "GET", "/api/fees/ratings", a))[1]["ratings"] == []
    # after all that, the household's first real rating still counts
    status, first = await call(app_client, "POST", path, a, rating("phone-a-0010"))
    assert status == 201 and first["counted"] is True


async def test_racing_phones_of_one_household(city: City, app_client: TestClient) -> None:
    """Two owners' phones, offline, each with a few queued retries, sent at once: exactly one
    rating counts, every other answer says 已评价, and it is the one the store received
    first (its claim the first of the subject in the claims database's order)."""
    p = await a_place(city, app_client)
    a, a2 = p.owners["A"], p.owners["A2"]
    mine = f"{p.code}:1-1-101:2026-Q4"
    await pay(app_client, a, mine)
    path = f"/api/fees/bills/{mine}/rating"
    sends = [(who, f"race-{who[-6:]}-{n % 3}", n % 5 + 1) for n in range(30)
             for who in (a, a2)]
    answers = await asyncio.gather(*(call(app_client, "POST", path, who, rating(
        request, scores={**SCORES, "cleaning": score})) for who, request, score in sends))
    counted = {(who, request) for (who, request, _), (status, told) in zip(
        sends, answers, strict=True) if told["counted"]}
    assert len(counted) == 1, counted  # one claim, sent several times, counted
    assert all(status in (200, 201) for status, _ in answers)
    told = [t["status"] for _, t in answers]
    assert set(told) == {"counted", "rated_already"}
    held = (await call(app_client, "GET", "/api/fees/ratings", a2))[1]["ratings"]
    assert len(held) == 1
    stored = await app_client.app[FEES]._get(f"fee_rating:{mine}")
    assert stored is not None and (stored["account"], stored["claim"].rsplit(":", 1)[1]) \
        == next(iter(counted))


def report(tag: str, company: str, compound: str, day: str, hours: float | None
           ) -> list[dict[str, Any]]:
    """A 物业服务 report and its status as the reports' routes store them."""
    rid = "report:" + hashlib.sha256(tag.encode()).hexdigest()[:16]
    at = datetime.datetime.fromisoformat(f"{day}T10:00:00+08:00")
    status: dict[str, Any] = {"_id": rid.replace("report:", "report_status:"),
                              "type": "report_status", "report": rid, "state": "submitted"}
    if hours is not None:
        status.update(state="done", done_at=(at + datetime.timedelta(hours=hours)).isoformat())
    return [{"_id": rid, "type": "report", "reporter": "someone", "reporter_kind": "resident",
             "category": "property_service", "compound": compound, "company": company,
             "grid": "g", "community": "c", "street": "s", "submitted_at": at.isoformat()},
            status]


async def test_board_scores_lists_grades_and_one_answer(city: City,
                                                       app_client: TestClient) -> None:
    p = await a_place(city, app_client)
    formula = app_client.app[RATINGS].formula
    assert formula.min_ratings <= 3, "the test rates with three households"
    bills = [f"{p.code}:1-1-101:2026-Q4", f"{p.code}:1-1-202:2026-Q4",
             f"{p.other}:1-1-101:2026-Q4"]
    for owner, bill in zip((p.owners["A"], p.owners["B"], p.owners["E"]), bills, strict=True):
        await pay(app_client, owner, bill)
    low = {"cleaning": 1, "security": 2, "repairs": 1, "attitude": 1}
    for owner, bill, scores in ((p.owners["A"], bills[0], SCORES),
                                (p.owners["B"], bills[1], SCORES),
                                (p.owners["E"], bills[2], low)):
        status, told = await call(app_client, "POST", f"/api/fees/bills/{bill}/rating", owner,
                                  rating(f"board-{owner[-8:]}", scores=scores))
        assert status == 201, told
    # complaints about the other compound's company: 3 in the quarter, one never done;
    # one in the third quarter (not this period's)
    other_company = (await app_client.app[FEES].compound(p.other))["property_company"]
    docs = [d for n, (day, hours) in enumerate((("2026-10-05", 200.0), ("2026-11-05", None),
                                               ("2026-12-30", 100.0), ("2026-09-30", 1.0)))
            for d in report(f"{p.other}-{n}", other_company, p.other, day, hours)]
    await city.run(lambda: [city.couch[RESIDENTS_DB].save(d) for d in docs])
    rows = app_client.app[REPORT_ROWS]
    await eventually(lambda: sum(1 for r in rows.rows.values()
                                 if r.place.compound == p.other) == 4, every=0.05)

    # the formula needs min_ratings households: with three, lower it for this test's store
    app_client.app[RATINGS].formula = dataclasses.replace(formula, min_ratings=1)
    status, board = await call(app_client, "GET", "/api/fees/ratings/board?period=2026-Q4",
                               p.sup)
    assert status == 200, board
    by = {c["company"]: c for c in board["companies"]}
    good, bad = by[p.company], by[other_company.removeprefix("property_company:")]
    # 5, 4, 5, 5 weighted alike: 4.75 -> 93.75 -> 93.8; no complaint: 100 and 100
    assert good["parts"] == {"ratings": 93.8, "complaints": 100.0, "handling": 100.0}
    assert good["score"] == 96.3 and good["ratings"] == 2 and good["complaints"] == 0
    assert good["name"] == f"物业{p.company[-4:]}" and good["grade"] == "A"
    # E: mean aspect 1.25 -> 6.25 of 100; 3 complaints for 1 unit (300 per 100 -> 0);
    # hours 200, 240 (open), 100 -> mean 180 -> 100·(240-180)/(240-24) = 27.8
    assert bad["parts"] == {"ratings": 6.2, "complaints": 0.0, "handling": 27.8}
    assert bad["complaints"] == 3 and bad["mean_hours"] == 180.0
    assert bad["score"] == round(6.2 * 0.6 + 0 + 27.8 * 0.15, 1) and bad["grade"] == "D"
    red = {c["company"]: c for c in board["red"]}
    black = {c["company"]: c for c in board["black"]}
    assert p.company in red and bad["company"] in black and p.company not in black
    assert any("综合得分" in r for r in red[p.company]["reasons"])
    assert any(r.startswith("物业服务投诉") for r in black[bad["company"]]["reasons"])
    # the property company sees its own row only; a resident the lists only
    status, theirs = await call(app_client, "GET", "/api/fees/ratings/board?period=2026-Q4",
                                p.staff)
    assert [c["company"] for c in theirs["companies"]] == [p.company]
    status, public = await call(app_client, "GET", "/api/fees/ratings/board?period=2026-Q4",
                                p.owners["B"])
    assert status == 200 and public["companies"] == [] and p.company in {
        c["company"] for c in public["red"]}
    for query in ("", "?period=2026-Q5", "?period=2026-Q4&period=2026-Q3",
                  "?period=2026-Q4&x=1"):
        status, answer = await call(app_client, "GET", f"/api/fees/ratings/board{query}",
                                    p.sup)
        assert status == 400 and set(answer) == {"error", "reason"}, query

    # the company answers once, publicly; nobody else answers for it
    path = "/api/fees/ratings/answers"
    for who, body, code in (
            (p.owners["A"], {"period": "2026-Q4", "text": "谢谢"}, 403),
            (p.sup, {"period": "2026-Q4", "text": "谢谢"}, 403),
            (p.staff, {"period": "2026-Q4", "text": "谢谢", "company": bad["company"]}, 400),
            (p.staff, {"period": "2026-Q4", "text": ""}, 400),
            (p.staff, {"period": "2026-Q4", "text": "x\x07"}, 400),
            (p.staff, {"period": "2026-Q9", "text": "谢谢"}, 400),
            (p.staff, {"period": "2026-Q4", "text": "谢谢", "score": 100}, 400)):
        assert (await call(app_client, "POST", path, who, body))[0] == code, body
    status, made = await call(app_client, "POST", path, p.staff,
                              {"period": "2026-Q4", "text": "感谢业主的肯定，我们会继续努力。"})
    assert status == 201, made
    status, again = await call(app_client, "POST", path, p.staff,
                               {"period": "2026-Q4", "text": "改一下"})
    assert status == 409 and "已公开回应" in again["reason"]
    status, board = await call(app_client, "GET", "/api/fees/ratings/board?period=2026-Q4",
                               p.owners["B"])
    shown = next(c for c in board["red"] if c["company"] == p.company)
    assert shown["answer"]["text"] == "感谢业主的肯定，我们会继续努力。"
