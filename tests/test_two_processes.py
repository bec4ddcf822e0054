"""Two `linli serve` processes on one store (docs/deployment.md), as behind a load balancer
without sticky sessions: clients alternate between them and find the same answers.

- A session made on one process works on the other; an account disabled on one is refused
  by the other.
- A real PouchDB phone pushes through one process and another pulls the same records through
  the other; both processes' figures agree, each rebuilt from the store.
- Claims for limited places (a volunteer task) go alternately to both processes, some sent
  to both at once, and one process is killed with SIGKILL in the middle: exactly the places
  are allocated, to the first claimants in the store's order, every answer a client got is
  the final truth, no outcome is written twice differently.
- The jobs that must run once run in the first process only (their leases are its); after
  the kill, the survivor takes every lease within the lease's length. A process started
  afterwards gives the same answers as the survivor.

The store is the embedded PouchDB Server the first process starts (it outlives that process's
SIGKILL, as a CouchDB cluster outlives any server process); the second uses it by COUCHDB_URL.
Apache CouchDB itself cannot be installed here: docs/deployment.md says what that leaves
untested."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import couchdb
import pytest
from conftest import PASSWORD, NodeClient, auth_for, basic, eventually, visit
from test_faults import ServerProcess, store_get, write_docs
from test_volunteering_race import a_community, post

from server.admin import directory
from server.domain.allocation import Event, Terms, allocate
from server.domain.scope import CLAIMS_DB, RESIDENTS_DB, grid_db
from server.sync.allocation import outcome_id
from server.web.auth import SESSION_COOKIE

pytestmark = pytest.mark.slow  # three server processes, one killed

LEASE_SECONDS = 6.0
# Jobs that must run once (server/web/app.py, volunteering.py, votes.py)
LEASED = {"conflicts", "aggregates", "retention", "allocation-sweep", "volunteer-release", "votes"}
PLACES = 8
CLAIMANTS = 60  # a_community's residents: CLAIMANTS of test_volunteering_race (200), first 60
BOTH_AT_ONCE = 15  # claimants whose claim is sent to both processes at once
KILL_AFTER = 25  # answered claims before the first process is killed
SETTINGS = {"LINLI_LEASE_SECONDS": str(LEASE_SECONDS),
            # 60 phones behind the test's one address (as behind a carrier's NAT)
            "LINLI_LOGIN_FAILURES_PER_ADDRESS": "100000",
            "LINLI_RESIDENT_SWEEP_SECONDS": "1"}


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[ServerProcess]]:
    """The first process with its embedded store, then the second on that store."""
    first = ServerProcess(tmp_path / "a" / "var", env=dict(SETTINGS))
    (tmp_path / "a").mkdir()
    servers = [first]
    try:
        await first.start()
        (tmp_path / "b").mkdir()
        second = ServerProcess(tmp_path / "b" / "var",
                               env={**SETTINGS, "COUCHDB_URL": first.store_url()})
        servers.append(second)
        await second.start()
        yield servers
    finally:
        for server in reversed(servers):  # the first last: it ends the store it started
            server.stop()


async def health(http: aiohttp.ClientSession, server: ServerProcess, admin: str
                 ) -> dict[str, Any]:
    """Each task's state as the admin sees it; nothing while the process does not know the
    admin yet (it follows the directory) or does not answer."""
    with contextlib.suppress(aiohttp.ClientError):
        async with http.get(server.url + "/api/health", headers=basic(admin)) as resp:
            if resp.status == 200:
                return dict((await resp.json())["tasks"])
    return {}


async def leases_of(http: aiohttp.ClientSession, server: ServerProcess,
                    admin: str) -> dict[str, str]:
    tasks = await health(http, server, admin)
    return {name: item["lease"] for name, item in tasks.items() if "lease" in item}


async def get_json(http: aiohttp.ClientSession, url: str, user: str,
                   **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params, headers=basic(user)) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_two_processes_one_store(pair: list[ServerProcess], node: NodeClient,
                                       tmp_path: Path) -> None:
    a, b = pair
    store = a.store_url()
    tag = os.urandom(3).hex()
    community, supervisor, residents = await asyncio.to_thread(a_community, store, tag)
    residents = residents[:CLAIMANTS]
    grid = f"g{tag}"
    worker, admin = f"wk{tag}", f"adm{tag}"

    def staff() -> None:
        couch = directory.prepared(couchdb.Server(store))
        directory.add_user(couch, worker, "worker", PASSWORD, grids=[grid])
        directory.add_user(couch, admin, "admin", PASSWORD)
    await asyncio.to_thread(staff)

    async with aiohttp.ClientSession() as http:
        for server in pair:  # both follow the directory
            async def known(s: ServerProcess = server) -> bool:
                status, _ = await get_json(http, f"{s.url}/couch/{grid_db(grid)}", worker)
                return status == 200
            await eventually(known, seconds=30, what="the worker known to both")

        # -- the jobs that must run once: the first process's ---------------------------------
        async def first_holds_all() -> bool:
            return (set((await leases_of(http, a, admin)).values()) == {"held"}
                    and set((await leases_of(http, b, admin)).values()) == {"standby"})
        await eventually(first_holds_all, seconds=30, what="the first process holding")
        assert set(await leases_of(http, a, admin)) == LEASED

        # -- sessions: made on one, valid on the other; disabled on one, refused by both ------
        async with http.post(a.url + "/couch/_session",
                             json={"name": worker, "password": PASSWORD}) as resp:
            assert resp.status == 200
            cookie = resp.cookies[SESSION_COOKIE].value
        http.cookie_jar.clear()
        async with aiohttp.ClientSession(cookies={SESSION_COOKIE: cookie}) as phone:
            async with phone.get(f"{b.url}/couch/{grid_db(grid)}") as resp:
                assert resp.status == 200  # made on a, used on b

            # -- a real phone pushes through one, another pulls through the other -------------
            figures_before = await both_figures(http, pair, supervisor, grid)
            assert figures_before[0] == figures_before[1]
            docs = [visit(grid, worker, f"{tag}-{i:03d}", persons_present=i % 5)
                    for i in range(40)]
            pushed = await node.run({"op": "push_logged", "remote": f"{a.url}/couch/"
                                     f"{grid_db(grid)}", "local": node.local("phone-a"),
                                     "auth": auth_for(worker),
                                     "docs_file": write_docs(node, "visits", docs)})
            assert pushed["_exit"] == 0 and pushed["ok"], pushed
            pulled = await node.run({"op": "pull", "remote": f"{b.url}/couch/{grid_db(grid)}",
                                     "local": node.local("phone-b"), "auth": auth_for(worker)})
            assert pulled["ok"], pulled
            held = await node.run({"op": "count", "local": node.local("phone-b"),
                                   "with_docs": True})
            assert {d["_id"] for d in docs} <= set(held["docs"])

            # Both processes' figures agree, each from the store: b never saw these writes.
            async def agreed() -> list[dict[str, Any]] | None:
                found = await both_figures(http, pair, supervisor, grid)
                return found if found[0] == found[1] != figures_before[0] else None
            figures = await eventually(agreed, seconds=30, what="the same figures from both")
            assert figures[0] == figures[1]

            # Disabled through b: refused by a (once it has followed the directory).
            async with http.post(f"{b.url}/api/users/{worker}/disable",
                                 headers=basic(admin)) as resp:
                assert resp.status == 200, await resp.text()

            async def refused() -> bool:
                async with phone.get(f"{a.url}/couch/{grid_db(grid)}") as resp:
                    return resp.status == 401
            await eventually(refused, seconds=10, what="the disabled account refused by a")
            status, _ = await get_json(http, f"{a.url}/couch/{grid_db(grid)}", worker)
            assert status == 401  # Basic too

        # -- claims for limited places, alternately to both, one process killed -------------
        start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
        status, made = await post(http, a.url + "/api/volunteer/tasks", supervisor, {
            "title": "社区防疫志愿者", "description": "协助核酸检测点秩序维护",
            "place": "坊门社区广场", "community": community, "starts_at": start.isoformat(),
            "ends_at": (start + datetime.timedelta(hours=4)).isoformat(), "places": PLACES})
        assert status == 201, made
        task = made["task"]["_id"]
        for server in pair:
            for name in (residents[0], residents[-1]):
                async def indexed(s: ServerProcess = server, n: str = name) -> bool:
                    status, _ = await get_json(http, f"{s.url}/couch/linli-resident/{task}", n)
                    return status == 200
                await eventually(indexed, seconds=60, what="residents indexed by both")

        rng = random.Random(21)
        answered: list[tuple[str, str, dict[str, Any]]] = []
        failures: dict[int, int] = {}
        killed = asyncio.Event()

        async def send(name: str, first: int) -> None:
            await asyncio.sleep(rng.random() * 2)
            target = first
            while True:
                url = f"{pair[target].url}/api/volunteer/tasks/{task}/claim"
                try:
                    status, body = await post(http, url, name, {"claim_id": f"{name}-phone"})
                except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
                    status, body = 0, {}
                if status in (200, 201):
                    answered.append((name, pair[target].url, body))
                    if len(answered) == KILL_AFTER:
                        killed.set()
                    return
                assert status in (0, 500, 502, 503), (status, body)  # never a wrong answer
                failures[status] = failures.get(status, 0) + 1
                target = 1 - target  # the load balancer sends the retry to the other
                await asyncio.sleep(0.2 + rng.random() * 0.3)

        async def client(i: int, name: str) -> None:
            sends = [send(name, i % 2)]
            if i < BOTH_AT_ONCE:
                sends.append(send(name, 1 - i % 2))  # the same claim to both at once
            await asyncio.gather(*sends)

        took_over: list[float] = []

        async def kill_first() -> None:
            await killed.wait()
            a.kill9()
            killed_at = time.monotonic()

            async def survivor_holds_all() -> bool:
                return set((await leases_of(http, b, admin)).values()) == {"held"}
            await eventually(survivor_holds_all, seconds=LEASE_SECONDS * 4,
                             what="the survivor holding every lease")
            took_over.append(time.monotonic() - killed_at)

        await asyncio.gather(kill_first(), *(client(i, n) for i, n in enumerate(residents)))
        assert a.process is not None and a.process.returncode is not None  # it was killed
        # Within the lease's length (plus one try of the survivor's and a health check)
        assert took_over and took_over[0] <= LEASE_SECONDS + LEASE_SECONDS / 3 + 3, took_over

        # What the store holds: each claim once, no outcome in conflict.
        changes = await store_get(f"{store}/{CLAIMS_DB}/_changes", include_docs="true")
        claims = [c["doc"] for c in changes["results"]
                  if c["doc"].get("type") == "claim" and c["doc"]["subject"] == task]
        assert len(claims) == len({c["_id"] for c in claims}) == CLAIMANTS
        in_order = list(dict.fromkeys(c["claimant"] for c in claims))

        async def outcomes() -> dict[str, dict[str, Any]] | None:
            got = (await store_get(f"{store}/{RESIDENTS_DB}/_all_docs", include_docs="true",
                                   conflicts="true",
                                   startkey=json.dumps(outcome_id(task, "")),
                                   endkey=json.dumps(outcome_id(task, "\ufff0"))))["rows"]
            found = {r["doc"]["claimant"]: r["doc"] for r in got}
            return found if len(found) == CLAIMANTS else None
        final = await eventually(outcomes, seconds=30, what="every claimant's outcome")
        assert not [d for d in final.values() if d.get("_conflicts")]
        confirmed = {who for who, doc in final.items() if doc["status"] == "confirmed"}
        waiting = {who: doc["line"] for who, doc in final.items() if doc["status"] == "waiting"}
        assert confirmed == set(in_order[:PLACES])  # exactly the places, the first received
        assert sorted(waiting.values()) == list(range(1, CLAIMANTS - PLACES + 1))
        events = [Event(c["_id"], c["act"], c["claimant"],
                        datetime.datetime.fromisoformat(c["received_at"])) for c in claims]
        assert {w: (o.status, o.line) for w, o in allocate(Terms(PLACES), events).items()} == {
            w: (d["status"], d["line"]) for w, d in final.items()}
        # Every answer any process gave is the truth.
        assert len(answered) == CLAIMANTS + BOTH_AT_ONCE
        by_process = {url for _, url, _ in answered}
        assert by_process == {a.url, b.url}, by_process
        for name, url, body in answered:
            assert (body["status"], body["line"]) == (final[name]["status"],
                                                      final[name]["line"]), (name, url, body)

        # -- a process started afterwards answers as the survivor does ----------------------
        third = ServerProcess(tmp_path / "c" / "var",
                              env={**SETTINGS, "COUCHDB_URL": store})
        (tmp_path / "c").mkdir()
        pair.append(third)
        await third.start()
        answers = []
        for server in (b, third):
            status, shown = await get_json(
                http, f"{server.url}/api/volunteer/tasks/{task}/allocation", supervisor)
            assert status == 200, shown
            answers.append(shown)
        assert answers[0] == answers[1]
        assert set((await leases_of(http, third, admin)).values()) == {"standby"}
        again = await both_figures(http, [b, third], supervisor, grid)
        assert again[0] == again[1] == figures[0]
        for name in (residents[0], residents[PLACES]):
            seen = []
            for server in (b, third):
                status, doc = await get_json(
                    http, f"{server.url}/couch/linli-resident/{outcome_id(task, name)}", name)
                assert status == 200, doc
                seen.append((doc["status"], doc["line"]))
            assert seen[0] == seen[1] == (final[name]["status"], final[name]["line"])
    print(f"\n{CLAIMANTS} claimants, {PLACES} places, two processes, the first killed after "
          f"{KILL_AFTER} answers: leases taken over in {took_over[0]:.1f} s "
          f"(lease {LEASE_SECONDS:g} s); failed sends retried {failures}")


async def both_figures(http: aiohttp.ClientSession, servers: list[ServerProcess],
                       supervisor: str, grid: str) -> list[dict[str, Any]]:
    found = []
    for server in servers:
        status, report = await get_json(http, f"{server.url}/api/aggregates", supervisor,
                                        level="grid", code=grid)
        assert status == 200, report
        found.append(report)
    return found
