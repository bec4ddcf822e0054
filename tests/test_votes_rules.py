"""server/domain/votes.py: art. 278's thresholds and the interpretation's headcount, at their
exact boundaries, with exact arithmetic."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from server.domain import votes
from server.domain.votes import Electorate, Motion, RawBallot, Unit

ORDINARY = [m for m in votes.MATTERS.values() if not m.special]
SPECIAL = [m for m in votes.MATTERS.values() if m.special]


def units(*areas: int) -> list[Unit]:
    """One unit per area, each with its own owner."""
    return [Unit(f"u{i}", a, frozenset({f"o{i}"})) for i, a in enumerate(areas, start=1)]


def ballots(*pairs: tuple[str, object]) -> list[RawBallot]:
    return [RawBallot(f"b{i}", unit, choice, by=f"by-{unit}")
            for i, (unit, choice) in enumerate(pairs)]


def motion(matter: str = "other") -> Motion:
    return Motion("m1", votes.MATTERS[matter])


def test_the_nine_matters_of_article_278() -> None:
    assert [m.number for m in votes.MATTERS.values()] == list(range(1, 10))
    assert [m.number for m in SPECIAL] == [6, 7, 8]


def test_quorum_at_exactly_two_thirds_and_one_square_centimetre_below() -> None:
    exact = Electorate.of(units(100_000, 100_000, 100_000))
    result = votes.count(motion(), exact, ballots(("u1", "yes"), ("u2", "yes")))
    assert result["participation"]["area_share"]["exact"] == "2/3"
    assert result["participation"]["owners_share"]["exact"] == "2/3"
    assert result["participation"]["met"] is True and result["passed"] is True
    # 300,000 cm² in all; units 1 and 2 hold 199,999: two thirds less one square centimetre
    short = Electorate.of(units(100_000, 99_999, 100_001))
    result = votes.count(motion(), short, ballots(("u1", "yes"), ("u2", "yes")))
    assert result["participation"]["area_cm2"] == 2 * 300_000 // 3 - 1
    assert result["participation"]["owners_share"]["exact"] == "2/3"
    assert result["participation"]["met"] is False and result["passed"] is False
    assert result["participation"]["area_share"]["percent"] == "66.66"  # never shown as 66.67


def test_quorum_needs_headcount_as_well_as_area() -> None:
    big = Electorate.of(units(1_000_000, 10_000, 10_000, 10_000))
    result = votes.count(motion(), big, ballots(("u1", "yes")))
    assert Fraction(result["participation"]["area_share"]["exact"]) > Fraction(2, 3)
    assert result["participation"]["met"] is False


def test_one_owner_of_three_units_counts_once() -> None:
    mine = [Unit(f"a{i}", 100_000, frozenset({"owner-a"})) for i in range(3)]
    electorate = Electorate.of([*mine, *units(100_000, 100_000)])
    assert electorate.headcount == 3
    assert votes.owned_units(electorate, "owner-a") == ["a0", "a1", "a2"]
    result = votes.count(motion(), electorate, ballots(("a0", "yes"), ("a1", "yes"), ("a2", "yes")))
    # 3/5 of the area, 1/3 of the owners: not a quorum, however many parts A holds
    assert result["participation"]["owners"] == 1
    assert result["participation"]["met"] is False
    # their headcount goes with the last ballot received among their parts
    result = votes.count(motion(), electorate, ballots(
        ("a0", "yes"), ("a1", "yes"), ("u1", "yes"), ("a2", "no")))
    assert result["approval"]["owners"] == 1 and result["participation"]["owners"] == 2


def test_co_owners_are_one_buyer_and_a_different_set_is_another() -> None:
    electorate = Electorate.of([Unit("x", 90_0000, frozenset({"wang", "li"})),
                                Unit("y", 60_0000, frozenset({"wang"})),
                                Unit("z", 60_0000, frozenset({"li", "wang"}))])
    assert electorate.headcount == 2  # {wang, li} twice is one buyer; {wang} another
    assert electorate.may_vote("x", "li") and not electorate.may_vote("y", "li")


def test_the_developers_unsold_and_undelivered_units_count_once_together() -> None:
    developer = [Unit(f"d{i}", 100_000, frozenset({f"buyer{i}"} if i % 2 else set()),
                      developer_held=True) for i in range(6)]
    electorate = Electorate.of([*developer, *units(100_000, 100_000)])
    assert electorate.headcount == 3
    result = votes.count(motion(), electorate, ballots(*((f"d{i}", "yes") for i in range(6))))
    assert result["participation"]["owners"] == 1
    assert result["participation"]["area_share"]["exact"] == "3/4"


@pytest.mark.parametrize("matter", list(votes.MATTERS.values()), ids=lambda m: m.code)
def test_every_matters_approval_at_its_boundary(matter: votes.Matter) -> None:
    """Four equal units all take part. 3 yes: exactly 3/4 of area and owners (passes every
    matter); 2 yes: exactly half (passes none); 2 yes holding one cm² more than half the area
    but half the owners (passes none). Seven units, 4 yes: more than half, less than 3/4."""
    four = Electorate.of(units(100_000, 100_000, 100_000, 100_000))
    three_yes = votes.count(Motion("m", matter), four, ballots(
        ("u1", "yes"), ("u2", "yes"), ("u3", "yes"), ("u4", "no")))
    assert three_yes["approval"]["area_share"]["exact"] == "3/4"
    assert three_yes["passed"] is True
    half = votes.count(Motion("m", matter), four, ballots(
        ("u1", "yes"), ("u2", "yes"), ("u3", "no"), ("u4", "abstain")))
    assert half["approval"]["owners_share"]["exact"] == "1/2"
    assert half["passed"] is False
    lopsided = Electorate.of(units(100_001, 100_000, 100_000, 99_999))
    more_area = votes.count(Motion("m", matter), lopsided, ballots(
        ("u1", "yes"), ("u2", "yes"), ("u3", "no"), ("u4", "no")))
    assert Fraction(more_area["approval"]["area_share"]["exact"]) > Fraction(1, 2)
    assert more_area["passed"] is False  # area alone is not enough
    seven = Electorate.of(units(*[100_000] * 7))
    four_of_seven = votes.count(Motion("m", matter), seven, ballots(
        *((f"u{i}", "yes" if i <= 4 else "no") for i in range(1, 8))))
    assert four_of_seven["passed"] is (not matter.special)
    assert four_of_seven["approval_threshold"] == (">=3/4" if matter.special else ">1/2")


def test_three_quarters_less_one_square_centimetre_fails_matters_six_to_eight() -> None:
    electorate = Electorate.of(units(100_000, 100_000, 99_999, 100_001))
    for matter in SPECIAL:
        result = votes.count(Motion("m", matter), electorate, ballots(
            ("u1", "yes"), ("u2", "yes"), ("u3", "yes"), ("u4", "no")))
        assert result["approval"]["area_cm2"] == 3 * 400_000 // 4 - 1
        assert result["passed"] is False
    for matter in ORDINARY:
        result = votes.count(Motion("m", matter), electorate, ballots(
            ("u1", "yes"), ("u2", "yes"), ("u3", "yes"), ("u4", "no")))
        assert result["passed"] is True


def test_the_rules_are_exact_fractions() -> None:
    assert votes.quorum_met(Fraction(2, 3), Fraction(2, 3))
    assert not votes.quorum_met(Fraction(2, 3) - Fraction(1, 10**12), Fraction(1))
    assert votes.approved_special(Fraction(3, 4), Fraction(3, 4))
    assert not votes.approved_ordinary(Fraction(1, 2), Fraction(1))
    assert votes.approved_ordinary(Fraction(1, 2) + Fraction(1, 10**12), Fraction(2, 3))
    assert votes.share(1, 0) == 0
    for rule in (votes.quorum_met, votes.approved_special, votes.approved_ordinary):
        assert "278" in (rule.__doc__ or "")


def test_areas_are_whole_square_centimetres_never_floats() -> None:
    assert votes.area_cm2("89.5") == 895_000
    assert votes.area_cm2(Decimal("0.0001")) == 1
    assert votes.area_cm2(120) == 1_200_000
    assert votes.shown_m2(895_000) == "89.5" and votes.shown_m2(1_200_000) == "120"
    for bad in (89.5, True, "89.50001", "-1", "0", "NaN", "Infinity", "", "八十", "1e9", None):
        with pytest.raises(ValueError):
            votes.area_cm2(bad)


def test_the_last_ballot_received_counts_late_ones_are_kept_not_counted() -> None:
    electorate = Electorate.of(units(100_000, 100_000, 100_000))
    raw = [RawBallot("b1", "u1", "yes", by="o1"), RawBallot("b2", "u1", "no", by="o1"),
           RawBallot("b3", "u2", "yes", by="o2"), RawBallot("b4", "u3", "yes", by="o3", late=True),
           RawBallot("b5", "nowhere", "yes", by="o9")]
    result = votes.tally(electorate, raw)
    assert result.status == {"b1": "replaced", "b2": "counted", "b3": "counted", "b4": "late",
                             "b5": "not_on_register"}
    counted = votes.count(motion(), electorate, raw)
    assert counted["ballots"] == {"counted": 2, "replaced": 1, "not_on_register": 1}
    assert counted["approval"]["owners"] == 1  # u1 changed its mind to no


def test_co_owners_clashing_the_later_by_receipt_counts_and_both_are_told() -> None:
    electorate = Electorate.of([Unit("x", 100_000, frozenset({"wang", "li"}))])
    raw = [RawBallot("b1", "x", "no", by="wang"), RawBallot("b2", "x", "yes", by="li")]
    result = votes.tally(electorate, raw)
    assert result.counted["x"].id == "b2" and result.clashes == [("b1", "b2")]
    same_mind = [RawBallot("b1", "x", "yes", by="wang"), RawBallot("b2", "x", "yes", by="li")]
    assert votes.tally(electorate, same_mind).clashes == []


def test_receipts_change_when_a_stored_choice_does() -> None:
    ballot = RawBallot("b1", "u1", "yes", by="o1")
    assert votes.receipt(ballot) == votes.receipt(RawBallot("b1", "u1", "yes", by="someone"))
    assert votes.receipt(ballot) != votes.receipt(RawBallot("b1", "u1", "no", by="o1"))


def test_the_count_is_the_same_bytes_every_time() -> None:
    electorate = Electorate.of(units(*range(90_000, 90_010)))
    raw = ballots(*((f"u{i}", ("yes", "no", "abstain")[i % 3]) for i in range(1, 11)))
    once = votes.canonical(votes.count(motion("rebuild"), electorate, raw))
    assert once == votes.canonical(votes.count(motion("rebuild"), electorate, list(raw)))
    assert b" " not in once and b"\n" not in once


def election(seats: int, *candidates: str) -> Motion:
    return Motion("e1", votes.MATTERS["committee"], seats=seats, candidates=candidates)


def test_seats_are_five_to_eleven_and_odd() -> None:
    assert [s for s in range(0, 14) if votes.seats_problem(s) is None] == [5, 7, 9, 11]
    assert votes.seats_problem(True) and votes.seats_problem("5") and votes.seats_problem(5.0)


def test_a_ballot_names_at_most_seats_distinct_candidates() -> None:
    names = ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert votes.choice_problem(names[:5], names, 5) is None
    assert votes.choice_problem([], names, 5) is None
    assert votes.choice_problem(names, names, 5)
    assert votes.choice_problem(["c1", "c1"], names, 5)
    assert votes.choice_problem(["c9"], names, 5)
    assert votes.choice_problem("c1", names, 5)
    assert votes.choice_problem("yes", None, None) is None
    assert votes.choice_problem(["yes"], None, None) and votes.choice_problem("maybe", None, None)


def test_an_election_seats_the_most_voted_of_those_approved() -> None:
    electorate = Electorate.of(units(*[100_000] * 10))
    picks = {1: ["a", "b", "c", "d", "e"], 2: ["a", "b", "c", "d", "f"],
             3: ["a", "b", "c", "d", "f"], 4: ["a", "b", "c", "e", "f"],
             5: ["a", "b", "d", "e", "f"], 6: ["a", "b", "c", "d", "e"],
             7: ["a", "g"], 8: [], 9: ["g"]}
    result = votes.count(election(5, *"abcdefg"), electorate,
                         ballots(*((f"u{i}", p) for i, p in picks.items())))
    owners = {c["id"]: c["owners"] for c in result["candidates"]}
    assert owners == {"a": 7, "b": 6, "c": 5, "d": 5, "e": 4, "f": 4, "g": 2}
    # 9 take part: more than half is 5; e and f have 4 and are not approved
    assert result["elected"] == ["a", "b", "c", "d"] and result["tied"] == []
    assert result["open_seats"] == 1 and result["passed"] is True


def test_an_election_tie_across_the_last_seat_is_reported_not_broken() -> None:
    electorate = Electorate.of(units(*[100_000] * 10))
    picks = ["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "f"], ["e", "f"]
    raw = ballots(*((f"u{i}", picks[0] if i <= 4 else picks[1]) for i in range(1, 9)))
    result = votes.count(election(5, *"abcdef"), electorate, raw)
    # e and f: 4 of 8 owners each, exactly half: neither is approved
    assert result["elected"] == ["a", "b", "c", "d"] and result["tied"] == []
    raw += ballots(("u9", picks[2]), ("u10", picks[2]))
    raw = [RawBallot(f"x{i}", b.unit, b.choice, b.by) for i, b in enumerate(raw)]
    result = votes.count(election(5, *"abcdef"), electorate, raw)
    # e and f: 6 of 10 each, both approved, one seat left: a tie, the seat stays open
    assert {c["id"]: c["owners"] for c in result["candidates"]}["e"] == 6
    assert result["elected"] == ["a", "b", "c", "d"]
    assert result["tied"] == ["e", "f"] and result["open_seats"] == 1


def test_an_election_without_a_quorum_seats_no_one() -> None:
    electorate = Electorate.of(units(*[100_000] * 9))
    result = votes.count(election(5, *"abcde"), electorate,
                         ballots(("u1", ["a", "b", "c", "d", "e"])))
    assert result["elected"] == [] and result["open_seats"] == 5 and not result["passed"]


def test_participation_while_open_counts_each_unit_once() -> None:
    electorate = Electorate.of(units(100_000, 200_000, 300_000))
    shown = votes.participation(electorate, ["u1", "u1", "u3", "ghost"])
    assert shown["units"] == 2 and shown["area_cm2"] == 400_000
    assert shown["area_share"]["exact"] == "2/3" and "approval" not in shown


def register_unit(uid: str, *owners: dict[str, str], held: bool = False) -> dict[str, Any]:
    return {"_id": uid, "area_cm2": 100_000, "developer_held": held, "owners": list(owners)}


def test_owners_are_persons_by_their_owner_id_not_their_phone() -> None:
    """司法解释 art. 9 counts persons. One owner id on three units is one head, whatever
    phones (or none) the register gives beside it; two owners sharing one phone are two heads,
    by their owner ids or, without them, by their names; one name and phone on two units is
    one; an owner with neither id nor phone counts on their unit alone."""
    pepper = b"k" * 32
    wang, li = votes.owner_id(pepper, "330102198001011002"), votes.owner_id(
        pepper, "33010219800101107X")
    assert wang != li and len(wang) == 32 and "330102" not in wang
    assert votes.owner_id(b"another installation", "330102198001011002") != wang  # keyed
    doc = votes.electorate_doc([
        register_unit("a1", {"name": "王芳", "phone": "13900000001", "owner_id": wang}),
        register_unit("a2", {"name": "王芳", "owner_id": wang}),  # no phone on this one
        register_unit("a3", {"name": "王 芳", "phone": "13900000009", "owner_id": wang}),
        register_unit("s1", {"name": "李强", "phone": "13900000002", "owner_id": li}),
        register_unit("s2", {"name": "张伟", "phone": "13900000002"}),  # li's phone, no id
        register_unit("s3", {"name": "赵磊", "phone": "13900000002"}),
        register_unit("s4", {"name": "赵磊", "phone": "13900000002"}),  # 赵磊 again: one
        register_unit("p1", {"name": "刘芳"}), register_unit("p2", {"name": "刘芳"}),
        register_unit("d1", held=True), register_unit("d2", held=True)])
    electorate = votes.electorate_of(doc)
    # 王芳, 李强, 张伟, 赵磊, 刘芳 on p1, 刘芳 on p2 (nothing joins them), the developer
    assert electorate.headcount == 7
    assert electorate.units["s1"].phones == electorate.units["s2"].phones == {"13900000002"}
    assert electorate.units["a2"].phones == frozenset()
    result = votes.count(motion(), electorate, ballots(("a1", "yes"), ("a2", "no"), ("a3", "no"),
                                                       ("s1", "yes"), ("s2", "yes")))
    assert result["participation"]["owners"] == 3 and result["approval"]["owners"] == 2
    # an electorate frozen before owner ids keyed owners by phone: still read, phones as keys
    old = votes.electorate_of({"units": [["u1", 1, False, ["13900000001"]],
                                         ["u2", 1, False, ["13900000001"]]]})
    assert old.headcount == 1 and old.units["u1"].phones == {"13900000001"}
