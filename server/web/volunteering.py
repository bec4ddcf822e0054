"""The volunteering routes (志愿服务): a supervisor publishes a task and follows its places; a
resident claims and cancels (the PWA queues both offline and sends them with the phone's own
claim id, so a retry is the same claim). Thin controllers: the rules are
server/domain/volunteering.py and allocation.py, the store's side server/sync/volunteering.py
and allocation.py. What a resident's phone shows comes back through the resident sync: the
task, and the `allocation` document the server writes for them."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server import errors
from server.domain import volunteering as rules
from server.domain.allocation import LABELS, Outcome, counts
from server.domain.masking import mask_phone
from server.domain.scope import RESIDENTS_DB, User
from server.domain.text import unknown_fields
from server.errors import json_response
from server.sync.allocation import Allocator, event_id
from server.sync.notices import refused
from server.sync.party import Party
from server.sync.residents import utc_now
from server.sync.volunteering import KIND, Ledgers, Volunteering, no_such_task
from server.web.guard import require_user
from server.web.keys import (
    ALLOCATOR,
    COUCH,
    DIRECTORY,
    LEASES,
    LEDGERS,
    RESIDENT_INDEX,
    RESIDENT_OBSERVERS,
    SCHEMAS,
    SUPERVISOR,
    VOLUNTEER_LIMITS,
    VOLUNTEERING,
)
from server.web.limits import ActLimits
from server.web.parsing import read_object
from server.web.resident_sync import index_of
from server.web.residents import require_resident

PREFIX = "/api/volunteer/tasks"
SHOWN = ("_id", "title", "description", "place", "community", "starts_at", "ends_at",
         "deadline", "places", "open_to", "branch", "needs_approval", "status",
         "published_at", "created_by")
READY_SECONDS = 10.0  # a claim waits this long for the first allocation after a start


def require_publisher(request: web.Request) -> User:
    user = require_user(request)
    if user.role not in rules.PUBLISHER_ROLES or user.disabled:
        raise errors.forbidden("只有社区、街道工作人员或市级管理员可以发布志愿任务",
                               "Only community or street supervisors and the city admin "
                               "publish volunteer tasks.")
    return user


def shown(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in SHOWN if k in doc}


async def publish(request: web.Request) -> web.Response:
    user = require_publisher(request)
    draft = await read_object(request)
    doc = await request.app[VOLUNTEERING].publish(user, draft, utc_now())
    return json_response({"ok": True, "task": shown(doc)}, status=201)


async def allocator_of(request: web.Request) -> Allocator:
    allocator = request.app[ALLOCATOR]
    if not await allocator.wait_ready(READY_SECONDS):
        raise errors.store_unavailable()
    return allocator


async def listing(request: web.Request) -> web.Response:
    """The tasks of the supervisor's communities (an admin's: all), newest first, with how
    many claimants stand in each status."""
    user = require_publisher(request)
    store, directory = request.app[VOLUNTEERING], request.app[DIRECTORY]
    allocator = await allocator_of(request)
    found = [{**shown(doc), "counts": counts(allocator.outcomes.get(str(doc["_id"]), {}))}
             for doc in await store.tasks()
             if rules.may_publish(user, str(doc.get("community")), directory)]
    found.sort(key=lambda t: (str(t.get("published_at", "")), t["_id"]), reverse=True)
    return json_response({"tasks": found})


async def allocation(request: web.Request) -> web.Response:
    """One task's places as allocated: each claimant's status, place holders first, then the
    waiting line in order (accounts, not names: the organiser reaches volunteers through the
    community's own records)."""
    user = require_publisher(request)
    store = request.app[VOLUNTEERING]
    doc = await store.task(request.match_info["task"])
    if doc is None or not rules.may_publish(user, str(doc.get("community")),
                                            request.app[DIRECTORY]):
        raise no_such_task()
    allocator = await allocator_of(request)
    await allocator.settle()
    outcomes = allocator.outcomes.get(str(doc["_id"]), {})
    order = {"confirmed": 0, "awaiting_approval": 0, "waiting": 1}
    listed = sorted(outcomes.items(), key=lambda item: (order.get(item[1].status, 2),
                                                        item[1].line, item[1].claim))
    phones = {account: login for login, account in request.app[DIRECTORY].logins.items()
              if account in outcomes}
    names = request.app[VOLUNTEERING].ledgers.names
    return json_response({"task": shown(doc), "counts": counts(outcomes), "claimants": [
        {"claimant": who, "label": claimant_label(phones.get(who), names.get(who)),
         "status": o.status, "promoted": o.promoted, "line": o.line}
        for who, o in listed]})


def claimant_label(phone: str | None, chosen: str | None) -> str:
    """How the organiser's screen names a claimant: the name they chose to be shown by, else
    their phone masked (157****6600, as the community's records show it); never the account
    (an id), so one with neither is 未登记手机的居民."""
    if chosen:
        return chosen
    return mask_phone(phone) if phone else "未登记手机的居民"


async def resident_act(request: web.Request, act: str) -> web.Response:
    """A resident's claim or cancellation, `{claim_id}`: stored once, allocated in the order
    the server received it; the answer says where they stand now (also synced to their
    phone as their `allocation` document)."""
    user = require_resident(request, ("报名志愿任务", "claims volunteer tasks"))
    body = await read_object(request)
    problems = rules.claim_body_problems(body)
    if problems:
        raise refused(problems)
    task_id = request.match_info["task"]
    if not task_id.startswith(f"{KIND}:"):
        raise no_such_task()
    index = await index_of(request)
    allocator = await allocator_of(request)
    limits = request.app[VOLUNTEER_LIMITS]
    wait = limits.take(user.name, task_id)
    if wait and await allocator.stored_claim(
            event_id(task_id, user.name, act, body["claim_id"])) is None:
        raise errors.too_many_requests(wait)  # a retry of a stored act still answers
    created = False
    try:
        outcome, created = await request.app[VOLUNTEERING].act(
            allocator, index, user.name, task_id, act, body["claim_id"], utc_now())
    finally:
        if not wait and not created:  # refused, or a retry: no new act was stored
            limits.give_back(user.name, task_id)
    return placed(task_id, outcome, created)


def placed(task_id: str, outcome: Outcome | None, created: bool) -> web.Response:
    """Where a claimant stands after an act: 201 when this request stored it."""
    status = outcome.status if outcome is not None else "pending"
    zh, en = LABELS[status]
    return json_response({"ok": True, "repeated": not created, "task": task_id,
                          "status": status, "promoted": bool(outcome and outcome.promoted),
                          "line": outcome.line if outcome is not None else 0,
                          "message": errors.bilingual(zh, en)},
                         status=201 if created else 200)


async def claim(request: web.Request) -> web.Response:
    return await resident_act(request, "claim")


async def cancel(request: web.Request) -> web.Response:
    return await resident_act(request, "cancel")


CHECK_FIELDS = frozenset({"direction", "code"})
HOURS_FIELDS = frozenset({"volunteer", "minutes"})
CORRECTION_FIELDS = frozenset({"entry", "amount", "reason", "key"})


def fields_problems(body: dict[str, Any], allowed: frozenset[str],
                    texts: tuple[str, ...]) -> None:
    """A 400 naming by label a field not asked for, or one of `texts` that is no short text."""
    problems = unknown_fields(body, allowed)
    for name in texts:
        if not isinstance(body.get(name), str) or not 0 < len(body[name]) <= 400:
            problems.append(rules.problem(name, "text_type", "应为文字", "must be text"))
    if problems:
        raise refused(problems)


async def checkin_key(request: web.Request) -> web.Response:
    """The organiser's phone makes the check-in codes offline from this (rule 4), and shows
    the current one; a volunteer's phone never has it."""
    user = require_publisher(request)
    store = request.app[VOLUNTEERING]
    doc = await store.organised(user, request.match_info["task"])
    secret = await store.secret(str(doc["_id"]))
    now = utc_now()
    return json_response({"task": doc["_id"], "secret": secret.hex(),
                          "window_seconds": rules.WINDOW_SECONDS, "digits": rules.CODE_DIGITS,
                          "code": rules.checkin_code(secret, str(doc["_id"]),
                                                     rules.window_of(now))},
                         headers={"Cache-Control": "no-store"})


async def check(request: web.Request) -> web.Response:
    """A confirmed volunteer checks in or out with the code the organiser shows
    (`{direction: in|out, code}`), queued offline by the phone; once each."""
    user = require_resident(request, ("签到", "checks in"))
    body = await read_object(request)
    fields_problems(body, CHECK_FIELDS, ("code",))
    if body.get("direction") not in ("in", "out"):
        raise refused([rules.problem("direction", "direction", "应为签到或签退",
                                     "must be in or out")])
    index = await index_of(request)
    allocator = await allocator_of(request)
    record, created = await request.app[VOLUNTEERING].check(
        allocator, index, user.name, request.match_info["task"], body["direction"],
        body["code"], utc_now())
    return json_response({"ok": True, "repeated": not created, "checkin": {
        k: record[k] for k in ("_id", "task", "direction", "at")}},
        status=201 if created else 200)


async def hours(request: web.Request) -> web.Response:
    """The organiser confirms a volunteer's hours (`{volunteer, minutes?}`): both ledgers."""
    user = require_publisher(request)
    body = await read_object(request)
    fields_problems(body, HOURS_FIELDS, ("volunteer",))
    allocator = await allocator_of(request)
    entries, created = await request.app[VOLUNTEERING].confirm_hours(
        allocator, user, request.match_info["task"], body["volunteer"], body.get("minutes"),
        utc_now())
    return json_response({"ok": True, "repeated": not created, "entries": [
        {k: e.get(k) for k in ("_id", "kind", "account", "amount", "reason", "source")}
        for e in entries]}, status=201 if created else 200)


async def correction(request: web.Request) -> web.Response:
    """A correction of a ledger entry, as a new entry (`{entry, amount, reason, key}`; the
    key is the organiser's phone's for it, so a retry is the same correction)."""
    user = require_publisher(request)
    body = await read_object(request)
    fields_problems(body, CORRECTION_FIELDS, ())
    fix, created = await request.app[VOLUNTEERING].correct(
        user, body.get("entry"), body.get("amount"), body.get("reason"), body.get("key"),
        utc_now())
    return json_response({"ok": True, "repeated": not created, "entry": fix},
                         status=201 if created else 200)


async def ledger(request: web.Request) -> web.Response:
    """A resident's own ledgers: each entry, and the balances summed from them."""
    user = require_resident(request, ("查看志愿时长", "has volunteer hours"))
    entries = await request.app[VOLUNTEERING].entries(user.name)
    totals = rules.balances(rules.Entry(user.name, str(e["kind"]), int(e["amount"]))
                            for e in entries)
    return json_response({"hours_minutes": totals.get((user.name, "hours"), 0),
                          "points": totals.get((user.name, "points"), 0),
                          "entries": [{k: e.get(k) for k in (
                              "_id", "kind", "amount", "reason", "source", "corrects",
                              "recorded_at")} for e in entries]})


async def register(request: web.Request) -> web.Response:
    """A resident registers as a volunteer of their community (`{}`), once."""
    user = require_resident(request, ("注册志愿者", "registers as a volunteer"))
    fields_problems(await read_object(request, allow_empty=True), frozenset(), ())
    doc, created = await request.app[VOLUNTEERING].register(user.name,
                                                          await index_of(request), utc_now())
    return json_response({"ok": True, "repeated": not created, "volunteer": {
        k: doc[k] for k in ("_id", "community", "registered_at")}},
        status=201 if created else 200)


def period_of(request: web.Request) -> str:
    """The `period` asked (`yyyy` or `yyyy-mm`; none: this year in China), checked."""
    extra = set(request.query) - {"period", "kind"}
    if extra or any(len(request.query.getall(k)) > 1 for k in request.query):
        raise errors.bad_request("只接受“期间”和“类别”两个参数，各一次",
                                 "Only period and kind are asked, once each.")
    period = request.query.get("period", utc_now().astimezone(rules.CHINA).strftime("%Y"))
    bad = rules.period_problem(period)
    if bad is not None:
        raise refused([bad])
    return period


async def ranking(request: web.Request) -> web.Response:
    """A resident's community's ranking (rule 8) of a period, by hours or points: the names
    of those who chose to be named, every other 匿名志愿者, and the resident's own place."""
    user = require_resident(request, ("查看志愿排行", "sees the volunteers' ranking"))
    period = period_of(request)
    kind = request.query.get("kind", "hours")
    if kind not in rules.KINDS:
        raise refused([rules.problem("kind", "kind", "应为时长或积分", "must be hours or points")])
    store = request.app[VOLUNTEERING]
    communities = sorted(store.claimant(user.name, await index_of(request)).communities)
    community = communities[0] if communities else ""  # none yet: an empty ranking
    ledgers = store.ledgers
    board = ledgers.sums.board(kind, community, period, ledgers.names, user.name)
    zh, en = rules.ANONYMOUS
    return json_response({
        "community": community or None,
        "community_name": request.app[DIRECTORY].area_name("community", community),
        "period": period, "kind": kind, "anonymous": errors.bilingual(zh, en),
        "my_name": ledgers.names.get(user.name), **board})


async def choice(request: web.Request) -> web.Response:
    """A resident chooses to appear by a name of their choosing in the rankings, or not
    (`{show: true, name}` or `{show: false}`); the last choice stands."""
    user = require_resident(request, ("选择是否公开显示", "chooses how they are shown"))
    body = await read_object(request)
    problems = rules.ranking_choice_problems(body)
    if problems:
        raise refused(problems)
    doc = await request.app[VOLUNTEERING].choose(user.name, body["show"], body.get("name"),
                                                 utc_now())
    return json_response({"ok": True, "show": doc["show"], "name": doc.get("name")})


async def summary(request: web.Request) -> web.Response:
    """A supervisor's summary of their scope (rule 8): each community's volunteers, minutes
    and points over the period, each grid's with small grids withheld."""
    user = require_publisher(request)
    period = period_of(request)
    directory = request.app[DIRECTORY]
    index = await index_of(request)
    grids = directory.grids

    def grid_of(account: str, community: str) -> str:
        return next((grid for grid in sorted(index.ids.homes(account).values())
                     if grid in grids and grids[grid].community == community), "")
    found = request.app[VOLUNTEERING].ledgers.sums.summary(
        rules.scope_communities(user, directory), period, grid_of)
    for row in found["communities"]:
        row["community_name"] = directory.area_name("community", row["community"])
    for row in found["grids"]:
        row["grid_name"] = directory.area_name("grid", row["grid"]) if row["grid"] else ""
    return json_response({"period": period, **found})


DECIDE_FIELDS = frozenset({"claimant", "approve", "claim_id"})


async def decide(request: web.Request) -> web.Response:
    """The organiser approves or rejects a claimant (`{claimant, approve, claim_id}`; the
    claim id is the organiser's phone's for this decision, so a retry is the same)."""
    user = require_publisher(request)
    body = await read_object(request)
    fields_problems(body, DECIDE_FIELDS, ("claimant",))
    problems = rules.claim_body_problems({"claim_id": body.get("claim_id")})
    if not isinstance(body.get("approve"), bool):
        problems.append(rules.problem("approve", "boolean", "应为是或否", "must be yes or no"))
    if problems:
        raise refused(problems)
    allocator = await allocator_of(request)
    outcome, created = await request.app[VOLUNTEERING].decide(
        allocator, user, request.match_info["task"], body["claimant"], body["approve"],
        body["claim_id"], utc_now())
    return json_response({"ok": True, "repeated": not created, "claimant": body["claimant"],
                          "status": outcome.status if outcome is not None else "pending",
                          "line": outcome.line if outcome is not None else 0},
                         status=201 if created else 200)


async def volunteering_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store, the directory and the residents' index are open."""
    store = Volunteering(app[COUCH], app[DIRECTORY], app[SCHEMAS], ledgers=app[LEDGERS],
                         party=Party(app[COUCH], app[DIRECTORY], app[SCHEMAS]))
    app[VOLUNTEERING] = store
    app[VOLUNTEER_LIMITS] = ActLimits()
    app[ALLOCATOR] = allocator = Allocator(
        app[COUCH], {KIND: store.terms},
        written=functools.partial(app[RESIDENT_INDEX].written, RESIDENTS_DB))
    # Each process reads every claim once (its answers need them); the sweep of claims other
    # processes stored, and the release of places of residents who moved, run in one process
    # at a time, under a lease (docs/deployment.md).
    supervisor, leases = app[SUPERVISOR], app[LEASES]
    task = supervisor.start("allocation", allocator.prepare, probe=allocator.lag, forever=False)
    sweep = supervisor.start("allocation-sweep", allocator.follow, lease=leases)
    releasing = supervisor.start(
        "volunteer-release", functools.partial(store.releasing, allocator, app[RESIDENT_INDEX]),
        lease=leases)
    yield
    await supervisor.stop([releasing, sweep, task])


def setup(app: web.Application) -> None:
    """The ledgers' sums are told the residents database by the index from its first pass,
    so they exist before any context runs."""
    app[LEDGERS] = ledgers = Ledgers()
    app[RESIDENT_OBSERVERS] = (*app.get(RESIDENT_OBSERVERS, ()), ledgers.take)
    app.cleanup_ctx.append(volunteering_ctx)
    one = PREFIX + "/{task:[^/]+}"
    for method, path, handler in (
            ("GET", PREFIX, listing), ("POST", PREFIX, publish),
            ("GET", one + "/allocation", allocation),
            ("POST", one + "/claim", claim), ("POST", one + "/cancel", cancel),
            ("GET", one + "/checkin-key", checkin_key), ("POST", one + "/check", check),
            ("POST", one + "/hours", hours), ("POST", one + "/decide", decide),
            ("POST", "/api/volunteer/ledger/corrections", correction),
            ("GET", "/api/volunteer/ledger", ledger),
            ("POST", "/api/volunteer/register", register),
            ("GET", "/api/volunteer/ranking", ranking),
            ("POST", "/api/volunteer/ranking/choice", choice),
            ("GET", "/api/volunteer/summary", summary)):
        app.router.add_route(method, path, handler)
