"""The domain rules a JSON Schema cannot state: the resident identity number (GB 11643-1999), a
person's ID number against their sex and birth, and a household's room against its building.

`pwa/rules.js` is a line-by-line port for the phone, so a record the PWA accepts offline is not
refused at sync. `tests/fixtures/rules_cases.json` holds both to the same verdicts and the same
messages; change the two files together.

A problem names the field (a JSON Pointer into the checked document), a stable code for programs,
and a message a grid worker can act on, in zh-CN and English. Messages never repeat an ID number:
reasons travel back to phones and into logs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from server.domain.messages import bilingual

Sex = Literal["1", "2"]

# ISO 7064 MOD 11-2, as GB 11643-1999 applies it to the first 17 digits.
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
EARLIEST_BIRTH = date(1900, 1, 1)

# An explicit set, not \s: Python's and JavaScript's ideas of whitespace differ, and after NFKC
# every Unicode space the phone keyboards produce (U+3000, U+00A0, ...) is a plain space.
_SPACES = re.compile(r"[ \t\n\r\f\v]")
_ID_FORM = re.compile(r"[0-9]{17}[0-9X]")
_DIGITS = "0123456789"
# floor * 100 + index, with no leading zero: "301", "1202".
_ROOM = re.compile(r"[1-9][0-9]{2,}")


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


def _id(code: str, zh: str, en: str) -> Problem:
    return Problem("/id_number", code, f"身份证号{zh}", f"ID number: {en}")


def id_number_problems(id_number: str, today: date | None = None) -> list[Problem]:
    """What is wrong with an ID number, after normalising it. Length and characters are reported
    alone (nothing else can be read from such a number); the check character and the birth date
    are independent, so both are reported."""
    today = today or date.today()
    n = normalise_id_number(id_number)
    if len(n) != 18:
        return [_id("id_length", f"应为 18 位，现为 {len(n)} 位",
                    f"must be 18 characters, not {len(n)}")]
    for i, c in enumerate(n, 1):
        if c not in _DIGITS and not (i == 18 and c == "X"):
            return [_id("id_characters",
                        f"第 {i} 位“{c}”无效：前 17 位应为数字，第 18 位为数字或 X",
                        f'character {i} "{c}" is not allowed; the first 17 must be digits '
                        "and the 18th a digit or X")]
    problems = []
    expected = id_check_char(n[:17])
    if n[17] != expected:
        # A wrong check character usually means a wrong digit elsewhere: say so, or the worker
        # "fixes" the last character and stores a valid number of somebody else.
        problems.append(_id("id_check_digit",
                            f"校验位错误，应为 {expected}：请对照证件逐位核对，不要只改最后一位",
                            f"wrong check character, expected {expected}; check every digit "
                            "against the card, not just the last"))
    born = _birth(n)
    shown = f"{n[6:10]}-{n[10:12]}-{n[12:14]}"
    if born is None:
        problems.append(_id("id_birth_date_invalid", f"中的出生日期 {shown} 不存在",
                            f"birth date {shown} does not exist"))
    elif born < EARLIEST_BIRTH:
        problems.append(_id("id_birth_date_early", f"中的出生日期 {shown} 早于 1900-01-01",
                            f"birth date {shown} is before 1900-01-01"))
    elif born > today:
        problems.append(_id("id_birth_date_future", f"中的出生日期 {shown} 晚于今天",
                            f"birth date {shown} is in the future"))
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


_SEX_ZH = {"1": "男", "2": "女"}
_SEX_EN = {"1": "male", "2": "female"}


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
                problems.append(Problem(
                    "/sex", "id_sex_mismatch",
                    f"性别填写为{_SEX_ZH[sex]}，身份证号显示为{_SEX_ZH[encoded]}",
                    f"Sex is {_SEX_EN[sex]} but the ID number says {_SEX_EN[encoded]}"))
            if year is not None and year != born.year:
                problems.append(Problem(
                    "/birth_year", "id_birth_mismatch",
                    f"出生年份 {year} 与身份证号中的 {born.year} 不符",
                    f"Birth year {year} does not match the ID number ({born.year})"))
            if month is not None and month != born.month:
                problems.append(Problem(
                    "/birth_month", "id_birth_mismatch",
                    f"出生月份 {month} 与身份证号中的 {born.month} 不符",
                    f"Birth month {month} does not match the ID number ({born.month})"))
    if year is not None and year > today.year:
        problems.append(Problem("/birth_year", "birth_in_future", f"出生年份 {year} 晚于今年",
                                f"Birth year {year} is in the future"))
    elif year == today.year and month is not None and month > today.month:
        shown = f"{year}-{month:02d}"
        problems.append(Problem("/birth_month", "birth_in_future", f"出生年月 {shown} 晚于本月",
                                f"Birth year and month {shown} are in the future"))
    return problems


def room_problems(address: Mapping[str, Any], building: Mapping[str, Any] | None) -> list[Problem]:
    """Whether a household's address names a room its building has. Rooms are numbered
    floor * 100 + index: floor 3 room 1 is "301". An address without a unit is fine in a building
    of one unit. Pointers are relative to the address."""
    number = address.get("building")
    b = "" if number is None else str(number)
    if building is None:
        return [Problem("/building", "building_missing", f"找不到{b}幢", f"Building {b} not found")]
    units: list[Mapping[str, Any]] = list(building.get("units") or [])
    label = address.get("unit")
    labels = [str(u.get("label")) for u in units]
    if label is None and len(units) == 1:
        unit, label = units[0], labels[0]
    else:
        unit = next((u for u in units if u.get("label") == label), None)
    if unit is None:
        if label is None:
            return [Problem("/unit", "unit_missing",
                            f"{b}幢有 {len(units)} 个单元（{'、'.join(labels)}），请填写单元",
                            f"Building {b} has {len(units)} units ({', '.join(labels)}); "
                            "say which")]
        return [Problem("/unit", "unit_missing",
                        f"{b}幢没有{label}单元，现有：{'、'.join(labels) or '无'}",
                        f'Building {b} has no unit "{label}"; it has: '
                        f"{', '.join(labels) or 'none'}")]
    room = address.get("room")
    if not isinstance(room, str):
        return []
    where_zh, where_en = f"{b}幢{label}单元", f"Building {b}, unit {label}"
    floor, index = divmod(int(room), 100) if _ROOM.fullmatch(room) else (0, 0)
    if floor < 1 or index < 1:
        return [Problem("/room", "room_missing",
                        f"{where_zh}没有{room}室：房号应为楼层×100+本层序号，如 301",
                        f"{where_en} has no room {room}: rooms are numbered floor × 100 + "
                        "number on the floor, e.g. 301")]
    if floor > unit["floors"]:
        return [Problem("/room", "room_missing",
                        f"{where_zh}只有 {unit['floors']} 层，没有{room}室",
                        f"{where_en} has only {unit['floors']} floors, so no room {room}")]
    if index > unit["rooms_per_floor"]:
        return [Problem("/room", "room_missing",
                        f"{where_zh}每层只有 {unit['rooms_per_floor']} 户，没有{room}室",
                        f"{where_en} has only {unit['rooms_per_floor']} rooms per floor, "
                        f"so no room {room}")]
    return []
