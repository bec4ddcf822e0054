"""Notices (issue 15, item 4) through the real app on the real embedded store: who may write
to whom (the author's scope), what a notice may hold (classes of bad input, images), the one
receipt per resident and notice however they race, withdrawal, and the follow-up by grid for
the supervisor (names masked) and the grid worker (their own grid, unmasked)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, wait_for_user

from server.admin import directory
from server.config import Config
from server.domain.scope import DIRECTORY_DB, RESIDENTS_DB
from server.store.couch import NotFound, db_path
from server.web.app import create_app
from server.web.keys import COUCH

_n = itertools.count(1)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 64


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclasses.dataclass
class Town:
    """Street s (communities c1 with grids g1, g2, and c2 with g3) and street t (c3, g4).
    In g1, building c1-3: 王伟 (301, owner, resident ra), 李娜 (302, resident rb), 张三 (303,
    no resident account); in g3: 赵六 (resident rc)."""

    street: str
    other_street: str
    c1: str
    c2: str
    c3: str
    g1: str
    g2: str
    g3: str
    g4: str
    sup1: str  # supervisor of c1
    street_sup: str  # supervisor of street s
    admin: str
    worker1: str  # worker of g1
    worker3: str  # worker of g3
    ra: str
    rb: str
    rc: str

    def household(self, grid: str, n: int) -> str:
        return f"household:{grid}-{n:04d}"


async def a_resident(city: City, grid: str, household: str) -> str:
    """A resident account with an active link to `household`, as activation leaves them."""
    name = await city.user("resident")

    def link_account() -> None:
        users = city.couch[DIRECTORY_DB]
        doc = users[f"user:{name}"]
        doc["resident"] = {"community": "", "grids": [grid]}
        users.save(doc)

    await city.run(link_account)
    await city.save(grid, {"_id": f"resident:{name}-{household.partition(':')[2]}",
                           "type": "resident", "schema_version": 1, "grid": grid,
                           "created_by": "linli-signup", "account": name,
                           "household": household, "role": "owner", "status": "active"})
    return name


async def a_town(city: City) -> Town:
    tag = f"{os.getpid()}x{next(_n)}"
    street, other, c1, c2, c3 = (f"s{tag}", f"t{tag}", f"c1{tag}", f"c2{tag}", f"c3{tag}")
    await city.run(directory.add_area, city.couch, "community", c1, "坊门社区", street)
    g1 = await city.grid(community=c1, street=street)
    g2 = await city.grid(community=c1, street=street)
    g3 = await city.grid(community=c2, street=street)
    g4 = await city.grid(community=c3, street=other)
    worker1 = await city.user(grids=[g1])
    worker3 = await city.user(grids=[g3])
    for grid, n, room, head, compound in (
            (g1, 1, "301", "王伟", "c1"), (g1, 2, "302", "李娜", "c1"),
            (g1, 3, "303", "张三", "c1"), (g3, 1, "101", "赵六", "c9")):
        await city.save(grid, {
            "_id": f"household:{grid}-{n:04d}", "type": "household", "schema_version": 1,
            "grid": grid, "created_by": worker1, "head_name": head, "tenure": "owned",
            "status": "active", "address": {"compound": compound, "compound_name": "坊门小区",
                                            "building": "3", "unit": "2", "room": room},
            **({"special_groups": ["elderly_alone"]} if head == "张三" else {})})
    town = Town(street, other, c1, c2, c3, g1, g2, g3, g4,
                sup1=await city.user("supervisor", communities=[c1]),
                street_sup=await city.user("supervisor", streets=[street]),
                admin=await city.user("admin"), worker1=worker1, worker3=worker3,
                ra="", rb="", rc="")
    town.ra = await a_resident(city, g1, town.household(g1, 1))
    town.rb = await a_resident(city, g1, town.household(g1, 2))
    town.rc = await a_resident(city, g3, town.household(g3, 1))
    return town


@pytest.fixture(scope="module")
async def shared_town(city: City) -> AsyncIterator[Town]:
    """One town for the module: each test's notices are its own, so tests share the places.
    Its notices are deleted after: other tests read every notice an admin sees."""
    town = await a_town(city)
    yield town

    def forget() -> None:
        db = city.couch[RESIDENTS_DB]
        for row in db.view("_all_docs", include_docs=True):
            if row.doc.get("created_by") in (town.sup1, town.street_sup, town.admin) or (
                    row.doc.get("created_by") in (town.ra, town.rb, town.rc)):
                db.delete(row.doc)

    await city.run(forget)


@pytest.fixture
async def town(client: TestClient, shared_town: Town) -> Town:
    """The shared town, once this test's server knows its users."""
    for user in (shared_town.sup1, shared_town.street_sup, shared_town.admin,
                 shared_town.worker1, shared_town.worker3, shared_town.ra, shared_town.rb,
                 shared_town.rc):
        await wait_for_user(client, user)
    return shared_town


def draft(audience: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"title": "停水通知", "body": "明天 8:00–12:00 停水。\n\n请提前储水。",
            "audience": audience, **fields}


async def notice_ids(client: TestClient) -> set[str]:
    try:
        rows = await client.app[COUCH].get(db_path(RESIDENTS_DB, "_all_docs"),
                                           startkey=json.dumps("notice:"),
                                           endkey=json.dumps("notice:\ufff0"))
    except NotFound:
        return set()
    return {r["id"] for r in rows["rows"]}


async def publish(client: TestClient, who: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body)
    resp = await client.post("/api/notices", data=data, headers={
        **basic(who), "Content-Type": "application/json"})
    return resp.status, await resp.json()


async def published(client: TestClient, who: str, body: dict[str, Any]) -> str:
    status, answer = await publish(client, who, body)
    assert status == 201, answer
    return str(answer["notice"]["_id"])


async def test_a_supervisor_publishes_and_follows_up_by_grid(client: TestClient,
                                                             town: Town) -> None:
    notice = await published(client, town.sup1, draft(
        {"level": "community", "codes": [town.c1]}, needs_confirmation=True, pinned=True))
    stored = await client.app[COUCH].get(db_path(RESIDENTS_DB, notice))
    assert stored["created_by"] == town.sup1 and stored["status"] == "published"
    assert stored["pinned"] is True and stored["published_at"]
    # ra reads it, rb confirms it; 张三 has no account: only a knock on the door reaches him.
    for who, body in ((town.ra, {}), (town.rb, {"confirmed": True})):
        resp = await client.post(f"/api/notices/{notice}/receipt", headers=basic(who), json=body)
        assert resp.status == 200, await resp.text()
    resp = await client.get(f"/api/notices/{notice}/follow-up", headers=basic(town.sup1))
    assert resp.status == 200, await resp.text()
    grids = (await resp.json())["grids"]
    assert [g["grid"] for g in grids] == [town.g1]  # g2 has no household, g3 is not addressed
    assert grids[0]["counts"] == {"unread": 0, "unconfirmed": 1, "without_account": 1, "done": 1}
    assert [(h["state"], h["head_name"]) for h in grids[0]["households"]] == [
        ("unconfirmed", "王*"), ("without_account", "张*")]
    assert grids[0]["households"][0]["address"] == "坊门小区 3幢2单元301"
    # The grid's worker lists the same households, names in full: their own grid.
    resp = await client.get("/api/notices/to-visit", headers=basic(town.worker1))
    listed = (await resp.json())["notices"]
    mine = [n for n in listed if n["notice"]["_id"] == notice]
    assert [(h["head_name"], h["state"]) for h in mine[0]["grids"][0]["households"]] == [
        ("王伟", "unconfirmed"), ("张三", "without_account")]
    resp = await client.get("/api/notices/to-visit", headers=basic(town.worker3))
    assert notice not in {n["notice"]["_id"] for n in (await resp.json())["notices"]}
    # A street supervisor sees it by grid too; the list counts its receipts.
    resp = await client.get("/api/notices", headers=basic(town.street_sup))
    listed = {n["_id"]: n for n in (await resp.json())["notices"]}
    assert listed[notice]["read"] == 2 and listed[notice]["confirmed"] == 1


@pytest.mark.parametrize(("author", "audience", "allowed"), [
    ("sup1", {"level": "community", "codes": ["c1"]}, True),
    ("sup1", {"level": "grid", "codes": ["g1", "g2"]}, True),
    ("sup1", {"level": "building", "codes": ["c1-3"]}, True),
    ("sup1", {"level": "community", "codes": ["c1"], "tags": ["elderly_alone"]}, True),
    ("sup1", {"level": "community", "codes": ["c2"]}, False),  # another community
    ("sup1", {"level": "community", "codes": ["c1", "c2"]}, False),
    ("sup1", {"level": "community", "codes": ["nowhere"]}, False),
    ("sup1", {"level": "grid", "codes": ["g3"]}, False),
    ("sup1", {"level": "building", "codes": ["c9-3"]}, False),  # g3's building
    ("sup1", {"level": "street", "codes": ["street"]}, False),
    ("sup1", {"level": "city"}, False),
    ("street_sup", {"level": "street", "codes": ["street"]}, True),
    ("street_sup", {"level": "community", "codes": ["c2"]}, True),
    ("street_sup", {"level": "community", "codes": ["c3"]}, False),  # another street's
    ("street_sup", {"level": "grid", "codes": ["g4"]}, False),
    ("street_sup", {"level": "city"}, False),
    ("admin", {"level": "city", "tags": ["owner"]}, True),
])
async def test_an_author_addresses_only_their_scope(client: TestClient, town: Town,
                                                    author: str, audience: dict[str, Any],
                                                    allowed: bool) -> None:
    names = {"street": town.street, "c1": town.c1, "c2": town.c2, "c3": town.c3,
             "g1": town.g1, "g2": town.g2, "g3": town.g3, "g4": town.g4}
    real = {**audience}
    if "codes" in audience:
        real["codes"] = [names.get(c, c) for c in audience["codes"]]
    before = await notice_ids(client)
    status, answer = await publish(client, getattr(town, author), draft(real))
    if allowed:
        assert status == 201, answer
        return
    assert status == 400, answer
    assert "发布范围" in answer["reason"] and "Audience" in answer["reason"]
    assert await notice_ids(client) == before


async def test_a_building_notice_holds_the_grids_it_was_addressed_in(client: TestClient,
                                                                     town: Town) -> None:
    """A building's code is its compound's and its number, which repeat across communities:
    the server pins a supervisor's building notice to the grids of their reach where the
    building was found, so it never reaches a namesake building elsewhere. The author cannot
    say which grids."""
    status, answer = await publish(client, town.sup1, draft({"level": "building",
                                                             "codes": ["c1-3"]}))
    assert status == 201, answer
    assert answer["notice"]["audience"]["grids"] == [town.g1]
    before = await notice_ids(client)
    status, answer = await publish(client, town.sup1, draft(
        {"level": "building", "codes": ["c1-3"], "grids": [town.g3]}))
    assert status == 400 and "发布范围" in answer["reason"], answer
    assert await notice_ids(client) == before


async def test_outside_the_scope_and_nonexistent_answer_alike(client: TestClient,
                                                               town: Town) -> None:
    """No oracle of another community's codes: its code and a made-up one answer the same."""
    _, other = await publish(client, town.sup1, draft({"level": "community",
                                                       "codes": [town.c2]}))
    _, made_up = await publish(client, town.sup1, draft({"level": "community",
                                                         "codes": ["zz9"]}))
    assert other["reason"].replace(town.c2, "X") == made_up["reason"].replace("zz9", "X")


@pytest.mark.parametrize("role", ["worker1", "ra", "anonymous"])
async def test_workers_and_residents_write_no_notices(client: TestClient, town: Town,
                                                      role: str) -> None:
    headers = basic(getattr(town, role)) if role != "anonymous" else {}
    resp = await client.post("/api/notices", headers=headers,
                             json=draft({"level": "grid", "codes": [town.g1]}))
    assert resp.status == (401 if role == "anonymous" else 403)
    for path in ("/api/notices", "/api/notices/areas"):
        assert (await client.get(path, headers=headers)).status in (401, 403)


LONG = "长" * 61
BAD_DRAFTS: list[tuple[str, Any, str]] = [
    # wrong types
    ("title number", {"title": 5}, "标题"),
    ("body list", {"body": ["a"]}, "正文"),
    ("audience text", {"audience": "community"}, "发布范围"),
    ("codes text", {"audience": {"level": "community", "codes": "c1"}}, "发布范围"),
    ("pinned text", {"pinned": "yes"}, "置顶"),
    ("confirm number", {"needs_confirmation": 1}, "须确认"),
    ("expiry date only", {"expires_at": "2099-01-01"}, "有效期至"),
    ("expiry past", {"expires_at": "2001-01-01T00:00:00+08:00"}, "有效期至"),
    # sizes
    ("title too long", {"title": LONG}, "标题"),
    ("body too long", {"body": "字" * 5001}, "正文"),
    ("too many paragraphs", {"body": "\n\n".join("段" for _ in range(51))}, "正文"),
    ("too many codes", {"audience": {"level": "grid", "codes": [f"g{i}" for i in range(201)]}},
     "发布范围"),
    # nesting
    ("nested audience", {"audience": {"level": "grid", "codes": ["g1"],
                                      "extra": {"a": {"b": [1]}}}}, "发布范围"),
    ("nested title", {"title": {"zh": "停水"}}, "标题"),
    ("deep body", {"body": [[[[[[["x"]]]]]]]}, "正文"),
    # control characters, bidi
    ("bell in title", {"title": "停水\x07"}, "标题"),
    ("tab in body", {"body": "停水\t通知"}, "正文"),
    ("bidi in title", {"title": "停水\u202e通知"}, "标题"),
    # markup
    ("script", {"body": "<script>alert(1)</script>"}, "正文"),
    ("tag in title", {"title": "<b>停水</b>"}, "标题"),
    ("entity", {"body": "停水&lt;通知"}, "正文"),
    ("comment", {"body": "<!-- x -->停水"}, "正文"),
    # forged fields and unknown ones
    ("forged author", {"created_by": "someone"}, "发布人"),
    ("forged status", {"status": "draft"}, "状态"),
    ("forged time", {"published_at": "2020-01-01T00:00:00Z"}, "发布时间"),
    ("forged id", {"_id": "notice:mine"}, "_id"),
    ("unknown field", {"household": "household:x"}, "household"),
    ("unknown level", {"audience": {"level": "compound", "codes": ["c1"]}}, "发布范围"),
    ("unknown tag", {"audience": {"level": "grid", "codes": ["g1"], "tags": ["rich"]}},
     "发布范围"),
    ("code with slash", {"audience": {"level": "grid", "codes": ["../g1"]}}, "发布范围"),
]


@pytest.mark.parametrize(("case", "change", "label"), BAD_DRAFTS, ids=[c[0] for c in BAD_DRAFTS])
async def test_bad_drafts_are_refused_by_label_and_store_nothing(
        client: TestClient, town: Town, case: str, change: dict[str, Any], label: str) -> None:
    body = {**draft({"level": "grid", "codes": [town.g1]}), **change}
    before = await notice_ids(client)
    status, answer = await publish(client, town.sup1, body)
    assert status == 400, (case, answer)
    assert answer["error"] == "bad_request" and label in answer["reason"], answer
    assert " / " in answer["reason"]  # zh-CN first, then English
    assert not re.search(r"/(title|body|audience|pinned|expires_at|images)\b", answer["reason"])
    assert await notice_ids(client) == before


@pytest.mark.parametrize("raw", [
    b'{"title": "\\ud800", "body": "x", "audience": {"level": "grid", "codes": ["G"]}}',
    b'{"title": "t", "body": "a\\udfffb", "audience": {"level": "grid", "codes": ["G"]}}',
    b'[1, 2]', b'"text"', b'{"title": ', b'\xff\xfe',
    b'{"title": ' + b'[' * 100_000 + b']' * 100_000 + b'}',  # nesting deeper than Python's stack
    b'{"title": "t", "body": "b", "audience": {"level": "grid", "codes": ["G"]}, "images": ['
    + b'{"a": ' * 5_000 + b'1' + b'}' * 5_000 + b']}',
])
async def test_broken_bodies_are_refused(client: TestClient, town: Town, raw: bytes) -> None:
    before = await notice_ids(client)
    status, answer = await publish(client, town.sup1, raw.replace(b"G", town.g1.encode()))
    assert status == 400, answer
    assert await notice_ids(client) == before


def image(name: str, data: bytes, content_type: str = "image/png") -> dict[str, str]:
    return {"name": name, "content_type": content_type, "data": b64(data)}


BAD_IMAGES: list[tuple[str, Any]] = [
    ("four", [image(f"{i}.png", PNG) for i in range(4)]),
    ("oversized", [image("big.jpg", JPEG + b"\0" * (512 * 1024), "image/jpeg")]),
    ("svg named png", [image("x.png", b"<svg onload=alert(1)></svg>")]),
    ("html named jpeg", [image("x.jpg", b"<html><script></script>", "image/jpeg")]),
    ("png claiming webp", [image("x.webp", PNG, "image/webp")]),
    ("gif", [image("x.gif", b"GIF89a" + b"\0" * 10, "image/gif")]),
    ("not base64", [{"name": "x.png", "content_type": "image/png", "data": "%%%"}]),
    ("slash in name", [image("../x.png", PNG)]),
    ("control in name", [image("x\x01.png", PNG)]),
    ("same names", [image("x.png", PNG), image("x.png", PNG)]),
    ("extra member", [{**image("x.png", PNG), "stub": True}]),
    ("not a list", {"x.png": image("x.png", PNG)}),
]


@pytest.mark.parametrize(("case", "images"), BAD_IMAGES, ids=[c[0] for c in BAD_IMAGES])
async def test_bad_images_are_refused_and_nothing_stored(client: TestClient, town: Town,
                                                         case: str, images: Any) -> None:
    before = await notice_ids(client)
    status, answer = await publish(client, town.sup1, draft(
        {"level": "grid", "codes": [town.g1]}, images=images))
    assert status == 400, (case, answer)
    assert "图片" in answer["reason"] or "Images" in answer["reason"], answer
    assert await notice_ids(client) == before


async def test_three_images_are_stored_with_the_notice(client: TestClient, town: Town) -> None:
    webp = b"RIFF\0\0\0\0WEBP" + b"\0" * 32
    notice = await published(client, town.sup1, draft(
        {"level": "grid", "codes": [town.g1]}, images=[
            image("a.png", PNG), image("b.jpg", JPEG + b"\0" * (500 * 1024), "image/jpeg"),
            image("c.webp", webp, "image/webp")]))
    stored = await client.app[COUCH].get(db_path(RESIDENTS_DB, notice))
    assert sorted(stored["_attachments"]) == ["a.png", "b.jpg", "c.webp"]
    resp = await client.get(f"/api/notices/{notice}", headers=basic(town.sup1))
    assert [i["name"] for i in (await resp.json())["notice"]["images"]] == [
        "a.png", "b.jpg", "c.webp"]


async def test_one_receipt_per_resident_however_they_race(client: TestClient,
                                                           town: Town) -> None:
    """Twenty receipts of one resident at once, some confirming: one receipt, confirmed,
    without a conflict; a replay changes nothing."""
    notice = await published(client, town.sup1, draft(
        {"level": "community", "codes": [town.c1]}, needs_confirmation=True))
    answers = await asyncio.gather(*(
        client.post(f"/api/notices/{notice}/receipt", headers=basic(town.ra),
                    json={"confirmed": i % 3 == 0}) for i in range(20)))
    assert [r.status for r in answers] == [200] * 20
    couch = client.app[COUCH]
    receipt_id = f"notice_receipt:{notice.removeprefix('notice:')}:{town.ra}"
    stored = await couch.get(db_path(RESIDENTS_DB, receipt_id), conflicts="true")
    assert "_conflicts" not in stored and stored["confirmed_at"]
    assert int(stored["_rev"].split("-")[0]) <= 2  # made once, confirmed once
    assert stored["created_by"] == town.ra and stored["household"] == town.household(town.g1, 1)
    rows = await couch.get(db_path(RESIDENTS_DB, "_all_docs"),
                           startkey=json.dumps(f"notice_receipt:{notice[7:]}:"),
                           endkey=json.dumps(f"notice_receipt:{notice[7:]}:\ufff0"))
    assert len(rows["rows"]) == 1
    resp = await client.post(f"/api/notices/{notice}/receipt", headers=basic(town.ra), json={})
    assert (await resp.json())["receipt"]["confirmed_at"] == stored["confirmed_at"]
    after = await couch.get(db_path(RESIDENTS_DB, receipt_id))
    assert after["_rev"] == stored["_rev"]  # the replay wrote nothing


@pytest.mark.parametrize("body", [
    {"created_by": "someone"}, {"household": "household:x-0001"}, {"grid": "g9"},
    {"confirmed": "yes"}, {"confirmed": None}, {"notice": "notice:other"}])
async def test_a_receipt_takes_no_forged_field(client: TestClient, town: Town,
                                               body: dict[str, Any]) -> None:
    notice = await published(client, town.sup1, draft({"level": "community",
                                                       "codes": [town.c1]}))
    resp = await client.post(f"/api/notices/{notice}/receipt", headers=basic(town.ra), json=body)
    assert resp.status == 400, await resp.text()


async def test_a_notice_not_theirs_answers_as_none(client: TestClient, town: Town) -> None:
    """A resident outside the audience, a withdrawn notice and a made-up id answer alike."""
    notice = await published(client, town.sup1, draft({"level": "community",
                                                       "codes": [town.c1]}))
    outside = await client.post(f"/api/notices/{notice}/receipt", headers=basic(town.rc),
                                json={})
    made_up = await client.post("/api/notices/notice:0000000000000000/receipt",
                                headers=basic(town.rc), json={})
    assert outside.status == made_up.status == 404
    assert await outside.json() == await made_up.json()
    resp = await client.post(f"/api/notices/{notice}/withdraw", headers=basic(town.sup1))
    assert resp.status == 200 and (await resp.json())["notice"]["status"] == "withdrawn"
    gone = await client.post(f"/api/notices/{notice}/receipt", headers=basic(town.ra), json={})
    assert gone.status == 404


async def test_only_the_author_or_an_admin_withdraws(client: TestClient, town: Town) -> None:
    notice = await published(client, town.sup1, draft({"level": "community",
                                                       "codes": [town.c1]}))
    resp = await client.post(f"/api/notices/{notice}/withdraw", headers=basic(town.street_sup))
    assert resp.status == 404
    resp = await client.post(f"/api/notices/{notice}/withdraw", headers=basic(town.admin))
    assert resp.status == 200
    stored = await client.app[COUCH].get(db_path(RESIDENTS_DB, notice))
    assert stored["status"] == "withdrawn"
    other = await client.get(f"/api/notices/{notice}/follow-up", headers=basic(town.worker1))
    assert other.status == 403


async def test_a_special_groups_households_are_listed_only_unmasked(client: TestClient,
                                                                   town: Town) -> None:
    """A notice to the elderly living alone: its follow-up would say who they are, which
    special groups hide from a supervisor without the right; the grid's worker sees them."""
    notice = await published(client, town.sup1, draft(
        {"level": "community", "codes": [town.c1], "tags": ["elderly_alone"]},
        needs_confirmation=True))
    resp = await client.get(f"/api/notices/{notice}/follow-up", headers=basic(town.sup1))
    grids = (await resp.json())["grids"]
    assert [(g["grid"], g["counts"]["without_account"], g["households"], g["listed"])
            for g in grids] == [(town.g1, 1, [], False)]
    assert "张" not in json.dumps(grids, ensure_ascii=False)
    resp = await client.get("/api/notices/to-visit", headers=basic(town.worker1))
    mine = [n for n in (await resp.json())["notices"] if n["notice"]["_id"] == notice]
    assert [h["head_name"] for h in mine[0]["grids"][0]["households"]] == ["张三"]


async def test_the_picker_names_the_areas_of_the_authors_scope(client: TestClient,
                                                               town: Town) -> None:
    resp = await client.get("/api/notices/areas", headers=basic(town.sup1))
    areas = await resp.json()
    assert areas["city"] is False and areas["streets"] == []
    assert areas["communities"] == [{"code": town.c1, "name": "坊门社区"}]
    assert [g["code"] for g in areas["grids"]] == sorted([town.g1, town.g2])
    resp = await client.get("/api/notices/areas", params={"grid": town.g1},
                            headers=basic(town.sup1))
    assert (await resp.json())["buildings"] == [{"code": "c1-3", "name": "坊门小区 3幢",
                                                 "grid": town.g1}]
    resp = await client.get("/api/notices/areas", params={"grid": town.g3},
                            headers=basic(town.sup1))
    assert resp.status == 404
    resp = await client.get("/api/notices/areas", headers=basic(town.admin))
    assert (await resp.json())["city"] is True


async def test_names_in_full_only_with_the_right_asked_for(client: TestClient, town: Town,
                                                           city: City) -> None:
    """`?unmask=1` shows the heads' names in full to a holder of the right (audited), and is
    refused to anyone else; without it, names stay masked for everyone."""
    notice = await published(client, town.sup1, draft({"level": "grid", "codes": [town.g1]}))
    holder = await city.user("supervisor", communities=[town.c1], rights=["unmask"])
    await wait_for_user(client, holder)
    path = f"/api/notices/{notice}/follow-up"
    refused = await client.get(path, params={"unmask": "1"}, headers=basic(town.sup1))
    assert refused.status == 403
    for who, query, heads in ((holder, {"unmask": "1"}, {"王伟", "李娜", "张三"}),
                              (holder, {}, {"王*", "李*", "张*"})):
        resp = await client.get(path, params=query, headers=basic(who))
        grids = (await resp.json())["grids"]
        assert {h["head_name"] for h in grids[0]["households"]} == heads


async def test_an_expired_notice_takes_no_receipt(client: TestClient, town: Town) -> None:
    notice = f"notice:expired{os.getpid()}"
    await client.app[COUCH].put(db_path(RESIDENTS_DB, notice), {
        **draft({"level": "grid", "codes": [town.g1]}), "_id": notice, "type": "notice",
        "schema_version": 1, "created_by": town.sup1, "status": "published",
        "published_at": "2026-01-01T00:00:00+08:00", "expires_at": "2026-01-02T00:00:00+08:00",
        "needs_confirmation": True})
    resp = await client.post(f"/api/notices/{notice}/receipt", headers=basic(town.ra), json={})
    assert resp.status == 404
    resp = await client.get("/api/notices/to-visit", headers=basic(town.worker1))
    assert notice not in {n["notice"]["_id"] for n in (await resp.json())["notices"]}


async def test_a_city_notice_is_followed_up_by_each_supervisor_in_their_grids(
        client: TestClient, town: Town, city: City) -> None:
    """The admin writes to the city; each supervisor follows it up in their own grids only.
    A community's notice stays out of another community's supervisor's sight."""
    notice = await published(client, town.admin, draft({"level": "city"},
                                                       needs_confirmation=True))
    own = await published(client, town.sup1, draft({"level": "community", "codes": [town.c1]}))
    sup2 = await city.user("supervisor", communities=[town.c2])
    await wait_for_user(client, sup2)
    for who, grids in ((town.sup1, [town.g1]), (sup2, [town.g3]),
                       (town.street_sup, [town.g1, town.g3])):
        resp = await client.get(f"/api/notices/{notice}/follow-up", headers=basic(who))
        assert resp.status == 200, await resp.text()
        # In code order: `t…n99` after `t…n101` when the session's counter crosses 100.
        assert [g["grid"] for g in (await resp.json())["grids"]] == sorted(grids)
        listed = await client.get("/api/notices", headers=basic(who))
        assert notice in {n["_id"] for n in (await listed.json())["notices"]}
    resp = await client.get(f"/api/notices/{own}/follow-up", headers=basic(sup2))
    assert resp.status == 404
    listed = await client.get("/api/notices", headers=basic(sup2))
    assert own not in {n["_id"] for n in (await listed.json())["notices"]}
    resp = await client.post(f"/api/notices/{notice}/withdraw", headers=basic(town.sup1))
    assert resp.status == 404  # only its author or an admin withdraws it


@pytest.mark.parametrize("query", [
    "grid=OTHER", "grid=nowhere", "grid=..%2F..%2Flinli-directory", "grid=%00", "grid=%ED%A0%80",
    "grid=G&grid=G", "grid=" + "g" * 5000])
async def test_the_picker_answers_a_probe_as_an_unknown_grid(client: TestClient, town: Town,
                                                              query: str) -> None:
    """Another community's grid, one that does not exist, a path, a control character, a
    broken encoding, a repeated or huge parameter: a 4xx in CouchDB's shape, nothing named."""
    resp = await client.get("/api/notices/areas?" + query.replace("OTHER", town.g3).replace(
        "G", town.g1), headers=basic(town.sup1))
    body = await resp.json()
    assert resp.status in (400, 404) and set(body) == {"error", "reason"}, body
    assert town.g3 not in body["reason"] and "坊门" not in body["reason"]


async def test_two_server_processes_keep_one_receipt(client: TestClient, town: Town,
                                                     aiohttp_client: Any, config: Config) -> None:
    """The store decides between two server processes as between two requests: a resident's
    phones racing through two of them still leave one receipt, confirmed, without a conflict."""
    other = await aiohttp_client(create_app(config))
    await wait_for_user(other, town.rb)
    notice = await published(client, town.sup1, draft(
        {"level": "grid", "codes": [town.g1]}, needs_confirmation=True))
    path = f"/api/notices/{notice}/receipt"
    answers = await asyncio.gather(*(
        server.post(path, headers=basic(town.rb), json={"confirmed": n % 2 == 1})
        for n in range(10) for server in (client, other)))
    assert {a.status for a in answers} == {200}
    stored = await client.app[COUCH].get(db_path(
        RESIDENTS_DB, f"notice_receipt:{notice.removeprefix('notice:')}:{town.rb}"),
        conflicts="true")
    assert "_conflicts" not in stored and stored["confirmed_at"]
    assert int(stored["_rev"].split("-")[0]) <= 2  # made once, confirmed once


@pytest.mark.parametrize("audience", [
    {"level": "community", "codes": ["nowhere"]}, {"level": "street", "codes": ["nowhere"]},
    {"level": "grid", "codes": ["nowhere"]}])
async def test_an_admins_codes_must_exist(client: TestClient, town: Town,
                                          audience: dict[str, Any]) -> None:
    """The admin addresses anywhere, but somewhere: a typo would reach no one."""
    before = await notice_ids(client)
    status, answer = await publish(client, town.admin, draft(audience))
    assert status == 400 and "发布范围" in answer["reason"], answer
    assert await notice_ids(client) == before
