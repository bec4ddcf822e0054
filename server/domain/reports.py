"""Problem reports (问题上报) and their handling workflow (办理流程): pure rules, no I/O.

1. Categories are data (`DEFAULT_CATEGORIES`, replaceable by `categories_from`): each has a
   code, its labels, the handlers it is routed to in order of preference, whether the
   reporter may stay anonymous to staff, and its time limits in working days (accept within
   1, finish within 5 by default).
2. Routing (`route`): the first handler of the category's list that the place has: the
   property company (物业) only where the place is a compound with one, a liaison department
   (联络部门: 综合执法, 公安, 住建, 市场监管, 消防) always, the grid worker (网格员) always.
3. A report is the reporter's: a resident of the place, or a grid worker for what they see
   on their rounds. It is never shown with its reporter to neighbours (the published view
   has no reporter at all); to staff too when the category allows anonymity and the reporter
   asked for it. Reporter, grid, community, street, assignee and times are the server's: sent
   by the phone they are refused by name.
4. The workflow (`TRANSITIONS`, the one table to read): 已提交 submitted → 已受理 accepted →
   已派单 dispatched → 处理中 in_progress → 已办结 done → 已关闭 closed. Accepting and
   dispatching are the intake's (the grid's worker, the community's or street's supervisor,
   the admin); starting and finishing the assignee's; closing (with a rating 1–5 and a
   comment) or reopening the reporter's, reopening once only (the report goes back to
   in_progress in round 1). Any other move, a jump (dispatched → done) included, is refused.
   Each step is a document written by who acts, naming the state it was made from (`from`,
   in its `round`): a phone offline acts on the state it last saw.
5. Conflicts (`fold`), steps taken in the order the server received them:
   - a step made from the current state applies;
   - a step to a state the report already passed through since the step's base is an
     earlier state: it never overwrites the later one (kept, marked superseded);
   - a step to a different later state (two handlers offline, two different moves from one
     state; a dispatch to another assignee counts as a different state) goes to the
     supervisors' queue (`conflicts`); the state stays until a supervisor of the place
     resolves it to one of the states in dispute (`resolve`).
6. Time limits (`deadlines`, `overdue`, `escalation`): a deadline is the end (24:00,
   Asia/Shanghai) of the n-th working day after the day of the event (submission for
   accepting; submission, or the reopening, for finishing); weekends and listed holidays are
   not working days, listed make-up days (调休) are. Past a deadline a report is overdue and
   escalated to the community (level 1); ESCALATE_STREET_DAYS working days later to the
   street (level 2).
7. Who sees what (`sees`): the reporter their own; the intake of the place; the current
   assignee what is routed to them (a department or a property company nothing else); a
   resident never another's report, except one a supervisor published (`public_view`:
   category, place, state, description, never the reporter).
8. The dashboard (`dashboard`): by category, state, overdue, handling time (median and p90
   hours from submission to 已办结) and satisfaction (mean rating), for the whole scope and
   each area of a level (city, street, community, grid). The small-count rule as elsewhere
   (server/domain/figures.py SMALL): an area of fewer than SMALL reports shows none of its
   figures; within one shown, a count 0 < n < SMALL is withheld, and with it the smallest
   other count of its breakdown when it is the only one, so no count is a subtraction away;
   a median, p90 or mean of fewer than SMALL reports is withheld. Satisfaction is the
   residents' word on the handling (`counted_rating`): it counts the rating a resident gave
   their own report only. A grid worker who filed what they saw on their rounds and rates
   it would be staff scoring staff (often their own grid's work); a rating written into a
   supervisor's resolution of a conflict is not the reporter's. Neither is counted.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from server.domain.audience import IMAGE_MAGIC
from server.domain.rules import Problem
from server.domain.scope import User
from server.domain.text import text_problem, unknown_fields

SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
STATES = ("submitted", "accepted", "dispatched", "in_progress", "done", "closed")
STATE_LABELS: dict[str, tuple[str, str]] = {
    "submitted": ("已提交", "Submitted"), "accepted": ("已受理", "Accepted"),
    "dispatched": ("已派单", "Dispatched"), "in_progress": ("处理中", "In progress"),
    "done": ("已办结", "Done"), "closed": ("已关闭", "Closed"),
}
# Who moves which state to which: (from, to) -> the actor's part. Reopening is the one move
# back, and it starts a new round (the report's rank is (round, state)).
TRANSITIONS: dict[tuple[str, str], str] = {
    ("submitted", "accepted"): "intake",
    ("accepted", "dispatched"): "intake",
    ("dispatched", "in_progress"): "assignee",
    ("in_progress", "done"): "assignee",
    ("done", "closed"): "reporter",
    ("done", "in_progress"): "reporter",  # reopened (重新办理), once
}
MAX_REOPEN = 1
DEPARTMENTS: dict[str, tuple[str, str]] = {
    "zhzf": ("综合执法", "Comprehensive law enforcement"), "police": ("公安", "Police"),
    "housing": ("住建", "Housing and construction"),
    "market": ("市场监管", "Market regulation"), "fire": ("消防", "Fire and rescue"),
}
HANDLER_KINDS = ("grid", "property", *(f"department:{d}" for d in DEPARTMENTS))
INTAKE_ROLES = ("worker", "supervisor", "admin")
REPORTER_ROLES = ("resident", "worker")
MAX_PHOTOS = 3
MAX_DESCRIPTION = 1000
MAX_COMMENT = 200
MAX_SPOT = 60
ESCALATE_STREET_DAYS = 2
SERVER = "linli-reports"  # the author of the status documents
REQUEST = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # the phone's id for an act: a retry is the same
CATEGORY_CODE = re.compile(r"^[a-z][a-z_]{1,31}$")
REPORT_ID = re.compile(r"^report:[0-9a-f]{16}$")

LABELS: dict[str, tuple[str, str]] = {
    "category": ("类别", "Category"), "description": ("问题描述", "Description"),
    "building": ("楼栋", "Building"), "unit": ("单元", "Unit"), "spot": ("位置", "Place"),
    "anonymous": ("对工作人员匿名", "Anonymous to staff"), "request": ("请求编号", "Request id"),
    "photos": ("照片", "Photos"), "from": ("原状态", "From state"), "to": ("新状态", "New state"),
    "round": ("轮次", "Round"), "rating": ("满意度评分", "Rating"), "comment": ("评价", "Comment"),
    "note": ("办理说明", "Note"), "assignee": ("承办单位", "Assignee"),
    "report": ("问题", "Report"), "reporter": ("上报人", "Reporter"),
    "grid": ("网格", "Grid"), "community": ("社区", "Community"), "street": ("街道", "Street"),
    "compound": ("小区", "Compound"), "submitted_at": ("上报时间", "Submitted at"),
    "created_by": ("填写人", "Written by"), "status": ("状态", "Status"),
    "state": ("状态", "State"), "actor": ("办理人", "Actor"), "at": ("时间", "Time"),
    "company": ("物业公司", "Property company"), "public": ("公开", "Published"),
    "resolve": ("冲突裁定", "Resolves a conflict"),
}
REPORT_FIELDS = frozenset({"category", "description", "building", "unit", "spot", "anonymous",
                           "request", "photos"})
STEP_FIELDS = frozenset({"from", "to", "round", "request", "note", "rating", "comment",
                         "assignee", "photos", "resolve"})


@dataclasses.dataclass(frozen=True)
class Category:
    """A report category (问题类别) as data: who handles it, anonymity, time limits."""

    code: str
    zh: str
    en: str
    handlers: tuple[str, ...]
    anonymous_allowed: bool = False
    accept_days: int = 1
    finish_days: int = 5


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category("sanitation", "环境卫生", "Sanitation", ("property", "grid")),
    Category("illegal_building", "违章搭建", "Illegal construction", ("department:zhzf",),
             anonymous_allowed=True),
    Category("parking", "停车", "Parking", ("property", "department:police")),
    Category("noise", "噪音", "Noise", ("grid", "department:zhzf", "department:police"),
             anonymous_allowed=True),
    Category("facility", "设施损坏", "Damaged facility", ("property", "department:housing")),
    Category("safety", "安全隐患", "Safety hazard", ("department:fire", "grid"),
             anonymous_allowed=True, finish_days=2),
    Category("property_service", "物业服务", "Property service",
             ("property", "department:housing")),
    Category("dispute", "邻里纠纷", "Neighbour dispute", ("grid",), anonymous_allowed=True),
    Category("epidemic", "疫情相关", "Epidemic", ("grid", "department:market"),
             anonymous_allowed=True, finish_days=1),
    Category("other", "其他", "Other", ("grid",)),
)


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    """A problem naming the field by its label, zh-CN first."""
    lz, le = LABELS.get(field, (field, field))
    return Problem(f"/{field}", code, f"“{lz}”{zh}", f"{le} {en}")


def forged(body: Mapping[str, Any], allowed: frozenset[str]) -> list[Problem]:
    """Fields the server sets (reporter, grid, state...) refused by their label; any other
    field nobody asked for as text.py refuses it."""
    known = sorted(k for k in body if k not in allowed and k in LABELS)
    rest = {k: v for k, v in body.items() if k not in known}
    return [problem(k, "unknown_field", "由服务器填写，不能由手机发送",
                    "is set by the server, not sent") for k in known] + unknown_fields(
        rest, allowed)


def categories_from(data: Any) -> tuple[Category, ...]:
    """A configured list of categories (the settings' JSON), checked: a bad list is an
    operator's mistake, refused at start with what is wrong (ValueError)."""
    if not isinstance(data, list) or not data:
        raise ValueError("report categories: a non-empty list expected")
    found: list[Category] = []
    for item in data:
        if not isinstance(item, Mapping):
            raise ValueError("report categories: each one an object")
        code, handlers = item.get("code"), item.get("handlers")
        if not isinstance(code, str) or not CATEGORY_CODE.match(code):
            raise ValueError(f"report category {code!r}: a code of a-z and _ expected")
        if (not isinstance(handlers, list) or not handlers
                or any(h not in HANDLER_KINDS for h in handlers)):
            raise ValueError(f"report category {code}: handlers among {HANDLER_KINDS}")
        days = [item.get("accept_days", 1), item.get("finish_days", 5)]
        if any(not isinstance(d, int) or isinstance(d, bool) or not 0 < d <= 60 for d in days):
            raise ValueError(f"report category {code}: days 1..60")
        zh, en = item.get("zh"), item.get("en")
        if not isinstance(zh, str) or not zh or not isinstance(en, str) or not en:
            raise ValueError(f"report category {code}: zh and en names expected")
        found.append(Category(code, zh, en, tuple(handlers),
                              item.get("anonymous_allowed") is True, days[0], days[1]))
    if len({c.code for c in found}) != len(found):
        raise ValueError("report categories: codes repeat")
    return tuple(found)


@dataclasses.dataclass(frozen=True)
class Place:
    """Where a report is, as the server found it (never as the phone says): the grid of the
    reporter's household (or the worker's grid), its community and street, the compound
    and its property company when known, and the building/unit or spot as typed."""

    grid: str
    community: str
    street: str
    compound: str = ""
    company: str = ""


def route(category: Category, place: Place) -> str:
    """Rule 2: the first handler of the category that the place has."""
    for handler in category.handlers:
        if handler != "property" or place.company:
            return handler
    return "grid"


Actor = User
"""Who acts, from the directory: role, scope, and for liaison staff their department
(`department`) or property company (`companies`)."""


def is_intake(actor: Actor, place: Place) -> bool:
    """The grid's worker, a supervisor of its community or street, the admin."""
    if actor.role == "admin":
        return True
    if actor.role == "worker":
        return place.grid in actor.grids
    if actor.role == "supervisor":
        return place.community in actor.communities or place.street in actor.streets
    return False


def is_assignee(actor: Actor, assignee: str, place: Place) -> bool:
    """Whether `actor` is who the report is routed to: the grid's worker, the compound's
    property company, a department's staff whose scope reaches the place."""
    if assignee == "grid":
        return actor.role == "worker" and place.grid in actor.grids
    if assignee == "property":
        return actor.role == "property" and bool(place.company) and \
            place.company in actor.companies
    kind, _, department = assignee.partition(":")
    return (kind == "department" and actor.role == "department"
            and actor.department == department
            and (place.community in actor.communities or place.street in actor.streets))


def part_of(actor: Actor, reporter: str, assignee: str, place: Place) -> frozenset[str]:
    """The parts `actor` plays on a report: reporter, intake, assignee, supervisor. The
    reporter plays no other (a worker does not handle, close and rate their own report)."""
    if actor.name == reporter:
        return frozenset({"reporter"})
    parts = set()
    if is_intake(actor, place):
        parts.add("intake")
    if is_assignee(actor, assignee, place):
        parts.add("assignee")
    if actor.role in ("supervisor", "admin") and is_intake(actor, place):
        parts.add("supervisor")
    return frozenset(parts)


def moves(parts: frozenset[str], state: str, round_: int) -> list[str]:
    """Rule 4 for the phone: the states who plays `parts` may move a report in `state` to
    (its queue offers these offline; the server judges every step again)."""
    return [to for (base, to), need in TRANSITIONS.items()
            if base == state and need in parts
            and not ((base, to) == ("done", "in_progress") and round_ >= MAX_REOPEN)]


def handler_labels() -> list[dict[str, str]]:
    """Who a report may be dispatched to (派单), labelled for the intake's phone."""
    named = {"grid": ("网格员", "Grid worker"), "property": ("物业公司", "Property company"),
             **{f"department:{k}": v for k, v in DEPARTMENTS.items()}}
    return [{"code": k, "zh": named[k][0], "en": named[k][1]} for k in HANDLER_KINDS]


def sees(actor: Actor, reporter: str, assignee: str, place: Place) -> bool:
    """Rule 7: only the reporter, the intake of the place and the current assignee."""
    return bool(part_of(actor, reporter, assignee, place))


# -- Reports as sent ------------------------------------------------------------------------

def category_of(code: Any, categories: Sequence[Category]) -> Category | None:
    return next((c for c in categories if c.code == code), None) if isinstance(code, str) \
        else None


def report_problems(body: Mapping[str, Any], categories: Sequence[Category]) -> list[Problem]:
    """Rule 3: what a new report may hold (photos are checked apart, by their bytes)."""
    problems = forged(body, REPORT_FIELDS)
    category = category_of(body.get("category"), categories)
    if category is None:
        problems.append(problem("category", "category", "不在可选列表中",
                                "is not one of the categories"))
    if not isinstance(body.get("request"), str) or not REQUEST.match(body["request"]):
        problems.append(problem("request", "request", "应为 8–64 位字母、数字、-、_",
                                "must be 8-64 letters, digits, - or _"))
    found = text_problem(body.get("description"), "/description", LABELS["description"],
                         max_chars=MAX_DESCRIPTION, paragraphs=True)
    problems.extend([found] if found else [])
    for name, limit in (("building", 20), ("unit", 20), ("spot", MAX_SPOT)):
        if body.get(name) not in (None, ""):
            found = text_problem(body[name], f"/{name}", LABELS[name], max_chars=limit)
            problems.extend([found] if found else [])
    anonymous = body.get("anonymous", False)
    if not isinstance(anonymous, bool):
        problems.append(problem("anonymous", "boolean", "应为是或否", "must be yes or no"))
    elif anonymous and category is not None and not category.anonymous_allowed:
        problems.append(problem("anonymous", "anonymous", "此类问题不能匿名上报",
                                "is not offered for this category"))
    return problems + photos_count_problems(body)


def photos_count_problems(body: Mapping[str, Any]) -> list[Problem]:
    photos = body.get("photos", [])
    if isinstance(photos, list) and len(photos) <= MAX_PHOTOS:
        return []
    return [problem("photos", "photos_count", f"最多 {MAX_PHOTOS} 张", f"at most {MAX_PHOTOS}")]


def sniff(data: bytes) -> str | None:
    """The image type the bytes are (JPEG, PNG, WebP by their magic), whatever is declared."""
    for content_type, (magic, length) in IMAGE_MAGIC.items():
        if magic.match(data[:length]):
            return content_type
    return None


def photo_problem(index: int, data: bytes, max_bytes: int) -> Problem | None:
    """One photo's bytes: at most `max_bytes` (the settings'), and an allowed image type by
    its bytes (a PDF named .jpg is refused)."""
    if len(data) > max_bytes:
        return problem("photos", "photo_size",
                       f"第 {index + 1} 张过大（最大 {max_bytes // 1024} KB）",
                       f"number {index + 1} is too large (at most {max_bytes // 1024} KB)")
    if sniff(data) is None:
        return problem("photos", "photo_type",
                       f"第 {index + 1} 张不是 JPEG、PNG 或 WebP 图片",
                       f"number {index + 1} is not a JPEG, PNG or WebP image")
    return None


# -- Steps and the fold ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Step:
    """One act on a report, as stored: made from `base` (state, round), moving to `to`."""

    id: str
    actor: str
    parts: frozenset[str]
    base: str
    round: int
    to: str
    assignee: str = ""
    resolve: bool = False

    @property
    def target(self) -> tuple[int, str, str]:
        """The state it moves to, in its round; a dispatch is to its assignee."""
        reopen = (self.base, self.to) == ("done", "in_progress") and not self.resolve
        return (self.round + 1 if reopen else self.round, self.to,
                self.assignee if self.to == "dispatched" else "")


@dataclasses.dataclass(frozen=True)
class Status:
    """Where a report stands: the state, its round, the assignee, the states passed through
    (`path`, in order), the steps in the supervisors' queue, and the superseded ones."""

    state: str = "submitted"
    round: int = 0
    assignee: str = ""
    path: tuple[tuple[int, str, str], ...] = ((0, "submitted", ""),)
    conflicts: tuple[str, ...] = ()
    superseded: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()

    @property
    def at(self) -> tuple[int, str, str]:
        return self.path[-1]


def move_problem(step: Step) -> Problem | None:
    """Rule 4: (from, to) is a move of the workflow, made by the part that may make it."""
    if step.resolve:
        if "supervisor" not in step.parts:
            return problem("to", "resolve", "只有社区或街道工作人员可以裁定冲突",
                           "is decided in a conflict by a community or street supervisor only")
        return None
    need = TRANSITIONS.get((step.base, step.to))
    if need is None:
        zf, ef = STATE_LABELS.get(step.base, (step.base, step.base))
        zt, et = STATE_LABELS.get(step.to, (step.to, step.to))
        return problem("to", "transition", f"不能从“{zf}”变为“{zt}”",
                       f"cannot go from {ef} to {et}")
    if need not in step.parts:
        return problem("to", "actor", "不是您可以办理的一步", "is not a step you may take")
    if (step.base, step.to) == ("done", "in_progress") and step.round >= MAX_REOPEN:
        return problem("to", "reopen", "只能重新办理一次", "can be reopened once only")
    if step.to == "dispatched" and step.assignee not in HANDLER_KINDS:
        return problem("assignee", "assignee", "不是可派单的承办单位", "is not a handler")
    return None


def fold(steps: Iterable[Step]) -> Status:
    """Rule 5: the status after `steps`, taken in the order received (deterministic)."""
    status = Status()
    for step in steps:
        status = take(status, step)
    return status


def take(status: Status, step: Step) -> Status:
    """One step more (rule 5); a move the workflow lacks changes nothing."""
    if move_problem(step) is not None:
        return dataclasses.replace(status, superseded=(*status.superseded, step.id))
    if step.resolve:  # its target is one in dispute (`resolvable`, checked on receipt)
        if not status.conflicts:  # another supervisor resolved it first
            return dataclasses.replace(status, superseded=(*status.superseded, step.id))
        return moved(dataclasses.replace(status, conflicts=()), step)
    base = (step.round, step.base)
    if base == status.at[:2]:
        return moved(status, step)
    since = [i for i, at in enumerate(status.path) if at[:2] == base]
    if not since or step.target in status.path[since[-1] + 1:]:
        return dataclasses.replace(status, superseded=(*status.superseded, step.id))
    return dataclasses.replace(status, conflicts=(*status.conflicts, step.id))


def moved(status: Status, step: Step) -> Status:
    target = step.target
    assignee = step.assignee if step.to == "dispatched" else status.assignee
    path = status.path if target == status.at else (*status.path, target)
    return dataclasses.replace(status, state=step.to, round=target[0], assignee=assignee,
                               path=path, applied=(*status.applied, step.id))


def resolvable(status: Status, steps: Mapping[str, Step]) -> frozenset[tuple[int, str, str]]:
    """The states a supervisor may resolve a conflict to: the current one, or a disputed
    step's target."""
    return frozenset({status.at} | {steps[i].target for i in status.conflicts if i in steps})


def step_problems(body: Mapping[str, Any]) -> list[Problem]:
    """What a step as sent may hold: states by name, a round, the phone's request id, a
    rating 1–5 and a comment only when closing, a reason when reopening."""
    problems = forged(body, STEP_FIELDS)
    for name in ("from", "to"):
        if body.get(name) not in STATES:
            problems.append(problem(name, "state", "不是流程中的状态", "is not a state"))
    round_ = body.get("round", 0)
    if not isinstance(round_, int) or isinstance(round_, bool) or not 0 <= round_ <= MAX_REOPEN:
        problems.append(problem("round", "round", "应为 0 或 1", "must be 0 or 1"))
    if not isinstance(body.get("request"), str) or not REQUEST.match(body["request"]):
        problems.append(problem("request", "request", "应为 8–64 位字母、数字、-、_",
                                "must be 8-64 letters, digits, - or _"))
    closing = (body.get("from"), body.get("to")) == ("done", "closed")
    rating = body.get("rating")
    if closing:
        if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
            problems.append(problem("rating", "rating", "应为 1 到 5 的整数",
                                    "must be a whole number from 1 to 5"))
    elif rating is not None:
        problems.append(problem("rating", "rating_when", "只在确认办结时填写",
                                "is given when confirming only"))
    for name, limit in (("comment", MAX_COMMENT), ("note", MAX_DESCRIPTION)):
        if body.get(name) not in (None, ""):
            found = text_problem(body[name], f"/{name}", LABELS[name], max_chars=limit,
                                 paragraphs=name == "note")
            problems.extend([found] if found else [])
    if not isinstance(body.get("resolve", False), bool):
        problems.append(problem("resolve", "boolean", "应为是或否", "must be yes or no"))
    if body.get("to") == "dispatched" and body.get("assignee") not in HANDLER_KINDS:
        problems.append(problem("assignee", "assignee", "不是可派单的承办单位",
                                "is not a handler"))
    return problems + photos_count_problems(body)


# -- Time limits ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Calendar:
    """Working days: Monday to Friday, less listed holidays, plus listed make-up days."""

    holidays: frozenset[datetime.date] = frozenset()
    workdays: frozenset[datetime.date] = frozenset()

    def working(self, day: datetime.date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def deadline(self, start: datetime.datetime, days: int) -> datetime.datetime:
        """The end (24:00, Asia/Shanghai) of the `days`-th working day after `start`'s day."""
        day, counted = start.astimezone(SHANGHAI).date(), 0
        while counted < days:
            day += datetime.timedelta(days=1)
            counted += self.working(day)
        end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(),
                                        SHANGHAI)
        return end


@dataclasses.dataclass(frozen=True)
class Timing:
    """When a report was submitted, accepted, done, reopened (None: not yet)."""

    submitted: datetime.datetime
    accepted: datetime.datetime | None = None
    done: datetime.datetime | None = None
    reopened: datetime.datetime | None = None


def deadlines(category: Category, timing: Timing,
              calendar: Calendar) -> tuple[datetime.datetime, datetime.datetime]:
    """Rule 6: (accept by, finish by)."""
    finish_from = timing.reopened or timing.submitted
    return (calendar.deadline(timing.submitted, category.accept_days),
            calendar.deadline(finish_from, category.finish_days))


def overdue(category: Category, status: Status, timing: Timing, calendar: Calendar,
            now: datetime.datetime) -> tuple[str, ...]:
    """Rule 6: which limits a report is past: `accept` (not accepted in time), `finish`
    (not done in time); a report done or closed is past neither any more."""
    return past(status.state, deadlines(category, timing, calendar), now)


def overdue_from(state: str, limits: tuple[datetime.datetime, datetime.datetime] | None
                 ) -> datetime.datetime | None:
    """When a report in `state` becomes overdue (`past` is empty before, not after); None:
    never (done, closed, or no deadlines)."""
    if limits is None or state in ("done", "closed"):
        return None
    return min(limits) if state == "submitted" else limits[1]


def past(state: str, limits: tuple[datetime.datetime, datetime.datetime],
         now: datetime.datetime) -> tuple[str, ...]:
    """Rule 6 from a report's deadlines (accept by, finish by): the limits it is past."""
    flags = []
    if state == "submitted" and now >= limits[0]:
        flags.append("accept")
    if state not in ("done", "closed") and now >= limits[1]:
        flags.append("finish")
    return tuple(flags)


def escalation(category: Category, status: Status, timing: Timing, calendar: Calendar,
               now: datetime.datetime) -> int:
    """Rule 6: 0 on time, 1 the community (past a limit), 2 the street (past it by
    ESCALATE_STREET_DAYS working days)."""
    flags = overdue(category, status, timing, calendar, now)
    if not flags:
        return 0
    accept_by, finish_by = deadlines(category, timing, calendar)
    missed = accept_by if "accept" in flags else finish_by
    street_at = calendar.deadline(missed - datetime.timedelta(seconds=1),
                                  ESCALATE_STREET_DAYS)
    return 2 if now >= street_at else 1


def open311_status(state: str) -> str:
    """GeoReport v2's two statuses: a report is `closed` once 已关闭, `open` before."""
    return "closed" if state == "closed" else "open"


def key_of(report: str) -> str:
    return report.removeprefix("report:")


def status_id(report: str) -> str:
    return f"report_status:{key_of(report)}"


def status_doc(report: Mapping[str, Any], folded: Status,
               steps: Sequence[Mapping[str, Any]], now: datetime.datetime) -> dict[str, Any]:
    """The status document of a report: the fold, and the times the limits count from."""
    by_id = {str(s["_id"]): s for s in steps}
    doc: dict[str, Any] = {
        "_id": status_id(str(report["_id"])), "type": "report_status", "schema_version": 1,
        "created_by": SERVER, "report": report["_id"], "reporter": report["reporter"],
        "state": folded.state, "round": folded.round, "conflicts": len(folded.conflicts),
        "updated_at": now.isoformat(timespec="microseconds")}
    if folded.assignee or report.get("assignee"):
        doc["assignee"] = folded.assignee or report["assignee"]
    for sid in folded.applied:  # the times the limits and the dashboard count from
        applied = by_id.get(sid, {})
        moved = (applied.get("from"), applied.get("to"))
        when = {("submitted", "accepted"): "accepted_at", ("in_progress", "done"): "done_at",
                ("done", "closed"): "closed_at", ("done", "in_progress"): "reopened_at"}
        if moved in when and isinstance(applied.get("at"), str):
            doc[when[moved]] = applied["at"]
        if (moved == ("done", "closed") and isinstance(applied.get("rating"), int)
                and applied.get("created_by") == report["reporter"]):
            doc["rating"] = applied["rating"]  # the reporter's, never a resolution's
    return doc


def public_view(report: Mapping[str, Any], status: Status) -> dict[str, Any]:
    """Rule 7: what a published report shows neighbours: never who reported it."""
    return {"_id": report.get("_id"), "category": report.get("category"),
            "description": report.get("description"), "community": report.get("community"),
            "spot": report.get("spot", ""), "state": status.state}


def staff_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """Rule 3: what staff see of a report: the reporter left out when anonymous, and the
    phone's request id always (with the account it would name the reporter)."""
    shown = {k: v for k, v in report.items() if k not in ("_attachments", "request")}
    if report.get("anonymous") is True:
        shown.pop("reporter", None)
        shown.pop("created_by", None)
        shown["reporter"] = ""
    return shown


REPORTER_LABEL = "上报人"


def staff_step_view(step: Mapping[str, Any], anonymous: bool) -> dict[str, Any]:
    """Rule 3 for a step shown to staff: never the `reporter` field nor the request id; on an
    anonymous report the reporter's own steps name them as 上报人 only."""
    shown = {k: v for k, v in step.items() if k not in ("reporter", "request")}
    if anonymous and "reporter" in (step.get("parts") or ()):
        shown["created_by"] = REPORTER_LABEL
    return shown


ACTOR_LABELS = (("supervisor", "社区、街道工作人员"), ("intake", "网格员"),
                ("assignee", "承办单位"))


def resident_step_view(step: Mapping[str, Any]) -> dict[str, Any]:
    """A step as the reporter's phone shows it: staff by the part they played, never by
    their login name (half a credential)."""
    if step.get("created_by") == step.get("reporter"):
        return dict(step)
    parts = step.get("parts") or ()
    label = next((zh for part, zh in ACTOR_LABELS if part in parts), "工作人员")
    return {**step, "created_by": label}


# -- The supervisors' dashboard (rule 8) ----------------------------------------------------

LEVELS = ("city", "street", "community", "grid")


@dataclasses.dataclass(frozen=True)
class Figure:
    """One report as the dashboard counts it: where, what, where it stands, whether it is
    overdue, the hours from its submission to 已办结 (None: not done), its rating."""

    street: str
    community: str
    grid: str
    category: str
    state: str
    overdue: bool
    hours: float | None
    rating: int | None

    def area(self, level: str) -> str:
        return "" if level == "city" else str(getattr(self, level))


def counted_rating(report: Mapping[str, Any], status: Mapping[str, Any]) -> int | None:
    """Rule 8: the rating satisfaction counts: a resident's of their own report, none for a
    report a worker filed (staff do not score staff's handling)."""
    rating = status.get("rating")
    if report.get("reporter_kind") != "resident" or not isinstance(rating, int) \
            or isinstance(rating, bool):
        return None
    return rating


@dataclasses.dataclass(frozen=True)
class Kept:
    """One report as the server keeps it between requests (the dashboard's row and the
    lists' index): whose, routed to whom, where, when, its figure without the clock and its
    deadlines (None: a category no longer listed), so a query only compares times."""

    id: str
    reporter: str
    assignee: str
    place: Place
    submitted_at: str
    figure: Figure  # `overdue` False: the clock is the query's
    late_from: datetime.datetime | None  # `overdue_from` its deadlines

    def scopes(self) -> tuple[str, ...]:
        """The scopes the report is filed under (`scope_keys` of who may see it)."""
        return (f"reporter:{self.reporter}", f"grid:{self.place.grid}",
                f"community:{self.place.community}", f"street:{self.place.street}",
                *((f"company:{self.place.company}",) if self.place.company else ()))

    def order(self) -> tuple[str, str]:
        """Lists show the newest first: by submission time, then id."""
        return (self.submitted_at, self.id)


def scope_keys(actor: Actor) -> tuple[str, ...] | None:
    """The keys (`Kept.scopes`) under which every report `actor` may see is filed (rule 7:
    their own, their grids, communities, streets, property companies); None: all (the
    admin). A superset: `sees` still decides each report."""
    if actor.role == "admin":
        return None
    return (f"reporter:{actor.name}", *(f"grid:{g}" for g in actor.grids),
            *(f"community:{c}" for c in actor.communities),
            *(f"street:{s}" for s in actor.streets),
            *(f"company:{c}" for c in actor.companies))


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (p50 the median's lower middle, p90): a value reported."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


def withhold(cells: dict[str, int | None], small: int) -> None:
    """Rule 8's small counts: 0 < n < small is withheld (None); when exactly one cell of a
    breakdown that sums up to a shown total is withheld, the smallest other goes too."""
    gone = {k for k, v in cells.items() if v is not None and 0 < v < small}
    if len(gone) == 1:
        rest = sorted((v == 0, v, k) for k, v in cells.items() if k not in gone and v is not None)
        if rest:
            gone.add(rest[0][2])
    for key in gone:
        cells[key] = None


@dataclasses.dataclass
class Tally:
    """An area's reports summed for rule 8, kept as its reports change: counts, the handling
    hours (sorted: the median and p90 are an index) and, for open reports, when each falls
    overdue (sorted POSIX times: a clock's count is one bisection). Areas add up."""

    reports: int = 0
    by_category: Counter[str] = dataclasses.field(default_factory=Counter)
    by_state: Counter[str] = dataclasses.field(default_factory=Counter)
    overdue: int = 0  # figures flagged overdue already
    late: list[float] = dataclasses.field(default_factory=list)
    hours: list[float] = dataclasses.field(default_factory=list)
    rated: int = 0
    rating_sum: int = 0

    def add(self, figure: Figure, late_from: datetime.datetime | None = None,
            sign: int = 1) -> None:
        """One report in (sign 1) or out (-1; exactly as it came in)."""
        self.reports += sign
        for counter, key in ((self.by_category, figure.category), (self.by_state, figure.state)):
            counter[key] += sign
            if not counter[key]:
                del counter[key]
        self.overdue += sign * figure.overdue
        for values, value in ((self.late, late_from and late_from.timestamp()),
                              (self.hours, figure.hours)):
            if value is None:
                continue
            if sign > 0:
                bisect.insort(values, value)
            else:
                del values[bisect.bisect_left(values, value)]
        if figure.rating is not None:
            self.rated += sign
            self.rating_sum += sign * figure.rating

    @classmethod
    def of(cls, tallies: Iterable[Tally]) -> Tally:
        """Areas added up."""
        out = cls()
        for one in tallies:
            out.reports += one.reports
            out.by_category.update(one.by_category)
            out.by_state.update(one.by_state)
            out.overdue += one.overdue
            out.late += one.late
            out.hours += one.hours
            out.rated += one.rated
            out.rating_sum += one.rating_sum
        out.late.sort()  # sorted runs: merged in one pass
        out.hours.sort()
        return out

    def overdue_at(self, now: datetime.datetime | None) -> int:
        return self.overdue + (bisect.bisect_right(self.late, now.timestamp())
                               if now is not None else 0)


def area_figures(tally: Tally, small: int, now: datetime.datetime | None) -> dict[str, Any]:
    """One area's figures: counts by category and state, overdue, handling time (median and
    p90 hours, of the reports done) and satisfaction (mean rating), small counts withheld;
    a statistic of fewer than `small` reports is withheld whole."""
    by_category: dict[str, int | None] = dict(tally.by_category)
    by_state: dict[str, int | None] = {s: 0 for s in STATES} | dict(tally.by_state)
    withhold(by_category, small)
    withhold(by_state, small)
    overdue: int | None = tally.overdue_at(now)
    if overdue is not None and 0 < overdue < small:
        overdue = None
    hours = tally.hours
    enough = len(hours) >= small
    return {"reports": tally.reports, "by_category": by_category, "by_state": by_state,
            "overdue": overdue, "done": len(hours) if enough else None,
            "hours_median": round(percentile(hours, 0.5), 1) if enough else None,
            "hours_p90": round(percentile(hours, 0.9), 1) if enough else None,
            "rated": tally.rated if tally.rated >= small else None,
            "satisfaction": round(tally.rating_sum / tally.rated, 2)
            if tally.rated >= small else None}


def dashboard(rows: Iterable[Figure], level: str, small: int) -> dict[str, Any]:
    """Rule 8: the figures of the whole scope and of each area at `level` (`dashboard_of`)."""
    areas: dict[str, Tally] = {}
    for row in rows:
        areas.setdefault(row.area(level), Tally()).add(row)
    return dashboard_of(areas, level, small, None)


def dashboard_of(areas: Mapping[str, Tally], level: str, small: int,
                 now: datetime.datetime | None) -> dict[str, Any]:
    """Rule 8 from each area's tally at `level`: the whole scope's figures and each area's;
    an area of fewer than `small` reports shows its count withheld and none of its figures."""
    shown = []
    for code, tally in sorted(areas.items()):
        if tally.reports < small:
            shown.append({"code": code, "withheld": True})
        else:
            shown.append({"code": code, "withheld": False, **area_figures(tally, small, now)})
    return {"level": level, "total": area_figures(Tally.of(areas.values()), small, now),
            "areas": shown}
