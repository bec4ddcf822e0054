"""Party members in Chromium (issue 17, 党员双报到): the demo resident, a confirmed member,
chooses offline to show their identity and reports to their grid branch, shown honestly as
已提交，等待发送 (after a reload too) and taken by the server when the network is back; a
neighbour declares their branch from the list; the branch secretary's screen lists the
declaration and confirms it, and the neighbour's phone shows it confirmed. 360 px wide, every
target at least 44 px, zh-CN first with the English toggle."""

from __future__ import annotations

import pytest
from conftest import PASSWORD
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import check_screen, neighbour

from server.demo.party import SECRETARY
from server.demo.residents import DEMO_RESIDENT

pytestmark = pytest.mark.slow  # a real Chromium


async def test_a_member_chooses_offline_and_a_secretary_confirms_a_neighbour(
        browser: Browser, demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    await phone.login(DEMO_RESIDENT)
    page = phone.page
    await page.click("#r-party-link")
    await page.wait_for_selector("#p-status[data-status=confirmed]", timeout=30_000)
    await page.wait_for_selector("#p-status:has-text('市财政局机关支部')", timeout=20_000)
    assert not await page.is_checked("#p-public")  # off until they choose
    await check_screen(page, "a confirmed member")
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)

    # Offline: the choice and the report wait on the phone, and say so, after a reload too.
    await phone.context.set_offline(True)
    await page.check("#p-public")
    await page.click("#p-report")
    await page.wait_for_selector("#p-reported[data-reported=queued]")
    await page.reload()
    await page.wait_for_selector("#p-reported[data-reported=queued]", timeout=20_000)
    assert await page.is_checked("#p-public")
    mine = await api(demo, "GET", "/api/party/me", DEMO_RESIDENT)
    assert mine["shows_identity"] is False and "reported_at" not in mine["member"]

    await phone.context.set_offline(False)
    await page.wait_for_selector("#p-reported[data-reported=yes]", timeout=30_000)
    mine = await api(demo, "GET", "/api/party/me", DEMO_RESIDENT)
    assert mine["shows_identity"] is True and mine["member"]["reported_at"]
    await page.click("#lang")
    await page.wait_for_selector("text=Confirmed party member")
    await check_screen(page, "reported, English")
    await page.click("#lang")

    # A neighbour declares their branch, picked from the list.
    me = await api(demo, "GET", "/api/me", DEMO_RESIDENT)
    link = next(h for h in me["resident"]["households"] if h["status"] == "active")
    other = await neighbour(demo, link["household"], link["grid"])
    second = await Phone.open(browser, demo.url)
    await second.login(other, PASSWORD)
    await second.page.wait_for_selector("#r-party-link", timeout=30_000)
    await second.page.click("#r-party-link")
    await second.page.wait_for_selector("#p-branch option[value=czj]", state="attached",
                                        timeout=30_000)
    await second.page.select_option("#p-branch", "czj")
    await check_screen(second.page, "declaring")
    await second.page.click("#p-declare-button")
    try:
        await second.page.wait_for_selector("#p-status[data-status=pending]", timeout=30_000)
    except Exception:
        raise AssertionError(await second.page.inner_text("main")) from None

    # The secretary's screen: the declaration, confirmed; the neighbour's phone is told.
    desk = await Phone.open(browser, demo.url)
    await desk.login(SECRETARY)
    await desk.page.wait_for_selector(f"#b-pending li[data-member='{other}']", timeout=30_000)
    assert await desk.page.get_attribute("#b-projects", "data-met") in ("true", "false")
    await check_screen(desk.page, "the branch")
    await desk.page.click(f"#b-pending li[data-member='{other}'] [data-action=confirm]")
    await desk.page.wait_for_selector(f"#b-hours-member li[data-member='{other}']",
                                      timeout=30_000)
    await second.page.wait_for_selector("#p-status[data-status=confirmed]", timeout=30_000)
    for one in (phone, second, desk):
        assert one.problems == []
        await one.context.close()
