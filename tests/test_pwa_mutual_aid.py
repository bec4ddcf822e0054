"""The resident's mutual aid in Chromium (issue 20): a neighbour's ride in the compound's
listings, claimed with the network cut and shown honestly as 已报名，等待确认 (after a reload
too), then, the network back, the server's answer: 成功, the seat counted once. 360 px wide,
every target at least 44 px, zh-CN first with the English toggle; no neighbour's phone."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from conftest import PASSWORD, eventually
from playwright.async_api import Browser, BrowserContext, Page, Route
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import RESIDENT, check_screen, neighbour

from server.demo.mutual_aid import BOOK, DRILL
from server.store.couch import basic_authorization

pytestmark = pytest.mark.slow  # a real Chromium


async def posted(demo: Demo, user: str, body: dict[str, Any]) -> dict[str, Any] | None:
    headers = {"Authorization": basic_authorization(user, PASSWORD)}
    async with aiohttp.ClientSession(headers=headers) as session, session.post(
            f"{demo.url}/api/mutual-aid/listings", json=body) as resp:
        return dict(await resp.json()) if resp.status == 201 else None


async def test_a_seat_claimed_offline_is_pending_then_confirmed(browser: Browser,
                                                                demo: Demo) -> None:
    me = await api(demo, "GET", "/api/me", RESIDENT)
    link = next(h for h in me["resident"]["households"] if h["status"] == "active")
    other = await neighbour(demo, link["household"], link["grid"])
    departs = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    made = await eventually(lambda: posted(demo, other, {
        "kind": "carpool", "title": "明早拼车去火车站", "from": "坊门小区东门", "to": "火车站",
        "departs_at": departs.isoformat(), "seats": 1}), seconds=30,
        what="the neighbour's link indexed and their ride posted")
    ride = made["listing"]["_id"]

    phone = await Phone.open(browser, demo.url)
    await phone.login(RESIDENT)
    page = phone.page
    await page.click("#r-aid-link")
    await page.wait_for_selector(f"#ma-list li[data-id='{ride}']", timeout=30_000)
    assert other not in await page.content()
    await check_screen(page, "the listings")
    await page.click(f"#ma-list li[data-id='{ride}'] a")
    await page.wait_for_selector("#ma-claim-0")
    await check_screen(page, "a ride")
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)

    await phone.context.set_offline(True)
    await page.click("#ma-claim-0")
    await page.wait_for_selector(".ma-part[data-status=pending]")
    await page.reload()
    await page.wait_for_selector(".ma-part[data-status=pending]", timeout=20_000)
    assert not await page.locator("#ma-claim-0").count()  # not twice

    await phone.context.set_offline(False)
    await page.wait_for_selector(".ma-part[data-status=confirmed]", timeout=30_000)
    assert "成功" in (await page.text_content(".ma-part") or "")
    await page.click("#lang")
    await page.wait_for_selector("text=Mutual aid")
    await check_screen(page, "confirmed, English")
    view = await api(demo, "GET", f"/api/mutual-aid/listings/{ride}", RESIDENT)
    assert view["parts"] == [{"taken": 1, "status": "confirmed", "line": 0}]

    # Their own: the demo's drill, borrowed and overdue; its return confirmed from the phone.
    await page.click("#lang")
    await page.goto(f"{demo.url}/#/aid-mine")
    await page.wait_for_selector(f"#ma-deals li[data-listing='{DRILL}'][data-overdue=true]",
                                 timeout=30_000)
    assert "已逾期" in (await page.text_content(f"#ma-deals li[data-listing='{DRILL}']") or "")
    await check_screen(page, "my mutual aid")
    await page.click(f"#ma-deals li[data-listing='{DRILL}'] button")
    await page.wait_for_selector("#ma-mine-status:has-text('已记录')")
    mine = await api(demo, "GET", "/api/mutual-aid/mine", RESIDENT)
    drill = next(d for d in mine["deals"] if d["listing"] == DRILL)
    assert drill["returned_taker_at"] and drill["overdue"]  # the lender has yet to confirm

    # Their own book, asked for by the neighbour: accepted and lent from the poster's screen.
    asked = await claimed(demo, other, BOOK)
    assert asked == "awaiting_approval", asked
    await page.goto(f"{demo.url}/#/aid-item/{BOOK}")
    await page.wait_for_selector("#ma-approve-0", timeout=30_000)
    assert other not in await page.content()
    await check_screen(page, "the poster's claimants")
    # The screen is redrawn (fresh data came) while the approval is on its way, and the new
    # panel reads the claimants before the approval lands: the screen still follows the act.
    redrawn = await read_on_redraw(page, phone.context, BOOK)
    await page.click("#ma-approve-0")
    await page.click("#ma-lend-0", timeout=30_000)
    assert redrawn, "no redraw read the claimants while the approval was on its way"
    await page.wait_for_selector("#ma-claimants li .meta:has-text('前归还')", timeout=30_000)
    headers = {"Authorization": basic_authorization(other, PASSWORD)}
    async with aiohttp.ClientSession(headers=headers) as session, session.get(
            f"{demo.url}/api/mutual-aid/mine") as resp:
        mine = await resp.json()
    assert [d["due_at"] for d in mine["deals"] if d["listing"] == BOOK]
    assert phone.problems == []
    await phone.context.close()


async def read_on_redraw(page: Page, context: BrowserContext, listing: str) -> list[str]:
    """Hold the listing's next decision until the screen, redrawn meanwhile, has read the
    listing's claimants: the race of a redraw with an act, made certain. The claimants' reads
    answered while it was held, returned (filled in as they come)."""
    base = f"**/api/mutual-aid/listings/{quote(listing, safe='')}"
    held = asyncio.Event()
    read: list[str] = []
    answered = asyncio.Event()

    async def act(route: Route) -> None:
        await context.unroute(f"{base}/decide", act)
        held.set()
        await page.evaluate("() => linli.resident.sync.dataChanged()")
        await asyncio.wait_for(answered.wait(), 30)
        await route.continue_()

    async def claimants(route: Route) -> None:
        response = await route.fetch()
        await route.fulfill(response=response)
        if held.is_set() and not answered.is_set():
            read.append(route.request.url)
            answered.set()

    await context.route(f"{base}/decide", act)
    await context.route(f"{base}/claims", claimants)
    return read


async def claimed(demo: Demo, user: str, listing: str) -> str:
    headers = {"Authorization": basic_authorization(user, PASSWORD)}
    async with aiohttp.ClientSession(headers=headers) as session, session.post(
            f"{demo.url}/api/mutual-aid/listings/{listing}/claim",
            json={"claim_id": "neighbour-asks-1"}) as resp:
        return str((await resp.json())["status"])
