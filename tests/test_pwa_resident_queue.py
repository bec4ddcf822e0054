"""The grid worker's resident work (pwa/worker/residents.js) in real headless Chromium against
the real server, the embedded store and the demo city: a sign-up waiting in the queue is
confirmed at the door with the phone offline, shown by name and address (never an id or a
code), and once synced the server writes the resident's link; a code is made for the
household with its QR; and a resident's correction request is answered on the phone, the
accepted change reaching the record through the gateway's checks."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import quote

import couchdb
import pytest
from conftest import eventually
from playwright.async_api import Browser, Page
from test_pwa import GRID_A, Demo, Phone, resolution, side, wait_on_server
from test_pwa import demo as demo  # the demo city's fixture (one per module)

pytestmark = pytest.mark.slow  # a real Chromium

UNLABELLED = """() => [...document.querySelectorAll('main input, main select, main textarea')]
  .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label')).map((e) => e.outerHTML)"""
SMALL_TARGETS = """() => [...document.querySelectorAll(
    'main button, main .choice, main .form-actions a')]
  .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().height < 44)
  .map((e) => e.outerHTML.slice(0, 80))"""
# What a worker must never be shown: record ids and the schemas' codes.
MACHINE_WORDS = re.compile(r"household:|person:|signup:|\b(ambiguous|not_found|pending|tenant|"
                           r"activated|door_to_door|open)\b")


async def households(demo: Demo, n: int) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]]:
        db = demo.db(GRID_A)
        return [row.doc for row in db.view("_all_docs", startkey="household:",
                                           endkey="household:\ufff0", include_docs=True,
                                           limit=200)
                if row.doc.get("head_name")][40:40 + n]
    return await demo.city.run(read)


async def view_text(page: Page) -> str:
    return await page.inner_text("#view")


async def check_screen(page: Page) -> None:
    """Every control labelled, no layout wider than the phone, big enough to tap."""
    assert await page.evaluate(UNLABELLED) == []
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
    assert await page.evaluate(SMALL_TARGETS) == []


async def wait_for_doc(phone: Phone, doc_id: str) -> None:
    await phone.page.wait_for_function("(id) => linli.index && linli.index.get(id)", arg=doc_id,
                                       timeout=60_000)


async def test_a_sign_up_confirmed_at_the_door_offline(browser: Browser, demo: Demo) -> None:
    first, second = await households(demo, 2)
    account = "rq0000000001"
    signup = {"_id": f"signup:{account}", "type": "signup", "schema_version": 1,
              "grid": GRID_A, "created_by": "linli-signup", "account": account,
              "phone": "13905770001", "name": "柯一鸣", "community": "330802001001",
              "address": "三幢二单元301室", "status": "pending",
              "received_at": "2026-12-01T09:00:00+08:00",
              "match": {"status": "ambiguous", "candidates": [first["_id"], second["_id"]]}}
    await demo.city.save(GRID_A, signup)
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("wang.fang")
    await wait_for_doc(phone, signup["_id"])
    await phone.context.set_offline(True)

    await phone.show("#/")
    await page.click("#residents-link")
    await page.wait_for_selector("#signup-list")
    listed = await page.inner_text("#signup-list")
    assert "柯一鸣" in listed and "三幢二单元301室" in listed and "待人工判断" in listed
    assert not MACHINE_WORDS.search(await view_text(page)), await view_text(page)
    await check_screen(page)

    await page.click(f'a[href="#/decide/{quote(signup["_id"], safe="")}"]')
    await page.wait_for_selector("#household-choices")
    choices = await page.inner_text("#household-choices")
    assert first["head_name"] in choices and second["head_name"] in choices
    assert not MACHINE_WORDS.search(await view_text(page)), await view_text(page)
    await check_screen(page)
    # Nothing chosen: the phone says so and saves nothing.
    await page.click("#signup-confirm")
    assert "请选择住户" in await page.inner_text("#signup-error")
    await page.check(f'input[name=household][value="{second["_id"]}"]')
    await page.click("#signup-confirm")
    assert "请选择身份" in await page.inner_text("#signup-error")
    await page.select_option("#signup-role", "tenant")
    await page.click("#signup-confirm")
    await page.wait_for_function("() => location.hash === '#/residents'")
    await phone.wait_waiting(1)
    item = await page.inner_text("#signup-list")
    assert "柯一鸣" in item and "已激活" in item and "待上传" in item  # decided, not yet sent

    # Back online: the decision goes up, the server writes the link, the phone gets it.
    await phone.context.set_offline(False)
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    def link_written() -> Any:
        return demo.db(GRID_A).get(f"resident:{account}-{second['_id'].partition(':')[2]}")

    decided = await wait_for_status(demo.db(GRID_A), signup["_id"], "activated")
    assert (decided["household"], decided["role"], decided["decided_by"]) == (
        second["_id"], "tenant", "wang.fang")
    link = await eventually_sync(demo, link_written)
    assert (link["activation"], link["status"], link["role"]) == ("door_to_door", "active",
                                                                 "tenant")
    await wait_for_doc(phone, link["_id"])

    # The household shows its resident by name, and makes a code with its QR.
    await phone.show(f"#/h/{quote(second['_id'], safe='')}")
    await page.wait_for_selector("section.residents")
    assert "柯一鸣" in await page.inner_text("section.residents")
    await page.click(f'a[href="#/newcode/{quote(second["_id"], safe="")}"]')
    await page.wait_for_selector("#code-role")
    await check_screen(page)
    await page.select_option("#code-role", "family")
    await page.click("#code-make")
    await page.wait_for_selector("svg.qr")
    shown = await page.inner_text("#code-text")
    assert re.fullmatch(r"[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}", shown), shown
    assert shown in (await page.get_attribute("svg.qr", "aria-label") or "")
    assert await page.evaluate(
        "() => document.querySelector('svg.qr').getBoundingClientRect().width") >= 200
    await check_screen(page)
    code_id = f"activation_code:{GRID_A}-{shown.replace('-', '')}"
    made = await wait_on_server(demo.db(GRID_A), code_id, 60)
    assert (made["household"], made["role"], made["created_by"]) == (
        second["_id"], "family", "wang.fang")
    assert phone.problems == []
    await phone.close()

    # The QR opens the resident's activation screen with the code typed: the demo resident
    # waiting in this grid's queue sends it and has the household.
    resident = await Phone.open(browser, demo.url)
    await resident.login("13800000002")
    await resident.show(f"#/activate/{shown.replace('-', '')}")
    await resident.page.wait_for_selector("#activate-form")
    assert await resident.page.input_value("#r-code") == shown.replace("-", "")
    await resident.page.click("#r-code-submit")
    await resident.page.wait_for_selector("section.household")
    assert second["head_name"] in await resident.page.text_content("section.household")
    spent = await wait_on_server(demo.db(GRID_A), code_id, 60)
    assert spent.get("used_by")
    assert resident.problems == []
    await resident.close()


async def test_a_correction_answered_on_the_phone(browser: Browser, demo: Demo) -> None:
    [household] = await households(demo, 1)
    request = {"_id": "correction_request:rq0000000002-1", "type": "correction_request",
               "schema_version": 1, "grid": GRID_A, "created_by": "rq0000000002",
               "household": household["_id"], "status": "open", "note": "电话换号了",
               "changes": [{"record": household["_id"], "field": "/phone",
                            "proposed": "13905770222"}]}
    await demo.city.save(GRID_A, request)
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("wang.fang")
    await wait_for_doc(phone, request["_id"])
    await phone.show("#/residents")
    await page.wait_for_selector("#correction-list")
    assert household["head_name"] in await page.inner_text("#correction-list")
    await page.click(f'a[href="#/correction/{quote(request["_id"], safe="")}"]')
    await page.wait_for_selector("#correction-changes")
    table = await page.inner_text("#correction-changes")
    assert "13905770222" in table and household["phone"] in table and "电话" in table
    assert "电话换号了" in await view_text(page)
    assert not MACHINE_WORDS.search(await view_text(page)), await view_text(page)
    await check_screen(page)
    await page.click("#correction-accept")
    assert "请填写答复" in await page.inner_text("#correction-error")
    await page.fill("#correction-answer", "已上门核实，已更正")
    await page.click("#correction-accept")
    await page.wait_for_function("() => location.hash === '#/residents'")

    answered = await wait_for_status(demo.db(GRID_A), request["_id"], "accepted")
    assert (answered["answered_by"], answered["answer"]) == ("wang.fang", "已上门核实，已更正")
    corrected = await eventually_sync(
        demo, lambda: (doc := demo.db(GRID_A).get(household["_id"])) and doc.get(
            "phone") == "13905770222" and doc)
    assert {"field": "phone", "by": "wang.fang"}.items() <= next(
        e for e in corrected["edits"] if e["field"] == "phone").items()
    assert phone.problems == []
    await phone.close()


async def test_a_worker_overruled_offline_is_told(browser: Browser, demo: Demo) -> None:
    """wang.fang confirmed a sign-up offline; another phone's decision reached the server first
    and stands. Her phone shows the decision that stands and says whose it is."""
    first, second = await households(demo, 2)
    account = "rq0000000003"
    signup = {"_id": f"signup:{account}", "type": "signup", "schema_version": 1,
              "grid": GRID_A, "created_by": "linli-signup", "account": account,
              "phone": "13905770003", "name": "祁三", "community": "330802001001",
              "address": "5幢101", "status": "activated", "household": first["_id"],
              "role": "owner", "decided_by": "li.worker", "decided_at": "2026-12-01T10:00:00+08:00",
              "received_at": "2026-12-01T09:00:00+08:00", "match": {"status": "not_found"}}
    await demo.city.save(GRID_A, signup)
    trail = resolution(signup, [{"field": "household", "rule": "first_received",
                                 "undecided": False, "chosen": side("li.worker", first["_id"]),
                                 "alternatives": [side("wang.fang", second["_id"], "2")]}],
                       resolved_at="2026-12-01T10:00:05+00:00", status="resolved")
    await demo.city.save(GRID_A, trail)
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("wang.fang")
    await wait_for_doc(phone, trail["_id"])
    await phone.show(f"#/decide/{quote(signup['_id'], safe='')}")
    await page.wait_for_selector("#overruled")
    said = await page.inner_text("#overruled")
    assert "li.worker" in said and "先收到" in said
    assert first["head_name"] in await view_text(page)  # the decision that stands
    assert not MACHINE_WORDS.search(await view_text(page)), await view_text(page)
    assert phone.problems == []
    await phone.close()


async def eventually_sync(demo: Demo, read: Any, seconds: float = 60) -> Any:
    return await eventually(lambda: demo.city.run(read), seconds, every=0.2)


async def wait_for_status(db: couchdb.Database, doc_id: str, status: str) -> dict[str, Any]:
    async def read() -> Any:
        doc = await asyncio.to_thread(db.get, doc_id)
        return doc if doc and doc.get("status") == status else None

    found: dict[str, Any] = await eventually(read, 60, every=0.2)
    return found
