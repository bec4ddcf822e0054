"""The demo's mediation case (server/demo/mediation.py), pure: a case that goes through the
workflow as the server applies it, valid by its schema, settled by an agreement signed in the
app and on paper, followed up, with names and no login shown."""

from __future__ import annotations

import datetime
from typing import Any

from conftest import basic, eventually

from server.demo.mediation import CASE, MEDIATOR, paper_photo, plan_case
from server.demo.residents import DEMO_RESIDENT
from server.demo.seed import DEMO_PASSWORD
from server.domain import mediation as rules
from server.domain.scope import User
from server.domain.validation import SchemaRegistry
from server.web.keys import DIRECTORY

NOW = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)


def test_the_demo_case_is_settled_signed_and_followed_up() -> None:
    case = plan_case("r.me", "r.neighbour", "330802001001", NOW)
    assert SchemaRegistry().problems(case) == []
    assert case["_id"] == CASE and rules.CASE_ID.match(CASE)
    assert case["state"] == "followed_up" and rules.outcome(case) == "agreed"
    assert {k: v["how"] for k, v in case["signatures"].items()} == {"p1": "app", "p2": "paper"}
    seen = rules.view(case, "party", User("r.me", "resident"), lambda n: {
        MEDIATOR: "周建国"}.get(n, n), "坊门街社区")
    assert seen["mediator"] == "周建国" and "r.me" not in str(seen)
    assert [p["you"] for p in seen["parties"]] == [True, False]
    assert paper_photo()[:3] == b"\xff\xd8\xff"


async def served(client: Any) -> None:
    """On the served demo (tests/test_demo_residents.py loads it): the demo resident and the
    mediator read the case; a grid worker and the street's supervisor see none of it."""
    await eventually(lambda: client.app[DIRECTORY].user(MEDIATOR), what="the mediator")
    for user, count in ((DEMO_RESIDENT, 1), (MEDIATOR, 1), ("chen.jing", 1), ("wang.fang", 0),
                        ("sun.lei", 0)):
        resp = await client.get("/api/mediation/cases", headers=basic(user, DEMO_PASSWORD))
        listed = await resp.json()
        assert resp.status == 200 and len(listed["cases"]) == count, (user, listed)
    resp = await client.get(f"/api/mediation/cases/{CASE}",
                            headers=basic(DEMO_RESIDENT, DEMO_PASSWORD))
    case = (await resp.json())["case"]
    assert case["state"] == "followed_up" and case["mediator"] == "周建国"
    resp = await client.get(f"/api/mediation/cases/{CASE}/photos/paper-p2-1.jpg",
                            headers=basic(MEDIATOR, DEMO_PASSWORD))
    assert resp.status == 200
