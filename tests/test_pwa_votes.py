"""Owners' votes in Chromium (issue 18): the demo resident, an owner on the register, sees
their compound's open vote and closed election; casts a ballot with the network cut, shown
honestly as 待发送 (after a reload too), sent once when the network is back and then shown as
the server counts it; and reads the election's result with their own ballot's receipt. 360 px
wide, every target at least 44 px."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import check_screen

from server.demo.residents import DEMO_RESIDENT
from server.demo.votes import ELECTION_KEY, OPEN_KEY

pytestmark = pytest.mark.slow  # a real Chromium


async def test_an_owner_votes_offline_and_reads_the_election(browser: Browser,
                                                             demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    await phone.login(DEMO_RESIDENT)
    page = phone.page
    await page.click("#r-votes-link")
    await page.wait_for_selector(f"#vt-list li[data-id='{OPEN_KEY}']", timeout=30_000)
    assert await page.locator(f"#vt-list li[data-id='{ELECTION_KEY}'] [data-state=closed]").count()
    await check_screen(page, "the votes")
    await page.click(f"#vt-list li[data-id='{OPEN_KEY}'] a")
    await page.wait_for_selector("#vt-form", timeout=30_000)
    await check_screen(page, "an open vote")
    assert not await page.locator("#vt-result").count()  # no result before the close
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)

    # Offline: the ballot waits on the phone and says so, after a reload too.
    await phone.context.set_offline(True)
    await page.check("input[name=choice][value=yes]")
    await page.click("#vt-cast")
    await page.wait_for_selector("#vt-mine li[data-status=waiting]")
    await page.reload()
    await page.wait_for_selector("#vt-mine li[data-status=waiting]", timeout=20_000)
    assert "待发送" in (await page.text_content("#vt-mine") or "")

    # Back online: sent once, and shown as the server took it.
    await phone.context.set_offline(False)
    await page.wait_for_selector("#vt-mine li[data-status=counted]", timeout=30_000)
    seen: dict[str, Any] = await api(demo, "GET", f"/api/votes/{OPEN_KEY}", DEMO_RESIDENT)
    assert [b["choice"] for b in seen["vote"]["my_ballots"]] == ["yes"]

    # The closed election: its result, and this owner's ballot counted with its receipt.
    await page.evaluate("(h) => { location.hash = h; }", f"#/vote/{ELECTION_KEY}")
    await page.wait_for_selector("#vt-result #vt-candidates", timeout=30_000)
    receipt = await page.get_attribute("#vt-mine li[data-status=counted]", "data-receipt")
    election = await api(demo, "GET", f"/api/votes/{ELECTION_KEY}", DEMO_RESIDENT)
    assert [receipt, "counted"] in election["vote"]["result"]["receipts"]
    assert await page.locator("#vt-candidates li[data-elected=true]").count() == len(
        election["vote"]["result"]["elected"])
    await check_screen(page, "an election's result")
    assert phone.problems == []
    await phone.context.close()
