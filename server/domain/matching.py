"""Match a resident's sign-up (a name, a phone number and an address as they typed it) to the
household registry of one community.

The address is reduced to a key (compound, building, unit, room) by `normalise_address`; the
registry is indexed once per community by `HouseholdIndex.build`; `match` weighs the evidence and
answers "matched", "ambiguous" (a person should look: the candidates are listed) or "not_found".
A wrong match hands a stranger someone else's household, its members and their records, so every
rule below leans towards precision: when in doubt the answer is "ambiguous", never a guess.

Decision rules (in the order `match` applies them):

1. The address comes first. The sign-up's address key selects the candidate households: the exact
   (building, unit, room), inside the named compound when the text names one (by name or alias,
   longest match) and across all the community's compounds when it does not. A registry address is
   the only thing a resident reliably knows and a stranger cannot guess the household from name or
   phone alone; scoping by address also keeps common names (王伟, 张敏) from colliding across the
   community.

2. A missing unit widens the candidate set, it does not lower the bar. `3幢301` selects room 301 of
   every unit of building 3. When the building has one unit that is a single household; when it has
   several, the name and phone evidence of rule 3 must pick exactly one of them, as it must pick
   between compounds when the compound is left out. A written unit that the registry does not have
   for that building (the registry records no unit) falls back to the building and room.

3. Name and phone confirm; the address alone never matches. Evidence per candidate: the name
   equals the head's or any present member's name (2 points), or is one typo away from one of them
   (edit distance 1, both names 2-4 characters: 1 point); the phone equals the household's or a
   present member's phone (2 points). The exact name alone (a changed phone) or the phone alone (a
   relative not yet registered, on the household's number) is enough. A household whose address
   fits but whose members' names and phones both differ from the sign-up belongs to someone else:
   the answer is "not_found", without the household as a candidate, since listing it would show a
   stranger who lives there.

4. A typo needs a second witness. A name one edit away only counts together with the phone (3
   points). Typo alone (1 point) is "ambiguous": 王伟 and 王玮 are different people as often as they
   are one person mistyped, and for two-character names one edit is merely a shared surname (王伟,
   王芳). A changed phone is fine when the name is exact (2 points): people change numbers far more
   often than registries are updated.

5. A match must be clear. The best candidate is "matched" only when it has at least 2 points and no
   other candidate has any evidence, or it leads the next one by at least 2 points (a whole
   independent piece of evidence). Otherwise the candidates with evidence are "ambiguous": two
   households at 3-2-301 in two compounds with the same surname, a typo that lands on another
   family's exact name, a shared landline.

6. Address unknown or without evidence: look elsewhere, but only to refer. When the address does
   not parse, names no registered room, or fits only households without evidence, households whose
   members have both the exact name and the phone are returned as "ambiguous" candidates (the
   resident may have moved within the community or mistyped the room) for a person to check;
   otherwise "not_found". Name and phone together are strong, but a household chosen against the
   written address could still be the wrong one.

Only active households (status "active" or unset) and present members (status "present" or unset)
are indexed: a moved-out or vacant household, or a deceased or moved-out member, must not be
claimable. A compound written in the address is never overruled (rule 1 filters by it).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AddressKey",
    "CompoundTable",
    "HouseholdIndex",
    "MatchResult",
    "match",
    "normalise_address",
    "normalise_name",
    "normalise_phone",
]

# ---------------------------------------------------------------------------------------------
# Text normalisation


@dataclass(frozen=True, slots=True)
class AddressKey:
    """An address reduced to what identifies a room: the compound code (None when the text names
    none), the building, the unit (None when not written or written `无`) and the room."""

    compound: str | None
    building: str
    unit: str | None
    room: str


# Traditional forms people type on some keyboards, and look-alike zeros.
_TRANSLATE = str.maketrans({
    "單": "单", "樓": "楼", "號": "号", "棟": "栋", "層": "层", "兩": "两", "門": "门",
    "○": "〇", "◯": "〇",
})
_CJK = "\u3007\u4e00-\u9fff"
_SPACE_NEAR_CJK = re.compile(rf"\s+(?=[{_CJK}#])|(?<=[{_CJK}#])\s+")
# 3 甲 301, 3甲301: a unit label between two numbers is a part of its own.
_LABEL_BETWEEN = re.compile(
    r"(?<=[0-9A-Z幢栋座楼#〇零一二两三四五六七八九十])\s*([甲乙丙丁戊无])\s*(?=[0-9〇零一二两三四五六七八九十])")
# 3一2一301: the character for one typed as a dash between two digits; and other dash look-alikes.
_DASH_BETWEEN_DIGITS = re.compile(r"(?<=[0-9A-Z])[一—–―‐‑~_/\\.。、·・]+(?=[0-9A-Z])")
_NOT_ALLOWED = re.compile(rf"[^0-9A-Z#{_CJK}]+")
_DASHES = re.compile(r"-{2,}")

_CN_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}
_CN_RUN = re.compile("[〇零一二两三四五六七八九十百]+")
# A road and its number in front of the compound ("三衢路88号"): not part of the room.
_ROAD = re.compile(r"^.*?(?:路|街|巷|弄|道)\d+号(?![楼幢栋座])")

_TOKEN = re.compile(
    r"(?<![A-Z0-9])(?P<val>\d+[A-Z]?|[A-Z]\d*|[甲乙丙丁戊]|无)(?![A-Z0-9])"
    r"(?P<mark>号楼|号幢|号栋|号座|幢|栋|座|楼|#|单元|单|门|室|房|号|层|期|区|-)?"
)
_BUILDING_MARKS = frozenset(("号楼", "号幢", "号栋", "号座", "幢", "栋", "座", "#"))
_UNIT_MARKS = frozenset(("单元", "单", "门"))
_ROOM_MARKS = frozenset(("室", "房"))
_NOISE_MARKS = frozenset(("层", "期", "区"))  # floors, phases (二期), zones (A区)
_LABELS = frozenset("甲乙丙丁戊无")
_NONE = "无"
_PART_SUFFIX = re.compile(r"(?:号楼|号幢|号栋|幢|栋|座|单元|室|号|#)$")


def _clean(text: str) -> str:
    """NFKC (full-width to ASCII), upper case, traditional and look-alike characters folded,
    spaces dropped next to Chinese and turned into separators between digits, every other
    punctuation mark a single `-`."""
    s = unicodedata.normalize("NFKC", text).upper().translate(_TRANSLATE)
    s = _LABEL_BETWEEN.sub(r"-\1-", s)
    s = _SPACE_NEAR_CJK.sub("", s)
    s = _DASH_BETWEEN_DIGITS.sub("-", s)
    s = _NOT_ALLOWED.sub("-", s)
    return _DASHES.sub("-", s).strip("-")


def _cn_number(m: re.Match[str]) -> str:
    run = m.group()
    if "十" not in run and "百" not in run:  # 三〇一: digit by digit
        return "".join(str(_CN_DIGITS[c]) for c in run)
    total = current = 0
    for c in run:  # 二十三, 十二, 一百零一
        if c == "百":
            total += (current or 1) * 100
            current = 0
        elif c == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = _CN_DIGITS[c]
    return str(total + current)


def chinese_numerals_to_digits(text: str) -> str:
    """`三` → `3`, `十二` → `12`, `二十三` → `23`, `三〇一` → `301`, `一百零一` → `101`."""
    return _CN_RUN.sub(_cn_number, text)


def _canon(value: str | None) -> str | None:
    if value is None or value == _NONE:
        return None
    return sys.intern(str(int(value)) if value.isdigit() else value)


def normalise_part(value: object) -> str | None:
    """A registry's building, unit or room as the key holds it: `"3幢"`, `"03"`, `"三"` → `"3"`;
    `"甲"` stays `"甲"`; empty or `无` → None."""
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return sys.intern(str(int(value)))
    s = chinese_numerals_to_digits(_clean(str(value)))
    s = _PART_SUFFIX.sub("", s).strip("-")
    return _canon(s) if s else None


_COMPOUND_SUFFIXES = ("小区", "花园", "家园", "新村", "公寓", "社区", "大厦", "苑", "园")


class CompoundTable:
    """The compounds of a community by every name they go by (name, aliases, the registry's
    compound_name, and the name without its 小区/花园 suffix when that stem is unambiguous),
    longest first so that 阳光花园 wins over 阳光."""

    __slots__ = ("_names",)

    def __init__(self, names: Mapping[str, str]) -> None:
        self._names = sorted(names.items(), key=lambda item: -len(item[0]))

    @classmethod
    def from_docs(cls, compounds: Iterable[Mapping[str, Any]],
                  extra: Iterable[tuple[str, str]] = ()) -> CompoundTable:
        names: dict[str, str] = {}
        clashes: set[str] = set()

        def add(name: str, code: str) -> None:
            for form in {_clean(name), _NOT_ALLOWED.sub("", _clean(name).replace("-", " "))}:
                if len(form) < 2 or form in clashes:
                    continue
                if names.setdefault(form, code) != code:
                    clashes.add(form)
                    del names[form]

        pairs = [(str(c["name"]), str(c["code"])) for c in compounds]
        pairs += [(alias, str(c["code"])) for c in compounds for alias in c.get("aliases") or ()]
        pairs += list(extra)
        for name, code in pairs:
            add(name, code)
        stems: dict[str, set[str]] = {}
        for name, code in pairs:
            s = _clean(name)
            for suffix in _COMPOUND_SUFFIXES:
                if s.endswith(suffix) and len(s) - len(suffix) >= 2:
                    stems.setdefault(s[: -len(suffix)], set()).add(code)
                    break
        for stem, codes in stems.items():
            if len(codes) == 1 and stem not in names and stem not in clashes:
                names[stem] = next(iter(codes))
        return cls(names)

    def find(self, cleaned: str) -> tuple[str, int, int] | None:
        for name, code in self._names:
            at = cleaned.find(name)
            if at >= 0:
                return code, at, at + len(name)
        return None

    def __len__(self) -> int:
        return len(self._names)


def _table(compounds: CompoundTable | Iterable[Mapping[str, Any]] | None) -> CompoundTable:
    if isinstance(compounds, CompoundTable):
        return compounds
    return CompoundTable.from_docs(list(compounds or ()))


def normalise_address(text: str,
                      compounds: CompoundTable | Iterable[Mapping[str, Any]] | None
                      ) -> AddressKey | None:
    """The key of an address as a resident writes it, or None when no building and room can be
    read from it. `compounds` are the community's compound documents (or a prepared
    `CompoundTable`, which `HouseholdIndex` keeps, to skip rebuilding it on every call)."""
    if not text:
        return None
    s = _clean(text)
    code = None
    hit = _table(compounds).find(s)
    if hit is not None:
        code, start, end = hit
        after = chinese_numerals_to_digits(s[end:])
        s = after if any(c.isdigit() for c in after) else chinese_numerals_to_digits(s[:start])
    else:
        s = chinese_numerals_to_digits(s)
    s = _ROAD.sub("", s)

    tokens: list[tuple[str, str | None]] = []
    for m in _TOKEN.finditer(s):
        val, mark = m.group("val"), m.group("mark")
        if mark is None and m.end() < len(s):
            continue  # glued to other words (3衢花园): not an address part
        if mark is None and val in _LABELS:
            continue  # 甲, 乙 and 无 only count with a marker or a dash
        tokens.append((val, mark))

    building = unit = room = None
    unit_said_none = False
    bare: list[str] = []
    last = len(tokens) - 1
    for n, (val, mark) in enumerate(tokens):
        if mark is None or mark == "-":
            bare.append(val)
        elif mark in _BUILDING_MARKS or (mark == "楼" and building is None):
            building = building or val
        elif mark in _UNIT_MARKS:
            if unit is None and not unit_said_none:
                unit, unit_said_none = (None, True) if val == _NONE else (val, False)
        elif mark in _ROOM_MARKS:
            room = room or val
        elif mark == "号":
            if building is None and n < last:
                building = val  # 3号2单元301
            else:
                room = room or val  # 3幢301号
        # 楼 after a building, 层, 期, 区: floors, phases and zones are noise
    if room is None and bare:
        room = bare.pop()
    if building is None and bare:
        building = bare.pop(0)
    if unit is None and not unit_said_none and bare:
        unit = bare.pop(0)
    b, r = _canon(building), _canon(room)
    if b is None or r is None:
        return None
    return AddressKey(code, b, _canon(unit), r)


_NAME_DROP = re.compile(r"[\s\-_'\"]+")
_NAME_DOTS = re.compile(r"[.•・‧∙⋅]")


def normalise_name(name: object) -> str:
    """NFKC, no spaces, every middle-dot variant as `·` (阿依古丽·买买提)."""
    if not name:
        return ""
    s = unicodedata.normalize("NFKC", str(name))
    return _NAME_DOTS.sub("·", _NAME_DROP.sub("", s))


def normalise_phone(phone: object) -> str:
    """Digits only, without a +86 / 0086 country prefix: `+86 138-0000-0000` → `13800000000`."""
    if not phone:
        return ""
    if isinstance(phone, str) and len(phone) == 11 and phone.isascii() and phone.isdigit():
        return phone
    digits = "".join(c for c in unicodedata.normalize("NFKC", str(phone)) if c.isdigit())
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11 \
                and digits[len(prefix)] == "1":
            return digits[len(prefix):]
    return digits


def one_edit_apart(a: str, b: str) -> bool:
    """Levenshtein distance exactly 1 (one character replaced, added or dropped)."""
    la, lb = len(a), len(b)
    if la == lb:
        diffs = 0
        for x, y in zip(a, b, strict=True):
            if x != y:
                diffs += 1
                if diffs > 1:
                    return False
        return diffs == 1
    if abs(la - lb) != 1:
        return False
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


# ---------------------------------------------------------------------------------------------
# The registry index

_ACTIVE_HOUSEHOLD = frozenset((None, "active"))
_PRESENT_PERSON = frozenset((None, "present"))


class HouseholdIndex:
    """One community's households, for matching. Households are numbered 0..n-1; the dictionaries
    map an address key, a phone or a name to the numbers, and per household only its id, its
    compound and unit codes and the tuples of its names and phones are kept."""

    __slots__ = ("_by_building_room", "_by_key", "_by_name", "_by_phone", "_units_in_building",
                 "compound_of", "compounds", "ids", "names", "phones", "unit_of")

    def __init__(self, compounds: CompoundTable) -> None:
        self.compounds = compounds
        self.ids: list[str] = []
        self.compound_of: list[str | None] = []
        self.unit_of: list[str | None] = []
        self.names: list[tuple[str, ...]] = []
        self.phones: list[tuple[str, ...]] = []
        self._by_key: dict[tuple[str, str | None, str], list[int]] = {}
        self._by_building_room: dict[tuple[str, str], list[int]] = {}
        self._by_phone: dict[str, list[int]] = {}
        self._by_name: dict[str, list[int]] = {}
        self._units_in_building: dict[tuple[str | None, str], set[str | None]] = {}

    @classmethod
    def build(cls, households: Iterable[Mapping[str, Any]], persons: Iterable[Mapping[str, Any]],
              compounds: Iterable[Mapping[str, Any]]) -> HouseholdIndex:
        households = [h for h in households if h.get("status") in _ACTIVE_HOUSEHOLD]
        extra = sorted({(str(h["address"]["compound_name"]), str(h["address"]["compound"]))
                        for h in households if h.get("address", {}).get("compound_name")})
        index = cls(CompoundTable.from_docs(list(compounds), extra))
        number: dict[str, int] = {}
        names: list[list[str]] = []
        phones: list[list[str]] = []
        for doc in households:
            address = doc.get("address") or {}
            building, room = normalise_part(address.get("building")), normalise_part(
                address.get("room"))
            if building is None or room is None:
                continue
            unit = normalise_part(address.get("unit"))
            compound = address.get("compound")
            compound = sys.intern(str(compound)) if compound else None
            i = len(index.ids)
            number[doc["_id"]] = i
            index.ids.append(doc["_id"])
            index.compound_of.append(compound)
            index.unit_of.append(unit)
            index._by_key.setdefault((building, unit, room), []).append(i)
            index._by_building_room.setdefault((building, room), []).append(i)
            index._units_in_building.setdefault((compound, building), set()).add(unit)
            names.append([n] if (n := normalise_name(doc.get("head_name"))) else [])
            phones.append([p] if (p := normalise_phone(doc.get("phone"))) else [])
        for person in persons:
            i = number.get(person.get("household", ""), -1)  # type: ignore[arg-type]
            if i < 0 or person.get("status") not in _PRESENT_PERSON:
                continue
            if (n := normalise_name(person.get("name"))) and n not in names[i]:
                names[i].append(n)
            if (p := normalise_phone(person.get("phone"))) and p not in phones[i]:
                phones[i].append(p)
        for i in range(len(index.ids)):
            index.names.append(tuple(names[i]))
            index.phones.append(tuple(phones[i]))
            for n in names[i]:
                index._by_name.setdefault(n, []).append(i)
            for p in phones[i]:
                index._by_phone.setdefault(p, []).append(i)
        return index

    def __len__(self) -> int:
        return len(self.ids)

    def address_candidates(self, key: AddressKey) -> list[int]:
        """The households the key can mean (rules 1 and 2)."""
        if key.unit is None:
            found = self._by_building_room.get((key.building, key.room), [])
        else:
            found = self._by_key.get((key.building, key.unit, key.room), [])
            if not found:  # a unit written where the registry records none
                found = self._by_key.get((key.building, None, key.room), [])
        if key.compound is not None:
            found = [i for i in found if self.compound_of[i] == key.compound]
        return found

    def units_in_building(self, compound: str | None, building: str) -> int:
        return len(self._units_in_building.get((compound, building), ()))

    def by_name_and_phone(self, name: str, phone: str) -> list[int]:
        if not name or not phone:
            return []
        with_phone = set(self._by_phone.get(phone, ()))
        return [i for i in self._by_name.get(name, ()) if i in with_phone]


# ---------------------------------------------------------------------------------------------
# Matching

Status = Literal["matched", "ambiguous", "not_found"]
NAME_EXACT, NAME_TYPO, PHONE = 2, 1, 2
CLEAR_LEAD = 2


@dataclass(frozen=True, slots=True)
class MatchResult:
    status: Status
    household: str | None
    candidates: list[str] = field(default_factory=list)
    reason: str = ""


def _score(index: HouseholdIndex, i: int, name: str, phone: str) -> tuple[int, str]:
    names, score, said = index.names[i], 0, []
    if name and name in names:
        score, said = NAME_EXACT, ["name"]
    elif 2 <= len(name) <= 4 and any(2 <= len(n) <= 4 and one_edit_apart(name, n) for n in names):
        score, said = NAME_TYPO, ["name within one typo"]
    if phone and phone in index.phones[i]:
        score += PHONE
        said.append("phone")
    return score, " and ".join(said)


def _elsewhere(index: HouseholdIndex, name: str, phone: str, why: str) -> MatchResult:
    found = index.by_name_and_phone(name, phone)
    if found:
        return MatchResult("ambiguous", None, [index.ids[i] for i in found],
                           f"{why}; name and phone match a household at another address, "
                           "check with the resident")
    return MatchResult("not_found", None, [], why)


def match(signup: Mapping[str, Any], index: HouseholdIndex) -> MatchResult:
    """Match a sign-up `{"name", "phone", "address"}` to one household of `index` (see the
    module's decision rules)."""
    name = normalise_name(signup.get("name"))
    phone = normalise_phone(signup.get("phone"))
    key = normalise_address(str(signup.get("address") or ""), index.compounds)
    if key is None:
        return _elsewhere(index, name, phone, "no building and room could be read from the address")
    candidates = index.address_candidates(key)
    if not candidates:
        return _elsewhere(index, name, phone, "no registered household at this address")
    scored = sorted(((*_score(index, i, name, phone), i) for i in candidates),
                    key=lambda t: -t[0])
    best, evidence, winner = scored[0]
    if best == 0:
        return _elsewhere(index, name, phone, "a household is registered at this address, but "
                          "neither the name nor the phone matches anyone in it")
    runner_up = scored[1][0] if len(scored) > 1 else 0
    if best >= NAME_EXACT and (runner_up == 0 or best - runner_up >= CLEAR_LEAD):
        where = "address" if key.unit is not None or len(candidates) == 1 else \
            "address without unit"
        return MatchResult("matched", index.ids[winner], [index.ids[winner]],
                           f"{where} and {evidence} match")
    close = [index.ids[i] for s, _, i in scored if s > 0 and best - s < CLEAR_LEAD]
    if best < NAME_EXACT:
        why = "the name is one typo away from a member's and nothing else confirms it"
    else:
        why = f"{len(close)} households at this address fit the name and phone about equally"
    return MatchResult("ambiguous", None, close, why)
