"""The app's own JSON API under `/api/` (CouchDB's API is the gateway's, under `/couch/`). For
now what the worker's PWA needs beyond replication: who is logged in and which grids they work."""

from __future__ import annotations

from aiohttp import web

from server.errors import json_response
from server.gateway import require_user
from server.keys import CONFIG, DIRECTORY
from server.scope import grid_db

API_PREFIX = "/api"


async def me(request: web.Request) -> web.Response:
    """The logged-in user and the grids they reach, with names, so the phone can label them and
    know which databases to replicate."""
    user = require_user(request)
    directory = request.app[DIRECTORY]
    grids = [{"code": g.code, "name": g.name, "community": g.community, "street": g.street,
              "db": grid_db(g.code)}
             for code, g in sorted(directory.grids.items()) if directory.reaches(user, code)]
    config = request.app[CONFIG]
    return json_response({"name": user.name, "role": user.role, "grids": grids,
                          "campaigns": {"census": config.census_campaign,
                                        "screening": config.screening_campaign}})


def setup_routes(app: web.Application) -> None:
    app.router.add_get(API_PREFIX + "/me", me)
