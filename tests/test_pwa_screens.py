"""Issue 22: the worker's and the supervisor's screens as people use them, in real headless
Chromium at 360 px against the real server and the demo city: the admin's accounts screen,
errors that name the field by its label, the address search in every form people type it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.async_api import Browser
from test_pwa import GRID_B, PHONE, Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)

pytestmark = pytest.mark.slow  # a real Chromium

STATUS = ("(path) => fetch(path, {credentials: 'same-origin', cache: 'no-store'})"
          ".then(r => r.status)")


async def test_the_admin_disables_a_worker_whose_phone_is_refused_at_once(
        browser: Browser, demo: Demo) -> None:
    worker = await Phone.open(browser, demo.url)
    await worker.login("li.qiang")
    path = f"/couch/grid-{GRID_B}"
    assert await worker.page.evaluate(STATUS, path) == 200
    admin = await Phone.open(browser, demo.url)
    page = admin.page
    try:
        await admin.login("admin")
        await page.click("#users-link")
        row = page.locator("#users-list li[data-user='li.qiang']")
        await row.wait_for()
        assert await row.get_attribute("data-state") == "active"
        assert "网格员" in await row.inner_text()
        await row.get_by_role("button", name="停用 li.qiang").click()
        await page.locator("#users-list li[data-user='li.qiang'][data-state=disabled]").wait_for()
        assert "已停用" in await page.text_content("#users-status")
        # The worker's very next request is refused: the session ended with the account.
        assert await worker.page.evaluate(STATUS, path) == 401
        # The admin cannot lock themself out: no button on their own row.
        assert await page.locator("#users-list li[data-user='admin'] button").count() == 0
        await page.get_by_role("button", name="启用 li.qiang").click()
        await page.locator("#users-list li[data-user='li.qiang'][data-state=active]").wait_for()
        assert await worker.page.evaluate(STATUS, path) == 401  # the old session stays ended
        assert admin.problems == [] and worker.problems == []
    finally:
        await admin.close()
        await worker.close()



POINTER = re.compile(r"(^|[\s(（:：])/[a-z_]+", re.M)
CN = dict(zip("0123456789", "零一二三四五六七八九", strict=True))
FIND_NEIGHBOURED = """() => {
  const all = linli.index.build().households;
  const key = (a) => `${a.building}|${a.unit}|${a.room}`;
  const held = new Set(all.map((h) => key(h.address)));
  const pick = all.find((h) => /^\\d+$/.test(h.address.building) && h.address.unit
    && held.has(key({ ...h.address, building: `1${h.address.building}` })))
    || all.find((h) => /^\\d+$/.test(h.address.building) && h.address.unit);
  return { id: pick._id, ...pick.address };
}"""
RESULTS = """() => [...document.querySelectorAll('#search-results li')].map((li) => ({
  href: li.querySelector('a')?.getAttribute('href') || '', near: li.hasAttribute('data-near'),
  text: li.textContent }))"""


async def test_the_search_reads_an_address_as_people_type_it(browser: Browser,
                                                            demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    try:
        await phone.login("wang.fang")
        await page.wait_for_function(
            "() => window.linli && linli.index && linli.index.complete"
            " && linli.index.build().households.length > 100", timeout=90_000)
        wanted = await page.evaluate(FIND_NEIGHBOURED)
        b, u, r = wanted["building"], wanted["unit"], wanted["room"]
        cn = "".join
        typed_forms = [f"{b}-{u}-{r}", f"{b}幢{u}单元{r}", f"{cn(CN[c] for c in b)}幢"
                       f"{cn(CN[c] for c in u)}单元{cn(CN[c] for c in r)}",
                       f"{b}栋{u}单元{r}室", f"{b}号楼{u}单元{r}"]
        href = f"#/h/{wanted['id']}".replace(":", "%3A")
        for typed in typed_forms:
            await page.fill("#search", typed)
            await page.wait_for_function("() => document.querySelectorAll("
                                         "'#search-results li').length > 0")
            found = await page.evaluate(RESULTS)
            exact = [f for f in found if not f["near"]]
            assert href in [f["href"] for f in exact], (typed, found)
            # Exact matches first, every near miss after them and said to be one.
            assert found[:len(exact)] == exact, (typed, found)
            assert all("近似" in f["text"] for f in found if f["near"]), (typed, found)
            assert all(f"{b}幢{u}单元{r}室" in f["text"] for f in exact), (typed, found)
        neighbour = f"1{b}幢{u}单元{r}室"
        if any(neighbour in f["text"] for f in found):  # the 13幢 for 3幢
            assert all(f["near"] for f in found if neighbour in f["text"]), found
        assert phone.problems == []
    finally:
        await phone.close()


async def test_a_street_supervisor_lands_on_the_street(browser: Browser, demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    try:
        await phone.login("sun.lei")  # the street's supervisor (府山街道)
        await page.click("#dashboard-link")
        await page.wait_for_function(
            "() => window.linli.dashboard && linli.dashboard.level === 'street'"
            " && document.getElementById('dashboard').getAttribute('aria-busy') === 'false'",
            timeout=90_000)
        crumbs = await page.locator("nav.crumbs li").all_inner_texts()
        assert crumbs == [await page.evaluate("() => linli.dashboard.name")], crumbs
        assert "全市" not in "".join(crumbs) and "330802001" not in "".join(crumbs)
        # Item 6: the screenings chart shows the days without records (as 0), not a seam.
        days = await page.evaluate("""() => import('/app/dashboard.js').then((m) =>
          m.screeningDays({ figures: { 'screenings.day.2026-11-01': 3,
            'screenings.day.2026-11-04': 2 } }).map((d) => [d.day, d.f.value]))""")
        assert days == [["2026-11-01", 3], ["2026-11-02", 0], ["2026-11-03", 0],
                        ["2026-11-04", 2]]
        assert phone.problems == []
    finally:
        await phone.close()


# Every visible control smaller than 44 × 44 CSS px (WCAG 2.5.5), as "tag#id.class text WxH".
# A link inside a sentence is WCAG's inline exception; a checkbox or radio counts by its label.
SMALL_TARGETS = """() => [...document.querySelectorAll(
    'button, a[href], input, select, textarea, summary, [role=button], [tabindex="0"]')]
  .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden'
    && e.type !== 'hidden' && !e.closest('[hidden], dialog:not([open])'))
  .map((e) => {
    const inSentence = e.tagName === 'A' && getComputedStyle(e).display === 'inline'
      && e.parentElement && /^(P|LI|SPAN|TD|DD)$/.test(e.parentElement.tagName)
      && e.parentElement.textContent.trim() !== e.textContent.trim();
    const box = (['checkbox', 'radio'].includes(e.type) && e.labels && e.labels[0]
      ? e.labels[0] : e).getBoundingClientRect();
    return { e, inSentence, w: Math.round(box.width), h: Math.round(box.height) };
  })
  .filter(({ inSentence, w, h }) => !inSentence && (w < 44 || h < 44))
  .map(({ e, w, h }) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} `
    + `${(e.textContent || e.value || '').trim().slice(0, 20)} ${w}x${h}`)"""


async def small_targets(page: Any) -> list[str]:
    return list(await page.evaluate(SMALL_TARGETS))


async def test_every_control_is_big_enough_for_a_thumb(browser: Browser, demo: Demo) -> None:
    worker = await Phone.open(browser, demo.url)
    page = worker.page
    found: dict[str, list[str]] = {}
    try:
        found["login"] = await small_targets(page)
        await worker.login("wang.fang")
        await page.wait_for_selector(".buildings li a", timeout=90_000)
        found["grid"] = await small_targets(page)
        await page.click(".buildings li a")
        await page.wait_for_selector(".rooms li a")
        found["building"] = await small_targets(page)
        await page.click(".rooms li a")
        await page.wait_for_selector("#view h2")
        found["household"] = await small_targets(page)
        household = await page.evaluate("() => decodeURIComponent(location.hash.split('/')[2])")
        await worker.show(f"#/new/household_visit/{household}")
        await page.wait_for_selector("form.record-form")
        found["visit form"] = await small_targets(page)
        # Item 3: the errors name each field by its label and say what to do, never a JSON
        # pointer (`/outcome`, `(/persons_present)`).
        await page.fill('[name="persons_present"]', "两")
        await page.click("form.record-form button[type=submit]")
        await page.wait_for_selector("form.record-form .has-error")
        said = await page.inner_text("#view")
        assert "走访结果" in said and not POINTER.search(said), said
    finally:
        await worker.close()
    supervisor = await Phone.open(browser, demo.url)
    page = supervisor.page
    try:
        await supervisor.login("sun.lei")
        await page.click("#dashboard-link")
        await page.wait_for_function(
            "() => document.getElementById('dashboard')?.getAttribute('aria-busy') === 'false'",
            timeout=90_000)
        found["dashboard"] = await small_targets(page)
    finally:
        await supervisor.close()
    small = {screen: small for screen, small in found.items() if small}
    assert not small, json.dumps(small, ensure_ascii=False, indent=1)


STORAGE = """(granted) => {
  for (const name of ['persisted', 'persist']) {
    Object.defineProperty(navigator.storage, name, { value: () => Promise.resolve(granted) });
  }
}"""


@pytest.mark.parametrize("granted", [True, False])
async def test_the_storage_warning_only_when_storage_is_not_persisted(
        browser: Browser, demo: Demo, granted: bool) -> None:
    context = await browser.new_context(**PHONE)
    await context.add_init_script(f"({STORAGE})({'true' if granted else 'false'})")
    page = await context.new_page()
    phone = Phone(context, page)
    try:
        await page.goto(demo.url + "/app/")
        await phone.login("li.qiang")
        await page.wait_for_function("(g) => window.linli && linli.storage.persisted === g"
                                     " && document.getElementById('syncbar').textContent",
                                     arg=granted, timeout=60_000)
        bar = await page.text_content("#syncbar") or ""
        assert ("浏览器可能在空间不足时清除数据" in bar) is not granted, bar
        assert phone.problems == []
    finally:
        await context.close()
