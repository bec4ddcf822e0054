"""The project's CouchDB design documents, one JSON file each in this folder, and their one
installer. The server installs them at start (every grid's) and before it first queries the
receipts' views; `linli grid add` installs a new grid's. A design document is only rewritten when
its content changed, since every rewrite makes the store rebuild the views of that database."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiohttp

from server.store.couch import Conflict, CouchClient, NotFound, basic_authorization, db_path

DESIGN_DIR = Path(__file__).resolve().parent
GRID = "grid"  # a grid's (网格) database: its records and the views the server reads
RECEIPTS = "receipts"  # the receipts database, linli-receipts: who sent what, and when
RESIDENTS = "residents"  # the residents database, linli-residents: notices, receipts, requests
MEDIATION = "mediation"  # the mediation cases' database, linli-mediation: cases by their circle
# Which design documents (the files of this folder, without .json) each kind of database holds.
HELD_BY: Mapping[str, tuple[str, ...]] = MappingProxyType({
    GRID: ("linli",),
    RECEIPTS: ("receipts",),
    RESIDENTS: ("residents",),
    MEDIATION: ("mediation",),
})


def design_docs(kind: str = GRID) -> list[dict[str, Any]]:
    """The design documents a database of `kind` holds, read from their files."""
    return [json.loads((DESIGN_DIR / f"{name}.json").read_text(encoding="utf-8"))
            for name in HELD_BY[kind]]


def needs_update(stored: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    if stored is None:
        return True
    return any(stored.get(k) != v for k, v in wanted.items() if k != "_id")


def updated(stored: dict[str, Any] | None, wanted: dict[str, Any]) -> dict[str, Any]:
    """The document to write: `wanted`, on top of the stored revision if there is one."""
    return {**wanted, "_rev": stored["_rev"]} if stored and "_rev" in stored else dict(wanted)


async def install(couch: CouchClient, db: str, kind: str) -> list[str]:
    """Bring the design documents of `db`, a database of `kind`, up to date; the ids written.
    A 409 is another process installing the same document meanwhile: theirs stands. Any other
    failure is the caller's to retry."""
    written: list[str] = []
    for wanted in design_docs(kind):
        path = db_path(db, wanted["_id"])
        try:
            stored: dict[str, Any] | None = await couch.get(path)
        except NotFound:
            stored = None
        if needs_update(stored, wanted):
            with contextlib.suppress(Conflict):
                await couch.put(path, updated(stored, wanted))
                written.append(str(wanted["_id"]))
    return written


def install_blocking(url: str, db: str, kind: str,
                     credentials: tuple[str, str] | None = None) -> list[str]:
    """The same installer for the synchronous command line (`linli grid add`, which talks to the
    store through python-couchdb): on an event loop and in a thread of its own, so that a caller
    inside a running event loop (a test) is never asked to nest one."""

    async def run() -> list[str]:
        async with aiohttp.ClientSession() as session:
            couch = CouchClient(url, session)
            if credentials is not None:
                couch.auth = basic_authorization(*credentials)
            return await install(couch, db, kind)

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()
