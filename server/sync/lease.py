"""Leases in the store (租约): a background job that must run in one process at a time (the
conflict resolver, the figures' refresh, the allocation's sweep, the nightly retention list...)
runs only while its process holds the job's lease, a document of the `linli-leases` database.
The rules (who may take a lease, when a holder gives up) are server/domain/lease.py; this is
their I/O: reading the document, writing it with its revision (the store's MVCC decides a
race), renewing it while the job runs, and stopping the job when it cannot.

With one process nothing changes: it takes every lease at its first try. With several
(docs/deployment.md), each job runs in the process that took its lease; the others wait,
trying again every third of the lease's length, and one of them takes over within the lease's
length after the holder dies (at once if the holder was a process of the same host that is
gone, e.g. a `kill -9` and restart on one machine)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from server.domain import lease as rules
from server.domain.lease import Holder
from server.domain.scope import LEASES_DB
from server.store.couch import (
    Conflict,
    CouchClient,
    CouchFailure,
    NotFound,
    StoreUnavailable,
    db_path,
)

log = logging.getLogger(__name__)

RELEASE_SECONDS = 2.0  # a stopping holder waits no longer to release its lease
PRESENCE = "process:"  # each process's own lease, renewed while it runs


def this_process() -> Holder:
    return Holder(uuid.uuid4().hex[:16], socket.gethostname(), os.getpid())


def process_gone(holder: Holder) -> bool:
    """Whether `holder`, a process of this host, no longer runs (a pid reused by another
    process counts as running: that lease is then taken after its expiry)."""
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    try:  # a zombie (killed, not yet reaped by its parent) runs no more
        with open(f"/proc/{holder.pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class Leases:
    """This process's leases, one per job; one per app."""

    def __init__(self, couch: CouchClient, seconds: float, me: Holder | None = None,
                 clock: Callable[[], float] = time.time, *, shared: bool = True) -> None:
        # not shared (setting `leases` off): every lease is this process's, the store unasked
        self.shared = shared
        self.couch = couch
        self.seconds = seconds
        self.me = me or this_process()
        self.clock = clock
        self.revs: dict[str, str] = {}  # job -> revision of the lease this process holds
        self.taken = 0  # leases taken (a renewal is not counted), for tests and health
        self.lost = 0  # jobs stopped because their lease could not be renewed
        self.others = 0  # other processes serving the store, as last counted (`present`)
        self._db_ready = False

    def path(self, job: str) -> str:
        return db_path(LEASES_DB, rules.lease_id(job))

    def holds(self, job: str) -> bool:
        return job in self.revs

    async def read(self, job: str) -> dict[str, Any] | None:
        if not self._db_ready:
            await self.couch.ensure_db(LEASES_DB)
            self._db_ready = True
        try:
            return dict(await self.couch.get(self.path(job)))
        except NotFound:
            return None

    async def try_take(self, job: str) -> bool:
        """Take or renew the lease of `job` if the rules allow; whether this process holds it
        now. A 409 means another process wrote it first: it holds it."""
        if not self.shared:
            self.revs[job] = "alone"
            return True
        doc = await self.read(job)
        now = self.clock()
        holder = rules.holder_of(doc)
        gone = (holder is not None and holder.host == self.me.host and holder.id != self.me.id
                and not rules.expired(doc, now) and process_gone(holder))
        if not rules.may_take(doc, self.me, now, holder_gone=gone):
            self.revs.pop(job, None)
            return False
        body = rules.taken(job, self.me, now, self.seconds)
        if doc is not None:
            body["_rev"] = doc["_rev"]
        try:
            answer = await self.couch.put(self.path(job), body)
        except Conflict:
            self.revs.pop(job, None)
            return False
        if job not in self.revs:
            self.taken += 1
            log.info("lease %s taken by %s (pid %d on %s)%s", job, self.me.id, self.me.pid,
                     self.me.host, f" from {holder.id}" if holder and holder.id != self.me.id
                     else "")
        self.revs[job] = str(answer["rev"])
        return True

    async def renew(self, job: str) -> bool:
        """One renewal with the revision this process wrote last; False when another process
        holds the lease now."""
        if not self.shared:
            return True
        body = {**rules.taken(job, self.me, self.clock(), self.seconds), "_rev": self.revs[job]}
        try:
            answer = await self.couch.put(self.path(job), body)
        except Conflict:
            # Rewritten since our last write: ours only if a renewal's answer was lost.
            doc = await self.read(job)
            if not rules.held_by(doc, self.me):
                self.revs.pop(job, None)
                return False
            assert doc is not None
            self.revs[job] = str(doc["_rev"])
            return await self.renew(job)
        self.revs[job] = str(answer["rev"])
        return True

    async def acquire(self, job: str) -> None:
        """Until this process holds the lease of `job`, trying every third of its length."""
        while True:
            with contextlib.suppress(CouchFailure, StoreUnavailable):
                if await self.try_take(job):
                    return
            await asyncio.sleep(rules.renew_every(self.seconds))

    async def keep(self, job: str) -> None:
        """Renew the lease of `job` until this process may no longer hold it: returns when a
        renewal was refused, or when none succeeded for two thirds of its length."""
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while True:
            await asyncio.sleep(rules.renew_every(self.seconds))
            try:
                if not await self.renew(job):
                    log.warning("lease %s taken by another process; its job stops here", job)
                    return
                last_ok = loop.time()
            except (CouchFailure, StoreUnavailable) as exc:
                if loop.time() - last_ok >= rules.give_up_after(self.seconds):
                    log.warning("lease %s not renewed for %.1f s (%s); its job stops here",
                                job, loop.time() - last_ok, exc)
                    self.revs.pop(job, None)
                    return

    async def release(self, job: str) -> None:
        """Leave the lease of `job` to the others at once (best effort: otherwise it expires)."""
        rev = self.revs.pop(job, None)
        if rev is None or not self.shared:
            return
        with contextlib.suppress(CouchFailure, StoreUnavailable, TimeoutError):
            async with asyncio.timeout(RELEASE_SECONDS):
                await self.couch.put(self.path(job),
                                     {**rules.released(job, self.clock()), "_rev": rev})

    # -- presence: which processes serve the store ---------------------------------------

    async def present(self) -> None:
        """Supervised in every process: keep a lease of its own (`process:<id>`), so each
        process knows whether others serve the same store (`others`), e.g. to read what
        they wrote rather than wait to be told, and to leave the receipts' mark of a clean
        stop to the last one. Released when the process stops cleanly."""
        job = PRESENCE + self.me.id
        try:
            while True:
                with contextlib.suppress(CouchFailure, StoreUnavailable):
                    await self.try_take(job)
                    if self.shared:
                        await self.count_others()
                await asyncio.sleep(rules.renew_every(self.seconds))
        finally:
            await self.release(job)

    async def count_others(self) -> int:
        """How many other processes hold a presence lease now (those that stopped, are past
        their lease's expiry, or were of this host and no longer run, are forgotten: their
        documents deleted)."""
        page = await self.couch.get(db_path(LEASES_DB, "_all_docs"), include_docs="true",
                                    startkey=f'"{rules.lease_id(PRESENCE)}"',
                                    endkey=f'"{rules.lease_id(PRESENCE)}\ufff0"')
        now, alive, gone = self.clock(), 0, []
        for row in page.get("rows", []):
            doc = row.get("doc") or {}
            holder = rules.holder_of(doc)
            if holder is not None and holder.id == self.me.id:
                continue
            if holder is None or rules.expired(doc, now) or (holder.host == self.me.host
                                                             and process_gone(holder)):
                gone.append({"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True})
            else:
                alive += 1
        if gone:
            with contextlib.suppress(CouchFailure, StoreUnavailable):
                await self.couch.post(db_path(LEASES_DB, "_bulk_docs"), {"docs": gone})
        self.others = alive
        return alive

    # -- jobs ------------------------------------------------------------------------------

    def job(self, job: str, run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """`run` as a task that runs only while this process holds the lease of `job`: it
        waits for the lease, runs `run` while renewing it, cancels `run` when the lease is
        lost and waits for it again. It returns when `run` returns (a one-shot job's work is
        done), raises what `run` raises (the supervisor restarts it), and releases the lease
        whenever it stops."""

        async def leased() -> None:
            while True:
                await self.acquire(job)
                if await self.hold_while(job, run):
                    return
                self.lost += 1

        return leased

    async def hold_while(self, job: str, run: Callable[[], Awaitable[None]]) -> bool:
        """Run `run` while holding the lease; True when `run` ended by itself, False when the
        lease was lost and `run` was cancelled."""
        work = asyncio.create_task(run(), name=f"{job} (leased)")
        keeper = asyncio.create_task(self.keep(job), name=f"{job} (lease)")
        try:
            await asyncio.wait({work, keeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # cancelled too: stop both, then leave the lease to the others
            keeper.cancel()
            if not work.done():
                work.cancel()
            await asyncio.gather(work, keeper, return_exceptions=True)
            await self.release(job)  # nothing to do if the lease was lost
        if work.cancelled():
            return False  # the keeper gave the lease up first and `run` was stopped
        failure = work.exception()
        if failure is not None:
            raise failure
        return True
