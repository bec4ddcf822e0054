"""The project's CouchDB design documents for grid databases, kept in this folder as JSON and
installed by the server at start (and by `linli grid add`) wherever they are missing or old.
A design document is only rewritten when its content changed, since every rewrite makes CouchDB
rebuild the views of that database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DESIGN_DIR = Path(__file__).resolve().parent


def design_docs() -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(DESIGN_DIR.glob("*.json"))]


def needs_update(stored: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    if stored is None:
        return True
    return any(stored.get(k) != v for k, v in wanted.items() if k != "_id")


def updated(stored: dict[str, Any] | None, wanted: dict[str, Any]) -> dict[str, Any]:
    """The document to write: `wanted`, on top of the stored revision if there is one."""
    return {**wanted, "_rev": stored["_rev"]} if stored and "_rev" in stored else dict(wanted)
