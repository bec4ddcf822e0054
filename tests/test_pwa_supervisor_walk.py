"""The community supervisor's walkthrough (issue 22) in real headless Chromium at 360 px, against
the demo city: chen.jing lands on her own community, drills down to a grid and back, finds a
person wang.fang's phone changed, opens it, approves it and goes back to the queue, and takes an
export from the screen, each link with its masking stated. Every screen passes axe-core (no
control without a name, contrast AA, targets of 44 px: WCAG 2.5.5 as axe's `target-size` with
44 px) and is photographed at 360 px (into `LINLI_SCREENSHOTS` too when set, which is how the
README's tour images are refreshed). axe-core comes from node_modules, for the tests only: it is
put into the page through the browser's own channel, never served by the app."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from test_pwa import GRID_A, Demo, Phone
from test_pwa import demo as demo  # the demo city's fixture (one per module)
from test_pwa_review import api, send, settled

pytestmark = pytest.mark.slow  # a real Chromium

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
COMMUNITY, COMMUNITY_NAME = "330802001001", "坊门街社区"
# WCAG 2.1 A and AA, and the target size (axe tags it WCAG 2.2 AA: 24 px) at the 44 px of
# WCAG 2.5.5 that the issue asks for, for a target and for its spacing.
AXE_RUN = """async () => {
  const result = await axe.run(document, {
    runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] },
    checks: { "target-size": { options: { minSize: 44 } },
      "target-offset": { options: { minOffset: 44 } } },
  });
  return result.violations.map((v) => ({ id: v.id, impact: v.impact,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary) }));
}"""


async def accessible(page: Page, screen: str) -> None:
    """axe-core finds nothing wrong with the screen as it is shown."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    violations: list[dict[str, Any]] = await page.evaluate(AXE_RUN)
    assert violations == [], (screen, violations)


async def shoot(page: Page, out: Path, name: str, top: str = "") -> None:
    """The screen at 360 px, with its CJK text (fonts-wqy-microhei, installed by the setup),
    scrolled to `top` when given."""
    await page.evaluate("async (top) => { document.activeElement?.blur(); "
                        "await document.fonts.ready; top ? document.querySelector(top)"
                        ".scrollIntoView() : window.scrollTo(0, 0); }", top)
    for folder in (out, *([Path(os.environ["LINLI_SCREENSHOTS"])]
                          if os.environ.get("LINLI_SCREENSHOTS") else [])):
        await page.screenshot(path=str(folder / f"{name}.png"), animations="disabled",
                              caret="hide")
    assert (out / f"{name}.png").stat().st_size > 10_000  # a screen, not a blank page


async def test_the_community_supervisor_walks_through(browser: Browser, demo: Demo,
                                                      tmp_path: Path) -> None:
    assert AXE.exists(), "npm ci installs axe-core (a devDependency) for this test"
    # A person wang.fang's phone added: a profile to review (issue 22, item 9).
    await api(demo, "GET", "/api/review?worker=nobody")  # the views built before the phone asks
    def a_person() -> dict[str, Any]:
        rows = demo.db(GRID_A).view("_all_docs", startkey="person:", endkey="person:\ufff0",
                                    limit=50, include_docs=True)
        return dict(list(rows)[-1].doc)

    stored = await demo.city.run(a_person)
    member = {"_id": stored["_id"].rsplit("-", 1)[0] + "-9", "type": "person",
              "schema_version": 1, "grid": GRID_A, "created_by": "wang.fang",
              "household": stored["household"], "name": "严福根", "relationship": "0",
              "sex": "1", "birth_year": 1951, "birth_month": 6,
              "id_number": "330602195106047697", "phone": "13905701234", "status": "present",
              "device_time": "2026-11-30T10:00:00+08:00"}
    rev = (await send(demo, [member]))[member["_id"]]

    phone = await Phone.open(browser, demo.url)
    page = phone.page
    await phone.login("chen.jing")
    # Lands on her own level: the community, by name.
    await page.click("#dashboard-link")
    await settled(page, "dashboard")
    assert COMMUNITY_NAME in await page.text_content("h2.view-title")
    assert await page.get_attribute("nav.crumbs [aria-current=page]", "data-level") == (
        "community")
    # Every export one tap away, its masking stated beside it.
    notes = await page.locator("section.exports li").evaluate_all(
        "(lis) => lis.map((li) => [li.querySelector('a').dataset.export,"
        " li.querySelector('a').getAttribute('href'),"
        " document.getElementById(li.querySelector('a').getAttribute('aria-describedby'))"
        ".textContent])")
    assert [n[0] for n in notes] == ["households", "persons", "review", "aggregates"]
    assert all(f"community={COMMUNITY}" in n[1] or f"code={COMMUNITY}" in n[1] for n in notes)
    assert dict((n[0], n[2]) for n in notes)["persons"] == "身份证号、联系电话已脱敏"
    await accessible(page, "dashboard")
    await shoot(page, tmp_path, "supervisor-dashboard")

    # Down to a grid, and back by the crumbs.
    await page.click(f"#dashboard a[data-level=grid][data-code='{GRID_A}']")
    await page.wait_for_function(
        "() => document.querySelector('nav.crumbs [aria-current=page]')?.dataset.level"
        " === 'grid' && document.getElementById('dashboard').getAttribute('aria-busy')"
        " === 'false'")
    assert GRID_A not in await page.text_content("h2.view-title")
    await accessible(page, "dashboard, grid")
    await page.click("nav.crumbs a[data-level=community]")
    await page.wait_for_function(
        "() => document.querySelector('nav.crumbs [aria-current=page]')?.dataset.level"
        " === 'community' && document.getElementById('dashboard').getAttribute('aria-busy')"
        " === 'false'")

    # The person in the review queue, by names; opened, approved, and back to the queue.
    await page.click("#review-link")
    await settled(page, "review")
    await page.select_option("#rf-type", "person")
    await page.click("#rf-apply")
    row = page.locator(f'#review-table tr[data-record="{member["_id"]}"]')
    await row.wait_for(timeout=30_000)
    text = await row.inner_text()
    assert "王芳" in text and "wang.fang" not in text and GRID_A not in text
    assert "person:" not in text and member["household"].split(":")[1] not in text
    await accessible(page, "review queue")
    await shoot(page, tmp_path, "supervisor-review", top="#review")
    await row.locator("th a").click()
    await settled(page, "review-record")
    about = await page.text_content("#record-about")
    assert "王芳" in about and GRID_A not in about and "person:" not in about
    fields = await page.locator("#record-fields").inner_text()
    assert "wang.fang" not in fields and "person:" not in fields and "household:" not in fields
    assert "2026/11/30 10:00" in await page.locator(
        "#record-fields dd[data-field=device_time]").inner_text()  # 北京时间, not ISO
    assert await page.locator("#record-fields dd[data-field=id_number]").inner_text() != (
        member["id_number"])  # masked
    await accessible(page, "review record")
    await shoot(page, tmp_path, "supervisor-record")
    await page.click("#rr-verdict-approved")
    await page.wait_for_function("() => (linli.reviewRecord || {}).state === 'approved'")
    states = await api(demo, "GET", f"/api/review?grid={GRID_A}&type=person&state=approved")
    assert [(r["record"], r["rev"]) for r in states["records"]] == [(member["_id"], rev)]
    await page.click("#back-to-queue")
    await settled(page, "review")

    # An export taken from the screen: the households of the community, masked.
    await page.click("#dashboard-link")
    await settled(page, "dashboard")
    async with page.expect_download() as started:
        await page.click("section.exports a[data-export=households]")
    download = await started.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert download.suggested_filename == "linli-households.xlsx"
    assert saved.stat().st_size > 10_000
    assert phone.problems == []
    await phone.close()
