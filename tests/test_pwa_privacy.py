"""Issue 23 in the app. Item 3: a campaign purged on the server leaves a worker's phone at its
next start. A real headless Chromium syncs a grid holding a campaign's screenings, whose notes
carry ID numbers; the campaign is purged; the phone starts again, and a search of every
IndexedDB database of the page (every object store, every value) finds none of those numbers,
while the rest of the grid is still there. Item 2: a reveal in the review screen takes a typed
reason, and the admin's audit screen lists it (tests/test_pwa.py's demo city)."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from conftest import eventually, visit
from playwright.async_api import Browser
from test_campaigns import id_number, screening
from test_pwa import GRID_A, Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)

from server.admin import directory
from server.demo.loader import DEMO_PASSWORD
from server.demo.residents import DEMO_RESIDENT
from server.store.couch import basic_authorization
from server.sync import retention

pytestmark = pytest.mark.slow  # a real Chromium

# Every value of every object store of every IndexedDB database the page can open, as text.
DUMP = """async () => {
  const out = [];
  const ask = (request) => new Promise((ok, no) => {
    request.onsuccess = () => ok(request.result);
    request.onerror = () => no(request.error);
  });
  for (const info of await indexedDB.databases()) {
    const db = await ask(indexedDB.open(info.name));
    for (const name of db.objectStoreNames) {
      const values = await ask(db.transaction(name).objectStore(name).getAll());
      out.push(`${info.name}/${name}: ${JSON.stringify(values)}`);
    }
    db.close();
  }
  return out.join("\\n");
}"""


async def call(demo: Demo, method: str, path: str, user: str,
               body: Any = None) -> tuple[int, Any]:
    auth = {"Authorization": basic_authorization(user, DEMO_PASSWORD)}
    async with aiohttp.ClientSession() as session, session.request(
            method, demo.url + path, json=body, headers=auth) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_a_purged_campaign_leaves_the_phones_indexeddb(browser: Browser,
                                                             demo: Demo) -> None:
    key, worker = "pilot-phone", "wang.fang"
    secrets = [id_number(n) for n in range(300, 304)]
    docs = [screening(GRID_A, worker, n, key, s) for n, s in enumerate(secrets)]
    kept = screening(GRID_A, worker, 9, "keep-phone", id_number(399))
    db = demo.db(GRID_A)
    for doc in [*docs, kept]:
        await asyncio.to_thread(db.save, doc)

    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login(worker)
    await page.wait_for_function(
        "(ids) => window.linli && linli.index && ids.every((id) => linli.index.get(id))",
        arg=[d["_id"] for d in [*docs, kept]], timeout=120_000)
    before = await page.evaluate(DUMP)
    assert all(s in before for s in secrets)

    yesterday = (datetime.datetime.now(datetime.UTC).date()
                 - datetime.timedelta(days=1)).isoformat()
    status, _ = await call(demo, "PUT", f"/api/campaigns/{key}", "admin",
                           {"ends_on": yesterday, "retention_days": 0})
    assert status == 200
    await asyncio.to_thread(directory.set_rights, demo.couch, "chen.jing", grant=["purge"])

    async def purged() -> bool:
        status, body = await call(demo, "POST", f"/api/campaigns/{key}/purge", "chen.jing")
        return status == 200 and GRID_A in body["purged"]
    await eventually(purged, seconds=60)

    # The phone's next start: the grid's copy is made again without the campaign.
    async def told() -> bool:
        _, me = await call(demo, "GET", "/api/me", worker)
        return key in next(g for g in me["grids"] if g["code"] == GRID_A)["purged"]
    await eventually(told, seconds=30)
    await page.reload()
    await page.wait_for_function(
        "([grid, id]) => window.linli && linli.purged && linli.purged[grid] > 0 && linli.index"
        " && linli.index.get(id)", arg=[GRID_A, kept["_id"]], timeout=120_000)
    assert await page.evaluate("(grid) => linli.purged[grid]", GRID_A) == len(docs)
    dump = await page.evaluate(DUMP)
    assert [s for s in secrets if s in dump] == []
    assert id_number(399) in dump  # the search reads the records that stayed
    assert [await phone.local(d["_id"]) for d in docs] == [None] * len(docs)
    assert phone.problems == []
    await phone.close()


async def test_a_reveal_takes_a_reason_and_the_admin_reads_it(browser: Browser,
                                                              demo: Demo) -> None:
    """A holder of the right opens a person masked, reveals with a reason, sees the ID number;
    the admin's audit screen lists that reveal and filters to it."""
    def a_person() -> dict[str, Any]:
        db = demo.db(GRID_A)
        row = next(iter(db.view("_all_docs", startkey="person:", endkey="person:\ufff0",
                                limit=1, include_docs=True)))
        return dict(row.doc)
    person = await asyncio.to_thread(a_person)
    number = person["id_number"]
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("chen.jing")
    await phone.show(f"#/review/{GRID_A}/{quote(person['_id'], safe='')}")
    await page.wait_for_selector("#reveal-reason")
    assert number not in await page.inner_text("#record-fields")
    await page.select_option("#reveal-reason", "other")
    await page.fill("#reveal-text", "核对 低保申请")
    await page.click("#unmask")
    await page.wait_for_function("(n) => document.getElementById('record-fields')?.innerText"
                                 ".includes(n)", arg=number)
    assert await page.evaluate("() => Boolean(linli.reviewRecord.revealed_until)")
    await phone.close()

    admin = await Phone.open(browser, demo.url)
    await admin.login("admin")
    await admin.show("#/audit")
    await admin.page.fill("#audit-user", "chen.jing")
    await admin.page.click("#audit-filters button[type=submit]")
    row = admin.page.locator("tr.audit-entry", has_text=person["_id"])
    await row.first.wait_for()
    assert "核对 低保申请" in await row.first.inner_text()
    href = await admin.page.get_attribute("#audit-export", "href")
    assert href is not None and "user=chen.jing" in href
    assert number not in await admin.page.content()
    assert phone.problems == [] and admin.problems == []
    await admin.close()


async def test_a_supervisor_approves_a_retention_list_on_its_screen(browser: Browser,
                                                                   demo: Demo) -> None:
    """Item 6: the nightly list shows on the supervisors' screen as counts by grid; a holder
    of the purge right approves it there, and the old visit leaves the store."""
    secret = id_number(501)
    old = visit(GRID_A, "wang.fang", "retention-old", visited_on="2020-03-01",
                notes=f"核对证件 {secret}")
    await asyncio.to_thread(demo.db(GRID_A).save, old)
    await asyncio.to_thread(directory.set_rights, demo.couch, "chen.jing", grant=["purge"])
    listed = await retention.list_now(demo.store.url, datetime.date(2026, 12, 3))
    assert old["_id"] in listed["grids"][GRID_A]["records"]["household_visit"]

    phone = await Phone.open(browser, demo.url)
    page = phone.page
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await phone.login("chen.jing")
    await phone.show("#/retention")
    block = page.locator(f"section.retention-list[data-list='{listed['_id']}']")
    row = block.locator(f"tr.retention-grid[data-grid='{GRID_A}']")
    await row.wait_for()
    assert "household_visit 1" in await row.inner_text()
    assert old["_id"] not in await page.content()  # counts, never ids
    await block.locator("button.retention-approve").click()
    await page.wait_for_function("(id) => !document.querySelector("
                                 "`section.retention-list[data-list='${id}'] button`)",
                                 arg=listed["_id"])
    assert "chen.jing" in await row.inner_text()
    assert await asyncio.to_thread(demo.db(GRID_A).get, old["_id"]) is None
    assert phone.problems == []
    await phone.close()


async def test_a_revoked_phone_wipes_its_grid_at_next_contact(browser: Browser,
                                                             demo: Demo) -> None:
    """Item 4: the admin revokes a worker's phone that holds a synced grid; at its next
    contact with the server the phone wipes itself and says why, and a search of every
    IndexedDB database of the page finds none of the grid's ID numbers."""
    def id_numbers() -> list[str]:
        rows = demo.db(GRID_A).view("_all_docs", startkey="person:", endkey="person:\ufff0",
                                    include_docs=True)
        return [row.doc["id_number"] for row in rows if row.doc.get("id_number")]
    numbers = await asyncio.to_thread(id_numbers)
    assert numbers
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("wang.fang")
    await page.wait_for_function("(n) => window.linli && linli.index && linli.sync && "
                                 "linli.sync.status().download.complete", timeout=120_000)
    before = await page.evaluate(DUMP)
    assert any(n in before for n in numbers)

    status, listed = await call(demo, "GET", "/api/users/wang.fang/devices", "admin")
    assert status == 200
    newest = listed["devices"][0]
    assert "Chrome" in newest["agent"] and newest["revoked_at"] is None
    status, _ = await call(demo, "POST", f"/api/users/wang.fang/devices/{newest['id']}/revoke",
                           "admin")
    assert status == 200

    # Its next contact: the live sync's next request (or a start) is told, and it wipes.
    await page.wait_for_selector("#revoked-notice", timeout=120_000)
    assert "停用" in await page.inner_text("#revoked-notice")
    dump = await page.evaluate(DUMP)
    assert [n for n in numbers if n in dump] == []
    assert await page.evaluate("() => localStorage.getItem('linli.me')") is None
    cached = await page.evaluate("""async () => (await Promise.all((await caches.keys()).map(
        async (k) => (await (await caches.open(k)).keys()).map((r) => r.url)))).flat()""")
    assert [u for u in cached if "/api/" in u or "/couch/" in u] == []
    await page.wait_for_selector("#login[open]")
    await phone.close()


async def test_a_household_that_moved_out_leaves_the_phone(browser: Browser,
                                                          demo: Demo) -> None:
    """Item 4: a household marked moved out on the server leaves the worker's phone at its next
    start, with its persons and visits; the rest of the grid stays."""
    def a_household() -> tuple[dict[str, Any], list[str], list[str]]:
        db = demo.db(GRID_A)
        persons = [row.doc for row in db.view("_all_docs", startkey="person:",
                                              endkey="person:\ufff0", include_docs=True)]
        homes = {p["household"] for p in persons if p.get("id_number")}
        household = next(row.doc for row in db.view(
            "_all_docs", startkey="household:", endkey="household:\ufff0", include_docs=True)
            if row.id in homes and row.doc.get("status") != "moved_out")
        theirs = [p["id_number"] for p in persons
                  if p["household"] == household["_id"] and p.get("id_number")]
        others = [p["id_number"] for p in persons
                  if p["household"] != household["_id"] and p.get("id_number")]
        return dict(household), theirs, others
    household, theirs, others = await asyncio.to_thread(a_household)
    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("wang.fang")
    await page.wait_for_function("(id) => window.linli && linli.index && linli.index.get(id) "
                                 "&& linli.sync.status().download.complete",
                                 arg=household["_id"], timeout=120_000)
    before = await page.evaluate(DUMP)
    assert all(n in before for n in theirs)

    await asyncio.to_thread(demo.db(GRID_A).save, {**household, "status": "moved_out"})
    await page.wait_for_function("(id) => linli.index.get(id).status === 'moved_out'",
                                 arg=household["_id"], timeout=60_000)
    await page.reload()
    await page.wait_for_function("(grid) => window.linli && linli.dropped && "
                                 "linli.dropped[grid] > 0 && linli.index", arg=GRID_A,
                                 timeout=120_000)
    dump = await page.evaluate(DUMP)
    assert [n for n in theirs if n in dump] == []
    assert any(n in dump for n in others)  # the rest of the grid stays
    assert await phone.local(household["_id"]) is None
    assert phone.problems == []
    await phone.close()


async def test_the_queue_of_data_requests_shows_each_answer_due(browser: Browser,
                                                                demo: Demo) -> None:
    """Item 5: a resident's request shows on the staff's queue with the day its answer is due
    (15 working days on), as the server counts it."""
    status, made = await call(demo, "POST", "/api/residents/data-requests", DEMO_RESIDENT,
                              {"kind": "deletion", "details": "请删除我的走访记录"})
    assert status in (200, 201), made
    due = made["request"]["due_on"]
    phone = await Phone.open(browser, demo.url)
    await phone.login("admin")
    await phone.show("#/data-requests")
    row = phone.page.locator(f"tr.data-request[data-id='{made['request']['id']}']")
    await row.wait_for()
    assert due in await row.inner_text()
    assert "超期" in await phone.page.inner_text("#requests-status")
    assert phone.problems == []
    await phone.close()
