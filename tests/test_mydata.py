"""My data (issue 15, item 5) through the real app on the real embedded store: two residents of
one building each see and download their own household and nothing of the other's; their data
requests are made once, at most five a day, refused by label when wrong, answered by the
supervisor of their community (logged), and the answer reaches the resident."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, visit, wait_for_user
from test_residents_signup import (
    PASSWORD,
    Community,
    a_community,
    account_of,
    joined,
    new_phone,
    signup_body,
)

from server.domain import mydata
from server.domain.scope import RESIDENTS_DB

NEIGHBOUR_NOTE = "邻居的记录"
FORMULA = '=HYPERLINK("http://evil.example","点我")'


async def two_neighbours(client: TestClient, city: City, caplog: pytest.LogCaptureFixture
                         ) -> tuple[Community, str, str]:
    """王伟 of 3-2-301 and 李娜 of 3-2-302, both activated at once; a visit to each door."""
    place = await a_community(client, city)
    phones = place.phones["王伟"], place.phones["李娜"]  # on record: activated at once
    for phone, name, room in zip(phones, ("王伟", "李娜"), ("301", "302"), strict=True):
        status, _ = await joined(client, caplog, signup_body(place, phone, name,
                                                             f"3幢2单元{room}"))
        assert status == 200
    await city.save(place.grid, visit(place.grid, place.worker, "w1",
                                      household=place.household(1), notes="王家的备注"))
    await city.save(place.grid, visit(place.grid, place.worker, "l1",
                                      household=place.household(2), notes=NEIGHBOUR_NOTE))
    return place, phones[0], phones[1]


async def get_json(client: TestClient, path: str, phone: str) -> Any:
    resp = await client.get(path, headers=basic(phone, PASSWORD))
    assert resp.status == 200, await resp.text()
    return await resp.json()


def ids(data: dict[str, Any], key: str) -> list[str]:
    return [r["id"] for s in data["sections"] if s["key"] == key for r in s["records"]]


async def test_each_neighbour_sees_their_own_household_and_nothing_of_the_other(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, wang, li = await two_neighbours(client, city, caplog)
    wang_account, li_account = await account_of(client, wang), await account_of(client, li)
    seen = {}
    for phone, home, other, names, hidden in (
            (wang, place.household(1), place.household(2), ("王伟", "王芳"),
             ("李娜", "13900000002", NEIGHBOUR_NOTE, li_account, "王家的备注")),
            (li, place.household(2), place.household(1), ("李娜",),
             ("王伟", "王芳", "13900000001", "王家的备注", wang_account, NEIGHBOUR_NOTE))):
        with caplog.at_level(logging.INFO, logger="linli.audit"):
            data = await get_json(client, "/api/residents/my-data", phone)
        seen[phone] = data
        assert data["households"] == [home] and ids(data, "household") == [home]
        text = json.dumps(data, ensure_ascii=False)
        assert all(name in text for name in names)
        for secret in (*hidden, other):
            assert secret not in text, secret
        assert [r["fields"]["household"] for s in data["sections"] if s["key"] == "records"
                for r in s["records"]] == [home]  # their visit, its notes left out
        account = data["account"]
        assert any(f"resident {account} read their data" in r.getMessage()
                   for r in caplog.records if r.name == "linli.audit")
    assert seen[wang]["account"] == wang_account and seen[li]["account"] == li_account
    household, = [r for s in seen[wang]["sections"] if s["key"] == "household"
                  for r in s["records"]]
    assert household["fields"]["phone"] == f"{wang[:3]}****{wang[-4:]}"
    assert household["masked"] == ["phone"]


async def test_the_export_is_a_file_with_a_safe_name_and_safe_cells(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    await city.save(place.grid, {  # a member's name as a formula, straight into the store
        "_id": f"person:{place.grid}-2", "type": "person", "schema_version": 1,
        "grid": place.grid, "created_by": place.worker, "household": place.household(2),
        "name": FORMULA, "status": "present"})
    phone = place.phones["李娜"]
    status, _ = await joined(client, caplog, signup_body(place, phone, "李娜", "3幢2单元302"))
    assert status == 200
    as_json = await client.get("/api/residents/my-data/export",
                               headers=basic(phone, PASSWORD))
    assert as_json.status == 200, await as_json.text()
    today = mydata.file_name("json", datetime.datetime.now(datetime.UTC))
    assert as_json.headers["Content-Disposition"] == f'attachment; filename="{today}"'
    assert as_json.headers["Cache-Control"] == "no-store"
    data = json.loads(await as_json.read())
    assert data["format"] == "linli-my-data" and ids(data, "household") == [place.household(2)]

    as_csv = await client.get("/api/residents/my-data/export?format=csv",
                              headers=basic(phone, PASSWORD))
    raw = await as_csv.read()
    assert as_csv.status == 200 and as_csv.content_type == "text/csv"
    assert as_csv.headers["Content-Disposition"].endswith('.csv"')
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == mydata.CSV_HEADER
    cells = [c for row in rows for c in row]
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)
    assert any("李娜" in c for c in cells) and "王伟" not in raw.decode("utf-8-sig")
    assert "'" + FORMULA in cells  # the text as typed, never a live formula
    for query in ("?format=xlsx", "?format=csv&household=" + place.household(1),
                  '?format=json"; filename="x.exe'):
        resp = await client.get("/api/residents/my-data/export" + query,
                                headers=basic(phone, PASSWORD))
        assert resp.status == 400, query


async def test_a_pending_resident_sees_their_sign_up_and_no_household(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """One character off the head's name: waiting for the worker, with the household as a
    candidate. The candidate is someone else's until the worker says otherwise."""
    place, phone = await a_community(client, city), new_phone()
    status, _ = await joined(client, caplog, signup_body(place, phone, "王玮", "3幢2单元301"))
    assert status == 200
    data = await get_json(client, "/api/residents/my-data", phone)
    assert data["households"] == []
    signup, = [r for s in data["sections"] if s["key"] == "signup" for r in s["records"]]
    assert signup["fields"]["phone"] == phone and signup["fields"]["name"] == "王玮"
    assert signup["fields"]["match"] == {"status": "ambiguous"}
    text = json.dumps(data, ensure_ascii=False)
    assert place.household(1) not in text and "王芳" not in text


async def requests_of(client: TestClient, phone: str) -> list[dict[str, Any]]:
    return list((await get_json(client, "/api/residents/data-requests", phone))["requests"])


async def ask(client: TestClient, phone: str, body: Any) -> tuple[int, Any]:
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    resp = await client.post("/api/residents/data-requests", data=raw,
                             headers={**basic(phone, PASSWORD),
                                      "Content-Type": "application/json"})
    return resp.status, await resp.json()


async def test_a_request_is_answered_by_the_community_and_the_resident_reads_it(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, wang, li = await two_neighbours(client, city, caplog)
    boss = await city.user("supervisor", communities=[place.code])
    elsewhere = await city.user("supervisor", communities=["nowhere0"])
    for name in (boss, elsewhere):
        await wait_for_user(client, name)
    status, made = await ask(client, wang, {"kind": "deletion", "details": "我已搬走，请删除",
                                            "household": place.household(1)})
    assert status == 201 and made["repeated"] is False, made
    request = made["request"]
    assert (request["status"], request["created_by"]) == ("open", await account_of(client, wang))
    status, again = await ask(client, wang, {"kind": "deletion", "details": "我已搬走，请删除",
                                             "household": place.household(1)})
    assert status == 200 and again["repeated"] and again["request"]["id"] == request["id"]
    assert [r["id"] for r in await requests_of(client, wang)] == [request["id"]]
    assert await requests_of(client, li) == []  # the neighbour sees nothing of it

    listed = await client.get("/api/data-requests", headers=basic(boss))
    queue = await listed.json()
    assert [r["id"] for r in queue["requests"]] == [request["id"]]
    # Issue 23, item 5: the answer is due 15 working days on, and it is not late yet.
    assert queue["requests"][0]["due_on"] == request["due_on"] > request["requested_at"][:10]
    assert queue["requests"][0]["overdue"] is False and queue["overdue"] == 0
    other = await client.get("/api/data-requests", headers=basic(elsewhere))
    assert (await other.json())["requests"] == []
    for who, status in ((place.worker, 403), (li, 403), (elsewhere, 404)):
        resp = await client.post("/api/data-requests/answer", headers=basic(
            who, PASSWORD) if who == li else basic(who), json={
            "id": request["id"], "rev": request["rev"], "status": "done", "answer": "已删除"})
        assert resp.status == status, (who, await resp.text())
    worker_list = await client.get("/api/data-requests", headers=basic(place.worker))
    assert worker_list.status == 403

    answer = {"id": request["id"], "rev": request["rev"], "status": "refused"}
    resp = await client.post("/api/data-requests/answer", headers=basic(boss), json=answer)
    assert resp.status == 400 and "答复" in (await resp.json())["reason"]  # a refusal says why
    forged = {**answer, "answer": "依法须保存三年", "answered_by": "someone"}
    resp = await client.post("/api/data-requests/answer", headers=basic(boss), json=forged)
    assert resp.status == 400 and "answered_by" in (await resp.json())["reason"]
    with caplog.at_level(logging.INFO, logger="linli.audit"):
        resp = await client.post("/api/data-requests/answer", headers=basic(boss),
                                 json={**answer, "answer": "依法须保存三年"})
        assert resp.status == 200, await resp.text()
    assert any(f"{boss} answered {request['id']}" in r.getMessage() and "refused" in
               r.getMessage() for r in caplog.records if r.name == "linli.audit")
    seen, = await requests_of(client, wang)
    assert (seen["status"], seen["answer"], seen["answered_by"]) == (
        "refused", "依法须保存三年", boss)
    # The same answer replayed over the old revision: someone answered meanwhile.
    resp = await client.post("/api/data-requests/answer", headers=basic(boss),
                             json={**answer, "answer": "依法须保存三年"})
    assert resp.status == 409
    # Over the new one: closed, nothing moves back.
    resp = await client.post("/api/data-requests/answer", headers=basic(boss), json={
        **answer, "rev": seen["rev"], "status": "done", "answer": "改为删除"})
    assert resp.status == 400 and "refused" in (await resp.json())["reason"]
    assert (await (await client.get("/api/data-requests", headers=basic(boss))).json())[
        "requests"] == []
    everything = await client.get("/api/data-requests?status=all", headers=basic(boss))
    assert [r["id"] for r in (await everything.json())["requests"]] == [request["id"]]
    # Shown in my data too, with its answer; and a closed request asked again is a new one.
    data = await get_json(client, "/api/residents/my-data", wang)
    assert request["id"] in ids(data, "requests")
    status, fresh = await ask(client, wang, {"kind": "deletion", "details": "我已搬走，请删除",
                                             "household": place.household(1)})
    assert status == 201 and fresh["request"]["id"] != request["id"]


async def test_a_bad_request_is_refused_by_its_label_and_stores_nothing(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, wang, _ = await two_neighbours(client, city, caplog)
    cases: list[tuple[Any, str]] = [
        ({"kind": "erase"}, "请求类型"),
        ({"kind": 3}, "请求类型"),
        ({"kind": ["deletion"]}, "请求类型"),
        ({}, "请求类型"),
        ({"kind": "access", "details": 42}, "说明"),
        ({"kind": "access", "details": {"a": "b"}}, "说明"),
        ({"kind": "access", "details": "长" * 2001}, "说明"),
        ({"kind": "access", "details": "半个\ud83d"}, "说明"),
        ({"kind": "access", "details": "a\u0000b"}, "说明"),
        ({"kind": "access", "household": place.household(2)}, "住户"),
        ({"kind": "access", "household": "household:never-made"}, "住户"),
        ({"kind": "access", "household": {"$gt": None}}, "住户"),
        ({"kind": "access", "created_by": "r0123456789ab"}, "created_by"),
        ({"kind": "access", "status": "done"}, "status"),
        ({"kind": "access", "_id": "data_request:x"}, "_id"),
        ({"kind": "access", "\ud800": 1}, "\\ud800"),
        ([{"kind": "access"}], "JSON"),
        ("access", "JSON"),
    ]
    reasons = {}
    for body, label in cases:
        status, reply = await ask(client, wang, body)
        assert status == 400 and set(reply) == {"error", "reason"}, (body, reply)
        assert label in reply["reason"], (label, reply)
        zh, _, en = reply["reason"].partition(" / ")
        assert en and any("\u4e00" <= c <= "\u9fff" for c in zh), reply
        reasons[json.dumps(body, ensure_ascii=False)[:60]] = reply["reason"]
    # A neighbour's household and one never made: one answer.
    assert len({reason for key, reason in reasons.items() if '"household"' in key and
                "$gt" not in key}) == 1
    resp = await client.post("/api/residents/data-requests", data=b"kind=access",
                             headers={**basic(wang, PASSWORD),
                                      "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415
    big = await client.post("/api/residents/data-requests", json={
        "kind": "access", "details": "x" * 3_000_000}, headers=basic(wang, PASSWORD))
    assert big.status == 413
    assert await requests_of(client, wang) == []
    stored = await city.run(lambda: [r.id for r in city.couch[RESIDENTS_DB].view(
        "_all_docs") if r.id.startswith(f"data_request:{place.code}:")])
    assert stored == []


async def test_five_a_day_decided_once_however_they_race(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, wang, li = await two_neighbours(client, city, caplog)
    answers = await asyncio.gather(*(ask(client, wang, {"kind": "access", "details": f"第{n}次"})
                                     for n in range(8)))
    assert sorted(status for status, _ in answers) == [201] * 5 + [429] * 3
    assert len({reply["request"]["id"] for status, reply in answers if status == 201}) == 5
    assert all("5" in reply["reason"] for status, reply in answers if status == 429)
    assert len(await requests_of(client, wang)) == 5
    assert (await ask(client, li, {"kind": "access"}))[0] == 201  # per account
    del place


async def test_only_residents_have_my_data(client: TestClient, city: City) -> None:
    grid = await city.grid(community="c_md")
    worker = await city.user(grids=[grid])
    boss = await city.user("supervisor", communities=["c_md"])
    for name in (worker, boss):
        await wait_for_user(client, name)
        for path in ("/api/residents/my-data", "/api/residents/my-data/export",
                     "/api/residents/data-requests"):
            resp = await client.get(path, headers=basic(name))
            assert resp.status == 403, (name, path)
        resp = await client.post("/api/residents/data-requests", json={"kind": "access"},
                                 headers=basic(name))
        assert resp.status == 403
