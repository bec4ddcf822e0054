"""The handlers' side of problem reports (issue 16) on the real app and store: satisfaction
counts residents' ratings only (a worker's own report, closed and rated by them, is not
counted), and two handlers acting on one report offline resolve by the workflow rule."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from conftest import PASSWORD, City, NodeClient, wait_for_user
from test_reports import PREFIX, body, get, post, ready, step


async def closed(client: TestClient, reporter: str, handler: str, grid: str, n: int,
                 rating: int) -> None:
    """A report of `reporter` walked by `handler` to 已办结 and closed with `rating`."""
    extra = {"grid": grid} if not reporter.startswith("res") else {}
    got, answer = await post(client, reporter, PREFIX, body(n, category="other", **extra))
    assert got == 201, answer
    rid = answer["report"]["_id"]
    for k, (a, b, more) in enumerate((("submitted", "accepted", {}),
                                      ("accepted", "dispatched", {"assignee": "grid"}),
                                      ("dispatched", "in_progress", {}),
                                      ("in_progress", "done", {})), 1):
        got, answer = await step(client, handler, rid, a, b, n * 10 + k, **more)
        assert got == 201, answer
    got, answer = await step(client, reporter, rid, "done", "closed", n * 10 + 9,
                             rating=rating)
    assert got == 201 and answer["status"]["rating"] == rating, answer


async def test_a_report_says_which_moves_its_reader_may_make(client: TestClient,
                                                             city: City) -> None:
    """The handler's phone offers the moves the server gives with the report: the grid's
    worker accepts, the reporter none before 已办结, another grid's worker never sees it."""
    town = await ready(client, city)
    got, answer = await post(client, town.ra, PREFIX, body(500, category="other"))
    rid = answer["report"]["_id"]
    for user, moves in ((town.worker1, ["accepted"]), (town.ra, []), (town.sup1, ["accepted"])):
        got, seen = await get(client, user, f"{PREFIX}/{rid}")
        assert got == 200 and seen["moves"] == moves, (user, seen)
    assert (await get(client, town.worker3, f"{PREFIX}/{rid}"))[0] == 404
    got, listed = await get(client, town.worker1, f"{PREFIX}/categories")
    assert "department:police" in {h["code"] for h in listed["handlers"]}


async def test_a_workers_own_rating_is_not_the_residents_satisfaction(
        client: TestClient, city: City) -> None:
    """Five residents' reports rated 5 and five a worker filed on their rounds and rated 1
    themselves, all handled by the grid's other worker: satisfaction is 5.0 from five
    ratings (3.0 from ten if the worker's counted)."""
    town = await ready(client, city)
    other = await city.user("worker", grids=[town.g1])
    await wait_for_user(client, other)
    for n in range(5):
        await closed(client, town.ra if n % 2 else town.rb, town.worker1, town.g1, 300 + n, 5)
        await closed(client, town.worker1, other, town.g1, 400 + n, 1)
    got, board = await get(client, town.sup1, f"{PREFIX}/dashboard?level=grid")
    assert got == 200, board
    (mine,) = [a for a in board["areas"] if a["code"] == town.g1]
    assert (mine["rated"], mine["satisfaction"]) == (5, 5.0), mine
    assert mine["by_state"]["closed"] == 10


async def test_two_handlers_offline_resolve_by_the_workflow_through_pouchdb(
        client: TestClient, city: City, node: NodeClient) -> None:
    """Rule 5 as the phones live it: the steps of two handlers who acted offline arrive late;
    the reporter's real PouchDB phone pulls what the server folded. Two dispatches to two
    handlers from one state: the supervisors' queue, the state kept. A second worker's
    late start after the first finished: the earlier state never overwrites 已办结. A
    status forged on the phone and pushed is denied; the next pull still shows the server's."""
    town = await ready(client, city)
    other = await city.user("worker", grids=[town.g1])
    await wait_for_user(client, other)
    got, answer = await post(client, town.ra, PREFIX, body(600, category="dispute"))
    rid = answer["report"]["_id"]
    status_id = rid.replace("report:", "report_status:")
    remote, local = str(client.make_url("/couch/linli-resident")), node.local("ra")
    auth = {"username": town.ra, "password": PASSWORD}

    async def phone() -> dict[str, Any]:
        pulled = await node.run({"op": "pull", "remote": remote, "local": local, "auth": auth})
        assert pulled["ok"], pulled
        return (await node.run({"op": "count", "local": local, "with_docs": True}))["docs"]

    assert (await step(client, town.worker1, rid, "submitted", "accepted", 601))[0] == 201
    assert (await step(client, town.worker1, rid, "accepted", "dispatched", 602,
                       assignee="grid"))[0] == 201
    got, second = await step(client, town.sup1, rid, "accepted", "dispatched", 603,
                             assignee="department:police")
    assert got == 201, second
    held = (await phone())[status_id]
    assert (held["state"], held["assignee"], held["conflicts"]) == ("dispatched", "grid", 1)
    got, _ = await step(client, town.sup1, rid, "dispatched", "dispatched", 604,
                        assignee="grid", resolve=True)
    assert got == 201
    for n, (a, b) in enumerate((("dispatched", "in_progress"), ("in_progress", "done")), 605):
        assert (await step(client, town.worker1, rid, a, b, n))[0] == 201
    # The grid's other worker, offline since 已派单, starts it: superseded, not a conflict.
    got, late = await step(client, other, rid, "dispatched", "in_progress", 607)
    assert got == 201 and late["status"]["state"] == "done", late
    docs = await phone()
    held = docs[status_id]
    assert (held["state"], held["conflicts"]) == ("done", 0), held
    steps = [d for i, d in docs.items() if i.startswith("report_step:")]
    assert len(steps) == 7 and {d["created_by"] for d in steps} == {
        "网格员", "社区、街道工作人员"}  # staff by their part, never by login
    forged = {**held, "state": "closed", "rating": 5}
    pushed = await node.run({"op": "push", "remote": remote, "local": local, "auth": auth,
                             "docs": [forged]})
    assert pushed["denied"] and pushed["docs_written"] == 0, pushed
    got, seen = await get(client, town.ra, f"{PREFIX}/{rid}")
    assert seen["status"]["state"] == "done" and "rating" not in seen["status"]
