"""The figures' fold (server/sync/figure_fold.py, server/sync/aggregates.py): the figures folded
record by record equal a count straight from the documents after edits, deletions, conflicting
revisions, verdicts and receipts; after a restart from the file's checkpoint; after the process
folding them is killed outright; and while a rebuild from nothing runs, the figures answered are
the last whole ones. No grid database holds a figure view any more."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import City, basic, eventually, visit, wait_for_user
from test_aggregates import CAMPAIGN, brute_force, raw_docs, receipts_of, scramble

from server.demo.city import iter_grids
from server.demo.seed import BATCH
from server.domain.scope import Directory, Grid, grid_db
from server.store import designs
from server.store.bulk import save_many
from server.sync.aggregates import Aggregates
from server.sync.figure_fold import FoldStore, seq_of, this_year
from server.web.keys import AGGREGATES, COUCH, RESIDENT_INDEX

ROOT = Path(__file__).resolve().parents[1]
FOLDER = """
import asyncio, sys
from pathlib import Path
import aiohttp
from server.domain.scope import Directory
from server.store.couch import CouchClient
from server.sync.aggregates import Aggregates

async def main(url: str, path: str, code: str) -> None:
    async with aiohttp.ClientSession() as session:
        figures = Aggregates(CouchClient(url, session), Directory(), sys.argv[4],
                             path=Path(path))
        while True:
            await figures.refresh([code])
            print("folded", flush=True)

asyncio.run(main(*sys.argv[1:4]))
"""


def records(code: str, tag: str, households: int) -> list[dict[str, Any]]:
    """Households, each with a present person and two visits, under ids of their own."""
    out: list[dict[str, Any]] = []
    for n in range(households):
        household = f"household:{code}-{tag}-{n}"
        base = {"schema_version": 1, "grid": code, "created_by": "w"}
        out += [{**base, "_id": household, "type": "household", "status": "active"},
                {**base, "_id": f"person:{code}-{tag}-{n}", "type": "person",
                 "household": household, "status": "present", "sex": "female",
                 "birth_year": 1950 + n % 60, "residence_status": "registered"}]
        out += [{**base, "_id": f"household_visit:{code}-{tag}-{n}-{k}",
                 "type": "household_visit", "household": household,
                 "visited_on": f"2026-11-{10 + k:02d}",
                 "outcome": ("nobody_home", "completed")[(n + k) % 2]} for k in range(2)]
    return out


def write(city: City, code: str, tag: str, households: int) -> None:
    docs = records(code, tag, households)
    for start in range(0, len(docs), 50):
        save_many(city.db(code), docs[start:start + 50])


def load(city: City, code: str, households: int, seed: int) -> None:
    generated = next(iter_grids(households, seed))
    docs = [{**d, "grid": code} for d in (
        generated.buildings + generated.households + generated.persons + generated.visits
        + generated.census + generated.screenings)]
    db = city.db(code)
    for start in range(0, len(docs), BATCH):
        save_many(db, docs[start:start + BATCH])


async def expected(city: City, code: str) -> dict[str, int]:
    docs = await city.run(raw_docs, city.db(code))
    return dict(brute_force(docs, await city.run(receipts_of, city.couch), grid_db(code)))


def test_no_grid_database_holds_a_figure_view() -> None:
    [linli] = designs.design_docs(designs.GRID)
    assert set(linli["views"]) .isdisjoint({
        "households_by_status", "visits_by_household", "census_by_campaign",
        "persons_by_sex_birth_status", "screenings_by_day", "verdicts_latest"})
    assert designs.HELD_BY[designs.RECEIPTS] == ("receipts",)


@pytest.mark.slow  # a few hundred records, folded three times
async def test_the_fold_restarts_from_its_checkpoint(client: Any, city: City,
                                                     tmp_path: Path) -> None:
    rng = random.Random(21)
    code = await city.grid()
    await city.run(load, city, code, 120, 5)
    path = tmp_path / "figures.sqlite3"
    first = Aggregates(client.app[COUCH], Directory(), CAMPAIGN, path=path)
    await first.refresh([code])
    assert dict(first.grids[code][1]) == await expected(city, code)
    assert first.grids[code][1]["persons"] > 0

    # Edits, deletions, conflicting revisions, verdicts and receipts, then a restart.
    await city.run(lambda: scramble(city.db(code), rng, code, city.couch["linli-receipts"]))
    await asyncio.to_thread(first.fold.close)
    again = Aggregates(client.app[COUCH], Directory(), CAMPAIGN, path=path)
    await again.load()
    assert again.grids[code] == first.grids[code]  # the checkpoint's figures, from the file
    await again.refresh([code])
    assert again.changes_read == 1  # from the checkpoint on: one page, not the whole grid
    figures = dict(again.grids[code][1])
    assert figures == await expected(city, code)
    assert figures["review.reviewed"] > 0 and figures["review.timed"] > 0
    # The kept records counted again give the same figures.
    assert dict(await asyncio.to_thread(again.fold.recount, grid_db(code), this_year())) \
        == figures

    # A rebuild from nothing: the figures answered meanwhile are the last whole ones.
    again.directory.grids[code] = Grid(code=code, name=code)
    before = again.grids[code]
    rebuild = asyncio.create_task(again.rebuild())
    seen = []
    while not rebuild.done():
        seen.append(again.grids.get(code))
        await asyncio.sleep(0.001)
    await rebuild
    assert all(s == before for s in seen)
    assert dict(again.grids[code][1]) == figures
    assert path.exists() and not path.with_name(path.name + ".new").exists()
    await asyncio.to_thread(again.fold.close)
    third = Aggregates(client.app[COUCH], Directory(), CAMPAIGN, path=path)
    await third.load()
    assert dict(third.grids[code][1]) == figures


@pytest.mark.slow  # a process killed while it folds a grid being written to
async def test_the_fold_survives_a_kill(client: Any, city: City, tmp_path: Path,
                                        store: Any) -> None:
    code = await city.grid()
    path = tmp_path / "figures.sqlite3"
    folder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FOLDER, store.url, str(path), code, CAMPAIGN, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert folder.stdout is not None
    try:
        await asyncio.wait_for(folder.stdout.readline(), 60)
        for n in range(4):  # records arriving while it folds them
            await city.run(write, city, code, f"during{n}", 30)
        await asyncio.wait_for(folder.stdout.readline(), 60)
    finally:
        folder.send_signal(signal.SIGKILL)
        await folder.wait()
    await city.run(write, city, code, "after", 10)  # and more after the kill
    after = Aggregates(client.app[COUCH], Directory(), CAMPAIGN, path=path)
    await after.refresh([code])
    assert dict(after.grids[code][1]) == await expected(city, code)
    assert after.grids[code][1]["households"] == 130


async def test_the_gateway_s_writes_are_folded_from_the_index_s_reads(client: Any,
                                                                     city: City) -> None:
    """The residents' index reads every change of a grid the gateway writes to; the fold takes
    them from there instead of asking the store for them again."""
    code = await city.grid()
    worker = await city.user("worker", grids=[code])
    await wait_for_user(client, worker)
    figures = client.app[AGGREGATES]

    async def push(docs: list[dict[str, Any]]) -> None:
        resp = await client.post(f"/couch/{grid_db(code)}/_bulk_docs", json={"docs": docs},
                                 headers=basic(worker))
        assert resp.status == 201 and all("error" not in r for r in await resp.json())

    await push([visit(code, worker, n, household=f"household:{code}-{n % 7}",
                      outcome=("completed", "nobody_home")[n % 2]) for n in range(20)])
    figures.refresh_seconds = 3600  # no background fold: this test folds when it wants
    await figures.grid_figures(code)  # from nothing: its own read
    read, ridden = figures.changes_read, figures.riding
    more = [visit(code, worker, f"later{n}", household=f"household:{code}-{n % 9}",
                  visited_on="2026-11-25") for n in range(10)]
    await push(more)
    db = grid_db(code)
    stored = seq_of((await client.app[COUCH].get(f"/{db}"))["update_seq"])
    index = client.app[RESIDENT_INDEX]
    await eventually(lambda: (seq_of(index.since.get(db)) or 0) >= (stored or 0), 30,
                     what="the residents' index read the new records")
    await figures.grid_figures(code)
    assert figures.changes_read == read, "read from the store again"
    assert figures.riding >= ridden + len(more)
    assert dict(figures.grids[code][1]) == await expected(city, code)
    assert figures.grids[code][1]["visits.total"] == 30
    assert figures.grids[code][1]["visits.households_visited"] == 9


def change(seq: int, doc: dict[str, Any]) -> dict[str, Any]:
    """A row of a changes feed read with its documents, as the store gives it."""
    doc = {"_rev": f"1-{seq:032x}", **doc}
    row = {"seq": seq, "id": doc["_id"], "changes": [{"rev": doc["_rev"]}], "doc": doc}
    return {**row, "deleted": True} if doc.get("_deleted") else row


def test_a_record_changed_twice_in_one_page_counts_once() -> None:
    """A page is folded unit by unit (a household's visits counted once before it and once
    after it): a visit edited then deleted, another created then edited, a person moved out and
    a household edited twice, all in one page, give the figures of the final documents."""
    db, year = grid_db("330102001001001"), this_year()
    base = {"schema_version": 1, "grid": "g", "created_by": "w"}
    home = "household:g-1"

    def seen(n: int, on: str, outcome: str, **more: Any) -> dict[str, Any]:
        return {**base, "_id": f"household_visit:g-{n}", "type": "household_visit",
                "household": home, "visited_on": on, "outcome": outcome, **more}

    household = {**base, "_id": home, "type": "household", "status": "active"}
    person = {**base, "_id": "person:g-1", "type": "person", "household": home,
              "status": "present", "sex": "male", "birth_year": 1960,
              "residence_status": "registered"}
    first = [household, person, seen(1, "2026-11-01", "nobody_home"),
             seen(2, "2026-11-02", "refused")]
    fold = FoldStore(None, CAMPAIGN)
    folded = fold.fold(db, 0, [change(n + 1, d) for n, d in enumerate(first)], 4, year)
    assert folded is not None and folded[1]["visits.latest.refused"] == 1
    final = [{**household, "status": "vacant"}, seen(2, "2026-11-02", "refused"),
             seen(3, "2026-11-05", "completed")]
    page = [change(5, seen(1, "2026-11-30", "completed")),
            change(6, {"_id": "household_visit:g-1", "_deleted": True}),
            change(7, seen(3, "2026-11-03", "moved")),
            change(8, final[2]),
            change(9, {**person, "status": "moved_out"}),
            change(10, {**household, "status": "moved_out"}),
            change(11, final[0])]
    folded = fold.fold(db, 4, page, 11, year)
    assert folded is not None
    fresh = FoldStore(None, CAMPAIGN)
    expected = fresh.fold(db, 0, [change(n + 1, d) for n, d in enumerate(final)], 3, year)
    assert expected is not None
    assert folded[1] == expected[1] == fold.recount(db, year)
    assert dict(folded[1]) == {"households": 1, "households.status.vacant": 1,
                               "visits.total": 2, "visits.households_visited": 1,
                               "visits.latest.completed": 1, "visits.covered": 1}


async def test_a_page_touching_a_unit_many_times_equals_a_recount(client: Any,
                                                                  city: City) -> None:
    """Two visits of one household and a pair of verdicts on one record in the same page, then
    a page that edits, deletes and adds to both: each page's figures equal a count from the
    documents."""
    code = await city.grid()
    db = city.db(code)
    figures = Aggregates(client.app[COUCH], Directory(), CAMPAIGN)
    base = {"schema_version": 1, "grid": code, "created_by": "w"}
    home = f"household:{code}-batch"
    screening = {**base, "_id": f"screening:{code}-batch", "type": "screening",
                 "household": home, "screened_on": "2026-11-20", "test_result": "negative"}

    def seen(n: int, on: str, outcome: str) -> dict[str, Any]:
        return {**base, "_id": f"household_visit:{code}-batch-{n}", "type": "household_visit",
                "household": home, "visited_on": on, "outcome": outcome}

    def judged(n: int, decision: str) -> dict[str, Any]:
        return {**base, "_id": f"verdict:{code}-batch-{n}", "type": "verdict",
                "record": screening["_id"], "record_rev": "1-x", "decision": decision,
                "created_by": "sup"}

    def receive(written: list[tuple[bool, str, str]], at: str) -> None:
        city.couch["linli-receipts"].resource.post_json("_bulk_docs", body={"docs": [
            {"type": "receipt", "db": db.name, "user": "w", "received_at": at,
             "revs": [[doc_id, rev]]} for _ok, doc_id, rev in written]})

    def first_page() -> None:
        written = save_many(db, [{**base, "_id": home, "type": "household", "status": "active"},
                                 screening])
        receive(written, "2026-11-20T02:00:00.000+00:00")
        save_many(db, [seen(1, "2026-11-01", "nobody_home"), seen(2, "2026-11-03", "refused")])
        receive(save_many(db, [judged(1, "approved"), judged(2, "has_issues")]),
                "2026-11-20T05:00:00.000+00:00")

    await city.run(first_page)
    await figures.refresh([code])
    first = dict(figures.grids[code][1])
    assert first == await expected(city, code)
    assert first["visits.total"] == 2 and first["visits.latest.refused"] == 1
    assert first["review.reviewed"] == 1 and first["review.timed"] == 1

    def second_page() -> None:
        visits = {d["_id"]: d for d in raw_docs(db) if d["type"] == "household_visit"}
        verdicts = {d["_id"]: d for d in raw_docs(db) if d["type"] == "verdict"}
        one, two = (visits[seen(n, "", "")["_id"]] for n in (1, 2))
        save_many(db, [{**one, "visited_on": "2026-11-09", "outcome": "completed"},
                       {**two, "_deleted": True}, seen(3, "2026-11-05", "moved")])
        gone = verdicts[judged(1, "")["_id"]]
        save_many(db, [{**gone, "_deleted": True}])
        receive(save_many(db, [judged(3, "rejected")]), "2026-11-21T05:00:00.000+00:00")

    read = figures.changes_read
    await city.run(second_page)
    await figures.refresh([code])
    assert figures.changes_read == read + 1  # one page
    second = dict(figures.grids[code][1])
    assert second == await expected(city, code)
    assert second["visits.total"] == 2 and second["visits.latest.completed"] == 1
    assert "visits.latest.refused" not in second
    assert second["review.reviewed"] == 1 and second["review.rejected"] == 1

    def last_page() -> None:
        save_many(db, [{**d, "_deleted": True} for d in raw_docs(db)
                       if d["type"] in ("household_visit", "verdict")])

    await city.run(last_page)
    await figures.refresh([code])
    last = dict(figures.grids[code][1])
    assert last == await expected(city, code)
    assert not {k for k in last if k.startswith(("visits.", "review."))}


async def test_an_admin_rebuilds_the_figures_while_the_last_ones_answer(client: Any,
                                                                        city: City) -> None:
    """POST /api/aggregates/rebuild (admins only) folds every figure again from nothing in the
    running server: the dashboard answers the last figures meanwhile, a second start is
    refused while it runs, GET /api/health shows its progress, and the rebuilt figures equal a
    count from the documents."""
    code = await city.grid(community="339999021001", street="339999021")
    await city.run(load, city, code, 120, 21)
    admin = await city.user("admin")
    boss = await city.user("supervisor", communities=["339999021001"])
    await wait_for_user(client, admin)
    await wait_for_user(client, boss)
    figures = client.app[AGGREGATES]
    asked = f"/api/aggregates?level=grid&code={code}"
    resp = await client.get(asked, headers=basic(boss))
    assert resp.status == 200
    before = (await resp.json())["figures"]
    assert before == await expected(city, code) and before["households"] == 120

    assert (await client.post("/api/aggregates/rebuild")).status == 401
    resp = await client.post("/api/aggregates/rebuild", headers=basic(boss))
    assert resp.status == 403
    reason = (await resp.json())["reason"]
    assert "管理员" in reason and "admin" in reason
    assert not figures.rebuilding

    old = figures.fold
    async with figures.receipts_lock:  # the rebuild waits before its swap: it runs
        resp = await client.post("/api/aggregates/rebuild", headers=basic(admin))
        assert resp.status == 202, await resp.text()
        assert (await resp.json())["rebuild"]["running"] is True
        again = await client.post("/api/aggregates/rebuild", headers=basic(admin))
        assert again.status == 409
        assert "重建" in (await again.json())["reason"]
        health = await (await client.get("/api/health", headers=basic(admin))).json()
        assert health["tasks"]["aggregates"]["rebuild"]["running"] is True
        public = await (await client.get("/api/health")).json()
        assert set(public["tasks"]["aggregates"]) == {"status"}
        resp = await client.get(asked, headers=basic(boss))
        assert (await resp.json())["figures"] == before
    seen = []
    while figures.rebuilding:
        resp = await client.get(asked, headers=basic(boss))
        seen.append((await resp.json())["figures"])
        await asyncio.sleep(0.01)
    assert figures.fold is not old  # the new file took the old one's place
    assert all(s == before for s in seen)
    resp = await client.get(asked, headers=basic(boss))
    assert (await resp.json())["figures"] == await expected(city, code)
    progress = (await (await client.get("/api/health", headers=basic(admin))).json())[
        "tasks"]["aggregates"]["rebuild"]
    assert progress["running"] is False and "failed" not in progress
    assert progress["grids_done"] == progress["grids"] >= 1
    assert progress["changes"] >= await city.records(code) and progress["seconds"] >= 0


def test_a_full_disk_leaves_the_last_checkpoint_and_says_so(tmp_path: Path) -> None:
    """The figures' file fills its disk mid-page (SQLite's page limit stands in for a full
    tmpfs): the fold raises the disk's own error, not "no transaction is active" from a second
    rollback, keeps the last checkpoint's figures, and once there is room folds on exactly."""
    import sqlite3

    db, year = grid_db("330102001001001"), this_year()
    base = {"schema_version": 1, "grid": "g", "created_by": "w"}
    docs = [{**base, "_id": f"household:g-{n}", "type": "household", "status": "active",
             "note": "x" * 2000} for n in range(400)]
    fold = FoldStore(tmp_path / "figures.sqlite3", CAMPAIGN)
    first = fold.fold(db, 0, [change(1, docs[0])], 1, year)
    assert first is not None and first[1]["households"] == 1
    pages = fold.db.execute("PRAGMA page_count").fetchone()[0]
    fold.db.execute(f"PRAGMA max_page_count = {pages + 2}")
    page = [change(n + 2, doc) for n, doc in enumerate(docs[1:])]
    with pytest.raises(sqlite3.OperationalError, match="full"):
        fold.fold(db, 1, page, 400, year)
    assert not fold.db.in_transaction
    assert fold.applied(db) == 1 and fold.recount(db, year)["households"] == 1
    fold.db.execute("PRAGMA max_page_count = 1073741823")
    folded = fold.fold(db, 1, page, 400, year)
    assert folded is not None and folded[1]["households"] == 400 == fold.recount(db, year)[
        "households"]
    fold.close()
