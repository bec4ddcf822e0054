"""The resident's two acts that reach the grid worker (居民与网格员): "something is wrong"
(信息有误, a correction request the worker answers on their phone) and the full ID number shown
to the person themself after their password (查看完整身份证号, a logged act). The worker's own
side (the sign-up queue, codes, removals, answers) is written on the phone and checked by the
gateway (server/domain/resident_queue.py, server/sync/resident_queue.py); the links of sign-ups
decided at the door are written by `DoorLinks`, started here.

Thin controllers: the rules are server/domain/resident_queue.py and resident_writes.py."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from server import errors
from server.domain import resident_queue, signup
from server.domain.messages import bilingual
from server.domain.resident_writes import resident_write_problem
from server.domain.rules import Problem
from server.domain.scope import User, grid_db
from server.domain.text import text_problem, unknown_fields
from server.errors import json_response
from server.store.couch import CouchClient, NotFound, db_path
from server.sync.door_links import DoorLinks
from server.sync.residents import Residents
from server.web.guard import client_address
from server.web.keys import (
    AUTH,
    CONFIG,
    COUCH,
    DIRECTORY,
    DOOR_LINKS,
    RECEIPTS,
    RESIDENT_INDEX,
    RESIDENTS,
    RESOLVER,
    SCHEMAS,
    SUPERVISOR,
)
from server.web.parsing import read_object
from server.web.residents import PREFIX, refuse, require_resident

audit = logging.getLogger("linli.audit")
MAX_OPEN = 5  # open corrections per resident: a worker answers them, a script could not
NOTE_CHARS = 500
NO_STORE = {"Cache-Control": "no-store"}


async def homes(request: web.Request, account: str) -> dict[str, str]:
    """The resident's active households and their grids."""
    state = await request.app[RESIDENTS].state(account)
    return {str(link["household"]): str(link["grid"]) for link in state["households"]
            if link.get("status") == "active"}


def not_active() -> errors.CouchError:
    return errors.CouchError(409, "not_active", bilingual(
        "您的账号尚未激活，请等待网格员核实或使用激活码",
        "Your account is not active yet: wait for the grid worker, or use an activation code"))


def pick_home(body: Mapping[str, Any], own: Mapping[str, str]) -> str:
    """The household a request is about: the one named, if it is the resident's, else their
    only one. Another household's id gets the same answer as a made-up one."""
    if not own:
        raise not_active()
    named = body.get("household")
    if named is None and len(own) == 1:
        return next(iter(own))
    if isinstance(named, str) and named in own:
        return named
    raise refuse([Problem("/household", "not_own", "“住户”不是您的住户，请从您的住户中选择",
                          "Household: not yours; choose one of your households")])


async def members(couch: CouchClient, grid: str, household: str) -> dict[str, dict[str, Any]]:
    """The household and its present members, by id."""
    db = grid_db(grid)
    found: dict[str, dict[str, Any]] = {}
    try:
        found[household] = await couch.get(db_path(db, household))
        rows = (await couch.get(db_path(db, "_design/linli", "_view", "persons_by_household"),
                                key=f'"{household}"', include_docs="true",
                                reduce="false")).get("rows", [])
    except NotFound:
        return found
    for row in rows:
        doc = row.get("doc")
        if isinstance(doc, dict) and doc.get("status") == "present":
            found[str(doc["_id"])] = doc
    return found


async def own_requests(couch: CouchClient, grid: str, account: str) -> tuple[int, int]:
    """The account's correction requests in the grid: (how many, how many open), read at
    once. The next one is numbered by the first: two sent at once take the same id, which the
    store lets only one of them write, so the open ones never pass MAX_OPEN."""
    page = await couch.get(db_path(grid_db(grid), "_all_docs"), include_docs="true",
                           startkey=f'"correction_request:{account}-"',
                           endkey=f'"correction_request:{account}-\ufff0"')
    rows = page.get("rows", [])
    return len(rows), sum(1 for row in rows if (row.get("doc") or {}).get("status") == "open")


async def corrections(request: web.Request) -> web.Response:
    """"Something is wrong": a correction request to the grid worker, for the resident's own
    household and its present members, each change a field a resident may correct with a
    value that the record's own checks would take."""
    user = require_resident(request)
    body = await read_object(request)
    problems = unknown_fields(body, frozenset({"household", "changes", "note"}))
    if problems:
        raise refuse(problems)
    own = await homes(request, user.name)
    household = pick_home(body, own)
    grid = own[household]
    couch = request.app[COUCH]
    records = await members(couch, grid, household)
    problems = resident_queue.change_problems(body.get("changes"), records)
    note = body.get("note")
    if note is not None:
        problem = text_problem(note, "/note", ("说明", "Explanation"), max_chars=NOTE_CHARS,
                               paragraphs=True)
        problems += [problem] if problem else []
    if problems:
        raise refuse(problems)
    problems = proposed_problems(request, records, body["changes"])
    if problems:
        raise refuse(problems)
    sent, still_open = await own_requests(couch, grid, user.name)
    if still_open >= MAX_OPEN:
        raise errors.CouchError(429, "too_many_requests", bilingual(
            f"您已有 {MAX_OPEN} 份更正申请待处理，请等网格员答复后再提交",
            f"You have {MAX_OPEN} correction requests waiting; wait for the grid worker's "
            "answer first"))
    doc = resident_queue.correction_request(
        f"correction_request:{user.name}-{sent + 1:04d}", user.name, household, grid,
        body["changes"], note)
    problem = resident_write_problem(doc, None, user.name, own, frozenset())
    if problem is not None:
        raise refuse([problem])
    written = await request.app[RESIDENTS].write(grid, [doc], writer=User(
        name=user.name, role="resident"))
    if not written or not written[0].get("ok"):
        raise errors.CouchError(409, "conflict", bilingual("提交失败，请重试",
                                                           "Not sent; try again"))
    audit.info("resident %s asked correction %s of %s", user.name, doc["_id"], household)
    return json_response({"ok": True, "id": doc["_id"], "status": "open"}, status=201)


def proposed_problems(request: web.Request, records: Mapping[str, Mapping[str, Any]],
                      changes: list[Mapping[str, Any]]) -> list[Problem]:
    """Each proposed value placed in its record must pass the record's schema: a correction
    the worker could never accept is refused at once, naming the field."""
    schemas = request.app[SCHEMAS]
    found: list[Problem] = []
    for change in changes:
        record = records[change["record"]]
        schema = schemas.schemas.get((record.get("type"), record.get("schema_version"))) or {}
        applied = resident_queue.apply_change(record, change["field"], change["proposed"],
                                              schema)
        wrong = [p for p in schemas.problems(applied) if p not in schemas.problems(record)]
        if wrong:
            found.append(Problem("/proposed", "proposed", f"“应改为”不符合要求：{wrong[0]}",
                                 f"Proposed value: not acceptable: {wrong[0]}"))
    return found


async def id_number(request: web.Request) -> web.Response:
    """The full ID number of the person themself, after the password is typed again; counted
    as a login try (so guessed passwords lock as a login would) and logged. The person is the
    member of their household bearing the name they signed up with AND whose phone on record
    is the one they verified (`signup.is_the_person`): a name alone is what any housemate, or
    anyone let in at the door, could have typed."""
    user = require_resident(request)
    body = await read_object(request)
    problems = unknown_fields(body, frozenset({"password"}))
    if not isinstance(body.get("password"), str):
        problems.append(Problem("/password", "password", "“密码”必须填写", "Password is required"))
    if problems:
        raise refuse(problems)
    await request.app[AUTH].check_password(user.name, body["password"], client_address(request))
    own = await homes(request, user.name)
    if not own:
        raise not_active()
    couch = request.app[COUCH]
    signed: dict[str, Any] = {}
    for grid in sorted(set(own.values())):
        try:
            signed = await couch.get(db_path(grid_db(grid), f"signup:{user.name}"))
            break
        except NotFound:
            continue
    for household, grid in sorted(own.items()):
        found = await members(couch, grid, household)
        head = found.get(household, {})
        for doc in found.values():
            if doc.get("type") == "person" and signup.is_the_person(
                    doc, head, signed.get("name"), signed.get("phone")):
                audit.info("resident %s saw the full ID number of %s", user.name, doc["_id"])
                return json_response({"person": doc["_id"], "name": doc.get("name"),
                                      "id_number": doc.get("id_number")}, headers=NO_STORE)
    raise errors.CouchError(404, "not_found", bilingual(
        "您的住户中没有与您注册姓名和手机号一致的成员，请联系网格员核实登记",
        "No member of your household bears the name and phone you signed up with; ask your "
        "grid worker to check the record"))


async def door_links_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store's and the directory's contexts (cleanup contexts run in order); the
    links are written through a `Residents` of their own, so this needs nothing made later."""
    residents = Residents(app[COUCH], app[DIRECTORY], app[SCHEMAS], app[CONFIG], app[RECEIPTS])
    if RESIDENT_INDEX in app:  # a link written is in the residents' sync index at once
        residents.on_written = app[RESIDENT_INDEX].written
    # Every grid once after a start, unless the passes at start are off (many short-lived
    # servers on one store: the test suite).
    grids = sorted(app[DIRECTORY].grids) if app[CONFIG].grid_passes_at_start else []
    links = DoorLinks(residents, grids)
    app[DOOR_LINKS] = links
    resolver = app[RESOLVER]
    before = resolver.on_written

    def written(grid: str) -> None:
        if before is not None:
            before(grid)
        links.notice(grid)

    resolver.on_written = written
    supervisor = app[SUPERVISOR]
    task = supervisor.start("door_links", links.run, probe=links.lag)
    yield
    await supervisor.stop([task])


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(door_links_ctx)
    app.router.add_post(PREFIX + "/corrections", corrections)
    app.router.add_post(PREFIX + "/id-number", id_number)
