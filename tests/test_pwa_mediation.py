"""Mediation in Chromium (issue 20, 老娘舅调解): the demo resident opens 调解 and reads their
case (names, never logins; the agreement; how each party signed); the community's supervisor
opens a new case with the mediator; the mediator records a session; the resident's list shows
both. 360 px wide, every target at least 44 px, zh-CN first with the English toggle, times in
Asia/Shanghai."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import check_screen, neighbour

from server.demo.mediation import MEDIATOR, OVERSEER
from server.demo.residents import DEMO_RESIDENT

pytestmark = pytest.mark.slow  # a real Chromium


async def test_the_circle_reads_and_acts_on_its_cases(browser: Browser, demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    await phone.login(DEMO_RESIDENT)
    page = phone.page
    await page.click("#r-mediation-link")
    await page.wait_for_selector("#md-cases a[data-case]", timeout=30_000)
    await check_screen(page, "the resident's cases")
    await page.click("#md-cases a[data-case]")
    await page.wait_for_selector("#md-agreement", timeout=20_000)
    parties = await page.inner_text("#md-parties")
    assert "王伟（您）" in parties and "刘阿姨" in parties and "纸质签署" in parties
    shown = await page.inner_text("#md-body")
    me = await api(demo, "GET", "/api/me", DEMO_RESIDENT)
    assert me["name"] not in shown and MEDIATOR not in shown and "周建国" in shown
    assert "已回访" in shown
    await check_screen(page, "the resident's case")
    await page.click("#lang")
    await page.wait_for_selector("text=Followed up")
    await check_screen(page, "the case, English")
    await page.click("#lang")

    # The supervisor opens a case between the demo resident and a neighbour.
    link = next(h for h in me["resident"]["households"] if h["status"] == "active")
    other = await neighbour(demo, link["household"], link["grid"])
    staff = await Phone.open(browser, demo.url)
    await staff.login(OVERSEER)
    spage = staff.page
    await spage.click("#mediation-link")
    await spage.wait_for_selector("#md-open", timeout=30_000)
    await check_screen(spage, "the supervisor's cases and form")
    await spage.select_option("#md-kind", "neighbours")
    await spage.fill("#md-matter", "楼道堆物引发争执")
    await spage.fill("#md-phone-1", DEMO_RESIDENT)
    await spage.fill("#md-name-1", "王伟")
    await spage.fill("#md-phone-2", other)
    await spage.fill("#md-name-2", "小王")
    await spage.fill("#md-mediator", MEDIATOR)
    await spage.click("#md-open-button")
    await spage.wait_for_selector("#md-state:has-text('已受理')", timeout=20_000)

    # The mediator records a session; the case is 调解中 for the resident too.
    mediator = await Phone.open(browser, demo.url)
    await mediator.login(MEDIATOR)
    mpage = mediator.page
    await mpage.goto(demo.url + "/app/#/mediation")
    await mpage.wait_for_selector("#md-cases a[data-case]", timeout=30_000)
    await mpage.click("#md-cases a:has-text('邻里纠纷 · 已受理')")
    await mpage.wait_for_selector("#md-session-note", timeout=20_000)
    await mpage.fill("#md-session-note", "双方到场，约定清理楼道")
    await mpage.click("#md-act-session")
    await mpage.wait_for_selector("#md-state:has-text('调解中')", timeout=20_000)
    await check_screen(mpage, "the mediator's case")
    await page.goto(demo.url + "/app/#/mediation")
    await page.wait_for_selector("#md-cases a:has-text('调解中')", timeout=30_000)
    for p in (phone, staff, mediator):
        await p.context.close()
