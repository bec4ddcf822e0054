"""The demo's mutual aid (server/demo/mutual_aid.py), pure: a listing of every kind, every
document valid by its schema, and the allocation of their claims in order: the ride with seats
left, the pram awaiting its poster, the drill lent to the demo resident and overdue, their own
book returned by both sides and rated, the group-buy's orders held and one paid at pickup."""

from __future__ import annotations

import datetime

from server.demo.mutual_aid import BOOK, DRILL, MARKET, PRAM, RIDE, plan_mutual_aid
from server.domain import mutual_aid as rules
from server.domain.allocation import Event, Terms, allocate
from server.domain.validation import SchemaRegistry

NOW = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)


def test_the_demo_has_every_kind_and_its_claims_allocate_as_told() -> None:
    others = [f"r{n:02d}" for n in range(12)]
    plan = plan_mutual_aid("330802001001", "c1", "rme", others, NOW)
    registry = SchemaRegistry()
    assert [d["_id"] for d in plan.residents + plan.claims if registry.problems(d)] == []
    listings = {d["_id"]: d for d in plan.residents if d["type"] == rules.PREFIX}
    assert {d["kind"] for d in listings.values()} == set(rules.KINDS)
    assert [d["_id"] for d in listings.values()] == [RIDE, PRAM, DRILL, BOOK, MARKET]

    def outcomes(subject: str) -> dict[str, str]:
        listing, part = rules.listing_of(subject)
        places, deadline, approval = rules.terms_of(listings[listing], part) or (0, None, False)
        events = [Event(c["_id"], c["act"], c["claimant"],
                        datetime.datetime.fromisoformat(c["received_at"]))
                  for c in plan.claims if c["subject"] == subject]
        return {w: o.status for w, o in allocate(Terms(places, deadline, approval),
                                                 events).items()}
    assert outcomes(f"{RIDE}.r1") == {"r06": "confirmed"}  # 2 of 3 seats left
    assert outcomes(f"{PRAM}.r1") == {"rme": "awaiting_approval"}
    assert outcomes(f"{DRILL}.r1") == {"rme": "confirmed"}
    assert outcomes(f"{BOOK}.r1") == {"r04": "confirmed"} and listings[BOOK]["round"] == 2
    assert outcomes(f"{MARKET}.i0") == {"r05": "confirmed", "rme": "confirmed"}
    deals = {d["_id"]: d for d in plan.residents if d["type"] == "mutual_aid_deal"}
    drill = deals[rules.deal_id(listings[DRILL], 1, "rme")]
    assert rules.overdue(drill, NOW) and not rules.completed(drill)
    book = deals[rules.deal_id(listings[BOOK], 1, "r04")]
    assert rules.completed(book) and book["ratings"] == {"owner": 5, "taker": 5}
    paid = [d for d in deals.values() if d.get("paid_fen") is not None]
    assert [d["paid_fen"] for d in paid] == [3990] and outcomes(f"{MARKET}.i2") == {
        "r07": "confirmed"}
