"""The reports' kept rows (issue 16): the dashboard and the lists read rows kept from the
residents database's changes, one report at a time, never every report. After a random
sequence of reports and steps through the real app, the kept rows equal a full rebuild from
the store, and the dashboard at every level equals the one computed from every stored report
as before; a state written by another process reaches the dashboard through the feed; the
lists come a page at a time, each page read by the user's scopes, their paging parameters
refused as an attacker sends them."""

from __future__ import annotations

import base64
import datetime
import random
import time
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually
from test_reports import PREFIX, body, get, post, ready, step

from server.domain import reports as rules
from server.domain.figures import SMALL
from server.domain.scope import RESIDENTS_DB, User
from server.store.bulk import save_many
from server.sync.reports import ReportRows, Reports, parse_time
from server.web.keys import REPORTS

OPEN311 = "/api/open311/v2/requests.json"
MOVES = {"submitted": [("accepted", {})], "accepted": [("dispatched", {"assignee": "grid"})],
         "dispatched": [("in_progress", {})], "in_progress": [("done", {})],
         "done": [("closed", {"rating": 4}), ("in_progress", {})]}


async def stored_reports(city: City) -> list[dict[str, Any]]:
    """Every report and status document, as a full rebuild reads them."""
    def read() -> list[dict[str, Any]]:
        db = city.couch[RESIDENTS_DB]
        return [row.doc for row in db.view("_all_docs", include_docs=True)
                if row.id.startswith(("report:", "report_status:"))]
    return await city.run(read)


def rebuilt(docs: list[dict[str, Any]], store: Reports) -> ReportRows:
    fresh = ReportRows(store.categories, store.calendar)
    for doc in docs:
        fresh.take(doc)
    return fresh


def figures_as_before(docs: list[dict[str, Any]], store: Reports,
                      now: Any) -> list[rules.Figure]:
    """The dashboard's rows as it computed them from every stored report before the rows
    were kept: each report's status judged now (its overdue flags), its hours and rating."""
    statuses = {d["report"]: d for d in docs if d["_id"].startswith("report_status:")}
    out = []
    for doc in (d for d in docs if d["_id"].startswith("report:")):
        held = statuses.get(doc["_id"], {})
        judged = store.judged(doc, held, now)
        submitted, done = parse_time(doc["submitted_at"]), parse_time(held.get("done_at"))
        hours = (done - submitted).total_seconds() / 3600 if submitted and done else None
        out.append(rules.Figure(doc["street"], doc["community"], doc["grid"], doc["category"],
                                judged.get("state", "submitted"), bool(judged.get("overdue")),
                                hours, rules.counted_rating(doc, held)))
    return out


async def test_kept_rows_equal_a_full_rebuild_after_random_acts(client: TestClient,
                                                               city: City) -> None:
    town = await ready(client, city)
    rng = random.Random(16)
    states: dict[str, str] = {}
    for n in range(12):
        reporter = (town.ra, town.rb, town.rc)[n % 3]
        category = rng.choice(["sanitation", "noise", "other", "facility"])
        got, answer = await post(client, reporter, PREFIX, body(500 + n, category=category))
        assert got == 201, answer
        states[answer["report"]["_id"]] = reporter
    current = {rid: "submitted" for rid in states}
    for n in range(40):
        rid = rng.choice(sorted(states))
        reporter, state = states[rid], current[rid]
        if rng.random() < 0.2:  # a phone acting on a state it saw earlier, or a bad jump
            base, (to, more) = rng.choice(rules.STATES), rng.choice(list(MOVES.values()))[0]
        elif state in MOVES:
            base, (to, more) = state, rng.choice(MOVES[state])
        else:
            continue
        worker = town.worker1 if reporter != town.rc else town.worker3
        actor = reporter if (base, to) in (("done", "closed"), ("done", "in_progress")) \
            else worker
        got, answer = await step(client, actor, rid, base, to, 600 + n, **more)
        assert got < 500, answer
        if got == 201:
            current[rid] = answer["status"]["state"]
    store = client.app[REPORTS]
    assert {"closed", "done", "accepted"} & set(current.values())
    now = datetime.datetime.now(rules.SHANGHAI)
    docs = await stored_reports(city)
    fresh = rebuilt(docs, store)
    assert await eventually(lambda: _same(store.kept.rows, fresh.rows))
    assert {r.figure.state for r in store.kept.rows.values()} >= set(current.values())
    admin = User(town.admin, "admin")
    for level in rules.LEVELS:
        assert store.dashboard(admin, level, SMALL, now) == rules.dashboard(
            figures_as_before(docs, store, now), level, SMALL), level
    # ... and the same at a clock a month on, when the open reports are overdue
    later = now + datetime.timedelta(days=30)
    before = figures_as_before(docs, store, later)
    assert any(f.overdue for f in before)
    assert store.dashboard(admin, "city", SMALL, later) == rules.dashboard(
        before, "city", SMALL)
    assert store.kept.units == rebuilt(docs, store).units  # the tallies kept add up too


async def _same(kept: dict[str, rules.Kept], fresh: dict[str, rules.Kept]) -> bool:
    return kept == fresh


async def test_a_state_written_elsewhere_reaches_the_dashboard(client: TestClient,
                                                               city: City) -> None:
    """Reports and statuses written by another process (straight to the store, not through
    this app) reach the dashboard from the changes feed."""
    town = await ready(client, city)
    grid = "gfeedrows"
    # Ids of this test's own: the paging test below stores report:{n:016x} in the same city.
    reports = [{"_id": f"report:e1{n:014x}", "type": "report", "reporter": f"someone{n}",
                "grid": grid, "community": town.c1, "street": town.street, "assignee": "grid",
                "category": "other", "description": "d", "anonymous": False,
                "request": f"elsewhere-{n:04d}", "submitted_at": "2026-12-01T08:00:00+08:00"}
               for n in range(SMALL)]
    await city.run(lambda: save_many(city.couch[RESIDENTS_DB], reports))

    async def area(state: str) -> bool:
        got, board = await get(client, town.admin, f"{PREFIX}/dashboard?level=grid")
        found = [a for a in board["areas"] if a["code"] == grid]
        return got == 200 and bool(found) and found[0].get("by_state", {}).get(state) == SMALL
    assert await eventually(lambda: area("submitted"))
    statuses = [{"_id": f"report_status:e1{n:014x}", "type": "report_status",
                 "created_by": rules.SERVER, "report": f"report:e1{n:014x}",
                 "reporter": f"someone{n}", "state": "accepted", "round": 0, "conflicts": 0,
                 "assignee": "grid", "accepted_at": "2026-12-01T09:00:00+08:00",
                 "updated_at": "2026-12-01T09:00:00+08:00"} for n in range(SMALL)]
    await city.run(lambda: save_many(city.couch[RESIDENTS_DB], statuses))
    assert await eventually(lambda: area("accepted"))


async def all_pages(client: TestClient, user: str, size: int) -> list[str]:
    ids: list[str] = []
    cursor = ""
    while True:
        got, page = await get(client, user, f"{PREFIX}?limit={size}{cursor}")
        assert got == 200 and len(page["reports"]) <= size, page
        ids += [r["_id"] for r in page["reports"]]
        if page["next"] is None:
            return ids
        cursor = f"&cursor={page['next']}"


async def test_lists_come_a_page_at_a_time_from_the_users_scopes(client: TestClient,
                                                                 city: City) -> None:
    town = await ready(client, city)
    mine = []
    for n in range(7):
        got, answer = await post(client, (town.ra, town.rb)[n % 2], PREFIX, body(700 + n))
        assert got == 201, answer
        mine.append(answer["report"]["_id"])
    got, theirs = await post(client, town.rc, PREFIX, body(710))  # g3: not worker1's
    got, whole = await get(client, town.worker1, PREFIX)
    assert [r["_id"] for r in whole["reports"]] == mine[::-1] and whole["next"] is None
    assert await all_pages(client, town.worker1, 2) == mine[::-1]
    assert await all_pages(client, town.ra, 1) == mine[::2][::-1]  # a resident's own only
    assert theirs["report"]["_id"] not in str(await all_pages(client, town.worker1, 3))
    got, page = await get(client, town.worker1, OPEN311 + "?page_size=3&page=2")
    assert got == 200 and [r["service_request_id"] for r in page] == mine[::-1][3:6]
    got, page = await get(client, town.worker1, OPEN311 + "?page_size=3&page=9")
    assert got == 200 and page == []
    got, page = await get(client, town.worker1, OPEN311 + f"?service_request_id={mine[0]},"
                                                          f"{theirs['report']['_id']}")
    assert [r["service_request_id"] for r in page] == [mine[0]]

    # 5,000 reports of other grids: a worker's page reads its own, not the city's
    async def timed(path: str) -> float:
        started = time.monotonic()
        got, _ = await get(client, town.worker1, path)
        assert got == 200
        return time.monotonic() - started
    few = min([await timed(PREFIX) for _ in range(3)])
    few311 = min([await timed(OPEN311) for _ in range(3)])
    docs = [{"_id": f"report:{n:016x}", "type": "report", "reporter": f"someone{n}",
             "grid": "elsewhere", "community": "x", "street": "y", "assignee": "grid",
             "category": "other", "description": "d" * 400,
             "submitted_at": "2026-12-01T08:00:00+08:00"} for n in range(5000)]
    await city.run(lambda: save_many(city.couch[RESIDENTS_DB], docs))
    await eventually(lambda: _has(client, 5000 + 8))
    many = min([await timed(PREFIX) for _ in range(3)])
    many311 = min([await timed(OPEN311) for _ in range(3)])
    print("worker's list", round(few, 3), "->", round(many, 3), "s; open311",
          round(few311, 3), "->", round(many311, 3), "s")
    assert many < 3 * few + 0.05 and many311 < 3 * few311 + 0.05, (few, many, few311, many311)


async def _has(client: TestClient, count: int) -> bool:
    return len(client.app[REPORTS].kept.rows) >= count


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_paging_parameters_are_refused_as_an_attacker_sends_them(client: TestClient,
                                                                       city: City) -> None:
    town = await ready(client, city)
    got, answer = await post(client, town.ra, PREFIX, body(800))
    rid = answer["report"]["_id"]
    got, answer = await post(client, town.rb, PREFIX, body(801))
    other = answer["report"]["_id"]
    numbers = ["0", "-1", "abc", "1.5", " 1", "1e3", "+5", "0x10", "9" * 40, "٣", "",
               "%00", "%ED%A0%80", "1%0A"]
    for raw in numbers:
        for path, name in ((PREFIX, "limit"), (OPEN311, "page_size"), (OPEN311, "page")):
            resp = await client.get(f"{path}?{name}={raw}", headers=basic(town.ra))
            answer = await resp.json()
            assert resp.status == 400, (path, name, raw, answer)
            reason = answer["reason"] if path == PREFIX else answer[0]["description"]
            assert name in reason and reason.startswith("“"), (name, raw, reason)
    got, answer = await get(client, town.ra, f"{PREFIX}?limit=501")
    assert got == 400
    got, answer = await get(client, town.ra, f"{PREFIX}?limit=1&limit=2")
    assert got == 400
    got, answer = await get(client, town.ra, f"{PREFIX}?reporter={town.rb}")
    assert got == 400 and answer["reason"].startswith("只接受"), answer
    cursors = ["x", "!!!!", "a" * 5000, token("no separator"), token(f"yesterday\x1f{other}"),
               token("2026-12-01T08:00:00+08:00\x1f../_all_docs"),
               token(f"2026-12-01T08:00:00+08:00\x1f{other}\x1fmore"), "%ED%A0%80",
               base64.urlsafe_b64encode(b"\xff\xfe\x1f").decode(), "Zg==Zg=="]
    for raw in cursors:
        got, answer = await get(client, town.ra, f"{PREFIX}?cursor={raw}")
        assert got == 400 and "cursor" in answer["reason"], (raw, answer)
    # Another's report id in a cursor of the right shape names a place in the order only.
    later = token(f"2099-01-01T00:00:00+08:00\x1f{other}")
    got, answer = await get(client, town.ra, f"{PREFIX}?cursor={later}")
    assert got == 200 and [r["_id"] for r in answer["reports"]] == [rid], answer
    got, answer = await get(client, town.ra, OPEN311 + "?service_request_id=" + ",".join(
        f"report:{n:016x}" for n in range(101)))
    assert got == 400 and set(answer[0]) == {"code", "description"}
