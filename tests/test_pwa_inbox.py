"""Issue 22, items 1 and 2, in real headless Chromium at 360 px in zh-CN against the real server
and the demo city: the worker's inbox (pwa/worker/inbox.js), a record returned by review worked
through offline and back to the supervisor's review screen, with its labels and counts true at
each step; and the first sync, cut off half-way, saying the grid is incomplete until it has
resumed and ended, its batches of documents gzipped."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import quote

import pytest
from conftest import eventually
from playwright.async_api import Browser, Page, Route
from test_pwa import GRID_A, Demo, Phone, resolution, save_form, side
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_review import api, queue_states, send, visit

from server.domain.scope import grid_db

pytestmark = pytest.mark.slow  # a real Chromium

COUNTS = """() => { const a = document.getElementById('inbox-link'); if (!a) return null;
  const kinds = {}; for (const s of a.querySelectorAll('.inbox-count')) kinds[s.dataset.kind] =
  Number(s.dataset.count); return { total: Number(a.dataset.count), ...kinds }; }"""


# Every state of the sync bar, as the worker saw it: kept from the page's start on.
SEEN_BARS = """window.seenBars = []; new MutationObserver(() => {
  const bar = document.getElementById('syncbar'); if (!bar) return;
  const download = document.getElementById('sync-download');
  window.seenBars.push({ state: document.getElementById('sync-state')?.textContent || '',
    download: download?.textContent || '', have: Number(download?.dataset.have || 0),
    last: Boolean(document.getElementById('sync-last')) });
}).observe(document, { childList: true, subtree: true, characterData: true });"""


async def home_counts(phone: Phone) -> dict[str, int]:
    await phone.show("#/")
    await phone.page.wait_for_selector("#inbox-link")
    return await phone.page.evaluate(COUNTS)


async def counts_become(page: Page, returned: int) -> dict[str, int]:
    await page.wait_for_function(f"(n) => ({COUNTS})()?.returned === n", arg=returned,
                                 timeout=30_000)
    return await page.evaluate(COUNTS)


async def test_a_returned_record_is_worked_through_from_the_inbox(browser: Browser,
                                                                  demo: Demo) -> None:
    household = await demo.quiet_household(GRID_A, skip=40)
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    try:
        await phone.login("wang.fang")
        await phone.wait_for_records(await demo.records(GRID_A))
        await page.wait_for_function("() => linli.index.complete && linli.reports?.as_of")
        before = await home_counts(phone)
        (record, rev), = (await send(demo, [visit(household, "inbox")])).items()
        await page.wait_for_function("(id) => linli.index.get(id)", arg=record, timeout=30_000)

        # The supervisor returns it (有问题): the home screen counts it, the inbox lists it.
        await api(demo, "POST", "/api/review/verdicts", body={
            "grid": GRID_A, "verdicts": [{"record": record, "record_rev": rev,
                                          "decision": "has_issues", "comment": "请补充走访备注"}]})
        returned = before.get("returned", 0) + 1
        after = await counts_become(page, returned)
        assert after["total"] == before["total"] + 1, (before, after)
        await page.click("#inbox-link")
        item = page.locator(f"#inbox-returned li[data-record='{record}']")
        await item.wait_for()
        assert "有问题：请补充走访备注" in await item.inner_text()
        assert "走访" in await item.inner_text()  # named by its type's label, not its id
        # The reports that wait for her move, as the server lists them to her: the demo's
        # submitted and accepted ones (she is their intake), none of her own.
        listed = await api(demo, "GET", "/api/reports?limit=500", "wang.fang")
        waiting = {r["_id"] for r in listed["reports"] if r.get("reporter") != "wang.fang" and (
            r["status"]["state"] in ("submitted", "accepted") or (
                r["status"].get("assignee") == "grid"
                and r["status"]["state"] in ("dispatched", "in_progress")))}
        assert waiting, listed
        await page.wait_for_function(
            "(n) => document.querySelectorAll('#inbox-reports li[data-report]').length === n",
            arg=len(waiting), timeout=30_000)
        shown = await page.eval_on_selector_all("#inbox-reports li[data-report]",
                                                "(lis) => lis.map((li) => li.dataset.report)")
        assert set(shown) == waiting
        assert after.get("reports") == len(waiting), after

        # Fixed with no network: it leaves the inbox at once and reads 已修改，待上传.
        await phone.context.set_offline(True)
        await item.locator("a").click()
        await page.wait_for_selector("form.record-form")
        await page.fill('[name="notes"]', "已补充：户主在家")
        back = f"#/h/{quote(household, safe='')}"
        await save_form(phone, back)
        line = page.locator(f"section.verdicts li[data-record='{record}']")
        await line.wait_for()
        assert "已修改，待上传" in await line.inner_text()
        assert "有问题" not in await line.inner_text()
        visit_line = page.locator("ul.visits li", has_text="已补充：户主在家")
        assert await visit_line.locator(".chip-waiting").inner_text() == "待上传"
        await phone.show("#/inbox")
        assert await page.locator(f"#inbox-returned li[data-record='{record}']").count() == 0
        assert (await home_counts(phone)) == before

        # The network back: it goes up, and on the household screen, without a tap, 待上传
        # gives way to 已修改，待复审.
        await phone.show(back)
        await phone.context.set_offline(False)
        await phone.wait_waiting(0)
        await page.wait_for_function(
            "(id) => document.querySelector(`section.verdicts li[data-record='${id}']`)"
            "?.classList.contains('verdict-fixed_review')", arg=record, timeout=30_000)
        assert "已修改，待复审" in await line.inner_text()
        assert await visit_line.locator(".chip-waiting").count() == 0

        # The supervisor sees it again, edited since the verdict.
        async def edited() -> bool:
            return record in await queue_states(demo, state="edited")
        await eventually(edited, seconds=20, what="the fixed record in the edited queue")
        supervisor = await Phone.open(browser, demo.url)
        try:  # and on the review screen, in the records edited since their verdict
            await supervisor.login("chen.jing")
            await supervisor.page.click("#review-link")
            await supervisor.page.select_option("#rf-state", "edited")
            await supervisor.page.fill("#rf-worker", "wang.fang")
            await supervisor.page.click("#rf-apply")
            await supervisor.page.locator(
                f"#review-table tbody tr[data-record='{record}'][data-state='edited']").wait_for()
            assert supervisor.problems == []
        finally:
            await supervisor.close()

        # A merge still open with her edit in it is a conflict to explain; a settled one and
        # one among others are not.
        db = demo.db(GRID_A)
        household_doc = dict(await demo.city.run(db.get, household))
        other = f"w_{GRID_A}"
        phone_field = {"field": "phone", "rule": "concurrent_edits", "undecided": True}
        mine = resolution(household_doc, [{**phone_field, "chosen": side(other, "13800001111", "2"),
                                           "alternatives": [side("wang.fang", "13900002222")]}],
                          resolved_at="2026-11-26T10:00:02+00:00")
        settled = resolution(household_doc, [{**phone_field, "chosen": side(other, "1", "2"),
                                              "alternatives": [side("wang.fang", "2")]}],
                             resolved_at="2026-11-26T10:00:03+00:00", status="decided")
        theirs = resolution(household_doc, [{**phone_field, "chosen": side(other, "1", "2"),
                                             "alternatives": [side("zhao.min", "2")]}],
                            resolved_at="2026-11-26T10:00:04+00:00")
        for doc in (mine, settled, theirs):
            await demo.city.run(db.save, doc)
        await page.wait_for_function("(ids) => ids.every((id) => linli.index.get(id))",
                                     arg=[mine["_id"], settled["_id"], theirs["_id"]])
        counts = await home_counts(phone)
        assert counts.get("conflicts", 0) == before.get("conflicts", 0) + 1, (before, counts)
        await page.click("#inbox-link")
        listed_merge = page.locator(f"#inbox-conflicts li[data-resolution='{mine['_id']}']")
        await listed_merge.wait_for()
        for doc in (settled, theirs):
            assert await page.locator(f"[data-resolution='{doc['_id']}']").count() == 0
        await listed_merge.locator("a").click()
        await page.wait_for_function("(h) => location.hash === h", arg=back)
        assert phone.problems == []
    finally:
        await phone.close()


async def test_the_first_sync_cut_off_half_way_says_so_and_resumes(browser: Browser,
                                                                   demo: Demo) -> None:
    records = await demo.records(GRID_A)
    total = (await demo.city.run(demo.db(GRID_A).info))["doc_count"]  # the count the gateway gives
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    context = phone.context
    feeds: list[str] = []  # the pull's reads of the grid's changes
    batches: list[str] = []  # its reads of the documents, one per batch
    cut = asyncio.Event()

    async def changes(route: Route) -> None:
        if route.request.method == "GET":
            feeds.append(route.request.url)
        await route.continue_()

    async def documents(route: Route) -> None:
        """Two batches of documents come down (and are stored: a batch is fetched once the one
        before it is written); at the third, the network goes."""
        batches.append(route.request.url)
        if len(batches) == 3 and not cut.is_set():
            cut.set()
            await context.set_offline(True)
            await route.abort("internetdisconnected")
            return
        await route.continue_()

    back = asyncio.Event()  # the network has come back
    lost: list[str] = []  # the server's welcomes lost as it came back

    async def welcome(route: Route) -> None:
        """The network comes back just after a retry asked the server's welcome (`/couch/`,
        whose uuid names each replication, so its checkpoint): the first two asked as it comes
        back (the pull's and the push's) are lost, while the grid itself answers."""
        if back.is_set() and len(lost) < 2:
            lost.append(route.request.url)
            await route.abort("internetdisconnected")
            return
        await route.continue_()

    # How each batch of documents came: gzipped, as the phone asks (server/sync/replication.py).
    encodings: list[str | None] = []
    page.on("response", lambda response: encodings.append(
        response.headers.get("content-encoding")) if "/_bulk_get" in response.url else None)
    counted = asyncio.Event()  # the bar has shown the grid's count

    async def grid_info(route: Route) -> None:
        """The grid's own info (its count) held back until the bar has shown the count: it
        came with the login's /api/me, a round trip sooner."""
        if route.request.method == "GET" and not counted.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(counted.wait(), 30)
        await route.continue_()

    await context.add_init_script(SEEN_BARS)
    await context.route(lambda url: url.split("?")[0].rstrip("/").endswith(
        f"/couch/{grid_db(GRID_A)}"), grid_info)
    await context.route("**/couch/", welcome)
    await context.route(f"**/couch/{grid_db(GRID_A)}/_changes*", changes)
    await context.route(f"**/couch/{grid_db(GRID_A)}/_bulk_get*", documents)
    try:
        await phone.wait_controlled()  # the shell cached: the phone opens again offline
        await phone.login("wang.fang")
        # From the first second: incomplete, with the grid's count, never a last sync.
        bar = page.locator("#sync-download")
        await bar.wait_for()
        assert "网格数据未下载完" in await bar.inner_text()
        assert await page.locator("#sync-last").count() == 0
        await page.wait_for_function(
            "(n) => document.getElementById('sync-download')?.dataset.total === String(n)",
            arg=total, timeout=20_000)
        counted.set()
        await asyncio.wait_for(cut.wait(), 60)
        # Cut off: the phone holds part of the grid and says so.
        await page.wait_for_function("() => !navigator.onLine && document.getElementById("
                                     "'sync-state')?.textContent === '离线'", timeout=30_000)
        have = int(await bar.get_attribute("data-have") or 0)
        assert 0 < have < records, (have, records)
        text = await bar.inner_text()
        assert "网格数据未下载完" in text and f"{have:,} / {total:,}" in text, text
        await phone.show("#/")
        await page.wait_for_selector("#grid-incomplete")
        assert await page.locator("section.progress").count() == 0
        assert (await phone.status())["download"]["complete"] is False
        # Opened again with no network: still incomplete, still against the grid's count.
        await page.reload()
        await page.wait_for_function(
            "(n) => document.getElementById('sync-download')?.dataset.total === String(n)",
            arg=total, timeout=30_000)
        assert "网格数据未下载完" in await bar.inner_text()
        assert await page.locator("#sync-last").count() == 0
        await page.wait_for_selector("#grid-incomplete")

        # The network back: the pull resumes from its checkpoint, not from the start, even
        # when the server's welcome was lost on the way (it would name another checkpoint).
        resumed_from = len(feeds)
        back.set()
        await context.set_offline(False)
        await page.wait_for_function("() => linli.sync.status().download.complete",
                                     timeout=90_000)
        await page.wait_for_selector("#sync-last")
        assert await page.locator("#sync-download").count() == 0
        await page.wait_for_selector("section.progress")  # the grid's figures, whole
        assert await page.locator("#grid-incomplete").count() == 0
        assert await page.evaluate("() => linli.sync.db.info().then((i) => i.doc_count)") >= records
        # What the bar said at each change: the progress with its counts while the download
        # ran, and never 已同步 nor a last sync beside the warning.
        bars = await page.evaluate("() => window.seenBars")
        running = [b for b in bars if b["download"].startswith("网格数据未下载完 正在下载网格数据")]
        assert any(b["download"].endswith(f" / {total:,}") and b["have"] > 0 for b in running), bars
        assert not [b for b in bars if b["download"] and (b["state"] == "已同步" or b["last"])]
        again = [u for u in feeds[resumed_from:] if "since=" in u]
        assert again and "since=0&" not in again[0] + "&", again[:1]
        assert len(lost) == 2, lost
        assert len(encodings) >= 3 and set(encodings) == {"gzip"}, encodings
        assert phone.problems == []
    finally:
        await phone.close()
