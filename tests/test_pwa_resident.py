"""The resident's PWA (issue 15) in real headless Chromium against the real server and the
embedded store, on a 360 px phone: sign-up with its errors at the fields, the account made and
logged in with the phone number, the resident's app chosen by role, activation by a worker's
code typed loosely (or scanned before signing up), the pause after 5 wrong codes said in
Beijing time; the household with its members and the full ID number after the password,
corrections sent online and offline; notices with an image read offline, confirmed, the
receipt sent once back online, a withdrawn one purged; my data, its export and a request; a
household moved out purged. Every screen is checked for controls without a label, targets
under 44 px and anything wider than the phone.

Each phone comes from its own client address (X-Forwarded-For, the app trusting its proxy), as
residents do: the server's limits per address are not shared between the tests."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import itertools
import json
import logging
import os
import struct
import zlib
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from conftest import City, basic, eventually
from playwright.async_api import Browser, BrowserContext, Page

from server.admin import directory
from server.config import Config
from server.domain import rules
from server.domain.scope import RESIDENTS_DB
from server.web.app import create_app

pytestmark = pytest.mark.slow  # a real Chromium

# The phone's own zone is not Beijing's: what the server decides is said in Beijing time.
PHONE = {"viewport": {"width": 360, "height": 740}, "locale": "zh-CN",
         "timezone_id": "Europe/Berlin"}
PASSWORD = "resident-pass-7"
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
_numbers = itertools.count(1)

# What a screen must not have: a control without a name, a target a thumb misses, a page wider
# than the phone.
CHECK_SCREEN = """() => {
  const shown = (e) => e.offsetParent !== null || e.getClientRects().length > 0;
  const controls = [...document.querySelectorAll('main input, main select, main textarea')]
    .filter(shown);
  const unlabelled = controls.filter((e) => e.type !== 'hidden' && e.labels.length === 0 &&
    !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')).map((e) => e.outerHTML);
  const targets = [...document.querySelectorAll(
    'main a, main button, main select, main input:not([type=radio]):not([type=checkbox]), ' +
    'main label.choice, dialog button')]
    .filter(shown).filter((e) => e.getBoundingClientRect().height < 44)
    .map((e) => `${Math.round(e.getBoundingClientRect().height)}px ${e.outerHTML.slice(0, 120)}`);
  return { unlabelled, targets, width: document.documentElement.scrollWidth };
}"""


@dataclasses.dataclass
class Place:
    code: str
    name: str
    grid: str
    worker: str
    # the households' phones on record: a head signing up on it is activated at once
    phones: tuple[str, str] = ("", "")

    def household(self, n: int) -> str:
        return f"household:{self.grid}-{n:04d}"


@dataclasses.dataclass
class Server:
    url: str
    city: City
    signups_per_phone: int
    signup_window_seconds: int


@pytest.fixture(scope="module")
async def server(config: Config, city: City) -> AsyncIterator[Server]:
    """The app on a free loopback port, trusting X-Forwarded-For so each phone has its own
    client address."""
    runner = web.AppRunner(create_app(dataclasses.replace(config, trust_proxy=True)),
                           shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Server(f"http://{host}:{port}", city, config.signups_per_phone,
                     config.signup_window_seconds)
    finally:
        await runner.cleanup()


async def a_community(server: Server) -> Place:
    """A named community with one grid: 王伟 (owner) at 坊门小区 3-2-301, with 王芳 and himself
    as members, and 李娜 (tenant) at 3-2-302."""
    n = next(_numbers)
    code, name = f"t{os.getpid()}r{n}", f"坊门{os.getpid() % 1000}号{n}社区"
    city = server.city
    await city.run(directory.add_area, city.couch, "community", code, name, "330802001")
    grid = await city.grid(community=code)
    worker = await city.user(grids=[grid])
    place = Place(code, name, grid, worker, (new_phone(), new_phone()))
    for i, (room, head, tenure) in enumerate((("301", "王伟", "owned"), ("302", "李娜", "rented")),
                                             start=1):
        await city.save(grid, {
            "_id": place.household(i), "type": "household", "schema_version": 1, "grid": grid,
            "created_by": worker, "head_name": head, "phone": place.phones[i - 1],
            "tenure": tenure,
            "status": "active", "address": {"compound": "c1", "compound_name": "坊门小区",
                                            "building": "3", "unit": "2", "room": room}})
    for i, (member, number) in enumerate((("王芳", "33080219900517002X"),
                                           ("王伟", id_number("1980-03-02", "011"))), start=1):
        await city.save(grid, {"_id": f"person:{grid}-{i}", "type": "person",
                               "schema_version": 1, "grid": grid, "created_by": worker,
                               "household": place.household(1), "name": member,
                               "status": "present", "id_number": number})

    async def listed() -> bool:
        async with aiohttp.ClientSession() as session, session.get(
                server.url + "/api/residents/communities") as resp:
            found = (await resp.json())["communities"]
        return any(c["code"] == code and c["name"] == name for c in found)

    await eventually(listed, 20, every=0.1, what="the server lists the community by name")
    return place


def id_number(birth: str, sequence: str) -> str:
    first17 = "330802" + birth.replace("-", "") + sequence
    return first17 + rules.id_check_char(first17)


def activation_code(place: Place, household: int, code: str, role: str = "tenant"
                    ) -> dict[str, Any]:
    """A code as the worker's phone makes it, an hour ago."""
    made = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    return {"_id": f"activation_code:{place.grid}-{code}", "type": "activation_code",
            "schema_version": 1, "grid": place.grid, "created_by": place.worker,
            "household": place.household(household), "code": code, "role": role,
            "created_at": made.isoformat(timespec="seconds")}


def new_phone() -> str:
    return f"137{os.getpid() % 10000:04d}{next(_numbers):04d}"


class Phone:
    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context, self.page = context, page
        self.problems: list[str] = []
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("console", lambda msg: self.problems.append(msg.text)
                if "Content Security Policy" in msg.text else None)

    @classmethod
    async def open(cls, browser: Browser, url: str, address: str) -> Phone:
        context = await browser.new_context(**PHONE, extra_http_headers={
            "X-Forwarded-For": address})
        page = await context.new_page()
        await page.goto(url + "/app/")
        return cls(context, page)

    async def check_screen(self, what: str) -> None:
        found = await self.page.evaluate(CHECK_SCREEN)
        assert found["unlabelled"] == [], (what, found["unlabelled"])
        assert found["targets"] == [], (what, found["targets"])
        assert found["width"] <= 360, (what, found["width"])

    async def show(self, hash_route: str) -> None:
        await self.page.evaluate("(h) => { location.hash = h; }", hash_route)

    async def error_at(self, field: str) -> str:
        return (await self.page.text_content(f"#{field}-error")) or ""


def code_in_log(caplog: pytest.LogCaptureFixture, phone: str) -> str:
    lines = [r.getMessage() for r in caplog.records
             if r.name == "linli.verification" and phone in r.getMessage()]
    assert lines, "the development sender logged no code"
    return lines[-1].split(": ")[1].split(" ")[0]


async def sign_up(phone: Phone, place: Place, number: str, caplog: pytest.LogCaptureFixture,
                  name: str = "赵六", address: str = "9幢9单元909") -> None:
    """Through the sign-up screen, from the login dialog to the resident's home."""
    page = phone.page
    await page.wait_for_selector("#login[open]")
    await page.click("#login-signup")
    await page.wait_for_selector("#signup-form")
    await page.fill("#su-phone", number)
    await page.fill("#su-name", name)
    await page.fill("#su-community-search", place.name[:-2])
    await page.check(f"#su-c-{place.code}")
    await page.fill("#su-address", address)
    with caplog.at_level(logging.WARNING, logger="linli.verification"):
        await page.click("#su-send")
        await page.wait_for_selector("#verify-form:not([hidden])")
    code = code_in_log(caplog, number.replace(" ", ""))
    await page.fill("#su-code", code)
    await page.fill("#su-password", PASSWORD)
    await page.click("#su-join")
    await page.wait_for_selector("#view[data-route^='r-']")


async def test_sign_up_then_activation_by_code(browser: Browser, server: Server,
                                               caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(server)
    phone = await Phone.open(browser, server.url, "10.15.0.1")
    page = phone.page
    await page.wait_for_selector("#login[open]")
    await phone.check_screen("login")
    await page.click("#login-signup")
    await page.wait_for_selector("#signup-form")
    assert not await page.is_visible("#login[open]")
    await page.wait_for_function(
        "() => document.querySelectorAll('#su-community-list input').length > 0")

    # The community is found by part of its name, and chosen by tapping it.
    await page.fill("#su-community-search", place.name[2:-2])
    await page.wait_for_selector(f"#su-c-{place.code}")
    await page.check(f"#su-c-{place.code}")
    await phone.check_screen("sign-up")

    # A phone number of 10 digits: refused at the field, by its label, zh-CN; nothing sent.
    number = new_phone()
    await page.fill("#su-phone", number[:-1])
    await page.fill("#su-name", "赵六")
    await page.fill("#su-address", "9幢9单元909")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="linli.verification"):
        await page.click("#su-send")
        await page.wait_for_function("() => document.getElementById('su-phone-error').textContent")
    assert "手机号" in await phone.error_at("su-phone") and "11" in await phone.error_at("su-phone")
    assert await page.get_attribute("#su-phone", "aria-invalid") == "true"
    assert await page.evaluate("() => document.activeElement.id") == "su-phone"
    assert await page.is_hidden("#verify-form")
    assert not [r for r in caplog.records if r.name == "linli.verification"]

    # Typed with spaces, as people do: accepted, and the code goes to the phone.
    spaced = f"{number[:3]} {number[3:7]} {number[7:]}"
    await page.fill("#su-phone", spaced)
    with caplog.at_level(logging.WARNING, logger="linli.verification"):
        await page.click("#su-send")
        await page.wait_for_selector("#verify-form:not([hidden])")
    assert await phone.error_at("su-phone") == ""
    assert await page.get_attribute("#su-phone", "aria-invalid") is None
    code = code_in_log(caplog, number)
    await phone.check_screen("verify")

    # A wrong code, then a short password: each at its own field, in English when asked.
    await page.click("#lang")
    await page.fill("#su-code", f"{(int(code) + 1) % 10**6:06d}")
    await page.fill("#su-password", PASSWORD)
    await page.click("#su-join")
    await page.wait_for_function("() => document.getElementById('su-code-error').textContent")
    assert "Verification code" in await phone.error_at("su-code")
    await page.click("#lang")
    await page.fill("#su-code", code)
    await page.fill("#su-password", "short")
    await page.click("#su-join")
    await page.wait_for_function("() => document.getElementById('su-password-error').textContent")
    assert "密码" in await phone.error_at("su-password") and await phone.error_at("su-code") == ""

    # The right code and a password: the account is made, the phone logs in with the number,
    # and the role chooses the resident's app, waiting for the worker (no such household).
    await page.fill("#su-password", PASSWORD)
    await page.click("#su-join")
    await page.wait_for_selector("#r-state")
    assert await page.get_attribute("#r-state", "data-state") == "pending"
    assert "您没有分配网格" not in await page.text_content("main")
    assert await page.text_content("#r-unread") == "没有未读"
    await page.wait_for_selector("#sync-state.state-idle")
    await phone.check_screen("home, pending")

    # The worker makes a code for 302; the resident types a wrong one first, then the right
    # one loosely: lower case, a space, a full-width letter.
    await server.city.save(place.grid, activation_code(place, 2, "K7PX3MWR"))
    await page.click("#r-activate-link")
    await page.wait_for_selector("#activate-form")
    await phone.check_screen("activation")
    await page.fill("#r-code", "wrng-wrng")
    assert await page.text_content("#r-code-reading") == "读作：WRNG-WRNG"
    await page.click("#r-code-submit")
    await page.wait_for_function("() => document.getElementById('r-code-error').textContent")
    assert "激活码" in await phone.error_at("r-code") and "不正确" in await phone.error_at("r-code")
    await page.fill("#r-code", "k7px 3ｍwr")
    assert await page.text_content("#r-code-reading") == "读作：K7PX-3MWR"
    await page.click("#r-code-submit")
    await page.wait_for_selector("section.household")
    assert await page.evaluate("() => location.hash") == "#/household"
    text = await page.text_content("section.household")
    assert "坊门小区 3幢2单元302室" in text and "租户" in text and "李娜" in text
    assert "tenant" not in text and "rented" not in text  # labels, not codes
    held = place.phones[1]
    assert f"{held[:3]}****{held[-4:]}" in text and held not in text  # the phone masked
    await phone.check_screen("household")
    await page.click("#lang")  # in English: the labels too, and still no wider than the phone
    await page.wait_for_selector("text=My household")
    assert "Tenant" in await page.text_content("section.household")
    await phone.check_screen("household, English")
    await page.click("#lang")

    # Offline, after a reload: the household is still there, and the status says offline.
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)
    await phone.context.set_offline(True)
    await page.reload()
    await page.wait_for_selector("section.household")
    assert "坊门小区 3幢2单元302室" in await page.text_content("section.household")
    assert await page.text_content("#sync-state") == "离线"
    await page.click("nav.crumbs a.back")
    await page.wait_for_selector("#r-state[data-state=active]")
    assert phone.problems == []
    await phone.context.close()


async def test_too_many_sign_ups_pause_until_a_beijing_time(
        browser: Browser, server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """A phone number asks for a code at most `signups_per_phone` times a window; the next is
    refused with when to try again, in Beijing time, and no code is sent."""
    place = await a_community(server)
    phone = await Phone.open(browser, server.url, "10.15.0.7")
    page = phone.page
    await page.wait_for_selector("#login[open]")
    await page.click("#login-signup")
    await page.fill("#su-phone", new_phone())
    await page.fill("#su-name", "赵六")
    await page.fill("#su-community-search", place.name)
    await page.check(f"#su-c-{place.code}")
    await page.fill("#su-address", "9幢9单元909")
    for _ in range(server.signups_per_phone):
        await page.click("#su-send")
        await page.wait_for_function("() => document.getElementById('su-sent').textContent"
                                     " && !document.getElementById('su-send').disabled")
        await page.evaluate("() => { document.getElementById('su-sent').textContent = ''; }")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="linli.verification"):
        await page.click("#su-send")
        await page.wait_for_function(
            "() => document.getElementById('su-general').textContent.includes('北京时间')")
    said = await page.text_content("#su-general")
    window = datetime.timedelta(seconds=server.signup_window_seconds)
    latest = datetime.datetime.now(SHANGHAI) + window
    times = {(latest - datetime.timedelta(minutes=m)).strftime("%H:%M") for m in range(3)}
    assert "尝试次数过多" in said and any(t in said for t in times), (said, times)
    assert not [r for r in caplog.records if r.name == "linli.verification"]
    assert phone.problems == []
    await phone.context.close()


async def test_a_workers_qr_opened_before_signing_up(
        browser: Browser, server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """The worker's QR is the app's `#/activate/<code>`: opened on a phone with no account, the
    code waits through the sign-up and is there, filled in, once the resident is in."""
    place = await a_community(server)
    await server.city.save(place.grid, activation_code(place, 2, "QRCD7XYZ"))
    context = await browser.new_context(**PHONE, extra_http_headers={
        "X-Forwarded-For": "10.15.0.6"})
    page = await context.new_page()
    await page.goto(server.url + "/app/#/activate/QRCD7XYZ")
    phone = Phone(context, page)
    await sign_up(phone, place, new_phone(), caplog)
    await page.wait_for_selector("#activate-form")
    assert await page.input_value("#r-code") == "QRCD7XYZ"
    assert await page.text_content("#r-code-reading") == "读作：QRCD-7XYZ"
    await page.click("#r-code-submit")
    await page.wait_for_selector("section.household")
    assert "坊门小区 3幢2单元302室" in await page.text_content("section.household")
    assert phone.problems == []
    await context.close()


async def test_five_wrong_codes_pause_until_a_beijing_time(
        browser: Browser, server: Server, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(server)
    phone = await Phone.open(browser, server.url, "10.15.0.2")
    page = phone.page
    await sign_up(phone, place, new_phone(), caplog)
    await page.click("#r-activate-link")
    await page.wait_for_selector("#activate-form")
    for n in range(5):
        await page.fill("#r-code", f"WRNG{n + 2}WRN")
        await page.click("#r-code-submit")
        await page.wait_for_function("() => document.getElementById('r-code-error').textContent"
                                     " && !document.getElementById('r-code-submit').disabled")
        assert "不正确" in await phone.error_at("r-code")
    await page.fill("#r-code", "K7PX3MWR")
    await page.click("#r-code-submit")
    await page.wait_for_selector("#r-code-general[data-paused-until]")
    said = await page.text_content("#r-code-general")
    # The phone's own zone is Berlin's; the time said is Beijing's, 15 minutes on.
    soon = datetime.datetime.now(SHANGHAI) + datetime.timedelta(minutes=15)
    times = {(soon + datetime.timedelta(minutes=d)).strftime("%H:%M") for d in (-1, 0, 1)}
    assert "北京时间" in said and any(t in said for t in times), (said, times)
    assert "15 分钟" in said
    assert await page.is_disabled("#r-code-submit")
    # A reload keeps the button off: the pause is the server's, and the phone remembers it.
    await page.reload()
    await page.wait_for_selector("#r-code-general[data-paused-until]")
    assert await page.is_disabled("#r-code-submit")
    assert phone.problems == []
    await phone.context.close()


async def staff(server: Server, role: str, **scope: Any) -> str:
    """A member of staff the server already knows (it learns of users from a feed)."""
    name = await server.city.user(role, **scope)

    async def known() -> bool:
        async with aiohttp.ClientSession() as session, session.get(
                server.url + "/api/me", headers=basic(name)) as resp:
            return resp.status == 200

    await eventually(known, 20, every=0.1, what=f"the server knows {name}")
    return name


def a_png(width: int = 24, height: int = 16) -> bytes:
    """A real PNG of one red colour, small enough for a notice."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\0" + b"\xa8\x32\x2d" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


async def publish(server: Server, author: str, **notice: Any) -> str:
    async with aiohttp.ClientSession() as session, session.post(
            server.url + "/api/notices", json=notice, headers=basic(author)) as resp:
        answer = await resp.json()
        assert resp.status == 201, answer
    return str(answer["notice"]["_id"])


async def owner_of_301(browser: Browser, server: Server, caplog: pytest.LogCaptureFixture,
                       address: str, place: Place | None = None) -> tuple[Phone, Place, str]:
    """王伟 signs up at his own address and is activated at once, as the owner: his phone on
    the home screen, his community and his account."""
    place = place or await a_community(server)
    phone = await Phone.open(browser, server.url, address)
    await sign_up(phone, place, place.phones[0], caplog, name="王伟", address="三幢二单元301室")
    await phone.page.wait_for_selector("#r-state[data-state=active]")
    return phone, place, await phone.page.evaluate("() => linli.me.name")


async def test_the_household_its_full_number_and_a_correction(
        browser: Browser, server: Server, caplog: pytest.LogCaptureFixture) -> None:
    phone, place, account = await owner_of_301(browser, server, caplog, "10.15.0.3")
    page = phone.page
    await phone.check_screen("home, active")

    # The household with its members, their ID numbers down to their last two.
    await page.click("#r-household-link")
    await page.wait_for_selector("ul.members li >> nth=1")
    members = await page.text_content("ul.members")
    assert "王芳" in members and "****************2X" in members and "19900517" not in members
    await phone.check_screen("household, members")

    # His own full number, after his password: on this screen only; a wrong password first.
    await page.fill("#r-full-password", "not-my-password")
    await page.click("#r-full-submit")
    await page.wait_for_function(
        "() => document.getElementById('r-full-password-error').textContent")
    assert "密码" in await phone.error_at("r-full-password")
    assert await page.text_content("#r-full-number") == ""
    await page.fill("#r-full-password", PASSWORD)
    await page.click("#r-full-submit")
    await page.wait_for_function("() => document.getElementById('r-full-number').textContent")
    assert await page.text_content("#r-full-number") == f"王伟：{id_number('1980-03-02', '011')}"
    assert await page.input_value("#r-full-password") == ""

    # Something is wrong: the head's name, online; the request comes back through the sync.
    await page.click("#r-wrong")
    await page.wait_for_selector("#correction-form")
    await phone.check_screen("correction")
    await page.select_option("#r-fix-field", "head_name")
    assert "王伟" in await page.text_content("#r-fix-now")
    await page.fill("#r-fix-proposed", "王炜")
    await page.fill("#r-fix-note", "身份证上是“炜”")
    await page.click("#r-fix-submit")
    await page.wait_for_selector("li.correction[data-status=open]")
    assert "户主姓名 → 王炜" in await page.text_content("li.correction")
    stored = await eventually(lambda: server.city.run(lambda: [
        row.doc for row in server.city.db(place.grid).view("_all_docs", include_docs=True)
        if row.id.startswith(f"correction_request:{account}-")]), 10)
    assert [(s["changes"][0]["proposed"], s["note"]) for s in stored] == [
        ("王炜", "身份证上是“炜”")]

    # Offline, a second one: it waits on the phone, and goes by itself once online.
    await phone.context.set_offline(True)
    await page.click("#r-wrong")
    await page.wait_for_selector("#correction-form")
    await page.select_option("#r-fix-record", f"person:{place.grid}-1")
    await page.select_option("#r-fix-field", "sex")
    await page.select_option("#r-fix-proposed", "2")  # chosen by its label, sent as its code
    await page.click("#r-fix-submit")
    await page.wait_for_selector("li.correction[data-status=waiting]")
    assert "性别 → 女" in await page.text_content("li.correction[data-status=waiting]")
    assert await page.get_attribute("#sync-waiting", "data-count") == "1"
    await phone.context.set_offline(False)
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await page.wait_for_selector("#sync-waiting[data-count='0']", timeout=30_000)
    await page.wait_for_function(
        "() => document.querySelectorAll('li.correction[data-status=open]').length === 2")

    # The status line never says synced while the server fails: a 503 is named, with what
    # to do, and the line comes back by itself once the server does.
    await page.wait_for_selector("#sync-state.state-idle")
    await page.route("**/api/me", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": "service_unavailable", "reason": "暂不可用 / Unavailable"}'))
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await page.wait_for_selector("#sync-state.state-error")
    assert await page.text_content("#sync-state") == "同步失败"
    assert await page.text_content("#sync-problem") == "暂不可用"
    await page.unroute("**/api/me")
    await page.wait_for_selector("#sync-state.state-idle", timeout=30_000)
    assert phone.problems == []
    await phone.context.close()


async def test_notices_read_offline_and_confirmed(
        browser: Browser, server: Server, caplog: pytest.LogCaptureFixture) -> None:
    place = await a_community(server)
    supervisor = await staff(server, "supervisor", communities=[place.code])
    audience = {"level": "community", "codes": [place.code]}
    water = await publish(server, supervisor, title="停水通知", audience=audience,
                          body="明天 8:00–12:00 停水。\n\n请提前储水。", needs_confirmation=True,
                          images=[{"name": "map.png", "content_type": "image/png",
                                   "data": base64.b64encode(a_png()).decode()}])
    leaflet = await publish(server, supervisor, title="垃圾分类宣传周", audience=audience,
                            body="本周六上午在小区广场。")
    soon = datetime.datetime.now(SHANGHAI) + datetime.timedelta(seconds=3)
    await publish(server, supervisor, title="周末义诊", audience=audience, body="周六上午。",
                  expires_at=soon.isoformat(timespec="seconds"))
    await eventually(lambda: datetime.datetime.now(SHANGHAI) > soon, 10, every=0.2,
                     what="the notice's expiry passes")
    phone, place, account = await owner_of_301(browser, server, caplog, "10.15.0.4", place)
    page = phone.page
    # Expired by now: listed apart, not counted unread.
    await page.wait_for_function("() => linli.resident.store.notices().length === 3")
    await page.wait_for_selector("#r-unread[data-count='2']")

    # Offline, after a reload: the notices are on the phone; reading one and confirming it
    # wait there, and the screen says so.
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)
    await phone.context.set_offline(True)
    await page.goto(server.url + "/app/#/notices")
    await page.wait_for_selector("#r-notices li")
    assert await page.text_content("#sync-state") == "离线"
    titles = await page.locator("#r-notices li .main").all_text_contents()
    assert sorted(titles) == sorted(["垃圾分类宣传周", "停水通知"])
    assert await page.locator("ul.expired li .main").all_text_contents() == ["周末义诊"]
    await phone.check_screen("notices")
    await page.click(f'li[data-id="{water}"] a')
    await page.wait_for_selector("#r-confirm")
    assert "社区" in await page.text_content("#view > p.meta")  # the audience by its label
    paragraphs = await page.locator(".notice-body p").all_text_contents()
    assert paragraphs == ["明天 8:00–12:00 停水。", "请提前储水。"]
    assert "回执联网后发送" in await page.text_content("#r-receipt")
    # Its image, from the phone's copy: drawn, with a text for those who cannot see it.
    await page.wait_for_function(
        "() => document.querySelector('img.notice-image')?.naturalWidth === 24")
    assert await page.get_attribute("img.notice-image", "alt") == "图片 1：停水通知"
    await phone.check_screen("notice")
    await page.click("#r-confirm")
    await page.wait_for_function(
        "() => document.getElementById('r-receipt').textContent.includes('确认还在本机')")
    assert await page.is_hidden("#r-confirm")
    assert await page.get_attribute("#sync-waiting", "data-count") == "1"

    # Online again: the confirmation reaches the server, and the phone says it is sent.
    await phone.context.set_offline(False)
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await page.wait_for_selector("#sync-waiting[data-count='0']", timeout=30_000)
    key = water.removeprefix("notice:")
    receipt = await eventually(lambda: server.city.run(
        lambda: server.city.couch[RESIDENTS_DB].get(f"notice_receipt:{key}:{account}")), 10)
    assert receipt["confirmed_at"] and receipt["created_by"] == account
    await page.wait_for_function(
        "() => /您已于 .* 确认$/.test(document.getElementById('r-receipt').textContent)")
    await phone.show("#/")
    await page.wait_for_selector("#r-unread[data-count='1']")

    # A notice withdrawn leaves the phone (the purge list).
    async with aiohttp.ClientSession() as session, session.post(
            f"{server.url}/api/notices/{quote(leaflet, safe='')}/withdraw",
            headers=basic(supervisor)) as resp:
        assert resp.status == 200, await resp.text()
    await phone.show("#/notices")
    await page.wait_for_function(
        "(id) => !linli.resident.store.docs.has(id) && document.querySelectorAll("
        "'#r-notices li').length === 1", arg=leaflet, timeout=30_000)
    assert phone.problems == []
    await phone.context.close()


async def test_my_data_its_export_a_request_and_moving_out(
        browser: Browser, server: Server, caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    phone, place, account = await owner_of_301(browser, server, caplog, "10.15.0.5")
    page = phone.page
    await page.wait_for_function("() => linli.resident.store.members("
                                 f"'{place.household(1)}').length === 2")

    # Everything the server holds about the household, and the export as a file.
    await page.click("#r-mydata-link")
    await page.wait_for_selector('#r-mydata[aria-busy="false"] .mydata-section[data-key=members]')
    assert "王芳" in await page.text_content(".mydata-section[data-key=members]")
    await phone.check_screen("my data")
    async with page.expect_download() as download_info:
        await page.click("#r-export-json")
    download = await download_info.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.name.startswith("linli-my-data-") and saved.suffix == ".json"
    exported = json.loads(saved.read_text("utf-8"))
    assert exported["account"] == account
    assert place.household(1) in exported["households"]
    assert "19900517" not in saved.read_text("utf-8")
    # And asks for a deletion, which is tracked to an answer.
    await page.select_option("#r-request-kind", "deletion")
    await page.fill("#r-request-details", "请删除我家的车辆信息")
    await page.click("#r-request-submit")
    await page.wait_for_selector("li.data-request[data-status=open]")
    assert "删除" in await page.text_content("li.data-request")
    await phone.check_screen("my data, a request")

    # The worker records that 王伟 moved out: his household leaves the phone (the purge
    # list), and the home screen is a waiting one again.
    link_id = f"resident:{account}-{place.household(1).removeprefix('household:')}"
    link = await server.city.get(place.grid, link_id)
    await server.city.save(place.grid, {**link, "status": "removed", "removed_reason": "搬走",
                                        "removed_at": "2026-12-01T10:00:00+08:00"})
    await phone.show("#/")
    await page.wait_for_selector("#r-state[data-state=pending]", timeout=40_000)
    held = await page.evaluate("() => [...linli.resident.store.docs.keys()]")
    assert not [i for i in held if i.startswith(("household:", "person:"))], held
    assert phone.problems == []
    await phone.context.close()
