"""The resident's volunteer tasks in Chromium (issue 17): a task of their community on the
phone, claimed with the network cut and shown honestly as 已报名，等待确认 (after a reload too),
then, the network back, the server's answer in the order it received the claims: 候补 behind a
neighbour who claimed first online, and 成功（候补转正） on the same screen when the neighbour
cancels. 360 px wide, every target at least 44 px, zh-CN first with the English toggle."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import aiohttp
import pytest
from conftest import PASSWORD, eventually
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_resident import CHECK_SCREEN

from server.admin import directory
from server.demo.loader import COMMUNITY
from server.demo.residents import DEMO_RESIDENT
from server.domain.scope import DIRECTORY_DB
from server.store.couch import basic_authorization

pytestmark = pytest.mark.slow  # a real Chromium

RESIDENT = DEMO_RESIDENT  # the demo's active resident of 坊门街社区


async def neighbour(demo: Demo, household: str, grid: str) -> str:
    """A second resident of the same household, as activation leaves one."""
    name = "rvolunteer01"

    def write() -> None:
        directory.add_user(demo.couch, name, "resident", PASSWORD)
        users = demo.couch[DIRECTORY_DB]
        doc = users[f"user:{name}"]
        doc["resident"] = {"community": COMMUNITY, "grids": [grid]}
        users.save(doc)
        demo.db(grid).save({"_id": f"resident:{name}-{household.partition(':')[2]}",
                            "type": "resident", "schema_version": 1, "grid": grid,
                            "created_by": "linli-signup", "account": name,
                            "household": household, "role": "family", "status": "active"})

    await asyncio.to_thread(write)
    # Written straight to the store (not through the server's activation, which tells the
    # residents' index at once): the index reads it at its next sweep of the grid. Wait until
    # the resident's own feed holds the household, as the index allows it.
    headers = {"Authorization": basic_authorization(name, PASSWORD)}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(600):
            async with session.get(f"{demo.url}/couch/linli-resident/_changes") as resp:
                feed = await resp.json() if resp.status == 200 else {}
            if any(row.get("id") == household for row in feed.get("results", [])):
                return name
            await asyncio.sleep(0.1)
    raise AssertionError(f"the server never let {name} see {household}")


async def claim(demo: Demo, user: str, task: str, what: str, claim_id: str) -> dict[str, Any]:
    headers = {"Authorization": basic_authorization(user, PASSWORD)}
    async with aiohttp.ClientSession(headers=headers) as session, session.post(
            f"{demo.url}/api/volunteer/tasks/{task}/{what}", json={"claim_id": claim_id}) as resp:
        body: dict[str, Any] = await resp.json()
        return {"status_code": resp.status, **body}


async def test_a_claim_made_offline_is_pending_then_waiting_then_promoted(
        browser: Browser, demo: Demo) -> None:
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
    made = await api(demo, "POST", "/api/volunteer/tasks", "chen.jing", {
        "title": "敬老院陪伴", "description": "陪老人聊天、读报", "place": "坊门街敬老院",
        "community": COMMUNITY, "starts_at": start.isoformat(),
        "ends_at": (start + datetime.timedelta(hours=2)).isoformat(), "places": 1})
    task = made["task"]["_id"]
    me = await api(demo, "GET", "/api/me", RESIDENT)
    link = next(h for h in me["resident"]["households"] if h["status"] == "active")
    other = await neighbour(demo, link["household"], link["grid"])

    phone = await Phone.open(browser, demo.url)
    await phone.login(RESIDENT)
    page = phone.page
    await page.click("#r-volunteer-link")
    await page.wait_for_selector(f"#v-tasks li[data-id='{task}']", timeout=30_000)
    # The demo's full task: the demo resident is second on its waiting list.
    full = "volunteer_task:d000000000000002"
    await page.wait_for_selector(f"#v-tasks li[data-id='{full}'] [data-status=waiting]")
    assert await page.text_content(f"#v-tasks li[data-id='{full}'] .chip") == "候补第 2 位以内"
    await page.click(f"#v-tasks li[data-id='{task}'] a")
    await page.wait_for_selector("#v-claim")
    await check_screen(page, "a task")
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)

    # Offline: the claim waits on the phone, and says so, after a reload too.
    await phone.context.set_offline(True)
    await page.click("#v-claim")
    await page.wait_for_selector("#v-status[data-status=pending]")
    assert await page.text_content("#v-status") == "已报名，等待确认"
    await page.reload()
    await page.wait_for_selector("#v-status[data-status=pending]", timeout=20_000)
    assert not await page.locator("#v-claim").count()  # not twice

    # Meanwhile the neighbour claims online: the server receives theirs first.
    taken = await eventually(lambda: claim_taken(demo, other, task), seconds=30,
                             what="the neighbour's link indexed and their claim taken")
    assert taken["status"] == "confirmed"

    # Back online: the phone's claim is sent (once), and the server's answer shows: 候补.
    await phone.context.set_offline(False)
    await page.wait_for_selector("#v-status[data-status=waiting]", timeout=30_000)
    assert await page.text_content("#v-status") == "候补第 1 位以内"
    await check_screen(page, "waiting")
    await page.click("#lang")
    await page.wait_for_selector("text=Waiting list: number 1 or nearer")
    await check_screen(page, "waiting, English")
    await page.click("#lang")

    # The neighbour cancels: the place is the phone's, and it is told on the same screen.
    cancelled = await claim(demo, other, task, "cancel", "neighbour-cancel-1")
    assert cancelled["status"] == "cancelled"
    await page.wait_for_selector("#v-status[data-status=confirmed]", timeout=30_000)
    assert await page.text_content("#v-status") == "成功（候补转正）"
    allocation = await api(demo, "GET", f"/api/volunteer/tasks/{task}/allocation", "chen.jing")
    assert [c["status"] for c in allocation["claimants"]] == ["confirmed", "cancelled"]
    assert phone.problems == []
    await phone.context.close()


async def claim_taken(demo: Demo, user: str, task: str) -> dict[str, Any] | None:
    got = await claim(demo, user, task, "claim", "neighbour-claim-1")
    return got if got["status_code"] in (200, 201) else None


async def check_screen(page: Any, what: str) -> None:
    found = await page.evaluate(CHECK_SCREEN)
    assert found["unlabelled"] == [], (what, found["unlabelled"])
    assert found["targets"] == [], (what, found["targets"])
    assert found["width"] <= 360, (what, found["width"])
