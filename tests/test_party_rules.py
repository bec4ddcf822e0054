"""server/domain/party.py's rules as cases (党员双报到), pure: declaring, confirming, showing the
identity, belonging (the grid branch of where one lives), reporting, who sees a branch, the
branch view's sums and the yearly project rule, and letters' writers and readers."""

from __future__ import annotations

import datetime

from server.domain import party as rules
from server.domain.scope import Branch, Directory, Grid, User

NOW = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)


def town() -> Directory:
    d = Directory()
    d.grids = {"g1": Grid("g1", "一网格", "c1", "s1"), "g2": Grid("g2", "二网格", "c2", "s2")}
    d.branches = {"fin": Branch("fin", "财政局机关支部", "organ", "s1"),
                  "far": Branch("far", "远处支部", "other", "s9")}
    return d


def sec(*branches: str) -> User:
    return User("sec.a", "secretary", branches=frozenset(branches))


def member(status: str = "pending", **more: object) -> dict[str, object]:
    return {"_id": "party_member:r1", "account": "r1", "branch": "fin", "status": status,
            "public": False, **more}


def test_declaring_takes_a_listed_branch_and_nothing_the_server_fills() -> None:
    d = town()
    assert rules.declaration_problems({"branch": "fin"}, d) == []
    for body, code in (({"branch": "grid-g1"}, "branch"), ({"branch": "nope"}, "branch"),
                       ({"branch": 1}, "branch"), ({}, "branch"),
                       ({"branch": "fin", "status": "confirmed"}, "server_field"),
                       ({"branch": "fin", "account": "r2"}, "server_field"),
                       ({"branch": "fin", "public": True}, "server_field"),
                       ({"branch": "fin", "x": 1}, "unknown_field")):
        assert [p.code for p in rules.declaration_problems(body, d)][:1] == [code], body


def test_declaring_again_repeats_changes_a_pending_one_and_never_a_confirmed_one() -> None:
    doc, problem = rules.declared(None, "r1", "fin", NOW)
    assert problem is None and doc is not None and doc["status"] == "pending"
    assert doc["public"] is False and doc["account"] == doc["created_by"] == "r1"
    assert rules.declared(member(), "r1", "fin", NOW) == (None, None)
    changed, _ = rules.declared(member(_rev="1-a"), "r1", "far", NOW)
    assert changed is not None and changed["branch"] == "far" and changed["_rev"] == "1-a"
    again, _ = rules.declared(member("rejected"), "r1", "fin", NOW)
    assert again is not None and again["status"] == "pending"
    none, problem = rules.declared(member("confirmed"), "r1", "far", NOW)
    assert none is None and problem is not None and problem.code == "confirmed"


def test_only_the_declared_branch_secretary_or_the_admin_decides_never_their_own() -> None:
    assert rules.may_decide(sec("fin"), member())
    assert not rules.may_decide(sec("far"), member())
    assert rules.may_decide(User("adm", "admin"), member())
    assert not rules.may_decide(User("sup", "supervisor", communities=frozenset({"c1"})),
                                member())
    assert not rules.may_decide(User("r1", "secretary", branches=frozenset({"fin"})), member())
    assert not rules.may_decide(User("sec.a", "secretary", branches=frozenset({"fin"}),
                                     disabled=True), member())


def test_decisions_move_forward_and_a_rejection_hides_the_identity() -> None:
    doc, _ = rules.decided(member(), sec("fin"), True, None, NOW)
    assert doc is not None and doc["status"] == "confirmed" and doc["decided_by"] == "sec.a"
    assert rules.decided(member("confirmed"), sec("fin"), True, None, NOW) == (None, None)
    off, _ = rules.decided(member("confirmed", public=True), sec("fin"), False, "转出", NOW)
    assert off is not None and off["public"] is False and off["reason"] == "转出"
    _, problem = rules.decided(member("rejected"), sec("fin"), True, None, NOW)
    assert problem is not None and problem.code == "decided"
    assert [p.code for p in rules.decision_problems({"member": "r1", "confirm": False})] == [
        "text_type"]  # a rejection says why


def test_the_identity_shows_only_confirmed_and_chosen() -> None:
    assert rules.public_problem({"public": True}, member()) is not None
    assert rules.public_problem({"public": False}, member()) is None
    assert rules.public_problem({"public": True}, member("confirmed")) is None
    assert rules.public_problem({"public": "yes"}, member("confirmed")) is not None
    assert not rules.shows_identity(member("pending", public=True))
    assert not rules.shows_identity(member("confirmed"))
    assert rules.shows_identity(member("confirmed", public=True))


def test_a_confirmed_member_belongs_to_their_branch_and_their_grid_branch() -> None:
    assert rules.branches_of(member("confirmed"), ["g1"]) == {"fin", "grid-g1"}
    assert rules.branches_of(member("pending"), ["g1"]) == frozenset()
    assert rules.branches_of(None, ["g1"]) == frozenset()
    assert rules.report_problem(member("confirmed"), ["g1"]) is None
    assert rules.report_problem(member("confirmed"), []) is not None
    assert rules.report_problem(member(), ["g1"]) is not None


def test_who_sees_a_branch() -> None:
    d = town()
    sup1 = User("sup1", "supervisor", communities=frozenset({"c1"}))
    street2 = User("st2", "supervisor", streets=frozenset({"s2"}))
    assert rules.may_view(sec("fin"), "fin", d) and not rules.may_view(sec("far"), "fin", d)
    assert rules.may_view(sup1, "fin", d) and rules.may_view(sup1, "grid-g1", d)
    assert not rules.may_view(sup1, "grid-g2", d) and not rules.may_view(sup1, "far", d)
    assert rules.may_view(street2, "grid-g2", d) and not rules.may_view(street2, "fin", d)
    assert not rules.may_view(User("adm", "admin"), "nope", d)
    assert not rules.may_view(User("w", "worker", grids=frozenset({"g1"})), "grid-g1", d)
    assert not rules.may_view(User("r", "resident"), "fin", d)


def test_the_branch_view_sums_the_ledger_and_holds_the_yearly_rule() -> None:
    members = [member("confirmed", account="r1"), member("pending", _id="x", account="r2"),
               member("confirmed", _id="y", account="r3", reported_at="2026-11-01T00:00:00Z")]
    hours = [{"kind": "hours", "account": "r1", "amount": 120, "source": "volunteer_task:a"},
             {"kind": "hours", "account": "r1", "amount": -30,
              "source": "volunteer_task:a.fix.001"},
             {"kind": "points", "account": "r1", "amount": 20, "source": "volunteer_task:a"},
             {"kind": "hours", "account": "r2", "amount": 60, "source": "volunteer_task:b"}]
    tasks = [rules.Task("volunteer_task:a", "清扫", "2026-06-01T09:00:00+08:00",
                        {"r1": "confirmed", "r9": "confirmed"}),
             rules.Task("volunteer_task:c", "去年", "2025-06-01T09:00:00+08:00",
                        {"r3": "confirmed"}),
             rules.Task("volunteer_task:d", "候补", "2026-06-01T09:00:00+08:00",
                        {"r3": "waiting"})]
    view = rules.branch_view("fin", members, hours, tasks, NOW)
    assert view["hours_by_member"] == [{"account": "r1", "minutes": 90},
                                       {"account": "r3", "minutes": 0}]
    assert view["hours_by_task"] == [{"task": "volunteer_task:a", "title": "清扫", "minutes": 90}]
    assert [p["task"] for p in view["projects"]] == ["volunteer_task:a"]
    assert view["projects"][0]["members"] == ["r1"] and view["projects_met"] is True
    assert view["not_reported"] == ["r1"]
    assert view["counts"] == {"pending": 1, "confirmed": 2, "rejected": 0}
    none = rules.branch_view("fin", members, [], tasks[1:], NOW)
    assert none["projects"] == [] and none["projects_met"] is False
    # The year is China's: a task at 2026-12-31T20:00Z is 2027's.
    late = [rules.Task("volunteer_task:e", "跨年", "2026-12-31T20:00:00Z", {"r1": "confirmed"})]
    assert rules.branch_view("fin", members, [], late, NOW)["projects_met"] is False


def test_letters_writers_and_readers() -> None:
    d = town()
    sup1 = User("sup1", "supervisor", communities=frozenset({"c1"}))
    sup2 = User("sup2", "supervisor", communities=frozenset({"c2"}))
    assert rules.may_write_letter(sup1, {"c1"}, d) and not rules.may_write_letter(sup2, {"c1"}, d)
    assert not rules.may_write_letter(sec("fin"), {"c1"}, d)
    assert rules.may_read_letters(sec("fin"), member(), {"c1"}, d)
    assert not rules.may_read_letters(sec("far"), member(), {"c1"}, d)
    assert not rules.may_read_letters(sec("grid-g1"), member(), {"c1"}, d)
    assert not rules.may_read_letters(User("r1", "resident"), member(), {"c1"}, d)
    assert rules.may_read_letters(User("adm", "admin"), member(), {"c1"}, d)
    # A letter is its confirmed branch's: a pending (or rejected) member's goes to none, and
    # a secretary reads a member's earlier branch's letters, not another branch's.
    assert rules.letter_branch(member(status="confirmed")) == "fin"
    assert rules.letter_branch(member(status="pending")) is None
    assert rules.letter_branch(member(status="rejected")) is None
    moved = member(branch="far", status="pending")
    kept = [{"branch": "fin"}, {}]
    assert rules.may_read_letters(sec("fin"), moved, {"c1"}, d, kept)
    assert not rules.may_read_letters(sec("fin"), moved, {"c1"}, d, [{}])
    assert [rules.letter_readable(sec("far"), x) for x in kept] == [False, False]
    assert [rules.letter_readable(sec("fin"), x) for x in kept] == [True, False]
    assert [rules.letter_readable(sup1, x) for x in kept] == [True, True]
    good = {"member": "r1", "workplace": "某单位", "conduct": "情况", "key": "k" * 8}
    assert rules.letter_problems(good) == []
    assert rules.letter_problems({**good, "branch": "far"})[0].code == "server_field"
    assert rules.letter_problems({**good, "conduct": "\ud800"})[0].code == "text_character"
