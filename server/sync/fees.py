"""The store's side of property fees (物业费, 智缴): bill rolls, payment orders, the payment
provider's notifications, the append-only ledger and the daily reconciliation. The rules are
server/domain/fees.py; the design docs/fees.md.

Everything lives in the fees database (`linli-fees`, internal: reached through the fees
routes only). What makes a notification count once is the ledger's document id: a payment is
`fee_txn:pay:<bill>`, written with a plain PUT, so a repeated, reordered or retried
notification, or one sent again after the server was killed between its write and its answer,
finds the payment there (409) and writes nothing. A second, different payment of a paid bill
becomes `fee_txn:over:<order>` (owed back). Each transaction is one document whose lines sum to
zero, so the books balance after every write.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from server.domain import fees as rules
from server.domain.messages import Refused, bilingual
from server.domain.rules import Problem
from server.domain.scope import DIRECTORY_DB, FEES_DB, VOTES_DB, Directory, User
from server.domain.validation import SchemaRegistry
from server.store.couch import Conflict, CouchClient, NotFound, StoreUnavailable, db_path
from server.store.couch import CouchFailure as StoreFailed
from server.sync.votes import changes

log = logging.getLogger("linli.fees")
WRITER = "linli-fees"
PAGE = 10_000  # documents per _all_docs page
OWNERS_TTL = 60.0  # seconds the register's owners index is trusted before it is read again
AREAS_SCAN = 20_000  # register changes read to trust an area index; more: read the units


def refused(problems: list[Problem]) -> Refused:
    return Refused(400, "bad_request", "；".join(bilingual(p.zh, p.en) for p in problems))


def no_such_bill() -> Refused:
    return Refused(404, "not_found", bilingual("没有这张账单，或它不是您的",
                                               "No such bill, or it is not yours."))


def now_iso(clock: Callable[[], float]) -> str:
    return datetime.datetime.fromtimestamp(clock(), datetime.UTC).isoformat(timespec="seconds")


class PaymentProvider(Protocol):
    """What a payment provider (支付渠道) gives Linli; docs/fees.md says how to plug one in."""

    name: str

    def checkout(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """What the phone needs to pay the order (WeChat Pay: a prepay id and its signature)."""

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> rules.Notification:
        """The notification's signature, window and shape checked; raises rules.Forged."""


class TestProvider:
    """The provider shipped for tests and demos: notifications signed with HMAC-SHA256 over
    WeChat Pay APIv3's message, under `secret` (server/demo/fees.py's PaymentNetwork is its
    other side). Never for real money: anyone who knows the secret can say a bill is paid."""

    name = "test"

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def checkout(self, order: Mapping[str, Any]) -> dict[str, Any]:
        return {"provider": self.name, "order": order["order"], "amount": order["amount"]}

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> rules.Notification:
        return rules.verify(self.secret, {
            "timestamp": headers.get("Wechatpay-Timestamp", ""),
            "nonce": headers.get("Wechatpay-Nonce", ""),
            "signature": headers.get("Wechatpay-Signature", "")}, body, now)


class DemoProvider(TestProvider):
    """`linli serve --demo`'s provider when no other is set: the test provider under a secret
    made at start and known to nothing outside this process, whose payment network is this
    process too. The owner pays at once: starting an order has its signed notification
    delivered to the notification path here (`Fees.deliver`), never over a network, so a demo
    owner can pay and see the receipt. Marked test in the checkout and on the receipt; only
    on a loopback address and never in production (web/fees.py `provider_of`)."""

    pays_itself = True
    NOTE = ("测试支付渠道（演示）：不收真钱，订单立即视为已付",
            "Test payment provider (demo): no real money; the order is paid at once.")

    def __init__(self) -> None:
        super().__init__(secrets.token_hex(32).encode())

    def checkout(self, order: Mapping[str, Any]) -> dict[str, Any]:
        return {**super().checkout(order), "test": True, "note": bilingual(*self.NOTE)}

    def notification(self, order: Mapping[str, Any], now: float) -> tuple[dict[str, str], bytes]:
        """The network's signed delivery of the order's payment; the same trade each time."""
        paid_at = datetime.datetime.fromtimestamp(now, rules.CHINA).isoformat(
            timespec="seconds")
        body = rules.notification_body(str(order["order"]), f"4200test{order['order'][:24]}",
                                       int(order["amount"]), paid_at)
        stamp, nonce = str(int(now)), secrets.token_hex(16)
        return {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": rules.signature(self.secret, stamp, nonce, body)}, body


def order_id(account: str, bill: str, request: str) -> str:
    """The provider's order id (out_trade_no) of one payment request of one bill: the phone's
    retry of a queued request is the same order."""
    return hashlib.sha256(f"{account}\x1f{bill}\x1f{request}".encode()).hexdigest()[:32]


class Fees:
    """The store's side of fees; one per app. `clock` is the server's time (tests move it)."""

    def __init__(self, couch: CouchClient, directory: Directory, schemas: SchemaRegistry,
                 provider: PaymentProvider | None, clock: Callable[[], float] = time.time
                 ) -> None:
        self.couch, self.directory, self.schemas = couch, directory, schemas
        self.provider, self.clock = provider, clock
        self.rolls: dict[str, dict[str, Any]] = {}  # a roll is written once: cached for good
        self._owners: tuple[float, dict[str, set[str]]] = (float("-inf"), {})
        self.refusals: dict[str, int] = {}  # notifications refused, by the check that failed
        # The ledger's receipts folded by day as they are written (day -> order -> receipt),
        # read on from the fees database's changes: transactions are never changed, so a
        # reconciliation reads only what came since the last one, not the whole ledger.
        self.receipts: dict[str, dict[str, dict[str, Any]]] = {}
        self.receipts_seq = "0"
        self.folding = asyncio.Lock()
        self.deliveries: set[asyncio.Task[str]] = set()  # the demo network's, under way

    # -- reading ----------------------------------------------------------------------------

    async def _get(self, doc_id: str, db: str = FEES_DB) -> dict[str, Any] | None:
        try:
            found = await self.couch.get(db_path(db, doc_id))
        except NotFound:
            return None
        return found if isinstance(found, dict) else None

    async def range(self, prefix: str, db: str = FEES_DB) -> list[dict[str, Any]]:
        """The documents whose ids start with `prefix`, a page at a time."""
        found: list[dict[str, Any]] = []
        start = json.dumps(prefix)
        while True:
            page = await self.couch.get(db_path(db, "_all_docs"), include_docs="true",
                                        startkey=start, endkey=json.dumps(prefix + "\ufff0"),
                                        limit=str(PAGE + 1))
            rows = page.get("rows", [])
            found += [r["doc"] for r in rows[:PAGE] if r.get("doc")]
            if len(rows) <= PAGE:
                return found
            start = json.dumps(rows[PAGE]["id"])

    async def compound(self, code: str) -> dict[str, Any] | None:
        return await self._get(f"compound:{code}", DIRECTORY_DB)

    async def units(self, compound: str) -> dict[str, dict[str, Any]]:
        """The compound's exclusive units on the register: address -> the unit's document."""
        prefix = f"property_unit:{compound}:"
        try:
            docs = await self.range(prefix, VOTES_DB)
        except NotFound:  # no register imported yet
            return {}
        return {d["_id"][len(prefix):]: d for d in docs}

    async def areas(self, compound: str) -> dict[str, int]:
        """The compound's registered areas by unit address, from its area index (面积索引,
        kept by the register's import: 500 numbers, not 500 documents with their owners) when
        no unit of the compound changed since it was made; else read from the units and the
        index written again. A changed unit is seen in the votes database's changes since
        the index's sequence (ids only; a quiet register has none)."""
        held = await self._get(rules.areas_id(compound), VOTES_DB)
        if held is not None and isinstance(held.get("areas"), dict) and "seq" in held:
            fresh, last = await self.units_unchanged(compound, str(held["seq"]))
            if fresh:
                if last != str(held["seq"]):  # the next look starts from here
                    await self.save_areas(compound, {**held, "seq": last})
                return {str(a): int(v) for a, v in held["areas"].items()}
        try:
            seq = (await self.couch.get(db_path(VOTES_DB)))["update_seq"]
        except NotFound:  # no register imported yet
            return {}
        doc = rules.areas_doc((await self.units(compound)).values(), seq)
        if doc["areas"]:
            await self.save_areas(compound, {**doc, **({"_rev": held["_rev"]} if held else {})})
        return dict(doc["areas"])

    async def units_unchanged(self, compound: str, since: str) -> tuple[bool, str]:
        """(no unit of the compound changed after `since`, the sequence read up to); False
        too when more than AREAS_SCAN changes came since."""
        prefix, read = f"property_unit:{compound}:", 0
        while read <= AREAS_SCAN:
            page = await self.couch.get(db_path(VOTES_DB, "_changes"), since=since,
                                        limit=str(PAGE))
            rows = page.get("results", [])
            if any(str(r.get("id", "")).startswith(prefix) for r in rows):
                return False, since
            since, read = str(page.get("last_seq", since)), read + len(rows)
            if len(rows) < PAGE:
                return True, since
        return False, since

    async def save_areas(self, compound: str, doc: dict[str, Any]) -> None:
        try:
            await self.couch.put(db_path(VOTES_DB, rules.areas_id(compound)), doc)
        except Conflict:  # another process wrote it meanwhile: theirs is as good
            log.info("area index of %s written meanwhile", compound)

    async def roll(self, compound: str, period: str) -> dict[str, Any] | None:
        key = f"fee_roll:{compound}:{period}"
        if key not in self.rolls:
            found = await self._get(key)
            if found is None:
                return None
            self.rolls[key] = found
        return self.rolls[key]

    async def owner_units(self, account: str) -> set[str]:
        """The unit keys where the register names the account an owner, by the phones it
        logs in with (as owners' votes count them, docs/votes.md)."""
        at, index = self._owners
        if self.clock() - at > OWNERS_TTL:
            index = {}
            for doc in await self.range("property_unit:", VOTES_DB):
                for owner in doc.get("owners") or ():
                    if owner.get("phone"):
                        index.setdefault(owner["phone"], set()).add(rules.unit_key(doc["_id"]))
            self._owners = (self.clock(), index)
        phones = {p for p, a in self.directory.logins.items() if a == account}
        return {u for p in phones for u in index.get(p, ())}

    # -- who sees which compound ------------------------------------------------------------

    async def may_manage(self, user: User, compound: Mapping[str, Any]) -> bool:
        """The property company of the compound, a supervisor of its community, the admin."""
        if user.disabled:
            return False
        if user.is_admin:
            return True
        if user.role == "property":
            company = str(compound.get("property_company") or "")
            return bool(company) and (company in user.companies
                                      or f"property_company:{company}" in user.companies)
        community = str(compound.get("community") or "")
        return user.role == "supervisor" and (community in user.communities
                                              or community[:9] in user.streets)

    async def managed(self, user: User, code: str) -> dict[str, Any]:
        # a lone surrogate or a control is no code, and no URL can name it: not found
        found = await self.compound(code) if code and code.isprintable() else None
        if found is None or not await self.may_manage(user, found):
            raise Refused(404, "not_found", bilingual("没有这个小区，或不在您的范围内",
                                                      "No such compound, or not yours."))
        return found

    # -- issuing bills ----------------------------------------------------------------------

    async def issue(self, user: User, draft: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        """Generate a compound's roll for a period from a rate (rules 2-4)."""
        extra = sorted(set(draft) - {"compound", "period", "rate_fen", "due_date", "late_rule",
                                     "exempt"})
        problems = rules.roll_problems(draft)
        if extra:
            problems.insert(0, rules.problem(extra[0][:40], "unknown", "不是可填写的字段",
                                             "is not a field you can fill"))
        if problems:
            raise refused(problems)
        compound = await self.managed(user, str(draft.get("compound") or ""))
        areas = await self.areas(compound["code"])
        if not areas:
            raise refused([rules.problem("compound", "no_units", "还没有导入不动产登记簿",
                                         "has no property register imported yet")])
        exempt = sorted(set(draft.get("exempt") or ()))
        unknown = [a for a in exempt if a not in areas]
        if unknown:
            raise refused([rules.problem("exempt", "unknown", f"{unknown[0]} 不在不动产登记簿上",
                                         f"{unknown[0]} is not on the property register")])
        bills = rules.generate(((a, n) for a, n in areas.items() if a not in exempt),
                               int(draft["rate_fen"]), str(draft["period"]))
        problems = [p for a, fen in bills.items() for p in rules.amount_problems(fen) if fen]
        if problems or not all(bills.values()):
            raise refused(problems[:1] or [rules.problem(
                "rate_fen", "range", "太小：有房屋的应缴金额为 0", "too small: a unit owes 0")])
        doc = await self.write_roll(user, compound, str(draft["period"]), str(draft["due_date"]),
                                    bills, "rate", draft.get("late_rule"), int(draft["rate_fen"]),
                                    exempt)
        return doc, len(bills)

    async def write_roll(self, user: User, compound: Mapping[str, Any], period: str, due: str,
                         bills: dict[str, int], source: str, late: Any = None,
                         rate: int | None = None, exempt: list[str] | None = None
                         ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "_id": f"fee_roll:{compound['code']}:{period}", "type": "fee_roll",
            "schema_version": 1, "created_by": user.name, "compound": compound["code"],
            "period": period, "due_date": due, "source": source,
            "late_rule": rules.LateRule.from_data(late).as_data() if late is not None
            else rules.LateRule().as_data(),
            "bills": dict(sorted(bills.items())), "issued_at": now_iso(self.clock),
            **({"rate_fen": rate} if rate is not None else {}),
            **({"exempt": exempt} if exempt else {}),
            **({"company": str(compound["property_company"])}
               if compound.get("property_company") else {})}
        if not await self.write_once(doc):
            raise Refused(409, "conflict", bilingual(
                f"{compound['code']} 的 {period} 账单已出，不能重出",
                f"The bills of {compound['code']} for {period} are already issued."))
        return doc

    async def import_rows(self, user: User, code: str, due: str,
                          rows: Iterable[tuple[int, Mapping[str, str]]]
                          ) -> tuple[list[dict[str, Any]], list[str]]:
        """A property company's bill file for one compound (rule 2): every row checked, and
        nothing written unless every row is right (a file is one act). Returns the rolls
        written (one per period in the file) or the rows' problems."""
        problems = rules.date_problems(due)
        if problems:
            raise refused(problems)
        compound = await self.managed(user, code)
        units = await self.areas(code)
        periods: dict[str, dict[str, int]] = {}
        errors: list[str] = []
        for number, row in rows:
            found, why = rules.imported_bill(row, units, code)
            if found is not None and found[0] in periods.get(found[1], {}):
                why = ["同一房屋同一账期出现两次 / the same unit and period appear twice"]
            if why or found is None:
                errors.append(f"第 {number} 行 / row {number}: " + "；".join(why))
                continue
            periods.setdefault(found[1], {})[found[0]] = found[2]
        if errors or not periods:
            return [], errors or ["文件中没有账单 / no bills in the file"]
        taken = [p for p in periods if await self.roll(code, p) is not None]
        if taken:
            return [], [f"{code} 的 {p} 账单已出 / bills for {p} are already issued"
                        for p in taken]
        return [await self.write_roll(user, compound, p, due, bills, "import")
                for p, bills in sorted(periods.items())], []

    # -- an owner's bills -------------------------------------------------------------------

    async def bill(self, key: str) -> tuple[dict[str, Any], str, int] | None:
        """(roll, unit key, principal) of a bill id, or None."""
        try:
            compound, address, period = rules.split_bill(key)
        except ValueError:
            return None
        roll = await self.roll(compound, period)
        if roll is None or address not in roll["bills"]:
            return None
        return roll, f"{compound}:{address}", int(roll["bills"][address])

    async def paid(self, compound: str) -> dict[str, dict[str, Any]]:
        """The compound's payments by bill id."""
        return {d["bill"]: d for d in await self.range(f"fee_txn:pay:{compound}:")}

    def owed_today(self, roll: Mapping[str, Any], principal: int) -> int:
        today = datetime.datetime.fromtimestamp(self.clock(), rules.CHINA).date()
        return rules.late_fen(principal, datetime.date.fromisoformat(roll["due_date"]), today,
                              rules.LateRule.from_data(roll["late_rule"]))

    async def my_bills(self, user: User) -> list[dict[str, Any]]:
        """Every bill of the owner's units, paid or owed, with its receipt when paid; a unit
        exempt from a period (免缴) as a bill of state `exempt` owing nothing."""
        found: list[dict[str, Any]] = []
        units = await self.owner_units(user.name)
        for compound in sorted({u.partition(":")[0] for u in units}):
            paid = await self.paid(compound)
            rolls = await self.range(f"fee_roll:{compound}:")
            for roll in rolls:
                self.rolls.setdefault(roll["_id"], roll)
                for address, fen in roll["bills"].items():
                    if f"{compound}:{address}" not in units:
                        continue
                    key = rules.bill_key(f"{compound}:{address}", roll["period"])
                    found.append(self.shown(key, roll, fen, paid.get(key)))
                found += [{"bill": rules.bill_key(f"{compound}:{a}", roll["period"]),
                           "compound": compound, "unit": a, "period": roll["period"],
                           "due_date": roll["due_date"], "principal": 0, "late_fee": 0,
                           "owed": 0, "state": "exempt"}  # 免缴: nothing owed, may rate
                          for a in roll.get("exempt") or () if f"{compound}:{a}" in units]
        return sorted(found, key=lambda b: (b["period"], b["bill"]), reverse=True)

    def shown(self, key: str, roll: Mapping[str, Any], fen: int,
              txn: Mapping[str, Any] | None) -> dict[str, Any]:
        late = 0 if txn else self.owed_today(roll, fen)
        return {"bill": key, "compound": roll["compound"], "unit": key.split(":")[1],
                "period": roll["period"], "due_date": roll["due_date"], "principal": fen,
                "late_fee": late, "owed": 0 if txn else fen + late,
                "state": "paid" if txn else "owed",
                **({"paid": {"order": txn["order"], "amount": txn["lines"][1]["fen"],
                             "paid_at": txn["paid_at"], "transaction": txn["transaction"],
                             # the receipt says so: paid through the tests' and demos' provider
                             **({"test": True} if isinstance(self.provider, TestProvider)
                                else {})}}
                   if txn else {})}

    async def start(self, user: User, key: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """An owner starts paying a bill (rule 6): an order, never a payment. The phone may
        queue this offline and send it again: the request id makes it the same order."""
        request = body.get("request")
        extra = sorted(set(body) - {"request"})
        if extra:  # a phone cannot say it paid, nor how much
            raise refused([rules.problem(extra[0][:40], "unknown", "不是可填写的字段",
                                         "is not a field you can fill")])
        if not isinstance(request, str) or not rules.ORDER.match(request):
            raise refused([rules.problem("request", "request", "应为 6–32 个字母、数字、_ 或 -",
                                         "must be 6–32 letters, digits, _ or -")])
        units = await self.owner_units(user.name)  # first: its read (when stale) takes as
        found = await self.bill(key)  # long for another's bill as for a made-up one
        if found is None or found[1] not in units:
            raise no_such_bill()
        roll, _, principal = found
        if self.provider is None:
            raise Refused(503, "unavailable", bilingual("未配置支付渠道",
                                                        "No payment provider is configured."))
        order = order_id(user.name, key, request)
        stored = await self._get(f"fee_order:{order}")
        if stored is None:
            if await self._get(f"fee_txn:pay:{key}") is not None:
                raise Refused(409, "conflict", bilingual("这张账单已缴清", "This bill is paid."))
            late = self.owed_today(roll, principal)
            stored = {"_id": f"fee_order:{order}", "type": "fee_order", "schema_version": 1,
                      "created_by": WRITER, "order": order, "bill": key, "account": user.name,
                      "principal": principal, "late_fee": late, "amount": principal + late,
                      "provider": self.provider.name, "started_at": now_iso(self.clock)}
            try:
                await self.couch.put(db_path(FEES_DB, stored["_id"]), stored)
            except Conflict:  # the same request twice at once: one order
                stored = await self._get(f"fee_order:{order}") or stored
        if isinstance(self.provider, DemoProvider):
            self.deliver(self.provider, stored)
        return {"order": order, "bill": key, "amount": stored["amount"],
                "principal": stored["principal"], "late_fee": stored["late_fee"],
                "state": "started", "checkout": self.provider.checkout(stored)}

    def deliver(self, network: DemoProvider, order: Mapping[str, Any]) -> None:
        """The demo network's notification of the order, after the owner's answer, through
        `notify` (signature, window, order and amount checked as any provider's); sent again,
        as a provider does, while the store fails. Cancelled when the app stops."""
        async def send() -> str:
            for wait in (0.2, 1, 2, 5, 10):
                await asyncio.sleep(wait)
                try:
                    return await self.notify(*network.notification(order, self.clock()))
                except (StoreUnavailable, StoreFailed, TimeoutError) as exc:  # store down: again
                    log.warning("demo payment of %s not delivered: %s", order["order"], exc)
                except rules.Forged:  # refused and logged by `notify`
                    return "refused"
            return "undelivered"
        task = asyncio.ensure_future(send())
        self.deliveries.add(task)
        task.add_done_callback(self.deliveries.discard)

    # -- notifications ----------------------------------------------------------------------

    def refuse(self, code: str, detail: str) -> None:
        self.refusals[code] = self.refusals.get(code, 0) + 1
        # %r: the body is anyone's, and a newline in it would forge a line of this log
        log.warning("payment notification refused (%s): %r", code, detail[:200])

    async def notify(self, headers: Mapping[str, str], body: bytes) -> str:
        """A provider's notification: `paid`, `duplicate` or `refund_due`; rules.Forged when
        refused (logged here, before it is raised)."""
        if self.provider is None:
            raise rules.Forged("provider", "未配置支付渠道", "no payment provider")
        try:
            paid = self.provider.verify(headers, body, self.clock())
            order = await self._get(f"fee_order:{paid.order}")
            rules.check_order(paid, order)
        except rules.Forged as exc:
            self.refuse(exc.code, body[:120].decode("utf-8", "replace"))
            raise
        assert order is not None
        bill, unit = str(order["bill"]), ":".join(str(order["bill"]).split(":")[:2])
        txn = {"_id": f"fee_txn:pay:{bill}", "type": "fee_txn", "schema_version": 1,
               "created_by": WRITER, "kind": "payment", "order": paid.order, "bill": bill,
               "transaction": paid.transaction, "paid_at": paid.paid_at,
               "day": rules.day_of(paid.paid_at),
               "lines": rules.payment_lines(unit, paid.amount, True),
               "recorded_at": now_iso(self.clock)}
        if await self.append(txn):
            return "paid"
        first = await self._get(txn["_id"])
        if first is not None and first.get("order") == paid.order:
            return "duplicate"
        over = {**txn, "_id": f"fee_txn:over:{paid.order}", "kind": "refund_due",
                "lines": rules.payment_lines(unit, paid.amount, False)}
        return "refund_due" if await self.append(over) else "duplicate"

    async def append(self, txn: dict[str, Any]) -> bool:
        """Write a ledger transaction once: False when its id is already written."""
        if not rules.balanced(txn["lines"]):
            raise ValueError(f"unbalanced transaction {txn['_id']}")
        return await self.write_once(txn)

    async def write_once(self, doc: dict[str, Any]) -> bool:
        """Validate and write a new document: False when its id is already taken."""
        problems = self.schemas.problems(doc)
        if problems:
            raise refused(problems)
        try:
            await self.couch.put(db_path(FEES_DB, doc["_id"]), doc)
        except Conflict:
            return False
        return True

    # -- the ledger and reconciliation ------------------------------------------------------

    async def ledger(self) -> list[dict[str, Any]]:
        return await self.range("fee_txn:")

    async def fold(self) -> None:
        """Take the payments written since the last fold into `receipts`."""
        async with self.folding:
            rows, self.receipts_seq = await changes(self.couch, FEES_DB, self.receipts_seq)
            for row in rows:
                doc = row.get("doc") or {}
                if doc.get("type") == "fee_txn" and doc.get("kind") in ("payment", "refund_due"):
                    self.receipts.setdefault(doc["day"], {})[doc["order"]] = {
                        "kind": doc["kind"], "order": doc["order"], "bill": doc["bill"],
                        "day": doc["day"], "fen": doc["lines"][1]["fen"]}

    async def reconcile(self, user: User, day: str, statement: str) -> dict[str, Any]:
        """Rule 8 for one day, or a month (`2026-11`: the month's statements in one file);
        when it matches, each day's payments are settled to each compound's property company
        (clearing -> company), once."""
        if not (isinstance(day, str) and rules.MONTH.match(day)):
            problems = rules.date_problems(day, "day")
            if problems:
                raise refused(problems)
        await self.fold()
        txns = [t for d, found in self.receipts.items() if d.startswith(day)
                for t in found.values()]
        ledger = {t["order"]: t["fen"] for t in txns}
        wanted, unreadable = rules.parse_statement(statement)
        report = {"day": day, **rules.reconcile(ledger, wanted), "unreadable": unreadable}
        report["matched"] = report["matched"] and not unreadable
        if report["matched"]:
            by_day: dict[str, list[dict[str, Any]]] = {}
            for t in txns:
                by_day.setdefault(t["day"], []).append(t)
            settled: dict[str, int] = {}
            for one, paid in sorted(by_day.items()):
                for company, fen in (await self.settle(user, one, paid)).items():
                    settled[company] = settled.get(company, 0) + fen
            report["settled"] = settled
        return report

    async def settle(self, user: User, day: str, txns: list[dict[str, Any]]) -> dict[str, int]:
        by_company: dict[str, list[dict[str, Any]]] = {}
        for txn in txns:
            if txn["kind"] != "payment":
                continue  # an overpayment stays in clearing until it is refunded
            compound, _, period = rules.split_bill(txn["bill"])
            roll = await self.roll(compound, period)
            company = str((roll or {}).get("company") or f"unassigned_{compound}")
            by_company.setdefault(company, []).append(txn)
        settled: dict[str, int] = {}
        for company, paid in sorted(by_company.items()):
            amount = sum(t["fen"] for t in paid)
            settled[company] = amount
            if await self._get(f"fee_txn:settle:{day}:{company}") is not None:
                continue  # settled by an earlier reconciliation of the day: once
            await self.append({
                "_id": f"fee_txn:settle:{day}:{company}", "type": "fee_txn",
                "schema_version": 1, "created_by": user.name, "kind": "settlement",
                "day": day, "orders": sorted(t["order"] for t in paid),
                "lines": rules.settlement_lines(company, amount),
                "recorded_at": now_iso(self.clock)})
        return settled

    async def collection(self, codes: Iterable[str]) -> list[dict[str, Any]]:
        """Billed, paid and owed (fen) and the collection rate (收缴率) of each compound."""
        async def one(code: str) -> dict[str, Any]:
            rolls, paid = await asyncio.gather(self.range(f"fee_roll:{code}:"), self.paid(code))
            billed = sum(sum(r["bills"].values()) for r in rolls)
            bills = sum(len(r["bills"]) for r in rolls)
            received = sum(int(r["bills"][rules.split_bill(k)[1]]) for k in paid
                           for r in rolls if r["period"] == rules.split_bill(k)[2])
            return {"compound": code, "bills": bills, "paid_bills": len(paid),
                    "billed": billed, "paid": received, "owed": billed - received,
                    "rate": rules.rate_percent(received, billed)}
        return list(await asyncio.gather(*(one(c) for c in sorted(set(codes)))))

    async def compounds_of(self, user: User) -> list[str]:
        """The compounds a user manages (property company, supervisor, admin)."""
        docs = await self.range("compound:", DIRECTORY_DB)
        return [str(d["code"]) for d in docs if await self.may_manage(user, d)]
