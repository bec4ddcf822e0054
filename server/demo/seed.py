"""`linli seed-demo`: a synthetic city (demo/city.py) written through the paths real data takes.

- the hierarchy into the directory, and each grid through `linli grid add` (database, views);
- households as a street office delivers them: a registry file in the import template, imported
  by `linli import households`;
- what workers collect (buildings, persons, visits, census forms, screenings) checked exactly as
  the gateway checks a phone's records, as the grid's worker, before it is stored;
- with `--logins`, a login per grid's worker (password: the demo password).

Idempotent: seeding the same city twice changes nothing.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

import couchdb

from server.admin import directory
from server.admin.registry_import import TEMPLATE, ImportSummary, import_households
from server.config import Config
from server.demo.city import City, GridDocs, iter_grids, plan_city
from server.demo.residents import plan_residents
from server.domain.accounts import hash_password
from server.domain.scope import DIRECTORY_DB, RESIDENTS_DB, User, grid_db
from server.domain.signup import SIGNUP_AUTHOR
from server.domain.validation import (
    DEFAULT_LIMITS,
    SchemaRegistry,
    check_authorship,
    check_document,
    shared_registry,
    write_context,
)
from server.store.bulk import save_many

BATCH = 1000
DEMO_PASSWORD = "linli-demo-2026"  # of every demo login
SIGNUP_SERVER = User(name=SIGNUP_AUTHOR, role="admin")  # who writes sign-ups and their links


def household_row(doc: dict[str, Any]) -> list[str]:
    """A household document as a row of the import template (codes, which the importer takes
    as readily as the labels)."""
    address, registry = doc["address"], doc["registry"]
    values = {"registry.code": registry["code"], "registry.source": registry["source"],
              "grid": doc["grid"], "address.compound": address["compound"],
              "address.compound_name": address.get("compound_name", ""),
              "address.building": address["building"], "address.unit": address.get("unit", ""),
              "address.room": address["room"], "head_name": doc.get("head_name", ""),
              "phone": doc.get("phone", ""), "household_type": doc.get("household_type", ""),
              "tenure": doc.get("tenure", ""), "area_m2": str(doc.get("area_m2", "")),
              "special_groups": ",".join(doc.get("special_groups", [])),
              "vehicles": str(doc.get("vehicles", "")), "pets": str(doc.get("pets", "")),
              "status": doc.get("status", ""), "remarks": doc.get("remarks", "")}
    return [values[field] for field in TEMPLATE.values()]


def save_all(db: couchdb.Database, docs: list[dict[str, Any]]) -> int:
    """Store `docs`, leaving unchanged ones alone; the number written."""
    written = 0
    for start in range(0, len(docs), BATCH):
        batch = docs[start:start + BATCH]
        stored = {row.id: row.doc for row in db.view(
            "_all_docs", keys=[d["_id"] for d in batch], include_docs=True)
            if row.doc is not None}
        writes = []
        for doc in batch:
            old = stored.get(doc["_id"])
            if old is None:
                writes.append(doc)
            elif {k: v for k, v in old.items() if k != "_rev"} != doc:
                writes.append({**doc, "_rev": old["_rev"]})
        if writes:
            failed = [(doc_id, err) for ok, doc_id, err in save_many(db, writes) if not ok]
            if failed:
                raise RuntimeError(f"{len(failed)} documents not written, e.g. {failed[0]}")
        written += len(writes)
    return written


class Progress:
    def __init__(self, total: int, out: TextIO | None) -> None:
        self.total, self.out, self.done, self.started = total, out, 0, time.monotonic()

    def step(self, what: str) -> None:
        self.done += 1
        if self.out is None:
            return
        width = 30
        filled = width * self.done // max(self.total, 1)
        self.out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                       f"{what} {time.monotonic() - self.started:.0f}s ")
        self.out.flush()

    def end(self) -> None:
        if self.out is not None:
            self.out.write("\n")


def checked_records(grid: GridDocs, registry: SchemaRegistry) -> list[dict[str, Any]]:
    """The grid's collected records, each checked as the gateway would check it from the
    worker's phone (buildings as from an admin, who records them)."""
    worker = User(name=grid.worker, role="worker", grids=frozenset({grid.code}))
    admin = User(name="admin", role="admin")
    docs: list[dict[str, Any]] = []
    for group, user in ((grid.buildings, admin), (grid.persons, worker), (grid.visits, worker),
                        (grid.census, worker), (grid.screenings, worker)):
        ctx = write_context(user, grid.code, DEFAULT_LIMITS)
        for doc in group:
            refusal = check_document(doc, ctx, registry, 0) or check_authorship(doc, ctx)
            if refusal is not None:
                raise ValueError(f"{doc['_id']}: {refusal.reason}")
            docs.append(doc)
    return docs


def seed_city(server: couchdb.Server, config: Config, households: int, seed: int, *,
              logins: bool = False, progress: TextIO | None = sys.stderr) -> dict[str, Any]:
    plan = plan_city(households, seed)
    registry = shared_registry()
    started = time.monotonic()
    # The hierarchy: grids through `grid add`, the rest of the directory as it is.
    grid_docs = [d for d in plan.directory_docs if d["type"] == "grid"]
    others = [d for d in plan.directory_docs if d["type"] != "grid"]
    for doc in others:
        problems = registry.problems(doc)
        if problems:
            raise ValueError(f"{doc['_id']}: {problems}")
    save_all(server[DIRECTORY_DB], others)
    bar = Progress(len(grid_docs), progress)
    for doc in grid_docs:
        directory.add_grid(server, doc["code"], doc["name"], doc.get("community", ""),
                           doc.get("street", ""))
        bar.step("网格 grids")
    bar.end()
    # Households: a registry file, imported.
    folder = config.data / "seed"
    folder.mkdir(parents=True, exist_ok=True)
    registry_file = folder / f"households-{households}-{seed}.csv"
    collected = 0
    bar = Progress(len(grid_docs), progress)
    with registry_file.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(TEMPLATE)
        for grid in iter_grids(households, seed, plan=plan):
            writer.writerows(household_row(h) for h in grid.households)
            collected += save_all(server[grid_db(grid.code)], checked_records(grid, registry))
            bar.step("采集记录 records")
    bar.end()
    imported: ImportSummary = import_households(server, registry_file, progress=progress,
                                                 registry=registry)
    if imported.refused:
        raise ValueError(f"{imported.refused} households refused; see {imported.error_file}")
    users = 0
    if logins:
        existing = {u.name for u in directory.list_users(server)}
        for grid in grid_docs:
            name = f"w_{grid['code']}"
            if name not in existing:
                directory.add_user(server, name, "worker", DEMO_PASSWORD, grids=[grid["code"]])
                users += 1
    return {"grids": len(grid_docs), "households_created": imported.created,
            "households_unchanged": imported.unchanged, "records_written": collected,
            "logins": users, "seconds": round(time.monotonic() - started, 1),
            "registry_file": str(registry_file)}


def seed_residents(server: couchdb.Server, city: City, community: str, seed: int
                   ) -> dict[str, int]:
    """The residents of demo/residents.py: each grid's records checked as the server's own
    writes of sign-up and activation are (server/sync/residents.py), the notices and receipts
    by their schemas, and accounts made where missing (a password hash is new each time it is
    made, so an account is never rewritten)."""
    directory_db = server[DIRECTORY_DB]
    found = plan_residents(city, community, hash_password(DEMO_PASSWORD), seed)
    registry = shared_registry()
    for grid, docs in sorted(found.grids.items()):
        ctx = write_context(SIGNUP_SERVER, grid, DEFAULT_LIMITS)
        for doc in docs:
            refusal = check_document(doc, ctx, registry, 0)
            if refusal is not None:
                raise ValueError(f"{doc['_id']}: {refusal.reason}")
        save_all(server[grid_db(grid)], docs)
    for doc in found.notices:  # the residents database's: checked by their schemas
        problems = registry.problems(doc)
        if problems:
            raise ValueError(f"{doc['_id']}: {problems}")
    save_all(server[RESIDENTS_DB], found.notices)
    ids = [d["_id"] for d in found.directory]
    stored = {row.id for row in directory_db.view("_all_docs", keys=ids) if "value" in row}
    save_all(directory_db, [d for d in found.directory if d["_id"] not in stored])
    return found.outcomes


def seed_summary(result: dict[str, Any]) -> Iterable[str]:
    yield "演示城市已写入 / demo city written"
    for key, value in result.items():
        yield f"  {key}: {value}"
