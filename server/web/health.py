"""GET /api/health: the state of the store and of every background task (server/sync/
supervisor.py), each `ok`, `lagging` or `failed`.

Who reads what: anyone, signed in or not, gets the status words, because a load balancer or an
uptime monitor holds no account, and the words are about the server's machinery, never about a
grid, a household or a person. How far behind each task is, how often it failed and the class
of its last error are for admins only: counts of receipts or grids waiting tell how busy the
city is, and an error's message could quote a record, so none is ever shown. The answer is 200
whatever the state: it is the state, not an error."""

from __future__ import annotations

from aiohttp import web

from server.errors import json_response
from server.sync.supervisor import overall
from server.web.keys import SUPERVISOR, USER

PATH = "/api/health"


async def health(request: web.Request) -> web.Response:
    report = await request.app[SUPERVISOR].report()
    user = request.get(USER)
    if user is None or not user.is_admin:
        report = {name: {"status": item["status"]} for name, item in report.items()}
    return json_response({"status": overall(report), "tasks": report})


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, health)
