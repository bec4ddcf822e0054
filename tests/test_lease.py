"""Leases in the store (server/domain/lease.py, server/sync/lease.py): of several processes,
one runs a job at a time; the store's revision check decides a race; a holder that cannot
renew stops its job; another takes over after the expiry, or at once when the holder was a
process of the same host that is gone. Real store; processes are played by `Leases` objects
with holders of their own (other hosts, so only the expiry lets one take over)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from typing import Any

import aiohttp
import pytest
from conftest import eventually

from server.domain import lease as rules
from server.domain.lease import Holder
from server.domain.scope import LEASES_DB
from server.store.couch import CouchClient, db_path
from server.store.embedded import EmbeddedStore
from server.sync.lease import Leases, process_gone
from server.sync.supervisor import Supervisor

SECONDS = 3.0  # the shortest lease allowed


def holder(host: str = "host-a", pid: int = 1) -> Holder:
    return Holder(uuid.uuid4().hex[:8], host, pid)


# -- the rules ------------------------------------------------------------------------------

def test_who_may_take_a_lease() -> None:
    me, other = holder("a", 10), holder("b", 20)
    held = rules.taken("job", other, now=100.0, seconds=15)
    assert rules.may_take(None, me, 0) and rules.may_take(rules.released("job", 1), me, 1)
    assert not rules.may_take(held, me, 114.9)  # another's, not expired
    assert rules.may_take(held, me, 115.0)  # expired
    assert rules.may_take(rules.taken("job", me, 100, 15), me, 101)  # my own: renewed
    # a holder said to be gone counts only on the same host: the caller cannot see another's
    assert not rules.may_take(held, me, 101, holder_gone=True)
    neighbour = rules.taken("job", holder("a", 30), 100, 15)
    assert rules.may_take(neighbour, me, 101, holder_gone=True)
    assert not rules.may_take(neighbour, me, 101, holder_gone=False)
    assert rules.holder_of({"holder": {"id": "x"}}) is None  # unreadable: nobody holds it
    assert rules.renew_every(15) < rules.give_up_after(15) < 15


def test_a_process_of_this_host_that_ended_is_gone() -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert process_gone(Holder("x", "h", ended.pid))
    assert not process_gone(Holder("x", "h", 1))  # init runs (and is not ours to signal)


# -- in the store ---------------------------------------------------------------------------

@pytest.fixture
async def couch(store: EmbeddedStore) -> Any:
    async with aiohttp.ClientSession() as http:
        yield CouchClient(store.url, http)


def job_name() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"


async def test_of_two_racing_processes_the_store_lets_one_take_the_lease(couch: Any) -> None:
    job = job_name()
    processes = [Leases(couch, SECONDS, holder(f"host-{i}")) for i in range(6)]
    won = await asyncio.gather(*(p.try_take(job) for p in processes))
    assert won.count(True) == 1, won
    winner = processes[won.index(True)]
    doc = await couch.get(db_path(LEASES_DB, rules.lease_id(job)))
    assert doc["holder"]["id"] == winner.me.id
    # the losers may not take it while it is held; the winner renews it
    assert not any([await p.try_take(job) for p in processes if p is not winner])
    assert await winner.renew(job)


async def test_a_job_runs_in_one_process_and_moves_when_its_holder_dies(couch: Any) -> None:
    """Two supervisors (two processes) start the same leased job: it runs in one. The holder
    is then frozen (its renewals stop, as in a process killed outright on another host): the
    other takes the lease once it has expired, not before, and runs the job."""
    job = job_name()
    running: list[str] = []

    def work(name: str) -> Any:
        async def run() -> None:
            running.append(name)
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(name)
        return run

    a, b = Leases(couch, SECONDS, holder("host-a")), Leases(couch, SECONDS, holder("host-b"))
    sa, sb = Supervisor(lagging_s=30), Supervisor(lagging_s=30)
    ta = sa.start(job, work("a"), lease=a)
    await eventually(lambda: running == ["a"])
    tb = sb.start(job, work("b"), lease=b)
    await asyncio.sleep(SECONDS * 1.2)  # b tried several times, a renewed
    assert running == ["a"] and a.holds(job) and not b.holds(job)
    assert (await sa.report())[job]["lease"] == "held"
    assert (await sb.report())[job]["lease"] == "standby"
    # a freezes: its task is cancelled without releasing (as a kill would leave it)
    a.release = noop  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    frozen_at = loop.time()
    await sa.close()
    doc = await couch.get(db_path(LEASES_DB, rules.lease_id(job)))
    assert doc["holder"]["id"] == a.me.id  # still a's in the store
    await eventually(lambda: running == ["b"], seconds=SECONDS * 3)
    took = loop.time() - frozen_at
    # not before the expiry (a's last renewal was at most a third of the length before)
    assert SECONDS * 2 / 3 - 0.3 <= took <= SECONDS + rules.renew_every(SECONDS) + 2, took
    assert b.taken == 1
    await sb.close()
    doc = await couch.get(db_path(LEASES_DB, rules.lease_id(job)))
    assert doc["holder"] is None  # a clean stop leaves it to the others at once
    assert ta.task is not None and tb.task is not None


async def noop(job: str) -> None:
    return None


async def test_a_holder_that_loses_its_lease_stops_the_job(couch: Any) -> None:
    """Another process took the lease (as after a long pause of the holder: its lease had
    expired): at its next renewal the holder finds it taken and stops its job."""
    job = job_name()
    stopped = asyncio.Event()

    async def run() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    a = Leases(couch, SECONDS, holder("host-a"))
    supervisor = Supervisor(lagging_s=30)
    supervisor.start(job, run, lease=a)
    await eventually(lambda: a.holds(job))
    path = db_path(LEASES_DB, rules.lease_id(job))
    doc = await couch.get(path)
    await couch.put(path, {**rules.taken(job, holder("host-b"), 0, 10**10), "_rev": doc["_rev"]})
    await asyncio.wait_for(stopped.wait(), SECONDS)
    assert not a.holds(job) and a.lost == 1
    await supervisor.close()
    assert (await couch.get(path))["holder"]["host"] == "host-b"  # not released by a: not a's


async def test_a_one_shot_job_releases_its_lease_and_its_error_is_the_supervisors(
        couch: Any) -> None:
    job = job_name()
    a, b = Leases(couch, SECONDS, holder("host-a")), Leases(couch, SECONDS, holder("host-b"))
    calls: list[str] = []

    async def once() -> None:
        calls.append("ran")
        if len(calls) == 1:
            raise RuntimeError("the first try fails")

    supervisor = Supervisor(lagging_s=30, backoff_min_s=0.05, backoff_max_s=0.1)
    entry = supervisor.start(job, once, forever=False, lease=a)
    await eventually(lambda: entry.done)
    assert calls == ["ran", "ran"] and entry.failures == 1
    assert await b.try_take(job)  # released when done: b need not wait for the expiry
    await supervisor.close()


async def test_each_process_knows_whether_others_serve_the_store(couch: Any) -> None:
    """Presence leases: two processes see one other each; once one stops cleanly, or one of
    another host stops renewing past its expiry, the other sees none (and forgets it)."""
    a, b = Leases(couch, SECONDS, holder("host-a")), Leases(couch, SECONDS, holder("host-b"))
    before = await a.count_others()  # other tests' processes on this store have stopped
    running = [asyncio.create_task(p.present()) for p in (a, b)]
    await eventually(lambda: a.others == before + 1 and b.others == before + 1,
                     seconds=SECONDS * 3)
    running[1].cancel()
    await asyncio.gather(running[1], return_exceptions=True)
    assert await a.count_others() == before  # released: gone at once
    c = Leases(couch, SECONDS, holder("host-c"))
    assert await c.try_take("process:" + c.me.id)  # present once, then silent (as if killed)
    assert await a.count_others() == before + 1
    await asyncio.sleep(SECONDS)
    assert await a.count_others() == before  # expired: forgotten
    running[0].cancel()
    await asyncio.gather(running[0], return_exceptions=True)
