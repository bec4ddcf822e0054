"""Aggregates (server/sync/aggregates.py, GET /api/aggregates): on grids of the synthetic city after
random edits, deletions and conflicts, every figure equals a brute-force count over the raw
documents, and small counts of grids outside a user's scope are withheld."""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import couchdb
import pytest
from conftest import City, basic, eventually, wait_for_user

from server.admin import directory
from server.demo.city import iter_grids
from server.demo.seed import BATCH
from server.domain.figures import (
    REVIEW_HOURS,
    SMALL,
    VISITED,
    age_band,
    hours_bucket,
    median_bucket,
)
from server.domain.scope import Directory
from server.store.bulk import save_many
from server.sync import aggregates
from server.web.keys import AGGREGATES, COUCH, DIRECTORY

STREET = "339999001"
COMMUNITY = "339999001001"
CAMPAIGN = "2026-census-pilot"


def hours_to_review(docs: list[dict[str, Any]], receipts: Sequence[dict[str, Any]],
                    db: str) -> list[float]:
    """Each reviewed record's hours from its first receipt to its first verdict, straight from
    the documents (records never received, or judged before, have none)."""
    first_receipt: dict[str, datetime.datetime] = {}
    received: dict[tuple[str, str], datetime.datetime] = {}
    for receipt in receipts:
        if receipt.get("db") != db:
            continue
        at = datetime.datetime.fromisoformat(receipt["received_at"])
        for record, rev in receipt["revs"]:
            first_receipt[record] = min(at, first_receipt.get(record, at))
            received[(record, rev)] = min(at, received.get((record, rev), at))
    # A verdict's time is its receipt by the server, never the phone's device_time.
    first_verdict: dict[str, datetime.datetime] = {}
    for doc in docs:
        if doc.get("type") == "verdict" and (doc["_id"], doc["_rev"]) in received:
            at = received[(doc["_id"], doc["_rev"])]
            first_verdict[doc["record"]] = min(at, first_verdict.get(doc["record"], at))
    return [(verdict - first_receipt[record]).total_seconds() / 3600
            for record, verdict in first_verdict.items()
            if record in first_receipt and verdict >= first_receipt[record]]


def brute_force(docs: list[dict[str, Any]], receipts: Sequence[dict[str, Any]] = (),
                db: str = "") -> Counter[str]:
    """The figures counted straight from the documents, without any view."""
    out: Counter[str] = Counter()
    for hours in hours_to_review(docs, receipts, db):
        bucket = next((f"review.hours.le_{edge}" for edge in REVIEW_HOURS
                       if hours <= edge), f"review.hours.over_{REVIEW_HOURS[-1]}")
        out[bucket] += 1
        out["review.timed"] += 1
    year = datetime.date.today().year
    visits: dict[str, tuple[tuple[str, str, str], str]] = {}
    verdicts: dict[str, tuple[str, str]] = {}
    received = {(rev[0], rev[1]): r["received_at"] for r in receipts if r.get("db") == db
                for rev in r["revs"]}
    for doc in docs:
        kind = doc.get("type")
        if kind == "household":
            out["households"] += 1
            out[f"households.status.{doc.get('status', '')}"] += 1
        elif kind == "household_visit":
            out["visits.total"] += 1
            order = (doc["visited_on"], doc.get("device_time", ""), doc["_id"])
            if doc["household"] not in visits or order > visits[doc["household"]][0]:
                visits[doc["household"]] = (order, doc["outcome"])
        elif kind == "census_household" and doc.get("campaign") == CAMPAIGN:
            out["census.enumerated"] += 1
        elif kind == "person" and doc.get("status") == "present":
            out["persons"] += 1
            out[f"persons.sex.{doc['sex']}"] += 1
            out[f"persons.age.{age_band(doc['birth_year'], year)}"] += 1
            out[f"persons.registration.{doc.get('residence_status') or 'unknown'}"] += 1
        elif kind == "screening":
            out["screenings"] += 1
            out[f"screenings.day.{doc['screened_on']}"] += 1
            out[f"screenings.result.{doc.get('test_result') or 'unknown'}"] += 1
            out[f"screenings.health_code.{doc.get('health_code') or 'unknown'}"] += 1
            out[f"screenings.risk.{doc.get('risk_category') or 'unknown'}"] += 1
        elif kind == "verdict":  # the one the server received last
            stamp = (received[(doc["_id"], doc["_rev"])], doc["decision"])
            if doc["record"] not in verdicts or stamp > verdicts[doc["record"]]:
                verdicts[doc["record"]] = stamp
        elif kind == "resolution" and doc.get("status") == "open":
            out["conflicts.open"] += 1
    out["visits.households_visited"] = len(visits)
    for _order, outcome in visits.values():
        out[f"visits.latest.{outcome}"] += 1
        if outcome in VISITED:
            out["visits.covered"] += 1
    for _stamp, decision in verdicts.values():
        out[f"review.{decision}"] += 1
    out["review.reviewed"] = len(verdicts)
    return +out


def raw_docs(db: couchdb.Database) -> list[dict[str, Any]]:
    return [dict(row.doc) for row in db.view("_all_docs", include_docs=True)
            if not row.id.startswith("_design/")]


def scramble(db: couchdb.Database, rng: random.Random, grid: str,
             receipts_db: couchdb.Database) -> None:
    """Random edits, deletions and conflicting revisions, as a day of syncing leaves them."""
    docs = raw_docs(db)
    edits = []
    for doc in rng.sample(docs, 60):
        if doc["type"] == "household":
            doc["status"] = rng.choice(["active", "vacant", "moved_out"])
        elif doc["type"] == "household_visit":
            doc["outcome"] = rng.choice(["completed", "nobody_home", "refused"])
        elif doc["type"] == "person":
            doc["status"] = rng.choice(["present", "moved_out"])
        elif doc["type"] == "screening":
            doc["health_code"] = rng.choice(["green", "yellow", "red"])
        edits.append(doc)
    save_many(db, edits)
    rest = [d for d in raw_docs(db) if d["type"] in ("household_visit", "screening", "person")]
    save_many(db, [{**d, "_deleted": True} for d in rng.sample(rest, 25)])
    branches = []
    for doc in rng.sample([d for d in raw_docs(db) if d["type"] == "household_visit"], 15):
        generation = int(doc["_rev"].split("-")[0]) + 1
        digest = f"{rng.getrandbits(128):032x}"
        branches.append({**doc, "outcome": "refused", "_rev": f"{generation}-{digest}",
                         "_revisions": {"start": generation,
                                        "ids": [digest, doc["_rev"].split("-", 1)[1]]}})
    save_many(db, branches, new_edits=False)
    verdicts = [{"_id": f"verdict:{d['_id']}:{n}", "type": "verdict", "schema_version": 1,
                 "grid": grid, "created_by": "sup", "record": d["_id"],
                 "record_rev": d["_rev"], "decision": rng.choice(["approved", "has_issues"]),
                 "comment": "核对",
                 "device_time": f"2026-11-{20 + n // 3:02d}T{8 + n:02d}:00:00+08:00"}
                for n, d in enumerate(rng.sample(rest[:40], 12))]
    later = {**verdicts[0], "_id": verdicts[0]["_id"] + "b", "decision": "rejected",
             "device_time": "2026-11-29T10:00:00+08:00"}
    verdicts[0]["device_time"] = "2099-12-31T10:00:00+08:00"  # a phone's clock: ignored
    written = save_many(db, [*verdicts, later])
    # The verdicts' receipts, as the gateway writes them: the server's times, which the
    # device times above follow except for the phone that says 2099.
    judged = [{"type": "receipt", "db": db.name, "user": "sup",
               "received_at": datetime.datetime.fromisoformat(
                   f"2026-11-{20 + n // 3:02d}T{8 + n:02d}:00:00+08:00").astimezone(
                   datetime.UTC).isoformat(timespec="milliseconds"),
               "revs": [[doc_id, doc_rev]]}
              for n, (_ok, doc_id, doc_rev) in enumerate(written)]
    judged[-1]["received_at"] = "2026-11-29T02:00:00.000+00:00"
    # Receipts, as the gateway writes them: most judged records received hours or weeks before
    # their first verdict (some twice, the first receipt counting), some after it, some never.
    start = datetime.datetime(2026, 11, 20, 10, tzinfo=datetime.UTC)
    receipts = []
    for doc in rest[:40]:
        if rng.random() < 0.15:
            continue
        received = start - datetime.timedelta(hours=rng.choice([0.5, 3, 20, 50, 200, 900, 2000])
                                              * rng.random())
        for at in (received, received + datetime.timedelta(days=rng.randint(1, 20))):
            receipts.append({"type": "receipt", "db": db.name, "user": "w",
                             "received_at": at.isoformat(timespec="milliseconds"),
                             "revs": [[doc["_id"], doc["_rev"]]]})
    # Receipts carry no id (the store gives one) and are not read back from this list.
    receipts_db.resource.post_json("_bulk_docs", body={"docs": receipts + judged})


def receipts_of(couch: couchdb.Server) -> list[dict[str, Any]]:
    return [dict(row.doc) for row in couch["linli-receipts"].view("_all_docs", include_docs=True)
            if row.doc.get("type") == "receipt"]


@pytest.mark.slow  # 2,700 households counted twice
async def test_figures_equal_a_brute_force_count(client: Any, city: City) -> None:
    rng = random.Random(2026)
    codes = [await city.grid(community=COMMUNITY, street=STREET) for _ in range(3)]

    def load(code: str, generated: Any) -> None:
        db = city.db(code)
        docs = [{**d, "grid": code} for d in (
            generated.buildings + generated.households + generated.persons + generated.visits
            + generated.census + generated.screenings)]
        for start in range(0, len(docs), BATCH):
            save_many(db, docs[start:start + BATCH])
        scramble(db, rng, code, city.couch["linli-receipts"])

    for n, (code, generated) in enumerate(zip(codes, iter_grids(900, 11), strict=False)):
        await city.run(load, code, generated)
        assert n < 3
    boss = await city.user("supervisor", communities=[COMMUNITY])
    stranger = await city.user("supervisor", communities=["339999001002"])
    await wait_for_user(client, boss)
    await wait_for_user(client, stranger)
    await client.app[AGGREGATES].refresh(codes)

    resp = await client.get(f"/api/aggregates?level=community&code={COMMUNITY}",
                            headers=basic(boss))
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    expected_total: Counter[str] = Counter()
    children = {c["code"]: c for c in report["children"]}
    assert set(children) == set(codes)
    receipts = await city.run(receipts_of, city.couch)
    raw = {code: await city.run(raw_docs, city.db(code)) for code in codes}
    hours: list[float] = []
    for code in codes:
        expected = brute_force(raw[code], receipts, f"grid-{code}")
        hours += hours_to_review(raw[code], receipts, f"grid-{code}")
        expected_total.update(expected)
        assert children[code]["figures"] == dict(expected), code
        assert "suppressed" not in children[code]
    assert report["figures"] == dict(expected_total)
    assert report["figures"]["households"] > 0 and report["figures"]["persons"] > 0
    # The median time to review lies in the bucket the rolled-up histograms give.
    assert report["figures"]["review.timed"] == len(hours) > 10
    median = sorted(hours)[(len(hours) + 1) // 2 - 1]
    bucket = report["time_to_review"]
    assert bucket["records"] == len(hours)
    assert bucket["from_hours"] < median and (bucket["to_hours"] is None
                                              or median <= bucket["to_hours"]), (median, bucket)
    for code in codes:
        mine = sorted(hours_to_review(raw[code], receipts, f"grid-{code}"))
        if mine:
            m = mine[(len(mine) + 1) // 2 - 1]
            got = children[code]["time_to_review"]
            assert got["from_hours"] < m and (got["to_hours"] is None or m <= got["to_hours"])

    # Up the hierarchy, the same totals.
    resp = await client.get(f"/api/aggregates?level=street&code={STREET}", headers=basic(boss))
    [community] = [c for c in (await resp.json())["children"] if c["code"] == COMMUNITY]
    assert community["figures"] == dict(expected_total)

    # Another community's supervisor sees the figures, but not small counts of these grids.
    resp = await client.get(f"/api/aggregates?level=community&code={COMMUNITY}",
                            headers=basic(stranger))
    seen = await resp.json()
    assert seen["figures"] == dict(expected_total)  # community level: shown
    for child in seen["children"]:
        assert all(v >= SMALL for v in child["figures"].values())
        full = children[child["code"]]["figures"]
        # The small counts and the cells that would give them back (tests/
        # test_holes_suppression.py checks that none can be worked out).
        hidden = set(child["suppressed"])
        assert hidden >= {k for k, v in full.items() if v < SMALL}
        assert child["figures"] == {k: v for k, v in full.items() if k not in hidden}
    assert any(child["suppressed"] for child in seen["children"])

    # A new record appears in the figures once written through the gateway.
    worker = await city.user("worker", grids=[codes[0]])
    await wait_for_user(client, worker)
    visit = {"_id": f"household_visit:{codes[0]}-new", "type": "household_visit",
             "schema_version": 1, "grid": codes[0], "created_by": worker,
             "household": f"household:{codes[0]}-new", "visited_on": "2026-11-26",
             "outcome": "completed"}
    resp = await client.post(f"/couch/grid-{codes[0]}/_bulk_docs", json={"docs": [visit]},
                             headers=basic(worker))
    assert resp.status == 201
    resp = await client.get(f"/api/aggregates?level=grid&code={codes[0]}", headers=basic(boss))
    figures = (await resp.json())["figures"]
    assert figures["visits.total"] == children[codes[0]]["figures"]["visits.total"] + 1

    # Only the changes since are read again (one page at most: none when the residents' index
    # read them first and the fold took them from it), and the figures stay whole.
    kept = client.app[AGGREGATES]
    reads = kept.changes_read
    resp = await client.post(f"/couch/grid-{codes[0]}/_bulk_docs", json={"docs": [
        {**visit, "_id": f"household_visit:{codes[0]}-newer", "outcome": "refused"}]},
        headers=basic(worker))
    assert resp.status == 201
    await kept.refresh([codes[0]])
    assert kept.changes_read - reads <= 1
    expected = brute_force(await city.run(raw_docs, city.db(codes[0])),
                           await city.run(receipts_of, city.couch), f"grid-{codes[0]}")
    assert dict(kept.grids[codes[0]][1]) == dict(expected)


async def test_aggregates_are_for_supervisors_and_say_what_is_wrong(client: Any,
                                                                    city: City) -> None:
    code = await city.grid(community=COMMUNITY, street=STREET)
    worker = await city.user("worker", grids=[code])
    boss = await city.user("supervisor", communities=[COMMUNITY])
    await wait_for_user(client, worker)
    await wait_for_user(client, boss)
    assert (await client.get("/api/aggregates", headers=basic(worker))).status == 403
    assert (await client.get("/api/aggregates")).status == 401
    resp = await client.get("/api/aggregates?level=planet", headers=basic(boss))
    assert resp.status == 400 and "level" in (await resp.json())["reason"]
    resp = await client.get("/api/aggregates?level=street&code=000", headers=basic(boss))
    assert resp.status == 404
    resp = await client.get("/api/aggregates?level=city", headers=basic(boss))
    assert resp.status == 200 and (await resp.json())["level"] == "city"


async def test_the_api_is_described_by_the_openapi_document(client: Any) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    document = await resp.json()
    assert document["openapi"].startswith("3.1")
    routes = {(r.method.lower(), r.resource.canonical) for r in client.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/")
              and r.method != "HEAD"}
    described = {(method, path) for path, item in document["paths"].items()
                 for method in item}
    assert routes == described


async def test_areas_have_their_names_and_parents(client: Any, city: City) -> None:
    street, community = "339998001", "339998001001"
    for level, area, name in [("district", "339998", "测试区"), ("street", street, "测试街道"),
                              ("community", community, "测试社区")]:
        await city.run(directory.add_area, city.couch, level, area, name)
    code = await city.grid(community=community, street=street)
    boss = await city.user("supervisor", streets=[street])
    await wait_for_user(client, boss)
    names = client.app[DIRECTORY].area_names
    await eventually(lambda: names.get(("community", community)) == "测试社区")

    resp = await client.get("/api/aggregates?level=district&code=339998", headers=basic(boss))
    report = await resp.json()
    assert report["name"] == "测试区" and report["parents"] == [{"level": "city", "code": ""}]
    assert [(c["code"], c["name"]) for c in report["children"]] == [(street, "测试街道")]
    resp = await client.get(f"/api/aggregates?level=street&code={street}", headers=basic(boss))
    assert [(c["code"], c["name"]) for c in (await resp.json())["children"]] == [
        (community, "测试社区")]
    resp = await client.get(f"/api/aggregates?level=grid&code={code}", headers=basic(boss))
    report = await resp.json()
    assert report["name"] == f"测试网格 {code}"
    assert report["parents"] == [
        {"level": "city", "code": ""}, {"level": "district", "code": "339998", "name": "测试区"},
        {"level": "street", "code": street, "name": "测试街道"},
        {"level": "community", "code": community, "name": "测试社区"}]
    # A renamed community is renamed in the figures at once (the directory is followed).
    await city.run(directory.add_area, city.couch, "community", community, "新名社区")
    await eventually(lambda: names.get(("community", community)) == "新名社区")
    resp = await client.get(f"/api/aggregates?level=community&code={community}",
                            headers=basic(boss))
    assert (await resp.json())["name"] == "新名社区"
    with pytest.raises(directory.DirectoryError):
        await city.run(directory.add_area, city.couch, "planet", "1", "地球")


async def test_time_to_review_through_the_gateway_and_the_verdicts_api(client: Any,
                                                                        city: City) -> None:
    """A record a phone sent, then judged through the API: timed from its receipt."""
    code = await city.grid(community="339996001001", street="339996001")
    worker = await city.user("worker", grids=[code])
    boss = await city.user("supervisor", communities=["339996001001"])
    await wait_for_user(client, worker)
    await wait_for_user(client, boss)
    record = {"_id": f"household_visit:{code}-1", "type": "household_visit",
              "schema_version": 1, "grid": code, "created_by": worker,
              "household": f"household:{code}-1", "visited_on": "2026-11-26",
              "outcome": "completed"}
    resp = await client.post(f"/couch/grid-{code}/_bulk_docs", json={"docs": [record]},
                             headers=basic(worker))
    (written,) = await resp.json()
    resp = await client.post("/api/review/verdicts", headers=basic(boss), json={
        "grid": code, "verdicts": [{"record": record["_id"], "record_rev": written["rev"],
                                    "decision": "approved"}]})
    assert resp.status == 200, await resp.text()
    resp = await client.get(f"/api/aggregates?level=grid&code={code}", headers=basic(boss))
    report = await resp.json()
    assert report["figures"]["review.timed"] == 1
    assert report["figures"]["review.hours.le_1"] == 1
    assert report["time_to_review"] == {"records": 1, "from_hours": 0, "to_hours": 1}
    # The histogram's edges go with the figures: the dashboard draws its buckets from them and
    # holds no copy of its own (one constant, server/sync/aggregates.py).
    assert report["review_hours"] == list(aggregates.REVIEW_HOURS)
    dashboard = (Path(__file__).resolve().parents[1] / "pwa" / "dashboard.js").read_text()
    assert "1440" not in dashboard and "review_hours" in dashboard


def test_the_median_bucket_of_a_histogram() -> None:
    assert median_bucket({}) is None
    late = {"review.hours.le_1": 1, "review.hours.over_1440": 2}
    assert median_bucket(late) == {"records": 3, "from_hours": 1440, "to_hours": None}
    even = {"review.hours.le_2": 2, "review.hours.le_24": 2}  # the lower median
    assert median_bucket(even) == {"records": 4, "from_hours": 1, "to_hours": 2}
    assert hours_bucket(4) == "review.hours.le_4"
    assert hours_bucket(4.01) == "review.hours.le_8"


class CountingStore:
    """The real store, counting the refreshes of a grid that run at once (each refresh begins
    by reading the database's info)."""

    def __init__(self, couch: Any) -> None:
        self.couch = couch
        self.running, self.most, self.infos = 0, 0, 0

    async def get(self, path: str, **params: Any) -> Any:
        if path.count("/") == 1:
            self.infos += 1
            self.running += 1
            self.most = max(self.most, self.running)
            try:
                return await self.couch.get(path, **params)
            finally:
                self.running -= 1
        return await self.couch.get(path, **params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.couch, name)


async def test_refreshes_are_coalesced_and_never_run_twice_at_once(client: Any,
                                                                   city: City) -> None:
    code = await city.grid()
    store = CountingStore(client.app[COUCH])
    kept = aggregates.Aggregates(store, Directory(), CAMPAIGN,  # type: ignore[arg-type]
                                 refresh_seconds=0.5)
    await asyncio.gather(*(kept.grid_figures(code) for _ in range(5)))
    assert store.most == 1
    runner = asyncio.create_task(kept.run())
    try:
        store.infos = 0
        began = time.monotonic()
        for n in range(30):  # a record written and noticed every 50 ms for 1.5 s (or longer)
            await city.run(city.db(code).save, {
                "_id": f"household_visit:{code}-{n}", "type": "household_visit",
                "schema_version": 1, "grid": code, "created_by": "w",
                "household": f"household:{code}-1", "visited_on": "2026-11-26",
                "outcome": "completed"})
            kept.notice(code)
            await asyncio.sleep(0.05)  # the pace of the writes, not a wait
        # the last refresh, due refresh_seconds after the last notice
        writing = time.monotonic() - began  # 1.5 s on an idle machine; longer when loaded
        await eventually(lambda: code not in kept.dirty and store.running == 0)
    finally:
        runner.cancel()
    # Coalesced: at most one refresh per refresh_seconds of writing, plus the first and last.
    assert 2 <= store.infos <= max(5, int(writing / 0.5) + 2) and store.most == 1
    assert code not in kept.dirty
    assert (await kept.grid_figures(code))["visits.total"] == 30
