"""The grid worker's PWA in real headless Chromium against the real server, the embedded store
and the demo city (`linli serve --demo`): a day of work offline, refusals, isolation between
grids, an expired login and an app update with records still waiting to be sent."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import couchdb
import pytest
from aiohttp import web
from conftest import CHROMIUM, CHROMIUM_ARGS, BlockingCity, City, Templates, eventually
from playwright.async_api import Browser, BrowserContext, Page

from server.admin import directory
from server.config import Config
from server.demo.loader import DEMO_PASSWORD, load_demo
from server.domain import rules
from server.domain.scope import grid_db
from server.domain.validation import SchemaRegistry
from server.store.couch import basic_authorization
from server.store.embedded import EmbeddedStore
from server.web.app import PWA_DIR, create_app
from server.web.keys import SUPERVISOR, DemoLoader

pytestmark = pytest.mark.slow  # a real Chromium

GRID_A, GRID_B = "g330802001001a", "g330802001001b"
PHONE = {"viewport": {"width": 360, "height": 740}, "locale": "zh-CN"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Deployment:
    """The app served on a fixed loopback port, so it can be stopped and started again (a new
    release) while the phone keeps the same origin."""

    def __init__(self, config: Config, pwa_dir: Path = PWA_DIR,
                 load: DemoLoader = load_demo) -> None:
        self.config, self.pwa_dir, self.port = config, pwa_dir, free_port()
        self.load = load
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # Live feeds are held open: a deployment does not wait a minute for them to end.
        app = create_app(self.config, self.pwa_dir, load_demo=self.load)
        self.runner = web.AppRunner(app, shutdown_timeout=1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        # The city's figures are ready once the design documents are installed and their views
        # built (the "designs" task of /api/health). A test of a screen times the screen, not
        # the store's first indexing of the demo city: under load that alone took over 90 s,
        # and was why the dashboard tests needed a rerun (issue 13, item 15).
        await app[SUPERVISOR].finished("designs")

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


class Demo:
    def __init__(self, store: EmbeddedStore, config: Config, app: Deployment,
                 couch: couchdb.Server) -> None:
        self.store, self.config, self.app = store, config, app
        self.city = City(BlockingCity(couch))  # the demo city's store, off the event loop
        self.couch = couch

    @property
    def url(self) -> str:
        return self.app.url

    def db(self, grid: str) -> couchdb.Database:
        return self.city.db(grid)

    async def records(self, grid: str) -> int:
        return await self.city.records(grid)

    async def quiet_household(self, grid: str, skip: int = 0) -> str:
        """A household of `grid` with no visit recorded yet."""
        def free() -> list[str]:
            db = self.db(grid)
            visited = {row.doc["household"] for row in db.view("_all_docs", include_docs=True)
                       if row.id.startswith("household_visit:")}
            return [row.id for row in db.view("_all_docs", startkey="household:",
                                              endkey="household:\ufff0")
                    if row.id not in visited]

        return (await self.city.run(free))[skip]


async def load_demo_city(data: Path) -> None:
    """The demo city (1,000 households in two grids) in a store of its own in `data`, its views
    built; both stopped after."""
    store = EmbeddedStore(data / "store")
    await store.start()
    try:
        app = Deployment(Config.from_mapping({"data": data, "couchdb_url": store.url,
                                              "demo": True}))
        await app.start()
        await app.stop()
    finally:
        await store.stop()


def loaded_already(_config: Config, _url: str) -> None:
    """A copy of the demo city's template holds the city: loading it again cost each module
    15-20 s of CPU (every record generated, checked and compared) and wrote nothing a test
    reads (the same grids and fee ratings again)."""


@pytest.fixture(scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory, templates: Templates
               ) -> AsyncIterator[Demo]:
    """The demo city for this module alone: the run loads it once, and each module starts its
    own store and app on a copy (the city already in it, not loaded again)."""
    data = await templates.copy("demo-city", load_demo_city, tmp_path_factory.mktemp("pwa"))
    store = EmbeddedStore(data / "store")
    await store.start()
    config = Config.from_mapping({"data": data, "couchdb_url": store.url, "demo": True})
    app = Deployment(config, load=loaded_already)
    await app.start()
    try:
        couch = await asyncio.to_thread(directory.prepared, couchdb.Server(store.url))
        yield Demo(store, config, app, couch)
    finally:
        await app.stop()
        await store.stop()


class Phone:
    """One browser context (a phone) with the app open, and what went wrong in it."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context, self.page = context, page
        self.problems: list[str] = []
        self.watch(page)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("console", lambda msg: self.problems.append(msg.text)
                if "Content Security Policy" in msg.text else None)

    @classmethod
    async def open(cls, browser: Browser, url: str, profile: Path | None = None,
                   offline: bool = False) -> Phone:
        if profile is None:
            context = await browser.new_context(**PHONE)
        else:
            context = await browser.browser_type.launch_persistent_context(
                str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                **PHONE)
        page = context.pages[0] if context.pages else await context.new_page()
        phone = cls(context, page)
        await context.set_offline(offline)
        await page.goto(url + "/app/")
        return phone

    async def login(self, name: str, password: str = DEMO_PASSWORD) -> None:
        page = self.page
        await page.wait_for_selector("#login[open]")
        await page.fill("#login-name", name)
        await page.fill("#login-password", password)
        await page.click("#login-submit")
        try:
            await page.wait_for_function("() => !document.getElementById('login').open")
        except Exception as exc:
            error = await page.text_content("#login-error")
            raise AssertionError(f"login as {name} failed: {error!r}") from exc

    async def wait_for_records(self, count: int, timeout: float = 60_000) -> None:
        await self.page.wait_for_function(
            "(n) => window.linli && linli.index && linli.index.docs.size >= n", arg=count,
            timeout=timeout)

    async def wait_controlled(self) -> None:
        await self.page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                          timeout=20_000)

    async def status(self) -> dict[str, Any]:
        return await self.page.evaluate("() => linli.sync.status()")

    async def wait_waiting(self, count: int, timeout: float = 30_000) -> None:
        """Until the outbox and the sync bar both say `count`: the outbox counts a record as
        soon as it is marked, the bar once the mark is stored on the phone."""
        await self.page.wait_for_function(
            "(n) => linli.sync && linli.sync.status().waiting === n && (document"
            ".getElementById('sync-waiting') || {}).dataset?.count === String(n)", arg=count,
            timeout=timeout)

    async def show(self, hash_route: str) -> None:
        await self.page.evaluate("(h) => { location.hash = h; }", hash_route)
        await self.page.wait_for_function("(h) => location.hash === h", arg=hash_route)

    async def local(self, doc_id: str) -> dict[str, Any] | None:
        return await self.page.evaluate("(id) => linli.index.get(id)", doc_id)

    async def close(self) -> None:
        await self.context.close()


def id_number(birth: str, sequence: str) -> str:
    first17 = "330802" + birth.replace("-", "") + sequence
    return first17 + rules.id_check_char(first17)


def wang_fang_visit(household: str, tag: str, day: str, outcome: str) -> dict[str, Any]:
    """A visit to `household` as wang.fang's phone would save it."""
    return {"_id": f"household_visit:{household[len('household:'):]}-{tag}",
            "type": "household_visit", "schema_version": 1, "grid": GRID_A,
            "created_by": "wang.fang", "household": household, "visited_on": day,
            "outcome": outcome}


def wrong_check(number: str) -> str:
    return number[:17] + ("1" if number[17] != "1" else "2")


async def page_says(page: Page, predicate: str, arg: Any = None, seconds: float = 60) -> Any:
    """Until the page's `predicate(arg)` gives something true, which is returned. For a predicate
    that returns a promise: `wait_for_function` takes the promise itself for true."""
    return await eventually(lambda: page.evaluate(predicate, arg), seconds, every=0.1)


async def field_error(page: Page, pointer: str) -> str:
    return (await page.locator(f'[data-pointer="{pointer}"] > .error').text_content()) or ""


async def wait_on_server(db: couchdb.Database, doc_id: str, timeout: float = 20) -> dict[str, Any]:
    return await wait_for_rev(db, doc_id, None, timeout)


async def kept_on_phone(demo: Demo, grid: str) -> int:
    """The records a worker's phone keeps after its next start: a household moved out, and
    what is filed under it, leave it (issue 23 item 4, pwa/sync.js `dropUnneeded`)."""
    def count() -> int:
        docs = [row.doc for row in demo.db(grid).view("_all_docs", include_docs=True)
                if not row.id.startswith("_design/")]
        moved = {d["_id"] for d in docs
                 if d.get("type") == "household" and d.get("status") == "moved_out"}
        return sum(1 for d in docs if d["_id"] not in moved and d.get("household") not in moved)
    return await asyncio.to_thread(count)


async def test_a_day_offline(browser: Browser, demo: Demo, tmp_path: Path) -> None:
    registry = SchemaRegistry()
    profile = tmp_path / "phone"
    phone = await Phone.open(browser, demo.url, profile)
    await phone.login("wang.fang")
    total = await demo.records(GRID_A)
    assert total > 2500  # the 560-household demo grid
    await phone.wait_for_records(total)
    await phone.wait_controlled()

    # Offline from here: a reload, then the browser closed and opened again.
    await phone.context.set_offline(True)
    await phone.page.reload()
    await phone.page.wait_for_selector(".buildings li a")
    await phone.close()
    phone = await Phone.open(browser, demo.url, profile, offline=True)
    await phone.page.wait_for_selector(".buildings li a")
    await phone.wait_for_records(await kept_on_phone(demo, GRID_A))
    page = phone.page
    assert not await page.is_visible("#login[open]")

    # A visit: first missing its outcome and with a count that is not a number.
    household = await demo.quiet_household(GRID_A)
    await phone.show(f"#/h/{quote(household, safe='')}")
    await page.click(f'a[href="#/new/household_visit/{quote(household, safe="")}"]')
    await page.wait_for_selector("form.record-form")
    await page.fill('[name="persons_present"]', "两")
    await page.click("form.record-form button[type=submit]")
    assert "走访结果" in await field_error(page, "/outcome")
    assert "整数" in await field_error(page, "/persons_present")
    assert await page.get_attribute('[name="outcome"]', "aria-invalid") == "true"
    assert (await phone.status())["waiting"] == 0
    await page.select_option('[name="outcome"]', "completed")
    await page.fill('[name="persons_present"]', "2")
    await page.fill('[name="notes"]', "户主在家，已登记")
    await page.click("form.record-form button[type=submit]")
    await page.wait_for_function("(h) => location.hash === h",
                                 arg=f"#/h/{quote(household, safe='')}")
    await phone.wait_waiting(1)

    # A census person: an ID number with a wrong check character, then the right one.
    await page.click(f'a[href="#/new/person/{quote(household, safe="")}"]')
    await page.wait_for_selector("form.record-form")
    # Every control of the form has a label, and nothing is wider than the phone.
    unlabelled = await page.evaluate(
        "() => [...document.querySelectorAll('main input, main select, main textarea')]"
        ".filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label'))"
        ".map((e) => e.outerHTML)")
    assert unlabelled == []
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
    good_id = id_number("1990-05-17", "002")  # even 17th digit: a woman
    await page.fill('[name="name"]', "柳小梅")
    await page.select_option('[name="relationship"]', "2")
    await page.select_option('[name="sex"]', "2")
    await page.fill('[name="birth_year"]', "1990")
    await page.fill('[name="birth_month"]', "5")
    await page.fill('[name="id_number"]', wrong_check(good_id))
    await page.click("form.record-form button[type=submit]")
    assert "校验" in await field_error(page, "/id_number")
    assert (await phone.status())["waiting"] == 1
    # A draft survives a reload.
    await page.fill('[name="id_number"]', good_id)
    await page_says(page, """async (number) => {  // the form keeps it as a draft
      const [name, a, b] = location.hash.replace(/^#\\/?/, "").split("/").map(decodeURIComponent);
      const draft = await linli.sync.loadDraft(`${name}~${a}~${b}`);
      return draft !== null && draft.id_number === number;
    }""", good_id)
    await page.reload()
    await page.wait_for_selector("form.record-form")
    assert await page.input_value('[name="id_number"]') == good_id
    assert await page.input_value('[name="name"]') == "柳小梅"
    await page.click("form.record-form button[type=submit]")
    await phone.wait_waiting(2)
    person = await (await page.wait_for_function(
        "() => [...linli.index.docs.values()].find((d) => d.name === '柳小梅')")).json_value()
    assert person["household"] == household and person["created_by"] == "wang.fang"

    # A screening of that person: a temperature out of range, then a real one.
    await phone.show(f"#/h/{quote(household, safe='')}")
    await page.click(f'a[href="#/new/screening/{quote(person["_id"], safe="")}"]')
    await page.wait_for_selector("form.record-form")
    await page.fill('[name="temperature"]', "45")
    await page.click("form.record-form button[type=submit]")
    assert "43" in await field_error(page, "/temperature")
    await page.fill('[name="temperature"]', "36.6")
    await page.select_option('[name="health_code"]', "green")
    await page.click("form.record-form button[type=submit]")
    await phone.wait_waiting(3)
    status = await phone.status()
    assert status["refused"] == [] and await page.text_content("#sync-waiting") == "待上传：3"

    # The English toggle: the app's words and the schema's labels switch.
    await phone.show(f"#/h/{quote(household, safe='')}")
    await page.click("#lang")
    await page.wait_for_selector("text=Record a visit")
    assert await page.get_attribute("html", "lang") == "en"
    await page.click("#lang")
    await page.wait_for_selector("text=记录走访")

    # Back online: everything reaches the server and passes its validation.
    await phone.context.set_offline(False)
    await phone.wait_waiting(0)
    db = demo.db(GRID_A)
    saved = await page.evaluate(
        "(h) => [...linli.index.docs.values()].filter((d) => d.household === h && "
        "d.created_by === 'wang.fang')", household)
    assert {d["type"] for d in saved} == {"household_visit", "person", "screening"}
    for doc in saved:
        stored = await wait_on_server(db, doc["_id"])
        assert stored["_rev"] == doc["_rev"]
        assert registry.problems(stored) == []
    assert phone.problems == []
    await phone.close()


async def test_refused_record_is_kept_and_goes_through_corrected(browser: Browser,
                                                                  demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    await phone.login("wang.fang")
    await phone.wait_for_records(await demo.records(GRID_A))
    page = phone.page
    household = await demo.quiet_household(GRID_A, skip=1)
    good_id = id_number("1985-02-03", "013")  # odd: a man
    person = {"_id": f"person:{household[len('household:'):]}-refusal", "type": "person",
              "schema_version": 1, "grid": GRID_A, "created_by": "wang.fang",
              "household": household, "name": "钱立新", "relationship": "1", "sex": "1",
              "birth_year": 1985, "birth_month": 2, "id_number": wrong_check(good_id),
              "status": "present"}
    # Saved as an older release of the app would have, without the check-character rule.
    await page.evaluate("(doc) => linli.sync.save(doc)", person)
    await page.wait_for_selector("#sync-refused", timeout=30_000)
    status = await phone.status()
    assert status["waiting"] == 0 and [r["id"] for r in status["refused"]] == [person["_id"]]
    assert "校验" in status["refused"][0]["reason"]
    assert await phone.local(person["_id"]) is not None  # kept on the phone
    assert await asyncio.to_thread(demo.db(GRID_A).get, person["_id"]) is None

    await page.click("#sync-refused")
    await page.wait_for_selector(".refused li")
    assert "校验" in (await page.text_content(".refused .reason") or "")
    await page.click(".refused li a")
    await page.wait_for_selector("form.record-form")
    assert "校验" in (await page.text_content(".refusal") or "")
    await page.fill('[name="id_number"]', good_id)
    await page.click("form.record-form button[type=submit]")
    stored = await wait_on_server(demo.db(GRID_A), person["_id"])
    assert stored["id_number"] == good_id
    await phone.wait_waiting(0)
    assert (await phone.status())["refused"] == []
    assert not await page.is_visible("#sync-refused")
    assert phone.problems == []
    await phone.close()


async def test_workers_see_their_grid_and_only_theirs(browser: Browser, demo: Demo) -> None:
    first = await Phone.open(browser, demo.url)
    await first.login("wang.fang")
    await first.wait_for_records(await demo.records(GRID_A))
    household = await demo.quiet_household(GRID_A, skip=2)
    visit = wang_fang_visit(household, "shared", "2026-11-20", "nobody_home")
    assert await first.page.evaluate(
        "(doc) => linli.sync.save(doc).then(() => true)", visit)
    await wait_on_server(demo.db(GRID_A), visit["_id"])

    second = await Phone.open(browser, demo.url)
    await second.login(f"w_{GRID_A}")
    await second.wait_for_records(await demo.records(GRID_A))
    assert (await second.local(visit["_id"]) or {}).get("outcome") == "nobody_home"

    other = await Phone.open(browser, demo.url)
    await other.login("li.qiang")
    await other.wait_for_records(await demo.records(GRID_B))
    grids = await other.page.evaluate(
        "() => [...new Set([...linli.index.docs.values()].map((d) => d.grid))]")
    assert grids == [GRID_B]
    assert await other.local(visit["_id"]) is None
    status = await other.page.evaluate(
        "(db) => fetch('/couch/' + db).then((r) => r.status)", grid_db(GRID_A))
    assert status == 404
    for phone in (first, second, other):
        assert phone.problems == []
        await phone.close()


async def test_expired_login_asks_again_and_keeps_the_queue(browser: Browser, demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    await phone.login("wang.fang")
    await phone.wait_for_records(await demo.records(GRID_A))
    page = phone.page
    await phone.context.set_offline(True)
    household = await demo.quiet_household(GRID_A, skip=3)
    visit = wang_fang_visit(household, "relogin", "2026-11-21", "refused")
    await page.evaluate("(doc) => linli.sync.save(doc)", visit)
    await phone.wait_waiting(1)
    await phone.context.clear_cookies()  # the session lapsed while the phone was offline
    await phone.context.set_offline(False)
    await page.wait_for_selector("#login[open]", timeout=30_000)
    assert "重新登录" in (await page.text_content("#login-error") or "")
    assert (await phone.status())["waiting"] == 1
    assert await asyncio.to_thread(demo.db(GRID_A).get, visit["_id"]) is None
    await page.fill("#login-password", DEMO_PASSWORD)
    await page.click("#login-submit")
    await wait_on_server(demo.db(GRID_A), visit["_id"])
    await phone.wait_waiting(0)
    assert phone.problems == []
    await phone.close()


UPDATE_STATE = """async () => {
  const reg = await navigator.serviceWorker.getRegistration();
  const state = (w) => w && `${w.state} ${w.scriptURL}`;
  return { url: location.href, ready: document.readyState, online: navigator.onLine,
    controller: state(navigator.serviceWorker.controller), active: state(reg && reg.active),
    waiting: state(reg && reg.waiting), installing: state(reg && reg.installing),
    offered: !document.getElementById("update").hidden,
    accepted: document.getElementById("update").dataset.accepted || null,
    index: window.linli && linli.index ? { docs: linli.index.docs.size,
      complete: linli.index.complete } : null,
    caches: await caches.keys() };
}"""


# Issue 13, item 15: this test needed a rerun while a release's server, just started, was still
# installing and warming the views of every grid in the background (reading each view so the
# store builds its index): on a loaded machine that kept the store busy past the 20 s the
# reloaded page had for its index. Deployment.start now waits for that work ("designs" in
# /api/health) before the phone is asked anything. A failure says where the update stood
# (UPDATE_STATE).
async def test_update_keeps_unsynced_records(browser: Browser, demo: Demo,
                                             tmp_path: Path) -> None:
    release = tmp_path / "pwa"
    shutil.copytree(PWA_DIR, release)
    config = Config.from_mapping({"data": tmp_path, "couchdb_url": demo.store.url})
    app = Deployment(config, release)
    await app.start()
    try:
        phone = await Phone.open(browser, app.url)
        await phone.login("wang.fang")
        await phone.wait_for_records(await demo.records(GRID_A))
        await phone.wait_controlled()
        page = phone.page
        old_release = await page.evaluate("() => caches.keys()")

        await phone.context.set_offline(True)
        household = await demo.quiet_household(GRID_A, skip=4)
        visit = wang_fang_visit(household, "update", "2026-11-22", "completed")
        await page.evaluate("(doc) => linli.sync.save(doc)", visit)
        await phone.wait_waiting(1)

        # A new release is deployed while the phone is offline with a record waiting.
        await app.stop()
        with (release / "app.css").open("a", encoding="utf-8") as css:
            css.write("\n/* release 2 */\n")
        await app.start()
        await phone.context.set_offline(False)
        try:
            await page.wait_for_selector("#update:not([hidden])", timeout=30_000)
            async with page.expect_navigation():
                await page.click("#update-now")
            await page.wait_for_function(
                "() => window.linli && linli.index && linli.index.complete", timeout=20_000)
        except Exception as exc:  # say where the update stood: the next failure is a diagnosis
            raise AssertionError(f"update stuck: {await page.evaluate(UPDATE_STATE)}") from exc
        new_release = await page.evaluate("() => caches.keys()")
        assert new_release != old_release and len(new_release) == 1
        assert await phone.local(visit["_id"]) is not None
        stored = await wait_on_server(demo.db(GRID_A), visit["_id"])
        assert stored["outcome"] == "completed"
        await phone.wait_waiting(0)
        assert phone.problems == []
        await phone.close()
    finally:
        with contextlib.suppress(Exception):
            await app.stop()


# --- edits, merges and the supervisor's conflict queue -------------------------------------

STAMP = re.compile(r"^[0-9]{13}-[0-9]{4}$")
CLOCK_CHECKS = """async () => {
  const clock = await import("/app/clock.js");
  const pattern = /^[0-9]{13}-[0-9]{4}$/;
  const realNow = Date.now;
  const out = {};
  try {
    const stamps = Array.from({ length: 1000 }, () => clock.stamp());
    out.monotonic = stamps.every((s, i) => i === 0 || s > stamps[i - 1]);
    out.wellFormed = stamps.every((s) => pattern.test(s));
    out.first = stamps[0];
    // Another phone's stamp, a day ahead of this phone's clock, and an older one.
    const dayAhead = realNow() + 86400000;
    out.seen = clock.format(dayAhead, 3);
    clock.observe(out.seen);
    clock.observe(clock.format(dayAhead - 1, 9999));  // older: changes nothing
    clock.observe("not a stamp");
    Date.now = () => 0;  // the phone's clock set to 1970
    out.in1970 = [clock.stamp(), clock.stamp()];
    Date.now = () => 5;
    out.fiveMs = clock.stamp();
    out.tick = [clock.tick("1795718117877-9999", 0), clock.tick(null, 42),
      clock.tick("0000000000042-0001", 43)];
    out.last = clock.lastStamp();
  } finally {
    Date.now = realNow;
  }
  return out;
}"""


async def test_clock_stamps_after_everything_it_issued_or_saw(browser: Browser,
                                                              demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    got = await page.evaluate(CLOCK_CHECKS)
    assert got["monotonic"] and got["wellFormed"] and STAMP.match(got["first"])
    first, second = got["in1970"]
    # After a stamp from today, a phone that believes it is 1970 still stamps after it, in order.
    assert got["seen"] < first < second and STAMP.match(first)
    assert first == got["seen"][:-4] + "0004" and got["fiveMs"] > second
    # A counter past 9999 moves on to the next millisecond; an empty clock starts at now.
    assert got["tick"] == ["1795718117878-0000", "0000000000042-0000", "0000000000043-0000"]
    # A reload (the clock frozen at 1970) never issues a stamp again.
    await page.reload()
    again = await page.evaluate("""async () => {
      const clock = await import("/app/clock.js");
      const realNow = Date.now;
      Date.now = () => 0;
      try { return clock.stamp(); } finally { Date.now = realNow; }
    }""")
    assert again > got["last"] and STAMP.match(again)
    assert phone.problems == []
    await phone.close()


async def wait_for_rev(db: couchdb.Database, doc_id: str, rev: str | None,
                       timeout: float = 20) -> dict[str, Any]:
    """The record once it has reached the server (at revision `rev`, if given)."""
    async def arrived() -> dict[str, Any] | None:
        doc = await asyncio.to_thread(db.get, doc_id)
        return dict(doc) if doc is not None and rev in (None, doc["_rev"]) else None

    return await eventually(arrived, timeout, every=0.2, what=f"{doc_id} {rev or ''} stored")


async def save_form(phone: Phone, back: str) -> None:
    await phone.page.click("form.record-form button[type=submit]")
    await phone.page.wait_for_function("(h) => location.hash === h", arg=back)


async def test_a_saved_edit_is_stamped_per_field(browser: Browser, demo: Demo) -> None:
    registry = SchemaRegistry()
    db = demo.db(GRID_A)
    plain_id = await demo.quiet_household(GRID_A, skip=5)
    stamped_id = await demo.quiet_household(GRID_A, skip=6)
    # A household another phone already edited (version 2), stamped ten minutes ahead of this
    # phone's clock: once seen, this phone must stamp after it.
    ahead = f"{int(time.time() * 1000) + 600_000:013d}-0007"
    stamped = dict(await asyncio.to_thread(db.get, stamped_id))
    assert stamped["schema_version"] == 1
    stamped.update(schema_version=2, head_name="周建华",
                   edits=[{"field": "head_name", "at": ahead, "by": f"w_{GRID_A}"}])
    assert registry.problems(stamped) == []
    await asyncio.to_thread(db.save, stamped)

    phone = await Phone.open(browser, demo.url)
    await phone.login("wang.fang")
    await phone.wait_for_records(await demo.records(GRID_A))
    page = phone.page
    await page.wait_for_function("(id) => linli.index.get(id)?.schema_version === 2",
                                 arg=stamped_id)

    async def edit_phone(household: str, number: str) -> dict[str, Any]:
        back = f"#/h/{quote(household, safe='')}"
        await phone.show(back)
        await page.click(f'a[href="#/edit/{quote(household, safe="")}"]')
        await page.wait_for_selector("form.record-form")
        assert await page.locator('[name^="edits"], [data-pointer^="/edits"]').count() == 0
        # A set's options are labelled from the schema, not shown as codes.
        assert await page.locator("label.choice", has_text="独居老人").count() == 1
        await page.fill('[name="phone"]', number)
        await save_form(phone, back)
        saved = await (await page.wait_for_function(
            "([id, n]) => { const d = linli.index.get(id); return d && d.phone === n && d; }",
            arg=[household, number])).json_value()
        await phone.wait_waiting(0)
        stored = await wait_for_rev(db, household, saved["_rev"])
        assert registry.problems(stored) == []
        return saved

    # A version 1 household: raised to version 2, and only the phone is stamped.
    plain = await edit_phone(plain_id, "13700001234")
    assert plain["schema_version"] == 2
    [entry] = plain["edits"]
    assert entry["field"] == "phone" and entry["by"] == "wang.fang" and STAMP.match(entry["at"])

    # A household with an earlier edit: that entry stays, the phone's is added after the stamp
    # the phone saw.
    again = await edit_phone(stamped_id, "13700005678")
    edits = {e["field"]: e for e in again["edits"]}
    assert set(edits) == {"head_name", "phone"}
    assert edits["head_name"] == {"field": "head_name", "at": ahead, "by": f"w_{GRID_A}"}
    assert edits["phone"]["by"] == "wang.fang" and edits["phone"]["at"] > ahead

    # Saving again with nothing changed stamps nothing; removing a member stamps its status.
    back = f"#/h/{quote(stamped_id, safe='')}"
    await page.click(f'a[href="#/edit/{quote(stamped_id, safe="")}"]')
    await page.wait_for_selector("form.record-form")
    await save_form(phone, back)
    await page.wait_for_function("([id, rev]) => linli.index.get(id)._rev !== rev",
                                 arg=[stamped_id, again["_rev"]])
    assert (await phone.local(stamped_id) or {})["edits"] == again["edits"]
    member = await page.evaluate("(h) => linli.index.membersOf(h)[0]", stamped_id)
    await page.click(f'a[href="#/remove/{quote(member["_id"], safe="")}"]')
    await page.select_option("#remove-reason", "moved_out")
    await page.click("form.record-form button[type=submit]")
    await page.wait_for_function("(id) => linli.index.get(id).status === 'moved_out'",
                                 arg=member["_id"])
    removed = await phone.local(member["_id"]) or {}
    assert removed["schema_version"] == 2
    assert [(e["field"], e["by"]) for e in removed["edits"]] == [("status", "wang.fang")]
    assert removed["edits"][0]["at"] > edits["phone"]["at"]
    await phone.wait_waiting(0)
    assert registry.problems(await wait_for_rev(db, member["_id"], removed["_rev"])) == []
    assert phone.problems == []
    await phone.close()


def resolution(record: dict[str, Any], fields: list[dict[str, Any]], *, resolved_at: str,
               deleted_by: str | None = None, status: str = "open") -> dict[str, Any]:
    """A resolution as the server's resolver writes it into the grid's database: two revisions,
    the first by the field's other side."""
    kind, grid = record["type"], record["grid"]
    revisions = [{"rev": "3-" + "1" * 32, "deleted": False,
                  "by": fields[0].get("alternatives", [fields[0]["chosen"]])[0]["by"],
                  "received_at": resolved_at, "device_time": None, "outcome": "merged"},
                 {"rev": "3-" + "2" * 32, "deleted": deleted_by is not None,
                  "by": deleted_by or fields[0]["chosen"]["by"], "received_at": resolved_at,
                  "device_time": None, "outcome": "deleted" if deleted_by else "kept"}]
    return {"_id": f"resolution:{record['_id']}:{uuid.uuid4().hex[:16]}", "type": "resolution",
            "schema_version": 1, "grid": grid, "created_by": "linli-resolver",
            "record": record["_id"], "record_type": kind, "resolved_at": resolved_at,
            "ancestor_rev": "2-" + "0" * 32, "result_rev": "4-" + "3" * 32,
            "revisions": revisions, "fields": fields, "status": status}


def side(by: str, value: Any, digit: str = "1") -> dict[str, Any]:
    return {"rev": "3-" + digit * 32, "by": by, "received_at": "2026-11-26T10:00:01+00:00",
            "value": value}


async def test_a_merge_is_shown_to_the_worker(browser: Browser, demo: Demo) -> None:
    registry = SchemaRegistry()
    db = demo.db(GRID_A)
    household_id = await demo.quiet_household(GRID_A, skip=7)
    household = dict(await asyncio.to_thread(db.get, household_id))
    phone = await Phone.open(browser, demo.url)
    await phone.login("wang.fang")
    await phone.wait_for_records(await demo.records(GRID_A))
    page = phone.page
    other = f"w_{GRID_A}"
    member = await page.evaluate("(h) => linli.index.membersOf(h)[0]", household_id)

    merge = resolution(household, [
        {"field": "phone", "rule": "concurrent_edits", "undecided": True,
         "chosen": side(other, "13800001111", "2"),
         "alternatives": [side("wang.fang", "13900002222")]},
        {"field": "remarks", "rule": "one_side_changed", "undecided": False,
         "chosen": side("wang.fang", "独居，子女在外地工作，每周回来一次看望")},
    ], resolved_at="2026-11-26T10:00:02+00:00")
    lost = resolution(member, [
        {"field": "phone", "rule": "edit_beats_deletion", "undecided": False,
         "chosen": side("wang.fang", "13900003333")},
    ], resolved_at="2026-11-26T11:00:00+00:00", deleted_by=other, status="resolved")
    for doc in (merge, lost):
        assert registry.problems(doc) == []
        await asyncio.to_thread(db.save, doc)
    await page.wait_for_function("(ids) => ids.every((id) => linli.index.get(id))",
                                 arg=[merge["_id"], lost["_id"]])

    await phone.show(f"#/h/{quote(household_id, safe='')}")
    section = page.locator("section.merges")
    await section.wait_for()
    assert await section.get_attribute("aria-labelledby") == "merges-title"
    assert await page.text_content("#merges-title") == "修改合并"
    items = section.locator("li.merge")
    # Newest first: the member's deletion that did not take effect, then the household's phone.
    assert [await items.nth(i).get_attribute("data-resolution") for i in range(2)] == \
        [lost["_id"], merge["_id"]]
    first = await items.nth(0).inner_text()
    assert "删除未生效：有人同时修改了这条记录" in first and member["name"] in first
    text = await items.nth(1).inner_text()
    assert f"与 {other} 的修改已合并" in text
    assert f"联系电话 两人都改了，暂用 {other} 的值（13800001111），等待督导员决定" in text
    assert "待督导员决定" in text
    mine = items.nth(1).locator(".side-mine")
    assert await mine.inner_text() == "您的修改 13900002222"
    assert "其他自动合并的字段：备注" in text
    assert "独居，子女在外地工作，每周回来一次看望" not in text  # routine merges are only named
    assert not await page.is_visible("#conflicts-link")  # the queue is the supervisors'
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360

    await page.click("#lang")
    await page.wait_for_selector("text=Merged edits")
    text = await items.nth(1).inner_text()
    assert f"Merged with {other}'s edits" in text
    assert f"Phone was changed on both sides; {other}'s value (13800001111) stands until a " \
        "supervisor decides" in text
    assert await mine.inner_text() == "Your edit 13900002222"
    await page.click("#lang")
    await page.wait_for_selector("text=修改合并")

    # A supervisor decides: the note says who and what.
    decided = {**merge, "status": "decided", "decided_by": "chen.jing",
               "decided_at": "2026-11-26T12:00:00+00:00",
               "fields": [{**merge["fields"][0], "rule": "supervisor", "undecided": False,
                           "chosen": side("chen.jing", "13900002222", "4")},
                          merge["fields"][1]]}
    decided["_rev"] = (await asyncio.to_thread(db.get, merge["_id"]))["_rev"]
    assert registry.problems(decided) == []
    await asyncio.to_thread(db.save, decided)
    note = section.locator(f'li.merge[data-resolution="{merge["_id"]}"] .merge-decided')
    await note.wait_for()
    assert await note.inner_text() == "督导员 chen.jing 已决定：联系电话 = 13900002222"
    assert phone.problems == []
    await phone.close()


PARSE_TYPED = """async () => {
  const { parseTyped } = await import("/app/conflicts.js");
  const schemas = await (await fetch("/app/schemas.json")).json();
  const props = schemas.types.household["2"].properties;
  const person = schemas.types.person["2"].properties;
  return [parseTyped(props.area_m2, " 85.5 "), parseTyped(props.vehicles, "2"),
    parseTyped(props.phone, "13800001111"), parseTyped(props.tenure, "租住"),
    parseTyped(props.special_groups, "独居老人、disability"), parseTyped(person.literate, "否"),
    parseTyped(props.vehicles, "两")];
}"""


async def test_the_supervisor_decides_conflicts(browser: Browser, demo: Demo) -> None:
    registry = SchemaRegistry()
    db = demo.db(GRID_B)
    first_id = await demo.quiet_household(GRID_B, 0)
    second_id = await demo.quiet_household(GRID_B, 1)
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("chen.jing")  # a supervisor of the community: both demo grids
    status = await page.evaluate("() => fetch('/api/conflicts').then((r) => r.status)")
    if status == 404:
        await phone.close()
        pytest.skip("the server has no GET /api/conflicts yet (the conflict resolver's API)")
    assert await page.evaluate(PARSE_TYPED) == [
        85.5, 2, "13800001111", "rented", ["elderly_alone", "disability"], False, "两"]

    other = f"w_{GRID_B}"
    opened = []
    for n, household_id in enumerate((first_id, second_id)):
        household = dict(await asyncio.to_thread(db.get, household_id))
        # As the resolver leaves it: the record holds the provisional value.
        household["phone"] = f"1380000111{n}"
        await asyncio.to_thread(db.save, household)
        doc = resolution(household, [
            {"field": "phone", "rule": "concurrent_edits", "undecided": True,
             "chosen": side("li.qiang", f"1380000111{n}", "2"),
             "alternatives": [side(other, f"1390000222{n}")]},
            {"field": "head_name", "rule": "one_side_changed", "undecided": False,
             "chosen": side("li.qiang", household["head_name"], "2")},
        ], resolved_at=f"2026-11-26T10:0{n}:00+00:00")
        assert registry.problems(doc) == []
        await asyncio.to_thread(db.save, doc)
        opened.append(doc)

    await page.click("#conflicts-link")
    cards = [page.locator(f'section.conflict[data-id="{doc["_id"]}"]') for doc in opened]
    for card in cards:
        await card.wait_for()
    first, second = cards
    heading = await first.locator("h3").inner_text()
    assert heading.startswith("住户") and first_id.split(":")[1] not in heading
    assert await first.locator("fieldset legend").all_inner_texts() == ["联系电话"]
    choices = await first.locator(".side-choice").all_inner_texts()
    # The side's sender by name (姓名), not by login (issue 22, item 8).
    assert "13800001110" in choices[0] and "李强" in choices[0] and "暂用" in choices[0]
    assert "li.qiang" not in choices[0]
    assert "13900002220" in choices[1] and other in choices[1]
    unlabelled = await page.evaluate(
        "() => [...document.querySelectorAll('main input, main select, main textarea')]"
        ".filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label'))"
        ".map((e) => e.outerHTML)")
    assert unlabelled == []
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360

    # Every field needs a choice; then the other worker's value is chosen.
    await first.locator("button[type=submit]").click()
    assert await first.locator("fieldset .error").inner_text() == "请为每个字段选定一个值"
    await first.locator(".side-choice input").nth(1).check()
    await first.locator("button[type=submit]").click()
    await first.wait_for(state="detached")
    stored = await asyncio.to_thread(db.get, first_id)
    assert stored["phone"] == "13900002220"
    assert (await asyncio.to_thread(db.get, opened[0]["_id"]))["status"] == "decided"

    # Someone else settled the second one meanwhile: the reason shows and the list reloads.
    settled = dict(await asyncio.to_thread(db.get, opened[1]["_id"]))
    settled.update(status="decided", decided_by="sun.lei",
                   decided_at="2026-11-26T12:00:00+00:00")
    settled["fields"][0].update(rule="supervisor", undecided=False)
    await asyncio.to_thread(db.save, settled)
    await second.locator("input.typed").fill("13311112222")
    assert await second.locator('input[value="other"]').is_checked()
    await second.locator("button[type=submit]").click()
    await second.wait_for(state="detached")
    notice = await page.text_content(".notice") or ""
    assert notice.startswith("记录已有新的修改，列表已刷新") and "已经处理过" in notice
    assert (await asyncio.to_thread(db.get, second_id))["phone"] != "13311112222"

    # With no network the screen says so.
    await phone.context.set_offline(True)
    await page.reload()
    await page.wait_for_selector(".needs-network")
    assert await page.text_content(".needs-network") == "需要网络"
    assert phone.problems == []
    await phone.close()


async def test_two_phones_edit_one_household_offline(browser: Browser, demo: Demo) -> None:
    """Two workers of the grid edit the same household offline (one its phone, the other its
    remarks and, both, its special groups), then sync: the server's resolver merges them, the
    record and its trail say so field by field, and both phones end with the merged record."""
    household = await demo.quiet_household(GRID_A, skip=9)
    first = await Phone.open(browser, demo.url)
    await first.login("wang.fang")
    second = await Phone.open(browser, demo.url)
    await second.login(f"w_{GRID_A}")
    total = await demo.records(GRID_A)
    for phone in (first, second):
        await phone.wait_for_records(total)
        await phone.context.set_offline(True)
    route = f"#/edit/{quote(household, safe='')}"

    async def edit(phone: Phone, fill: dict[str, str], check: str) -> None:
        await phone.show(route)
        await phone.page.wait_for_selector("form.record-form")
        for name, value in fill.items():
            await phone.page.fill(f'[name="{name}"]', value)
        await phone.page.check(f'input[type=checkbox][value="{check}"]')
        await phone.page.click("form.record-form button[type=submit]")
        await phone.wait_waiting(1)

    await edit(first, {"phone": "13905709901"}, "hardship")
    await edit(second, {"remarks": "两部手机同时修改"}, "disability")
    await first.context.set_offline(False)
    await first.wait_waiting(0)
    await second.context.set_offline(False)
    await second.wait_waiting(0)

    db = demo.db(GRID_A)

    async def merged() -> dict[str, Any] | None:
        doc = await asyncio.to_thread(db.get, household, conflicts=True)
        return doc if doc and "_conflicts" not in doc and doc.get("remarks") and doc.get(
            "phone") == "13905709901" else None

    doc = await eventually(merged, 30, every=0.2, what="the merge on the server")
    assert "_conflicts" not in doc, doc
    assert (doc["phone"], doc["remarks"]) == ("13905709901", "两部手机同时修改")
    assert {"hardship", "disability"} <= set(doc.get("special_groups", []))
    assert doc["schema_version"] == 2
    stamps = {e["field"]: e["by"] for e in doc["edits"]}
    assert stamps["phone"] == "wang.fang" and stamps["remarks"] == f"w_{GRID_A}"
    trails = [row.doc for row in await asyncio.to_thread(
        lambda: list(db.view("_all_docs", startkey=f"resolution:{household}:",
                             endkey=f"resolution:{household}:\ufff0", include_docs=True)))]
    assert len(trails) == 1 and trails[0]["status"] == "resolved"
    rules_by_field = {f["field"]: f["rule"] for f in trails[0]["fields"]}
    assert rules_by_field["phone"] == rules_by_field["remarks"] == "one_side_changed"
    assert rules_by_field["special_groups"] == "set_union"
    assert {r["by"] for r in trails[0]["revisions"]} == {"wang.fang", f"w_{GRID_A}"}
    for phone in (first, second):  # both phones end with the merged record
        await phone.page.wait_for_function(
            "([id, rev]) => (linli.index.get(id) || {})._rev === rev", arg=[household,
                                                                          doc["_rev"]],
            timeout=30_000)
        assert phone.problems == []
        await phone.close()


# --- the supervisors' dashboard --------------------------------------------------------------

CHART_CHECKS = """() => [...document.querySelectorAll('#dashboard svg.chart')].map((svg) => {
  const table = svg.nextElementSibling;
  return {
    chart: svg.dataset.chart,
    role: svg.getAttribute('role'),
    label: svg.getAttribute('aria-label') || '',
    styled: svg.querySelectorAll('[style]').length,
    next: table ? table.tagName : null,
    caption: table && table.caption ? table.caption.textContent : '',
    colHeads: table ? [...table.querySelectorAll('thead th')].map((th) => th.scope) : [],
    rows: table ? [...table.tBodies[0].rows].map((tr) => ({
      head: tr.cells[0].tagName + ':' + tr.cells[0].getAttribute('scope'),
      code: (tr.querySelector('a') || {}).dataset?.code || null,
      cells: [...tr.cells].map((c) => c.textContent),
    })) : [],
  };
})"""


async def dashboard_shows(page: Page, level: str) -> dict[str, Any]:
    """Waits for the dashboard of `level` and gives the API's answer for it."""
    try:
        await page.wait_for_function(
            "(level) => { const box = document.getElementById('dashboard');"
            " return box && box.getAttribute('aria-busy') === 'false' && window.linli.dashboard"
            " && linli.dashboard.level === level; }", arg=level, timeout=90_000)
    except Exception as exc:
        shown = await page.evaluate(
            "() => [location.hash, (document.getElementById('dashboard') || {}).outerHTML]")
        raise AssertionError(f"the {level} dashboard never showed: {shown}") from exc
    return await page.evaluate(
        "() => { const [, , level = 'city', code = ''] = location.hash.split('/');"
        " const q = level === 'city' ? 'level=city' : `level=${level}&code=${code}`;"
        " return fetch('/api/aggregates?' + q).then((r) => r.json()); }")


def calendar_days(first: str, last: str) -> list[str]:
    """Every day from `first` to `last` (ISO dates), both included."""
    start, end = datetime.date.fromisoformat(first), datetime.date.fromisoformat(last)
    return [(start + datetime.timedelta(days=n)).isoformat()
            for n in range((end - start).days + 1)]


def digits(text: str | None) -> str:
    return re.sub(r"\D", "", text or "")


BREAKDOWNS = {"households_status": "households.status.", "persons_sex": "persons.sex.",
              "persons_age": "persons.age.", "screenings_result": "screenings.result.",
              "screenings_health_code": "screenings.health_code."}


async def check_dashboard(page: Page, api: dict[str, Any]) -> None:
    shown = await page.text_content('[data-figure="households"] dd')
    assert digits(shown) == str(api["figures"].get("households", 0))
    charts = await page.evaluate(CHART_CHECKS)
    split = [kind for kind, prefix in BREAKDOWNS.items()
             if any(k.startswith(prefix) for k in api["figures"])]
    timed = ["review_time"] if api["figures"].get("review.timed") else []
    assert [c["chart"] for c in charts] == ["coverage", "screenings", "review", *split, *timed]
    for chart in charts:
        assert chart["role"] == "img" and chart["label"], chart
        assert chart["styled"] == 0, chart
        assert chart["next"] == "TABLE" and chart["caption"], chart
        assert chart["colHeads"] and set(chart["colHeads"]) == {"col"}, chart
        assert all(row["head"] == "TH:row" for row in chart["rows"]), chart
    coverage, screenings, review = charts[:3]
    for chart in charts[3:3 + len(split)]:  # each code's count, and their shares
        prefix = BREAKDOWNS[chart["chart"]]
        assert sorted(digits(r["cells"][1]) for r in chart["rows"]) == sorted(
            str(v) for k, v in api["figures"].items() if k.startswith(prefix))
        assert all(r["cells"][2].endswith("%") for r in chart["rows"]), chart
    children = api["children"] or [api]
    assert len(coverage["rows"]) == len(children)
    for row, child in zip(coverage["rows"], children, strict=True):
        if api["children"]:
            assert row["code"] == child["code"]
        households = child["figures"].get("households", 0)
        covered = child["figures"].get("visits.covered", 0)
        assert [digits(c) for c in row["cells"][1:3]] == [str(households), str(covered)]
        assert row["cells"][3] == f"{round(100 * covered / households)}%"
        assert f"{round(100 * covered / households)}%" in coverage["label"]
    held = sorted(k.removeprefix("screenings.day.") for k in api["figures"]
                  if k.startswith("screenings.day."))
    days = calendar_days(held[0], held[-1])[-30:] if held else []  # gaps shown as 0
    assert [(r["cells"][0], digits(r["cells"][1])) for r in screenings["rows"]] == [
        (day, str(api["figures"].get(f"screenings.day.{day}", 0))) for day in days]
    assert [digits(r["cells"][1]) for r in review["rows"]] == [
        str(api["figures"].get(f"review.{v}", 0)) for v in ("approved", "has_issues", "rejected")]


# Causes found (issue 13, item 15): PouchDB's unhandled "Failed to fetch" after the offline
# reload (pwa/app.js); a superseded load setting linli.dashboard to another area's figures
# (pwa/dashboard.js, forced in tests/test_holes_flaky.py); and the figures asked for while the
# server was still warming the demo city's views in the background, which under load took
# longer than the 90 s given here (seen in a dump of the server's tasks: the query waited on
# the store's first indexing). Deployment.start now waits for the views to be ready. A failure
# says what the screen showed (dashboard_shows).
async def test_the_supervisors_dashboard(browser: Browser, demo: Demo, tmp_path: Path) -> None:
    # The server works out a grid's figures from its views the first time they are asked for,
    # which on a fresh demo city takes a while: ask once before the phone does.
    auth = {"Authorization": basic_authorization("chen.jing", DEMO_PASSWORD)}
    wait = aiohttp.ClientTimeout(total=180)
    async with aiohttp.ClientSession(headers=auth, timeout=wait) as session, \
            session.get(f"{demo.url}/api/aggregates?level=city") as response:
        assert response.status == 200, await response.text()
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("chen.jing")  # a supervisor of the community: both demo grids
    await page.click("#dashboard-link")
    # She lands on her own level, the community (issue 22, item 7), named, not on 全市.
    await dashboard_shows(page, "community")
    assert await page.evaluate("() => linli.dashboard.code") == "330802001001"
    assert await page.locator("nav.crumbs li").all_inner_texts() == ["坊门街社区"]
    assert "全市" not in await page.text_content("h2.view-title")
    await page.evaluate("() => { location.hash = '#/dashboard/city'; }")
    city = await dashboard_shows(page, "city")
    assert city["figures"]["households"] == 1000
    await check_dashboard(page, city)
    assert await page.is_visible("#print")
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
    screenshot = tmp_path / "dashboard.png"
    await page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0

    # Down through the district and the street to the community, each by its row's link.
    api = city
    for level in ("district", "street", "community"):
        (child,) = api["children"]
        assert child["level"] == level
        await page.click(f'table[data-table="coverage"] a[data-code="{child["code"]}"]')
        api = await dashboard_shows(page, level)
        assert await page.evaluate("() => location.hash") == (
            f"#/dashboard/{level}/{child['code']}")
    community = api
    assert community["code"] == "330802001001"
    assert sorted(c["code"] for c in community["children"]) == [GRID_A, GRID_B]
    await check_dashboard(page, community)
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360

    # A grid, and back to the community by the breadcrumbs.
    await page.click(f'table[data-table="coverage"] a[data-code="{GRID_A}"]')
    grid = await dashboard_shows(page, "grid")
    assert grid["code"] == GRID_A and grid["children"] == []
    await check_dashboard(page, grid)
    crumbs = await page.locator("nav.crumbs li").all_inner_texts()
    # From her own level down (above it is not hers), by names, not codes.
    assert crumbs == ["坊门街社区", "坊门街社区第一网格"]
    assert grid["parents"][-1]["name"] == "坊门街社区"
    href = await page.get_attribute('a.download[data-format="xlsx"]', "href")
    assert href == f"/api/export?what=aggregates&level=grid&code={GRID_A}&format=xlsx"
    assert await page.evaluate("(href) => fetch(href).then((r) => r.status)", href) == 200
    await page.click('nav.crumbs a[data-level="community"]')
    await dashboard_shows(page, "community")
    assert await page.evaluate("() => location.hash") == "#/dashboard/community/330802001001"

    # With no network the screen says so.
    await phone.context.set_offline(True)
    await page.reload()
    await page.wait_for_selector(".needs-network")
    assert await page.text_content(".needs-network") == "需要网络"
    assert phone.problems == []
    await phone.close()
