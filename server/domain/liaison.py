"""Enforcement in the compounds (执法进小区): each compound's liaison officers (联络员) per
department, residents' messages to them through the app, and the officers' patrols (巡查) of
a route of checkpoints. Pure rules, no I/O; the store's side is server/sync/liaison.py.

1. Officers (`liaison_officer`): one per compound and department (综合执法 `zhzf`, 公安
   `police`, 住建 `housing`, 市场监管 `market`, 消防 `fire`: server/domain/reports.py
   DEPARTMENTS), a `department` user of that department whose scope reaches the compound's
   community; named by a supervisor of that community (or the admin). Another naming
   replaces the officer.
2. Residents reach them in the app only (`officers_view`): a resident of a compound sees its
   officers by department label and name, never a login or phone, and writes to "the 公安
   liaison of my compound", not to a person: a thread (`thread_id`, keyed with the
   installation's secret) is the resident's, the compound's and the department's, and
   whoever is the officer then answers it. The officer sees 本小区居民, never the resident's
   login, phone or unit.
3. A route (`patrol_route`): a compound's checkpoints (1 to MAX_CHECKPOINTS names) patrolled
   by a department, planned `per_week` times (1–14), on a grid of the compound's community
   (where its problems are reported); made by the compound's officer of that department or a
   supervisor of the community.
4. A patrol is the officer's phone's `patrol` id on a route; each checkpoint is recorded once
   per patrol (`patrol_check`): the time on the phone (not in the future, not before
   MAX_AGE_DAYS), ok or a problem (a report category and a description), and a photo (the
   reports' photo check). The same checkpoint of the same patrol again is the same check (200
   `repeated`). Only the route's department's officer of the compound records.
5. A problem found becomes a problem report (server/domain/reports.py) of the route's grid and
   compound, the checkpoint as its spot, routed to the route's department, reported by the
   officer; once per check.
6. Figures (`patrol_figures`): per route this week (Monday to Sunday, Asia/Shanghai):
   patrols planned and done (a patrol is done when every checkpoint is recorded), problems
   found and resolved (their report 已办结 or 已关闭), and the same since the route began.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain.reports import DEPARTMENTS, STATE_LABELS
from server.domain.rules import Problem
from server.domain.scope import User
from server.domain.text import labelled, server_filled, text_problem, unknown_fields

SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
MAX_CHECKPOINTS, MAX_AGE_DAYS = 30, 7
NAME_CHARS, TEXT_CHARS, DESCRIPTION_CHARS = 40, 500, 500
KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CODE = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")
ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
ROUTE_ID = re.compile(r"^patrol_route:[0-9a-f]{16}$")
THREAD = re.compile(r"^[0-9a-f]{16}$")
RESOLVED = ("done", "closed")
LABELS: dict[str, tuple[str, str]] = {
    "compound": ("小区", "Compound"), "department": ("联络部门", "Department"),
    "officer": ("联络员", "Liaison officer"), "text": ("消息内容", "Message"),
    "key": ("消息编号", "Message id"), "thread": ("会话", "Conversation"),
    "grid": ("网格", "Grid"), "name": ("路线名称", "Route name"),
    "checkpoints": ("巡查点", "Checkpoints"), "per_week": ("每周计划次数", "Planned per week"),
    "request": ("请求编号", "Request id"), "route": ("巡查路线", "Patrol route"),
    "patrol": ("巡查编号", "Patrol id"), "checkpoint": ("巡查点", "Checkpoint"),
    "at": ("巡查时间", "Checked at"), "ok": ("巡查结果", "Result"),
    "problem": ("发现的问题", "Problem found"), "category": ("问题类别", "Category"),
    "description": ("问题描述", "Description"), "photo": ("现场照片", "Photo"),
    "created_by": ("创建人", "Created by"), "by": ("巡查人", "Patrolled by"),
    "resident": ("居民", "Resident"), "report": ("问题上报", "Problem report"),
    "received_at": ("收到时间", "Received at"), "assigned_by": ("指派人", "Named by"),
    "assigned_at": ("指派时间", "Named at"), "from": ("发送方", "From"),
}
SERVER_FIELDS = ("_id", "_rev", "type", "schema_version", "created_by", "by", "resident",
                 "report", "received_at", "assigned_by", "assigned_at", "from")


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    return labelled(LABELS, field, code, zh, en)


def forged(body: Mapping[str, Any]) -> list[Problem]:
    return server_filled(LABELS, body, SERVER_FIELDS)


def first(body: Mapping[str, Any], allowed: frozenset[str]) -> list[Problem]:
    return forged(body) or unknown_fields(body, allowed)


def digest(secret: bytes, *parts: str) -> str:
    return hmac.new(secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()[:16]


def department_label(code: str) -> list[str]:
    return list(DEPARTMENTS.get(code, (code, code)))


# -- officers (rule 1) -------------------------------------------------------------------------

OFFICER_FIELDS = frozenset({"compound", "department", "officer"})


def officer_problems(body: Mapping[str, Any]) -> list[Problem]:
    problems = first(body, OFFICER_FIELDS)
    if problems:
        return problems
    if not (isinstance(body.get("compound"), str) and CODE.match(body["compound"])):
        problems.append(problem("compound", "compound", "应为小区编码", "must be a compound code"))
    if not (isinstance(body.get("department"), str) and body["department"] in DEPARTMENTS):
        problems.append(problem("department", "department", "应为综合执法、公安、住建、市场监管或"
                                "消防", f"must be one of {', '.join(DEPARTMENTS)}"))
    if not (isinstance(body.get("officer"), str) and ACCOUNT.match(body["officer"])):
        problems.append(problem("officer", "officer", "应为联络员的账号",
                                "must be a liaison officer's account"))
    return problems


def may_serve(officer: User | None, department: str, community: str, street: str) -> bool:
    """Rule 1: a department user of that department reaching the compound's community."""
    return (officer is not None and not officer.disabled and officer.role == "department"
            and officer.department == department
            and (community in officer.communities or street in officer.streets))


def may_name(user: User, community: str) -> bool:
    return user.role == "admin" or (user.role == "supervisor" and not user.disabled
                                    and community in user.communities)


def officer_doc(compound: str, department: str, officer: str, by: str,
                now: datetime.datetime) -> dict[str, Any]:
    return {"_id": f"liaison_officer:{compound}:{department}", "type": "liaison_officer",
            "schema_version": 1, "compound": compound, "department": department,
            "officer": officer, "assigned_by": by, "assigned_at": stamp(now)}


def stamp(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).isoformat(timespec="microseconds")


# -- messages (rule 2) ------------------------------------------------------------------------

MESSAGE_FIELDS = frozenset({"compound", "department", "thread", "text", "key"})


def thread_id(secret: bytes, resident: str, compound: str, department: str) -> str:
    return digest(secret, "liaison", resident, compound, department)


def message_problems(body: Mapping[str, Any], resident: bool) -> list[Problem]:
    """A resident names the compound and department; an officer answers a thread."""
    problems = first(body, MESSAGE_FIELDS)
    if problems:
        return problems
    if resident:
        if "thread" in body:
            problems.append(problem("thread", "thread", "由服务器确定", "is the server's"))
        if not (isinstance(body.get("compound"), str) and CODE.match(body["compound"])):
            problems.append(problem("compound", "compound", "应为您所在的小区",
                                    "must be your compound"))
        if not (isinstance(body.get("department"), str) and body["department"] in DEPARTMENTS):
            problems.append(problem("department", "department", "应为综合执法、公安、住建、"
                                    "市场监管或消防", f"must be one of {', '.join(DEPARTMENTS)}"))
    elif not (isinstance(body.get("thread"), str) and THREAD.match(body["thread"])):
        problems.append(problem("thread", "thread", "应为一个会话", "must be a conversation"))
    stated = text_problem(body.get("text"), "/text", LABELS["text"], max_chars=TEXT_CHARS,
                          paragraphs=True)
    if stated:
        problems.append(stated)
    if not (isinstance(body.get("key"), str) and KEY.match(body["key"])):
        problems.append(problem("key", "key", "应为 8 到 64 位字母、数字、_ 或 -",
                                "must be 8 to 64 letters, digits, _ or -"))
    return problems


def message_doc(thread: str, compound: str, department: str, resident: str, sender: str,
                by: str, body: Mapping[str, Any], now: datetime.datetime) -> dict[str, Any]:
    """Ids sort by time within a thread; the key makes a retry the same message."""
    return {"_id": f"liaison_message:{thread}:{stamp(now)}:{digest(b'', by, body['key'])}",
            "type": "liaison_message", "schema_version": 1, "thread": thread,
            "compound": compound, "department": department, "resident": resident,
            "from": sender, "by": by, "text": body["text"], "key": body["key"],
            "at": stamp(now)}


def message_view(doc: Mapping[str, Any], officer_name: str) -> dict[str, Any]:
    """Rule 2: no login either way: the resident is 本小区居民, the officer by name."""
    resident = doc.get("from") == "resident"
    return {"from": doc.get("from"), "text": doc.get("text"), "at": doc.get("at"),
            "name": ["本小区居民", "A resident of the compound"] if resident else
            [officer_name, officer_name]}


# -- routes and checks (rules 3 to 5) ----------------------------------------------------------

ROUTE_FIELDS = frozenset({"compound", "grid", "department", "name", "checkpoints", "per_week",
                          "request"})
CHECK_FIELDS = frozenset({"route", "patrol", "checkpoint", "at", "ok", "problem", "photo"})


def route_problems(body: Mapping[str, Any]) -> list[Problem]:
    problems = first(body, ROUTE_FIELDS)
    if problems:
        return problems
    for name in ("compound", "grid"):
        if not (isinstance(body.get(name), str) and CODE.match(body[name])):
            problems.append(problem(name, name, "应为编码", "must be a code"))
    if not (isinstance(body.get("department"), str) and body["department"] in DEPARTMENTS):
        problems.append(problem("department", "department", "应为综合执法、公安、住建、市场监管或"
                                "消防", f"must be one of {', '.join(DEPARTMENTS)}"))
    stated = text_problem(body.get("name"), "/name", LABELS["name"], max_chars=NAME_CHARS)
    if stated:
        problems.append(stated)
    points = body.get("checkpoints")
    if not isinstance(points, list) or not 1 <= len(points) <= MAX_CHECKPOINTS:
        problems.append(problem("checkpoints", "checkpoints", f"应为 1 到 {MAX_CHECKPOINTS} 个",
                                f"must be 1 to {MAX_CHECKPOINTS} names"))
    else:
        stated = next((found for n, point in enumerate(points) if (found := text_problem(
            point, "/checkpoints", (f"第 {n + 1} 个巡查点", f"Checkpoint {n + 1}"),
            max_chars=NAME_CHARS))), None)
        if stated:
            problems.append(stated)
        elif len(set(points)) != len(points):
            problems.append(problem("checkpoints", "repeated", "有重名", "repeat a name"))
    per_week = body.get("per_week")
    if type(per_week) is not int or not 1 <= per_week <= 14:
        problems.append(problem("per_week", "per_week", "应为 1 到 14 的整数",
                                "must be a whole number from 1 to 14"))
    if not (isinstance(body.get("request"), str) and KEY.match(body["request"])):
        problems.append(problem("request", "request", "应为 8 到 64 位字母、数字、_ 或 -",
                                "must be 8 to 64 letters, digits, _ or -"))
    return problems


def route_doc(body: Mapping[str, Any], by: str, doc_id: str,
              now: datetime.datetime) -> dict[str, Any]:
    return {"_id": doc_id, "type": "patrol_route", "schema_version": 1, "created_by": by,
            "compound": body["compound"], "grid": body["grid"],
            "department": body["department"], "name": body["name"],
            "checkpoints": list(body["checkpoints"]), "per_week": body["per_week"],
            "request": body["request"], "created_at": stamp(now)}


def parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        found = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


def check_problems(body: Mapping[str, Any], categories: Iterable[str],
                   now: datetime.datetime) -> list[Problem]:
    """Rule 4: a checkpoint's record as the phone sends it (the photo's bytes apart)."""
    problems = first(body, CHECK_FIELDS)
    if problems:
        return problems
    if not (isinstance(body.get("route"), str) and ROUTE_ID.match(body["route"])):
        problems.append(problem("route", "route", "应为一条巡查路线", "must be a patrol route"))
    if not (isinstance(body.get("patrol"), str) and KEY.match(body["patrol"])):
        problems.append(problem("patrol", "patrol", "应为 8 到 64 位字母、数字、_ 或 -",
                                "must be 8 to 64 letters, digits, _ or -"))
    point = body.get("checkpoint")
    if type(point) is not int or not 0 <= point < MAX_CHECKPOINTS:
        problems.append(problem("checkpoint", "checkpoint", "应为路线上的一个巡查点",
                                "must be a checkpoint of the route"))
    at = parse_time(body.get("at"))
    if at is None:
        problems.append(problem("at", "at", "应为带时区的时间", "must be a time with its zone"))
    elif at > now + datetime.timedelta(minutes=5) or at < now - datetime.timedelta(
            days=MAX_AGE_DAYS):
        problems.append(problem("at", "at", f"应在最近 {MAX_AGE_DAYS} 天内，不能是将来",
                                f"must be within the last {MAX_AGE_DAYS} days, not ahead"))
    ok = body.get("ok")
    if not isinstance(ok, bool):
        problems.append(problem("ok", "ok", "应为正常或发现问题", "must be ok or a problem"))
    found = body.get("problem")
    if ok is True and found is not None:
        problems.append(problem("problem", "not_ok", "只在发现问题时填写",
                                "is only for a problem found"))
    if ok is False:
        problems.extend(found_problems(found, set(categories)))
    if "photo" in body and not isinstance(body["photo"], dict):
        problems.append(problem("photo", "photo", "应为一张照片", "must be one photo"))
    return problems


def found_problems(found: Any, categories: set[str]) -> list[Problem]:
    if not isinstance(found, dict) or set(found) - {"category", "description"}:
        return [problem("problem", "problem", "应写明问题类别和描述",
                        "must give a category and a description")]
    out = []
    if not (isinstance(found.get("category"), str) and found["category"] in categories):
        out.append(problem("category", "category", "不在可选列表中", "is not one of the list"))
    stated = text_problem(found.get("description"), "/problem/description",
                          LABELS["description"], max_chars=DESCRIPTION_CHARS, min_chars=2)
    if stated:
        out.append(stated)
    return out


def patrol_key(secret: bytes, officer: str, route: str, patrol: str) -> str:
    return digest(secret, "patrol", officer, route, patrol)


def check_doc(body: Mapping[str, Any], route: Mapping[str, Any], officer: str, key: str,
              now: datetime.datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": f"patrol_check:{key}:{body['checkpoint']:02d}", "type": "patrol_check",
        "schema_version": 1, "created_by": officer, "route": route["_id"], "patrol": key,
        "compound": route["compound"], "department": route["department"],
        "checkpoint": body["checkpoint"], "at": body["at"], "ok": body["ok"],
        "received_at": stamp(now)}
    if body.get("problem"):
        doc["problem"] = dict(body["problem"])
    return doc


# -- figures (rule 6) --------------------------------------------------------------------------

def week_of(value: Any) -> datetime.date | None:
    at = parse_time(value)
    if at is None:
        return None
    day = at.astimezone(SHANGHAI).date()
    return day - datetime.timedelta(days=day.weekday())


@dataclasses.dataclass
class Tally:
    done: int = 0
    found: int = 0
    resolved: int = 0


def patrol_figures(routes: Iterable[Mapping[str, Any]], checks: Iterable[Mapping[str, Any]],
                   states: Mapping[str, str], now: datetime.datetime,
                   names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rule 6, per route: `states` is each report's state by id, `names` compound names."""
    by_route: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for check in checks:
        by_route.setdefault(str(check.get("route")), {}).setdefault(
            str(check.get("patrol")), []).append(check)
    this_week = week_of(stamp(now))
    out = []
    for route in sorted(routes, key=lambda r: (str(r.get("compound")), str(r.get("name")))):
        week, ever = Tally(), Tally()
        points = len(route.get("checkpoints", []))
        for patrol in by_route.get(str(route["_id"]), {}).values():
            done = len({c.get("checkpoint") for c in patrol}) >= points
            started = min(str(c.get("at")) for c in patrol)
            tallies = (ever, week) if week_of(started) == this_week else (ever,)
            for tally in tallies:
                tally.done += done
                for c in patrol:
                    if c.get("problem"):
                        tally.found += 1
                        tally.resolved += states.get(str(c.get("report")), "") in RESOLVED
        out.append({"route": route["_id"], "name": route.get("name"),
                    "compound": names.get(str(route.get("compound"))) or route.get("compound"),
                    "department": department_label(str(route.get("department"))),
                    "planned": route.get("per_week"), "done": week.done,
                    "found": week.found, "resolved": week.resolved,
                    "total": dataclasses.asdict(ever)})
    return out


def report_state_label(state: str) -> list[str]:
    return list(STATE_LABELS.get(state, (state, state)))
