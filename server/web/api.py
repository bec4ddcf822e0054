"""The app's own JSON API under `/api/` (CouchDB's API is the gateway's, under `/couch/`): who is
logged in and which grids they work, and the supervisor's queue of conflicts the resolver could
not decide (server/sync/conflicts.py), with the decision that settles one."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from server import errors
from server.domain import exports as sheets
from server.domain import review as rules
from server.domain.figures import LEVELS
from server.domain.masking import UNMASK, sees_grid_unmasked, sensitive_fields
from server.domain.messages import bilingual
from server.domain.scope import User, grid_db, home_area
from server.domain.settlement import edit_stamp, open_conflict, settle
from server.domain.validation import WriteContext, write_context
from server.errors import json_response
from server.store.couch import Conflict, CouchFailure, NotFound, StoreUnavailable, db_path
from server.sync import exports, personal, review
from server.sync.receipts import utc_now
from server.web import campaigns, mydata, resident_queue, residents, retention, reveals
from server.web.guard import require_role, require_user
from server.web.keys import (
    AGGREGATES,
    CONFIG,
    COUCH,
    DIRECTORY,
    RECEIPT_TIMES,
    RECEIPTS,
    SCHEMAS,
)
from server.web.parsing import read_object

API_PREFIX = "/api"
COUNTED_GRIDS = 8  # a worker's grids counted in /api/me (more: the phone asks /couch/ itself)
OPENAPI = Path(__file__).resolve().parent / "openapi.json"
audit = logging.getLogger("linli.audit")


async def me(request: web.Request) -> web.Response:
    """The logged-in user and the grids they reach, with names, so the phone can label them and
    know which databases to replicate."""
    user = require_user(request)
    directory = request.app[DIRECTORY]
    grids = [{"code": g.code, "name": g.name, "community": g.community, "street": g.street,
              "db": grid_db(g.code), "purged": sorted(directory.purged_campaigns(g.code))}
             for code, g in sorted(directory.grids.items()) if directory.reaches(user, code)]
    config = request.app[CONFIG]
    level, code = home_area(user, (directory.grids[g["code"]] for g in grids))
    found = {"name": user.name, "full_name": user.shown_name, "role": user.role, "grids": grids,
             "rights": sorted(user.rights),
             "home": {"level": level, "code": code},
             "replicates": sees_grid_unmasked(user),
             "campaigns": {"census": config.census_campaign,
                           "screening": config.screening_campaign}}
    if user.role == "worker" and 0 < len(grids) <= COUNTED_GRIDS:
        await count_records(request, grids)
    if user.role == "resident":  # their activation and their own household only
        found["resident"] = await residents.resident_state(request, user)
    if user.role == "secretary":  # the party branches they keep (server/web/party.py)
        found["branches"] = sorted(user.branches)
    return json_response(found)


async def count_records(request: web.Request, grids: list[dict[str, Any]]) -> None:
    """Each grid's record count (`doc_count`, as /couch/ gives it), for a phone's first
    download: with it in this answer the sync bar shows "0 / N" a round trip sooner (on a slow
    link, 400 ms). A count the store can't give now is left out; the phone asks /couch/."""
    couch = request.app[COUCH]
    infos = await asyncio.gather(*(couch.get(db_path(g["db"])) for g in grids),
                                 return_exceptions=True)
    for grid, info in zip(grids, infos, strict=True):
        count = info.get("doc_count") if isinstance(info, dict) else None
        if isinstance(count, int) and not isinstance(count, bool):
            grid["doc_count"] = count


def require_supervisor(request: web.Request) -> User:
    user = require_user(request)
    if not rules.may_review(user):
        raise errors.forbidden("只有督导员可以处理冲突", "Only supervisors settle conflicts.")
    return user


def grid_write_context(request: web.Request, user: User, grid: str) -> WriteContext:
    """What a write of `user` to `grid` through the API is checked against: the settings and
    the forms retired, as for a phone's write through the gateway."""
    directory = request.app[DIRECTORY]
    return write_context(user, grid, request.app[CONFIG], directory.retired_schemas,
                         directory.purged_campaigns(grid))


def wants_unmasked(request: web.Request, user: User) -> bool:
    """Whether the request asks for personal data unmasked (`unmask=1`), which only users given
    the `unmask` right may do (`linli user grant NAME unmask`); the caller audits it."""
    if request.query.get("unmask") != "1":
        return False
    if not user.may("unmask"):
        audit.info("%s was refused unmasked data (%s)", user.name, request.path)
        raise errors.forbidden(
            "您没有查看完整身份证号、电话和特殊人群信息的权限，请去掉 unmask=1 或请管理员授权",
            "You do not have the right to see ID numbers, phones and special groups unmasked; "
            "leave out unmask=1 or ask an admin for the right.")
    return True


def reachable_grid(request: web.Request, user: User, code: Any) -> str:
    if not isinstance(code, str) or not request.app[DIRECTORY].reaches(user, code):
        raise errors.CouchError(404, "not_found", errors.bilingual(
            "没有这个网格，或您无权查看", "No such grid, or it is outside your scope."))
    return code


def scoped_grids(request: web.Request, user: User) -> list[str]:
    """The grids a list or export covers: `?grid=` (which must be in scope), or every grid in
    the user's scope, narrowed by `?community=` and `?street=`."""
    query, directory = request.query, request.app[DIRECTORY]
    if query.get("grid"):
        return [reachable_grid(request, user, query["grid"])]
    return sorted(
        code for code, grid in directory.grids.items() if directory.reaches(user, code)
        and (not query.get("community") or grid.community == query["community"])
        and (not query.get("street") or grid.street == query["street"]))


async def conflicts(request: web.Request) -> web.Response:
    """Open conflicts in the supervisor's grids (or one grid), oldest first. Values may be
    personal data: masked as everywhere in /api/ unless the user has the `unmask` right (a
    decision between two phone numbers needs them; without the right a side is chosen by its
    revision), and every read is written to the audit log."""
    user = require_supervisor(request)
    directory, couch = request.app[DIRECTORY], request.app[COUCH]
    wanted = request.query.get("grid")
    codes = [reachable_grid(request, user, wanted)] if wanted else sorted(
        code for code in directory.grids if directory.reaches(user, code))
    found: list[dict[str, Any]] = []
    unmasked = user.may(UNMASK)
    for code in codes:
        try:
            rows = await couch.get(
                db_path(grid_db(code), "_design/linli", "_view", "open_conflicts"),
                include_docs="true")
        except NotFound:
            continue
        found.extend(open_conflict(code, row.get("doc") or {}, unmasked)
                     for row in rows.get("rows", []))
    found.sort(key=lambda c: c["resolved_at"])
    if unmasked:
        personal.audit_unmasked(request, user, f"{len(found)} open conflicts in {len(codes)} "
                                "grid(s) via /api/conflicts")
    else:
        audit.info("%s read %d open conflicts in %d grid(s)", user.name, len(found), len(codes))
    return json_response({"conflicts": found, "people": people_named(request, [
        side.get("by") for c in found for f in c.get("fields", [])
        for side in [f.get("chosen") or {}, *(f.get("alternatives") or [])]])})


async def decide(request: web.Request) -> web.Response:
    """A supervisor settles an open conflict: the chosen (or typed) values are written to the
    record as the supervisor's edit, checked like any write, and the resolution is closed
    (server/domain/settlement.py has the rules). The new revision replicates to the phones."""
    user = require_supervisor(request)
    body = await read_object(request)
    code = reachable_grid(request, user, body.get("grid"))
    resolution_id, decisions = body.get("id"), body.get("decisions")
    if not isinstance(resolution_id, str) or not resolution_id.startswith("resolution:"):
        raise errors.bad_request("缺少冲突编号 id", "`id` must name a resolution.")
    if not isinstance(decisions, list) or not decisions or not all(
            isinstance(d, dict) and isinstance(d.get("field"), str) for d in decisions):
        raise errors.bad_request("decisions 应为 [{field, value}] 列表",
                                 "`decisions` must be a list of {field, value}.")
    couch, db = request.app[COUCH], grid_db(code)
    try:
        resolution = await couch.get(db_path(db, resolution_id))
    except NotFound as exc:
        raise errors.doc_not_found("没有这条冲突记录 / No such conflict.") from exc
    record = None
    with contextlib.suppress(NotFound):
        record = await couch.get(db_path(db, resolution["record"]))
    settled = settle(resolution, record, decisions, grid_write_context(request, user, code),
                     request.app[SCHEMAS], at=utc_now(),
                     stamp=edit_stamp(datetime.datetime.now(datetime.UTC)))
    try:
        locked = await couch.put(db_path(db, resolution_id), settled.resolution)
    except Conflict as exc:
        raise errors.CouchError(409, "conflict", errors.bilingual(
            "这个冲突刚被处理，请刷新", "This conflict was just settled; reload.")) from exc
    try:
        written = await couch.put(db_path(db, settled.record["_id"]), settled.record)
    except BaseException as exc:
        # The record was not written (it moved meanwhile, or the store failed): the
        # settlement is undone, so the conflict stays open rather than half-settled.
        with contextlib.suppress(CouchFailure, StoreUnavailable):
            await couch.put(db_path(db, resolution_id), {**resolution, "_rev": locked["rev"]})
        if isinstance(exc, Conflict):
            raise errors.CouchError(409, "conflict", errors.bilingual(
                "记录刚被修改，请刷新后再决定",
                "The record just changed; reload and decide again.")) from exc
        raise
    request.app[RECEIPTS].record(user.name, db, [[settled.record["_id"], str(written["rev"])]])
    audit.info("%s settled %s in %s (%s)", user.name, resolution_id, code,
               ", ".join(settled.fields))
    return json_response({"ok": True, "rev": written["rev"], "status": settled.status,
                          "by": user.name})


async def aggregates(request: web.Request) -> web.Response:
    """Figures of an area and of the areas just below it (`?level=city|district|street|
    community|grid&code=`), for supervisors. Counts of grids outside the user's scope below 5
    are withheld (listed in `suppressed`)."""
    user = require_supervisor(request)
    return json_response(await aggregates_report(request, user))


async def aggregates_rebuild(request: web.Request) -> web.Response:
    """An admin has every figure folded again from nothing in the background (a new file; the
    last figures answer meanwhile): 202 with its progress, which GET /api/health's aggregates
    entry then shows; 409 while one runs."""
    admin = require_role(request, ("admin",), "只有管理员可以重建统计数字",
                         "Only an admin rebuilds the figures.")
    figures = request.app[AGGREGATES]
    if not figures.start_rebuild():
        raise errors.CouchError(409, "conflict", bilingual(
            "统计数字正在重建，请等它完成（进度见 /api/health）",
            "The figures are being rebuilt already; wait for it to finish (progress in "
            "/api/health)."))
    audit.info("%s started a rebuild of the figures", admin.name)
    return json_response({"ok": True, "rebuild": dict(figures.rebuild_progress)}, status=202)


async def aggregates_report(request: web.Request, user: User) -> dict[str, Any]:
    """The aggregates of `?level=&code=` as the user may see them (for the API and its export,
    so both withhold the same counts)."""
    level = request.query.get("level", "city")
    code = request.query.get("code", "")
    if level not in LEVELS:
        raise errors.bad_request(f"level 应为 {', '.join(LEVELS)} 之一",
                                 f"level must be one of {', '.join(LEVELS)}")
    if level != "city" and not code:
        raise errors.bad_request("缺少地区编码 code", "`code` names the area.")
    report = await request.app[AGGREGATES].report(user, level, code)
    if level != "city" and not report["grids"]:
        raise errors.CouchError(404, "not_found", errors.bilingual("没有这个地区",
                                                                   "No such area."))
    return report


def sheet_names(request: web.Request) -> sheets.Names:
    """What screens and sheets show instead of codes: grids' and communities' names, people's
    full names, the schemas' labels (server/domain/exports.py Names)."""
    directory = request.app[DIRECTORY]
    return sheets.schema_names(
        {key: validator.schema for key, validator in request.app[SCHEMAS].validators.items()},
        grids={code: (grid.name, directory.area_name("community", grid.community))
               for code, grid in directory.grids.items()},
        people={name: user.shown_name for name, user in directory.users.items()})


def people_named(request: web.Request, logins: Iterable[Any]) -> dict[str, str]:
    """The full names (姓名) of the users named in an answer, by login, for the screen."""
    directory = request.app[DIRECTORY]
    return {login: directory.person_name(login) for login in sorted(
        {str(x) for x in logins if isinstance(x, str) and x})}


async def review_queue(request: web.Request) -> web.Response:
    """Records to review in the supervisor's grids, filtered by grid, type, state, worker and
    date, newest first unless `sort=oldest`; each with its review state and latest verdict,
    and the people named by their full names. No personal data is listed."""
    user = require_supervisor(request)
    listed = await reviewed_records(request, user, review.MAX_LISTED + 1)
    shown = listed[:review.MAX_LISTED]
    return json_response({"records": shown, "truncated": len(listed) > review.MAX_LISTED,
                          "people": people_named(request, [
                              x for r in shown for x in (r.get("worker"), (
                                  r.get("verdict") or {}).get("by"))])})


async def reviewed_records(request: web.Request, user: User,
                           limit: int | None = None) -> list[dict[str, Any]]:
    """The review queue's records for the request's filters in their order; the listing stops
    past `limit` (an export takes them all)."""
    query = request.query
    filters = rules.review_filters(query.get("type"), query.get("state"), query.get("worker"),
                                   query.get("from"), query.get("to"), query.get("sort"))
    codes = scoped_grids(request, user)
    with contextlib.suppress(CouchFailure, StoreUnavailable):
        await request.app[RECEIPTS].flush()  # the verdicts just given, ordered by receipt
    listed: list[dict[str, Any]] = []
    for code in codes:
        listed.extend(await review.queue(request.app[COUCH], code, filters,
                                         request.app.get(RECEIPT_TIMES)))
        if limit is not None and len(listed) >= limit:
            break
    listed.sort(key=lambda r: (r["date"], r["record"]), reverse=filters.sort == "newest")
    return listed


async def give_verdicts(request: web.Request) -> web.Response:
    """Verdicts on many records of one grid at once ("approve all"): every one checked first,
    and none written if any is wrong (server/domain/review.py). They replicate to the
    workers' phones."""
    user = require_supervisor(request)
    body = await read_object(request)
    code = reachable_grid(request, user, body.get("grid"))
    items = body.get("verdicts")
    if not isinstance(items, list) or not items or len(items) > rules.MAX_VERDICTS or not all(
            isinstance(i, dict) and isinstance(i.get("record"), str)
            and isinstance(i.get("record_rev"), str) for i in items):
        raise errors.bad_request("verdicts 应为 1–500 条 {record, record_rev, decision, comment}",
                                 "`verdicts` must be 1–500 of {record, record_rev, decision, "
                                 "comment}.")
    db, couch = grid_db(code), request.app[COUCH]
    page = await couch.post(db_path(db, "_all_docs"), {"keys": [i["record"] for i in items]})
    live = {row["key"] for row in page.get("rows", [])
            if "value" in row and not row["value"].get("deleted")}
    docs = rules.verdict_docs(items, live, grid_write_context(request, user, code),
                              request.app[SCHEMAS], at=utc_now(),
                              keys=[uuid.uuid4().hex[:12] for _ in items])
    with contextlib.suppress(CouchFailure, StoreUnavailable):
        # The records' receipts stored first: the time to review is read from them when the
        # verdicts move the grid's figures.
        await request.app[RECEIPTS].flush()
    with request.app[RECEIPTS].writing(user.name, db):
        results = await couch.post(db_path(db, "_bulk_docs"), {"docs": docs})
        request.app[RECEIPTS].record(user.name, db, [[r["id"], r["rev"]] for r in results
                                                     if r.get("ok")])
    request.app[AGGREGATES].notice(code)
    audit.info("%s gave %d verdicts in %s", user.name, len(docs), code)
    return json_response({"ok": True, "written": [r.get("id") for r in results if r.get("ok")]})


async def review_record(request: web.Request) -> web.Response:
    """One record (`?grid=&id=`) with its verdicts, its revisions (who sent each, when) and
    what changed between them. ID and phone numbers masked unless `unmask=1`; every read is
    audited, since a record is personal data."""
    user = require_supervisor(request)
    code = reachable_grid(request, user, request.query.get("grid"))
    doc_id = request.query.get("id", "")
    if not rules.openable(doc_id):
        raise errors.doc_not_found(errors.bilingual("没有这条可审核的记录",
                                                      "No such record to review."))
    unmasked = wants_unmasked(request, user)
    reason, until = (await reveals.reveal_before_read(request, user, code, doc_id) if unmasked
                     else (None, None))
    with contextlib.suppress(CouchFailure, StoreUnavailable):
        await request.app[RECEIPTS].flush()  # the latest revision's sender, if just received
    found = await review.record_history(
        request.app[COUCH], code, doc_id, unmasked=unmasked,
        receipts=request.app.get(RECEIPT_TIMES))
    if found is None:
        raise errors.doc_not_found(errors.bilingual("没有这条可审核的记录",
                                                      "No such record to review."))
    if unmasked:
        if reason is not None:
            until = (await reveals.record_reveal(
                request, user, kind="record", grid=code, record=doc_id,
                fields=reveals.revealed_fields(found["record"]), reason=reason))["until"]
        found["revealed_until"] = until
        personal.audit_unmasked(request, user, f"{doc_id} in {code} with "
                                f"{len(found['revisions'])} revision(s) via /api/review/record")
    else:
        audit.info("%s read %s in %s with %d revision(s)", user.name, doc_id, code,
                   len(found["revisions"]))
    found["people"] = people_named(request, [
        found["record"].get("created_by"), *(v.get("by") for v in found["verdicts"]),
        *(r.get("by") for r in found["revisions"])])
    return json_response(found)


async def export(request: web.Request) -> web.StreamResponse:
    """Households or persons of the supervisor's grids (or one grid, community or street) as
    CSV or XLSX, streamed. Masked unless `unmask=1`, which needs the `unmask` right and is
    audited. `what=aggregates&level=&code=`: the figures of an area and its children, withheld
    exactly as `/api/aggregates` withholds them. The rows are server/domain/exports.py's."""
    user = require_supervisor(request)
    what, kind = request.query.get("what", "households"), request.query.get("format", "csv")
    if what not in sheets.WHAT or kind not in sheets.FORMATS:
        raise errors.bad_request(
            "what 应为 households、persons、review 或 aggregates；format 应为 csv 或 xlsx",
            "what must be households, persons, review or aggregates; format csv or xlsx")
    source: AsyncIterator[list[Any]]
    report = None
    if what == "review":
        listed = await reviewed_records(request, user)
        audit.info("%s exported the review list (%d records) as %s", user.name, len(listed),
                   kind)
        source = exports.streamed(sheets.review_rows(listed, sheet_names(request)))
    elif what == "aggregates":
        report = await aggregates_report(request, user)
        audit.info("%s exported the aggregates of %s %s as %s", user.name, report["level"],
                   report["code"] or "-", kind)
        source = exports.streamed(sheets.aggregate_rows(report, sheet_names(request)))
    else:
        codes = scoped_grids(request, user)
        unmasked = wants_unmasked(request, user)
        if unmasked:
            await reveals.record_reveal(
                request, user, kind="export", grid=",".join(codes), record=what,
                fields=sensitive_fields(sheets.PREFIX[what].rstrip(":")),
                reason=reveals.required_reason(request))
            personal.audit_unmasked(request, user, f"an export of {what} of {len(codes)} "
                                    f"grid(s) as {kind}")
        else:
            audit.info("%s exported %s of %d grid(s) as %s", user.name, what, len(codes), kind)
        source = exports.rows(request.app[COUCH], codes, what, unmasked, sheet_names(request))
    return await send_sheet(request, source, kind, sheets.file_name(what, kind, report), what)


async def send_sheet(request: web.Request, source: AsyncIterator[list[Any]], kind: str,
                     name: str, title: str) -> web.StreamResponse:
    """Rows streamed to the client as a CSV (written as they come, 500 lines at a time) or an
    XLSX file (built on disk first: a workbook is a zip)."""
    response = web.StreamResponse(headers={
        "Content-Disposition": f'attachment; filename="{name}"'})
    if kind == "csv":
        response.content_type, response.charset = "text/csv", "utf-8"
        await response.prepare(request)
        await response.write(b"\xef\xbb\xbf")  # Excel reads UTF-8 CSV by its BOM
        lines: list[bytes] = []
        async for values in source:
            lines.append(exports.csv_line(values))
            if len(lines) >= 500:
                await response.write(b"".join(lines))
                lines.clear()
        await response.write(b"".join(lines))
    else:
        handle = await exports.xlsx_file(source, title)
        with handle:
            response.content_type = (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            await response.prepare(request)
            while chunk := handle.read(1 << 16):
                await response.write(chunk)
    await response.write_eof()
    return response


async def openapi(request: web.Request) -> web.Response:
    """The API described (OpenAPI 3.1); a test holds it to the routes."""
    return web.Response(body=OPENAPI.read_bytes(), content_type="application/json",
                        charset="utf-8")


def setup_routes(app: web.Application) -> None:
    app.router.add_get(API_PREFIX + "/me", me)
    app.router.add_get(API_PREFIX + "/conflicts", conflicts)
    app.router.add_post(API_PREFIX + "/conflicts/decide", decide)
    app.router.add_get(API_PREFIX + "/aggregates", aggregates)
    app.router.add_post(API_PREFIX + "/aggregates/rebuild", aggregates_rebuild)
    app.router.add_get(API_PREFIX + "/review", review_queue)
    app.router.add_post(API_PREFIX + "/review/verdicts", give_verdicts)
    app.router.add_get(API_PREFIX + "/review/record", review_record)
    app.router.add_get(API_PREFIX + "/export", export)
    app.router.add_get(API_PREFIX + "/openapi.json", openapi)
    reveals.setup(app, API_PREFIX)  # the admin's audit of reveals
    campaigns.setup(app, API_PREFIX)  # campaigns' end, retention and purge
    retention.setup(app, API_PREFIX)  # what is past its retention, removed once approved
    mydata.setup(app)  # a resident's own data, and the answers to their requests
    resident_queue.setup(app)  # corrections, the full ID number, the links made at the door
