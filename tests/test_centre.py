"""The neighbourhood centre (issue 20) through the real app on the real embedded store:
providers registered and their staff logged in with the role `provider`; slots opened inside
the opening times only; bad input of every class refused by label (zh-CN first) with nothing
stored; a slot's places booked exactly through the one allocation, confirmed or declined by
the provider, cancelled by the resident; an activity signed up for; and a legal
consultation's matter seen by the resident and the lawyer only, on every route."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from itertools import count
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, wait_for_user
from test_notices import Town
from test_resident_isolation import route_paths
from test_volunteering import phone, ready_town

from server.domain import centre as rules
from server.domain.allocation import outcome_id
from server.sync.centre import CENTRE_DB
from server.web import routing
from server.web.keys import CENTRE

PREFIX = "/api/centre"
CHINA = rules.CHINA
OPEN = {str(d): [["08:00", "12:00"], ["13:00", "20:00"]] for d in range(1, 8)}
_n = count()


def at(days: int, hhmm: str) -> str:
    """A Beijing time `days` days from today, as the phone sends it."""
    day = datetime.datetime.now(CHINA).date() + datetime.timedelta(days=days)
    hour, minute = map(int, hhmm.split(":"))
    return datetime.datetime.combine(day, datetime.time(hour, minute), CHINA).isoformat()


async def call(client: TestClient, user: str, method: str, path: str,
               body: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, PREFIX + path, headers=basic(user), json=body)
    text = await resp.text()
    return resp.status, json.loads(text) if text else None


@dataclasses.dataclass
class Centre:
    town: Town
    bank: str  # provider codes
    lawyer: str
    teller: str  # the bank's staff
    counsel: str  # the lawyer's


def provider(code: str, kind: str, community: str, **changes: Any) -> dict[str, Any]:
    return {"code": code, "kind": kind, "name": f"{kind} 服务点", "community": community,
            "services": [{"code": "advice", "name": "咨询"}], "hours": OPEN, **changes}


async def a_centre(client: TestClient, city: City) -> Centre:
    town = await ready_town(client, city)
    tag = f"{os.getpid()}x{next(_n)}"
    bank, lawyer = f"bank{tag}", f"law{tag}"
    for code, kind in ((bank, "bank"), (lawyer, "lawyer")):
        status, answer = await call(client, town.sup1, "POST", "/providers",
                                    provider(code, kind, town.c1))
        assert status == 201, answer
    teller = await city.user("provider", communities=[town.c1], provider=bank)
    counsel = await city.user("provider", communities=[town.c1], provider=lawyer,
                              full_name="周律师")
    for name in (teller, counsel):
        await wait_for_user(client, name)
    return Centre(town, bank, lawyer, teller, counsel)


async def a_slot(client: TestClient, staff: str, places: int = 1, day: int = 1,
                 start: str = "09:00", end: str = "09:30") -> str:
    status, answer = await call(client, staff, "POST", "/slots", {
        "service": "advice", "starts_at": at(day, start), "ends_at": at(day, end),
        "places": places})
    assert status == 201, answer
    return str(answer["slot"]["_id"]).partition(":")[2]


async def stored(city: City, prefix: str) -> list[str]:
    def ids() -> list[str]:
        db = city.couch[CENTRE_DB]
        return [i for i in db if i.startswith(prefix)]
    return await city.run(ids)


async def test_providers_slots_and_bad_input_refused_by_label(client: TestClient,
                                                              city: City) -> None:
    centre = await a_centre(client, city)
    town = centre.town
    cases: list[tuple[Any, str]] = [
        (provider("x1", "barber", town.c1), "服务类别"),
        (provider("X!", "bank", town.c1), "服务方编号"),
        (provider("x2", "bank", town.c1, name="\ud800"), "服务方名称"),
        (provider("x3", "bank", town.c1, hours={"8": []}), "营业时间"),
        (provider("x4", "bank", town.c1, hours={"1": [["12:00", "09:00"]]}), "营业时间"),
        (provider("x5", "bank", town.c1, services=[]), "服务项目"),
        (provider("x6", "bank", town.c3), "不在您的管辖范围内"),  # another street's
        (provider("x7", "bank", town.c1, created_by=town.ra), "创建人"),
        ([1], ""),
    ]
    for body, words in cases:
        status, answer = await call(client, town.sup1, "POST", "/providers", body)
        assert status == 400 and set(answer) == {"error", "reason"}, (body, answer)
        assert words in answer["reason"] and " / " in answer["reason"], (words, answer)
    status, _ = await call(client, town.ra, "POST", "/providers", provider("x8", "bank", town.c1))
    assert status == 403
    status, taken = await call(client, town.sup1, "POST", "/providers",
                               provider(centre.bank, "bank", town.c1))
    assert status == 409, taken

    good = {"service": "advice", "starts_at": at(1, "09:00"), "ends_at": at(1, "09:30"),
            "places": 2}
    slot_cases: list[tuple[Any, str]] = [
        ({**good, "places": 0}, "“名额”应为 1 到 50 的整数"),
        ({**good, "places": "2"}, "名额"), ({**good, "places": True}, "名额"),
        ({**good, "starts_at": at(-1, "09:00"), "ends_at": at(-1, "09:30")},
         "不能预约已过去的时段"),
        ({**good, "starts_at": at(1, "12:10"), "ends_at": at(1, "12:40")}, "不在营业时间内"),
        ({**good, "starts_at": at(1, "07:00"), "ends_at": at(1, "08:30")}, "不在营业时间内"),
        ({**good, "starts_at": at(1, "11:30"), "ends_at": at(1, "13:30")}, "不在营业时间内"),
        ({**good, "starts_at": "tomorrow"}, "开始时间"),
        ({**good, "service": "loans"}, "服务项目"),
        ({**good, "ends_at": at(1, "09:05")}, "结束时间"),
        ({**good, "community": town.c3}, "“社区”由服务器填写"),
        ({**good, "provider": centre.lawyer}, "“服务方”由服务器填写"),
        ({**good, "x": 1}, "不允许的字段 x"),
    ]
    for body, words in slot_cases:
        status, answer = await call(client, centre.teller, "POST", "/slots", body)
        assert status == 400 and words in answer["reason"], (body, answer)
        assert " / " in answer["reason"] and "/places" not in answer["reason"], answer
    for who in (town.sup1, town.ra, town.worker1):
        status, answer = await call(client, who, "POST", "/slots", good)
        assert status == 403, (who, answer)
    assert await stored(city, "centre_slot:") == []
    slot = await a_slot(client, centre.teller, places=2)
    assert await stored(city, "centre_slot:") == [f"centre_slot:{slot}"]

    status, seen = await call(client, town.ra, "GET", "/providers")
    assert status == 200 and {p["code"] for p in seen["providers"]} >= {centre.bank,
                                                                          centre.lawyer}
    status, none = await call(client, town.rc, "GET", "/providers")  # another community
    assert status == 200 and centre.bank not in json.dumps(none)
    status, hidden = await call(client, town.rc, "GET", f"/providers/{centre.bank}/slots")
    status_made_up, made_up = await call(client, town.rc, "GET", "/providers/nobank/slots")
    assert (status, hidden) == (status_made_up, made_up) and status == 404
    status, own = await call(client, centre.teller, "GET", "/providers")
    assert [p["code"] for p in own["providers"]] == [centre.bank]


async def test_a_slots_places_booked_exactly_confirmed_declined_and_cancelled(
        client: TestClient, city: City) -> None:
    centre = await a_centre(client, city)
    town = centre.town
    key = await a_slot(client, centre.teller, places=1)
    slot = f"{rules.SLOT}:{key}"
    status, first = await call(client, town.ra, "POST", f"/slots/{key}/book",
                               {"claim_id": "ra-book-0001"})
    assert (status, first["status"]) == (201, "awaiting_approval"), first
    status, again = await call(client, town.ra, "POST", f"/slots/{key}/book",
                               {"claim_id": "ra-book-0001"})
    assert (status, again["repeated"], again["status"]) == (200, True, "awaiting_approval")
    status, second = await call(client, town.rb, "POST", f"/slots/{key}/book",
                                {"claim_id": "rb-book-0001"})
    assert (status, second["status"], second["line"]) == (201, "waiting", 1), second
    status, far = await call(client, town.rc, "POST", f"/slots/{key}/book",
                             {"claim_id": "rc-book-0001"})
    assert status == 404, far  # another community's slot answers as none
    for body, words in (({"claim_id": "rb-book-0002", "resident": town.ra}, "“居民”由服务器填写"),
                        ({"claim_id": "rb-book-0002", "household": "h"}, "“住户”由服务器填写"),
                        ({"claim_id": "rb-book-0002", "claimant": town.ra}, "预约人"),
                        ({"claim_id": 5}, "预约编号"), ({"claim_id": "short"}, "预约编号"),
                        ({"claim_id": "rb-book-0002", "matter": "a\x07b"}, "咨询事项"),
                        ({"claim_id": "rb-book-0002", "matter": "\udc00"}, "咨询事项"),
                        ({"claim_id": "rb-book-0002", "matter": ["x"]}, "咨询事项")):
        status, answer = await call(client, town.rb, "POST", f"/slots/{key}/book", body)
        assert status == 400 and words in answer["reason"] and " / " in answer["reason"], (
            body, answer)
    # Another's booking: nothing of theirs to cancel or decide.
    status, _ = await call(client, town.rc, "POST", f"/slots/{key}/cancel",
                           {"claim_id": "ra-book-0001"})
    assert status == 404
    status, _ = await call(client, town.worker1, "POST", f"/slots/{key}/cancel",
                           {"claim_id": "ra-book-0001"})
    assert status == 403

    # The provider's day list: names, never accounts; another provider sees none of it.
    status, day = await call(client, centre.teller, "GET", f"/day?date={at(1, '00:00')[:10]}")
    assert status == 200, day
    listed = next(s for s in day["slots"] if s["_id"] == slot)
    assert [b["status"] for b in listed["bookings"]] == ["awaiting_approval", "waiting"]
    assert town.ra not in json.dumps(day) and town.rb not in json.dumps(day)
    status, other = await call(client, centre.counsel, "GET", f"/day?date={at(1, '00:00')[:10]}")
    assert status == 200 and slot not in json.dumps(other)
    ra_key, rb_key = (b["booking"] for b in listed["bookings"])
    status, _ = await call(client, centre.counsel, "POST", f"/slots/{key}/decide",
                           {"booking": ra_key, "approve": True, "claim_id": "law-decide-1"})
    assert status == 404  # not the lawyer's slot
    status, bad = await call(client, centre.teller, "POST", f"/slots/{key}/decide",
                             {"booking": ra_key, "approve": "yes", "claim_id": "bank-decide-1"})
    assert status == 400 and "确认" in bad["reason"]

    status, early = await call(client, centre.teller, "POST", f"/slots/{key}/decide",
                               {"booking": rb_key, "approve": True, "claim_id": "bank-early-1"})
    assert status == 403 and "候补" in early["reason"], early  # a waiting booking: not yet
    # Declined: the place goes to the first waiting, who is then confirmed.
    status, declined = await call(client, centre.teller, "POST", f"/slots/{key}/decide",
                                  {"booking": ra_key, "approve": False,
                                   "claim_id": "bank-decide-1"})
    assert (status, declined["status"]) == (201, "rejected"), declined
    held = await phone(client, town.rb)
    assert held[outcome_id(slot, town.rb)]["status"] == "awaiting_approval"
    assert held[outcome_id(slot, town.rb)]["promoted"] is True
    assert outcome_id(slot, town.ra) not in held  # nobody else's outcome on a phone
    status, confirmed = await call(client, centre.teller, "POST", f"/slots/{key}/decide",
                                   {"booking": rb_key, "approve": True,
                                    "claim_id": "bank-decide-2"})
    assert confirmed["status"] == "confirmed"
    status, mine = await call(client, town.rb, "GET", "/mine")
    assert [(b["_id"], b["status"]) for b in mine["bookings"]] == [(slot, "confirmed")]
    assert mine["bookings"][0]["provider_name"] == "bank 服务点"

    # Cancelled by the resident: the place frees for the next booking.
    status, cancelled = await call(client, town.rb, "POST", f"/slots/{key}/cancel",
                                   {"claim_id": "rb-book-0001"})
    assert (status, cancelled["status"]) == (201, "cancelled"), cancelled
    status, slots = await call(client, town.ra, "GET", f"/providers/{centre.bank}/slots")
    row = next(s for s in slots["slots"] if s["_id"] == slot)
    assert (row["taken"], row["status"]) == (0, "rejected")

    # A past slot is refused, by label; a retry of a booking stored in time still answers.
    def past() -> None:
        client.app[CENTRE].slots[slot]["starts_at"] = at(-1, "09:00")
    past()
    status, late = await call(client, town.rc, "POST", f"/slots/{key}/book",
                              {"claim_id": "rc-book-0009"})
    assert status in (403, 404)
    status, late = await call(client, town.rb, "POST", f"/slots/{key}/book",
                              {"claim_id": "rb-book-0009"})
    assert status == 403 and "已过期" in late["reason"] and "has passed" in late["reason"]
    status, retry = await call(client, town.ra, "POST", f"/slots/{key}/book",
                               {"claim_id": "ra-book-0001"})
    assert status == 200 and retry["status"] == "rejected"


async def test_an_activity_is_signed_up_for_exactly(client: TestClient, city: City) -> None:
    centre = await a_centre(client, city)
    town = centre.town
    draft = {"title": "插花课", "description": "周六上午", "place": "邻里中心二楼",
             "community": town.c1, "starts_at": at(3, "09:00"), "ends_at": at(3, "11:00"),
             "places": 1}
    for body, words in (({**draft, "places": 0}, "名额"), ({**draft, "open_to": "branch"},
                                                            "不允许的字段 open_to"),
                        ({**draft, "title": "\x00"}, "标题"),
                        ({**draft, "community": town.c3}, "不在您的管辖范围内")):
        status, answer = await call(client, town.sup1, "POST", "/activities", body)
        assert status == 400 and words in answer["reason"], (body, answer)
    status, answer = await call(client, town.ra, "POST", "/activities", draft)
    assert status == 403
    status, answer = await call(client, centre.teller, "POST", "/activities", draft)
    assert status == 201 and answer["activity"]["provider"] == centre.bank, answer
    key = answer["activity"]["_id"].partition(":")[2]
    status, got = await call(client, town.rb, "POST", f"/activities/{key}/claim",
                             {"claim_id": "rb-act-00001"})
    assert (status, got["status"]) == (201, "confirmed"), got
    status, got = await call(client, town.ra, "POST", f"/activities/{key}/claim",
                             {"claim_id": "ra-act-00001"})
    assert (status, got["status"], got["line"]) == (201, "waiting", 1)
    status, got = await call(client, town.rc, "POST", f"/activities/{key}/claim",
                             {"claim_id": "rc-act-00001"})
    assert status == 404
    status, _ = await call(client, town.rb, "POST", f"/activities/{key}/cancel",
                           {"claim_id": "rb-act-00001"})
    status, listed = await call(client, town.ra, "GET", "/activities")
    row = next(a for a in listed["activities"] if a["title"] == "插花课")
    assert (row["status"], row["taken"], row["provider_name"]) == ("confirmed", 1,
                                                                   "bank 服务点")
    assert town.rb not in json.dumps(listed)
    # The supervisors' figures count its places, never who signed up; another
    # community's supervisor does not see it.
    status, figures = await call(client, town.sup1, "GET", "/overview")
    row = next(a for a in figures["activities"] if a["_id"] == f"centre_activity:{key}")
    assert (status, row["taken"], row["waiting"], row["places"]) == (200, 1, 0, 1)
    assert town.ra not in json.dumps(figures) and town.rb not in json.dumps(figures)
    outsider = await city.user("supervisor", communities=[town.c3])
    await wait_for_user(client, outsider)
    status, figures = await call(client, outsider, "GET", "/overview")
    assert status == 200 and all(a["_id"] != f"centre_activity:{key}"
                                 for a in figures["activities"])


SECRET_MATTER = "邻居纠纷：房屋漏水赔偿 MATTER-7f3a"


async def test_a_legal_matter_is_seen_by_the_resident_and_the_lawyer_only_on_every_route(
        client: TestClient, city: City) -> None:
    """Like the residents' isolation walks: every GET route of the API description, with
    its path filled with the real slot, provider and activity, and the resident sync, asked
    by everyone outside the circle: not the matter, not the booker's phone or name."""
    centre = await a_centre(client, city)
    town = centre.town
    key = await a_slot(client, centre.counsel, places=2)
    status, booked = await call(client, town.ra, "POST", f"/slots/{key}/book",
                                {"claim_id": "ra-legal-001", "matter": SECRET_MATTER})
    assert status == 201, booked
    status, day = await call(client, centre.counsel, "GET", f"/day?date={at(1, '00:00')[:10]}")
    assert SECRET_MATTER in json.dumps(day, ensure_ascii=False)  # the lawyer reads it
    status, mine = await call(client, town.ra, "GET", "/mine")
    assert mine["bookings"][0]["matter"] == SECRET_MATTER  # and the resident
    outsiders = (town.rb, town.rc, centre.teller, town.sup1, town.street_sup, town.admin,
                 town.worker1)
    with open("server/web/openapi.json", encoding="utf-8") as handle:
        described = json.load(handle)["paths"]
    fill = {"{key}": key, "{provider}": centre.lawyer, "{slot}": key}
    gets = [path for path, item in described.items() if "get" in item]
    walked = 0
    for who in outsiders:
        for path in gets:
            url = path
            for hole, value in fill.items():
                url = url.replace(hole, value)
            if "{" in url:
                url = url.split("{")[0].rstrip("/")  # other features' ids: their list
            for query in ("", f"?date={at(1, '00:00')[:10]}"):
                resp = await client.get(url + query, headers=basic(who))
                text = (await resp.read()).decode("utf-8", "replace")
                assert resp.status < 500, (who, url, text)
                assert "MATTER-7f3a" not in text and "房屋漏水" not in text, (who, url)
                walked += 1
        for db in ("/couch/linli-resident", "/couch/linli-centre", "/couch/linli-claims"):
            resp = await client.get(f"{db}/_all_docs?include_docs=true", headers=basic(who))
            text = (await resp.read()).decode("utf-8", "replace")
            assert "MATTER-7f3a" not in text and town.ra not in text, (who, db, resp.status)
    assert walked > 100
    # The supervisors' figures count the lawyer's places, never who or what about.
    status, figures = await call(client, town.sup1, "GET", "/overview")
    row = next(p for p in figures["providers"] if p["code"] == centre.lawyer)
    assert (row["slots"], row["booked"], row["confidential"]) == (1, 1, True)
    [week] = row["weeks"]  # by week (its Beijing Monday) and service
    assert (week["slots"], week["places"], week["booked"]) == (1, row["places"], 1)
    assert datetime.date.fromisoformat(week["week"]).weekday() == 0 and week["service_name"]
    assert town.ra not in json.dumps(figures) and "MATTER" not in json.dumps(figures)


@pytest.mark.slow  # every route of the router, both methods, every outsider
async def test_a_legal_matter_reaches_no_outsider_on_any_route_with_any_id(
        client: TestClient, city: City) -> None:
    """As the residents' isolation walk (tests/test_resident_isolation.py): EVERY route the
    server has (its router's API routes and routing.py's tables), with the booking's ids
    (the slot, the matter, the booker's outcome) in the path, the query and the body, asked
    by everyone outside the circle: never the matter, never the booker's account."""
    centre = await a_centre(client, city)
    town = centre.town
    key = await a_slot(client, centre.counsel, places=1)
    slot = f"{rules.SLOT}:{key}"
    status, _ = await call(client, town.ra, "POST", f"/slots/{key}/book",
                           {"claim_id": "ra-legal-002", "matter": SECRET_MATTER})
    assert status == 201
    app_paths = sorted({r.resource.canonical for r in client.app.router.routes()
                        if r.resource is not None and r.resource.canonical.startswith("/api/")})
    databases = {"linli-resident": routing.RESIDENT_ROUTES, "linli-centre":
                 routing.DATABASE_ROUTES, "linli-claims": routing.DATABASE_ROUTES}
    ids = (slot, rules.matter_id(slot, town.ra), outcome_id(slot, town.ra))
    asked = 0
    for who in (town.rb, town.rc, centre.teller, town.sup1, town.admin):
        for doc_id in ids:
            for path in sorted(set(route_paths(databases, app_paths, doc_id))):
                for method in ("GET", "POST"):
                    body = {"id": doc_id, "slot": slot, "keys": [doc_id], "docs": [
                        {"id": doc_id}], "claim_id": "outsider-01"} if method == "POST" else None
                    resp = await client.request(method, path, headers=basic(who), json=body,
                                                params={"include_docs": "true", "date": at(
                                                    1, "00:00")[:10]})
                    text = (await resp.read()).decode("utf-8", "replace")
                    assert resp.status < 500, (who, method, path, text)
                    sent = json.dumps([path, body])  # an id naming its booker, sent: no leak
                    leaked = [s for s in ("MATTER-7f3a", "房屋漏水", town.ra)
                              if s not in sent and s in text]
                    assert not leaked, (who, method, path, text)
                    asked += 1
    assert asked > 1000
    status, day = await call(client, centre.counsel, "GET", f"/day?date={at(1, '00:00')[:10]}")
    assert SECRET_MATTER in json.dumps(day, ensure_ascii=False)  # not vacuous: it is there
