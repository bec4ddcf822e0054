"""Campaigns over HTTP: their end and retention (admins), the list with what is due, and the
purge of an ended campaign's personal records by a holder of the `purge` right.
The rules are server/domain/campaigns.py's; the store side server/sync/campaigns.py."""

from __future__ import annotations

import asyncio
import datetime

from aiohttp import web

from server import errors
from server.domain import campaigns as rules
from server.domain.scope import DIRECTORY_DB, User
from server.errors import json_response
from server.store.couch import NotFound, db_path
from server.sync import campaigns as store
from server.web.guard import require_role
from server.web.keys import COUCH, DIRECTORY, PURGING
from server.web.parsing import read_object


def require_staff(request: web.Request) -> User:
    return require_role(request, ("supervisor", "admin"), "只有督导员和管理员可以查看工作批次",
                 "Only supervisors and admins see campaigns.")


def require_purger(request: web.Request) -> User:
    """A supervisor or admin given the `purge` right: who purges campaigns and approves the
    removal of what is past its retention."""
    user = require_role(request, ("supervisor", "admin"), "只有督导员和管理员可以清除个人信息",
                        "Only supervisors and admins purge personal data.")
    if not user.may(rules.PURGE):
        raise errors.forbidden("您没有清除个人信息的权限，请管理员授权（purge）",
                               "You do not have the right to purge personal data (purge); ask "
                               "an admin.")
    return user


async def campaigns_list(request: web.Request) -> web.Response:
    """Every campaign: its end, retention, the day purging is due, and of the grids in the
    user's scope those purged and their figures (another street's counts per grid and day,
    and who purged them, are not a supervisor's to read)."""
    user = require_staff(request)
    directory = request.app[DIRECTORY]
    found = []
    for _, campaign in sorted(directory.campaigns.items()):
        shown = store.listed(campaign)
        for part in ("purged", "figures"):
            if isinstance(shown.get(part), dict):
                shown[part] = {g: v for g, v in shown[part].items()
                               if directory.reaches(user, g)}
        found.append(shown)
    return json_response({"campaigns": found})


async def campaign_set(request: web.Request) -> web.Response:
    """An admin sets a campaign's end and retention (`{ends_on, retention_days}`)."""
    require_role(request, ("admin",), "只有管理员可以设置工作批次",
                 "Only admins set campaigns.")
    body = await read_object(request)
    key = request.match_info["key"]
    path = db_path(DIRECTORY_DB, f"campaign:{key}")
    couch = request.app[COUCH]
    try:
        stored = await couch.get(path)
    except NotFound:
        stored = None
    doc = rules.campaign_doc(key, body.get("ends_on"), body.get("retention_days"), stored)
    await couch.put(path, doc)
    return json_response(store.listed(doc))


async def campaign_purge(request: web.Request) -> web.Response:
    """Purge an ended campaign's records from the grids in the user's scope."""
    user = require_purger(request)
    key = request.match_info["key"]
    directory = request.app[DIRECTORY]
    async with request.app[PURGING]:  # two purges never rebuild one grid at once
        now = datetime.datetime.now(datetime.UTC)
        rules.check_may_purge(directory.campaigns.get(key), now.date())
        grids = sorted(code for code in directory.grids if directory.reaches(user, code))
        done = await store.purge(request.app[COUCH], directory, key, grids, user.name, now)
    return json_response(store.listed(done))


def setup(app: web.Application, prefix: str) -> None:
    app[PURGING] = asyncio.Lock()
    app.router.add_get(prefix + "/campaigns", campaigns_list)
    app.router.add_put(prefix + "/campaigns/{key:[^/]+}", campaign_set)
    app.router.add_post(prefix + "/campaigns/{key:[^/]+}/purge", campaign_purge)
