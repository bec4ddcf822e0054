"""Property fees (物业费, 智缴): bills, late fees, payment notifications, the ledger and the
daily reconciliation. Pure rules: no I/O (server/sync/fees.py is the store's side).

1. Money is whole fen (分) everywhere. An amount in yuan as a file or a person writes it
   ("12", "12.5", "12.50") is read as text into fen, never through a float; a third decimal,
   a sign, an exponent or anything else is refused (`fen_of_yuan`).
2. A bill (账单) is one exclusive unit's (专有部分, `property_unit`) fee for one period:
   `2026-11` (monthly), `2026-Q4` (quarterly) or `2026` (yearly). Its id is
   `<compound>:<building>-<unit>-<room>:<period>`. A compound's bills of a period are issued
   together, once, as one roll (账单批次, `fee_roll`); a period's roll is never rewritten.
3. Generated from a rate (fen per m² per month) and the registered area (cm²):
   amount = rate × area / 10,000 × months, rounded ONCE on the whole period, half up, to the
   fen: `(2·rate·area·months + 10,000) // 20,000`. Never per month then summed, so the figure
   is the one a person gets from the rate sheet with a calculator.
4. Bounds: a rate 1–100,000 fen per m² per month; a bill 1 fen – 10,000,000 fen (100,000
   yuan). Zero, negative or larger amounts are refused, naming the field by its label.
5. Late fee (滞纳金) by a rule held as data (`LateRule`): from the day after the due date plus
   the grace days, `per_day_bp` ten-thousandths of the principal a day, rounded once, half up,
   on the total, and never more than `cap_percent` % of the principal.
6. A payment notification (支付通知) is taken only when all hold: the signature over
   "timestamp\\nnonce\\nbody\\n" (as WeChat Pay APIv3 signs; HMAC-SHA256 for the test provider)
   is right (compared in constant time); the timestamp is within `WINDOW_SECONDS` of the
   server's clock; the event says the trade succeeded; the order is one we started; its amount
   and currency are the order's. Anything else is refused and logged, never half taken.
7. The ledger (复式记账) is append-only transactions whose lines sum to zero, so the books
   balance after every single write: a payment moves the amount from `owner:<unit>` to
   `clearing` (邻礼中心's clearing account), a settlement from `clearing` to
   `company:<code>`, and a second payment of a bill already paid goes to `refund` (owed back),
   never paying the bill twice.
8. Reconciliation (对账) compares the ledger's receipts by order id with the provider's
   statement: in the ledger only, in the statement only, or with different amounts.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain.rules import Problem

MIN_RATE, MAX_RATE = 1, 100_000  # fen per m² per month: ¥0.01 – ¥1,000
MIN_BILL, MAX_BILL = 1, 10_000_000  # fen: ¥0.01 – ¥100,000 for one unit's period
WINDOW_SECONDS = 300  # a notification's timestamp this close to our clock (WeChat Pay: 5 min)
CHINA = datetime.timezone(datetime.timedelta(hours=8))  # statements and days are Beijing time
PERIOD = re.compile(r"^(?P<year>20[0-9]{2})(?:-(?:(?P<month>0[1-9]|1[0-2])|Q(?P<q>[1-4])))?$")
MONTH = re.compile(r"^20[0-9]{2}-(0[1-9]|1[0-2])$")  # a month's reconciliation
YUAN = re.compile(r"^(?P<whole>[0-9]{1,9})(?:\.(?P<cents>[0-9]{1,2}))?$")
MAX_EXEMPT = 20_000  # a compound's units at most, as a file's rows
ORDER = re.compile(r"^[A-Za-z0-9_-]{6,32}$")  # WeChat Pay's out_trade_no: 6–32 of these
CLEARING, REFUND = "clearing", "refund"
LABELS = {"compound": ("小区", "Compound"), "period": ("账期", "Period"),
          "rate_fen": ("单价（分/平方米·月）", "Rate (fen per m² a month)"),
          "amount": ("金额", "Amount"), "due_date": ("缴费截止日", "Due date"),
          "unit": ("房屋", "Unit"), "late_rule": ("滞纳金规则", "Late-fee rule"),
          "request": ("请求编号", "Request id"), "exempt": ("免缴房屋", "Exempt units")}


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    """A problem naming the field by its label, zh-CN first."""
    lz, le = LABELS.get(field, (field, field))
    return Problem(f"/{field}", code, f"“{lz}”{zh}", f"{le} {en}")


# -- money and periods -----------------------------------------------------------------------

def fen_of_yuan(text: str) -> int:
    """Rule 1: '12.5' -> 1250. ValueError for anything but digits with at most two decimals."""
    found = YUAN.match(text.strip().replace(",", "").replace("，", ""))
    if not found:
        raise ValueError(text)
    return int(found["whole"]) * 100 + int((found["cents"] or "0").ljust(2, "0"))


def yuan(fen: int) -> str:
    """12345 -> '123.45', for statements and receipts."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def months_of(period: str) -> int:
    """Rule 2: how many months a period covers; ValueError if it is no period."""
    found = PERIOD.match(period)
    if not found:
        raise ValueError(period)
    return 1 if found["month"] else 3 if found["q"] else 12


def generated_fen(rate_fen: int, area_cm2: int, months: int) -> int:
    """Rule 3: rate × area × months, rounded once, half up, to the fen."""
    return (2 * rate_fen * area_cm2 * months + 10_000) // 20_000


def period_problems(period: Any) -> list[Problem]:
    if not isinstance(period, str) or not PERIOD.match(period):
        return [problem("period", "period", "应为 2026-11、2026-Q4 或 2026",
                        "must be a month (2026-11), a quarter (2026-Q4) or a year (2026)")]
    return []


def amount_problems(amount: Any, field: str = "amount") -> list[Problem]:
    """Rule 4 for one bill's amount in fen."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        return [problem(field, "type", "应为整数（分）", "must be a whole number of fen")]
    if amount < 0:
        return [problem(field, "negative", "不能为负数", "cannot be negative")]
    if not MIN_BILL <= amount <= MAX_BILL:
        return [problem(field, "range", f"应在 {yuan(MIN_BILL)} 至 {yuan(MAX_BILL)} 元之间",
                        f"must be between ¥{yuan(MIN_BILL)} and ¥{yuan(MAX_BILL)}")]
    return []


def date_problems(value: Any, field: str = "due_date") -> list[Problem]:
    try:
        datetime.date.fromisoformat(value if isinstance(value, str) and len(value) == 10
                                    else "x")
    except ValueError:
        return [problem(field, "date", "应为日期，如 2026-12-31", "must be a date: 2026-12-31")]
    return []


# -- late fees -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LateRule:
    """Rule 5 as data (滞纳金规则): e.g. 万分之五 a day after 30 days' grace, at most the
    principal."""

    grace_days: int = 30
    per_day_bp: int = 5  # ten-thousandths of the principal a day
    cap_percent: int = 100

    @classmethod
    def from_data(cls, data: Any) -> LateRule:
        """The rule as a roll stores it; ValueError when a part is missing or out of range."""
        if not isinstance(data, Mapping) or set(data) != {"grace_days", "per_day_bp",
                                                          "cap_percent"}:
            raise ValueError("late rule")
        values = [data[k] for k in ("grace_days", "per_day_bp", "cap_percent")]
        if any(not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 1000
               for v in values):
            raise ValueError("late rule")
        return cls(*values)

    def as_data(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def late_fen(principal: int, due: datetime.date, today: datetime.date, rule: LateRule) -> int:
    """Rule 5: the late fee owed on `today` for a bill of `principal` fen due on `due`."""
    days = (today - due).days - rule.grace_days
    if days <= 0:
        return 0
    fee = (2 * principal * rule.per_day_bp * days + 10_000) // 20_000
    return min(fee, principal * rule.cap_percent // 100)


# -- bills -----------------------------------------------------------------------------------

def unit_key(unit_id: str) -> str:
    """`property_unit:hehua1:3-2-301` -> `hehua1:3-2-301`."""
    return unit_id.partition(":")[2]


def bill_key(unit: str, period: str) -> str:
    """Rule 2: the bill's id, from a unit key and a period."""
    return f"{unit}:{period}"


def split_bill(key: str) -> tuple[str, str, str]:
    """(compound, address, period) of a bill id; ValueError if it is no bill id."""
    parts = key.split(":")
    if len(parts) != 3 or not all(parts) or not PERIOD.match(parts[2]):
        raise ValueError(key)
    return parts[0], parts[1], parts[2]


def roll_problems(draft: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with a request to generate a compound's bills for a period."""
    found = period_problems(draft.get("period")) + date_problems(draft.get("due_date"))
    rate = draft.get("rate_fen")
    if not isinstance(rate, int) or isinstance(rate, bool):
        found.append(problem("rate_fen", "type", "应为整数（分）", "must be a whole number of fen"))
    elif rate < 0:
        found.append(problem("rate_fen", "negative", "不能为负数", "cannot be negative"))
    elif not MIN_RATE <= rate <= MAX_RATE:
        found.append(problem("rate_fen", "range", f"应在 {MIN_RATE} 至 {MAX_RATE} 分之间",
                             f"must be between {MIN_RATE} and {MAX_RATE} fen"))
    exempt = draft.get("exempt", [])
    if not isinstance(exempt, list) or len(exempt) > MAX_EXEMPT or not all(
            isinstance(a, str) and 0 < len(a) <= 62 for a in exempt):
        found.append(problem("exempt", "type",
                             f"应为房屋（幢-单元-室）的列表，最多 {MAX_EXEMPT} 个",
                             f"must be a list of units (building-unit-room), at most "
                             f"{MAX_EXEMPT}"))
    if "late_rule" in draft:
        try:
            LateRule.from_data(draft["late_rule"])
        except ValueError:
            found.append(problem("late_rule", "late_rule",
                                 "应为 {grace_days, per_day_bp, cap_percent}，各为 0–1000 的整数",
                                 "must be {grace_days, per_day_bp, cap_percent}, whole numbers "
                                 "0–1000"))
    return found


def areas_id(compound: str) -> str:
    """The compound's area index (面积索引) in the votes database, beside its units: a `_local`
    document (never replicated, no record of anyone), a cache generation can trust."""
    return f"_local/fee_areas:{compound}"


def areas_doc(units: Iterable[Mapping[str, Any]], seq: Any) -> dict[str, Any]:
    """A compound's area index: each unit's registered area (cm²) by its address, read from
    the units after the votes database's sequence `seq`, so it holds while no unit of the
    compound changed after `seq` (server/sync/fees.py `areas` checks, the import writes it)."""
    return {"seq": seq, "areas": {unit_key(str(u["_id"])).partition(":")[2]: int(u["area_cm2"])
                                  for u in units}}


def generate(units: Iterable[tuple[str, int]], rate_fen: int, period: str) -> dict[str, int]:
    """Rule 3 for a compound: {unit address: fen} from (unit address, area in cm²)."""
    months = months_of(period)
    return {address: generated_fen(rate_fen, area, months) for address, area in units}


IMPORT_HEADERS = ("幢", "单元", "室", "账期", "金额（元）")


def imported_bill(row: Mapping[str, str], units: Mapping[str, int], compound: str
                  ) -> tuple[tuple[str, str, int] | None, list[str]]:
    """One row of a property company's bill file: (address, period, fen), or why not. The
    unit must be on the register of the compound (units: address -> area)."""
    address = "-".join(row.get(h, "").strip() for h in ("幢", "单元", "室"))
    period = row.get("账期", "").strip()
    why = [p.message for p in period_problems(period)]
    try:
        fen = fen_of_yuan(row.get("金额（元）", ""))
    except ValueError:
        raw = row.get("金额（元）", "").strip()
        why += [p.message for p in (amount_problems(-1) if raw.startswith("-") else [problem(
            "amount", "yuan", "应为元数，最多两位小数", "must be yuan with at most two decimals")])]
    else:
        why += [p.message for p in amount_problems(fen)]
    if address not in units:
        why.append(problem("unit", "unknown", f"{compound} {address} 不在不动产登记簿上",
                           f"{compound} {address} is not on the property register").message)
    return (None, why) if why else ((address, period, fen), [])


# -- payment notifications (rule 6) -----------------------------------------------------------

def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """The bytes signed. Headers arrive decoded with surrogateescape: a byte that is no UTF-8
    goes back as itself (a plain encode would raise on it: a 500 for anyone on the net)."""
    return f"{timestamp}\n{nonce}\n".encode("utf-8", "surrogateescape") + body + b"\n"


def signature(secret: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    """The test provider's signature: HMAC-SHA256 of WeChat Pay APIv3's message, hex."""
    return hmac.new(secret, signed_message(timestamp, nonce, body), hashlib.sha256).hexdigest()


@dataclasses.dataclass(frozen=True)
class Notification:
    """A verified notification: which order, what the provider says was paid, and when."""

    order: str
    transaction: str
    amount: int
    paid_at: str  # ISO 8601 with offset, as the provider gives it


class Forged(Exception):
    """A notification that must not be taken; `code` says which check failed (for the log)."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.code, self.zh, self.en = code, zh, en


def verify(secret: bytes, headers: Mapping[str, str], body: bytes, now: float) -> Notification:
    """Rule 6's signature, window and shape; the order and amount are checked against the
    stored order by `check_order`."""
    timestamp, nonce = headers.get("timestamp", ""), headers.get("nonce", "")
    given = headers.get("signature", "")
    expected = signature(secret, timestamp, nonce, body)
    if not given or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                            expected.encode()):
        raise Forged("signature", "签名不符", "bad signature")
    if not (timestamp.isascii() and timestamp.isdecimal() and len(timestamp) < 16) or abs(
            now - int(timestamp)) > WINDOW_SECONDS:
        raise Forged("timestamp", "时间戳超出允许范围（重放？）",
                     "timestamp outside the window (a replay?)")
    try:
        event = json.loads(body)
        resource = event["resource"]
        order, amount = resource["out_trade_no"], resource["amount"]["total"]
        paid = Notification(order, str(resource["transaction_id"]), amount,
                            str(resource["success_time"]))
        datetime.datetime.fromisoformat(paid.paid_at)
        ok = (event["event_type"] == "TRANSACTION.SUCCESS"
              and resource["trade_state"] == "SUCCESS"
              and resource["amount"]["currency"] == "CNY")
    except (ValueError, KeyError, TypeError):
        raise Forged("shape", "通知格式不符", "malformed notification") from None
    if not ok:
        raise Forged("state", "不是支付成功通知", "not a successful payment")
    if not isinstance(order, str) or not ORDER.match(order):
        raise Forged("order", "订单号不符", "bad order id")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise Forged("amount", "金额不符", "bad amount")
    return paid


def check_order(paid: Notification, order: Mapping[str, Any] | None) -> None:
    """Rule 6: the order is one we started, for exactly this amount."""
    if order is None:
        raise Forged("order", "没有这个订单", "no such order")
    if order.get("amount") != paid.amount:
        raise Forged("amount", "金额与订单不符", "amount differs from the order's")


def notification_body(order: str, transaction: str, amount: int, paid_at: str) -> bytes:
    """A TRANSACTION.SUCCESS notification as the test provider sends it (WeChat Pay APIv3's
    fields, the resource in clear instead of AES-GCM encrypted)."""
    return json.dumps({
        "id": hashlib.sha256(transaction.encode()).hexdigest()[:32],
        "create_time": paid_at, "event_type": "TRANSACTION.SUCCESS",
        "resource_type": "plain", "summary": "支付成功",
        "resource": {"out_trade_no": order, "transaction_id": transaction,
                     "trade_state": "SUCCESS", "success_time": paid_at,
                     "amount": {"total": amount, "payer_total": amount, "currency": "CNY"}},
    }, ensure_ascii=False, separators=(",", ":")).encode()


# -- the ledger (rule 7) -----------------------------------------------------------------------

def owner_account(unit: str) -> str:
    return f"owner:{unit}"


def company_account(company: str) -> str:
    return f"company:{company}"


def payment_lines(unit: str, amount: int, first: bool) -> list[dict[str, Any]]:
    """A payment's lines: the owner pays into clearing; a second payment of a paid bill is
    owed back (refund), not a second payment of the bill."""
    return [{"account": owner_account(unit) if first else REFUND, "fen": -amount},
            {"account": CLEARING, "fen": amount}]


def settlement_lines(company: str, amount: int) -> list[dict[str, Any]]:
    return [{"account": CLEARING, "fen": -amount},
            {"account": company_account(company), "fen": amount}]


def balanced(lines: Iterable[Mapping[str, Any]]) -> bool:
    """Rule 7: the lines of one transaction sum to zero, in whole fen."""
    amounts = [line.get("fen") for line in lines]
    return bool(amounts) and all(isinstance(a, int) and not isinstance(a, bool)
                                 for a in amounts) and sum(amounts) == 0  # type: ignore[arg-type]


def balances(transactions: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Each account's balance in fen (their sum is 0 when every transaction balances)."""
    total: dict[str, int] = {}
    for txn in transactions:
        for line in txn["lines"]:
            total[line["account"]] = total.get(line["account"], 0) + line["fen"]
    return total


# -- the provider's statement and reconciliation (rule 8) -------------------------------------

STATEMENT_HEADER = "交易时间,微信支付订单号,商户订单号,交易状态,订单金额"


def statement_csv(rows: Iterable[tuple[str, str, str, int]]) -> str:
    """A statement file (交易账单) as WeChat Pay writes it: each cell behind a backquote,
    amounts in yuan. rows: (paid_at, transaction, order, fen)."""
    lines = [STATEMENT_HEADER]
    lines += [f"`{at},`{txn},`{order},`SUCCESS,`{yuan(fen)}" for at, txn, order, fen in rows]
    return "\n".join(lines) + "\n"


def parse_statement(text: str) -> tuple[dict[str, int], list[str]]:
    """{order: fen} of a statement's successful trades, and the lines it could not read."""
    found: dict[str, int] = {}
    unreadable: list[str] = []
    lines = text.splitlines()
    if not lines or lines[0].strip().lstrip("\ufeff") != STATEMENT_HEADER:
        return found, ["表头不符 / unexpected header"]
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip().lstrip("`") for c in line.split(",")]
        try:
            if len(cells) != 5 or not ORDER.match(cells[2]):
                raise ValueError(line)
            if cells[3] == "SUCCESS":
                found[cells[2]] = found.get(cells[2], 0) + fen_of_yuan(cells[4])
        except ValueError:
            unreadable.append(f"第 {number} 行 / line {number}")
    return found, unreadable


def reconcile(ledger: Mapping[str, int], statement: Mapping[str, int]) -> dict[str, Any]:
    """Rule 8: differences between the ledger's receipts and the statement, by order."""
    only_ledger = sorted(set(ledger) - set(statement))
    only_statement = sorted(set(statement) - set(ledger))
    differ = sorted(o for o in set(ledger) & set(statement) if ledger[o] != statement[o])
    return {"ledger_orders": len(ledger), "statement_orders": len(statement),
            "ledger_fen": sum(ledger.values()), "statement_fen": sum(statement.values()),
            "only_in_ledger": only_ledger, "only_in_statement": only_statement,
            "amounts_differ": [{"order": o, "ledger": ledger[o], "statement": statement[o]}
                               for o in differ],
            "matched": not (only_ledger or only_statement or differ)}


def day_of(paid_at: str) -> str:
    """The Beijing-time day of a provider's time stamp (statements are by that day)."""
    return datetime.datetime.fromisoformat(paid_at).astimezone(CHINA).date().isoformat()


def rate_percent(paid: int, billed: int) -> float:
    """A collection rate (收缴率) for showing, from whole fen; 0 when nothing was billed."""
    return round(100 * paid / billed, 1) if billed else 0.0
