"""The demo's mediation case (server/demo/mediation.py), pure: a case that goes through the
workflow as the server applies it, valid by its schema, settled by an agreement signed in the
app and on paper, followed up, with names and no login shown."""

from __future__ import annotations

import datetime

from server.demo.mediation import CASE, MEDIATOR, paper_photo, plan_case
from server.domain import mediation as rules
from server.domain.scope import User
from server.domain.validation import SchemaRegistry

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
