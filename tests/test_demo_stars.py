"""The demo's star rating (server/demo/stars.py), pure: both rounds valid by their schema; the
2025 round published at 85 points (4★, 良性发展) with the award's share within the cap; the
2026 round in progress: evidence handed over for most indicators, some scored by the
assessor, none by anyone who may not score them."""

from __future__ import annotations

from server.demo.stars import DEMO_ASSESSOR, EVIDENCED, in_progress, published
from server.domain import stars as rules
from server.domain.validation import SchemaRegistry
from server.sync.stars import load_sheet

COMPOUND = {"code": "fangmen", "name": "坊门小区", "community": "330802001001",
            "property_company": "property_company:91330800MA2DEMO001"}


def test_the_demo_rounds_are_valid_and_one_is_in_progress() -> None:
    sheet = load_sheet()
    last, current = published(sheet, COMPOUND), in_progress(sheet, COMPOUND)
    registry = SchemaRegistry()
    assert registry.problems(last) == [] and registry.problems(current) == []
    result = last["result"]
    assert (result["total"], result["stars"], result["type"]) == (85, 4, "良性发展")
    assert rules.award_problems(result, sheet, result["stars"]) == []
    assert [h["act"] for h in last["history"]] == ["open", "submit_evidence", "submit_scores",
                                                   "approve"]
    assert current["state"] == "scoring" and len(current["evidence"]) == EVIDENCED
    assert 0 < len(current["scores"]) < len(sheet.indicators)
    for key, entry in current["scores"].items():
        indicator = sheet.indicator(key)
        assert indicator is not None and indicator.scored_by == "assessor"
        assert entry["by"] == DEMO_ASSESSOR and 0 <= entry["points"] <= indicator.max_points
    assert rules.sheet_id("2026", "fangmen") == current["_id"]
