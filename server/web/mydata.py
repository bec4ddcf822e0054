"""My data's routes (我的数据, PIPL arts. 44-47): a resident sees and downloads everything held
about them and their household, and asks for a correction or a deletion; the supervisor of
their community answers, and the resident sees the answer. Thin controllers: the rules are
server/domain/mydata.py (and resident_writes.py for the answers' moves), the store's side
server/sync/mydata.py. Every read of a resident's data and every answer is in the audit log."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server import errors
from server.domain import mydata
from server.domain.scope import User
from server.errors import json_response
from server.store.couch import Conflict
from server.sync import exports
from server.sync.mydata import MAX_LISTED, MyData
from server.sync.residents import utc_now
from server.web import residents
from server.web.guard import require_user
from server.web.keys import COUCH, DIRECTORY, MY_DATA, SCHEMAS
from server.web.parsing import read_object
from server.web.residents import refuse

audit = logging.getLogger("linli.audit")
PRIVATE = {"Cache-Control": "no-store"}  # personal data: never kept by a cache on the way


def require_resident(request: web.Request) -> User:
    return residents.require_resident(request, ("查看“我的数据”", "has “my data”"))


def require_answerer(request: web.Request) -> User:
    user = require_user(request)
    if user.role not in ("supervisor", "admin"):
        raise errors.forbidden("只有社区或街道工作人员可以答复个人信息请求",
                               "Only a community or street supervisor answers data requests.")
    return user


async def my_data(request: web.Request) -> web.Response:
    """Everything held about the resident and their household, as they may see it."""
    user = require_resident(request)
    found = await request.app[MY_DATA].gather(user.name, utc_now())
    audit.info("resident %s read their data (%d records)", user.name,
               sum(len(s["records"]) for s in found["sections"]))
    return json_response(found, headers=PRIVATE)


async def my_data_export(request: web.Request) -> web.StreamResponse:
    """The same as a file: `?format=json` (the default) or `csv`."""
    user = require_resident(request)
    kind = request.query.get("format", "json")
    if kind not in mydata.EXPORT_FORMATS or set(request.query) - {"format"}:
        raise errors.bad_request("format 应为 json 或 csv", "format must be json or csv")
    now = utc_now()
    store = request.app[MY_DATA]
    found = await store.gather(user.name, now)
    audit.info("resident %s exported their data as %s", user.name, kind)
    headers = {**PRIVATE, "Content-Disposition":
               f'attachment; filename="{mydata.file_name(kind, now)}"'}
    if kind == "json":
        body = json.dumps(found, ensure_ascii=False, indent=1)
        return web.Response(text=body, content_type="application/json", headers=headers)
    response = web.StreamResponse(headers=headers)
    response.content_type, response.charset = "text/csv", "utf-8"
    await response.prepare(request)
    await response.write(b"\xef\xbb\xbf")  # Excel reads UTF-8 CSV by its BOM
    await response.write(b"".join(exports.csv_line(row) for row in mydata.export_rows(
        found, store.titles, store.labels)))
    await response.write_eof()
    return response


async def own_requests(request: web.Request) -> web.Response:
    """The resident's data requests, newest first, each with its answer once given."""
    user = require_resident(request)
    store = request.app[MY_DATA]
    community, _ = await store.homes(user.name)
    found = await store.requests_of(user.name, community)
    found.sort(key=lambda d: (str(d.get("requested_at")), str(d.get("_id"))), reverse=True)
    return json_response({"requests": [mydata.request_view(d) for d in found]},
                         headers=PRIVATE)


async def make_request(request: web.Request) -> web.Response:
    """A request `{kind, details?, household?}`: made once (201), the same again while open
    is that request (200), and at most MAX_PER_DAY a day (429 until the next day)."""
    user = require_resident(request)
    body = await read_object(request)
    store = request.app[MY_DATA]
    community, homes = await store.homes(user.name)
    problems = mydata.request_problems(body, homes)
    if problems:
        raise refuse(problems)
    if not community:
        raise errors.forbidden("账号没有所在社区，请联系社区", "Your account has no community; "
                               "ask your community.")
    now = utc_now()
    doc = mydata.new_request(body, user.name, now)
    invalid = request.app[SCHEMAS].problems(doc)
    if invalid:
        raise errors.bad_request("；".join(invalid), "; ".join(invalid))
    stored, repeated = await store.make_request(doc, community, now)
    if stored is None:
        tomorrow = (now.astimezone(mydata.CHINA) + datetime.timedelta(days=1)).replace(
            hour=0, minute=0, second=0, microsecond=0)
        raise errors.CouchError(429, "too_many_requests", errors.bilingual(
            f"每天最多提出 {mydata.MAX_PER_DAY} 个请求，请明天再提",
            f"At most {mydata.MAX_PER_DAY} requests a day; ask again tomorrow."),
            headers={"Retry-After": str(int((tomorrow - now).total_seconds()) + 1)})
    if not repeated:
        audit.info("resident %s asked %s (%s)", user.name, stored["_id"], stored["kind"])
    return json_response({"ok": True, "repeated": repeated,
                          "request": mydata.request_view(stored)},
                         status=200 if repeated else 201, headers=PRIVATE)


def community_query(request: web.Request) -> str | None:
    wanted = request.query.get("community")
    if wanted is not None and wanted not in request.app[MY_DATA].communities(
            require_answerer(request)):
        raise errors.CouchError(404, "not_found", errors.bilingual(
            "没有这个社区，或您无权查看", "No such community, or it is outside your scope."))
    return wanted


async def requests_to_answer(request: web.Request) -> web.Response:
    """The requests of the supervisor's communities (or `?community=`), oldest first: open
    and in progress, or every one with `?status=all`."""
    user = require_answerer(request)
    status = request.query.get("status", "open")
    if status not in ("open", "all") or set(request.query) - {"status", "community"}:
        raise errors.bad_request("status 应为 open 或 all", "status must be open or all")
    found = await request.app[MY_DATA].listed(user, community_query(request), status == "all")
    audit.info("%s listed %d data requests", user.name, len(found))
    now = datetime.datetime.now(datetime.UTC)
    listed = [mydata.request_view(d, now) for d in found[:MAX_LISTED]]
    return json_response({"requests": listed, "truncated": len(found) > MAX_LISTED,
                          "overdue": sum(1 for r in listed if r["overdue"])}, headers=PRIVATE)


async def answer_request(request: web.Request) -> web.Response:
    """`{id, rev, status, answer}`: in progress, done or refused (done and refused with the
    answer the resident reads), over the revision the supervisor saw."""
    user = require_answerer(request)
    body = await read_object(request)
    problems = mydata.answer_problems(body)
    if problems:
        raise refuse(problems)
    store = request.app[MY_DATA]
    stored = await store.request(user, body["id"])
    if stored is None:
        raise errors.doc_not_found(errors.bilingual("没有这个请求，或不在您的社区",
                                                      "No such request in your communities."))
    if stored.get("_rev") != body["rev"]:
        raise changed()
    doc, problem = mydata.answered(stored, body, user.name, utc_now())
    if problem is not None:
        raise refuse([problem])
    invalid = request.app[SCHEMAS].problems(doc)
    if invalid:
        raise errors.bad_request("；".join(invalid), "; ".join(invalid))
    try:
        rev = await store.answer(doc)
    except Conflict:
        raise changed() from None
    audit.info("%s answered %s of %s: %s", user.name, doc["_id"], doc["created_by"],
               doc["status"])
    return json_response({"ok": True, "request": mydata.request_view({**doc, "_rev": rev})})


def changed() -> errors.CouchError:
    return errors.CouchError(409, "conflict", errors.bilingual(
        "这个请求刚被他人处理，请刷新", "This request was just answered by someone else; reload."))


async def mydata_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store and the directory are open (cleanup contexts run in order)."""
    app[MY_DATA] = MyData(app[COUCH], app[DIRECTORY], app[SCHEMAS])
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(mydata_ctx)
    app.router.add_get("/api/residents/my-data", my_data)
    app.router.add_get("/api/residents/my-data/export", my_data_export)
    app.router.add_get("/api/residents/data-requests", own_requests)
    app.router.add_post("/api/residents/data-requests", make_request)
    app.router.add_get("/api/data-requests", requests_to_answer)
    app.router.add_post("/api/data-requests/answer", answer_request)
