"""Exports (导出) to CSV or XLSX: households and persons read from the store page by page with
bounded memory, and every sheet written as it streams. What the rows hold (masking, safe cells,
the review list, the aggregates) is server/domain/exports.py."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tempfile
from collections.abc import AsyncIterator, Iterable
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from server.domain.exports import PREFIX, Names, address, header, record_row, safe_row
from server.domain.scope import grid_db
from server.store.couch import CouchClient, NotFound, db_path

PAGE = 1000


async def pages(couch: CouchClient, grids: Iterable[str],
                prefix: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The records whose ids start with `prefix`, grid by grid, PAGE at a time. The next page
    is asked for while the caller works on this one, so the store and the writer overlap."""
    codes = list(grids)

    async def fetch(index: int, start: str) -> list[dict[str, Any]]:
        try:
            page = await couch.get(db_path(grid_db(codes[index]), "_all_docs"),
                                   include_docs="true", startkey=json.dumps(start),
                                   endkey=json.dumps(prefix + "\ufff0"), limit=str(PAGE + 1))
        except NotFound:
            return []
        return [r["doc"] for r in page.get("rows", []) if r.get("doc")]

    index = 0
    pending = asyncio.ensure_future(fetch(0, prefix)) if codes else None
    try:
        while pending is not None:
            docs = await pending
            pending = None
            if len(docs) > PAGE:
                pending = asyncio.ensure_future(fetch(index, docs[PAGE]["_id"]))
            elif index + 1 < len(codes):
                index += 1
                pending = asyncio.ensure_future(fetch(index, prefix))
            yield docs[:PAGE]
    finally:
        if pending is not None:  # the download was abandoned
            pending.cancel()


async def rows(couch: CouchClient, grids: Iterable[str], what: str,
               unmasked: bool, names: Names | None = None) -> AsyncIterator[list[Any]]:
    """The header, then one row per record, a page at a time: memory stays bounded by PAGE."""
    yield header(what)
    async for docs in pages(couch, grids, PREFIX[what]):
        homes = await household_addresses(couch, docs) if what == "persons" else {}
        for doc in docs:
            if doc.get("household") in homes:
                doc = {**doc, "household_address": homes[doc["household"]]}
            yield record_row(what, doc, unmasked, names)


async def household_addresses(couch: CouchClient, persons: list[dict[str, Any]]
                              ) -> dict[str, str]:
    """The addresses of a page of persons' households, one request per grid, so that the
    persons' sheet names each 户 by where it lives, not by its key."""
    wanted: dict[str, set[str]] = {}
    for person in persons:
        if isinstance(person.get("household"), str) and isinstance(person.get("grid"), str):
            wanted.setdefault(person["grid"], set()).add(person["household"])
    found: dict[str, str] = {}
    for grid, ids in wanted.items():
        try:
            answer = await couch.post(db_path(grid_db(grid), "_all_docs"), {"keys": sorted(ids)},
                                      include_docs="true")
        except NotFound:
            continue
        found.update({row["id"]: address(row["doc"]) for row in answer.get("rows", [])
                      if isinstance(row.get("doc"), dict)})
    return found


async def streamed(rows: Iterable[list[Any]]) -> AsyncIterator[list[Any]]:
    """Rows already at hand (the review list, the aggregates) as the writers take them."""
    for values in rows:
        yield values


def csv_line(values: list[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow(safe_row(values))
    return out.getvalue().encode("utf-8")


def _append(sheet: Any, batch: list[list[Any]]) -> None:
    for values in batch:
        row = []
        for value in safe_row(values):
            cell = WriteOnlyCell(sheet, value)
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula, whatever openpyxl would guess
            row.append(cell)
        sheet.append(row)


async def xlsx_file(source: AsyncIterator[list[Any]], title: str) -> Any:
    """A write-only workbook (openpyxl streams rows to disk), in a temporary file. openpyxl
    takes a quarter of a millisecond a row, so the rows are written in a thread, a page at a
    time: a city's export would otherwise hold every sync on the server for seconds."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title)
    batch: list[list[Any]] = []
    async for values in source:
        batch.append(values)
        if len(batch) >= PAGE:
            await asyncio.to_thread(_append, sheet, batch)
            batch = []
    await asyncio.to_thread(_append, sheet, batch)
    handle = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it once sent)
    await asyncio.to_thread(workbook.save, handle)
    handle.seek(0)
    return handle
