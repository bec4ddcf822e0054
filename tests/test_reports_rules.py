"""The rules of problem reports (server/domain/reports.py) at their boundaries, on plain data:
routing, who may move which state, the conflict rule of two offline handlers, working-day
limits and escalation, the bad inputs of a phone. Each expectation is worked out from the rule
as the module states it."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest

from server.domain import reports as r

CATS = r.DEFAULT_CATEGORIES
CAT = {c.code: c for c in CATS}
PLACE = r.Place(grid="g1", community="c1", street="s1", compound="cp1", company="wy1")
BARE = r.Place(grid="g2", community="c1", street="s1")
WORKER = r.Actor(name="w.one", role="worker", grids=frozenset({"g1"}))
BOSS = r.Actor(name="boss", role="supervisor", communities=frozenset({"c1"}))
STREET = r.Actor(name="jd", role="supervisor", streets=frozenset({"s1"}))
PROPERTY = r.Actor(name="wy.staff", role="property", companies=frozenset({"wy1"}))
POLICE = r.Actor(name="ga.one", role="department", streets=frozenset({"s1"}), department="police")
FIRE_ELSEWHERE = r.Actor(name="xf.x", role="department", streets=frozenset({"s9"}),
                         department="fire")
RESIDENT = r.Actor(name="r.a", role="resident")
NEIGHBOUR = r.Actor(name="r.b", role="resident")
TZ = r.SHANGHAI
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 100
PDF = b"%PDF-1.4\n" + b"\0" * 100


def at(day: int, hour: int = 10) -> datetime.datetime:
    """A time in December 2026 (the 4th is a Friday), Asia/Shanghai."""
    return datetime.datetime(2026, 12, day, hour, tzinfo=TZ)


def step(n: int, base: str, to: str, parts: str, *, rnd: int = 0, assignee: str = "",
         resolve: bool = False) -> r.Step:
    return r.Step(f"s{n}", f"a{n}", frozenset(parts.split()), base, rnd, to, assignee, resolve)


def report(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"category": "sanitation", "description": "楼道堆满杂物",
                            "request": "req-000001"}
    body.update(changes)
    return body


# -- categories and routing ---------------------------------------------------------------

def test_the_ten_categories_of_the_issue_with_their_limits() -> None:
    assert [c.zh for c in CATS] == ["环境卫生", "违章搭建", "停车", "噪音", "设施损坏",
                                    "安全隐患", "物业服务", "邻里纠纷", "疫情相关", "其他"]
    assert all(c.accept_days >= 1 and c.finish_days >= c.accept_days for c in CATS)
    assert (CAT["other"].accept_days, CAT["other"].finish_days) == (1, 5)


def test_routing_takes_the_property_company_only_where_there_is_one() -> None:
    assert r.route(CAT["sanitation"], PLACE) == "property"
    assert r.route(CAT["sanitation"], BARE) == "grid"
    assert r.route(CAT["facility"], BARE) == "department:housing"
    assert r.route(CAT["illegal_building"], PLACE) == "department:zhzf"
    assert r.route(CAT["dispute"], PLACE) == "grid"


def test_a_configured_list_is_checked_at_start() -> None:
    good = [{"code": "lift", "zh": "电梯", "en": "Lift", "handlers": ["property", "grid"],
             "finish_days": 3}]
    (lift,) = r.categories_from(good)
    assert (lift.code, lift.accept_days, lift.finish_days, lift.anonymous_allowed) == (
        "lift", 1, 3, False)
    for bad in ([], [{"code": "lift", "zh": "电梯", "en": "Lift", "handlers": ["mayor"]}],
                [{"code": "../x", "zh": "电梯", "en": "Lift", "handlers": ["grid"]}],
                [{"code": "lift", "zh": "电梯", "en": "Lift", "handlers": ["grid"],
                  "finish_days": 0}],
                good + good, "lift", [None]):
        with pytest.raises(ValueError):
            r.categories_from(bad)


# -- who sees a report ----------------------------------------------------------------------

def test_a_handler_sees_only_what_is_routed_to_them() -> None:
    assert r.sees(PROPERTY, "r.a", "property", PLACE)
    assert not r.sees(PROPERTY, "r.a", "department:police", PLACE)
    assert not r.sees(PROPERTY, "r.a", "property", BARE)  # no company there
    assert r.sees(POLICE, "r.a", "department:police", PLACE)
    assert not r.sees(POLICE, "r.a", "department:zhzf", PLACE)
    assert not r.sees(FIRE_ELSEWHERE, "r.a", "department:fire", PLACE)
    assert r.sees(RESIDENT, "r.a", "grid", PLACE)
    assert not r.sees(NEIGHBOUR, "r.a", "grid", PLACE)
    assert r.sees(WORKER, "r.a", "property", PLACE)  # the grid's intake
    assert not r.sees(WORKER, "r.a", "property", BARE)
    assert r.sees(STREET, "r.a", "grid", BARE)


def test_anonymity_to_staff_and_always_to_neighbours() -> None:
    doc = {"_id": "report:00", "reporter": "r.a", "created_by": "r.a", "anonymous": True,
           "category": "noise", "description": "x", "community": "c1"}
    assert "r.a" not in str(r.staff_view(doc))
    assert r.staff_view({**doc, "anonymous": False})["reporter"] == "r.a"
    public = r.public_view({**doc, "anonymous": False}, r.Status())
    assert "r.a" not in str(public) and public["state"] == "submitted"
    assert r.report_problems(report(category="noise", anonymous=True), CATS) == []
    (refused,) = r.report_problems(report(anonymous=True), CATS)
    assert refused.code == "anonymous" and "匿名" in refused.message


# -- a report as sent -----------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "code", "word"), [
    ({"category": "ufo"}, "category", "类别"),
    ({"category": ["sanitation"]}, "category", "类别"),
    ({"description": ""}, "text_too_short", "问题描述"),
    ({"description": "x" * 1001}, "text_too_long", "问题描述"),
    ({"description": "a\ud800b"}, "text_unsafe", "问题描述"),
    ({"description": 7}, "text_type", "问题描述"),
    ({"spot": "门口\u202e"}, "text_unsafe", "位置"),
    ({"request": "../../etc"}, "request", "请求编号"),
    ({"anonymous": "yes"}, "boolean", "匿名"),
    ({"photos": [{}, {}, {}, {}]}, "photos_count", "照片"),
    ({"reporter": "r.b"}, "unknown_field", "服务器"),
    ({"grid": "g9"}, "unknown_field", "服务器"),
    ({"state": "closed"}, "unknown_field", "服务器"),
])
def test_each_class_of_bad_report_is_named_by_its_label(changes: dict[str, Any], code: str,
                                                        word: str) -> None:
    problems = r.report_problems(report(**changes), CATS)
    assert problems, changes
    assert any(p.code.startswith(code.split("_")[0]) and word in p.message for p in problems), \
        [p.as_dict() for p in problems]
    assert all(" / " in p.message and not p.message.startswith("/") for p in problems)


def test_photos_are_judged_by_their_bytes_and_the_limit() -> None:
    assert r.photo_problem(0, JPEG, 1000) is None
    assert r.sniff(b"\x89PNG\r\n\x1a\n....") == "image/png"
    renamed = r.photo_problem(1, PDF, 1000)
    assert renamed is not None and renamed.code == "photo_type" and "第 2 张" in renamed.message
    big = r.photo_problem(0, JPEG + b"\0" * 1000, 1000)
    assert big is not None and big.code == "photo_size"
    assert r.photo_problem(0, JPEG[:len(JPEG)], len(JPEG)) is None  # exactly the limit
    assert r.sniff(base64.b64encode(JPEG)) is None  # base64 text is not the bytes


# -- moves: who may move which state to which ----------------------------------------------

@pytest.mark.parametrize(("base", "to", "parts", "rnd", "code"), [
    ("submitted", "accepted", "intake", 0, None),
    ("submitted", "accepted", "assignee reporter", 0, "actor"),
    ("accepted", "dispatched", "intake", 0, None),
    ("dispatched", "in_progress", "assignee", 0, None),
    ("dispatched", "in_progress", "intake", 0, "actor"),
    ("dispatched", "done", "assignee", 0, "transition"),  # a jump
    ("submitted", "closed", "reporter", 0, "transition"),
    ("in_progress", "done", "assignee", 0, None),
    ("done", "closed", "reporter", 0, None),
    ("done", "closed", "assignee intake", 0, "actor"),
    ("done", "in_progress", "reporter", 0, None),  # reopened
    ("done", "in_progress", "reporter", 1, "reopen"),  # twice
    ("closed", "in_progress", "reporter", 0, "transition"),
    ("in_progress", "dispatched", "intake", 0, "transition"),
])
def test_who_may_move_which_state(base: str, to: str, parts: str, rnd: int,
                                  code: str | None) -> None:
    found = r.move_problem(step(1, base, to, parts, rnd=rnd,
                                assignee="grid" if to == "dispatched" else ""))
    assert (found.code if found else None) == code
    if found:
        assert " / " in found.message


def test_a_dispatch_names_a_handler() -> None:
    found = r.move_problem(step(1, "accepted", "dispatched", "intake", assignee="mayor"))
    assert found is not None and found.code == "assignee"


def test_step_bodies_and_ratings_at_their_bounds() -> None:
    close = {"from": "done", "to": "closed", "request": "abcdefgh", "comment": "好"}
    assert r.step_problems({**close, "rating": 1}) == []
    assert r.step_problems({**close, "rating": 5}) == []
    for rating in (0, 6, 3.5, True, "5", None):
        problems = r.step_problems({**close, "rating": rating})
        assert [p.code for p in problems] == ["rating"], rating
        assert "1 到 5" in problems[0].message
    (when,) = r.step_problems({"from": "dispatched", "to": "in_progress",
                               "request": "abcdefgh", "rating": 5})
    assert when.code == "rating_when"
    codes = {p.code for p in r.step_problems({"from": "x", "to": None, "round": 2,
                                              "request": "a", "actor": "boss"})}
    assert codes == {"state", "round", "request", "unknown_field"}


# -- the fold: the conflict rule ----------------------------------------------------------

HAPPY = [step(1, "submitted", "accepted", "intake"),
         step(2, "accepted", "dispatched", "intake", assignee="property"),
         step(3, "dispatched", "in_progress", "assignee"),
         step(4, "in_progress", "done", "assignee")]


def test_the_whole_way_and_a_reopening() -> None:
    status = r.fold(HAPPY)
    assert (status.state, status.assignee, status.round) == ("done", "property", 0)
    reopened = r.fold([*HAPPY, step(5, "done", "in_progress", "reporter")])
    assert (reopened.state, reopened.round) == ("in_progress", 1)
    again = r.fold([*HAPPY, step(5, "done", "in_progress", "reporter"),
                    step(6, "in_progress", "done", "assignee", rnd=1),
                    step(7, "done", "in_progress", "reporter", rnd=1)])
    assert (again.state, again.round, again.superseded) == ("done", 1, ("s7",))
    closed = r.fold([*HAPPY, step(5, "done", "closed", "reporter")])
    assert closed.state == "closed" and not closed.conflicts


def test_an_earlier_state_never_overwrites_a_later_one() -> None:
    # Handler B, offline, starts the work A has already started and finished.
    late = step(5, "dispatched", "in_progress", "assignee")
    status = r.fold([*HAPPY, late])
    assert (status.state, status.superseded, status.conflicts) == ("done", ("s5",), ())
    # The same state reached by two phones is one state, not a conflict.
    twice = r.fold([*HAPPY[:3], step(5, "dispatched", "in_progress", "assignee")])
    assert (twice.state, twice.superseded, twice.conflicts) == ("in_progress", ("s5",), ())


def test_two_different_later_states_go_to_the_supervisors_queue() -> None:
    # Two intake phones offline dispatch one accepted report to two handlers.
    a = step(2, "accepted", "dispatched", "intake", assignee="property")
    b = step(3, "accepted", "dispatched", "intake", assignee="department:police")
    status = r.fold([HAPPY[0], a, b])
    assert (status.state, status.assignee, status.conflicts) == ("dispatched", "property",
                                                                  ("s3",))
    # Two phones of the reporter: confirmed on one, reopened on the other: whichever first.
    close, reopen = step(5, "done", "closed", "reporter"), step(6, "done", "in_progress",
                                                                "reporter")
    assert r.fold([*HAPPY, close, reopen]).conflicts == ("s6",)
    assert r.fold([*HAPPY, reopen, close]).conflicts == ("s5",)


def test_a_supervisor_resolves_the_queue_once() -> None:
    a = step(2, "accepted", "dispatched", "intake", assignee="property")
    b = step(3, "accepted", "dispatched", "intake", assignee="department:police")
    held = r.fold([HAPPY[0], a, b])
    assert r.resolvable(held, {"s3": b}) == {(0, "dispatched", "property"),
                                             (0, "dispatched", "department:police")}
    decide = step(4, "dispatched", "dispatched", "supervisor intake",
                  assignee="department:police", resolve=True)
    done = r.fold([HAPPY[0], a, b, decide])
    assert (done.assignee, done.conflicts) == ("department:police", ())
    second = step(5, "dispatched", "dispatched", "supervisor intake", assignee="property",
                  resolve=True)
    assert r.fold([HAPPY[0], a, b, decide, second]).assignee == "department:police"
    worker = step(4, "dispatched", "dispatched", "intake", assignee="grid", resolve=True)
    assert r.fold([HAPPY[0], a, b, worker]).conflicts == ("s3",)


def test_the_fold_is_a_function_of_the_order_received() -> None:
    import itertools
    extra = [step(5, "dispatched", "in_progress", "assignee"),
             step(6, "accepted", "dispatched", "intake", assignee="grid")]
    for order in itertools.permutations([*HAPPY[2:], *extra]):
        steps = [*HAPPY[:2], *order]
        first, second = r.fold(steps), r.fold(steps)
        assert first == second
        assert first.state in r.STATES
        # every step is applied, superseded or queued, once
        assert sorted((*first.applied, *first.superseded, *first.conflicts)) == sorted(
            s.id for s in steps)


# -- time limits --------------------------------------------------------------------------

def test_working_days_skip_weekends_and_holidays_and_count_make_up_days() -> None:
    cal = r.Calendar()
    assert cal.deadline(at(3, 23), 1) == datetime.datetime(2026, 12, 5, tzinfo=TZ)  # Thu→Fri
    assert cal.deadline(at(4, 16), 1) == datetime.datetime(2026, 12, 8, tzinfo=TZ)  # Fri→Mon
    assert cal.deadline(at(5), 1) == datetime.datetime(2026, 12, 8, tzinfo=TZ)  # Sat→Mon
    holiday = r.Calendar(holidays=frozenset({datetime.date(2026, 12, 7)}))
    assert holiday.deadline(at(4, 16), 1) == datetime.datetime(2026, 12, 9, tzinfo=TZ)
    makeup = r.Calendar(workdays=frozenset({datetime.date(2026, 12, 5)}))
    assert makeup.deadline(at(4, 16), 1) == datetime.datetime(2026, 12, 6, tzinfo=TZ)
    utc_evening = datetime.datetime(2026, 12, 3, 17, tzinfo=datetime.UTC)  # Fri 01:00 Shanghai
    assert cal.deadline(utc_evening, 1) == datetime.datetime(2026, 12, 8, tzinfo=TZ)


def test_overdue_at_the_deadline_and_escalation_to_community_then_street() -> None:
    cat, cal = CAT["other"], r.Calendar()
    timing = r.Timing(submitted=at(1))  # Tuesday: accept by Thu 00:00, finish by Wed 9th 00:00
    fresh = r.Status()
    accept_by = datetime.datetime(2026, 12, 3, tzinfo=TZ)
    second = datetime.timedelta(seconds=1)
    assert r.overdue(cat, fresh, timing, cal, accept_by - second) == ()
    assert r.overdue(cat, fresh, timing, cal, accept_by) == ("accept",)
    assert r.escalation(cat, fresh, timing, cal, accept_by) == 1
    street_at = datetime.datetime(2026, 12, 5, tzinfo=TZ)  # two working days after Wed
    assert r.escalation(cat, fresh, timing, cal, street_at - second) == 1
    assert r.escalation(cat, fresh, timing, cal, street_at) == 2
    accepted = r.fold(HAPPY[:1])
    assert r.overdue(cat, accepted, timing, cal, street_at) == ()
    finish_by = datetime.datetime(2026, 12, 9, tzinfo=TZ)
    assert r.overdue(cat, accepted, timing, cal, finish_by) == ("finish",)
    assert r.overdue(cat, r.fold(HAPPY), timing, cal, at(30)) == ()
    reopened = r.Timing(submitted=at(1), reopened=at(14))
    assert r.overdue(cat, accepted, reopened, cal, finish_by) == ()
    assert r.escalation(cat, r.fold(HAPPY), timing, cal, at(30)) == 0


def test_a_kept_row_is_overdue_exactly_when_the_rule_says() -> None:
    """`overdue_from` (one comparison a row, in UTC) agrees with `overdue` to the second, in
    every state, with and without a reopening, across a weekend and in any time zone."""
    cat, cal = CAT["other"], r.Calendar()
    second = datetime.timedelta(seconds=1)
    for timing in (r.Timing(submitted=at(1)), r.Timing(submitted=at(4, 20)),
                   r.Timing(submitted=at(1), reopened=at(14))):
        limits = r.deadlines(cat, timing, cal)
        for state in r.STATES:
            late = r.overdue_from(state, limits)
            edges = [*limits, *(t + d for t in limits for d in (second, -second))]
            for now in (*edges, at(1), at(30), *(t.astimezone(datetime.UTC) for t in edges)):
                expected = bool(r.overdue(cat, r.Status(state=state), timing, cal, now))
                assert (late is not None and now >= late) == expected, (state, now)
    assert r.overdue_from("submitted", None) is None


# -- the dashboard ------------------------------------------------------------------------

def fig(grid: str, category: str = "other", state: str = "done", *, hours: float | None = 10,
        rating: int | None = 4, overdue: bool = False) -> r.Figure:
    return r.Figure("s1", "c1" if grid != "g9" else "c2", grid, category, state, overdue, hours,
                    rating)


def test_percentiles_are_values_reported() -> None:
    assert r.percentile([5, 1, 3], 0.5) == 3
    assert r.percentile(list(range(1, 11)), 0.5) == 5
    assert r.percentile(list(range(1, 11)), 0.9) == 9
    assert r.percentile([7], 0.9) == 7


def test_the_dashboard_withholds_small_counts_and_their_complement() -> None:
    rows = [fig("g1", hours=h) for h in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)] + [
        fig("g1", "noise", "submitted", hours=None, rating=None, overdue=True)] + [
        fig("g9") for _ in range(4)]
    board = r.dashboard(rows, "grid", 5)
    (g1, g9) = board["areas"]
    assert (g1["code"], g1["withheld"], g9) == ("g1", False, {"code": "g9", "withheld": True})
    assert g1["reports"] == 11 and g1["by_category"] == {"other": None, "noise": None}
    assert g1["by_state"]["done"] is None and g1["by_state"]["submitted"] is None
    assert g1["by_state"]["closed"] == 0  # a zero singles nobody out
    assert g1["overdue"] is None
    assert (g1["hours_median"], g1["hours_p90"], g1["satisfaction"]) == (5, 9, 4.0)
    total = board["total"]
    assert total["reports"] == 15 and total["by_category"] == {"other": None, "noise": None}
    cells: dict[str, int | None] = {"a": 2, "b": 9, "c": 30, "d": 0}
    r.withhold(cells, 5)  # the only small one, and the smallest other above zero with it
    assert cells == {"a": None, "b": None, "c": 30, "d": 0}
    few = r.dashboard(rows[:4], "city", 5)["total"]
    assert few["hours_median"] is None and few["satisfaction"] is None
    assert r.dashboard(rows, "city", 5)["areas"][0]["code"] == ""


def test_satisfaction_counts_a_residents_own_rating_only() -> None:
    """Rule 8: a worker's report rated by the worker, and a rating written into a
    supervisor's resolution, are not residents' satisfaction."""
    report = {"_id": "report:0000000000000001", "reporter": "ra", "reporter_kind": "resident"}
    assert r.counted_rating(report, {"rating": 4}) == 4
    assert r.counted_rating({**report, "reporter_kind": "worker"}, {"rating": 4}) is None
    assert r.counted_rating(report, {}) is None
    assert r.counted_rating(report, {"rating": True}) is None
    close = {"from": "done", "to": "closed", "rating": 2, "at": "2026-01-05T10:00:00+08:00"}
    steps = [{"_id": "s1", "created_by": "ra", **close},
             {"_id": "s2", "created_by": "sup", **close, "rating": 5}]
    for sid, rating in (("s1", 2), ("s2", None)):
        held = r.status_doc(report, r.Status(applied=(sid,)), steps,
                            datetime.datetime(2026, 1, 6, tzinfo=r.SHANGHAI))
        assert held.get("rating") == rating and "closed_at" in held


def test_the_moves_a_part_may_make_from_each_state() -> None:
    """The phone offers what rule 4 allows the part it plays; nothing for a stranger."""
    assert r.moves(frozenset({"intake"}), "submitted", 0) == ["accepted"]
    assert r.moves(frozenset({"intake", "assignee"}), "dispatched", 0) == ["in_progress"]
    assert r.moves(frozenset({"assignee"}), "accepted", 0) == []
    assert r.moves(frozenset({"reporter"}), "done", 0) == ["closed", "in_progress"]
    assert r.moves(frozenset({"reporter"}), "done", 1) == ["closed"]
    assert r.moves(frozenset(), "submitted", 0) == []
    assert {h["code"] for h in r.handler_labels()} == set(r.HANDLER_KINDS)
