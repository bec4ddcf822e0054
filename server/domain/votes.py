"""Owners' joint decisions (业主共同决定事项) and their count: pure rules, exact arithmetic.

The law, as these functions read it:
- PRC Civil Code (民法典) art. 278, para. 1: the nine matters owners decide together (MATTERS).
- Art. 278, para. 2: owners holding at least two thirds (三分之二以上, "以上" includes the
  boundary, Civil Code art. 1259) of the exclusive-part area AND at least two thirds of all
  owners by headcount take part (`quorum_met`). Matters 6-8 need at least three quarters of
  the participating area AND of the participating owners (`approved_special`); the others
  more than half (过半数, the boundary excluded) of each (`approved_ordinary`).
- 《最高人民法院关于审理建筑物区分所有权纠纷案件适用法律若干问题的解释》(法释〔2009〕7号,
  amended by 法释〔2020〕17号), art. 8: the area of an exclusive part (专有部分面积) is the
  area in the property register (不动产登记簿); not yet registered, the surveyed area; not yet
  surveyed, the area in the sale contract (the register import says which, `area_source`).
  Art. 9: owners are counted by exclusive parts, one part one person (一个专有部分按一人计算),
  except that the developer's unsold parts and parts sold but not yet delivered (建设单位尚未
  出售和虽已出售但尚未交付的部分) count as one, and a buyer of more than one part (同一买受人
  拥有一个以上专有部分) counts as one (`holder`).

Linli's readings where the texts are silent (docs/votes.md says why):
- Co-owners (共有人) of one part are one buyer: they cast one ballot together and count once.
  A buyer is the exact set of owners on the register: A alone and A with B are two buyers. An
  owner is a person: known by their owner id (a keyed digest of their ID number) when the
  register gives it, else by phone and name (`owner_key`), never by a phone alone.
- A buyer of several parts counts once in headcount, but casts a ballot per part (the area is
  per part). Their headcount goes with the last ballot the server received among their parts.
- Order is the server's order of receipt, never a phone's clock: a unit's last ballot received
  before the close counts, earlier ones are replaced, later ones are late (kept, not counted).
- Elections (选举业主委员会, matter 3): 5-11 seats, odd (住房和城乡建设部《业主大会和业主
  委员会指导规则》2009, art. 31); a ballot names at most `seats` distinct candidates; a
  candidate approved by more than half of the participating area and owners may take a seat;
  seats go by headcount of votes; a tie across the last seats is reported, and those seats stay
  open for the committee to decide: never broken here, silently or otherwise.

Areas are integers of square centimetres; shares are `fractions.Fraction`; no float anywhere.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from server.domain.rules import Problem
from server.domain.text import shown_name, text_problem, unknown_fields

CM2_PER_M2 = 10_000
PLAIN_DECIMAL = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*$")  # as a register writes an area
MAX_AREA_CM2 = 100_000 * CM2_PER_M2  # 100,000 m²: no exclusive part is larger; a typo is
DEVELOPER = "developer"  # the holder of every unsold or undelivered part, counted once
CHOICES = ("yes", "no", "abstain")  # 同意 / 不同意 / 弃权 (abstaining still takes part)
MIN_SEATS, MAX_SEATS = 5, 11


@dataclasses.dataclass(frozen=True)
class Matter:
    """One of art. 278's nine matters and the approval rule it takes."""

    number: int
    code: str
    zh: str
    en: str
    special: bool  # matters 6-8: three quarters


MATTERS: dict[str, Matter] = {m.code: m for m in (
    Matter(1, "procedure_rules", "制定和修改业主大会议事规则",
           "Rules of procedure of the owners' assembly", False),
    Matter(2, "covenant", "制定和修改管理规约", "The management covenant", False),
    Matter(3, "committee", "选举业主委员会或者更换业主委员会成员",
           "Electing or replacing the owners' committee", False),
    Matter(4, "manager", "选聘和解聘物业服务企业或者其他管理人",
           "Hiring or dismissing the property company or other manager", False),
    Matter(5, "fund_use", "使用建筑物及其附属设施的维修资金", "Using the maintenance fund",
           False),
    Matter(6, "fund_raise", "筹集建筑物及其附属设施的维修资金", "Raising the maintenance fund",
           True),
    Matter(7, "rebuild", "改建、重建建筑物及其附属设施", "Rebuilding", True),
    Matter(8, "common_use", "改变共有部分的用途或者利用共有部分从事经营活动",
           "Changing the use of common parts or running a business in them", True),
    Matter(9, "other", "有关共有和共同管理权利的其他重大事项", "Other major matters", False),
)}


# --- the thresholds: one rule each --------------------------------------------------------

def share(part: int, whole: int) -> Fraction:
    """part/whole exactly; an empty whole is a share of nothing (no vote passes on it)."""
    return Fraction(part, whole) if whole > 0 else Fraction(0)


def quorum_met(area: Fraction, owners: Fraction) -> bool:
    """Civil Code art. 278 para. 2: 专有部分面积占比三分之二以上的业主且人数占比三分之二以上
    的业主参与表决 (at least 2/3 of the area AND at least 2/3 of the owners take part)."""
    return area >= Fraction(2, 3) and owners >= Fraction(2, 3)


def approved_special(area: Fraction, owners: Fraction) -> bool:
    """Civil Code art. 278 para. 3, matters 6-8: 参与表决专有部分面积四分之三以上的业主且参与
    表决人数四分之三以上的业主同意 (at least 3/4 of the participating area AND owners)."""
    return area >= Fraction(3, 4) and owners >= Fraction(3, 4)


def approved_ordinary(area: Fraction, owners: Fraction) -> bool:
    """Civil Code art. 278 para. 3, other matters: 参与表决专有部分面积过半数的业主且参与表决
    人数过半数的业主同意 (more than 1/2 of the participating area AND owners)."""
    return area > Fraction(1, 2) and owners > Fraction(1, 2)


def approval_rule(matter: Matter) -> Callable[[Fraction, Fraction], bool]:
    return approved_special if matter.special else approved_ordinary


def threshold_text(matter: Matter) -> str:
    return ">=3/4" if matter.special else ">1/2"


# --- areas and owners ----------------------------------------------------------------------

def area_cm2(value: Any) -> int:
    """Square metres as registered (a decimal string, a Decimal or an int) to whole square
    centimetres (司法解释 art. 8: the register's area). Floats are refused: 89.1 as a float is
    not 89.1, and a count must not depend on it. Raises ValueError."""
    if isinstance(value, (bool, float)):
        raise ValueError("area must be a decimal string, not a float")
    if isinstance(value, str) and not PLAIN_DECIMAL.match(value):  # Decimal() takes "1_000",
        raise ValueError(f"not a plain decimal: {value!r}")  # "１０" and "1e3"; no register
    try:
        exact = Decimal(str(value).strip()) * CM2_PER_M2
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not exact.is_finite() or exact != exact.to_integral_value():
        raise ValueError(f"more than four decimals of m²: {value!r}")
    cm2 = int(exact)
    if not 0 < cm2 <= MAX_AREA_CM2:
        raise ValueError(f"area out of range: {value!r}")
    return cm2


def shown_m2(cm2: int) -> str:
    """Whole cm² back to m², exactly: 895000 → "89.5"."""
    text = format(Decimal(cm2) / CM2_PER_M2, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclasses.dataclass(frozen=True)
class Unit:
    """An exclusive part (专有部分): its register area and who holds it."""

    id: str
    area_cm2: int
    owners: frozenset[str]  # who they are for headcount (`owner_key`)
    developer_held: bool = False  # unsold, or sold and not delivered (司法解释 art. 9)
    phones: frozenset[str] = frozenset()  # the owners' phones: how accounts find the unit


def holder(unit: Unit) -> str:
    """Who the part counts for in headcount (司法解释 art. 9): the developer once for all its
    unsold and undelivered parts; otherwise the buyer, the exact set of co-owners, once however
    many parts they hold."""
    if unit.developer_held or not unit.owners:
        return DEVELOPER
    return "owners:" + "\x1f".join(sorted(unit.owners))


@dataclasses.dataclass(frozen=True)
class Electorate:
    """The units of a compound as the register stood when the motion opened."""

    units: Mapping[str, Unit]

    @classmethod
    def of(cls, units: Iterable[Unit]) -> Electorate:
        return cls({u.id: u for u in units})

    @property
    def area_cm2(self) -> int:
        return sum(u.area_cm2 for u in self.units.values())

    @property
    def headcount(self) -> int:
        return len({holder(u) for u in self.units.values()})

    def may_vote(self, unit_id: str, owner: str) -> bool:
        """An owner on the register of that unit (tenants are not owners)."""
        unit = self.units.get(unit_id)
        return unit is not None and owner in unit.owners


def owned_units(electorate: Electorate, owner: str) -> list[str]:
    return sorted(u.id for u in electorate.units.values() if owner in u.owners)


# --- motions and elections -----------------------------------------------------------------

def seats_problem(seats: Any) -> str | None:
    """An owners' committee has 5 to 11 members, an odd number (指导规则 art. 31)."""
    if not isinstance(seats, int) or isinstance(seats, bool):
        return "seats must be a whole number"
    if not MIN_SEATS <= seats <= MAX_SEATS or seats % 2 == 0:
        return "seats must be odd, from 5 to 11"
    return None


def choice_problem(choice: Any, candidates: Sequence[str] | None, seats: int | None) -> str | None:
    """What a ballot may say: yes/no/abstain on a motion; on an election a list of at most
    `seats` distinct candidates (an empty list takes part and approves no one)."""
    if candidates is None:
        return None if isinstance(choice, str) and choice in CHOICES else (
            "choice must be yes, no or abstain")
    if not isinstance(choice, list) or not all(isinstance(c, str) for c in choice):
        return "choice must be a list of candidates"
    if len(set(choice)) != len(choice):
        return "a candidate is named twice"
    if seats is not None and len(choice) > seats:
        return f"at most {seats} candidates"
    if any(c not in candidates for c in choice):
        return "not a candidate of this election"
    return None


@dataclasses.dataclass(frozen=True)
class RawBallot:
    """A ballot as the server stored it; `late` when received after the close."""

    id: str
    unit: str
    choice: Any
    by: str
    late: bool = False
    paper: bool = False
    signed_by: str | None = None  # a paper ballot's signing owner


def receipt(ballot: RawBallot) -> str:
    """What an owner keeps to check their ballot was counted as cast: a digest of the ballot's
    id, unit and choice (a choice changed in the store changes it)."""
    body = json.dumps([ballot.id, ballot.unit, ballot.choice], ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:20]


@dataclasses.dataclass(frozen=True)
class Tally:
    """Which ballot counts for each unit, in receipt order, and what became of the rest."""

    counted: dict[str, RawBallot]  # unit → its last on-time ballot
    status: dict[str, str]  # ballot id → counted | replaced | outranked | late | not_on_register
    clashes: list[tuple[str, str]]  # (replaced, counted) ballots of different co-owners


def tally(electorate: Electorate, ballots: Iterable[RawBallot]) -> Tally:
    """`ballots` in the server's order of receipt. The last on-time ballot of a unit counts;
    a replaced ballot of another co-owner with another choice is a clash both are told of. A
    paper ballot (recorded by a grid worker) never replaces an owner's own online one: received
    after it, it is `outranked` and does not count (an owner's online ballot does replace it)."""
    counted: dict[str, RawBallot] = {}
    status: dict[str, str] = {}
    clashes: list[tuple[str, str]] = []
    replaced_by: dict[str, list[RawBallot]] = {}
    for ballot in ballots:
        if ballot.unit not in electorate.units:
            status[ballot.id] = "not_on_register"
            continue
        if ballot.late:
            status[ballot.id] = "late"
            continue
        earlier = counted.get(ballot.unit)
        if ballot.paper and earlier is not None and not earlier.paper:
            status[ballot.id] = "outranked"
            continue
        if earlier is not None:
            status[earlier.id] = "replaced"
            replaced_by.setdefault(ballot.unit, []).append(earlier)
        counted[ballot.unit] = ballot
        status[ballot.id] = "counted"
    for unit, earlier_ones in replaced_by.items():
        last = counted[unit]
        clashes += [(b.id, last.id) for b in earlier_ones
                    if b.by != last.by and b.choice != last.choice]
    return Tally(counted, status, clashes)


def _heads(electorate: Electorate, counted: Mapping[str, RawBallot],
           order: Mapping[str, int]) -> dict[str, RawBallot]:
    """Holder → the ballot their headcount goes with: the last received among their parts."""
    by_holder: dict[str, RawBallot] = {}
    for unit, ballot in counted.items():
        key = holder(electorate.units[unit])
        if key not in by_holder or order[ballot.id] > order[by_holder[key].id]:
            by_holder[key] = ballot
    return by_holder


def _fraction(value: Fraction) -> dict[str, Any]:
    """A share as the result states it: exact, and as a percentage to two places (rounded
    down, so 66.67 % is never shown for a share just below 2/3)."""
    hundredths = value.numerator * 10_000 // value.denominator
    return {"exact": f"{value.numerator}/{value.denominator}",
            "percent": f"{hundredths // 100}.{hundredths % 100:02d}"}


def _part(area: int, of_area: int, heads: int, of_heads: int) -> dict[str, Any]:
    return {"area_cm2": area, "area_m2": shown_m2(area), "area_share": _fraction(
        share(area, of_area)), "owners": heads, "owners_share": _fraction(share(heads, of_heads))}


@dataclasses.dataclass(frozen=True)
class Motion:
    """What the count needs of a motion: its matter and, for an election, seats and
    candidates (ids in the order shown)."""

    id: str
    matter: Matter
    seats: int | None = None
    candidates: tuple[str, ...] | None = None


def count(motion: Motion, electorate: Electorate, ballots: Sequence[RawBallot]) -> dict[str, Any]:
    """The result of a closed vote from its raw ballots in receipt order (a plain dict, the
    same for the same input: `canonical` makes it bytes)."""
    result_tally = tally(electorate, ballots)
    order = {b.id: i for i, b in enumerate(ballots)}
    counted = result_tally.counted
    heads = _heads(electorate, counted, order)
    total_area, total_heads = electorate.area_cm2, electorate.headcount
    part_area = sum(electorate.units[u].area_cm2 for u in counted)
    part_heads = len(heads)
    area_share, heads_share = share(part_area, total_area), share(part_heads, total_heads)
    quorum = quorum_met(area_share, heads_share)
    rule = approval_rule(motion.matter)

    def support(approves: Callable[[Any], bool]) -> dict[str, Any]:
        area = sum(electorate.units[u].area_cm2 for u, b in counted.items() if approves(b.choice))
        owners = sum(1 for b in heads.values() if approves(b.choice))
        met = rule(share(area, part_area), share(owners, part_heads))
        return {**_part(area, part_area, owners, part_heads), "met": met}

    result: dict[str, Any] = {
        "motion": motion.id, "matter": motion.matter.number, "matter_code": motion.matter.code,
        "electorate": {"units": len(electorate.units), "area_cm2": total_area,
                       "area_m2": shown_m2(total_area), "owners": total_heads},
        "participation": {**_part(part_area, total_area, part_heads, total_heads),
                          "units": len(counted), "threshold": ">=2/3", "met": quorum},
        "approval_threshold": threshold_text(motion.matter),
        "ballots": {s: sum(1 for v in result_tally.status.values() if v == s)
                    for s in ("counted", "replaced", "not_on_register")},
        "receipts": sorted([receipt(b), result_tally.status[b.id]] for b in ballots),
        "clashes": len(result_tally.clashes),
    }
    if motion.candidates is None:
        approval = support(lambda choice: choice == "yes")
        result["approval"] = approval
        result["passed"] = quorum and approval["met"]
        return result
    candidates = {c: support(lambda choice, c=c: isinstance(choice, list) and c in choice)
                  for c in motion.candidates}
    result["candidates"] = [{"id": c, **candidates[c]} for c in motion.candidates]
    result.update(seat(motion.seats or 0, candidates, quorum))
    result["passed"] = quorum and bool(result["elected"])
    return result


def seat(seats: int, candidates: Mapping[str, Mapping[str, Any]], quorum: bool) -> dict[str, Any]:
    """Seats to the approved candidates with the most owners' votes; a group tied across the
    last seats is reported and their seats left open (never broken here)."""
    if not quorum:
        return {"elected": [], "tied": [], "open_seats": seats}
    approved = sorted((c for c, s in candidates.items() if s["met"]),
                      key=lambda c: (-candidates[c]["owners"], c))
    elected: list[str] = []
    tied: list[str] = []
    position = 0
    while position < len(approved) and len(elected) < seats:
        votes = candidates[approved[position]]["owners"]
        group = [c for c in approved if candidates[c]["owners"] == votes]
        if len(elected) + len(group) <= seats:
            elected += group
        else:
            tied = group
            break
        position += len(group)
    return {"elected": elected, "tied": tied, "open_seats": seats - len(elected)}


def canonical(result: Mapping[str, Any]) -> bytes:
    """The published bytes: sorted keys, no spaces, UTF-8; a recount must give the same."""
    return json.dumps(result, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode()


def participation(electorate: Electorate, voted_units: Iterable[str]) -> dict[str, Any]:
    """While a vote is open only this is shown: how much of the compound has voted."""
    units = {u for u in voted_units if u in electorate.units}
    area = sum(electorate.units[u].area_cm2 for u in units)
    heads = len({holder(electorate.units[u]) for u in units})
    return {**_part(area, electorate.area_cm2, heads, electorate.headcount),
            "units": len(units)}


# --- what a request may say (the routes' rules; docs/votes.md) ----------------------------

MOTION_FIELDS = frozenset({"compound", "matter", "title", "body", "opens_at", "closes_at",
                           "secret", "seats", "candidates"})
BALLOT_FIELDS = frozenset({"request", "unit", "choice", "picks", "secret_key"})
PAPER_FIELDS = frozenset({"request", "unit", "choice", "picks", "photo", "signed_by"})
SERVER_FIELDS = frozenset({"created_by", "received_at", "channel", "by", "late", "status",
                           "_id", "_rev", "type", "schema_version", "motion", "opened_at",
                           "ballots", "sealed", "_attachments"})
MAX_TITLE_CHARS, MAX_BODY_CHARS, MAX_CANDIDATES = 120, 5_000, 60
MAX_NAME_CHARS = 50  # an owner's name as the register spells it
MAX_DAYS_OPEN = 90  # a written vote longer than a quarter is a typo of its closing date
REQUEST = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # the phone's own id for the ballot it queued
SECRET_KEY = re.compile(r"^[a-f0-9]{64}$")
COMPOUND = re.compile(r"^[a-z0-9][a-z0-9_]{0,40}$")  # as the compound schema says
LABELS: dict[str, tuple[str, str]] = {
    "compound": ("小区", "Compound"), "matter": ("表决事项类别", "Matter"),
    "title": ("标题", "Title"), "body": ("说明", "Description"),
    "opens_at": ("开始时间", "Opens at"), "closes_at": ("截止时间", "Closes at"),
    "secret": ("不记名投票", "Secret ballot"), "seats": ("席位", "Seats"),
    "candidates": ("候选人", "Candidates"), "request": ("请求编号", "Request id"),
    "unit": ("房屋", "Unit"), "choice": ("表决意见", "Choice"),
    "picks": ("选择的候选人", "Candidates chosen"), "secret_key": ("不记名凭据", "Secret key"),
    "photo": ("纸质票照片", "Photo of the paper ballot"),
    "signed_by": ("签名业主", "Signed by"),
}


def _problem(field: str, code: str, zh: str, en: str) -> Problem:
    label_zh, label_en = LABELS.get(field, (field, field))
    return Problem(f"/{field}", code, f"“{label_zh}”{zh}", f"{label_en} {en}")


def forged(body: Mapping[str, Any]) -> list[Problem]:
    """The server's fields, sent: refused by name, never taken (who, when, how received)."""
    named = sorted(shown_name(k) for k in body if k in SERVER_FIELDS)
    return [Problem("/", "server_field", f"这些字段由服务器填写：{', '.join(named)}",
                    f"the server fills these fields: {', '.join(named)}")] if named else []


def when(value: Any) -> datetime.datetime | None:
    """A date-time with its zone (ISO 8601), or None."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def motion_problems(draft: Mapping[str, Any], now: datetime.datetime) -> list[Problem]:
    """A motion as a supervisor sends it: its matter, plain-text title and description, times
    (closing in the future, after opening, within MAX_DAYS_OPEN), and an election's seats and
    candidates (only for matter 3)."""
    problems = forged(draft) or unknown_fields(draft, MOTION_FIELDS)
    if problems:
        return problems
    if not isinstance(draft.get("compound"), str) or not COMPOUND.match(draft["compound"]):
        problems.append(_problem("compound", "format", "应为小区编码", "must be a compound code"))
    if not isinstance(draft.get("matter"), str) or draft["matter"] not in MATTERS:
        problems.append(_problem("matter", "enum", "应为民法典第二百七十八条的九类事项之一",
                                 "must be one of the nine matters of art. 278"))
    for field, limit, required in (("title", MAX_TITLE_CHARS, True),
                                   ("body", MAX_BODY_CHARS, False)):
        if field in draft or required:
            found = text_problem(draft.get(field), f"/{field}", LABELS[field],
                                 max_chars=limit, paragraphs=field == "body",
                                 min_chars=1 if required else 0)
            if found is not None:
                problems.append(found)
    opens = when(draft["opens_at"]) if "opens_at" in draft else now
    closes = when(draft.get("closes_at"))
    if opens is None:
        problems.append(_problem("opens_at", "format", "应为带时区的日期时间",
                                 "must be a date-time with its zone"))
    if closes is None:
        problems.append(_problem("closes_at", "format", "应为带时区的日期时间",
                                 "must be a date-time with its zone"))
    elif opens is not None and not (max(opens, now) < closes <= now + datetime.timedelta(
            days=MAX_DAYS_OPEN)):
        problems.append(_problem("closes_at", "range",
                                 f"应晚于开始时间和现在，且在 {MAX_DAYS_OPEN} 天之内",
                                 f"must be after the opening and now, within {MAX_DAYS_OPEN} "
                                 "days"))
    if "secret" in draft and not isinstance(draft["secret"], bool):
        problems.append(_problem("secret", "boolean", "应为是或否", "must be yes or no"))
    if "seats" in draft or "candidates" in draft:
        problems += _election_problems(draft)
    return problems


def _election_problems(draft: Mapping[str, Any]) -> list[Problem]:
    if draft.get("matter") != "committee":
        return [_problem("seats", "election", "只用于选举业主委员会",
                         "only for electing the owners' committee")]
    problems = []
    seats = draft.get("seats")
    if seats_problem(seats) is not None:
        problems.append(_problem("seats", "seats", "应为 5 到 11 之间的奇数",
                                 "must be odd, from 5 to 11"))
    names = draft.get("candidates")
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_CANDIDATES:
        return [*problems, _problem("candidates", "count", f"应为 1 到 {MAX_CANDIDATES} 个姓名",
                                    f"must be 1 to {MAX_CANDIDATES} names")]
    for name in names:
        found = text_problem(name, "/candidates", LABELS["candidates"], max_chars=50)
        if found is not None:
            return [*problems, found]
    if len({unicodedata.normalize("NFKC", n).strip() for n in names}) != len(names):
        problems.append(_problem("candidates", "unique", "有重名", "name someone twice"))
    return problems


def motion_doc(draft: Mapping[str, Any], author: str, key: str,
               now: datetime.datetime) -> dict[str, Any]:
    """The stored motion; candidates get ids c1, c2... in the order given."""
    stamp = now.isoformat(timespec="seconds")
    doc: dict[str, Any] = {
        "_id": f"motion:{key}", "type": "motion", "schema_version": 1, "created_by": author,
        "compound": draft["compound"], "matter": draft["matter"],
        "title": unicodedata.normalize("NFKC", draft["title"]).strip(),
        "opens_at": draft.get("opens_at", stamp), "closes_at": draft["closes_at"],
        "secret": bool(draft.get("secret", False)), "ballots": f"linli-vote-{key}",
        "opened_at": stamp}
    if draft.get("body"):
        doc["body"] = draft["body"]
    if "seats" in draft:
        doc["seats"] = draft["seats"]
        doc["candidates"] = [{"id": f"c{i}", "name": unicodedata.normalize("NFKC", n).strip()}
                             for i, n in enumerate(draft["candidates"], start=1)]
    return doc


def motion_of(doc: Mapping[str, Any]) -> Motion:
    candidates = doc.get("candidates")
    return Motion(str(doc["_id"]), MATTERS[doc["matter"]], doc.get("seats"),
                  tuple(c["id"] for c in candidates) if candidates else None)


def ballot_problems(body: Mapping[str, Any], motion: Mapping[str, Any], *,
                    paper: bool) -> list[Problem]:
    """A ballot as a phone (or a worker's, for paper) sends it: its request id, `choice` on a
    motion or `picks` in an election, a secret key in a secret vote sent from a phone."""
    problems = forged(body) or unknown_fields(body, PAPER_FIELDS if paper else BALLOT_FIELDS)
    if problems:
        return problems
    if not isinstance(body.get("request"), str) or not REQUEST.match(body["request"]):
        problems.append(_problem("request", "format", "应为 8 到 64 个字母、数字、-或_",
                                 "must be 8 to 64 letters, digits, - or _"))
    if "unit" in body and not isinstance(body["unit"], str):
        problems.append(_problem("unit", "type", "应为文字", "must be text"))
    election = motion.get("candidates")
    ids = [c["id"] for c in election] if election else None
    field = "picks" if ids is not None else "choice"
    other = "choice" if field == "picks" else "picks"
    if other in body:
        zh, en = LABELS[field]
        problems.append(_problem(other, "unexpected", f"不适用于本次表决，请填“{zh}”",
                                 f"is not for this vote: send {en}"))
    elif choice_problem(body.get(field), ids, motion.get("seats")) is not None:
        problems.append(_problem(
            field, "choice", "应为 同意/不同意/弃权" if ids is None else
            f"应为不超过 {motion.get('seats')} 名不重复的候选人",
            "must be yes, no or abstain" if ids is None else
            f"must name at most {motion.get('seats')} distinct candidates"))
    if paper and not (isinstance(body.get("signed_by"), str)
                      and 0 < len(body["signed_by"].strip()) <= MAX_NAME_CHARS):
        problems.append(_problem("signed_by", "required", "必填：纸质票上签名的登记业主姓名",
                                 "is required: the registered owner who signed the paper"))
    if motion.get("secret") and not paper and not (
            isinstance(body.get("secret_key"), str) and SECRET_KEY.match(body["secret_key"])):
        problems.append(_problem("secret_key", "format", "不记名投票须附 64 位十六进制凭据",
                                 "a secret vote takes a key of 64 hex digits"))
    elif not motion.get("secret") and "secret_key" in body:
        problems.append(_problem("secret_key", "unexpected", "仅用于不记名投票",
                                 "is for secret votes only"))
    return problems


def sealed(secret_key: str, side: str) -> str:
    """Who (`side` "who") and how ("how") of a secret ballot, each a digest of the voter's key:
    neither can be computed from the other without the key, which the server never stores."""
    return hashlib.sha256(f"{side}:{secret_key}".encode()).hexdigest()


def head_share(electorate: Electorate, unit_id: str) -> Fraction:
    """In a secret vote, each part of a buyer carries an equal share of their one head: the
    server cannot tell which of their ballots came last without joining who and how."""
    key = holder(electorate.units[unit_id])
    return Fraction(1, sum(1 for u in electorate.units.values() if holder(u) == key))


def count_secret(motion: Motion, electorate: Electorate, on_time: Sequence[str],
                 hows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The result of a secret vote: participation from who voted (units, on time), approval
    from how (each choice with its area and head share); receipts are the hows' own (a digest
    of the voter's key apart from the how's id)."""
    part = participation(electorate, on_time)
    quorum = quorum_met(share(part["area_cm2"], electorate.area_cm2),
                        share(part["owners"], electorate.headcount))
    rule = approval_rule(motion.matter)

    def support(approves: Callable[[Mapping[str, Any]], bool]) -> dict[str, Any]:
        chosen = [h for h in hows if approves(h)]
        area = sum(int(h["area_cm2"]) for h in chosen)
        heads = sum((Fraction(h["head"]) for h in chosen), Fraction(0))
        owners_share = heads / part["owners"] if part["owners"] else Fraction(0)
        met = rule(share(area, part["area_cm2"]), owners_share)
        return {"area_cm2": area, "area_m2": shown_m2(area),
                "area_share": _fraction(share(area, part["area_cm2"])),
                "owners": f"{heads.numerator}/{heads.denominator}",
                "owners_share": _fraction(owners_share), "met": met}

    result: dict[str, Any] = {
        "motion": motion.id, "matter": motion.matter.number, "matter_code": motion.matter.code,
        "secret": True,
        "electorate": {"units": len(electorate.units), "area_cm2": electorate.area_cm2,
                       "area_m2": shown_m2(electorate.area_cm2),
                       "owners": electorate.headcount},
        "participation": {**part, "threshold": ">=2/3", "met": quorum},
        "approval_threshold": threshold_text(motion.matter),
        "ballots": {"counted": len(hows), "voted": len(on_time)},
        "receipts": sorted([str(h["receipt"]), "counted"] for h in hows),
    }
    if motion.candidates is None:
        result["approval"] = support(lambda h: h.get("choice") == "yes")
        result["passed"] = quorum and result["approval"]["met"]
        return result
    candidates = {c: support(lambda h, c=c: c in (h.get("picks") or ()))
                  for c in motion.candidates}
    ranked = {c: {**s, "owners": Fraction(s["owners"])} for c, s in candidates.items()}
    result["candidates"] = [{"id": c, **candidates[c]} for c in motion.candidates]
    result.update(seat(motion.seats or 0, ranked, quorum))
    result["passed"] = quorum and bool(result["elected"])
    return result


# --- a motion's database, read as rows of its changes feed (docs/votes.md) -----------------

def seq_of(seq: Any) -> int | None:
    """The number an update sequence starts with (PouchDB's is a number, CouchDB 3's 'N-...')."""
    if isinstance(seq, int) and not isinstance(seq, bool):
        return seq
    head = str(seq).split("-", 1)[0]
    return int(head) if head.isdigit() else None


def owner_id(pepper: bytes, id_number: str) -> str:
    """An owner's id on the register: a keyed digest of their ID number (身份证号), so the same
    person is one owner across units and two people are two, while the stored register holds
    no ID number; the key (the installation's secret) keeps a list of ID numbers from finding
    theirs by trying them all. `id_number` is normalised already (rules.normalise_id_number)."""
    return hmac.new(pepper, f"owner-id\x1f{id_number}".encode(), hashlib.sha256).hexdigest()[:32]


def owner_key(unit_id: str, place: int, owner: Mapping[str, Any]) -> str:
    """Who a registered owner is for headcount (司法解释 art. 9 counts persons): their owner id
    when the register gave their ID number; else their phone and name (two owners sharing a
    phone are two people, one owner's units under one phone and name are one); else this
    unit and place: nothing on the register joins them to another unit, so they count here."""
    if owner.get("owner_id"):
        return f"id:{owner['owner_id']}"
    if owner.get("phone"):
        name = unicodedata.normalize("NFKC", str(owner.get("name", ""))).strip()
        return f"tel:{owner['phone']}:{name}"
    return f"{unit_id}#{place}"


def electorate_doc(units: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The register of a compound frozen for one vote: each unit's area, whether the developer
    holds it, its owners' keys (`owner_key`) and their phones (how accounts find it)."""
    rows = []
    for unit in sorted(units, key=lambda u: str(u["_id"])):
        owners = unit["owners"]
        rows.append([unit["_id"], unit["area_cm2"], bool(unit["developer_held"]),
                     [owner_key(str(unit["_id"]), i, o) for i, o in enumerate(owners)],
                     sorted({str(o["phone"]) for o in owners if o.get("phone")})])
    return {"_id": "electorate", "units": rows}


def electorate_of(doc: Mapping[str, Any]) -> Electorate:
    """An electorate as stored; one frozen before owners had keys of their own keyed them by
    phone (or unit and place), and its phones are those keys."""
    return Electorate.of(Unit(row[0], row[1], frozenset(row[3]), row[2],
                              frozenset(row[4] if len(row) > 4 else row[3]))
                         for row in doc["units"])


def raw_ballots(rows: list[Mapping[str, Any]]) -> tuple[list[RawBallot], int | None]:
    """The ballots of a motion's feed in receipt order, late ones marked (after `close`)."""
    closed_at: int | None = None
    found: list[tuple[int, dict[str, Any]]] = []
    for row in rows:
        doc, seq = row.get("doc") or {}, seq_of(row.get("seq"))
        if row.get("id") == "close":
            closed_at = seq
        elif str(row.get("id", "")).startswith(("ballot:", "voted:")) and seq is not None:
            found.append((seq, doc))
    found.sort(key=lambda pair: pair[0])
    return [RawBallot(str(d["_id"]), str(d["unit"]), d.get("picks", d.get("choice")),
                      str(d.get("created_by")), late=closed_at is not None and seq > closed_at,
                      paper=d.get("channel") == "paper", signed_by=d.get("signed_by"))
            for seq, d in found], closed_at


def box_hows(rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A secret vote's hows from a feed of its box (or of its sealed copy): the ballot_choice
    documents, not the pending entries waiting for a batch nor their deletions."""
    return [dict(r["doc"]) for r in rows if str(r.get("id", "")).startswith("ballot_choice:")
            and r.get("doc") and not r.get("deleted")]


def count_from(motion_doc: Mapping[str, Any], rows: list[Mapping[str, Any]],
               hows: list[Mapping[str, Any]] | None) -> bytes:
    """The canonical result of a motion from its feed (and a secret vote's box)."""
    electorate = next(electorate_of(r["doc"]) for r in rows if r.get("id") == "electorate")
    ballots = [b for b in raw_ballots(rows)[0] if not b.late]  # fixed at the close: a late
    motion = motion_of(motion_doc)  # ballot, kept and marked, changes no published byte
    if motion_doc.get("secret"):
        result = count_secret(motion, electorate, [b.unit for b in ballots], hows or [])
    else:
        result = count(motion, electorate, ballots)
    return canonical(result)
