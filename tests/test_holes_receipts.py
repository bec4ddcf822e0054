"""Receipts written once each, whatever order the store answers in (issue 13, items 11 and 14).

PouchDB Server answers `_bulk_docs` out of input order; a receipt matched to another's answer
was retried when written (a duplicate) and dropped when refused (an acknowledged record without a
receipt). An answer lost after the store committed left the batch to be written twice. A rebuild
pass forgot a failed write remembered during the pass, so the next pass wrote its receipt with
`user: null`. Run against a store of their own: these tests refuse receipts on purpose.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from conftest import Proxy

from server.domain.scope import RECEIPTS_DB
from server.store.couch import CouchClient, NotFound, StoreUnavailable, db_path
from server.store.embedded import EmbeddedStore
from server.sync.receipts import Rebuilder, ReceiptLog

# The store's own refusal of one document with a 5xx (what a full disk mid-batch looks like):
# a validation that throws something else than {forbidden} or {unauthorized}.
REFUSE = {"_id": "_design/refuse", "validate_doc_update": (
    "function (doc) { if (doc.type === 'receipt' && doc.db === 'refused') {"
    " throw new Error('IO error: disk full'); } }")}


@pytest.fixture(scope="module")
def own_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path_factory.mktemp("receipts-store"))
    store.start_sync()
    yield store
    store.stop_sync()


@pytest.fixture
async def couch(own_store: EmbeddedStore) -> AsyncIterator[CouchClient]:
    async with aiohttp.ClientSession() as session:
        client = CouchClient(own_store.url, session)
        with contextlib.suppress(NotFound):
            await client.request("DELETE", db_path(RECEIPTS_DB))
        await client.ensure_db(RECEIPTS_DB)
        yield client


async def stored_receipts(couch: CouchClient) -> list[dict[str, Any]]:
    rows = (await couch.get(db_path(RECEIPTS_DB, "_all_docs"), include_docs="true"))["rows"]
    return [r["doc"] for r in rows if r["doc"].get("type") == "receipt"]


def per_rev(receipts: list[dict[str, Any]]) -> collections.Counter[tuple[str, str, str]]:
    return collections.Counter((r["db"], i, v) for r in receipts for i, v in r["revs"])


@pytest.mark.parametrize("kept", [1, 3, 7])
async def test_a_partly_refused_batch_retries_exactly_the_refused_receipts(
        couch: CouchClient, kept: int) -> None:
    await couch.put(db_path(RECEIPTS_DB, REFUSE["_id"]), REFUSE)
    log = ReceiptLog(couch)
    expected: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for n in range(400):  # refused ones scattered among accepted ones
        db = "refused" if n % kept == 0 else "grid"
        log.record("w", db, [[f"doc{n}", f"1-{n}"]])
        expected[(db, f"doc{n}", f"1-{n}")] = 1
    with pytest.raises(StoreUnavailable):
        await log.flush()
    first = per_rev(await stored_receipts(couch))
    assert first == {k: 1 for k in expected if k[0] == "grid"}
    assert sorted(d["revs"][0][0] for d in log._pending) == sorted(
        k[1] for k in expected if k[0] == "refused")

    refuse = await couch.get(db_path(RECEIPTS_DB, REFUSE["_id"]))
    await couch.request("DELETE", db_path(RECEIPTS_DB, REFUSE["_id"]),
                        params={"rev": refuse["_rev"]})
    await log.flush()
    assert log.pending() == 0
    assert per_rev(await stored_receipts(couch)) == expected


async def test_a_batch_whose_answer_was_lost_is_not_written_twice(
        couch: CouchClient, own_store: EmbeddedStore,
        proxies: Callable[..., Awaitable[Proxy]]) -> None:
    # The store's answer to the first batch is lost on the way back, after it took the batch.
    answer_lost = await proxies(int(own_store.url.rsplit(":", 1)[1]), cut_bulk_docs={1})
    async with aiohttp.ClientSession() as session:
        log = ReceiptLog(CouchClient(answer_lost.url(), session))
        for n in range(50):
            log.record("w", "grid", [[f"doc{n}", f"1-{n}"]])
        with pytest.raises(StoreUnavailable):
            await log.flush()
        assert answer_lost.cuts == 1
        await log.flush()  # the retry: the store has them already
        assert log.pending() == 0
    assert per_rev(await stored_receipts(couch)) == {("grid", f"doc{n}", f"1-{n}"): 1
                                                     for n in range(50)}


class WatchedLog(ReceiptLog):
    """The real log; tells the test when a rebuild pass has read its database's update seq."""

    def __init__(self, couch: CouchClient) -> None:
        super().__init__(couch)
        self.looking = asyncio.Event()

    async def settled(self, db: str) -> None:
        self.looking.set()
        await super().settled(db)


async def test_a_write_failing_during_a_rebuild_keeps_its_sender(couch: CouchClient) -> None:
    db = "grid-rebuilt"
    await couch.ensure_db(db)
    log = WatchedLog(couch)
    rebuilder = Rebuilder(couch, log)
    revs = [[f"household_visit:{n}", f"1-{n:032x}"] for n in range(5)]
    with pytest.raises(StoreUnavailable), log.writing("worker7", db, revs):
        passing = asyncio.create_task(rebuilder.rebuild(db, "2026-01-01T00:00:00.000+00:00"))
        await log.looking.wait()  # the pass is under way and has read how far to look
        # The write reaches the store after the pass looked, and its answer is lost.
        docs = [{"_id": i, "_rev": r, "type": "household_visit"} for i, r in revs]
        await couch.post(db_path(db, "_bulk_docs"), {"docs": docs, "new_edits": False})
        raise StoreUnavailable("the store died under the write")
    await passing
    assert db in rebuilder.wanted  # the failed write asked for another pass
    await rebuilder.rebuild(db, rebuilder.wanted.pop(db))
    receipts = [r for r in await stored_receipts(couch) if r["db"] == db]
    assert sorted(i for r in receipts for i, _ in r["revs"]) == sorted(i for i, _ in revs)
    assert {r["user"] for r in receipts} == {"worker7"}




class FailingOnce(Rebuilder):
    """The real rebuilder, whose first pass meets a surprise (a bug's KeyError, say)."""

    failed = 0

    async def rebuild(self, db: str, received_by: str) -> int:
        if not self.failed:
            self.failed += 1
            raise KeyError("a surprise")
        return await super().rebuild(db, received_by)


async def test_a_surprise_in_a_rebuild_is_logged_and_retried(
        couch: CouchClient, caplog: pytest.LogCaptureFixture) -> None:
    db = "grid-surprise"
    await couch.ensure_db(db)
    await couch.put(db_path(db, "household_visit:1"), {"type": "household_visit"})
    rebuilder = FailingOnce(couch, ReceiptLog(couch))
    running = asyncio.create_task(rebuilder.run())
    try:
        rebuilder.request([db], "2026-01-01T00:00:00.000+00:00")
        await asyncio.wait_for(rebuilder.idle.wait(), 30)
        assert not running.done()  # the task lives on for the next request
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert rebuilder.failed == 1
    assert [i for r in await stored_receipts(couch) if r["db"] == db
            for i, _ in r["revs"]] == ["household_visit:1"]
    assert any("a surprise" in r.getMessage() or r.exc_info for r in caplog.records
               if r.levelname == "ERROR")
