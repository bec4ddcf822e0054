"""Conflicts resolved by the domain's rules, with no edit lost (server/domain/merging.py, the rules;
server/sync/conflicts.py, the resolver; /api/conflicts, the supervisor's queue).

Conflicting revisions reach the server as phones send them: through the gateway, as
`_bulk_docs` with `new_edits=false` and the revision history, each from its own worker, so the
server's receipts say who sent what and when. Real PouchDB clients in node do the same in the
last tests."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import couchdb
import pytest
from conftest import (
    City,
    NodeClient,
    a_later_millisecond,
    auth_for,
    basic,
    eventually,
    wait_for_user,
)

from server.domain import merging
from server.domain.scope import grid_db
from server.sync.conflicts import RESOLVER, Resolver
from server.web.keys import COUCH, DIRECTORY, RECEIPTS, SCHEMAS, SUPERVISOR
from server.web.keys import RESOLVER as RESOLVER_KEY


def rev(generation: int, tag: str) -> str:
    return f"{generation}-{hashlib.md5(tag.encode()).hexdigest()}"


def branch(doc: dict[str, Any], *revs: str, **changes: Any) -> dict[str, Any]:
    """`doc` changed as a phone would change it, with the revision history the phone sends
    (newest first)."""
    start = int(revs[0].split("-")[0])
    body = {k: v for k, v in {**doc, **changes}.items() if v is not None}
    return {**body, "_rev": revs[0],
            "_revisions": {"start": start, "ids": [r.split("-", 1)[1] for r in revs]}}


async def push(client: Any, grid: str, user: str, docs: list[dict[str, Any]]) -> list[Any]:
    resp = await client.post(f"/couch/{grid_db(grid)}/_bulk_docs",
                             json={"docs": docs, "new_edits": False}, headers=basic(user))
    assert resp.status == 201, await resp.text()
    results = await resp.json()
    assert all("error" not in r for r in results), results
    return results


def household(grid: str, author: str, key: str, **fields: Any) -> dict[str, Any]:
    doc = {"_id": f"household:{grid}-{key}", "type": "household", "schema_version": 2,
           "grid": grid, "created_by": author, "registry": {"source": "grid_survey"},
           "address": {"compound": "fangmenjie_gongyu", "compound_name": "坊门街公寓",
                       "building": "1", "unit": "1", "room": "101"},
           "head_name": "严福根", "phone": "13905700000", "household_type": "family",
           "tenure": "rented", "special_groups": ["elderly_alone", "hardship"],
           "status": "active"}
    doc.update(fields)
    return doc


class Scene:
    """A grid, two workers and a supervisor, and the app's resolver."""

    def __init__(self, client: Any, city: City) -> None:
        self.client, self.city = client, city
        self.grid = city.blocking.grid(community="conflictville")
        self.a = city.blocking.user("worker", grids=[self.grid])
        self.b = city.blocking.user("worker", grids=[self.grid])
        self.boss = city.blocking.user("supervisor", communities=["conflictville"])

    @property
    def resolver(self) -> Resolver:
        return self.client.app[RESOLVER_KEY]

    @property
    def db(self) -> couchdb.Database:
        return self.city.db(self.grid)

    async def ready(self) -> Scene:
        for name in (self.a, self.b, self.boss):
            await wait_for_user(self.client, name)
        return self

    async def conflict(self, base: dict[str, Any], left: dict[str, Any],
                       right: dict[str, Any], tag: str) -> tuple[str, str, str]:
        """`base` as revision 1 (from worker a), then a's and b's edits of it offline, a's
        received first."""
        r1, ra, rb = rev(1, tag), rev(2, tag + "a"), rev(2, tag + "b")
        await push(self.client, self.grid, self.a, [branch(base, r1)])
        await push(self.client, self.grid, self.a, [branch(left, ra, r1)])
        await a_later_millisecond()  # a later receipt for b
        await push(self.client, self.grid, self.b, [branch(right, rb, r1)])
        return r1, ra, rb

    async def resolve(self) -> None:
        await self.client.app[RECEIPTS].flush()
        await self.resolver.process_grid(self.grid)

    async def leaves(self, doc_id: str) -> list[dict[str, Any]]:
        """The live leaf revisions (CouchDB's winner first)."""
        def read() -> list[dict[str, Any]]:
            head = self.db.get(doc_id, conflicts=True)
            if head is None:
                return []
            return [head, *(self.db.get(doc_id, rev=r) for r in head.get("_conflicts", []))]

        return await self.city.run(read)

    async def trail(self, doc_id: str) -> list[dict[str, Any]]:
        return await self.city.run(lambda: [row.doc for row in self.db.view(
            "_all_docs", startkey=f"resolution:{doc_id}:", endkey=f"resolution:{doc_id}:\ufff0",
            include_docs=True)])


@pytest.fixture
async def scene(client: Any, city: City) -> AsyncIterator[Scene]:
    yield await (await city.run(Scene, client, city)).ready()


def fields_of(trail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["field"]: f for f in trail["fields"]}


async def test_edits_of_different_fields_both_survive(scene: Scene) -> None:
    base = household(scene.grid, scene.a, "diff")
    # Each phone stamps its own save time: metadata, not an edit to merge.
    await scene.conflict(base, {**base, "phone": "13905700001",
                                "device_time": "2026-11-26T09:00:00+08:00"},
                         {**base, "remarks": "独居老人，子女在外地",
                          "device_time": "2026-11-26T09:05:00+08:00"}, "diff")
    # A conflict: two leaves, unless the app's resolver, told of the push, has merged them
    # already (then its trail says so)
    assert len(await scene.leaves(base["_id"])) == 2 or await scene.trail(base["_id"])
    await scene.resolve()
    [merged] = await scene.leaves(base["_id"])
    assert merged["phone"] == "13905700001" and merged["remarks"] == "独居老人，子女在外地"
    assert merged["_rev"].startswith("3-")
    [trail] = await scene.trail(base["_id"])
    assert trail["status"] == "resolved" and trail["created_by"] == RESOLVER
    fields = fields_of(trail)
    assert fields["phone"]["rule"] == "one_side_changed"
    assert fields["phone"]["chosen"]["by"] == scene.a
    assert fields["remarks"]["chosen"]["by"] == scene.b
    assert {r["by"] for r in trail["revisions"]} == {scene.a, scene.b}
    assert all(r["received_at"] for r in trail["revisions"])
    assert trail["ancestor_rev"] == rev(1, "diff")
    assert scene.client.app[SCHEMAS].problems(trail) == []


async def test_the_same_field_is_kept_both_ways_and_queued(scene: Scene) -> None:
    base = household(scene.grid, scene.a, "same")
    # a's phone thinks it is 1970; b's is three days behind. Neither clock decides.
    await scene.conflict(base, {**base, "phone": "13905700001",
                                "device_time": "1970-01-01T08:00:00+08:00"},
                         {**base, "phone": "13905700002",
                          "device_time": "2026-11-23T10:00:00+08:00"}, "same")
    await scene.resolve()
    [merged] = await scene.leaves(base["_id"])
    assert merged["phone"] == "13905700002"  # provisional: the one the server received last
    [trail] = await scene.trail(base["_id"])
    assert trail["status"] == "open"
    phone = fields_of(trail)["phone"]
    assert phone["undecided"] and phone["rule"] == "concurrent_edits"
    assert phone["chosen"]["value"] == "13905700002" and phone["chosen"]["by"] == scene.b
    assert [(a["value"], a["by"]) for a in phone["alternatives"]] == [("13905700001", scene.a)]


async def test_device_clocks_do_not_decide(scene: Scene) -> None:
    """The same race with the received order reversed: the provisional value follows the
    server's receipt order, not the phones' clocks."""
    base = household(scene.grid, scene.a, "clock")
    r1, ra, rb = rev(1, "clock"), rev(2, "clocka"), rev(2, "clockb")
    await push(scene.client, scene.grid, scene.a, [branch(base, r1)])
    await push(scene.client, scene.grid, scene.b, [branch(
        {**base, "phone": "13905700002", "device_time": "2027-11-26T10:00:00+08:00"}, rb, r1)])
    await a_later_millisecond()
    await push(scene.client, scene.grid, scene.a, [branch(
        {**base, "phone": "13905700001", "device_time": "1970-01-01T08:00:00+08:00"}, ra, r1)])
    await scene.resolve()
    [merged] = await scene.leaves(base["_id"])
    assert merged["phone"] == "13905700001"


async def test_special_groups_merge_as_a_set_and_keep_removals(scene: Scene) -> None:
    base = household(scene.grid, scene.a, "set")
    await scene.conflict(base, {**base, "special_groups": ["elderly_alone"]},  # hardship gone
                         {**base, "special_groups": ["elderly_alone", "hardship", "disability"]},
                         "set")
    await scene.resolve()
    [merged] = await scene.leaves(base["_id"])
    assert merged["special_groups"] == ["elderly_alone", "disability"]
    assert fields_of((await scene.trail(base["_id"]))[0])["special_groups"]["rule"] == "set_union"


async def test_an_edit_beats_a_deletion_and_it_is_recorded(scene: Scene) -> None:
    base = household(scene.grid, scene.a, "del")
    r1, ra, rb = rev(1, "del"), rev(2, "dela"), rev(2, "delb")
    await push(scene.client, scene.grid, scene.a, [branch(base, r1)])
    await push(scene.client, scene.grid, scene.a, [{
        "_id": base["_id"], "_rev": ra, "_deleted": True,
        "_revisions": {"start": 2, "ids": [ra.split("-", 1)[1], r1.split("-", 1)[1]]}}])
    await push(scene.client, scene.grid, scene.b, [branch({**base, "phone": "13905700009"},
                                                          rb, r1)])
    await scene.resolve()
    doc = await scene.city.get(scene.grid, base["_id"])
    assert doc["phone"] == "13905700009"
    [trail] = await scene.trail(base["_id"])
    [deletion] = trail["fields"]
    assert deletion["rule"] == "edit_beats_deletion"
    assert deletion["alternatives"][0]["by"] == scene.a
    await scene.resolve()
    assert len(await scene.trail(base["_id"])) == 1  # recorded once


async def test_identical_edits_are_collapsed_without_a_merge(scene: Scene) -> None:
    base = household(scene.grid, scene.a, "twin")
    await scene.conflict(base, {**base, "phone": "13905700003"},
                         {**base, "phone": "13905700003"}, "twin")
    await scene.resolve()
    [doc] = await scene.leaves(base["_id"])
    assert doc["_rev"].startswith("2-")  # no merge revision: nothing to merge
    assert await scene.trail(base["_id"]) == []
    assert scene.resolver.stats.collapsed >= 1


async def test_a_verdict_conflict_takes_the_last_received(scene: Scene) -> None:
    verdict = {"_id": f"verdict:household:{scene.grid}-v:1", "type": "verdict",
               "schema_version": 1, "grid": scene.grid, "created_by": scene.boss,
               "record": f"household:{scene.grid}-v", "record_rev": rev(1, "x"),
               "decision": "approved"}
    r1, ra, rb = rev(1, "ver"), rev(2, "vera"), rev(2, "verb")
    await push(scene.client, scene.grid, scene.boss, [branch(verdict, r1)])
    await push(scene.client, scene.grid, scene.boss, [branch(
        {**verdict, "decision": "has_issues", "comment": "身份证号有误"}, ra, r1)])
    await a_later_millisecond()
    await push(scene.client, scene.grid, scene.boss, [branch(
        {**verdict, "decision": "rejected", "comment": "不是本户"}, rb, r1)])
    await scene.resolve()
    [doc] = await scene.leaves(verdict["_id"])
    assert (doc["decision"], doc["comment"]) == ("rejected", "不是本户")
    [trail] = await scene.trail(verdict["_id"])
    assert trail["status"] == "resolved"
    assert {f["rule"] for f in trail["fields"]} == {"last_received"}


async def test_without_the_ancestor_a_supervisor_decides(scene: Scene) -> None:
    """Two phones created the same record independently (no common ancestor): which side
    changed a field cannot be known, and a phone's edit stamp is only its own word, so every
    differing field waits for a supervisor, whatever the stamps say."""
    base = household(scene.grid, scene.a, "stamps", edits=[
        {"field": "phone", "at": "1795700000000-0000", "by": scene.a},
        {"field": "remarks", "at": "1795700000000-0000", "by": scene.a}], remarks="旧备注")
    left = {**base, "phone": "13905700011", "edits": [
        # a stamp far ahead, the phone's own (another person's is refused: test_holes_tombstones)
        {"field": "phone", "at": "9999999999999-9999", "by": scene.a},
        {"field": "remarks", "at": "1795700000000-0000", "by": scene.a}]}
    ra, rb = rev(1, "stampsa"), rev(1, "stampsb")
    await push(scene.client, scene.grid, scene.a, [branch(left, ra)])
    await push(scene.client, scene.grid, scene.b, [branch(
        {**base, "remarks": "新备注", "special_groups": ["elderly_alone"],
         "edits": [{**e, "by": scene.b} for e in base["edits"]]}, rb)])
    leaves = await scene.resolver.leaves(grid_db(scene.grid), base["_id"])
    revisions = [merging.Revision(rev=d["_rev"], body={k: v for k, v in d.items()
                                                       if not k.startswith("_")})
                 for d in leaves]
    outcome = merging.merge("household", None, revisions)  # as if the ancestor were compacted
    decided = {d.field: d for d in outcome.fields}
    assert decided["phone"].undecided and decided["remarks"].undecided
    assert decided["special_groups"].undecided  # a removal or an older copy: unknown


async def test_two_resolvers_converge_and_a_second_pass_does_nothing(scene: Scene) -> None:
    base = household(scene.grid, scene.a, "twice")
    await scene.conflict(base, {**base, "phone": "13905700021"},
                         {**base, "remarks": "两个处理器"}, "twice")
    await scene.client.app[RECEIPTS].flush()
    app = scene.client.app
    one = Resolver(app[COUCH], app[SCHEMAS], app[DIRECTORY], app[RECEIPTS])
    two = Resolver(app[COUCH], app[SCHEMAS], app[DIRECTORY], app[RECEIPTS])
    await asyncio.gather(one.resolve(scene.grid, base["_id"]),
                         two.resolve(scene.grid, base["_id"]))
    await asyncio.gather(one.process_grid(scene.grid), two.process_grid(scene.grid))
    [merged] = await scene.leaves(base["_id"])
    assert merged["phone"] == "13905700021" and merged["remarks"] == "两个处理器"
    assert len(await scene.trail(base["_id"])) == 1
    assert one.stats.resolved + two.stats.resolved <= 1  # the app's own may have been first
    fresh = Resolver(app[COUCH], app[SCHEMAS], app[DIRECTORY], app[RECEIPTS])
    await fresh.process_grid(scene.grid)  # from the checkpoint: nothing left to do
    assert dataclass_counts(fresh) == (0, 0, 0, 0)


def dataclass_counts(resolver: Resolver) -> tuple[int, int, int, int]:
    s = resolver.stats
    return (s.resolved, s.collapsed, s.opened, s.deletions_recorded)


async def test_the_supervisor_settles_an_open_conflict(scene: Scene, city: City) -> None:
    base = household(scene.grid, scene.a, "boss")
    await scene.conflict(base, {**base, "phone": "13905700031"},
                         {**base, "phone": "13905700032"}, "boss")
    await scene.resolve()
    client = scene.client
    resp = await client.get("/api/conflicts", headers=basic(scene.a))
    assert resp.status == 403
    outsider = await city.user("supervisor", communities=["elsewhere"])
    await wait_for_user(client, outsider)
    resp = await client.get("/api/conflicts", headers=basic(outsider))
    assert [c for c in (await resp.json())["conflicts"] if c["grid"] == scene.grid] == []
    resp = await client.get(f"/api/conflicts?grid={scene.grid}", headers=basic(outsider))
    assert resp.status == 404

    async def listed() -> list[dict[str, Any]]:
        resp = await client.get(f"/api/conflicts?grid={scene.grid}", headers=basic(scene.boss))
        return [c for c in (await resp.json())["conflicts"] if c["record"] == base["_id"]]

    # the view catches up with the resolution just written
    [conflict] = await eventually(listed, 5, every=0.1)
    assert [f["field"] for f in conflict["fields"]] == ["phone"]
    resp = await client.post("/api/conflicts/decide", headers=basic(scene.boss), json={
        "grid": scene.grid, "id": conflict["id"],
        "decisions": [{"field": "head_name", "value": "别的"}]})
    assert resp.status == 400 and "head_name" in (await resp.json())["reason"]
    resp = await client.post("/api/conflicts/decide", headers=basic(scene.boss), json={
        "grid": scene.grid, "id": conflict["id"],
        "decisions": [{"field": "phone", "value": "139-0570"}]})
    assert resp.status == 400 and "Phone" in (await resp.json())["reason"]  # checked as a write
    resp = await client.post("/api/conflicts/decide", headers=basic(scene.boss), json={
        "grid": scene.grid, "id": conflict["id"],
        "decisions": [{"field": "phone", "value": "13905700033"}]})
    assert resp.status == 200, await resp.text()
    doc = await scene.city.get(scene.grid, base["_id"])
    assert doc["phone"] == "13905700033" and doc["created_by"] == scene.a
    assert [e["by"] for e in doc["edits"] if e["field"] == "phone"] == [scene.boss]
    settled = await scene.city.get(scene.grid, conflict["id"])
    assert settled["status"] == "decided" and settled["decided_by"] == scene.boss
    assert fields_of(settled)["phone"]["rule"] == "supervisor"
    resp = await client.post("/api/conflicts/decide", headers=basic(scene.boss), json={
        "grid": scene.grid, "id": conflict["id"],
        "decisions": [{"field": "phone", "value": "13905700034"}]})
    assert resp.status == 409


@pytest.mark.slow  # two real PouchDB clients
async def test_two_pouchdb_clients_offline_then_sync(scene: Scene, node: NodeClient,
                                                     client: Any) -> None:
    """Real PouchDB 9 clients: both pull, edit different fields offline, push; after the
    resolver, a pull gives each the merged record."""
    base = household(scene.grid, scene.a, "pouch")
    resp = await client.post(f"/couch/{grid_db(scene.grid)}/_bulk_docs",
                             json={"docs": [base]}, headers=basic(scene.a))
    [created] = await resp.json()
    remote = str(client.make_url(f"/couch/{grid_db(scene.grid)}"))
    for who in ("a", "b"):
        result = await node.run({"op": "pull", "remote": remote, "local": node.local(who),
                                 "auth": auth_for(getattr(scene, who))})
        assert result["ok"], result
    stored = {**base, "_rev": created["rev"]}
    # Each edits its own copy (neither has seen the other's edit), then pushes.
    for who, change in (("a", {"phone": "13905700041"}), ("b", {"remarks": "两台手机"})):
        result = await node.run({"op": "push", "remote": remote, "local": node.local(who),
                                 "auth": auth_for(getattr(scene, who)),
                                 "docs": [{**stored, **change}]})
        assert result["ok"] and result["docs_written"] == 1, result
    # Two leaves, unless the app's resolver, told of the push, has merged them already
    assert len(await scene.leaves(base["_id"])) == 2 or await scene.trail(base["_id"])
    await scene.resolve()
    [merged] = await scene.leaves(base["_id"])
    assert (merged["phone"], merged["remarks"]) == ("13905700041", "两台手机")
    result = await node.run({"op": "pull", "remote": remote, "local": node.local("a"),
                             "auth": auth_for(scene.a)})
    assert result["ok"] and result["docs_written"] >= 1, result


async def one_leaf(scene: Scene, doc_id: str) -> list[dict[str, Any]] | None:
    """The record's leaves once the resolver has left it one."""
    leaves = await scene.leaves(doc_id)
    return leaves if len(leaves) == 1 else None


async def test_the_resolver_runs_by_itself_after_a_push(scene: Scene) -> None:
    """No test hook: the gateway's notice wakes the app's resolver."""
    base = household(scene.grid, scene.a, "auto")
    await scene.conflict(base, {**base, "phone": "13905700051"},
                         {**base, "remarks": "自动"}, "auto")
    [merged] = await eventually(lambda: one_leaf(scene, base["_id"]))
    assert (merged["phone"], merged["remarks"]) == ("13905700051", "自动")


async def test_a_sweep_of_an_unchanged_grid_writes_nothing(scene: Scene) -> None:
    """The resolver's checkpoint is written when the grid's feed moved, not at every sweep of
    every grid (a city's every grid, every sweep, was a write each)."""
    await push(scene.client, scene.grid, scene.a, [branch(household(scene.grid, scene.a, "idle"),
                                                          rev(1, "idle"))])
    await scene.resolve()
    before = await scene.city.get(scene.grid, "_local/linli-resolver")
    await scene.resolve()
    await scene.resolve()
    assert (await scene.city.get(scene.grid, "_local/linli-resolver"))["_rev"] == before["_rev"]
    await push(scene.client, scene.grid, scene.a, [branch(household(scene.grid, scene.a, "more"),
                                                          rev(1, "more"))])
    await scene.resolve()
    after = await scene.city.get(scene.grid, "_local/linli-resolver")
    assert after["_rev"] != before["_rev"] and after["since"] != before["since"]


async def test_only_batches_that_can_conflict_wake_the_resolver(scene: Scene,
                                                                 monkeypatch: Any) -> None:
    """A replicated batch of new records cannot make a conflict, so it leaves the resolver
    alone during a reconnect storm; an edit of a stored record, two revisions of one record in
    a batch, and two phones sending the same new record at once do wake it."""
    noticed: list[str] = []
    monkeypatch.setattr(scene.resolver, "notice", noticed.append)
    base = household(scene.grid, scene.a, "wake")
    r1 = rev(1, "wake")
    await push(scene.client, scene.grid, scene.a, [branch(base, r1)])
    assert noticed == []
    await push(scene.client, scene.grid, scene.a,
               [branch({**base, "phone": "13905700052"}, rev(2, "wake-a"), r1)])
    assert noticed == [scene.grid]
    twins = household(scene.grid, scene.a, "twins")
    await push(scene.client, scene.grid, scene.a, [
        branch(twins, rev(1, "twins-a")),
        branch({**twins, "remarks": "另一台"}, rev(1, "twins-b"))])
    assert noticed == [scene.grid] * 2
    race = household(scene.grid, scene.a, "race")
    await asyncio.gather(
        push(scene.client, scene.grid, scene.a, [branch(race, rev(1, "race-a"))]),
        push(scene.client, scene.grid, scene.a,
             [branch({**race, "remarks": "同时"}, rev(1, "race-b"))]))
    assert len(noticed) >= 3
    monkeypatch.undo()
    scene.resolver.notice(scene.grid)
    for doc_id in (base["_id"], twins["_id"], race["_id"]):
        await eventually(lambda doc_id=doc_id: one_leaf(scene, doc_id), what=doc_id)


async def make_conflicts(client: Any, grid: str, a: str, b: str, count: int,
                         undecidable_every: int = 0) -> list[str]:
    """`count` conflicted households in `grid`, pushed in batches of 100 like PouchDB does; every
    `undecidable_every`-th one has both workers change the same field."""
    ids, bases, lefts, rights = [], [], [], []
    for n in range(count):
        base = household(grid, a, f"bulk{n:05d}")
        r1, ra, rb = rev(1, f"{grid}{n}"), rev(2, f"{grid}{n}a"), rev(2, f"{grid}{n}b")
        same = undecidable_every and n % undecidable_every == 0
        bases.append(branch(base, r1))
        lefts.append(branch({**base, "phone": f"1391570{n:04d}"}, ra, r1))
        rights.append(branch({**base, "phone": f"1381570{n:04d}"} if same else
                             {**base, "remarks": f"第 {n} 户"}, rb, r1))
        ids.append(base["_id"])
    for who, docs in ((a, bases), (a, lefts), (b, rights)):
        for start in range(0, count, 100):
            await push(client, grid, who, docs[start:start + 100])
    return ids


@pytest.mark.slow
async def test_a_thousand_conflicts_across_ten_grids(client: Any, city: City) -> None:
    """All resolved, none lost, and the queue holds exactly the undecidable ones."""
    grids = []
    for _ in range(10):
        grid = await city.grid(community="thousand")
        a, b = await city.user("worker", grids=[grid]), await city.user("worker", grids=[grid])
        await wait_for_user(client, a)
        await wait_for_user(client, b)
        grids.append((grid, a, b, await make_conflicts(client, grid, a, b, 100,
                                                       undecidable_every=4)))
    await client.app[RECEIPTS].flush()
    resolver = client.app[RESOLVER_KEY]
    for grid, *_ in grids:
        await resolver.process_grid(grid)
    boss = await city.user("supervisor", communities=["thousand"])
    await wait_for_user(client, boss)
    resp = await client.get("/api/conflicts", headers=basic(boss))
    queued = {c["record"] for c in (await resp.json())["conflicts"]}
    expected_open = set()
    for grid, _a, _b, ids in grids:
        for n, doc_id in enumerate(ids):
            doc = await city.get(grid, doc_id, conflicts=True)
            assert "_conflicts" not in doc, doc_id  # resolved
            if n % 4 == 0:
                expected_open.add(doc_id)
                assert doc["phone"] in (f"1391570{n:04d}", f"1381570{n:04d}")
            else:
                assert (doc["phone"], doc["remarks"]) == (f"1391570{n:04d}", f"第 {n} 户")
    assert queued == expected_open and len(queued) == 250


async def test_a_resolver_killed_mid_batch_resumes_without_double_work(client: Any,
                                                                       city: City) -> None:
    grid = await city.grid()
    a, b = await city.user("worker", grids=[grid]), await city.user("worker", grids=[grid])
    await wait_for_user(client, a)
    await wait_for_user(client, b)
    app = client.app
    # This test's resolvers alone: the app's own, woken by the pushes below, would resolve
    # the grid first whenever this test is late (under load) and leave the first nothing to die
    # in. Its task is stopped, not merely told to skip the grid (it may be in a pass already).
    await app[SUPERVISOR].stop([app[SUPERVISOR].entries["conflicts"]])
    ids = await make_conflicts(client, grid, a, b, 60)
    await app[RECEIPTS].flush()
    first = Resolver(app[COUCH], app[SCHEMAS], app[DIRECTORY], app[RECEIPTS])
    original = first.write_all

    calls = []

    async def dying(db: str, writes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        calls.append(len(writes))
        results = await original(db, writes)
        if len(calls) == 2:  # the store has the merges, tombstones and trails...
            raise asyncio.CancelledError  # ...and the resolver dies before its checkpoint
        return results

    first.write_all = dying  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await first.process_grid(grid)
    second = Resolver(app[COUCH], app[SCHEMAS], app[DIRECTORY], app[RECEIPTS])
    await second.process_grid(grid)
    assert second.stats.resolved == 0  # nothing done twice
    assert all(["_conflicts" not in await city.get(grid, i, conflicts=True) for i in ids])
    trails = await city.run(lambda: [row.id for row in city.db(grid).view(
        "_all_docs", startkey="resolution:", endkey="resolution:\ufff0")])
    assert len(trails) == len(ids)  # one trail per record: none resolved twice


async def test_a_phone_cannot_forge_the_resolvers_mark_or_race_itself(scene: Scene) -> None:
    base = household(scene.grid, scene.a, "forge")
    r1, r2 = rev(1, "forge"), rev(2, "forge")
    await push(scene.client, scene.grid, scene.a, [branch(base, r1)])
    resp = await scene.client.post(f"/couch/{grid_db(scene.grid)}/_bulk_docs", json={
        "new_edits": False, "docs": [{"_id": base["_id"], "_rev": r2, "_deleted": True,
                                      "resolved_by": RESOLVER, "_revisions": {
                                          "start": 2, "ids": [r2.split("-")[1],
                                                              r1.split("-")[1]]}}]},
        headers=basic(scene.a))
    [result] = await resp.json()
    assert result["error"] == "forbidden" and "resolved_by" in result["reason"]
    # Two edits of one record in one batch could race in the store: the second is refused.
    resp = await scene.client.post(f"/couch/{grid_db(scene.grid)}/_bulk_docs", json={
        "docs": [{**base, "_rev": r1, "phone": "13905700061"},
                 {**base, "_rev": r1, "phone": "13905700062"}]}, headers=basic(scene.a))
    first, second = await resp.json()
    assert first.get("ok") and second["error"] == "forbidden" and "两次" in second["reason"]


async def test_a_decision_on_a_field_changed_since_is_refused(scene: Scene) -> None:
    base = household(scene.grid, scene.a, "since")
    await scene.conflict(base, {**base, "phone": "13905700071"},
                         {**base, "phone": "13905700072"}, "since")
    await scene.resolve()
    [trail] = await scene.trail(base["_id"])
    doc = await scene.city.get(scene.grid, base["_id"])
    doc["phone"] = "13905700079"  # a worker's later edit
    await scene.city.save(scene.grid, doc)
    resp = await scene.client.post("/api/conflicts/decide", headers=basic(scene.boss), json={
        "grid": scene.grid, "id": trail["_id"],
        "decisions": [{"field": "phone", "value": "13905700071"}]})
    assert resp.status == 409 and "phone" in (await resp.json())["reason"]
    assert (await scene.city.get(scene.grid, base["_id"]))["phone"] == "13905700079"
    assert (await scene.city.get(scene.grid, trail["_id"]))["status"] == "open"


async def test_a_deleted_record_can_be_made_again_by_someone_else(scene: Scene) -> None:
    """Ids are fixed (a census form per household and campaign): after one worker deletes
    theirs, another may make it again from scratch, as its author."""
    census = {"_id": f"census_household:{scene.grid}-again-2026-census-pilot",
              "type": "census_household", "schema_version": 1, "grid": scene.grid,
              "created_by": scene.a, "household": f"household:{scene.grid}-again",
              "campaign": "2026-census-pilot", "enumerated_on": "2026-11-01",
              "household_type": "family", "persons_registered": 2}
    url = f"/couch/{grid_db(scene.grid)}/_bulk_docs"
    [made] = await (await scene.client.post(url, json={"docs": [census]},
                                            headers=basic(scene.a))).json()
    [gone] = await (await scene.client.post(url, json={"docs": [
        {"_id": census["_id"], "_rev": made["rev"], "_deleted": True}]},
        headers=basic(scene.a))).json()
    assert gone.get("ok"), gone
    again = {**census, "created_by": scene.b, "persons_registered": 3}
    [result] = await (await scene.client.post(url, json={"docs": [again]},
                                              headers=basic(scene.b))).json()
    assert result.get("ok"), result
    assert (await scene.city.get(scene.grid, census["_id"]))["created_by"] == scene.b
    # A live record cannot be taken over the same way.
    [taken] = await (await scene.client.post(url, json={"docs": [
        {**again, "created_by": scene.a, "persons_registered": 4}]},
        headers=basic(scene.a))).json()
    assert taken["error"] == "forbidden" and "created_by" in taken["reason"]


async def test_the_figures_follow_the_resolvers_writes(scene: Scene) -> None:
    """The open conflict the resolver records shows in the figures at once, not at the grid's
    next write from a phone."""
    base = household(scene.grid, scene.a, "figures")

    async def open_conflicts() -> int:
        resp = await scene.client.get(f"/api/aggregates?level=grid&code={scene.grid}",
                                      headers=basic(scene.boss))
        assert resp.status == 200, await resp.text()
        return (await resp.json())["figures"].get("conflicts.open", 0)

    await scene.conflict(base, {**base, "phone": "13905700001"},
                         {**base, "phone": "13905700002"}, "figures")
    await open_conflicts()  # the figures read (and kept) before the resolver runs, mostly
    await scene.resolve()
    assert await open_conflicts() == 1
