"""The domain rules a JSON Schema cannot state: the resident identity number (GB 11643-1999), a
person's ID number against their sex and birth, and a household's room against its building.

What the phone must check alike is data, kept once in `schemas/rules.json` (weights, check
characters, patterns, messages): this module reads it, and `scripts/setup` generates it into the
PWA for `pwa/rules.js`. `tests/fixtures/rules_cases.json` holds both sides to the same verdicts
and the same messages.

A problem names the field (a JSON Pointer into the checked document), a stable code for programs,
and a message a grid worker can act on, in zh-CN and English. Messages never repeat an ID number:
reasons travel back to phones and into logs.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, Literal

from server.config import shipped
from server.domain.messages import bilingual

Sex = Literal["1", "2"]

RULES_FILE = shipped("schemas") / "rules.json"
# Read-only: every object of the file is a mapping proxy.
SHARED: Mapping[str, Any] = json.loads(RULES_FILE.read_text("utf-8"),
                                       object_hook=MappingProxyType)
_ID_RULES = SHARED["id_number"]

# ISO 7064 MOD 11-2, as GB 11643-1999 applies it to the first 17 digits.
WEIGHTS: tuple[int, ...] = tuple(_ID_RULES["weights"])
CHECK_CHARS: str = _ID_RULES["check_chars"]
EARLIEST_BIRTH = date.fromisoformat(_ID_RULES["earliest_birth"])

_SPACES = re.compile(_ID_RULES["spaces"])
_ID_FORM = re.compile(_ID_RULES["form"])
_DIGITS: str = _ID_RULES["digits"]
_ROOM = re.compile(SHARED["room"]["pattern"])
_FORMATS = {name: re.compile(pattern) for name, pattern in SHARED["formats"].items()
            if name != "description"}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(template: str, values: Mapping[str, Any]) -> str:
    """A message template of rules.json with its {name}s filled in (pwa/rules.js `fill`)."""
    return _PLACEHOLDER.sub(lambda m: str(values[m[1]]), template)


def fill_both(templates: Sequence[str], values: Mapping[str, Any]) -> tuple[str, str]:
    """(zh, en) of a [zh, en] template pair of rules.json; a value given as a (zh, en) pair is
    taken in each language (pwa/rules.js `fillBoth`)."""
    zh, en = (fill(template, {k: v[i] if isinstance(v, tuple) else v for k, v in values.items()})
              for i, template in enumerate(templates))
    return zh, en


def listed(items: Sequence[str], empty: Sequence[str] = ("", "")) -> tuple[str, str]:
    """(zh, en) of a list joined as each language writes one, or `empty` when there is none."""
    zh, en = (joiner.join(items) or nothing
              for joiner, nothing in zip(SHARED["lists"]["joiners"], empty, strict=True))
    return zh, en


@dataclass(frozen=True)
class Problem:
    """One broken rule: where, a stable code for programs, and what to do, for people."""

    field: str
    code: str
    zh: str
    en: str

    @property
    def message(self) -> str:
        return bilingual(self.zh, self.en)

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "zh": self.zh, "en": self.en,
                "message": self.message}


def normalise_id_number(s: str) -> str:
    """What a worker typed or pasted, as stored: full-width characters made ASCII (NFKC), spaces
    removed, and a lower-case check character x made X."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", s)).replace("x", "X")


def id_check_char(first17: str) -> str:
    """The check character the first 17 digits call for."""
    return CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def conforms(format_name: str, value: Any) -> bool:
    """Whether `value` has a JSON Schema format of rules.json ("date", "date-time"): the text has
    the form and its date exists (pwa/rules.js `FORMATS`). What is not text has every format."""
    if not isinstance(value, str):
        return True
    match = _FORMATS[format_name].fullmatch(value)
    try:
        return match is not None and bool(date(*map(int, match.groups()[:3])))
    except ValueError:
        return False


def _birth(n: str) -> date | None:
    try:
        return date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        return None


def id_birth_date(id_number: str) -> date | None:
    """The birth date an ID number encodes; None if it is not 17 digits and a check character, or
    the date does not exist. The check character itself is not checked."""
    n = normalise_id_number(id_number)
    return _birth(n) if _ID_FORM.fullmatch(n) else None


def id_sex(id_number: str) -> Sex | None:
    """The sex an ID number encodes (odd 17th digit "1" male, even "2" female); None if the number
    is not 17 digits and a check character."""
    n = normalise_id_number(id_number)
    if not _ID_FORM.fullmatch(n):
        return None
    return "1" if int(n[16]) % 2 else "2"


def _problem(field: str, code: str, name: str | None = None, **values: Any) -> Problem:
    """A problem whose message is rules.json's `name` (by default its code)."""
    return Problem(field, code, *fill_both(SHARED["messages"][name or code], values))


def id_number_problems(id_number: str, today: date | None = None) -> list[Problem]:
    """What is wrong with an ID number, after normalising it. Length and characters are reported
    alone (nothing else can be read from such a number); the check character and the birth date
    are independent, so both are reported."""
    today = today or date.today()
    n = normalise_id_number(id_number)
    if len(n) != 18:
        return [_problem("/id_number", "id_length", length=len(n))]
    for i, c in enumerate(n, 1):
        if c not in _DIGITS and not (i == 18 and c == "X"):
            return [_problem("/id_number", "id_characters", position=i, char=c)]
    problems = []
    expected = id_check_char(n[:17])
    if n[17] != expected:
        # A wrong check character usually means a wrong digit elsewhere: say so, or the worker
        # "fixes" the last character and stores a valid number of somebody else.
        problems.append(_problem("/id_number", "id_check_digit", expected=expected))
    born = _birth(n)
    shown = f"{n[6:10]}-{n[10:12]}-{n[12:14]}"
    if born is None:
        problems.append(_problem("/id_number", "id_birth_date_invalid", shown=shown))
    elif born < EARLIEST_BIRTH:
        problems.append(_problem("/id_number", "id_birth_date_early", shown=shown,
                                 earliest=EARLIEST_BIRTH.isoformat()))
    elif born > today:
        problems.append(_problem("/id_number", "id_birth_date_future", shown=shown))
    return problems


def _integer(value: Any) -> int | None:
    """An integer as JavaScript sees one (so 1990.0 counts, and true does not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def person_problems(person: Mapping[str, Any], today: date | None = None) -> list[Problem]:
    """What is wrong with a person's ID number, sex and birth. The ID number is compared with sex
    and birth only when it is valid: a number that fails its own check proves nothing. Fields that
    are absent or of the wrong type are the schema's business and are skipped here."""
    today = today or date.today()
    problems: list[Problem] = []
    id_number = person.get("id_number")
    sex = person.get("sex")
    year = _integer(person.get("birth_year"))
    month = _integer(person.get("birth_month"))
    if month is not None and not 1 <= month <= 12:
        month = None
    if isinstance(id_number, str):
        id_problems = id_number_problems(id_number, today)
        problems += id_problems
        born, encoded = id_birth_date(id_number), id_sex(id_number)
        if not id_problems and born is not None and encoded is not None:
            if sex in ("1", "2") and sex != encoded:
                problems.append(_problem("/sex", "id_sex_mismatch", sex=tuple(SHARED["sex"][sex]),
                                         encoded=tuple(SHARED["sex"][encoded])))
            if year is not None and year != born.year:
                problems.append(_problem("/birth_year", "id_birth_mismatch",
                                         "id_birth_year_mismatch", year=year, born=born.year))
            if month is not None and month != born.month:
                problems.append(_problem("/birth_month", "id_birth_mismatch",
                                         "id_birth_month_mismatch", month=month, born=born.month))
    if year is not None and year > today.year:
        problems.append(_problem("/birth_year", "birth_in_future", "birth_year_in_future",
                                 year=year))
    elif year == today.year and month is not None and month > today.month:
        problems.append(_problem("/birth_month", "birth_in_future", "birth_month_in_future",
                                 shown=f"{year}-{month:02d}"))
    return problems


def room_problems(address: Mapping[str, Any], building: Mapping[str, Any] | None) -> list[Problem]:
    """Whether a household's address names a room its building has. Rooms are numbered
    floor * 100 + index: floor 3 room 1 is "301". An address without a unit is fine in a building
    of one unit. Pointers are relative to the address."""
    number = address.get("building")
    b = "" if number is None else str(number)
    if building is None:
        return [_problem("/building", "building_missing", building=b)]
    units: list[Mapping[str, Any]] = list(building.get("units") or [])
    label = address.get("unit")
    labels = [str(u.get("label")) for u in units]
    if label is None and len(units) == 1:
        unit, label = units[0], labels[0]
    else:
        unit = next((u for u in units if u.get("label") == label), None)
    if unit is None:
        if label is None:
            return [_problem("/unit", "unit_missing", "unit_unnamed", building=b,
                             count=len(units), labels=listed(labels))]
        return [_problem("/unit", "unit_missing", building=b, unit=label,
                         labels=listed(labels, SHARED["lists"]["none"]))]
    room = address.get("room")
    if not isinstance(room, str):
        return []
    where = {"building": b, "unit": label, "room": room}
    floor, index = divmod(int(room), 100) if _ROOM.fullmatch(room) else (0, 0)
    if floor < 1 or index < 1:
        return [_problem("/room", "room_missing", "room_form", **where)]
    if floor > unit["floors"]:
        return [_problem("/room", "room_missing", "room_floor", floors=unit["floors"], **where)]
    if index > unit["rooms_per_floor"]:
        return [_problem("/room", "room_missing", "room_index",
                         rooms_per_floor=unit["rooms_per_floor"], **where)]
    return []
