"""The resident's problem reports in Chromium (issue 16): a report written with the network cut,
its photo scaled on the phone (≤ 1600 px, about 300 KB of JPEG, its EXIF left behind), shown
待发送 after a reload, then, the network back, taken by the server exactly once and shown with
the server's state; the stored photo holds no EXIF."""

from __future__ import annotations

import io
import random

import aiohttp
import pytest
from PIL import Image
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import check_screen

from server.demo.residents import DEMO_RESIDENT
from server.demo.seed import DEMO_PASSWORD
from server.store.couch import basic_authorization

pytestmark = pytest.mark.slow  # a real Chromium

RESIDENT = DEMO_RESIDENT


def camera_photo() -> bytes:
    """A 3000 × 2000 phone photo of noise (which compresses badly) with EXIF and GPS."""
    rng = random.Random(16)
    image = Image.frombytes("RGB", (3000, 2000), rng.randbytes(3000 * 2000 * 3))
    exif = Image.Exif()
    exif[0x010E] = "WHERE-I-LIVE"
    exif[0x8825] = {1: "N", 2: (30.0, 15.0, 10.0), 3: "E", 4: (118.0, 52.0, 1.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


async def raw(demo: Demo, user: str, path: str) -> bytes:
    headers = {"Authorization": basic_authorization(user, DEMO_PASSWORD)}
    async with aiohttp.ClientSession(headers=headers) as session, session.get(
            f"{demo.url}{path}") as resp:
        assert resp.status == 200, path
        return await resp.read()


async def test_a_report_made_offline_with_a_photo_arrives_once(browser: Browser,
                                                                demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    await phone.login(RESIDENT)
    page = phone.page
    await page.wait_for_selector("#r-reports-link", timeout=90_000)  # the first pull
    await page.click("#r-reports-link")
    await page.wait_for_selector("#rp-new")
    await page.wait_for_function("() => localStorage.getItem('linli-report-categories')",
                                 timeout=20_000)
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)
    before = await api(demo, "GET", "/api/reports", RESIDENT)
    # Earlier tests' reports reach the phone by its pull: all of them are on it before it goes
    # offline, so the count after the reload is the phone's store, not a pull cut short.
    await page.wait_for_function(
        "n => document.querySelectorAll('#rp-list li').length >= n",
        arg=len(before["reports"]), timeout=60_000)

    await phone.context.set_offline(True)
    await page.click("#rp-new")
    await page.wait_for_selector("#rp-form")
    await check_screen(page, "the form")
    await page.select_option("#rp-category", "sanitation")
    description = "楼道堆满杂物（离线上报）"
    await page.fill("#rp-description", description)
    photo = camera_photo()
    assert len(photo) > 2_000_000
    await page.set_input_files("#rp-photos", files=[
        {"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": photo}])
    await page.wait_for_selector("#rp-photos-picked[data-sizes]", timeout=30_000)
    sizes = await page.get_attribute("#rp-photos-picked", "data-sizes")
    (shape, size), = [s.split(":") for s in str(sizes).split(",")]
    width, height = (int(n) for n in shape.split("x"))
    assert max(width, height) <= 1600 and int(size) <= 300 * 1024, sizes
    await page.click("#rp-submit")
    await page.wait_for_selector("#rp-list [data-state=queued]")
    assert await page.text_content("#rp-list [data-state=queued]") == "待发送"

    # The phone loses power: reloaded offline, the report still waits, once.
    await page.reload()
    await page.wait_for_selector("#rp-list [data-state=queued]", timeout=20_000)
    # the queued report is drawn first, the synced ones from the phone's store after it
    await page.wait_for_function(
        "n => document.querySelectorAll('#rp-list li').length >= n",
        arg=len(before["reports"]) + 1, timeout=20_000)
    assert await page.locator("#rp-list li").count() == len(before["reports"]) + 1

    await phone.context.set_offline(False)
    await page.wait_for_selector("#rp-list [data-state=queued]", state="detached",
                                 timeout=60_000)
    await page.wait_for_selector(f"#rp-list a:has-text('{description[:8]}') "
                                 "[data-state=submitted]", timeout=60_000)
    after = await api(demo, "GET", "/api/reports", RESIDENT)
    mine = [r for r in after["reports"] if r["description"] == description]
    assert len(mine) == 1 and len(after["reports"]) == len(before["reports"]) + 1
    report = mine[0]["_id"]
    seen = await api(demo, "GET", f"/api/reports/{report}", RESIDENT)
    (name,) = seen["photos"]
    stored = await raw(demo, RESIDENT, f"/api/reports/{report}/photos/{report}/{name}")
    assert stored[:3] == b"\xff\xd8\xff" and b"Exif" not in stored
    assert b"WHERE-I-LIVE" not in stored
    assert max(Image.open(io.BytesIO(stored)).size) <= 1600
    assert phone.problems == []
    await phone.context.close()

