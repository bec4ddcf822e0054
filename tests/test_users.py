"""Issue 22, item 10: an admin disables, enables or removes a staff account, by the command
(`linli user disable|enable|remove`) or on the admin's screen (`/api/users`). A disabled
account's sessions end at once: its next request is refused, by the process that disabled it
before it answers and by every other one as it follows the directory; enabling again lets the
person log in but brings no old cookie back. A removed account keeps its name on what it wrote,
and the name is never given to anyone else."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import couchdb
import pytest
from conftest import PASSWORD, City, basic, eventually, visit, wait_for_user
from test_admin_rights import Linli, linli  # noqa: F401  (the fixture)
from test_holes_sessions import eventually_refused, login, status_with

from server.domain.scope import DIRECTORY_DB, ROLES, User, grid_db
from server.web.keys import FEEDS_HELD


async def test_the_command_disables_enables_and_removes_a_user(
        client: Any, city: City, linli: Linli, couch: couchdb.Server) -> None:  # noqa: F811
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    path = f"/couch/grid-{grid}"
    resp = await client.put(f"{path}/household_visit:{grid}-w1",
                            json=visit(grid, worker, "w1"), headers=basic(worker))
    assert resp.status == 201, await resp.text()
    cookie = await login(client, worker)
    assert await status_with(client, path, cookie) == 200

    status, out, err = await city.run(linli, "user", "disable", worker)
    assert status == 0 and "sessions have ended" in out, err
    await eventually_refused(client, path, cookie)  # the session, as soon as the feed says so
    client.session.cookie_jar.clear()
    assert (await client.get(path, headers=basic(worker))).status == 401
    resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD})
    assert resp.status == 401

    status, _, err = await city.run(linli, "user", "enable", worker)
    assert status == 0, err

    async def logs_in() -> bool:
        client.session.cookie_jar.clear()
        return (await client.get(path, headers=basic(worker))).status == 200

    await eventually(logs_in, 5, what="the enabled worker logs in")
    assert await status_with(client, path, cookie) == 401  # the old cookie stays dead

    status, _, err = await city.run(linli, "user", "remove", worker)
    assert status == 0, err
    await eventually_refused(client, path, await login_anyway(client, worker, cookie))
    doc = await city.run(lambda: couch[DIRECTORY_DB].get(f"user:{worker}"))
    assert doc["name"] == worker and doc["removed_at"] and doc["password"] == ""
    assert not doc["grids"] and "rights" not in doc
    # What they wrote still names them, and nobody can take the name.
    written = await city.get(grid, f"household_visit:{grid}-w1")
    assert written["created_by"] == worker
    status, _, err = await city.run(linli, "user", "add", worker, "--role", "worker",
                                    "--grid", grid, "--password-stdin", password=PASSWORD)
    assert status == 1 and "已存在" in err
    status, _, err = await city.run(linli, "user", "enable", worker)
    assert status == 1 and "已删除" in err and "removed" in err
    status, out, _ = await city.run(linli, "user", "list")
    assert f"{worker}\tworker\t\t\tremoved" in out.splitlines()
    status, _, err = await city.run(linli, "user", "disable", "nobody.here")
    assert status == 1 and "没有用户" in err


async def login_anyway(client: Any, name: str, fallback: str) -> str:
    """A fresh session if the account still logs in, else the cookie it had."""
    resp = await client.post("/couch/_session", json={"name": name, "password": PASSWORD})
    return str(resp.cookies["AuthSession"].value) if resp.status == 200 else fallback


async def test_the_admin_screen_ends_a_session_at_its_next_request(client: Any,
                                                                    city: City) -> None:
    grid = await city.grid(community="339995001001")
    worker = await city.user(grids=[grid])
    admin = await city.user("admin")
    supervisor = await city.user("supervisor", communities=["339995001001"])
    resident = await city.user("resident")
    for name in (worker, admin, supervisor, resident):
        await wait_for_user(client, name)
    path = f"/couch/grid-{grid}"
    cookie = await login(client, worker)
    assert await status_with(client, path, cookie) == 200

    client.session.cookie_jar.clear()
    listed = await (await client.get("/api/users", headers=basic(admin))).json()
    mine = {u["name"]: u for u in listed["users"]}
    assert mine[worker]["state"] == "active" and mine[worker]["scope"] == [f"测试网格 {grid}"]
    assert resident not in mine  # residents are not staff
    resp = await client.post(f"/api/users/{worker}/disable", headers=basic(admin))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user"]["state"] == "disabled"
    # No waiting: this process refuses the very next request of that session.
    assert await status_with(client, path, cookie) == 401
    client.session.cookie_jar.clear()
    assert (await client.get(path, headers=basic(worker))).status == 401

    resp = await client.post(f"/api/users/{worker}/enable", headers=basic(admin))
    assert (await resp.json())["user"]["state"] == "active"
    assert (await client.get(path, headers=basic(worker))).status == 200
    assert await status_with(client, path, cookie) == 401
    resp = await client.post(f"/api/users/{worker}/remove", headers=basic(admin))
    assert (await resp.json())["user"]["state"] == "removed"
    user = User.from_doc(await city.run(lambda: city.couch[DIRECTORY_DB].get(f"user:{worker}")))
    assert user.removed and user.disabled

    refusals = [
        (basic(supervisor), f"/api/users/{admin}/disable", 403),
        (basic(worker), f"/api/users/{admin}/disable", 401),  # removed: no login at all
        (basic(admin), f"/api/users/{admin}/disable", 403),  # never locks oneself out
        (basic(admin), f"/api/users/{admin}/remove", 403),
        (basic(admin), f"/api/users/{supervisor}/delete", 400),
        (basic(admin), "/api/users/nobody.here/disable", 404),
        (basic(admin), f"/api/users/{resident}/disable", 404),
        (basic(admin), f"/api/users/{worker}/enable", 409),  # removed for good
        ({}, f"/api/users/{supervisor}/disable", 401),
    ]
    for headers, url, expected in refusals:
        client.session.cookie_jar.clear()
        resp = await client.post(url, headers=headers)
        body = await resp.json()
        assert resp.status == expected and set(body) == {"error", "reason"}, (url, body)
        assert " / " in body["reason"] or resp.status == 401, body  # zh-CN, then English
    client.session.cookie_jar.clear()
    assert (await client.get("/api/users", headers=basic(supervisor))).status == 403
    assert (await client.get(path, headers=basic(supervisor))).status == 200  # untouched


async def waiting_feed(client: Any, db: str, worker: str, **extra: str) -> Any:
    """A worker's longpoll on their grid, held by the server (no change yet to answer)."""
    resp = await client.get(f"/couch/{db}/_changes", headers=basic(worker))
    since = (await resp.json())["last_seq"]
    poll = asyncio.ensure_future(client.get(
        f"/couch/{db}/_changes", headers=basic(worker),
        params={"feed": "longpoll", "since": str(since), "timeout": "20000",
                "include_docs": "true", **extra}))
    await eventually(lambda: client.app[FEEDS_HELD].held.get(worker), what="the feed held")
    return poll


async def test_a_disabled_workers_waiting_feed_gets_nothing_written_after(
        client: Any, city: City) -> None:
    """A longpoll waits up to a minute with the account it began with: disabling the account
    must stop it before its next read, with or without heartbeats already sent."""
    grid = await city.grid(community="339995001001")
    worker, admin = await city.user(grids=[grid]), await city.user("admin")
    for name in (worker, admin):
        await wait_for_user(client, name)
    db = grid_db(grid)
    quiet = await waiting_feed(client, db, worker)
    beating = await (await waiting_feed(client, db, worker, heartbeat="500"))
    assert beating.status == 200  # its first heartbeat began the answer
    resp = await client.post(f"/api/users/{worker}/disable", headers=basic(admin))
    assert resp.status == 200, await resp.text()
    await city.run(lambda: city.couch[db].save({"_id": "note:after-disable", "secret": "S"}))
    got = await quiet
    assert got.status == 401, await got.text()
    assert "after-disable" not in await got.text()
    with pytest.raises(aiohttp.ClientPayloadError):  # 200 said already: the connection is cut
        await beating.read()


async def test_the_admin_screen_covers_every_staff_role_the_command_does(
        client: Any, city: City) -> None:
    """Review 3, finding 7: every account but a resident's (the roles `linli user` covers,
    property companies and liaison departments included) is listed, disabled, enabled and
    removed on the admin's screen; a resident is still no staff."""
    grid = await city.grid()
    scopes: dict[str, dict[str, Any]] = {
        "worker": {"grids": [grid]}, "supervisor": {"streets": ["339995001"]},
        "secretary": {"branches": [f"grid-{grid}"]}, "admin": {},
        "property": {"companies": ["property_company:wy9"]},
        "department": {"department": "police", "streets": ["339995001"]},
        "assessor": {"streets": ["339995001"]},
        "provider": {"provider": "bank1", "communities": ["339995001001"]}}
    assert set(scopes) == set(ROLES) - {"resident"}  # a new role needs a line here
    admin = await city.user("admin")
    names = {role: await city.user(role, **scope) for role, scope in scopes.items()}
    for name in (admin, *names.values()):
        await wait_for_user(client, name)
    listed = await (await client.get("/api/users", headers=basic(admin))).json()
    shown = {u["name"]: u for u in listed["users"]}
    assert {shown[n]["role"] for n in names.values()} == set(scopes), listed
    assert "公安" in shown[names["department"]]["scope"]
    assert "wy9" in shown[names["property"]]["scope"]
    assert "邻里中心 bank1" in shown[names["provider"]]["scope"]
    for role, name in names.items():
        for action, state in (("disable", "disabled"), ("enable", "active"),
                              ("remove", "removed")):
            resp = await client.post(f"/api/users/{name}/{action}", headers=basic(admin))
            assert resp.status == 200, (role, action, await resp.text())
            assert (await resp.json())["user"]["state"] == state
