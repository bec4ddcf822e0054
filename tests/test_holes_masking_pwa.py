"""Issue 13, item 3 in the app: a supervisor without the `unmask` right keeps no grid on the
phone (the gateway would refuse it; a copy from before is deleted unless it holds records not yet
sent), works through the server's screens, sees personal data
masked there and still settles a conflict between two phone numbers, choosing a side by its
revision. Real headless Chromium against the demo city (tests/test_pwa.py's fixture)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from playwright.async_api import Browser
from test_pwa import GRID_A, GRID_B, Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)

from server.demo.loader import DEMO_PASSWORD
from server.store.couch import basic_authorization

pytestmark = pytest.mark.slow  # a real Chromium


def phone_conflict(household: dict[str, Any], provisional: str, other: str) -> dict[str, Any]:
    """An open conflict on the household's phone, as the server's resolver writes it."""
    at = "2026-11-26T10:00:00+00:00"
    sides = [{"rev": "3-" + d * 32, "by": by, "received_at": at, "value": value}
             for d, by, value in (("1", "li.qiang", provisional), ("2", "wang.fang", other))]
    return {"_id": f"resolution:{household['_id']}:{uuid.uuid4().hex[:16]}",
            "type": "resolution", "schema_version": 1, "grid": household["grid"],
            "created_by": "linli-resolver", "record": household["_id"],
            "record_type": "household", "resolved_at": at, "ancestor_rev": "2-" + "0" * 32,
            "result_rev": household["_rev"],
            "revisions": [{"rev": s["rev"], "deleted": False, "by": s["by"], "received_at": at,
                           "device_time": None, "outcome": "merged"} for s in sides],
            "fields": [{"field": "phone", "rule": "concurrent_edits", "undecided": True,
                        "chosen": sides[0], "alternatives": [sides[1]]}],
            "status": "open"}


async def test_a_supervisor_without_the_right_works_masked_and_online(
        browser: Browser, demo: Demo) -> None:
    db = demo.db(GRID_A)
    household_id = await demo.quiet_household(GRID_A, skip=40)
    household = dict(await asyncio.to_thread(db.get, household_id))
    provisional, other = "13800004444", "13900005555"
    household["phone"] = provisional
    await asyncio.to_thread(db.save, household)
    conflict = phone_conflict(household, provisional, other)
    await asyncio.to_thread(db.save, dict(conflict))

    # The store builds a grid's views the first time they are asked for, which on a fresh demo
    # city takes a while: ask once before the phone does.
    auth = {"Authorization": basic_authorization("sun.lei", DEMO_PASSWORD)}
    async with aiohttp.ClientSession() as session:
        for path in ("/api/conflicts", "/api/review?worker=nobody"):
            async with session.get(demo.url + path, headers=auth) as resp:
                assert resp.status == 200, await resp.text()

    phone = await Phone.open(browser, demo.url)
    page = phone.page
    grid_requests: list[str] = []
    page.on("request", lambda r: grid_requests.append(r.url) if "/couch/grid-" in r.url
            else None)
    # The phone kept copies of both grids from before (the right taken, or an older app): one
    # with records only, one with a record the server has not acknowledged yet.
    await page.evaluate("""async ([a, b, phone]) => {
      await new PouchDB(`linli-sun.lei-grid-${a}`).put({ _id: "household:x", phone });
      const other = new PouchDB(`linli-sun.lei-grid-${b}`);
      await other.put({ _id: "household:y", phone });
      await other.put({ _id: "_local/linli-outbox", pending: { "household:y": 1 }, refused: {} });
    }""", [GRID_A, GRID_B, other])
    await phone.login("sun.lei")  # a supervisor of the street, without the unmask right
    await page.wait_for_selector("#masked-only")
    await page.evaluate("() => linli.forgotten")
    names = await page.evaluate("async () => (await indexedDB.databases()).map((d) => d.name)")
    assert f"_pouch_linli-sun.lei-grid-{GRID_A}" not in names, names  # deleted
    assert f"_pouch_linli-sun.lei-grid-{GRID_B}" in names, names  # kept: not yet sent
    assert await page.evaluate("() => linli.sync === null && linli.index === null")
    assert "审核" in (await page.text_content("#masked-only") or "")

    # The conflict queue shows both phones masked; the other side is chosen by its revision.
    await page.click("#conflicts-link")
    card = page.locator(f'section.conflict[data-id="{conflict["_id"]}"]')
    try:
        await card.wait_for()
    except Exception as exc:
        raise AssertionError(await page.inner_text("body")) from exc
    choices = await card.locator(".side-choice").all_inner_texts()
    assert "138****4444" in choices[0] and "139****5555" in choices[1], choices
    assert provisional not in await page.content() and other not in await page.content()
    await card.locator(".side-choice input").nth(1).check()
    await card.locator("button[type=submit]").click()
    await card.wait_for(state="detached")
    assert (await asyncio.to_thread(db.get, household_id))["phone"] == other

    # The record's page shows the phone masked.
    await phone.show(f"#/review/{GRID_A}/{quote(household_id, safe='')}")
    await page.wait_for_function("(p) => document.body.innerText.includes(p)",
                                 arg="139****5555")
    assert other not in await page.content()
    assert grid_requests == []
    assert phone.problems == []
    await phone.close()
