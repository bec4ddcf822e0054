"""The demo's volunteer tasks (server/demo/volunteering.py), pure: three tasks, open, full and
past; every document valid by its schema; the allocation of their claims in order gives the
open task places left, the full one its places taken and the demo resident second in line,
and the past one its volunteers confirmed, with hours and points entries and a correction."""

from __future__ import annotations

import datetime

from server.demo.volunteering import FULL, OPEN, PAST, plan_volunteering
from server.domain import volunteering as rules
from server.domain.allocation import Event, Terms, allocate
from server.domain.validation import SchemaRegistry

NOW = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)


def test_the_demo_tasks_are_open_full_and_past() -> None:
    others = [f"r{n:02d}" for n in range(20)]
    plan = plan_volunteering("330802001001", "rme", others, NOW)
    registry = SchemaRegistry()
    assert [d["_id"] for d in plan.residents + plan.claims
            if registry.problems(d)] == []
    tasks = {d["_id"]: d for d in plan.residents if d["type"] == "volunteer_task"}
    assert set(tasks) == {OPEN, FULL, PAST}
    outcomes = {}
    for task_id, doc in tasks.items():
        events = [Event(c["_id"], c["act"], c["claimant"],
                        datetime.datetime.fromisoformat(c["received_at"]))
                  for c in plan.claims if c["subject"] == task_id]
        outcomes[task_id] = allocate(Terms(doc["places"], rules.parse_time(doc["deadline"])),
                                     events)
    assert sum(o.status == "confirmed" for o in outcomes[OPEN].values()) < tasks[OPEN]["places"]
    assert sum(o.status == "confirmed" for o in outcomes[FULL].values()) == 3
    assert (outcomes[FULL]["rme"].status, outcomes[FULL]["rme"].line) == ("waiting", 2)
    assert "rme" not in outcomes[OPEN]  # the demo resident may still claim the open one
    past = rules.parse_time(tasks[PAST]["ends_at"])
    assert past is not None and past < NOW
    assert all(o.status == "confirmed" for o in outcomes[PAST].values())
    entries = [d for d in plan.residents if d["type"] == "ledger_entry"]
    sums = rules.balances(rules.Entry(e["account"], e["kind"], e["amount"]) for e in entries)
    assert sums[("r07", "hours")] == 150 and sums[("r08", "hours")] == 180
    assert sums[("r07", "points")] == 30
