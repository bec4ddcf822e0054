"""The handlers' side of problem reports (issue 16) on the real app and store: satisfaction
counts residents' ratings only (a worker's own report, closed and rated by them, is not
counted), and two handlers acting on one report offline resolve by the workflow rule."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from conftest import City, wait_for_user
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
