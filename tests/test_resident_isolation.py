"""Must hold (issue 15): a resident sees nothing of any other household, on any route, with any
parameter. Two residents of one building, each with a household, members, a correction
request and a receipt; each walks EVERY route the server has (the API routes of the app's
router and the three tables of routing.py, so a route added later is walked too), with the
other household's ids in the path, the query and the body, and every method. No answer may
hold the other household's names, ID numbers, phones, rooms or account; and the answer about
the other's id must be the answer about an id that does not exist, byte for byte."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually
from test_resident_sync import a_notice, save_notice, two_neighbours
from test_residents_signup import PASSWORD, account_of

from server.web import routing
from server.web.keys import RESIDENT_INDEX

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")
FILL = {"ddoc": "linli", "view": "by_type", "attachment": "photo.jpg"}
SEQ = re.compile(r'"(last_seq|seq|update_seq)":"[^"]*"')
UUID = re.compile(r'"[0-9a-f]{32}"')  # _uuids' fresh ones
NOW = re.compile(r'"20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)?"')  # generated_at


def members(place: Any, n: int, household: int, name: str, id_number: str) -> dict[str, Any]:
    return {"_id": f"person:{place.grid}-{n}", "type": "person", "schema_version": 1,
            "grid": place.grid, "created_by": place.worker, "household": place.household(
                household), "name": name, "status": "present", "relationship": "2",
            "sex": "1", "birth_year": 1990, "birth_month": 1, "id_number": id_number,
            "phone": f"1370000{n:04d}", "remarks": f"网格员备注{name}"}


def route_paths(db_routes: dict[str, tuple[routing.Route[Any], ...]], app_paths: list[str],
                doc_id: str) -> Iterator[str]:
    """Every route, its placeholders filled: the databases named, `doc_id` for a document."""
    for db, routes in db_routes.items():
        for route in routes:
            parts = [p for p in route.name.split("/") if p]
            yield "/couch/" + "/".join(fill(p, db, doc_id) for p in parts)
    for route in routing.SERVER_ROUTES:
        yield "/couch/" + route.name.strip("/")
    for path in app_paths:
        yield re.sub(r"\{[^}]+\}", quote(doc_id, safe=""), path)


def fill(part: str, db: str, doc_id: str) -> str:
    if part == "{db}":
        return db
    for name, value in FILL.items():
        part = part.replace("{" + name + "}", value)
    return re.sub(r"\{(doc|id)\}", quote(doc_id, safe=""), part)


def requests(path: str, doc_id: str) -> Iterator[tuple[str, str, dict[str, str], Any]]:
    """Each method, with no parameter, the id's parameters, and a range around it."""
    listed = json.dumps([doc_id])
    kind = doc_id.split(":")[0]
    queries = [{}, {"id": doc_id, "household": doc_id, "record": doc_id, "keys": listed,
                    "doc_ids": listed, "filter": "_doc_ids", "include_docs": "true",
                    "open_revs": "all", "since": "0", "grid": doc_id.split(":")[1][:7]},
               {"startkey": json.dumps(f"{kind}:"), "endkey": json.dumps(f"{kind}:\ufff0"),
                "include_docs": "true", "conflicts": "true", "revs": "true"}]
    body = {"docs": [{"id": doc_id}, {"_id": doc_id, "type": kind}], "keys": [doc_id],
            "doc_ids": [doc_id], "held": [doc_id], doc_id: ["1-abc"], "household": doc_id,
            "id": doc_id, "_id": doc_id, "notice": doc_id, "record": doc_id}
    for method in METHODS:
        for query in queries:
            yield method, path, query, body if method in ("POST", "PUT") else None


async def ask(client: TestClient, phone: str, method: str, path: str, query: dict[str, str],
              body: Any) -> tuple[int, str]:
    resp = await client.request(method, path, params=query, headers=basic(phone, PASSWORD),
                                json=body)
    return resp.status, (await resp.read()).decode("utf-8", "replace")


@pytest.mark.slow  # every route, method and parameter set, twice over
async def test_a_resident_sees_nothing_of_another_household_on_any_route(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    place, wang, li = await two_neighbours(client, city, caplog)
    accounts = {wang: await account_of(client, wang), li: await account_of(client, li)}
    # Each household has a member with an ID number and a worker's note, and each resident a
    # correction request and a receipt for the community's notice.
    await city.save(place.grid, members(place, 11, 1, "王小明", "330802199001010011"))
    await city.save(place.grid, members(place, 12, 2, "李小红", "330802199202020022"))
    await save_notice(city, a_notice(place, 1))
    index = client.app[RESIDENT_INDEX]
    index.notice(f"grid-{place.grid}")
    corrections: dict[str, str] = {}
    for n, phone in enumerate((wang, li), start=1):
        account = accounts[phone]
        await eventually(lambda a=account: f"notice:{place.grid}-1" in index.allowed(a).get(
            "residents", ()), what="the notice indexed")
        headers = basic(phone, PASSWORD)
        resp = await client.post("/api/residents/corrections", headers=headers, json={
            "changes": [{"record": place.household(n), "field": "/phone",
                         "proposed": "13800138000"}], "note": f"说明{n}"})
        assert resp.status == 201, await resp.text()
        corrections[phone] = (await resp.json())["id"]
        resp = await client.post(f"/api/notices/notice:{place.grid}-1/receipt",
                                 headers=headers, json={"confirmed": True})
        assert resp.status == 200, await resp.text()
    # What each must never see of the other's: names, ID numbers (any 8 digits of them),
    # phones, the room, the account, the worker's notes.
    secrets = {wang: ("王伟", "王芳", "王小明", "19900101", "13900000001", "13700000011",
                      '"301"', accounts[wang], "网格员备注"),
               li: ("李娜", "李小红", "19920202", "13900000002", "13700000012", '"302"',
                    accounts[li], "网格员备注")}
    app_paths = sorted({r.resource.canonical for r in client.app.router.routes()
                        if r.resource is not None and r.resource.canonical.startswith("/api/")})
    databases = {"linli-resident": routing.RESIDENT_ROUTES,
                 f"grid-{place.grid}": routing.DATABASE_ROUTES,
                 "linli-residents": routing.DATABASE_ROUTES}
    found: dict[str, list[str]] = {}
    differ: list[str] = []
    asked = 0
    for phone, other in ((wang, li), (li, wang)):
        n = 2 if phone == wang else 1
        theirs = [place.household(n), f"person:{place.grid}-1{n}",
                  corrections[other],
                  f"notice_receipt:{place.grid}-1:{accounts[other]}"]
        for doc_id in theirs:
            missing = re.sub(r"[0-9a-f]{4}$", "9999", doc_id[:-1] + "0")
            for path in sorted(set(route_paths(databases, app_paths, doc_id))):
                for method, _, query, body in requests(path, doc_id):
                    got = await ask(client, phone, method, path, query, body)
                    asked += 1
                    # What the request itself says (an id naming its author) is no leak.
                    sent = json.dumps([path, query, body], ensure_ascii=False)
                    leaked = [s for s in secrets[other] if s not in sent and (
                        s in got[1] or json.dumps(s)[1:-1] in got[1])]
                    where = f"{phone} {method} {path} {sorted(query)}"
                    assert got[0] < 500, (where, got)
                    if leaked:
                        found[where] = leaked
                    swap = json.loads(json.dumps([path, query, body]).replace(
                        doc_id, missing).replace(quote(doc_id, safe=""), quote(missing, safe="")))
                    again = await ask(client, phone, method, *swap)
                    if normal(got, doc_id) != normal(again, missing):
                        differ.append(f"{where}: {got} / {again}")
    assert found == {}
    if differ:
        pytest.fail("\n".join(differ[:20]))
    assert asked > 1000  # not vacuous: every route, method and parameter set was walked
    # Not vacuous either: each sees their own.
    resp = await client.get("/couch/linli-resident/_all_docs?include_docs=true",
                            headers=basic(wang, PASSWORD))
    own = await resp.text()
    assert "王小明" in own and "****************11" in own and "网格员备注" not in own


def normal(answer: tuple[int, str], doc_id: str) -> tuple[int, str]:
    status, text = answer
    text = text.replace(json.dumps(doc_id)[1:-1], "ID").replace(quote(doc_id, safe=""), "ID")
    # A message repeats a field name sent (an id as a key) cut to its first 40 characters
    # (server/domain/text.py, shown_name): what was sent, not what is stored.
    text = text.replace(doc_id[:40], "ID")
    return status, NOW.sub('"T"', UUID.sub('"U"', SEQ.sub(r'"\1":"S"', text)))
