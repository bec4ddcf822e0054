"""XLSForm import (导入 XLSForm 问卷): the survey and choices sheets of an ODK or Kobo form, as
rows already read from the workbook, made into a questionnaire's questions
(server/domain/questionnaires.py), so that offices reuse the forms they have. Pure: the web
layer reads the workbook (openpyxl) and hands the rows here.

The subset taken, and nothing else (a form using more is refused, each time with its sheet,
its row as the spreadsheet numbers it, and the reason):
- survey columns: `type`, `name`, `label` (or `label::<language>`: the first of them, zh
  preferred), `required`, `relevant`, and `hint` (read, not kept: it explains, it decides
  nothing). Any other column with a value in some row is refused (a `constraint`, a
  `calculation`, a `choice_filter` changes what the form means).
- types: text, integer (a number, whole), decimal (a number), date, `select_one <list>`,
  `select_multiple <list>`. The metadata ODK fills in by itself (start, end, today,
  deviceid...) is skipped: it is no question to a resident. Groups, repeats, notes,
  calculations and every other type are refused.
- required: yes/true/1 (or empty, no/false/0).
- relevant: one comparison of an earlier question with a value, `${a} = 'x'`, `${a} != 'x'`,
  `${a} = 3`, or `selected(${a}, 'x')` (a multiple choice holding x). `and`, `or`, and
  anything more is refused.
- choices columns: `list_name`, `name`, `label` (or `label::<language>`); a list a select
  names must exist, with 2 or more choices.
- settings (optional): `form_title` becomes the title.
The questions made are then checked by the questionnaire's own rules, so a label too long or a
skip rule with a value its question cannot take is refused like a hand-made one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from server.domain import questionnaires
from server.domain.rules import Problem

Rows = Sequence[Sequence[Any]]
MAX_ROWS = 1_000  # a questionnaire of more rows is a census, not a survey
METADATA = frozenset({"start", "end", "today", "deviceid", "subscriberid", "simserial",
                      "phonenumber", "username", "email", "audit", "start-geopoint"})
TYPES = {"text": "text", "integer": "number", "decimal": "number", "date": "date"}
SURVEY_COLUMNS = frozenset({"type", "name", "label", "required", "relevant", "hint"})
CHOICE_COLUMNS = frozenset({"list_name", "name", "label"})
YES, NO = frozenset({"yes", "true", "1", "true()"}), frozenset({"", "no", "false", "0",
                                                               "false()"})
_VALUE = r"(?:'(?P<s>[^']*)'|\"(?P<d>[^\"]*)\"|(?P<n>-?\d+(?:\.\d+)?))"
RELEVANT = re.compile(r"^\s*\$\{(?P<q>[A-Za-z_][A-Za-z0-9_]*)\}\s*(?P<op>!=|=)\s*" + _VALUE
                      + r"\s*$")
SELECTED = re.compile(r"^\s*selected\(\s*\$\{(?P<q>[A-Za-z_][A-Za-z0-9_]*)\}\s*,\s*" + _VALUE
                      + r"\s*\)\s*$")


def row_problem(sheet: str, row: int, zh: str, en: str) -> Problem:
    return Problem(f"/{sheet}/{row}", "xlsform", f"{sheet} 表第 {row} 行：{zh}",
                   f"sheet {sheet}, row {row}: {en}")


def cell(value: Any) -> str:
    """A cell as text: numbers as typed (1, not 1.0), nothing as ""."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def header(rows: Rows) -> tuple[dict[str, int], dict[str, int]]:
    """Column -> index of the first row, and the label column (label, or label::<lang>, zh
    first) under the name `label`."""
    names = [cell(v) for v in rows[0]] if rows else []
    columns = {n: i for i, n in reversed(list(enumerate(names))) if n}
    labels = [n for n in names if n.lower().startswith("label::")]
    labels.sort(key=lambda n: (not re.search(r"zh|chinese|中文", n, re.I), names.index(n)))
    if "label" not in columns and labels:
        columns["label"] = columns[labels[0]]
    extra = {n: i for n, i in columns.items()
             if n.split("::")[0] not in ("label", "hint")}
    return columns, extra


def records(rows: Rows, columns: Mapping[str, int]) -> list[tuple[int, dict[str, str]]]:
    """(spreadsheet row number, {column: text}) of every row with a value."""
    out = []
    for number, row in enumerate(rows[1:], start=2):
        found = {name: cell(row[i]) if i < len(row) else "" for name, i in columns.items()}
        if any(found.values()):
            out.append((number, found))
    return out


def choice_lists(choices: Rows) -> tuple[dict[str, list[dict[str, str]]], list[Problem]]:
    columns, extra = header(choices)
    problems = [row_problem("choices", 1, f"不支持的列 {name}", f"column {name} is not in the "
                            "subset taken") for name in extra if name not in CHOICE_COLUMNS
                and any(i < len(r) and cell(r[i]) for r in choices[1:] for i in [extra[name]])]
    lists: dict[str, list[dict[str, str]]] = {}
    for number, found in records(choices, columns):
        if not found.get("list_name") or not found.get("name"):
            problems.append(row_problem("choices", number, "缺少 list_name 或 name",
                                        "list_name or name missing"))
            continue
        lists.setdefault(found["list_name"], []).append(
            {"value": found["name"], "label": found.get("label") or found["name"]})
    return lists, problems


def skip_rule(text: str) -> dict[str, Any] | None:
    """A relevant expression of the subset as a `show_if`, or None."""
    match = RELEVANT.match(text) or SELECTED.match(text)
    if match is None:
        return None
    if match["n"] is not None:
        value: Any = float(match["n"]) if "." in match["n"] else int(match["n"])
    else:
        value = match["s"] if match["s"] is not None else match["d"]
    op = "=" if match.re is SELECTED else match["op"]
    return {"question": match["q"], "op": op, "value": value}


def from_sheets(survey: Rows, choices: Rows, settings: Rows = ()) -> tuple[
        dict[str, Any], list[Problem]]:
    """The draft's title and questions from the sheets, and every problem, by row."""
    if len(survey) > MAX_ROWS or len(choices) > MAX_ROWS:
        return {}, [row_problem("survey", MAX_ROWS, f"超过 {MAX_ROWS} 行",
                                f"more than {MAX_ROWS} rows")]
    columns, extra = header(survey)
    problems = [row_problem("survey", 1, "缺少 type 或 name 列", "no type or name column")
                ] if not {"type", "name"} <= set(columns) else []
    lists, problems_of_choices = choice_lists(choices)
    problems += problems_of_choices
    used = {name for name, i in extra.items()
            if name not in SURVEY_COLUMNS and any(i < len(r) and cell(r[i]) for r in survey[1:])}
    problems += [row_problem("survey", 1, f"不支持的列 {name}",
                             f"column {name} is not in the subset taken") for name in sorted(used)]
    questions: list[dict[str, Any]] = []
    for number, found in records(survey, columns) if not problems else ():
        made = question_of(number, found, lists, problems)
        if made is not None:
            questions.append(made)
    draft: dict[str, Any] = {"questions": questions}
    title = ""
    if len(settings) > 1:
        columns_s, _ = header(settings)
        at = columns_s.get("form_title")
        title = cell(settings[1][at]) if at is not None and at < len(settings[1]) else ""
    if title:
        draft["title"] = title
    if not problems:
        problems += questionnaires.questions_problems(questions)
    return draft, problems


def question_of(number: int, found: Mapping[str, str], lists: Mapping[str, list[Any]],
                problems: list[Problem]) -> dict[str, Any] | None:
    """One survey row as a question (None: skipped metadata, or refused into `problems`)."""
    kind_text = found.get("type", "")
    words = kind_text.split()
    if kind_text in METADATA:
        return None
    if not words or (words[0] not in TYPES and words[0] not in ("select_one",
                                                                "select_multiple")):
        problems.append(row_problem("survey", number, f"不支持的题型“{kind_text[:40]}”",
                                    f"type “{kind_text[:40]}” is not in the subset taken"))
        return None
    question: dict[str, Any] = {"name": found.get("name", ""),
                                "label": found.get("label") or found.get("name", "")}
    if words[0] in TYPES:
        if len(words) != 1:
            problems.append(row_problem("survey", number, "题型后不应有其他内容",
                                        "the type takes nothing after it"))
            return None
        question["kind"] = TYPES[words[0]]
        if words[0] == "integer":
            question["integer"] = True
    else:
        if len(words) != 2 or words[1] not in lists:
            problems.append(row_problem("survey", number, "选项列表不存在（choices 表）",
                                        "its list of choices is not on the choices sheet"))
            return None
        question["kind"] = "single" if words[0] == "select_one" else "multiple"
        question["choices"] = lists[words[1]]
    required = found.get("required", "").lower()
    if required not in YES | NO:
        problems.append(row_problem("survey", number, "required 应为 yes 或 no",
                                    "required must be yes or no"))
        return None
    question["required"] = required in YES
    relevant = found.get("relevant", "")
    if relevant:
        rule = skip_rule(relevant)
        if rule is None:
            problems.append(row_problem(
                "survey", number, f"relevant 只支持简单比较，如 ${{a}} = 'x'：{relevant[:80]}",
                f"relevant takes one simple comparison such as ${{a}} = 'x': {relevant[:80]}"))
            return None
        question["show_if"] = rule
    return question
