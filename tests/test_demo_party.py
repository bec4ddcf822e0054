"""The demo's party members (server/demo/party.py), pure: every membership valid by its schema;
the demo resident confirmed and free to choose (identity hidden, not reported); one member
pending; and, with the volunteering demo's flood watch, the branch 市财政局机关支部 has hours,
this year's project (the rule met) and members not yet reported, while 市教育局机关支部 has
none (the rule not met)."""

from __future__ import annotations

import datetime
from typing import Any

from conftest import basic, eventually

from server.demo.party import BRANCHES, PARTY_TASK, SECRETARY, party_task, plan_party
from server.demo.residents import DEMO_RESIDENT
from server.demo.seed import DEMO_PASSWORD
from server.demo.volunteering import PAST, plan_volunteering
from server.domain import party as rules
from server.domain import volunteering
from server.domain.validation import SchemaRegistry
from server.web.keys import DIRECTORY

NOW = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)


def test_the_demo_members_and_their_branch_views() -> None:
    others = [f"r{n:02d}" for n in range(20)]
    docs = plan_party("rme", others, "zhao.shuji", NOW)
    registry = SchemaRegistry()
    assert [d["_id"] for d in docs if registry.problems(d)] == []
    assert {code for code, _, _ in BRANCHES} >= {d["branch"] for d in docs}
    by_account = {d["account"]: d for d in docs}
    me = by_account["rme"]
    assert me["status"] == "confirmed" and me["public"] is False and "reported_at" not in me
    assert [d["account"] for d in docs if d["status"] == "pending"] == ["r11"]
    assert rules.shows_identity(by_account["r08"]) and not rules.shows_identity(me)

    plan = plan_volunteering("330802001001", "rme", others, NOW)
    hours = [d for d in plan.residents if d["type"] == "ledger_entry"]
    past = next(d for d in plan.residents if d["_id"] == PAST)
    flood = rules.Task(PAST, past["title"], past["starts_at"],
                       {c["claimant"]: "confirmed" for c in plan.claims if c["subject"] == PAST})
    czj = rules.branch_view("czj", [d for d in docs if d["branch"] == "czj"], hours, [flood],
                            NOW)
    assert czj["projects_met"] is True and czj["hours_by_task"][0]["minutes"] == 150 + 3 * 180
    assert czj["counts"] == {"pending": 1, "confirmed": 5, "rejected": 0}
    assert "rme" in czj["not_reported"] and "r07" not in czj["not_reported"]
    jyj = rules.branch_view("jyj", [d for d in docs if d["branch"] == "jyj"], hours, [flood],
                            NOW)
    assert jyj["projects_met"] is False and jyj["counts"]["confirmed"] == 1
    task = party_task("330802001001", NOW)
    assert registry.problems(task) == [] and task["open_to"] == "party_members"
    member = rules.branches_of(me, ["g330802001001a"])
    assert volunteering.eligible(task, volunteering.Claimant("rme", frozenset({
        "330802001001"}), branches=member))
    assert not volunteering.eligible(task, volunteering.Claimant("r11", frozenset({
        "330802001001"}), branches=rules.branches_of(by_account["r11"], ["g330802001001a"])))


async def served(client: Any) -> None:
    """On the served demo (tests/test_demo_residents.py loads it): the secretary's branch view
    and the demo resident's membership, as the tour shows them."""
    await eventually(lambda: client.app[DIRECTORY].user(SECRETARY), what="the secretary")
    resp = await client.get("/api/party/branches/czj", headers=basic(SECRETARY, DEMO_PASSWORD))
    view = await resp.json()
    assert resp.status == 200, view
    assert view["counts"] == {"pending": 1, "confirmed": 5, "rejected": 0}
    assert sum(m["minutes"] for m in view["hours_by_member"]) == 150 + 3 * 180
    resp = await client.get("/api/party/me", headers=basic(DEMO_RESIDENT, DEMO_PASSWORD))
    mine = await resp.json()
    assert mine["member"]["status"] == "confirmed" and mine["shows_identity"] is False
    resp = await client.post(f"/api/volunteer/tasks/{PARTY_TASK}/claim",
                             json={"claim_id": "demo-party-claim"},
                             headers=basic(DEMO_RESIDENT, DEMO_PASSWORD))
    placed = await resp.json()
    assert resp.status == 201 and placed["status"] == "confirmed", placed
