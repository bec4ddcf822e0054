"""Verdicts put in the server's order (server/domain/ordering.py states the rule): their receipts
read from the store, and its update sequence for those the receipts cannot tell apart."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from server.domain.ordering import Verdict, undecided
from server.store.couch import CouchClient, NotFound, db_path

# (db, [(id, rev)]) -> {(id, rev): (who sent it, when the server received it)}
ReceiptLookup = Callable[[str, list[tuple[str, str]]],
                         Awaitable[Mapping[tuple[str, str], tuple[str | None, str | None]]]]
SEQ_IDS = 500  # document ids per `_changes?filter=_doc_ids` request
RECEIPTS_KEPT = 100_000  # receipts remembered (about 20 MB): a street's verdicts several times


def seq_number(seq: Any) -> int | None:
    """The number an update sequence starts with (PouchDB's is a number, CouchDB 3's 'N-...')."""
    if isinstance(seq, int):
        return seq
    head = str(seq).split("-", 1)[0]
    return int(head) if head.isdigit() else None


class ReceiptCache:
    """The receipts a lookup found, remembered: a revision's first receipt never changes once
    written, so a review queue read again asks the store only for the verdicts given since.
    A revision without a receipt is asked again every time (it is about to get one)."""

    def __init__(self, lookup: ReceiptLookup, size: int = RECEIPTS_KEPT) -> None:
        self.lookup, self.size = lookup, size
        self.known: collections.OrderedDict[tuple[str, str, str],
                                            tuple[str | None, str | None]] = (
            collections.OrderedDict())

    async def __call__(self, db: str, wanted: list[tuple[str, str]]
                       ) -> dict[tuple[str, str], tuple[str | None, str | None]]:
        found: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        missing = []
        for doc_id, rev in wanted:
            hit = self.known.get((db, doc_id, rev))
            if hit is None:
                missing.append((doc_id, rev))
            else:
                found[(doc_id, rev)] = hit
        if missing:
            for key, value in (await self.lookup(db, missing)).items():
                found[key] = value
                if value[1] is not None:
                    self.known[(db, *key)] = value
            while len(self.known) > self.size:
                self.known.popitem(last=False)
        return found


async def with_receipts(couch: CouchClient, db: str, verdicts: Iterable[Verdict],
                        lookup: ReceiptLookup | None) -> list[Verdict]:
    """The verdicts with the server's receipt times, and, for the records whose latest verdict
    the receipts cannot tell, the store's update sequence."""
    verdicts = list(verdicts)
    if lookup is not None and verdicts:
        found = await lookup(db, [(v.id, v.rev) for v in verdicts])
        verdicts = [dataclasses.replace(v, received_at=found.get((v.id, v.rev), (None, None))[1])
                    for v in verdicts]
    by_record: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        by_record.setdefault(verdict.record, []).append(verdict)
    unsure = [v.id for group in by_record.values() if undecided(group) for v in group]
    if not unsure:
        return verdicts
    seqs = await update_seqs(couch, db, unsure)
    return [dataclasses.replace(v, seq=seqs.get(v.id)) if v.id in seqs else v for v in verdicts]


async def update_seqs(couch: CouchClient, db: str, ids: list[str]) -> dict[str, int]:
    """The store's update sequence of each document's current revision."""
    seqs: dict[str, int] = {}
    for start in range(0, len(ids), SEQ_IDS):
        try:
            answer = await couch.post(db_path(db, "_changes"),
                                      {"doc_ids": ids[start:start + SEQ_IDS]},
                                      filter="_doc_ids", style="main_only")
        except NotFound:
            return seqs
        for row in answer.get("results", []):
            number = seq_number(row.get("seq"))
            if number is not None and isinstance(row.get("id"), str):
                seqs[row["id"]] = number
    return seqs
