"""The store's side of service ratings (物业服务评价) and the red/black list (红黑榜). The rules
are server/domain/ratings.py, the formula `schemas/rating_formula.json`, the design
docs/fees.md ("Ratings").

- Which rating counts is the allocation's (server/sync/allocation.py), not ours: a rating is a
  claim on the subject `fee_rating:<compound>:<period>` by the unit (a digest of it, so the
  claims database does not list which units rated), under the phone's request id. The first
  claim the server receives of a unit stands; the rating itself is then written once to the
  fees database as `fee_rating:<bill>`. A retry of the standing claim (the phone's answer was
  lost, the server was killed between the claim and the rating) meets its claim, still
  standing, and writes the rating it had not; any other claim is told 已评价.
- The scores are kept as the fees database's changes are read (`fold`): a tally per company
  and period of the ratings' sums and of the units billed, and the companies' answers; the
  complaints come from the reports' rows the server already keeps (server/sync/reports.py).
  A city's board is then arithmetic on a few hundred tallies, not a read of every rating.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from server.config import shipped
from server.domain import fees as fee_rules
from server.domain import ratings as rules
from server.domain.allocation import Terms
from server.domain.messages import Refused, bilingual
from server.domain.scope import DIRECTORY_DB, FEES_DB, User
from server.sync.allocation import Allocator, event_id
from server.sync.fees import Fees, no_such_bill, now_iso, refused
from server.sync.reports import ReportRows, parse_time
from server.sync.supervisor import Lag
from server.sync.votes import changes

KIND = "fee_rating"
FORMULA_FILE = shipped("schemas") / "rating_formula.json"
EVERYONE = 1_000_000_000  # the allocator's places: every household once
FOLD_SECONDS = 5.0  # how soon new ratings are folded into the tallies without a request


def load_formula() -> rules.Formula:
    return rules.Formula.from_data(json.loads(FORMULA_FILE.read_text("utf-8")))


def unit_claimant(unit: str) -> str:
    """A unit as the one-rating rule's claimant: a digest, as questionnaires name households."""
    return "u." + hashlib.sha256(f"unit\x1f{unit}".encode()).hexdigest()[:24]


def subject_of(compound: str, period: str) -> str:
    return f"{KIND}:{compound}:{period}"


def already_answered() -> Refused:
    return Refused(409, "conflict", bilingual("本期已公开回应过，不能再回应",
                                              "This period is already answered."))


@dataclasses.dataclass
class Ratings:
    """One per app; `rows` are the reports' rows (complaints), when reports run."""

    fees: Fees
    rows: ReportRows | None = None
    formula: rules.Formula = dataclasses.field(default_factory=load_formula)
    tallies: dict[tuple[str, str], rules.Tally] = dataclasses.field(default_factory=dict)
    answers: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    seq: str = "0"
    folding: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    ready: bool = False  # the first fold (of everything, after a start) is done

    # -- rating (rules 1 and 2) --------------------------------------------------------------

    async def terms(self, subject: str) -> Terms | None:
        """The allocator's terms: every household of the roll once (None: no such roll)."""
        compound, _, period = subject.removeprefix(f"{KIND}:").partition(":")
        return Terms(EVERYONE) if await self.fees.roll(compound, period) else None

    async def rate(self, allocator: Allocator, user: User, key: str, body: Mapping[str, Any],
                   now: datetime.datetime) -> dict[str, Any]:
        """An owner's rating of the bill's period: counted when it is the first the server
        received of the unit and period; what the sender is told."""
        try:
            compound, address, period = fee_rules.split_bill(key)
        except ValueError:
            raise no_such_bill() from None
        roll = await self.fees.roll(compound, period)
        unit = f"{compound}:{address}"
        exempt = roll is not None and address in (roll.get("exempt") or ())
        if roll is None or (address not in roll["bills"] and not exempt) \
                or unit not in await self.fees.owner_units(user.name):
            raise no_such_bill()
        problems = rules.rating_problems(body)
        if problems:
            raise refused(problems)
        company = rules.company_code(roll.get("company"))
        if not company:
            raise Refused(409, "no_company", bilingual("本小区这一期没有物业公司，无需评价",
                                                       "No property company served this "
                                                       "period: there is nobody to rate."))
        paid = await self.fees._get(f"fee_txn:pay:{key}") is not None
        if not rules.may_rate(paid, exempt):
            raise Refused(403, "forbidden", bilingual("缴清本期物业费后才能评价",
                                                      "Pay this period's bill to rate it."))
        subject = subject_of(str(roll["compound"]), str(roll["period"]))
        claimant = unit_claimant(unit)
        claim = event_id(subject, claimant, "claim", str(body["request"]))
        await allocator.record({
            "_id": claim, "type": "claim", "schema_version": 1, "created_by": user.name,
            "subject": subject, "act": "claim", "claimant": claimant,
            "claim_id": str(body["request"]), "received_at": now.isoformat(
                timespec="microseconds")})
        await allocator.settle()
        outcome = allocator.outcome(subject, claimant)
        if outcome is None or outcome.claim != claim:
            return {"status": "rated_already", "counted": False,
                    "told": bilingual(*rules.TOLD["rated_already"])}
        doc = {"_id": f"{KIND}:{key}", "type": KIND, "schema_version": 1,
               "created_by": user.name, "account": user.name, "compound": roll["compound"],
               "company": company, "period": roll["period"],
               "scores": {a: body["scores"][a] for a in rules.ASPECTS},
               "comment": str(body.get("comment", "")), "claim": claim,
               "received_at": now.isoformat(timespec="seconds")}
        repeated = not await self.fees.write_once(doc)
        if repeated:
            stored = await self.fees._get(doc["_id"]) or {}
            if stored.get("claim") != claim:  # cannot be: the claim stands, its rating is it
                return {"status": "rated_already", "counted": False,
                        "told": bilingual(*rules.TOLD["rated_already"])}
            doc = stored
        return {"status": "counted", "counted": True, "repeated": repeated,
                "rating": self.shown(doc), "told": bilingual(*rules.TOLD["counted"])}

    @staticmethod
    def shown(doc: Mapping[str, Any]) -> dict[str, Any]:
        """A rating as its household sees it (never the account that sent it)."""
        return {"bill": str(doc["_id"]).removeprefix(f"{KIND}:"), "period": doc["period"],
                "compound": doc["compound"], "scores": doc["scores"],
                "comment": doc["comment"], "received_at": doc["received_at"]}

    async def mine(self, user: User) -> list[dict[str, Any]]:
        """The ratings of the owner's units, whoever of the household sent them."""
        found: list[dict[str, Any]] = []
        for unit in sorted(await self.fees.owner_units(user.name)):
            found += [self.shown(d) for d in await self.fees.range(f"{KIND}:{unit}:")]
        return found

    # -- the company's answer ----------------------------------------------------------------

    async def answer(self, user: User, body: Mapping[str, Any],
                     now: datetime.datetime) -> dict[str, Any]:
        """The company's one public answer of a period (property role, its own company)."""
        problems = (rules.unknown_fields(body, frozenset({"period", "text", "company"}))
                    + rules.period_problems(body.get("period"))
                    + rules.answer_problems(body.get("text")))
        if problems:
            raise refused(problems)
        mine = sorted(rules.company_code(c) for c in user.companies)
        wanted = body.get("company", mine[0] if len(mine) == 1 else None)
        if not isinstance(wanted, str) or wanted not in mine:
            raise refused([rules.problem("company", "choose", "应为您所在的物业公司之一",
                                         "must be one of your companies")])
        doc = {"_id": f"fee_rating_answer:{body['period']}:{wanted}",
               "type": "fee_rating_answer", "schema_version": 1, "created_by": user.name,
               "company": wanted, "period": body["period"], "text": body["text"],
               "answered_at": now_iso(self.fees.clock)}
        if not await self.fees.write_once(doc):
            raise already_answered()
        self.answers[(doc["period"], wanted)] = doc
        return doc

    # -- scores and lists (rules 3-5) ---------------------------------------------------------

    async def fold(self) -> None:
        """Take the ratings, rolls and answers written since the last fold into the tallies."""
        async with self.folding:
            rows, self.seq = await changes(self.fees.couch, FEES_DB, self.seq)
            for row in rows:
                doc = row.get("doc") or {}
                kind = doc.get("type")
                if kind == KIND:
                    self.tally(doc["period"], doc["company"]).rate(doc["scores"])
                elif kind == "fee_roll" and doc.get("company"):
                    self.tally(doc["period"], rules.company_code(doc["company"])).units += len(
                        doc["bills"]) + len(doc.get("exempt") or ())
                elif kind == "fee_rating_answer":
                    self.answers[(doc["period"], doc["company"])] = doc

    async def run(self) -> None:
        """Supervised: the whole fees database folded once after a start, then what is new
        every FOLD_SECONDS, so that a board asked for finds nearly everything folded (the
        first fold of a city takes tens of seconds: docs/benchmarks.md)."""
        while True:
            await self.fold()
            self.ready = True
            await asyncio.sleep(FOLD_SECONDS)

    def lag(self) -> Lag:
        return Lag(items=None if not self.ready else 0)

    def tally(self, period: str, company: str) -> rules.Tally:
        return self.tallies.setdefault((period, company), rules.Tally())

    def complaints(self, periods: list[str]) -> dict[tuple[str, str], list[float | None]]:
        """(period, company) -> the handling hours of each complaint (物业服务 reports in its
        compounds submitted in the period, Beijing time; None: not done)."""
        bounds = [(p, *rules.period_bounds(p)) for p in periods]
        found: dict[tuple[str, str], list[float | None]] = {}
        for row in (self.rows.rows.values() if self.rows is not None else ()):
            if row.figure.category != rules.COMPLAINT_CATEGORY or not row.place.company:
                continue
            at = parse_time(row.submitted_at)
            if at is None:
                continue
            day = at.astimezone(fee_rules.CHINA).date()
            for period, start, end in bounds:
                if start <= day < end:
                    found.setdefault((period, rules.company_code(row.place.company)),
                                     []).append(row.figure.hours)
        return found

    def scores(self, period: str, hours: Mapping[tuple[str, str], list[float | None]]
               ) -> dict[str, rules.Score]:
        companies = {c for p, c in self.tallies if p == period} | {
            c for p, c in hours if p == period}
        found = {}
        for company in companies:
            base = self.tallies.get((period, company), rules.Tally())
            took = hours.get((period, company), [])
            found[company] = rules.score(company, dataclasses.replace(
                base, complaints=len(took), hours=list(took)), self.formula)
        return found

    async def names(self) -> dict[str, str]:
        return {rules.company_code(d["_id"]): str(d.get("name") or "")
                for d in await self.fees.range("property_company:", DIRECTORY_DB)}

    async def board(self, user: User, period: str) -> dict[str, Any]:
        """A period's scores, the red and black lists with their reasons, each company's
        credit grade and answer. A property company sees its own scores marked `mine`."""
        problems = rules.period_problems(period)
        if problems:
            raise refused(problems)
        await self.fold()
        periods = rules.last_periods(period, self.formula.grade_periods)
        hours = self.complaints(periods)
        history = {p: self.scores(p, hours) for p in periods}
        now = history[period]
        names = await self.names()
        mine = {rules.company_code(c) for c in user.companies}

        def row(found: rules.Score, reasons: list[str] | None = None) -> dict[str, Any]:
            answer = self.answers.get((period, found.company))
            return {"company": found.company, "name": names.get(found.company, ""),
                    "score": found.score, "parts": dict(found.parts),
                    "aspects": dict(found.aspects), "ratings": found.ratings,
                    "units": found.units, "complaints": found.complaints,
                    "mean_hours": found.mean_hours,
                    "grade": rules.grade([history[p].get(found.company, rules.Score(
                        found.company, None, {}, {}, 0, 0, 0, None)).score for p in periods],
                        self.formula),
                    "answer": ({"text": answer["text"], "answered_at": answer["answered_at"]}
                               if answer else None),
                    **({"reasons": reasons} if reasons is not None else {}),
                    **({"mine": True} if found.company in mine else {})}

        listed = rules.lists(now.values(), self.formula)
        return {"period": period, "formula": self.formula.version, "periods": periods,
                "red": [row(s, r) for s, r in listed["red"]],
                "black": [row(s, r) for s, r in listed["black"]],
                "companies": [row(s) for s in sorted(now.values(), key=lambda s: s.company)
                              if user.role in ("supervisor", "admin") or s.company in mine]}
