"""The pure rules of enforcement liaison and patrols (server/domain/liaison.py): who serves a
compound, what a message, a route and a check may hold (every class of bad input by label),
threads keyed so nobody recomputes them, and the patrols' figures."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from server.domain import liaison as rules
from server.domain.scope import User

NOW = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)  # a Thursday
CATEGORIES = ["safety", "sanitation", "illegal_building"]


def test_who_serves_and_names() -> None:
    police = User("ga.li", "department", department="police", communities=frozenset({"c1"}))
    assert rules.may_serve(police, "police", "c1", "s1")
    assert not rules.may_serve(police, "fire", "c1", "s1")
    assert not rules.may_serve(police, "police", "c2", "s2")
    assert rules.may_serve(User("ga.w", "department", department="police",
                                streets=frozenset({"s2"})), "police", "c2", "s2")
    assert not rules.may_serve(User("w", "worker", grids=frozenset({"g1"})), "police", "c1", "s1")
    assert not rules.may_serve(None, "police", "c1", "s1")
    assert rules.may_name(User("s", "supervisor", communities=frozenset({"c1"})), "c1")
    assert not rules.may_name(User("s", "supervisor", communities=frozenset({"c2"})), "c1")
    assert not rules.may_name(User("r", "resident"), "c1")


def test_a_thread_is_keyed_with_the_secret() -> None:
    one = rules.thread_id(b"k1", "r.wang", "yg", "police")
    assert rules.THREAD.match(one)
    assert one != rules.thread_id(b"k2", "r.wang", "yg", "police")
    assert one != rules.thread_id(b"k1", "r.li", "yg", "police")
    doc = rules.message_doc(one, "yg", "police", "r.wang", "resident", "r.wang",
                            {"text": "楼下有人占道经营", "key": "msg-0001"}, NOW)
    seen = rules.message_view(doc, "李警官")
    assert "r.wang" not in str(seen) and seen["name"][0] == "本小区居民"


def route(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"compound": "yg", "grid": "g1", "department": "fire",
                            "name": "消防通道巡查", "checkpoints": ["1号楼", "2号楼"],
                            "per_week": 2, "request": "route-0001"}
    body.update(changes)
    return body


@pytest.mark.parametrize("body, label", [
    (route(created_by="x"), "创建人"), (route(extra=1), "不允许的字段"),
    (route(department="army"), "联络部门"), (route(compound="../x"), "小区"),
    (route(name=""), "路线名称"), (route(name="a\ud800"), "路线名称"),
    (route(checkpoints=[]), "巡查点"), (route(checkpoints="1号楼"), "巡查点"),
    (route(checkpoints=["1号楼"] * 31), "巡查点"), (route(checkpoints=["1号楼", "1号楼"]), "重名"),
    (route(checkpoints=[{"a": 1}, "x"]), "第 1 个巡查点"), (route(per_week=0), "每周计划次数"),
    (route(per_week=1.5), "每周计划次数"), (route(per_week=True), "每周计划次数"),
    (route(request="x"), "请求编号"),
])
def test_bad_routes_by_label(body: dict[str, Any], label: str) -> None:
    problems = rules.route_problems(body)
    assert problems and label in problems[0].zh, problems


def check(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"route": "patrol_route:0123456789abcdef", "patrol": "patrol-0001",
                            "checkpoint": 0, "at": "2026-12-03T15:30:00+08:00", "ok": True}
    body.update(changes)
    return body


@pytest.mark.parametrize("body, label", [
    (check(report="report:0123456789abcdef"), "问题上报"), (check(by="x"), "巡查人"),
    (check(route="../../x"), "巡查路线"), (check(patrol="p"), "巡查编号"),
    (check(checkpoint=-1), "巡查点"), (check(checkpoint="0"), "巡查点"),
    (check(checkpoint=30), "巡查点"), (check(at="2026-12-03T15:30:00"), "巡查时间"),
    (check(at="2027-01-01T00:00:00+08:00"), "巡查时间"),
    (check(at="2026-11-01T00:00:00+08:00"), "巡查时间"), (check(at=1), "巡查时间"),
    (check(ok="yes"), "巡查结果"), (check(problem={"category": "safety"}), "只在发现问题时填写"),
    (check(ok=False), "发现的问题"), (check(ok=False, problem={"category": "war",
                                                           "description": "占道"}), "问题类别"),
    (check(ok=False, problem={"category": "safety", "description": "x\u202e"}), "问题描述"),
    (check(ok=False, problem={"category": "safety", "description": "占道", "x": 1}), "发现的问题"),
    (check(photo="abc"), "现场照片"),
])
def test_bad_checks_by_label(body: dict[str, Any], label: str) -> None:
    problems = rules.check_problems(body, CATEGORIES, NOW)
    assert problems and label in problems[0].zh, problems


def test_figures_count_this_week_and_since() -> None:
    the_route = {**rules.route_doc(route(), "ga.li", "patrol_route:0123456789abcdef", NOW),
                 "checkpoints": ["1号楼", "2号楼"]}
    rid = the_route["_id"]

    def at(day: str) -> str:
        return f"2026-{day}T09:00:00+08:00"
    checks = [
        {"route": rid, "patrol": "a", "checkpoint": 0, "at": at("12-01")},
        {"route": rid, "patrol": "a", "checkpoint": 1, "at": at("12-01"),
         "problem": {"category": "safety"}, "report": "report:1"},
        {"route": rid, "patrol": "b", "checkpoint": 0, "at": at("12-02"),
         "problem": {"category": "safety"}, "report": "report:2"},
        {"route": rid, "patrol": "c", "checkpoint": 0, "at": at("11-20")},
        {"route": rid, "patrol": "c", "checkpoint": 1, "at": at("11-20")},
    ]
    (found,) = rules.patrol_figures([the_route], checks, {"report:1": "done",
                                                          "report:2": "dispatched"}, NOW,
                                    {"yg": "阳光花园"})
    assert (found["planned"], found["done"], found["found"], found["resolved"]) == (2, 1, 2, 1)
    assert found["total"] == {"done": 2, "found": 2, "resolved": 1}
    assert found["compound"] == "阳光花园" and found["department"] == ["消防", "Fire and rescue"]
