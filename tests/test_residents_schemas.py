"""The residents' record types at the gateway as it stands, before any resident route exists:
each keeps to its database and its writers (`x-database`, `x-writers`), so adding the schemas
opened nothing. Notices, receipts and data requests live in the residents database and are
refused in a grid database; a sign-up, a resident link and a correction request are never made
by a worker's phone (server/domain/resident_queue.py), a receipt is the resident's; a grid
worker may make an activation code for a household of their grid."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from conftest import City, basic, wait_for_user

from server.domain.scope import RESIDENTS_DB

DOCUMENTS = json.loads((Path(__file__).parent / "fixtures" / "documents.json").read_text(
    encoding="utf-8"))["types"]


def fixture(doc_type: str, grid: str, author: str) -> dict[str, Any]:
    doc = copy.deepcopy(DOCUMENTS[doc_type]["valid"][0])
    doc.update(created_by=author, **({"grid": grid} if "grid" in doc else {}))
    doc.pop("used_by", None)
    return doc


async def test_resident_types_keep_to_their_database_and_writers(client: Any,
                                                                  city: City) -> None:
    grid = await city.grid(community="c_res")
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    # A code is made for a household the grid holds (the fixtures' household).
    await city.save(grid, {"_id": DOCUMENTS["activation_code"]["valid"][0]["household"],
                           "type": "household", "grid": grid})
    expected = {
        "notice": (403, "不保存在网格数据库中"),
        "notice_receipt": (403, "not kept in a grid database"),
        "data_request": (403, "not kept in a grid database"),
        "signup": (403, "Sign-ups are made by residents"),
        "activation_code": (201, ""),
        "resident": (403, "Resident links are made by the server"),
        "correction_request": (403, "Requests are made by residents"),
    }
    for doc_type, (status, words) in expected.items():
        doc = fixture(doc_type, grid, worker)
        resp = await client.put(f"/couch/grid-{grid}/{doc['_id']}", json=doc,
                                headers=basic(worker))
        body = await resp.json()
        assert resp.status == status, (doc_type, body)
        assert words in body.get("reason", ""), (doc_type, body)


async def test_the_residents_database_is_made_at_start_and_internal(client: Any,
                                                                     city: City) -> None:
    """Notices, receipts and data requests need their database from the first start on; like
    the directory it is the server's: no one, an admin neither, reaches it through /couch/."""
    assert RESIDENTS_DB in await city.run(lambda: list(city.couch))
    admin = await city.user(role="admin")
    await wait_for_user(client, admin)
    for method, path in (("GET", f"/couch/{RESIDENTS_DB}/_all_docs"),
                         ("GET", f"/couch/{RESIDENTS_DB}/_changes"),
                         ("PUT", f"/couch/{RESIDENTS_DB}/data_request:x")):
        resp = await client.request(method, path, headers=basic(admin),
                                    json={"type": "data_request"})
        assert resp.status in (403, 404), (method, path, resp.status)
