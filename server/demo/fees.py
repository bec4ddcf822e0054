"""The other side of the `test` payment provider (server/sync/fees.py TestProvider): a payment
network that takes an order's money, signs its notifications as WeChat Pay APIv3 does (HMAC-
SHA256 instead of RSA, under the shared test secret), sends them again when not answered 200,
and writes the day's statement file (交易账单). Used by the tests, the benchmark and the demo."""

from __future__ import annotations

import dataclasses
import datetime
import secrets
from typing import Any

from server.domain import fees as rules


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
        return rules.statement_csv((t.paid_at, t.transaction, t.order, t.amount)
                                   for t in self.trades.values()
                                   if rules.day_of(t.paid_at) == day)

    def totals(self) -> dict[str, Any]:
        return {"trades": len(self.trades), "fen": sum(t.amount for t in self.trades.values())}
