"""Issue 23, item 6: the retention job lists what is past its rule, and a supervisor's approval
removes it, from the store's files, once; the day judged by is passed in (a fake clock).

The removal is the campaign purge's (server/sync/campaigns.py): the grid database rebuilt
without what is due, and a campaign due purged by the campaign purge itself."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from typing import Any

import pytest
from conftest import City, basic, eventually, visit, wait_for_user
from test_campaigns import files_holding, id_number, screening

from server import cli
from server.domain.scope import grid_db
from server.store.embedded import EmbeddedStore
from server.sync import retention
from server.web.keys import COUCH, DIRECTORY

TODAY = datetime.date(2030, 6, 1)  # the fake clock: every old record below is due on it
NOW = datetime.datetime(2030, 6, 1, 1, 0, tzinfo=datetime.UTC)


async def a_grid_with_old_records(client: Any, city: City) -> dict[str, Any]:
    """A community's grid with visits, a sign-up and a campaign's screenings, old and new."""
    community = f"keepville{uuid.uuid4().hex[:6]}"
    grid = await city.grid(community=community)
    people = {"worker": await city.user("worker", grids=[grid]),
              "purger": await city.user("supervisor", communities=[community],
                                        rights=["purge"]),
              "plain": await city.user("supervisor", communities=[community]),
              "elsewhere": await city.user("supervisor", communities=["nowhere"],
                                           rights=["purge"]),
              "admin": await city.user("admin")}
    for name in people.values():
        await wait_for_user(client, name)
    secrets = [id_number(n) for n in range(300, 304)]
    worker = people["worker"]
    old = [visit(grid, worker, f"old{n}", visited_on="2020-01-0" + str(n + 1),
                 notes=f"核对证件 {s}") for n, s in enumerate(secrets[:2])]
    for doc in old:  # two revisions each
        doc["_rev"] = (await city.save(grid, {**doc, "outcome": "nobody_home"}))[1]
        await city.save(grid, doc)
    kept = visit(grid, worker, "new", visited_on="2029-06-01", notes=f"证件 {id_number(400)}")
    await city.save(grid, kept)
    await city.save(grid, {"_id": f"resolution:{old[0]['_id']}", "type": "resolution",
                           "record": old[0]["_id"], "record_type": "household_visit",
                           "fields": [{"field": "notes", "chosen": {"value": secrets[0]}}]})
    key = f"pilot-{uuid.uuid4().hex[:6]}"
    await city.save(grid, screening(grid, worker, 1, key, secrets[2]))
    resp = await client.put(f"/api/campaigns/{key}", headers=basic(people["admin"]),
                            json={"ends_on": "2027-01-01", "retention_days": 30})
    assert resp.status == 200, await resp.text()
    await eventually(lambda: key in client.server.app[DIRECTORY].campaigns)
    return {"grid": grid, "people": people, "secrets": secrets[:3], "old": old, "kept": kept,
            "campaign": key, "kept_secret": id_number(400)}


async def test_the_list_names_what_is_due_and_an_approval_removes_it_once(
        client: Any, city: City, store: EmbeddedStore) -> None:
    place = await a_grid_with_old_records(client, city)
    grid, people = place["grid"], place["people"]
    app = client.server.app
    listed = await retention.make_list(app[COUCH], app[DIRECTORY], TODAY, NOW)
    assert listed["grids"][grid] == {
        "records": {"household_visit": sorted(d["_id"] for d in place["old"]),
                    "resolution": [f"resolution:{place['old'][0]['_id']}"]},
        "campaigns": [place["campaign"]]}
    assert set(files_holding(store, place["secrets"])) == set(place["secrets"])

    resp = await client.get("/api/retention", headers=basic(people["plain"]))
    answer = await resp.json()
    assert answer["rules"]["household_visit"]["days"] == 3 * 365
    [shown] = [found for found in answer["lists"] if found["id"] == listed["_id"]]
    assert shown["today"] == TODAY.isoformat()
    assert shown["grids"] == {grid: {"records": {"household_visit": 2, "resolution": 1},
                                     "campaigns": [place["campaign"]], "approved": None}}
    assert place["old"][0]["_id"] not in await resp.text()  # counts, never ids
    resp = await client.get("/api/retention", headers=basic(people["elsewhere"]))
    assert all(grid not in found["grids"] for found in (await resp.json())["lists"])
    for who in (people["worker"], None):
        resp = await client.get("/api/retention", headers=basic(who) if who else {})
        assert resp.status in (401, 403), await resp.text()

    approve = f"/api/retention/{listed['_id']}/approve"
    for who, status in ((people["worker"], 403), (people["plain"], 403),
                        (people["elsewhere"], 409)):
        resp = await client.post(approve, headers=basic(who))
        assert resp.status == status, await resp.text()
        assert set((await resp.json()).keys()) == {"error", "reason"}
    assert set(files_holding(store, place["secrets"])) == set(place["secrets"])

    twice = await asyncio.gather(*(client.post(approve, headers=basic(people["purger"]))
                                   for _ in range(2)))
    assert sorted(r.status for r in twice) == [200, 409]
    [done] = [await r.json() for r in twice if r.status == 200]
    assert done["removed"] == {grid: {"records": 3, "campaigns": [place["campaign"]]}}
    resp = await client.post(approve, headers=basic(people["purger"]))  # a replay
    assert resp.status == 409 and "已批准" in (await resp.json())["reason"]

    assert files_holding(store, place["secrets"]) == {}
    assert files_holding(store, [place["kept_secret"]])
    assert (await city.get(grid, place["kept"]["_id"])) is not None
    resp = await client.get("/api/retention", headers=basic(people["plain"]))
    [shown] = [found for found in (await resp.json())["lists"] if found["id"] == listed["_id"]]
    assert shown["grids"][grid]["approved"]["by"] == people["purger"]
    campaign = app[DIRECTORY].campaigns[place["campaign"]]
    assert campaign["purged"][grid]["records"] == 1  # the campaign purge's own figures

    # A phone that still holds an old visit is refused it: the removal sticks.
    resp = await client.post(f"/couch/{grid_db(grid)}/_bulk_docs",
                             headers=basic(people["worker"]), json={
        "docs": [{**place["old"][1], "_rev": "3-" + "b" * 32}], "new_edits": False})
    [refused] = await resp.json()
    assert refused["error"] == "forbidden" and "保存期限" in refused["reason"], refused
    assert await city.get(grid, place["old"][1]["_id"]) is None


@pytest.mark.parametrize("name", ["nothing", "retention-list:nope", "reveal:x", "%00",
                                  "retention-list:..%2f..%2fx", "retention-list:\u202e"])
async def test_an_unknown_list_is_not_found(client: Any, city: City, name: str) -> None:
    purger = await city.user("admin", rights=["purge"])
    await wait_for_user(client, purger)
    resp = await client.post(f"/api/retention/{name}/approve", headers=basic(purger))
    assert resp.status in (404, 400), await resp.text()
    assert set((await resp.json()).keys()) == {"error", "reason"}


async def test_the_command_lists_what_is_due(client: Any, city: City, store: EmbeddedStore,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    place = await a_grid_with_old_records(client, city)
    monkeypatch.setenv("COUCHDB_URL", store.url)
    code = await asyncio.to_thread(cli.main, ["retention", "list", "--today",
                                              TODAY.isoformat()])
    printed = capsys.readouterr().out
    assert code == 0, printed
    line = next(x for x in printed.splitlines() if x.startswith(place["grid"] + "\t"))
    assert "household_visit 2" in line and place["campaign"] in line
    list_id = printed.splitlines()[0].split("\t")[0]
    resp = await client.get("/api/retention", headers=basic(place["people"]["plain"]))
    assert list_id in {found["id"] for found in (await resp.json())["lists"]}
