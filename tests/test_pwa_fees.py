"""Property fees in Chromium (issue 19): the demo resident, an owner on the register, sees
their bills, the third quarter paid and the fourth owed; with the network cut the list, the
history and the paid bill's receipt still open from the phone's copy; paying offline is shown
as 待发送 (after a reload too) and the bill stays owed: the phone never says paid by itself;
back online, the demo's test provider pays it and the receipt says it was a test payment.
360 px wide, every target at least 44 px."""

from __future__ import annotations

import pytest
from conftest import eventually
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import check_screen

from server.demo.residents import DEMO_RESIDENT

pytestmark = pytest.mark.slow  # a real Chromium


async def test_an_owner_reads_bills_and_receipts_offline(browser: Browser, demo: Demo) -> None:
    bills = (await api(demo, "GET", "/api/fees/bills", DEMO_RESIDENT))["bills"]
    assert [(b["period"], b["state"]) for b in bills] == [("2026-Q4", "owed"),
                                                          ("2026-Q3", "paid")]
    owed, paid = bills
    phone = await Phone.open(browser, demo.url)
    await phone.login(DEMO_RESIDENT)
    page = phone.page
    await page.click("#r-fees-link")
    await page.wait_for_selector(f"#fe-list li[data-bill='{paid['bill']}'] [data-state=paid]",
                                 timeout=30_000)
    await check_screen(page, "the bills")
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)

    # Offline: the list and the receipt from the phone's copy, after a reload too.
    await phone.context.set_offline(True)
    await page.reload()
    await page.wait_for_selector(f"#fe-list li[data-bill='{owed['bill']}'] [data-state=owed]",
                                 timeout=20_000)
    await page.click(f"#fe-list li[data-bill='{paid['bill']}'] a")
    await page.wait_for_selector("#fe-receipt")
    text = await page.text_content("#fe-receipt") or ""
    assert paid["paid"]["order"] in text and "收据" in text and "打印" in text
    await check_screen(page, "a receipt")

    # Paying offline: waiting on the phone, and still owed.
    await page.evaluate("(h) => { location.hash = h; }", f"#/fee/{owed['bill']}")
    await page.click("#fe-pay", timeout=20_000)
    for reloaded in (False, True):  # says so at once, and after a reload
        if reloaded:
            await page.reload()
        await page.wait_for_selector("span[data-state=queued]", timeout=20_000)
        assert "发送前不会扣款" in (await page.text_content("#fe-state") or "")
    again = (await api(demo, "GET", "/api/fees/bills", DEMO_RESIDENT))["bills"]
    assert [b["state"] for b in again] == ["owed", "paid"]  # the phone's act pays nothing

    # Online: the queued order is sent, the demo's own test provider pays it at once, and the
    # bill turns paid with a receipt that says it is a test payment.
    await phone.context.set_offline(False)

    async def both_paid() -> bool:
        bills = (await api(demo, "GET", "/api/fees/bills", DEMO_RESIDENT))["bills"]
        return [b["state"] for b in bills] == ["paid", "paid"]
    await eventually(both_paid, seconds=60, what="the demo's payment of the queued order")
    await page.evaluate("(h) => { location.hash = h; }", f"#/fee/{owed['bill']}")
    await page.reload()  # the bill read afresh from the server, then shown from the copy
    await page.wait_for_selector("#fe-receipt #fe-test-provider", timeout=30_000)
    assert "测试支付渠道" in (await page.text_content("#fe-test-provider") or "")
    await check_screen(page, "a test payment's receipt")
    assert phone.problems == []
    await phone.context.close()
