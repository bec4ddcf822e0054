"""The questionnaire rules (server/domain/questionnaires.py) as cases, worked out from the
module's docstring: definitions, versions, answers with skip logic, results with the
small-count rule."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from server.domain import questionnaires as q
from server.domain.validation import shared_registry

NOW = datetime.datetime(2026, 12, 3, 9, 0, tzinfo=datetime.UTC)
REGISTRY = shared_registry()


def draft(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "小区停车满意度调查", "audience": {"level": "community", "codes": ["c1"]},
        "per": "household", "anonymous": False, "closes_at": "2026-12-31T18:00:00+08:00",
        "questions": [
            {"name": "car", "label": "家里有车吗", "kind": "single", "required": True,
             "choices": [{"value": "yes", "label": "有"}, {"value": "no", "label": "没有"}]},
            {"name": "spot", "label": "停车位够用吗", "kind": "rating", "required": True,
             "show_if": {"question": "car", "op": "=", "value": "yes"}},
            {"name": "needs", "label": "希望增加哪些设施", "kind": "multiple",
             "choices": [{"value": "ev", "label": "充电桩"}, {"value": "bike", "label": "车棚"},
                         {"value": "light", "label": "照明"}]},
            {"name": "people", "label": "家庭人数", "kind": "number", "integer": True,
             "min": 1, "max": 20},
            {"name": "moved", "label": "入住日期", "kind": "date"},
            {"name": "note", "label": "其他建议", "kind": "text"},
        ]}
    base.update(changes)
    return base


def stored(**changes: Any) -> dict[str, Any]:
    return q.definition_doc(draft(**changes), "chen.jing", "0123456789abcdef", 1, NOW)


def messages(problems: list[Any]) -> str:
    return " | ".join(f"{p.zh} / {p.en}" for p in problems)


def test_a_good_definition_passes_and_is_stored_valid() -> None:
    assert q.definition_problems(draft(), NOW) == []
    doc = stored()
    assert REGISTRY.problems(doc) == []
    assert doc["_id"] == "questionnaire:0123456789abcdef-v1" and doc["status"] == "published"


@pytest.mark.parametrize(("change", "words"), [
    ({"per": "person"}, "One answer per"),
    ({"anonymous": "yes"}, "Anonymous"),
    ({"closes_at": "2026-12-01T00:00:00+08:00"}, "must be in the future"),
    ({"closes_at": "2026-12-31T18:00:00"}, "with its zone"),
    ({"questions": []}, "must be 1 to"),
    ({"audience": {"level": "community", "codes": ["c1"], "grids": ["x"]}}, "not allowed"),
    ({"created_by": "someone.else"}, "not allowed"),
    ({"title": "问卷\ud800"}, "control or broken character"),
    ({"title": "x" * 61}, "too long"),
])
def test_definition_problems_name_the_field(change: dict[str, Any], words: str) -> None:
    assert words in messages(q.definition_problems(draft(**change), NOW))


def one_question(**fields: Any) -> list[Any]:
    return q.questions_problems([{"name": "a", "label": "楼层", "kind": "number", **fields}])


@pytest.mark.parametrize(("questions", "words"), [
    ([{"name": "1a", "label": "x", "kind": "text"}], "needs a name"),
    ([{"name": "a", "label": "x", "kind": "text"}, {"name": "a", "label": "y", "kind": "text"}],
     "name of an earlier question"),
    ([{"name": "a", "label": "x", "kind": "slider"}], "unknown kind"),
    ([{"name": "a", "label": "颜色", "kind": "single", "choices": [{"value": "r",
                                                                    "label": "红"}]}],
     "“颜色” needs 2 to"),
    ([{"name": "a", "label": "颜色", "kind": "single",
       "choices": [{"value": "r", "label": "红"}, {"value": "r", "label": "赤"}]}], "twice"),
    ([{"name": "a", "label": "x", "kind": "text", "choices": []}], "no choices"),
    ([{"name": "a", "label": "x", "kind": "text", "min": 1}], "no bounds"),
    ([{"name": "b", "label": "楼号", "kind": "text",
       "show_if": {"question": "a", "op": "=", "value": "x"}},
      {"name": "a", "label": "y", "kind": "text"}], "“楼号” has a skip rule naming no earlier"),
    ([{"name": "a", "label": "有车", "kind": "single", "choices": [
        {"value": "y", "label": "有"}, {"value": "n", "label": "无"}]},
      {"name": "b", "label": "车位", "kind": "text",
       "show_if": {"question": "a", "op": "=", "value": "maybe"}}], "cannot take"),
    ([{"name": "a", "label": "x", "kind": "text", "show_if": {"question": "a", "op": "=",
                                                               "value": "x"}}],
     "naming no earlier"),
    ([{"name": "a", "label": "x", "kind": "text", "show_if": {"question": "a", "op": "<",
                                                               "value": "x"}}],
     "is not “question = or != value”"),
    ([{"name": "a", "label": "x", "kind": "text", "nested": {"deep": [[[]]]}}], "not allowed"),
])
def test_question_problems_name_the_question(questions: list[Any], words: str) -> None:
    assert words in messages(q.questions_problems(questions))


def test_number_bounds() -> None:
    assert one_question(min=1, max=0) and one_question(min=True) and one_question(
        max=float("inf"))
    assert one_question(min=1, max=9, integer=True) == []


def test_a_published_definition_changes_only_its_status_once() -> None:
    doc = stored()
    assert q.change_problems(doc, {**doc, "status": "closed"}) == []
    assert q.change_problems(doc, {**doc, "status": "replaced",
                                   "replaced_by": "questionnaire:0123456789abcdef-v2"}) == []
    edited = copy.deepcopy(doc)
    edited["questions"][0]["label"] = "改了"
    assert "only be replaced by a new version" in messages(q.change_problems(doc, edited))
    assert q.change_problems(doc, {**doc, "closes_at": "2027-01-31T18:00:00+08:00"})
    closed = {**doc, "status": "closed"}
    assert "stays so" in messages(q.change_problems(closed, {**closed, "status": "published"}))


def test_open_by_status_and_the_servers_clock() -> None:
    doc = stored()
    assert q.is_open(doc, NOW)
    assert not q.is_open(doc, datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC))
    assert not q.is_open({**doc, "status": "replaced"}, NOW)


def test_answers_kept_and_hidden_ones_dropped() -> None:
    doc = stored()
    kept, problems = q.answer_problems(doc, {"car": "no", "spot": 5, "needs": ["ev", "light"],
                                             "people": 3, "moved": "2019-05-01"})
    assert problems == [] and kept == {"car": "no", "needs": ["ev", "light"], "people": 3,
                                       "moved": "2019-05-01"}  # spot hidden: dropped
    kept, problems = q.answer_problems(doc, {"car": "yes", "spot": 4})
    assert problems == [] and kept == {"car": "yes", "spot": 4}


def test_a_shown_required_question_must_be_answered() -> None:
    doc = stored()
    _, problems = q.answer_problems(doc, {"car": "yes"})
    assert messages(problems) == "“停车位够用吗”为必答题 / “停车位够用吗” must be answered"
    _, problems = q.answer_problems(doc, {"car": "no"})
    assert problems == []  # the rating is hidden, so not required
    _, problems = q.answer_problems(doc, {})
    assert "“家里有车吗”为必答题" in messages(problems)


def test_not_equal_and_chains_of_hidden_questions() -> None:
    doc = stored(questions=[
        {"name": "a", "label": "A", "kind": "single", "choices": [
            {"value": "x", "label": "X"}, {"value": "y", "label": "Y"}]},
        {"name": "b", "label": "B", "kind": "text", "required": True,
         "show_if": {"question": "a", "op": "!=", "value": "x"}},
        {"name": "c", "label": "C", "kind": "rating", "required": True,
         "show_if": {"question": "b", "op": "=", "value": "go"}}])
    assert q.answer_problems(doc, {"a": "x", "b": "go", "c": 3}) == ({"a": "x"}, [])
    assert q.answer_problems(doc, {"a": "y", "b": "go", "c": 3}) == (
        {"a": "y", "b": "go", "c": 3}, [])
    _, problems = q.answer_problems(doc, {"a": "y"})
    assert "“B”为必答题" in messages(problems)  # a != x with a unanswered... a is y: shown


@pytest.mark.parametrize(("answers", "words"), [
    ({"car": ["yes"]}, "“家里有车吗” must be one of its choices"),
    ({"car": "maybe"}, "must be one of its choices"),
    ({"car": {"$ne": 1}}, "must be one of its choices"),
    ({"car": "no", "needs": ["ev", "ev"]}, "each once"),
    ({"car": "no", "needs": "ev"}, "each once"),
    ({"car": "no", "needs": [["ev"]]}, "each once"),
    ({"car": "no", "people": "3"}, "“家庭人数” must be a number"),
    ({"car": "no", "people": True}, "must be a number"),
    ({"car": "no", "people": 2.5}, "whole number"),
    ({"car": "no", "people": 21}, "between 1 and 20"),
    ({"car": "no", "people": 1e308 * 10}, "must be a number"),
    ({"car": "yes", "spot": 6}, "from 1 to 5"),
    ({"car": "yes", "spot": 4.0}, "from 1 to 5"),
    ({"car": "yes", "spot": True}, "from 1 to 5"),
    ({"car": "no", "moved": "2019-02-30"}, "must be a date"),
    ({"car": "no", "moved": "2019-5-1"}, "must be a date"),
    ({"car": "no", "note": "x" * 2001}, "too long"),
    ({"car": "no", "note": "坏\ud83d字"}, "broken character"),
    ({"car": "no", "note": 5}, "must be text"),
    ({"car": "no", "household": "household:g1-0001"}, "not allowed"),
    ({"car": "no", "created_by": "r.other"}, "not allowed"),
])
def test_wrong_answers_are_refused_by_the_questions_label(answers: dict[str, Any],
                                                          words: str) -> None:
    _, problems = q.answer_problems(stored(), answers)
    assert words in messages(problems)
    assert all("/" not in p.zh.split("“")[0] for p in problems)


def test_answers_that_are_no_object() -> None:
    for junk in ([], "car=yes", None, 3):
        assert q.answer_problems(stored(), junk)[1]


def answer(grid: str, community: str, values: dict[str, Any]) -> q.Answer:
    return q.Answer(("s1", community, grid), values)


def test_results_count_every_kind() -> None:
    doc = stored()
    answers = [answer("g1", "c1", {"car": "yes", "spot": 4, "needs": ["ev", "bike"],
                                   "people": 3, "moved": "2019-05-01", "note": "好"})
               for _ in range(6)] + [answer("g1", "c1", {"car": "no", "people": 5})
                                     for _ in range(6)]
    result = q.summarise(doc, answers)
    assert result["answers"] == 12
    figures = result["questions"]
    assert figures["car"] == {"n": 12, "counts": {"yes": 6, "no": 6}}
    assert figures["spot"]["counts"] == {"1": 0, "2": 0, "3": 0, "4": 6, "5": 0}
    assert figures["needs"]["counts"] == {"ev": 6, "bike": 6, "light": 0}
    assert figures["people"] == {"n": 12, "sum": 48.0, "min": 3, "max": 5}
    assert figures["moved"]["counts"] == {"2019-05": 6}
    assert figures["note"] == {"n": 6}


def test_small_counts_withheld_with_a_partner() -> None:
    doc = stored()
    answers = ([answer("g1", "c1", {"car": "yes", "spot": 5}) for _ in range(7)]
               + [answer("g1", "c1", {"car": "no"}) for _ in range(2)]
               + [answer("g2", "c1", {"car": "no"}) for _ in range(3)]
               + [answer("g3", "c1", {"car": "no"}) for _ in range(9)]
               + [answer("g4", "c2", {"car": "no"}) for _ in range(6)])
    result = q.summarise(doc, answers, "grid")
    by = {a["code"]: a for a in result["areas"]}
    # g2 (3 answers) is withheld; alone among c1's grids, so the smallest other (g1: 9) too.
    assert by["g2"] == {"code": "g2", "parent": "c1", "withheld": True}
    assert by["g1"]["withheld"] and not by["g3"]["withheld"] and not by["g4"]["withheld"]
    assert result["questions"]["car"]["counts"] == {"yes": 7, "no": 20}
    # Inside g3 (9 "no"): nothing small. A 7/2 split: the 2 goes, and the 7 as its partner.
    figures = q.figures_of(doc, [a.values for a in answers[:9]])
    q.suppress_counts(figures["questions"], 5, figures["answers"])
    assert figures["questions"]["car"]["counts"] == {"yes": None, "no": None}


def test_a_number_of_few_answers_shows_no_min_or_max() -> None:
    doc = stored()
    result = q.summarise(doc, [answer("g1", "c1", {"car": "no", "people": 7})] + [
        answer("g1", "c1", {"car": "no"}) for _ in range(5)])
    assert result["questions"]["people"]["min"] is None
    assert result["questions"]["people"]["n"] is None


def test_figures_kept_by_grid_add_up_to_the_whole() -> None:
    """What the store's side folds as answers arrive (by_grid, merge) gives the figures a
    count of every answer at once gives, whatever the split."""
    doc = stored()
    answers = [answer(f"g{n % 3}", f"c{n % 2}", {
        "car": "yes" if n % 4 else "no", **({"spot": 1 + n % 5} if n % 4 else {}),
        "needs": ["ev", "bike"][: n % 3], "people": 1 + n % 7, "moved": f"2019-0{1 + n % 9}-01"})
        for n in range(60)]
    whole = q.figures_of(doc, (a.values for a in answers))
    folded: dict[q.Area, dict[str, Any]] = {}
    for start in range(0, 60, 7):  # arriving in batches, folded into each grid's figures
        for area, figures in q.by_grid(doc, answers[start:start + 7]).items():
            q.merge(folded.setdefault(area, q.figures_of(doc, ())), figures)
    total = q.figures_of(doc, ())
    for figures in folded.values():
        q.merge(total, figures)
    assert total == whole
    assert q.summarise_grids(doc, folded, "community") == q.summarise(doc, answers, "community")
