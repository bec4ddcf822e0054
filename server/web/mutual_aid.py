"""The mutual-aid routes (邻里互助): residents post listings of every kind and claim what is
limited (the PWA queues claims and orders offline with the phone's own claim id, so a retry is
the same claim); the poster hands over, both sides confirm a loan's return and rate; messages
go through the app; supervisors register suppliers and hide what was reported. Thin
controllers: the rules are server/domain/mutual_aid.py and allocation.py, the store's side
server/sync/mutual_aid.py and allocation.py. What a resident's phone holds comes back through
the resident sync: their own listings, their `allocation` documents, their deals."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterator

from aiohttp import web

from server import errors
from server.domain import mutual_aid as rules
from server.domain.allocation import HOLDS_PLACE
from server.domain.scope import User
from server.domain.text import unknown_fields
from server.errors import json_response
from server.sync.allocation import event_id
from server.sync.mutual_aid import MOST_PAGE, PAGE, Board, MutualAid, no_such_listing
from server.sync.notices import refused
from server.sync.residents import utc_now
from server.web.auth import FailureCounter
from server.web.guard import require_role
from server.web.keys import (
    ALLOCATOR,
    CONFIG,
    COUCH,
    DIRECTORY,
    MUTUAL_AID,
    MUTUAL_AID_BOARD,
    MUTUAL_AID_LIMITS,
    RESIDENT_OBSERVERS,
    SCHEMAS,
)
from server.web.limits import ActLimits
from server.web.parsing import read_object, whole_number
from server.web.resident_sync import index_of
from server.web.residents import require_resident
from server.web.volunteering import allocator_of, placed

PREFIX = "/api/mutual-aid"
HOUR, DAY = 3600.0, 24 * 3600.0
# Each message and each listing is a document kept (a listing with up to 3 photos): a
# conversation and a neighbourhood board, not a flood. MAX_OPEN bounds what is open at once,
# not a post-and-close loop.
MESSAGES_PER_HOUR = 60
POSTS_PER_DAY = 20
MESSAGE_LIMITS = web.AppKey("mutual_aid_message_limits", FailureCounter)
POST_LIMITS = web.AppKey("mutual_aid_post_limits", FailureCounter)
NO_STORE = {"Cache-Control": "no-store"}
LIST_QUERY = frozenset({"kind", "before", "limit"})
WHAT = ("使用邻里互助", "uses mutual aid")


def require_supervisor(request: web.Request) -> User:
    return require_role(request, ("supervisor", "admin"),
                        "只有社区、街道工作人员或市级管理员可以管理邻里互助",
                        "Only supervisors and the city admin manage mutual aid.")


def listing_page_query(request: web.Request) -> tuple[str | None, tuple[str, str] | None, int]:
    """`kind`, `before` (`<created_at>|<id>` of the last one shown) and `limit`, once each."""
    query = request.query
    if set(query) - LIST_QUERY or any(len(query.getall(k)) > 1 for k in query):
        raise errors.bad_request("只接受“类别”“之前”“条数”三个参数，各一次",
                                 "Only kind, before and limit are asked, once each.")
    kind = query.get("kind") or None
    if kind is not None and kind not in rules.KINDS:
        raise refused([rules.problem("kind", "kind", "应为拼车、二手置换、工具共享、流动图书或团购",
                                     "must be carpool, swap, tool, book or groupbuy")])
    before = None
    if "before" in query:
        at, _, listing = query["before"].partition("|")
        if not rules.LISTING_ID.match(listing) or len(at) > 40:
            raise refused([rules.problem("key", "before", "应为上一页最后一条的位置",
                                         "must be where the last page ended")])
        before = (at, listing)
    # ASCII digits only: str.isdigit takes "²", which int() then refuses (a 500)
    return kind, before, whole_number(query, "limit", "条数 limit", PAGE, MOST_PAGE)


async def listings(request: web.Request) -> web.Response:
    """The newest open listings of the resident's compounds and communities (rule 2)."""
    user = require_resident(request, WHAT)
    kind, before, limit = listing_page_query(request)
    store = request.app[MUTUAL_AID]
    index = await index_of(request)
    keys = rules.reader_keys(store.places(user.name, index))
    page = store.board.page(keys, user.name, kind, before, limit)
    shown = [rules.public_view(doc, user.name) for doc in page]
    more = f"{page[-1].get('created_at')}|{page[-1]['_id']}" if len(page) == limit else None
    return json_response({"listings": shown, "next": more}, headers=NO_STORE)


@contextlib.contextmanager
def counted(request: web.Request, limits: web.AppKey[FailureCounter],
            account: str) -> Iterator[None]:
    """One more act of this account, counted as it arrives (so acts sent at once cannot all
    pass), or a 429 saying when to retry; given back when refused (nothing was stored)."""
    counter = request.app[limits]
    wait = counter.retry_after(account)
    if wait:
        raise errors.too_many_requests(wait)
    counter.record(account)
    try:
        yield
    except BaseException:
        counter.forget_one(account)
        raise


async def post(request: web.Request) -> web.Response:
    user = require_resident(request, WHAT)
    with counted(request, POST_LIMITS, user.name):
        draft = await read_object(request)
        doc = await request.app[MUTUAL_AID].post(user.name, await index_of(request), draft,
                                                 utc_now())
    return json_response({"ok": True, "listing": rules.public_view(doc, user.name)}, status=201)


async def one(request: web.Request) -> web.Response:
    """One listing as the resident sees it, with how many places are taken and where they
    stand (each group-buy item's)."""
    user = require_resident(request, WHAT)
    store = request.app[MUTUAL_AID]
    doc = await store.seen(request.match_info["listing"], user.name, await index_of(request))
    allocator = await allocator_of(request)
    await allocator.settle()
    parts = []
    for subject in store.subjects(doc):
        outcomes = allocator.outcomes.get(subject, {})
        mine = outcomes.get(user.name)
        parts.append({"taken": sum(1 for o in outcomes.values() if o.status in HOLDS_PLACE),
                      "status": mine.status if mine else None, "line": mine.line if mine else 0})
    return json_response({"listing": rules.public_view(doc, user.name), "parts": parts},
                         headers=NO_STORE)


async def photo(request: web.Request) -> web.Response:
    user = require_resident(request, WHAT)
    store = request.app[MUTUAL_AID]
    doc = await store.seen(request.match_info["listing"], user.name, await index_of(request))
    data, content_type = await store.photo(doc, request.match_info["name"])
    return web.Response(body=data, content_type=content_type,
                        headers={**NO_STORE, "X-Content-Type-Options": "nosniff"})


async def resident_act(request: web.Request, act: str) -> web.Response:
    """A claim (a seat, a portion of an item, the one thing lent or given) or its
    cancellation, `{claim_id, item?, pickup?}`: stored once, allocated in the order the server
    received it; the answer is where the claimant stands (also synced to their phone)."""
    user = require_resident(request, WHAT)
    body = await read_object(request)
    listing_id = request.match_info["listing"]
    index = await index_of(request)
    allocator = await allocator_of(request)
    limits = request.app[MUTUAL_AID_LIMITS]
    wait = limits.take(user.name, listing_id)
    created = False
    try:
        if wait:
            doc = await request.app[MUTUAL_AID].listing(listing_id)
            item, claim_id = body.get("item", 0), body.get("claim_id")
            if doc is None or not isinstance(claim_id, str) or not rules.whole(
                    item, 0, rules.MAX_ITEMS) or await allocator.stored_claim(event_id(
                    rules.subject_of(doc, item), user.name, act, claim_id)) is None:
                raise errors.too_many_requests(wait)  # a retry of a stored act still answers
        subject, outcome, created = await request.app[MUTUAL_AID].act(
            allocator, index, user.name, listing_id, act, body, utc_now())
    finally:
        if not wait and not created:
            limits.give_back(user.name, listing_id)
    return placed(subject, outcome, created)  # the subject answers as `task`, as a task's


async def close(request: web.Request) -> web.Response:
    user = require_resident(request, WHAT)
    await read_object(request, allow_empty=True)
    doc = await request.app[MUTUAL_AID].close(user.name, request.match_info["listing"])
    return json_response({"ok": True, "listing": rules.public_view(doc, user.name)})


async def claimants(request: web.Request) -> web.Response:
    user = require_resident(request, WHAT)
    allocator = await allocator_of(request)
    found = await request.app[MUTUAL_AID].claimants(allocator, user,
                                                    request.match_info["listing"])
    return json_response(found, headers=NO_STORE)


async def decide(request: web.Request) -> web.Response:
    """The poster accepts or refuses (`{with, approve, claim_id}`) the one holding the place."""
    user = require_resident(request, WHAT)
    body = await read_object(request)
    problems = unknown_fields(body, frozenset({"with", "approve", "claim_id"}))
    if problems:
        raise refused(problems)
    allocator = await allocator_of(request)
    outcome = await request.app[MUTUAL_AID].decide(allocator, user, request.match_info[
        "listing"], body, utc_now())
    return json_response({"ok": True, "status": outcome.status if outcome else "pending"})


async def deal(request: web.Request) -> web.Response:
    """`{act: handover|lend|pickup|return|rate, with?, paid_fen?, stars?}` (rule 4)."""
    user = require_resident(request, WHAT)
    body = await read_object(request)
    allocator = await allocator_of(request)
    written = await request.app[MUTUAL_AID].deal(allocator, await index_of(request), user,
                                                 request.match_info["listing"], body, utc_now())
    return json_response({"ok": True, "deal": {k: v for k, v in written.items() if k not in (
        "owner", "taker", "created_by", "_rev")}})


async def pickups(request: web.Request) -> web.Response:
    """The supplier's pickup list of a group-buy, per point."""
    user = require_resident(request, WHAT)
    store = request.app[MUTUAL_AID]
    doc = await store.owned(user, request.match_info["listing"])
    if doc.get("kind") != "groupbuy":
        raise no_such_listing()
    allocator = await allocator_of(request)
    await allocator.settle()
    return json_response(store.pickups(user, doc, allocator), headers=NO_STORE)


async def messages(request: web.Request) -> web.Response:
    user = require_resident(request, WHAT)
    found = await request.app[MUTUAL_AID].messages(await index_of(request), user.name,
                                                   request.match_info["listing"])
    return json_response(found, headers=NO_STORE)


async def send_message(request: web.Request) -> web.Response:
    user = require_resident(request, WHAT)
    with counted(request, MESSAGE_LIMITS, user.name):
        body = await read_object(request)
        msg, created = await request.app[MUTUAL_AID].message(
            await index_of(request), user.name, request.match_info["listing"], body, utc_now())
    return json_response({"ok": True, "repeated": not created,
                          "message": {"text": msg["text"], "sent_at": msg["sent_at"]}},
                         status=201 if created else 200)


async def report(request: web.Request) -> web.Response:
    user = require_resident(request, WHAT)
    body = await read_object(request)
    problems = unknown_fields(body, frozenset({"reason"}))
    if problems:
        raise refused(problems)
    created = await request.app[MUTUAL_AID].flag(await index_of(request), user.name,
                                                 request.match_info["listing"],
                                                 body.get("reason"), utc_now())
    return json_response({"ok": True, "repeated": not created}, status=201 if created else 200)


async def mine(request: web.Request) -> web.Response:
    user = require_resident(request, WHAT)
    allocator = await allocator_of(request)
    await allocator.settle()
    return json_response(request.app[MUTUAL_AID].mine(user.name, allocator, utc_now()),
                         headers=NO_STORE)


async def reported(request: web.Request) -> web.Response:
    user = require_supervisor(request)
    return json_response({"listings": request.app[MUTUAL_AID].reported(user)},
                         headers=NO_STORE)


async def hide(request: web.Request) -> web.Response:
    user = require_supervisor(request)
    body = await read_object(request)
    problems = unknown_fields(body, frozenset({"reason"}))
    if problems:
        raise refused(problems)
    doc = await request.app[MUTUAL_AID].hide(user, request.match_info["listing"],
                                             body.get("reason"))
    return json_response({"ok": True, "status": doc.get("status")})


async def supplier(request: web.Request) -> web.Response:
    user = require_supervisor(request)
    body = await read_object(request)
    doc = await request.app[MUTUAL_AID].register_supplier(user, body, utc_now())
    return json_response({"ok": True, "supplier": {k: doc[k] for k in (
        "community", "shop", "registered_at")}}, status=201)


async def mutual_aid_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the allocator (volunteering's context): its subjects' terms join it."""
    config = app[CONFIG]
    app[MUTUAL_AID] = store = MutualAid(app[COUCH], app[DIRECTORY], app[SCHEMAS],
                                        board=app[MUTUAL_AID_BOARD],
                                        max_photo_bytes=config.report_photo_max_bytes,
                                        max_photo_pixels=config.report_photo_max_pixels)
    allocator = app[ALLOCATOR]
    allocator.terms = {**allocator.terms, rules.PREFIX: store.terms}
    yield


def setup(app: web.Application) -> None:
    """The board is told the residents database by the index from its first pass, so it
    exists before any context runs."""
    app[MUTUAL_AID_BOARD] = board = Board()
    app[MUTUAL_AID_LIMITS] = ActLimits()
    app[MESSAGE_LIMITS] = FailureCounter(MESSAGES_PER_HOUR, HOUR)
    app[POST_LIMITS] = FailureCounter(POSTS_PER_DAY, DAY)
    app[RESIDENT_OBSERVERS] = (*app.get(RESIDENT_OBSERVERS, ()), board.take)
    app.cleanup_ctx.append(mutual_aid_ctx)
    one_path = PREFIX + "/listings/{listing:[^/]+}"
    for method, path, handler in (
            ("GET", PREFIX + "/listings", listings), ("POST", PREFIX + "/listings", post),
            ("GET", one_path, one), ("GET", one_path + "/photos/{name:[^/]+}", photo),
            ("POST", one_path + "/claim", functools.partial(resident_act, act="claim")),
            ("POST", one_path + "/cancel", functools.partial(resident_act, act="cancel")),
            ("POST", one_path + "/close", close), ("GET", one_path + "/claims", claimants),
            ("POST", one_path + "/decide", decide), ("POST", one_path + "/deal", deal),
            ("GET", one_path + "/pickups", pickups), ("GET", one_path + "/messages", messages),
            ("POST", one_path + "/messages", send_message),
            ("POST", one_path + "/report", report), ("POST", one_path + "/hide", hide),
            ("GET", PREFIX + "/mine", mine), ("GET", PREFIX + "/reported", reported),
            ("POST", PREFIX + "/suppliers", supplier)):
        app.router.add_route(method, path, handler)
