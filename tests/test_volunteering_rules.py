"""server/domain/volunteering.py's rules at their boundaries: who publishes, what a task holds
(every class of bad input refused by its label, zh-CN first), who may claim and until when,
the check-in code's window, who confirms hours, and the ledgers as sums of entries."""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest

from server.domain import volunteering as v
from server.domain.scope import Directory, Grid, User

NOW = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.UTC)
SECRET = b"s" * 32


def directory() -> Directory:
    d = Directory()
    d.grids = {"g1": Grid("g1", "网格一", "c1", "s1"), "g2": Grid("g2", "网格二", "c2", "s2")}
    return d


def draft(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"title": "清扫楼道", "description": "周六上午一起打扫",
                           "place": "坊门小区 3幢", "community": "c1",
                           "starts_at": "2026-12-05T09:00:00+08:00",
                           "ends_at": "2026-12-05T11:00:00+08:00", "places": 10}
    doc.update(changes)
    return {k: val for k, val in doc.items() if val is not None}


def task(**changes: Any) -> dict[str, Any]:
    return v.task_doc(draft(**changes), "sup", "volunteer_task:t1", NOW)


def test_who_publishes() -> None:
    d = directory()
    assert v.may_publish(User("a", "supervisor", communities=frozenset({"c1"})), "c1", d)
    assert v.may_publish(User("b", "supervisor", streets=frozenset({"s1"})), "c1", d)
    assert not v.may_publish(User("b", "supervisor", streets=frozenset({"s1"})), "c2", d)
    assert v.may_publish(User("root", "admin"), "c2", d)
    assert not v.may_publish(User("root", "admin"), "nowhere", d)  # a typo publishes nothing
    assert not v.may_publish(User("w", "worker", grids=frozenset({"g1"})), "c1", d)
    assert not v.may_publish(User("r", "resident"), "c1", d)
    assert not v.may_publish(User("a", "supervisor", communities=frozenset({"c1"}),
                                  disabled=True), "c1", d)


def test_a_good_task_passes_and_is_stored_with_its_community_as_audience() -> None:
    assert v.task_problems(draft(), NOW) == []
    doc = task(needs_approval=True, open_to="branch", branch="b7")
    assert doc["audience"] == {"level": "community", "codes": ["c1"]}
    assert doc["deadline"] == doc["starts_at"] and doc["needs_approval"] is True
    assert doc["branch"] == "b7" and doc["status"] == "published"


@pytest.mark.parametrize(("changes", "words"), [
    ({"created_by": "someone"}, "“发布人”由服务器填写"),
    ({"secret": "x"}, "Check-in secret is filled in by the server"),
    ({"status": "published"}, "状态"),
    ({"extra": 1}, "不允许的字段 extra"),
    ({"title": 5}, "“标题”应为文字"),
    ({"title": ""}, "请填写“标题”"),
    ({"title": "x" * 61}, "最多 60 个字"),
    ({"title": "a\u202eb"}, "U+202E"),
    ({"title": "a\ud800"}, "U+D800"),
    ({"description": ["a"]}, "任务说明"),
    ({"place": "a\nb"}, "地点"),
    ({"places": 0}, "“名额”应为 1 到 1000 的整数"),
    ({"places": 1001}, "名额"),
    ({"places": True}, "名额"),
    ({"places": "10"}, "名额"),
    ({"places": 2.5}, "名额"),
    ({"starts_at": "2026-12-05 09:00"}, "开始时间"),
    ({"starts_at": "2026-12-05T09:00:00"}, "开始时间"),  # no zone
    ({"ends_at": "2026-12-05T08:00:00+08:00"}, "结束时间"),  # before the start
    ({"starts_at": "2026-11-30T09:00:00+08:00"}, "结束时间"),  # in the past
    ({"ends_at": "2027-02-05T08:00:00+08:00"}, "不超过 31 天"),
    ({"deadline": "2026-12-06T09:00:00+08:00"}, "报名截止"),  # after the start
    ({"deadline": "2026-11-01T09:00:00+08:00"}, "报名截止"),  # past
    ({"open_to": "everyone"}, "报名范围"),
    ({"open_to": "branch"}, "支部"),  # a branch, but which?
    ({"branch": "b7"}, "支部"),  # a branch for a task open to all
    ({"open_to": "branch", "branch": "../x"}, "支部"),
    ({"needs_approval": "yes"}, "须审核"),
    ({"community": {"$gt": ""}}, "社区"),
    ({"community": None}, "社区"),
])
def test_bad_tasks_are_refused_by_label(changes: dict[str, Any], words: str) -> None:
    problems = v.task_problems(draft(**changes), NOW)
    assert problems, changes
    text = " ".join(f"{p.zh} / {p.en}" for p in problems)
    assert words in text, (changes, text)
    assert all(not p.zh.startswith("/") for p in problems)


def me(**changes: Any) -> v.Claimant:
    fields: dict[str, Any] = {"account": "r1", "communities": frozenset({"c1"})}
    fields.update(changes)
    return v.Claimant(**fields)


def test_who_may_claim() -> None:
    received = NOW
    assert v.claim_problem(task(), me(), received) is None
    assert v.claim_problem(task(), me(communities=frozenset({"c2"})), received) is not None
    assert v.claim_problem(task(open_to="volunteers"), me(), received) is not None
    assert v.claim_problem(task(open_to="volunteers"), me(volunteer=True), received) is None
    assert v.claim_problem(task(open_to="party_members"), me(), received) is not None
    assert v.claim_problem(task(open_to="party_members"), me(branches=frozenset({"b1"})),
                           received) is None
    branch = task(open_to="branch", branch="b7")
    assert v.claim_problem(branch, me(branches=frozenset({"b1"})), received) is not None
    assert v.claim_problem(branch, me(branches=frozenset({"b7"})), received) is None
    assert v.claim_problem({**task(), "status": "withdrawn"}, me(), received) is not None


def test_the_deadline_is_judged_when_the_server_receives_the_claim() -> None:
    t = task(deadline="2026-12-04T18:00:00+08:00")
    at = datetime.datetime(2026, 12, 4, 10, 0, tzinfo=datetime.UTC)  # 18:00 in Beijing
    assert v.claim_problem(t, me(), at) is None
    late = v.claim_problem(t, me(), at + datetime.timedelta(seconds=1))
    assert late is not None and late.code == "late" and "报名截止" in late.zh


@pytest.mark.parametrize(("body", "words"), [
    ({"claim_id": "abcdefgh"}, None),
    ({"claim_id": "a" * 64}, None),
    ({"claim_id": "a" * 7}, "报名编号"),
    ({"claim_id": "a" * 65}, "报名编号"),
    ({"claim_id": "abc/../defgh"}, "报名编号"),
    ({"claim_id": "abcdefgh\u0000"}, "报名编号"),
    ({"claim_id": 12345678}, "报名编号"),
    ({}, "报名编号"),
    ({"claim_id": "abcdefgh", "claimant": "r2"}, "“报名人”由服务器填写"),
    ({"claim_id": "abcdefgh", "created_by": "r2"}, "由服务器填写"),
    ({"claim_id": "abcdefgh", "task": "x"}, "不允许的字段 task"),
])
def test_a_claim_as_sent(body: dict[str, Any], words: str | None) -> None:
    problems = v.claim_body_problems(body)
    if words is None:
        assert problems == []
    else:
        assert words in " ".join(p.zh for p in problems), problems


def test_the_check_in_code_names_its_window_not_the_phones_clock() -> None:
    t = task()
    starts = v.parse_time(t["starts_at"])
    assert starts is not None
    window = v.window_of(starts + datetime.timedelta(minutes=7))
    code = v.checkin_code(SECRET, t["_id"], window)
    assert len(code) == 6 and code.isdigit()
    later = starts + datetime.timedelta(hours=1)  # an offline phone's queue, within the bound
    when = v.code_window(SECRET, t, code, later)
    assert when is not None and v.window_of(when) <= window  # the earliest window it matches
    # Received long after its window (a photo passed on, a queue older than the bound): none.
    stale = starts + datetime.timedelta(minutes=7) + v.QUEUE_ALLOWANCE + datetime.timedelta(
        seconds=v.WINDOW_SECONDS)
    assert v.code_window(SECRET, t, code, stale) is None or v.window_of(
        v.code_window(SECRET, t, code, stale) or starts) > window
    # A window not begun when the server receives the code counts for nothing.
    assert v.code_window(SECRET, t, code, starts) is None or v.window_of(when) <= v.window_of(
        starts)
    # Outside the span (an hour before the start) no code counts; nor a wrong secret or task.
    early = v.checkin_code(SECRET, t["_id"], v.window_of(starts - datetime.timedelta(hours=1)))
    assert v.code_window(SECRET, t, early, later) is None or early == code
    assert v.code_window(b"x" * 32, t, code, later) is None or v.checkin_code(
        b"x" * 32, t["_id"], window) == code
    for bad in (None, 123456, "12345", "1234567", "１２３４５６", "abcdef"):
        assert v.code_window(SECRET, t, bad, later) is None


def test_hours_are_within_the_span_and_confirmed_by_the_organiser_only() -> None:
    t = task()
    starts, ends = v.parse_time(t["starts_at"]), v.parse_time(t["ends_at"])
    assert starts is not None and ends is not None
    assert v.hours_minutes(t, starts - datetime.timedelta(minutes=20),
                           ends + datetime.timedelta(minutes=20)) == 120
    assert v.hours_minutes(t, ends, starts) == 0
    organiser = User("sup", "supervisor", communities=frozenset({"c1"}))
    assert v.confirm_problem(t, organiser, "r1", 120) is None
    assert v.confirm_problem(t, organiser, "r1", 121) is not None  # more than the span
    assert v.confirm_problem(t, organiser, "r1", 0) is not None
    assert v.confirm_problem(t, organiser, "r1", True) is not None
    own = v.confirm_problem(t, User("sup", "supervisor"), "sup", 60)
    assert own is not None and own.code == "own_hours"
    other = v.confirm_problem(t, User("sup2", "supervisor", communities=frozenset({"c1"})),
                              "r1", 60)
    assert other is not None and other.code == "not_organiser"
    assert v.confirm_problem(t, User("r1", "resident"), "r1", 60) is not None


def test_the_ledgers_are_sums_and_a_correction_is_a_new_entry() -> None:
    first = v.ledger_entry("hours", "r1", 120, "清扫楼道", "checkin:t1:r1", "sup", NOW)
    again = v.ledger_entry("hours", "r1", 120, "清扫楼道", "checkin:t1:r1", "sup", NOW)
    assert first["_id"] == again["_id"]  # a replay is the same entry
    fix = v.ledger_entry("hours", "r1", -30, "更正", "fix1", "sup", NOW, corrects=first["_id"])
    assert fix["_id"] != first["_id"] and fix["corrects"] == first["_id"]
    entries = [v.Entry("r1", "hours", 120, "c1", "2026-12-05"),
               v.Entry("r1", "hours", -30, "c1", "2026-12-06"),
               v.Entry("r2", "hours", 60, "c1", "2026-12-05"),
               v.Entry("r1", "points", v.points_for(90), "c1", "2026-12-06"),
               v.Entry("r3", "hours", 500, "c2", "2026-12-05")]
    assert v.balances(entries) == {("r1", "hours"): 90, ("r2", "hours"): 60,
                                   ("r1", "points"): 15, ("r3", "hours"): 500}
    assert v.ranking(entries, "hours", "c1", "2026-12-01", "2027-01-01",
                     frozenset({"r2"})) == [("", 90), ("r2", 60)]
    assert v.ranking(entries, "hours", "c1", "2026-12-06", "2027-01-01", frozenset()) == [
        ("", -30)]


def test_the_kept_sums_are_the_recount() -> None:
    rng = random.Random(3)
    entries = [v.Entry(f"r{rng.randint(0, 30)}", rng.choice(["hours", "points"]),
                       rng.randint(-50, 300), f"c{rng.randint(0, 2)}",
                       f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
               for _ in range(2000)]
    kept = v.Sums()
    for entry in entries:
        kept.add(entry)
    assert kept.balance == v.balances(entries)
    for community in ("c0", "c1", "c9"):
        assert kept.ranking("hours", community, "2026-03", "2026-07", frozenset({"r1"})) == (
            v.ranking(entries, "hours", community, "2026-03", "2026-07", frozenset({"r1"})))
        assert kept.community_total(community, "points", "2026-01", "2027-01") == sum(
            e.amount for e in entries if e.community == community and e.kind == "points")


def test_moving_out_releases_a_place_only_before_the_task_begins() -> None:
    rules = v
    task = {"community": "c1", "starts_at": "2026-12-05T09:00:00+08:00"}
    before = datetime.datetime(2026, 12, 4, tzinfo=datetime.UTC)
    after = datetime.datetime(2026, 12, 5, 2, tzinfo=datetime.UTC)
    gone = rules.Claimant("ra", frozenset())
    elsewhere = rules.Claimant("ra", frozenset({"c2"}))
    home = rules.Claimant("ra", frozenset({"c1", "c2"}))
    assert rules.moved_out(task, gone, before) and rules.moved_out(task, elsewhere, before)
    assert not rules.moved_out(task, home, before)  # still has a home in the community
    assert not rules.moved_out(task, gone, after)  # begun: the holder's hours are to come
    assert not rules.moved_out({"community": "c1"}, gone, before)  # no start: nothing done
    # Made from the claim it cancels: the same for every pass, a claim id the schema takes.
    first = rules.release_claim_id("claim:volunteer_task.aa:ra:claim:ra-claim-0001")
    assert first == rules.release_claim_id("claim:volunteer_task.aa:ra:claim:ra-claim-0001")
    assert first != rules.release_claim_id("claim:volunteer_task.aa:ra:claim:ra-claim-0002")
    assert rules.CLAIM_ID.match(first)
