"""The order of decisions is the server's, never a phone's (证据顺序以服务器为准).

Rule: of several verdicts on one record, the latest is the one the server received last. A
phone's `device_time` is what the phone said; it is shown, and never orders anything (a phone
set to 2099 would otherwise win over every later verdict).

What "received" means, in order of preference:
1. the receipt (server/sync/receipts.py): the server's clock when it acknowledged the revision;
2. no receipt yet: receipts are written in batches a moment after the acknowledgement (by this
   process or another one sharing the store), so a revision without one was received after
   every revision that has one; it comes last. (A receipt lost to a server killed outright, at
   most its last flush interval, would keep its verdict last until the receipts are rebuilt
   from the store at start, issue 13 item 14; that verdict was the latest one received then);
3. among revisions the receipts cannot tell apart (none has one yet, or two share a receipt
   time, as the verdicts of one request do): the store's update sequence, the order in which
   the store, the one writer every server process shares, took them;
4. then the document id, so every process orders the same way.
The conflict resolver (domain/merging.py) orders revisions the same way by receipt; it waits a
moment for missing receipts instead (it writes, and can afford to wait).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

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


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One verdict as the server orders it."""

    id: str
    rev: str
    record: str
    decision: str
    record_rev: str = ""
    comment: str = ""
    by: str = ""
    device_time: str = ""  # the phone's word: shown, never used to order
    received_at: str | None = None  # the server's receipt (ISO 8601 UTC); None: not yet
    seq: int | None = None  # the store's update sequence, read only when needed

    @property
    def order(self) -> tuple[bool, str, int, str]:
        """Later is greater: receipted before not yet receipted, then the receipt time, then
        the store's sequence, then the id."""
        return (self.received_at is None, self.received_at or "", self.seq or 0, self.id)

    def shown(self) -> dict[str, Any]:
        return {"decision": self.decision, "comment": self.comment, "by": self.by,
                "at": self.received_at, "device_time": self.device_time or None,
                "record_rev": self.record_rev}


def latest(verdicts: Sequence[Verdict]) -> Verdict:
    return max(verdicts, key=lambda v: v.order)


def undecided(verdicts: Sequence[Verdict]) -> bool:
    """Whether the receipts alone cannot tell which verdict is the latest."""
    if len(verdicts) < 2:
        return False
    top = sorted((v.received_at is None, v.received_at or "") for v in verdicts)
    return top[-1] == top[-2]


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
