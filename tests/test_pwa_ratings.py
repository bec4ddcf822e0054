"""Service ratings and the red/black list in Chromium (issue 19, docs/fees.md "Ratings"), on
the demo city: its board of 2026-Q3 has companies on both lists with their reasons. The demo
resident rates the paid third quarter offline on two phones: each says 待发送 (after a
reload too); the phone that reaches the server first counts, the other is told 已评价 and
shows the household's rating that counts, not its own. The supervisor sees both lists with
reasons and names; the property company sees its score and answers once, and the answer is
shown with the list. 360 px wide, every target at least 44 px, in zh-CN and English."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import check_screen

from server.demo.ratings import DEMO_PROPERTY
from server.demo.residents import DEMO_RESIDENT

pytestmark = pytest.mark.slow  # a real Chromium

FIRST = {"cleaning": 5, "security": 4, "repairs": 3, "attitude": 5}
SECOND = {"cleaning": 1, "security": 1, "repairs": 1, "attitude": 1}


# The phone's database busy a moment (a pull writing, say): a readwrite transaction on the
# store of `_local` documents, kept alive for `ms`, holds the outbox's write back.
HOLD_LOCAL_STORE = """(ms) => new Promise((held, failed) => {
  const open = indexedDB.open("_pouch_" + linli.resident.store.db.name);
  open.onerror = () => failed(open.error);
  open.onupgradeneeded = () => failed(new Error("no such database"));
  open.onsuccess = () => {
    try {
      const tx = open.result.transaction(["local-store"], "readwrite");
      const store = tx.objectStore("local-store");
      const until = Date.now() + ms;
      const spin = () => { if (Date.now() < until) store.get("linli-hold").onsuccess = spin; };
      spin();
      held();
    } catch (err) { failed(err); }
  };
})"""


async def rate_offline(phone: Phone, bill: str, scores: dict[str, int],
                       busy: bool = False) -> None:
    page = phone.page
    await page.click("#r-fees-link")
    await page.wait_for_selector(f"#fe-list li[data-bill='{bill}']", timeout=30_000)
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)
    await page.evaluate("(h) => { location.hash = h; }", f"#/fee/{bill}")
    await page.wait_for_selector("#ra-form", timeout=20_000)
    await phone.context.set_offline(True)
    for aspect, n in scores.items():
        await page.check(f"fieldset[data-aspect={aspect}] input[value='{n}']")
    await page.fill("#ra-comment", "保洁很好")
    await check_screen(page, "the rating form")
    if busy:
        await page.evaluate(HOLD_LOCAL_STORE, 2000)
    await page.click("#ra-send")
    if busy:  # 待发送 only once the phone keeps it: a reload then loses nothing
        await page.evaluate("() => linli.resident.sync.dataChanged()")
        await page.wait_for_timeout(900)
        assert await page.query_selector("#ra-form") is None
        assert await page.query_selector("#ra-state[data-state=saving]") is not None
    for reloaded in (False, True):
        if reloaded:
            await page.reload()
        await page.wait_for_selector("#ra-state[data-state=queued]", timeout=20_000)


async def test_two_phones_rate_one_counts(browser: Browser, demo: Demo) -> None:
    board = await api(demo, "GET", "/api/fees/ratings/board?period=2026-Q3", "chen.jing")
    assert board["red"] and board["black"], board  # the demo's lists
    assert all(c["reasons"] and c["name"] for c in board["red"] + board["black"])
    paid = next(b for b in (await api(demo, "GET", "/api/fees/bills", DEMO_RESIDENT))["bills"]
                if b["state"] == "paid")
    one = await Phone.open(browser, demo.url)
    two = await Phone.open(browser, demo.url)
    for phone in (one, two):
        await phone.login(DEMO_RESIDENT)
    await rate_offline(one, paid["bill"], FIRST, busy=True)
    await rate_offline(two, paid["bill"], SECOND)

    await one.context.set_offline(False)
    await one.page.wait_for_selector("#ra-state[data-state=counted]", timeout=30_000)
    await two.context.set_offline(False)
    await two.page.wait_for_selector("#ra-told", timeout=30_000)
    assert "已评价" in (await two.page.text_content("#ra-told") or "")
    for phone in (one, two):  # both show the rating that counts: the first phone's
        await phone.page.wait_for_selector("#ra-state[data-state=counted]", timeout=30_000)
        shown = {a: await phone.page.text_content(f"#ra dd[data-aspect={a}]") for a in FIRST}
        assert shown == {a: f"{n} / 5 分" for a, n in FIRST.items()}, shown
        await check_screen(phone.page, "the rating that counts")
    held = (await api(demo, "GET", "/api/fees/ratings", DEMO_RESIDENT))["ratings"]
    assert [r["scores"] for r in held if r["bill"] == paid["bill"]] == [FIRST]
    assert one.problems == [] and two.problems == []
    for phone in (one, two):
        await phone.context.close()


async def test_supervisor_sees_lists_and_company_answers(browser: Browser, demo: Demo) -> None:
    sup = await Phone.open(browser, demo.url)
    await sup.login("chen.jing")
    page = sup.page
    await page.click("#ratings-link")
    await page.fill("#rb-period", "2026-Q3")
    await page.click("#rb-pick button")
    await page.wait_for_selector("#rb-red li.card", timeout=30_000)
    await page.wait_for_selector("#rb-black li.card .reasons li")
    text = await page.text_content("#rb-black") or ""
    assert "综合得分" in text and "物业" in text and "property_company:" not in text
    await check_screen(page, "the red/black list")
    await page.click("#lang")
    await page.wait_for_selector("text=Black list")
    assert "Score" in (await page.text_content("#rb-black") or "")
    await check_screen(page, "the red/black list, English")
    await page.click("#lang")
    await sup.context.close()

    company = await Phone.open(browser, demo.url)
    await company.login(DEMO_PROPERTY)
    page = company.page
    await page.evaluate("() => { location.hash = '#/ratings/2026-Q3'; }")
    await page.wait_for_selector("#rb-mine li.card", timeout=30_000)
    assert await page.query_selector("#rb-all") is None  # its own score, not everyone's
    await check_screen(page, "the company's score")
    await page.fill("#rb-answer-text", "感谢业主监督，维修响应将缩短到 24 小时。")
    await page.click("#rb-answer-send")
    await page.wait_for_selector("#rb-mine blockquote.answer", timeout=20_000)
    assert await page.query_selector("#rb-answer") is None  # once a period
    board = await api(demo, "GET", "/api/fees/ratings/board?period=2026-Q3", "chen.jing")
    answered = [c for c in board["red"] + board["black"] + board["companies"] if c["answer"]]
    assert answered and answered[0]["answer"]["text"].startswith("感谢业主监督")
    assert company.problems == []
    await company.context.close()
