"""Issue 13, item 6: the order of decisions is the server's, never a phone's clock. A verdict
whose `device_time` says 2099 (or 1970) neither wins nor loses because of it: the latest
verdict is the one the server received last (its receipt), in `/api/review`, in the record view,
in the exports and in the figures; and the same holds for conflicting revisions the resolver
merges. `device_time` is shown as what the phone said, never used to order."""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import uuid
from typing import Any

import pytest
from conftest import City, a_later_millisecond, basic, eventually, visit, wait_for_user

from server.domain.scope import grid_db
from server.web.keys import AGGREGATES, RECEIPTS
from server.web.keys import RESOLVER as RESOLVER_KEY

FUTURE = "2099-12-31T23:59:59+08:00"
PAST = "1970-01-01T08:00:00+08:00"
NOW_ISH = "2026-11-26T10:00:00+08:00"


def rev(generation: int, tag: str) -> str:
    return f"{generation}-{hashlib.md5(tag.encode()).hexdigest()}"


class Review:
    """A grid with a worker's records and a supervisor who judges them."""

    def __init__(self, client: Any, city: City) -> None:
        self.client, self.city = client, city
        self.community = f"order{uuid.uuid4().hex[:6]}"
        self.grid = city.blocking.grid(community=self.community)
        self.worker = city.blocking.user("worker", grids=[self.grid])
        self.boss = city.blocking.user("supervisor", communities=[self.community])
        self.revs: dict[str, str] = {}

    async def ready(self, records: int) -> Review:
        for name in (self.worker, self.boss):
            await wait_for_user(self.client, name)
        docs = [visit(self.grid, self.worker, n, visited_on=f"2026-11-{10 + n}")
                for n in range(records)]
        resp = await self.client.post(f"/couch/{grid_db(self.grid)}/_bulk_docs",
                                      json={"docs": docs}, headers=basic(self.worker))
        assert resp.status == 201
        self.revs = {r["id"]: r["rev"] for r in await resp.json()}
        return self

    def verdict(self, record: str, decision: str, device_time: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "_id": f"verdict:{record}:{uuid.uuid4().hex[:12]}", "type": "verdict",
            "schema_version": 1, "grid": self.grid, "created_by": self.boss,
            "record": record, "record_rev": self.revs[record], "decision": decision}
        if decision != "approved":
            doc["comment"] = f"{decision} 意见"
        if device_time is not None:
            doc["device_time"] = device_time
        return doc

    async def send(self, how: str, doc: dict[str, Any]) -> None:
        """A verdict as a supervisor's client may send it: through the API (the server stamps
        its own device_time), a plain `_bulk_docs`, a `PUT`, or a phone's replicated push."""
        db = f"/couch/{grid_db(self.grid)}"
        if how == "api":
            resp = await self.client.post("/api/review/verdicts", headers=basic(self.boss),
                                          json={"grid": self.grid, "verdicts": [{
                                              "record": doc["record"],
                                              "record_rev": doc["record_rev"],
                                              "decision": doc["decision"],
                                              "comment": doc.get("comment")}]})
            assert resp.status == 200, await resp.text()
            return
        if how == "bulk":
            resp = await self.client.post(f"{db}/_bulk_docs", json={"docs": [doc]},
                                          headers=basic(self.boss))
        elif how == "put":
            resp = await self.client.put(f"{db}/{doc['_id']}", json=doc,
                                         headers=basic(self.boss))
        else:  # a phone's push: new_edits=false with the revision history
            r1 = rev(1, doc["_id"])
            resp = await self.client.post(f"{db}/_bulk_docs", headers=basic(self.boss), json={
                "new_edits": False, "docs": [{**doc, "_rev": r1, "_revisions": {
                    "start": 1, "ids": [r1.split("-", 1)[1]]}}]})
        assert resp.status == 201, await resp.text()
        assert all("error" not in r for r in await resp.json())

    async def queue(self) -> dict[str, dict[str, Any]]:
        resp = await self.client.get(f"/api/review?grid={self.grid}", headers=basic(self.boss))
        assert resp.status == 200, await resp.text()
        return {r["record"]: r for r in (await resp.json())["records"]}

    async def receipted_queue(self) -> dict[str, dict[str, Any]]:
        """The queue once every verdict shows its receipt: the server writes receipts a
        moment after it acknowledges (on a loaded machine, a flush can be retried)."""
        async def receipted() -> dict[str, dict[str, Any]] | None:
            listed = await self.queue()
            return listed if all(r["verdict"]["at"] for r in listed.values()
                                 if r["verdict"]) else None

        return await eventually(receipted, 5, what="every verdict receipted")

    async def record(self, record: str) -> dict[str, Any]:
        resp = await self.client.get(f"/api/review/record?grid={self.grid}&id={record}",
                                     headers=basic(self.boss))
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())

    async def exported(self) -> dict[str, list[str]]:
        resp = await self.client.get(f"/api/export?what=review&grid={self.grid}",
                                     headers=basic(self.boss))
        assert resp.status == 200, await resp.text()
        lines = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
        return {line[2]: line for line in lines[1:]}

    async def figures(self) -> dict[str, int]:
        await self.client.app[RECEIPTS].flush()
        await self.client.app[AGGREGATES].refresh([self.grid])
        resp = await self.client.get(f"/api/aggregates?level=grid&code={self.grid}",
                                     headers=basic(self.boss))
        assert resp.status == 200, await resp.text()
        return dict((await resp.json())["figures"])


def server_time(text: str | None) -> datetime.datetime:
    assert text, "no server time"
    moment = datetime.datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment


# Each case: how the first (lying) verdict is sent, its device_time, how the later one is sent
# and its device_time. Every way of writing a verdict, future and past clocks, and none at all.
CASES = [
    ("bulk", FUTURE, "api", None),
    ("put", FUTURE, "bulk", NOW_ISH),
    ("replicated", FUTURE, "replicated", NOW_ISH),
    ("bulk", NOW_ISH, "put", PAST),
    ("replicated", None, "bulk", PAST),
]


@pytest.mark.parametrize(("first_how", "first_time", "later_how", "later_time"), CASES)
async def test_the_verdict_received_last_stands(client: Any, city: City, first_how: str,
                                                first_time: str | None, later_how: str,
                                                later_time: str | None) -> None:
    scene = await (await city.run(Review, client, city)).ready(2)
    judged, other = sorted(scene.revs)
    started = datetime.datetime.now(datetime.UTC)
    await scene.send(first_how, scene.verdict(judged, "rejected", first_time))
    await a_later_millisecond()  # a later receipt, by the server's clock
    await scene.send(later_how, scene.verdict(judged, "approved", later_time))
    # Another record judged once only, with a lying clock: its time is the server's too.
    await scene.send(first_how, scene.verdict(other, "has_issues", FUTURE))
    finished = datetime.datetime.now(datetime.UTC)

    listed = await scene.receipted_queue()
    assert listed[judged]["state"] == "approved", listed[judged]
    assert listed[judged]["verdict"]["decision"] == "approved"
    assert listed[other]["state"] == "has_issues"
    for record in (judged, other):
        at = server_time(listed[record]["verdict"]["at"])
        assert started - datetime.timedelta(seconds=1) <= at <= finished + datetime.timedelta(
            seconds=1), (record, listed[record]["verdict"])

    found = await scene.record(judged)
    assert found["state"] == "approved" and found["verdict"]["decision"] == "approved"
    # Oldest first by the server's receipt; each shows the phone's time for what it is.
    assert [v["decision"] for v in found["verdicts"]] == ["rejected", "approved"]
    ats = [server_time(v["at"]) for v in found["verdicts"]]
    assert ats == sorted(ats) and ats[-1] <= finished + datetime.timedelta(seconds=1)
    if first_time is not None:
        assert found["verdicts"][0]["device_time"] == first_time

    rows = await scene.exported()
    assert rows[judged][7] == "通过" and rows[other][7] == "有问题"
    for record in (judged, other):
        assert not rows[record][9].startswith(("2099", "1970")), rows[record]
        assert rows[record][9].endswith("+08:00"), rows[record]  # the city's time
        assert server_time(rows[record][9]) <= finished + datetime.timedelta(seconds=1)

    figures = await scene.figures()
    assert figures.get("review.approved") == 1 and figures.get("review.has_issues") == 1
    assert "review.rejected" not in figures
    assert figures.get("review.reviewed") == 2


async def test_a_verdict_not_yet_receipted_is_the_latest(client: Any, city: City) -> None:
    """Receipts are written in batches a moment after the store acknowledges: a verdict whose
    receipt is not written yet (or was written by another process not yet flushed) was received
    after every verdict that has one, and among such verdicts the store's update sequence (the
    order the store took them in) decides; a phone's clock never does."""
    scene = await (await city.run(Review, client, city)).ready(1)
    [judged] = scene.revs
    await scene.send("bulk", scene.verdict(judged, "rejected", NOW_ISH))
    await client.app[RECEIPTS].flush()
    receipts = client.app[RECEIPTS]
    held: list[Any] = []
    original = receipts.record
    receipts.record = lambda user, db, revs: held.append((user, db, revs))  # type: ignore
    try:
        await scene.send("bulk", scene.verdict(judged, "has_issues", PAST))
        await scene.send("put", scene.verdict(judged, "approved", "2001-01-01T00:00:00+08:00"))
        listed = await scene.queue()
        assert listed[judged]["state"] == "approved", listed[judged]
        assert listed[judged]["verdict"]["at"] is None  # no server time known yet
        found = await scene.record(judged)
        assert [v["decision"] for v in found["verdicts"]] == ["rejected", "has_issues",
                                                               "approved"]
    finally:
        receipts.record = original  # type: ignore
    for args in held:
        receipts.record(*args)
    await receipts.flush()
    listed = await scene.receipted_queue()
    assert listed[judged]["state"] == "approved"
    assert server_time(listed[judged]["verdict"]["at"])


async def test_conflicting_revisions_follow_the_servers_receipt(client: Any,
                                                                city: City) -> None:
    """Two phones edit one field offline; the first to reach the server says 2099. The value
    left standing (provisionally, for a supervisor to confirm) is the one received last, and
    a verdict edited on two phones keeps the one received last."""
    scene = await (await city.run(Review, client, city)).ready(1)
    a = await city.user("worker", grids=[scene.grid])
    b = await city.user("worker", grids=[scene.grid])
    for name in (a, b):
        await wait_for_user(client, name)
    db = f"/couch/{grid_db(scene.grid)}"

    async def push(user: str, doc: dict[str, Any], *revs: str) -> None:
        resp = await client.post(f"{db}/_bulk_docs", headers=basic(user), json={
            "new_edits": False, "docs": [{**doc, "_rev": revs[0], "_revisions": {
                "start": int(revs[0].split("-")[0]),
                "ids": [r.split("-", 1)[1] for r in revs]}}]})
        assert resp.status == 201 and all("error" not in r for r in await resp.json())

    base = visit(scene.grid, a, "conflict", persons_present=1)
    r1, ra, rb = rev(1, base["_id"]), rev(2, base["_id"] + "a"), rev(2, base["_id"] + "b")
    await push(a, base, r1)
    await push(a, {**base, "persons_present": 2, "device_time": FUTURE}, ra, r1)
    await a_later_millisecond()
    await push(b, {**base, "persons_present": 3, "device_time": NOW_ISH}, rb, r1)

    verdict = scene.verdict(next(iter(scene.revs)), "approved", None)
    v1, va, vb = rev(1, verdict["_id"]), rev(2, verdict["_id"] + "a"), rev(2, verdict["_id"] + "b")
    await push(scene.boss, verdict, v1)
    await push(scene.boss, {**verdict, "decision": "rejected", "comment": "不对",
                            "device_time": FUTURE}, va, v1)
    await a_later_millisecond()
    await push(scene.boss, {**verdict, "decision": "approved", "device_time": PAST}, vb, v1)

    await client.app[RECEIPTS].flush()
    await client.app[RESOLVER_KEY].process_grid(scene.grid)
    merged = await city.get(scene.grid, base["_id"], conflicts=True)
    assert merged["persons_present"] == 3 and "_conflicts" not in merged
    settled = await city.get(scene.grid, verdict["_id"], conflicts=True)
    assert settled["decision"] == "approved" and "_conflicts" not in settled
    found = await scene.record(verdict["record"])
    assert found["verdict"]["decision"] == "approved"


PHONE_INDEX = """async ([grid, record, worker, password, step]) => {
  const { GridIndex } = await import("/app/records.js");
  if (step === "first") {
    const login = await fetch("/couch/_session", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: worker, password }) });
    if (!login.ok) throw new Error("login " + login.status);
    window.orderDb = new PouchDB("order-" + grid);
    window.orderIndex = new GridIndex();
  }
  const db = window.orderDb;
  const remote = new PouchDB(new URL(`/couch/grid-${grid}`, location.origin).href, {
    fetch: (url, opts) => PouchDB.fetch(url, { ...opts, credentials: "same-origin" }),
    skip_setup: true });
  const since = (await db.info()).update_seq;
  await db.replicate.from(remote);
  const index = window.orderIndex;
  if (step === "first") await index.load(db);
  else {
    const changes = await db.changes({ since, include_docs: true });
    for (const change of changes.results) index.apply(change.doc, change.seq);
  }
  await index.loadServerOrder(remote);  // as the app does once verdicts arrive
  return index.verdictsOn(record).map((v) => v.decision);
}"""


@pytest.mark.slow  # a real Chromium
async def test_the_phone_lists_verdicts_in_the_servers_order(browser: Any, live_server: str,
                                                              city: City) -> None:
    """The worker's phone lists a record's verdicts newest first: in the order the server
    received them (the phone pulls them in the server's order), not by their device_time."""
    import aiohttp
    from conftest import PASSWORD

    community = f"order{uuid.uuid4().hex[:6]}"
    grid = await city.grid(community=community)
    worker = await city.user("worker", grids=[grid])
    boss = await city.user("supervisor", communities=[community])
    db = f"{live_server}/couch/{grid_db(grid)}"
    async with aiohttp.ClientSession() as session:
        async def known() -> bool:  # the server has followed the directory to the new user
            async with session.get(f"{live_server}/api/me", headers=basic(boss)) as resp:
                return resp.status == 200

        await eventually(known, 5)
        doc = visit(grid, worker, 1)
        async with session.put(f"{db}/{doc['_id']}", json=doc, headers=basic(worker)) as resp:
            assert resp.status == 201, await resp.text()
            record_rev = (await resp.json())["rev"]

        async def give(decision: str, device_time: str) -> None:
            verdict = {"_id": f"verdict:{doc['_id']}:{uuid.uuid4().hex[:12]}",
                       "type": "verdict", "schema_version": 1, "grid": grid,
                       "created_by": boss, "record": doc["_id"], "record_rev": record_rev,
                       "decision": decision, "device_time": device_time}
            if decision != "approved":
                verdict["comment"] = "请核对"
            async with session.post(f"{db}/_bulk_docs", json={"docs": [verdict]},
                                    headers=basic(boss)) as resp:
                assert resp.status == 201, await resp.text()

        await give("rejected", FUTURE)
        await give("approved", NOW_ISH)
        context = await browser.new_context()
        try:
            page = await context.new_page()
            await page.goto(f"{live_server}/app/")
            args = [grid, doc["_id"], worker, PASSWORD]
            assert await page.evaluate(PHONE_INDEX, [*args, "first"]) == [
                "approved", "rejected"]
            await give("has_issues", PAST)  # arrives while the app runs
            assert await page.evaluate(PHONE_INDEX, [*args, "later"]) == [
                "has_issues", "approved", "rejected"]
        finally:
            await context.close()


async def test_receipts_found_once_are_not_asked_again(client: Any, city: City) -> None:
    """A review queue read again asks the store only for receipts it has not seen: a
    revision's first receipt never changes once written."""
    from server.web.keys import RECEIPT_TIMES

    scene = await (await city.run(Review, client, city)).ready(3)
    for record in scene.revs:
        await scene.send("api", scene.verdict(record, "approved", None))
    cache = client.app[RECEIPT_TIMES]
    asked: list[int] = []
    real = cache.lookup

    async def counted(db: str, wanted: list[tuple[str, str]]) -> Any:
        asked.append(len(wanted))
        return await real(db, wanted)

    cache.lookup = counted

    try:
        first = await scene.receipted_queue()
        asked.clear()
        assert await scene.queue() == first
        assert asked == [], asked  # every receipt was found before: none asked again
        judged = next(iter(scene.revs))
        await scene.send("api", scene.verdict(judged, "rejected", None))
        listed = await scene.receipted_queue()
        assert listed[judged]["state"] == "rejected"
        assert asked and set(asked) == {1}, asked  # only the new verdict's receipt
    finally:
        cache.lookup = real
