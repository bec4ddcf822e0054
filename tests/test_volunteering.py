"""Volunteer tasks (issue 17) through the real app on the real embedded store: who publishes,
every class of bad input refused by label (zh-CN first) with nothing stored, claims and
cancellations stored once by the phone's claim id and allocated in the order received, the
waiting line promoted and told, the deadline by the server's clock, and each claimant's phone
holding the task and its own outcome, nobody else's."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user
from test_notices import Town, a_town

from server.domain.scope import CLAIMS_DB, RESIDENTS_DB
from server.sync.allocation import outcome_id
from server.web.keys import RESIDENT_INDEX

PREFIX = "/api/volunteer/tasks"
DB = "/couch/linli-resident"


def later(days: float) -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)).isoformat(
        timespec="seconds")


def draft(town: Town, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"title": "清扫楼道", "description": "周六上午一起打扫",
                            "place": "坊门小区 3幢", "community": town.c1, "starts_at": later(3),
                            "ends_at": later(3.1), "places": 1}
    body.update(changes)
    return body


async def ready_town(client: TestClient, city: City) -> Town:
    town = await a_town(city)
    index = client.app[RESIDENT_INDEX]
    for grid in (town.g1, town.g3):
        index.notice(f"grid-{grid}")
    for account in (town.ra, town.rb, town.rc, town.sup1, town.admin, town.worker1):
        await wait_for_user(client, account)
    for account in (town.ra, town.rb, town.rc):
        await eventually(lambda a=account: index.ids.households(a), what="the link indexed")
        # The grid's community comes from the directory's feed, which may trail the link's.
        await eventually(
            lambda a=account: all(p.community for p in index.ids.places_of(a).values()),
            what="the household's community indexed")
    return town


async def publish(client: TestClient, user: str, body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post(PREFIX, json=body, headers=basic(user))
    return resp.status, await resp.json()


async def a_task(client: TestClient, city: City, places: int) -> tuple[Town, str]:
    town = await ready_town(client, city)
    got, answer = await publish(client, town.sup1, draft(town, places=places))
    assert got == 201, answer
    return town, str(answer["task"]["_id"])


async def act(client: TestClient, user: str, task: str, claim_id: str,
              what: str = "claim", body: Any = None) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"{PREFIX}/{task}/{what}", headers=basic(user),
                             json={"claim_id": claim_id} if body is None else body)
    return resp.status, await resp.json()


async def phone(client: TestClient, user: str) -> dict[str, dict[str, Any]]:
    """What the resident's phone pulls: every document of their sync database."""
    resp = await client.get(f"{DB}/_all_docs", params={"include_docs": "true"},
                            headers=basic(user))
    assert resp.status == 200, await resp.text()
    return {row["id"]: row["doc"] for row in (await resp.json())["rows"]}


async def stored_ids(city: City, db: str, prefix: str) -> list[str]:
    return await city.run(lambda: [i for i in city.couch[db] if i.startswith(prefix)])


async def test_who_publishes_and_bad_tasks_store_nothing(client: TestClient,
                                                         city: City) -> None:
    town = await ready_town(client, city)
    before = await stored_ids(city, RESIDENTS_DB, "volunteer_task:")
    for user, status in ((town.ra, 403), (town.worker1, 403)):
        got, body = await publish(client, user, draft(town))
        assert got == status and set(body) == {"error", "reason"}, body
    resp = await client.post(PREFIX, json=draft(town))
    assert resp.status == 401
    cases: list[tuple[Any, str]] = [
        (draft(town, created_by=town.ra), "“发布人”由服务器填写"),
        (draft(town, status="withdrawn"), "“状态”由服务器填写"),
        (draft(town, places=0), "“名额”应为 1 到 1000 的整数"),
        (draft(town, places="1"), "名额"),
        (draft(town, title="\ud800"), "标题"),
        (draft(town, title={"a": [1]}), "“标题”应为文字"),
        (draft(town, starts_at=later(-1)), "结束时间"),
        (draft(town, deadline=later(4)), "报名截止"),
        (draft(town, community=town.c3), "“社区”不在您的管辖范围内"),  # another street's
        (draft(town, community="nowhere"), "“社区”不在您的管辖范围内"),  # and a made-up one
        (draft(town, x=1), "不允许的字段 x"),
        ([1, 2], ""), ("text", ""),
    ]
    for body, words in cases:
        got, answer = await publish(client, town.sup1, body)
        assert got == 400 and set(answer) == {"error", "reason"}, (body, answer)
        assert words in answer["reason"] and " / " in answer["reason"], (words, answer)
        assert "/places" not in answer["reason"]  # by label, never a JSON pointer
    assert await stored_ids(city, RESIDENTS_DB, "volunteer_task:") == before
    got, answer = await publish(client, town.sup1, draft(town))
    assert got == 201 and answer["task"]["created_by"] == town.sup1
    assert answer["task"]["deadline"] == answer["task"]["starts_at"]


async def test_claims_are_allocated_in_order_once_and_the_waiting_promoted(
        client: TestClient, city: City) -> None:
    town, task = await a_task(client, city, places=1)
    got, first = await act(client, town.ra, task, "ra-claim-1")
    assert got == 201 and first["status"] == "confirmed" and first["message"].startswith("成功")
    got, second = await act(client, town.rb, task, "rb-claim-1")
    assert got == 201 and (second["status"], second["line"]) == ("waiting", 1)
    assert second["message"].startswith("候补")
    # A retry is the same claim; another claim id of the same account changes nothing.
    got, again = await act(client, town.ra, task, "ra-claim-1")
    assert got == 200 and again["repeated"] is True and again["status"] == "confirmed"
    got, other = await act(client, town.ra, task, "ra-claim-2")
    assert got == 201 and other["status"] == "confirmed"
    # Another community's resident finds no such task, as for a made-up one.
    for made_up in (task, "volunteer_task:nothere", "notice:x", "volunteer_task:%2e%2e"):
        got, missing = await act(client, town.rc, made_up, "rc-claim-1")
        assert got == 404 and "没有这个任务" in missing["reason"], (made_up, missing)
    # A claim for another, forged fields, bad ids: refused by label, nothing stored.
    claims_before = await stored_ids(city, CLAIMS_DB, "claim:")
    for body, words in (({"claim_id": "rb-claim-9", "claimant": town.rb}, "“报名人”由服务器填写"),
                        ({"claim_id": "rb-claim-9", "created_by": town.rb}, "由服务器填写"),
                        ({"claim_id": "short"}, "报名编号"),
                        ({"claim_id": "x/../../y-long"}, "报名编号"),
                        ({"claim_id": ["a" * 10]}, "报名编号"),
                        ({"claim_id": "a\ud800bcdefgh"}, "报名编号"), ([], "")):
        got, answer = await act(client, town.ra, task, "", body=body)
        assert got == 400 and words in answer["reason"], (body, answer)
    got, answer = await act(client, town.sup1, task, "sup-claim-1")
    assert got == 403
    assert await stored_ids(city, CLAIMS_DB, "claim:") == claims_before
    # ra cancels: rb is promoted, and told on their phone.
    got, cancelled = await act(client, town.ra, task, "ra-cancel-1", "cancel")
    assert got == 201 and cancelled["status"] == "cancelled"
    held = await eventually(lambda: phone_outcome(client, town.rb, task), what="rb told")
    assert (held["status"], held["promoted"]) == ("confirmed", True)
    theirs = await phone(client, town.rb)
    assert task in theirs  # the task is on the phone too
    assert outcome_id(task, town.ra) not in theirs  # and nobody else's outcome
    mine = await phone(client, town.ra)
    assert mine[outcome_id(task, town.ra)]["status"] == "cancelled"
    resp = await client.get(f"{DB}/{outcome_id(task, town.rb)}", headers=basic(town.ra))
    assert resp.status == 404
    # The organiser's view: who stands where.
    resp = await client.get(f"{PREFIX}/{task}/allocation", headers=basic(town.sup1))
    view = await resp.json()
    assert view["counts"] == {"confirmed": 1, "cancelled": 1}
    assert [c["claimant"] for c in view["claimants"]] == [town.rb, town.ra]
    resp = await client.get(f"{PREFIX}/{task}/allocation", headers=basic(town.ra))
    assert resp.status == 403
    resp = await client.get(PREFIX, headers=basic(town.sup1))
    listed = {t["_id"]: t for t in (await resp.json())["tasks"]}
    assert listed[task]["counts"] == {"confirmed": 1, "cancelled": 1}


async def phone_outcome(client: TestClient, user: str, task: str) -> dict[str, Any] | None:
    doc = (await phone(client, user)).get(outcome_id(task, user))
    return doc if doc is not None and doc.get("promoted") else None


async def test_the_deadline_is_the_servers_and_a_retry_after_it_still_answers(
        client: TestClient, city: City) -> None:
    town, task = await a_task(client, city, places=2)
    got, first = await act(client, town.ra, task, "ra-before-close")
    assert first["status"] == "confirmed"

    def close() -> None:  # the deadline passes (written straight to the store)
        doc = city.couch[RESIDENTS_DB][task]
        doc["deadline"] = later(-0.01)
        city.couch[RESIDENTS_DB].save(doc)

    await city.run(close)
    rev = await city.run(lambda: city.couch[RESIDENTS_DB][task]["_rev"])
    index = client.app[RESIDENT_INDEX]
    await eventually(lambda: index.notices[task][1] == rev, what="the change seen")
    got, late = await act(client, town.rb, task, "rb-after-close")
    assert got == 403 and "报名截止" in late["reason"] and "claims are closed" in late["reason"]
    got, again = await act(client, town.ra, task, "ra-before-close")  # a retry still answers
    assert got == 200 and again["status"] == "confirmed"


async def test_racing_duplicates_of_one_claim_store_one(client: TestClient, city: City) -> None:
    town, task = await a_task(client, city, places=1)
    results = await asyncio.gather(*(act(client, who, task, f"{who[:20]}-same")
                                     for who in [town.ra, town.rb] * 10))
    assert sorted(code for code, _ in results).count(201) == 2  # one per claimant
    stored = await stored_ids(city, CLAIMS_DB, "claim:" + task.replace(":", "."))
    assert len(stored) == 2
    statuses = {body["status"] for code, body in results if code == 201}
    assert statuses == {"confirmed", "waiting"}
    docs = await city.run(lambda: {i: dict(city.couch[RESIDENTS_DB][i]) for i in (
        outcome_id(task, town.ra), outcome_id(task, town.rb))})
    assert sorted(d["status"] for d in docs.values()) == ["confirmed", "waiting"]
    assert json.dumps(docs, ensure_ascii=False).count("confirmed") == 1


@pytest.mark.parametrize("what", ["claim", "cancel"])
async def test_anonymous_and_staff_cannot_claim(client: TestClient, city: City,
                                                what: str) -> None:
    town, task = await a_task(client, city, places=1)
    resp = await client.post(f"{PREFIX}/{task}/{what}", json={"claim_id": "abcdefgh"})
    assert resp.status == 401
    for user in (town.sup1, town.worker1, town.admin):
        got, body = await act(client, user, task, "abcdefgh", what)
        assert got == 403 and "只有居民账号" in body["reason"], (user, body)


async def test_the_organiser_approves_and_a_rejection_promotes(client: TestClient,
                                                               city: City) -> None:
    town = await ready_town(client, city)
    got, answer = await publish(client, town.sup1, draft(town, places=1, needs_approval=True))
    task = answer["task"]["_id"]
    _, first = await act(client, town.ra, task, "ra-claim-1")
    assert first["status"] == "awaiting_approval" and first["message"].startswith("已占名额")
    _, second = await act(client, town.rb, task, "rb-claim-1")
    assert (second["status"], second["line"]) == ("waiting", 1)
    decide = f"{PREFIX}/{task}/decide"

    async def decision(user: str, body: Any) -> tuple[int, dict[str, Any]]:
        resp = await client.post(decide, json=body, headers=basic(user))
        return resp.status, await resp.json()

    for user, status in ((town.ra, 403), (town.worker1, 403), (town.street_sup, 404)):
        got, _ = await decision(user, {"claimant": town.ra, "approve": True,
                                       "claim_id": "decision-1"})
        assert got == status, user
    for body, words in (({"claimant": town.ra, "approve": "yes", "claim_id": "decision-1"},
                         "“通过”应为是或否"),
                        ({"claimant": town.ra, "approve": True, "claim_id": "x"}, "报名编号"),
                        ({"claimant": town.rc, "approve": True, "claim_id": "decision-1"},
                         "没有报名此任务"),
                        ({"claimant": town.ra, "approve": True}, "报名编号"),
                        ({"claimant": town.ra, "approve": True, "claim_id": "decision-1",
                          "status": "confirmed"}, "不允许的字段 status")):
        got, answer = await decision(town.sup1, body)
        assert got == 400 and words in answer["reason"], (body, answer)
    got, rejected = await decision(town.sup1, {"claimant": town.ra, "approve": False,
                                               "claim_id": "decision-1"})
    assert got == 201 and rejected["status"] == "rejected"
    got, again = await decision(town.sup1, {"claimant": town.ra, "approve": False,
                                            "claim_id": "decision-1"})
    assert got == 200 and again["repeated"]
    got, approved = await decision(town.sup1, {"claimant": town.rb, "approve": True,
                                               "claim_id": "decision-2"})
    assert got == 201 and approved["status"] == "confirmed"  # promoted, then approved
    held = await eventually(lambda: phone_outcome(client, town.rb, task), what="rb told")
    assert held["status"] == "confirmed"
    # A task without approval takes no decisions.
    _, plain = await publish(client, town.sup1, draft(town))
    got, answer = await decision(town.sup1, {"claimant": town.ra, "approve": True,
                                             "claim_id": "decision-3"})
    assert got == 400 and "没有报名此任务" in answer["reason"]  # rejected: no claim stands
    resp = await client.post(f"{PREFIX}/{plain['task']['_id']}/decide",
                             headers=basic(town.sup1), json={"claimant": town.ra, "approve": True,
                                   "claim_id": "decision-4"})
    assert resp.status == 400 and "此任务无须审核" in (await resp.json())["reason"]


async def test_a_task_open_to_volunteers_takes_registered_volunteers(client: TestClient,
                                                                     city: City) -> None:
    town = await ready_town(client, city)
    _, answer = await publish(client, town.sup1, draft(town, open_to="volunteers"))
    task = answer["task"]["_id"]
    got, refused = await act(client, town.ra, task, "ra-claim-1")
    assert got == 403 and "此任务不对您开放报名" in refused["reason"]
    for body in ({"community": town.c2}, {"created_by": town.rb}, [1]):
        resp = await client.post("/api/volunteer/register", json=body, headers=basic(town.ra))
        assert resp.status == 400, body
    resp = await client.post("/api/volunteer/register", headers=basic(town.worker1))
    assert resp.status == 403
    resp = await client.post("/api/volunteer/register", headers=basic(town.ra))
    assert resp.status == 201 and (await resp.json())["volunteer"]["community"] == town.c1
    resp = await client.post("/api/volunteer/register", json={}, headers=basic(town.ra))
    assert resp.status == 200 and (await resp.json())["repeated"]
    index = client.app[RESIDENT_INDEX]
    await eventually(lambda: f"volunteer:{town.ra}" in index.allowed(town.ra)["residents"],
                     what="the registration indexed")
    got, claimed = await act(client, town.ra, task, "ra-claim-2")
    assert got == 201 and claimed["status"] == "confirmed"
    got, _ = await act(client, town.rb, task, "rb-claim-1")  # rb never registered
    assert got == 403
