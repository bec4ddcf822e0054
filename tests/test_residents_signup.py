"""Residents join (issue 15): sign-up, the verification code from the development sender's
log, the verify that makes the account, automatic activation of an exact match, activation by
a worker's code, and `/api/me` showing the resident their own household only. The real app
on the real embedded store; the worker's records are written to the store as a phone's sync
would leave them."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import itertools
import json
import logging
import os
import statistics
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, Proxy, basic, eventually, wait_for_user

from server.config import VERIFICATION_SENDERS, Config, ConfigError
from server.domain.scope import DIRECTORY_DB
from server.domain.signup import PUBLIC_ANSWER
from server.store.embedded import EmbeddedStore
from server.sync.verification import SENDERS
from server.web.app import create_app
from server.web.keys import DIRECTORY, SIGNUP_LIMITS

PASSWORD = "resident-pass-7"
_phones = itertools.count(1)
_communities = itertools.count(1)


def new_phone() -> str:
    return f"139{os.getpid() % 10000:04d}{next(_phones):04d}"


@dataclasses.dataclass
class Community:
    code: str
    grid: str
    worker: str
    # The phones the registry holds, by name: a sign-up is activated at once only from one
    # of them (server/domain/signup.py, rule 4)
    phones: dict[str, str] = dataclasses.field(default_factory=dict)

    def household(self, n: int) -> str:
        return f"household:{self.grid}-{n:04d}"


async def a_community(client: TestClient, city: City) -> Community:
    """One community, one grid, two households in one building: 王伟 (owner) at 3-2-301 with
    王芳, and 李娜 (tenant) at 3-2-302."""
    code = f"t{os.getpid()}c{next(_communities)}"
    grid = await city.grid(community=code)
    worker = await city.user(grids=[grid])
    place = Community(code, grid, worker, {"王伟": new_phone(), "李娜": new_phone(),
                                           "王芳": new_phone()})
    for n, (room, head, tenure) in enumerate((("301", "王伟", "owned"), ("302", "李娜", "rented")),
                                             start=1):
        phone = place.phones[head]
        await city.save(grid, {"_id": place.household(n), "type": "household", "schema_version": 1,
                 "grid": grid, "created_by": worker, "head_name": head, "phone": phone,
                 "tenure": tenure, "status": "active",
                 "address": {"compound": "c1", "compound_name": "坊门小区", "building": "3",
                             "unit": "2", "room": room}})
    await city.save(grid, {"_id": f"person:{grid}-1", "type": "person", "schema_version": 1,
                           "grid": grid, "created_by": worker, "household": place.household(1),
                           "name": "王芳", "status": "present", "phone": place.phones["王芳"]})
    await wait_for_user(client, worker)  # made after the grid: the server knows both
    return place


def a_code(place: Community, household: int, code: str, *, role: str = "tenant",
           age: datetime.timedelta = datetime.timedelta(hours=1), **extra: Any) -> dict[str, Any]:
    made = datetime.datetime.now(datetime.UTC) - age
    return {"_id": f"activation_code:{place.grid}-{code}", "type": "activation_code",
            "schema_version": 1, "grid": place.grid, "created_by": place.worker,
            "household": place.household(household), "code": code, "role": role,
            "created_at": made.isoformat(timespec="seconds"), **extra}


def signup_body(place: Community, phone: str, name: str = "赵六",
                address: str = "9幢9单元909") -> dict[str, Any]:
    return {"phone": phone, "name": name, "community": place.code, "address": address}


def code_in_log(caplog: pytest.LogCaptureFixture, phone: str) -> str:
    lines = [r.getMessage() for r in caplog.records
             if r.name == "linli.verification" and phone in r.getMessage()]
    assert lines, "the development sender logged no code"
    return lines[-1].split(": ")[1].split(" ")[0]


async def signed_up(client: TestClient, caplog: pytest.LogCaptureFixture, body: dict[str, Any]
                    ) -> str:
    with caplog.at_level(logging.WARNING, logger="linli.verification"):
        resp = await client.post("/api/residents/signup", json=body)
        text = await resp.text()
    assert resp.status == 200, text
    code = code_in_log(caplog, body["phone"].replace(" ", ""))
    assert code not in text  # the code goes to the phone, never to the answer
    return code


async def joined(client: TestClient, caplog: pytest.LogCaptureFixture, body: dict[str, Any]
                 ) -> tuple[int, bytes]:
    code = await signed_up(client, caplog, body)
    resp = await client.post("/api/residents/verify", json={
        "phone": body["phone"], "code": code, "password": PASSWORD})
    raw = await resp.read()
    if resp.status == 200:
        await account_of(client, body["phone"])
    return resp.status, raw


async def account_of(client: TestClient, phone: str) -> str:
    """The user name of the account whose login is `phone`, once the server has seen it."""
    directory = client.app[DIRECTORY]
    user = await eventually(lambda: directory.user(phone), every=0.02,
                            what=f"the server sees the account of {phone}")
    return str(user.name)


async def me(client: TestClient, phone: str) -> dict[str, Any]:
    resp = await client.get("/api/me", headers=basic(phone, PASSWORD))
    assert resp.status == 200, await resp.text()
    found: dict[str, Any] = (await resp.json())["resident"]
    return found


async def test_sign_up_verify_log_in_and_activate_by_a_workers_code(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, phone = await a_community(client, city), new_phone()
    status, raw = await joined(client, caplog, signup_body(place, phone))
    assert status == 200 and json.loads(raw) == PUBLIC_ANSWER
    pending = await me(client, phone)
    assert pending == {"state": "pending", "signup": "pending", "households": []}
    account = await account_of(client, phone)
    assert phone not in account  # a user name is shown as a record's author: never the phone
    queued = await city.get(place.grid, f"signup:{account}")
    assert queued["phone"] == phone and queued["account"] == account
    assert (queued["status"], queued["match"]["status"], queued["grid"]) == (
        "pending", "not_found", place.grid)

    await city.save(place.grid, a_code(place, 2, "ABCDEFGH"))
    resp = await client.post("/api/residents/activate", json={"code": "abcd-efgh"},
                             headers=basic(phone, PASSWORD))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"ok": True, "household": place.household(2), "role": "tenant",
                                 "status": "active"}
    active = await me(client, phone)
    assert active["state"] == "active"
    [link] = active["households"]
    assert (link["household"], link["role"], link["activation"]) == (
        place.household(2), "tenant", "code")
    assert link["record"]["head_name"] == "李娜" and "edits" not in link["record"]
    spent = await city.get(place.grid, f"activation_code:{place.grid}-ABCDEFGH")
    assert spent["used_by"] == account and spent["used_at"]
    stored = await city.get(place.grid, f"resident:{account}-{place.grid}-0002")
    assert (stored["status"], stored["created_by"], stored["account"]) == (
        "active", account, account)
    # The same code again, by the same resident: used.
    resp = await client.post("/api/residents/activate", json={"code": "ABCDEFGH"},
                             headers=basic(phone, PASSWORD))
    assert resp.status == 400 and "已经使用" in (await resp.json())["reason"]


async def test_an_exact_match_is_activated_at_once(client: TestClient, city: City,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    # A neighbour who knows the name and the door, on their own phone: the worker decides.
    neighbour = new_phone()
    status, _ = await joined(client, caplog, signup_body(place, neighbour, "王芳", "3-2-301"))
    assert status == 200
    found = await me(client, neighbour)
    assert found["state"] == "pending" and found["households"] == []
    # The head, on the household's phone: at once, as its owner.
    phone = place.phones["王伟"]
    status, _ = await joined(client, caplog, signup_body(place, phone, "王伟", "三幢二单元301室"))
    assert status == 200
    found = await me(client, phone)
    assert found["state"] == "active" and found["signup"] == "activated"
    [link] = found["households"]
    assert (link["household"], link["role"], link["activation"]) == (
        place.household(1), "owner", "automatic")
    # A family member by name, on her own phone on record: also at once, as family.
    other = place.phones["王芳"]
    status, _ = await joined(client, caplog, signup_body(place, other, "王芳", "3-2-301"))
    assert status == 200
    [link] = (await me(client, other))["households"]
    assert (link["household"], link["role"]) == (place.household(1), "family")


async def test_a_typo_waits_for_the_worker_with_its_candidate(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """One character off the head's name, no phone to confirm it: ambiguous, queued in the
    candidate's grid with the candidate listed, and nothing activated."""
    place, phone = await a_community(client, city), new_phone()
    status, raw = await joined(client, caplog, signup_body(place, phone, "王玮", "3幢2单元301"))
    assert status == 200 and json.loads(raw) == PUBLIC_ANSWER
    queued = await city.get(place.grid, f"signup:{await account_of(client, phone)}")
    assert (queued["status"], queued["match"]["status"], queued["match"]["candidates"]) == (
        "pending", "ambiguous", [place.household(1)])
    assert "household" not in queued
    assert (await me(client, phone))["households"] == []


async def test_the_answer_is_the_same_for_a_match_and_a_miss(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """Same status, same bytes, and the same order of time: the matcher runs for both and
    both write one batch, so timing tells no more than the body."""
    place = await a_community(client, city)
    on_record = [new_phone() for _ in range(3)]  # three of the family on their own phones
    for n, phone in enumerate(on_record, start=2):
        await city.save(place.grid, {
            "_id": f"person:{place.grid}-2-{n}", "type": "person", "schema_version": 1,
            "grid": place.grid, "created_by": place.worker, "household": place.household(2),
            "name": "李娜", "status": "present", "phone": phone})
    answers: dict[str, set[tuple[int, bytes]]] = {"match": set(), "miss": set()}
    took: dict[str, list[float]] = {"match": [], "miss": []}
    for attempt in range(3):
        for kind, name in (("match", "李娜"), ("miss", "钱七")):
            phone = on_record[attempt] if kind == "match" else new_phone()
            body = signup_body(place, phone, name, "3幢2单元302")
            code = await signed_up(client, caplog, body)
            started = time.perf_counter()
            resp = await client.post("/api/residents/verify", json={
                "phone": body["phone"], "code": code, "password": PASSWORD})
            answers[kind].add((resp.status, await resp.read()))
            took[kind].append(time.perf_counter() - started)
            if kind == "match":
                await account_of(client, body["phone"])
                assert (await me(client, body["phone"]))["state"] == "active"
    assert answers["match"] == answers["miss"] and len(answers["match"]) == 1
    match, miss = statistics.median(took["match"]), statistics.median(took["miss"])
    assert max(match, miss) < 4 * min(match, miss), took
    # And a sign-up's own answer is one text for a registered phone and a new one.
    first = await client.post("/api/residents/signup", json=signup_body(place, on_record[0]))
    second = await client.post("/api/residents/signup", json=signup_body(place, new_phone()))
    assert (first.status, await first.read()) == (second.status, await second.read())


BAD_SIGNUPS: list[tuple[str, Any, str]] = [
    ("phone of 10 digits", {"phone": "1390000000"}, "手机号"),
    ("phone of 12 digits", {"phone": "139000000001"}, "手机号"),
    ("phone as a number", {"phone": 13900000000}, "手机号"),
    ("landline", {"phone": "0570-1234567"}, "手机号"),
    ("name a number", {"name": 42}, "姓名"),
    ("name empty", {"name": "  "}, "姓名"),
    ("address oversized", {"address": "坊" * 101}, "住址"),
    ("control character", {"name": "王\u0007伟"}, "姓名"),
    ("lone surrogate", {"name": "王\ud800"}, "姓名"),
    ("forged role", {"role": "admin"}, "role"),
    ("forged household", {"household": "household:x-0001"}, "household"),
    ("forged status", {"status": "activated"}, "status"),
    ("unknown community", {"community": "nowhere0"}, "社区"),
    ("community not a code", {"community": "<script>"}, "社区"),
]


@pytest.mark.parametrize(("case", "change", "label"), BAD_SIGNUPS, ids=[c[0] for c in BAD_SIGNUPS])
async def test_a_bad_sign_up_is_refused_by_its_label_and_sends_nothing(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture, case: str,
        change: dict[str, Any], label: str) -> None:
    place = await a_community(client, city)
    body = {**signup_body(place, new_phone()), **change}
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    with caplog.at_level(logging.WARNING, logger="linli.verification"):
        resp = await client.post("/api/residents/signup", data=raw,
                                 headers={"Content-Type": "application/json"})
    reply = await resp.json()
    assert resp.status == 400, (case, reply)
    assert set(reply) == {"error", "reason"} and label in reply["reason"], reply
    zh, _, en = reply["reason"].partition(" / ")
    assert any("\u4e00" <= c <= "\u9fff" for c in zh) and en, reply  # zh-CN first
    assert not [r for r in caplog.records if r.name == "linli.verification"]


@pytest.mark.parametrize("raw", [b"[]", b"not json", b'"13900000000"', b"{}"])
async def test_a_sign_up_that_is_not_an_object_is_refused(client: TestClient, raw: bytes) -> None:
    resp = await client.post("/api/residents/signup", data=raw,
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400 and set(await resp.json()) == {"error", "reason"}


async def test_a_wrong_code_and_a_replayed_verify_make_nothing(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, phone = await a_community(client, city), new_phone()
    code = await signed_up(client, caplog, signup_body(place, phone))
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    bad = [{"phone": phone, "code": wrong, "password": PASSWORD},
           {"phone": phone, "code": code, "password": "short"},
           {"phone": phone, "code": code, "password": PASSWORD, "role": "admin"},
           {"phone": phone, "code": int(code), "password": PASSWORD}]
    for body in bad:
        resp = await client.post("/api/residents/verify", json=body)
        assert resp.status == 400, body
    assert not await city.run(lambda: f"login:{phone}" in city.couch[DIRECTORY_DB])
    verify = {"phone": phone, "code": code, "password": PASSWORD}
    assert (await client.post("/api/residents/verify", json=verify)).status == 200
    again = await client.post("/api/residents/verify", json=verify)
    assert again.status == 400 and "验证码" in (await again.json())["reason"]


async def test_five_wrong_verification_codes_kill_the_code(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, phone = await a_community(client, city), new_phone()
    code = await signed_up(client, caplog, signup_body(place, phone))
    for n in range(5):
        wrong = f"{(int(code) + 1 + n) % 10**6:06d}"
        resp = await client.post("/api/residents/verify", json={
            "phone": phone, "code": wrong, "password": PASSWORD})
        assert resp.status == 400
    resp = await client.post("/api/residents/verify", json={
        "phone": phone, "code": code, "password": PASSWORD})
    assert resp.status == 400  # the right one, too late


async def test_two_racing_verifies_make_one_account(client: TestClient, city: City,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(client, city)
    phone = place.phones["王伟"]
    code = await signed_up(client, caplog, signup_body(place, phone, "王伟", "3幢2单元301"))
    verify = {"phone": phone, "code": code, "password": PASSWORD}
    replies = await asyncio.gather(*(client.post("/api/residents/verify", json=verify)
                                     for _ in range(2)))
    assert sorted(r.status for r in replies) == [200, 400]
    account = await account_of(client, phone)
    links = await city.run(lambda: [
        row.id for row in city.db(place.grid).view("_all_docs")
        if row.id.startswith("resident:") and row.id.endswith(f"{place.grid}-0001")])
    assert links == [f"resident:{account}-{place.grid}-0001"]
    # Signed up again and verified: the account exists; the store keeps one.
    code = await signed_up(client, caplog, signup_body(place, phone))
    resp = await client.post("/api/residents/verify", json={**verify, "code": code})
    assert resp.status == 409 and "已经注册" in (await resp.json())["reason"]

    def residents() -> list[dict[str, Any]]:
        users = city.couch[DIRECTORY_DB]
        return [users[row.id] for row in users.view("_all_docs") if row.id.startswith("user:r")]

    users = await city.run(residents)
    assert f"user:{account}" in [u["_id"] for u in users]
    assert sum(1 for u in users if u.get("resident", {}).get(
        "grids") == [place.grid]) == 1  # the second verify made no account


async def test_the_claim_and_the_account_are_one_write_or_none(
        aiohttp_client: Any, config: Config, city: City, store: EmbeddedStore,
        proxies: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    """A verify writes the phone's claim and its account in one `_bulk_docs` (a crash
    between two writes would leave the phone claimed with no account, for ever); a claim the
    store refuses (another server process took the phone) takes the account back with it."""
    proxy: Proxy = await proxies(urllib.parse.urlsplit(store.url).port)
    client = await aiohttp_client(create_app(dataclasses.replace(
        config, couchdb_url=proxy.url())))
    place = await a_community(client, city)
    phone = place.phones["王伟"]
    code = await signed_up(client, caplog, signup_body(place, phone, "王伟", "3幢2单元301"))
    before = len(proxy.requests)
    resp = await client.post("/api/residents/verify", json={
        "phone": phone, "code": code, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    assert [(m, p.split("?")[0]) for m, p in proxy.requests[before:]
            if p.startswith(f"/{DIRECTORY_DB}/") and m in ("PUT", "POST")] == [
        ("POST", f"/{DIRECTORY_DB}/_bulk_docs")]
    assert (await account_of(client, phone)).startswith("r")

    other = place.phones["李娜"]
    await city.run(lambda: city.couch[DIRECTORY_DB].save(
        {"_id": f"login:{other}", "type": "login", "account": "r-another-process"}))
    code = await signed_up(client, caplog, signup_body(place, other, "李娜", "3幢2单元302"))
    resp = await client.post("/api/residents/verify", json={
        "phone": other, "code": code, "password": PASSWORD})
    assert resp.status == 409 and "已经注册" in (await resp.json())["reason"]

    def accounts_of_the_community() -> list[str]:
        users = city.couch[DIRECTORY_DB]
        return [row.id for row in users.view("_all_docs", startkey="user:r",
                                             endkey="user:r\ufff0", include_docs=True)
                if (row.doc.get("resident") or {}).get("community") == place.code]

    assert len(await city.run(accounts_of_the_community)) == 1  # 王伟's; none for 李娜
    claim = await city.get(place.grid, f"signup:{(await account_of(client, phone))}")
    assert claim["status"] == "activated"


async def test_sign_ups_are_limited_by_phone_and_by_address(
        aiohttp_client: Any, config: Config, city: City,
        caplog: pytest.LogCaptureFixture) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(
        config, signups_per_phone=2, signups_per_address=4)))
    place, phone = await a_community(client, city), new_phone()
    for _ in range(2):
        await signed_up(client, caplog, signup_body(place, phone))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="linli.verification"):
        resp = await client.post("/api/residents/signup", json=signup_body(place, phone))
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert "尝试次数过多" in (await resp.json())["reason"]
    assert not [r for r in caplog.records if r.name == "linli.verification"]
    for _ in range(2):  # the address has 2 of its 4 left
        await signed_up(client, caplog, signup_body(place, new_phone()))
    resp = await client.post("/api/residents/signup", json=signup_body(place, new_phone()))
    assert resp.status == 429


async def test_wrong_used_and_expired_codes_then_a_pause(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, phone = await a_community(client, city), new_phone()
    assert (await joined(client, caplog, signup_body(place, phone)))[0] == 200
    for made in (a_code(place, 2, "USEDUSED", used_by="someone1",
                        used_at="2026-01-01T00:00:00+00:00"),
                 a_code(place, 2, "XPRDXPRD", age=datetime.timedelta(days=8)),
                 a_code(place, 2, "RVKDRVKD", status="revoked"), a_code(place, 2, "GXXDGXXD")):
        await city.save(place.grid, made)
    headers = basic(phone, PASSWORD)
    for typed, said in (("WRNGWRNG", "不正确"), ("USEDUSED", "已经使用"), ("XPRDXPRD", "已过期"),
                        ("RVKDRVKD", "已作废")):
        resp = await client.post("/api/residents/activate", json={"code": typed},
                                 headers=headers)
        assert resp.status == 400 and said in (await resp.json())["reason"], typed
    for typed in ("ab", "ABCDEFG0", 12345678):  # not a code: refused, not counted
        resp = await client.post("/api/residents/activate", json={"code": typed},
                                 headers=headers)
        assert resp.status == 400 and "激活码" in (await resp.json())["reason"]
    resp = await client.post("/api/residents/activate", json={"code": "WRNGWRN2"},
                             headers=headers)
    assert resp.status == 400  # the fifth wrong one
    resp = await client.post("/api/residents/activate", json={"code": "GXXDGXXD"},
                             headers=headers)
    assert resp.status == 429 and "15 分钟" in (await resp.json())["reason"]
    assert "used_by" not in await city.get(place.grid, f"activation_code:{place.grid}-GXXDGXXD")
    assert (await me(client, phone))["state"] == "pending"


async def test_codes_sent_all_at_once_are_counted_in_the_order_they_arrive(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """Twenty wrong codes at once: each try is counted as it arrives, before the store is
    read, so five are compared and the rest wait; and a right code counts against nobody."""
    place, phone = await a_community(client, city), new_phone()
    assert (await joined(client, caplog, signup_body(place, phone)))[0] == 200
    headers = basic(phone, PASSWORD)

    async def attempt(n: int) -> int:
        typed = "WRNGWR" + "ABCDEFGHJKMNPQRSTUVW"[n] * 2  # codes, each a wrong one
        resp = await client.post("/api/residents/activate", json={"code": typed},
                                 headers=headers)
        await resp.read()
        return resp.status

    statuses = await asyncio.gather(*(attempt(n) for n in range(20)))
    assert sorted(statuses) == [400] * 5 + [429] * 15, statuses
    limits = client.app[SIGNUP_LIMITS]
    other = (f"account:{await account_of(client, phone)}x", "address:10.8.8.8")
    counted = limits.try_code(other, datetime.datetime.now(datetime.UTC))
    limits.right_code(other[0], counted)  # a right code: the address's try is taken back
    assert not {"address:10.8.8.8", other[0]} & set(limits._attempts)


async def test_activation_is_for_residents_logged_in(client: TestClient, city: City) -> None:
    place = await a_community(client, city)
    resp = await client.post("/api/residents/activate", json={"code": "ABCDEFGH"})
    assert resp.status == 401
    resp = await client.post("/api/residents/activate", json={"code": "ABCDEFGH"},
                             headers=basic(place.worker))
    assert resp.status == 403


async def test_a_resident_never_sees_another_household(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """Two residents of one building, one activated at once and one by code: each one's
    answers name their own household and nothing of the other's."""
    place = await a_community(client, city)
    owner, tenant = place.phones["王伟"], place.phones["李娜"]
    await joined(client, caplog, signup_body(place, owner, "王伟", "3幢2单元301"))
    await joined(client, caplog, signup_body(place, tenant, "李娜", "3幢2单元302"))
    mine = {owner: (place.household(1), "王伟"), tenant: (place.household(2), "李娜")}
    for phone, (household, head) in mine.items():
        other_household, other_head = next(v for k, v in mine.items() if k != phone)
        for path in ("/api/me", "/api/residents/communities"):
            resp = await client.get(path, headers=basic(phone, PASSWORD))
            text = await resp.text()
            assert resp.status == 200
            assert other_household not in text and other_head not in text, (path, text)
        shown = json.dumps(await me(client, phone), ensure_ascii=False)
        assert household in shown and head in shown
    # A code made for the other household opens it for nobody but the one it is given to:
    # that is the worker's decision at the door, not something a resident can ask for.
    resp = await client.post("/api/residents/activate", json={"code": "NKNWNKNW"},
                             headers=basic(owner, PASSWORD))
    assert resp.status == 400


async def test_the_community_list_names_communities_with_a_grid(client: TestClient,
                                                                city: City) -> None:
    place = await a_community(client, city)
    resp = await client.get("/api/residents/communities")
    listed = {c["code"] for c in (await resp.json())["communities"]}
    assert resp.status == 200 and place.code in listed


def test_the_verification_sender_is_a_setting(config: Config) -> None:
    assert set(VERIFICATION_SENDERS) == set(SENDERS)
    with pytest.raises(ConfigError):
        Config.from_mapping({"verification_sender": "nowhere"})


async def test_an_active_resident_whose_sign_up_is_gone_keeps_their_household(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """The retention deletes a sign-up a year after it was decided (server/domain/retention.py):
    the resident's link in that grid still makes them active, with their household."""
    place = await a_community(client, city)
    phone = place.phones["王伟"]
    status, _ = await joined(client, caplog, signup_body(place, phone, "王伟", "三幢二单元301室"))
    assert status == 200
    account = await account_of(client, phone)
    assert (await me(client, phone))["state"] == "active"
    db = city.db(place.grid)
    await City.run(db.delete, await City.run(db.get, f"signup:{account}"))
    found = await me(client, phone)
    assert found["state"] == "active" and found["signup"] == "activated", found
    [link] = found["households"]
    assert (link["household"], link["role"], link["status"]) == (
        place.household(1), "owner", "active")
    assert link["record"]["head_name"] == "王伟"
