"""The rules of server/domain/fees.py as cases: fen never floats, one rounding per bill, late
fees by rule, notifications verified on every count, the ledger's balance and the
reconciliation's differences."""

from __future__ import annotations

import datetime
import json

import pytest

from server.demo.fees import PaymentNetwork
from server.domain import fees as rules

SECRET = b"k" * 32
AT = datetime.datetime(2026, 12, 3, 15, 59, 59, tzinfo=datetime.UTC)


@pytest.mark.parametrize(("text", "fen"), [("12", 1200), ("12.5", 1250), ("12.50", 1250),
                                           ("0.01", 1), ("1,234.56", 123456), (" 3.1 ", 310)])
def test_yuan_read_as_text_into_fen(text: str, fen: int) -> None:
    assert rules.fen_of_yuan(text) == fen


@pytest.mark.parametrize("text", ["1.234", "-1", "1e3", "", "¥1", "0x10", "1.", ".5", "nan"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        rules.fen_of_yuan(text)


def test_one_rounding_half_up_on_the_whole_period() -> None:
    # 2.50 yuan × 89.5 m² = 223.75 a month, 671.25 a quarter, 2,685.00 a year
    assert [rules.generated_fen(250, 895_000, m) for m in (1, 3, 12)] == [22375, 67125, 268500]
    # 1.33 yuan × 0.5 m² = 0.665 -> 0.67 (half up); per month rounded then summed would give
    # 0.67 × 12 = 8.04, the whole year once: 7.98
    assert rules.generated_fen(133, 5000, 1) == 67
    assert rules.generated_fen(133, 5000, 12) == 798
    assert rules.generated_fen(1, 4999, 1) == 0 and rules.generated_fen(1, 5000, 1) == 1
    assert [rules.months_of(p) for p in ("2026-11", "2026-Q4", "2026")] == [1, 3, 12]
    for bad in ("2026-13", "2026-Q5", "26", "2026-1", "1999"):
        with pytest.raises(ValueError):
            rules.months_of(bad)


def test_bill_amount_bounds_named_by_label() -> None:
    assert rules.amount_problems(1) == [] and rules.amount_problems(10_000_000) == []
    assert "不能为负数" in rules.amount_problems(-1)[0].zh
    assert "“金额”" in rules.amount_problems(10_000_001)[0].zh
    assert rules.amount_problems(1.5)[0].code == "type"
    assert rules.amount_problems(True)[0].code == "type"


def test_late_fees_by_rule() -> None:
    due = datetime.date(2026, 12, 31)
    rule = rules.LateRule(grace_days=30, per_day_bp=5, cap_percent=100)
    assert rules.late_fen(100_000, due, due + datetime.timedelta(days=30), rule) == 0
    assert rules.late_fen(100_000, due, due + datetime.timedelta(days=31), rule) == 50
    assert rules.late_fen(100_000, due, due + datetime.timedelta(days=40), rule) == 500
    assert rules.late_fen(100_000, due, due + datetime.timedelta(days=9999), rule) == 100_000
    capped = rules.LateRule(0, 5, 10)
    assert rules.late_fen(100_000, due, due + datetime.timedelta(days=9999), capped) == 10_000
    assert rules.LateRule.from_data(rule.as_data()) == rule
    for bad in ({"grace_days": 1}, {"grace_days": -1, "per_day_bp": 5, "cap_percent": 100},
                {"grace_days": 1.5, "per_day_bp": 5, "cap_percent": 100}, []):
        with pytest.raises(ValueError):
            rules.LateRule.from_data(bad)


def test_import_rows_name_the_unit_and_the_amount() -> None:
    units = {"1-1-101": 895_000}
    row = {"幢": "1", "单元": "1", "室": "101", "账期": "2026-11", "金额（元）": "223.75"}
    assert rules.imported_bill(row, units, "hehua") == (("1-1-101", "2026-11", 22375), [])
    _, why = rules.imported_bill({**row, "室": "999"}, units, "hehua")
    assert "“房屋”hehua 1-1-999 不在不动产登记簿上" in why[0]
    _, why = rules.imported_bill({**row, "金额（元）": "-5"}, units, "hehua")
    assert "“金额”不能为负数" in why[0]


def notification(net: PaymentNetwork, order: str = "order-0001", amount: int = 67125,
                 now: float | None = None) -> tuple[dict[str, str], bytes]:
    trade = net.pay(order, amount, AT)
    headers, body = net.notification(trade, AT.timestamp() if now is None else now)
    return {"timestamp": headers["Wechatpay-Timestamp"], "nonce": headers["Wechatpay-Nonce"],
            "signature": headers["Wechatpay-Signature"]}, body


def test_a_notification_is_verified_on_every_count() -> None:
    net = PaymentNetwork(SECRET)
    headers, body = notification(net)
    paid = rules.verify(SECRET, headers, body, AT.timestamp() + 299)
    assert (paid.order, paid.amount) == ("order-0001", 67125)
    assert rules.day_of(paid.paid_at) == "2026-12-03"  # 23:59:59 Beijing time
    rules.check_order(paid, {"amount": 67125})
    cases = {
        "signature": (headers | {"signature": "0" * 64}, body, 0),
        "timestamp": (headers, body, 301),
    }
    for code, (h, b, late) in cases.items():
        with pytest.raises(rules.Forged) as caught:
            rules.verify(SECRET, h, b, AT.timestamp() + late)
        assert caught.value.code == code
    with pytest.raises(rules.Forged):  # one byte changed after signing
        rules.verify(SECRET, headers, body.replace(b"67125", b"67126"), AT.timestamp())
    event = json.loads(body)
    event["resource"]["trade_state"] = "CLOSED"
    closed = json.dumps(event).encode()
    signed = {**headers, "signature": rules.signature(SECRET, headers["timestamp"],
                                                      headers["nonce"], closed)}
    with pytest.raises(rules.Forged) as caught:
        rules.verify(SECRET, signed, closed, AT.timestamp())
    assert caught.value.code == "state"
    for order in (None, {"amount": 67124}):
        with pytest.raises(rules.Forged):
            rules.check_order(paid, order)


def test_the_ledger_and_reconciliation() -> None:
    pay = rules.payment_lines("hehua:1-1-101", 500, True)
    over = rules.payment_lines("hehua:1-1-101", 500, False)
    settle = rules.settlement_lines("91330802MA2XXXXX1Y", 500)
    assert all(rules.balanced(lines) for lines in (pay, over, settle))
    assert not rules.balanced([{"account": "clearing", "fen": 1}])
    assert not rules.balanced([{"account": "clearing", "fen": 0.5},
                               {"account": "refund", "fen": -0.5}])
    totals = rules.balances({"lines": lines} for lines in (pay, over, settle))
    assert sum(totals.values()) == 0 and totals["clearing"] == 500
    net = PaymentNetwork(SECRET)
    for n in range(3):
        net.pay(f"order-000{n}", 100 + n, AT)
    statement, unreadable = rules.parse_statement(net.statement("2026-12-03"))
    assert statement == {"order-0000": 100, "order-0001": 101, "order-0002": 102}
    assert not unreadable
    report = rules.reconcile({"order-0000": 100, "order-0001": 999, "order-0009": 5}, statement)
    assert report["only_in_ledger"] == ["order-0009"]
    assert report["only_in_statement"] == ["order-0002"]
    assert report["amounts_differ"] == [{"order": "order-0001", "ledger": 999, "statement": 101}]
    assert not report["matched"]
    assert rules.reconcile(statement, statement)["matched"]
    _, unreadable = rules.parse_statement(rules.STATEMENT_HEADER + "\n`x,`y,`bad id!,`SUCCESS,`1")
    assert unreadable == ["第 2 行 / line 2"]
