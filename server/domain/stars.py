"""Community star rating (三类五星): a compound (小区) is scored on the city's sheet of indicators
(评分标准) each assessment round (评价轮次), and its total gives its type and stars.

1. The sheet is data (schemas/star_sheet.json, edited without code): categories (党建统领,
   物业提升, 小区治理, 文明服务), indicators (指标) each with its points (分值), the evidence it
   needs (佐证材料) and who scores it (`scored_by`: the third-party assessor or the street),
   the bands and the awards. `sheet_from` refuses a broken file, naming every fault: unique
   ids, known categories and scorers, whole positive points summing to `total_points`.
2. Type and stars (`band_of`): the highest band whose `min_points` the total reaches. Bands
   are data: stars 5..1 each once, lowest band from 0, each type (示范引领 5★, 良性发展 4★/3★,
   托底维持 2★/1★) named in both languages.
3. States go one way (STEPS, the only moves): collecting (材料收集) -> scoring (评分) ->
   review (街道审核) -> published (已发布); the street may return a sheet under review to
   scoring with a reason (退回), nothing leaves published. An act names the state it was
   taken in, so a replay after the move is refused, never applied twice.
4. Who (`parts_of`): the community (社区) is a supervisor of the compound's community; the
   street (街道) a supervisor of its street; the assessor (第三方评估) a user of role
   `assessor` commissioned for its street. Each act is one part's, in its scope only.
5. Evidence (`evidence_problems`): per indicator of the sheet, a note and up to MAX_PHOTOS
   photos (checked and stripped as a report's), by the community while collecting.
6. Scores (`score_problems`): whole points 0..the indicator's, with a comment, by the
   indicator's scorer while scoring; the assessor hands over when every indicator is scored.
7. Award (`award_problems`): the amount of the stars (data, whole fen); the property company's
   share (物业公司所得) at most `property_share_max_percent` of it, by integer arithmetic (so
   30.01 % of an award is refused where 30 % is taken).
8. Rounds go forward: a compound's new round sorts after every round it has had; the
   published rounds are its history (历史).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain.fees import yuan
from server.domain.messages import Refused, bilingual
from server.domain.rules import Problem
from server.domain.scope import User
from server.domain.text import text_problem, unknown_fields

MAX_PHOTOS = 3  # as a report's (server/domain/reports.py): a phone's upload stays small
MAX_NOTE = 500
MAX_COMMENT = 300
MAX_REASON = 300
ROUND = re.compile(r"^[0-9]{4}(-[0-9]{1,2})?$")  # 2026, or 2026-1 for a half year's
ID = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
SCORERS = ("assessor", "street")
PARTS = ("community", "assessor", "street")

LABELS = {"indicator": ("指标", "Indicator"), "text": ("佐证说明", "Evidence note"),
          "photos": ("照片", "Photos"), "points": ("得分", "Points"),
          "comment": ("评分说明", "Comment"), "reason": ("退回原因", "Reason"),
          "property_fen": ("物业公司所得", "Property company's share"),
          "round": ("评价轮次", "Assessment round"), "compound": ("小区", "Compound"),
          "state": ("当前状态", "Current state"), "act": ("操作", "Act")}
STATES = {"collecting": ("材料收集", "Collecting evidence"), "scoring": ("评分", "Scoring"),
          "review": ("街道审核", "Street review"), "published": ("已发布", "Published")}


@dataclasses.dataclass(frozen=True)
class Step:
    """One move of rule 3: from which state, to which, by which part."""

    start: str
    end: str
    part: str
    zh: str
    en: str


STEPS = {
    "submit_evidence": Step("collecting", "scoring", "community", "提交佐证材料",
                            "submits the evidence"),
    "submit_scores": Step("scoring", "review", "assessor", "提交评分", "submits the scores"),
    "approve": Step("review", "published", "street", "审核通过并发布", "approves and publishes"),
    "return": Step("review", "scoring", "street", "退回重新评分", "returns for scoring"),
}
PART_NAMES = {"community": ("社区", "the community"), "assessor": ("第三方评估机构",
                                                                    "the assessor"),
              "street": ("街道", "the street")}


@dataclasses.dataclass(frozen=True)
class Indicator:
    id: str
    category: str
    title: str
    max_points: int
    evidence: str
    scored_by: str


@dataclasses.dataclass(frozen=True)
class Band:
    """A band of totals (档次): its stars and type (类型)."""

    stars: int
    min_points: int
    type: str
    type_en: str


@dataclasses.dataclass(frozen=True)
class Sheet:
    """The scoring sheet (评分标准) of rule 1, as read from its data file."""

    title: str
    version: str
    total_points: int
    categories: tuple[tuple[str, str, str], ...]  # (id, name, English name)
    indicators: tuple[Indicator, ...]
    bands: tuple[Band, ...]  # highest first
    awards_fen: Mapping[int, int]
    share_max_percent: int

    def indicator(self, key: Any) -> Indicator | None:
        return next((i for i in self.indicators if i.id == key), None)


class SheetError(ValueError):
    """A sheet file that cannot be used, with every fault (zh / en), one a line."""


@dataclasses.dataclass(frozen=True)
class Place:
    """Where a sheet is: the compound, its community and street, its property company."""

    compound: str
    community: str
    street: str
    company: str


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    """A problem naming the field by its label, zh-CN first."""
    lz, le = LABELS.get(field, (field, field))
    return Problem(f"/{field}", code, f"“{lz}”{zh}", f"{le} {en}")


def is_whole(value: Any) -> bool:
    """An integer that is no bool (JSON's true is not 1 point)."""
    return isinstance(value, int) and not isinstance(value, bool)


# -- Rule 1: the sheet as data ----------------------------------------------------------------

def _fault(where: str, zh: str, en: str) -> str:
    return bilingual(f"{where}：{zh}", f"{where}: {en}")


def _indicator_faults(n: int, item: Any, categories: set[str]) -> list[str]:
    where = f"indicators[{n + 1}]"
    if not isinstance(item, Mapping):
        return [_fault(where, "应为一个对象", "must be an object")]
    faults = []
    if not isinstance(item.get("id"), str) or not ID.match(item["id"]):
        faults.append(_fault(where, "编号应为小写字母开头的字母、数字、- 或 _",
                             "id must be lowercase letters, digits, - or _"))
    if item.get("category") not in categories:
        faults.append(_fault(where, f"类别 {item.get('category')!r} 不在 categories 中",
                             f"category {item.get('category')!r} is not among the categories"))
    for key in ("title", "evidence"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            faults.append(_fault(where, f"缺少 {key}", f"{key} is missing"))
    points = item.get("max_points")
    if not is_whole(points) or points < 1:
        faults.append(_fault(where, "分值应为正整数", "max_points must be a positive integer"))
    if item.get("scored_by") not in SCORERS:
        faults.append(_fault(where, f"评分方应为 {'、'.join(SCORERS)} 之一",
                             f"scored_by must be one of {', '.join(SCORERS)}"))
    return faults


def _band_faults(bands: Any, total: Any) -> list[str]:
    if not isinstance(bands, list) or not all(isinstance(b, Mapping) for b in bands):
        return [_fault("bands", "应为档次列表", "must be a list of bands")]
    faults = []
    stars = [b.get("stars") for b in bands]
    if sorted(s for s in stars if is_whole(s)) != [1, 2, 3, 4, 5] or len(stars) != 5:
        faults.append(_fault("bands", "星级 1 至 5 应各有一档", "needs one band per star, 1 to 5"))
    lows = [b.get("min_points") for b in bands]
    if not all(is_whole(v) and 0 <= v <= (total if is_whole(total) else 0) for v in lows):
        faults.append(_fault("bands", "最低分应为 0 至总分之间的整数",
                             "min_points must be integers from 0 to the total"))
    elif 0 not in lows or len(set(lows)) != len(lows):
        faults.append(_fault("bands", "最低一档应从 0 分起，各档最低分不能相同",
                             "the lowest band must start at 0 and no two may start alike"))
    for b in bands:
        if not all(isinstance(b.get(k), str) and b[k].strip() for k in ("type", "type_en")):
            faults.append(_fault("bands", "每档都要写明类型（中英文）",
                                 "each band needs its type in both languages"))
            break
    return faults


def _award_faults(data: Mapping[str, Any]) -> list[str]:
    faults = []
    awards = data.get("awards_fen")
    if not isinstance(awards, Mapping) or sorted(awards) != ["1", "2", "3", "4", "5"] or not all(
            is_whole(v) and v >= 0 for v in awards.values()):
        faults.append(_fault("awards_fen", "应为星级 1 至 5 各自的奖励金额（整数，单位：分）",
                             "must give each star 1 to 5 an amount in whole fen"))
    share = data.get("property_share_max_percent")
    if not is_whole(share) or not 0 <= share <= 100:
        faults.append(_fault("property_share_max_percent", "应为 0 至 100 的整数",
                             "must be an integer from 0 to 100"))
    return faults


def sheet_faults(data: Any) -> list[str]:
    """Everything wrong with a sheet file's content (rule 1), each fault zh / en."""
    if not isinstance(data, Mapping):
        return [_fault("sheet", "文件内容应为一个对象", "the file must hold one object")]
    faults: list[str] = []
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats or not all(
            isinstance(c, Mapping) and isinstance(c.get("id"), str) and isinstance(
                c.get("name"), str) and isinstance(c.get("name_en"), str) for c in cats):
        faults.append(_fault("categories", "应为类别列表（id、name、name_en）",
                             "must list categories (id, name, name_en)"))
        cats = []
    category_ids = {str(c["id"]) for c in cats}
    items = data.get("indicators")
    if not isinstance(items, list) or not items:
        return [*faults, _fault("indicators", "应为指标列表", "must be a list of indicators")]
    for n, item in enumerate(items):
        faults += _indicator_faults(n, item, category_ids)
    ids = [i.get("id") for i in items if isinstance(i, Mapping)]
    repeated = sorted({str(i) for i in ids if ids.count(i) > 1})
    if repeated:
        faults.append(_fault("indicators", f"编号重复：{', '.join(repeated)}",
                             f"ids repeated: {', '.join(repeated)}"))
    total = data.get("total_points")
    points = [i.get("max_points") for i in items if isinstance(i, Mapping)]
    summed = sum(p for p in points if is_whole(p))
    if not is_whole(total) or total != summed:
        faults.append(_fault("total_points", f"总分 {total!r} 与各指标分值之和 {summed} 不符",
                             f"total {total!r} is not the sum of the points, {summed}"))
    return faults + _band_faults(data.get("bands"), total) + _award_faults(data)


def sheet_from(data: Any) -> Sheet:
    """The sheet of a file's content (rule 1); SheetError naming every fault."""
    faults = sheet_faults(data)
    if faults:
        heading = "评分标准文件有误 / the scoring sheet file is wrong:"
        raise SheetError("\n".join([heading, *faults]))
    bands = sorted((Band(int(b["stars"]), int(b["min_points"]), str(b["type"]),
                         str(b["type_en"])) for b in data["bands"]),
                   key=lambda b: b.min_points, reverse=True)
    if [b.stars for b in bands] != [5, 4, 3, 2, 1]:
        raise SheetError(bilingual("评分标准文件有误：星级越高，最低分应越高",
                                   "the scoring sheet file is wrong: more stars need more points"))
    return Sheet(
        title=str(data.get("title") or ""), version=str(data.get("version") or ""),
        total_points=int(data["total_points"]),
        categories=tuple((str(c["id"]), str(c["name"]), str(c["name_en"]))
                         for c in data["categories"]),
        indicators=tuple(Indicator(str(i["id"]), str(i["category"]), str(i["title"]),
                                   int(i["max_points"]), str(i["evidence"]), str(i["scored_by"]))
                         for i in data["indicators"]),
        bands=tuple(bands), awards_fen={int(k): int(v) for k, v in data["awards_fen"].items()},
        share_max_percent=int(data["property_share_max_percent"]))


# -- Rule 2: type and stars -------------------------------------------------------------------

def band_of(sheet: Sheet, total: int) -> Band:
    return next(b for b in sheet.bands if total >= b.min_points)


def result_of(sheet: Sheet, scores: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The total, stars and type of a sheet's scores, and each category's points."""
    points = {i.id: int(scores.get(i.id, {}).get("points", 0)) for i in sheet.indicators}
    total = sum(points.values())
    band = band_of(sheet, total)
    by_category = {c: sum(points[i.id] for i in sheet.indicators if i.category == c)
                   for c, _, _ in sheet.categories}
    return {"total": total, "stars": band.stars, "type": band.type, "type_en": band.type_en,
            "by_category": by_category, "award_fen": sheet.awards_fen.get(band.stars, 0)}


# -- Rules 3 and 4: states and parts ----------------------------------------------------------

def parts_of(user: User, place: Place) -> frozenset[str]:
    """The parts `user` plays for a sheet of `place` (rule 4)."""
    if user.disabled:
        return frozenset()
    parts = set()
    if user.role == "supervisor" and place.community in user.communities:
        parts.add("community")
    if user.role == "supervisor" and place.street in user.streets:
        parts.add("street")
    if user.role == "assessor" and place.street in user.streets:
        parts.add("assessor")
    return frozenset(parts)


def sees(user: User, place: Place) -> bool:
    """Who reads a sheet: its parts, and admins."""
    return (user.is_admin and not user.disabled) or bool(parts_of(user, place))


def not_found() -> Refused:
    """One answer for a sheet that does not exist and for one outside the asker's scope."""
    return Refused(404, "not_found", bilingual("没有这个评星表，或不在您的范围内",
                                               "No such star-rating sheet, or not yours."))


def wrong_state(state: str, doing: tuple[str, str]) -> Refused:
    zh, en = STATES.get(state, (state, state))
    return Refused(409, "conflict", bilingual(f"评星表当前为“{zh}”，不能{doing[0]}",
                                              f"the sheet is at “{en}”: cannot {doing[1]}"))


def check_part(part: str, parts: frozenset[str], doing: tuple[str, str]) -> None:
    if part not in parts:
        zh, en = PART_NAMES[part]
        raise Refused(403, "forbidden", bilingual(f"只有{zh}可以{doing[0]}",
                                                  f"only {en} {doing[1]}"))


def move(act: Any, state: str, stated: Any, parts: frozenset[str]) -> Step:
    """The step an act makes (rule 3), checked: a known act, by its part, from the state the
    asker saw (`stated`) which is the sheet's; else Refused."""
    step = STEPS.get(act) if isinstance(act, str) else None
    if step is None:
        raise Refused(400, "bad_request", problem(
            "act", "unknown", f"应为 {'、'.join(STEPS)} 之一",
            f"must be one of {', '.join(STEPS)}").message)
    check_part(step.part, parts, (step.zh, step.en))
    if stated != state or step.start != state:
        raise wrong_state(state, (step.zh, step.en))
    return step


def act_problems(body: Mapping[str, Any]) -> list[Problem]:
    """An act's body: {act, state[, reason] [, property_fen]}; the reason of a return."""
    found = unknown_fields(body, frozenset({"act", "state", "reason", "property_fen"}))
    if body.get("act") == "return":
        bad = text_problem(body.get("reason"), "/reason", LABELS["reason"],
                           max_chars=MAX_REASON, paragraphs=True)
        found += [bad] if bad else []
    elif "reason" in body:
        found.append(problem("reason", "unexpected", "只在退回时填写", "is only for a return"))
    return found


# -- Rules 5 and 6: evidence and scores -------------------------------------------------------

def _indicator_problem(sheet: Sheet, key: Any) -> tuple[Indicator | None, list[Problem]]:
    found = sheet.indicator(key)
    if found is None:
        return None, [problem("indicator", "unknown", "不在评分标准中",
                              "is not on the scoring sheet")]
    return found, []


def evidence_problems(body: Mapping[str, Any], sheet: Sheet) -> list[Problem]:
    """Rule 5 (the photos' bytes are checked apart, as a report's)."""
    found = unknown_fields(body, frozenset({"indicator", "text", "photos"}))
    found += _indicator_problem(sheet, body.get("indicator"))[1]
    bad = text_problem(body.get("text"), "/text", LABELS["text"], max_chars=MAX_NOTE,
                       paragraphs=True)
    found += [bad] if bad else []
    photos = body.get("photos", [])
    if not isinstance(photos, list) or len(photos) > MAX_PHOTOS:
        found.append(problem("photos", "photos_count", f"应为列表，最多 {MAX_PHOTOS} 张",
                             f"must be a list of at most {MAX_PHOTOS}"))
    return found


def score_problems(body: Mapping[str, Any], sheet: Sheet) -> list[Problem]:
    """Rule 6: whole points within the indicator's, a comment; the scorer is checked by
    `scorer_of` once the indicator is known."""
    found = unknown_fields(body, frozenset({"indicator", "points", "comment"}))
    indicator, missing = _indicator_problem(sheet, body.get("indicator"))
    found += missing
    points = body.get("points")
    top = indicator.max_points if indicator else sheet.total_points
    if not is_whole(points) or not 0 <= points <= top:
        found.append(problem("points", "range", f"应为 0 至 {top} 的整数",
                             f"must be a whole number from 0 to {top}"))
    bad = text_problem(body.get("comment"), "/comment", LABELS["comment"],
                       max_chars=MAX_COMMENT, paragraphs=True)
    return found + ([bad] if bad else [])


def scorer_of(indicator: Indicator, parts: frozenset[str]) -> None:
    """Refused unless the asker is the indicator's scorer (rule 6)."""
    check_part(indicator.scored_by, parts, ("为此指标评分", "scores this indicator"))


def handover_problem(sheet: Sheet, scores: Mapping[str, Any]) -> Refused | None:
    """The assessor hands over only a sheet with every indicator scored (rule 6)."""
    missing = [i for i in sheet.indicators if i.id not in scores]
    if not missing:
        return None
    return Refused(409, "conflict", bilingual(
        f"还有 {len(missing)} 项指标未评分（如 {missing[0].title}）",
        f"{len(missing)} indicator(s) are not scored yet"))


# -- Rule 7: the award ------------------------------------------------------------------------

def award_problems(body: Mapping[str, Any], sheet: Sheet, stars: int) -> list[Problem]:
    """The property company's share of the award, whole fen, at most the sheet's percent."""
    amount = sheet.awards_fen.get(stars, 0)
    share = body.get("property_fen", 0)
    cap = amount * sheet.share_max_percent // 100
    if not is_whole(share) or share < 0:
        return [problem("property_fen", "type", "应为不小于 0 的整数（单位：分）",
                        "must be a whole number of fen, not negative")]
    if share * 100 > amount * sheet.share_max_percent:
        return [problem("property_fen", "cap",
                        f"不能超过奖励金额 {yuan(amount)} 元的 {sheet.share_max_percent}%"
                        f"（最多 {yuan(cap)} 元）",
                        f"may be at most {sheet.share_max_percent} % of the award of "
                        f"¥{yuan(amount)} (at most ¥{yuan(cap)})")]
    return []


# -- Rule 8: rounds ---------------------------------------------------------------------------

def round_problems(body: Mapping[str, Any], rounds: Iterable[str]) -> list[Problem]:
    """A new round of a compound (`rounds`: the ones it has): after all of them."""
    found = unknown_fields(body, frozenset({"compound", "round"}))
    key = body.get("round")
    if not isinstance(key, str) or not ROUND.match(key):
        return [*found, problem("round", "format", "应为年份，如 2026 或 2026-1",
                                "must be a year, as 2026 or 2026-1")]
    later = [r for r in rounds if round_order(r) >= round_order(key)]
    if later:
        found.append(problem("round", "order", f"应在已有的 {max(later)} 之后",
                             f"must come after {max(later)}, which the compound has"))
    return found


def round_order(key: str) -> tuple[int, int]:
    year, _, half = key.partition("-")
    return int(year), int(half or 0)


def sheet_id(round_: str, compound: str) -> str:
    return f"star_sheet:{compound}:{round_}"
