"""The handler's queue of problem reports in Chromium (issue 16): the grid worker's phone
keeps the reports routed to them; with the network cut the worker finishes one with an
"after" photo (scaled to ≤ 1600 px and ≤ 300 KB, its EXIF left behind, as the resident's
report photos) and starts another with a note the server refuses; the page is reloaded
offline and both still wait. Back online the finished step arrives once, its stored photo
without EXIF; the refused one shows the server's reason naming the field by its label, its
note kept to correct and send again; the resident's phone shows 已办结 and the after photo."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_reports import camera_photo, raw
from test_pwa_volunteer import check_screen

from server.demo.reports import WORKER
from server.demo.residents import DEMO_RESIDENT

pytestmark = pytest.mark.slow  # a real Chromium

IN_PROGRESS, DISPATCHED = "report:d000000000000004", "report:d000000000000003"


async def steps_to(demo: Demo, report: str, to: str) -> list[dict]:
    seen = await api(demo, "GET", f"/api/reports/{report}", WORKER)
    return [s for s in seen["steps"] if s["to"] == to]


async def test_a_handler_acts_offline_with_an_after_photo(browser: Browser, demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    await phone.login(WORKER)
    page = phone.page
    await page.wait_for_selector("#handle-link", timeout=90_000)
    await phone.wait_controlled()
    await phone.show("#/handle")
    await page.wait_for_selector(f"#hq-list li[data-id='{IN_PROGRESS}']", timeout=60_000)
    await page.wait_for_function("() => localStorage.getItem('linli-report-categories')",
                                 timeout=20_000)

    await phone.context.set_offline(True)
    await phone.show(f"#/handle/{IN_PROGRESS}")
    await page.wait_for_selector("#hq-form")
    await check_screen(page, "the handler's form")
    assert await page.input_value("#hq-to") == "done"
    await page.fill("#hq-note", "已清理，恢复通行")
    await page.set_input_files("#hq-photos", files=[
        {"name": "IMG_0002.jpg", "mimeType": "image/jpeg", "buffer": camera_photo()}])
    await page.wait_for_selector("#hq-photos-picked[data-sizes]", timeout=30_000)
    (shape, size), = [s.split(":") for s in
                      str(await page.get_attribute("#hq-photos-picked", "data-sizes")).split(",")]
    assert max(int(n) for n in shape.split("x")) <= 1600 and int(size) <= 300 * 1024
    await page.click("#hq-submit")
    await page.wait_for_selector("#hq-state [data-state=queued]")
    # A second report, started with a note holding a tab: the server refuses it by label.
    await phone.show(f"#/handle/{DISPATCHED}")
    await page.wait_for_selector("#hq-form")
    await page.fill("#hq-note", "已到\t现场")
    await page.click("#hq-submit")
    await page.wait_for_selector("#hq-state [data-state=queued]")

    # The phone loses power: reloaded offline, both steps still wait.
    await page.reload()
    await page.wait_for_selector("#hq-state [data-state=queued]", timeout=30_000)
    await phone.show("#/handle")
    await page.wait_for_selector("#hq-list [data-state=queued] >> nth=1", timeout=20_000)
    assert await steps_to(demo, IN_PROGRESS, "done") == []

    await phone.context.set_offline(False)
    await phone.show(f"#/handle/{DISPATCHED}")
    refused = page.locator("#hq-refused")
    await refused.wait_for(timeout=60_000)
    assert "“办理说明”" in await refused.text_content()
    assert await page.input_value("#hq-note") == "已到\t现场"  # nothing lost
    await page.fill("#hq-note", "已到现场")
    await page.click("#hq-submit")
    await page.wait_for_selector("#hq-state [data-state=in_progress]", timeout=60_000)
    await phone.show(f"#/handle/{IN_PROGRESS}")
    await page.wait_for_selector("#hq-state [data-state=done]", timeout=60_000)

    (done,) = await steps_to(demo, IN_PROGRESS, "done")
    assert done["note"] == "已清理，恢复通行" and done["photos"] == ["after-1.jpg"]
    assert len(await steps_to(demo, DISPATCHED, "in_progress")) == 1
    stored = await raw(demo, WORKER, f"/api/reports/{IN_PROGRESS}/photos/{done['_id']}/"
                                     "after-1.jpg")
    assert stored[:3] == b"\xff\xd8\xff" and b"Exif" not in stored
    assert max(Image.open(io.BytesIO(stored)).size) <= 1600
    assert phone.problems == []

    resident = await Phone.open(browser, demo.url)
    await resident.login(DEMO_RESIDENT)
    await resident.page.wait_for_selector("#r-reports-link", timeout=90_000)
    await resident.show(f"#/report/{IN_PROGRESS}")
    await resident.page.wait_for_selector("#rp-state[data-state=done]", timeout=60_000)
    image = resident.page.locator("#rp-steps li[data-to=done] img")
    await image.wait_for(timeout=30_000)
    assert await image.evaluate("(img) => img.decode().then(() => img.naturalWidth)") > 0
    assert resident.problems == []
    await resident.context.close()
    await phone.context.close()
