"""The project's views live in store/designs/, one JSON file per design document, and reach the
databases through one installer: at `grid add`, at server start for grids whose design documents
are missing or old, and before the first query of the receipts' views."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import City, basic, designs_installed, visit, wait_for_user

from server.config import Config
from server.store import designs
from server.store.couch import CouchClient, db_path
from server.store.designs import design_docs
from server.store.embedded import EmbeddedStore
from server.web.app import create_app

SERVER = Path(__file__).resolve().parents[1] / "server"


async def test_views_count_what_was_synced(client: Any, city: City) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    docs = [visit(grid, worker, i, outcome=("completed", "refused")[i % 2]) for i in range(9)]
    resp = await client.post(f"/couch/grid-{grid}/_bulk_docs", json={"docs": docs},
                             headers=basic(worker))
    assert resp.status == 201
    resp = await client.get(f"/couch/grid-{grid}/_design/linli/_view/visits_by_outcome"
                            "?group_level=1", headers=basic(worker))
    rows = {r["key"][0]: r["value"] for r in (await resp.json())["rows"]}
    assert rows == {"completed": 5, "refused": 4}


async def test_server_installs_missing_or_old_designs(aiohttp_client: Any, config: Config,
                                                     city: City) -> None:
    grid = await city.grid()
    stale = await city.get(grid, "_design/linli")
    stale["views"] = {"old": {"map": "function (doc) {}"}}
    await city.save(grid, stale)
    config = dataclasses.replace(config, grid_passes_at_start=True)
    await designs_installed(await aiohttp_client(create_app(config)))
    wanted = design_docs()[0]
    assert (await city.get(grid, "_design/linli"))["views"] == wanted["views"]
    rev = (await city.get(grid, "_design/linli"))["_rev"]
    # unchanged content is not rewritten
    await designs_installed(await aiohttp_client(create_app(config)))
    assert (await city.get(grid, "_design/linli"))["_rev"] == rev


async def test_the_passes_at_start_can_be_left_out(aiohttp_client: Any, config: Config,
                                                  city: City) -> None:
    """`grid_passes_at_start` off (the suite's setting: hundreds of servers start on one store)
    leaves every grid alone at start; the default goes through them (the test above)."""
    assert not config.grid_passes_at_start and Config.from_mapping({}).grid_passes_at_start
    grid = await city.grid()
    stale = await city.get(grid, "_design/linli")
    stale["views"] = {"old": {"map": "function (doc) {}"}}
    await city.save(grid, stale)
    await designs_installed(await aiohttp_client(create_app(config)))
    assert (await city.get(grid, "_design/linli"))["views"] == stale["views"]


@pytest.fixture
async def store_client(store: EmbeddedStore, store_session: aiohttp.ClientSession) -> CouchClient:
    return CouchClient(store.url, store_session)


async def fresh_db(couch: CouchClient) -> str:
    db = f"grid-fresh{uuid.uuid4().hex[:12]}"
    await couch.put(db_path(db), None)
    return db


async def stored_designs(couch: CouchClient, db: str) -> dict[str, dict[str, Any]]:
    rows = (await couch.get(db_path(db, "_all_docs"), startkey='"_design/"',
                            endkey='"_design0"', include_docs="true"))["rows"]
    return {row["id"]: row["doc"] for row in rows}


def without_rev(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_rev"}


def test_every_design_file_is_held_by_one_kind_of_database() -> None:
    """A file nobody installs, or one installed in two kinds of database, is a mistake."""
    files = sorted(p.stem for p in (SERVER / "store" / "designs").glob("*.json"))
    held = sorted(name for names in designs.HELD_BY.values() for name in names)
    assert files == held
    for kind in designs.HELD_BY:
        for doc in design_docs(kind):
            assert doc["_id"].startswith("_design/") and doc["views"]


def test_design_documents_are_only_in_their_files() -> None:
    """No module defines a design document of its own: the map functions are in the JSON files
    (one receipts view definition, one of each), and a module only names them."""
    functions = [view["map"] for kind in designs.HELD_BY for doc in design_docs(kind)
                 for view in doc["views"].values()]
    for path in sorted(SERVER.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "function (doc)" not in text, f"{path} holds a design document's function"
        assert not any(f[:60] in text for f in functions), path


async def test_the_installer_installs_every_wanted_document_into_a_fresh_db(
        store_client: CouchClient) -> None:
    db = await fresh_db(store_client)
    wanted = {doc["_id"]: doc for doc in design_docs(designs.GRID)}
    assert sorted(await designs.install(store_client, db, designs.GRID)) == sorted(wanted)
    stored = await stored_designs(store_client, db)
    assert {k: without_rev(v) for k, v in stored.items()} == wanted


async def test_the_installer_is_idempotent(store_client: CouchClient) -> None:
    db = await fresh_db(store_client)
    await designs.install(store_client, db, designs.GRID)
    revs = {k: v["_rev"] for k, v in (await stored_designs(store_client, db)).items()}
    assert await designs.install(store_client, db, designs.GRID) == []
    assert {k: v["_rev"] for k, v in (await stored_designs(store_client, db)).items()} == revs


async def test_the_installer_updates_a_changed_document_and_only_that(
        store_client: CouchClient) -> None:
    db = await fresh_db(store_client)  # a receipts database's: made old; another, left alone
    await store_client.put(db_path(db, "_design/other"), {"views": {}})
    await designs.install(store_client, db, designs.RECEIPTS)
    before = await stored_designs(store_client, db)
    old = {**before["_design/receipts"], "views": {"by_rev": {"map": "function (doc) {}"}},
           "extra": 1}
    await store_client.put(db_path(db, "_design/receipts"), old)
    assert await designs.install(store_client, db, designs.RECEIPTS) == ["_design/receipts"]
    after = await stored_designs(store_client, db)
    wanted = {doc["_id"]: doc for doc in design_docs(designs.RECEIPTS)}
    assert after["_design/receipts"]["views"] == wanted["_design/receipts"]["views"]
    assert after["_design/other"]["_rev"] == before["_design/other"]["_rev"]


def test_grid_add_installs_through_the_same_installer(city: City) -> None:
    """`linli grid add` runs on python-couchdb; the installer it runs is the async one."""
    code = city.blocking.grid()
    stored = {doc["_id"]: doc for doc in (city.db(code)[d["_id"]] for d in design_docs())}
    assert {k: without_rev(dict(v)) for k, v in stored.items()} == {
        d["_id"]: d for d in design_docs()}
    blocking = designs.install_blocking(city.couch.resource.url, f"grid-{code}", designs.GRID,
                                        city.couch.resource.credentials)
    assert blocking == []  # installed already: nothing written twice
