"""The rules of mutual aid (server/domain/mutual_aid.py), case by case: what a listing of each
kind may hold, what is limited and how, who sees a listing, and the deals' acts."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from server.domain import mutual_aid as rules

NOW = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


def at(days: float) -> str:
    return (NOW + datetime.timedelta(days=days)).isoformat()


def ride(**changes: Any) -> dict[str, Any]:
    return {"kind": "carpool", "title": "去火车站", "from": "东门", "to": "火车站",
            "departs_at": at(1), "seats": 3, **changes}


def labels(draft: dict[str, Any]) -> list[str]:
    return [p.zh for p in rules.listing_problems(draft, NOW)]


def test_a_good_listing_of_each_kind_passes() -> None:
    assert labels(ride()) == []
    assert labels({"kind": "swap", "title": "旧自行车", "wanted": "儿童书"}) == []
    assert labels({"kind": "swap", "title": "旧自行车", "free": True}) == []
    assert labels({"kind": "book", "title": "三体", "loan_days": 14}) == []
    assert labels({"kind": "groupbuy", "title": "蔬菜包", "deadline": at(1), "items": [
        {"name": "蔬菜包", "price_fen": 0, "stock": 1, "unit": "份"}],
        "pickup_points": ["东门"]}) == []


@pytest.mark.parametrize(("changes", "label"), [
    ({"seats": 0}, "座位数"), ({"seats": 9}, "座位数"), ({"seats": 2.0}, "座位数"),
    ({"departs_at": at(-0.001)}, "出发时间"), ({"departs_at": at(32)}, "出发时间"),
    ({"departs_at": "2026-12-04T09:00:00"}, "出发时间"),  # no zone
    ({"title": "a\u202eb"}, "标题"), ({"status": "open"}, "状态"), ({"round": 2}, "轮次"),
    ({"loan_days": 3}, "不允许的字段"), ({"scope": "street"}, "可见范围"),
])
def test_a_bad_ride_is_refused_by_label(changes: dict[str, Any], label: str) -> None:
    found = labels(ride(**changes))
    assert found and label in found[0], found


@pytest.mark.parametrize(("price", "ok"), [(-1, False), (0, True), (1, True), (1.5, False),
                                           (True, False), ("100", False), (10_000_001, False)])
def test_prices_are_whole_fen_never_negative(price: Any, ok: bool) -> None:
    found = rules.items_problems([{"name": "菜", "price_fen": price, "stock": 1, "unit": "份"}])
    assert (found == []) == ok, found
    assert ok or "价格（分）" in found[0].zh


def test_what_is_limited_and_how() -> None:
    listing = {"_id": "mutual_aid_listing:0123456789abcdef", **ride()}
    assert rules.subject_of(listing) == "mutual_aid_listing:0123456789abcdef.r1"
    assert rules.terms_of(listing, "r1") == (3, rules.parse_time(at(1)), False)
    book = {"_id": "mutual_aid_listing:0123456789abcdef", "kind": "book", "round": 4}
    assert rules.subject_of(book).endswith(".r4") and rules.terms_of(book, "r4") == (1, None,
                                                                                   True)
    buy = {"_id": "mutual_aid_listing:0123456789abcdef", "kind": "groupbuy", "deadline": at(1),
           "items": [{"stock": 500}, {"stock": 7}]}
    assert rules.terms_of(buy, "i1")[0] == 7 and rules.terms_of(buy, "i2") is None  # type: ignore[index]
    assert rules.terms_of(buy, "r1") is None and rules.listing_of(
        rules.subject_of(buy, 1)) == ("mutual_aid_listing:0123456789abcdef", "i1")


def test_who_sees_a_listing() -> None:
    mine = {"created_by": "ra", "status": "open", "scope": "compound", "community": "c1",
            "compound": "x"}
    keys = rules.reader_keys([("c1", "x")])
    assert rules.visible(mine, "rb", keys) and not rules.visible(
        mine, "rc", rules.reader_keys([("c1", "y")]))
    assert rules.visible({**mine, "scope": "community"}, "rc", rules.reader_keys([("c1", "y")]))
    assert not rules.visible({**mine, "status": "hidden"}, "rb", keys)
    assert rules.visible({**mine, "status": "hidden"}, "ra", frozenset())
    shown = rules.public_view({**mine, "_id": "mutual_aid_listing:0123456789abcdef"}, "rb")
    assert "created_by" not in shown and "ra" not in str(shown.values())
    assert rules.thread_of("l", "ra") != rules.thread_of("l", "rb") and len(
        rules.thread_of("l", "ra")) == 16


def test_a_loan_is_done_when_both_sides_confirm_the_return_and_rated_once() -> None:
    book = {"_id": "mutual_aid_listing:0123456789abcdef", "kind": "book", "loan_days": 7}
    deal: dict[str, Any] = {"kind": "book"}
    lend = rules.DealAct("owner", "lend")
    assert rules.deal_problem(book, deal, lend, False, 0, NOW) is not None  # holds no place
    assert rules.deal_problem(book, deal, rules.DealAct("taker", "lend"), True, 0, NOW)
    deal = rules.apply_act(book, deal, lend, NOW)
    assert deal["due_at"] == at(7) and not rules.overdue(deal, NOW + datetime.timedelta(days=7))
    assert rules.overdue(deal, NOW + datetime.timedelta(days=7, seconds=1))
    rate = rules.DealAct("taker", "rate", stars=5)
    assert rules.deal_problem(book, deal, rate, True, 0, NOW) is not None  # not returned yet
    for side in ("taker", "owner"):
        ret = rules.DealAct(side, "return")  # type: ignore[arg-type]
        assert rules.deal_problem(book, deal, ret, True, 0, NOW) is None
        deal = rules.apply_act(book, deal, ret, NOW)
        assert rules.deal_problem(book, deal, ret, True, 0, NOW) is not None  # once each
    assert rules.completed(deal) and not rules.overdue(deal, NOW + datetime.timedelta(days=30))
    assert rules.deal_problem(book, deal, rate, True, 0, NOW) is None
    deal = rules.apply_act(book, deal, rate, NOW)
    assert rules.deal_problem(book, deal, rate, True, 0, NOW) is not None
    assert rules.deal_problem(book, deal, rules.DealAct("owner", "rate", stars=0), True, 0,
                              NOW) is not None


def test_a_pickup_records_at_most_the_order_total() -> None:
    buy = {"_id": "mutual_aid_listing:0123456789abcdef", "kind": "groupbuy",
           "items": [{"price_fen": 2880}, {"price_fen": 1500}]}
    total = rules.order_total(buy, [0, 1])
    assert total == 4380
    for paid, ok in ((4380, True), (0, True), (4381, False), (-1, False), (None, False)):
        act = rules.DealAct("owner", "pickup", paid_fen=paid)
        assert (rules.deal_problem(buy, {}, act, True, total, NOW) is None) == ok, paid
    assert len(rules.pickup_code("mutual_aid_deal:x.1.ra")) == 6
