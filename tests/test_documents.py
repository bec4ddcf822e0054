"""Valid and invalid fixture documents for every type (tests/fixtures/documents.json): each
invalid one names the rule it breaks, and the server's message names the field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from server.domain.validation import SchemaRegistry

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "documents.json").read_text(
    encoding="utf-8"))
REGISTRY = SchemaRegistry()
CASES = [(t, case) for t, group in FIXTURES["types"].items() for case in group["invalid"]]
POINTER = re.compile(r"(^|[\s(“])/[a-z_]+")  # "/outcome", "(/units/0)": what a worker can't read


def test_every_type_has_fixtures() -> None:
    assert set(FIXTURES["types"]) == REGISTRY.types


@pytest.mark.parametrize("doc_type", sorted(FIXTURES["types"]))
def test_valid_documents_pass(doc_type: str) -> None:
    for doc in FIXTURES["types"][doc_type]["valid"]:
        assert REGISTRY.problems(doc) == []


@pytest.mark.parametrize(("doc_type", "case"), CASES,
                         ids=[f"{t}: {c['rule']}" for t, c in CASES])
def test_invalid_documents_are_refused_with_the_field(doc_type: str, case: dict[str, Any]) -> None:
    problems = REGISTRY.problems(case["doc"])
    assert problems, case["rule"]
    assert any(case["expect"] in p for p in problems), (case["rule"], problems)
    assert all(" / " in p for p in problems)  # zh-CN, then English
    # The field is named by its label, as a worker reads it: never a JSON Pointer.
    assert not [p for p in problems if POINTER.search(p)], problems
