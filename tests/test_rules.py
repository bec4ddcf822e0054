"""The domain rules (server/domain/rules.py) against the shared fixtures, and the PWA's
(pwa/rules.js, run in node) against the same fixtures, so both give the same verdicts and
messages. Plus 2,000 random valid ID numbers that both must accept, and the rule that what the
two share is written once, in schemas/rules.json."""

from __future__ import annotations

import json
import random
import re
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from server.domain.rules import (
    SHARED,
    Problem,
    conforms,
    id_birth_date,
    id_check_char,
    id_number_problems,
    id_sex,
    normalise_id_number,
    person_problems,
    room_problems,
)

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "rules_cases.json"
NODE_CHECK = HERE / "node" / "rules_check.mjs"
ROOT = HERE.parent
CASES: list[dict[str, Any]] = json.loads(FIXTURES.read_text("utf-8"))["cases"]
CODES = {"id_length", "id_characters", "id_check_digit", "id_birth_date_invalid",
         "id_birth_date_early", "id_birth_date_future", "id_sex_mismatch", "id_birth_mismatch",
         "birth_in_future", "building_missing", "unit_missing", "room_missing"}


def run_case(case: dict[str, Any]) -> list[Problem]:
    today = date.fromisoformat(case["today"])
    if case["fn"] == "id_number":
        return id_number_problems(case["input"], today)
    if case["fn"] == "person":
        return person_problems(case["input"], today)
    return room_problems(case["input"]["address"], case["input"]["building"])


def shown(problems: list[Problem]) -> list[dict[str, str]]:
    return [{"field": p.field, "code": p.code, "message": p.message} for p in problems]


def node(cases: list[dict[str, Any]], tmp_path: Path, *args: str) -> list[Any]:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": cases}, ensure_ascii=False), "utf-8")
    done = subprocess.run(["node", str(NODE_CHECK), str(path), *args], capture_output=True,
                          text=True, encoding="utf-8", timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_fixture_covers_every_rule() -> None:
    assert len(CASES) >= 40
    assert len({c["name"] for c in CASES}) == len(CASES)
    assert {p["code"] for c in CASES for p in c["expect"]} == CODES
    assert {c["fn"] for c in CASES} == {"id_number", "person", "room"}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_gives_the_fixture(case: dict[str, Any]) -> None:
    assert shown(run_case(case)) == case["expect"]


def test_pwa_gives_the_fixture(tmp_path: Path) -> None:
    results = node(CASES, tmp_path)
    assert len(results) == len(CASES)
    wrong = {c["name"]: got for c, got in zip(CASES, results, strict=True) if got != c["expect"]}
    assert wrong == {}


def test_problem_shape() -> None:
    [p] = id_number_problems("370101190102039974")
    assert p.message == f"{p.zh} / {p.en}"
    assert p.as_dict() == {"field": "/id_number", "code": "id_check_digit", "zh": p.zh,
                           "en": p.en, "message": p.message}


def test_helpers() -> None:
    assert normalise_id_number(" １１０１０５ 19491231002ｘ") == "11010519491231002X"
    assert id_birth_date("11010519491231002x") == date(1949, 12, 31)
    assert id_birth_date("110105199902300010") is None
    assert id_birth_date("1101051949123100") is None
    assert (id_sex("11010519491231002X"), id_sex("370101190102039973")) == ("2", "1")
    assert id_sex("1101051949123100") is None
    assert id_check_char("11010519491231002") == "X"
    assert id_number_problems("11010519491231002X") == []  # today defaults to date.today()


def random_valid_ids(count: int) -> list[tuple[str, date, str]]:
    rng = random.Random(11643)
    first, span = date(1930, 1, 1), (date(2020, 12, 31) - date(1930, 1, 1)).days
    ids = []
    for _ in range(count):
        born = first + timedelta(days=rng.randint(0, span))
        sequence = f"{rng.randint(0, 999):03d}"
        body = f"{rng.randint(0, 999_999):06d}{born:%Y%m%d}{sequence}"
        ids.append((body + id_check_char(body), born, "1" if int(sequence[2]) % 2 else "2"))
    return ids


def test_random_valid_ids_agree(tmp_path: Path) -> None:
    ids = random_valid_ids(2000)
    today = date(2026, 11, 26)
    for number, born, sex in ids:
        assert id_number_problems(number, today) == [], number
        assert (id_birth_date(number), id_sex(number)) == (born, sex)
    cases = [{"fn": "id_number", "input": n, "today": today.isoformat()} for n, _, _ in ids]
    assert node(cases, tmp_path) == [[]] * len(ids)
    helpers = node(cases, tmp_path, "--helpers")
    assert helpers == [{"birth_date": born.isoformat(), "sex": sex} for _, born, sex in ids]


def test_shared_rules_are_written_once() -> None:
    """The weights, check characters and every message both sides give are data in
    schemas/rules.json: none is written again in the code of either side."""
    sources = {path: (ROOT / path).read_text("utf-8") for path in (
        "server/domain/rules.py", "server/domain/validation.py", "pwa/rules.js",
        "pwa/validate.js")}
    chinese = re.compile("[\u3000-\u9fff\uff00-\uffef“”]")
    for path in ("server/domain/rules.py", "pwa/rules.js", "pwa/validate.js"):
        assert chinese.search(sources[path]) is None, path
    templates = [t for group in ("messages", "schema_messages") for pair in SHARED[group].values()
                 if isinstance(pair, tuple | list) for t in pair]
    # The longest run of words between placeholders of each English template.
    phrases = {max(re.split(r"\{\w+\}", t), key=len).strip() for t in templates
               if t.isascii()}
    phrases = {p for p in phrases if len(p) >= 22}  # long enough not to be said of another thing
    assert len(phrases) >= 12
    assert {(path, p) for path, text in sources.items() for p in phrases if p in text} == set()
    for text in sources.values():
        assert SHARED["id_number"]["check_chars"] not in text
        assert "7, 9, 10, 5" not in text


FORMAT_VALUES = [
    "2026-11-20T10:00:00Z", "2026-11-20t10:00:00z", "2026-11-20T10:00:00.5+08:00",
    "2024-02-29T00:00:00-23:59", "2026-11-20T10:00:00", "2026-11-20 10:00:00Z",
    "2026-11-20T10:00:00+0800", "2016-12-31T23:59:60Z", "2026-02-30T10:00:00Z",
    "0000-01-01T00:00:00Z", "2026-11-20T24:00:00Z", "2024-02-29", "2023-02-29", "0000-01-01",
    "2026-1-01", "2026-13-01", "２０２６-01-01", "2026-01-01T00:00:00Z",
]


def test_formats_read_as_jsonschema_reads_them(tmp_path: Path) -> None:
    """rules.json's date formats, which server and phone both check, say what jsonschema's
    checker (rfc3339-validator for date-time) says, but that a trailing newline is refused; and
    the phone's (pwa/rules.js FORMATS, run in node) say the same."""
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    values = [*FORMAT_VALUES, "2026-11-20T10:00:00Z\n", "2026-11-20\n"]
    cases = [{"input": {"format": name, "value": v}} for name in ("date", "date-time")
             for v in values]
    python = [conforms(c["input"]["format"], c["input"]["value"]) for c in cases]
    assert node(cases, tmp_path, "--formats") == python
    assert True in python and False in python
    for name in ("date", "date-time"):
        assert {v: conforms(name, v) for v in FORMAT_VALUES} == {
            v: checker.conforms(v, name) for v in FORMAT_VALUES}
    assert checker.conforms("2026-11-20T10:00:00Z\n", "date-time")
    assert not conforms("date-time", "2026-11-20T10:00:00Z\n")
    assert conforms("date", 20261120)  # a format says nothing of what is not text
