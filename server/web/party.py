"""The party routes (党员双报到): a resident declares their branch, chooses to show their
identity and reports at their grid branch; the branch's secretary confirms; secretaries and
supervisors read a branch's view; supervisors write letters to a member's workplace (函告抄告),
which only they and the member's branch secretary read. Thin controllers: the rules are
server/domain/party.py, the store's side server/sync/party.py. Every staff route refuses a
resident before it looks anything up, so the refusal is the same whatever it names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server import errors
from server.domain import party as rules
from server.domain.scope import User
from server.domain.text import shown_name, unknown_fields
from server.errors import json_response
from server.sync.notices import refused
from server.sync.party import Party
from server.sync.residents import utc_now
from server.web.guard import require_user
from server.web.keys import COUCH, DIRECTORY, PARTY, SCHEMAS, VOLUNTEERING
from server.web.parsing import read_object
from server.web.resident_sync import index_of
from server.web.residents import require_resident
from server.web.volunteering import allocator_of

PREFIX = "/api/party"
MEMBER_SHOWN = ("account", "branch", "status", "declared_at", "decided_at", "reason", "public",
                "reported_at", "reported_grid")
STAFF = ("secretary", "supervisor", "admin")
LETTER_SHOWN = ("_id", "member", "branch", "workplace", "conduct", "written_at", "created_by")


def member_shown(doc: dict[str, Any], party: Party) -> dict[str, Any]:
    found = {k: doc[k] for k in MEMBER_SHOWN if k in doc}
    if "branch" in doc:
        found["branch_name"] = rules.branch_name(str(doc["branch"]), party.directory)
    return found


def require_role(request: web.Request, roles: tuple[str, ...], what: tuple[str, str]) -> User:
    """The logged-in user of one of `roles`; anyone else is refused with what those do."""
    user = require_user(request)
    if user.role not in roles or user.disabled:
        raise errors.forbidden(f"只有{what[0]}", f"Only {what[1]}.")
    return user


def no_query(request: web.Request, allowed: frozenset[str] = frozenset()) -> None:
    extra = sorted(k for k in request.query if k not in allowed)
    if extra:
        raise refused([rules.problem(shown_name(extra[0]), "query", "：不接受这个查询参数",
                                     "is not a query parameter of this route")])


async def branches(request: web.Request) -> web.Response:
    """The branches a member may declare (data of the directory): for residents and staff
    of the party routes (a grid worker has no use for it)."""
    require_role(request, ("resident", *STAFF), ("居民与支部书记、工作人员可以查看支部列表",
                                                 "residents, secretaries and supervisors list "
                                                 "branches"))
    no_query(request)
    listed = sorted(request.app[DIRECTORY].branches.values(), key=lambda b: b.code)
    return json_response({"branches": [{"code": b.code, "name": b.name, "kind": b.kind}
                                       for b in listed]})


async def mine(request: web.Request) -> web.Response:
    """A resident's own membership (or none), and the grid branches of where they live."""
    user = require_resident(request, ("申报党员身份", "declares party membership"))
    no_query(request)
    party, index = request.app[PARTY], await index_of(request)
    held = await party.membership(user.name)
    return json_response({
        "member": member_shown(held, party) if held else None,
        "grid_branches": [{"code": rules.grid_branch(g),
                           "name": rules.branch_name(rules.grid_branch(g), party.directory)}
                          for g in party.home_grids(user.name, index)],
        "shows_identity": rules.shows_identity(held)}, headers={"Cache-Control": "no-store"})


async def declare(request: web.Request) -> web.Response:
    """`{branch}`: 201 when stored now, 200 `repeated` for the same declaration again."""
    user = require_resident(request, ("申报党员身份", "declares party membership"))
    body = await read_object(request)
    party = request.app[PARTY]
    doc, created = await party.declare(user.name, await index_of(request), body, utc_now())
    return json_response({"ok": True, "repeated": not created,
                          "member": member_shown(doc, party)}, status=201 if created else 200)


async def public(request: web.Request) -> web.Response:
    """`{public: true|false}`: the confirmed member's choice to show their identity."""
    user = require_resident(request, ("设置党员身份展示", "shows party identity"))
    party = request.app[PARTY]
    doc = await party.set_public(user.name, await read_object(request))
    return json_response({"ok": True, "public": rules.shows_identity(doc),
                          "member": member_shown(doc, party) if doc else None})


async def report(request: web.Request) -> web.Response:
    """`{}`: a confirmed member reports at the grid branch of where they live, once."""
    user = require_resident(request, ("到社区报到", "reports to the grid branch"))
    body = await read_object(request, allow_empty=True)
    if body:
        raise refused(unknown_fields(body, frozenset()))
    party = request.app[PARTY]
    doc, created = await party.report(user.name, await index_of(request), utc_now())
    return json_response({"ok": True, "repeated": not created,
                          "member": member_shown(doc, party)}, status=201 if created else 200)


SECRETARIES = ("支部书记、社区或街道工作人员可以查看支部",
               "branch secretaries and supervisors see a branch")


async def view(request: web.Request) -> web.Response:
    """A branch's view: members, hours by member and task, projects this year, not reported."""
    user = require_role(request, STAFF, SECRETARIES)
    no_query(request)
    volunteering = request.app[VOLUNTEERING]
    found = await request.app[PARTY].view(
        user, request.match_info["branch"], await index_of(request), await allocator_of(request),
        await volunteering.tasks(), utc_now())
    return json_response(found, headers={"Cache-Control": "no-store"})


async def decide(request: web.Request) -> web.Response:
    """`{member, confirm, reason?}`: the declared branch's secretary confirms or rejects."""
    user = require_role(request, ("secretary", "admin"),
                        ("支部书记可以确认党员身份", "branch secretaries confirm members"))
    party = request.app[PARTY]
    doc, created = await party.decide(user, await read_object(request), utc_now())
    return json_response({"ok": True, "repeated": not created,
                          "member": member_shown(doc, party)}, status=201 if created else 200)


async def write_letter(request: web.Request) -> web.Response:
    """`{member, workplace, conduct, key}`: a supervisor's letter (函告抄告), append-only."""
    user = require_role(request, ("supervisor", "admin"),
                        ("社区或街道工作人员可以函告", "supervisors write letters"))
    doc, created = await request.app[PARTY].write_letter(
        user, await read_object(request), await index_of(request), utc_now())
    return json_response({"ok": True, "repeated": not created,
                          "letter": {k: doc[k] for k in LETTER_SHOWN if k in doc}},
                         status=201 if created else 200, headers={"Cache-Control": "no-store"})


async def read_letters(request: web.Request) -> web.Response:
    """`?member=`: a member's letters, to supervisors of their home and their branch secretary."""
    user = require_role(request, STAFF, ("支部书记、社区或街道工作人员可以查看函告",
                                         "secretaries and supervisors read letters"))
    no_query(request, frozenset({"member"}))
    found = await request.app[PARTY].letters(user, request.query.get("member"),
                                             await index_of(request))
    return json_response({"letters": [{k: d[k] for k in LETTER_SHOWN if k in d}
                                      for d in found]}, headers={"Cache-Control": "no-store"})


async def party_ctx(app: web.Application) -> AsyncIterator[None]:
    app[PARTY] = Party(app[COUCH], app[DIRECTORY], app[SCHEMAS])
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(party_ctx)
    for method, path, handler in (
            ("GET", PREFIX + "/branches", branches), ("GET", PREFIX + "/me", mine),
            ("POST", PREFIX + "/declare", declare), ("POST", PREFIX + "/public", public),
            ("POST", PREFIX + "/report", report),
            ("GET", PREFIX + "/branches/{branch:[^/]+}", view),
            ("POST", PREFIX + "/decide", decide),
            ("POST", PREFIX + "/letters", write_letter),
            ("GET", PREFIX + "/letters", read_letters)):
        app.router.add_route(method, path, handler)
