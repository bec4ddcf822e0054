"""Enforcement liaison and patrols over HTTP (执法进小区): thin controllers over
server/sync/liaison.py, whose rules are server/domain/liaison.py. What is not the reader's
answers as what does not exist (404)."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

from aiohttp import web

from server.errors import json_response
from server.sync.liaison import Liaison
from server.web.guard import require_role, require_user
from server.web.keys import COUCH, DIRECTORY, INSTALLATION, LIAISON, REPORTS, SCHEMAS
from server.web.parsing import read_object
from server.web.party import no_query
from server.web.resident_sync import index_of

PREFIX = "/api/liaison"
NO_STORE = {"Cache-Control": "no-store"}


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def officers(request: web.Request) -> web.Response:
    """A resident's compounds with their officers by department (names, no phone), each with
    the resident's thread; an officer's own compounds."""
    user = require_role(request, ("resident", "department"), "只有居民和联络员可以查看",
                        "Only residents and liaison officers.")
    no_query(request)
    found = await request.app[LIAISON].listing(user, await index_of(request))
    return json_response({"compounds": found}, headers=NO_STORE)


async def name_officer(request: web.Request) -> web.Response:
    """`{compound, department, officer}`: a supervisor of the compound's community names."""
    user = require_role(request, ("supervisor", "admin"), "只有社区工作人员可以指派联络员",
                        "Only supervisors name liaison officers.")
    doc = await request.app[LIAISON].name_officer(user, await read_object(request), now())
    return json_response({"ok": True, "officer": {k: doc[k] for k in (
        "compound", "department", "officer")}}, status=201)


async def write(request: web.Request) -> web.Response:
    """`{compound, department, text, key}` (a resident) or `{thread, text, key}` (the officer)."""
    user = require_user(request)
    doc, created = await request.app[LIAISON].write(user, await read_object(request),
                                                    await index_of(request), now())
    return json_response({"ok": True, "repeated": not created, "thread": doc["thread"]},
                         status=201 if created else 200)


async def messages(request: web.Request) -> web.Response:
    user = require_role(request, ("resident", "department"), "只有居民和联络员可以查看",
                        "Only residents and liaison officers.")
    no_query(request)
    found = await request.app[LIAISON].messages(user, request.match_info["thread"],
                                                await index_of(request))
    return json_response({"messages": found}, headers=NO_STORE)


async def threads(request: web.Request) -> web.Response:
    user = require_role(request, ("department",), "只有联络员可以查看会话",
                        "Only liaison officers list conversations.")
    no_query(request)
    return json_response({"threads": await request.app[LIAISON].threads(user)},
                         headers=NO_STORE)


async def make_route(request: web.Request) -> web.Response:
    """`{compound, grid, department, name, checkpoints, per_week, request}`."""
    user = require_role(request, ("department", "supervisor", "admin"),
                        "只有联络员和社区工作人员可以设置巡查路线",
                        "Only liaison officers and supervisors set patrol routes.")
    doc, created = await request.app[LIAISON].make_route(user, await read_object(request), now())
    return json_response({"ok": True, "repeated": not created, "route": doc["_id"]},
                         status=201 if created else 200)


async def routes(request: web.Request) -> web.Response:
    user = require_role(request, ("department", "supervisor", "admin"), "只有联络员和社区工作人员",
                        "Only liaison officers and supervisors.")
    no_query(request)
    return json_response({"routes": await request.app[LIAISON].routes(user)}, headers=NO_STORE)


async def check(request: web.Request) -> web.Response:
    """`{route, patrol, checkpoint, at, ok, problem?, photo?}`: 201, or 200 `repeated`."""
    user = require_role(request, ("department",), "只有联络员可以巡查",
                        "Only liaison officers patrol.")
    doc, created = await request.app[LIAISON].check(user, await read_object(request), now())
    return json_response({"ok": True, "repeated": not created, "check": {
        k: doc[k] for k in ("checkpoint", "ok", "at", "report") if k in doc}},
        status=201 if created else 200)


async def figures(request: web.Request) -> web.Response:
    user = require_role(request, ("supervisor", "admin"), "只有社区或街道工作人员可以查看巡查统计",
                        "Only supervisors see the patrols' figures.")
    no_query(request)
    return json_response({"routes": await request.app[LIAISON].figures(user, now())},
                         headers=NO_STORE)


async def liaison_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the reports (their photo check and reports filing)."""
    app[LIAISON] = Liaison(app[COUCH], app[DIRECTORY], app[SCHEMAS], app[REPORTS],
                           app[INSTALLATION].secret)
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(liaison_ctx)
    for method, path, handler in (
            ("GET", PREFIX + "/officers", officers), ("POST", PREFIX + "/officers", name_officer),
            ("POST", PREFIX + "/messages", write), ("GET", PREFIX + "/threads", threads),
            ("GET", PREFIX + "/messages/{thread:[^/]+}", messages),
            ("GET", "/api/patrols/routes", routes), ("POST", "/api/patrols/routes", make_route),
            ("POST", "/api/patrols/checks", check), ("GET", "/api/patrols/figures", figures)):
        app.router.add_route(method, path, handler)
