"""The PWA's validator (pwa/validate.js and the Ajv validators scripts/setup generates from
schemas/), run in a real headless Chromium on a page of the real app (under its Content Security
Policy, which forbids eval), against the server's own verdict (`SchemaRegistry.problems(doc) or
domain_problems(doc)`): every fixture document of every type, the shared ID-number and person
cases as person records, every kind of error of every schema, and hand-written edge cases must get
the same verdict and the same messages, in the same order."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from playwright.async_api import Browser, Page

from server.domain.validation import (
    SCHEMA_DIR,
    SCHEMA_FILE,
    SCHEMA_MESSAGES,
    SchemaRegistry,
    describe,
    domain_problems,
)

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
GENERATED = HERE.parent / "pwa" / "generated" / "validators.js"
DOCUMENTS = json.loads((FIXTURES / "documents.json").read_text("utf-8"))["types"]
RULES_CASES = json.loads((FIXTURES / "rules_cases.json").read_text("utf-8"))["cases"]
REGISTRY = SchemaRegistry()

RUN = """async ([docs, today]) => {
  const { documentProblems } = await import("/app/validate.js");
  return docs.map((doc) => {
    try {
      return documentProblems(doc, today);
    } catch (e) {
      return { thrown: String(e) };
    }
  });
}"""


def valid(doc_type: str, **changes: Any) -> dict[str, Any]:
    """The fixture's valid document of a type with some fields changed (None: removed)."""
    doc = copy.deepcopy(DOCUMENTS[doc_type]["valid"][0])
    for name, value in changes.items():
        if value is None:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


def fixture_cases() -> dict[str, dict[str, Any]]:
    cases = {}
    for doc_type, group in DOCUMENTS.items():
        for i, doc in enumerate(group["valid"]):
            cases[f"{doc_type}: valid {i}"] = doc
        for case in group["invalid"]:
            cases[f"{doc_type}: {case['rule']}"] = case["doc"]
    return cases


def rules_cases() -> dict[str, dict[str, Any]]:
    """Every ID-number and person case of tests/fixtures/rules_cases.json as a person record:
    the fixture person without its ID number, with the case's fields."""
    cases = {}
    for case in RULES_CASES:
        if case["fn"] == "id_number":
            cases[case["name"]] = valid("person", id_number=case["input"])
        elif case["fn"] == "person":
            cases[case["name"]] = {**valid("person", id_number=None), **case["input"]}
    return cases


LONG = "很长的名字" * 12
EDGE_CASES: dict[str, dict[str, Any]] = {
    "1.0 is an integer": valid("person", birth_month=1.0, id_number=None),
    "an integral float out of range": valid("person", birth_year=1e21),
    "a tiny float": valid("person", birth_year=0.00001),
    "a fraction is not an integer": valid("person", birth_year=1980.5),
    "true is not a whole number": valid("person", birth_year=True),
    "true is not a number": valid("screening", temperature=True),
    "a whole number is a number": valid("screening", temperature=36),
    "text is not a number": valid("person", birth_year="1951"),
    "a number is not text": valid("person", relationship=0),
    "an object is not text": valid("person", name={"a": [1, 2.5, None, True], "b": "x"}),
    "true is not an enum's 1": valid("person", sex=True),
    "50 emoji fit a 50-character name": valid("person", name="😀" * 50),
    "51 emoji do not": valid("person", name="😀" * 51),
    "an empty name": valid("person", name=""),
    "a long value is cut in the message": valid("person", phone=LONG),
    "quotes, backslashes and control characters in a value": valid(
        "person", phone='a"b\\c\n\x01\x7f'),
    "a trailing newline after a pattern": valid("person", phone="16693775446\n"),
    "a lower-case x fails the ID number's pattern": valid(
        "person", id_number="11010519491231002x"),
    "2023-02-29 is not a date": valid("household_visit", visited_on="2023-02-29"),
    "2024-02-29 is a date": valid("household_visit", visited_on="2024-02-29"),
    "month 13 is not a date": valid("household_visit", visited_on="2026-13-01"),
    "a one-digit month is not a date": valid("household_visit", visited_on="2026-1-01"),
    "a date with a trailing newline": valid("household_visit", visited_on="2026-01-01\n"),
    "a date-time with an offset": valid("household_visit",
                                        device_time="2026-11-20T10:00:00.123+08:00"),
    "lower-case t and z": valid("household_visit", device_time="2026-11-20t10:00:00z"),
    "a date-time without an offset": valid("household_visit", device_time="2026-11-20T10:00:00"),
    "30 February in a date-time": valid("household_visit", device_time="2026-02-30T10:00:00Z"),
    "a date-time with a trailing newline": valid("household_visit",
                                                 device_time="2026-11-20T10:00:00Z\n"),
    "a date is not a number": valid("household_visit", visited_on=20261120),
    # What ajv-formats would take and the server refuses (so the phone uses rules.json's formats).
    "year 0": valid("household_visit", visited_on="0000-01-01"),
    "a space for the T": valid("household_visit", device_time="2026-11-20 10:00:00Z"),
    "an offset without its colon": valid("household_visit",
                                         device_time="2026-11-20T10:00:00+0800"),
    "a leap second": valid("household_visit", device_time="2016-12-31T23:59:60Z"),
    "an extra field": valid("person", surprise=1),
    "two extra fields, sorted": valid("person", zz=1, aa=2, **{"_rev": "1-a"}),
    "missing required fields, in the schema's order": valid("person", status=None, name=None,
                                                            sex=None),
    "a wrong const": valid("person", schema_version=True),
    "an unknown schema_version": valid("person", schema_version=9),
    "schema_version as text": valid("person", schema_version="1"),
    "no schema_version": valid("person", schema_version=None),
    "an unknown type": valid("person", type="alien"),
    "no type": valid("person", type=None),
    "a type that is not text": valid("person", type=["person"]),
    "below the minimum": valid("person", birth_year=1899),
    "above the maximum": valid("person", birth_year=2101),
    "zero area is not more than 0": valid("household", tenure="owned", area_m2=0),
    "an owned home without its area": valid("household", tenure="owned"),
    "a rejection without a comment": valid("verdict", decision="rejected", comment=None),
    "duplicate special groups": valid("household", special_groups=["hardship", "hardship"]),
    "an unknown special group": valid("household", special_groups=["hardship", "rich"]),
    "duplicate aliases with quotes and Chinese": valid(
        "compound", aliases=["坊门街 'A'", "b\n\t\\", "坊门街 'A'", "\u200b", "😀"]),
    "eleven aliases": valid("compound", aliases=[f"别名{i}" for i in range(11)]),
    "an empty alias": valid("compound", aliases=[""]),
    "no units": valid("building", units=[]),
    "41 units": valid("building", units=[{"label": str(i), "floors": 1, "rooms_per_floor": 1}
                                         for i in range(41)]),
    "errors in units 10 and 2 come in index order": valid(
        "building", units=[{"label": str(i), "floors": 0 if i in (2, 10) else 1,
                            "rooms_per_floor": 1} for i in range(12)]),
    "errors at several depths": valid("household", surprise=1, head_name=5,
                                      address={"compound": "X", "building": 1, "extra": True}),
    "a valid person breaking the ID rules": valid("person", id_number="330602195106047698",
                                                  sex="2", birth_year=1952),
}


@pytest.fixture(scope="module")
async def page(browser: Browser, live_server: str) -> AsyncIterator[Page]:
    """A page of the app, so the validator runs from the app's origin under its policy."""
    page = await browser.new_page()
    response = await page.goto(f"{live_server}/app/")
    assert response is not None and response.ok, response and response.status
    yield page
    await page.close()


def server_problems(doc: dict[str, Any]) -> list[str]:
    return REGISTRY.problems(doc) or domain_problems(doc)


async def differences(page: Page, cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The cases where the page and the server disagree: {name: (server, page)}."""
    got = await page.evaluate(RUN, [list(cases.values()), date.today().isoformat()])
    assert len(got) == len(cases)
    wrong = {}
    for (name, doc), problems in zip(cases.items(), got, strict=True):
        expected = server_problems(doc)
        if isinstance(problems, dict):  # the validator threw
            wrong[name] = (expected, problems)
            continue
        # A schema problem's message is "zh / en"; a person rule's, "field: zh / en".
        shapes = [p["message"] in (f"{p['zh']} / {p['en']}", f"{p['field']}: {p['zh']} / {p['en']}")
                  for p in problems]
        if [p["message"] for p in problems] != expected or not all(shapes):
            wrong[name] = (expected, problems)
    return wrong


@pytest.mark.slow  # a real Chromium
async def test_the_page_refuses_to_evaluate_strings(page: Page) -> None:
    """The app's policy forbids turning text into code, which is why the validators are compiled
    from the schemas by scripts/setup, not in the browser. (Code that Playwright itself evaluates
    is exempt, so the page is made to try: a timer given a string.)"""
    outcome = await page.evaluate("""async () => {
      const violation = new Promise((resolve) => document.addEventListener(
        "securitypolicyviolation", (e) => resolve(e.blockedURI), { once: true }));
      setTimeout("window.linliEvaluated = true", 0);
      const blocked = await violation;
      await new Promise((resolve) => setTimeout(resolve, 50));
      return [blocked, window.linliEvaluated === true];
    }""")
    assert outcome == ["eval", False]


@pytest.mark.slow  # a real Chromium
async def test_fixture_documents_get_the_servers_verdict(page: Page) -> None:
    cases = fixture_cases()
    assert len(cases) == sum(len(g["valid"]) + len(g["invalid"]) for g in DOCUMENTS.values())
    assert await differences(page, cases) == {}


@pytest.mark.slow  # a real Chromium
async def test_id_number_and_person_cases_get_the_servers_verdict(page: Page) -> None:
    cases = rules_cases()
    assert len(cases) >= 30
    # Both kinds of refusal are exercised: the schema's pattern and the domain rules.
    assert any(REGISTRY.problems(d) for d in cases.values())
    assert any(not REGISTRY.problems(d) and domain_problems(d) for d in cases.values())
    assert await differences(page, cases) == {}


@pytest.mark.slow  # a real Chromium
async def test_edge_cases_get_the_servers_verdict(page: Page) -> None:
    assert await differences(page, EDGE_CASES) == {}


@pytest.mark.slow  # a real Chromium
async def test_edge_case_verdicts(page: Page) -> None:
    """What the edge cases are for, stated outright (the server agreeing is the test above)."""
    names = ["1.0 is an integer", "50 emoji fit a 50-character name", "2024-02-29 is a date",
             "a date-time with an offset", "true is not a number", "51 emoji do not",
             "2023-02-29 is not a date", "an extra field",
             "missing required fields, in the schema's order", "a wrong const",
             "an unknown schema_version", "duplicate aliases with quotes and Chinese",
             "a trailing newline after a pattern", "a date-time with a trailing newline",
             "year 0", "a space for the T", "an offset without its colon", "a leap second"]
    got = dict(zip(names, await page.evaluate(
        RUN, [[EDGE_CASES[n] for n in names], date.today().isoformat()]), strict=True))
    assert got["1.0 is an integer"] == []
    assert got["50 emoji fit a 50-character name"] == []
    assert got["2024-02-29 is a date"] == []
    assert got["a date-time with an offset"] == []
    assert [p["field"] for p in got["true is not a number"]] == ["/temperature"]
    assert "must be a number, got true" in got["true is not a number"][0]["en"]
    assert "at most 50 characters" in got["51 emoji do not"][0]["en"]
    assert "not a valid date" in got["2023-02-29 is not a date"][0]["en"]
    assert got["an extra field"][0]["en"] == "The record: field(s) not allowed: surprise"
    assert [p["field"] for p in got["missing required fields, in the schema's order"]] == [
        "/name", "/sex", "/status"]
    assert [p["field"] for p in got["a wrong const"]] == ["/schema_version"]
    assert got["an unknown schema_version"][0]["en"].startswith(
        "schema_version: person has no version 9")
    assert "has non-unique elements" in got["duplicate aliases with quotes and Chinese"][0]["en"]
    # A final "$" is the end of the text, not "before a final newline" as in Python's re.
    assert [p["field"] for p in got["a trailing newline after a pattern"]] == ["/phone"]
    assert [p["field"] for p in got["a date-time with a trailing newline"]] == ["/device_time"]
    assert [p["field"] for p in got["year 0"]] == ["/visited_on"]
    for name in ("a space for the T", "an offset without its colon", "a leap second"):
        assert [p["field"] for p in got[name]] == ["/device_time"], name


def node_schema_problems(schema: dict[str, Any], docs: list[Any], tmp_path: Path) -> list[Any]:
    """pwa/validate.js `schemaProblems` of each document, by `schema` compiled in node with the
    options of the phone's validators (tests/node/schema_check.mjs)."""
    path = tmp_path / "case.json"
    path.write_text(json.dumps({"schema": schema, "docs": docs}, ensure_ascii=False), "utf-8")
    done = subprocess.run(["node", str(HERE / "node" / "schema_check.mjs"), str(path)],
                          capture_output=True, text=True, encoding="utf-8", timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_schema_problems_resolves_local_references(tmp_path: Path) -> None:
    """schemaProblems takes any validator compiled as the phone's are; a "#/..." reference in
    its schema is resolved against it, and the message is the server's."""
    schema = {"type": "object", "$defs": {"small": {"title": "小", "x-title-en": "Small",
                                                    "type": "integer", "maximum": 3}},
              "properties": {"n": {"$ref": "#/$defs/small"}}}
    [got] = node_schema_problems(schema, [{"n": 4}], tmp_path)
    validator = jsonschema.Draft202012Validator(schema)
    assert [p["message"] for p in got] == [describe(e, schema)
                                          for e in validator.iter_errors({"n": 4})]
    assert got == [{"field": "/n", "zh": "“小” 不能大于 3，收到 4",
                    "en": "Small must be at most 3, got 4",
                    "message": "“小” 不能大于 3，收到 4 / Small must be at most 3, got 4"}]


def test_generated_validators_are_current() -> None:
    """pwa/generated/ is made by scripts/setup from schemas/ (it is not committed): it says what
    it was made from, and that is what schemas/ holds now."""
    hasher = hashlib.sha256()
    for path in sorted(SCHEMA_DIR.iterdir(), key=lambda p: p.name):
        if SCHEMA_FILE.match(path.name) or path.name == "rules.json":
            hasher.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    assert GENERATED.is_file(), "run scripts/setup"
    found = re.search(r'SOURCES_DIGEST = "([0-9a-f]+)"', GENERATED.read_text("utf-8"))
    assert found is not None and found[1] == hasher.hexdigest()[:16], "run scripts/setup"


# A value of another type for each JSON type, for a field that must be of that type.
OTHER_TYPE = {"string": 12345, "integer": "12", "number": "1.5", "boolean": "yes",
              "array": "a, b", "object": "x", "null": 0}
# Keywords that only apply others (their errors are their subschemas').
APPLICATORS = {"properties", "items", "if", "then", "else", "$ref", "$defs"}
ANNOTATIONS = {"title", "description", "$schema", "$id", "default"}


def breakages(schema: dict[str, Any], value: Any) -> Iterator[tuple[str, Any]]:
    """(what, value) for each way of breaking one field whose subschema is `schema` and whose
    valid value is `value`: one value per validating keyword it uses, and inside objects and
    arrays, each member broken in turn."""
    types = schema.get("type")
    first = (types if isinstance(types, list) else [types])[0] if types else None
    if first:
        yield "type", OTHER_TYPE[first] if value != OTHER_TYPE[first] else None
    if "enum" in schema or "const" in schema:
        yield "enum", "不在列表中"
    if "const" in schema:  # true is no number in JSON; to Python it is 1 (see EDGE_CASES)
        yield "const", True
    if "pattern" in schema:
        yield "pattern", "!! 不合格式 !!"
    if "maxLength" in schema:
        yield "maxLength", "长" * (schema["maxLength"] + 1)
    if schema.get("minLength", 0) > 0:
        yield "minLength", ""
    for bound, step in (("minimum", -1), ("exclusiveMinimum", 0), ("maximum", 1),
                        ("exclusiveMaximum", 0)):
        if bound in schema:
            yield bound, schema[bound] + step
    if "format" in schema:
        yield "format", {"date": "2023-02-29", "date-time": "2026-11-20 10:00:00"}.get(
            schema["format"], "?")
    if isinstance(value, list):
        if schema.get("minItems", 0) > 0:
            yield "minItems", []
        if "maxItems" in schema and value:
            yield "maxItems", value * (schema["maxItems"] // len(value) + 1)
        if schema.get("uniqueItems") and value:
            yield "uniqueItems", [value[0], *value]
        if value and isinstance(schema.get("items"), dict):
            for what, broken in breakages(schema["items"], value[0]):
                yield f"[0] {what}", [broken, *value[1:]]
    if isinstance(value, dict) and "properties" in schema:
        for name in schema.get("required", []):
            yield f"without {name}", {k: v for k, v in value.items() if k != name}
        if schema.get("additionalProperties") is False:
            yield "additionalProperties", {**value, "zz_extra": 1, "aa_extra": [True]}
        for name, sub in schema["properties"].items():
            if name in value and isinstance(sub, dict):
                for what, broken in breakages(sub, value[name]):
                    yield f"{name}: {what}", {**value, name: broken}


def breakage_cases() -> dict[str, dict[str, Any]]:
    """Every valid fixture document of every type and version, broken every way its schema can
    be broken, one way at a time."""
    cases: dict[str, dict[str, Any]] = {}
    for doc_type, group in DOCUMENTS.items():
        for doc in group["valid"]:
            version = doc["schema_version"]
            schema = REGISTRY.validators[(doc_type, version)].schema
            for what, broken in breakages(schema, doc):
                if isinstance(broken, dict):  # a record is an object, however broken
                    cases[f"{doc_type} v{version} {what}"] = broken
    return cases


def validating_keywords() -> set[str]:
    """Every keyword the schemas use that can refuse a value."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.update(k for k in node if not k.startswith("x-"))
            for key, value in node.items():
                if key in ("properties", "$defs"):
                    for sub in value.values():
                        walk(sub)
                elif not key.startswith("x-"):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for schema in REGISTRY.schemas.values():
        walk(schema)
    return found - APPLICATORS - ANNOTATIONS


def test_every_validating_keyword_has_its_message() -> None:
    """A keyword a schema starts to use must get its words in rules.json first, on both sides."""
    assert validating_keywords() <= set(SCHEMA_MESSAGES) | set(SCHEMA_MESSAGES["same_as"])


@pytest.mark.slow  # a real Chromium
async def test_every_kind_of_error_of_every_schema_gets_the_servers_verdict(page: Page) -> None:
    cases = breakage_cases()
    kinds = {error.validator for doc in cases.values()
             if (doc.get("type"), doc.get("schema_version")) in REGISTRY.validators
             for error in REGISTRY.validators[(doc["type"], doc["schema_version"])]
             .iter_errors(doc)}
    # Every keyword that can refuse a value is broken at least once, and every type of record.
    assert validating_keywords() <= kinds
    assert {doc.get("type") for doc in cases.values()} >= set(REGISTRY.types)
    assert len(cases) >= 500
    assert await differences(page, cases) == {}
