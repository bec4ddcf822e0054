"""Background work is supervised (issue 14): a task that fails on anything, the store's error or a
surprise, is logged and started again with a bounded, jittered back-off, and GET /api/health
shows it `failed` meanwhile, then `ok`; a task that falls behind is shown `lagging` with its lag.
Failures come through real paths: the figures' file that cannot be opened, a directory record
the directory cannot take."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import couchdb
import pytest
from aiohttp.test_utils import TestClient
from conftest import TEST_LIMITS, City, basic, designs_installed, eventually, visit, wait_for_user

from server.config import Config
from server.domain.scope import DIRECTORY_DB, grid_db
from server.sync.aggregates import FILE as FIGURES_FILE
from server.sync.supervisor import Lag, Supervisor
from server.web.app import create_app
from server.web.keys import DIRECTORY, SUPERVISOR

QUICK = {"backoff_min_s": 0.05, "backoff_max_s": 0.4}


async def started(aiohttp_client: Any, config: Config, **settings: Any) -> TestClient:
    """The real app on the session's store, its supervisor's back-off shortened."""
    values = {"data": config.data, "couchdb_url": config.couchdb_url, **TEST_LIMITS, **settings}
    app = create_app(Config.from_mapping(values))
    for name, value in QUICK.items():
        setattr(app[SUPERVISOR], name, value)
    return await aiohttp_client(app)


async def health(client: TestClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = await client.get("/api/health", headers=headers or {})
    assert resp.status == 200
    return dict(await resp.json())


async def task_state(client: TestClient, admin: str, name: str) -> dict[str, Any]:
    return dict((await health(client, basic(admin)))["tasks"][name])


async def test_a_failing_task_is_logged_restarted_and_shown_failed_then_ok(
        aiohttp_client: Any, config: Config, city: City, caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    # The figures' file (server/sync/figure_fold.py) cannot be opened: a folder stands where
    # it goes, as a mistaken restore from a backup could leave it.
    blocked = tmp_path / FIGURES_FILE
    blocked.mkdir()
    caplog.set_level(logging.ERROR, logger="server.sync.supervisor")
    client = await started(aiohttp_client, config, data=tmp_path,
                           aggregates_refresh_seconds=0.1)
    grid = await city.grid()
    worker, admin = await city.user(grids=[grid]), await city.user("admin")
    await wait_for_user(client, worker)
    await wait_for_user(client, admin)
    await designs_installed(client)
    resp = await client.put(f"/couch/{grid_db(grid)}/household_visit:{grid}-1",
                            json=visit(grid, worker, 1), headers=basic(worker))
    assert resp.status == 201, await resp.text()

    failed = await eventually(lambda: failed_state(client, admin), 30,
                              what="aggregates shown failed")
    assert failed["last_error"] == "OperationalError" and str(blocked) not in str(failed), failed

    async def shown_failed() -> dict[str, Any] | None:  # to anyone: the word only
        report = await health(client)
        return report if report["tasks"]["aggregates"] == {"status": "failed"} else None

    assert (await eventually(shown_failed, 30, what="failed shown to anyone"))["status"] == "failed"
    logged = [r for r in caplog.records if "aggregates failed" in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert logged[0].exc_info[0] is sqlite3.OperationalError
    # Restarted, failing again while the folder stays: the back-off grows.
    again = await eventually(lambda: restarted_twice(client, admin), 30,
                             what="aggregates restarted")
    assert again["failures"] >= 2, again

    # Mended: the restarted task counts the grid from nothing, and the state is ok again.
    blocked.rmdir()

    async def healed() -> dict[str, Any] | None:
        state = await task_state(client, admin, "aggregates")
        return state if state["status"] == "ok" and state["lag_items"] == 0 else None

    state = await eventually(healed, 30, what="aggregates ok again")
    assert state["restarts"] >= 1
    figures = (await (await client.get(f"/api/aggregates?level=grid&code={grid}",
                                       headers=basic(admin))).json())["figures"]
    assert figures["visits.total"] == 1
    assert (await health(client))["tasks"]["aggregates"] == {"status": "ok"}


async def failed_state(client: TestClient, admin: str) -> dict[str, Any] | None:
    state = await task_state(client, admin, "aggregates")
    return state if state["status"] == "failed" else None


async def restarted_twice(client: TestClient, admin: str) -> dict[str, Any] | None:
    state = await task_state(client, admin, "aggregates")
    return state if state["restarts"] >= 2 else None


async def test_a_poisoned_directory_record_fails_the_follower_until_mended(
        aiohttp_client: Any, config: Config, city: City, couch: couchdb.Server) -> None:
    """A user record whose grids are not a list (written straight to the store, as a script
    might) stops the directory follower, which used to end in silence: no user added after it
    was ever seen. Restarted from the last change it applied, it takes the mended record."""
    client = await started(aiohttp_client, config)
    admin = await city.user("admin")
    await wait_for_user(client, admin)
    name = f"poison{uuid.uuid4().hex[:8]}"
    directory_db = await city.run(couch.__getitem__, DIRECTORY_DB)
    doc = {"_id": f"user:{name}", "type": "user", "name": name, "role": "worker", "grids": 5}
    await city.run(directory_db.save, doc)

    async def directory_failed() -> dict[str, Any] | None:
        state = await task_state(client, admin, "directory")
        return state if state["failures"] >= 1 and state["status"] == "failed" else None

    state = await eventually(directory_failed, 30, what="directory shown failed")
    assert state["last_error"] == "TypeError", state
    assert state["lag_items"] >= 1, state  # the poisoned change, not applied
    assert name not in client.app[DIRECTORY].users
    doc["grids"] = [await city.grid()]
    await city.run(directory_db.save, doc)
    await wait_for_user(client, name)
    later = await city.user("admin")  # and the follower goes on past it
    await wait_for_user(client, later)
    state = await task_state(client, admin, "directory")
    assert state["status"] == "ok" and state["restarts"] >= 1, state
    assert state["lag_items"] == 0, state


async def test_lag_is_shown_when_the_aggregates_fall_behind(
        aiohttp_client: Any, config: Config, city: City) -> None:
    """Writes come faster than the figures' refresh: the aggregates are shown lagging, with how
    long the oldest write waited and how many grids wait; a dashboard query catches up."""
    client = await started(aiohttp_client, config, aggregates_refresh_seconds=600,
                           lagging_seconds=0.3)
    grid = await city.grid()
    worker, admin = await city.user(grids=[grid]), await city.user("admin")
    await wait_for_user(client, worker)
    await wait_for_user(client, admin)
    assert (await task_state(client, admin, "aggregates"))["status"] == "ok"

    async def write(n: int) -> None:
        resp = await client.put(f"/couch/{grid_db(grid)}/household_visit:{grid}-{n}",
                                json=visit(grid, worker, n), headers=basic(worker))
        assert resp.status == 201, await resp.text()

    async def counted() -> bool:
        return (await task_state(client, admin, "aggregates"))["lag_items"] == 0

    await write(0)  # a grid never counted is counted at once; then once every 600 s at most
    await eventually(counted, 30, what="the first write counted")
    await write(1)

    async def lagging() -> dict[str, Any] | None:
        state = await task_state(client, admin, "aggregates")
        return state if state["status"] == "lagging" else None

    state = await eventually(lagging, 30, what="aggregates shown lagging")
    assert state["lag_seconds"] > 0.3 and state["lag_items"] == 1, state
    assert state["failures"] == 0, state  # behind, not broken
    anonymous = await health(client)
    assert anonymous["tasks"]["aggregates"] == {"status": "lagging"}
    assert anonymous["status"] == "lagging"

    resp = await client.get(f"/api/aggregates?level=grid&code={grid}", headers=basic(admin))
    assert (await resp.json())["figures"]["visits.total"] == 2
    state = await task_state(client, admin, "aggregates")
    assert state["status"] == "ok" and state["lag_items"] == 0 and "lag_seconds" not in state


async def test_every_part_is_reported_with_the_lag_it_can_tell(
        aiohttp_client: Any, config: Config, city: City) -> None:
    client = await started(aiohttp_client, config)
    admin = await city.user("admin")
    await wait_for_user(client, admin)
    tasks = (await health(client, basic(admin)))["tasks"]
    assert set(tasks) == {"store", "feeds", "directory", "receipts", "rebuilds", "conflicts",
                          "aggregates", "sessions", "designs", "door_links", "allocation",
                          "residents-index", "votes", "volunteer-release", "questionnaires",
                          "retention", "ratings", "allocation-sweep", "presence"}
    # One process alone holds the lease of every job that must run once (docs/deployment.md)
    leased = {name for name, item in tasks.items() if "lease" in item}
    assert leased == {"conflicts", "aggregates", "retention", "allocation-sweep",
                      "volunteer-release", "votes"}, leased
    assert all(tasks[name]["lease"] == "held" for name in leased), tasks
    assert tasks["store"] == {"status": "ok"}  # a probe alone, on Apache CouchDB's URL
    for name in ("directory", "receipts", "conflicts", "aggregates"):
        assert tasks[name]["lag_items"] == 0, tasks[name]  # changes, receipts, grids waiting
        assert tasks[name]["failures"] == 0 and tasks[name]["status"] == "ok", tasks[name]
    # A server before this one that did not stop cleanly has its receipts looked for.
    assert isinstance(tasks["rebuilds"]["lag_items"], int), tasks["rebuilds"]
    feeds = tasks["feeds"]  # the sweep of phones gone, and no watcher failing
    assert (feeds["status"], feeds["lag_items"], feeds["failures"]) == ("ok", 0, 0), feeds


async def test_the_back_off_doubles_within_its_bounds_and_is_jittered() -> None:
    """The supervisor alone, with a real task that fails four times then runs: each wait is
    between half and all of the doubling back-off, capped, and the waits are not all alike."""
    attempts: list[float] = []
    loop = asyncio.get_running_loop()
    running = asyncio.Event()

    async def flaky() -> None:
        attempts.append(loop.time())
        if len(attempts) <= 4:
            raise ValueError("not yet")
        running.set()
        await asyncio.Event().wait()

    supervisor = Supervisor(lagging_s=1.0, backoff_min_s=0.1, backoff_max_s=0.3)
    entry = supervisor.start("flaky", flaky)
    try:
        await asyncio.wait_for(running.wait(), 10)
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        schedule = (0.1, 0.2, 0.3, 0.3)
        for gap, full in zip(gaps, schedule, strict=True):
            assert full / 2 - 0.01 <= gap <= full + 0.15, (gaps, full)
        assert len({round(gap / full, 2) for gap, full in zip(gaps, schedule, strict=True)}) > 1
        assert entry.failures == 4 and entry.restarts == 4
        assert (await supervisor.report())["flaky"]["status"] == "ok"
    finally:
        await supervisor.close()
    assert entry.task is not None and entry.task.cancelled()


async def test_a_probe_that_hangs_does_not_hang_the_health_check() -> None:
    """A probe asks the store (the directory's sequence): a store that never answers leaves
    that part's lag unknown, and the answer comes in time."""
    never = asyncio.Event()

    async def hangs() -> Lag:
        await never.wait()
        return Lag(items=1)

    supervisor = Supervisor(lagging_s=1.0)
    supervisor.probe_s = 0.2
    supervisor.watch("slow", hangs)
    report = await asyncio.wait_for(supervisor.report(), 2)
    assert report == {"slow": {"status": "ok"}}


async def test_finished_waits_for_a_one_shot_task_through_its_failures() -> None:
    """What waits on the figures being ready (a test's fixture, a warm-up) waits on the one-shot
    task's success: through a failure and its retry, and not before; a task kept running forever
    has no such moment, and asking is an error, not a wait without end."""
    release, retried, attempts = asyncio.Event(), asyncio.Event(), []

    async def once() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("the store is starting")
        retried.set()
        await release.wait()

    supervisor = Supervisor(lagging_s=1.0, backoff_min_s=0.05, backoff_max_s=0.05)
    entry = supervisor.start("once", once, forever=False)
    forever = supervisor.start("forever", asyncio.Event().wait)
    try:
        waiting = asyncio.create_task(supervisor.finished("once"))
        await asyncio.wait_for(retried.wait(), 5)  # the retry after the failure has begun
        assert not waiting.done() and not entry.done
        release.set()
        await asyncio.wait_for(waiting, 5)
        assert entry.done and entry.failures == 1
        with pytest.raises(ValueError, match="one-shot"):
            await supervisor.finished("forever")
        assert forever.task is not None and not forever.task.done()
    finally:
        await supervisor.close()
