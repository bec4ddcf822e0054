"""The notice routes (公告): supervisors and the city admin write and withdraw notices and
follow up those that ask for confirmation; a grid worker lists the households of their grids
still to visit. Thin controllers: the rules are server/domain/notices.py and audience.py, the
store's side server/sync/notices.py.

The worker's list is served, not written into the grid databases: it is derived from
receipts that land in the residents database, and writing it into grids would make every
receipt a write to a grid and a revision on the worker's phone. The PWA fetches it when it
syncs and keeps the last answer on the phone, with its time, for offline use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server import errors
from server.domain import notices as rules
from server.domain.rules import Problem
from server.domain.scope import User
from server.domain.text import unknown_fields
from server.errors import json_response
from server.sync import personal
from server.sync.notices import GridHouseholds, Notices, refused
from server.sync.residents import utc_now
from server.web.api import wants_unmasked
from server.web.guard import require_user
from server.web.keys import COUCH, DIRECTORY, NOTICES, SCHEMAS
from server.web.parsing import read_object

PREFIX = "/api/notices"
SHOWN = ("_id", "title", "body", "audience", "status", "pinned", "needs_confirmation",
         "published_at", "expires_at", "created_by")


def require_author(request: web.Request) -> User:
    user = require_user(request)
    if not rules.may_author(user):
        raise errors.forbidden("只有社区、街道工作人员或市级管理员可以发布公告",
                               "Only community or street supervisors and the city admin write "
                               "notices.")
    return user


def no_such_notice() -> errors.CouchError:
    return errors.CouchError(404, "not_found", errors.bilingual(
        "没有这条公告，或您无权查看", "No such notice, or it is outside your scope."))


def shown(doc: dict[str, Any]) -> dict[str, Any]:
    """A notice as the author's screens show it: its fields, and its images by name and size."""
    found = {k: doc[k] for k in SHOWN if k in doc}
    found["images"] = [{"name": name, "content_type": att.get("content_type"),
                        "length": att.get("length")}
                       for name, att in sorted((doc.get("_attachments") or {}).items())]
    return found


async def areas(request: web.Request) -> web.Response:
    """What the author may address, by name: the city (admin), streets, communities and
    grids of their scope; a grid's buildings with `?grid=`."""
    user = require_author(request)
    directory, store = request.app[DIRECTORY], request.app[NOTICES]
    grids = store.reachable(user)
    wanted = request.query.get("grid")
    if wanted is not None:
        if wanted not in grids:
            raise errors.CouchError(404, "not_found", errors.bilingual(
                "没有这个网格，或您无权查看", "No such grid, or it is outside your scope."))
        return json_response({"buildings": await store.buildings(wanted)})
    chosen = [directory.grids[code] for code in grids]
    streets = sorted(s for s in {g.street for g in chosen} if s and (
        user.is_admin or s in user.streets))
    communities = sorted({g.community for g in chosen if g.community})
    return json_response({
        "city": user.is_admin,
        "streets": [{"code": s, "name": directory.area_name("street", s) or s} for s in streets],
        "communities": [{"code": c, "name": directory.area_name("community", c) or c}
                        for c in communities],
        "grids": [{"code": g.code, "name": g.name or g.code, "community": g.community}
                  for g in chosen]})


async def publish(request: web.Request) -> web.Response:
    user = require_author(request)
    draft = await read_object(request)
    doc = await request.app[NOTICES].publish(user, draft, utc_now())
    return json_response({"ok": True, "notice": shown(doc)}, status=201)


async def listing(request: web.Request) -> web.Response:
    """The notices a supervisor follows up (their own, and others' reaching into their grids;
    an admin's: all), newest first, with their receipt counts."""
    user = require_author(request)
    store = request.app[NOTICES]
    found = []
    mine = [request.app[DIRECTORY].grids[code] for code in store.reachable(user)]
    counts = await store.receipt_counts()
    for doc in await store.all_notices():
        if store.sees(user, doc, mine):
            found.append({**shown(doc), **counts.get(str(doc["_id"]), {"read": 0,
                                                                       "confirmed": 0})})
    found.sort(key=lambda n: (str(n.get("published_at", "")), n["_id"]), reverse=True)
    return json_response({"notices": found})


async def one(request: web.Request) -> web.Response:
    user = require_author(request)
    doc = await request.app[NOTICES].notice(user, request.match_info["notice"])
    if doc is None:
        raise no_such_notice()
    return json_response({"notice": shown(doc)})


async def withdraw(request: web.Request) -> web.Response:
    user = require_author(request)
    doc = await request.app[NOTICES].withdraw(user, request.match_info["notice"], utc_now())
    if doc is None:
        raise no_such_notice()
    return json_response({"ok": True, "notice": shown(doc)})


async def follow_up(request: web.Request) -> web.Response:
    """Who has not read (or confirmed) a notice, by grid of the author's scope: counts, and the
    households to visit, names masked unless the reader asks with the `unmask` right
    (`?unmask=1`, audited)."""
    user = require_author(request)
    store = request.app[NOTICES]
    doc = await store.notice(user, request.match_info["notice"])
    if doc is None:
        raise no_such_notice()
    grids = store.reachable(user)
    unmasked = wants_unmasked(request, user)
    by_grid = await store.follow_up(doc, grids, dict.fromkeys(grids, unmasked))
    if unmasked:
        personal.audit_unmasked(request, user, f"the follow-up of {doc['_id']}")
    return json_response({"notice": shown(doc), "grids": by_grid})


async def to_visit(request: web.Request) -> web.Response:
    """A grid worker's list: each live notice asking for confirmation that reaches their grids,
    with the households still to visit there, names unmasked (their own grids)."""
    user = require_user(request)
    if user.role != "worker":
        raise errors.forbidden("这是网格员的催办清单", "This is a grid worker's list.")
    store = request.app[NOTICES]
    now = utc_now()
    grids = store.reachable(user)
    found: list[dict[str, Any]] = []
    held: dict[str, GridHouseholds] = {}  # each grid read once for all the notices
    for doc in await store.all_notices():
        if not rules.is_live(doc, now) or doc.get("needs_confirmation") is not True:
            continue
        by_grid = await store.follow_up(doc, grids, dict.fromkeys(grids, True), held)
        if by_grid:
            found.append({"notice": shown(doc), "grids": by_grid})
    found.sort(key=lambda n: str(n["notice"].get("published_at", "")), reverse=True)
    return json_response({"as_of": now.isoformat(timespec="seconds"), "notices": found})


RECEIPT_LABELS = {"confirmed": ("须确认", "Please confirm")}


async def receipt(request: web.Request) -> web.Response:
    """A resident's phone says a notice was read (`{}`) or confirmed (`{"confirmed": true}`);
    the server makes the one receipt of the resident and notice, first arrival first. A
    notice they cannot see answers as one that does not exist."""
    user = require_user(request)
    if user.role != "resident":
        raise errors.forbidden("只有居民可以回执公告", "Only residents send notice receipts.")
    body = await read_object(request)
    problems = unknown_fields(body, frozenset(RECEIPT_LABELS))
    confirmed = body.get("confirmed", False)
    if not isinstance(confirmed, bool):
        zh, en = RECEIPT_LABELS["confirmed"]
        problems.append(Problem("/confirmed", "boolean", f"“{zh}”应为是或否",
                                f"{en} must be yes or no"))
    if problems:
        raise refused(problems)
    stored = await request.app[NOTICES].resident_receipt(
        user.name, request.match_info["notice"], confirmed, utc_now())
    if stored is None:
        raise no_such_notice()
    return json_response({"ok": True, "receipt": {k: stored.get(k) for k in (
        "_id", "notice", "household", "read_at", "confirmed_at") if k in stored}})


async def notices_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store and the directory are open (cleanup contexts run in order)."""
    app[NOTICES] = Notices(app[COUCH], app[DIRECTORY], app[SCHEMAS])
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(notices_ctx)
    one_notice = PREFIX + "/{notice:[^/]+}"  # braces and all: a probe of the template is a 4xx
    for method, path, handler in (
            ("GET", PREFIX, listing), ("POST", PREFIX, publish),
            ("GET", PREFIX + "/areas", areas), ("GET", PREFIX + "/to-visit", to_visit),
            ("GET", one_notice, one), ("POST", one_notice + "/withdraw", withdraw),
            ("GET", one_notice + "/follow-up", follow_up),
            ("POST", one_notice + "/receipt", receipt)):
        app.router.add_route(method, path, handler)
