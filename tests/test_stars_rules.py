"""server/domain/stars.py's rules as cases (三类五星), pure: the city's sheet file as data and
the refusal of a broken one, bands, who plays which part, the one-way states, evidence, scores,
the award's 30 % cap and rounds."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from server.domain import stars as rules
from server.domain.scope import User
from server.domain.validation import SCHEMA_DIR

SHEET_FILE = SCHEMA_DIR / "star_sheet.json"
PLACE = rules.Place("hy", "330802001001", "330802001", "property_company:91330800MA2DEMO001")


def data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SHEET_FILE.read_text("utf-8"))
    return loaded


def sheet() -> rules.Sheet:
    return rules.sheet_from(data())


def test_the_citys_sheet_has_54_indicators_in_4_categories_summing_to_the_total() -> None:
    found = sheet()
    assert len(found.indicators) == 54
    assert [name for _, name, _ in found.categories] == ["党建统领", "物业提升", "小区治理",
                                                         "文明服务"]
    assert sum(i.max_points for i in found.indicators) == found.total_points == 100
    assert len({i.id for i in found.indicators}) == 54
    assert {i.category for i in found.indicators} == {c for c, _, _ in found.categories}
    assert all(i.evidence and i.scored_by in rules.SCORERS for i in found.indicators)
    assert [b.stars for b in found.bands] == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(("break_it", "says"), [
    (lambda d: d["indicators"].pop(), "总分 100 与各指标分值之和"),
    (lambda d: d["indicators"][1].update(id=d["indicators"][0]["id"]), "编号重复：party-01"),
    (lambda d: d["indicators"][0].update(max_points=True), "分值应为正整数"),
    (lambda d: d["indicators"][0].update(max_points=2.5), "分值应为正整数"),
    (lambda d: d["indicators"][0].update(category="sports"), "类别 'sports' 不在"),
    (lambda d: d["indicators"][0].update(scored_by="mayor"), "评分方应为"),
    (lambda d: d["indicators"][0].pop("evidence"), "缺少 evidence"),
    (lambda d: d["bands"].pop(), "星级 1 至 5 应各有一档"),
    (lambda d: d["bands"][4].update(min_points=10), "最低一档应从 0 分起"),
    (lambda d: d["bands"][0].update(min_points=101), "最低分应为 0 至总分之间的整数"),
    (lambda d: d["awards_fen"].update({"5": 1.5}), "awards_fen"),
    (lambda d: d.update(property_share_max_percent=130), "property_share_max_percent"),
    (lambda d: d.update(indicators="54"), "应为指标列表"),
])
def test_a_broken_sheet_file_is_refused_naming_what_is_wrong(break_it: Any, says: str) -> None:
    broken = copy.deepcopy(data())
    break_it(broken)
    with pytest.raises(rules.SheetError) as refused:
        rules.sheet_from(broken)
    assert says in str(refused.value) and " / " in str(refused.value)


def test_bands_that_give_more_stars_to_fewer_points_are_refused() -> None:
    broken = data()
    broken["bands"][0]["min_points"], broken["bands"][1]["min_points"] = 80, 90
    with pytest.raises(rules.SheetError, match="星级越高"):
        rules.sheet_from(broken)


def test_type_and_stars_come_from_the_bands_as_data() -> None:
    s = sheet()
    assert [(t, rules.band_of(s, t).stars, rules.band_of(s, t).type) for t in
            (100, 90, 89, 80, 79, 70, 69, 60, 59, 0)] == [
        (100, 5, "示范引领"), (90, 5, "示范引领"), (89, 4, "良性发展"), (80, 4, "良性发展"),
        (79, 3, "良性发展"), (70, 3, "良性发展"), (69, 2, "托底维持"), (60, 2, "托底维持"),
        (59, 1, "托底维持"), (0, 1, "托底维持")]
    edited = data()
    edited["bands"][0]["min_points"] = 95  # the city raises the bar: no code changes
    assert rules.band_of(rules.sheet_from(edited), 92).stars == 4


def test_a_result_sums_scores_by_category_and_gives_the_award_of_its_stars() -> None:
    s = sheet()
    scores = {i.id: {"points": i.max_points} for i in s.indicators}
    found = rules.result_of(s, scores)
    assert (found["total"], found["stars"], found["award_fen"]) == (100, 5, 5_000_000)
    assert found["by_category"] == {"party": 20, "property": 35, "governance": 25,
                                    "civility": 20}
    assert rules.result_of(s, {})["stars"] == 1


def test_parts_are_the_community_the_street_and_the_commissioned_assessor() -> None:
    community = User("c", "supervisor", communities=frozenset({PLACE.community}))
    street = User("s", "supervisor", streets=frozenset({PLACE.street}))
    assessor = User("a", "assessor", streets=frozenset({PLACE.street}))
    assert rules.parts_of(community, PLACE) == {"community"}
    assert rules.parts_of(street, PLACE) == {"street"}
    assert rules.parts_of(assessor, PLACE) == {"assessor"}
    for nobody in (User("o", "assessor", streets=frozenset({"330802002"})),
                   User("w", "worker", grids=frozenset({"g1"})),
                   User("r", "resident"), User("p", "property"),
                   User("x", "assessor", streets=frozenset({PLACE.street}), disabled=True),
                   User("d", "department", streets=frozenset({PLACE.street}))):
        assert rules.parts_of(nobody, PLACE) == frozenset()
        assert not rules.sees(nobody, PLACE)
    assert rules.sees(User("admin", "admin"), PLACE)


def test_states_go_one_way_each_step_by_its_part_from_the_state_it_was_taken_in() -> None:
    walk = [("submit_evidence", "collecting", "community", "scoring"),
            ("submit_scores", "scoring", "assessor", "review"),
            ("return", "review", "street", "scoring"),
            ("submit_scores", "scoring", "assessor", "review"),
            ("approve", "review", "street", "published")]
    for act, state, part, end in walk:
        assert rules.move(act, state, state, frozenset({part})).end == end
        others = frozenset(set(rules.PARTS) - {part})
        with pytest.raises(rules.Refused) as wrong:
            rules.move(act, state, state, others)
        assert wrong.value.status == 403 and " / " in wrong.value.reason
    for state in ("scoring", "review", "published"):  # a replay of an earlier step
        with pytest.raises(rules.Refused) as late:
            rules.move("submit_evidence", state, "collecting", frozenset({"community"}))
        assert late.value.status == 409
    for act in rules.STEPS:  # nothing leaves published
        with pytest.raises(rules.Refused):
            rules.move(act, "published", "published", frozenset(rules.PARTS))
    for act in ("publish", 1, None, ["approve"]):
        with pytest.raises(rules.Refused) as unknown:
            rules.move(act, "review", "review", frozenset(rules.PARTS))
        assert unknown.value.status == 400 and "“操作”" in unknown.value.reason


def test_a_return_needs_a_plain_reason_and_nothing_else_takes_one() -> None:
    assert rules.act_problems({"act": "return", "state": "review", "reason": "佐证不足"}) == []
    for reason in (None, "", "  ", 1, "退回\ud800", "退回\x07", "x" * 301):
        found = rules.act_problems({"act": "return", "state": "review", "reason": reason})
        assert found and "退回原因" in found[0].zh
    assert rules.act_problems({"act": "approve", "state": "review", "reason": "x"})
    assert rules.act_problems({"act": "approve", "state": "review", "stars": 5})


def test_evidence_is_a_plain_note_for_an_indicator_of_the_sheet_and_few_photos() -> None:
    s = sheet()
    assert rules.evidence_problems({"indicator": "party-01", "text": "已成立党支部\n见批复",
                                    "photos": []}, s) == []
    for body, label in (({"indicator": "party-99", "text": "x"}, "“指标”"),
                        ({"indicator": 1, "text": "x"}, "“指标”"),
                        ({"indicator": "party-01", "text": "\ud83d"}, "“佐证说明”"),
                        ({"indicator": "party-01", "text": "a\x00b"}, "“佐证说明”"),
                        ({"indicator": "party-01", "text": ["x"]}, "“佐证说明”"),
                        ({"indicator": "party-01", "text": "x" * 501}, "“佐证说明”"),
                        ({"indicator": "party-01", "text": "x", "photos": [{}] * 4}, "“照片”"),
                        ({"indicator": "party-01", "text": "x", "photos": "a.jpg"}, "“照片”"),
                        ({"indicator": "party-01", "text": "x", "by": "c"}, "不允许的字段")):
        found = rules.evidence_problems(body, s)
        assert found and label in found[0].zh, body


def test_scores_are_whole_points_within_the_indicators_and_by_its_scorer() -> None:
    s = sheet()
    top = s.indicator("party-01").max_points  # type: ignore[union-attr]
    assert rules.score_problems({"indicator": "party-01", "points": top, "comment": "好"}, s) == []
    assert rules.score_problems({"indicator": "party-01", "points": 0, "comment": "无"}, s) == []
    for points in (top + 1, -1, 1.5, 2.0, True, False, "2", None, [2]):
        found = rules.score_problems({"indicator": "party-01", "points": points,
                                      "comment": "x"}, s)
        assert [p.code for p in found] == ["range"] and "“得分”" in found[0].zh, points
    for comment in ("", "\udc00", "x\x1b[31m", 5, "x" * 301):
        assert rules.score_problems({"indicator": "party-01", "points": 1,
                                     "comment": comment}, s)
    assert rules.score_problems({"indicator": "nope", "points": 1, "comment": "x"}, s)[0].zh \
        .startswith("“指标”")
    assert rules.score_problems({"indicator": "party-01", "points": 1, "comment": "x",
                                 "by": "a"}, s)
    street_one = next(i for i in s.indicators if i.scored_by == "street")
    rules.scorer_of(street_one, frozenset({"street"}))
    with pytest.raises(rules.Refused):
        rules.scorer_of(street_one, frozenset({"assessor"}))


def test_the_assessor_hands_over_only_a_fully_scored_sheet() -> None:
    s = sheet()
    scores = {i.id: {"points": 1} for i in s.indicators}
    assert rules.handover_problem(s, scores) is None
    scores.pop("civility-14")
    refused = rules.handover_problem(s, scores)
    assert refused is not None and "1 项指标未评分" in refused.reason


def test_the_property_companys_share_is_at_most_30_percent_of_the_award() -> None:
    s = sheet()
    award = s.awards_fen[5]
    assert rules.award_problems({"property_fen": award * 30 // 100}, s, 5) == []
    assert rules.award_problems({}, s, 5) == []
    over = rules.award_problems({"property_fen": award * 3001 // 10000}, s, 5)  # 30.01 %
    assert over[0].zh == "“物业公司所得”不能超过奖励金额 50000.00 元的 30%（最多 15000.00 元）"
    assert over[0].en.startswith("Property company's share may be at most 30 %")
    assert rules.award_problems({"property_fen": award * 30 // 100 + 1}, s, 5)
    for bad in (-1, 1.5, "100", True, None):
        assert rules.award_problems({"property_fen": bad}, s, 5)[0].code == "type"
    assert rules.award_problems({"property_fen": 1}, s, 1)  # no award, no share


def test_a_compounds_rounds_go_forward() -> None:
    assert rules.round_problems({"compound": "hy", "round": "2026"}, ["2025", "2025-2"]) == []
    assert rules.round_problems({"compound": "hy", "round": "2026-1"}, ["2026"]) == []
    for key in ("2025", "2026", "2025-2"):
        assert rules.round_problems({"compound": "hy", "round": key}, ["2026"])[0].code == "order"
    for key in ("26", "2026-123", "../x", 2026, None):
        assert rules.round_problems({"compound": "hy", "round": key}, [])[0].code == "format"
    assert rules.round_problems({"compound": "hy", "round": "2027", "state": "published"}, [])
