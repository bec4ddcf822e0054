"""The neighbourhood centre's rules, pure (server/domain/centre.py): opening times judged in
Beijing time whatever the zone sent, slot and provider drafts refused by label, a booking's
body with forged fields refused by name, a slot's terms (places until its start, approved by
the provider) and an activity's (a volunteer task's terms, no approval)."""

from __future__ import annotations

import datetime

from server.domain import centre as rules
from server.domain.allocation import Event, allocate

CHINA = rules.CHINA
UTC = datetime.UTC
NOW = datetime.datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # Thursday 10:00 in Beijing
HOURS = {"4": [["09:00", "12:00"], ["13:30", "17:00"]], "5": [["09:00", "12:00"]]}
PROVIDER = {"code": "law1", "kind": "lawyer", "community": "c1", "hours": HOURS,
            "services": [{"code": "advice", "name": "法律咨询"}]}


def beijing(day: int, hhmm: str) -> datetime.datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime.datetime(2026, 12, day, hour, minute, tzinfo=CHINA)


def slot(day: int, start: str, end: str, **changes: object) -> dict[str, object]:
    return {"service": "advice", "starts_at": beijing(day, start).isoformat(),
            "ends_at": beijing(day, end).isoformat(), "places": 1, **changes}


def test_opening_times_are_beijings_whatever_zone_is_sent() -> None:
    assert rules.open_at(HOURS, beijing(3, "09:00"), beijing(3, "12:00"))  # edges count
    assert rules.open_at(HOURS, beijing(3, "13:30"), beijing(3, "14:00"))
    assert not rules.open_at(HOURS, beijing(3, "11:50"), beijing(3, "13:40"))  # over lunch
    assert not rules.open_at(HOURS, beijing(3, "08:50"), beijing(3, "09:20"))
    assert not rules.open_at(HOURS, beijing(4, "13:30"), beijing(4, "14:00"))  # Friday: am
    assert not rules.open_at(HOURS, beijing(5, "09:00"), beijing(5, "09:30"))  # Saturday
    utc_nine = beijing(3, "09:00").astimezone(UTC)  # 01:00 UTC, the same instant
    assert rules.open_at(HOURS, utc_nine, utc_nine + datetime.timedelta(minutes=30))


def test_slot_drafts_are_refused_by_label() -> None:
    assert rules.slot_problems(slot(3, "13:30", "14:00"), PROVIDER, NOW) == []
    cases = [(slot(3, "09:00", "09:30"), "不能预约已过去的时段"),  # 09:00 is before 10:00
             (slot(3, "12:00", "12:30"), "不在营业时间内"),
             (slot(3, "14:00", "14:05"), "10 分钟到 4 小时"),
             (slot(3, "13:30", "14:00", places=0), "“名额”应为 1 到 50 的整数"),
             (slot(3, "13:30", "14:00", places=1.5), "名额"),
             (slot(3, "13:30", "14:00", service="loans"), "服务项目"),
             (slot(3, "13:30", "14:00", starts_at="2026-12-03T13:30:00"), "开始时间"),
             (slot(3, "13:30", "14:00", household="h1"), "“住户”由服务器填写"),
             ({**slot(3, "13:30", "14:00"), "starts_at": beijing(28, "09:00").replace(
                 month=2, year=2027).isoformat()}, "60 天")]
    for draft, words in cases:
        found = rules.slot_problems(draft, PROVIDER, NOW)
        assert found and any(words in p.message for p in found), (draft, found)
        assert all(" / " in p.message or p.message for p in found)


def test_provider_drafts_and_booking_bodies() -> None:
    good = {"code": "law1", "kind": "lawyer", "name": "坊门法律服务站", "community": "c1",
            "services": PROVIDER["services"], "hours": HOURS}
    assert rules.provider_problems(good) == []
    for changes, words in (({"hours": {"4": [["09:00", "12:00"], ["11:00", "13:00"]]}},
                            "营业时间"), ({"hours": {"4": [["9:00", "12:00"]]}}, "营业时间"),
                           ({"services": [{"code": "a1", "name": "x"}] * 2}, "不能重复"),
                           ({"name": "律\u202e所"}, "服务方名称"), ({"kind": 3}, "服务类别")):
        found = rules.provider_problems({**good, **changes})
        assert any(words in p.message for p in found), (changes, found)
    assert rules.book_problems({"claim_id": "abcdefgh", "matter": "漏水\n赔偿"}, "claim") == []
    assert rules.book_problems({"claim_id": "abcdefgh", "matter": "x"}, "cancel")  # no matter
    for forged in ("resident", "household", "claimant", "created_by", "grid"):
        found = rules.book_problems({"claim_id": "abcdefgh", forged: "x"}, "claim")
        assert [p.code for p in found] == ["server_field"], forged
    assert rules.past_problem(beijing(3, "10:00").isoformat(), NOW) is not None  # now: past
    assert rules.past_problem(beijing(3, "10:01").isoformat(), NOW) is None


def test_a_slot_waits_for_the_provider_and_an_activity_does_not() -> None:
    stored = {"places": 1, "starts_at": beijing(3, "14:00").isoformat()}
    terms = rules.slot_terms(stored)
    assert terms.needs_approval and terms.deadline == beijing(3, "14:00")
    events = [Event(f"e{n}", "claim", who, NOW) for n, who in enumerate(("ra", "rb"))]
    held = allocate(terms, events)
    assert (held["ra"].status, held["rb"].status) == ("awaiting_approval", "waiting")
    declined = allocate(terms, [*events, Event("e9", "reject", "ra", NOW)])
    assert (declined["ra"].status, declined["rb"].status) == ("rejected", "awaiting_approval")
    activity = rules.activity_terms({"places": 1, "deadline": beijing(3, "12:00").isoformat()})
    assert not activity.needs_approval
    late = allocate(activity, [Event("e1", "claim", "ra", beijing(3, "12:01"))])
    assert late["ra"].status == "late"
    # The provider's day list names a booking by a key that is not the account.
    key = rules.booking_key("centre_slot:0123456789abcdef", "ra")
    assert rules.KEY.match(key) and key != "ra"
    assert rules.day_bounds("2026-12-03") == (beijing(3, "00:00"), beijing(4, "00:00"))
    assert rules.day_bounds("2026-13-03") is None and rules.day_bounds("3 Dec") is None


def test_an_activity_is_a_volunteer_tasks_terms_without_their_extras() -> None:
    draft = {"title": "插花课", "description": "带花材", "place": "邻里中心", "community": "c1",
             "places": 10,
             "starts_at": beijing(5, "09:00").isoformat(),
             "ends_at": beijing(5, "11:00").isoformat()}
    assert rules.activity_problems(draft, NOW) == []
    assert any("needs_approval" in p.message for p in rules.activity_problems(
        {**draft, "needs_approval": True}, NOW))
    assert any("名额" in p.message for p in rules.activity_problems({**draft, "places": 0}, NOW))
    doc = rules.activity_doc(draft, "chen.jing", "law1", "0123456789abcdef", NOW)
    assert doc["deadline"] == doc["starts_at"] and doc["provider"] == "law1"


def test_the_supervisors_count_slots_by_beijing_week_and_service() -> None:
    """Rule 4: a Sunday late evening in Beijing is still that week, whatever UTC says."""
    assert rules.week_of("2026-12-13T23:30:00+08:00") == "2026-12-07"
    assert rules.week_of("2026-12-13T16:30:00+00:00") == "2026-12-14"  # Monday 00:30 Beijing
    assert rules.week_of("not a time") is None
    slots = [{"_id": "centre_slot:a", "service": "advice", "places": 2,
              "starts_at": "2026-12-07T09:00:00+08:00"},
             {"_id": "centre_slot:b", "service": "advice", "places": 1,
              "starts_at": "2026-12-11T14:00:00+08:00"},
             {"_id": "centre_slot:c", "service": "cards", "places": 3,
              "starts_at": "2026-12-14T09:00:00+08:00"}]
    assert rules.weekly(slots, {"centre_slot:a": 2, "centre_slot:c": 1}) == [
        {"week": "2026-12-07", "service": "advice", "slots": 2, "places": 3, "booked": 2},
        {"week": "2026-12-14", "service": "cards", "slots": 1, "places": 3, "booked": 1}]
