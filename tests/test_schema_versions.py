"""Form versions: an admin retires an old one (`linli schema retire`), after which the gateway
refuses records on it with a reason a worker can act on; the newest version of a form can never
be retired; a restored version is accepted again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import City, basic, eventually, visit, wait_for_user

from server.admin import directory
from server.domain.scope import DIRECTORY_DB, User, grid_db
from server.domain.validation import SCHEMA_DIR, SchemaRegistry, WriteContext, check_record
from server.web.keys import DIRECTORY


def test_the_newest_version_cannot_be_retired(city: City) -> None:
    with pytest.raises(directory.DirectoryError, match="最新版本不能停用"):
        directory.retire_schema(city.couch, "household_visit", 1)
    with pytest.raises(directory.DirectoryError, match="没有表单"):
        directory.retire_schema(city.couch, "household_visit", 7)
    assert ("household_visit", 1, False) in directory.schema_versions(city.couch)
    assert directory.restore_schema(city.couch, "household_visit", 1) is False


def test_a_retired_version_is_refused_and_the_current_one_named(tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, folder)
    v1 = json.loads((folder / "household_visit.v1.schema.json").read_text(encoding="utf-8"))
    v2 = {**v1, "$id": "urn:linli:schema:household_visit:v2"}
    v2["properties"] = {**v1["properties"], "schema_version": {
        **v1["properties"]["schema_version"], "const": 2}}
    (folder / "household_visit.v2.schema.json").write_text(json.dumps(v2), encoding="utf-8")
    registry = SchemaRegistry(folder)
    worker = User(name="w1", role="worker", grids=frozenset({"g1"}))
    ctx = WriteContext(user=worker, db=grid_db("g1"), grid="g1", max_document_bytes=1 << 20,
                       max_attachment_bytes=1 << 20,
                       retired=frozenset({("household_visit", 1)}))
    old = visit("g1", "w1", 1)
    refusal = check_record(old, ctx, registry)
    assert refusal is not None and "第 1 版已停用" in refusal.reason and "(v2)" in refusal.reason
    assert check_record({**old, "schema_version": 2}, ctx, registry) is None
    assert check_record(old, WriteContext(**{**ctx.__dict__, "retired": frozenset()}),
                        registry) is None


async def test_the_gateway_refuses_a_retired_form_until_restored(client: Any,
                                                                 city: City) -> None:
    code = await city.grid()
    worker = await city.user("worker", grids=[code])
    await wait_for_user(client, worker)
    known = client.app[DIRECTORY]
    # As `linli schema retire` records it once a version 2 is published (none is, yet).
    marker = {"_id": "retired_schema:household_visit.v1", "retired_at": "2026-11-26T00:00:00Z"}
    store = await city.run(city.couch.__getitem__, DIRECTORY_DB)
    await city.run(store.save, marker)
    try:
        await eventually(lambda: ("household_visit", 1) in known.retired_schemas, every=0.02)
        resp = await client.post(f"/couch/{grid_db(code)}/_bulk_docs",
                                 json={"docs": [visit(code, worker, 1)]}, headers=basic(worker))
        [result] = await resp.json()
        assert result["error"] == "forbidden" and "已停用" in result["reason"]
        assert "update the app" in result["reason"]
    finally:
        await city.run(lambda: store.delete(store[marker["_id"]]))
    await eventually(lambda: ("household_visit", 1) not in known.retired_schemas, every=0.02)
    resp = await client.post(f"/couch/{grid_db(code)}/_bulk_docs",
                             json={"docs": [visit(code, worker, 1)]}, headers=basic(worker))
    [result] = await resp.json()
    assert result.get("ok") is True, result
