"""Star rating in Chromium (三类五星, pwa/stars/sheet.js), on the demo city: the assessor's
home is the sheets, the demo's 2026 round in progress is scored on its scoring sheet; the
street opens a new round on its screen, the community fills the evidence sheet with a photo and
hands it over; after the scores, the street's review refuses a property share of 30.01 % with
the field's label and publishes at 30 %; the published result shows with its history and the
earlier rounds. 360 px wide, every target at least 44 px, labels not codes, zh-CN and English."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image
from playwright.async_api import Browser, Page
from test_pwa import Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_notices import api
from test_pwa_volunteer import check_screen

from server.demo.stars import COMMUNITY_SUPERVISOR, DEMO_ASSESSOR, STREET_SUPERVISOR
from server.sync.stars import load_sheet

pytestmark = pytest.mark.slow  # a real Chromium
SHEET = load_sheet()


async def phone_as(browser: Browser, demo: Demo, name: str) -> Phone:
    phone = await Phone.open(browser, demo.url)
    await phone.login(name)
    return phone


async def no_codes(page: Page, where: str) -> None:
    text = await page.text_content(where) or ""
    for code in ("collecting", "scoring", "published", "party-01", "property_company:"):
        assert code not in text, (code, text[:200])


async def in_both_languages(page: Page, what: str, english: str) -> str:
    """The screen checked in zh-CN and English; the text of `#st-result` in English."""
    await check_screen(page, what)
    await page.click("#lang")
    await page.wait_for_selector(f"text={english}")
    await check_screen(page, f"{what}, English")
    result = await page.query_selector("#st-result")
    shown = (await result.text_content() or "") if result else ""
    await page.click("#lang")
    return shown


async def test_the_assessor_scores_on_the_demo_sheet(browser: Browser, demo: Demo) -> None:
    sheets = (await api(demo, "GET", "/api/stars/sheets", DEMO_ASSESSOR))["sheets"]
    current = next(s for s in sheets if s["round"] == "2026")
    phone = await phone_as(browser, demo, DEMO_ASSESSOR)
    page = phone.page
    await page.wait_for_selector("#st-sheets li[data-round='2026'] a", timeout=30_000)
    await check_screen(page, "the assessor's sheets")
    await page.click("#st-sheets li[data-round='2026'] a")
    scored = (await api(demo, "GET", f"/api/stars/sheets/{current['compound']}/2026",
                        DEMO_ASSESSOR))["sheet"]["scores"]
    unscored = next(i for i in SHEET.indicators if i.scored_by == "assessor"
                    and i.id not in scored)
    card = f"li[data-indicator='{unscored.id}']"
    await page.wait_for_selector(f"{card} form[data-form=score]", timeout=30_000)
    await no_codes(page, "#st-sheet")
    assert "第三方评估（评分）" in (await page.text_content("#st-parts") or "")
    await page.fill(f"{card} input[name=points]", str(unscored.max_points + 1))
    await page.fill(f"{card} input[name=comment]", "现场核实")
    await page.click(f"{card} button[type=submit]")
    await page.wait_for_function(
        "() => document.querySelector('#st-status').textContent.includes('“得分”')")
    await page.fill(f"{card} input[name=points]", str(unscored.max_points))
    await page.click(f"{card} button[type=submit]")
    await page.wait_for_selector(f"{card} p.score[data-points='{unscored.max_points}']",
                                 timeout=20_000)
    await in_both_languages(page, "the assessor's scoring sheet", "Your part")
    assert phone.problems == []
    await phone.context.close()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 60), "green").save(out, "JPEG")
    return out.getvalue()


async def score_all(demo: Demo, url: str) -> None:
    for indicator in SHEET.indicators:
        who = DEMO_ASSESSOR if indicator.scored_by == "assessor" else STREET_SUPERVISOR
        await api(demo, "PUT", f"{url}/scores", who, {
            "indicator": indicator.id, "points": indicator.max_points, "comment": "合格"})


async def test_a_new_round_from_evidence_to_published(browser: Browser, demo: Demo,
                                                      tmp_path: Any) -> None:
    compound = (await api(demo, "GET", "/api/stars/sheets", STREET_SUPERVISOR))[
        "sheets"][0]["compound"]
    street = await phone_as(browser, demo, STREET_SUPERVISOR)
    page = street.page
    await page.click("#stars-link")
    await page.wait_for_selector("#st-open")
    await page.fill("#st-compound", compound)
    await page.fill("#st-round", "2027")
    await page.click("#st-open button[type=submit]")
    await page.wait_for_selector("#st-sheet[data-round='2027'] #st-counts", timeout=30_000)
    await check_screen(page, "the street's new round")

    community = await phone_as(browser, demo, COMMUNITY_SUPERVISOR)
    cpage = community.page
    await cpage.evaluate("(h) => { location.hash = h; }", f"#/stars/{compound}/2027")
    card = "li[data-indicator='party-01']"
    await cpage.wait_for_selector(f"{card} form[data-form=evidence]", timeout=30_000)
    await check_screen(cpage, "the community's evidence sheet")
    photo = tmp_path / "evidence.jpg"
    photo.write_bytes(jpeg())
    await cpage.fill(f"{card} textarea", "已成立小区党支部，见批复")
    await cpage.set_input_files(f"{card} input[type=file]", str(photo))
    await cpage.wait_for_function(
        "() => /1/.test(document.querySelector(\"li[data-indicator='party-01'] .hint\")"
        ".textContent)")
    await cpage.click(f"{card} button[type=submit]")
    await cpage.wait_for_selector(f"{card} .evidence img", timeout=20_000)
    src = await cpage.get_attribute(f"{card} .evidence img", "src")
    shown = await cpage.evaluate("async (s) => (await fetch(s)).status", src)
    assert shown == 200
    await cpage.click("button[data-act=submit_evidence]")
    await cpage.wait_for_selector("#st-name [data-state=scoring]", timeout=20_000)
    await no_codes(cpage, "#st-sheet")

    url = f"/api/stars/sheets/{compound}/2027"
    await score_all(demo, url)
    await api(demo, "POST", f"{url}/acts", DEMO_ASSESSOR,
              {"act": "submit_scores", "state": "scoring"})
    await page.reload()
    await page.wait_for_selector("#st-review #st-share", timeout=30_000)
    await check_screen(page, "the street's review")
    award = SHEET.awards_fen[5]
    await page.fill("#st-share", f"{award * 3001 // 10000 / 100:.2f}")  # 30.01 %
    await page.click("button[data-act=approve]")
    await page.wait_for_function(
        "() => document.querySelector('#st-status').textContent.includes('“物业公司所得”')")
    await page.fill("#st-share", f"{award * 30 // 100 / 100:.2f}")
    await page.click("button[data-act=approve]")
    await page.wait_for_selector("#st-result[data-stars='5']", timeout=20_000)
    text = await page.text_content("#st-result") or ""
    assert "示范引领" in text and "15000.00" in text
    rounds = await page.eval_on_selector_all("#st-rounds li",
                                             "(xs) => xs.map(x => x.dataset.round)")
    assert rounds == ["2025", "2026", "2027"]
    history = await page.text_content("#st-history") or ""
    assert "审核通过并发布" in history and "孙磊" in history and STREET_SUPERVISOR not in history
    assert "Exemplary" in await in_both_languages(page, "the published result", "Rounds")
    assert street.problems == [] and community.problems == []
    for phone in (street, community):
        await phone.context.close()
