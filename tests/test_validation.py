"""The schema registry and the document rules on their own: every schema is a valid Draft
2020-12 schema, closed, labelled in both languages; messages name the field and what was
expected."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import visit

from server.domain.scope import User
from server.domain.validation import (
    SCHEMA_DIR,
    SchemaRegistry,
    WriteContext,
    check_authorship,
    check_document,
)

REGISTRY = SchemaRegistry()
WORKER = User(name="w.one", role="worker", grids=frozenset({"g1"}))


def ctx(**stored: str | None) -> WriteContext:
    return WriteContext(user=WORKER, db="grid-g1", grid="g1", max_document_bytes=10_000,
                        max_attachment_bytes=1_000, stored_authors=stored)


def check(doc: dict[str, Any], context: WriteContext | None = None) -> str | None:
    context = context or ctx()
    refusal = (check_document(doc, context, REGISTRY, len(json.dumps(doc)))
               or check_authorship(doc, context))
    return None if refusal is None else refusal.reason


SENSITIVITY = {"public", "personal", "sensitive"}


def labelled_fields(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    fields = []
    for name, prop in schema.get("properties", {}).items():
        fields.append((f"{path}/{name}", prop))
        fields += labelled_fields(prop, f"{path}/{name}")
        if isinstance(prop.get("items"), dict):
            fields += labelled_fields(prop["items"], f"{path}/{name}/items")
    return fields


def test_every_schema_is_closed_and_labelled() -> None:
    assert REGISTRY.types >= {"district", "street", "community", "grid", "compound", "building",
                              "property_company", "household", "person", "household_visit",
                              "census_household", "screening", "verdict"}
    for (doc_type, version), validator in REGISTRY.validators.items():
        schema = validator.schema  # with the shared definitions inlined
        assert schema["$id"] == f"urn:linli:schema:{doc_type}:v{version}"
        assert schema["additionalProperties"] is False
        assert schema["x-database"] in ("grid", "directory", "residents", "claims", "votes",
                                        "deliberation", "questionnaires", "party", "fees",
                                        "centre", "mediation", "stars", "liaison")
        if schema["x-database"] == "grid":
            assert {"type", "schema_version", "grid", "created_by"} <= set(schema["required"])
        if schema["x-database"] in ("residents", "claims"):  # residents' acts, notices to them
            assert {"type", "schema_version", "created_by"} <= set(schema["required"])
        for where, prop in labelled_fields(schema):
            assert prop.get("title") and prop.get("x-title-en"), (doc_type, where)
            assert prop.get("x-sensitivity") in SENSITIVITY, (doc_type, where)
            codes = prop.get("enum") or prop.get("items", {}).get("enum") or []
            labels = prop.get("x-enum-labels", {})
            if "const" not in prop:
                assert all(len(labels.get(c, ())) == 2 for c in codes), (doc_type, where)
    assert (SCHEMA_DIR / "common.v1.schema.json").exists()


def test_valid_record_passes() -> None:
    assert check(visit("g1", "w.one", 1, device_time="2026-11-20T08:30:00+08:00")) is None


@pytest.mark.parametrize(("changes", "words"), [
    ({"outcome": "gone"}, ["“走访结果”", "Outcome", "completed"]),
    ({"visited_on": "20/11/2026"}, ["Visit date", "date"]),
    ({"persons_present": 3.5}, ["Persons present", "整数", "whole number"]),
    ({"persons_present": 51}, ["at most 50"]),
    ({"extra": True}, ["extra", "not allowed"]),
    ({"device_time": "noon"}, ["Device time", "date-time"]),
    ({"schema_version": 7}, ["schema_version", "known versions 1"]),
    ({"grid": "g2"}, ["grid", "g1"]),
    ({"created_by": "w.two"}, ["created_by", "w.one"]),
])
def test_messages_name_the_field(changes: dict[str, Any], words: list[str]) -> None:
    reason = check({**visit("g1", "w.one", 1), **changes})
    assert reason is not None
    for word in words:
        assert word in reason, (word, reason)


def test_missing_field_is_named_by_its_label_not_a_pointer() -> None:
    doc = visit("g1", "w.one", 1)
    del doc["outcome"]
    assert check(doc) == "缺少必填项“走访结果” / Outcome is required"


def test_a_nested_field_is_named_by_the_labels_on_the_way() -> None:
    """A worker reads "Address · Unit", and "item 2" for an array's element; never "/address/unit"
    or "/units/1/floors"."""
    household = {"_id": "household:g1-1", "type": "household", "schema_version": 1,
                 "grid": "g1", "created_by": "w.one", "device_time": "2026-11-02T09:00:00+08:00",
                 "address": {"compound": "hehua", "building": "3", "unit": "x" * 20,
                             "room": "301"}, "status": "occupied"}
    reason = check(household) or ""
    assert "“地址 · 单元”" in reason and "Address · Unit" in reason, reason
    assert "/address" not in reason, reason
    building = {"_id": "building:hehua-3", "type": "building", "schema_version": 1, "grid": "g1",
                "created_by": "w.one", "compound": "hehua", "number": "3",
                "units": [{"label": "1", "floors": 6, "rooms_per_floor": 2},
                          {"label": "2", "floors": "six", "rooms_per_floor": 2}]}
    reason = check(building) or ""
    assert "第 2 项" in reason and "item 2" in reason and "/units" not in reason, reason
    building["units"][1] = {"label": "2", "floors": 6, "rooms_per_floor": 2, "lift": True}
    reason = check(building) or ""
    assert "field(s) not allowed: lift" in reason and "/units" not in reason, reason
    building["units"][1].pop("lift")
    building["surprise"] = 1
    assert check(building) == ("记录中有不允许的字段：surprise / The record: field(s) not allowed: "
                               "surprise")


def test_many_problems_are_summarised() -> None:
    doc = visit("g1", "w.one", 1, outcome=1, visited_on=2, persons_present="x", notes=5)
    reason = check(doc)
    assert reason is not None and "and 1 more" in reason


def test_deletions_need_no_body_but_respect_authorship() -> None:
    tombstone = {"_id": "household_visit:g1-1", "_rev": "2-a", "_deleted": True}
    assert check(tombstone) is None
    assert check(tombstone, ctx(**{"household_visit:g1-1": "w.one"})) is None
    reason = check(tombstone, ctx(**{"household_visit:g1-1": "w.two"}))
    assert reason is not None and "w.two" in reason


def test_author_is_kept_on_edit() -> None:
    edited = visit("g1", "w.two", 1)
    assert check(edited, ctx(**{edited["_id"]: "w.two"})) is None
    assert check(edited) is not None  # new to the server: must be the writer's own


def test_remembered_values_keep_the_verdict() -> None:
    """The validator remembers scalar values that passed a field; a value of another JSON type
    that compares equal in Python (True == 1) must still be checked."""
    assert check(visit("g1", "w.one", 1, persons_present=1)) is None
    reason = check(visit("g1", "w.one", 2, persons_present=True))
    assert reason is not None and "Persons present" in reason
    assert check(visit("g1", "w.one", 3, persons_present=1.0)) is None  # 2020-12: an integer
    fresh = SchemaRegistry()  # another registry's schemas never hit this one's entries wrongly
    doc = visit("g1", "w.one", 4, outcome="refused")
    assert fresh.problems(doc) == REGISTRY.problems(doc) == []
    assert fresh.problems({**doc, "outcome": "gone"}) == REGISTRY.problems(
        {**doc, "outcome": "gone"}) != []


def test_person_rules_beyond_the_schema() -> None:
    person = {"_id": "person:g1-0001-1", "type": "person", "schema_version": 1, "grid": "g1",
              "created_by": "w.one", "household": "household:g1-0001", "name": "王芳",
              "relationship": "0", "sex": "2", "birth_year": 1949, "birth_month": 12,
              "status": "present", "id_number": "11010519491231002X"}
    assert check(person) is None
    reason = check({**person, "id_number": "110105194912310021"})
    assert reason is not None and "ID number" in reason and "X" in reason
    reason = check({**person, "sex": "1"})
    assert reason is not None and "Sex is" in reason
