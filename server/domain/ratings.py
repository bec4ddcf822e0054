"""Service ratings of property companies (物业服务评价), their score, the red and black lists
(红黑榜) and the credit grade (信用等级). Pure rules: no I/O (server/sync/ratings.py is the
store's side; the formula is data, `schemas/rating_formula.json`).

1. Who rates. One rating per household (户: one exclusive unit on the property register, so
   every phone of every owner of it is the same household) per bill period, of the property
   company named on that period's roll of its compound; only when that bill is paid or the
   unit is exempt (免缴) on the roll (`may_rate`). The first rating the server receives of a
   unit and period counts; a later one (another phone, a replay under a new id) is told
   已评价. That order is the allocation's (server/domain/allocation.py): never counted here.
2. What a rating is. 1–5, whole numbers, on each aspect (保洁 cleaning, 安保 security, 维修
   repairs, 服务态度 attitude) and a comment of at most `COMMENT_CHARS` plain characters
   (server/domain/text.py). Nothing else: the household, compound, company and period come
   from the bill, never from the body.
3. The score of a company for a period (`score`), 0–100, the formula's weighted sum of three
   parts (`Formula`): ratings (the mean weighted aspect, 1 → 0, 5 → 100), complaints (problem
   reports of category 物业服务 in its compounds submitted in the period, per 100 billed units)
   and their handling time (mean hours to 已办结; an open one counts as the worst). Fewer
   than `min_ratings` ratings: no score (not enough to judge), and on no list.
4. The lists (`lists`): red (红榜) when the score and every part reach the formula's red
   thresholds, the best first; black (黑榜) when the score or any part falls below the black
   thresholds, the worst first; each at most `max_companies`; each listed company with the
   reasons that put it there, in words.
5. The credit grade (`grade`): from the mean of the company's scores over the last
   `grade_periods` periods of the same kind up to this one (`last_periods`), periods without
   a score left out; the first band whose `min_score` it reaches (A–D). None without a score.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from server.domain.fees import PERIOD
from server.domain.messages import bilingual
from server.domain.rules import Problem
from server.domain.text import text_problem, unknown_fields

ASPECTS: dict[str, tuple[str, str]] = {"cleaning": ("保洁", "Cleaning"),
                                       "security": ("安保", "Security"),
                                       "repairs": ("维修", "Repairs"),
                                       "attitude": ("服务态度", "Attitude")}
PARTS: dict[str, tuple[str, str]] = {"ratings": ("居民评价", "Residents' ratings"),
                                     "complaints": ("物业服务投诉", "Complaints"),
                                     "handling": ("投诉办理时长", "Handling time")}
COMMENT_CHARS = 500
ANSWER_CHARS = 1000
REQUEST = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
FIELDS = frozenset({"request", "scores", "comment"})
LABELS = {"request": ("请求编号", "Request id"), "scores": ("评分", "Scores"),
          "comment": ("意见", "Comment"), "text": ("回应", "Answer"),
          "period": ("账期", "Period"), "company": ("物业公司", "Property company")}
COMPLAINT_CATEGORY = "property_service"  # 物业服务 (server/domain/reports.py)
TOLD = {"counted": ("评价已提交，谢谢", "Rating sent: thank you"),
        "rated_already": ("已评价：本户本期已评价过", "Already rated: your household has rated "
                                                 "this period")}


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    lz, le = LABELS.get(field, ASPECTS.get(field, (field, field)))
    return Problem(f"/{field}", code, f"“{lz}”{zh}", f"{le} {en}")


# -- rule 1 and 2: who rates, what a rating is ------------------------------------------------

def may_rate(paid: bool, exempt: bool) -> bool:
    """Rule 1: a household rates a period it has paid, or is exempt from."""
    return paid or exempt


def rating_problems(body: Mapping[str, Any]) -> list[Problem]:
    """Rule 2: what is wrong with a rating as a phone sends it (every field by its label)."""
    found = unknown_fields(body, FIELDS)
    request = body.get("request")
    if not isinstance(request, str) or not REQUEST.match(request):
        found.append(problem("request", "request", "应为 8–64 个字母、数字、_ 或 -",
                             "must be 8–64 letters, digits, _ or -"))
    scores = body.get("scores")
    if not isinstance(scores, Mapping):
        found.append(problem("scores", "type", "应为各项 1–5 分",
                             "must give each aspect 1–5"))
    else:
        found += unknown_fields(scores, frozenset(ASPECTS))
        for aspect in ASPECTS:
            value = scores.get(aspect)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
                found.append(problem(aspect, "range", "应为 1 至 5 的整数",
                                     "must be a whole number from 1 to 5"))
    comment = body.get("comment", "")
    wrong = text_problem(comment, "/comment", LABELS["comment"], max_chars=COMMENT_CHARS,
                         min_chars=0, paragraphs=True)
    return found + ([wrong] if wrong else [])


def answer_problems(text: Any) -> list[Problem]:
    wrong = text_problem(text, "/text", LABELS["text"], max_chars=ANSWER_CHARS,
                         paragraphs=True)
    return [wrong] if wrong else []


def period_problems(period: Any) -> list[Problem]:
    if not isinstance(period, str) or not PERIOD.match(period):
        return [problem("period", "period", "应为 2026-11、2026-Q4 或 2026",
                        "must be a month (2026-11), a quarter (2026-Q4) or a year (2026)")]
    return []


def company_code(value: Any) -> str:
    """A compound's `property_company` as the directory writes it (`property_company:<code>`
    or the bare code) -> the code."""
    return str(value or "").removeprefix("property_company:")


# -- periods ----------------------------------------------------------------------------------

def period_bounds(period: str) -> tuple[datetime.date, datetime.date]:
    """[first day, first day after) of a period; ValueError when it is none."""
    found = PERIOD.match(period)
    if not found:
        raise ValueError(period)
    year = int(found["year"])
    if found["month"]:
        first, months = int(found["month"]), 1
    elif found["q"]:
        first, months = 3 * int(found["q"]) - 2, 3
    else:
        first, months = 1, 12
    end_month = first + months
    end = datetime.date(year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1)
    return datetime.date(year, first, 1), end


def last_periods(period: str, count: int) -> list[str]:
    """Rule 5: the `count` periods of the same kind ending with `period`, oldest first."""
    found = PERIOD.match(period)
    if not found:
        raise ValueError(period)
    year = int(found["year"])
    if found["month"]:
        index, per_year, show = year * 12 + int(found["month"]) - 1, 12, "{y}-{n:02d}"
    elif found["q"]:
        index, per_year, show = year * 4 + int(found["q"]) - 1, 4, "{y}-Q{n}"
    else:
        return [str(y) for y in range(year - count + 1, year + 1)]
    return [show.format(y=i // per_year, n=i % per_year + 1)
            for i in range(index - count + 1, index + 1)]


# -- the formula (data) -----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Formula:
    """Rule 3-5's numbers, read from `schemas/rating_formula.json` (`from_data`)."""

    version: int
    weights: Mapping[str, int]
    aspect_weights: Mapping[str, int]
    complaints_per_100_units_zero: float
    handling_hours_full: float
    handling_hours_zero: float
    min_ratings: int
    red: Mapping[str, float]
    black: Mapping[str, float]
    grades: tuple[tuple[str, float], ...]
    grade_periods: int

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Formula:
        """The formula from its file; ValueError naming what is wrong (checked at start)."""
        def number(value: Any, name: str, low: float = 0, high: float = 1e9) -> float:
            if not isinstance(value, int | float) or isinstance(value, bool) \
                    or not low <= value <= high:
                raise ValueError(f"rating formula: {name} must be a number {low}–{high}")
            return value

        try:
            weights = {k: int(number(data["weights"][k], k, 0, 100)) for k in PARTS}
            aspects = {k: int(number(data["aspect_weights"][k], k, 0, 100)) for k in ASPECTS}
            if sum(weights.values()) != 100 or sum(aspects.values()) != 100:
                raise ValueError("rating formula: weights must sum to 100")
            grades = tuple((str(g["grade"]), number(g["min_score"], "grade", 0, 100))
                           for g in data["grades"])
            if not grades or [m for _, m in grades] != sorted((m for _, m in grades),
                                                              reverse=True) \
                    or grades[-1][1] != 0:
                raise ValueError("rating formula: grades from the highest band down to 0")
            full = number(data["handling_hours_full"], "handling_hours_full")
            zero = number(data["handling_hours_zero"], "handling_hours_zero")
            if zero <= full:
                raise ValueError("rating formula: handling_hours_zero after the full mark")
            return cls(
                int(number(data["version"], "version", 1)), weights, aspects,
                number(data["complaints_per_100_units_zero"], "complaints", 0.01), full,
                zero, int(number(data["min_ratings"], "min_ratings", 1)),
                {k: number(data["red"][k], k, 0, 100) for k in ("min_score", "min_part")}
                | {"max_companies": number(data["red"]["max_companies"], "max", 0)},
                {k: number(data["black"][k], k, 0, 100) for k in ("max_score", "max_part")}
                | {"max_companies": number(data["black"]["max_companies"], "max", 0)},
                grades, int(number(data["grade_periods"], "grade_periods", 1, 40)))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"rating formula: {exc!s} missing or malformed") from None


# -- rule 3: the score -------------------------------------------------------------------------

@dataclasses.dataclass
class Tally:
    """What a company's period adds up to, kept as ratings and complaints arrive: the sum of
    each aspect's scores, how many ratings, the units billed, the complaints and their
    handling hours (None: not done yet)."""

    ratings: int = 0
    sums: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(ASPECTS, 0))
    units: int = 0
    complaints: int = 0
    hours: list[float | None] = dataclasses.field(default_factory=list)

    def rate(self, scores: Mapping[str, int]) -> None:
        self.ratings += 1
        for aspect in ASPECTS:
            self.sums[aspect] += int(scores[aspect])


@dataclasses.dataclass(frozen=True)
class Score:
    """A company's score of a period and its parts (0–100, one decimal); `score` None when
    there are too few ratings (rule 3)."""

    company: str
    score: float | None
    parts: Mapping[str, float]
    aspects: Mapping[str, float]  # the mean of each aspect, 1–5
    ratings: int
    units: int
    complaints: int
    mean_hours: float | None


def linear(value: float, full: float, zero: float) -> float:
    """100 at `full` or better, 0 at `zero` or worse, straight between."""
    if value <= full:
        return 100.0
    if value >= zero:
        return 0.0
    return 100.0 * (zero - value) / (zero - full)


def score(company: str, tally: Tally, formula: Formula) -> Score:
    """Rule 3."""
    aspects = {a: (tally.sums[a] / tally.ratings if tally.ratings else 0.0) for a in ASPECTS}
    weighted = sum(aspects[a] * formula.aspect_weights[a] for a in ASPECTS) / 100
    rated = (weighted - 1) / 4 * 100 if tally.ratings else 0.0
    per_100 = 100 * tally.complaints / tally.units if tally.units else float(tally.complaints)
    complaints = linear(per_100, 0, formula.complaints_per_100_units_zero)
    hours = [formula.handling_hours_zero if h is None else h for h in tally.hours]
    mean_hours = sum(hours) / len(hours) if hours else None
    handling = 100.0 if mean_hours is None else linear(
        mean_hours, formula.handling_hours_full, formula.handling_hours_zero)
    parts = {"ratings": round(rated, 1), "complaints": round(complaints, 1),
             "handling": round(handling, 1)}
    total = sum(parts[p] * formula.weights[p] for p in PARTS) / 100
    enough = tally.ratings >= formula.min_ratings
    return Score(company, round(total, 1) if enough else None, parts,
                 {a: round(v, 2) for a, v in aspects.items()}, tally.ratings, tally.units,
                 tally.complaints, None if mean_hours is None else round(mean_hours, 1))


# -- rule 4: the lists -------------------------------------------------------------------------

def part_words(part: str, found: Score) -> tuple[str, str]:
    zh, en = PARTS[part]
    value = found.parts[part]
    if part == "ratings":
        mean = sum(found.aspects.values()) / len(found.aspects)
        return (f"{zh} {value} 分（{found.ratings} 户，平均 {mean:.1f}/5）",
                f"{en} {value} ({found.ratings} households, mean {mean:.1f}/5)")
    if part == "complaints":
        return (f"{zh} {value} 分（{found.complaints} 件，{found.units} 户）",
                f"{en} {value} ({found.complaints} for {found.units} units)")
    hours = "—" if found.mean_hours is None else f"{found.mean_hours}"
    return (f"{zh} {value} 分（平均 {hours} 小时）", f"{en} {value} (mean {hours} hours)")


def red_reasons(found: Score, formula: Formula) -> list[str]:
    """Why a company is on the red list; [] when it is not."""
    if found.score is None or found.score < formula.red["min_score"] or any(
            found.parts[p] < formula.red["min_part"] for p in PARTS):
        return []
    return [bilingual(f"综合得分 {found.score} ≥ {formula.red['min_score']:g}",
                      f"Score {found.score} ≥ {formula.red['min_score']:g}"),
            *(bilingual(*part_words(p, found)) for p in PARTS)]


def black_reasons(found: Score, formula: Formula) -> list[str]:
    """Why a company is on the black list: each threshold it falls below; [] when none."""
    if found.score is None:
        return []
    why = []
    if found.score < formula.black["max_score"]:
        why.append(bilingual(f"综合得分 {found.score} < {formula.black['max_score']:g}",
                             f"Score {found.score} < {formula.black['max_score']:g}"))
    for part in PARTS:
        if found.parts[part] < formula.black["max_part"]:
            zh, en = part_words(part, found)
            why.append(bilingual(f"{zh} < {formula.black['max_part']:g}",
                                 f"{en} < {formula.black['max_part']:g}"))
    return why


def lists(scores: Iterable[Score], formula: Formula
          ) -> dict[str, list[tuple[Score, list[str]]]]:
    """Rule 4: {"red": [(score, reasons)], "black": [...]}, best first and worst first."""
    scored = sorted((s for s in scores if s.score is not None),
                    key=lambda s: (-(s.score or 0), s.company))
    red = [(s, r) for s in scored if (r := red_reasons(s, formula))]
    black = [(s, r) for s in reversed(scored) if (r := black_reasons(s, formula))]
    return {"red": red[:int(formula.red["max_companies"])],
            "black": black[:int(formula.black["max_companies"])]}


# -- rule 5: the credit grade ------------------------------------------------------------------

def grade(history: Sequence[float | None], formula: Formula) -> str | None:
    """Rule 5: the grade of the mean of the scores there are in `history` (the last
    `grade_periods` periods' scores, None where there is none)."""
    known = [s for s in history[-formula.grade_periods:] if s is not None]
    if not known:
        return None
    mean = sum(known) / len(known)
    return next(g for g, low in formula.grades if mean >= low)
