"""Load held (issue 7), scaled down to run in the suite; scripts/bench-load measures it at full
size. A reconnect storm of real PouchDB clients (many per node process, tests/node/load.mjs)
loses and duplicates nothing; credential stuffing on one account is stopped at the limit, with
password hashing never running more than password_hash_concurrency at once; aggregates kept up
to date while phones sync continuously equal a brute-force count afterwards."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from typing import Any

import aiohttp
import argon2
import pytest
from conftest import PASSWORD, City, basic, wait_for_user
from test_aggregates import brute_force, raw_docs, receipts_of

from server.config import Config
from server.store.embedded import PROJECT_ROOT
from server.web import auth
from server.web.app import create_app
from server.web.keys import DIRECTORY

LOAD_JS = PROJECT_ROOT / "tests" / "node" / "load.mjs"
COMMUNITY, STREET = "339999002001", "339999002"

pytestmark = pytest.mark.slow


async def wait_for_users(app: Any, names: list[str]) -> None:
    users = app[DIRECTORY].users
    for _ in range(300):
        if all(name in users for name in names):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server never saw every user")


async def login(session: aiohttp.ClientSession, base: str, name: str) -> str:
    async with session.post(f"{base}/couch/_session",
                            json={"name": name, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        return f"AuthSession={resp.cookies['AuthSession'].value}"


class LoadProcess:
    """One tests/node/load.mjs process."""

    def __init__(self, command: dict[str, Any]) -> None:
        self.command = command
        self.lines: list[dict[str, Any]] = []
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "node", str(LOAD_JS), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(self.command).encode() + b"\n")
        await self.proc.stdin.drain()

    async def line(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            err = await self.proc.stderr.read() if self.proc.stderr else b""
            raise AssertionError(f"load.mjs ended ({self.proc.returncode}): {err[-2000:]!r}")
        return json.loads(raw)

    def send(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def test_reconnect_storm_loses_and_duplicates_nothing(live_server: str, city: City) -> None:
    """40 devices (10 in each of 4 node processes) across 4 grids reconnect at once; each pushes
    its 50 queued visits and then pulls its grid. Every device finishes, every record is stored
    exactly once, and any 429 or 503 carried Retry-After."""
    grids = [await city.grid() for _ in range(4)]
    devices_per_grid, records = 10, 50
    names = [await city.user(grids=[grids[i % 4]]) for i in range(4 * devices_per_grid)]
    async with aiohttp.ClientSession() as session:
        deadline = asyncio.get_running_loop().time() + 20
        while True:  # the live server learns of new users from the directory's feed
            async with session.get(f"{live_server}/couch/_all_dbs",
                                   headers=basic(names[-1])) as resp:
                if resp.status == 200:
                    break
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.3)
        gate = asyncio.Semaphore(4)

        async def cookie(name: str) -> str:
            async with gate:
                return await login(session, live_server, name)

        cookies = await asyncio.gather(*(cookie(n) for n in names))
    devices = [{"id": f"d{i:03d}", "user": name, "grid": grids[i % 4],
                "remote": f"{live_server}/couch/grid-{grids[i % 4]}", "cookie": cookies[i],
                "records": records, "seed": i + 1} for i, name in enumerate(names)]
    procs = [LoadProcess({"op": "storm", "devices": devices[p::4], "deadline_ms": 150_000,
                          "attempts": 30}) for p in range(4)]
    try:
        await asyncio.gather(*(p.start() for p in procs))
        for proc in procs:
            assert (await proc.line(60))["ready"] is True
        for proc in procs:
            proc.send("go")
        finals = await asyncio.gather(*(p.line(170) for p in procs))
    finally:
        await asyncio.gather(*(p.close() for p in procs))
    assert all(f["ok"] for f in finals), finals
    results = [d for f in finals for d in f["devices"]]
    assert len(results) == len(devices)
    assert [d for d in results if d["failed"] or d["denied"]] == []
    assert all(d["pushed"] == records for d in results)
    assert all(d["local_docs"] >= records for d in results)
    for f in finals:
        assert f["http"]["missing_retry_after"] == 0 and f["http"]["other_5xx"] == 0, f["http"]
    for code in grids:
        assert await city.records(code) == devices_per_grid * records
        ids = await city.run(lambda code=code: [row.id for row in city.db(code).view(
            "_all_docs") if row.id.startswith("household_visit:")])
        assert len(ids) == len(set(ids)) == devices_per_grid * records


class CountingHasher(argon2.PasswordHasher):
    """The server's own hasher (same parameters), counting hashes in flight as they run."""

    def __init__(self, base: argon2.PasswordHasher) -> None:
        super().__init__(time_cost=base.time_cost, memory_cost=base.memory_cost,
                         parallelism=base.parallelism, hash_len=base.hash_len,
                         salt_len=base.salt_len, type=base.type)
        self.lock = threading.Lock()
        self.running = self.most = self.total = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self.lock:
            self.running += 1
            self.total += 1
            self.most = max(self.most, self.running)
        try:
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


async def test_credential_stuffing_is_stopped_and_hashing_capped(
        aiohttp_client: Any, config: Config, city: City, monkeypatch: pytest.MonkeyPatch) -> None:
    """300 wrong passwords on one account at once, each from its own address (behind the
    trusted proxy, so X-Forwarded-For is the client's address): only the account's limit reaches
    the hasher, every other attempt is a 429 with Retry-After. A spray over unknown accounts
    hashes every attempt, never more than password_hash_concurrency at once. The worker's phone,
    already logged in, keeps its session; the worker's own login works again after the window."""
    hasher = CountingHasher(auth.PASSWORD_HASHER)
    monkeypatch.setattr(auth, "PASSWORD_HASHER", hasher)
    window = 3
    client = await aiohttp_client(create_app(dataclasses.replace(
        config, trust_proxy=True, login_window_seconds=window)))
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    await wait_for_user(client, worker)
    resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD},
                             headers={"X-Forwarded-For": "10.0.0.1"})
    assert resp.status == 200
    session_cookie = resp.cookies["AuthSession"].value
    client.session.cookie_jar.clear()
    assert hasher.total == 1
    hasher.total = hasher.most = 0

    async def attempt(name: str, n: int, octet: int) -> tuple[int, str | None]:
        resp = await client.post(
            "/couch/_session", json={"name": name, "password": f"guess-{n}"},
            headers={"X-Forwarded-For": f"10.{octet}.{n // 250}.{n % 250 + 1}"})
        await resp.read()
        return resp.status, resp.headers.get("Retry-After")

    answers = await asyncio.gather(*(attempt(worker, n, 1) for n in range(300)))
    statuses = [status for status, _ in answers]
    limit = config.login_failures_per_account
    assert statuses.count(401) == limit and statuses.count(429) == 300 - limit
    assert all(after is not None and 0 < int(after) <= window + 1
               for status, after in answers if status == 429)
    assert hasher.total == limit
    assert hasher.most <= config.password_hash_concurrency

    # The real worker: a fresh login is refused while the account is locked, the session the
    # phone holds keeps working.
    resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD},
                             headers={"X-Forwarded-For": "10.0.0.1"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    resp = await client.get(f"/couch/grid-{grid}",
                            headers={"Cookie": f"AuthSession={session_cookie}"})
    assert resp.status == 200

    # A spray: every attempt is hashed (unknown accounts too, so timing reveals nothing), and
    # never more than the cap at once.
    hasher.total = hasher.most = 0
    answers = await asyncio.gather(*(attempt(f"nobody{n:04d}", n, 2) for n in range(60)))
    assert [status for status, _ in answers] == [401] * 60
    assert hasher.total == 60
    assert hasher.most == config.password_hash_concurrency

    await asyncio.sleep(window + 1.5)
    resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD},
                             headers={"X-Forwarded-For": "10.0.0.1"})
    assert resp.status == 200


async def test_aggregates_during_continuous_sync_equal_a_recount(live_server: str,
                                                                  city: City) -> None:
    """Eight phones in two grids keep a live push open while they save visits in rounds, edit
    earlier ones and delete some; a supervisor polls the figures all along. Each answer is
    whole, visits only grow as the phones add them, and once the phones are done the figures
    the server kept up to date by itself equal a brute-force count of the stored documents."""
    grids = [await city.grid(community=COMMUNITY, street=STREET) for _ in range(2)]
    names = [await city.user(grids=[grids[i % 2]]) for i in range(8)]
    boss = await city.user("supervisor", communities=[COMMUNITY])
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.get(f"{live_server}/couch/_all_dbs",
                                   headers=basic(boss)) as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.2)
        cookies = [await login(session, live_server, n) for n in names]
        devices = [{"id": f"t{i}", "user": name, "grid": grids[i % 2],
                    "remote": f"{live_server}/couch/grid-{grids[i % 2]}", "cookie": cookies[i],
                    "records": 60, "seed": 100 + i} for i, name in enumerate(names)]
        proc = LoadProcess({"op": "trickle", "devices": devices, "rounds": 6,
                            "interval_ms": 700, "deadline_ms": 60_000})
        polls: list[dict[str, int]] = []

        async def poll(code: str) -> dict[str, int]:
            async with session.get(f"{live_server}/api/aggregates",
                                   params={"level": "grid", "code": code},
                                   headers=basic(boss)) as resp:
                assert resp.status == 200, await resp.text()
                return (await resp.json())["figures"]

        for code in grids:  # the figures' first read builds the grids' views: not timed below
            await poll(code)
        try:
            await proc.start()
            final_task = asyncio.create_task(proc.line(120))
            while not final_task.done():
                polls.append({code: (await poll(code)).get("visits.total", 0)
                              for code in grids})
                await asyncio.sleep(0.2)
            final = final_task.result()
        finally:
            await proc.close()
        assert final["ok"], final
        # Caught up by its checkpoint; a 429/503 the replication waited out is no error (its
        # Retry-After is checked below), a refusal or any other failure is.
        assert all(d["caught_up"] and not d["errors"] for d in final["devices"]), final
        assert final["http"]["missing_retry_after"] == 0 and final["http"]["other_5xx"] == 0
        assert len(polls) >= 2  # polled while the phones synced (few on a loaded machine)
        assert any(p[grids[0]] > 0 for p in polls)

        written = {code: sum(d["written"] - d["deleted"] for d in final["devices"]
                             if d["grid"] == code) for code in grids}
        couch = city.couch
        expected: dict[str, dict[str, int]] = {}
        for code in grids:
            docs = await city.run(raw_docs, city.db(code))
            assert sum(1 for d in docs if d["type"] == "household_visit") == written[code]
            expected[code] = dict(brute_force(docs, await city.run(receipts_of, couch),
                                              f"grid-{code}"))
        figures: dict[str, dict[str, int]] = {}
        for _ in range(100):  # kept up to date in the background: about a second behind
            figures = {code: await poll(code) for code in grids}
            if figures == expected:
                break
            await asyncio.sleep(0.2)
        assert figures == expected
        # While the phones added and deleted, the count never ran past what they wrote.
        for code in grids:
            assert max(p[code] for p in polls) <= sum(d["written"] for d in final["devices"]
                                                      if d["grid"] == code)
        community = await (await session.get(
            f"{live_server}/api/aggregates", params={"level": "community", "code": COMMUNITY},
            headers=basic(boss))).json()
        assert community["figures"]["visits.total"] == sum(written.values())
