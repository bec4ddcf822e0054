"""Check-in and check-out by the organiser's code, hours confirmed by the organiser, and the
append-only hours and points ledgers (issue 17), through the real app on the real store: the
code is the organiser's (never a volunteer's), the time recorded is the code's window, each
check once, wrong codes counted, only a confirmed volunteer checks in, only the organiser
confirms hours and once, a correction is a new entry, balances are sums, and the volunteer's
phone holds their own check-ins and entries."""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually
from test_volunteering import PREFIX, a_task, act, phone

from server.domain import volunteering as rules
from server.domain.scope import RESIDENTS_DB
from server.sync.volunteering import MAX_WRONG_CODES


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def underway(city: City, task: str) -> None:
    """The task began ten minutes ago (written straight to the store: a task is published
    for the future)."""
    def move() -> None:
        doc = city.couch[RESIDENTS_DB][task]
        doc["starts_at"] = (now() - datetime.timedelta(minutes=20)).isoformat()
        doc["ends_at"] = (now() + datetime.timedelta(hours=2)).isoformat()
        city.couch[RESIDENTS_DB].save(doc)
    await city.run(move)


async def call(client: TestClient, method: str, path: str, user: str,
               body: Any = None) -> tuple[int, dict[str, Any]]:
    resp = await client.request(method, path, json=body, headers=basic(user))
    return resp.status, await resp.json()


async def test_check_in_out_hours_and_ledgers(client: TestClient, city: City) -> None:
    town, task = await a_task(client, city, places=2)
    for who in (town.ra, town.rb):
        got, answer = await act(client, who, task, f"{who[:20]}-claim")
        assert answer["status"] == "confirmed"
    await underway(city, task)
    key = f"{PREFIX}/{task}/checkin-key"
    for user, status in ((town.ra, 403), (town.worker1, 403), (town.street_sup, 404)):
        got, _ = await call(client, "GET", key, user)
        assert got == status, user
    got, held = await call(client, "GET", key, town.sup1)
    assert got == 200 and held["digits"] == 6
    secret = bytes.fromhex(held["secret"])
    assert held["code"] == rules.checkin_code(secret, task, rules.window_of(now()))

    def code(minutes_ago: int) -> str:
        return rules.checkin_code(secret, task, rules.window_of(
            now() - datetime.timedelta(minutes=minutes_ago)))

    check = f"{PREFIX}/{task}/check"
    # Bad input, by label; nothing stored.
    for body, words in (({"direction": "in", "code": "000000x"}, "签到码"),
                        ({"direction": "up", "code": code(0)}, "签到/签退"),
                        ({"direction": "in"}, "签到码"),
                        ({"direction": "in", "code": 123456}, "签到码"),
                        ({"direction": "in", "code": code(0), "at": "2026"}, "不允许的字段 at"),
                        ({"direction": "in", "code": code(0), "created_by": town.rb},
                         "不允许的字段 created_by")):
        got, answer = await call(client, "POST", check, town.ra, body)
        assert got == 400 and words in answer["reason"], (body, answer)
    # rb checks out before checking in: refused.
    got, answer = await call(client, "POST", check, town.rb, {"direction": "out",
                                                              "code": code(0)})
    assert got == 409 and "请先签到" in answer["reason"]
    # ra checks in with the code shown ten minutes ago: the time is that window's.
    got, answer = await call(client, "POST", check, town.ra, {"direction": "in",
                                                              "code": code(10)})
    assert got == 201, answer
    began = datetime.datetime.fromisoformat(answer["checkin"]["at"])
    assert abs((now() - began).total_seconds() - 600) <= rules.WINDOW_SECONDS + 5
    got, again = await call(client, "POST", check, town.ra, {"direction": "in",
                                                             "code": code(0)})
    assert got == 200 and again["repeated"] and again["checkin"]["at"] == answer["checkin"]["at"]
    got, out = await call(client, "POST", check, town.ra, {"direction": "out", "code": code(0)})
    assert got == 201 and out["checkin"]["at"] > answer["checkin"]["at"]
    # A resident without a place, another community's, and wrong codes past the limit.
    _, second = await call(client, "POST", PREFIX, town.sup1, {
        **{k: v for k, v in (await task_body(city, task)).items()}})
    other = second["task"]["_id"]
    got, answer = await call(client, "POST", f"{PREFIX}/{other}/check", town.ra,
                             {"direction": "in", "code": code(0)})
    assert got == 403 and "没有这个任务的名额" in answer["reason"]
    got, _ = await call(client, "POST", check, town.rc, {"direction": "in", "code": code(0)})
    assert got == 404
    statuses = []
    for _ in range(MAX_WRONG_CODES + 1):
        wrong = f"{(int(code(0)) + 1) % 1_000_000:06d}"
        got, _ = await call(client, "POST", check, town.rb, {"direction": "in", "code": wrong})
        statuses.append(got)
    assert statuses[-1] == 429 and set(statuses[:-1]) <= {400}

    # Hours: the organiser's, once; by default the minutes checked in.
    hours = f"{PREFIX}/{task}/hours"
    for user, status in ((town.ra, 403), (town.worker1, 403), (town.street_sup, 404)):
        got, _ = await call(client, "POST", hours, user, {"volunteer": town.ra})
        assert got == status, user
    got, answer = await call(client, "POST", hours, town.sup1, {"volunteer": town.rb})
    assert got == 400 and "时长" in answer["reason"]  # rb never checked in: say how long
    got, answer = await call(client, "POST", hours, town.sup1, {"volunteer": town.rb,
                                                                "minutes": 10_000})
    assert got == 400 and "时长（分钟）" in answer["reason"]
    got, answer = await call(client, "POST", hours, town.sup1, {"volunteer": town.rc})
    assert got == 400 and "志愿者" in answer["reason"]
    got, answer = await call(client, "POST", hours, town.sup1, {"volunteer": town.ra})
    assert got == 201, answer
    minutes = next(e["amount"] for e in answer["entries"] if e["kind"] == "hours")
    assert 5 <= minutes <= 15
    assert next(e["amount"] for e in answer["entries"] if e["kind"] == "points") == (
        minutes * 10 // 60)
    got, again = await call(client, "POST", hours, town.sup1, {"volunteer": town.ra,
                                                               "minutes": 60})
    assert got == 200 and again["repeated"] and again["entries"][0]["amount"] == minutes

    # A correction is a new entry; the entry stays as it was; balances are sums.
    entry = next(e["_id"] for e in answer["entries"] if e["kind"] == "hours")
    fixes = f"{PREFIX.removesuffix('/tasks')}/ledger/corrections"
    K = "fix-key-0001"  # the organiser's phone's key for the correction
    for body, words in (({"entry": entry, "amount": 0, "reason": "更正", "key": K}, "数量"),
                        ({"entry": entry, "amount": "3", "reason": "更正", "key": K}, "数量"),
                        ({"entry": entry, "amount": True, "reason": "更正", "key": K}, "数量"),
                        ({"entry": entry, "amount": -3, "reason": "", "key": K}, "事由"),
                        ({"entry": entry, "amount": -3, "reason": "a\u202eb", "key": K}, "事由"),
                        ({"entry": entry, "amount": -3, "reason": "x", "account": "r", "key": K},
                         "不允许的字段 account")):
        got, bad = await call(client, "POST", fixes, town.sup1, body)
        assert got == 400 and words in bad["reason"], (body, bad)
    got, _ = await call(client, "POST", fixes, town.ra, {"entry": entry, "amount": 60,
                                                         "reason": "多记一些", "key": K})
    assert got == 403  # never one's own hours
    got, _ = await call(client, "POST", fixes, town.street_sup, {"entry": entry, "amount": -1,
                                                                 "reason": "x", "key": K})
    assert got == 404
    got, fixed = await call(client, "POST", fixes, town.sup1, {"entry": entry, "amount": -3,
                                                               "reason": "提前离开", "key": K})
    assert got == 201 and fixed["entry"]["corrects"] == entry
    got, _ = await call(client, "POST", fixes, town.sup1, {"entry": fixed["entry"]["_id"],
                                                           "amount": 1, "reason": "x", "key": K})
    assert got == 400  # a correction is corrected by another entry about the first
    got, mine = await call(client, "GET", f"{PREFIX.removesuffix('/tasks')}/ledger", town.ra)
    assert mine["hours_minutes"] == minutes - 3
    assert mine["points"] == minutes * 10 // 60
    original = await city.run(lambda: dict(city.couch[RESIDENTS_DB][entry]))
    assert original["amount"] == minutes and original["_rev"].startswith("1-")
    # The phone holds its own check-ins and entries, and nobody else's.
    async def held() -> set[str] | None:
        ids = set(await phone(client, town.ra))
        return ids if {entry, fixed["entry"]["_id"]} <= ids else None
    held_ids = await eventually(held, what="the entries on the phone")
    assert any(i.startswith("checkin:") for i in held_ids)
    theirs = await phone(client, town.rb)
    assert not any(i.startswith(("ledger_entry:", "checkin:")) for i in theirs)


async def task_body(city: City, task: str) -> dict[str, Any]:
    """A second task like the first, to publish."""
    doc = await city.run(lambda: dict(city.couch[RESIDENTS_DB][task]))
    later = now() + datetime.timedelta(days=2)
    return {"title": doc["title"], "description": doc["description"], "place": doc["place"],
            "community": doc["community"], "starts_at": later.isoformat(),
            "ends_at": (later + datetime.timedelta(hours=1)).isoformat(), "places": 3}
