"""The problem-report routes (问题上报): a resident or a grid worker reports (the PWA queues it
offline with the phone's request id, so a retry is the same report); whoever the report is
routed to moves it along the workflow, step by step; the reporter confirms and rates it, or
reopens it once. Thin controllers: the rules are server/domain/reports.py, the store's side
server/sync/reports.py. The reporter's phone gets its report, its steps and its status back
through the resident sync."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.domain import reports as rules
from server.errors import json_response
from server.sync.reports import Reports
from server.sync.residents import utc_now
from server.web.guard import require_user
from server.web.keys import CONFIG, COUCH, DIRECTORY, REPORTS, SCHEMAS
from server.web.parsing import read_object
from server.web.resident_sync import index_of

PREFIX = "/api/reports"
NO_STORE = {"Cache-Control": "no-store"}


async def categories(request: web.Request) -> web.Response:
    """The categories as the phone offers them: labels, anonymity, time limits."""
    require_user(request)
    return json_response({"categories": [
        {"code": c.code, "zh": c.zh, "en": c.en, "anonymous_allowed": c.anonymous_allowed,
         "accept_days": c.accept_days, "finish_days": c.finish_days}
        for c in request.app[REPORTS].categories], "states": [
        {"code": s, "zh": rules.STATE_LABELS[s][0], "en": rules.STATE_LABELS[s][1]}
        for s in rules.STATES]})


async def submit(request: web.Request) -> web.Response:
    """`{category, description, building?, unit?, spot?, anonymous?, request, photos?}`
    (a worker adds `grid`): 201 when stored now, 200 `repeated` for a retry."""
    user = require_user(request)
    body = await read_object(request)
    index = await index_of(request)
    doc, created = await request.app[REPORTS].submit(user, body, index, utc_now())
    shown = {k: v for k, v in doc.items() if not k.startswith("_") or k == "_id"}
    return json_response({"ok": True, "repeated": not created, "report": shown},
                         status=201 if created else 200)


async def listing(request: web.Request) -> web.Response:
    """What the user sees: a resident their own, staff what is routed to them or their
    place's intake, each with its state, overdue flags and escalation level."""
    user = require_user(request)
    found = await request.app[REPORTS].queue(user, utc_now())
    return json_response({"reports": found}, headers=NO_STORE)


async def one(request: web.Request) -> web.Response:
    """A report the user sees and its steps (the reporter left out when anonymous)."""
    user = require_user(request)
    store = request.app[REPORTS]
    doc = await store.report(user, request.match_info["report"])
    shown = doc if doc.get("reporter") == user.name else rules.staff_view(doc)
    photos = sorted((doc.get("_attachments") or {}).keys())
    steps = [{k: v for k, v in s.items() if not k.startswith("_") or k == "_id"} | {
        "photos": sorted((s.get("_attachments") or {}).keys())}
        for s in await store.steps(str(doc["_id"]))]
    held = await store.statuses_of(str(doc["_id"]))
    return json_response({"report": {k: v for k, v in shown.items()
                                     if not k.startswith("_") or k == "_id"},
                          "photos": photos, "steps": steps,
                          "status": store.judged(doc, held, utc_now())}, headers=NO_STORE)


async def act(request: web.Request) -> web.Response:
    """A step `{from, to, round?, request, note?, assignee?, rating?, comment?, resolve?,
    photos?}`: 201 when stored now, 200 `repeated` for a retry of a stored one."""
    user = require_user(request)
    body = await read_object(request)
    step, status, created = await request.app[REPORTS].act(
        user, request.match_info["report"], body, utc_now())
    return json_response({"ok": True, "repeated": not created, "step": step,
                          "status": status}, status=201 if created else 200)


async def photo(request: web.Request) -> web.Response:
    """A photo of a report or of one of its steps, for who sees the report."""
    user = require_user(request)
    store = request.app[REPORTS]
    doc = await store.report(user, request.match_info["report"])
    name = request.match_info["name"]
    data, content_type = await store.photo(doc, request.match_info["holder"], name)
    return web.Response(body=data, content_type=content_type,
                        headers={"Cache-Control": "private, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})


async def reports_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store and the directory are open."""
    config = app[CONFIG]
    app[REPORTS] = Reports(app[COUCH], app[DIRECTORY], app[SCHEMAS],
                           max_photo_bytes=config.report_photo_max_bytes,
                           max_photo_pixels=config.report_photo_max_pixels)
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(reports_ctx)
    one_report = PREFIX + "/{report:[^/]+}"  # checked by the store: a bad id answers 404
    for method, path, handler in (
            ("GET", PREFIX + "/categories", categories), ("GET", PREFIX, listing),
            ("POST", PREFIX, submit), ("GET", one_report, one),
            ("POST", one_report + "/steps", act),
            ("GET", one_report + "/photos/{holder:[^/]+}/{name:[^/]+}", photo)):
        app.router.add_route(method, path, handler)
