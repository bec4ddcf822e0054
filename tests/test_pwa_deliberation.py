"""Deliberation in Chromium (issue 18): the demo resident lists their compound's topics, opens
one, supports it and comments with the network cut, both shown honestly as 待发送 (after a
reload too), sent once when the network is back: the server then counts one support and holds
one comment. 360 px wide, every target at least 44 px."""

from __future__ import annotations

import secrets

import pytest
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import check_screen

from server.demo.residents import DEMO_RESIDENT

pytestmark = pytest.mark.slow  # a real Chromium


async def test_a_resident_supports_and_comments_offline(browser: Browser, demo: Demo) -> None:
    raised = await api(demo, "POST", "/api/deliberation/topics", DEMO_RESIDENT, {
        "request": f"pwa-{secrets.token_hex(6)}", "title": "增设电动车充电桩",
        "body": "楼下电动车充电不便。\n\n建议在 3 幢旁增设充电桩。"})
    topic = raised["topic"]["id"]
    phone = await Phone.open(browser, demo.url)
    await phone.login(DEMO_RESIDENT)
    page = phone.page
    await page.click("#r-topics-link")
    await page.wait_for_selector(f"#dl-list li[data-id='{topic}']", timeout=30_000)
    await check_screen(page, "the topics")
    await page.click(f"#dl-list li[data-id='{topic}'] a")
    await page.wait_for_selector("#dl-comment", timeout=30_000)
    await check_screen(page, "a topic")
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)

    # Offline: the support and the comment wait on the phone and say so, after a reload too.
    await phone.context.set_offline(True)
    await page.click("#dl-support")
    await page.wait_for_selector("#dl-support-waiting[data-status=waiting]")
    await page.fill("#dl-comment-text", "同意，最好有遮雨棚。")
    await page.click("#dl-comment-send")
    await page.wait_for_selector("#dl-comments li[data-status=waiting]")
    await page.reload()
    await page.wait_for_selector("#dl-comments li[data-status=waiting]", timeout=20_000)
    assert "待发送" in (await page.text_content("#dl-comments") or "")

    # Back online: each sent once, and shown as the server took it.
    await phone.context.set_offline(False)
    await page.wait_for_selector("#dl-supported", timeout=30_000)
    await page.wait_for_function(
        "() => !document.querySelector('#dl-comments li[data-status=waiting]')"
        " && document.querySelector('#dl-comments li[data-hidden=false]')", timeout=30_000)
    seen = await api(demo, "GET", f"/api/deliberation/topics/{topic}", DEMO_RESIDENT)
    assert seen["topic"]["support"] == 1 and seen["topic"]["supported"] is True
    assert [c["body"] for c in seen["comments"]] == ["同意，最好有遮雨棚。"]
    assert phone.problems == []
    await phone.context.close()
