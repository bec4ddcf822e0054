"""The demo's neighbourhood centre (server/demo/centre.py), pure: a provider of every kind,
every document valid by its schema, each slot inside its provider's opening times, and the
bookings allocated in order: the demo resident's legal consultation awaiting the lawyer, the
bank's one place held by a neighbour with another waiting, the activity's sign-ups held."""

from __future__ import annotations

import datetime

from server.demo.centre import ACTIVITY, plan_centre, slot_id
from server.domain import centre as rules
from server.domain.allocation import Event, allocate
from server.domain.validation import SchemaRegistry

NOW = datetime.datetime(2026, 12, 4, 16, 0, tzinfo=datetime.UTC)  # Saturday 00:00 in Beijing


def test_the_demo_centre_has_every_kind_and_its_bookings_allocate_as_told() -> None:
    others = [f"r{n:02d}" for n in range(8)]
    plan = plan_centre("330802001001", "rme", others, NOW)
    registry = SchemaRegistry()
    assert [d["_id"] for d in plan.centre + plan.claims if registry.problems(d)] == []
    docs = {d["_id"]: d for d in plan.centre}
    providers = {d["code"]: d for d in plan.centre if d["type"] == rules.PROVIDER}
    assert {p["kind"] for p in providers.values()} == set(rules.KINDS)
    for doc in docs.values():
        if doc["type"] == rules.SLOT:
            starts, ends = (rules.parse_time(doc[k]) for k in ("starts_at", "ends_at"))
            assert starts and ends and starts > NOW
            assert rules.open_at(providers[doc["provider"]]["hours"], starts, ends), doc

    def outcomes(subject: str) -> dict[str, str]:
        doc = docs[subject]
        terms = rules.slot_terms(doc) if doc["type"] == rules.SLOT else rules.activity_terms(doc)
        events = [Event(c["_id"], c["act"], c["claimant"],
                        datetime.datetime.fromisoformat(c["received_at"]))
                  for c in plan.claims if c["subject"] == subject]
        return {w: o.status for w, o in allocate(terms, events).items()}
    assert outcomes(slot_id(1)) == {"rme": "awaiting_approval"}
    assert outcomes(slot_id(2)) == {"r00": "awaiting_approval", "r01": "waiting"}
    assert outcomes(ACTIVITY) == {w: "confirmed" for w in ("rme", "r03", "r04", "r05")}
    matter = docs[rules.matter_id(slot_id(1), "rme")]
    assert matter["created_by"] == "rme" and providers["fm-law"]["kind"] == "lawyer"
