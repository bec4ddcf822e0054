"""Questionnaires (问卷调查): what a definition holds, which answers it takes, and how answers are
summed up. Pure: the store's side is server/sync/questionnaires.py.

1. A definition (问卷). A title, an audience as a notice's (server/domain/audience.py: city,
   streets, communities, grids or buildings, narrowed by tags; the author's scope decides as
   for notices), `per`: one answer per resident (`resident`) or per household (`household`),
   `anonymous` or named, a closing time, and 1..MAX_QUESTIONS questions. A question has a
   `name` (a short code, unique), a `label` (what people read), a `kind` (KINDS: single
   choice, multiple choice, text, number, date, 1-5 rating), `required`, choices for the
   choice kinds (2..MAX_CHOICES, values unique), bounds for numbers (`integer`, `min`,
   `max`), and a skip rule `show_if: {question, op: "=" | "!=", value}` naming an EARLIER
   question (no cycles, no forward reference): the question is shown only when that one is
   shown and its answer compares as said (a multiple choice "equals" x when x is among the
   picks; an unanswered question equals nothing).
2. Versions (版本). A definition is stored published and never changes: its id is
   `questionnaire:<key>-v<version>`, and a correction is a new version replacing it (the old
   one's status becomes `replaced`; closing makes it `closed`). `change_problems` says what a
   stored definition may become: only its status, published -> closed or replaced, once.
   Answers name the version they answer; the one-answer rule counts across versions (the
   subject is the key, not the version).
3. An answer (答卷), `answer_problems`: an object of question name -> value, nothing else.
   Values by kind: single: one of the choices' values; multiple: a list of distinct values
   of the choices; text: plain text (server/domain/text.py) of at most MAX_TEXT characters;
   number: a JSON number (not a boolean, not text), finite, whole when `integer`, within
   `min`/`max`; date: `YYYY-MM-DD`, a real day; rating: a whole number 1..5. A question the
   skip logic hides has its answer DROPPED (an offline phone that answered it before the
   answer it hangs on changed sends it in good faith); a shown required question must be
   answered; a name that is no question is refused. Errors name the question by its label.
4. Results (结果), `summarise`: per question, the count of each choice (multiple: of each pick)
   or rating, the count, sum, min and max of numbers, the count of dates by month, the count
   of texts (their words are in the export, not on a chart). By area (grid, community,
   street: where the answering household lives) with the small-count rule (`suppress`):
   an area with fewer than SMALL answers shows none of its figures; within an area shown, a
   count 0 < n < SMALL is withheld; and wherever exactly one figure of a group that sums up
   (an area among its parent's areas, a choice among its question's choices) is withheld, the
   smallest other one is withheld too, so that no withheld count is a subtraction away.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from server.domain.audience import audience_problems
from server.domain.exports import safe_row
from server.domain.figures import SMALL
from server.domain.rules import Problem
from server.domain.text import Label, text_problem, unknown_fields
from server.domain.votes import when

Kind = Literal["single", "multiple", "text", "number", "date", "rating"]
KINDS: tuple[Kind, ...] = ("single", "multiple", "text", "number", "date", "rating")
KIND_LABELS: dict[str, Label] = {
    "single": ("单选", "single choice"), "multiple": ("多选", "multiple choice"),
    "text": ("文字", "text"), "number": ("数字", "number"), "date": ("日期", "date"),
    "rating": ("1-5 评分", "1-5 rating")}
PER = ("resident", "household")
STATUSES = ("published", "closed", "replaced")
OPS = ("=", "!=")
MAX_QUESTIONS = 100
MAX_CHOICES = 50
MAX_LABEL = 200
MAX_TITLE = 60
MAX_DESCRIPTION = 2_000
MAX_TEXT = 2_000  # an answer's text: a paragraph or a few, not a document
MAX_BOUND = 1e12  # numbers beyond are typos, and beyond a float's exact integers soon
RATING = (1, 5)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")  # an XLSForm name
CHOICE_VALUE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
KEY = re.compile(r"^[0-9a-f]{16}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFINITION_FIELDS = frozenset({"title", "description", "audience", "per", "anonymous",
                               "closes_at", "questions"})
QUESTION_FIELDS = frozenset({"name", "label", "kind", "required", "choices", "integer", "min",
                             "max", "show_if"})
LABELS: dict[str, Label] = {
    "title": ("标题", "Title"), "description": ("说明", "Description"),
    "audience": ("发布范围", "Audience"), "per": ("填写方式", "One answer per"),
    "anonymous": ("匿名", "Anonymous"), "closes_at": ("截止时间", "Closes at"),
    "questions": ("题目", "Questions"),
}


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    """A problem of a definition field, named by its label."""
    lzh, len_ = LABELS.get(field, (field, field))
    return Problem(f"/{field}", code, f"“{lzh}”{zh}", f"{len_} {en}")


def asked(question: Mapping[str, Any], code: str, zh: str, en: str) -> Problem:
    """A problem of one question (of the definition or of its answer), named by its label."""
    label = str(question.get("label") or question.get("name") or "?")[:MAX_LABEL]
    return Problem(f"/{question.get('name', '')}", code, f"“{label}”{zh}", f"“{label}” {en}")


# -- definitions --------------------------------------------------------------------------------

def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value) and abs(value) <= MAX_BOUND


def definition_problems(draft: Any, now: datetime.datetime) -> list[Problem]:
    """Rule 1: everything wrong with a definition as a supervisor (or an XLSForm) sends it."""
    if not isinstance(draft, Mapping):
        return [problem("questions", "object", "应为问卷", "must be a questionnaire")]
    problems = unknown_fields(draft, DEFINITION_FIELDS)
    for field, limit, required in (("title", MAX_TITLE, True),
                                   ("description", MAX_DESCRIPTION, False)):
        if field in draft or required:
            found = text_problem(draft.get(field), f"/{field}", LABELS[field], max_chars=limit,
                                 min_chars=1 if required else 0, paragraphs=field != "title")
            if found is not None:
                problems.append(found)
    problems += audience_problems(draft.get("audience"))
    if isinstance(draft.get("audience"), Mapping):
        problems += unknown_fields(draft["audience"], frozenset({"level", "codes", "tags"}))
    if draft.get("per") not in PER:
        problems.append(problem("per", "per", "应为每人一份或每户一份",
                                "must be per resident or per household"))
    if not isinstance(draft.get("anonymous"), bool):
        problems.append(problem("anonymous", "boolean", "应为是或否", "must be yes or no"))
    closes = when(draft.get("closes_at"))
    if closes is None:
        problems.append(problem("closes_at", "date_time", "应为带时区的时间",
                                "must be a time with its zone"))
    elif closes <= now:
        problems.append(problem("closes_at", "past", "应晚于现在", "must be in the future"))
    problems += questions_problems(draft.get("questions"))
    return problems


def questions_problems(questions: Any) -> list[Problem]:
    """Rule 1 for the questions: shapes, unique names, choices, bounds, skip rules backwards."""
    if not isinstance(questions, list) or not 1 <= len(questions) <= MAX_QUESTIONS:
        return [problem("questions", "count", f"应有 1 到 {MAX_QUESTIONS} 道",
                        f"must be 1 to {MAX_QUESTIONS}")]
    problems: list[Problem] = []
    earlier: dict[str, Mapping[str, Any]] = {}
    for question in questions:
        if not isinstance(question, Mapping):
            problems.append(problem("questions", "object", "中有一项不是题目",
                                    "hold something that is no question"))
            continue
        problems += question_problems(question, earlier)
        if isinstance(question.get("name"), str):
            earlier[question["name"]] = question
    return problems


def question_problems(question: Mapping[str, Any],
                      earlier: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    problems = unknown_fields(question, QUESTION_FIELDS)
    name = question.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(asked(question, "name", "的编号应为字母开头的字母、数字或下划线（≤40）",
                              "needs a name of letters, digits or _ (≤ 40), starting with a "
                              "letter"))
    elif name in earlier:
        problems.append(asked(question, "name_taken", "的编号与前面的题目重复",
                              "has the name of an earlier question"))
    label = text_problem(question.get("label"), f"/{name}", ("题目", "Question"),
                         max_chars=MAX_LABEL)
    if label is not None:
        problems.append(label)
    kind = question.get("kind")
    if kind not in KINDS:
        problems.append(asked(question, "kind", "的题型无效", "has an unknown kind"))
        return problems
    if not isinstance(question.get("required", False), bool):
        problems.append(asked(question, "required", "的“必答”应为是或否",
                              "“required” must be yes or no"))
    problems += _choices_problems(question, kind)
    problems += _bounds_problems(question, kind)
    if "show_if" in question:
        problems += _show_if_problems(question, earlier)
    return problems


def _choices_problems(question: Mapping[str, Any], kind: str) -> list[Problem]:
    choices = question.get("choices")
    if kind not in ("single", "multiple"):
        return [] if choices is None else [asked(question, "choices", "不是选择题，不能有选项",
                                                 "is no choice question: no choices")]
    if not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES:
        return [asked(question, "choices", f"应有 2 到 {MAX_CHOICES} 个选项",
                      f"needs 2 to {MAX_CHOICES} choices")]
    seen: set[str] = set()
    for choice in choices:
        if not isinstance(choice, Mapping) or set(choice) != {"value", "label"} or not (
                isinstance(choice["value"], str) and CHOICE_VALUE.match(choice["value"])) or (
                text_problem(choice["label"], "/", ("选项", "Choice"), max_chars=MAX_LABEL)):
            return [asked(question, "choice", "的选项应有编号（字母、数字）和文字",
                          "has a choice without a value (letters, digits) and a label")]
        if choice["value"] in seen:
            return [asked(question, "choice_taken", f"的选项编号 {choice['value']} 重复",
                          f"has the choice value {choice['value']} twice")]
        seen.add(choice["value"])
    return []


def _bounds_problems(question: Mapping[str, Any], kind: str) -> list[Problem]:
    bounds = [k for k in ("integer", "min", "max") if k in question]
    if kind != "number":
        return [asked(question, "bounds", "不是数字题，不能设范围",
                      "is no number question: no bounds")] if bounds else []
    if "integer" in question and not isinstance(question["integer"], bool):
        return [asked(question, "integer", "的“整数”应为是或否", "“integer” must be yes or no")]
    low, high = question.get("min"), question.get("max")
    if any(v is not None and not is_number(v) for v in (low, high)) or (
            low is not None and high is not None and low > high):
        return [asked(question, "bounds", "的范围无效", "has wrong bounds")]
    return []


def _show_if_problems(question: Mapping[str, Any],
                      earlier: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    rule = question["show_if"]
    if not isinstance(rule, Mapping) or set(rule) != {"question", "op", "value"} or rule[
            "op"] not in OPS:
        return [asked(question, "show_if", "的显示条件应为“某题 = 或 != 某值”",
                      "has a skip rule that is not “question = or != value”")]
    target = earlier.get(rule["question"]) if isinstance(rule["question"], str) else None
    if target is None:
        return [asked(question, "show_if", "的显示条件只能引用前面的题目",
                      "has a skip rule naming no earlier question")]
    value, kind = rule["value"], target.get("kind")
    if kind in ("single", "multiple"):
        fits = value in {c.get("value") for c in target.get("choices") or ()
                         if isinstance(c, Mapping)}
    elif kind in ("number", "rating"):
        fits = is_number(value)
    else:
        fits = isinstance(value, str) and 0 < len(value) <= MAX_LABEL
    if not fits:
        return [asked(question, "show_if", "的显示条件中的值不是所引用题目的有效答案",
                      "has a skip rule whose value the question named cannot take")]
    return []


def definition_doc(draft: Mapping[str, Any], author: str, key: str, version: int,
                   now: datetime.datetime) -> dict[str, Any]:
    """The stored definition (rule 2) from a draft that passed `definition_problems`."""
    doc: dict[str, Any] = {
        "_id": definition_id(key, version), "type": "questionnaire", "schema_version": 1,
        "created_by": author, "key": key, "version": version, "title": draft["title"],
        "audience": dict(draft["audience"]), "per": draft["per"],
        "anonymous": draft["anonymous"], "closes_at": draft["closes_at"],
        "questions": [dict(q) for q in draft["questions"]], "status": "published",
        "published_at": now.isoformat(timespec="seconds")}
    if draft.get("description"):
        doc["description"] = draft["description"]
    return doc


def definition_id(key: str, version: int) -> str:
    return f"questionnaire:{key}-v{version}"


def subject(key: str) -> str:
    """What the one-answer rule counts by (server/domain/allocation.py): the key, all versions."""
    return f"questionnaire:{key}"


def answers_db(key: str) -> str:
    """A questionnaire's own database of answers (internal: reached through its routes)."""
    return f"linli-questionnaire-{key}"


def household_claimant(household: str) -> str:
    """A household as the one-answer rule's claimant (a user name's shape): a digest, so that
    the claims database does not list which households answered by their ids."""
    return "h." + hashlib.sha256(f"household\x1f{household}".encode()).hexdigest()[:24]


def change_problems(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[Problem]:
    """Rule 2: a stored definition changes only its status, published -> closed or replaced."""
    changed = sorted(k for k in set(stored) | set(wanted)
                     if not k.startswith("_") and k not in ("status", "replaced_by", "closed_at")
                     and stored.get(k) != wanted.get(k))
    if changed:
        return [problem("questions", "published", "：已发布的问卷不能修改，只能发布新版本替换",
                        ": a published questionnaire cannot change, only be replaced by a new "
                        "version")]
    if stored.get("status") != wanted.get("status") and (
            stored.get("status") != "published" or wanted.get("status") not in STATUSES):
        return [problem("questions", "status", "：已截止或已替换的问卷不能再改变状态",
                        ": a closed or replaced questionnaire stays so")]
    return []


def is_open(definition: Mapping[str, Any], now: datetime.datetime) -> bool:
    closes = when(definition.get("closes_at"))
    return definition.get("status") == "published" and closes is not None and now < closes


# -- answers -----------------------------------------------------------------------------------

def shown(question: Mapping[str, Any], answers: Mapping[str, Any],
          visible: Mapping[str, bool]) -> bool:
    """Rule 1's skip logic: whether `question` is shown given the answers kept so far."""
    rule = question.get("show_if")
    if not isinstance(rule, Mapping):
        return True
    target = rule.get("question")
    if not visible.get(target, False) or target not in answers:
        return rule.get("op") == "!=" and visible.get(target, False)
    given = answers[target]
    equal = rule.get("value") in given if isinstance(given, list) else given == rule.get("value")
    return equal if rule.get("op") == "=" else not equal


def answer_problems(definition: Mapping[str, Any],
                    answers: Any) -> tuple[dict[str, Any], list[Problem]]:
    """Rule 3: the answers kept (hidden questions' dropped) and every problem of the rest."""
    if not isinstance(answers, Mapping):
        return {}, [Problem("/answers", "object", "“答案”应为各题的回答",
                            "Answers must be the questions' answers")]
    questions = [q for q in definition.get("questions", ()) if isinstance(q, Mapping)]
    known = {str(q.get("name")) for q in questions}
    problems = unknown_fields(answers, frozenset(known))
    kept: dict[str, Any] = {}
    visible: dict[str, bool] = {}
    for question in questions:
        name = str(question["name"])
        visible[name] = shown(question, kept, visible)
        value = answers.get(name)
        if not visible[name] or value is None or value == "" or value == []:
            if visible[name] and question.get("required"):
                problems.append(asked(question, "required", "为必答题", "must be answered"))
            continue
        found = value_problem(question, value)
        if found is not None:
            problems.append(found)
        else:
            kept[name] = value
    return kept, problems


def value_problem(question: Mapping[str, Any], value: Any) -> Problem | None:
    """Rule 3's types, one question."""
    kind = question.get("kind")
    values = [c["value"] for c in question.get("choices") or ()]
    if kind == "single":
        if not isinstance(value, str) or value not in values:
            return asked(question, "choice", "应选一个给出的选项", "must be one of its choices")
    elif kind == "multiple":
        if not isinstance(value, list) or len(value) > len(values) or any(
                not isinstance(v, str) or v not in values for v in value) or len(
                set(value)) != len(value):
            return asked(question, "choices", "应选给出的选项（不重复）",
                         "must be some of its choices, each once")
    elif kind == "text":
        label = str(question.get("label", ""))
        return text_problem(value, f"/{question['name']}", (label, f"“{label}”"),
                            max_chars=MAX_TEXT, paragraphs=True)
    elif kind == "number":
        return _number_problem(question, value)
    elif kind == "date":
        if not isinstance(value, str) or not DATE.match(value) or _day(value) is None:
            return asked(question, "date", "应为日期（年-月-日）", "must be a date (YYYY-MM-DD)")
    elif kind == "rating" and (not isinstance(value, int) or isinstance(value, bool) or not (
            RATING[0] <= value <= RATING[1])):
        return asked(question, "rating", "应为 1 到 5 分", "must be a rating from 1 to 5")
    return None


def _day(value: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


def _number_problem(question: Mapping[str, Any], value: Any) -> Problem | None:
    if not is_number(value):
        return asked(question, "number", "应为数字", "must be a number")
    if question.get("integer") and not float(value).is_integer():
        return asked(question, "integer", "应为整数", "must be a whole number")
    low, high = question.get("min"), question.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        return asked(question, "range", f"应在 {low if low is not None else '…'} 到 "
                     f"{high if high is not None else '…'} 之间",
                     f"must be between {low if low is not None else '…'} and "
                     f"{high if high is not None else '…'}")
    return None


# -- results -----------------------------------------------------------------------------------

Area = tuple[str, str, str]
"""Where an answer's household lives: (street, community, grid)."""
AREA_LEVELS = ("street", "community", "grid")


@dataclasses.dataclass(frozen=True)
class Answer:
    """One answer as results read it: where it comes from and what it says (never who)."""

    area: Area
    values: Mapping[str, Any]


def figures_of(definition: Mapping[str, Any],
               answers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Rule 4's counts for one group of answers: `answers` (count) and, per question, `n` and
    its breakdown (`counts` of values, or a number's sum, min and max)."""
    questions = [q for q in definition.get("questions", ()) if isinstance(q, Mapping)]
    out: dict[str, dict[str, Any]] = {}
    for q in questions:
        name, kind = str(q["name"]), q.get("kind")
        if kind in ("single", "multiple"):
            out[name] = {"n": 0, "counts": {str(c["value"]): 0 for c in q.get("choices", ())}}
        elif kind == "rating":
            out[name] = {"n": 0, "counts": {str(i): 0 for i in range(RATING[0], RATING[1] + 1)}}
        elif kind == "date":
            out[name] = {"n": 0, "counts": {}}
        elif kind == "number":
            out[name] = {"n": 0, "sum": 0.0, "min": None, "max": None}
        else:
            out[name] = {"n": 0}
    total = 0
    for values in answers:
        total += 1
        for name, value in values.items():
            figure = out.get(name)
            if figure is None:
                continue
            figure["n"] += 1
            if "counts" in figure:
                counts = figure["counts"]
                for item in (value if isinstance(value, list) else [value]):
                    key = str(item)[:7] if isinstance(item, str) and DATE.match(item) else str(
                        item)
                    counts[key] = counts.get(key, 0) + 1
            elif "sum" in figure and is_number(value):
                figure["sum"] += value
                figure["min"] = value if figure["min"] is None else min(figure["min"], value)
                figure["max"] = value if figure["max"] is None else max(figure["max"], value)
    return {"answers": total, "questions": out}


def merge(into: dict[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    """Two groups' figures (figures_of) as one: counts and sums add, min and max widen. So
    figures kept per grid as answers arrive add up to any area's, and to the whole."""
    into["answers"] = into.get("answers", 0) + more.get("answers", 0)
    mine = into.setdefault("questions", {})
    for name, figure in more.get("questions", {}).items():
        held = mine.setdefault(name, {"n": 0})
        held["n"] = held.get("n", 0) + figure.get("n", 0)
        if "counts" in figure:
            counts = held.setdefault("counts", {})
            for key, n in figure["counts"].items():
                counts[key] = counts.get(key, 0) + n
        if "sum" in figure:
            held["sum"] = (held.get("sum") or 0.0) + (figure.get("sum") or 0.0)
            for bound, pick in (("min", min), ("max", max)):
                given = [v for v in (held.get(bound), figure.get(bound)) if v is not None]
                held[bound] = pick(given) if given else None
    return into


def by_grid(definition: Mapping[str, Any], answers: Iterable[Answer]) -> dict[Area, dict[str, Any]]:
    """Each grid's figures: what the store's side keeps as answers arrive."""
    grouped: dict[Area, list[Mapping[str, Any]]] = {}
    for a in answers:
        grouped.setdefault(a.area, []).append(a.values)
    return {area: figures_of(definition, values) for area, values in grouped.items()}


def summarise(definition: Mapping[str, Any], answers: Sequence[Answer],
              level: str | None = None, small: int = SMALL) -> dict[str, Any]:
    """Rule 4: the whole questionnaire's figures, and with `level` each area's, suppressed."""
    return summarise_grids(definition, by_grid(definition, answers), level, small)


def summarise_grids(definition: Mapping[str, Any], grids: Mapping[Area, Mapping[str, Any]],
                    level: str | None = None, small: int = SMALL) -> dict[str, Any]:
    """Rule 4 from each grid's figures (by_grid, or kept as answers arrived)."""
    whole = figures_of(definition, ())
    areas: dict[tuple[str, ...], dict[str, Any]] = {}
    depth = AREA_LEVELS.index(level) if level is not None else 0
    for area, figures in sorted(grids.items()):
        merge(whole, figures)
        if level is not None:
            path = tuple(area[:depth + 1])
            merge(areas.setdefault(path, figures_of(definition, ())), figures)
    result: dict[str, Any] = {"answers": whole["answers"], "questions": whole["questions"]}
    suppress_counts(result["questions"], small, whole["answers"])
    if level is None:
        return result
    withheld = suppress_areas({p: f["answers"] for p, f in areas.items()}, small)
    listed = []
    for path, figures in sorted(areas.items()):
        if path in withheld:
            listed.append({"code": path[-1], "parent": path[-2] if depth else "",
                           "withheld": True})
            continue
        suppress_counts(figures["questions"], small, figures["answers"])
        listed.append({"code": path[-1], "parent": path[-2] if depth else "",
                       "withheld": False, **figures})
    result["level"], result["areas"] = level, listed
    return result


def _complement(cells: Mapping[Any, int], withheld: set[Any]) -> None:
    """Exactly one withheld in a group that sums up: the smallest other count goes too."""
    if len(withheld) == 1:
        others = sorted((v == 0, v, str(k), k) for k, v in cells.items() if k not in withheld)
        if others:
            withheld.add(others[0][3])


def suppress_areas(counts: Mapping[tuple[str, ...], int], small: int) -> set[tuple[str, ...]]:
    """Areas with 0 < answers < small, and a partner wherever one of a parent is alone."""
    withheld: set[tuple[str, ...]] = set()
    by_parent: dict[tuple[str, ...], dict[tuple[str, ...], int]] = {}
    for path, n in counts.items():
        by_parent.setdefault(path[:-1], {})[path] = n
    for siblings in by_parent.values():
        mine = {p for p, n in siblings.items() if 0 < n < small}
        _complement(siblings, mine)
        withheld |= mine
    return withheld


def suppress_counts(questions: dict[str, dict[str, Any]], small: int, answers: int) -> None:
    """Within a group shown: counts 0 < n < small become None, with a partner when alone; a
    number's min and max go when fewer than `small` answered (one answer's is that answer)."""
    for figure in questions.values():
        counts = figure.get("counts")
        if isinstance(counts, dict):
            mine = {k for k, v in counts.items() if 0 < v < small}
            _complement(counts, mine)
            for key in mine:
                counts[key] = None
        if "sum" in figure and figure["n"] < small:
            figure.update({"sum": None, "min": None, "max": None})
        if 0 < figure["n"] < small and figure["n"] != answers:
            figure["n"] = None


# -- the export --------------------------------------------------------------------------------

def export_rows(definition: Mapping[str, Any], stored: Iterable[Mapping[str, Any]],
                unmasked: bool, mask_text: Callable[[Any], Any]) -> list[list[Any]]:
    """The answers as sheet rows: the area, the household (named questionnaires only, masked
    to its grid and last two digits unless `unmasked`), then each question by its label; a
    text answer through `mask_text` (phone and ID numbers in it) unless `unmasked`, and every
    cell safe from formulas (exports.safe_row)."""
    questions = [q for q in definition.get("questions", ()) if isinstance(q, Mapping)]
    named = not definition.get("anonymous")
    head = ["街道 Street", "社区 Community", "网格 Grid", *(["住户 Household"] if named else []),
            *(str(q.get("label")) for q in questions)]
    rows = [safe_row(head)]
    labels = {str(q["name"]): {str(c["value"]): str(c["label"]) for c in q.get("choices", ())}
              for q in questions}
    ordered = sorted(stored, key=lambda a: (str(a.get("area", {}).get("grid")),
                                            str(a.get("_id"))))
    for answer in ordered:
        area = answer.get("area") or {}
        values = answer.get("answers") or {}
        cells: list[Any] = [area.get("street"), area.get("community"), area.get("grid")]
        if named:
            household = str(answer.get("household", ""))
            cells.append(household if unmasked else household[:-2] + "**")
        for q in questions:
            value = values.get(str(q["name"]))
            choices = labels[str(q["name"])]
            if isinstance(value, list):
                value = "；".join(choices.get(str(v), str(v)) for v in value)
            elif choices and value is not None:
                value = choices.get(str(value), str(value))
            elif q.get("kind") == "text" and not unmasked:
                value = mask_text(value)
            cells.append(value)
        rows.append(safe_row(cells))
    return rows
