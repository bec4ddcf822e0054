"""Issue 23, item 2: reveal with a reason, and the append-only audit of reveals.

A holder of the `unmask` right sees one record's sensitive fields only by giving a typed
reason (核实身份, 入户走访, 其他 with a text), for `reveal_minutes`; an unmasked export needs one
too. Each reveal is one entry in `linli-audit` (who, whom, which fields, why, when, until); the
admin lists, filters and exports them; no route of the app, `/couch/` writes included,
changes or removes one."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from conftest import City, basic, eventually, wait_for_user

from server.config import Config
from server.domain.scope import AUDIT_DB
from server.web.api import OPENAPI
from server.web.app import create_app

ID_NUMBER = "33060219510604003X"


def person(grid: str, n: int) -> dict[str, Any]:
    return {"_id": f"person:{grid}-{n}", "type": "person", "schema_version": 1, "grid": grid,
            "created_by": "w", "household": f"household:{grid}-0", "name": f"居民{n}",
            "relationship": "0", "sex": "1", "birth_year": 1951, "birth_month": 6,
            "id_number": ID_NUMBER, "phone": f"139057012{n:02d}", "status": "present"}


@dataclasses.dataclass
class Town:
    client: Any
    city: City
    grid: str
    community: str
    trusted: str
    masked: str
    admin: str

    async def get(self, user: str, url: str) -> tuple[int, Any]:
        resp = await self.client.get(url, headers=basic(user))
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text

    def record_url(self, n: int, **query: str) -> str:
        extra = "".join(f"&{k}={quote(v, safe='%')}" for k, v in query.items())
        return f"/api/review/record?grid={self.grid}&id={quote(f'person:{self.grid}-{n}')}{extra}"

    async def entries(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            db = self.city.couch[AUDIT_DB]
            return [dict(row.doc) for row in db.view("_all_docs", include_docs=True)]
        return await self.city.run(read)


async def make_town(client: Any, city: City) -> Town:
    community = f"revealville{id(client) % 100000}"
    grid = await city.grid(community=community)
    town = Town(client, city, grid, community,
                trusted=await city.user("supervisor", communities=[community], rights=["unmask"]),
                masked=await city.user("supervisor", communities=[community]),
                admin=await city.user("admin"))
    for name in (town.trusted, town.masked, town.admin):
        await wait_for_user(client, name)
    for n in range(3):
        await city.save(grid, person(grid, n))
    return town


@pytest.fixture
async def town(client: Any, city: City) -> Town:
    return await make_town(client, city)


async def mine(town: Town, user: str) -> list[dict[str, Any]]:
    return [e for e in await town.entries() if e.get("user") == user]


async def test_a_reveal_needs_the_right_and_a_reason(town: Town) -> None:
    status, body = await town.get(town.masked, town.record_url(0, unmask="1",
                                                               reason="home_visit"))
    assert status == 403 and body["error"] == "forbidden"
    for query in ({}, {"reason": "curious"}, {"reason": "other"},
                  {"reason": "other", "reason_text": "\x00x\u2028"},
                  {"reason": "other", "reason_text": "x" * 201},
                  {"reason": "verify_identity%ED%A0%80"}):
        status, body = await town.get(town.trusted, town.record_url(0, unmask="1", **query))
        assert status == 400 and body["error"] == "bad_request", query
        assert "理由" in body["reason"] and "reason" in body["reason"], body
        assert ID_NUMBER not in json.dumps(body)
    assert await mine(town, town.trusted) == []

    status, body = await town.get(town.trusted, town.record_url(0, unmask="1",
                                                                reason="home_visit"))
    assert status == 200 and body["record"]["id_number"] == ID_NUMBER
    [entry] = await mine(town, town.trusted)
    assert {k: entry[k] for k in ("user", "role", "kind", "grid", "record", "fields", "reason",
                                  "reason_label", "reason_text")} == {
        "user": town.trusted, "role": "supervisor", "kind": "record", "grid": town.grid,
        "record": f"person:{town.grid}-0", "fields": ["id_number", "phone"],
        "reason": "home_visit", "reason_label": "入户走访", "reason_text": ""}
    assert entry["at"] < entry["until"] == body["revealed_until"]

    # Within the reveal the same record reads unmasked again, with no new entry...
    status, body = await town.get(town.trusted, town.record_url(0, unmask="1"))
    assert status == 200 and body["record"]["id_number"] == ID_NUMBER
    assert len(await mine(town, town.trusted)) == 1
    # ...but the reveal is of that record only, and of that user only.
    status, _ = await town.get(town.trusted, town.record_url(1, unmask="1"))
    assert status == 400
    status, body = await town.get(town.trusted, town.record_url(
        1, unmask="1", reason="other", reason_text="  核对\t户籍  "))
    assert status == 200
    assert [e["reason_text"] for e in await mine(town, town.trusted)
            if e["record"].endswith("-1")] == ["核对 户籍"]
    # Masked without unmask=1, as ever.
    status, body = await town.get(town.trusted, town.record_url(2))
    assert status == 200 and body["record"]["id_number"] == "330***********003X"


async def test_an_unmasked_export_needs_a_reason(town: Town) -> None:
    url = f"/api/export?what=persons&grid={town.grid}&unmask=1"
    status, body = await town.get(town.trusted, url)
    assert status == 400 and body["error"] == "bad_request"
    status, _ = await town.get(town.masked, url + "&reason=home_visit")
    assert status == 403
    assert await mine(town, town.trusted) == []
    status, text = await town.get(town.trusted, url + "&reason=verify_identity")
    assert status == 200 and ID_NUMBER in text
    [entry] = await mine(town, town.trusted)
    assert entry["kind"] == "export" and entry["record"] == "persons"
    assert entry["grid"] == town.grid and entry["reason"] == "verify_identity"
    assert set(entry["fields"]) >= {"id_number", "phone"}
    status, text = await town.get(town.trusted, f"/api/export?what=persons&grid={town.grid}")
    assert status == 200 and ID_NUMBER not in text and len(await mine(town, town.trusted)) == 1


@pytest.fixture
async def brief_client(aiohttp_client: Any, config: Config) -> AsyncIterator[Any]:
    yield await aiohttp_client(create_app(dataclasses.replace(config, reveal_minutes=0.005)))


async def test_a_reveal_ends_after_its_time(brief_client: Any, city: City) -> None:
    town = await make_town(brief_client, city)
    status, _ = await town.get(town.trusted, town.record_url(0, unmask="1", reason="home_visit"))
    assert status == 200

    async def masked_again() -> bool:
        status, _ = await town.get(town.trusted, town.record_url(0, unmask="1"))
        return status == 400
    await eventually(masked_again, seconds=20)


async def test_the_admin_lists_filters_and_exports_the_audit(town: Town) -> None:
    await town.get(town.trusted, town.record_url(0, unmask="1", reason="home_visit"))
    await town.get(town.trusted, town.record_url(1, unmask="1", reason="other",
                                                 reason_text="=HYPERLINK(\"x\")"))
    for user in (town.trusted, town.masked):
        status, body = await town.get(user, "/api/audit")
        assert status == 403 and body["error"] == "forbidden"
    status, body = await town.get(town.admin, f"/api/audit?user={town.trusted}")
    assert status == 200 and body["total"] == 2
    assert [e["record"] for e in body["entries"]] == [f"person:{town.grid}-1",
                                                      f"person:{town.grid}-0"]  # newest first
    status, body = await town.get(town.admin,
                                  f"/api/audit?user={town.trusted}&reason=home_visit")
    assert [e["reason"] for e in body["entries"]] == ["home_visit"]
    day = body["entries"][0]["at"][:10]
    status, body = await town.get(town.admin, f"/api/audit?user={town.trusted}&since={day}"
                                              f"&until={day}&record=person:{town.grid}-1")
    assert body["total"] == 1
    status, body = await town.get(town.admin, f"/api/audit?user={town.trusted}&until=2000-01-01")
    assert body["total"] == 0
    resp = await town.client.get(f"/api/audit/export?user={town.trusted}",
                                 headers=basic(town.admin))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert len(rows) == 3 and rows[0][0].startswith("时间")
    assert rows[1][8] == "'=HYPERLINK(\"x\")"  # a reason cannot become a formula
    status, _ = await town.get(town.trusted, f"/api/audit/export?user={town.trusted}")
    assert status == 403


def couch_writes(entry: dict[str, Any], grid: str) -> list[tuple[str, str, Any]]:
    """Every way CouchDB offers to change or remove a document or its database."""
    db, doc = f"/couch/{AUDIT_DB}", f"/couch/{AUDIT_DB}/{quote(entry['_id'], safe='')}"
    forged = {**entry, "reason_text": "forged"}
    return [
        ("PUT", doc, forged), ("DELETE", f"{doc}?rev={entry['_rev']}", None),
        ("POST", db, {**forged, "_id": entry["_id"]}),
        ("POST", f"{db}/_bulk_docs", {"docs": [forged]}),
        ("POST", f"{db}/_bulk_docs?new_edits=false", {"docs": [
            {**forged, "_rev": "9-" + "a" * 32}], "new_edits": False}),
        ("POST", f"{db}/_bulk_docs", {"docs": [{"_id": entry["_id"], "_rev": entry["_rev"],
                                                "_deleted": True}]}),
        ("POST", f"{db}/_purge", {entry["_id"]: [entry["_rev"]]}),
        ("PUT", f"{doc}/note.txt?rev={entry['_rev']}", "x"),
        ("COPY", doc, None), ("DELETE", db, None), ("PUT", db, None),
        ("PUT", f"{db}/_design/x", {"validate_doc_update": "function(){}"}),
        ("PUT", f"{db}/_security", {"members": {"names": []}}),
        ("PUT", f"{db}/_local/x", {"a": 1}), ("POST", f"{db}/_compact", {}),
        ("POST", f"{db}/_revs_limit", 1), ("PUT", f"{db}/_revs_limit", 1),
        ("GET", doc, None), ("GET", f"{db}/_all_docs?include_docs=true", None),
        ("POST", "/couch/_replicate", {"source": f"grid-{grid}", "target": AUDIT_DB}),
        ("POST", "/couch/_replicate", {"source": AUDIT_DB, "target": f"grid-{grid}"}),
    ]


@pytest.mark.slow  # every route of the API, every /couch/ write, as every role
async def test_no_route_changes_or_removes_an_entry(town: Town) -> None:
    await town.get(town.trusted, town.record_url(0, unmask="1", reason="home_visit"))
    before = await town.entries()
    [entry] = [e for e in before if e.get("user") == town.trusted]
    worker = await town.city.user("worker", grids=[town.grid])
    await wait_for_user(town.client, worker)
    with open(OPENAPI, encoding="utf-8") as handle:
        paths = json.load(handle)["paths"]
    eid = quote(entry["_id"], safe="")
    api_writes = [(method.upper(), re.sub(r"\{\w+\}", eid, path))
                  for path, item in paths.items() for method in item
                  if method in ("post", "put", "delete", "patch")]
    body = {"id": entry["_id"], "_id": entry["_id"], "_rev": entry["_rev"], "_deleted": True,
            "db": AUDIT_DB, "grid": town.grid, "record": entry["_id"], "docs": [entry]}
    for user in (town.admin, town.trusted, worker):
        for method, url, payload in couch_writes(entry, town.grid):
            data = payload if isinstance(payload, str) else None
            resp = await town.client.request(
                method, url, json=None if data is not None else payload, data=data,
                headers=basic(user))
            assert resp.status >= 400, (user, method, url, resp.status, await resp.text())
            assert resp.status < 500, (method, url, await resp.text())
        for method, path in api_writes:
            resp = await town.client.request(method, path, json=body, headers=basic(user))
            assert resp.status < 500, (method, path, await resp.text())
    after = await town.entries()
    assert [(e["_id"], e["_rev"]) for e in after if e.get("user") == town.trusted] == [
        (entry["_id"], entry["_rev"])]
    assert {e["_id"] for e in before} <= {e["_id"] for e in after}
    assert all(e["_rev"] == b["_rev"] for b in before for e in after if e["_id"] == b["_id"])
