"""The other side of the `test` payment provider (server/sync/fees.py TestProvider): a payment
network that takes an order's money, signs its notifications as WeChat Pay APIv3 does (HMAC-
SHA256 instead of RSA, under the shared test secret), sends them again when not answered 200,
and writes the day's statement file (交易账单). Used by the tests, the benchmark and the demo;
and the demo city's bills (`seed_fees`)."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import random
import secrets
from typing import Any

import couchdb

from server.domain import fees as rules
from server.domain.scope import DIRECTORY_DB, FEES_DB, VOTES_DB
from server.store.bulk import save_many


@dataclasses.dataclass(frozen=True)
class Trade:
    order: str
    transaction: str
    amount: int
    paid_at: str


class PaymentNetwork:
    """The provider's own records: every trade it took, in the order it took them."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.trades: dict[str, Trade] = {}

    def pay(self, order: str, amount: int, at: datetime.datetime) -> Trade:
        """The owner paid: the provider takes the money once per order id (out_trade_no)."""
        if order not in self.trades:
            paid_at = at.astimezone(rules.CHINA).isoformat(timespec="seconds")
            self.trades[order] = Trade(order, f"4200{secrets.token_hex(12)}", amount, paid_at)
        return self.trades[order]

    def notification(self, trade: Trade, now: float, *, secret: bytes | None = None,
                     amount: int | None = None) -> tuple[dict[str, str], bytes]:
        """(headers, body) of one delivery, signed when it is sent (each retry afresh);
        `secret` and `amount` let a test forge one."""
        body = rules.notification_body(trade.order, trade.transaction,
                                       trade.amount if amount is None else amount, trade.paid_at)
        timestamp, nonce = str(int(now)), secrets.token_hex(16)
        return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce,
                "Wechatpay-Serial": "LINLI-TEST",
                "Wechatpay-Signature": rules.signature(secret or self.secret, timestamp, nonce,
                                                       body),
                "Content-Type": "application/json"}, body

    def statement(self, day: str) -> str:
        """The statement file of a day (`2026-11-20`), or of a month (`2026-11`)."""
        return rules.statement_csv((t.paid_at, t.transaction, t.order, t.amount)
                                   for t in self.trades.values()
                                   if rules.day_of(t.paid_at).startswith(day))

    def totals(self) -> dict[str, Any]:
        return {"trades": len(self.trades), "fen": sum(t.amount for t in self.trades.values())}


# -- the demo city's fees --------------------------------------------------------------------

DEMO_RATE_FEN = 250  # ¥2.50 per m² a month
DEMO_PERIODS = (("2026-Q3", "2026-09-30", 0.85), ("2026-Q4", "2026-12-31", 0.4))


def seed_fees(server: couchdb.Server, resident_phone: str) -> int:
    """Bills of the demo resident's compound for two quarters from the register (demo/votes.py
    wrote it), most of the third quarter's paid and fewer of the fourth's, written as the
    notification route writes payments; the resident's third quarter paid, fourth owed.
    Idempotent: a roll already there is left with its payments. Returns the rolls written."""
    login = server[DIRECTORY_DB].get(f"login:{resident_phone}") or {}
    units = [row.doc for row in server[VOTES_DB].view("_all_docs", include_docs=True,
                                                      startkey="property_unit:",
                                                      endkey="property_unit:\ufff0")]
    mine = next((u for u in units if any(o.get("phone") == resident_phone
                                         for o in u.get("owners") or ())), None)
    if mine is None:
        return 0
    compound = str(mine["compound"])
    areas = {rules.unit_key(u["_id"]).partition(":")[2]: int(u["area_cm2"]) for u in units
             if u["compound"] == compound}
    my_address = rules.unit_key(mine["_id"]).partition(":")[2]
    return seed_compound(server, compound, areas, DEMO_PERIODS,
                         str(login.get("account") or "admin"), my_address)


def seed_compound(server: couchdb.Server, compound: str, areas: dict[str, int],
                  periods: tuple[tuple[str, str, float], ...], account: str,
                  my_address: str = "") -> int:
    """A compound's rolls of `periods` (period, due date, share paid) from the units' areas,
    and the payments of that share; `my_address` (the demo resident's) paid in the third
    quarter only. A roll already there is left. Returns the rolls written."""
    company = str((server[DIRECTORY_DB].get(f"compound:{compound}") or {}).get(
        "property_company") or "")
    rng = random.Random(f"linli-demo-fees-{compound}")
    written = 0
    for period, due, share in periods:
        roll_id = f"fee_roll:{compound}:{period}"
        if roll_id in server[FEES_DB]:
            continue
        bills = rules.generate(areas.items(), DEMO_RATE_FEN, period)
        docs: list[dict[str, Any]] = [{
            "_id": roll_id, "type": "fee_roll", "schema_version": 1, "created_by": "admin",
            "compound": compound, "period": period, "due_date": due, "source": "rate",
            "rate_fen": DEMO_RATE_FEN, "late_rule": rules.LateRule().as_data(),
            "bills": dict(sorted(bills.items())), "issued_at": f"{due[:8]}01T00:00:00+00:00",
            **({"company": company} if company else {})}]
        for n, (address, fen) in enumerate(sorted(bills.items())):
            paid = rng.random() < share
            if address == my_address:  # the resident: the third quarter paid, the fourth owed
                paid = period == "2026-Q3"
            if not paid:
                continue
            bill = rules.bill_key(f"{compound}:{address}", period)
            order = hashlib.sha256(f"demo:{bill}".encode()).hexdigest()[:32]
            paid_at = f"{due[:8]}{10 + n % 18:02d}T{9 + n % 10:02d}:00:00+08:00"
            docs += [{"_id": f"fee_order:{order}", "type": "fee_order", "schema_version": 1,
                      "created_by": "linli-fees", "order": order, "bill": bill,
                      "account": account, "principal": fen,
                      "late_fee": 0, "amount": fen, "provider": "test", "started_at": paid_at},
                     {"_id": f"fee_txn:pay:{bill}", "type": "fee_txn", "schema_version": 1,
                      "created_by": "linli-fees", "kind": "payment", "order": order,
                      "bill": bill, "transaction": f"4200demo{order[:20]}", "paid_at": paid_at,
                      "day": rules.day_of(paid_at),
                      "lines": rules.payment_lines(f"{compound}:{address}", fen, True),
                      "recorded_at": paid_at}]
        save_many(server[FEES_DB], docs)
        written += 1
    return written
