"""The neighbourhood centre's routes (邻里中心): supervisors register providers; a provider's
staff open slots, see their day list and confirm or decline bookings; residents book a slot
or sign up for an activity (the PWA queues both offline with the phone's own claim id, so a
retry is the same act) and cancel. Thin controllers: the rules are server/domain/centre.py
and allocation.py, the store's side server/sync/centre.py and allocation.py."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

from aiohttp import web

from server import errors
from server.domain import centre as rules
from server.domain.scope import User
from server.domain.text import unknown_fields
from server.errors import json_response
from server.sync.allocation import event_id
from server.sync.centre import Centre, no_such, shown_provider, shown_slot
from server.sync.notices import refused
from server.sync.residents import utc_now
from server.web.guard import require_role
from server.web.keys import (
    ALLOCATOR,
    CENTRE,
    CENTRE_LIMITS,
    COUCH,
    DIRECTORY,
    SCHEMAS,
    VOLUNTEERING,
)
from server.web.limits import ActLimits
from server.web.parsing import read_object
from server.web.resident_sync import index_of
from server.web.residents import require_resident
from server.web.volunteering import allocator_of, placed

PREFIX = "/api/centre"
NO_STORE = {"Cache-Control": "no-store"}
WHAT = ("使用邻里中心", "uses the neighbourhood centre")


def require_manager(request: web.Request) -> User:
    return require_role(request, ("supervisor", "admin"),
                        "只有社区、街道工作人员或市级管理员可以登记服务方",
                        "Only supervisors and the city admin register providers.")


def require_provider(request: web.Request) -> User:
    return require_role(request, ("provider",), "只有邻里中心服务方的工作人员可以管理预约",
                        "Only a centre provider's staff manage bookings.")


def no_query(request: web.Request, allowed: frozenset[str] = frozenset()) -> None:
    if set(request.query) - allowed or any(len(request.query.getall(k)) > 1
                                           for k in request.query):
        raise errors.bad_request("不接受这些查询参数", "These query parameters are not asked.")


async def providers(request: web.Request) -> web.Response:
    """A resident's communities' providers; a supervisor's scope's; a provider's own."""
    user = require_role(request, ("resident", "provider", "supervisor", "admin"),
                        "无权查看邻里中心", "Not allowed to see the centre.")
    no_query(request)
    store = request.app[CENTRE]
    if user.role == "resident":
        communities = store.communities(user.name, await index_of(request))
        found = [p for p in store.providers.values() if p["community"] in communities]
    else:
        found = store.scope(user)
    return json_response({"providers": [shown_provider(p) for p in sorted(
        found, key=lambda p: (p["kind"], p["code"]))]}, headers=NO_STORE)


async def register(request: web.Request) -> web.Response:
    user = require_manager(request)
    doc = await request.app[CENTRE].register(user, await read_object(request), utc_now())
    return json_response({"ok": True, "provider": shown_provider(doc)}, status=201)


async def slots(request: web.Request) -> web.Response:
    """A provider's slots to come, as a resident sees them (counts, their own standing)."""
    user = require_resident(request, WHAT)
    no_query(request)
    store = request.app[CENTRE]
    provider = store.providers.get(request.match_info["provider"])
    if provider is None or provider["community"] not in store.communities(
            user.name, await index_of(request)):
        raise no_such("provider")
    allocator = await allocator_of(request)
    await allocator.settle()
    return json_response({"provider": shown_provider(provider), "slots": store.slots_of(
        allocator, provider["code"], user.name, utc_now())}, headers=NO_STORE)


async def add_slot(request: web.Request) -> web.Response:
    user = require_provider(request)
    store = request.app[CENTRE]
    doc = await store.add_slot(user, await read_object(request), utc_now())
    return json_response({"ok": True, "slot": shown_slot(doc, store.own_provider(user))},
                         status=201)


async def resident_act(request: web.Request, act: str, kind: str) -> web.Response:
    """A booking (`{claim_id, matter?}`) or a sign-up (`{claim_id}`), or its cancellation:
    stored once, allocated in the order the server received it; the answer is where the
    resident stands (also synced to their phone as their `allocation` document)."""
    user = require_resident(request, WHAT)
    body = await read_object(request)
    subject = f"{kind}:{request.match_info['key']}"
    index = await index_of(request)
    allocator = await allocator_of(request)
    limits = request.app[CENTRE_LIMITS]
    wait = limits.take(user.name, subject)
    created = False
    try:
        if wait and not (isinstance(body.get("claim_id"), str) and rules.KEY.match(
                request.match_info["key"]) and await allocator.stored_claim(
                event_id(subject, user.name, act, body["claim_id"]))):
            raise errors.too_many_requests(wait)  # a retry of a stored act still answers
        outcome, created = await request.app[CENTRE].act(allocator, index, user.name, subject,
                                                         act, body, utc_now())
    finally:
        if not wait and not created:
            limits.give_back(user.name, subject)
    return placed(subject, outcome, created)


async def decide(request: web.Request) -> web.Response:
    """The provider confirms or declines a booking (`{booking, approve, claim_id}`; the claim
    id is the provider's phone's for this decision, so a retry is the same)."""
    user = require_provider(request)
    body = await read_object(request)
    problems = unknown_fields(body, frozenset({"booking", "approve", "claim_id"}))
    if not isinstance(body.get("approve"), bool):
        problems.append(rules.problem("approve", "boolean", "应为是或否", "must be yes or no"))
    if not isinstance(body.get("booking"), str) or not rules.KEY.match(body["booking"]):
        problems.append(rules.problem("booking", "booking", "应为预约编号",
                                      "must be a booking's key"))
    problems += [p for p in rules.book_problems({"claim_id": body.get("claim_id")}, "cancel")]
    if problems:
        raise refused(problems)
    allocator = await allocator_of(request)
    outcome, created = await request.app[CENTRE].decide(
        allocator, user, f"{rules.SLOT}:{request.match_info['key']}", body["booking"],
        body["approve"], body["claim_id"], utc_now())
    return json_response({"ok": True, "repeated": not created,
                          "status": outcome.status if outcome is not None else "pending"},
                         status=201 if created else 200)


async def day(request: web.Request) -> web.Response:
    """The provider's day list (`?date=YYYY-MM-DD`, Beijing; none: today)."""
    user = require_provider(request)
    no_query(request, frozenset({"date"}))
    date = request.query.get("date") or utc_now().astimezone(rules.CHINA).date().isoformat()
    bounds = rules.day_bounds(date)
    if bounds is None:
        raise refused([rules.problem("date", "date", "应为日期，例如 2026-12-31",
                                     "must be a date, e.g. 2026-12-31")])
    store = request.app[CENTRE]
    allocator = await allocator_of(request)
    provider = shown_provider(store.own_provider(user))
    return json_response({"date": date, "provider": provider,
                          "slots": await store.day(allocator, user, bounds)},
                         headers=NO_STORE)


async def activities(request: web.Request) -> web.Response:
    """A resident's communities' activities to come, with places taken and their standing."""
    user = require_resident(request, WHAT)
    no_query(request)
    store = request.app[CENTRE]
    allocator = await allocator_of(request)
    await allocator.settle()
    communities = store.communities(user.name, await index_of(request))
    return json_response({"activities": store.activities_of(allocator, communities,
                                                            user.name, utc_now())},
                         headers=NO_STORE)


async def publish(request: web.Request) -> web.Response:
    user = require_role(request, ("supervisor", "admin", "provider"),
                        "只有社区工作人员或服务方可以发布活动",
                        "Only supervisors and providers publish activities.")
    doc = await request.app[CENTRE].publish(user, await read_object(request), utc_now())
    return json_response({"ok": True, "activity": doc}, status=201)


async def mine(request: web.Request) -> web.Response:
    user = require_resident(request, WHAT)
    no_query(request)
    allocator = await allocator_of(request)
    return json_response(await request.app[CENTRE].mine(allocator, user.name),
                         headers=NO_STORE)


async def overview(request: web.Request) -> web.Response:
    """The supervisors' figures: counts per provider, never who booked or what about."""
    user = require_manager(request)
    no_query(request)
    allocator = await allocator_of(request)
    await allocator.settle()
    return json_response(request.app[CENTRE].overview(allocator, user), headers=NO_STORE)


async def centre_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the allocator (volunteering's context): slots and activities join its terms."""
    store = Centre(app[COUCH], app[DIRECTORY], app[SCHEMAS], app[VOLUNTEERING])
    await store.load()
    app[CENTRE] = store
    allocator = app[ALLOCATOR]
    allocator.terms = {**allocator.terms, rules.SLOT: store.terms,
                       rules.ACTIVITY: store.terms}
    yield


def setup(app: web.Application) -> None:
    app[CENTRE_LIMITS] = ActLimits()
    app.cleanup_ctx.append(centre_ctx)
    slot = PREFIX + "/slots/{key:[^/]+}"
    activity = PREFIX + "/activities/{key:[^/]+}"
    for method, path, handler in (
            ("GET", PREFIX + "/providers", providers), ("POST", PREFIX + "/providers", register),
            ("GET", PREFIX + "/providers/{provider:[^/]+}/slots", slots),
            ("POST", PREFIX + "/slots", add_slot),
            ("POST", slot + "/book", functools.partial(resident_act, act="claim",
                                                       kind=rules.SLOT)),
            ("POST", slot + "/cancel", functools.partial(resident_act, act="cancel",
                                                         kind=rules.SLOT)),
            ("POST", slot + "/decide", decide), ("GET", PREFIX + "/day", day),
            ("GET", PREFIX + "/activities", activities),
            ("POST", PREFIX + "/activities", publish),
            ("POST", activity + "/claim", functools.partial(resident_act, act="claim",
                                                            kind=rules.ACTIVITY)),
            ("POST", activity + "/cancel", functools.partial(resident_act, act="cancel",
                                                             kind=rules.ACTIVITY)),
            ("GET", PREFIX + "/mine", mine), ("GET", PREFIX + "/overview", overview)):
        app.router.add_route(method, path, handler)
