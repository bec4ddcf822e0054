"""The grid worker's side of residents (issue 15, items 2 and 3), through the gateway as a
phone's sync writes it and through the resident's routes: the sign-up queue reaches the
worker's grid, a decision at the door makes the link once (two phones deciding offline end with
the first the server received), codes are made and revoked but never forged as used, a removal
is logged and ends the resident's access, a correction goes to the worker and an accepted one
changes the record through the gateway's checks, and the full ID number is shown only to the
person themself after their password. The real app on the real embedded store."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, a_later_millisecond, basic, eventually, wait_for_user
from test_residents_signup import (
    PASSWORD,
    Community,
    a_code,
    a_community,
    account_of,
    joined,
    me,
    new_phone,
    signup_body,
)

from server.domain.scope import grid_db
from server.sync.door_links import DoorLinks
from server.web.keys import DOOR_LINKS, RECEIPTS, RESIDENTS, RESOLVER

ID_NUMBER = "11010519491231002X"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


async def waiting(client: TestClient, city: City, caplog: pytest.LogCaptureFixture,
                  place: Community, name: str = "赵六") -> tuple[str, str]:
    """A resident whose sign-up matched nothing: (phone, account), queued in the grid."""
    phone = new_phone()
    status, _ = await joined(client, caplog, signup_body(place, phone, name))
    assert status == 200
    return phone, await account_of(client, phone)


async def put(client: TestClient, grid: str, user: str, doc: dict[str, Any]) -> tuple[int, Any]:
    resp = await client.put(f"/couch/{grid_db(grid)}/{doc['_id']}", json=doc,
                            headers=basic(user))
    return resp.status, await resp.json()


def decided(signup: dict[str, Any], worker: str, **fields: Any) -> dict[str, Any]:
    return {**signup, "status": "activated", "role": "tenant", "decided_by": worker,
            "decided_at": now(), **fields}


async def link_of(city: City, place: Community, account: str, n: int) -> Any:
    return await city.get(place.grid, f"resident:{account}-{place.grid}-{n:04d}")


async def settled(client: TestClient) -> None:
    await eventually(client.app[DOOR_LINKS].done, what="door links")


# -- the queue and the decision at the door ------------------------------------------------------

async def test_the_queue_reaches_the_workers_grid_and_no_other(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    other = await a_community(client, city)
    _, account = await waiting(client, city, caplog, place)
    resp = await client.get(f"/couch/{grid_db(place.grid)}/_all_docs",
                            params={"include_docs": "true", "startkey": '"signup:"',
                                    "endkey": '"signup:\ufff0"'}, headers=basic(place.worker))
    docs = [row["doc"] for row in (await resp.json())["rows"]]
    assert [(d["account"], d["name"], d["address"]) for d in docs] == [
        (account, "赵六", "9幢9单元909")]
    resp = await client.get(f"/couch/{grid_db(place.grid)}/signup:{account}",
                            headers=basic(other.worker))
    assert resp.status in (401, 403, 404) and "赵六" not in await resp.text()


async def test_confirmed_at_the_door_the_resident_is_linked_once(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    phone, account = await waiting(client, city, caplog, place)
    signup = await city.get(place.grid, f"signup:{account}")
    with caplog.at_level(logging.INFO, logger="linli.audit"):
        status, body = await put(client, place.grid, place.worker, decided(
            signup, place.worker, household=place.household(2)))
        assert status == 201, body
        link = await eventually(lambda: link_of(city, place, account, 2), what="the link")
        # The act is logged once the link is written and the account told where it is.
        await eventually(lambda: any(f"activated {account}" in r.getMessage()
                                     for r in caplog.records), what="the audit")
    assert (link["status"], link["activation"], link["role"], link["signup"]) == (
        "active", "door_to_door", "tenant", f"signup:{account}")
    found = await me(client, phone)
    assert found["state"] == "active" and found["signup"] == "activated"
    assert [h["household"] for h in found["households"]] == [place.household(2)]
    # The links are the server's: a second pass, or another server process, writes no other.
    await client.app[DOOR_LINKS].settle(place.grid)
    assert (await link_of(city, place, account, 2))["_rev"] == link["_rev"]


async def test_a_decision_stored_while_no_server_ran_is_linked_after_a_start(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """Written straight to the store (another process, a restore): nobody noticed it, so the
    pass over every grid after a start writes its link."""
    place = await a_community(client, city)
    _, account = await waiting(client, city, caplog, place)
    signup = await city.get(place.grid, f"signup:{account}")
    await city.save(place.grid, decided(signup, place.worker, household=place.household(1)))
    await settled(client)
    assert await link_of(city, place, account, 1) is None
    links = DoorLinks(client.app[RESIDENTS], [place.grid], start_sweep_seconds=0)
    task = asyncio.create_task(links.run())
    try:
        link = await eventually(lambda: link_of(city, place, account, 1), what="the link")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert (link["activation"], link["signup"]) == ("door_to_door", f"signup:{account}")


async def test_declined_with_a_reason_links_nothing(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    phone, account = await waiting(client, city, caplog, place)
    signup = await city.get(place.grid, f"signup:{account}")
    refused = {**signup, "status": "declined", "decided_by": place.worker, "decided_at": now()}
    status, body = await put(client, place.grid, place.worker, refused)
    assert status == 403 and "未通过原因" in body["reason"]
    status, body = await put(client, place.grid, place.worker,
                             {**refused, "decline_reason": "查无此人 / nobody of that name"})
    assert status == 201, body
    client.app[DOOR_LINKS].notice(place.grid)
    await settled(client)
    found = await me(client, phone)
    assert (found["state"], found["signup"], found["households"]) == ("pending", "declined", [])


async def test_a_decision_is_refused_for_every_kind_of_bad_input(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    other = await a_community(client, city)
    _, account = await waiting(client, city, caplog, place)
    signup = await city.get(place.grid, f"signup:{account}")
    good = decided(signup, place.worker, household=place.household(1))
    cases = {
        "role wrong type": ({**good, "role": 5}, "身份"),
        "role missing": ({k: v for k, v in good.items() if k != "role"}, "身份"),
        "household wrong type": ({**good, "household": 123}, "住户"),
        "other grid's household": ({**good, "household": other.household(1)}, "不是本网格的住户"),
        "made-up household": ({**good, "household": f"household:{place.grid}-9999"},
                              "不是本网格的住户"),
        "signed for another": ({**good, "decided_by": other.worker}, "处理人"),
        "phone changed": ({**good, "phone": "13900009999"}, "不能修改"),
        "name changed": ({**good, "name": "王伟"}, "不能修改"),
        "account moved": ({**good, "account": "rdeadbeef0000"}, "不能修改"),
        "match rewritten": ({**good, "match": {"status": "matched"}}, "不能修改"),
        "author forged": ({**good, "created_by": place.worker}, "created_by"),
        "reason on activation": ({**good, "decline_reason": "x"}, "未通过原因"),
        "unknown status": ({**good, "status": "approved"}, "状态"),
        "extra field": ({**good, "household_key": "x"}, "household_key"),
        "control character": ({**good, "decline_reason": "a\u0000b", "status": "declined"},
                              ""),
    }
    for what, (doc, words) in cases.items():
        status, body = await put(client, place.grid, place.worker, doc)
        assert status in (400, 403), (what, body)
        assert words in body["reason"], (what, body)
    # A new sign-up from a phone, or one for another grid's database: never.
    forged = {**signup, "_id": "signup:rforged000000", "account": "rforged000000",
              "created_by": place.worker}
    forged.pop("_rev")
    status, body = await put(client, place.grid, place.worker, forged)
    assert status == 403 and "居民提交" in body["reason"]
    status, _ = await put(client, other.grid, other.worker, {**good, "grid": other.grid})
    assert status == 403
    # The worker of another grid may not decide it.
    status, _ = await put(client, place.grid, other.worker, {
        **good, "decided_by": other.worker})
    assert status in (401, 403, 404)
    assert (await city.get(place.grid, f"signup:{account}"))["status"] == "pending"
    # Decided once; a second decision (a replay with a new revision) changes nothing.
    status, body = await put(client, place.grid, place.worker, good)
    assert status == 201, body
    again = {**good, "_rev": body["rev"], "household": place.household(2)}
    status, body = await put(client, place.grid, place.worker, again)
    assert status == 403 and "已处理" in body["reason"]


def rev(generation: int, tag: str) -> str:
    return f"{generation}-{hashlib.md5(tag.encode()).hexdigest()}"


def replicated(doc: dict[str, Any], new: str) -> dict[str, Any]:
    """`doc` as a phone's offline edit of it arrives: with its history, new_edits=false."""
    old = doc["_rev"]
    return {**doc, "_rev": new, "_revisions": {"start": int(new.split("-")[0]), "ids": [
        new.split("-", 1)[1], old.split("-", 1)[1]]}}


async def push(client: TestClient, grid: str, user: str, docs: list[dict[str, Any]]) -> Any:
    resp = await client.post(f"/couch/{grid_db(grid)}/_bulk_docs",
                             json={"docs": docs, "new_edits": False}, headers=basic(user))
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_two_phones_deciding_offline_end_with_the_first_received(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """Worker a confirms household 2 as tenant, worker b household 1 as owner, both offline
    from the pending sign-up; a's reaches the server first. Both are stored (each phone's
    revision is its own), the resolver keeps a's whole, the link is a's only, and the trail
    tells both phones why."""
    place = await a_community(client, city)
    b = await city.user(grids=[place.grid])
    await wait_for_user(client, b)
    _, account = await waiting(client, city, caplog, place)
    signup = await city.get(place.grid, f"signup:{account}")
    first = replicated(decided(signup, place.worker, household=place.household(2)),
                       rev(2, "a" + account))
    second = replicated(decided(signup, b, household=place.household(1), role="owner"),
                        rev(2, "b" + account))
    assert await push(client, place.grid, place.worker, [first]) == []
    await a_later_millisecond()
    assert await push(client, place.grid, b, [second]) == []
    await client.app[RECEIPTS].flush()
    await client.app[RESOLVER].process_grid(place.grid)
    head = await city.get(place.grid, f"signup:{account}", conflicts=True)
    assert "_conflicts" not in head
    assert (head["household"], head["decided_by"], head["role"]) == (
        place.household(2), place.worker, "tenant")
    await settled(client)
    assert await link_of(city, place, account, 2) is not None
    assert await link_of(city, place, account, 1) is None
    # b's phone sends its decision again (a replay after a lost answer): nothing changes.
    assert await push(client, place.grid, b, [second]) == []
    await client.app[RECEIPTS].flush()
    await client.app[RESOLVER].process_grid(place.grid)
    await settled(client)
    again = await city.get(place.grid, f"signup:{account}", conflicts=True)
    assert "_conflicts" not in again and again["household"] == place.household(2)
    assert await link_of(city, place, account, 1) is None
    trail = await city.run(lambda: [row.doc for row in city.db(place.grid).view(
        "_all_docs", startkey=f"resolution:signup:{account}:",
        endkey=f"resolution:signup:{account}:\ufff0", include_docs=True)])
    assert trail and {f["rule"] for f in trail[0]["fields"]} == {"first_received"}


# -- activation codes ----------------------------------------------------------------------------

async def test_codes_are_made_and_revoked_by_the_worker_never_spent(
        client: TestClient, city: City) -> None:
    place = await a_community(client, city)
    other = await a_community(client, city)
    code = a_code(place, 2, "KMNPQRST", age=datetime.timedelta(0))
    for what, doc, words in [
            ("used by a phone", {**code, "used_by": place.worker, "used_at": now()}, "使用人"),
            ("other grid", {**code, "household": other.household(1)}, "不是本网格的住户"),
            ("from the future", {**code, "created_at": "2099-01-01T00:00:00+00:00"}, "生成时间"),
            ("born revoked", {**code, "status": "revoked"}, "状态"),
            ("look-alike", {**code, "code": "KMNPQRS0"}, "激活码"),
            ("wrong type", {**code, "code": 12345678}, "激活码")]:
        status, body = await put(client, place.grid, place.worker, doc)
        assert status in (400, 403) and words in body["reason"], (what, body)
    status, body = await put(client, place.grid, place.worker, code)
    assert status == 201, body
    stored = {**code, "_rev": body["rev"]}
    status, body = await put(client, place.grid, place.worker, {**stored, "code": "KMNPQRSU"})
    assert status == 403 and "只能作废" in body["reason"]
    status, body = await put(client, place.grid, place.worker, {**stored, "status": "revoked"})
    assert status == 201, body
    status, body = await put(client, place.grid, place.worker,
                             {**stored, "_rev": body["rev"], "status": "active"})
    assert status == 403 and "已使用或已作废" in body["reason"]


async def test_a_code_redeemed_twice_at_once_is_spent_once(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    one, _ = await waiting(client, city, caplog, place)
    two, _ = await waiting(client, city, caplog, place, "钱七")
    status, body = await put(client, place.grid, place.worker,
                             a_code(place, 2, "WXYZ2345", age=datetime.timedelta(0)))
    assert status == 201, body
    replies = await asyncio.gather(*(client.post(
        "/api/residents/activate", json={"code": "WXYZ-2345"}, headers=basic(phone, PASSWORD))
        for phone in (one, two)))
    statuses = sorted(r.status for r in replies)
    assert statuses in ([200, 400], [200, 409]), statuses  # found used, or lost the race
    loser = next(r for r in replies if r.status != 200)
    assert "已经使用" in (await loser.json())["reason"]
    states = [(await me(client, phone))["state"] for phone in (one, two)]
    assert sorted(states) == ["active", "pending"]


async def test_moved_out_and_back_a_new_code_links_again(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """Removed from household 2, the resident returns: a new code makes a new link beside the
    removed one, which stays on record; a code for a household already theirs is not spent."""
    place = await a_community(client, city)
    phone, account = await waiting(client, city, caplog, place)
    for n, code in enumerate(("ABCD2345", "EFGH6789"), start=1):
        status, body = await put(client, place.grid, place.worker,
                                 a_code(place, 2, code, age=datetime.timedelta(0)))
        assert status == 201, body
        resp = await client.post("/api/residents/activate", json={"code": code},
                                 headers=basic(phone, PASSWORD))
        assert resp.status == 200, await resp.text()
        link = await city.get(place.grid, f"resident:{account}-{place.grid}-0002"
                              + ("" if n == 1 else f"-{n}"))
        assert link["status"] == "active"
        status, body = await put(client, place.grid, place.worker, {
            **link, "status": "removed", "removed_at": now(), "removed_reason": "已迁出"})
        assert status == 201, body
    assert (await me(client, phone))["households"] == []
    # Back once more, then a second code for the same household: it stays unspent.
    for code in ("JKMN2345", "PQRS6789"):
        status, body = await put(client, place.grid, place.worker,
                                 a_code(place, 2, code, age=datetime.timedelta(0)))
        resp = await client.post("/api/residents/activate", json={"code": code},
                                 headers=basic(phone, PASSWORD))
        assert resp.status == 200, await resp.text()
    spare = await city.get(place.grid, f"activation_code:{place.grid}-PQRS6789")
    assert "used_by" not in spare
    shown = (await me(client, phone))["households"]
    assert [(h["household"], h["status"]) for h in shown] == [(place.household(2), "active")]
    removed = await city.get(place.grid, f"resident:{account}-{place.grid}-0002")
    assert removed["status"] == "removed"  # the act stays on record


# -- removing a resident -------------------------------------------------------------------------

async def purged(client: TestClient, phone: str, held: list[str], expected: list[str]) -> bool:
    """Whether the resident's phone, holding `held`, is told to purge `expected`."""
    resp = await client.post("/api/residents/purge", json={"held": held},
                             headers=basic(phone, PASSWORD))
    assert resp.status == 200, await resp.text()
    return bool((await resp.json())["purge"] == expected)


async def test_a_removal_is_the_workers_logged_and_ends_the_link(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    phone, account = await waiting(client, city, caplog, place)
    signup = await city.get(place.grid, f"signup:{account}")
    status, _ = await put(client, place.grid, place.worker,
                          decided(signup, place.worker, household=place.household(2)))
    assert status == 201
    link = await eventually(lambda: link_of(city, place, account, 2), what="the link")
    # Linked: the household is the phone's to hold (nothing to purge) once the index has it.
    await eventually(lambda: purged(client, phone, [place.household(2)], []),
                     what="the household held")
    removal = {**link, "status": "removed", "removed_at": now(), "removed_reason": "已迁出"}
    for what, doc, words in [
            ("no reason", {k: v for k, v in removal.items() if k != "removed_reason"}, "移除原因"),
            ("blank reason", {**removal, "removed_reason": "  "}, "移除原因"),
            ("moved to another household", {**removal, "household": place.household(1)},
             "只能移除"),
            ("role changed", {**link, "role": "owner"}, "只能移除"),
            ("account swapped", {**removal, "account": "rdeadbeef0000"}, "只能移除")]:
        status, body = await put(client, place.grid, place.worker, doc)
        assert status in (400, 403) and words in body["reason"], (what, body)
    made = {**link, "_id": f"resident:{account}-{place.grid}-0001",
            "household": place.household(1), "created_by": place.worker}
    made.pop("_rev")
    status, body = await put(client, place.grid, place.worker, made)
    assert status == 403 and "由系统建立" in body["reason"]
    # A supervisor of the community removes as a worker does, and the act names them.
    boss = await city.user("supervisor", communities=[place.code])
    await wait_for_user(client, boss)
    with caplog.at_level(logging.INFO, logger="linli.audit"):
        status, body = await put(client, place.grid, boss, removal)
    assert status == 201, body
    assert any(f"{boss} removed resident {account}" in r.getMessage() for r in caplog.records)
    assert (await me(client, phone))["households"] == []
    # The resident's phone is told to drop the household (the sync index follows the link).
    held = [place.household(2)]
    await eventually(lambda: purged(client, phone, held, held), what="the purge list")
    status, body = await put(client, place.grid, place.worker,
                             {**removal, "_rev": body["rev"], "status": "active"})
    assert status == 403 and "已移除" in body["reason"]
    # Nor is the act deleted, by a tombstone in a batch or a DELETE, by worker or supervisor.
    stored = await link_of(city, place, account, 2)
    for user in (place.worker, boss):
        resp = await client.post(f"/couch/{grid_db(place.grid)}/_bulk_docs", json={"docs": [
            {"_id": stored["_id"], "_rev": stored["_rev"], "_deleted": True}]},
            headers=basic(user))
        [result] = await resp.json()
        # A worker deletes only their own records anyway; a supervisor any but these.
        words = "不能删除" if user == boss else "删除"
        assert result["error"] == "forbidden" and words in result["reason"], result
        resp = await client.delete(f"/couch/{grid_db(place.grid)}/{stored['_id']}",
                                   params={"rev": stored["_rev"]}, headers=basic(user))
        assert resp.status == 403, await resp.text()
    assert (await link_of(city, place, account, 2))["_rev"] == stored["_rev"]


# -- corrections ---------------------------------------------------------------------------------

async def active_resident(client: TestClient, city: City, caplog: pytest.LogCaptureFixture,
                          place: Community) -> tuple[str, str]:
    """王芳, family member of household 1, activated at once; her record has an ID number."""
    person = await city.get(place.grid, f"person:{place.grid}-1")
    await city.save(place.grid, {**person, "id_number": ID_NUMBER})
    phone = place.phones["王芳"]  # her own phone, on record: activated at once
    status, _ = await joined(client, caplog, signup_body(place, phone, "王芳", "3幢2单元301"))
    assert status == 200
    assert (await me(client, phone))["state"] == "active"
    return phone, await account_of(client, phone)


async def ask(client: TestClient, phone: str, body: Any) -> tuple[int, Any]:
    resp = await client.post("/api/residents/corrections", json=body,
                             headers=basic(phone, PASSWORD))
    return resp.status, await resp.json()


async def test_corrections_sent_all_at_once_keep_to_five_open(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """Twenty at once: each numbered by what was read, so two that read alike take one id
    and the store writes one of them; never more than five open, the rest told to retry or
    to wait, and each stored request is whole."""
    place = await a_community(client, city)
    phone, account = await active_resident(client, city, caplog, place)
    body = {"changes": [{"record": place.household(1), "field": "/head_name",
                         "proposed": "王伟强"}]}
    answers = await asyncio.gather(*(ask(client, phone, body) for _ in range(20)))
    statuses = [status for status, _ in answers]
    assert 1 <= statuses.count(201) <= 5 and set(statuses) <= {201, 409, 429}, statuses
    stored = await city.run(lambda: [row.doc for row in city.db(place.grid).view(
        "_all_docs", startkey=f"correction_request:{account}-",
        endkey=f"correction_request:{account}-\ufff0", include_docs=True)])
    assert len(stored) == statuses.count(201)
    assert all(doc["status"] == "open" and doc["created_by"] == account for doc in stored)
    while statuses.count(201) < 5:  # one at a time, the rest are taken until five are open
        status, _ = await ask(client, phone, body)
        statuses.append(status)
    assert (await ask(client, phone, body))[0] == 429


async def test_a_correction_goes_to_the_worker_and_an_accepted_one_changes_the_record(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    phone, account = await active_resident(client, city, caplog, place)
    household = place.household(1)
    status, body = await ask(client, phone, {"changes": [
        {"record": household, "field": "/head_name", "proposed": "王伟强"}],
        "note": "户主改名了"})
    assert status == 201, body
    request_id = body["id"]
    resp = await client.get(f"/couch/{grid_db(place.grid)}/{request_id}",
                            headers=basic(place.worker))
    asked = await resp.json()
    assert (asked["created_by"], asked["household"], asked["status"]) == (
        account, household, "open")
    # The worker accepts: the household edited as any edit is, the request answered.
    record = await city.get(place.grid, household)
    edited = {**record, "head_name": "王伟强", "registry": {"source": "grid_survey"},
              "area_m2": 88.5}
    status, body = await put(client, place.grid, place.worker, {**edited, "head_name": ""})
    assert status in (400, 403)  # the same checks as any edit of the record
    status, body = await put(client, place.grid, place.worker, edited)
    assert status == 201, body
    answer = {**asked, "status": "accepted", "answer": "已更正", "answered_by": place.worker,
              "answered_at": now()}
    for what, doc, words in [
            ("answered for another", {**answer, "answered_by": "someone"}, "答复人"),
            ("changes rewritten", {**answer, "changes": [
                {"record": household, "field": "/phone", "proposed": "1"}]}, "更正内容"),
            ("no answer", {k: v for k, v in answer.items() if k != "answer"}, "答复")]:
        status, body = await put(client, place.grid, place.worker, doc)
        assert status in (400, 403) and words in body["reason"], (what, body)
    status, body = await put(client, place.grid, place.worker, answer)
    assert status == 201, body
    status, body = await put(client, place.grid, place.worker,
                             {**answer, "_rev": body["rev"], "status": "declined"})
    assert status == 403
    shown = await me(client, phone)
    assert shown["households"][0]["record"]["head_name"] == "王伟强"


async def test_a_correction_is_refused_for_every_kind_of_bad_input(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    phone, _ = await active_resident(client, city, caplog, place)
    other = await a_community(client, city)
    household = place.household(1)

    def change(**fields: Any) -> dict[str, Any]:
        return {"changes": [{"record": household, "field": "/head_name", "proposed": "王伟",
                             **fields}]}

    neighbour = {"changes": [{"record": place.household(2), "field": "/head_name",
                              "proposed": "x"}]}
    made_up = {"changes": [{"record": f"household:{place.grid}-9999", "field": "/head_name",
                            "proposed": "x"}]}
    cases: dict[str, tuple[Any, int, str]] = {
        "not an object": ([1, 2], 400, ""),
        "changes not a list": ({"changes": "x"}, 400, "更正内容"),
        "no changes": ({"changes": []}, 400, "更正内容"),
        "too many": ({"changes": change()["changes"] * 11}, 400, "更正内容"),
        "nested": ({"changes": [[change()["changes"][0]]]}, 400, "更正内容"),
        "neighbour's household": (neighbour, 400, "不是您住户的记录"),
        "made-up household": (made_up, 400, "不是您住户的记录"),
        "other grid": ({"changes": [{"record": other.household(1), "field": "/head_name",
                                     "proposed": "x"}]}, 400, "不是您住户的记录"),
        "bookkeeping field": (change(field="/remarks"), 400, "不能通过更正申请修改"),
        "status field": (change(field="/status"), 400, "不能通过更正申请修改"),
        "path field": (change(field="../../_security"), 400, "不能通过更正申请修改"),
        "number proposed": (change(proposed=5), 400, "应改为"),
        "control character": (change(proposed="王\u0007伟"), 400, "应改为"),
        "bidi": (change(proposed="\u202e伟王"), 400, "应改为"),
        "too long": (change(proposed="王" * 201), 400, "应改为"),
        "invalid for the record": ({"changes": [{"record": f"person:{place.grid}-1",
                                                 "field": "/birth_year",
                                                 "proposed": "公元前"}]}, 400, "应改为"),
        "forged author": ({**change(), "created_by": "someone"}, 400, "created_by"),
        "forged status": ({**change(), "status": "accepted"}, 400, "status"),
        "forged household": ({**change(), "household": place.household(2)}, 400, "住户"),
        "extra change key": (change(grid=other.grid), 400, "更正内容"),
    }
    for what, (body, status, words) in cases.items():
        got, answer = await ask(client, phone, body)
        assert got == status and words in answer["reason"], (what, got, answer)
    # A lone surrogate, as raw JSON: refused by its label, nothing stored.
    raw = '{"changes":[{"record":"' + household + '","field":"/head_name","proposed":"\\ud800"}]}'
    resp = await client.post("/api/residents/corrections", data=raw.encode(), headers={
        **basic(phone, PASSWORD), "Content-Type": "application/json"})
    assert resp.status == 400
    stored = await city.run(lambda: [r.id for r in city.db(place.grid).view(
        "_all_docs", startkey="correction_request:", endkey="correction_request:\ufff0")])
    assert stored == []
    # Five open requests at most; a worker and a resident not yet active cannot ask.
    for _ in range(5):
        got, _ = await ask(client, phone, change())
        assert got == 201
    got, answer = await ask(client, phone, change())
    assert got == 429 and "待处理" in answer["reason"]
    resp = await client.post("/api/residents/corrections", json=change(),
                             headers=basic(place.worker))
    assert resp.status == 403
    pending, _ = await waiting(client, city, caplog, place)
    got, answer = await ask(client, pending, change())
    assert got == 409 and "尚未激活" in answer["reason"]


# -- the full ID number --------------------------------------------------------------------------

async def test_the_full_id_number_only_to_the_person_after_the_password(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    phone, account = await active_resident(client, city, caplog, place)
    shown = await me(client, phone)
    assert ID_NUMBER not in str(shown)  # masked on every other path
    url = "/api/residents/id-number"
    resp = await client.post(url, json={"password": "wrong-password"},
                             headers=basic(phone, PASSWORD))
    assert resp.status == 401
    for body in ({}, {"password": 5}, {"password": PASSWORD, "person": "person:x"}):
        resp = await client.post(url, json=body, headers=basic(phone, PASSWORD))
        assert resp.status == 400, body
    with caplog.at_level(logging.INFO, logger="linli.audit"):
        resp = await client.post(url, json={"password": PASSWORD}, headers=basic(phone, PASSWORD))
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    assert (await resp.json()) == {"person": f"person:{place.grid}-1", "name": "王芳",
                                   "id_number": ID_NUMBER}
    assert any(f"resident {account} saw the full ID number" in r.getMessage()
               for r in caplog.records)
    # A resident whose name is no member's (activated by code) sees no one's number; nor one
    # who typed her name on another phone and was let in by a code: a housemate, or anyone
    # given a code at the door, could have typed it.
    for name, code in (("钱七", "HJKMNPQR"), ("王芳", "HJKMNPQS")):
        let_in, _ = await waiting(client, city, caplog, place, name)
        status, body = await put(client, place.grid, place.worker,
                                 a_code(place, 1, code, age=datetime.timedelta(0)))
        assert status == 201, body
        resp = await client.post("/api/residents/activate", json={"code": code},
                                 headers=basic(let_in, PASSWORD))
        assert resp.status == 200
        resp = await client.post(url, json={"password": PASSWORD},
                                 headers=basic(let_in, PASSWORD))
        assert resp.status == 404 and ID_NUMBER not in await resp.text(), name
    resp = await client.post(url, json={"password": PASSWORD}, headers=basic(place.worker))
    assert resp.status == 403
