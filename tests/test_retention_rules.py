"""Issue 23, item 6: every document type has a retention rule, and what is due on a day follows
from the rules and that day alone (server/domain/retention.py; the day is data, no clock)."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from server.domain import retention
from server.domain.retention import RULES, Rule, check_rules, due
from server.domain.validation import SCHEMA_DIR, SchemaRegistry, shared_registry

DAY = datetime.date.fromisoformat


def a_visit(n: int, on: str, **more: Any) -> dict[str, Any]:
    return {"_id": f"household_visit:g-{n}", "type": "household_visit", "visited_on": on,
            **more}


def test_every_shipped_type_has_a_rule_the_job_can_keep() -> None:
    types = shared_registry().types
    assert types <= RULES.keys() and len(types) > 40
    assert set(RULES) <= types  # no rule for a type that does not exist
    for doc_type, rule in RULES.items():
        schema = next(s for (t, _), s in shared_registry().schemas.items() if t == doc_type)
        if rule.kind == "after":
            assert rule.field in schema["properties"] and rule.days > 0, doc_type
        if rule.kind == "campaign":
            assert "campaign" in schema["properties"], doc_type
        assert "/" in rule.why, doc_type  # said in both languages


def test_a_type_without_a_rule_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    schema = json.loads((copy / "household_visit.v1.schema.json").read_text("utf-8"))
    schema["properties"]["type"]["const"] = "doorstep_chat"
    (copy / "doorstep_chat.v1.schema.json").write_text(json.dumps(schema), "utf-8")
    with pytest.raises(ValueError, match="without a retention rule: doorstep_chat"):
        SchemaRegistry(copy)
    with pytest.raises(ValueError, match="without a retention rule: household"):
        check_rules({"household": "grid"}, {})


@pytest.mark.parametrize("kind", ["after", "campaign"])
def test_a_dated_rule_outside_the_grids_is_refused(kind: str) -> None:
    rule = Rule(kind, "x / x", "received_at", 30)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot keep"):
        check_rules({"ballot": "votes"}, {"ballot": rule})
    check_rules({"ballot": "grid"}, {"ballot": rule})


def test_a_visit_is_due_three_years_after_it_was_made() -> None:
    leaves = {"household_visit:g-1": [a_visit(1, "2023-06-01")],
              "household_visit:g-2": [a_visit(2, "2024-06-01")],
              "household_visit:g-3": [a_visit(3, "not a day")],
              "household_visit:g-4": [a_visit(4, "2020-01-01")]}
    three_years = DAY("2023-06-01") + datetime.timedelta(days=3 * 365)
    before = due(leaves, three_years - datetime.timedelta(days=1), {})
    assert before.records == {"household_visit": ["household_visit:g-4"]}
    on_the_day = due(leaves, three_years, {})
    assert on_the_day.records == {"household_visit": ["household_visit:g-1",
                                                      "household_visit:g-4"]}
    assert on_the_day.count() == 2 and on_the_day.campaigns == []


def test_a_record_goes_only_when_every_living_leaf_is_due() -> None:
    old, edited = a_visit(1, "2020-01-01"), a_visit(1, "2026-01-01")
    gone = {**a_visit(1, "2026-01-01"), "_deleted": True}
    assert due({old["_id"]: [old, edited]}, DAY("2026-12-03"), {}).records == {}
    assert due({old["_id"]: [old, gone]}, DAY("2026-12-03"), {}).records == {
        "household_visit": [old["_id"]]}
    assert due({old["_id"]: [gone]}, DAY("2030-12-03"), {}).records == {}  # a tombstone stays


def test_undated_and_kept_records_stay() -> None:
    leaves = {"correction_request:g-1": [{"type": "correction_request", "status": "open"}],
              "household:g-1": [{"type": "household", "address": "1-101"}],
              "signup:g-1": [{"type": "signup", "received_at": "2020-01-01T00:00:00Z"}],
              "signup:g-2": [{"type": "signup", "decided_at": "2020-01-01T00:00:00+08:00"}]}
    assert due(leaves, DAY("2030-01-01"), {}).records == {"signup": ["signup:g-2"]}


def test_resolutions_and_verdicts_go_with_their_record() -> None:
    old = a_visit(1, "2020-01-01")
    leaves = {old["_id"]: [old], "household_visit:g-2": [a_visit(2, "2026-11-01")],
              "resolution:x": [{"type": "resolution", "record": old["_id"]}],
              "resolution:y": [{"type": "resolution", "record": "household_visit:g-2"}],
              "verdict:x": [{"type": "verdict", "record": old["_id"]}]}
    assert due(leaves, DAY("2026-12-03"), {}).records == {
        "household_visit": [old["_id"]], "resolution": ["resolution:x"],
        "verdict": ["verdict:x"]}


def test_a_campaign_is_due_at_its_end_plus_its_own_retention() -> None:
    campaigns = {"pilot": {"ends_on": "2026-10-31", "retention_days": 30}}
    leaves = {"screening:g-1": [{"type": "screening", "campaign": "pilot"}],
              "screening:g-2": [{"type": "screening", "campaign": "unknown"}]}
    assert due(leaves, DAY("2026-11-29"), campaigns).campaigns == []
    found = due(leaves, DAY("2026-11-30"), campaigns)
    assert found.campaigns == ["pilot"] and found.records == {}  # the campaign purge takes them
    assert due(leaves, DAY("2026-11-30"), campaigns, purged=["pilot"]).campaigns == []


@pytest.mark.parametrize("value", [None, "", 12, ["2020-01-01"], "2020-13-01", "\ud800"])
def test_a_date_that_is_not_one_keeps_the_record(value: Any) -> None:
    doc = {"type": "household_visit", "visited_on": value}
    assert not retention.past(doc, DAY("2099-01-01"))
