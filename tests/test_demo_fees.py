"""The demo's fees (server/demo/fees.py `seed_fees`): two quarters of bills from the register,
paid and unpaid, every record valid and every transaction balanced; the owner's third quarter
paid with its receipt, the fourth owed; written once. And the demo's payment: the test
provider's own network, so a demo owner can pay and see the (test-marked) receipt."""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user

from server.config import Config, ConfigError
from server.demo.fees import DEMO_PERIODS, PaymentNetwork, seed_fees
from server.domain import fees as rules
from server.domain.scope import DIRECTORY_DB, FEES_DB, VOTES_DB
from server.domain.validation import SchemaRegistry
from server.web.app import create_app
from server.web.fees import provider_of
from server.web.keys import DIRECTORY, FEES


def demo_compound(city: City, compound: str, phone: str, resident: str) -> None:
    """A compound of 40 units on the register, the 8th the resident's (by their phone)."""
    city.couch[DIRECTORY_DB].save({"_id": f"compound:{compound}", "type": "compound",
                                   "schema_version": 1, "code": compound, "name": "演示苑",
                                   "community": "330802001999"})
    city.couch[DIRECTORY_DB].save({"_id": f"login:{phone}", "account": resident})
    for n in range(40):
        city.couch[VOTES_DB].save({
            "_id": f"property_unit:{compound}:1-1-{100 + n}", "type": "property_unit",
            "schema_version": 1, "created_by": "register", "compound": compound,
            "building": "1", "unit": "1", "room": str(100 + n),
            "area_cm2": 600_000 + 1_234 * n, "area_source": "register",
            "developer_held": False,
            "owners": [{"name": "王芳", **({"phone": phone} if n == 7 else {})}]})


async def test_demo_bills_paid_and_unpaid(client: TestClient, city: City) -> None:
    tag = os.urandom(3).hex()
    compound, phone = f"demo{tag}", f"1580{int(tag, 16) % 10**7:07d}"
    resident, sup = await city.user("resident"), await city.user("supervisor",
                                                                  communities=["330802001999"])
    await city.run(demo_compound, city, compound, phone, resident)
    assert await city.run(seed_fees, city.couch, phone) == len(DEMO_PERIODS)
    assert await city.run(seed_fees, city.couch, phone) == 0  # idempotent
    docs = [r.doc for r in await city.run(lambda: list(city.couch[FEES_DB].view(
        "_all_docs", include_docs=True)))
            if compound in str(r.doc.get("compound", "")) + str(r.doc.get("bill", ""))]
    registry = SchemaRegistry()
    assert all(registry.problems(d) == [] for d in docs)
    txns = [d for d in docs if d["type"] == "fee_txn"]
    assert all(rules.balanced(t["lines"]) for t in txns)
    q3 = sum(t["bill"].endswith("2026-Q3") for t in txns)
    q4 = sum(t["bill"].endswith("2026-Q4") for t in txns)
    assert 20 < q3 < 40 and 3 < q4 < q3  # paid and unpaid in both, fewer of the fourth

    await wait_for_user(client, resident)
    await wait_for_user(client, sup)
    logins = client.app[DIRECTORY].logins
    await eventually(lambda: phone in logins, every=0.02)
    resp = await client.get("/api/fees/bills", headers=basic(resident))
    bills: list[dict[str, Any]] = (await resp.json())["bills"]
    assert [(b["period"], b["state"]) for b in bills] == [("2026-Q4", "owed"),
                                                          ("2026-Q3", "paid")]
    assert bills[1]["principal"] == rules.generated_fen(250, 600_000 + 1_234 * 7, 3)
    resp = await client.get(f"/api/fees/receipts/{bills[1]['bill']}", headers=basic(resident))
    assert resp.status == 200 and rules.yuan(bills[1]["principal"]) in await resp.text()
    resp = await client.get("/api/fees/compounds", headers=basic(sup))
    [mine] = [c for c in (await resp.json())["compounds"] if c["compound"] == compound]
    assert mine["bills"] == 80 and mine["paid_bills"] == q3 + q4 and 0 < mine["rate"] < 100


async def test_a_demo_owner_pays_through_the_test_provider(aiohttp_client: Any, config: Config,
                                                           city: City) -> None:
    """`linli serve --demo` without a provider: the test provider's demo network pays an
    order at once through the notification path (signature checked), marked test in the
    checkout and on the receipt; only on loopback, never in production."""
    demo = await aiohttp_client(create_app(dataclasses.replace(config, demo=True),
                                           load_demo=lambda _config, _url: None))
    tag = os.urandom(3).hex()
    compound, phone = f"pay{tag}", f"1581{int(tag, 16) % 10**7:07d}"
    resident, other = await city.user("resident"), await city.user("resident")
    await city.run(demo_compound, city, compound, phone, resident)
    await city.run(seed_fees, city.couch, phone)
    for name in (resident, other):
        await wait_for_user(demo, name)
    await eventually(lambda: phone in demo.app[DIRECTORY].logins, every=0.02)

    async def bills() -> list[dict[str, Any]]:
        resp = await demo.get("/api/fees/bills", headers=basic(resident))
        return list((await resp.json())["bills"])
    owed = (await bills())[0]
    assert owed["state"] == "owed"
    path = f"/api/fees/bills/{owed['bill']}/pay"
    resp = await demo.post(path, json={"request": "demo-pay-1"}, headers=basic(other))
    assert resp.status == 404  # someone else's bill: as if it did not exist
    resp = await demo.post(path, json={"request": "demo-pay-1"}, headers=basic(resident))
    order = await resp.json()
    assert resp.status == 201 and order["checkout"]["test"] is True
    assert order["checkout"]["note"].startswith("测试支付渠道")

    async def paid() -> dict[str, Any] | None:
        return next((b for b in await bills() if b["bill"] == owed["bill"]
                     and b["state"] == "paid"), None)
    bill = await eventually(paid, what="the demo network's notification taken")
    assert bill["paid"]["order"] == order["order"] and bill["paid"]["amount"] == order["amount"]
    assert bill["paid"]["test"] is True  # the phone's receipt says so too
    resp = await demo.get(f"/api/fees/receipts/{owed['bill']}", headers=basic(resident))
    page = await resp.text()
    assert resp.status == 200 and 'id="test-provider"' in page and order["order"] in page
    # the demo network's secret is its own: a notification signed with another is refused
    net = PaymentNetwork(b"f" * 64)
    net.pay(order["order"], order["amount"], datetime.datetime.now(datetime.UTC))
    headers, body = net.notification(net.trades[order["order"]], time.time())
    resp = await demo.post("/api/fees/notify", data=body, headers=headers)
    assert resp.status == 401
    assert demo.app[FEES].refusals.get("signature") == 1

    # never off loopback, never in production; without --demo, no provider unless set
    assert provider_of(dataclasses.replace(config, demo=True, host="0.0.0.0")) is None
    assert provider_of(config) is None
    with pytest.raises(ConfigError, match="test payment provider"):
        Config.from_mapping({"production": True, "trust_proxy": True, "fees_provider": "test",
                             "fees_test_secret": "ab" * 16})
