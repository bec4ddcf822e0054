"""Property fees through the real app on the real embedded store (docs/fees.md): bills issued
from a rate and the registered area or imported from the company's file, with bad input
refused by field label; an owner sees and pays only their own bills; a payment is recorded
only when the provider's signed notification says so, once, whatever is repeated, forged or
replayed; the ledger balances; the receipt page; the company's and the supervisor's figures;
the reconciliation's report of differences and the settlement it makes once."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import itertools
import json
import os
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user

from server.config import Config
from server.demo.fees import PaymentNetwork
from server.domain import fees as rules
from server.domain.scope import DIRECTORY_DB, VOTES_DB
from server.web.app import create_app
from server.web.keys import DIRECTORY, FEES

SECRET = "5eed" * 16
COMPANY = "91330802MA2XXXXX1Y"
_n = itertools.count(1)


@pytest.fixture
async def app_client(aiohttp_client: Any, config: Config) -> TestClient:
    """The app with the test payment provider."""
    return await aiohttp_client(create_app(dataclasses.replace(
        config, fees_provider="test", fees_test_secret=SECRET)))


@dataclasses.dataclass
class Compound:
    code: str
    other: str
    owners: dict[str, str]  # letter -> account: A owns 1-1-101, B 1-1-202, E the other's
    company: str  # the property company's user
    sup: str
    other_sup: str
    admin: str


def unit(compound: str, n: int, area: int, phone: str) -> dict[str, Any]:
    return {"_id": f"property_unit:{compound}:1-1-{n}0{n}", "type": "property_unit",
            "schema_version": 1, "created_by": "register", "compound": compound,
            "building": "1", "unit": "1", "room": f"{n}0{n}", "area_cm2": area,
            "area_source": "register", "developer_held": False,
            "owners": [{"name": "王芳", "phone": phone}]}


async def a_compound(city: City, client: TestClient) -> Compound:
    tag = os.getpid() * 1000 + next(_n)
    community, other_community = f"35{tag:010d}"[:12], f"36{tag:010d}"[:12]
    code, other = f"f{tag}", f"h{tag}"
    owners = {x: await city.user("resident") for x in "ABE"}
    phones = {x: f"137{tag % 100000:05d}{n:03d}" for n, x in enumerate("ABE")}

    def write() -> None:
        for c, comm, company in ((code, community, COMPANY), (other, other_community, "")):
            city.couch[DIRECTORY_DB].save({
                "_id": f"compound:{c}", "type": "compound", "schema_version": 1, "code": c,
                "name": "荷花苑", "community": comm,
                **({"property_company": company} if company else {})})
        for x, account in owners.items():
            city.couch[DIRECTORY_DB].save({"_id": f"login:{phones[x]}", "account": account})
        for doc in (unit(code, 1, 895_000, phones["A"]), unit(code, 2, 1_203_456, phones["B"]),
                    unit(other, 1, 1_000_000, phones["E"])):
            city.couch[VOTES_DB].save(doc)

    await city.run(write)
    found = Compound(code, other, owners,
                     await city.user("property", companies=[f"property_company:{COMPANY}"]),
                     await city.user("supervisor", communities=[community]),
                     await city.user("supervisor", communities=[other_community]),
                     await city.user("admin"))
    for name in (*owners.values(), found.company, found.sup, found.other_sup, found.admin):
        await wait_for_user(client, name)
    logins = client.app[DIRECTORY].logins
    await eventually(lambda: all(p in logins for p in phones.values()), every=0.02)
    return found


async def call(client: TestClient, method: str, path: str, user: str | None = None,
               body: Any = None, headers: dict[str, str] | None = None,
               data: bytes | None = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body if data is None else None, data=data,
                                headers={**(basic(user) if user else {}), **(headers or {})})
    if resp.content_type == "application/json":
        return resp.status, await resp.json()
    return resp.status, await resp.text()


def roll(c: Compound, **changes: Any) -> dict[str, Any]:
    return {"compound": c.code, "period": "2026-Q4", "rate_fen": 250,
            "due_date": "2026-12-31", **changes}


async def test_bills_from_a_rate_and_bad_input_by_label(city: City,
                                                       app_client: TestClient) -> None:
    c = await a_compound(city, app_client)
    status, made = await call(app_client, "POST", "/api/fees/rolls", c.company, roll(c))
    assert status == 201, made
    # 2.50 yuan × 89.5 m² × 3 months = 671.25; × 120.3456 m² × 3 = 902.592 -> 902.59
    assert made["bills"] == 2 and made["billed"] == 67125 + 90259
    status, again = await call(app_client, "POST", "/api/fees/rolls", c.company, roll(c))
    assert status == 409 and "已出" in again["reason"]
    for bad, words in (({"rate_fen": -5}, "“单价（分/平方米·月）”不能为负数"),
                       ({"rate_fen": 2.5}, "应为整数"), ({"rate_fen": 10**6}, "应在"),
                       ({"period": "2026-13"}, "“账期”"), ({"due_date": "31/12"}, "“缴费截止日”"),
                       ({"paid": True}, "不是可填写的字段"),
                       ({"late_rule": {"grace_days": -1}}, "“滞纳金规则”")):
        status, answer = await call(app_client, "POST", "/api/fees/rolls", c.company,
                                    roll(c, **{"period": "2027", **bad}))
        assert status == 400 and words in answer["reason"], (bad, answer)
        assert answer["reason"].index("“") < answer["reason"].index(" / ")  # zh first
        assert "/rate_fen" not in answer["reason"]  # labels, never JSON pointers
    # another compound's company and supervisor: as if it did not exist
    for user in (c.other_sup,):
        status, _ = await call(app_client, "POST", "/api/fees/rolls", user, roll(c, period="2027"))
        assert status == 404
    status, _ = await call(app_client, "POST", "/api/fees/rolls", c.owners["A"],
                           roll(c, period="2027"))
    assert status == 403


async def test_bills_from_the_area_index_while_no_unit_changed(city: City,
                                                               app_client: TestClient) -> None:
    """Generation reads the compound's area index (kept by the register's import), not its
    units, while no unit of the compound changed after the index's sequence; a unit written
    after it makes generation read the units again, and the index is written anew."""
    c = await a_compound(city, app_client)
    db = await city.run(lambda: city.couch[VOTES_DB])

    def index(areas: dict[str, int]) -> None:
        held = db.get(rules.areas_id(c.code))
        db[rules.areas_id(c.code)] = {"seq": db.info()["update_seq"], "areas": areas,
                                      **({"_rev": held["_rev"]} if held else {})}

    # an index saying other areas than the units: taken as long as no unit changed since
    await city.run(index, {"1-1-101": 1_000_000, "1-1-202": 2_000_000})
    status, made = await call(app_client, "POST", "/api/fees/rolls", c.company,
                              roll(c, period="2026-11"))
    assert status == 201 and made["billed"] == 25_000 + 50_000, made  # ¥2.50 × 100 m², 200 m²
    # a unit of the compound changed after the index: the units are read, the index too
    await city.run(lambda: db.save({**db[f"property_unit:{c.code}:1-1-101"],
                                    "area_cm2": 800_000}))
    status, made = await call(app_client, "POST", "/api/fees/rolls", c.company,
                              roll(c, period="2026-10"))
    assert status == 201 and made["billed"] == 20_000 + rules.generated_fen(250, 1_203_456, 1)
    kept = await city.run(db.get, rules.areas_id(c.code))
    assert kept["areas"] == {"1-1-101": 800_000, "1-1-202": 1_203_456}
    # another compound's units changing leaves this index trusted (its sequence moves on)
    await city.run(lambda: db.save({**db[f"property_unit:{c.other}:1-1-101"],
                                    "area_cm2": 1_100_000}))
    await city.run(index, {"1-1-101": 400_000, "1-1-202": 400_000})
    await city.run(lambda: db.save({**db[f"property_unit:{c.other}:1-1-101"],
                                    "area_cm2": 1_200_000}))
    status, made = await call(app_client, "POST", "/api/fees/rolls", c.company,
                              roll(c, period="2026-09"))
    assert status == 201 and made["billed"] == 10_000 + 10_000, made


def csv_file(*rows: str) -> str:
    text = "幢,单元,室,账期,金额（元）\n" + "\n".join(rows) + "\n"
    return base64.b64encode(text.encode()).decode()


async def test_an_imported_file_checks_every_row(city: City, app_client: TestClient) -> None:
    c = await a_compound(city, app_client)
    body = {"compound": c.code, "due_date": "2026-12-31", "name": "bills.csv"}
    status, answer = await call(app_client, "POST", "/api/fees/rolls/import", c.company, {
        **body, "file": csv_file("1,1,101,2026-11,-12.00", "1,1,202,2026-11,100000.01",
                                 "9,9,909,2026-11,10", "1,1,101,2026-11,1.234")})
    assert status == 400
    reasons = answer["rows"]
    assert "第 2 行" in reasons[0] and "“金额”不能为负数" in reasons[0]
    assert "第 3 行" in reasons[1] and "应在 0.01 至 100000.00 元之间" in reasons[1]
    assert "第 4 行" in reasons[2] and "“房屋”" in reasons[2] and "9-9-909" in reasons[2]
    assert "第 5 行" in reasons[3] and "最多两位小数" in reasons[3]
    status, answer = await call(app_client, "POST", "/api/fees/rolls/import", c.company, {
        **body, "file": csv_file("1,1,101,2026-11,223.75", "1,1,202,2026-11,300")})
    assert status == 201 and answer["bills"] == 2, answer
    status, bills = await call(app_client, "GET", "/api/fees/bills", c.owners["A"])
    assert [(b["period"], b["principal"], b["state"]) for b in bills["bills"]] == [
        ("2026-11", 22375, "owed")]


def paid_on(c: Compound) -> datetime.datetime:
    """A day of the compound's own for its payments: the store is shared with other tests'
    compounds, a day's statement and settlement are the whole installation's."""
    return datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC) + datetime.timedelta(
        days=int(c.code[1:]) % 3000)


async def ledger_of(client: TestClient, c: Compound) -> list[dict[str, Any]]:
    day = paid_on(c).date().isoformat()
    return [t for t in await client.app[FEES].ledger()
            if str(t.get("bill", "")).startswith(c.code + ":")
            or (t["kind"] == "settlement" and t["day"] == day)]


def notify_headers(net: PaymentNetwork, order: str, **forge: Any) -> tuple[dict[str, str], bytes]:
    return net.notification(net.trades[order], time.time(), **forge)


async def test_paid_only_when_the_provider_says_so_and_once(city: City,
                                                           app_client: TestClient) -> None:
    c = await a_compound(city, app_client)
    assert (await call(app_client, "POST", "/api/fees/rolls", c.company, roll(c)))[0] == 201
    a, b = c.owners["A"], c.owners["B"]
    status, mine = await call(app_client, "GET", "/api/fees/bills", a)
    assert status == 200 and [x["unit"] for x in mine["bills"]] == ["1-1-101"]
    bill = mine["bills"][0]["bill"]
    # B cannot pay A's bill, nor learn that it exists; E of another compound neither
    for other in (b, c.owners["E"]):
        status, answer = await call(app_client, "POST", f"/api/fees/bills/{bill}/pay", other,
                                    {"request": "phone-b-0001"})
        assert status == 404 and "不是您的" in answer["reason"]
    status, answer = await call(app_client, "POST", f"/api/fees/bills/{bill}/pay", a,
                                {"request": "phone-a-0001", "paid": True, "amount": 1})
    assert status == 400 and "不是可填写的字段" in answer["reason"]
    status, order = await call(app_client, "POST", f"/api/fees/bills/{bill}/pay", a,
                               {"request": "phone-a-0001"})
    assert status == 201 and order["state"] == "started" and order["amount"] == 67125
    again = await call(app_client, "POST", f"/api/fees/bills/{bill}/pay", a,
                       {"request": "phone-a-0001"})
    assert again[1]["order"] == order["order"]  # the queued retry is the same order
    # started offline and sent: still owed until the provider confirms
    status, mine = await call(app_client, "GET", "/api/fees/bills", a)
    assert mine["bills"][0]["state"] == "owed"

    net = PaymentNetwork(SECRET.encode())
    net.pay(order["order"], order["amount"], datetime.datetime.now(datetime.UTC))
    forged = [notify_headers(net, order["order"], secret=b"not the secret"),
              notify_headers(net, order["order"], amount=1)]
    headers, body = notify_headers(net, order["order"])
    tampered = body.replace(b'"total":67125', b'"total":1')
    forged.append((headers, tampered))  # signed bytes changed after signing
    old = net.notification(net.trades[order["order"]], time.time() - 3600)
    forged.append(old)  # a replay of an hour-old delivery
    for h, data in forged:
        status, answer = await call(app_client, "POST", "/api/fees/notify", headers=h, data=data)
        assert status == 401 and answer["error"] == "unauthorized", answer
    assert (await call(app_client, "GET", "/api/fees/bills", a))[1]["bills"][0]["state"] == "owed"
    store = app_client.app[FEES]
    assert sum(store.refusals.values()) == 4

    outcomes = []
    for _ in range(3):  # the provider retries: the same payment, once
        h, data = notify_headers(net, order["order"])
        status, answer = await call(app_client, "POST", "/api/fees/notify", headers=h, data=data)
        assert status == 200 and answer["code"] == "SUCCESS"
        outcomes.append(answer["outcome"])
    assert outcomes == ["paid", "duplicate", "duplicate"]
    status, mine = await call(app_client, "GET", "/api/fees/bills", a)
    assert mine["bills"][0]["state"] == "paid" and mine["bills"][0]["paid"]["amount"] == 67125
    status, answer = await call(app_client, "POST", f"/api/fees/bills/{bill}/pay", a,
                                {"request": "phone-a-0002"})
    assert status == 409 and "已缴清" in answer["reason"]

    # receipts: the owner's page, printable; nobody else's
    status, page = await call(app_client, "GET", f"/api/fees/receipts/{bill}", a)
    assert status == 200 and "671.25" in page and order["order"] in page and "print()" in page
    status, _ = await call(app_client, "GET", f"/api/fees/receipts/{bill}", b)
    assert status == 404
    # another household's bill answers exactly as a bill that does not exist, on every route
    ghost = bill.replace("1-1-101", "9-9-909")
    for method, path, body in (("POST", "/api/fees/bills/{}/pay", {"request": "phone-b-0002"}),
                               ("GET", "/api/fees/receipts/{}", None)):
        theirs = await call(app_client, method, path.format(bill), b, body)
        missing = await call(app_client, method, path.format(ghost), b, body)
        assert theirs == missing and theirs[0] == 404, (theirs, missing)
    listed = json.dumps((await call(app_client, "GET", "/api/fees/bills", b))[1])
    assert "1-1-101" not in listed and order["order"] not in listed

    ledger = await ledger_of(app_client, c)
    assert rules.balances(ledger) == {f"owner:{c.code}:1-1-101": -67125, "clearing": 67125}
    assert all(rules.balanced(t["lines"]) for t in ledger)


async def test_a_second_payment_is_owed_back_not_paid_twice(city: City,
                                                           app_client: TestClient) -> None:
    c = await a_compound(city, app_client)
    assert (await call(app_client, "POST", "/api/fees/rolls", c.company, roll(c)))[0] == 201
    a = c.owners["A"]
    bill = (await call(app_client, "GET", "/api/fees/bills", a))[1]["bills"][0]["bill"]
    # two phones started paying before either was confirmed; the provider took both
    orders = [(await call(app_client, "POST", f"/api/fees/bills/{bill}/pay", a,
                          {"request": f"phone-{n}-0001"}))[1] for n in (1, 2)]
    net = PaymentNetwork(SECRET.encode())
    now = paid_on(c)
    for o in reversed(orders):  # delivered out of order
        net.pay(o["order"], o["amount"], now)
    got = []
    for o in reversed(orders):
        h, data = notify_headers(net, o["order"])
        got.append((await call(app_client, "POST", "/api/fees/notify", headers=h,
                               data=data))[1]["outcome"])
    assert got == ["paid", "refund_due"]
    totals = rules.balances(await ledger_of(app_client, c))
    assert totals == {f"owner:{c.code}:1-1-101": -67125, "refund": -67125, "clearing": 134250}

    # reconciliation: the statement matches; then a trade the ledger lacks is reported
    day = rules.day_of(net.trades[orders[0]["order"]].paid_at)
    status, report = await call(app_client, "POST", "/api/fees/reconcile", c.admin,
                                {"day": day, "statement": net.statement(day)})
    assert status == 200 and report["matched"], report
    assert report["settled"] == {COMPANY: 67125}  # the overpayment stays in clearing
    status, again = await call(app_client, "POST", "/api/fees/reconcile", c.admin,
                               {"day": day, "statement": net.statement(day)})
    assert status == 200 and again["matched"]
    totals = rules.balances(await ledger_of(app_client, c))
    assert totals[f"company:{COMPANY}"] == 67125 and totals["clearing"] == 67125  # settled once
    net.pay("ghost-order-0001", 500, now)
    status, report = await call(app_client, "POST", "/api/fees/reconcile", c.admin,
                                {"day": day, "statement": net.statement(day)})
    assert not report["matched"] and report["only_in_statement"] == ["ghost-order-0001"]
    status, _ = await call(app_client, "POST", "/api/fees/reconcile", c.company,
                           {"day": day, "statement": ""})
    assert status == 403


async def test_who_sees_which_compound(city: City, app_client: TestClient) -> None:
    c = await a_compound(city, app_client)
    assert (await call(app_client, "POST", "/api/fees/rolls", c.sup, roll(c)))[0] == 201
    for user, seen, unseen in ((c.company, c.code, c.other), (c.sup, c.code, c.other),
                               (c.other_sup, c.other, c.code)):
        status, answer = await call(app_client, "GET", "/api/fees/compounds", user)
        codes = [x["compound"] for x in answer["compounds"]]
        assert status == 200 and seen in codes and unseen not in codes
    answer = (await call(app_client, "GET", "/api/fees/compounds", c.sup))[1]["compounds"][0]
    assert answer["compound"] == c.code  # the supervisor's community has this one only
    assert answer == {"compound": c.code, "bills": 2, "paid_bills": 0, "billed": 157384,
                      "paid": 0, "owed": 157384, "rate": 0.0}
    status, _ = await call(app_client, "GET", "/api/fees/compounds", c.owners["A"])
    assert status == 403
    status, _ = await call(app_client, "GET", "/api/fees/bills", c.sup)
    assert status == 403
