"""Service ratings and the red/black list routes (物业服务评价, 红黑榜). Thin controllers: the
rules are server/domain/ratings.py, the store's side server/sync/ratings.py, the design
docs/fees.md ("Ratings").

- `POST /api/fees/bills/{bill}/rating` `{request, scores, comment?}`: an owner rates the
  bill's period of its compound's property company; counted when it is the first the server
  received of the unit and period, else 200 `rated_already` (已评价). Another's bill: 404.
- `GET /api/fees/ratings`: the ratings of the owner's units.
- `GET /api/fees/ratings/board?period=`: the period's red and black lists with their
  reasons, grades and answers (anyone logged in: the lists are public); the scores of every
  company for supervisors and the admin, of its own for a property company.
- `POST /api/fees/ratings/answers` `{period, text, company?}`: a property company's one
  public answer of a period.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server import errors
from server.errors import json_response
from server.sync.ratings import KIND, Ratings
from server.sync.residents import utc_now
from server.web.fees import require_owner
from server.web.guard import require_role, require_user
from server.web.keys import ALLOCATOR, FEES, RATINGS, REPORT_ROWS, SUPERVISOR
from server.web.parsing import read_object

PREFIX = "/api/fees/ratings"


async def rate(request: web.Request) -> web.Response:
    user = require_owner(request)
    body = await read_object(request)
    told = await request.app[RATINGS].rate(request.app[ALLOCATOR], user,
                                           request.match_info["bill"], body, utc_now())
    return json_response({"ok": True, **told}, status=201 if told["counted"] else 200)


async def mine(request: web.Request) -> web.Response:
    user = require_owner(request)
    if request.query:
        raise errors.bad_request("此处不接受查询参数", "This list takes no query parameters.")
    return json_response({"ratings": await request.app[RATINGS].mine(user)})


async def board(request: web.Request) -> web.Response:
    user = require_user(request)
    if set(request.query) != {"period"} or len(request.query.getall("period")) != 1:
        raise errors.bad_request("请给出一个账期：?period=2026-Q4",
                                 "Give one period: ?period=2026-Q4.")
    return json_response(await request.app[RATINGS].board(user, request.query["period"]))


async def answer(request: web.Request) -> web.Response:
    user = require_role(request, ("property",), "只有物业公司可以回应",
                        "Only a property company answers its list.")
    body = await read_object(request)
    doc = await request.app[RATINGS].answer(user, body, utc_now())
    return json_response({"ok": True, "company": doc["company"], "period": doc["period"],
                          "text": doc["text"], "answered_at": doc["answered_at"]},
                         status=201)


async def ratings_ctx(app: web.Application) -> AsyncIterator[None]:
    """After fees, reports and the allocator (volunteering's context) are made: one rating
    per household and period goes through the same allocator."""
    app[RATINGS] = store = Ratings(app[FEES], app.get(REPORT_ROWS))
    allocator = app[ALLOCATOR]
    allocator.terms = {**allocator.terms, KIND: store.terms}
    task = app[SUPERVISOR].start("ratings", store.run, probe=store.lag)
    yield
    await app[SUPERVISOR].stop([task])


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(ratings_ctx)
    for method, path, handler in (
            ("POST", "/api/fees/bills/{bill:[^/]{1,200}}/rating", rate),
            ("GET", PREFIX, mine), ("GET", PREFIX + "/board", board),
            ("POST", PREFIX + "/answers", answer)):
        app.router.add_route(method, path, handler)
