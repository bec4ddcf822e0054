"""The supervisor's review screen (`#/review`, pwa/review.js) in real headless Chromium against the
real server, the embedded store and the demo city: the queue filtered, several records approved
at once and one flagged with a comment (the API then reports those states), a record opened with
its fields, verdicts, history and the differences between revisions; and a verdict reaching the
worker's phone, whose household screen shows it."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from playwright.async_api import Browser, Page
from test_pwa import GRID_A, Demo, Phone, save_form
from test_pwa import demo as demo  # the demo city's fixture (one per module)

from server.demo.loader import DEMO_PASSWORD
from server.domain.scope import grid_db
from server.store.couch import basic_authorization

pytestmark = pytest.mark.slow  # a real Chromium

DAY = "2026-11-02"  # the review test's own visits: the demo city's workers are not wang.fang


def auth(name: str) -> dict[str, str]:
    return {"Authorization": basic_authorization(name, DEMO_PASSWORD)}


async def api(demo: Demo, method: str, path: str, user: str = "chen.jing",
              body: Any = None) -> Any:
    async with aiohttp.ClientSession(headers=auth(user)) as session, \
            session.request(method, demo.url + path, json=body) as response:
        assert response.status < 300, await response.text()
        return await response.json()


def visit(household: str, tag: str, **fields: Any) -> dict[str, Any]:
    """A visit as wang.fang's phone saves it."""
    return {"_id": f"household_visit:{household[len('household:'):]}-{tag}",
            "type": "household_visit", "schema_version": 1, "grid": GRID_A,
            "created_by": "wang.fang", "household": household, "visited_on": DAY,
            "outcome": "completed", **fields}


async def send(demo: Demo, docs: list[dict[str, Any]]) -> dict[str, str]:
    """Through the gateway as wang.fang, as her phone would: the server keeps receipts."""
    results = await api(demo, "POST", f"/couch/{grid_db(GRID_A)}/_bulk_docs", "wang.fang",
                        {"docs": docs})
    assert all(r.get("ok") for r in results), results
    return {r["id"]: r["rev"] for r in results}


async def queue_states(demo: Demo, **query: str) -> dict[str, dict[str, Any]]:
    answer = await api(demo, "GET", "/api/review?" + urlencode(
        {"grid": GRID_A, "worker": "wang.fang", **query}))
    return {r["record"]: r for r in answer["records"]}


async def settled(page: Page, box: str) -> None:
    await page.wait_for_function(
        "(id) => { const b = document.getElementById(id);"
        " return b && b.getAttribute('aria-busy') === 'false'; }", arg=box, timeout=30_000)


async def rows_in(page: Page, state: str, count: int) -> None:
    await page.wait_for_function(
        "([s, n]) => document.getElementById('review').getAttribute('aria-busy') === 'false'"
        " && document.querySelectorAll(`#review-table tbody tr[data-state='${s}']`).length === n",
        arg=[state, count], timeout=30_000)


UNLABELLED = """() => [...document.querySelectorAll('main input, main select, main textarea')]
  .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label')).map((e) => e.outerHTML)"""


async def test_the_supervisor_reviews_many_records_at_once(browser: Browser,
                                                           demo: Demo) -> None:
    # The store builds a grid's views the first time they are asked for, which on a fresh demo
    # city takes a while: ask once before the phone does.
    await api(demo, "GET", "/api/review?worker=nobody")
    households = [await demo.quiet_household(GRID_A, skip=20 + n) for n in range(4)]
    revs = await send(demo, [visit(h, "rv", persons_present=2) for h in households])
    ids = list(revs)
    flagged = ids[3]

    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("chen.jing")  # a supervisor of the community: both demo grids
    await page.click("#review-link")
    await settled(page, "review")
    assert await page.evaluate(UNLABELLED) == []
    await page.select_option("#rf-grid", GRID_A)
    await page.select_option("#rf-type", "household_visit")
    await page.select_option("#rf-state", "received")
    await page.fill("#rf-worker", "wang.fang")
    await page.fill("#rf-from", DAY)
    await page.fill("#rf-to", DAY)
    await page.click("#rf-apply")
    await page.wait_for_function(
        "() => window.linli.review && linli.review.filters.worker === 'wang.fang'"
        " && document.getElementById('review').getAttribute('aria-busy') === 'false'")
    await rows_in(page, "received", 4)
    # Newest first (one day here: by record, the last first).
    assert await page.locator("#review-table tbody tr").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.record)") == ids[::-1]
    # People and grids by their names, never a login or a code (issue 22, item 8).
    shown = await page.locator("#review-table tbody").inner_text()
    assert "王芳" in shown and "wang.fang" not in shown and GRID_A not in shown
    assert "household_visit:" not in shown
    heads = await page.locator("#review-table thead th").evaluate_all(
        "(ths) => ths.map((th) => th.scope)")
    assert heads == ["col"] * 4
    assert await page.locator("#review-table tbody th[scope=row]").count() == 4
    assert await page.evaluate(UNLABELLED) == []
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
    # The filtered list downloads as it is shown.
    href, listed = await page.evaluate(r"""async () => {
      const href = document.querySelector('#review a.download[data-format=csv]')
        .getAttribute('href');
      const text = await (await fetch(href)).text();
      return [href, text.trim().split('\n').slice(1).map((line) => line.split(',')[2])];
    }""")
    assert "what=review" in href and "worker=wang.fang" in href
    assert listed == ids[::-1]

    # Three approved at once.
    for record in ids[:3]:
        await page.check(f'#review-table input[data-record="{record}"]')
    assert await page.text_content("#rq-count") == "已选 3 条"
    await page.click("#rq-verdict-approved")
    await page.select_option("#rf-state", "")
    await page.click("#rf-apply")
    await rows_in(page, "approved", 3)
    states = await queue_states(demo, **{"from": DAY, "to": DAY})
    assert [states[i]["state"] for i in ids] == ["approved"] * 3 + ["received"]
    assert all(states[i]["verdict"]["by"] == "chen.jing" for i in ids[:3])

    # One flagged: a comment is needed first.
    await page.check(f'#review-table input[data-record="{flagged}"]')
    await page.click("#rq-verdict-has_issues")
    assert await page.text_content("#rq-verdict-error") == "请填写意见"
    assert (await queue_states(demo, **{"from": DAY, "to": DAY}))[flagged]["state"] == "received"
    await page.fill("#rq-verdict-comment", "在场人数与登记不符")
    await page.click("#rq-verdict-has_issues")
    await rows_in(page, "has_issues", 1)
    states = await queue_states(demo, **{"from": DAY, "to": DAY})
    assert [states[i]["state"] for i in ids] == ["approved"] * 3 + ["has_issues"]
    assert states[flagged]["verdict"]["comment"] == "在场人数与登记不符"

    # The worker corrects it; the record shows its history and what changed.
    doc = {**visit(households[3], "rv", persons_present=3), "_rev": revs[flagged]}
    fixed = (await send(demo, [doc]))[flagged]
    await page.click(f'#review-table tr[data-record="{flagged}"] th a')
    await settled(page, "review-record")
    found = await page.evaluate("() => linli.reviewRecord")
    assert found["rev"] == fixed and found["state"] == "edited"
    assert await page.text_content("h2.view-title") == f"户情排摸走访 {DAY}"
    fields = await page.locator("#record-fields dd[data-field=persons_present]").inner_text()
    assert fields == "3"
    assert await page.locator('[data-state="edited"]').count() == 1
    verdicts = await page.locator("section.verdicts li").all_inner_texts()
    assert len(verdicts) == 1 and "有问题：在场人数与登记不符" in verdicts[0]
    revisions = page.locator("ol.revisions > li.revision")
    assert await revisions.evaluate_all("(li) => li.map((l) => l.dataset.rev)") == [
        fixed, revs[flagged]]
    newest = revisions.nth(0)
    assert "王芳" in await newest.inner_text() and "wang.fang" not in await newest.inner_text()
    about = await page.text_content("#record-about")
    assert "王芳" in about and "household_visit:" not in about and GRID_A not in about
    assert await newest.locator("caption").inner_text() == "与第 1 版相比的修改"
    change = newest.locator("tbody tr")
    assert await change.count() == 1
    assert await change.evaluate_all("(rows) => rows.map((r) => [...r.cells].map("
                                     "(c) => c.tagName + ':' + c.textContent))") == [
        ["TH:在家人数", "TD:2", "TD:3"]]
    assert await revisions.nth(1).locator("details > summary").inner_text() == "最早保留的内容"
    shown = await revisions.nth(1).locator("tbody th").all_text_contents()
    assert shown[:2] == ["创建人", "住户"] and "在家人数" in shown and "网格" not in shown
    assert await page.evaluate(UNLABELLED) == []
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360

    # Approved after the correction, from the record's own screen.
    await page.click("#rr-verdict-approved")
    await page.wait_for_function(
        "() => (linli.reviewRecord || {}).state === 'approved'"
        " && document.getElementById('review-record').getAttribute('aria-busy') === 'false'")
    states = await queue_states(demo, **{"from": DAY, "to": DAY})
    assert states[flagged]["state"] == "approved" and states[flagged]["rev"] == fixed

    # In English.
    await page.click("#lang")
    await page.wait_for_selector("#history-title:has-text('History')")
    assert await newest.locator("caption").inner_text() == "Changes since revision 1"
    await page.click("#lang")
    await page.wait_for_selector("#history-title:has-text('修改历史')")

    # With no network the screen says so.
    await phone.context.set_offline(True)
    await page.click("#back-to-queue")
    await page.wait_for_selector(".needs-network")
    assert await page.text_content(".needs-network") == "需要网络"
    assert phone.problems == []
    await phone.close()


async def test_a_verdict_reaches_the_workers_phone(browser: Browser, demo: Demo) -> None:
    household = await demo.quiet_household(GRID_A, skip=30)
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("wang.fang")
    await phone.wait_for_records(await demo.records(GRID_A))
    (record, rev), = (await send(demo, [visit(household, "vd")])).items()
    await page.wait_for_function("(id) => linli.index.get(id)", arg=record, timeout=30_000)

    answer = await api(demo, "POST", "/api/review/verdicts", body={
        "grid": GRID_A, "verdicts": [{"record": record, "record_rev": rev,
                                      "decision": "has_issues", "comment": "请补充走访备注"}]})
    (verdict_id,) = answer["written"]
    # The verdict is in the phone's own PouchDB, replicated like any other document.
    await page.wait_for_function("(id) => linli.index.get(id)", arg=verdict_id, timeout=30_000)
    stored = await page.evaluate("(id) => linli.sync.db.get(id)", verdict_id)
    assert (stored["record"], stored["decision"], stored["comment"], stored["created_by"]) == (
        record, "has_issues", "请补充走访备注", "chen.jing")

    # The household screen shows it, with a link to the record to fix.
    back = f"#/h/{quote(household, safe='')}"
    await phone.show(back)
    item = page.locator("section.verdicts li.verdict-has_issues")
    await item.wait_for()
    assert "有问题：请补充走访备注" in await item.inner_text()
    await item.locator("a").click()
    await page.wait_for_selector("form.record-form")
    await page.fill('[name="notes"]', "已补充：户主在家")
    await save_form(phone, back)
    await phone.wait_waiting(0)
    for _ in range(100):  # the worker's correction makes it "edited" for the supervisor
        states = await queue_states(demo)
        if states[record]["state"] == "edited":
            break
        await asyncio.sleep(0.2)
    assert states[record]["state"] == "edited"
    assert phone.problems == []
    await phone.close()
