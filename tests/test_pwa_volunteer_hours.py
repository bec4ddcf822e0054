"""The volunteer's hours screens in Chromium (issue 17): the check-in screen, where the code the
organiser shows is typed with the network cut and kept (已提交签到，等待联网确认, after a reload
too), then sent once when online and shown as recorded, the code's time in Beijing time; the
check-out; the ledger screen with the organiser's confirmed hours and points and their reason;
the community's ranking, anonymous until the resident chooses a name, then by that name. 360 px
wide, every target at least 44 px, zh-CN first with the English toggle."""

from __future__ import annotations

import datetime

import pytest
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import RESIDENT, check_screen

from server.demo.loader import COMMUNITY
from server.domain import volunteering as rules
from server.domain.scope import RESIDENTS_DB

pytestmark = pytest.mark.slow  # a real Chromium


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def underway_task(demo: Demo, title: str) -> str:
    """A task of 坊门街社区 the demo resident holds a place on, begun twenty minutes ago (moved
    in the store: a task is published for the future)."""
    start = now() + datetime.timedelta(days=2)
    made = await api(demo, "POST", "/api/volunteer/tasks", "chen.jing", {
        "title": title, "description": "清理楼道杂物", "place": "坊门小区 3 幢",
        "community": COMMUNITY, "starts_at": start.isoformat(),
        "ends_at": (start + datetime.timedelta(hours=3)).isoformat(), "places": 2})
    task = str(made["task"]["_id"])
    got = await api(demo, "POST", f"/api/volunteer/tasks/{task}/claim", RESIDENT,
                    {"claim_id": "hours-claim-0001"})
    assert got["status"] == "confirmed", got

    def move() -> None:
        doc = demo.couch[RESIDENTS_DB][task]
        doc["starts_at"] = (now() - datetime.timedelta(minutes=20)).isoformat()
        doc["ends_at"] = (now() + datetime.timedelta(hours=2)).isoformat()
        demo.couch[RESIDENTS_DB].save(doc)
    await demo.city.run(move)
    return task


async def code_now(demo: Demo, task: str) -> tuple[str, datetime.datetime]:
    """The code the organiser's phone shows now, and the start of its window."""
    held = await api(demo, "GET", f"/api/volunteer/tasks/{task}/checkin-key", "chen.jing")
    window = rules.window_of(now())
    return (rules.checkin_code(bytes.fromhex(held["secret"]), task, window),
            datetime.datetime.fromtimestamp(window * rules.WINDOW_SECONDS, rules.CHINA))


async def test_check_in_offline_then_the_ledger_and_the_ranking(browser: Browser,
                                                                demo: Demo) -> None:
    task = await underway_task(demo, "楼道清理")
    me = (await api(demo, "GET", "/api/me", RESIDENT))["name"]
    phone = await Phone.open(browser, demo.url)
    await phone.login(RESIDENT)
    page = phone.page
    await page.click("#r-volunteer-link")
    await page.click(f"#v-tasks li[data-id='{task}'] a", timeout=30_000)
    await page.click("#v-checkin", timeout=30_000)  # shown once the phone holds 成功
    await page.wait_for_selector("#ck-in")
    await check_screen(page, "check-in")
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)

    # A wrong shape is said on the phone, nothing queued.
    await page.fill("#ck-code", "12a4")
    await page.click("#ck-in")
    assert await page.text_content("#ck-error") == "签到码应为 6 位数字"

    # Offline: the code is kept and said to be, after a reload too.
    await phone.context.set_offline(True)
    code, window = await code_now(demo, task)
    await page.fill("#ck-code", code)
    await page.click("#ck-in")
    await page.wait_for_selector("#ck-in-state[data-state=pending]")
    assert await page.text_content("#ck-in-state") == "已提交签到，等待联网确认"
    await page.reload()
    await page.wait_for_selector("#ck-in-state[data-state=pending]", timeout=20_000)
    assert not await page.locator("#ck-in").count()  # not twice

    # Online: sent once, the code's window recorded, shown in Beijing time.
    await phone.context.set_offline(False)
    await page.wait_for_selector("#ck-in-state[data-state=done]", timeout=30_000)
    shown = await page.text_content("#ck-in-state") or ""
    assert shown.startswith("已签到：") and shown.endswith(window.strftime("%H:%M")), shown
    await page.fill("#ck-code", (await code_now(demo, task))[0])
    await page.click("#ck-out")
    await page.wait_for_selector("#ck-out-state[data-state=done]", timeout=30_000)
    await check_screen(page, "checked in and out")
    stored = await demo.city.run(lambda: [row.id for row in demo.couch[RESIDENTS_DB].view(
        "_all_docs", startkey=f"checkin:{task.replace(':', '.')}:{me}:",
        endkey=f"checkin:{task.replace(':', '.')}:{me}:\ufff0")])
    assert len(stored) == 2, stored

    # The organiser confirms 90 minutes: the ledger screen shows them and their reason.
    await api(demo, "POST", f"/api/volunteer/tasks/{task}/hours", "chen.jing",
              {"volunteer": me, "minutes": 90})
    await page.evaluate("location.hash = '#/ledger'")
    await page.wait_for_selector("#lg-hours[data-minutes='90']", timeout=30_000)
    await page.wait_for_selector("#lg-points[data-points='15']", timeout=30_000)  # its own doc
    assert await page.text_content("#lg-hours") == "1 小时 30 分钟"
    assert await page.text_content("#lg-points") == "15 分"
    entry = page.locator("#lg-entries li[data-kind=hours]")
    assert "志愿服务：楼道清理" in (await entry.text_content() or "")
    await check_screen(page, "ledger")

    # The ranking: anonymous until the resident chooses a name, then by that name.
    await page.click("#lg-ranking-link")
    await page.wait_for_selector("#rk-rows li[data-me]", timeout=30_000)
    mine = await page.text_content("#rk-rows li[data-me] .main") or ""
    assert "匿名志愿者（我）" in mine, mine
    await check_screen(page, "ranking")
    await page.check("#rk-show")
    await page.click("#rk-save")
    assert await page.text_content("#rk-error") == "请填写显示的名字"
    await page.fill("#rk-name", "王阿姨")
    await page.click("#rk-save")
    await page.wait_for_function(
        "() => (document.querySelector('#rk-rows li[data-me] .main') || {}).textContent"
        "?.includes('王阿姨（我）')", timeout=30_000)
    assert await page.text_content("#rk-choice") == "排行中显示为：王阿姨"
    stored_choice = await demo.city.run(
        lambda: dict(demo.couch[RESIDENTS_DB][f"volunteer_ranking:{me}"]))
    assert stored_choice["show"] is True and stored_choice["name"] == "王阿姨"
    await page.click("#lang")
    await page.wait_for_selector("text=Volunteer ranking")
    await check_screen(page, "ranking, English")
    await page.click("#lang")
    assert phone.problems == []
    await phone.context.close()


