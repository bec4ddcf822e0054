"""The pure rules of mediation (server/domain/mediation.py): the circle, the workflow forward
only, signatures, the shape of what is sent, the audit entry of a read, and the figures with
small counts withheld."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import pytest

from server.domain import mediation as rules
from server.domain import reveals
from server.domain.scope import User

NOW = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)
GRIDS = {"g1": "c1", "g2": "c1", "g3": "c2"}
MEDIATOR = User("lao.chen", "worker", grids=frozenset({"g1"}), rights=frozenset({"mediate"}))
RA = User("r.wang", "resident")
RB = User("r.li", "resident")
STAFF = User("wy.zhang", "property", companies=frozenset({"property_company:X"}))


def a_case(**changes: Any) -> dict[str, Any]:
    case = rules.new_case({"kind": "neighbours", "matter": "漏水", "community": "c1",
                           "mediator": MEDIATOR.name, "request": "case-0001"},
                          [{"kind": "resident", "account": RA.name, "name": "王伟"},
                           {"kind": "company", "company": "property_company:X",
                            "name": "越城物业"}],
                          "sup.a", "mediation_case:0123456789abcdef", NOW)
    case.update(changes)
    return case


def test_only_the_circle_has_a_part() -> None:
    case = a_case()
    overseer = User("sup.a", "supervisor", communities=frozenset({"c1"}),
                    rights=frozenset({"mediation"}))
    assert rules.part_of(MEDIATOR, case, GRIDS) == "mediator"
    assert rules.part_of(RA, case, GRIDS) == "party"
    assert rules.part_of(STAFF, case, GRIDS) == "party"
    assert rules.part_of(overseer, case, GRIDS) == "supervisor"
    outside = [
        RB, User("admin", "admin"),
        User("sup.b", "supervisor", communities=frozenset({"c1"})),  # no right
        User("sup.c", "supervisor", communities=frozenset({"c2"}), rights=frozenset({"mediation"})),
        User("sup.s", "supervisor", streets=frozenset({"s1"}), rights=frozenset({"mediation"})),
        User("lao.chen", "worker", grids=frozenset({"g1"})),  # the mediator without the right
        User("lao.chen", "worker", grids=frozenset({"g3"}), rights=frozenset({"mediate"})),
        User("lao.wu", "worker", grids=frozenset({"g2"}), rights=frozenset({"mediate"})),
        User("wy.li", "property", companies=frozenset({"property_company:Y"})),
        User("r.wang", "resident", disabled=True),
        User("r.wang", "worker", grids=frozenset({"g1"})),  # the party's name, not a resident
    ]
    assert [rules.part_of(u, case, GRIDS) for u in outside] == [None] * len(outside)



def test_whoever_has_a_part_has_one_of_the_cases_circle_keys() -> None:
    """The list reads cases by `circle_keys` through the store's index, which keys a case by
    its mediator, community and parties (server/store/designs/mediation.json): every reader
    with a part has one of those keys; part_of still decides."""
    case = a_case()
    indexed = [["mediator", MEDIATOR.name], ["community", "c1"], ["resident", RA.name],
               ["company", "property_company:X"]]
    overseer = User("sup.a", "supervisor", communities=frozenset({"c1"}),
                    rights=frozenset({"mediation"}))
    for user in (MEDIATOR, RA, STAFF, overseer):
        assert rules.part_of(user, case, GRIDS) is not None
        assert any(k in indexed for k in rules.circle_keys(user)), user
    assert rules.circle_keys(User("admin", "admin")) == []
    assert rules.circle_keys(User("sup.b", "supervisor", communities=frozenset({"c1"}))) == []
    assert rules.circle_keys(User("r.wang", "resident", disabled=True)) == []
    assert rules.circle_keys(User("w", "worker", grids=frozenset({"g1"}))) == []

def test_every_act_goes_forward() -> None:
    rank = {s: n for n, s in enumerate(rules.STATES)}
    for name, act in rules.ACTS.items():
        for since in act.since:
            assert act.to is None or rank[act.to] >= rank[since], name
    assert set(rules.ACT_LABELS) == set(rules.ACTS)


def walk(case: dict[str, Any], actor: User, part: str, body: dict[str, Any]) -> dict[str, Any]:
    assert rules.act_problems(body) == [], body
    assert rules.act_refusal(case, part, body, actor) is None, body
    return rules.applied(case, body, actor, NOW, photo="paper.jpg")


def test_a_case_is_agreed_once_every_party_signed() -> None:
    case = walk(a_case(), MEDIATOR, "mediator", {"act": "session", "request": "r-000001",
                                                 "note": "双方到场"})
    assert case["state"] == "mediating"
    refusal = rules.act_refusal(case, "party", {"act": "sign", "request": "r-000002"}, RA)
    assert refusal is not None and refusal.status == 409  # nothing to sign yet
    case = walk(case, MEDIATOR, "mediator", {"act": "agreement", "request": "r-000003",
                                             "text": "加装接水管"})
    case = walk(case, RA, "party", {"act": "sign", "request": "r-000004"})
    assert case["state"] == "mediating" and rules.moves(case, "party", RA) == []
    assert rules.moves(case, "mediator", MEDIATOR) == ["session", "paper", "fail"]
    case = walk(case, MEDIATOR, "mediator", {"act": "paper", "request": "r-000005",
                                             "party": "p2", "photo": {"data": ""}})
    assert case["state"] == "agreed" and case["settled_at"]
    assert case["signatures"]["p2"] == {"how": "paper", "at": rules.stamp(NOW),
                                        "by": MEDIATOR.name, "photo": "paper.jpg"}
    assert rules.repeated(case, RA.name, "r-000004")
    assert not rules.repeated(case, MEDIATOR.name, "r-000004")
    wrong = rules.act_refusal(case, "party", {"act": "close", "request": "r-000006"}, RA)
    assert wrong is not None and wrong.status == 403
    case = walk(case, MEDIATOR, "mediator", {"act": "close", "request": "r-000007"})
    assert case["state"] == "closed" and rules.moves(case, "mediator", MEDIATOR) == []
    assert rules.outcome(case) == "agreed"


@pytest.mark.parametrize("body, label", [
    ({"act": "session", "request": "r-000001"}, "记录内容"),
    ({"act": "session", "request": 5, "note": "ok ok"}, "请求编号"),
    ({"act": "session", "request": "r-000001", "note": "a\ud800"}, "记录内容"),
    ({"act": "session", "request": "r-000001", "note": "长" * 2001}, "记录内容"),
    ({"act": "session", "request": "r-000001", "note": ["x"]}, "记录内容"),
    ({"act": "sign", "request": "r-000001", "party": "p1"}, "签署的当事人"),
    ({"act": "paper", "request": "r-000001", "party": "p0", "photo": {}}, "签署的当事人"),
    ({"act": "paper", "request": "r-000001", "party": "p1", "photo": "x"}, "签字照片"),
    ({"act": "sign", "request": "r-000001", "state": "agreed"}, "状态"),
    ({"act": "sign", "request": "r-000001", "by": "x"}, "不允许的字段"),
    ({"act": ["sign"], "request": "r-000001"}, "办理事项"),
])
def test_bad_acts_are_named_by_label(body: dict[str, Any], label: str) -> None:
    problems = rules.act_problems(body)
    assert problems and label in problems[0].zh and not problems[0].zh.startswith("/")


def test_a_read_is_an_audit_entry_in_the_reveals_shape() -> None:
    entry = rules.read_entry(RA, "party", a_case(), "case", NOW)
    sample = reveals.entry(user="u", role="admin", kind="record", grid="g", record="r",
                           fields=[], reason=("verify_identity", ""), now=NOW, minutes=1)
    assert set(entry) == set(sample) and entry["_id"].startswith(reveals.ENTRY_PREFIX)
    assert (entry["kind"], entry["user"], entry["record"]) == ("mediation", RA.name,
                                                               "mediation_case:0123456789abcdef")
    assert "漏水" not in str(entry) and "王伟" not in str(entry)
    assert reveals.matches(entry, {"kind": "mediation"})


def test_figures_withhold_small_counts_and_what_gives_them_back() -> None:
    settled = rules.stamp(NOW + datetime.timedelta(days=3))
    cases = [a_case(state="failed", settled_at=settled) for _ in range(6)] + [a_case()]
    cases += [a_case(community="c2", kind="family") for _ in range(5)]
    found = rules.figures(cases, ["c1", "c2"], 5)
    c1, c2 = found["communities"]
    assert found["total"]["cases"] == 12 and found["total"]["by_outcome"]["open"] == 6
    # c1's one open case is withheld, and so is every figure that would give it back: its
    # failed ones (settled - agreed), its total, and c2's open ones (the scope's 6 less them).
    assert c1["by_outcome"]["open"] is None and c1["by_outcome"]["failed"] is None
    assert None in (c1["cases"], c2["by_outcome"]["open"])
    assert None in (c1["settled"], c1["by_outcome"]["agreed"])  # failed = settled - agreed
    assert c1["days_median"] == 3.0 and c2["days_median"] is None
    # Alone in the scope, a community's small counts are the scope's: both withheld.
    alone = rules.figures([a_case()], ["c1"], 5)
    assert alone["total"]["cases"] is None and alone["communities"][0]["cases"] is None


def test_figures_never_hold_what_a_case_says() -> None:
    for states in itertools.product(rules.STATES, repeat=2):
        found = rules.figures([a_case(state=s) for s in states], ["c1"], 1)
        assert "漏水" not in str(found) and "王伟" not in str(found) and "r.wang" not in str(found)
