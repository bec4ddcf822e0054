"""The questionnaire routes (问卷调查): a supervisor publishes (built in the PWA, or imported from
an XLSForm workbook), replaces and closes a questionnaire and reads its results and answers; a
resident answers (the PWA queues the answer offline and sends it with the phone's own request
id, so a retry is the same answer). Thin controllers: the rules are
server/domain/questionnaires.py and xlsform.py, the store's side
server/sync/questionnaires.py. Residents' phones get the definitions through the resident
sync, by audience, as notices."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server import errors
from server.domain import questionnaires as rules
from server.domain import xlsform
from server.domain.audience import includes
from server.domain.masking import sees_grid_unmasked
from server.domain.scope import User
from server.errors import json_response
from server.sync.notices import refused
from server.sync.questionnaires import Questionnaires, no_such_questionnaire
from server.sync.residents import utc_now
from server.web.api import send_sheet
from server.web.guard import require_role, require_user
from server.web.keys import (
    ALLOCATOR,
    COUCH,
    DIRECTORY,
    NOTICES,
    QUESTIONNAIRES,
    SCHEMAS,
    SUPERVISOR,
)
from server.web.parsing import read_object
from server.web.resident_sync import index_of
from server.web.residents import require_resident
from server.web.volunteering import allocator_of

PREFIX = "/api/questionnaires"
MAX_WORKBOOK_BYTES = 2 * 1024 * 1024  # an XLSForm is a few dozen kB
MAX_UNZIPPED_BYTES = 20 * 1024 * 1024  # a workbook inflating past this is a zip bomb
MAX_COLUMNS = 60
SHOWN = ("_id", "key", "version", "title", "description", "audience", "per", "anonymous",
         "closes_at", "questions", "status", "published_at", "closed_at", "replaced_by",
         "created_by")


def require_author(request: web.Request) -> User:
    return require_role(request, ("supervisor", "admin"),
                        "只有社区、街道工作人员或市级管理员可以管理问卷",
                        "Only community or street supervisors and the city admin "
                        "manage questionnaires.")


def only_query(request: web.Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query's parameters when each is one of `allowed`, given once; else a 400."""
    names = list(request.query.keys())
    if any(n not in allowed for n in names) or len(names) != len(set(names)):
        raise errors.bad_request("不支持的查询参数", "Query parameter not supported.")
    return dict(request.query)


def shown(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in SHOWN if k in doc}


def store_of(request: web.Request) -> Questionnaires:
    return request.app[QUESTIONNAIRES]


async def managed(request: web.Request, user: User) -> dict[str, Any]:
    doc = await store_of(request).current(request.match_info["key"])
    if doc is None or not store_of(request).may_manage(user, doc):
        raise no_such_questionnaire()
    return doc


async def publish(request: web.Request) -> web.Response:
    user = require_author(request)
    doc = await store_of(request).publish(user, await read_object(request), utc_now())
    return json_response({"ok": True, "questionnaire": shown(doc)}, status=201)


async def new_version(request: web.Request) -> web.Response:
    """A correction: the next version, replacing the current one (rule 2)."""
    user = require_author(request)
    doc = await store_of(request).publish(user, await read_object(request), utc_now(),
                                          key=request.match_info["key"])
    return json_response({"ok": True, "questionnaire": shown(doc)}, status=201)


async def close(request: web.Request) -> web.Response:
    user = require_author(request)
    doc = await store_of(request).close(user, request.match_info["key"], utc_now())
    return json_response({"ok": True, "questionnaire": shown(doc)})


async def listing(request: web.Request) -> web.Response:
    """A supervisor's: the questionnaires they manage; a resident's: those addressed to a
    household of theirs (their phone has them offline too)."""
    user = require_user(request)
    store = store_of(request)
    docs = await store.listing()
    if user.role == "resident":
        places = (await index_of(request)).ids.places_of(user.name).values()
        docs = [d for d in docs if any(includes(d.get("audience") or {}, p) for p in places)]
    else:
        require_author(request)
        docs = [d for d in docs if store.may_manage(user, d)]
    docs.sort(key=lambda d: (str(d.get("published_at")), str(d["_id"])), reverse=True)
    return json_response({"questionnaires": [shown(d) for d in docs]})


async def answer(request: web.Request) -> web.Response:
    """A resident's answer `{request, version, answers, household?, secret_key?}`: 201 when
    this request stored it, 200 for a retry, for an answer not counted (a family member's
    came first: `answered_by_family`) and for the resident's own second one."""
    user = require_resident(request, ("填写问卷", "answers questionnaires"))
    body = await read_object(request)
    index = await index_of(request)
    allocator = await allocator_of(request)
    told = await store_of(request).answer(allocator, index, user.name,
                                          request.match_info["key"], body, utc_now())
    created = told["counted"] and not told["repeated"]
    return json_response({"ok": True, **told}, status=201 if created else 200)


async def results(request: web.Request) -> web.Response:
    """Results by question, and with `?level=street|community|grid` by area, suppressed."""
    user = require_author(request)
    level = only_query(request, frozenset({"level"})).get("level")
    if level is not None and level not in rules.AREA_LEVELS:
        raise errors.bad_request("level 应为 street、community 或 grid",
                                 "level must be street, community or grid.")
    await managed(request, user)
    doc, figures = await store_of(request).results(request.match_info["key"], level)
    return json_response({"questionnaire": shown(doc), "results": figures},
                         headers={"Cache-Control": "no-store"})


async def export(request: web.Request) -> web.StreamResponse:
    """The answers as an XLSX sheet, masked (a text's phone and ID numbers, the household)
    unless the user holds the right to see them, every cell safe from formulas."""
    user = require_author(request)
    only_query(request, frozenset())
    doc = await managed(request, user)
    unmasked = sees_grid_unmasked(user) and not doc.get("anonymous")
    _, rows = await store_of(request).export_rows(str(doc["key"]), unmasked)
    name = f"linli-questionnaire-{doc['key']}-v{doc['version']}.xlsx"

    async def source() -> AsyncIterator[list[Any]]:
        for row in rows:
            yield row

    return await send_sheet(request, source(), "xlsx", name, "answers")


def workbook_rows(data: bytes) -> dict[str, list[list[Any]]]:
    """The sheets survey, choices and settings as rows of values, read without formulas; a
    workbook inflating past MAX_UNZIPPED_BYTES is refused before it is opened."""
    from openpyxl import load_workbook

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(info.file_size for info in archive.infolist()) > MAX_UNZIPPED_BYTES:
            raise ValueError("too large unzipped")
    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheets: dict[str, list[list[Any]]] = {}
        for sheet in book.worksheets:
            name = str(sheet.title).strip().lower()
            if name in ("survey", "choices", "settings"):
                sheets[name] = [list(row) for row in sheet.iter_rows(
                    max_row=xlsform.MAX_ROWS + 2, max_col=MAX_COLUMNS, values_only=True)]
        return sheets
    finally:
        book.close()


async def import_xlsform(request: web.Request) -> web.Response:
    """`{xlsx: <base64 of the workbook>}` -> the draft's questions (and title), for the
    builder to show and the supervisor to publish; a form outside the subset is refused with
    each row and its reason. Nothing is stored."""
    require_author(request)
    body = await read_object(request)
    if set(body) != {"xlsx"} or not isinstance(body["xlsx"], str) or len(
            body["xlsx"]) > MAX_WORKBOOK_BYTES * 4 // 3 + 4:
        raise errors.bad_request("请上传一个 XLSForm 工作簿（xlsx，不超过 2 MB）",
                                 "Send one XLSForm workbook (xlsx, at most 2 MB).")
    try:
        data = base64.b64decode(body["xlsx"], validate=True)
        sheets = await asyncio.to_thread(workbook_rows, data)
    except (binascii.Error, ValueError, KeyError, OSError, zipfile.BadZipFile, TypeError,
            IndexError, AttributeError) as exc:
        raise errors.bad_request("无法读取：不是 xlsx 工作簿", "Unreadable: not an xlsx "
                                 "workbook.") from exc
    if "survey" not in sheets:
        raise errors.bad_request("工作簿缺少 survey 表", "The workbook has no survey sheet.")
    draft, problems = xlsform.from_sheets(sheets["survey"], sheets.get("choices", []),
                                          sheets.get("settings", []))
    if problems:
        raise refused(problems[:20])
    return json_response({"ok": True, "draft": draft})


async def questionnaires_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the notices and the allocator (volunteering's context) are made: questionnaires
    count one answer per resident or household through the same allocator."""
    store = Questionnaires(app[COUCH], app[DIRECTORY], app[SCHEMAS], app[NOTICES])
    app[QUESTIONNAIRES] = store
    allocator = app[ALLOCATOR]
    allocator.terms = {**allocator.terms, "questionnaire": store.terms}
    task = app[SUPERVISOR].start("questionnaires", store.run, probe=store.lag)
    yield
    await app[SUPERVISOR].stop([task])


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(questionnaires_ctx)
    one = PREFIX + "/{key:[^/]+}"
    for method, path, handler in (
            ("GET", PREFIX, listing), ("POST", PREFIX, publish),
            ("POST", PREFIX + "/xlsform", import_xlsform),
            ("POST", one + "/versions", new_version), ("POST", one + "/close", close),
            ("POST", one + "/answers", answer), ("GET", one + "/results", results),
            ("GET", one + "/export", export)):
        app.router.add_route(method, path, handler)
