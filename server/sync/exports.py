"""Exports (导出) to CSV or XLSX: households and persons read from the store page by page with
bounded memory, and every sheet written as it streams. What the rows hold (masking, safe cells,
the review list, the aggregates) is server/domain/exports.py.

A city's export (164,253 households in 411 grids) must take a minute at most: the store's pages
of several grids are read at once (the store reads one grid's page while the server parses and
writes another's), and the XLSX is written by XlsxWriter in its constant-memory mode, which
costs about a third of what openpyxl's write-only mode did per row (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import tempfile
from collections.abc import AsyncIterator, Iterable
from typing import Any

import xlsxwriter

from server.domain.exports import PREFIX, Names, address, header, record_row, safe_row
from server.domain.scope import grid_db
from server.store.couch import CouchClient, NotFound, db_path

PAGE = 1000  # records a page; a grid holds about 400 households, so mostly one page a grid
AHEAD = 3  # grids whose pages are read at once: the store works while the server writes; more
# pages waiting would only hold memory (each grid keeps at most two pages ready)
XLSX_OPTIONS = {
    "constant_memory": True,  # each row goes to a temporary file as soon as the next begins
    # Never guess a cell's kind from its text: a text is text (formula-safe; safe_cell marks it).
    "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False,
}


async def pages(couch: CouchClient, grids: Iterable[str],
                prefix: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The records whose ids start with `prefix`, grid by grid in the order given, PAGE at a
    time. AHEAD grids are read at once, each a page ahead of its reader, so the store and the
    writer overlap; memory stays bounded by AHEAD × 2 pages."""
    codes = list(grids)

    async def fetch(code: str, start: str) -> list[dict[str, Any]]:
        try:
            page = await couch.get(db_path(grid_db(code), "_all_docs"),
                                   include_docs="true", startkey=json.dumps(start),
                                   endkey=json.dumps(prefix + "\ufff0"), limit=str(PAGE + 1))
        except NotFound:
            return []
        return [r["doc"] for r in page.get("rows", []) if r.get("doc")]

    Item = list[dict[str, Any]] | Exception | None  # a page, a failed read, or the end

    async def grid_pages(code: str, out: asyncio.Queue[Item]) -> None:
        start = prefix
        try:
            while True:
                docs = await fetch(code, start)
                await out.put(docs[:PAGE])
                if len(docs) <= PAGE:
                    break
                start = docs[PAGE]["_id"]
        except Exception as exc:  # said where the pages are read, in their order
            await out.put(exc)
            return
        await out.put(None)

    readers: list[tuple[asyncio.Task[None], asyncio.Queue[Item]]] = []

    def start_next() -> None:
        if len(readers) < len(codes):
            queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=1)
            readers.append((asyncio.ensure_future(grid_pages(codes[len(readers)], queue)),
                            queue))

    try:
        for _ in range(AHEAD):
            start_next()
        for index in range(len(codes)):
            queue = readers[index][1]
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
            start_next()
    finally:  # the download was abandoned, or a read failed: no reader is left behind
        for task, _ in readers:
            task.cancel()
        for task, _ in readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


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


def _write(sheet: Any, first: int, batch: list[list[Any]]) -> None:
    """Rows from row `first` on: a text as a string (never a formula, whatever it looks like),
    a number as a number, a truth value as one."""
    text, number, truth = sheet.write_string, sheet.write_number, sheet.write_boolean
    for offset, values in enumerate(batch):
        row = first + offset
        for column, value in enumerate(safe_row(values)):
            if isinstance(value, bool):
                truth(row, column, value)
            elif isinstance(value, int | float):
                number(row, column, value)
            elif value:  # an empty cell is left out (read back as empty either way)
                if "\r" in value:  # a line end as XML readers give it back (XlsxWriter would
                    # keep a CR as `_x000D_`, which some readers show as those characters)
                    value = value.replace("\r\n", "\n").replace("\r", "\n")
                text(row, column, value)


async def xlsx_file(source: AsyncIterator[list[Any]], title: str) -> Any:
    """The workbook in a temporary file, its rows streamed to disk as they come (XlsxWriter's
    constant-memory mode). Writing a row costs about 0.07 ms, so the rows are written in a
    thread, a page at a time: a city's export would otherwise hold every sync on the server
    for seconds."""
    handle = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it once sent)
    workbook = xlsxwriter.Workbook(handle, XLSX_OPTIONS)
    sheet = workbook.add_worksheet(title)
    written = 0
    batch: list[list[Any]] = []
    try:
        async for values in source:
            batch.append(values)
            if len(batch) >= PAGE:
                await asyncio.to_thread(_write, sheet, written, batch)
                written += len(batch)
                batch = []
        await asyncio.to_thread(_write, sheet, written, batch)
        await asyncio.to_thread(workbook.close)
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    return handle
