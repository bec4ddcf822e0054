"""The figures' fold and its checkpoints (统计折叠与检查点), kept in an embedded SQLite file.

Each grid's figures are the sum of parts (server/domain/figures.py states the rules): a
household's, a present person's..., a household's visits together, a record's verdicts together.
The file keeps, for every grid database, the fields of each record that counts (`records`),
the figures (`grids.figures`) and the store's update sequence they are exact at
(`grids.applied`); and, from the receipts database, each verdict revision's receipt time
(`received`) and each reviewable record's first receipt (`firsts`), with how far that database
was read (`meta`). A change replaces its record's old part by its new one in the same
transaction as the checkpoint, so after a restart (or a kill: SQLite's journal rolls back a
half-written page) the figures are those of a recount up to the checkpoint, and reading on
from there is exact. A change read twice changes nothing.

Why a file and not the store's views: on the embedded store each JavaScript view costs about
a millisecond of store CPU per document (docs/benchmarks.md), seven views for a grid; the fold
costs the store one read of the changes it already has to give, and this process a few
SQLite statements per record.

Every method runs in a worker thread (server/sync/aggregates.py calls them with
`asyncio.to_thread`), one at a time under `lock`.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from server.domain.figures import (
    TIMED,
    epoch_ms,
    fold_entry,
    receipt_marks,
    record_part,
    review_part,
    visits_part,
)
from server.domain.ordering import Verdict

SCHEMA = """
CREATE TABLE IF NOT EXISTS grids (db TEXT PRIMARY KEY, applied INTEGER NOT NULL,
    year INTEGER NOT NULL, campaign TEXT NOT NULL, figures TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (db TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,
    unit TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (db, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_unit ON records (db, kind, unit);
CREATE TABLE IF NOT EXISTS received (db TEXT NOT NULL, id TEXT NOT NULL, rev TEXT NOT NULL,
    at TEXT NOT NULL, PRIMARY KEY (db, id, rev)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS firsts (db TEXT NOT NULL, id TEXT NOT NULL, ms REAL NOT NULL,
    PRIMARY KEY (db, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
GROUPED = frozenset({"household_visit", "verdict"})  # kinds whose part is their unit's
Unit = tuple[str, str]  # (kind, unit): a part of a grid's figures
CHUNK = 500  # ids or units asked of SQLite in one statement (well under its 32,766 variables)


def seq_of(seq: Any) -> int | None:
    """The number an update sequence starts with (PouchDB's is a number, CouchDB 3's 'N-...')."""
    if isinstance(seq, int):
        return seq
    head = str(seq).split("-", 1)[0]
    return int(head) if head.isdigit() else None


class FoldStore:
    """The SQLite file (None: kept in memory, for a test's own instance); see the module
    docstring."""

    def __init__(self, path: Path | None, census_campaign: str) -> None:
        self.path = path
        self.census_campaign = census_campaign
        self.lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, opened at first use (under `lock`): a file that cannot be opened
        fails the aggregates' task, which is restarted until it can (tests/test_supervisor.py)."""
        if self._db is None:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(":memory:" if self.path is None else str(self.path),
                                 check_same_thread=False, isolation_level=None, timeout=30)
            try:
                db.execute(f"PRAGMA journal_mode={'MEMORY' if self.path is None else 'WAL'}")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already: a COMMIT that fails on a full
        disk rolls back by itself, and a second ROLLBACK would hide the disk's error behind
        "no transaction is active"."""
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def close(self) -> None:
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- reading -------------------------------------------------------------------------------

    def figures(self, year: int) -> dict[str, tuple[int, Counter[str]]]:
        """Every grid database's checkpoint and figures (counted again from the kept records
        when the year, which ages are counted at, or the census campaign changed)."""
        with self.lock:
            out: dict[str, tuple[int, Counter[str]]] = {}
            for db, applied, kept_year, campaign, figures in self.db.execute(
                    "SELECT db, applied, year, campaign, figures FROM grids").fetchall():
                if kept_year != year or campaign != self.census_campaign:
                    self.db.execute("BEGIN IMMEDIATE")
                    try:
                        counted = self._recount(db, year)
                        self._save(db, applied, year, counted)
                        self.db.execute("COMMIT")
                    except BaseException:
                        self._rollback()
                        raise
                    out[db] = (applied, counted)
                else:
                    out[db] = (applied, Counter(json.loads(figures)))
            return out

    def applied(self, db: str) -> int:
        with self.lock:
            row = self.db.execute("SELECT applied FROM grids WHERE db = ?", (db,)).fetchone()
            return int(row[0]) if row else 0

    def receipts_applied(self) -> int:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'receipts'").fetchone()
            return int(row[0]) if row else 0

    def recount(self, db: str, year: int) -> Counter[str]:
        """A grid's figures counted again from its kept records (a test compares it with the
        folded ones, and both with a count from the documents)."""
        with self.lock:
            return self._recount(db, year)

    # -- folding -------------------------------------------------------------------------------

    def fold(self, db: str, since: int, changes: Iterable[Mapping[str, Any]], last: int,
             year: int) -> tuple[int, Counter[str]] | None:
        """A page of `db`'s changes feed (with their documents), read from seq `since`, up to
        `last`, into the figures; the new checkpoint and figures. None, with nothing done,
        when the page starts after the checkpoint (changes in between would be missed)."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                applied, figures = self._grid(db, year)
                if since > applied:
                    self.db.execute("ROLLBACK")
                    return None
                fresh = []
                for change in changes:
                    seq = seq_of(change.get("seq"))
                    if seq is not None and seq <= applied:
                        continue  # read before (another page, another reader)
                    fresh.append((change, seq or applied))
                    applied = max(applied, seq or applied)
                self._take_page(db, fresh, figures, year)
                applied = max(applied, last)
                figures = +figures
                self._save(db, applied, year, figures)
                self.db.execute("COMMIT")
                return applied, figures
            except BaseException:
                self._rollback()
                raise

    def forget(self, db: str) -> None:
        """A grid database made again (its update sequence went back): everything of it."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            for table in ("grids", "records", "received", "firsts"):
                self.db.execute(f"DELETE FROM {table} WHERE db = ?", (db,))
            self.db.execute("COMMIT")

    def fold_receipts(self, since: int, changes: Iterable[Mapping[str, Any]], last: int,
                      year: int) -> dict[str, tuple[int, Counter[str]]] | None:
        """A page of the receipts database's changes: each verdict revision's receipt time and
        each reviewable record's first receipt; the grids whose figures changed. None, with
        nothing done, when the page starts after the checkpoint."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                applied = self._receipts_applied()
                if since > applied:
                    self.db.execute("ROLLBACK")
                    return None
                before: dict[str, dict[Unit, Counter[str]]] = {}
                for change in changes:
                    seq = seq_of(change.get("seq"))
                    if seq is not None and seq <= applied:
                        continue
                    applied = max(applied, seq or applied)
                    doc = change.get("doc")
                    if change.get("deleted") or not isinstance(doc, Mapping):
                        continue  # a receipt is never taken back
                    for db, doc_id, rev, at in receipt_marks(doc):
                        self._mark(db, doc_id, rev, at, before, year)
                applied = max(applied, last)
                changed: dict[str, tuple[int, Counter[str]]] = {}
                for db, units in before.items():
                    grid_applied, figures = self._grid(db, year)
                    for unit, old in units.items():
                        figures.update(self._part(db, unit, year))
                        figures.subtract(old)
                    figures = +figures
                    self._save(db, grid_applied, year, figures)
                    changed[db] = (grid_applied, figures)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('receipts', ?)",
                                (str(applied),))
                self.db.execute("COMMIT")
                return changed
            except BaseException:
                self._rollback()
                raise

    # -- inside a transaction ------------------------------------------------------------------

    def _receipts_applied(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'receipts'").fetchone()
        return int(row[0]) if row else 0

    def _grid(self, db: str, year: int) -> tuple[int, Counter[str]]:
        row = self.db.execute("SELECT applied, year, campaign, figures FROM grids WHERE db = ?",
                              (db,)).fetchone()
        if row is None:
            return 0, Counter()
        if row[1] != year or row[2] != self.census_campaign:
            return int(row[0]), self._recount(db, year)
        return int(row[0]), Counter(json.loads(row[3]))

    def _save(self, db: str, applied: int, year: int, figures: Counter[str]) -> None:
        self.db.execute("INSERT OR REPLACE INTO grids VALUES (?, ?, ?, ?, ?)",
                        (db, applied, year, self.census_campaign,
                         json.dumps(dict(figures), sort_keys=True)))

    def _take_page(self, db: str, changes: list[tuple[Mapping[str, Any], int]],
                   figures: Counter[str], year: int) -> None:
        """A page's changes (each with its seq), in order: every record's old part replaced by
        its new one. A record counted on its own is replaced change by change; a household's
        visits or a record's verdicts (a unit) are counted once before the page, from the kept
        records as they were, and once after it, so a unit touched by many changes of the page
        costs two reads, not two a change. The page's records are written together."""
        kept: dict[str, tuple[str, str, str] | None] = {}  # id -> (kind, unit, data) or None
        ids = [c.get("id") for c, _ in changes]
        wanted = [i for i in ids if isinstance(i, str) and not i.startswith("_")]
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            marks = ",".join("?" * len(chunk))
            for doc_id, kind, unit, data in self.db.execute(
                    f"SELECT id, kind, unit, data FROM records WHERE db = ? AND id IN ({marks})",
                    (db, *chunk)):
                kept[doc_id] = (kind, unit, data)
        written: dict[str, tuple[str, str, int, str] | None] = {}  # id -> row or None: deleted
        units: set[Unit] = set()
        for change, seq in changes:
            doc_id = change.get("id")
            if not isinstance(doc_id, str) or doc_id.startswith("_"):
                continue
            doc = change.get("doc")
            entry = (None if change.get("deleted") or not isinstance(doc, Mapping)
                     else fold_entry(doc))
            old = kept.get(doc_id)
            if old is None and entry is None:
                continue
            if old is not None and old[0] in GROUPED:
                units.add((old[0], old[1]))
            elif old is not None:
                figures.subtract(record_part(old[0], json.loads(old[2]), self.census_campaign,
                                             year))
            if entry is None:
                kept[doc_id] = written[doc_id] = None
                continue
            data = json.dumps(entry[2])
            kept[doc_id] = (entry[0], entry[1], data)
            written[doc_id] = (entry[0], entry[1], seq, data)
            if entry[0] in GROUPED:
                units.add((entry[0], entry[1]))
            else:
                figures.update(record_part(entry[0], entry[2], self.census_campaign, year))
        if not written:
            return
        for part in self._parts(db, units, year).values():  # before the page
            figures.subtract(part)
        gone = [(db, doc_id) for doc_id, row in written.items() if row is None]
        if gone:
            self.db.executemany("DELETE FROM records WHERE db = ? AND id = ?", gone)
        self.db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?)",
                            [(db, doc_id, *row) for doc_id, row in written.items()
                             if row is not None])
        for part in self._parts(db, units, year).values():  # after it
            figures.update(part)

    def _parts(self, db: str, units: Iterable[Unit], year: int) -> dict[Unit, Counter[str]]:
        """The parts of `units` as the kept records give them: the households' visits read
        together, the verdicts record by record (with their receipts)."""
        out: dict[Unit, Counter[str]] = {}
        households = sorted(key for kind, key in units if kind == "household_visit")
        for start in range(0, len(households), CHUNK):
            chunk = households[start:start + CHUNK]
            marks = ",".join("?" * len(chunk))
            visits: dict[str, list[tuple[str, Any]]] = {}
            for unit, doc_id, data in self.db.execute(
                    f"SELECT unit, id, data FROM records WHERE db = ? AND kind = "
                    f"'household_visit' AND unit IN ({marks})", (db, *chunk)):
                visits.setdefault(unit, []).append((doc_id, json.loads(data)))
            for key in chunk:
                out[("household_visit", key)] = visits_part(visits.get(key, ()))
        for unit in units:
            if unit[0] != "household_visit":
                out[unit] = self._part(db, unit, year)
        return out

    def _part(self, db: str, unit: Unit, year: int) -> Counter[str]:
        """A household's visits' part, or a record's verdicts' part."""
        kind, key = unit
        rows = self.db.execute("SELECT id, seq, data FROM records WHERE db = ? AND kind = ? "
                               "AND unit = ?", (db, kind, key)).fetchall()
        if kind == "household_visit":
            return visits_part((doc_id, json.loads(data)) for doc_id, _seq, data in rows)
        if not rows:
            return Counter()
        verdicts = []
        for doc_id, seq, data in rows:
            fields = json.loads(data)
            found = self.db.execute("SELECT at FROM received WHERE db = ? AND id = ? AND rev = ?",
                                    (db, doc_id, fields["rev"])).fetchone()
            verdicts.append(Verdict(id=doc_id, rev=fields["rev"], record=key,
                                    decision=fields["decision"],
                                    received_at=found[0] if found else None, seq=seq))
        first = self.db.execute("SELECT ms FROM firsts WHERE db = ? AND id = ?",
                                (db, key)).fetchone()
        return review_part(verdicts, first[0] if first else None)

    def _mark(self, db: str, doc_id: str, rev: str, at: str,
              before: dict[str, dict[Unit, Counter[str]]], year: int) -> None:
        """One revision a receipt acknowledges: the first receipt of a reviewable record, the
        receipt time of a verdict; the parts it touches noted before they change."""
        kind = doc_id.split(":", 1)[0]
        if kind == "verdict":
            row = self.db.execute("SELECT at FROM received WHERE db = ? AND id = ? AND rev = ?",
                                  (db, doc_id, rev)).fetchone()
            if row is not None and row[0] <= at:
                return
            owner = self.db.execute("SELECT unit FROM records WHERE db = ? AND id = ? AND "
                                    "kind = 'verdict'", (db, doc_id)).fetchone()
            if owner is not None:
                unit = ("verdict", owner[0])
                before.setdefault(db, {}).setdefault(unit, self._part(db, unit, year))
            self.db.execute("INSERT OR REPLACE INTO received VALUES (?, ?, ?, ?)",
                            (db, doc_id, rev, at))
        elif kind in TIMED:
            ms = epoch_ms(at)
            if ms is None:
                return
            row = self.db.execute("SELECT ms FROM firsts WHERE db = ? AND id = ?",
                                  (db, doc_id)).fetchone()
            if row is not None and row[0] <= ms:
                return
            unit = ("verdict", doc_id)
            before.setdefault(db, {}).setdefault(unit, self._part(db, unit, year))
            self.db.execute("INSERT OR REPLACE INTO firsts VALUES (?, ?, ?)", (db, doc_id, ms))

    def _recount(self, db: str, year: int) -> Counter[str]:
        out: Counter[str] = Counter()
        units: set[Unit] = set()
        for kind, unit, data in self.db.execute(
                "SELECT kind, unit, data FROM records WHERE db = ?", (db,)).fetchall():
            if kind in GROUPED:
                units.add((kind, unit))
            else:
                out.update(record_part(kind, json.loads(data), self.census_campaign, year))
        for unit in units:
            out.update(self._part(db, unit, year))
        return +out


def this_year() -> int:
    return datetime.date.today().year
