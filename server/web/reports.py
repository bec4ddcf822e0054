"""The problem-report routes (问题上报): a resident or a grid worker reports (the PWA queues it
offline with the phone's request id, so a retry is the same report); whoever the report is
routed to moves it along the workflow, step by step; the reporter confirms and rates it, or
reopens it once. Thin controllers: the rules are server/domain/reports.py, the store's side
server/sync/reports.py. The reporter's phone gets its report, its steps and its status back
through the resident sync."""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server import errors
from server.domain import reports as rules
from server.domain.exports import WITHHELD
from server.domain.figures import SMALL
from server.domain.scope import User
from server.errors import json_response
from server.sync.reports import ReportRows, Reports, place_of
from server.sync.residents import utc_now
from server.web.api import send_sheet
from server.web.auth import FailureCounter
from server.web.guard import require_role, require_user
from server.web.keys import (
    CONFIG,
    COUCH,
    DIRECTORY,
    INSTALLATION,
    REPORT_ROWS,
    REPORTS,
    RESIDENT_OBSERVERS,
    SCHEMAS,
)
from server.web.parsing import read_object, whole_number
from server.web.resident_sync import index_of

PREFIX = "/api/reports"
NO_STORE = {"Cache-Control": "no-store"}
DAY = 24 * 3600.0
REPORT_LIMITS = web.AppKey("report_limits", FailureCounter)  # reports per account a day


PAGE = 100  # reports a list answers by default
MOST = 500  # and at most
LIST_QUERY = frozenset({"limit", "cursor"})
CURSOR_CHARS = 200


def only(request: web.Request, allowed: frozenset[str]) -> None:
    """A route refuses a query parameter it does not take, so that no later filter is read
    from the query by mistake."""
    if set(request.query) - allowed or len(request.query) != len(set(request.query)):
        raise errors.bad_request(f"只接受查询参数 {', '.join(sorted(allowed)) or '（无）'}",
                                 "This route takes no query parameter but "
                                 f"{', '.join(sorted(allowed)) or 'none'}.")


def cursor_of(after: tuple[str, str] | None) -> str | None:
    """Where the next page starts, as an opaque token: the last report's time and id (the
    list's order), not a position, so a report filed meanwhile shifts nothing."""
    if after is None:
        return None
    return base64.urlsafe_b64encode("\x1f".join(after).encode()).decode().rstrip("=")


def after_of(raw: str | None) -> tuple[str, str] | None:
    """A cursor as sent: only one this server could have written (a time and a report id)
    is taken; it names a place in the order, so another's id reveals nothing."""
    if raw is None:
        return None
    try:
        if len(raw) > CURSOR_CHARS or not raw.isascii():
            raise ValueError
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        at, report = text.split("\x1f")
        datetime.datetime.fromisoformat(at)
        if not rules.REPORT_ID.match(report):
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.bad_request("“位置” cursor 无效：请使用上一页给出的值",
                                 "cursor is not valid: send the one the last page gave."
                                 ) from None
    return at, report


def count_report(request: web.Request, user: User) -> None:
    """One more report of this account, counted as it arrives (before its photos are
    decoded), or a 429 that says when it may send again."""
    limits = request.app[REPORT_LIMITS]
    wait = limits.retry_after(user.name)
    if wait:
        raise errors.too_many_requests(wait)
    limits.record(user.name)


async def categories(request: web.Request) -> web.Response:
    """The categories as the phone offers them: labels, anonymity, time limits."""
    require_user(request)
    return json_response({"categories": [
        {"code": c.code, "zh": c.zh, "en": c.en, "anonymous_allowed": c.anonymous_allowed,
         "accept_days": c.accept_days, "finish_days": c.finish_days}
        for c in request.app[REPORTS].categories], "states": [
        {"code": s, "zh": rules.STATE_LABELS[s][0], "en": rules.STATE_LABELS[s][1]}
        for s in rules.STATES], "handlers": rules.handler_labels()})


async def submit(request: web.Request) -> web.Response:
    """`{category, description, building?, unit?, spot?, anonymous?, request, photos?}`
    (a worker adds `grid`): 201 when stored now, 200 `repeated` for a retry."""
    user = require_user(request)
    body = await read_object(request)
    if not await request.app[REPORTS].held(user, body.get("request")):
        count_report(request, user)  # a retry of a stored report is not one more
    index = await index_of(request)
    doc, created = await request.app[REPORTS].submit(user, body, index, utc_now())
    shown = {k: v for k, v in doc.items() if not k.startswith("_") or k == "_id"}
    return json_response({"ok": True, "repeated": not created, "report": shown},
                         status=201 if created else 200)


async def listing(request: web.Request) -> web.Response:
    """What the user sees, newest first, `?limit=` (1–500, 100) at a time from `?cursor=`
    (the last page's `next`): a resident their own, staff what is routed to them or their
    place's intake, each with its state, overdue flags and escalation level."""
    user = require_user(request)
    only(request, LIST_QUERY)
    limit = whole_number(request.query, "limit", "每页条数 limit", PAGE, MOST)
    after = after_of(request.query.get("cursor"))
    await index_of(request)  # the kept rows are whole once the index has read the database
    found, last = await request.app[REPORTS].queue(user, utc_now(), limit, after=after)
    return json_response({"reports": found, "next": cursor_of(last)}, headers=NO_STORE)


async def one(request: web.Request) -> web.Response:
    """A report the user sees and its steps (the reporter left out when anonymous)."""
    user = require_user(request)
    store = request.app[REPORTS]
    doc = await store.report(user, request.match_info["report"])
    shown = doc if doc.get("reporter") == user.name else rules.staff_view(doc)
    photos = sorted((doc.get("_attachments") or {}).keys())
    own, anonymous = doc.get("reporter") == user.name, doc.get("anonymous") is True
    steps = [{k: v for k, v in (rules.resident_step_view(s) if own
                                  else rules.staff_step_view(s, anonymous)).items()
              if not k.startswith("_") or k == "_id"} | {
        "photos": sorted((s.get("_attachments") or {}).keys())}
        for s in await store.steps(str(doc["_id"]))]
    held = await store.statuses_of(str(doc["_id"]))
    status = store.judged(doc, held, utc_now())
    parts = rules.part_of(user, str(doc.get("reporter")), str(status.get("assignee") or
                                                              doc.get("assignee", "")),
                          place_of(doc))
    return json_response({"report": {k: v for k, v in shown.items()
                                     if not k.startswith("_") or k == "_id"},
                          "photos": photos, "steps": steps, "status": status,
                          "moves": [] if status.get("conflicts") else rules.moves(
                              parts, str(status.get("state")), int(status.get("round", 0)))},
                         headers=NO_STORE)


async def act(request: web.Request) -> web.Response:
    """A step `{from, to, round?, request, note?, assignee?, rating?, comment?, resolve?,
    photos?}`: 201 when stored now, 200 `repeated` for a retry of a stored one."""
    user = require_user(request)
    body = await read_object(request)
    step, status, created = await request.app[REPORTS].act(
        user, request.match_info["report"], body, utc_now())
    if step.get("reporter") != user.name:  # staff: the reporter stays out of what they see
        step = rules.staff_step_view(step, False)
        status = {k: v for k, v in status.items() if k != "reporter"}
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
                        headers={**NO_STORE,  # a handler re-dispatched away keeps no copy
                                 "X-Content-Type-Options": "nosniff"})


DASHBOARD_QUERY = frozenset({"level"})


def require_supervisor(request: web.Request) -> User:
    return require_role(request, ("supervisor", "admin"),
                        "只有社区、街道工作人员或市级管理员可以查看问题统计",
                        "Only community or street supervisors and the city admin see "
                        "the reports' figures.")


async def figures_of(request: web.Request) -> dict[str, Any]:
    """Rule 8 for the supervisor's scope at `?level=` (city, street, community, grid)."""
    user = require_supervisor(request)
    extra = sorted(set(request.query) - DASHBOARD_QUERY)
    level = request.query.get("level", "city")
    if extra or level not in rules.LEVELS:
        raise errors.bad_request("“层级”应为 city、street、community 或 grid，不接受其他参数",
                                 "level must be city, street, community or grid; no other "
                                 "parameter is taken.")
    await index_of(request)  # the kept rows are whole once the index has read the database
    return request.app[REPORTS].dashboard(user, level, SMALL, utc_now())


async def dashboard(request: web.Request) -> web.Response:
    return json_response(await figures_of(request), headers=NO_STORE)


def dashboard_rows(figures: dict[str, Any]) -> list[list[Any]]:
    """The dashboard as a sheet: one row per area, withheld cells as the exports write them."""
    categories = sorted({c for a in [figures["total"], *figures["areas"]]
                         for c in a.get("by_category", {})})
    head = ["层级 level", "区域 area", "问题数 reports", *(f"类别 {c}" for c in categories),
            *(f"{rules.STATE_LABELS[s][0]} {s}" for s in rules.STATES), "超期 overdue",
            "办结中位小时 median hours", "办结P90小时 p90 hours", "满意度 satisfaction"]
    out: list[list[Any]] = [head]
    for area in [{"code": "合计 total", "withheld": False, **figures["total"]},
                 *figures["areas"]]:
        if area.get("withheld"):
            out.append([figures["level"], area["code"], WITHHELD])
            continue
        cell = (lambda v: WITHHELD if v is None else v)  # noqa: E731
        out.append([figures["level"], area["code"], area["reports"],
                    *(cell(area["by_category"].get(c, 0)) for c in categories),
                    *(cell(area["by_state"].get(s, 0)) for s in rules.STATES),
                    cell(area["overdue"]), cell(area["hours_median"]),
                    cell(area["hours_p90"]), cell(area["satisfaction"])])
    return out


async def dashboard_xlsx(request: web.Request) -> web.StreamResponse:
    """The dashboard as XLSX: text cells safe from formulas (as every export), no reporter."""
    figures = await figures_of(request)

    async def source() -> AsyncIterator[list[Any]]:
        for row in dashboard_rows(figures):
            yield row
    name = f"reports-{figures['level']}-{utc_now().date().isoformat()}.xlsx"
    return await send_sheet(request, source(), "xlsx", name, "reports")


async def reports_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store and the directory are open."""
    config = app[CONFIG]
    app[REPORTS] = Reports(app[COUCH], app[DIRECTORY], app[SCHEMAS], rows=app[REPORT_ROWS],
                           max_photo_bytes=config.report_photo_max_bytes,
                           max_photo_pixels=config.report_photo_max_pixels,
                           secret=app[INSTALLATION].secret)
    app[REPORT_LIMITS] = FailureCounter(config.reports_per_account_day, DAY)
    yield


def setup(app: web.Application) -> None:
    """The reports' rows are told the residents database by the index from its first pass,
    so they exist before any context runs."""
    app[REPORT_ROWS] = rows = ReportRows()
    app[RESIDENT_OBSERVERS] = (*app.get(RESIDENT_OBSERVERS, ()), rows.take)
    app.cleanup_ctx.append(reports_ctx)
    one_report = PREFIX + "/{report:[^/]+}"  # checked by the store: a bad id answers 404
    for method, path, handler in (
            ("GET", PREFIX + "/categories", categories), ("GET", PREFIX, listing),
            ("GET", PREFIX + "/dashboard", dashboard),
            ("GET", PREFIX + "/dashboard.xlsx", dashboard_xlsx),
            ("POST", PREFIX, submit), ("GET", one_report, one),
            ("POST", one_report + "/steps", act),
            ("GET", one_report + "/photos/{holder:[^/]+}/{name:[^/]+}", photo)):
        app.router.add_route(method, path, handler)
