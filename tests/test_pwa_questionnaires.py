"""Questionnaires in Chromium (issue 16): the demo resident answers the demo survey with the
skip logic live and the mistakes shown at their field, offline, shown honestly as waiting
(after a reload too), sent when the network is back and counted once; the community's
supervisor builds a questionnaire (a choice, a rating shown only after one answer) and
publishes it."""

from __future__ import annotations

import datetime

import pytest
from playwright.async_api import Browser
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api

from server.demo.questionnaires import KEY
from server.demo.residents import DEMO_RESIDENT
from server.domain.questionnaires import definition_id

pytestmark = pytest.mark.slow  # a real Chromium


async def answers_counted(demo: Demo) -> int:
    seen = await api(demo, "GET", f"/api/questionnaires/{KEY}/results", "chen.jing")
    return int(seen["results"]["answers"])


async def test_a_resident_answers_offline_and_is_counted_once(browser: Browser,
                                                              demo: Demo) -> None:
    before = await answers_counted(demo)
    phone = await Phone.open(browser, demo.url)
    await phone.login(DEMO_RESIDENT)
    page = phone.page
    await page.click("#r-questionnaires-link")
    item = f"#q-list li[data-id='{definition_id(KEY, 1)}']"
    await page.wait_for_selector(item, timeout=30_000)
    await page.click(f"{item} a")
    await page.wait_for_selector("#q-form", timeout=30_000)
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                 timeout=20_000)
    # The skip logic follows the answers: the rating shows only for a household with a car.
    spot = ".question[data-name=spot]"
    assert await page.locator(spot).is_hidden()
    await page.check("input[name=q-car][value=yes]")
    await page.wait_for_selector(spot, state="visible")
    await page.check("input[name=q-car][value=no]")
    await page.wait_for_selector(spot, state="hidden")
    await page.check("input[name=q-car][value=yes]")
    await page.fill("#q-people", "25")
    await page.click("#q-send")  # a required rating left out, a number out of range
    assert "必答" in (await page.text_content("#q-error-spot") or "")
    assert "1 到 20" in (await page.text_content("#q-error-people") or "")
    assert await page.locator("#q-form").count() == 1  # nothing queued

    # Offline: queued, and said so, after a reload too.
    await phone.context.set_offline(True)
    await page.check("input[name=q-spot][value='4']")
    await page.fill("#q-people", "3")
    await page.click("#q-send")
    await page.wait_for_selector(f"{item} [data-status=pending]", timeout=20_000)
    await page.reload()
    await page.wait_for_selector(f"{item} [data-status=pending]", timeout=20_000)
    assert await answers_counted(demo) == before

    # Back online: sent, counted once, and the phone says so.
    await phone.context.set_offline(False)
    await page.wait_for_selector(f"{item} [data-status=counted]", timeout=30_000)
    assert await answers_counted(demo) == before + 1
    await page.reload()
    await page.wait_for_selector(f"{item} [data-status=counted]", timeout=30_000)
    assert await answers_counted(demo) == before + 1
    assert phone.problems == []
    await phone.context.close()


async def test_a_supervisor_builds_and_publishes(browser: Browser, demo: Demo) -> None:
    phone = await Phone.open(browser, demo.url)
    await phone.login("chen.jing")
    page = phone.page
    await page.click("#questionnaires-link")
    await page.click("#qs-new", timeout=30_000)
    await page.fill("#qs-title", "垃圾分类意见征集")
    await page.select_option("#qs-level", "community")
    await page.fill("#qs-codes", "330802001001")
    closes = datetime.datetime.now() + datetime.timedelta(days=7)
    await page.fill("#qs-closes", closes.strftime("%Y-%m-%dT%H:%M"))
    first = "#qs-questions fieldset[data-index='0']"
    await page.fill(f"{first} .qs-label", "您家会分类吗")
    await page.fill(f"{first} .qs-choices", "会\n不会")
    await page.check(f"{first} .qs-required")
    await page.click("#qs-add")
    second = "#qs-questions fieldset[data-index='1']"
    await page.fill(f"{second} .qs-label", "分类方便吗")
    await page.select_option(f"{second} .qs-kind", "rating")
    await page.select_option(f"{second} .qs-if", "q1")
    await page.fill(f"{second} .qs-if-value", "会")
    await page.click("#qs-publish")
    await page.wait_for_selector("#qs-answers[data-count='0']", timeout=30_000)
    listed = await api(demo, "GET", "/api/questionnaires", "chen.jing")
    made = next(q for q in listed["questionnaires"] if q["title"] == "垃圾分类意见征集")
    assert made["questions"][1]["show_if"] == {"question": "q1", "op": "=", "value": "c1"}
    assert made["questions"][0]["choices"] == [{"value": "c1", "label": "会"},
                                               {"value": "c2", "label": "不会"}]
    assert made["status"] == "published" and made["version"] == 1
    assert phone.problems == []
    await phone.context.close()
