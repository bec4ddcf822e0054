"""Enforcement liaison and patrols (执法进小区, issue 20) on the real app and store: a supervisor
names a compound's officers per department; its residents see them by name (no phone, no
login) and write to them in the app, and the officer answers without ever seeing who the
resident is; an officer's route of checkpoints is patrolled once per checkpoint, a problem
found becomes one problem report routed to the department (a photo without its EXIF); the
supervisors' figures count patrols done against planned and problems found against resolved.
Bad input of every class is refused by label; other people's threads, routes and compounds
answer as made-up ones."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import os
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user
from test_notices import Town, a_resident
from test_reports import b64, jpeg
from test_volunteering import ready_town

from server.domain.scope import DIRECTORY_DB, LIAISON_DB, RESIDENTS_DB
from server.web.keys import RESIDENT_INDEX

_n = itertools.count()


async def call(client: TestClient, user: str, method: str, path: str,
               body: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body, headers=basic(user))
    return resp.status, await resp.json()


class Place:
    def __init__(self, town: Town, compound: str, resident: str, officer: str, other: str,
                 fire: str) -> None:
        self.town, self.compound, self.resident = town, compound, resident
        self.officer, self.other, self.fire = officer, other, fire


async def a_place(client: TestClient, city: City) -> Place:
    """A compound of c1 with one resident; a police officer of c1, one of c3, a fire one."""
    town = await ready_town(client, city)
    compound = f"lc{os.getpid()}x{next(_n)}"
    household = f"household:{town.g1}-{900 + next(_n):04d}"

    def write() -> None:
        city.couch[DIRECTORY_DB].save({"_id": f"compound:{compound}", "type": "compound",
                                       "schema_version": 1, "code": compound,
                                       "name": "阳光花园", "community": town.c1})
    await city.run(write)
    await city.save(town.g1, {
        "_id": household, "type": "household", "schema_version": 1, "grid": town.g1,
        "created_by": town.worker1, "head_name": "周八", "tenure": "owned", "status": "active",
        "address": {"compound": compound, "compound_name": "阳光花园", "building": "1",
                    "unit": "1", "room": "101"}})
    resident = await a_resident(city, town.g1, household)
    place = Place(town, compound, resident,
                  await city.user("department", department="police", communities=[town.c1],
                                  full_name="李警官"),
                  await city.user("department", department="police", communities=[town.c3]),
                  await city.user("department", department="fire", streets=[town.street]))
    index = client.app[RESIDENT_INDEX]
    index.notice(f"grid-{town.g1}")
    for user in (resident, place.officer, place.other, place.fire):
        await wait_for_user(client, user)
    await eventually(lambda: index.ids.places_of(resident), what="the resident's home")
    return place


async def test_officers_are_reached_in_the_app_only(client: TestClient, city: City) -> None:
    p = await a_place(client, city)
    t = p.town
    name = {"compound": p.compound, "department": "police", "officer": p.officer}
    for body, words in (({**name, "department": "army"}, "联络部门"),
                        ({**name, "officer": p.other}, "不是该部门负责本社区的人员"),
                        ({**name, "officer": p.fire}, "不是该部门负责本社区的人员"),
                        ({**name, "assigned_by": t.sup1}, "由服务器填写"),
                        ({**name, "officer": ["x"]}, "联络员")):
        got, answer = await call(client, t.sup1, "POST", "/api/liaison/officers", body)
        assert got == 400 and words in answer["reason"], (body, answer)
    for user, status in ((p.resident, 403), (t.worker1, 403), (p.officer, 403)):
        assert (await call(client, user, "POST", "/api/liaison/officers", name))[0] == status
    got, _ = await call(client, t.street_sup, "POST", "/api/liaison/officers", name)
    assert got == 404  # a street's supervisor names none in a community's compound
    assert (await call(client, t.sup1, "POST", "/api/liaison/officers", name))[0] == 201
    got, listed = await call(client, p.resident, "GET", "/api/liaison/officers")
    (mine,) = listed["compounds"]
    (police,) = mine["officers"]
    assert mine["name"] == "阳光花园" and police["officer"] == "李警官"
    assert police["label"] == ["公安", "Police"] and p.officer not in str(listed)
    # A neighbour of another compound has none; a message to a department without an officer,
    # or to a compound not theirs, answers as none.
    got, other = await call(client, t.rb, "GET", "/api/liaison/officers")
    assert p.compound not in str(other)
    text = {"compound": p.compound, "department": "police", "text": "楼下有人占道经营",
            "key": "msg-000001"}
    for user, body in ((t.rb, text), (p.resident, {**text, "department": "fire"})):
        got, answer = await call(client, user, "POST", "/api/liaison/messages", body)
        assert got == 404, answer
    for body, words in (({**text, "text": ""}, "消息内容"),
                        ({**text, "text": "a\ud800"}, "消息内容"),
                        ({**text, "key": "k"}, "消息编号"), ({**text, "by": p.officer}, "由服务器"),
                        ({**text, "thread": "0123456789abcdef"}, "会话")):
        got, answer = await call(client, p.resident, "POST", "/api/liaison/messages", body)
        assert got == 400 and words in answer["reason"], (body, answer)
    got, sent = await call(client, p.resident, "POST", "/api/liaison/messages", text)
    assert got == 201 and sent["thread"] == police["thread"]
    got, again = await call(client, p.resident, "POST", "/api/liaison/messages", text)
    assert got == 200 and again["repeated"] is True
    # The officer answers the thread; they never see the resident's login.
    got, threads = await call(client, p.officer, "GET", "/api/liaison/threads")
    (thread,) = threads["threads"]
    assert p.resident not in str(threads) and thread["last"]["name"][0] == "本小区居民"
    reply = {"thread": thread["thread"], "text": "收到，今天下午去现场", "key": "reply-0001"}
    assert (await call(client, p.officer, "POST", "/api/liaison/messages", reply))[0] == 201
    for user in (p.other, p.fire):  # another officer: no such conversation
        got, answer = await call(client, user, "POST", "/api/liaison/messages",
                                 {**reply, "key": "reply-0002"})
        assert got == 404, answer
        assert (await call(client, user, "GET", f"/api/liaison/messages/{thread['thread']}"))[
            0] == 404
    assert (await call(client, t.rb, "GET", f"/api/liaison/messages/{thread['thread']}"))[0] == 404
    got, read = await call(client, p.resident, "GET", f"/api/liaison/messages/{thread['thread']}")
    assert [m["name"][0] for m in read["messages"]] == ["本小区居民", "李警官"]
    assert p.resident not in str(read) and p.officer not in str(read)
    # Nothing of it on any phone: the liaison database is internal.
    assert (await call(client, t.admin, "GET", f"/couch/{LIAISON_DB}/_all_docs"))[0] in (403, 404)


async def test_a_patrol_records_each_checkpoint_once_and_reports_problems(
        client: TestClient, city: City) -> None:
    p = await a_place(client, city)
    t = p.town
    name = {"compound": p.compound, "department": "police", "officer": p.officer}
    assert (await call(client, t.sup1, "POST", "/api/liaison/officers", name))[0] == 201
    route = {"compound": p.compound, "grid": t.g1, "department": "police",
             "name": "夜间治安巡查", "checkpoints": ["南门", "地下车库", "3号楼"], "per_week": 3,
             "request": "route-000001"}
    assert (await call(client, p.other, "POST", "/api/patrols/routes", route))[0] == 404
    got, answer = await call(client, p.officer, "POST", "/api/patrols/routes",
                             {**route, "grid": t.g3})
    assert got == 400 and "网格" in answer["reason"]
    got, made = await call(client, p.officer, "POST", "/api/patrols/routes", route)
    assert got == 201, made
    route_id = made["route"]
    got, listed = await call(client, p.officer, "GET", "/api/patrols/routes")
    assert [r["id"] for r in listed["routes"]] == [route_id]
    assert (await call(client, p.other, "GET", "/api/patrols/routes"))[1]["routes"] == []
    now = datetime.datetime.now(datetime.UTC).astimezone(datetime.timezone(
        datetime.timedelta(hours=8)))
    at = now.isoformat(timespec="seconds")
    checks = [{"route": route_id, "patrol": "patrol-0001", "checkpoint": 0, "at": at, "ok": True,
               "photo": b64(jpeg())},
              {"route": route_id, "patrol": "patrol-0001", "checkpoint": 1, "at": at, "ok": False,
               "problem": {"category": "safety", "description": "消防通道被电动车堵塞"},
               "photo": b64(jpeg())},
              {"route": route_id, "patrol": "patrol-0001", "checkpoint": 2, "at": at, "ok": True}]
    # Other people's routes, made-up ones and bad checks.
    assert (await call(client, p.other, "POST", "/api/patrols/checks", checks[0]))[0] == 404
    made_up = {**checks[0], "route": "patrol_route:0123456789abcdef"}
    assert (await call(client, p.officer, "POST", "/api/patrols/checks", made_up))[0] == 404
    got, answer = await call(client, p.officer, "POST", "/api/patrols/checks",
                             {**checks[0], "checkpoint": 7})
    assert got == 400 and "不在这条路线上" in answer["reason"]
    for user in (p.resident, t.worker1, t.sup1):
        assert (await call(client, user, "POST", "/api/patrols/checks", checks[0]))[0] == 403
    # The phone sends the patrol when back online, each check twice, all at once.
    answers = await asyncio.gather(*(call(client, p.officer, "POST", "/api/patrols/checks", c)
                                     for c in checks * 2))
    assert sorted(s for s, _ in answers) == [200, 200, 200, 201, 201, 201], answers
    reports = {a["check"].get("report") for _, a in answers} - {None}
    (report,) = reports

    def stored() -> tuple[int, dict[str, Any]]:
        db = city.couch[LIAISON_DB]
        return (sum(1 for i in db if i.startswith("patrol_check:")),
                city.couch[RESIDENTS_DB][report])
    count, doc = await city.run(stored)
    assert count >= 3 and doc["assignee"] == "department:police" and doc["spot"] == "地下车库"
    assert doc["reporter_kind"] == "department" and doc["compound"] == p.compound
    got, figures = await call(client, t.sup1, "GET", "/api/patrols/figures")
    (mine,) = [r for r in figures["routes"] if r["route"] == route_id]
    assert (mine["planned"], mine["done"], mine["found"], mine["resolved"]) == (3, 1, 1, 0)
    assert mine["compound"] == "阳光花园"
    assert (await call(client, p.resident, "GET", "/api/patrols/figures"))[0] == 403
