"""The demo's liaison officers and patrol (server/demo/liaison.py): pure, every document valid
by its schema, the patrol done this week with its problem filed as a report routed to 消防;
served, the demo resident sees the officers by name and the supervisor the route's figures."""

from __future__ import annotations

import datetime
from typing import Any

from conftest import basic, eventually

from server.demo.liaison import FIRE, POLICE, REPORT, ROUTE, plan_liaison
from server.demo.residents import DEMO_RESIDENT
from server.demo.seed import DEMO_PASSWORD
from server.domain import liaison as rules
from server.domain.validation import SchemaRegistry
from server.web.keys import DIRECTORY

NOW = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)


def test_the_demo_patrol_is_done_this_week_with_its_problem_reported() -> None:
    docs = plan_liaison("r.me", "g1", "yg", "c1", "s1", NOW, b"secret")
    registry = SchemaRegistry()
    assert {d["_id"]: registry.problems(d) for d in docs} == {d["_id"]: [] for d in docs}
    route = next(d for d in docs if d["_id"] == ROUTE)
    checks = [d for d in docs if d["type"] == "patrol_check"]
    report = next(d for d in docs if d["_id"] == REPORT)
    assert report["assignee"] == "department:fire" and report["reporter"] == FIRE
    (found,) = rules.patrol_figures([route], checks, {REPORT: "submitted"}, NOW, {"yg": "阳光"})
    assert (found["planned"], found["done"], found["found"], found["resolved"]) == (2, 1, 1, 0)
    thread = rules.thread_id(b"secret", "r.me", "yg", "police")
    assert [d["from"] for d in docs if d.get("thread") == thread] == ["resident", "officer"]
    officers = {d["department"]: d["officer"] for d in docs if d["type"] == "liaison_officer"}
    assert officers == {"police": POLICE, "fire": FIRE}


async def served(client: Any) -> None:
    """On the served demo (tests/test_demo_residents.py loads it)."""
    await eventually(lambda: client.app[DIRECTORY].user(FIRE), what="the fire officer")
    resp = await client.get("/api/liaison/officers", headers=basic(DEMO_RESIDENT, DEMO_PASSWORD))
    listed = await resp.json()
    assert resp.status == 200, listed
    names = {o["officer"] for c in listed["compounds"] for o in c["officers"]}
    assert names == {"张警官", "吴消防"}
    police = next(o for c in listed["compounds"] for o in c["officers"]
                  if o["department"] == "police")
    resp = await client.get(f"/api/liaison/messages/{police['thread']}",
                            headers=basic(DEMO_RESIDENT, DEMO_PASSWORD))
    assert [m["from"] for m in (await resp.json())["messages"]] == ["resident", "officer"]
    resp = await client.get("/api/patrols/figures", headers=basic("chen.jing", DEMO_PASSWORD))
    (route,) = (await resp.json())["routes"]
    assert route["done"] == 1 and route["found"] == 1
