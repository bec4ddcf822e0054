"""server/domain/allocation.py's rule, case by case at its boundaries: the order received
decides, one claimant one place, late and ineligible claims, approval, promotion, and never
more than the places whatever the events (checked over many random orders)."""

from __future__ import annotations

import datetime
import random

from server.domain.allocation import Event, Outcome, Terms, allocate, counts, holders

T0 = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)


def ev(n: int, act: str, who: str, minutes: int = 0) -> Event:
    return Event(f"e{n}", act, who, T0 + datetime.timedelta(minutes=minutes))  # type: ignore[arg-type]


def test_first_received_hold_the_places_the_rest_wait_in_line() -> None:
    got = allocate(Terms(2), [ev(1, "claim", "a"), ev(2, "claim", "b"), ev(3, "claim", "c"),
                              ev(4, "claim", "d")])
    assert got == {"a": Outcome("confirmed", "e1"), "b": Outcome("confirmed", "e2"),
                   "c": Outcome("waiting", "e3", line=1), "d": Outcome("waiting", "e4", line=2)}


def test_exactly_the_places_at_the_boundary() -> None:
    assert holders(allocate(Terms(1), [ev(1, "claim", "a")])) == ["a"]
    assert allocate(Terms(1), [ev(1, "claim", "a"), ev(2, "claim", "b")])["b"].status == "waiting"
    assert allocate(Terms(3), []) == {}


def test_a_claimant_counts_once_and_a_retry_is_the_same_event() -> None:
    events = [ev(1, "claim", "a"), ev(1, "claim", "a"), ev(2, "claim", "a"), ev(3, "claim", "b")]
    got = allocate(Terms(1), events)
    assert got["a"] == Outcome("confirmed", "e1")  # the first claim stands
    assert got["b"] == Outcome("waiting", "e3", line=1)


def test_a_cancelled_place_goes_to_the_first_waiting_who_is_promoted() -> None:
    events = [ev(1, "claim", "a"), ev(2, "claim", "b"), ev(3, "claim", "c"), ev(4, "cancel", "a")]
    got = allocate(Terms(1), events)
    assert got["a"] == Outcome("cancelled", "e1")
    assert got["b"] == Outcome("confirmed", "e2", promoted=True)
    assert got["c"] == Outcome("waiting", "e3", line=1)


def test_a_cancellation_of_nothing_changes_nothing() -> None:
    events = [ev(1, "cancel", "a"), ev(2, "claim", "a"), ev(3, "cancel", "b")]
    assert allocate(Terms(1), events) == {"a": Outcome("confirmed", "e2")}


def test_a_claim_after_ones_own_cancellation_goes_to_the_back() -> None:
    events = [ev(1, "claim", "a"), ev(2, "claim", "b"), ev(3, "cancel", "a"),
              ev(4, "claim", "a")]
    got = allocate(Terms(1), events)
    assert got["b"] == Outcome("confirmed", "e2", promoted=True)
    assert got["a"] == Outcome("waiting", "e4", line=1)


def test_the_deadline_is_the_servers_receipt_time() -> None:
    deadline = T0 + datetime.timedelta(minutes=10)
    events = [ev(1, "claim", "a", 10), ev(2, "claim", "b", 11)]
    got = allocate(Terms(5, deadline=deadline), events)
    assert got["a"].status == "confirmed"  # at the deadline: in time
    assert got["b"] == Outcome("late", "e2")  # a minute after: late, never queued
    # A cancellation after the deadline still frees the place for the first waiting.
    events = [ev(1, "claim", "a", 1), ev(2, "claim", "b", 2), ev(3, "cancel", "a", 60)]
    assert allocate(Terms(1, deadline=deadline), events)["b"].status == "confirmed"


def test_ineligible_claimants_hold_nothing() -> None:
    got = allocate(Terms(1), [ev(1, "claim", "x"), ev(2, "claim", "a")], lambda who: who != "x")
    assert got == {"x": Outcome("ineligible", "e1"), "a": Outcome("confirmed", "e2")}


def test_with_approval_the_place_is_kept_until_approved_or_rejected() -> None:
    terms = Terms(1, needs_approval=True)
    events = [ev(1, "claim", "a"), ev(2, "claim", "b"), ev(3, "approve", "b")]
    got = allocate(terms, events)
    assert got["a"].status == "awaiting_approval"
    assert got["b"] == Outcome("waiting", "e2", line=1)  # approved, but behind a
    got = allocate(terms, [*events, ev(4, "reject", "a")])
    assert got["a"] == Outcome("rejected", "e1")
    assert got["b"] == Outcome("confirmed", "e2", promoted=True)
    # A decision about someone who never claimed is nothing.
    assert allocate(terms, [ev(1, "approve", "z"), ev(2, "claim", "z")])["z"].status == (
        "awaiting_approval")


def test_recomputing_gives_the_same_outcome_and_the_places_are_never_exceeded() -> None:
    """Rule 6 over many random histories: deterministic, and at most `places` hold one."""
    rng = random.Random(17)
    for _ in range(300):
        places = rng.randint(1, 5)
        events = []
        for n in range(rng.randint(0, 40)):
            act = rng.choice(["claim", "claim", "claim", "cancel", "approve", "reject"])
            events.append(ev(rng.randint(0, n), act, f"p{rng.randint(0, 12)}", n))
        terms = Terms(places, needs_approval=rng.random() < 0.3)
        first, again = allocate(terms, events), allocate(terms, list(events))
        assert first == again
        assert len(holders(first)) <= places
        waiting = sorted(o.line for o in first.values() if o.status == "waiting")
        assert waiting == list(range(1, len(waiting) + 1))
        if waiting:  # nobody waits while a place is free
            assert len(holders(first)) == places
        assert sum(counts(first).values()) == len(first)
