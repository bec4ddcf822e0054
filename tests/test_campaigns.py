"""Issue 23, item 3: a campaign's personal records are purged at its end, from the store's
files, and only its figures stay.

The embedded store has no `_purge`, and a deletion plus compaction leaves the bodies' bytes
in its files (the first test shows both); the purge rebuilds each grid database without the
campaign's records (server/sync/campaigns.py). The test then reads every file of the store
for the campaign's ID numbers and finds none, while what stays is still there."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from typing import Any

import aiohttp
from conftest import City, basic, eventually, wait_for_user

from server.domain.scope import grid_db
from server.store.embedded import EmbeddedStore
from server.web.keys import DIRECTORY

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def id_number(n: int) -> str:
    body = f"33060219{60 + n % 30:02d}0604{n % 1000:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]


def files_holding(store: EmbeddedStore, needles: list[str]) -> dict[str, list[str]]:
    """Which of the store's files hold each needle's bytes, as UTF-8 and as JSON writes it."""
    found: dict[str, list[str]] = {}
    blobs = [(p, p.read_bytes()) for p in store.dir.rglob("*") if p.is_file()]
    for needle in needles:
        hits = [str(p.relative_to(store.dir)) for p, blob in blobs if needle.encode() in blob]
        if hits:
            found[needle] = hits
    return found


def screening(grid: str, worker: str, n: int, campaign: str, secret: str) -> dict[str, Any]:
    return {"_id": f"screening:{grid}-{n}-{campaign}", "type": "screening",
            "schema_version": 1, "grid": grid, "created_by": worker,
            "person": f"person:{grid}-{n}", "household": f"household:{grid}-{n}",
            "campaign": campaign, "screened_on": "2026-11-20", "occupation": "退休",
            "contact_with_cases": "none", "temperature": 36.5, "test_result": "negative",
            "health_code": "green", "risk_category": "low",
            "itinerary": f"经杭州返回，身份证 {secret}", "notes": f"核对证件 {secret}"}


async def test_the_store_has_no_purge_and_compaction_keeps_the_bytes(store: EmbeddedStore) -> None:
    db, secret = f"purge-probe-{uuid.uuid4().hex[:8]}", f"PROBE{uuid.uuid4().hex}"
    async with aiohttp.ClientSession() as http:
        await http.put(f"{store.url}/{db}")
        resp = await http.post(f"{store.url}/{db}/_bulk_docs", json={"docs": [
            {"_id": "a", "notes": secret}]})
        [written] = await resp.json(content_type=None)
        resp = await http.post(f"{store.url}/{db}/_purge", json={"a": [written["rev"]]})
        assert resp.status >= 400  # PouchDB Server 4.2: no _purge
        await http.post(f"{store.url}/{db}/_bulk_docs", json={"docs": [
            {"_id": "a", "_rev": written["rev"], "_deleted": True}]})
        await http.post(f"{store.url}/{db}/_compact", json={})
        assert files_holding(store, [secret])  # deleted and compacted, still on disk
        await http.delete(f"{store.url}/{db}")
    assert not files_holding(store, [secret])  # a destroyed database leaves nothing


async def test_a_purged_campaign_leaves_no_id_number_in_the_store(
        client: Any, city: City, store: EmbeddedStore) -> None:
    community = f"purgeville{uuid.uuid4().hex[:6]}"
    grid = await city.grid(community=community)
    worker = await city.user("worker", grids=[grid])
    purger = await city.user("supervisor", communities=[community], rights=["purge"])
    plain = await city.user("supervisor", communities=[community])
    admin = await city.user("admin")
    for name in (worker, purger, plain, admin):
        await wait_for_user(client, name)
    key, other = f"pilot-{uuid.uuid4().hex[:6]}", f"keep-{uuid.uuid4().hex[:6]}"
    secrets = [id_number(n) for n in range(100, 106)]
    kept_secret = id_number(200)
    docs = [screening(grid, worker, n, key, s) for n, s in enumerate(secrets)]
    for doc in docs:  # each written twice: an older revision holds it too
        doc["_rev"] = (await city.save(grid, {**doc, "notes": "初稿 " + doc["notes"]}))[1]
        await city.save(grid, doc)
    kept = screening(grid, worker, 99, other, kept_secret)
    await city.save(grid, kept)
    await city.save(grid, {"_id": f"resolution:{docs[0]['_id']}", "type": "resolution",
                           "record": docs[0]["_id"], "record_type": "screening",
                           "fields": [{"field": "notes", "chosen": {"value": secrets[0]}}]})
    assert set(files_holding(store, secrets)) == set(secrets)

    yesterday = (datetime.datetime.now(datetime.UTC).date()
                 - datetime.timedelta(days=1)).isoformat()
    tomorrow = (datetime.datetime.now(datetime.UTC).date()
                + datetime.timedelta(days=1)).isoformat()
    for who, body, status in (
            (purger, {"ends_on": yesterday, "retention_days": 30}, 403),
            (admin, {"ends_on": "yesterday", "retention_days": 30}, 400),
            (admin, {"ends_on": yesterday, "retention_days": -1}, 400),
            (admin, {"ends_on": tomorrow, "retention_days": 30}, 200)):
        resp = await client.put(f"/api/campaigns/{key}", json=body, headers=basic(who))
        assert resp.status == status, (body, await resp.text())

    async def known(ends: str) -> bool:
        found = client.server.app[DIRECTORY].campaigns.get(key)
        return found is not None and found["ends_on"] == ends
    await eventually(lambda: known(tomorrow))
    resp = await client.post(f"/api/campaigns/{key}/purge", headers=basic(purger))
    assert resp.status == 409  # not ended yet
    resp = await client.put(f"/api/campaigns/{key}", headers=basic(admin),
                            json={"ends_on": yesterday, "retention_days": 30})
    await eventually(lambda: known(yesterday))
    for who in (plain, worker):
        resp = await client.post(f"/api/campaigns/{key}/purge", headers=basic(who))
        assert resp.status == 403, await resp.text()
    assert set(files_holding(store, secrets)) == set(secrets)

    resp = await client.post(f"/api/campaigns/{key}/purge", headers=basic(purger))
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["purged"][grid]["records"] == len(docs) and done["purged"][grid]["by"] == purger
    assert done["figures"][grid] == {"screening": {"2026-11-20": len(docs)}}
    assert done["due_on"] == (datetime.date.fromisoformat(yesterday)
                              + datetime.timedelta(days=30)).isoformat()

    # Purged again, twice at once: one at a time, and what was counted stays as counted.
    again = await asyncio.gather(*(client.post(f"/api/campaigns/{key}/purge",
                                               headers=basic(purger)) for _ in range(2)))
    for resp in again:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["purged"][grid] == done["purged"][grid]
        assert body["figures"][grid] == done["figures"][grid]

    # Nothing of the campaign on any file of the store; what stays is still there.
    assert files_holding(store, secrets) == {}
    assert files_holding(store, [kept_secret])
    assert (await city.get(grid, kept["_id"]))["notes"].endswith(kept_secret)
    assert await city.get(grid, docs[1]["_id"]) is None
    assert await city.get(grid, f"resolution:{docs[0]['_id']}") is None
    await eventually(lambda: key in client.server.app[DIRECTORY].purged_campaigns(grid))
    resp = await client.get("/api/campaigns", headers=basic(plain))
    [listed] = [c for c in (await resp.json())["campaigns"] if c["key"] == key]
    assert listed["figures"][grid]["screening"]["2026-11-20"] == len(docs)

    # A phone that still holds them is refused them, record by record; the phone is told.
    resp = await client.post(f"/couch/{grid_db(grid)}/_bulk_docs", headers=basic(worker), json={
        "docs": [{**docs[2], "_rev": "3-" + "a" * 32}], "new_edits": False})
    answer = await resp.json()
    assert resp.status in (201, 200) and answer[0]["error"] == "forbidden", answer
    assert "清除" in answer[0]["reason"] and "purged" in answer[0]["reason"]
    assert await city.get(grid, docs[2]["_id"]) is None
    resp = await client.get("/api/me", headers=basic(worker))
    [mine] = [g for g in (await resp.json())["grids"] if g["code"] == grid]
    assert mine["purged"] == [key]
    # The worker's other records still replicate.
    resp = await client.get(f"/couch/{grid_db(grid)}/_all_docs", headers=basic(worker))
    ids = {row["id"] for row in (await resp.json())["rows"]}
    assert kept["_id"] in ids and not ids & {d["_id"] for d in docs}
