"""`linli vote recount <id>`: the count of a closed vote reproduced from its raw ballots, read
straight from the store with another client than the server's, and compared byte for byte
with the published result (docs/votes.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import couchdb

from server.domain import votes
from server.domain.scope import VOTES_DB


class RecountError(ValueError):
    """No such vote, or it has not closed yet."""


@dataclasses.dataclass(frozen=True)
class Recount:
    body: bytes  # the count from the raw ballots
    published: bytes | None  # the result the server stored at the close

    @property
    def identical(self) -> bool:
        return self.published == self.body


def feed(db: couchdb.Database) -> list[dict[str, Any]]:
    """Every change of `db` in the store's order, with its document."""
    rows: list[dict[str, Any]] = []
    since: Any = 0
    while True:
        page = db.changes(since=since, include_docs=True, limit=5000)
        rows += page.get("results", [])
        since = page.get("last_seq", since)
        if len(page.get("results", [])) < 5000:
            return rows


def recount(server: couchdb.Server, motion: str) -> Recount:
    key = motion.removeprefix("motion:")
    doc = server[VOTES_DB].get(f"motion:{key}")
    if doc is None:
        raise RecountError(f"没有表决 {key} / no vote {key}")
    ballots = server[doc["ballots"]]
    rows = feed(ballots)
    if not any(r.get("id") == "close" for r in rows):
        raise RecountError(f"表决 {key} 尚未截止 / vote {key} has not closed")
    stored = ballots.get("result")
    hows = None
    if doc.get("secret"):  # the hows as sealed at the close, in the order of their ids
        hows = votes.box_hows(feed(server[f"{doc['ballots']}-sealed"]))
    published = str(stored["canonical"]).encode() if stored else None
    return Recount(votes.count_from(dict(doc), rows, hows), published)
