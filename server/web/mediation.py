"""The mediation routes (老娘舅调解): thin controllers over server/sync/mediation.py, whose rules
are server/domain/mediation.py. A case outside the reader's circle answers as one that does
not exist (404) on every route; every read of the circle is an audit entry; answers are never
cached (`no-store`)."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

from aiohttp import web

from server.domain.scope import User
from server.errors import json_response
from server.sync.mediation import Mediation
from server.web.guard import require_role, require_user
from server.web.keys import COUCH, DIRECTORY, INSTALLATION, MEDIATION, REPORTS, SCHEMAS
from server.web.parsing import read_object
from server.web.party import no_query
from server.web.resident_sync import index_of

PREFIX = "/api/mediation"
NO_STORE = {"Cache-Control": "no-store"}


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def staff(request: web.Request) -> User:
    """Opening a case is staff's: a resident or a company is refused before any look-up."""
    return require_role(request, ("supervisor", "worker"),
                        "只有社区工作人员或调解员可以受理调解案件",
                        "Only community staff or mediators open mediation cases.")


async def listing(request: web.Request) -> web.Response:
    """The cases of the reader's circles (none for anyone else), each read logged."""
    user = require_user(request)
    no_query(request)
    found = await request.app[MEDIATION].listed(user, now())
    return json_response({"cases": found}, headers=NO_STORE)


async def open_case(request: web.Request) -> web.Response:
    """`{kind, matter, community, parties, mediator, request}`: 201, or 200 `repeated`."""
    user = staff(request)
    body = await read_object(request)
    store = request.app[MEDIATION]
    doc, created = await store.open(user, body, await index_of(request), now())
    shown = await store.read(user, str(doc["_id"]), now())
    return json_response({"ok": True, "repeated": not created, "case": shown},
                         status=201 if created else 200, headers=NO_STORE)


async def one(request: web.Request) -> web.Response:
    user = require_user(request)
    no_query(request)
    shown = await request.app[MEDIATION].read(user, request.match_info["case"], now())
    return json_response({"case": shown}, headers=NO_STORE)


async def act(request: web.Request) -> web.Response:
    """`{act, request, note?, text?, party?, photo?}`: 201 when applied, 200 `repeated`."""
    user = require_user(request)
    body = await read_object(request)
    shown, created = await request.app[MEDIATION].acted(user, request.match_info["case"],
                                                        body, now())
    return json_response({"ok": True, "repeated": not created, "case": shown},
                         status=201 if created else 200, headers=NO_STORE)


async def photo(request: web.Request) -> web.Response:
    user = require_user(request)
    data, content_type = await request.app[MEDIATION].photo(
        user, request.match_info["case"], request.match_info["name"], now())
    return web.Response(body=data, content_type=content_type,
                        headers={**NO_STORE, "X-Content-Type-Options": "nosniff"})


async def figures(request: web.Request) -> web.Response:
    """Counts by kind, outcome and duration of the supervisor's communities, no details."""
    user = require_role(request, ("supervisor", "admin"), "只有社区或街道工作人员可以查看调解统计",
                        "Only supervisors see the mediation figures.")
    no_query(request)
    return json_response(await request.app[MEDIATION].figures(user), headers=NO_STORE)


async def mediation_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store, the directory and the reports (whose photo check it uses)."""
    app[MEDIATION] = Mediation(app[COUCH], app[DIRECTORY], app[SCHEMAS], app[REPORTS],
                               app[INSTALLATION].secret)
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(mediation_ctx)
    one_case = PREFIX + "/cases/{case:[^/]+}"
    for method, path, handler in (
            ("GET", PREFIX + "/cases", listing), ("POST", PREFIX + "/cases", open_case),
            ("GET", PREFIX + "/figures", figures), ("GET", one_case, one),
            ("POST", one_case + "/acts", act),
            ("GET", one_case + "/photos/{name:[^/]+}", photo)):
        app.router.add_route(method, path, handler)
