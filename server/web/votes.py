"""The owners' vote routes (业主表决). Thin controllers: the rules are server/domain/votes.py,
the store's side server/sync/votes.py, the design docs/votes.md.

- `GET /api/votes`: the votes a user may see (a resident: those of compounds where the register
  names them an owner; staff: their scope's), each with live participation, or its outcome once
  closed.
- `POST /api/votes`: a community supervisor (or the city admin) opens a motion in a compound of
  their scope.
- `GET /api/votes/{id}`: one vote, its participation; a resident's own ballots and where each
  stands; once closed, the result.
- `GET /api/votes/{id}/result`: the published bytes, only once closed (409 before: participation
  is all that is shown while a vote is open).
- `POST /api/votes/{id}/ballot`: an owner's ballot (the PWA queues it offline and sends it
  again until answered: the request id makes a retry the same ballot).
- `POST /api/votes/{id}/paper`: a grid worker records a signed paper ballot, with its photo.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server import errors
from server.domain import votes as rules
from server.domain.scope import User
from server.errors import json_bytes, json_response
from server.sync.residents import utc_now
from server.sync.votes import LIST_TTL, MotionState, Votes, no_such_motion
from server.web.auth import FailureCounter
from server.web.guard import require_role, require_user
from server.web.keys import BALLOT_LIMITS, COUCH, DIRECTORY, LEASES, SCHEMAS, SUPERVISOR, VOTES
from server.web.parsing import read_object

PREFIX = "/api/votes"
# Ballots (and paper records) an account may send in a window: a phone's queue sends a few, a
# worker's door-to-door round some dozens; each is a document kept for good and a tally.
BALLOTS_PER_WINDOW, BALLOT_WINDOW_SECONDS = 60, 600.0
SHOWN = ("title", "body", "compound", "matter", "opens_at", "closes_at", "secret", "seats",
         "candidates", "created_by", "opened_at")


def key_of(request: web.Request) -> str:
    key = request.match_info["vote"]
    if len(key) != 16 or any(c not in "0123456789abcdef" for c in key):
        raise errors.CouchError(404, "not_found", no_such_motion().reason)
    return key


def shown(state: MotionState) -> dict[str, Any]:
    doc = state.doc
    matter = rules.MATTERS[doc["matter"]]
    return {"id": state.key, **{k: doc[k] for k in SHOWN if k in doc},
            "matter_number": matter.number, "matter_label": [matter.zh, matter.en],
            "threshold": rules.threshold_text(matter)}


async def summary(store: Votes, state: MotionState) -> dict[str, Any]:
    """A vote as a list shows it: open with its live participation, or closed with its outcome."""
    found = shown(state)
    result = await store.ensure_closed(state)
    if result is None:
        found["state"] = "open"
        found["participation"] = await store.participation(state)
        return found
    if state.outcome is None:
        state.outcome = json.loads(result)
    counted = state.outcome
    found["state"] = "closed"
    found["participation"] = counted["participation"]
    found["passed"] = counted["passed"]
    if "elected" in counted:
        found.update({k: counted[k] for k in ("elected", "tied", "open_seats")})
    return found


async def listed(store: Votes, state: MotionState) -> tuple[bool, bytes]:
    """A vote's entry in the list (closed or not, and its JSON bytes), made again only when its
    participation has changed (more rows read) or it has closed: a city-wide list joins bytes
    it already has instead of building and encoding every vote's summary on every request."""
    closed = await store.ensure_closed(state) is not None
    if not closed:
        await store.participation(state)  # reads on in the background after its TTL
    version = (closed, -1 if closed else state.shown[0])
    if state.listed is None or state.listed[0] != version:
        state.listed = (version, json_bytes(await summary(store, state)))
    return closed, state.listed[1]


async def listing(request: web.Request) -> web.Response:
    user = require_user(request)
    store = request.app[VOTES]
    await store.refresh_list(LIST_TTL)
    seen = [s for s in store.motions.values() if store.sees(user, s)]
    parts = await asyncio.gather(*(listed(store, s) for s in seen))
    # open votes first, then by closing time
    order = sorted(range(len(seen)), key=lambda i: (parts[i][0], str(seen[i].doc["closes_at"])))
    return web.Response(body=b'{"votes":[' + b",".join(parts[i][1] for i in order) + b"]}",
                        content_type="application/json")


def require_opener(request: web.Request) -> User:
    return require_role(request, ("supervisor", "admin"),
                        "只有社区工作人员或市级管理员可以发起表决",
                        "Only community supervisors and the city admin open votes.")


async def open_motion(request: web.Request) -> web.Response:
    user = require_opener(request)
    draft = await read_object(request)
    doc = await request.app[VOTES].open_motion(user, draft)
    state = await request.app[VOTES].load(doc)
    return json_response({"ok": True, "vote": shown(state)}, status=201)


async def one(request: web.Request) -> web.Response:
    user = require_user(request)
    store = request.app[VOTES]
    state = await store.state(user, key_of(request))
    found = await summary(store, state)
    if user.role == "resident":
        found["my_units"] = store.units_of(state, user.name)
        found["my_ballots"] = await store.my_ballots(user, state)
    if state.outcome is not None:
        found["result"] = state.outcome
    return json_response({"vote": found})


async def result(request: web.Request) -> web.Response:
    """The published bytes as stored: hash them, compare them with `linli vote recount`."""
    user = require_user(request)
    store = request.app[VOTES]
    state = await store.state(user, key_of(request))
    body = await store.ensure_closed(state)
    if body is None:
        raise errors.CouchError(409, "not_closed", errors.bilingual(
            "表决尚未截止：截止前只公布参与情况", "The vote is open: until it closes only "
            "participation is shown."))
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def count_ballot(request: web.Request, user: User) -> None:
    """One more ballot of this account, or a 429 that says when it may send again."""
    limits = request.app[BALLOT_LIMITS]
    wait = limits.retry_after(user.name)
    if wait:
        raise errors.too_many_requests(wait)
    limits.record(user.name)


async def ballot(request: web.Request) -> web.Response:
    user = require_user(request)
    if user.role != "resident":
        raise errors.forbidden("只有业主本人可以在线投票", "Only owners vote online.")
    count_ballot(request, user)
    key = key_of(request)
    body = await read_object(request)
    answer = await request.app[VOTES].cast(user, key, body)
    return json_response({"ok": True, "ballot": answer},
                         status=202 if answer["status"] == "late" else 201)


async def paper(request: web.Request) -> web.Response:
    """A worker's record of a signed paper ballot: never without its photo (an image, checked
    by its bytes)."""
    user = require_user(request)
    if user.role != "worker":
        raise errors.forbidden("纸质票由网格员录入", "Paper ballots are recorded by grid workers.")
    count_ballot(request, user)
    key = key_of(request)
    body = await read_object(request)
    photo = body.get("photo")
    if not isinstance(photo, dict) or not isinstance(photo.get("data"), str):
        raise errors.bad_request("“纸质票照片”必填：没有照片不能录入纸质票",
                                 "Photo of the paper ballot is required: no photo, no record.")
    answer = await request.app[VOTES].cast(user, key, body, photo=photo)
    return json_response({"ok": True, "ballot": answer},
                         status=202 if answer["status"] == "late" else 201)


async def votes_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store and the directory are open (cleanup contexts run in order)."""
    app[VOTES] = store = Votes(app[COUCH], app[DIRECTORY], app[SCHEMAS], utc_now)
    task = app[SUPERVISOR].start("votes", store.close_due, probe=store.lag, lease=app[LEASES])
    app[BALLOT_LIMITS] = FailureCounter(BALLOTS_PER_WINDOW, BALLOT_WINDOW_SECONDS)
    yield
    await app[SUPERVISOR].stop([task])


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(votes_ctx)
    one_vote = PREFIX + "/{vote:[^/]+}"
    for method, path, handler in (
            ("GET", PREFIX, listing), ("POST", PREFIX, open_motion), ("GET", one_vote, one),
            ("GET", one_vote + "/result", result), ("POST", one_vote + "/ballot", ballot),
            ("POST", one_vote + "/paper", paper)):
        app.router.add_route(method, path, handler)
