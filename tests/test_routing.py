"""The `/couch/` routing table (server/web/routing.py): each endpoint by name with its methods, a
method or an endpoint not in the table refused in CouchDB's shape with the status CouchDB
clients know, and every route behind the one middleware that authenticates and refuses
cross-site requests (server/web/guard.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from conftest import PASSWORD, City, basic, visit, wait_for_user

from server.web import routing

READ = {"GET", "HEAD"}
DOCUMENT = {"GET", "HEAD", "PUT", "DELETE"}
TABLE = {
    "/": READ,
    "_session": {"GET", "POST", "DELETE"},
    "_all_dbs": READ,
    "_uuids": READ,
    "_up": READ,
    "{db}": {"GET", "HEAD", "POST", "PUT"},
    "{db}/_changes": {"GET", "HEAD", "POST"},
    "{db}/_revs_diff": {"POST"},
    "{db}/_bulk_get": {"POST"},
    "{db}/_all_docs": {"GET", "HEAD", "POST"},
    "{db}/_bulk_docs": {"POST"},
    "{db}/_local/{id}": DOCUMENT,
    "{db}/_design/{ddoc}": DOCUMENT,
    "{db}/_design%2F{ddoc}": DOCUMENT,
    "{db}/_design/{ddoc}/_view/{view}": READ,
    "{db}/{doc}": DOCUMENT,
    "{db}/{doc}/{attachment}": DOCUMENT,
}
NOT_ALLOWED = 405, "method_not_allowed"
MISSING = 404, "not_found", "missing"
# What a worker of the grid is answered for a method not in the table.
REFUSALS: dict[str, tuple[int, str, str]] = {
    "_session": (*NOT_ALLOWED, "Only GET,POST,DELETE allowed"),
    "_all_dbs": MISSING,
    "_uuids": MISSING,
    "_up": MISSING,
    "{db}": (*NOT_ALLOWED, "Only GET,HEAD,POST,PUT allowed"),
    "{db}/_changes": (*NOT_ALLOWED, "Only GET,POST allowed"),  # CouchDB's words
    "{db}/_revs_diff": (*NOT_ALLOWED, "Only POST allowed"),
    "{db}/_bulk_get": (*NOT_ALLOWED, "Only POST allowed"),
    "{db}/_all_docs": (*NOT_ALLOWED, "Only GET,HEAD,POST allowed"),
    "{db}/_bulk_docs": (*NOT_ALLOWED, "Only POST allowed"),
    "{db}/_local/{id}": (*NOT_ALLOWED, "Only GET,HEAD,PUT,DELETE allowed"),
    "{db}/_design/{ddoc}": (*NOT_ALLOWED, "Only GET,HEAD,PUT,DELETE allowed"),
    "{db}/_design%2F{ddoc}": (*NOT_ALLOWED, "Only GET,HEAD,PUT,DELETE allowed"),
    "{db}/_design/{ddoc}/_view/{view}": (403, "forbidden", "not available through the gateway"),
    "{db}/{doc}": (*NOT_ALLOWED, "Only GET,HEAD,PUT,DELETE allowed"),
    "{db}/{doc}/{attachment}": (*NOT_ALLOWED, "Only GET,HEAD,PUT,DELETE allowed"),
}
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "COPY")
UNSAFE = {"POST", "PUT", "DELETE", "PATCH", "COPY"}
ROUTES = routing.SERVER_ROUTES + routing.DATABASE_ROUTES


def path_of(name: str, grid: str, doc_id: str) -> str:
    """A concrete path for a route's name."""
    values = {"db": f"grid-{grid}", "doc": doc_id, "id": "ck", "ddoc": "linli", "view": "v",
              "attachment": "a.jpg"}
    return "/couch/" + re.sub(r"\{(\w+)\}", lambda m: values[m[1]], name.strip("/"))


async def expect_error(resp: Any, status: int, error: str, reason: str) -> None:
    text = await resp.text()
    assert resp.status == status, (resp.method, resp.url, resp.status, text)
    if resp.method == "HEAD":
        return  # no body to a HEAD
    body = json.loads(text)
    assert set(body) == {"error", "reason"} and body["error"] == error, (resp.url, body)
    assert reason in body["reason"], (resp.url, body)


@pytest.fixture
async def grid_worker(client: Any, city: City) -> tuple[str, str, str]:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    doc = visit(grid, worker, "routed")
    resp = await client.put(f"/couch/grid-{grid}/{doc['_id']}", json=doc, headers=basic(worker))
    assert resp.status == 201
    return grid, worker, doc["_id"]


def test_the_table_names_each_endpoint_with_its_methods() -> None:
    assert {route.name: set(route.methods) for route in ROUTES} == TABLE
    assert len(ROUTES) == len(TABLE)  # no name twice
    assert set(REFUSALS) == set(TABLE) - {"/"}


@pytest.mark.parametrize(("segments", "name", "parts"), [
    ([], "/", {}),
    (["_session"], "_session", {}),
    (["grid-a"], "{db}", {"db": "grid-a"}),
    (["grid-a", "_local", "_x"], "{db}/_local/{id}", {"db": "grid-a", "id": "_x"}),
    (["grid-a", "_design/v"], "{db}/_design%2F{ddoc}", {"db": "grid-a", "ddoc": "v"}),
    (["grid-a", "_design", "v", "_view", "w"], "{db}/_design/{ddoc}/_view/{view}",
     {"db": "grid-a", "ddoc": "v", "view": "w"}),
    (["grid-a", "household:1"], "{db}/{doc}", {"db": "grid-a", "doc": "household:1"}),
    (["grid-a", "a/b", "photos", "1.jpg"], "{db}/{doc}/{attachment}",
     {"db": "grid-a", "doc": "a/b", "attachment": "photos/1.jpg"}),
    # Not in the table: CouchDB's other endpoints, and sub-paths of those in it.
    (["_replicate"], None, None), (["_session", "x"], None, None),
    (["grid-a", "_find"], None, None), (["grid-a", "_local"], None, None),
    (["grid-a", "_changes", "x"], None, None), (["grid-a", "_design", "v", "_info"], None, None),
    (["grid-a", "_design/v", "a.jpg"], None, None), (["grid-a", "_x", "a.jpg"], None, None),
])
def test_paths_find_their_route(segments: list[str], name: str | None,
                                parts: dict[str, str] | None) -> None:
    found = routing.find(ROUTES, segments)
    assert ((found[0].name, found[1]) if found else (None, None)) == (name, parts)


async def test_methods_not_in_the_table_are_refused(
        client: Any, city: City, grid_worker: tuple[str, str, str]) -> None:
    grid, worker, doc_id = grid_worker
    before = await city.records(grid)
    for name, methods in TABLE.items():
        if name == "/":
            continue  # the welcome answers any method, as it always did here
        for method in sorted(set(METHODS) - methods):
            resp = await client.request(method, path_of(name, grid, doc_id), json={},
                                        headers=basic(worker))
            await expect_error(resp, *REFUSALS[name])
    assert await city.records(grid) == before


@pytest.mark.parametrize(("path", "worker_answer", "stranger_status"), [
    ("_replicate", MISSING, 401),
    ("_session/x", MISSING, 404),
    ("grid-{grid}/_find", (403, "forbidden", "not available through the gateway"), 401),
    ("grid-{grid}/_local", (403, "forbidden", "not available through the gateway"), 401),
    ("grid-{grid}/_changes/x", (403, "forbidden", "not available through the gateway"), 401),
    ("grid-{grid}/_security", (403, "forbidden", "_security"), 401),
])
async def test_endpoints_not_in_the_table_are_refused(
        client: Any, grid_worker: tuple[str, str, str], path: str,
        worker_answer: tuple[int, str, str], stranger_status: int) -> None:
    grid, worker, _doc_id = grid_worker
    url = "/couch/" + path.format(grid=grid)
    await expect_error(await client.get(url, headers=basic(worker)), *worker_answer)
    resp = await client.get(url)
    assert resp.status == stranger_status and set(await resp.json()) == {"error", "reason"}


async def test_every_database_route_asks_who_is_asking(
        client: Any, grid_worker: tuple[str, str, str]) -> None:
    grid, _worker, doc_id = grid_worker
    for route in routing.DATABASE_ROUTES:
        for method in route.methods:
            resp = await client.request(method, path_of(route.name, grid, doc_id), json={})
            await expect_error(resp, 401, "unauthorized", "You are not logged in")


async def test_every_write_route_refuses_cross_site_cookie_requests(
        client: Any, city: City, grid_worker: tuple[str, str, str]) -> None:
    """A page of another site cannot act with the phone's cookie on any route, nor log the
    phone into its own account (a login sets the cookie)."""
    grid, worker, doc_id = grid_worker
    before = await city.records(grid)
    own = str(client.make_url("/")).rstrip("/")
    for foreign in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        await expect_error(await client.post("/couch/_session", headers=foreign,
                                             json={"name": worker, "password": PASSWORD}),
                           403, "forbidden", "Cross-site")
        resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD},
                                 headers={"Origin": own})
        assert resp.status == 200, await resp.text()  # the cookie is in the client's jar now
        writes = 0
        for route in ROUTES:
            for method in sorted(UNSAFE & set(route.methods)):
                resp = await client.request(method, path_of(route.name, grid, doc_id),
                                            json={"_id": doc_id, "docs": []}, headers=foreign)
                await expect_error(resp, 403, "forbidden", "Cross-site")
                writes += 1
        assert writes == 19
        resp = await client.get("/couch/_session")  # the cookie still works: no logout either
        assert (await resp.json())["userCtx"]["name"] == worker
        client.session.cookie_jar.clear()
    assert await city.records(grid) == before


async def test_couch_is_reached_only_through_the_table(client: Any) -> None:
    """No other route of the app answers under /couch/: an endpoint added elsewhere would skip
    the table and what it checks."""
    couch = [route for route in client.app.router.routes()
             if route.resource is not None
             and route.resource.canonical.startswith(routing.PREFIX)]
    assert len(couch) == 2  # /couch and /couch/{tail}
    assert all(route.handler is routing.couch_endpoint for route in couch)
