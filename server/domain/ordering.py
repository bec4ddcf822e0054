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

import dataclasses
from collections.abc import Sequence
from typing import Any


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
