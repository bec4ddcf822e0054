"""Party members' dual registration (issue 17, 党员双报到) through the real app on the real
embedded store: a resident declares their branch, its secretary confirms (nobody else, never
for themself), tasks open to party members or a branch then take the confirmed member's
claims and no one else's, the identity shows only when confirmed and chosen, the branch views
sum the ledger, and every class of bad input is refused by label with nothing stored."""

from __future__ import annotations

import asyncio
import datetime
import os
from itertools import count
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user
from test_notices import Town
from test_volunteering import act, draft, phone, publish, ready_town

from server.admin import directory
from server.domain import party as rules
from server.domain.scope import RESIDENTS_DB
from server.web.keys import DIRECTORY

P = "/api/party"
_n = count()


async def branch(client: TestClient, city: City, town: Town, street: str = "") -> str:
    """A department branch (机关支部) of the town's street, known to the app."""
    code = f"b{os.getpid()}x{next(_n)}"
    await city.run(directory.add_branch, city.couch, code, "市财政局机关支部", "organ",
                   street or town.street)
    await eventually(lambda: code in client.app[DIRECTORY].branches, what="the branch")
    return code


async def secretary(client: TestClient, city: City, *branches: str) -> str:
    name = await city.user("secretary", branches=list(branches))
    await wait_for_user(client, name)
    return name


async def call(client: TestClient, user: str | None, method: str, path: str,
               body: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body,
                                headers=basic(user) if user else {})
    return resp.status, await resp.json()


async def member_doc(city: City, account: str) -> Any:
    return await city.run(lambda: city.couch[RESIDENTS_DB].get(rules.member_id(account)))


async def confirmed(client: TestClient, city: City, town: Town, account: str,
                    code: str) -> str:
    """`account` declared in `code` and confirmed by its secretary (returned)."""
    got, _ = await call(client, account, "POST", f"{P}/declare", {"branch": code})
    assert got in (200, 201)
    sec = await secretary(client, city, code)
    got, answer = await call(client, sec, "POST", f"{P}/decide",
                             {"member": account, "confirm": True})
    assert got == 201, answer
    return sec


async def test_a_declaration_refuses_every_class_of_bad_input_storing_nothing(
        client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    code = await branch(client, city, town)
    cases: list[tuple[Any, str]] = [
        ({"branch": code, "status": "confirmed"}, "“状态”由服务器填写"),
        ({"branch": code, "account": town.rb}, "“党员账号”由服务器填写"),
        ({"branch": code, "public": True}, "“公开党员身份”由服务器填写"),
        ({"branch": code, "created_by": town.rb}, "由服务器填写"),
        ({"branch": code, "reported_at": "2026-01-01T00:00:00Z"}, "由服务器填写"),
        ({"branch": f"grid-{town.g1}"}, "“所在支部”应从支部列表中选择"),  # a grid branch
        ({"branch": "nosuchbranch"}, "“所在支部”应从支部列表中选择"),  # made up: alike
        ({"branch": 7}, "所在支部"), ({"branch": None}, "所在支部"),
        ({"branch": [code]}, "所在支部"), ({"branch": {"code": code}}, "所在支部"),
        ({"branch": "\ud800"}, "所在支部"), ({"branch": code + "\u0000"}, "所在支部"),
        ({"branch": "b" * 100_000}, "所在支部"), ({"branch": "../../_users"}, "所在支部"),
        ({"branch": code, "x\u202e": 1}, "不允许的字段"), ({}, "所在支部"),
    ]
    for body, words in cases:
        got, answer = await call(client, town.ra, "POST", f"{P}/declare", body)
        assert got == 400 and set(answer) == {"error", "reason"}, (body, answer)
        assert words in answer["reason"] and " / " in answer["reason"], (words, answer)
        assert "/branch" not in answer["reason"]  # by label, never a JSON pointer
    for raw in ("[1]", '"x"', "{", "null"):
        resp = await client.post(f"{P}/declare", data=raw, headers={
            **basic(town.ra), "Content-Type": "application/json"})
        assert resp.status == 400, raw
    assert await member_doc(city, town.ra) is None
    for user in (town.sup1, town.worker1, town.admin):  # not residents
        got, answer = await call(client, user, "POST", f"{P}/declare", {"branch": code})
        assert got == 403 and set(answer) == {"error", "reason"}
    got, _ = await call(client, None, "POST", f"{P}/declare", {"branch": code})
    assert got == 401


async def test_only_the_branch_secretary_confirms_and_then_party_tasks_take_the_claim(
        client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    code, other = await branch(client, city, town), await branch(client, city, town)
    got, answer = await call(client, town.ra, "POST", f"{P}/declare", {"branch": code})
    assert got == 201 and answer["member"]["status"] == "pending", answer
    got, again = await call(client, town.ra, "POST", f"{P}/declare", {"branch": code})
    assert got == 200 and again["repeated"] is True
    status, task = await publish(client, town.sup1, draft(town, open_to="party_members",
                                                          places=5))
    assert status == 201
    party_task = task["task"]["_id"]
    got, refused = await call(client, town.ra, "POST", f"/api/volunteer/tasks/{party_task}/claim",
                              {"claim_id": "ra-party-claim-1"})
    assert got == 403 and "不对您开放" in refused["reason"], refused  # pending: not yet

    mine, theirs = await secretary(client, city, code), await secretary(client, city, other)
    decision = {"member": town.ra, "confirm": True}
    # The member themself, another branch's secretary, a supervisor, a worker: refused; the
    # other branch's secretary is told what a made-up member tells.
    got, answer = await call(client, town.ra, "POST", f"{P}/decide", decision)
    assert got == 403, answer
    got, foreign = await call(client, theirs, "POST", f"{P}/decide", decision)
    got2, nobody = await call(client, theirs, "POST", f"{P}/decide",
                              {"member": "nobody0here", "confirm": True})
    assert (got, foreign) == (got2, nobody) and got == 404, (foreign, nobody)
    for user in (town.sup1, town.worker1):
        got, _ = await call(client, user, "POST", f"{P}/decide", decision)
        assert got == 403
    for body, words in (({"member": town.ra, "confirm": "yes"}, "“确认”应为是或否"),
                        ({"member": town.ra, "confirm": False}, "未通过原因"),
                        ({"member": town.ra, "confirm": True, "status": "confirmed"}, "状态"),
                        ({"member": ["x"], "confirm": True}, "“党员”应为党员的账号"),
                        ({"member": "\ud800", "confirm": True}, "党员"),
                        ({"member": town.ra, "confirm": True, "branch": other}, "所在支部")):
        got, answer = await call(client, mine, "POST", f"{P}/decide", body)
        assert got == 400 and words in answer["reason"], (body, answer)
    assert (await member_doc(city, town.ra))["status"] == "pending"

    got, answer = await call(client, mine, "POST", f"{P}/decide", decision)
    assert got == 201 and answer["member"]["status"] == "confirmed", answer
    got, answer = await call(client, mine, "POST", f"{P}/decide", decision)
    assert got == 200 and answer["repeated"] is True
    got, placed = await act(client, town.ra, party_task, "ra-party-claim-1")
    assert got == 201 and placed["status"] == "confirmed", placed
    got, refused = await act(client, town.rb, party_task, "rb-party-claim-1")
    assert got == 403, refused  # not a member at all

    # A task open to the branch, and one open to the grid branch of where ra lives.
    for open_branch in (code, f"grid-{town.g1}"):
        _, task = await publish(client, town.sup1, draft(town, open_to="branch",
                                                         branch=open_branch, places=5))
        got, placed = await act(client, town.ra, task["task"]["_id"], "ra-branch-claim")
        assert got == 201, (open_branch, placed)
        got, _ = await act(client, town.rb, task["task"]["_id"], "rb-branch-claim")
        assert got == 403
    _, task = await publish(client, town.sup1, draft(town, open_to="branch", branch=other))
    got, _ = await act(client, town.ra, task["task"]["_id"], "ra-other-claim")
    assert got == 403  # another branch's task

    # The member's phone holds their membership; a neighbour's phone does not.
    assert rules.member_id(town.ra) in await eventually(
        lambda: _held(client, town.ra), what="the membership on the phone")
    assert rules.member_id(town.ra) not in await phone(client, town.rb)
    # Confirmed: a declaration over it is refused; rejected later, the claim right goes.
    got, answer = await call(client, town.ra, "POST", f"{P}/declare", {"branch": other})
    assert got == 409, answer
    got, answer = await call(client, mine, "POST", f"{P}/decide",
                             {"member": town.ra, "confirm": False, "reason": "组织关系已转出"})
    assert got == 201 and answer["member"]["status"] == "rejected"
    _, task = await publish(client, town.sup1, draft(town, open_to="party_members"))
    got, _ = await act(client, town.ra, task["task"]["_id"], "ra-late-claim")
    assert got == 403


async def _held(client: TestClient, user: str) -> dict[str, Any] | None:
    held = await phone(client, user)
    return held if rules.member_id(user) in held else None


async def test_the_identity_shows_only_when_confirmed_and_chosen(client: TestClient,
                                                                 city: City) -> None:
    town = await ready_town(client, city)
    code = await branch(client, city, town)
    got, mine = await call(client, town.rb, "GET", f"{P}/me")
    assert got == 200 and mine["member"] is None and mine["shows_identity"] is False
    assert [b["code"] for b in mine["grid_branches"]] == [f"grid-{town.g1}"]
    got, answer = await call(client, town.rb, "POST", f"{P}/public", {"public": True})
    assert got == 403 and "确认后" in answer["reason"]
    await call(client, town.rb, "POST", f"{P}/declare", {"branch": code})
    got, answer = await call(client, town.rb, "POST", f"{P}/public", {"public": True})
    assert got == 403  # pending
    assert (await member_doc(city, town.rb))["public"] is False
    for body in ({"public": "true"}, {"public": 1}, {"public": True, "account": town.ra}, {},
                 {"public": None}):
        got, answer = await call(client, town.rb, "POST", f"{P}/public", body)
        assert got == 400 and "公开党员身份" in answer["reason"], (body, answer)
    sec = await secretary(client, city, code)
    await call(client, sec, "POST", f"{P}/decide", {"member": town.rb, "confirm": True})
    got, mine = await call(client, town.rb, "GET", f"{P}/me")
    assert mine["member"]["public"] is False and mine["shows_identity"] is False  # default off
    got, answer = await call(client, town.rb, "POST", f"{P}/public", {"public": True})
    assert got == 200 and answer["public"] is True
    got, mine = await call(client, town.rb, "GET", f"{P}/me")
    assert mine["shows_identity"] is True and mine["member"]["branch_name"] == "市财政局机关支部"
    await call(client, sec, "POST", f"{P}/decide", {"member": town.rb, "confirm": False,
                                                    "reason": "不是本支部党员"})
    got, mine = await call(client, town.rb, "GET", f"{P}/me")
    assert mine["shows_identity"] is False and mine["member"]["public"] is False


async def test_the_branch_view_sums_hours_projects_and_who_has_not_reported(
        client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    code = await branch(client, city, town)
    sec = await confirmed(client, city, town, town.ra, code)
    await call(client, town.rb, "POST", f"{P}/declare", {"branch": code})  # pending
    _, task = await publish(client, town.sup1, draft(town, open_to="branch", branch=code,
                                                     title="党员先锋岗", places=3))
    task_id = task["task"]["_id"]
    got, _ = await act(client, town.ra, task_id, "ra-vanguard-1")
    assert got == 201
    resp = await client.post(f"/api/volunteer/tasks/{task_id}/hours", headers=basic(town.sup1),
                             json={"volunteer": town.ra, "minutes": 90})
    assert resp.status == 201, await resp.text()

    got, view = await call(client, sec, "GET", f"{P}/branches/{code}")
    assert got == 200, view
    assert view["counts"] == {"pending": 1, "confirmed": 1, "rejected": 0}
    assert {m["account"]: m["status"] for m in view["members"]} == {
        town.ra: "confirmed", town.rb: "pending"}
    assert view["hours_by_member"] == [{"account": town.ra, "minutes": 90}]
    assert view["hours_by_task"] == [{"task": task_id, "title": "党员先锋岗", "minutes": 90}]
    this_year = rules.year_of(task["task"]["starts_at"]) == datetime.datetime.now(
        rules.CHINA).year
    assert view["projects_met"] is this_year and len(view["projects"]) == int(this_year)
    assert view["not_reported"] == [town.ra]

    got, answer = await call(client, town.ra, "POST", f"{P}/report", {})
    assert got == 201 and answer["member"]["reported_grid"] == town.g1
    got, answer = await call(client, town.ra, "POST", f"{P}/report", None)
    assert got == 200 and answer["repeated"] is True
    got, answer = await call(client, town.rb, "POST", f"{P}/report", {})
    assert got == 403  # pending
    got, answer = await call(client, town.ra, "POST", f"{P}/report", {"grid": town.g3})
    assert got == 400 and "grid" in answer["reason"]  # a forged grid
    got, view = await call(client, sec, "GET", f"{P}/branches/{code}")
    assert view["not_reported"] == []

    # The grid branch of g1: ra lives there; seen by the community's supervisor.
    got, grid_view = await call(client, town.sup1, "GET", f"{P}/branches/grid-{town.g1}")
    assert got == 200 and [m["account"] for m in grid_view["members"]] == [town.ra]
    got, _ = await call(client, town.sup1, "GET", f"{P}/branches/{code}")
    assert got == 200  # the branch of the supervisor's street
    # Out of scope and made up answer alike; residents and workers are refused first.
    outsider = await city.user("supervisor", communities=[town.c3])
    await wait_for_user(client, outsider)
    other_sec = await secretary(client, city, await branch(client, city, town))
    answers = set()
    for user, path in ((outsider, code), (outsider, f"grid-{town.g1}"), (other_sec, code),
                       (sec, "nosuchbranch"), (sec, f"grid-{town.g1}")):
        got, answer = await call(client, user, "GET", f"{P}/branches/{path}")
        assert got == 404, (user, path, answer)
        answers.add(answer["reason"])
    assert len(answers) == 1
    for user in (town.ra, town.worker1):
        got, answer = await call(client, user, "GET", f"{P}/branches/{code}")
        assert got == 403 and set(answer) == {"error", "reason"}
    got, _ = await call(client, sec, "GET", f"{P}/branches/{code}?unmask=1")
    assert got == 400


async def test_racing_acts_are_stored_once(client: TestClient, city: City) -> None:
    """Ten declarations, ten confirmations, ten reports sent at once: one stored each, the
    others answered as repeats (the store's revision decides, not the order of arrival)."""
    town = await ready_town(client, city)
    code = await branch(client, city, town)
    sec = await secretary(client, city, code)

    async def many(user: str, path: str, body: Any) -> list[int]:
        answers = await asyncio.gather(*(call(client, user, "POST", path, body)
                                         for _ in range(10)))
        return sorted(status for status, _ in answers)

    assert await many(town.rc, f"{P}/declare", {"branch": code}) == [200] * 9 + [201]
    assert await many(sec, f"{P}/decide", {"member": town.rc, "confirm": True}) == (
        [200] * 9 + [201])
    assert await many(town.rc, f"{P}/report", {}) == [200] * 9 + [201]
    held = await member_doc(city, town.rc)
    assert held["status"] == "confirmed" and held["reported_grid"] == town.g3
    assert int(held["_rev"].split("-")[0]) == 3  # declared, confirmed, reported: no more


async def test_a_membership_pushed_through_the_sync_is_refused(client: TestClient,
                                                               city: City) -> None:
    """The phone holds its membership but never writes it: a forged `party_member` (confirmed,
    public) pushed through the resident sync endpoint, for oneself or a neighbour, stores
    nothing; only the routes write memberships."""
    town = await ready_town(client, city)
    code = await branch(client, city, town)
    forged = {"type": "party_member", "schema_version": 1, "branch": code,
              "status": "confirmed", "declared_at": "2026-12-01T09:00:00+08:00", "public": True}
    docs = [{**forged, "_id": rules.member_id(who), "account": who, "created_by": who}
            for who in (town.ra, town.rb)]
    resp = await client.post("/couch/linli-resident/_bulk_docs", json={"docs": docs},
                             headers=basic(town.ra))
    answer = await resp.json()
    assert resp.status >= 400 or all(row.get("error") for row in answer), answer
    resp = await client.put(f"/couch/linli-resident/{rules.member_id(town.ra)}",
                            json=docs[0], headers=basic(town.ra))
    assert resp.status >= 400, await resp.text()
    assert await member_doc(city, town.ra) is None and await member_doc(city, town.rb) is None
