"""The issue's must-hold for fees (docs/fees.md), against a real `linli serve` in its own
process: 10,000 payment notifications for 3,000 bills (3,300 trades: 300 bills paid twice from
two phones), each delivered one to three times (the provider's retries, and the same signed
delivery replayed), all shuffled, with 1,300 forged among them (a wrong key, an amount changed
after signing, an hour-old delivery replayed, an order never started), from 16 connections at
once, and the server killed with SIGKILL in the middle of it and started again on the same data;
the provider sends again whatever got no answer. After it: every paid bill is paid once (its
payment one of its orders, the second payments owed back), nothing forged was taken and every
refusal is in the server's log, each transaction balances and so does the ledger, and the
ledger's receipts equal the provider's statement, which the reconciliation route confirms."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import random
import time
from typing import Any

import aiohttp
import couchdb
import pytest
from conftest import PASSWORD, basic
from test_faults import ServerProcess, served, store_get  # noqa: F401 - `served`: a fixture

from server.admin import directory
from server.demo.fees import PaymentNetwork
from server.domain import fees as rules
from server.domain.scope import DIRECTORY_DB, FEES_DB
from server.store.bulk import save_many

pytestmark = pytest.mark.slow  # a server killed and started again, 10,000 requests

SECRET = "ab" * 24
BILLS = 3000
TWICE = 300  # bills paid from two phones, both taken by the provider
DELIVERIES = 10_000
FORGED = {"key": 500, "amount": 300, "replay": 300, "unknown": 200}
KILL_AFTER = 4000  # answered notifications before the server is killed
WORKERS = 16
PAID_AT = datetime.datetime(2026, 11, 20, 3, 0, tzinfo=datetime.UTC)
COMPANY = "91330802MA2XXXXX1Y"


@pytest.fixture(autouse=True)
def test_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before `served` starts the server (autouse fixtures come first)."""
    monkeypatch.setenv("LINLI_FEES_PROVIDER", "test")
    monkeypatch.setenv("LINLI_FEES_TEST_SECRET", SECRET)


def a_compound(store_url: str, tag: str) -> tuple[str, str, list[dict[str, Any]]]:
    """A compound's roll of BILLS bills and the orders owners started (TWICE bills twice),
    written to the server's store as the routes write them; and the city admin."""
    couch = directory.prepared(couchdb.Server(store_url))
    compound, admin = f"race{tag}", f"adm{tag}"
    directory.add_user(couch, admin, "admin", PASSWORD)
    couch[DIRECTORY_DB].save({"_id": f"compound:{compound}", "type": "compound",
                              "schema_version": 1, "code": compound, "name": "荷花苑",
                              "community": "330802001001", "property_company": COMPANY})
    rng = random.Random(19)
    bills = {f"{n // 100 + 1}-1-{n % 100 + 101}": rng.randrange(5_000, 300_000)
             for n in range(BILLS)}
    roll = {"_id": f"fee_roll:{compound}:2026-Q4", "type": "fee_roll", "schema_version": 1,
            "created_by": admin, "compound": compound, "period": "2026-Q4",
            "due_date": "2026-12-31", "source": "import", "company": COMPANY,
            "late_rule": rules.LateRule().as_data(), "bills": bills,
            "issued_at": "2026-10-01T00:00:00+00:00"}
    orders = []
    for n, (address, fen) in enumerate(bills.items()):
        for phone in range(2 if n < TWICE else 1):
            order = f"o{tag}{n:05d}p{phone}"
            orders.append({"_id": f"fee_order:{order}", "type": "fee_order",
                           "schema_version": 1, "created_by": "linli-fees", "order": order,
                           "bill": f"{compound}:{address}:2026-Q4", "account": f"r{tag}{n:05d}",
                           "principal": fen, "late_fee": 0, "amount": fen, "provider": "test",
                           "started_at": "2026-11-20T02:59:00+00:00"})
    for start in range(0, len(orders), 1000):
        assert all(ok for ok, _, _ in save_many(couch[FEES_DB], orders[start:start + 1000]))
    assert all(ok for ok, _, _ in save_many(couch[FEES_DB], [roll]))
    return compound, admin, orders


Delivery = tuple[str, str]  # (kind, order): signed when sent, as a provider does


def deliveries(net: PaymentNetwork, orders: list[dict[str, Any]]) -> list[Delivery]:
    """What the provider (and an attacker) send: every trade once, then retries (signed
    afresh) and replays (the same signed bytes twice in a row, counted as two) up to
    DELIVERIES - forged, and the forged ones; all shuffled."""
    rng = random.Random(23)
    trades = [net.pay(o["order"], o["amount"], PAID_AT) for o in orders]
    valid = DELIVERIES - sum(FORGED.values())
    sent: list[Delivery] = [("valid", t.order) for t in trades]
    while len(sent) < valid:
        trade = rng.choice(trades)
        sent.append(("twice", trade.order) if len(sent) + 2 <= valid and rng.random() < 0.5
                    else ("valid", trade.order))
        sent += [("", "")] * (sent[-1][0] == "twice")  # a placeholder: two deliveries
    sent = [d for d in sent if d[0]]
    sent += [(kind, rng.choice(trades).order) for kind, count in FORGED.items()
             for _ in range(count)]
    rng.shuffle(sent)  # reordered: retries before first deliveries, twins crossing
    return sent


def signed(net: PaymentNetwork, kind: str, order: str, tag: str) -> tuple[dict[str, str], bytes]:
    """One delivery of `kind`, signed now."""
    trade = net.trades[order]
    if kind == "key":
        return net.notification(trade, time.time(), secret=b"guessed key")
    if kind == "amount":  # the bytes changed after signing
        headers, body = net.notification(trade, time.time())
        return headers, body.replace(f'"total":{trade.amount},'.encode(), b'"total":1,')
    if kind == "replay":  # an hour-old delivery
        return net.notification(trade, time.time() - 3600)
    if kind == "unknown":  # rightly signed, for an order never started
        ghost = PaymentNetwork(net.secret).pay(f"ghost{tag}{order[-8:]}", 100, PAID_AT)
        return net.notification(ghost, time.time())
    return net.notification(trade, time.time())


async def test_10000_notifications_with_forgeries_and_a_server_kill(
        served: ServerProcess) -> None:  # noqa: F811
    tag = os.urandom(3).hex()
    compound, admin, orders = await asyncio.to_thread(a_compound, served.store_url(), tag)
    net = PaymentNetwork(SECRET.encode())
    queue = deliveries(net, orders)
    assert len(queue) + sum(k == "twice" for k, _ in queue) == DELIVERIES
    answered = {"valid": 0, **dict.fromkeys(FORGED, 0)}
    outcomes: dict[str, int] = {}
    failures = 0
    killed, restarted = asyncio.Event(), asyncio.Event()
    url = served.url + "/api/fees/notify"
    began = time.monotonic()

    async with aiohttp.ClientSession() as http:
        async def deliver(kind: str, order: str, fixed: tuple[dict[str, str], bytes] | None = None
                          ) -> None:
            nonlocal failures
            while True:  # the provider sends again until it gets an answer
                h, b = fixed or signed(net, kind, order, tag)
                try:
                    async with http.post(url, data=b, headers=h) as resp:
                        status, reply = resp.status, await resp.json(content_type=None)
                except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
                    status, reply = 0, {}
                if status in (0, 500, 502, 503):
                    failures += 1
                    await asyncio.sleep(0.2)
                    continue
                if kind == "valid":
                    assert status == 200 and reply["code"] == "SUCCESS", (status, reply)
                    outcomes[reply["outcome"]] = outcomes.get(reply["outcome"], 0) + 1
                else:
                    assert status == 401, (kind, status, reply)  # never taken
                answered[kind] += 1
                if sum(answered.values()) == KILL_AFTER:
                    killed.set()
                return

        async def worker(items: list[Delivery]) -> None:
            for kind, order in items:
                if kind == "twice":  # the same signed bytes, twice
                    fixed = signed(net, kind, order, tag)
                    await deliver("valid", order, fixed)
                    await deliver("valid", order, fixed)
                else:
                    await deliver(kind, order)

        async def killer() -> None:
            await killed.wait()
            served.kill9()
            await served.start()  # ends the store the killed server left, starts its own
            restarted.set()

        await asyncio.gather(killer(), *(worker(queue[n::WORKERS]) for n in range(WORKERS)))
        took = time.monotonic() - began
        assert restarted.is_set() and failures > 0  # the kill did cut deliveries in flight
        assert answered == {"valid": DELIVERIES - sum(FORGED.values()), **FORGED}

        # What the ledger holds: each bill paid once, by one of its own orders.
        store = served.store_url()
        rows = (await store_get(f"{store}/{FEES_DB}/_all_docs", include_docs="true",
                                startkey=json.dumps("fee_txn:"),
                                endkey=json.dumps("fee_txn:\ufff0"), conflicts="true"))["rows"]
        txns = [r["doc"] for r in rows if compound in json.dumps(r["doc"])]
        assert not [t for t in txns if t.get("_conflicts")]
        payments = [t for t in txns if t["kind"] == "payment"]
        refunds = [t for t in txns if t["kind"] == "refund_due"]
        by_bill = {o["order"]: o["bill"] for o in orders}
        assert len(payments) == BILLS == len({t["bill"] for t in payments})
        assert all(by_bill[t["order"]] == t["bill"] for t in payments + refunds)
        assert len(refunds) == TWICE
        assert {t["order"] for t in payments + refunds} == set(net.trades) & set(by_bill)
        assert outcomes.get("paid", 0) + outcomes.get("refund_due", 0) <= BILLS + TWICE
        assert all(rules.balanced(t["lines"]) for t in txns)
        ledger = {t["order"]: t["lines"][1]["fen"] for t in payments + refunds}
        statement = {t.order: t.amount for t in net.trades.values()}
        assert ledger == statement  # every trade taken at its own amount, nothing forged
        totals = rules.balances(txns)
        assert sum(totals.values()) == 0 and totals["clearing"] == sum(statement.values())
        assert totals["refund"] == -sum(t["lines"][1]["fen"] for t in refunds)

        # Every refusal is in the server's log (a cut one may be logged twice).
        logged = (served.data.parent / "serve.log").read_text(errors="replace").count(
            "payment notification refused")
        assert logged >= sum(FORGED.values())

        # The reconciliation against the provider's statement file agrees, and settles.
        day = rules.day_of(net.trades[orders[0]["order"]].paid_at)
        async with http.post(served.url + "/api/fees/reconcile", headers=basic(admin),
                             json={"day": day, "statement": net.statement(day)}) as resp:
            report = await resp.json()
        assert resp.status == 200 and report["matched"], report
        assert report["statement_fen"] == report["ledger_fen"] == sum(statement.values())
        assert report["settled"] == {COMPANY: sum(t["lines"][1]["fen"] for t in payments)}
    print(f"\n{DELIVERIES} notifications ({sum(FORGED.values())} forged), killed after "
          f"{KILL_AFTER}: {took:.1f} s, {failures} cut and sent again; outcomes {outcomes}")
