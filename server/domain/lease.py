"""Leases (租约): which server process does a background job that must run once (the conflict
resolver, the figures' refresh, the allocation's sweep...) when several processes serve one
store. A lease is one small document per job; the store's revision check decides every race.

Rules:
1. A lease names its holder (a process: `host`, `pid`, and a random `id` of its run) and the
   time it expires (`expires`, seconds since the epoch, by the holder's clock).
2. A process may take a lease that is missing, released (no holder), expired (`now >=
   expires`), or whose holder is a process of the same host that is gone (`holder_gone`: its
   pid no longer runs; a restart after `kill -9` need not wait out the expiry). Its own lease
   it may always renew. Anything else it must leave alone.
3. Taking and renewing are one write with the revision read (`_rev`); of two processes
   writing at once the store keeps one and answers the other 409: that one does not hold it.
4. The holder renews every `renew_every` (a third of the lease's length), and stops the job as
   soon as a renewal is refused (another took the lease) or when it could not renew for
   `give_up_after` (two thirds of the length: the store is unreachable). It stops before
   anyone else may take the lease, leaving a third of the length for clocks that disagree.
5. A holder that stops cleanly releases its lease (holder removed), so another takes it at
   its next try rather than after the expiry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

LEASE_PREFIX = "lease:"  # the documents' ids: `lease:<job>`


@dataclasses.dataclass(frozen=True)
class Holder:
    """A server process as a lease names it: its host, its pid, and an id drawn at start
    (pids are reused; the id never is)."""

    id: str
    host: str
    pid: int

    def as_doc(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "pid": self.pid}


def lease_id(job: str) -> str:
    return LEASE_PREFIX + job


def holder_of(doc: Mapping[str, Any] | None) -> Holder | None:
    """The holder a lease document names; None when it is missing, released or unreadable."""
    found = (doc or {}).get("holder")
    if not isinstance(found, Mapping):
        return None
    try:
        return Holder(str(found["id"]), str(found["host"]), int(found["pid"]))
    except (KeyError, TypeError, ValueError):
        return None


def expires_at(doc: Mapping[str, Any] | None) -> float:
    value = (doc or {}).get("expires")
    return float(value) if isinstance(value, int | float) else 0.0


def held_by(doc: Mapping[str, Any] | None, me: Holder) -> bool:
    holder = holder_of(doc)
    return holder is not None and holder.id == me.id


def expired(doc: Mapping[str, Any] | None, now: float) -> bool:
    return now >= expires_at(doc)


def may_take(doc: Mapping[str, Any] | None, me: Holder, now: float,
             holder_gone: bool = False) -> bool:
    """Rule 2. `holder_gone`: the caller found the holder to be a process of its own host
    that no longer runs (only the caller can look; this module does no I/O)."""
    holder = holder_of(doc)
    if holder is None or holder.id == me.id or expired(doc, now):
        return True
    return holder.host == me.host and holder_gone


def taken(job: str, me: Holder, now: float, seconds: float) -> dict[str, Any]:
    """The document that takes or renews the lease of `job` for `seconds` from `now`."""
    return {"_id": lease_id(job), "type": "lease", "job": job, "holder": me.as_doc(),
            "expires": now + seconds, "renewed": now}


def released(job: str, now: float) -> dict[str, Any]:
    """The document a holder leaves when it stops: nobody holds it, anyone may take it."""
    return {"_id": lease_id(job), "type": "lease", "job": job, "holder": None,
            "expires": 0, "renewed": now}


def renew_every(seconds: float) -> float:
    return seconds / 3


def give_up_after(seconds: float) -> float:
    return seconds * 2 / 3
