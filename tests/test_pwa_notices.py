"""Notices in real headless Chromium against the real server and the demo city: a street
supervisor writes one (audience picked by name, an image scaled on the phone, a preview, markup
refused with the field's label and nothing stored) and follows it up by grid, names masked;
the grid worker's phone lists the households to visit and still shows them offline."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page
from test_pwa import GRID_A, Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)

from server.demo.loader import DEMO_PASSWORD
from server.domain.scope import RESIDENTS_DB
from server.store.couch import basic_authorization

pytestmark = pytest.mark.slow  # a real Chromium

UNLABELLED = """() => [...document.querySelectorAll('main input, main select, main textarea')]
  .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label')).map((e) => e.outerHTML)"""
SMALL_TARGETS = """() => [...document.querySelectorAll('main button, main a, main label.choice')]
  .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().height < 44)
  .map((e) => e.outerHTML.slice(0, 80))"""


def png(width: int, height: int, noise: bool = False) -> bytes:
    """A real PNG (so the browser can decode and scale it); noise makes it large."""
    rng = random.Random(7)
    rows = b"".join(b"\0" + (bytes(rng.getrandbits(8) for _ in range(width * 3)) if noise
                             else b"\x80\x40\x20" * width) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


async def api(demo: Demo, method: str, path: str, user: str, body: Any = None) -> Any:
    headers = {"Authorization": basic_authorization(user, DEMO_PASSWORD)}
    async with aiohttp.ClientSession(headers=headers) as session, \
            session.request(method, demo.url + path, json=body) as response:
        assert response.status < 300, await response.text()
        return await response.json()


async def stored_notices(demo: Demo) -> dict[str, dict[str, Any]]:
    def read() -> dict[str, dict[str, Any]]:
        db = demo.couch[RESIDENTS_DB]
        return {row.id: dict(row.doc) for row in db.view(
            "_all_docs", include_docs=True, startkey="notice:", endkey="notice:\ufff0")}
    return await demo.city.run(read)


async def settled(page: Page, box: str) -> None:
    await page.wait_for_function(
        "(id) => { const b = document.getElementById(id);"
        " return b && b.getAttribute('aria-busy') === 'false'; }", arg=box, timeout=60_000)


async def test_a_supervisor_writes_previews_and_follows_up_a_notice(
        browser: Browser, demo: Demo, tmp_path: Path) -> None:
    small, large = tmp_path / "通知.png", tmp_path / "photo.png"
    small.write_bytes(png(40, 30))
    large.write_bytes(png(700, 700, noise=True))
    assert large.stat().st_size > 512 * 1024
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("sun.lei")  # the street's supervisor: masked, keeps no grid
    await page.click("#notices-link")
    await settled(page, "notice-list")
    await page.click("#notice-new")
    await settled(page, "notice-author")
    assert await page.evaluate(UNLABELLED) == []
    assert await page.evaluate(SMALL_TARGETS) == []
    # The audience is picked by name: the street's communities, never typed as codes.
    assert await page.locator("#notice-level option").evaluate_all(
        "(os) => os.map((o) => o.textContent)") == ["街道", "社区", "网格", "楼幢"]
    names = await page.locator("#notice-codes label").all_text_contents()
    assert names and all(not n.strip().isdigit() for n in names), names
    await page.check("#notice-code-0")
    await page.fill("#notice-title", "停水通知")
    await page.fill("#notice-body", "<script>alert(1)</script>")
    await page.click("#notice-publish")
    await page.wait_for_function(
        "() => document.getElementById('notice-status').textContent.includes('纯文本')")
    assert "正文" in (await page.text_content("#notice-status") or "")
    assert "/body" not in (await page.text_content("#notice-status") or "")
    assert not [n for n in (await stored_notices(demo)).values() if n["created_by"] == "sun.lei"]

    await page.fill("#notice-body", "明天 8:00–12:00 停水。\n\n请提前储水。")
    await page.check("#notice-confirm")
    await page.set_input_files("#notice-images", [str(small), str(large)])
    await page.wait_for_function(
        "() => document.querySelectorAll('#notice-image-list li').length === 2")
    sizes = await page.locator("#notice-image-list .meta").all_text_contents()
    assert sizes[1].startswith("photo.jpg"), sizes  # scaled on the phone, made a JPEG
    await page.click("#notice-preview-button")
    preview = page.locator("#notice-preview")
    assert await preview.locator("h3").text_content() == "停水通知"
    assert await preview.locator("p.notice-paragraph").count() == 2
    assert await preview.locator("img").count() == 2
    assert "须确认" in (await preview.text_content() or "")
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
    await page.evaluate("""() => { window.progressSeen = [];
      new MutationObserver(() => progressSeen.push(
        document.getElementById('notice-progress').getAttribute('value')))
        .observe(document.getElementById('notice-progress'), { attributes: true }); }""")
    await page.click("#notice-publish")
    await page.wait_for_function("() => location.hash.startsWith('#/notices/follow/')",
                                 timeout=60_000)
    assert "100" in await page.evaluate("() => window.progressSeen")  # the upload's progress
    await settled(page, "notice-follow-up")
    mine = [n for n in (await stored_notices(demo)).values() if n["created_by"] == "sun.lei"]
    assert len(mine) == 1 and mine[0]["needs_confirmation"] is True
    assert {a["content_type"] for a in mine[0]["_attachments"].values()} == {
        "image/png", "image/jpeg"}
    # The follow-up, by grid: counts, and households with names masked (no unmask right).
    grids = page.locator("#notice-follow-up .follow-grid")
    assert await grids.count() >= 1
    heads = await page.locator("#notice-follow-up .visit span:nth-child(2)").all_text_contents()
    assert heads and all("*" in h for h in heads[:20]), heads[:5]
    assert await page.locator("#follow-unmask").count() == 0  # sun.lei has no unmask right
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
    # The list: counts, withdrawal, every target big enough; and all of it in English too.
    await phone.show("#/notices")
    await settled(page, "notice-list")
    row = page.locator(f'#notice-list li[data-notice="{mine[0]["_id"]}"]')
    assert "已读 0 人，已确认 0 人" in (await row.text_content() or "")
    assert await page.evaluate(SMALL_TARGETS) == []
    await page.click("#lang")
    await settled(page, "notice-list")
    assert "read by 0, confirmed by 0" in (await row.text_content() or "")
    assert await row.locator("button.withdraw").text_content() == "Withdraw"
    await page.click("#lang")
    await phone.close()


async def test_the_workers_phone_lists_households_to_visit_offline(browser: Browser,
                                                                   demo: Demo) -> None:
    created = await api(demo, "POST", "/api/notices", "chen.jing", {
        "title": "燃气安全检查", "body": "请在家等候检查。", "needs_confirmation": True,
        "audience": {"level": "grid", "codes": [GRID_A]}})
    notice = created["notice"]["_id"]
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("wang.fang")
    await phone.wait_for_records(100)
    await page.click("#notices-link")
    await settled(page, "notice-visits")
    section = page.locator(f'#notice-visits section[data-notice="{notice}"]')
    assert await section.locator("h3").text_content() == "燃气安全检查"
    heads = await section.locator(".visit span:nth-child(2)").all_text_contents()
    assert heads and not any("*" in h for h in heads), heads[:5]  # her own grid: in full
    assert await page.evaluate(UNLABELLED) == []
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
    # Offline, the list held on the phone is shown, saying it is as of when it was fetched.
    await phone.context.set_offline(True)
    await phone.show("#/")
    await phone.show("#/notices")
    await settled(page, "notice-visits")
    assert "离线" in (await page.text_content("#visits-as-of") or "")
    offline = await section.locator(".visit span:nth-child(2)").all_text_contents()
    assert offline == heads
    await phone.context.set_offline(False)
    await phone.close()


async def test_a_supervisor_with_the_right_asks_for_names_in_full(browser: Browser,
                                                                   demo: Demo) -> None:
    """Names are masked until a holder of the unmask right asks (the server audits it)."""
    created = await api(demo, "POST", "/api/notices", "chen.jing", {
        "title": "电梯检修", "body": "周五电梯检修。", "needs_confirmation": True,
        "audience": {"level": "grid", "codes": [GRID_A]}})
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("chen.jing")
    await phone.show(f"#/notices/follow/{created['notice']['_id']}")
    await settled(page, "notice-follow-up")
    heads = page.locator("#notice-follow-up .visit span:nth-child(2)")
    assert all("*" in h for h in (await heads.all_text_contents())[:20])
    await page.click("#follow-unmask")
    await settled(page, "notice-follow-up")
    full = await heads.all_text_contents()
    assert full and not any("*" in h for h in full[:20]), full[:5]
    assert await page.locator("#follow-unmask").count() == 0
    await phone.close()
