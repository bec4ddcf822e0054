"""Issue 13, item 10: sessions end on the server. Logging out revokes the session for every
server process (the revocation is stored in the directory, not only in one process's memory),
a password change ends the user's sessions everywhere, and the lockout after repeated failures
counts Basic and cookie logins alike and says when to try again."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from conftest import PASSWORD, City, basic, eventually, wait_for_user

from server.admin import directory
from server.config import Config
from server.web.app import create_app
from server.web.auth import SESSION_COOKIE


async def login(client: Any, name: str, password: str = PASSWORD) -> str:
    resp = await client.post("/couch/_session", json={"name": name, "password": password})
    assert resp.status == 200, await resp.text()
    return str(resp.cookies[SESSION_COOKIE].value)


async def status_with(client: Any, path: str, cookie: str) -> int:
    client.session.cookie_jar.clear()
    resp = await client.get(path, cookies={SESSION_COOKIE: cookie})
    return int(resp.status)


async def eventually_refused(client: Any, path: str, cookie: str, seconds: float = 5) -> None:
    """A copied cookie is refused (401) once the process has followed the directory."""
    async def refused() -> bool:
        return await status_with(client, path, cookie) == 401

    await eventually(refused, seconds, what=f"{path} refused with that cookie")


@pytest.mark.slow  # several apps
async def test_logout_refuses_a_copied_cookie_in_every_server_process(
        aiohttp_client: Any, config: Config, city: City) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    one = await aiohttp_client(create_app(config))
    two = await aiohttp_client(create_app(config))  # another process on the same store
    await wait_for_user(one, worker)
    await wait_for_user(two, worker)
    path = f"/couch/grid-{grid}"
    stolen = await login(one, worker)
    other_phone = await login(two, worker)
    assert await status_with(one, path, stolen) == 200
    assert await status_with(two, path, stolen) == 200
    resp = await one.delete("/couch/_session", cookies={SESSION_COOKIE: stolen})
    assert resp.status == 200
    # Refused at once by the process that logged out, and soon by every other one.
    assert await status_with(one, path, stolen) == 401
    await eventually_refused(two, path, stolen)
    # A third process started afterwards reads the revocation from the store.
    three = await aiohttp_client(create_app(config))
    await wait_for_user(three, worker)
    assert await status_with(three, path, stolen) == 401
    # The /_session answer says the cookie is nobody's now.
    three.session.cookie_jar.clear()
    resp = await three.get("/couch/_session", cookies={SESSION_COOKIE: stolen})
    assert (await resp.json())["userCtx"]["name"] is None
    # The same user's session on another phone goes on.
    assert await status_with(two, path, other_phone) == 200
    assert await status_with(three, path, other_phone) == 200
    # And logging in again gives a new session that works.
    fresh = await login(one, worker)
    assert fresh != stolen
    assert await status_with(one, path, fresh) == 200


async def test_a_renewed_cookie_dies_with_its_session(client: Any, city: City) -> None:
    """A renewed cookie is the same session: logging out with either ends both."""
    from server.web.keys import AUTH

    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    auth = client.app[AUTH]
    old = auth.issue(auth.lookup(worker), now=__import__("time").time() - 7200)
    path = f"/couch/grid-{grid}"
    client.session.cookie_jar.clear()
    resp = await client.get(path, cookies={SESSION_COOKIE: old})
    assert resp.status == 200
    renewed = resp.cookies[SESSION_COOKIE].value
    assert renewed and renewed != old
    header = resp.headers["Set-Cookie"]  # renewed with the login's attributes
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    client.session.cookie_jar.clear()
    resp = await client.delete("/couch/_session", cookies={SESSION_COOKIE: renewed})
    assert resp.status == 200
    assert await status_with(client, path, old) == 401
    assert await status_with(client, path, renewed) == 401


async def test_a_cookie_without_a_session_id_is_refused(client: Any, city: City) -> None:
    """A cookie that cannot be revoked is not accepted: every cookie names its session."""
    import base64
    import json
    import time

    from server.web.keys import AUTH

    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    auth = client.app[AUTH]
    user = auth.lookup(worker)
    payload = base64.urlsafe_b64encode(json.dumps(
        {"n": worker, "t": int(time.time())}, separators=(",", ":")).encode()).decode().rstrip("=")
    legacy = f"{payload}.{auth._mac(user, payload.encode())}"
    assert await status_with(client, f"/couch/grid-{grid}", legacy) == 401


@pytest.mark.slow  # several apps
async def test_password_change_ends_every_session_in_every_process(
        aiohttp_client: Any, config: Config, city: City) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    one = await aiohttp_client(create_app(config))
    two = await aiohttp_client(create_app(config))
    await wait_for_user(one, worker)
    await wait_for_user(two, worker)
    path = f"/couch/grid-{grid}"
    phone_a, phone_b = await login(one, worker), await login(two, worker)
    one.session.cookie_jar.clear()
    assert (await one.get(path, headers=basic(worker))).status == 200  # Basic, cached now
    await city.run(directory.set_password, city.couch, worker, "a-new-password-3")
    for client in (one, two):
        for cookie in (phone_a, phone_b):
            await eventually_refused(client, path, cookie)
        client.session.cookie_jar.clear()
        assert (await client.get(path, headers=basic(worker))).status == 401
        assert (await client.get(path, headers=basic(worker, "a-new-password-3"))).status == 200


def retry_seconds(resp: Any, body: dict[str, Any]) -> int:
    assert resp.status == 429
    assert body["error"] == "too_many_requests"
    wait = int(resp.headers["Retry-After"])
    assert wait > 0
    zh, _, en = body["reason"].partition(" / ")
    assert zh and en, body["reason"]
    # The reason says when, in both languages: a duration and the clock time (UTC).
    assert re.search(r"\d{2}:\d{2}", zh) and re.search(r"\d{2}:\d{2} UTC", en), body["reason"]
    return wait


async def locked_out(aiohttp_client: Any, config: Config, city: City, fail_with: str
                     ) -> tuple[Any, str, str]:
    client = await aiohttp_client(create_app(dataclasses.replace(
        config, login_failures_per_account=3)))
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    path = f"/couch/grid-{grid}"
    client.session.cookie_jar.clear()
    assert (await client.get(path, headers=basic(worker))).status == 200  # verified, cached
    for n in range(3):
        if fail_with == "basic":
            resp = await client.get(path, headers=basic(worker, f"wrong-guess-{n}"))
        else:
            resp = await client.post("/couch/_session",
                                     json={"name": worker, "password": f"wrong-guess-{n}"})
        assert resp.status == 401, (fail_with, n)
    return client, worker, path


@pytest.mark.slow  # a lockout, with Argon2 per attempt
async def test_basic_and_cookie_logins_share_one_lockout(aiohttp_client: Any, config: Config,
                                                          city: City) -> None:
    for fail_with in ("basic", "cookie"):
        client, worker, path = await locked_out(aiohttp_client, config, city, fail_with)
        # Locked for both ways of logging in, even with the right password, even one the
        # server verified a moment ago for Basic.
        resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD})
        wait_cookie = retry_seconds(resp, await resp.json())
        resp = await client.get(path, headers=basic(worker))
        wait_basic = retry_seconds(resp, await resp.json())
        assert abs(wait_cookie - wait_basic) <= 1, fail_with
        assert wait_basic <= config.login_window_seconds + 1


async def test_a_session_made_before_the_lockout_keeps_working(aiohttp_client: Any,
                                                                config: Config,
                                                                city: City) -> None:
    """The lockout stops guessing, not the phone already logged in."""
    client = await aiohttp_client(create_app(dataclasses.replace(
        config, login_failures_per_account=3)))
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    cookie = await login(client, worker)
    client.session.cookie_jar.clear()
    for n in range(4):
        await client.get(f"/couch/grid-{grid}", headers=basic(worker, f"wrong-{n}"))
    assert await status_with(client, f"/couch/grid-{grid}", cookie) == 200


async def test_lapsed_logouts_are_pruned_at_start(aiohttp_client: Any, config: Config,
                                                  city: City) -> None:
    import time

    from server.web.auth import ended_session_doc, new_session_id

    directory_db = await city.run(city.couch.__getitem__, "linli-directory")
    lapsed = ended_session_doc(new_session_id(), "someone", time.time() - 10)
    live = ended_session_doc(new_session_id(), "someone", time.time() + 3600)
    await city.run(directory_db.save, lapsed)
    await city.run(directory_db.save, live)
    await aiohttp_client(create_app(config))
    await eventually(lambda: city.run(lambda: lapsed["_id"] not in directory_db), 5)
    assert await city.run(directory_db.__contains__, live["_id"])


@pytest.mark.slow  # a real Chromium
async def test_the_login_screen_says_until_when_it_is_locked(browser: Any, config: Config,
                                                             city: City) -> None:
    import datetime

    import aiohttp
    from aiohttp import web

    # An app of its own: the failures below must not count against the shared live server's
    # per-address limit, which every browser test reaches from 127.0.0.1.
    runner = web.AppRunner(create_app(dataclasses.replace(config, login_failures_per_account=3)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    worker = await city.user(grids=[await city.grid()])
    context = None
    try:
        async with aiohttp.ClientSession() as session:
            async def logged_in() -> bool:  # the server learns of the user from the directory
                async with session.post(f"{base}/couch/_session",
                                        json={"name": worker, "password": PASSWORD}) as resp:
                    return resp.status == 200

            await eventually(logged_in, 5)
            for n in range(3):
                async with session.post(f"{base}/couch/_session",
                                        json={"name": worker, "password": f"guess-{n}"}) as resp:
                    assert resp.status == 401
        context = await browser.new_context(viewport={"width": 360, "height": 740},
                                            locale="zh-CN", timezone_id="Asia/Shanghai")
        page = await context.new_page()
        await page.goto(f"{base}/app/")
        await page.wait_for_selector("#login[open]")
        await page.fill("#login-name", worker)
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await page.wait_for_selector("#login-error[data-locked-until]")
        shown = await page.text_content("#login-error") or ""
        # The phone's own clock time (Asia/Shanghai here, UTC+8), not the server's UTC.
        until = int(await page.get_attribute("#login-error", "data-locked-until") or 0)
        local = datetime.datetime.fromtimestamp(
            until / 1000, datetime.timezone(datetime.timedelta(hours=8))).strftime("%H:%M")
        assert "之后再试" in shown and local in shown, shown
        assert "分钟" in shown, shown  # the default window is 15 minutes
        assert await page.is_disabled("#login-submit")
    finally:
        if context is not None:
            await context.close()
        await runner.cleanup()
