"""The grid worker's screens under axe-core (issue 22), in real headless Chromium at 360 px in
zh-CN against the demo city: wang.fang logs in, lets the first sync end, and every screen she
works in passes the same check as the supervisor's walk (no control without a name, contrast
AA, targets of 44 px): the home screen, the inbox, a household, a visit form, the search with
its results, and the handler's queue of reports routed to her."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.async_api import Browser
from test_pwa import GRID_A, Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_supervisor_walk import AXE, accessible

pytestmark = pytest.mark.slow  # a real Chromium


async def test_the_workers_screens_pass_axe(browser: Browser, demo: Demo) -> None:
    assert AXE.exists(), "npm ci installs axe-core (a devDependency) for this test"
    household = quote(await demo.quiet_household(GRID_A), safe="")
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    try:
        await phone.login("wang.fang")
        await phone.wait_for_records(await demo.records(GRID_A))
        await page.wait_for_function("() => linli.index.complete && linli.reports?.as_of",
                                     timeout=90_000)
        await phone.show("#/")
        await page.wait_for_selector("#inbox-link")
        await page.wait_for_selector(".buildings li a")
        await accessible(page, "home")

        await phone.show("#/inbox")
        await page.wait_for_selector("#inbox-returned")
        await accessible(page, "inbox")

        await phone.show(f"#/h/{household}")
        await page.wait_for_selector(f'a[href="#/new/household_visit/{household}"]')
        await accessible(page, "household")
        await page.click(f'a[href="#/new/household_visit/{household}"]')
        await page.wait_for_selector("form.record-form")
        await accessible(page, "visit form")

        await phone.show("#/")
        await page.wait_for_selector("#search")
        await page.fill("#search", "3-2-301")
        await page.wait_for_function(
            "() => document.querySelectorAll('#search-results li').length > 0")
        await accessible(page, "search")

        await phone.show("#/handle")
        await page.wait_for_selector("#hq-list li", timeout=60_000)
        await accessible(page, "handler's queue")
        assert phone.problems == []
    finally:
        await phone.close()
