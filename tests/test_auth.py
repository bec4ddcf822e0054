"""Authentication as CouchDB does it, with limits: session cookies, Basic, logout, login failure
limits per account and per address, Argon2id hashes, and a password change ending sessions."""

from __future__ import annotations

import uuid
from typing import Any

import argon2
import pytest
from conftest import PASSWORD, City, basic, eventually, wait_for_user

from server.admin import directory
from server.config import Config
from server.web.app import create_app
from server.web.auth import PASSWORD_HASHER, FailureCounter


async def test_session_login_json_and_form(client: Any, city: City) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD})
    assert resp.status == 200
    assert await resp.json() == {"ok": True, "name": worker, "roles": ["worker"]}
    cookie = resp.headers["Set-Cookie"]
    assert "AuthSession=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain http in the test; Secure behind https (below)
    resp = await client.get("/couch/_session")
    body = await resp.json()
    assert body["userCtx"] == {"name": worker, "roles": ["worker"]}
    assert body["info"]["authenticated"] == "cookie"
    assert (await client.get(f"/couch/grid-{grid}")).status == 200
    resp = await client.delete("/couch/_session")
    assert resp.status == 200
    assert (await client.get(f"/couch/grid-{grid}")).status == 401
    resp = await client.post("/couch/_session", data={"name": worker, "password": PASSWORD})
    assert resp.status == 200


async def test_secure_cookie_behind_https_proxy(aiohttp_client: Any, config: Config,
                                                city: City) -> None:
    import dataclasses

    client = await aiohttp_client(create_app(dataclasses.replace(config, trust_proxy=True)))
    worker = await city.user(grids=[await city.grid()])
    await wait_for_user(client, worker)
    resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD},
                             headers={"X-Forwarded-Proto": "https"})
    assert resp.status == 200 and "Secure" in resp.headers["Set-Cookie"]


async def test_wrong_password_and_unknown_user(client: Any, city: City) -> None:
    worker = await city.user(grids=[await city.grid()])
    await wait_for_user(client, worker)
    for name, password in ((worker, "wrong-password"), ("nobody-here", PASSWORD)):
        resp = await client.post("/couch/_session", json={"name": name, "password": password})
        assert resp.status == 401
        assert (await resp.json())["error"] == "unauthorized"
    resp = await client.get("/couch/_all_dbs", headers=basic(worker, "wrong-password"))
    assert resp.status == 401
    resp = await client.get("/couch/_all_dbs", headers={"Authorization": "Basic !!!"})
    assert resp.status == 401


async def test_failed_logins_are_limited_per_account(client: Any, city: City,
                                                     config: Config) -> None:
    worker = await city.user(grids=[await city.grid()])
    await wait_for_user(client, worker)
    for _ in range(config.login_failures_per_account):
        resp = await client.post("/couch/_session", json={"name": worker, "password": "nope-nope"})
        assert resp.status == 401
    resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert (await resp.json())["error"] == "too_many_requests"
    # Basic auth is held to the same limit.
    resp = await client.get("/couch/_all_dbs", headers=basic(worker))
    assert resp.status == 429


def test_failure_counter_window_and_bound() -> None:
    now = [1000.0]
    counter = FailureCounter(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert counter.retry_after("a") == 0
        counter.record("a")
    assert 0 < counter.retry_after("a") <= 61
    now[0] += 61
    assert counter.retry_after("a") == 0
    for i in range(100_005):
        counter.record(f"addr{i}")
    assert len(counter._hits) <= 100_000


async def test_failed_logins_are_limited_per_address(aiohttp_client: Any, config: Config,
                                                     city: City) -> None:
    import dataclasses

    client = await aiohttp_client(create_app(dataclasses.replace(
        config, login_failures_per_address=5)))
    names = [f"sprayed{i}" for i in range(6)]
    statuses = []
    for name in names:
        resp = await client.post("/couch/_session", json={"name": name, "password": "guess-1"})
        statuses.append(resp.status)
    assert statuses == [401] * 5 + [429]


def test_passwords_are_argon2id_at_owasp_parameters(city: City) -> None:
    """Any password but the test accounts' one (see conftest.py), as `linli user add` stores it."""
    name, password = f"owasp{uuid.uuid4().hex[:8]}", "another-horse-7"
    directory.add_user(city.couch, name, "worker", password, grids=[city.blocking.grid()])
    stored = city.couch["linli-directory"][f"user:{name}"]["password"]
    params = argon2.extract_parameters(stored)
    assert params.type is argon2.Type.ID
    assert params.memory_cost == 19 * 1024 and params.time_cost == 2 and params.parallelism == 1
    assert password not in stored
    assert PASSWORD_HASHER.verify(stored, password)


async def test_password_change_ends_sessions(client: Any, city: City) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD})
    assert resp.status == 200
    assert (await client.get(f"/couch/grid-{grid}")).status == 200
    await city.run(directory.set_password, city.couch, worker, "a-new-password-2")

    async def refused() -> bool:
        return (await client.get(f"/couch/grid-{grid}")).status == 401

    await eventually(refused, 5)
    assert (await client.get("/couch/_all_dbs", headers=basic(worker))).status == 401
    ok = await client.get("/couch/_all_dbs", headers=basic(worker, "a-new-password-2"))
    assert ok.status == 200


async def test_tampered_or_expired_cookie_is_anonymous(client: Any, city: City) -> None:
    from server.web.keys import AUTH

    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    auth = client.app[AUTH]
    user = auth.lookup(worker)
    token = auth.issue(user)
    payload, mac = token.split(".")
    forged = token.replace(payload, payload[:-2] + "AA")
    expired = auth.issue(user, now=0)
    for bad in (forged, expired, token[:-3] + "abc", "garbage"):
        resp = await client.get(f"/couch/grid-{grid}", cookies={"AuthSession": bad})
        assert resp.status == 401, bad
    resp = await client.get(f"/couch/grid-{grid}", cookies={"AuthSession": token})
    assert resp.status == 200
    assert mac


@pytest.mark.parametrize(("path", "policy"), [("/", "script-src 'self'"),
                                              ("/couch/", "sandbox")])
async def test_security_headers(client: Any, path: str, policy: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200
    csp = resp.headers["Content-Security-Policy"]
    assert policy in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
