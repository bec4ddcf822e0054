"""The demo's problem reports (server/demo/reports.py), pure: one in each state of the workflow,
one in the supervisors' queue, every document valid, statuses the fold of their steps."""

from __future__ import annotations

import datetime

from server.demo.reports import plan_reports
from server.domain import reports as rules
from server.domain.validation import SchemaRegistry

NOW = datetime.datetime(2026, 12, 3, 10, tzinfo=datetime.UTC)


def test_reports_in_every_state_and_one_in_dispute() -> None:
    docs = plan_reports("r0123456789ab", "g330802001001a", "330802001001", "330802001", NOW)
    registry = SchemaRegistry()
    assert [d["_id"] for d in docs if registry.problems(d)] == []
    statuses = [d for d in docs if d["type"] == "report_status"]
    assert {s["state"] for s in statuses} == set(rules.STATES)
    assert [s["conflicts"] for s in statuses if s["conflicts"]] == [1]
    assert [s.get("rating") for s in statuses if s["state"] == "closed"] == [5]
    assert all(d["reporter"] == "r0123456789ab" for d in docs)
    assert plan_reports("r0123456789ab", "g", "c", "s", NOW) == plan_reports(
        "r0123456789ab", "g", "c", "s", NOW)
