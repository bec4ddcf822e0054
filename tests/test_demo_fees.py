"""The demo's fees (server/demo/fees.py `seed_fees`): two quarters of bills from the register,
paid and unpaid, every record valid and every transaction balanced; the owner's third quarter
paid with its receipt, the fourth owed; written once."""

from __future__ import annotations

import os
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user

from server.demo.fees import DEMO_PERIODS, seed_fees
from server.domain import fees as rules
from server.domain.scope import DIRECTORY_DB, FEES_DB, VOTES_DB
from server.domain.validation import SchemaRegistry
from server.web.keys import DIRECTORY


async def test_demo_bills_paid_and_unpaid(client: TestClient, city: City) -> None:
    tag = os.urandom(3).hex()
    compound, phone = f"demo{tag}", f"1580{int(tag, 16) % 10**7:07d}"
    resident, sup = await city.user("resident"), await city.user("supervisor",
                                                                  communities=["330802001999"])

    def write() -> None:
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

    await city.run(write)
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
