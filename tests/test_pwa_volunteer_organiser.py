"""The organiser's volunteer screens in Chromium (issue 17): the supervisor publishes a task
from the phone (times typed in Beijing time), sees its allocation with each claimant named by a
masked phone, never an account, approves one and rejects another through the server's own
order, shows the check-in code, which the phone then makes offline (the same code the server
expects), and confirms a volunteer's hours into the ledgers. 360 px wide, every target at least
44 px, zh-CN first with the English toggle."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from conftest import eventually
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import RESIDENT, check_screen, claim, neighbour

from server.demo.loader import COMMUNITY
from server.domain import volunteering as rules
from server.domain.scope import RESIDENTS_DB

pytestmark = pytest.mark.slow  # a real Chromium


def beijing(moment: datetime.datetime) -> str:
    """What a datetime-local input takes: Beijing time, to the minute."""
    return moment.astimezone(rules.CHINA).strftime("%Y-%m-%dT%H:%M")


async def status_of(page: Any, account: str) -> str | None:
    row = page.locator(f"#task-claimants li[data-claimant='{account}']")
    return await row.get_attribute("data-status") if await row.count() else None


async def test_publish_decide_show_the_code_offline_and_confirm_hours(browser: Browser,
                                                                      demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("chen.jing")
    await phone.show("#/tasks")
    await page.wait_for_selector("#task-new")
    await check_screen(page, "tasks")
    await page.click("#task-new")
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
    await page.fill("#task-title", "社区义诊引导")
    await page.fill("#task-description", "引导老人排队、取号")
    await page.fill("#task-place", "坊门街社区卫生站")
    await page.wait_for_selector(f"#task-community option[value='{COMMUNITY}']", state="attached")
    await page.select_option("#task-community", COMMUNITY)
    await page.fill("#task-starts", beijing(start))
    await page.fill("#task-ends", beijing(start + datetime.timedelta(hours=3)))
    await page.fill("#task-places", "1")
    await page.check("#task-approval")
    await check_screen(page, "publish")
    await page.click("#task-submit")
    await page.wait_for_selector("#task-no-claims", timeout=30_000)
    task = page.url.split("#/tasks/", 1)[1].replace("%3A", ":")
    stored = await demo.city.run(lambda: dict(demo.couch[RESIDENTS_DB][task]))
    assert stored["title"] == "社区义诊引导" and stored["needs_approval"] is True
    assert stored["starts_at"] == beijing(start) + ":00+08:00", stored["starts_at"]

    # Two residents claim: the first holds the place awaiting approval, the second waits.
    me = (await api(demo, "GET", "/api/me", RESIDENT))["name"]
    link = next(h for h in (await api(demo, "GET", "/api/me", RESIDENT))["resident"][
        "households"] if h["status"] == "active")
    other = await neighbour(demo, link["household"], link["grid"])
    got = await api(demo, "POST", f"/api/volunteer/tasks/{task}/claim", RESIDENT,
                    {"claim_id": "organiser-claim-1"})
    assert got["status"] == "awaiting_approval", got
    await eventually(lambda: taken(demo, other, task), seconds=30, what="the neighbour's claim")
    await page.reload()
    await page.wait_for_selector(f"#task-claimants li[data-claimant='{me}']", timeout=30_000)
    names = await page.locator("#task-claimants li .main").all_text_contents()
    assert names[0].startswith("157****6600"), names  # a masked phone, not the account
    assert names[1].startswith("未登记手机的居民"), names  # no phone on record: no id either
    assert not any(me in n or other in n for n in names), names
    await check_screen(page, "allocation")

    # Approve the first, reject the second: the server's answer is shown.
    await page.click("#approve-0")
    await page.wait_for_function(
        f"() => document.querySelector(\"#task-claimants li[data-claimant='{me}']\")"
        "?.dataset.status === 'confirmed'", timeout=30_000)
    await page.click("#task-claimants li[data-status=waiting] button[id^=reject]")
    await page.wait_for_function(
        f"() => document.querySelector(\"#task-claimants li[data-claimant='{other}']\")"
        "?.dataset.status === 'rejected'", timeout=30_000)

    # The check-in code, then offline: the phone makes the same code as the server.
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)
    await page.click("#task-code-link")
    held = await api(demo, "GET", f"/api/volunteer/tasks/{task}/checkin-key", "chen.jing")
    secret = bytes.fromhex(held["secret"])
    await page.wait_for_function("() => /^[0-9]{6}$/.test(document.querySelector("
                                 "'#task-code')?.textContent || '')", timeout=30_000)
    assert await shown_code_is_right(page, secret, task)
    await check_screen(page, "code")
    await phone.context.set_offline(True)
    await page.reload()
    await page.wait_for_selector("#task-code-note:has-text('离线显示')", timeout=30_000)
    await page.wait_for_function("() => /^[0-9]{6}$/.test(document.querySelector("
                                 "'#task-code')?.textContent || '')", timeout=30_000)
    assert await shown_code_is_right(page, secret, task)
    await page.click("#lang")
    await page.wait_for_selector("text=Check-in code")
    await check_screen(page, "code, English")
    await page.click("#lang")
    await phone.context.set_offline(False)

    # The volunteer checks in and out (the task moved to now), the organiser confirms.
    def move() -> None:
        doc = demo.couch[RESIDENTS_DB][task]
        doc["starts_at"] = (datetime.datetime.now(datetime.UTC)
                            - datetime.timedelta(minutes=20)).isoformat()
        doc["ends_at"] = (datetime.datetime.now(datetime.UTC)
                          + datetime.timedelta(hours=2)).isoformat()
        demo.couch[RESIDENTS_DB].save(doc)
    await demo.city.run(move)
    moment = datetime.datetime.now(datetime.UTC)
    for direction, ago in (("in", 15), ("out", 0)):  # the codes of 15 minutes ago and of now
        code = rules.checkin_code(secret, task, rules.window_of(
            moment - datetime.timedelta(minutes=ago)))
        await api(demo, "POST", f"/api/volunteer/tasks/{task}/check", RESIDENT,
                  {"direction": direction, "code": code})
    await phone.show(f"#/tasks/{task.replace(':', '%3A')}")
    await page.wait_for_selector("#hours-0", timeout=30_000)
    await page.click("#hours-0")

    def entries() -> list[int]:
        return [row.doc["amount"] for row in demo.couch[RESIDENTS_DB].view(
            "_all_docs", include_docs=True, startkey="ledger_entry:",
            endkey="ledger_entry:\ufff0")
            if row.id.endswith(task.replace(":", ".")) and f":{me}:" in row.id]
    amounts = await eventually(lambda: demo.city.run(entries), seconds=30,
                               what="the hours confirmed from the phone")
    assert sorted(amounts) in ([2, 15], [3, 20]), amounts  # 15 or 20 minutes, and points
    assert phone.problems == []
    await phone.context.close()


async def taken(demo: Demo, user: str, task: str) -> bool:
    got = await claim(demo, user, task, "claim", "neighbour-claim-9")
    return got["status_code"] in (200, 201)


async def shown_code_is_right(page: Any, secret: bytes, task: str) -> bool:
    shown = await page.text_content("#task-code")
    window = int(await page.get_attribute("#task-code", "data-window") or 0)
    now = rules.window_of(datetime.datetime.now(datetime.UTC))
    return now - 1 <= window <= now and shown == rules.checkin_code(secret, task, window)
