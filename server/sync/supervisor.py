"""The supervisor (守护): every background task of the server is started here, and a task that
fails for any reason is logged and started again, so no follower ends in silence.

- A task is a coroutine function. It is awaited again after any error (the store's, or a
  surprise: a poisoned document, a bug), after a back-off that doubles from `backoff_min_s` to
  `backoff_max_s` and is jittered (each wait is drawn between half and all of it), so a fault
  shared by several tasks does not retry them in lock step. A task that ran `healthy_after_s`
  before failing starts its back-off over. A task meant to run for ever that returns is an error
  too; a one-shot task (`forever=False`) that returns is done.
- Each task may say how far behind it is (`Lag`: seconds, and items waiting when it counts
  them). Its state is one word: `failed` while it waits to be started again (or its probe says
  it cannot work), `lagging` when its work waits longer than `lagging_s`, else `ok`.
- The store, which has no task of its own on Apache CouchDB, is a probe only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

Status = Literal["ok", "lagging", "failed"]
STATUSES: tuple[Status, ...] = ("ok", "lagging", "failed")  # from best to worst
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0  # bounded: a task down for long is still tried twice a minute
HEALTHY_AFTER_S = 60.0  # a task that ran this long before failing starts its back-off over
PROBE_SECONDS = 3.0  # a health check waits no longer for a probe that asks the store


@dataclasses.dataclass(frozen=True)
class Lag:
    """How far behind a task is: the age of the oldest work waiting (None: nothing waits or
    the task cannot tell), how many items wait, and whether it cannot work at all."""

    seconds: float | None = None
    items: int | None = None
    failing: bool = False
    detail: Mapping[str, Any] | None = None  # more an admin reads (a rebuild's progress...)


Probe = Callable[[], Lag | Awaitable[Lag]]
Run = Callable[[], Awaitable[None]]


class Leases(Protocol):
    """What the supervisor asks of leases in the store (server/sync/lease.py): a job that
    must run in one process at a time runs only while this process holds its lease."""

    def job(self, job: str, run: Run) -> Run: ...

    def holds(self, job: str) -> bool: ...


@dataclasses.dataclass
class Supervised:
    """One task or probe and what is known of it."""

    name: str
    run: Callable[[], Awaitable[None]] | None
    probe: Probe | None
    forever: bool
    task: asyncio.Task[None] | None = None
    waiting: bool = False  # failed, waiting out its back-off
    done: bool = False
    failures: int = 0
    restarts: int = 0
    last_error: str | None = None  # the class of the last error only: a message may quote data
    leases: Leases | None = None  # run only while this process holds the task's lease


class Supervisor:
    def __init__(self, *, lagging_s: float, backoff_min_s: float = BACKOFF_MIN_S,
                 backoff_max_s: float = BACKOFF_MAX_S, healthy_after_s: float = HEALTHY_AFTER_S,
                 jitter: Callable[[], float] = random.random) -> None:
        self.lagging_s = lagging_s
        self.backoff_min_s, self.backoff_max_s = backoff_min_s, backoff_max_s  # tests shorten
        self.healthy_after_s = healthy_after_s
        self.probe_s = PROBE_SECONDS
        self.jitter = jitter
        self.entries: dict[str, Supervised] = {}

    def start(self, name: str, run: Callable[[], Awaitable[None]], *,
              probe: Probe | None = None, forever: bool = True,
              lease: Leases | None = None) -> Supervised:
        """Start `run` as task `name`, kept running until `stop`. With `lease`, the task runs
        only while this process holds the lease named `name` (one process of several at a
        time); while another holds it, this one stands by and its probe is not asked."""
        if lease is not None:
            run = lease.job(name, run)
            if probe is not None:
                probe = standby_probe(lease, name, probe)
        entry = self.watch(name, probe)
        entry.run, entry.forever, entry.leases = run, forever, lease
        entry.task = asyncio.create_task(self._keep(entry), name=name)
        return entry

    async def finished(self, name: str) -> None:
        """Wait until the one-shot task `name` has done its work (it is retried until it has):
        e.g. the figures are ready once "designs" has installed and warmed the views."""
        entry = self.entries[name]
        if entry.forever or entry.task is None:
            raise ValueError(f"{name} is not a one-shot task")
        await asyncio.shield(entry.task)

    def watch(self, name: str, probe: Probe | None) -> Supervised:
        """Report on `name` through `probe` alone (a part of the server without a task)."""
        if name in self.entries:
            raise ValueError(f"{name} is supervised already")
        entry = self.entries[name] = Supervised(name, None, probe, forever=False)
        return entry

    async def _keep(self, entry: Supervised) -> None:
        assert entry.run is not None
        loop = asyncio.get_running_loop()
        in_a_row = 0
        while True:
            began = loop.time()
            try:
                await entry.run()
                if not entry.forever:
                    entry.done = True
                    return
                raise RuntimeError(f"{entry.name} ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if loop.time() - began >= self.healthy_after_s:
                    in_a_row = 0
                in_a_row += 1
                entry.failures += 1
                entry.last_error = type(exc).__name__
                delay = min(self.backoff_max_s, self.backoff_min_s * 2 ** (in_a_row - 1))
                delay *= 0.5 + self.jitter() / 2
                log.exception("background task %s failed (%d in a row); restarting in %.1f s",
                              entry.name, in_a_row, delay)
            entry.waiting = True
            try:
                await asyncio.sleep(delay)
            finally:
                entry.waiting = False
            entry.restarts += 1

    async def stop(self, entries: Iterable[Supervised]) -> None:
        """Cancel these tasks and wait for them to end (a task's own clean-up runs then)."""
        tasks = [e.task for e in entries if e.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        await self.stop(self.entries.values())

    async def lag(self, entry: Supervised) -> Lag:
        """The probe's answer; a probe that fails says its part is failing."""
        if entry.probe is None:
            return Lag()
        try:
            found = entry.probe()
            if not isinstance(found, Awaitable):
                return found
            async with asyncio.timeout(self.probe_s):
                return await found
        except TimeoutError:
            return Lag()  # it cannot tell in time; whether it works is told by its task
        except Exception:
            log.exception("health probe of %s failed", entry.name)
            return Lag(failing=True)

    def status(self, entry: Supervised, lag: Lag) -> Status:
        if entry.waiting or lag.failing or (entry.task is not None and entry.task.done()
                                            and not entry.done):
            return "failed"
        if lag.seconds is not None and lag.seconds > self.lagging_s:
            return "lagging"
        return "ok"

    async def report(self) -> dict[str, dict[str, Any]]:
        """Each part's state: its status word, then what an operator reads it by."""
        probes = await asyncio.gather(*(self.lag(e) for e in self.entries.values()))
        out: dict[str, dict[str, Any]] = {}
        for entry, lag in zip(self.entries.values(), probes, strict=True):
            item: dict[str, Any] = {"status": self.status(entry, lag)}
            if lag.seconds is not None:
                item["lag_seconds"] = round(lag.seconds, 3)
            if lag.items is not None:
                item["lag_items"] = lag.items
            if lag.detail:
                item.update(lag.detail)
            if entry.run is not None:
                item.update(failures=entry.failures, restarts=entry.restarts,
                            last_error=entry.last_error, done=entry.done)
            if entry.leases is not None:
                item["lease"] = "held" if entry.leases.holds(entry.name) else "standby"
            out[entry.name] = item
        return out


def standby_probe(lease: Leases, name: str, probe: Probe) -> Probe:
    """A leased task's probe: in a process standing by, the work it counts is not late (the
    holder does it, or a query here does), so its age is left out and it is never `lagging`."""

    async def probing() -> Lag:
        found = probe()
        lag = await found if isinstance(found, Awaitable) else found
        return lag if lease.holds(name) else dataclasses.replace(lag, seconds=None)

    return probing


def overall(report: dict[str, dict[str, Any]]) -> Status:
    """The worst of the parts' states."""
    return max((item["status"] for item in report.values()), key=STATUSES.index, default="ok")
