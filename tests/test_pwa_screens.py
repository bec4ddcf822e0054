"""Issue 22: the worker's and the supervisor's screens as people use them, in real headless
Chromium at 360 px against the real server and the demo city: the admin's accounts screen,
errors that name the field by its label, the address search in every form people type it."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser
from test_pwa import GRID_B, Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)

pytestmark = pytest.mark.slow  # a real Chromium

STATUS = ("(path) => fetch(path, {credentials: 'same-origin', cache: 'no-store'})"
          ".then(r => r.status)")


async def test_the_admin_disables_a_worker_whose_phone_is_refused_at_once(
        browser: Browser, demo: Demo) -> None:
    worker = await Phone.open(browser, demo.url)
    await worker.login("li.qiang")
    path = f"/couch/grid-{GRID_B}"
    assert await worker.page.evaluate(STATUS, path) == 200
    admin = await Phone.open(browser, demo.url)
    page = admin.page
    try:
        await admin.login("admin")
        await page.click("#users-link")
        row = page.locator("#users-list li[data-user='li.qiang']")
        await row.wait_for()
        assert await row.get_attribute("data-state") == "active"
        assert "网格员" in await row.inner_text()
        await row.get_by_role("button", name="停用 li.qiang").click()
        await page.locator("#users-list li[data-user='li.qiang'][data-state=disabled]").wait_for()
        assert "已停用" in await page.text_content("#users-status")
        # The worker's very next request is refused: the session ended with the account.
        assert await worker.page.evaluate(STATUS, path) == 401
        # The admin cannot lock themself out: no button on their own row.
        assert await page.locator("#users-list li[data-user='admin'] button").count() == 0
        await page.get_by_role("button", name="启用 li.qiang").click()
        await page.locator("#users-list li[data-user='li.qiang'][data-state=active]").wait_for()
        assert await worker.page.evaluate(STATUS, path) == 401  # the old session stays ended
        assert admin.problems == [] and worker.problems == []
    finally:
        await admin.close()
        await worker.close()

