"""The neighbourhood centre's screens in Chromium (issue 20): the demo resident's 邻里中心 with
the community's providers, their opening times and the lawyer's consultation they booked;
a housekeeping slot booked with the network cut, shown 已预约，等待联网确认 (after a reload
too), then the server's 已预约，待服务方确认 once online; the lawyer's day list naming the
resident (never an account) with the matter, confirmed there, and 预约成功 on the resident's
phone; a slot opened from the lawyer's screen (over lunch: refused by label). 360 px wide,
targets at least 44 px, zh-CN first with the English toggle, Beijing times."""

from __future__ import annotations

import datetime

import pytest
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import check_screen

from server.demo.centre import MATTER, slot_id
from server.demo.residents import DEMO_RESIDENT
from server.domain.centre import CHINA

pytestmark = pytest.mark.slow  # a real Chromium


async def test_a_slot_booked_offline_then_confirmed_by_the_lawyer(
        browser: Browser, demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    await phone.login(DEMO_RESIDENT)
    page = phone.page
    await page.click("#r-centre-link")
    await page.wait_for_selector("#ce-providers li[data-code=fm-law]", timeout=30_000)
    lawyer_slot = slot_id(1)
    mine = f"#ce-mine li[data-id='{lawyer_slot}'] [data-status=awaiting_approval]"
    await page.wait_for_selector(mine, timeout=30_000)
    assert await page.text_content(mine) == "已预约，待服务方确认"
    await page.wait_for_selector("#ce-activities li[data-id] [data-status=confirmed]")
    await check_screen(page, "the centre")

    await page.click("#ce-providers li[data-code=fm-home] a")
    cleaning = slot_id(4).split(":")[1]
    await page.wait_for_selector(f"#ce-book-{cleaning}", timeout=30_000)
    hours = await page.text_content("#ce-hours")
    assert hours and "周一 09:00–11:30、13:30–17:00" in hours
    starts = await page.text_content(f"#ce-slots li[data-id='{slot_id(4)}'] .main")
    assert starts and "15:00" in starts  # Beijing time, whatever the phone's zone
    await check_screen(page, "a provider's slots")
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)

    # Offline: the booking waits on the phone and says so, after a reload too.
    await phone.context.set_offline(True)
    await page.fill(f"#ce-matter-{cleaning}", "两室一厅，需要带清洁剂")
    await page.click(f"#ce-book-{cleaning}")
    status = f"#ce-status-{cleaning}"
    await page.wait_for_selector(f"#ce-slots li[data-id='{slot_id(4)}'][data-status=pending]")
    assert await page.text_content(status) == "已预约，等待联网确认"
    await page.reload()
    await page.wait_for_selector(f"#ce-slots li[data-id='{slot_id(4)}'][data-status=pending]",
                                 timeout=20_000)
    assert not await page.locator(f"#ce-book-{cleaning}").count()  # not twice

    # Online: sent once, and the server's answer shows.
    await phone.context.set_offline(False)
    await page.wait_for_selector(
        f"#ce-slots li[data-id='{slot_id(4)}'][data-status=awaiting_approval]", timeout=30_000)
    assert await page.text_content(status) == "已预约，待服务方确认"
    await page.click("#lang")
    await page.wait_for_selector("text=Booked, awaiting the provider's confirmation")
    await check_screen(page, "booked, English")
    await page.click("#lang")

    # The lawyer's day list: the resident by name, the matter, confirmed there.
    slots = await api(demo, "GET", "/api/centre/providers/fm-law/slots", DEMO_RESIDENT)
    starts_at = next(s["starts_at"] for s in slots["slots"] if s["_id"] == lawyer_slot)
    day = datetime.datetime.fromisoformat(starts_at).astimezone(CHINA).date().isoformat()
    lawyer = await Phone.open(browser, demo.url)
    await lawyer.login("zhou.lawyer")
    desk = lawyer.page
    await desk.goto(f"{demo.url}/#/centre-day/{day}")
    booking = f"#centre-slots li[data-id='{lawyer_slot}'] li[data-status=awaiting_approval]"
    await desk.wait_for_selector(booking, timeout=30_000)
    text = await desk.text_content(booking)
    assert text and MATTER in text and DEMO_RESIDENT not in text
    await check_screen(desk, "the lawyer's day list")
    await desk.click(f"{booking} button[data-act=confirm]")
    await desk.wait_for_selector(
        f"#centre-slots li[data-id='{lawyer_slot}'] li[data-status=confirmed]", timeout=30_000)

    # A new slot from the same screen: over lunch refused by label, in the afternoon listed.
    before = await desk.locator("#centre-slots > li").count()
    await desk.fill("#slot-starts", f"{day}T12:00")
    await desk.click("#slot-submit")
    await desk.wait_for_selector("#slot-status:has-text('不在营业时间内')")
    await desk.fill("#slot-starts", f"{day}T16:00")
    await desk.fill("#slot-places", "2")
    await desk.click("#slot-submit")
    await desk.wait_for_function(f"() => document.querySelectorAll('#centre-slots > li').length"
                                 f" === {before + 1}", timeout=30_000)
    assert "16:00–16:30" in (await desk.text_content("#centre-slots") or "")
    await check_screen(desk, "the lawyer's new slot")

    await page.click("a.back")
    await page.wait_for_selector(f"#ce-mine li[data-id='{lawyer_slot}'] [data-status=confirmed]",
                                 timeout=30_000)
    assert phone.problems == [] and lawyer.problems == []
    await lawyer.context.close()
    await phone.context.close()


async def test_the_supervisor_sees_the_centre_in_counts_only(browser: Browser,
                                                            demo: Demo) -> None:
    """chen.jing's 邻里中心情况: the community's providers with their places booked in all and
    by week and service, the lawyer's marked confidential and counted like the others, and the
    activities with their sign-ups; never the booker nor the matter."""
    staff = await Phone.open(browser, demo.url)
    await staff.login("chen.jing")
    page = staff.page
    await page.click("#centre-overview-link")
    lawyer = "#co-providers li[data-code=fm-law]"
    await page.wait_for_selector(f"{lawyer}[data-confidential=true] tr[data-week]",
                                 timeout=30_000)
    shown = await page.inner_text("#centre-overview")
    assert "坊门法律服务站" in shown and "法律咨询保密：只统计数量。" in shown
    assert MATTER not in shown and DEMO_RESIDENT not in shown and DEMO_RESIDENT[-4:] not in shown
    figures = await api(demo, "GET", "/api/centre/overview", "chen.jing")
    [counted] = next(p for p in figures["providers"] if p["code"] == "fm-law")["weeks"]
    assert counted["booked"] >= 1
    week = await page.inner_text(f"{lawyer} tr[data-week]")
    assert "法律咨询" in week and f"{counted['booked']} / {counted['places']}" in week, week
    flowers = next(a for a in figures["activities"] if a["title"] == "邻里中心插花课")
    signed = f"已报名 {flowers['taken']} / {flowers['places']}"
    assert flowers["taken"] >= 4 and signed in await page.inner_text("#co-activities")
    await check_screen(page, "the supervisor's centre")
    await page.click("#lang")
    await page.wait_for_selector("text=Neighbourhood centre figures")
    assert f"{flowers['taken']} of 12 signed up" in await page.inner_text("#co-activities")
    await check_screen(page, "the supervisor's centre, English")
    await page.click("#lang")
    await staff.context.close()
