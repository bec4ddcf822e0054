"""The volunteers' rankings and the supervisors' summary (issue 17, rule 8 of
server/domain/volunteering.py) through the real app on the real store: sums of confirmed hours
and points (corrections counted) by community and period in China's calendar, a resident named
only by the name they chose while they choose it (every other 匿名志愿者: no account, no unit),
a supervisor's communities in full and small grids withheld, and every class of bad input
refused by label with nothing stored."""

from __future__ import annotations

import datetime
import json
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually
from test_notices import Town
from test_volunteering import PREFIX, a_task, act, phone, stored_ids
from test_volunteering_hours import call

from server.domain import volunteering as rules
from server.domain.scope import RESIDENTS_DB

RANKING, CHOICE, SUMMARY = ("/api/volunteer/ranking", "/api/volunteer/ranking/choice",
                            "/api/volunteer/summary")


def this_month() -> str:
    return datetime.datetime.now(rules.CHINA).strftime("%Y-%m")


async def hours_confirmed(client: TestClient, city: City) -> tuple[Town, str]:
    """ra 120 minutes (then corrected by -30), rb 60 minutes, on one task of c1."""
    town, task = await a_task(client, city, places=2)
    for who in (town.ra, town.rb):
        got, answer = await act(client, who, task, f"{who[:20]}-claim")
        assert answer["status"] == "confirmed", answer
    for who, minutes in ((town.ra, 120), (town.rb, 60)):
        got, answer = await call(client, "POST", f"{PREFIX}/{task}/hours", town.sup1,
                                 {"volunteer": who, "minutes": minutes})
        assert got == 201, answer
    entry = f"ledger_entry:hours:{town.ra}:{task.replace(':', '.')}"
    got, answer = await call(client, "POST", "/api/volunteer/ledger/corrections", town.sup1,
                             {"entry": entry, "amount": -30, "reason": "早退半小时",
                              "key": "fix-ra-0001"})
    assert got == 201, answer
    return town, task


async def board(client: TestClient, user: str, query: str = "") -> dict[str, Any]:
    got, answer = await call(client, "GET", RANKING + query, user)
    assert got == 200, answer
    return answer


async def test_a_ranking_names_only_who_chose_to_be_named(client: TestClient,
                                                          city: City) -> None:
    town, _ = await hours_confirmed(client, city)

    async def ranked() -> dict[str, Any] | None:
        found = await board(client, town.ra)
        return found if [r["amount"] for r in found["rows"]] == [90, 60] else None
    found = await eventually(ranked, what="the entries summed")
    assert [(r["rank"], r["name"], r["me"]) for r in found["rows"]] == [
        (1, None, True), (2, None, False)]
    assert found["mine"] == {"rank": 1, "amount": 90} and found["volunteers"] == 2
    assert found["community"] == town.c1 and found["anonymous"].startswith("匿名志愿者")
    text = json.dumps(found, ensure_ascii=False)
    assert town.rb not in text and "household" not in text  # no account, no unit
    points = await board(client, town.rb, "?kind=points&period=" + this_month())
    assert [r["amount"] for r in points["rows"]] == [20, 10]  # the fix was of minutes
    assert points["mine"] == {"rank": 2, "amount": 10}
    assert (await board(client, town.rb, "?period=2001"))["rows"] == []

    # rb chooses to be named: his neighbours see the name he chose, never his account.
    got, answer = await call(client, "POST", CHOICE, town.rb, {"show": True, "name": "李师傅"})
    assert got == 200 and answer["name"] == "李师傅", answer
    found = await board(client, town.ra)
    assert [r["name"] for r in found["rows"]] == [None, "李师傅"]
    await eventually(lambda: phone_shows(client, town.rb, True), what="on his own phone")
    assert f"volunteer_ranking:{town.rb}" not in await phone(client, town.ra)
    got, answer = await call(client, "POST", CHOICE, town.rb, {"show": False})
    assert got == 200 and answer["name"] is None, answer
    assert [r["name"] for r in (await board(client, town.ra))["rows"]] == [None, None]
    # The index's feed brings each choice again: the last one made still stands.
    await eventually(lambda: phone_shows(client, town.rb, False), what="the choice synced")
    assert [r["name"] for r in (await board(client, town.ra))["rows"]] == [None, None]


async def phone_shows(client: TestClient, account: str, show: bool) -> bool:
    held = (await phone(client, account)).get(f"volunteer_ranking:{account}")
    return held is not None and held["show"] is show


async def test_a_supervisor_sums_their_scope_small_grids_withheld(client: TestClient,
                                                                 city: City) -> None:
    town, _ = await hours_confirmed(client, city)

    async def summed() -> dict[str, Any] | None:
        got, answer = await call(client, "GET", SUMMARY, town.sup1)
        assert got == 200, answer
        rows = [r for r in answer["communities"] if r["community"] == town.c1]
        return answer if rows and rows[0]["minutes"] == 150 else None
    found = await eventually(summed, what="the entries summed")
    assert [(r["community"], r["volunteers"], r["minutes"], r["points"])
            for r in found["communities"]] == [(town.c1, 2, 150, 30)]
    assert found["communities"][0]["community_name"]
    # Two volunteers in g1: fewer than five, withheld.
    assert [(r["grid"], r["volunteers"], r["minutes"], r.get("withheld"))
            for r in found["grids"]] == [(town.g1, None, None, True)]
    got, answer = await call(client, "GET", SUMMARY, town.street_sup)
    assert got == 200 and {r["community"] for r in answer["communities"]} == {
        town.c1, town.c2}, answer
    got, answer = await call(client, "GET", SUMMARY + "?period=" + this_month(), town.admin)
    assert got == 200 and [r["minutes"] for r in answer["communities"]
                           if r["community"] == town.c1] == [150], answer  # the whole city
    for user in (town.ra, town.worker1):
        got, answer = await call(client, "GET", SUMMARY, user)
        assert got == 403, (user, answer)
    resp = await client.get(SUMMARY)
    assert resp.status == 401


def test_small_grids_and_their_complement_are_withheld() -> None:
    grids = {"g1": ("c1", 2), "g2": ("c1", 7), "g3": ("c1", 9), "g4": ("c2", 3),
             "g5": ("c2", 4), "g6": ("c3", 0), "g7": ("c3", 6)}
    # g1 alone small in c1: c1 less g2 and g3 would give it, so g2 (the smaller) goes too;
    # c2 has two small ones, which hide each other; a zero singles nobody out.
    assert rules.withhold_small(grids) == frozenset({"g1", "g2", "g4", "g5"})


def test_periods_are_chinas_months() -> None:
    assert rules.period_months("2026") == ("2026-01", "2027-01")
    assert rules.period_months("2026-12") == ("2026-12", "2027-01")
    assert rules.period_months("2026-02") == ("2026-02", "2026-03")
    for bad in ("2026-13", "2026-00", "26", "2026-1", "1999", "２０２６", "2026-12 ", None, 2026,
                ["2026"]):
        assert rules.period_months(bad) is None, bad
    assert rules.month_of("2026-12-31T16:30:00+00:00") == "2027-01"  # 00:30 in Beijing
    assert rules.month_of("2026-12-31T15:59:00Z") == "2026-12"


async def test_bad_queries_and_choices_are_refused_by_label_nothing_stored(
        client: TestClient, city: City) -> None:
    town, _ = await a_task(client, city, places=1)
    for query, words in (("?period=2026-13", "期间"), ("?period=abc", "期间"),
                         ("?period=2026&period=2025", "重复"), ("?kind=minutes", "类别"),
                         ("?kind=%E6%97%B6", "类别"), ("?grid=g1", "期间"),
                         ("?community=" + town.c3, "期间"), ("?period=%00", "期间")):
        got, answer = await call(client, "GET", RANKING + query, town.ra)
        assert got == 400 and words in answer["reason"], (query, answer)
        assert "/" not in answer["reason"].split(" / ")[0], answer  # a label, not a pointer
    got, answer = await call(client, "GET", SUMMARY + "?period=2026-1", town.sup1)
    assert got == 400 and "期间" in answer["reason"], answer
    for body, words in (({"show": "yes"}, "公开显示"), ({"show": True}, "显示名"),
                        ({"show": True, "name": "很" * 21}, "显示名"),
                        ({"show": True, "name": "王\u0000伟"}, "显示名"),
                        ({"show": True, "name": "王\n伟"}, "显示名"),
                        ({"show": True, "name": ["王伟"]}, "显示名"),
                        ({"show": True, "name": {"zh": "王伟"}}, "显示名"),
                        ({"show": False, "name": "王伟"}, "显示名"),
                        ({"show": True, "name": "王伟", "created_by": town.rb}, "发布人"),
                        ({"show": True, "name": "王伟", "account": town.rb}, "账号"),
                        ({"show": True, "name": "王伟", "grid": town.g1}, "grid"),
                        ([{"show": True}], "")):
        got, answer = await call(client, "POST", CHOICE, town.ra, body)
        assert got == 400 and words in answer["reason"], (body, answer)
    # A lone surrogate, as raw JSON: refused too.
    resp = await client.post(CHOICE, data=b'{"show": true, "name": "\\ud800"}',
                             headers={**basic(town.ra), "Content-Type": "application/json"})
    assert resp.status == 400, await resp.text()
    for user in (town.sup1, town.worker1):
        got, answer = await call(client, "POST", CHOICE, user, {"show": False})
        assert got == 403, (user, answer)
        got, answer = await call(client, "GET", RANKING, user)
        assert got == 403, (user, answer)
    assert await stored_ids(city, RESIDENTS_DB, f"volunteer_ranking:{town.ra}") == []
