"""Issue 13, item 7: no export row mixes two records.

The cause found: PouchDB Server answers `_bulk_docs` out of input order, and couchdb-python's
`Database.update` matches answers by position, writing one record's `_id` and `_rev` into
another's dict (server/store/bulk.py). Every writer of many documents now matches by id; these tests
hold the writers to it and check every row of every export against its own record, with many
records across page boundaries, ids that are prefixes of each other and the same ids in
several grids."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import City, basic, wait_for_user
from openpyxl import load_workbook

from server.demo import seed
from server.store.bulk import match_results, save_many
from server.sync import exports

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

# Ids that sort next to each other and are prefixes of one another, in every grid; then many
# numbered ones, so that every page boundary falls somewhere among them.
TRICKY_KEYS = ["1", "1-", "1-0", "1.0", "1:0", "1_", "10", "1a", "1A", "A", "a", "Z.9", "z-",
               "same"]


def keys(count: int) -> list[str]:
    return TRICKY_KEYS + [f"n{n:04d}" for n in range(count - len(TRICKY_KEYS))]


def person(grid: str, key: str, n: int) -> dict[str, Any]:
    """A person whose every field names its own grid and key (or is derived from its number), so
    a cell taken from another record shows."""
    return {"_id": f"person:{key}", "type": "person", "schema_version": 1, "grid": grid,
            "created_by": "w", "household": f"household:{grid}.{key}",
            "name": f"居民{grid}/{key}", "relationship": "0", "sex": str(1 + n % 2),
            "birth_year": 1920 + n % 90, "birth_month": 1 + n % 12,
            "id_number": f"33{n:016d}", "phone": f"139{n:08d}",
            "residence_status": ["registered", "floating", "unknown"][n % 3],
            "status": ["present", "moved_out"][n % 2]}


def household(grid: str, key: str, n: int) -> dict[str, Any]:
    return {"_id": f"household:{key}", "type": "household", "schema_version": 2, "grid": grid,
            "created_by": "w", "registry": {"source": "grid_survey"},
            "address": {"compound": f"c{n}", "building": str(n % 40 + 1), "room": f"{n}01"},
            "head_name": f"户主{grid}/{key}", "phone": f"138{n:08d}",
            "household_type": ["family", "single"][n % 2], "tenure": "owned",
            "area_m2": 40 + n % 100, "special_groups": [["elderly_alone"], []][n % 2],
            "status": ["active", "vacant"][n % 2]}


@pytest.mark.slow  # 2,500 records
def test_bulk_answers_go_to_their_own_documents(city: City) -> None:
    """Written in batches as the seeder and the importer write: each answer is its own
    document's, and the caller's documents are left exactly as they were (couchdb-python's
    update stamped `_rev`, and another record's `_id` when the store answered out of order)."""
    grid = city.blocking.grid()
    db = city.db(grid)
    docs = [person(grid, key, n) for n, key in enumerate(keys(2500))]
    sent = copy.deepcopy(docs)
    assert seed.save_all(db, docs) == len(docs)
    mixed = [(d["_id"], s["_id"]) for d, s in zip(docs, sent, strict=True) if d["_id"] != s["_id"]]
    assert not mixed, f"{len(mixed)} documents now carry another record's id, e.g. {mixed[:3]}"
    assert docs == sent
    for doc in docs[::97]:
        stored = db[doc["_id"]]
        assert stored["name"] == doc["name"] and stored["id_number"] == doc["id_number"]
    # Again, changed: the answers, by id, carry the second revisions.
    changed = [{**doc, "_rev": db[doc["_id"]]["_rev"], "name": doc["name"] + "2"}
               for doc in docs[:1200]]
    results = save_many(db, changed)
    assert [(ok, doc_id) for ok, doc_id, _ in results] == [(True, d["_id"]) for d in changed]
    assert all(str(rev).startswith("2-") for _, _, rev in results)
    assert db[changed[700]["_id"]]["name"] == changed[700]["name"]


def test_answers_are_matched_by_id_whatever_their_order() -> None:
    docs = [{"_id": f"person:{k}"} for k in ("b", "a", "c", "a")]
    answers = [{"id": "person:a", "rev": "1-x"}, {"id": "person:c", "error": "conflict",
                                                   "reason": "Document update conflict."},
               {"id": "person:a", "error": "forbidden", "reason": "no"},
               {"id": "person:b", "rev": "1-y"}]
    results = match_results(docs, answers)
    assert [(ok, doc_id) for ok, doc_id, _ in results] == [
        (True, "person:b"), (True, "person:a"), (False, "person:c"), (False, "person:a")]
    assert results[0][2] == "1-y" and results[1][2] == "1-x"
    assert match_results([{"_id": "person:z"}], [])[0][0] is False


def read_table(kind: str, content: bytes) -> list[list[str]]:
    if kind == "csv":
        return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    sheet = load_workbook(io.BytesIO(content), read_only=True).active
    return [["" if c is None else str(c) for c in row] for row in sheet.iter_rows(values_only=True)]


def grid_code(shown: str) -> str:
    """A test grid's code from the name a sheet shows (conftest names it `测试网格 <code>`)."""
    assert shown.startswith("测试网格 "), shown
    return shown.removeprefix("测试网格 ")


def labels(doc_type: str, field: str) -> dict[str, str]:
    """An enum field's Chinese labels, read from its schema file (not from the code tested)."""
    version = max(int(p.name.split(".v")[1].split(".")[0])
                  for p in SCHEMAS.glob(f"{doc_type}.v*.schema.json"))
    prop = json.loads((SCHEMAS / f"{doc_type}.v{version}.schema.json").read_text())[
        "properties"][field]
    return {k: v[0] for k, v in (prop.get("x-enum-labels")
                                 or prop["items"]["x-enum-labels"]).items()}


def shown(doc_type: str, field: str, value: str) -> str:
    """A value by its label; one the schema does not know (written past the server) as it is."""
    return labels(doc_type, field).get(value, value)


def expected_person(doc: dict[str, Any]) -> dict[str, str]:
    return {"编号 id": doc["_id"], "网格 grid": f"测试网格 {doc['grid']}",
            "户 household": doc["household"], "姓名 name": doc["name"],
            "性别 sex": shown("person", "sex", doc["sex"]),
            "出生年 birth_year": str(doc["birth_year"]), "身份证号 id_number": doc["id_number"],
            "联系电话 phone": doc["phone"], "户籍状态 residence_status": shown(
                "person", "residence_status", doc["residence_status"]),
            "状态 status": shown("person", "status", doc["status"])}


def expected_household(doc: dict[str, Any]) -> dict[str, str]:
    special = labels("household", "special_groups")
    return {"编号 id": doc["_id"], "网格 grid": f"测试网格 {doc['grid']}",
            "户主 head_name": doc["head_name"], "联系电话 phone": doc["phone"],
            "户类型 household_type": shown("household", "household_type", doc["household_type"]),
            "面积 area_m2": str(doc["area_m2"]),
            "特殊人群 special_groups": "、".join(special.get(g, g) for g in doc["special_groups"]),
            "状态 status": shown("household", "status", doc["status"])}


@pytest.mark.slow  # hundreds of records, every export
@pytest.mark.parametrize("page", [1, 7, 50])
async def test_no_export_row_mixes_two_records(
        client: Any, city: City, monkeypatch: pytest.MonkeyPatch, page: int) -> None:
    """Three grids of one community holding the same tricky ids, some records edited and some
    deleted after they were written, exported with pages of 1, 7 and 50 rows: every row of
    every export (CSV and XLSX, masked and not) is exactly its own record, each record once."""
    monkeypatch.setattr(exports, "PAGE", page)
    community = f"integrity{page}"
    grids = [await city.grid(community=community) for _ in range(3)]
    boss = await city.user("supervisor", communities=[community], rights=["unmask"])
    records: dict[tuple[str, str], dict[str, Any]] = {}

    def write(g: int, grid: str) -> None:
        """Each grid's records written, some edited and some deleted after, as an import would."""
        db = city.db(grid)
        docs = [make(grid, key, n + 1000 * g) for n, key in enumerate(keys(60 + 45 * g))
                for make in (person, household)]
        assert all(ok for ok, _, _ in save_many(db, docs))
        edited = [{**d, "_rev": db[d["_id"]]["_rev"], "name": d.get("name", "") + "·改",
                   "head_name": d.get("head_name", "") + "·改"} for d in docs[3::11]]
        edited = [{k: v for k, v in d.items() if v != "·改"} for d in edited]
        assert all(ok for ok, _, _ in save_many(db, edited))
        gone = {d["_id"] for d in docs[5::13]} - {d["_id"] for d in edited}
        assert all(ok for ok, _, _ in save_many(
            db, [{"_id": i, "_rev": db[i]["_rev"], "_deleted": True} for i in gone]))
        for doc in [*docs, *edited]:
            if doc["_id"] not in gone:
                records[(grid, doc["_id"])] = doc

    for g, grid in enumerate(grids):
        await city.run(write, g, grid)
    await wait_for_user(client, boss)

    for what, expected in (("persons", expected_person), ("households", expected_household)):
        wanted = {k: expected(v) for k, v in records.items() if v["type"] == what[:-1]}
        for kind in ("csv", "xlsx"):
            resp = await client.get(f"/api/export?what={what}&format={kind}&community="
                                    f"{community}&unmask=1&reason=home_visit",
                                    headers=basic(boss))
            assert resp.status == 200
            table = read_table(kind, await resp.read())
            header, body = table[0], table[1:]
            rows = [dict(zip(header, row, strict=True)) for row in body]
            seen = [(grid_code(row["网格 grid"]), row["编号 id"]) for row in rows]
            assert len(seen) == len(set(seen)) == len(wanted), (what, kind)
            for row, key in zip(rows, seen, strict=True):
                mine = wanted[key]
                assert {h: row[h] for h in mine} == mine, (what, kind, key)
        # Masked, too: the same records, row by row.
        resp = await client.get(f"/api/export?what={what}&community={community}",
                                headers=basic(boss))
        rows = read_table("csv", await resp.read())
        header = rows[0]
        name = "姓名 name" if what == "persons" else "户主 head_name"
        for row in rows[1:]:
            cells = dict(zip(header, row, strict=True))
            key = (grid_code(cells["网格 grid"]), cells["编号 id"])
            assert cells[name] == wanted[key][name]
            assert cells["联系电话 phone"] == wanted[key]["联系电话 phone"][:3] + "****" + \
                wanted[key]["联系电话 phone"][-4:]
