"""Mediation and patrols in Chromium (issue 20, 老娘舅调解, 执法进小区): the demo resident
opens 调解 and reads their case (names, never logins; the agreement; how each party signed);
the community's supervisor opens a new case with the mediator; the mediator records a session;
the resident's list shows both. The fire officer records a patrol offline. 360 px wide, every
target at least 44 px, zh-CN first with the English toggle, times in Asia/Shanghai."""

from __future__ import annotations

import asyncio
import base64
import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import PASSWORD, eventually
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import check_screen, neighbour
from test_reports import jpeg

from server.demo.liaison import FIRE, POLICE, ROUTE
from server.demo.mediation import MEDIATOR, OVERSEER
from server.demo.residents import DEMO_RESIDENT
from server.domain.scope import LIAISON_DB, RESIDENTS_DB
from server.store.couch import basic_authorization

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
    # The view is drawn again when the sync's state changes: wait for the drawn body, not the first.
    await page.wait_for_function(
        "document.querySelector('#md-body')?.innerText.includes('已回访')", timeout=20_000)
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


    async def indexed() -> bool:  # the server's index of homes has the neighbour's
        headers = {"Authorization": basic_authorization(other, PASSWORD)}
        async with aiohttp.ClientSession(headers=headers) as session, \
                session.get(f"{demo.url}/api/liaison/officers") as resp:
            return bool((await resp.json()).get("compounds"))
    await eventually(indexed, seconds=60, what="the neighbour's home indexed")
    staff = await Phone.open(browser, demo.url)
    await staff.login(OVERSEER)
    spage = staff.page
    await spage.click("#mediation-link")
    await spage.wait_for_selector("#md-open", timeout=30_000)
    await spage.wait_for_selector("#md-patrols td:has-text('消防通道巡查')", timeout=30_000)
    await check_screen(spage, "the supervisor's cases, figures and form")
    await spage.select_option("#md-kind", "neighbours")
    await spage.fill("#md-matter", "楼道堆物引发争执")
    await spage.fill("#md-phone-1", DEMO_RESIDENT)
    await spage.fill("#md-name-1", "王伟")
    await spage.fill("#md-phone-2", other)
    await spage.fill("#md-name-2", "小王")
    await spage.fill("#md-mediator", MEDIATOR)
    await spage.click("#md-open-button")
    await spage.wait_for_function(
        "() => document.querySelector('#md-state') || "
        "document.querySelector('#md-open-status')?.textContent", timeout=30_000)
    if not await spage.query_selector("#md-state"):
        raise AssertionError(await spage.inner_text("#md-open-status"))
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


async def test_a_patrol_is_recorded_offline_and_sent_once(browser: Browser, demo: Demo,
                                                          tmp_path: Path) -> None:
    """The fire officer records a patrol with the network cut: each checkpoint 待发送 (after a
    reload too), a problem with its photo; back online, each check is taken once and the
    problem is a report routed to 消防, its photo without EXIF."""
    photo = tmp_path / "lane.jpg"
    photo.write_bytes(jpeg(size=(1200, 900)))
    phone = await Phone.open(browser, demo.url)
    await phone.login(FIRE)
    page = phone.page
    await page.click("#patrol-link")
    await page.wait_for_selector(f"#pt-routes a[data-route='{ROUTE}']", timeout=30_000)
    await check_screen(page, "the officer's routes")
    await page.click(f"#pt-routes a[data-route='{ROUTE}']")
    await page.wait_for_selector("#pt-points li[data-point='0'][data-state=todo]")
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)
    await check_screen(page, "a patrol under way")
    await phone.context.set_offline(True)
    await page.set_input_files("#pt-photo-0", str(photo))
    await page.click("#pt-ok-0")
    await page.wait_for_selector("#pt-points li[data-point='0'][data-state=queued]")
    await page.click("#pt-points li[data-point='1'] summary")
    await page.select_option("#pt-category-1", "safety")
    await page.fill("#pt-description-1", "地下车库消防通道堆放杂物")
    await page.set_input_files("#pt-photo-1", str(photo))
    await page.click("#pt-problem-1")
    await page.wait_for_selector("#pt-points li[data-point='1'][data-state=queued]")
    await page.reload()
    await page.wait_for_selector("#pt-points li[data-point='1'][data-state=queued]",
                                 timeout=20_000)
    await page.click("#lang")
    await page.wait_for_selector("text=Recorded, waiting to be sent")
    await check_screen(page, "queued offline, English")
    await page.click("#lang")
    await phone.context.set_offline(False)
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await page.wait_for_function(
        "() => !document.querySelector('#pt-points li[data-state=queued]')", timeout=30_000)

    def stored() -> list[dict[str, Any]]:
        db = demo.couch[LIAISON_DB]
        return [row.doc for row in db.view("_all_docs", include_docs=True)
                if row.id.startswith("patrol_check:") and row.doc.get("received_at", "") > start]
    start = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)).isoformat()
    checks = await asyncio.to_thread(stored)
    assert sorted(c["checkpoint"] for c in checks if c["created_by"] == FIRE) == [0, 1]
    (found,) = [c for c in checks if c.get("report")]
    report = await asyncio.to_thread(lambda: demo.couch[RESIDENTS_DB].get(
        found["report"], attachments=True))
    assert report["assignee"] == "department:fire" and report["spot"] == "地下车库"
    (att,) = report["_attachments"].values()
    assert b"WHERE-I-LIVE" not in base64.b64decode(att["data"])
    await phone.context.close()


async def test_a_resident_writes_to_the_compounds_police_liaison(browser: Browser,
                                                                 demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    await phone.login(DEMO_RESIDENT)
    page = phone.page
    await page.click("#r-liaison-link")
    await page.wait_for_selector(".lo-officers a[data-department=police]", timeout=30_000)
    shown = await page.inner_text("#lo-body")
    assert "张警官" in shown and "吴消防" in shown and POLICE not in shown
    await check_screen(page, "the compound's officers")
    await page.click(".lo-officers a[data-department=police]")
    await page.wait_for_selector("#lo-messages li[data-from=officer]", timeout=20_000)
    await page.fill("#lo-text", "南门的摊位今天又来了")
    await page.click("#lo-send")
    await page.wait_for_selector("#lo-messages li:has-text('南门的摊位今天又来了')", timeout=20_000)
    await check_screen(page, "a conversation")
    await phone.context.close()


async def test_the_police_officer_answers_a_resident_in_the_app(browser: Browser,
                                                                demo: Demo) -> None:
    """张警官's 居民留言: the threads of his compound, named by compound and department, the
    resident as 本小区居民 (never a phone or login); he answers in the thread and the resident
    reads the answer."""
    officer = await Phone.open(browser, demo.url)
    await officer.login(POLICE)
    page = officer.page
    await page.click("#liaison-threads-link")
    await page.wait_for_selector("#lo-threads a[data-thread]", timeout=30_000)
    shown = await page.inner_text("#lo-threads")
    assert "公安" in shown and "本小区居民" in shown and DEMO_RESIDENT not in shown
    assert "compound:" not in shown
    await check_screen(page, "the officer's threads")
    thread = await page.get_attribute("#lo-threads a[data-thread]", "data-thread")
    await page.click("#lo-threads a[data-thread]")
    await page.wait_for_selector("#lo-messages li[data-from=resident]", timeout=20_000)
    await page.fill("#lo-text", "收到，今天下午去南门看看")
    await page.click("#lo-send")
    await page.wait_for_selector("#lo-messages li:has-text('收到，今天下午去南门看看')",
                                 timeout=20_000)
    await check_screen(page, "the officer's thread")
    await page.click("#lang")
    await page.wait_for_selector("text=Residents' messages")
    await check_screen(page, "the officer's thread, English")
    await page.click("#lang")
    read = await api(demo, "GET", f"/api/liaison/messages/{thread}", DEMO_RESIDENT)
    assert any(m["text"] == "收到，今天下午去南门看看" for m in read["messages"])
    await officer.context.close()
