"""Retention (保存期限) over HTTP: the rules, the nightly lists of what is due (counts, by grid
in the asker's scope) and a supervisor's approval of one list, which removes what it names.
The rules are server/domain/retention.py's; the store side server/sync/retention.py."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from server.domain import retention as rules
from server.domain.messages import refused
from server.domain.scope import Directory, User
from server.errors import json_response
from server.sync import retention as store
from server.web.campaigns import require_purger, require_staff
from server.web.keys import COUCH, DIRECTORY, PURGING


def shown(listed: Mapping[str, Any], approved: Mapping[str, Mapping[str, Any]],
          user: User, directory: Directory) -> dict[str, Any]:
    """A list as the asker sees it: counts only (never an id), of the grids they reach."""
    grids = {code: {"records": {t: len(ids) for t, ids in due["records"].items()},
                    "campaigns": due["campaigns"],
                    "approved": {k: approved[code][k] for k in ("by", "at")}
                    if code in approved else None}
             for code, due in sorted(listed["grids"].items()) if directory.reaches(user, code)}
    return {"id": listed["_id"], "today": listed["today"], "made_at": listed["made_at"],
            "grids": grids}


async def retention_list(request: web.Request) -> web.Response:
    """The rules and the latest lists of what is due."""
    user = require_staff(request)
    couch, directory = request.app[COUCH], request.app[DIRECTORY]
    lists = [shown(found, await store.approvals(couch, found["_id"]), user, directory)
             for found in await store.entries(couch, store.LIST_PREFIX, store.LISTS_SHOWN)]
    return json_response({"rules": {t: r.shown() for t, r in sorted(rules.RULES.items())},
                          "lists": lists})


async def retention_approve(request: web.Request) -> web.Response:
    """Approve one list: what it names in the grids the asker reaches goes, each grid once."""
    user = require_purger(request)
    couch, directory = request.app[COUCH], request.app[DIRECTORY]
    listed = await store.find_list(couch, request.match_info["list"])
    if listed is None:
        raise refused(404, "not_found", "没有这份到期清单", "No such retention list.")
    async with request.app[PURGING]:  # one removal at a time, as the campaign purge
        done = await store.approvals(couch, listed["_id"])
        grids = [g for g in sorted(listed["grids"])
                 if directory.reaches(user, g) and g not in done]
        if not grids:
            raise refused(409, "conflict", "这份清单在您的范围内没有待批准的内容（可能已批准）",
                          "This list has nothing left to approve in your area (approved "
                          "already?).")
        removed = await store.approve(couch, directory, listed, grids, user.name,
                                      datetime.datetime.now(datetime.UTC))
    return json_response({"id": listed["_id"], "removed": removed})


def setup(app: web.Application, prefix: str) -> None:
    app.router.add_get(prefix + "/retention", retention_list)
    app.router.add_post(prefix + "/retention/{list:[^/]+}/approve", retention_approve)
