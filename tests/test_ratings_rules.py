"""The ratings' rules as cases (server/domain/ratings.py), each worked out from the rule as the
module states it: who rates, the periods, the score's parts from the formula file, the lists'
thresholds and reasons, the grade of the last four periods, and a formula file that is wrong."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest

from server.domain import ratings as rules
from server.sync.ratings import FORMULA_FILE, load_formula

FORMULA = load_formula()


def tally(ratings: list[int], units: int = 100, hours: list[float | None] | None = None
          ) -> rules.Tally:
    found = rules.Tally(units=units)
    for value in ratings:
        found.rate(dict.fromkeys(rules.ASPECTS, value))
    found.hours = list(hours or [])
    found.complaints = len(found.hours)
    return found


def test_who_rates() -> None:
    assert rules.may_rate(True, False) and rules.may_rate(False, True)
    assert not rules.may_rate(False, False)


def test_periods() -> None:
    assert rules.period_bounds("2026-11") == (datetime.date(2026, 11, 1),
                                              datetime.date(2026, 12, 1))
    assert rules.period_bounds("2026-12") == (datetime.date(2026, 12, 1),
                                              datetime.date(2027, 1, 1))
    assert rules.period_bounds("2026-Q4") == (datetime.date(2026, 10, 1),
                                              datetime.date(2027, 1, 1))
    assert rules.period_bounds("2026") == (datetime.date(2026, 1, 1), datetime.date(2027, 1, 1))
    assert rules.last_periods("2026-Q1", 4) == ["2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1"]
    assert rules.last_periods("2026-02", 4) == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert rules.last_periods("2026", 2) == ["2025", "2026"]
    with pytest.raises(ValueError):
        rules.period_bounds("2026-Q5")


def test_score_parts_from_the_formula() -> None:
    # all 5s, no complaint: every part 100
    best = rules.score("c", tally([5, 5, 5]), FORMULA)
    assert best.score == 100.0 and best.parts == {"ratings": 100.0, "complaints": 100.0,
                                                  "handling": 100.0}
    # mean 3 -> 50; 2.5 complaints per 100 units of the 5 that make 0 -> 50; hours: 24 and an
    # open one (240) -> mean 132 -> 100·(240-132)/216 = 50
    mid = rules.score("c", tally([3, 3, 3], units=80, hours=[24.0, None]), FORMULA)
    assert mid.parts == {"ratings": 50.0, "complaints": 50.0, "handling": 50.0}
    assert mid.score == 50.0 and mid.complaints == 2 and mid.mean_hours == 132.0
    # too few ratings: parts, but no score
    assert rules.score("c", tally([5, 5]), FORMULA).score is None


def test_lists_with_reasons() -> None:
    good = rules.score("good", tally([5, 5, 5]), FORMULA)
    mid = rules.score("mid", tally([4, 4, 3]), FORMULA)  # 66.7 -> 80.0: on no list
    bad = rules.score("bad", tally([2, 2, 2], units=10, hours=[None]), FORMULA)
    few = rules.score("few", tally([1]), FORMULA)
    found = rules.lists([mid, bad, good, few], FORMULA)
    assert [s.company for s, _ in found["red"]] == ["good"]
    assert [s.company for s, _ in found["black"]] == ["bad"]
    reasons = found["black"][0][1]
    assert reasons[0].startswith("综合得分") and " / Score" in reasons[0]
    assert any(r.startswith("物业服务投诉 0.0 分（1 件，10 户）") for r in reasons)
    # at most max_companies on a list, the worst first
    many = [rules.score(f"b{n}", tally([1 + n % 2] * 3), FORMULA) for n in range(30)]
    black = rules.lists(many, FORMULA)["black"]
    assert len(black) == FORMULA.black["max_companies"]
    assert all(s.score == min(m.score or 0 for m in many) for s, _ in black[:5])


def test_grade_of_the_last_four() -> None:
    assert rules.grade([90, 90, 90, 90], FORMULA) == "A"
    assert rules.grade([None, None, 80, None], FORMULA) == "B"
    assert rules.grade([10, 100, 100, 100, 60], FORMULA) == "A"  # 90; with the fifth, 74
    assert rules.grade([59.9], FORMULA) == "D"
    assert rules.grade([None, None], FORMULA) is None


def formula_data(**changes: Any) -> dict[str, Any]:
    return {**json.loads(FORMULA_FILE.read_text("utf-8")), **changes}


@pytest.mark.parametrize("changes", [
    {"weights": {"ratings": 60, "complaints": 25, "handling": 16}},
    {"weights": {"ratings": 60, "complaints": 40}},
    {"aspect_weights": {"cleaning": "25", "security": 25, "repairs": 25, "attitude": 25}},
    {"handling_hours_zero": 10}, {"min_ratings": 0}, {"grades": []},
    {"grades": [{"grade": "A", "min_score": 50}, {"grade": "B", "min_score": 80},
                {"grade": "D", "min_score": 0}]},
    {"red": {"min_score": 85}}, {"grade_periods": True}])
def test_a_wrong_formula_file_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="rating formula"):
        rules.Formula.from_data(formula_data(**changes))


def test_the_formula_is_data() -> None:
    """Changing the file's weights changes the score, no code involved."""
    other = rules.Formula.from_data(formula_data(
        weights={"ratings": 100, "complaints": 0, "handling": 0}))
    assert rules.score("c", tally([3, 3, 3], units=10, hours=[None]), other).score == 50.0
    assert dataclasses.asdict(FORMULA)["weights"]["ratings"] == 60
