"""Issue 23, item 4: a lost phone is revoked by the admin. Each login is a device the admin
lists; revoking one ends its session at once, on every server process, and every later
request with its cookie, on every route but the login, is refused and told to wipe
(server/domain/devices.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import PASSWORD, City, basic, eventually, wait_for_user
from test_holes_sessions import login

from server.config import Config
from server.domain.devices import REVOKED_HEADER, device_doc
from server.web.api import OPENAPI
from server.web.app import create_app
from server.web.auth import SESSION_COOKIE

PHONE = "Mozilla/5.0 (Linux; Android 13; 网格通 X1)\u202e evil"


async def a_phone(client: Any, name: str, agent: str = PHONE) -> str:
    resp = await client.post("/couch/_session", json={"name": name, "password": PASSWORD},
                             headers={"User-Agent": agent})
    assert resp.status == 200, await resp.text()
    client.session.cookie_jar.clear()
    return str(resp.cookies[SESSION_COOKIE].value)


async def devices_of(client: Any, admin: str, name: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/users/{name}/devices", headers=basic(admin))
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["devices"])


def every_route() -> list[tuple[str, str]]:
    """Each method and path of the API description, its parameters filled, and the store's."""
    spec = json.loads(OPENAPI.read_text("utf-8"))
    routes = [(method.upper(), path.replace("{", "x").replace("}", ""))
              for path, methods in spec["paths"].items() for method in methods
              if method in ("get", "post", "put", "delete")]
    return [*routes, ("GET", "/couch/_session"), ("DELETE", "/couch/_session"),
            ("GET", "/couch/"), ("GET", "/couch/_all_dbs")]


async def test_a_revoked_phone_is_refused_everywhere_and_told_to_wipe(
        aiohttp_client: Any, config: Config, city: City) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    admin = await city.user("admin")
    one = await aiohttp_client(create_app(config))
    two = await aiohttp_client(create_app(config))  # another process on the same store
    for app in (one, two):
        for name in (worker, admin):
            await wait_for_user(app, name)
    lost = await a_phone(one, worker)
    kept = await login(two, worker)
    one.session.cookie_jar.clear()
    two.session.cookie_jar.clear()

    listed = await devices_of(one, admin, worker)
    assert len(listed) == 2 and all(set(d) == {"id", "since", "agent", "revoked_at",
                                               "revoked_by"} for d in listed)
    [phone] = [d for d in listed if "网格通" in d["agent"]]
    assert phone["agent"] == "Mozilla/5.0 (Linux; Android 13; 网格通 X1) evil"  # cleaned
    text = json.dumps(listed)
    assert lost.split(".")[0] not in text  # nothing a cookie is made of

    db = f"/couch/grid-{grid}/_all_docs"
    resp = await one.get(db, cookies={SESSION_COOKIE: lost})
    assert resp.status == 200
    resp = await one.post(f"/api/users/{worker}/devices/{phone['id']}/revoke",
                          headers=basic(admin))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["device"]["revoked_by"] == admin

    # Refused at once here, and soon by the other process, on every route but the login.
    async def refused_on(client: Any, method: str, path: str) -> bool:
        client.session.cookie_jar.clear()
        resp = await client.request(method, path, cookies={SESSION_COOKIE: lost},
                                    headers={"Origin": str(client.make_url("")).rstrip("/")})
        return resp.status == 401 and resp.headers.get(REVOKED_HEADER) == "1" and set(
            (await resp.json()).keys()) == {"error", "reason"}
    for method, path in every_route():
        assert await refused_on(one, method, path), (method, path)
    await eventually(lambda: refused_on(two, "GET", db))
    # The user's other phone goes on; the lost one can log in again, as a new device.
    two.session.cookie_jar.clear()
    resp = await two.get(db, cookies={SESSION_COOKIE: kept})
    assert resp.status == 200
    one.session.cookie_jar.clear()
    resp = await one.post("/couch/_session", cookies={SESSION_COOKIE: lost}, json={
        "name": worker, "password": PASSWORD})
    assert resp.status == 200
    assert len(await devices_of(one, admin, worker)) == 3


async def test_only_an_admin_lists_and_revokes_and_only_the_users_own(
        client: Any, city: City) -> None:
    grid = await city.grid(community="devc")
    worker = await city.user(grids=[grid])
    other = await city.user(grids=[grid])
    supervisor = await city.user("supervisor", communities=["devc"])
    admin = await city.user("admin")
    for name in (worker, other, supervisor, admin):
        await wait_for_user(client, name)
    await a_phone(client, worker)
    [phone] = await devices_of(client, admin, worker)
    revoke = f"/api/users/{worker}/devices/{phone['id']}/revoke"
    for headers, status in (({}, 401), (basic(worker), 403), (basic(supervisor), 403),
                            (basic("nobody-at-all"), 401), (basic(worker, "wrong-pass"), 401)):
        for method, path in (("GET", f"/api/users/{worker}/devices"), ("POST", revoke)):
            resp = await client.request(method, path, headers=headers)
            assert resp.status == status, (method, headers, await resp.text())
    # Another user's device, named under someone else; ids that are not ids.
    for path in (f"/api/users/{other}/devices/{phone['id']}/revoke",
                 f"/api/users/{worker}/devices/{'0' * 24}/revoke",
                 f"/api/users/{worker}/devices/{phone['id'].upper()}/revoke",
                 f"/api/users/{worker}/devices/..%2f{phone['id']}/revoke",
                 f"/api/users/{worker}/devices/%00/revoke",
                 f"/api/users/{worker}/devices/{'a' * 5000}/revoke",
                 f"/api/users/%ED%A0%80/devices/{phone['id']}/revoke"):
        resp = await client.post(path, headers=basic(admin))
        assert resp.status in (400, 404), (path, await resp.text())
        assert set((await resp.json()).keys()) == {"error", "reason"}
    resp = await client.get(f"/api/users/{other}/devices", headers=basic(admin))
    assert (await resp.json())["devices"] == []
    resp = await client.post(revoke, headers=basic(admin))
    assert resp.status == 200
    resp = await client.post(revoke, headers=basic(admin))  # a replay
    assert resp.status == 409 and set((await resp.json()).keys()) == {"error", "reason"}


@pytest.mark.parametrize("cookie", ["", "x", "a.b", "eyJuIjoieCJ9.zz", "\u00e9" * 10])
async def test_a_garbled_cookie_is_only_anonymous(client: Any, cookie: str) -> None:
    resp = await client.get("/api/health", cookies={SESSION_COOKIE: cookie})
    assert resp.status == 200 and REVOKED_HEADER not in resp.headers


@pytest.mark.parametrize("agent", ["a\x00b", "a\x1b[31mb", "a\u202eb", "a\ud800b", "a\x85b"])
def test_a_device_description_keeps_no_control_character(agent: str) -> None:
    assert device_doc("w", "0" * 32, "2026-12-03T00:00:00+00:00", agent)["agent"] in (
        "ab", "a[31mb")
    assert len(device_doc("w", "0" * 32, "t", "x" * 5000)["agent"]) == 200
