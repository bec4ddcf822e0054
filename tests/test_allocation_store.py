"""The allocator's claims as the store answers them: each caller hears its own claim's fate.

PouchDB Server answers a `_bulk_docs` holding a conflict out of input order, so answers read by
position once told two copies of one claimant's claim "stored now" and the other claimant's
none (two 201s, both "confirmed", for a task of one place)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import couchdb
import pytest

from server.domain.scope import CLAIMS_DB
from server.store.couch import CouchClient, StoreUnavailable
from server.store.embedded import EmbeddedStore
from server.sync.allocation import Allocator, claim_fates


def probe(doc_id: str, copy: int) -> dict[str, Any]:
    """A document of the claims database the allocation ignores (not `type: claim`)."""
    return {"_id": doc_id, "type": "probe", "copy": copy}


def futures(n: int) -> list[asyncio.Future[bool]]:
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(n)]


async def test_fates_are_read_by_id_whatever_the_answers_order() -> None:
    a1, b1, a2, c1 = probe("a", 1), probe("b", 1), probe("a", 2), probe("c", 1)
    batch = list(zip([a1, b1, a2, c1], futures(4), strict=True))
    sent = {"a": a1, "b": b1, "c": c1}
    answers = [{"id": "c", "error": "forbidden", "reason": "no"},  # out of input order
               {"id": "b", "error": "conflict"}, {"id": "a", "ok": True, "rev": "1-x"}]
    fates = [fate for _, _, fate in claim_fates(batch, sent, answers)]
    assert fates[:3] == [True, False, False]  # a sent and stored; b before; a's other copy
    assert not isinstance(fates[3], bool) and "forbidden" in str(fates[3])
    unanswered = claim_fates(batch[:1], sent, [])[0][2]
    assert isinstance(unanswered, StoreUnavailable)  # never "stored" without an answer


async def test_racing_copies_each_hear_their_own_claims_fate(
        store: EmbeddedStore, couch: couchdb.Server) -> None:
    """200 claims, 100 of them stored before, each sent in 3 racing copies: every claim is
    "stored now" for exactly one copy, the one the store holds, and for none stored before."""
    run = uuid.uuid4().hex[:8]
    ids = [f"probe:{run}:{n:03d}" for n in range(200)]
    before = set(ids[::2])
    async with aiohttp.ClientSession() as session:
        couch_client = CouchClient(store.url, session)
        await couch_client.ensure_db(CLAIMS_DB)
        await couch_client.post(f"/{CLAIMS_DB}/_bulk_docs",
                                {"docs": [probe(i, 0) for i in sorted(before)]})
        allocator = Allocator(couch_client, terms={})
        calls = [(i, copy) for copy in (1, 2, 3) for i in ids]
        told = await asyncio.gather(*(allocator.record(probe(i, copy)) for i, copy in calls))
    stored_now: dict[str, list[int]] = {i: [] for i in ids}
    for (i, copy), created in zip(calls, told, strict=True):
        if created:
            stored_now[i].append(copy)
    held = await asyncio.to_thread(lambda: {i: couch[CLAIMS_DB][i]["copy"] for i in ids})
    for i in ids:
        if i in before:
            assert stored_now[i] == [] and held[i] == 0, i
        else:
            assert stored_now[i] == [held[i]], (i, stored_now[i], held[i])


@pytest.mark.parametrize("copies", [1, 4])
async def test_a_feed_read_from_memory_holds_the_stored_copy(
        store: EmbeddedStore, copies: int) -> None:
    """The settle reads this process's claims from memory: the copy it keeps is the stored
    one (a later copy's `received_at` could fall after the deadline the stored one met)."""
    doc_id = f"probe:{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as session:
        allocator = Allocator(CouchClient(store.url, session), terms={})
        told = await asyncio.gather(*(allocator.record(probe(doc_id, c))
                                      for c in range(1, copies + 1)))
        assert told.count(True) == 1
        assert allocator.mine[doc_id]["copy"] == told.index(True) + 1
