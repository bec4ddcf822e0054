"""No code writes a batch with couchdb-python's `Database.update`.

Why: PouchDB Server answers `_bulk_docs` out of input order and `Database.update` matches the
answers by position, writing each answer's id and rev into the document at that position
(server/store/bulk.py). The votes race test's own register came back with adjacent units' ids
swapped that way, and its recount then disagreed with a correct server. `save_many` matches by
id; this test keeps the positional version out of the server, the scripts and the tests.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What a store database is called where it is used: `db`, `claims_db`, `server[VOTES_DB]`...
DATABASE = re.compile(r"(^|_)db$|^db_|\bserver\[|couch\[|_DB\]$|\bdatabase$", re.IGNORECASE)


def sources() -> list[Path]:
    files = [*ROOT.glob("server/**/*.py"), *ROOT.glob("tests/**/*.py")]
    files += [p for p in ROOT.glob("scripts/*") if p.is_file()
              and p.read_bytes()[:40].startswith(b"#!/usr/bin/env python3")]
    return files


def positional_batches(source: str) -> list[int]:
    """Lines where `<database>.update(...)` is called."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "update"
                and DATABASE.search(ast.unparse(node.func.value))):
            lines.append(node.lineno)
    return lines


def test_the_guard_sees_the_forms_it_forbids() -> None:
    for call in ("db.update(docs)", "claims_db.update([])", "server[VOTES_DB].update(u)",
                 "self.couch['x'].update(d, new_edits=False)"):
        assert positional_batches(call) == [1], call
    for call in ("digest.update(b'')", "found.update(ids)", "doc.update(rev='1')",
                 "save_many(db, docs)"):
        assert positional_batches(call) == [], call


def test_no_batch_is_written_with_database_update() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for path in sources()
             for line in positional_batches(path.read_text(encoding="utf-8"))]
    assert not found, f"use server.store.bulk.save_many (answers matched by id): {found}"
